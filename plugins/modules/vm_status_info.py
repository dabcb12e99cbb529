#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_status_info
short_description: Read the lifecycle status and event history of VMs
version_added: 0.1.0
description:
  - Returns one VM of the lifecycle store with its event history (who, when, from, to, why),
    or the VMs that match filters.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Nothing changes, so there is no difference to show.
options:
  name:
    description:
      - The VM to read. Without it, every VM matching the filters is returned in RV(vms).
    type: str
  events:
    description: Return the event history of O(name).
    type: bool
    default: true
  limit:
    description: Return only the last N events.
    type: int
  status:
    description:
      - Filter by status (without O(name)).
      - C(ansible_queued) (the mws-panel's name) is an alias of C(ansible_queue).
    type: str
  flavor:
    description: Filter by flavor (without O(name)).
    type: str
  org:
    description: Filter by organisation (without O(name)).
    type: str
  owner:
    description: Filter by owner (without O(name)).
    type: str
"""

EXAMPLES = r"""
- name: Status and history of one VM
  vman.lifecycle.vm_status_info:
    name: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    limit: 20
  delegate_to: localhost
  register: site

- name: Every quarantined VM
  vman.lifecycle.vm_status_info:
    status: quarantined
  delegate_to: localhost
  register: quarantined
"""

RETURN = r"""
exists:
  description: Whether O(name) is in the store.
  returned: when O(name) is given
  type: bool
vm:
  description: The VM record (name, org, flavor, backend, hypervisor, spec, status, status_since,
    admin_suspended, ansible_pending, owner, created_at, updated_at; times in epoch seconds).
  returned: when O(name) is given
  type: dict
events:
  description: The events of O(name), oldest first.
  returned: when O(name) is given
  type: list
  elements: dict
  sample: [{"at": 1700000000.0, "vm": "web1", "actor": "user", "who": "alice", "event": "quarantine",
            "from_status": "ready", "to_status": "quarantined", "why": "website compromised"}]
vms:
  description: The VM records matching the filters.
  returned: when O(name) is not given
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_status import read_status


def main():
    argument_spec = dict(
        name=dict(type="str"),
        events=dict(type="bool", default=True),
        limit=dict(type="int"),
        status=dict(type="str"),
        flavor=dict(type="str"),
        org=dict(type="str"),
        owner=dict(type="str"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("name", f) for f in ("status", "flavor", "org", "owner")])
    p = module.params
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result = read_status(store, name=p["name"], status=p["status"], flavor=p["flavor"],
                                 org=p["org"], owner=p["owner"], events=p["events"], limit=p["limit"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
