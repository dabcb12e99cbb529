#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_secret
short_description: A VM's generated password, kept in the lifecycle store until it is shown once
version_added: 0.1.0
description:
  - O(state=present) generates a random password for O(vm) under O(name) and keeps it in the
    lifecycle store, or returns the one already kept there, so a rerun sets the same value.
    Postinstall uses it for the database or root password of a new VM.
  - O(state=shown) returns the password and deletes it from the store; it can be shown once.
  - O(state=absent) deletes it unseen (purge).
  - The store holds the value in clear until it is shown (the SQLite file is C(0600)); the
    fleet inventory never reads it.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Reports whether a password would be made, shown or deleted; returns no value.
  diff_mode:
    support: none
    description: Secrets are never shown in a diff.
options:
  vm:
    description: Name of the VM in the store.
    type: str
    required: true
  name:
    description:
      - Which secret of the VM, for example V(root) or V(mysql_root). With O(state=absent)
        and no name, every secret of the VM.
    type: str
  state:
    description: Make or read it (V(present)), read and delete it (V(shown)), delete it (V(absent)).
    type: str
    choices: [present, shown, absent]
    default: present
  length:
    description: Length of a new password (letters and digits), 12 or more.
    type: int
    default: 24
notes:
  - With O(state=present) or O(state=shown) the task must set C(no_log) to true; the module
    fails otherwise, so the value never reaches a log. It is in the registered variable only.
"""

EXAMPLES = r"""
- name: Root password of a new VM (made once, kept until shown)
  vman.lifecycle.vm_secret:
    vm: "{{ vman_name }}"
    name: root
  delegate_to: localhost
  no_log: true
  register: root_password

- name: Show it to its owner, once
  vman.lifecycle.vm_secret:
    vm: "{{ vman_name }}"
    name: root
    state: shown
  delegate_to: localhost
  no_log: true
  register: shown
"""

RETURN = r"""
value:
  description: The password (O(state=present) or O(state=shown), not in check mode).
  returned: when O(state) is present or shown
  type: str
removed:
  description: Names of the secrets deleted.
  returned: when O(state=absent)
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _vm_secret
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store


def main():
    argument_spec = dict(
        vm=dict(type="str", required=True),
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "shown", "absent"], default="present"),
        length=dict(type="int", default=24, no_log=False),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ("name",)),
                                        ("state", "shown", ("name",))])
    p = module.params
    if p["state"] != "absent" and not module.no_log:
        module.fail_json(msg=f"state: {p['state']} needs no_log: true on the task, so the "
                             "password never reaches a log")
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result = _vm_secret.apply(store, p["vm"], p["name"], p["state"], p["length"],
                                      check=module.check_mode)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
