#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_request
short_description: Register or remove a service (allocator) on a VM start request
version_added: 0.1.0
description:
  - A start request names the VMs a service needs (the backend, the hypervisor, a spec or a
    flavor, how many devices) and lists the services that depend on it, its I(allocators).
  - O(state=present) registers O(allocator) on request O(name), creating the request when it
    does not exist; O(state=absent) removes only that allocator.
  - No hypervisor work happens in this call. The reconciler
    (M(vman.lifecycle.vm_reconcile), C(playbooks/reconcile_requests.yml)) starts the VMs of new
    requests and tears down the VMs of requests whose last allocator is gone, in a later,
    separate run. So a service's own teardown (removing its day-1 configuration from the VM)
    never races the VM's shutdown.
  - Changing O(count) of an existing request scales it out or in at the next reconcile.
    Changing O(spec) applies to devices started from then on.
  - After the allocator's playbook ran again because the request put it on the redeploy list,
    O(redeploy_done=true) takes it off.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Computes the request as it would be and writes nothing.
  diff_mode:
    support: full
    description: Shows the request (allocators, parameters, state) before and after.
options:
  name:
    description:
      - Name of the start request; its VMs are named C(<name>-1), C(<name>-2), ...
      - 1 to 48 lower-case letters, digits or C(-).
    type: str
    required: true
  allocator:
    description: The service that depends on the request (any stable identifier).
    type: str
    required: true
  state:
    description: Whether O(allocator) is registered on the request.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - Hypervisor kind of the request's VMs. Required when the request is created.
      - The reconciler implements C(lxc) today.
    type: str
    choices: [lxc, xen, libvirt]
  hypervisor:
    description:
      - The hypervisor host the VMs run on (recorded; used as inventory group).
      - An inventory host name, 1 to 253 letters, digits, C(_), C(.) or C(-), starting with a
        letter or digit.
    type: str
  flavor:
    description:
      - Flavor name recorded on the request and on its devices in the inventory.
      - 1 to 63 letters, digits, C(_), C(.) or C(-), starting with a letter or digit.
    type: str
  spec:
    description:
      - The backend parameters of a VM. For C(lxc) one container entry of
        M(vman.lifecycle.lxc_guest) without C(name) (C(profile_type), C(from_container),
        C(bridge), C(network), C(gateway), ...).
      - Do not put secrets here; the LXC backend generates a password per container and keeps
        it in its settings directory (0600).
    type: dict
  count:
    description: How many devices (VMs) the request wants (scale-out / scale-in), 1 to 64.
    type: int
  keep_disk:
    description: Keep the VMs' disks when the request is torn down (default on creation true).
    type: bool
  redeploy_done:
    description: The allocator's playbook ran again; remove it from the request's redeploy list.
    type: bool
    default: false
  who:
    description: Identity recorded in the request's events.
    type: str
    default: ansible
"""

EXAMPLES = r"""
- name: The web service needs two LXC containers
  vman.lifecycle.vm_request:
    name: web
    allocator: service-web
    backend: lxc
    hypervisor: lxchost1
    count: 2
    spec:
      profile_type: overlayfs
      from_container: base-bookworm
      bridge: lxcbr1
  delegate_to: localhost

- name: A second service shares the same VMs
  vman.lifecycle.vm_request:
    name: web
    allocator: service-monitoring
  delegate_to: localhost

- name: The service's playbook ran again after a redeploy request
  vman.lifecycle.vm_request:
    name: web
    allocator: service-web
    redeploy_done: true
  delegate_to: localhost

- name: The web service is deleted (its day-1 config was removed first); the VMs stay for monitoring
  vman.lifecycle.vm_request:
    name: web
    allocator: service-web
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
name:
  description: The request.
  returned: always
  type: str
request:
  description:
    - The request after the task (as it would be in check mode), or null when it does not
      exist. Keys C(name), C(backend), C(hypervisor), C(flavor), C(spec), C(count),
      C(keep_disk), C(state) (C(pending), C(ready), C(error), C(deleting), C(delete_failed)),
      C(error_status), C(error_reason), C(allocators), C(devices) (C(vm), C(idx), C(ready),
      C(boot_id), C(marker), C(address)) and C(redeploy) (C(allocator), C(reason), C(at)).
  returned: success
  type: dict
before:
  description: The request before the task (null when it did not exist).
  returned: success
  type: dict
after:
  description: Same as RV(request).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json, hide_spec_secrets
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_request import BACKENDS, apply_request


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        allocator=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        backend=dict(type="str", choices=list(BACKENDS)),
        hypervisor=dict(type="str"),
        flavor=dict(type="str"),
        spec=dict(type="dict"),
        count=dict(type="int"),
        keep_disk=dict(type="bool"),
        redeploy_done=dict(type="bool", default=False),
        who=dict(type="str", default="ansible"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    hide_spec_secrets(module, module.params["spec"])
    p = module.params
    params = {k: p[k] for k in ("backend", "hypervisor", "flavor", "spec", "count", "keep_disk")}
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result = apply_request(store, p["name"], p["allocator"], p["state"], params,
                                   redeploy_done=p["redeploy_done"], who=p["who"],
                                   check=module.check_mode)
    if module._diff:
        result["diff"] = {"before": result["before"] or {}, "after": result["after"] or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
