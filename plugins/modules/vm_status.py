#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_status
short_description: Change the lifecycle status of a VM in the lifecycle store
version_added: 0.1.0
description:
  - Moves one VM of the lifecycle store to a new status through the collection's state machine
    (installing, postinstall, preallocated, ready, ansible, ansible_queue, quarantined,
    disabled, canceled, purged, failed) and records an event (who, when, from, to, why) in the
    same transaction.
  - An illegal transition fails with the VM, its current status and the statuses the actor
    may move it to.
  - Asking for the status the VM already has changes nothing.
  - Also requests ansible runs (a request during a run queues exactly one more run; a request
    while installing or in postinstall is deferred) and sets the admin suspension, which
    stops a user from leaving C(quarantined) or C(disabled).
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Computes the transition against the stored status and writes nothing.
  diff_mode:
    support: full
    description: Shows the status, suspension and pending-request flags before and after.
options:
  name:
    description: Name of the VM in the store.
    type: str
    required: true
  status:
    description:
      - The status the VM should have.
      - Ending an ansible run is C(ansible) -> C(ready), or C(ansible_queue) -> C(ansible) when
        another run was queued.
      - Mutually exclusive with O(request_ansible).
      - C(ansible_queued), the name the mws-panel uses, is accepted as an alias of
        C(ansible_queue); results and the store always say C(ansible_queue).
    type: str
    choices: [installing, postinstall, preallocated, ready, ansible, ansible_queue, quarantined,
              disabled, canceled, purged, failed, ansible_queued]
  request_ansible:
    description:
      - Request an ansible run instead of naming a status.
      - C(ready) becomes C(ansible); C(ansible) becomes C(ansible_queue); C(ansible_queue)
        stays as it is (the queued run covers this request).
      - In C(installing) or C(postinstall) the request is deferred; the status stays, the
        VM's C(ansible_pending) flag is set (RV(deferred) is true) and is cleared by the next
        run; another request while one is pending changes nothing.
      - Any other status fails.
    type: bool
    default: false
  finish_run:
    description:
      - End the ansible run of the VM, as the runner (O(actor=admin)) does when its run is
        over; C(ansible) becomes C(ready), C(ansible_queue) becomes C(ansible) and
        RV(run_again) tells the runner to run once more. Any other status fails.
      - Mutually exclusive with O(status) and O(request_ansible).
    type: bool
    default: false
  admin_suspended:
    description:
      - Set or clear the administrative suspension. Only O(actor=admin) may.
    type: bool
  actor:
    description:
      - On whose behalf the change is made. Some transitions are for admins only (the
        installation steps, ending runs, purge); a user cannot leave C(quarantined) or
        C(disabled) while the VM is administratively suspended.
    type: str
    choices: [user, admin]
    default: user
  who:
    description: Identity recorded in the event (a user name, a playbook name).
    type: str
    default: ansible
  reason:
    description: Why, recorded in the event.
    type: str
  grace_days:
    description: Days a VM stays C(canceled) before it may become C(purged).
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Quarantine a compromised site on the user's request
  vman.lifecycle.vm_status:
    name: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    status: quarantined
    actor: user
    who: alice
    reason: website compromised
  delegate_to: localhost

- name: Suspend it administratively as well
  vman.lifecycle.vm_status:
    name: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    admin_suspended: true
    actor: admin
    reason: abuse report 1234
  delegate_to: localhost

- name: The user of another VM changed something in the panel
  vman.lifecycle.vm_status:
    name: 8d1b6a3e-0c2f-4f7e-9a51-2b7c4e6d9f10
    request_ansible: true
  delegate_to: localhost

- name: Purge a VM canceled more than a week ago (instead of 30 days)
  vman.lifecycle.vm_status:
    name: c4e7a1d2-5b3f-4e8a-b6c9-0d2e4f6a8b13
    status: purged
    actor: admin
    grace_days: 7
    store: postgresql://vman@db.example.org/vman
  delegate_to: localhost
"""

RETURN = r"""
name:
  description: The VM.
  returned: always
  type: str
before:
  description: Status, admin suspension and pending ansible request before the task.
  returned: success
  type: dict
  sample: {"status": "ready", "admin_suspended": false, "ansible_pending": false}
after:
  description: The same after the task (what it would be in check mode).
  returned: success
  type: dict
  sample: {"status": "quarantined", "admin_suspended": false, "ansible_pending": false}
event:
  description: Name of the transition taken (the event recorded), or null when the status did not change.
  returned: success
  type: str
  sample: quarantine
deferred:
  description: True when an ansible request was deferred because the VM is still being installed.
  returned: success
  type: bool
run_again:
  description: With O(finish_run), true when a queued run starts now (the status is C(ansible) again).
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_status import apply_status


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        status=dict(type="str", choices=list(lc.STATUSES) + list(lc.STATUS_ALIASES)),
        request_ansible=dict(type="bool", default=False),
        finish_run=dict(type="bool", default=False),
        admin_suspended=dict(type="bool"),
        actor=dict(type="str", choices=list(lc.ACTORS), default=lc.USER),
        who=dict(type="str", default="ansible"),
        reason=dict(type="str"),
        grace_days=dict(type="float", default=float(lc.DEFAULT_GRACE_DAYS)),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("status", "request_ansible", "finish_run")],
                           required_one_of=[("status", "request_ansible", "admin_suspended",
                                             "finish_run")])
    p = module.params
    try:
        with open_store(p["store"]) as store:
            result = apply_status(store, p["name"], p["actor"], status=p["status"],
                                  request_ansible=p["request_ansible"],
                                  admin_suspended=p["admin_suspended"], who=p["who"],
                                  reason=p["reason"], grace_days=p["grace_days"],
                                  check=module.check_mode, finish_run=p["finish_run"])
    except VmanError as exc:
        module.fail_json(msg=str(exc), name=p["name"], **exc.to_result())
    if module._diff:
        result["diff"] = {"before": result["before"], "after": result["after"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
