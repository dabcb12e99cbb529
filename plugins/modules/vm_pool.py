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
  - With hypervisors registered in the store (M(vman.lifecycle.vm_hypervisor)), the new VMs
    of every flavor without O(flavors[].hypervisor) are placed across them, the whole batch
    together, each VM where its memory, vCPUs, disk, kind (the flavor's O(flavors[].backend)),
    C(spec.arch), C(spec.domain_type) and O(flavors[].labels) fit with O(headroom), on the
    host that keeps the cluster most balanced; VMs sharing a group of C(spec.anti_affinity)
    go to different hosts. The host is stored as the VM's C(hypervisor) (and so the
    C(hypervisor_<host>) group of the P(vman.lifecycle.fleet#inventory) inventory). When the
    batch does not fit, nothing is created and the error names the VM and, per host, why.
    Without registered hypervisors the fill does not place.
  - O(state=claimed) atomically hands one C(preallocated) VM of O(flavor) to O(owner)
    (status C(ready)) and returns it. Concurrent claims never get the same VM. With no
    preallocated VM left the task fails with a clear message. Every run claims another VM.
  - O(state=claimed) with O(claims) hands one C(preallocated) VM to the owner of every item,
    all in one call and one store transaction (much faster than one task per claim). It is
    all or nothing - when a flavor has fewer preallocated VMs than the batch asks for, nothing
    is claimed and the error says, per flavor short, how many VMs were wanted and how many are
    available. As a single claim, every run claims new VMs (a claim is not idempotent; run it
    once per request, for example with C(run_once) or a C(when) on the previous result).
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Computes the deficit, or the VM that would be claimed, and writes nothing.
  diff_mode:
    support: partial
    description:
      - With O(claims), the diff shows the status and owner of every VM claimed, before and
        after (no spec). Otherwise the result lists the VMs created or claimed.
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
        description:
          - Hypervisor host recorded on the new VMs.
          - Unset, and hypervisors are registered (M(vman.lifecycle.vm_hypervisor)), the new
            VMs are placed on them (see O(headroom)).
        type: str
      labels:
        description:
          - "Labels the hypervisors of this flavor's new VMs must carry, for example
            C({site: a}) (placement only)."
        type: dict
  headroom:
    description:
      - How placement keeps room for a failed host, when it places new VMs (flavors without
        O(flavors[].hypervisor), with hypervisors registered).
      - "V(n+1): per hypervisor kind, should any one enabled host with guests fail, the
        memory of its guests must fit in the free memory of the other enabled hosts of that
        kind, summed (an aggregate test on memory; the guests are not packed one by one).
        A kind with a single host cannot keep it while it carries guests."
      - V(none) - no headroom.
    type: str
    choices: ["n+1", "none"]
    default: "n+1"
  allocator_command:
    description:
      - An external allocator, as a list (the program and its arguments; run without a
        shell), in place of the built-in placement, in the spirit of Ganeti's iallocator.
      - 'It reads on stdin C({"version": 1, "request": {"type": "allocate", "headroom": ...},
        "hosts": [...], "vms": [...]}) and prints C({"placement": {"<vm>": "<host>"}}).'
      - Its answer is checked like user input - every new VM placed exactly once, on a
        registered hypervisor where it fits by the built-in rules; otherwise the task fails
        naming the VM and the reason, and nothing is created.
      - It runs inside the fill's store transaction, so other fills wait for it.
    type: list
    elements: str
  allocator_timeout:
    description: Seconds the O(allocator_command) may take.
    type: int
    default: 60
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
    description:
      - The user who gets the VM, with O(state=claimed).
      - Mutually exclusive with O(claims).
    type: str
  claims:
    description:
      - A batch of claims, with O(state=claimed) - one VM to each item's O(claims[].owner),
        of the item's O(claims[].flavor) (default O(flavor)), in one transaction, all or
        nothing. An owner may appear several times, for several VMs.
      - The VMs are returned in RV(vms) in the order of the items.
      - An empty list claims nothing (not changed).
    type: list
    elements: dict
    suboptions:
      owner:
        description: The user who gets this VM.
        type: str
        required: true
      flavor:
        description: Flavor of this VM (default O(flavor)).
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

- name: A course starts - one small server per student and a large one for the teacher
  vman.lifecycle.vm_pool:
    state: claimed
    flavor: small
    claims:
      - owner: alice
      - owner: bob
      - owner: carol
      - owner: teacher
        flavor: large
  delegate_to: localhost
  run_once: true
  register: course

- name: The students' VMs, as fleet inventory hosts
  ansible.builtin.debug:
    msg: "{{ course.vms | map(attribute='host') | list }}"
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
placement:
  description: How many new VMs of each flavor were placed (or would be, in check mode) on
    each hypervisor; empty when nothing was placed.
  returned: when O(state=present)
  type: dict
  sample: {"small": {"dom0a": 2, "dom0b": 1}}
vm:
  description: The VM claimed (status C(ready), owner set), with C(netconfs) by kind and
    C(host), its host name in the P(vman.lifecycle.fleet#inventory) inventory.
  returned: when O(state=claimed) without O(claims)
  type: dict
vms:
  description: The VMs claimed by O(claims), in the order of its items, each as RV(vm)
    (status C(ready), C(owner), C(netconfs) by kind, C(host)); secrets are removed from
    their specs. In check mode, the VMs that would be claimed.
  returned: when O(state=claimed) with O(claims)
  type: list
  elements: dict
diff:
  description: Per VM name claimed by O(claims), its C(status) and C(owner) before and after.
  returned: with O(claims) in diff mode
  type: dict
  sample: {"before": {"3f2c...": {"status": "preallocated", "owner": null}},
           "after": {"3f2c...": {"status": "ready", "owner": "alice"}}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils import _pool
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import hide_spec_secrets
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
            labels=dict(type="dict"),
        )),
        headroom=dict(type="str", choices=["n+1", "none"], default="n+1"),
        allocator_command=dict(type="list", elements="str"),
        allocator_timeout=dict(type="int", default=60),
        netconf_pool=dict(type="str"),
        netconf_kinds=dict(type="list", elements="str", choices=list(NETCONF_KINDS),
                           default=list(NETCONF_KINDS)),
        flavor=dict(type="str"),
        owner=dict(type="str"),
        claims=dict(type="list", elements="dict", options=dict(
            owner=dict(type="str", required=True),
            flavor=dict(type="str"),
        )),
        actor=dict(type="str", choices=list(lc.ACTORS), default=lc.USER),
        who=dict(type="str", default="ansible"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ("flavors",)),
                                        ("state", "claimed", ("owner", "claims"), True)],
                           required_by={"owner": ("flavor",)},
                           mutually_exclusive=[("owner", "claims")])
    hide_spec_secrets(module, *[f.get("spec") for f in module.params["flavors"] or ()])
    p = module.params
    if p["claims"] is not None and p["state"] != "claimed":
        module.fail_json(msg="claims is only used with state=claimed")
    try:
        with open_store(p["store"]) as store:
            if p["state"] == "present":
                result, warnings = _pool.fill(store, p["flavors"], p["netconf_pool"],
                                              p["netconf_kinds"], who=p["who"], check=module.check_mode,
                                              headroom=p["headroom"],
                                              allocator_command=p["allocator_command"],
                                              allocator_timeout=p["allocator_timeout"])
            elif p["claims"] is not None:
                result, warnings = _pool.claim_batch(store, p["claims"], flavor=p["flavor"],
                                                     actor=p["actor"], who=p["who"],
                                                     check=module.check_mode)
                if not module._diff:
                    result.pop("diff")
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
