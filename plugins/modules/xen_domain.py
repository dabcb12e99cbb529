#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_domain
short_description: Converge a batch of Xen domains (xl.cfg files and power state) in one call
version_added: 0.1.0
description:
  - Renders the xl.cfg file of every VM in O(vms) from the VM variables of the C(xen_vman) role,
    merged with role-level O(defaults), compares each with the file on disk, writes only the
    changed ones (temporary file and rename), then brings each domain to its state.
  - One call handles all VMs of a host; a role passes its whole VM list at once.
  - Root storage (NFS directories, iSCSI LUNs) is never touched by this module.
  - Live state is read from C(xl list -l). When C(xl) is not installed and every VM's state is
    V(present) or V(absent), only the configuration files are managed and the power state is reported as
    V(unknown).
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One before/after entry per changed configuration file; a SPICE password is masked.
options:
  vms:
    description:
      - VM specifications, with the keys of the C(xen_vman) README under the same names
        C(org), C(name), C(description) (one line, written into the header comment), C(memory),
        C(vcpus), C(cpu_str), C(interfaces) (each with C(ip), C(ipv6),
        C(mac), C(mtu), C(bridge), C(vifname), C(xen_str), C(script)), C(connection_ip),
        C(storage_type) (V(nfs) or V(iscsi)), C(disks), C(manual_root_disk), C(filesystem),
        C(os) (C(type) and C(version)), C(boot_after_creation), C(auto_boot),
        C(builder) (V(generic) for PV, V(hvm)), C(kernel), C(initrd), C(cmdline), C(spice),
        C(spicehost), C(spiceport), C(spicepasswd), C(share_clipboard), C(spicevdagent),
        C(max_usb_redirections), C(additional_xen_options), C(auto_install), C(reinstall),
        C(iscsi_lun) (the root LUN of an iSCSI root, default C(0); tgt serves disks from LUN 1),
        C(spice_unauthenticated), and C(state) to override O(state) for one VM.
      - C(spice) without C(spicepasswd) is refused, since xl would then serve an unauthenticated
        console on C(spicehost) (every interface by default); set C(spice_unauthenticated=true)
        to ask for exactly that.
      - C(org) and C(name) must match C(^[a-z0-9][a-z0-9_.-]{0,62}$); the domain, its unit
        instance and its file are named C(<org>-<name>).
      - Every validation error names the VM, the field and the bad value.
    type: list
    elements: dict
    required: true
  defaults:
    description:
      - Role-level values, keyed by the role variable name without C(xen_vman_) and without
        C(default_), for example C(gateway) for C(xen_vman_default_gateway), C(memory) for
        C(xen_vman_default_memory), C(nfsroot_base) for C(xen_vman_nfsroot_base),
        C(iscsi_server), C(iscsi_base_wwn), C(iscsi_lun), C(vifname_prefix), C(network_script),
        C(lazy_network_bridge) (the already evaluated C(xen_vman_lazy_default_network_bridge)),
        C(additional_xen_options) (the seed's misspelling C(additonal_xen_options) is accepted).
      - A VM's own value wins over a default; C(additional_xen_options) are merged key by key.
    type: dict
    default: {}
  config_path:
    description: Directory holding one C(<org>-<name>.cfg) per domain.
    type: path
    default: /etc/xen/vms
  state:
    description:
      - V(present) writes the configuration only; V(running) also starts the domain;
        V(stopped) shuts it down (destroyed after O(shutdown_timeout)); V(absent) stops it,
        disables its unit and, with O(purge), removes its configuration file.
      - A VM's own C(state) key overrides this.
    type: str
    choices: [present, running, stopped, absent]
    default: present
  manager:
    description:
      - V(systemd) starts and stops domains through C(vm@<org>-<name>.service) (see
        the C(xen_units) module of this collection) and enables that unit exactly when the VM's C(auto_boot)
        is true; V(xl) calls C(xl create) and C(xl shutdown) directly.
    type: str
    choices: [systemd, xl]
    default: systemd
  shutdown_timeout:
    description: Seconds to wait for a clean shutdown before the domain is destroyed.
    type: int
    default: 300
  restart_on_change:
    description:
      - Restart a running domain whose configuration changed or drifted. When false the result
        only reports RV(vms[].restart_required).
    type: bool
    default: false
  purge:
    description: With V(absent), remove the configuration file too.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy of a configuration file before replacing it.
    type: bool
    default: false
  xl_path:
    description: Path of the C(xl) binary (found on C(PATH) when not given).
    type: path
  host_kernel:
    description:
      - Kernel release used for the default PV kernel C(/boot/vmlinuz-<release>) when neither
        the VM nor O(defaults) sets C(kernel). Defaults to the release running on the host.
    type: str
notes:
  - Requires the C(netaddr) Python library on the host that runs the module.
seealso:
  - module: vman.lifecycle.xen_domain_info
  - plugin: vman.lifecycle.xl_config
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Converge all VMs of this hypervisor in one task
  vman.lifecycle.xen_domain:
    state: running
    defaults:
      gateway: 10.0.0.1
      nfsroot_base: "10.0.0.2:/srv/nfs"
      vifname_prefix: web
    vms:
      - org: stuvus
        name: web01
        os: {type: debian, version: "12"}
        interfaces:
          - ip: 10.0.0.15/24
            mac: "00:16:3e:01:23:45"
            bridge: xenbr0

- name: Write configuration files only, show what would change
  vman.lifecycle.xen_domain:
    vms: "{{ xen_vman_vms }}"
    defaults: {nfsroot_base: "10.0.0.2:/srv/nfs"}
    config_path: /etc/xen/vms
  check_mode: true
  diff: true

- name: Stop and forget a VM (its root storage stays)
  vman.lifecycle.xen_domain:
    vms:
      - {org: stuvus, name: old01, os: {type: debian, version: "12"}, interfaces: [{ip: 10.0.0.9}]}
    defaults: {nfsroot_base: "10.0.0.2:/srv/nfs"}
    state: absent
    purge: true
"""

RETURN = r"""
vms:
  description: One entry per VM, in the order of O(vms).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name C(<org>-<name>).
      type: str
      sample: stuvus-web01
    changed:
      description: Whether anything changed for this VM.
      type: bool
    config_changed:
      description: Whether the configuration file was (or in check mode would be) rewritten.
      type: bool
    config_path:
      description: Path of the configuration file.
      type: str
      sample: /etc/xen/vms/stuvus-web01.cfg
    state_before:
      description: V(running), V(stopped) or V(unknown) (no C(xl) on the host).
      type: str
    state_after:
      description: State after the call (in check mode, the state it would reach).
      type: str
    domid:
      description: Domain id when running, else null.
      type: int
    drift:
      description:
        - Fields where the running domain differs from the rendered configuration
          (C(memory), C(vcpus), C(vifs)), each with C(config) and C(running).
      type: dict
      sample: {memory: {config: 2048, running: 1024}}
    restart_required:
      description: The domain runs with an older configuration and needs a restart.
      type: bool
    backup_file:
      description: Backup of the replaced file, when O(backup) was set.
      type: str
      returned: when a backup was made
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json, hide_vm_secrets, require
from ansible_collections.vman.lifecycle.plugins.module_utils import _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_diff
from ansible_collections.vman.lifecycle.plugins.module_utils._units import XEN_CONFIG_PATH, Systemctl
from ansible_collections.vman.lifecycle.plugins.module_utils._xen_domain import DomainConverger
from ansible_collections.vman.lifecycle.plugins.module_utils._xl import XlToolstack


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vms=dict(type="list", elements="dict", required=True),
            defaults=dict(type="dict", default={}),
            config_path=dict(type="path", default=XEN_CONFIG_PATH),
            state=dict(type="str", default="present", choices=list(_spec.STATES)),
            manager=dict(type="str", default="systemd", choices=["systemd", "xl"]),
            shutdown_timeout=dict(type="int", default=300),
            restart_on_change=dict(type="bool", default=False),
            purge=dict(type="bool", default=False),
            backup=dict(type="bool", default=False),
            xl_path=dict(type="path"),
            host_kernel=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    require(module, _spec.HAS_NETADDR, "netaddr")
    p = module.params
    hide_vm_secrets(module)
    with errors_to_fail_json(module):
        specs = _spec.normalize_all(p["vms"], p["defaults"], p["host_kernel"] or os.uname().release)
        converger = DomainConverger(
            config_path=p["config_path"],
            toolstack=XlToolstack(p["xl_path"]),
            systemctl=Systemctl() if p["manager"] == "systemd" else None,
            manager=p["manager"],
            check_mode=module.check_mode,
            shutdown_timeout=p["shutdown_timeout"],
            restart_on_change=p["restart_on_change"],
            purge=p["purge"],
            backup=p["backup"],
        )
        results, diffs = converger.converge(specs, p["state"])
    result = {"changed": any(r["changed"] for r in results), "vms": results}
    if module._diff:
        # both sides redacted again here: the old file may hold a password the new spec lacks
        result["diff"] = redact_diff(diffs)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
