#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: guest
short_description: Define, start, stop, suspend and delete guests of any hypervisor kind
version_added: 0.1.0
description:
  - Brings a batch of guests to their desired power state, each through the backend of its
    kind (C(lxc), C(xen), C(libvirt)), in one task. Runs on the hypervisor host (delegate the
    task to it); guests of several kinds may be mixed in one call.
  - For each guest the module reads its state, plans the verbs that reach the desired state
    (define, start, stop, suspend, resume, delete), runs them in order, and reads the state
    again. A guest already in its state is left alone, so a second run changes nothing.
  - C(lxc) containers are made by the logic of M(vman.lifecycle.lxc_guest); suspend freezes
    them (C(lxc-freeze)), resume thaws them. C(xen) domains run as C(vm@<org>-<name>.service)
    units where the host has them (as M(vman.lifecycle.xen_units) installs them), else by C(xl)
    directly; suspend is C(xl save), resume C(xl restore) (not under the units). C(libvirt)
    domains are defined from their domain XML; suspend is libvirt's managed save.
  - The first guest that fails stops the task; the error names the guest, its kind and the
    step, and RV(guests) holds the results of the guests before it.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    support: full
    description: Reads every guest's state and returns the planned actions and states;
      changes nothing. A Xen guest's xl.cfg that would be rewritten is not predicted.
  diff_mode:
    support: full
    description: The state of every guest before and after, as one mapping of guest names.
options:
  guests:
    description: The guests, in the order they are handled.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The guest's name; with O(guests[].org) a Xen domain is C(<org>-<name>). A
            container or a libvirt domain is called O(guests[].name).
        type: str
        required: true
      kind:
        description: The guest's hypervisor kind.
        type: str
        required: true
        choices: [lxc, xen, libvirt]
      org:
        description: The guest's organisation (the lifecycle store's C(org)); required for
          a Xen guest that is defined here.
        type: str
      state:
        description:
          - V(present) defines a missing guest (powered off) and leaves an existing one as it is.
          - V(running) defines it when missing, starts a stopped one, resumes a suspended one.
          - V(stopped) defines it when missing, stops a running one cleanly within
            O(guests[].timeout) seconds and then forces it off; a suspended guest is resumed
            first so that it shuts down cleanly.
          - V(suspended) saves a running guest's memory and stops it using CPU (starting it
            first when needed); V(running) brings it back where it was.
          - V(absent) deletes the guest, stopping it first (see O(guests[].keep_storage)).
        type: str
        choices: [present, running, stopped, suspended, absent]
        default: present
      keep_storage:
        description:
          - With V(true), V(absent) keeps the guest's disks. An LXC container's root file
            system is the container itself, so the container is kept too, stopped.
          - With V(false) the disks go as well (the container is destroyed, a libvirt domain's
            writable disks are deleted (storage volumes, or files of a local URI), a Xen
            domain's NFS root directory on this host is removed (iSCSI LUNs and manual roots
            are never removed)).
        type: bool
        default: true
      timeout:
        description: Seconds a clean shutdown may take before the guest is forced off
          (default the backend's, see O(backends)).
        type: int
      spec:
        description:
          - What the guest is defined from when it does not exist (for Xen, every run
            renders its xl.cfg from it). C(lxc) an entry of
            O(vman.lifecycle.lxc_guest#module:containers) (keys of other kinds, such as a
            store spec's C(memory), are ignored); C(xen) a VM entry of
            O(vman.lifecycle.xen_domain#module:vms); C(libvirt) a dict with the key C(xml), the
            domain XML, defined under O(guests[].name).
          - Values of secret-named keys (C(password), C(spicepasswd) ...) are never shown.
        type: dict
      netconfs:
        description:
          - The guest's network configs by kind (the fleet inventory's C(vman_netconfs)). The
            C(vm) netconf's IPv4 address is the LXC container's C(ip) and the Xen domain's
            interface when the spec has none.
        type: dict
  backends:
    description:
      - The host settings of each kind, a dict keyed by kind. An unknown setting is an
        error naming it.
      - C(lxc) C(lxc_path), C(settings_dir), C(host_id), C(production), C(force_snapshot),
        C(stop_timeout), C(start_timeout), and defaults of the container entries (C(defaults),
        or flat, C(profile_type), C(from_container), C(bridge), C(network), C(gateway),
        C(users) ...).
      - C(xen) C(config_path), C(manager) (V(auto) the units where the host has them, else
        C(xl); V(systemd) installs or updates the units first; V(xl)), C(defaults) (those of
        M(vman.lifecycle.xen_domain)), C(prefix) (of the interface made from a netconf),
        C(start_timeout), C(stop_timeout), C(unit_path), C(save_dir), C(host_kernel);
        C(image), C(tarball) and C(mirror) are accepted and left to M(vman.lifecycle.vm_rootfs).
      - C(libvirt) C(uri) (default C(qemu:///system)) and C(stop_timeout).
    type: dict
    default: {}
notes:
  - A kind is chosen in one place, the backend registry of the collection
    (C(plugins/module_utils/_backends)); a playbook never needs a condition on the kind.
"""

EXAMPLES = r"""
- name: Power on the guests of this host, whatever their kind
  vman.lifecycle.guest:
    backends:
      lxc: {lxc_path: /var/lib/lxc, profile_type: dir, from_container: base, users: []}
      libvirt: {uri: "qemu:///system"}
    guests:
      - {name: web-1, kind: lxc, state: running, spec: {ip: 10.5.0.21}}
      - {name: db-1, kind: libvirt, state: running}

- name: One VM of the fleet inventory, to the step's state
  vman.lifecycle.guest:
    backends:
      lxc: "{{ lifecycle_lxc }}"
      xen: "{{ lifecycle_xen }}"
      libvirt: {uri: "{{ lifecycle_libvirt_uri }}"}
    guests:
      - name: "{{ vman_name }}"
        org: "{{ vman_org }}"
        kind: "{{ vman_backend }}"
        state: stopped
        timeout: 120
        spec: "{{ vman_spec }}"
        netconfs: "{{ vman_netconfs }}"
  delegate_to: "{{ vman_hypervisor }}"

- name: Put a warm guest to sleep (LXC freeze, libvirt managed save, xl save)
  vman.lifecycle.guest:
    guests: [{name: pool-7, kind: lxc, state: suspended}]

- name: Purge a guest with its disks
  vman.lifecycle.guest:
    backends: {libvirt: {uri: "qemu:///system"}}
    guests: [{name: old-vm, kind: libvirt, state: absent, keep_storage: false}]
"""

RETURN = r"""
guests:
  description: One entry per guest, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: O(guests[].name).
      type: str
    kind:
      description: O(guests[].kind).
      type: str
    guest:
      description: The guest's name on its host (a Xen domain's C(<org>-<name>)).
      type: str
      sample: demo-vm01
    state_before:
      description: The state found (C(running), C(stopped), C(suspended), C(absent), or a
        kind's own word such as libvirt's C(paused)).
      type: str
    state:
      description: The state afterwards (planned in check mode).
      type: str
    actions:
      description: The verbs run (planned in check mode), empty when nothing changed.
      type: list
      elements: str
      sample: [define, start]
    changed:
      description: Whether this guest changed.
      type: bool
    warnings:
      description: What the backend left undone (a disk it could not delete).
      type: list
      elements: str
      returned: when there are any
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import hide_spec_secrets
from ansible_collections.vman.lifecycle.plugins.module_utils._backends import KINDS
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._guest import STATES, GuestConverger


def main():
    module = AnsibleModule(
        argument_spec=dict(
            guests=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                kind=dict(type="str", required=True, choices=list(KINDS)),
                org=dict(type="str"),
                state=dict(type="str", default="present", choices=list(STATES)),
                keep_storage=dict(type="bool", default=True),
                timeout=dict(type="int"),
                spec=dict(type="dict"),
                netconfs=dict(type="dict"),
            )),
            backends=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    hide_spec_secrets(module, p["backends"], *[g.get("spec") for g in p["guests"]])
    results = []
    try:
        converger = GuestConverger(p["backends"], check_mode=module.check_mode)
        results, diff = converger.converge(p["guests"])
    except VmanError as exc:
        module.fail_json(msg=str(exc), guests=getattr(exc, "results", results), **exc.to_result())
    out = {"changed": any(r["changed"] for r in results), "guests": results}
    if module._diff:
        out["diff"] = diff
    for result in results:
        for warning in result.get("warnings", ()):
            module.warn(warning)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
