#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_hypervisor
short_description: Register the hypervisors that placement may put VMs on, and measure them
version_added: 0.1.0
description:
  - Keeps the hypervisors of the lifecycle store, the hosts that placement chooses from
    (M(vman.lifecycle.vm_pool) places new VMs on them, M(vman.lifecycle.vm_placement_info)
    reports their load), in one call for any number of them. Each has a kind, how to reach
    it, labels that VMs may require (C(site), C(rack), C(class)), and its capacity.
  - With O(refresh=true) the hosts are measured on the hosts themselves, all at the same time
    within O(refresh_timeout) seconds; the capacity and current use are written to the store
    in one transaction. A Xen host runs C(xl info) and C(xl list), an LXC host
    C(lxc-ls --running), C(grep) of its running containers' memory and cpuset limits,
    C(cat /proc/meminfo), C(nproc) and C(uname -m) (on the controller, or through C(ssh));
    a libvirt host is read through a read-only libvirt connection (C(getInfo),
    C(getCapabilities), the active domains).
  - A host that fails or does not answer in time is marked C(unreachable), with the reason,
    and one warning names it; placement leaves it out until a refresh reaches it again. Its
    capacity is never guessed.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Reports what would be registered, changed, removed or measured (the hosts
      are still measured, read-only); nothing is written to the store.
  diff_mode:
    support: full
    description: Per hypervisor name its row before and after (no timestamps).
options:
  hypervisors:
    description:
      - The hypervisors to register, change or remove. Keys left out keep their stored value.
      - Empty with O(refresh=true), every registered hypervisor is measured.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the hypervisor; the C(hypervisor) of the VMs placed on it and the
          C(hypervisor_<name>) group of the fleet inventory.
        type: str
        required: true
      state:
        description: Register or change it (V(present)) or remove it (V(absent)); a hypervisor
          that still carries VMs of the store is not removed (the task fails and names them).
        type: str
        choices: [present, absent]
        default: present
      kind:
        description: The hypervisor kind. Required to register a new one.
        type: str
        choices: [xen, libvirt, lxc]
      access:
        description:
          - How to reach it for a refresh.
          - C(xen) and C(lxc) - C(ssh) (C([user@]host), a C(Host) of the ssh configuration;
            C(BatchMode=yes), so a host that asks for a password fails instead of prompting)
            and C(ssh_args) (a list of extra ssh options such as C([-p, 2222])); without
            C(ssh) the commands run on the controller. C(lxc) also C(lxc_path) (default
            C(/var/lib/lxc)).
          - C(libvirt) - C(uri) (default C(qemu:///system); C(qemu+ssh://root@kvm1/system)
            for a remote host).
        type: dict
      labels:
        description: Labels a VM may require (C(site=a)), a mapping of names to strings.
        type: dict
      capacity:
        description:
          - Declared capacity. C(vcpu_ratio) (vCPU overcommit, default 1.0),
            C(reserved_memory) (MiB kept back from guests, default 0) and C(disk) (MiB of
            guest storage; without it disk is not checked) are only declared.
          - C(memory) (MiB for guests), C(vcpus) (physical CPUs), C(arches) and
            C(domain_types) are measured by a refresh, which replaces declared values.
        type: dict
      enabled:
        description: V(false) takes it out of placement (state C(disabled)) and a refresh
          leaves it alone; V(true) puts a disabled one back. Unset keeps the state.
        type: bool
  refresh:
    description: Measure the capacity and use of the hypervisors named in O(hypervisors)
      (all registered ones when empty) after registering them.
    type: bool
    default: false
  refresh_timeout:
    description: Seconds the whole refresh may take; every command also gets it as its own
      timeout. A host not done by then is marked unreachable.
    type: int
    default: 30
notes:
  - Placement counts, per host, the larger of the measured use and the sum over the VMs the
    store has placed there (C(spec.memory), C(spec.vcpus), C(spec.disk)), so VMs placed since
    the last refresh and VMs that do not run now still hold their place.
  - A Xen host's C(memory) is C(free_memory) plus the running domUs (dom0's share left
    out); an LXC host's is C(MemTotal) and its use the configured limits of the running
    containers (one without a memory limit is listed in C(use.unlimited)); disk is never
    measured.
"""

EXAMPLES = r"""
- name: Register the hypervisors and measure them
  vman.lifecycle.vm_hypervisor:
    hypervisors:
      - name: dom0a
        kind: xen
        access: {ssh: root@dom0a.example.com}
        labels: {site: a, rack: r1}
        capacity: {vcpu_ratio: 4, reserved_memory: 1024}
      - name: kvm1
        kind: libvirt
        access: {uri: "qemu+ssh://root@kvm1.example.com/system"}
        labels: {site: b}
      - name: lxchost
        kind: lxc
        labels: {site: a}
    refresh: true
  delegate_to: localhost

- name: Refresh every registered hypervisor (for example from a timer job)
  vman.lifecycle.vm_hypervisor:
    refresh: true
    refresh_timeout: 20
  delegate_to: localhost

- name: Take a host out of placement for maintenance
  vman.lifecycle.vm_hypervisor:
    hypervisors:
      - name: dom0a
        enabled: false
  delegate_to: localhost
"""

RETURN = r"""
hypervisors:
  description: The rows of the hypervisors named (all when O(hypervisors) is empty) after the
    run - C(name), C(kind), C(access), C(labels), C(capacity), C(use), C(state)
    (C(enabled), C(unreachable), C(disabled)), C(reason) (why unreachable),
    C(refreshed_at), C(created_at), C(updated_at) (epoch seconds).
  returned: always
  type: list
  elements: dict
removed:
  description: Names of the hypervisors removed (or that would be).
  returned: always
  type: list
  elements: str
not_reached:
  description: Per hypervisor name that the refresh could not measure (now C(unreachable)),
    the reason.
  returned: always
  type: dict
  sample: {"dom0b": "no answer within 30 s"}
diff:
  description: Per hypervisor name its row before and after.
  returned: in diff mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _hypervisors
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store


def main():
    argument_spec = dict(
        hypervisors=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            kind=dict(type="str", choices=["xen", "libvirt", "lxc"]),
            access=dict(type="dict"),
            labels=dict(type="dict"),
            capacity=dict(type="dict"),
            enabled=dict(type="bool"),
        )),
        refresh=dict(type="bool", default=False),
        refresh_timeout=dict(type="int", default=30),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    p = module.params
    if p["refresh_timeout"] < 1:
        module.fail_json(msg=f"refresh_timeout = {p['refresh_timeout']}: must be 1 or more seconds")
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result, warnings = _hypervisors.apply(store, p["hypervisors"], refresh=p["refresh"],
                                                  timeout=p["refresh_timeout"],
                                                  check=module.check_mode)
    for warning in warnings:
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
