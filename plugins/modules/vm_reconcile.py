#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_reconcile
short_description: Start and tear down the VMs of start requests
version_added: 0.1.0
description:
  - The reconciler of the start requests made with M(vman.lifecycle.vm_request). Runs on the
    hypervisor host (it drives the backend there) and needs the store (a PostgreSQL URL, or
    the SQLite file when the controller is the hypervisor host).
  - For a request with allocators, each of its C(count) devices C(<request>-<n>) is recorded,
    defined and started through the backend, waited for until its SSH port answers, its SSH
    host keys are fetched with C(ssh-keyscan) (checked against keys already stored for it,
    for example by M(vman.lifecycle.ssh_host_keys)) into O(known_hosts), it is added to the
    fleet inventory (the store's VMs, status C(ready)), the optional license hook runs, a
    marker is written inside the guest, the device is marked ready, and every allocator is put
    on the redeploy list.
  - A ready device whose boot id changed is checked for its marker; if the marker is gone the
    VM came back without its configuration and every allocator is put on the redeploy list.
    A device that vanished is created again (and its allocators redeployed).
  - For a request without allocators (and for devices beyond a lowered C(count)) the optional
    license release hook runs, the devices are removed from the inventory, stopped and deleted
    (the disk is kept unless the request says C(keep_disk=false)), then the request is
    forgotten.
  - A failed start sets the request's C(error_status) (state C(error)) and puts every
    allocator on the redeploy list. A failed teardown leaves the request in
    C(delete_failed) with the reason; both are retried by the next run.
  - Day-1 configuration of the VMs is never done here; the allocators' own playbooks do it
    when they run again (the fleet inventory's C(redeploy_<allocator>) groups).
  - Every step is one store transaction and a request is leased while it is reconciled, so two
    reconcilers never work on one request and a crash leaves a state the next run completes.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Observes the backend and returns the planned actions; changes nothing.
  diff_mode:
    support: none
    description: The actions taken are returned in RV(requests).
options:
  names:
    description: Only these requests (default every request of a configured backend).
    type: list
    elements: str
  lxc:
    description:
      - Configures the C(lxc) backend. Requests of a backend that is not configured
        (O(lxc), O(xen), O(libvirt)) are skipped.
    type: dict
    suboptions:
      lxc_path:
        description: The lxcpath of the containers.
        type: path
        default: /var/lib/lxc
      settings_dir:
        description: Per-container settings (generated address, MAC, password), files 0600.
        type: path
        default: /var/lib/vman/lxc
      host_id:
        description: Host identifier for profile names (default the host's FQDN).
        type: str
      production:
        description: Refuse snapshot (overlayfs) clones, as M(vman.lifecycle.lxc_guest) does.
        type: bool
        default: true
      defaults:
        description: Host-wide defaults of the container entries (the options of
          M(vman.lifecycle.lxc_guest)).
        type: dict
  xen:
    description:
      - Configures the C(xen) backend (the C(xen_domain) logic); the domain of device C(web-1)
        is C(<org>-web-1). Domains run as C(vm@<domain>.service) units where the host has them
        (see O(xen.manager)), else by C(xl) directly.
      - Xen guests get no marker (the reconciler has no way into them), so every restart of a
        ready Xen device puts its allocators on the redeploy list.
      - The root storage (NFS, iSCSI) of a Xen device is never removed; deleting removes the
        domain's xl.cfg.
    type: dict
    suboptions:
      config_path:
        description: Directory of the xl.cfg files.
        type: path
        default: /etc/xen/vms
      org:
        description: The C(org) of the request domains.
        type: str
        default: req
      defaults:
        description: Role-level defaults of the VM entries (the O(vman.lifecycle.xen_domain#module:defaults) option).
        type: dict
      host_kernel:
        description: Kernel release for the default PV kernel (default this host's).
        type: str
      shutdown_timeout:
        description: Seconds a clean shutdown may take before the domain is destroyed.
        type: int
        default: 60
      manager:
        description:
          - V(auto) runs the domains as C(vm@) units when PID 1 is systemd and C(vm@.service)
            is installed (by M(vman.lifecycle.xen_units) or the C(xen_vman) role), else with
            C(xl). V(systemd) installs or updates the units first; V(xl) never uses them.
        type: str
        choices: [auto, systemd, xl]
        default: auto
  libvirt:
    description:
      - Configures the C(libvirt) backend. A request's spec is a dict with the key C(xml), the domain XML; each
        device is defined from it under its own name (the XML's C(<uuid>) dropped). Its disks
        are used as the XML names them, so a request of several devices needs disks they can
        share (or a count of 1).
      - libvirt guests get no marker (the reconciler has no way into them), so every restart
        of a ready device puts its allocators on the redeploy list. Deleting with
        C(keep_disk=false) deletes the domain's writable disks.
    type: dict
    suboptions:
      uri:
        description: The libvirt connection URI.
        type: str
        default: qemu:///system
      stop_timeout:
        description: Seconds a clean shutdown may take before the domain is destroyed.
        type: int
        default: 60
  reachable:
    description:
      - When a started device counts as reachable. C(tcp) waits until O(ssh_port) answers;
        C(running) only until the backend reports it running (for guests without SSH; combine
        with O(fetch_host_keys=false)).
    type: str
    choices: [tcp, running]
    default: tcp
  known_hosts:
    description: The controller's C(known_hosts) file the devices' host keys are written to.
    type: path
  fetch_host_keys:
    description: Fetch the devices' SSH host keys with C(ssh-keyscan).
    type: bool
    default: true
  ssh_port:
    description: Port that must answer for a device to count as reachable.
    type: int
    default: 22
  reachable_timeout:
    description: Seconds to wait for a started device to become reachable.
    type: int
    default: 120
  license_load:
    description:
      - Command (argv list, no shell) run on this host when a device becomes ready, with
        E(VMAN_REQUEST), E(VMAN_DEVICE) and E(VMAN_ADDRESS) set. Must be idempotent.
    type: list
    elements: str
  license_release:
    description: Command run before a ready device is removed (same environment).
    type: list
    elements: str
  lease_ttl:
    description: Seconds another reconciler keeps away from a request this one works on.
    type: int
    default: 900
  who:
    description: Identity recorded in the events.
    type: str
    default: reconcile
"""

EXAMPLES = r"""
- name: Reconcile every LXC start request of this host
  vman.lifecycle.vm_reconcile:
    store: "{{ vman_store_url }}"
    lxc:
      lxc_path: /var/lib/lxc
      production: false
    known_hosts: /etc/ssh/ssh_known_hosts
    license_release: [/usr/local/bin/license, release]
"""

RETURN = r"""
requests:
  description:
    - One entry per request looked at, C(name), C(actions) (done, or planned in check mode),
      C(state) after the run (C(deleted) once forgotten), C(error) (null on success) and
      C(skipped) (why nothing was done, or null).
  returned: success
  type: list
  elements: dict
errors:
  description: The errors recorded on requests during this run (also warnings).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._backends import KINDS, make_backend
from ansible_collections.vman.lifecycle.plugins.module_utils._reconcile import Reconciler, ssh_keyscan
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._units import XEN_CONFIG_PATH


def main():
    argument_spec = dict(
        names=dict(type="list", elements="str"),
        lxc=dict(type="dict", options=dict(
            lxc_path=dict(type="path", default="/var/lib/lxc"),
            settings_dir=dict(type="path", default="/var/lib/vman/lxc"),
            host_id=dict(type="str"),
            production=dict(type="bool", default=True),
            defaults=dict(type="dict"),
        )),
        xen=dict(type="dict", options=dict(
            config_path=dict(type="path", default=XEN_CONFIG_PATH),
            org=dict(type="str", default="req"),
            defaults=dict(type="dict"),
            host_kernel=dict(type="str"),
            shutdown_timeout=dict(type="int", default=60),
            manager=dict(type="str", default="auto", choices=["auto", "systemd", "xl"]),
        )),
        libvirt=dict(type="dict", options=dict(
            uri=dict(type="str", default="qemu:///system"),
            stop_timeout=dict(type="int", default=60),
        )),
        reachable=dict(type="str", choices=["tcp", "running"], default="tcp"),
        known_hosts=dict(type="path"),
        fetch_host_keys=dict(type="bool", default=True),
        ssh_port=dict(type="int", default=22),
        reachable_timeout=dict(type="int", default=120),
        license_load=dict(type="list", elements="str"),
        license_release=dict(type="list", elements="str"),
        lease_ttl=dict(type="int", default=900),
        who=dict(type="str", default="reconcile"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    p = module.params
    with errors_to_fail_json(module):
        backends = {kind: make_backend(kind, p[kind], kind) for kind in KINDS if p.get(kind)}
        with open_store(p["store"]) as store:
            reconciler = Reconciler(store, backends, known_hosts=p["known_hosts"],
                                    keyscan=ssh_keyscan if p["fetch_host_keys"] else None,
                                    ssh_port=p["ssh_port"], reachable_timeout=p["reachable_timeout"],
                                    license_load=p["license_load"],
                                    license_release=p["license_release"],
                                    lease_ttl=p["lease_ttl"], who=p["who"],
                                    reachable=p["reachable"])
            results = reconciler.reconcile(p["names"], check=module.check_mode)
    errors = [f"request '{r['name']}': {r['error']}" for r in results if r["error"]]
    for error in errors:
        module.warn(error)
    module.exit_json(changed=any(r["changed"] for r in results), requests=results, errors=errors)


if __name__ == "__main__":
    main()
