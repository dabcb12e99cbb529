#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: install_callback
short_description: Issue install-callback tokens and wait for the VMs' callbacks
version_added: 0.1.0
description:
  - With O(state=issued), issues a one-time token for one VM in status C(installing). The token
    is returned once, in RV(token), to be passed into the VM's install; the lifecycle store keeps
    only its SHA-256, its expiry and the addresses the callback may come from. Issuing again
    revokes the VM's earlier unused token.
  - With O(state=wait), listens on O(bind) and O(port) on the controller for
    C(POST /callback/<vm>) from the installers, with the token in an
    C(Authorization) header (C(Bearer <token>)) or a C(token) form or JSON field (never in the
    URL). A call is accepted when the token matches (constant-time comparison), is neither
    used nor expired, and the call comes from the VM's expected address or from one of
    O(trusted_proxies). Each accepted call moves the VM C(installing) -> C(postinstall).
    Refused calls answer 403 and are logged in RV(log) without the token.
  - The wait ends when every VM in O(vms) called back or after O(timeout) seconds; the VMs
    that did not call back are moved to C(failed) with the reason.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return changed status prediction without modifying target.
    details:
      - O(state=issued) checks the VM and reports a change without issuing a token.
      - O(state=wait) does not listen; it reports which VMs are still C(installing) and would
        be waited for.
  diff_mode:
    support: none
    description: Tokens are secrets; nothing is shown.
options:
  state:
    description:
      - Issue a token, or wait for callbacks.
      - C(revoked) deletes every token of O(vm) from the store, used or not (when the VM is
        purged); running it again changes nothing.
    type: str
    choices: [issued, wait, revoked]
    required: true
  vm:
    description: The VM to issue a token for (O(state=issued)), or whose tokens to delete
      (O(state=revoked)).
    type: str
  source_ip:
    description:
      - Addresses the VM's callback may come from (O(state=issued)); at least one.
      - When the call reaches the controller through NAT or a proxy, list that address in
        O(trusted_proxies) at wait time; the check is never switched off.
    type: list
    elements: str
  ttl:
    description: Seconds the token is valid (O(state=issued)).
    type: int
    default: 7200
  vms:
    description: The VMs whose callbacks to wait for (O(state=wait)).
    type: list
    elements: str
  bind:
    description: Address to listen on (O(state=wait)); an IPv6 address listens on IPv6.
    type: str
    default: 0.0.0.0
  port:
    description: TCP port to listen on (O(state=wait)).
    type: int
    default: 8765
  timeout:
    description: Seconds to wait for all callbacks (O(state=wait)).
    type: float
    default: 3600
  trusted_proxies:
    description:
      - Addresses (NAT gateways, reverse proxies) whose calls are taken as coming from the VM
        named in the URL. When such a proxy sends C(X-Forwarded-For), the address it appended
        must be the VM's.
    type: list
    elements: str
    default: []
  fail_on_timeout:
    description: Fail the task when a VM did not call back (its status becomes C(failed) either way).
    type: bool
    default: false
notes:
  - The task that issues a token must set C(no_log) to true; the module fails otherwise, so
    the token never reaches a log. RV(token) is then in the registered variable only.
  - Run both states on the controller (delegated to C(localhost)), where the store is.
  - "The listener of O(state=wait) cannot be stalled by whoever reaches its port: it serves
    connections concurrently (one thread, so the store is used by one thread only), at most
    128 at once (one more evicts the oldest unfinished one with a 503 answer; an installer
    that retries gets in). Each request must arrive whole, head and body, within 5 seconds of
    its connection, else it is answered 408 and closed, however steadily it trickles in.
    A request head (request line and header fields) may have 8 KiB (431 beyond), a body 4 KiB
    (413, refused before it is read); C(Transfer-Encoding) is not accepted (411), a malformed
    request is answered 400. The wait ends by O(timeout) whatever the connections do.
    RV(log) keeps the first 1000 calls (and every accepted one)."
"""

EXAMPLES = r"""
- name: Issue the install token of a new VM
  vman.lifecycle.install_callback:
    state: issued
    vm: "{{ vm.name }}"
    source_ip: ["{{ vm.netconf.ipv4 }}"]
    ttl: 3600
  delegate_to: localhost
  no_log: true
  register: callback_token

- name: Wait until the installers called back
  vman.lifecycle.install_callback:
    state: wait
    vms: "{{ new_vms | map(attribute='name') | list }}"
    bind: 192.0.2.1
    port: 8765
    timeout: 1800
    trusted_proxies: [10.0.2.2]
  delegate_to: localhost
  register: callbacks

- name: The VM is purged, its tokens go
  vman.lifecycle.install_callback:
    state: revoked
    vm: "{{ vm.name }}"
  delegate_to: localhost
"""

RETURN = r"""
token:
  description: The one-time token (O(state=issued), not in check mode). Only the task that set
    C(no_log) sees it.
  returned: state=issued
  type: str
expires_at:
  description: Expiry of the token, seconds since the epoch.
  returned: state=issued
  type: float
callback_path:
  description: Path the installer posts to.
  returned: state=issued
  type: str
  sample: /callback/3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
called_back:
  description: VMs that called back (or were already past C(installing)).
  returned: state=wait
  type: list
  elements: str
failed_vms:
  description: VMs that did not call back in time and were moved to C(failed).
  returned: state=wait
  type: list
  elements: str
pending:
  description: In check mode, the VMs still C(installing) that a wait would be for.
  returned: state=wait and check mode
  type: list
  elements: str
log:
  description: Every call received, as vm, code, reason and source address; never the token.
  returned: state=wait
  type: list
  elements: dict
revoked:
  description: How many tokens of the VM were deleted (would be, in check mode).
  returned: state=revoked
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _callback as cb
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store


def _issued(module, store):
    p = module.params
    token, expires_at = cb.issue_token(store, p["vm"], p["source_ip"], p["ttl"],
                                       check=module.check_mode)
    result = dict(changed=True, expires_at=expires_at, callback_path=f"/callback/{p['vm']}")
    if token is not None:
        result["token"] = token
    return result


def _revoked(module, store):
    count = store.drop_tokens(module.params["vm"], check=module.check_mode)
    return dict(changed=count > 0, revoked=count)


def _wait(module, store):
    p = module.params
    listener = cb.Listener(store, p["vms"], bind=p["bind"], port=p["port"],
                           trusted_proxies=p["trusted_proxies"])
    if module.check_mode:
        pending = [vm for vm in listener.expected if cb.vm_status(store, vm) == "installing"]
        return dict(changed=bool(pending), called_back=[], failed_vms=[], log=[],
                    pending=pending)
    pending = listener.wait(p["timeout"])
    failed = cb.fail_pending(store, pending, p["timeout"])
    accepted = any(entry["code"] == 200 for entry in listener.log)
    result = dict(changed=accepted or bool(failed),
                  called_back=listener.called_back, failed_vms=failed, log=listener.log)
    if failed and p["fail_on_timeout"]:
        result["failed"] = True
        result["msg"] = f"no install callback within {p['timeout']:g} s from: {', '.join(failed)}"
    return result


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["issued", "wait", "revoked"], required=True),
        vm=dict(type="str"),
        source_ip=dict(type="list", elements="str"),
        ttl=dict(type="int", default=7200),
        vms=dict(type="list", elements="str"),
        bind=dict(type="str", default="0.0.0.0"),
        port=dict(type="int", default=8765),
        timeout=dict(type="float", default=3600),
        trusted_proxies=dict(type="list", elements="str", default=[]),
        fail_on_timeout=dict(type="bool", default=False),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[("state", "issued", ("vm", "source_ip")),
                                        ("state", "wait", ("vms",)),
                                        ("state", "revoked", ("vm",))])
    p = module.params
    if p["state"] == "issued" and not module.no_log:
        module.fail_json(msg="state: issued needs no_log: true on the task, "
                             "so the token never reaches a log")
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result = {"issued": _issued, "wait": _wait, "revoked": _revoked}[p["state"]](module, store)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
