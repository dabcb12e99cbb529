#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_placement_info
short_description: How loaded each hypervisor is, and which moves would even the load out
version_added: 0.1.0
description:
  - Reports, per hypervisor registered with M(vman.lifecycle.vm_hypervisor), its capacity,
    its use, its memory and vCPU ratios, its state and the VMs the store has placed on it.
  - Suggests moves of VMs between hypervisors of the same kind that would make the cluster
    more balanced, best first, up to O(max_moves). Nothing is moved; the moves are advice.
  - "The balance score (lower is more even) is the sum of three population standard
    deviations over the enabled hypervisors: of the memory use ratios, of the vCPU ratios
    (use over C(vcpus * vcpu_ratio)) and of the disk ratios where disk is declared. A move
    is suggested when it lowers the score and the VM fits on its new host by the same rules
    placement uses (capacity, kind, labels, anti-affinity, N+1 headroom)."
  - Each step looks at the VMs of the five hosts with the highest memory ratio, so large
    fleets stay quick to report on.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing.
options:
  hypervisors:
    description: Report only on these hypervisors (the moves still consider all of them).
    type: list
    elements: str
    default: []
  max_moves:
    description: The most moves to suggest; V(0) reports the load only.
    type: int
    default: 10
  headroom:
    description:
      - V(n+1) - a move must keep, per kind, the guest memory of any one host within the
        free memory of the other hosts of that kind (as
        O(vman.lifecycle.vm_pool#module:headroom)). V(none) - no headroom.
    type: str
    choices: ["n+1", "none"]
    default: "n+1"
"""

EXAMPLES = r"""
- name: How loaded are the hypervisors?
  vman.lifecycle.vm_placement_info:
  delegate_to: localhost
  register: load

- name: Show the suggested moves
  ansible.builtin.debug:
    msg: "{{ load.moves }}"
"""

RETURN = r"""
hypervisors:
  description: Per hypervisor - C(name), C(kind), C(state) (C(enabled), C(unreachable),
    C(disabled), C(unmeasured) when neither measured nor declared), C(reason),
    C(labels), C(refreshed_at), C(capacity) (as placement sees it, C(reserved_memory)
    deducted), C(use) (C(memory), C(vcpus), C(disk), C(groups)), C(memory_ratio),
    C(vcpu_ratio) and C(vms) (names of the store's VMs on it).
  returned: always
  type: list
  elements: dict
moves:
  description: Suggested moves, in order - C(vm), C(from), C(to) and C(score_after) (the
    balance score once this and the moves before it are made).
  returned: always
  type: list
  elements: dict
  sample: [{"vm": "3f2c...", "from": "dom0a", "to": "dom0c", "score_after": 0.0812}]
score:
  description: The balance score now.
  returned: always
  type: float
score_after_moves:
  description: The balance score once every suggested move is made.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _hypervisors
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store


def main():
    argument_spec = dict(
        hypervisors=dict(type="list", elements="str", default=[]),
        max_moves=dict(type="int", default=10),
        headroom=dict(type="str", choices=["n+1", "none"], default="n+1"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    p = module.params
    if p["max_moves"] < 0:
        module.fail_json(msg=f"max_moves = {p['max_moves']}: must be 0 or more")
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result, dummy = _hypervisors.report(store, p["hypervisors"], p["max_moves"], p["headroom"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
