#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_pool
short_description: Keep a pool of preallocated VMs per flavor and hand them to users
version_added: 0.1.0
description:
  - O(state=present) counts, per flavor, the VMs on their way to the pool or in it
    (C(installing), C(postinstall), C(preallocated)) and creates the deficit up to
    O(flavors[].threshold) in one run, as new VM records in status C(installing) named by a
    UUID4, each with one netconf of every kind in O(netconf_kinds) taken from
    O(netconf_pool). It returns them so that the playbook creates them on a hypervisor.
    It is one transaction, serialised against other controllers filling the same store;
    when a netconf pool runs out nothing is created and the error names the pool.
  - O(state=claimed) atomically hands one C(preallocated) VM of O(flavor) to O(owner)
    (status C(ready)) and returns it. Concurrent claims never get the same VM. With no
    preallocated VM left the task fails with a clear message. Every run claims another VM.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Computes the deficit, or the VM that would be claimed, and writes nothing.
  diff_mode:
    support: none
    description: The result lists the VMs created or claimed.
options:
  state:
    description: Fill the pool (V(present)) or take one VM out of it (V(claimed)).
    type: str
    choices: [present, claimed]
    default: present
  flavors:
    description: The flavors to keep in the pool, with O(state=present).
    type: list
    elements: dict
    suboptions:
      name:
        description: Flavor name.
        type: str
        required: true
      threshold:
        description: Number of VMs of this flavor to keep installing or preallocated.
        type: int
        required: true
      spec:
        description: The VM spec stored with every new VM of this flavor.
        type: dict
        default: {}
      org:
        description: Organisation recorded on the new VMs.
        type: str
      backend:
        description: Hypervisor kind that will run the VMs.
        type: str
        choices: [xen, libvirt, lxc]
        default: xen
      hypervisor:
        description: Hypervisor host recorded on the new VMs.
        type: str
  netconf_pool:
    description: The netconf pool new VMs take their network configs from (none taken when unset).
    type: str
  netconf_kinds:
    description: One netconf of each of these kinds is given to every new VM.
    type: list
    elements: str
    choices: [vm, service, test-service]
    default: [vm, service, test-service]
  flavor:
    description: Flavor to claim, with O(state=claimed).
    type: str
  owner:
    description: The user who gets the VM, with O(state=claimed).
    type: str
  actor:
    description: On whose behalf the claim is made.
    type: str
    choices: [user, admin]
    default: user
  who:
    description: Identity recorded in the events.
    type: str
    default: ansible
"""

EXAMPLES = r"""
- name: Keep 5 small and 2 large servers ready
  vman.lifecycle.vm_pool:
    flavors:
      - name: small
        threshold: 5
        spec: {memory: 2048, vcpus: 1, os: {type: debian, version: bookworm}}
      - name: large
        threshold: 2
        backend: libvirt
        spec: {memory: 8192, vcpus: 4, os: {type: debian, version: bookworm}}
    netconf_pool: cam
  delegate_to: localhost
  register: pool

- name: A user asked for a server
  vman.lifecycle.vm_pool:
    state: claimed
    flavor: small
    owner: alice
  delegate_to: localhost
  register: claimed
"""

RETURN = r"""
deficit:
  description: VMs missing per flavor before the task (created unless in check mode).
  returned: when O(state=present)
  type: dict
  sample: {"small": 3, "large": 0}
created:
  description: The VM records created, each with C(netconfs) by kind.
  returned: when O(state=present)
  type: list
  elements: dict
vm:
  description: The VM claimed (status C(ready), owner set), with C(netconfs) by kind and
    C(host), its host name in the P(vman.lifecycle.fleet#inventory) inventory.
  returned: when O(state=claimed)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils import _pool
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import NETCONF_KINDS


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "claimed"], default="present"),
        flavors=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            threshold=dict(type="int", required=True),
            spec=dict(type="dict", default={}),
            org=dict(type="str"),
            backend=dict(type="str", choices=list(_pool.BACKENDS), default="xen"),
            hypervisor=dict(type="str"),
        )),
        netconf_pool=dict(type="str"),
        netconf_kinds=dict(type="list", elements="str", choices=list(NETCONF_KINDS),
                           default=list(NETCONF_KINDS)),
        flavor=dict(type="str"),
        owner=dict(type="str"),
        actor=dict(type="str", choices=list(lc.ACTORS), default=lc.USER),
        who=dict(type="str", default="ansible"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ("flavors",)),
                                        ("state", "claimed", ("flavor", "owner"))])
    p = module.params
    try:
        with open_store(p["store"]) as store:
            if p["state"] == "present":
                result, warnings = _pool.fill(store, p["flavors"], p["netconf_pool"],
                                              p["netconf_kinds"], who=p["who"], check=module.check_mode)
            else:
                result, warnings = _pool.claim(store, p["flavor"], p["owner"], actor=p["actor"],
                                               who=p["who"], check=module.check_mode)
    except VmanError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
