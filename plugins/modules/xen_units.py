#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_units
short_description: Install the systemd units that run Xen VMs (vm@, vm_iscsi@, vm_mount@)
version_added: 0.1.0
description:
  - Installs C(vm@.service) (starts and stops the domain C(<org>-<name>) from
    C(<config_path>/<org>-<name>.cfg)), C(vm_iscsi@.service) (login and logout of the VM's iSCSI
    root), C(vm_mount@.service) (mounts the VM's root at C(<mount_base>/<org>-<name>) while the
    VM is off) and C(vm_prepare.service) (points O(initrd_link) at the running kernel's initrd
    before any VM starts, then runs O(prepare_commands)), plus the helper scripts they call.
  - C(vm@) requires C(vm_iscsi@) of the same instance; C(vm_iscsi@) only acts when the marker
    file C(<config_path>/<org>-<name>.iscsi) exists (an environment file with
    C(VMAN_ISCSI_TARGET) and C(VMAN_ISCSI_PORTAL)), otherwise systemd skips it silently.
    C(vm_mount@) reads C(VMAN_ROOT_SOURCE) and C(VMAN_ROOT_FSTYPE) from
    C(<config_path>/<org>-<name>.root) (an iSCSI LUN's device or an NFS export) and conflicts
    with C(vm@); a device under C(/dev) is waited for up to O(iscsi_login_timeout) seconds before it is
    mounted (helper C(vm-mount)).
  - C(ExecStop) of C(vm@) shuts the domain down and returns only once C(xl domid) no longer
    finds it; when the shutdown does not finish in time the domain is destroyed.
  - Every unit text is checked with C(systemd-analyze verify) before anything is written; when
    it is rejected the module fails and installs nothing. Only changed files are written
    (temporary file and rename) and C(systemctl daemon-reload) runs only when a unit changed.
  - Options named like the C(xen_vman) role variables without the C(xen_vman_) prefix.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One before/after entry per changed file.
options:
  unit_path:
    description: Directory the unit files are written to.
    type: path
    default: /etc/systemd/system
  helper_path:
    description: Directory of the helper scripts C(vm-stop), C(vm-iscsi) and C(vm-mount) the units call.
    type: path
    default: /usr/local/libexec/vman
  vm_config_path:
    description: Directory of the xl configuration files C(<org>-<name>.cfg) and the per-VM marker files.
    type: path
    default: /etc/xen/vms
  mount_base:
    description: Directory under which C(vm_mount@) mounts a VM's root (C(<mount_base>/<org>-<name>)).
    type: path
    default: /mnt/vms
  initrd_link:
    description:
      - Symlink that C(vm_prepare.service) points at C(<initrd_link>-<running kernel release>).
    type: path
    default: /etc/xen/initrd.img
  xl_path:
    description: Path of the C(xl) binary; found on C(PATH) and in the sbin directories when not given.
    type: path
  iscsiadm_path:
    description: Path of the C(iscsiadm) binary; found on C(PATH) and in the sbin directories when not given.
    type: path
  start_timeout:
    description: C(TimeoutStartSec) of C(vm@) in seconds.
    type: int
    default: 15
  stop_timeout:
    description:
      - C(TimeoutStopSec) of C(vm@) in seconds. The domain is destroyed when a clean shutdown
        has not finished 35 seconds before this limit (half of it for limits up to 70 seconds).
    type: int
    default: 300
  iscsi_login_timeout:
    description: C(TimeoutStartSec) of C(vm_iscsi@) in seconds.
    type: int
    default: 40
  iscsi_logout_timeout:
    description: C(TimeoutStopSec) of C(vm_iscsi@) in seconds.
    type: int
    default: 40
  mount_timeout:
    description:
      - Seconds C(vm_mount@) may take to mount; its C(TimeoutStartSec) is this plus
        O(iscsi_login_timeout) (the wait for an iSCSI root's device comes first).
    type: int
    default: 20
  umount_timeout:
    description: C(TimeoutStopSec) of C(vm_mount@) in seconds.
    type: int
    default: 20
  prepare_timeout:
    description:
      - C(TimeoutStartSec) of C(vm_prepare.service) in seconds (the C(xen_vman) role's
        C(xen_vman_global_preparations_timeout)).
    type: int
    default: 300
  prepare_commands:
    description:
      - Commands C(vm_prepare.service) runs after pointing O(initrd_link), once per boot and
        before any VM starts (the C(xen_vman) role's C(xen_vman_additional_global_prepare)).
      - Each is a list of arguments, or one string that is split into words as a shell would
        (quotes honoured). No shell runs them, so a string with shell syntax (C(|), C(>),
        C(;), C($), C(*) ...) is refused; put such code into a script and give its path.
      - The first word is an absolute path or a command name that systemd finds on its own
        search path. Every command must succeed; a failing one stops the rest and marks
        C(vm_prepare.service) failed (the VMs still start, C(vm@) only wants it).
    type: list
    elements: raw
    default: []
  daemon_reload:
    description:
      - When a unit changed, V(auto) runs C(systemctl daemon-reload) only if systemd is PID 1
        (C(/run/systemd/system) exists), V(always) runs it regardless, V(never) never does.
    type: str
    choices: [auto, always, never]
    default: auto
notes:
  - Needs C(systemd-analyze) on the host. Verification fails when a binary the units call
    (O(xl_path), C(mount), ...) does not exist there.
seealso:
  - module: vman.lifecycle.xen_domain
"""

EXAMPLES = r"""
- name: Install the VM units with the role's timeouts
  vman.lifecycle.xen_units:
    start_timeout: "{{ xen_vman_start_timeout }}"
    stop_timeout: "{{ xen_vman_stop_timeout }}"
    iscsi_login_timeout: "{{ xen_vman_iscsi_login_timeout }}"
    iscsi_logout_timeout: "{{ xen_vman_iscsi_logout_timeout }}"
    mount_timeout: "{{ xen_vman_mount_timeout }}"
    umount_timeout: "{{ xen_vman_umount_timeout }}"
    vm_config_path: "{{ xen_vman_vm_config_path }}"

- name: Show what would change
  vman.lifecycle.xen_units:
    stop_timeout: 600
  check_mode: true
  diff: true
"""

RETURN = r"""
files:
  description: Every file the module manages, units first in a fixed order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the file.
      type: str
      sample: /etc/systemd/system/vm@.service
    kind:
      description: V(unit) or V(helper).
      type: str
    changed:
      description: Whether the file was (or in check mode would be) written.
      type: bool
daemon_reloaded:
  description: Whether C(systemctl daemon-reload) ran (or in check mode would run).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_diff
from ansible_collections.vman.lifecycle.plugins.module_utils import _units

TIMEOUTS = ("start_timeout", "stop_timeout", "iscsi_login_timeout", "iscsi_logout_timeout",
            "mount_timeout", "umount_timeout", "prepare_timeout")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit_path=dict(type="path", default="/etc/systemd/system"),
            helper_path=dict(type="path", default="/usr/local/libexec/vman"),
            vm_config_path=dict(type="path", default=_units.XEN_CONFIG_PATH),
            mount_base=dict(type="path", default="/mnt/vms"),
            initrd_link=dict(type="path", default="/etc/xen/initrd.img"),
            xl_path=dict(type="path"),
            iscsiadm_path=dict(type="path"),
            start_timeout=dict(type="int", default=15),
            stop_timeout=dict(type="int", default=300),
            iscsi_login_timeout=dict(type="int", default=40),
            iscsi_logout_timeout=dict(type="int", default=40),
            mount_timeout=dict(type="int", default=20),
            umount_timeout=dict(type="int", default=20),
            prepare_timeout=dict(type="int", default=300),
            prepare_commands=dict(type="list", elements="raw", default=[]),
            daemon_reload=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    with errors_to_fail_json(module):
        settings = _units.settings(
            config_path=p["vm_config_path"], helper_path=p["helper_path"],
            mount_base=p["mount_base"], initrd_link=p["initrd_link"],
            xl_path=p["xl_path"] or _units.find_binary("xl", _units.DEFAULTS["xl_path"]),
            iscsiadm_path=p["iscsiadm_path"] or _units.find_binary(
                "iscsiadm", _units.DEFAULTS["iscsiadm_path"]),
            prepare_commands=p["prepare_commands"], **{k: p[k] for k in TIMEOUTS})
        installer = _units.UnitInstaller(settings, p["unit_path"], check_mode=module.check_mode,
                                         daemon_reload=p["daemon_reload"])
        result, diffs = installer.apply()
    if module._diff:
        result["diff"] = redact_diff(diffs)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
