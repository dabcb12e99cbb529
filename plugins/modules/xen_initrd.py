#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_initrd
short_description: Build the dracut initrds of Xen guests, one per kernel installed on the host
version_added: 0.1.0
description:
  - For every kernel installed on the Xen host (a C(/lib/modules/<version>) directory with a
    C(/boot/vmlinuz-<version>)), or only for the kernels in O(kernels), builds
    C(<dest_dir>/initrd.img-<version>) with C(dracut), including the dracut modules in O(modules)
    and passing O(extra_flags).
  - Beside each initrd, C(initrd.img-<version>.inputs) records the inputs it was built from (the
    kernel version, the SHA-256 of the kernel file, the C(dracut --version), the module list,
    the extra flags and the extra files). An initrd is rebuilt only when one of these changed
    (or with O(force)), so a second run with the same inputs builds nothing.
  - Initrds (and their records) of kernels that are no longer installed are removed. An initrd
    of a kernel that is not installed and has no record was not built by this module and is
    left alone (reported with C(changed=false)).
  - With O(hooks=true), hooks in C(/etc/kernel/postinst.d) and C(/etc/kernel/postrm.d) build the
    initrd of a kernel installed later by the package manager (with the same inputs record, so
    the next run does not build it again) and remove the initrd of a removed kernel. With
    O(hooks=false) these two hooks are removed when present.
  - Each initrd is built into a temporary file in O(dest_dir) and renamed into place; a failed
    build leaves the previous initrd untouched.
  - The default O(modules) is the C(xen_vman_dracut_modules) default of the C(xen_vman) role with
    one deliberate difference, C(network-legacy) instead of C(network). On Debian 12, dracut's
    C(network) module picks a network backend with which an NFS root does not come up in a domU.
  - When C(iscsi) is among O(modules), C(/lib/open-iscsi/startup-checks.sh) is added to the
    initrd when the host has it (Debian 12's open-iscsi units need it; dracut's C(iscsi) module
    misses it).
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The initrd and hook paths that would be built, written or removed.
options:
  modules:
    description:
      - Dracut modules to include (C(xen_vman_dracut_modules)), passed as C(dracut --modules).
      - Each must exist in C(/usr/lib/dracut/modules.d); the module fails naming the missing
        ones before anything is built.
      - C(console-setup) (in the default list, as in the role) needs C(/bin/setupcon) from the
        Debian package C(console-setup); without it the module fails before building, naming
        the package.
    type: list
    elements: str
    default: [nfs, network-legacy, base, bash, systemd, terminfo, shutdown, kernel-modules,
              kernel-network-modules, console-setup, systemd-initrd, dracut-systemd]
  extra_flags:
    description:
      - Extra flags for dracut (C(xen_vman_dracut_extra_flags)), one string split like a POSIX
        shell would (quotes group words) but never run through a shell.
      - C(--kver), C(--force), C(--modules) and C(--install) are set by the module and rejected here.
    type: str
    default: ''
  install_items:
    description:
      - Extra files to put into the initrds (dracut's C(install_items), passed as C(--install)).
    type: list
    elements: path
    default: []
  dest_dir:
    description: Directory of the initrds.
    type: path
    default: /etc/xen
  kernels:
    description:
      - Build only for these kernel versions (each must be installed). Default all installed kernels.
      - Initrds of kernels that are no longer installed are removed either way.
    type: list
    elements: str
  hooks:
    description:
      - Install the kernel postinst/postrm hooks C(zz-vman-xen-initrd) (V(true)) or remove them (V(false)).
    type: bool
    default: false
  force:
    description: Rebuild every initrd even when its inputs did not change.
    type: bool
    default: false
  build_timeout:
    description: Seconds one dracut run may take before it is stopped and the module fails.
    type: int
    default: 3600
  dracut_path:
    description: Path of the C(dracut) binary; found on C(PATH) and in the sbin directories when not given.
    type: path
notes:
  - Dracut is slow; on an emulated host one full initrd can take many minutes. Runs with
    unchanged inputs only read the kernel files and C(dracut --version).
seealso:
  - module: vman.lifecycle.xen_units
"""

EXAMPLES = r"""
- name: Guest initrds for every installed kernel, kept up to date by kernel hooks
  vman.lifecycle.xen_initrd:
    modules: "{{ xen_vman_dracut_modules }}"
    extra_flags: "{{ xen_vman_dracut_extra_flags }}"
    dest_dir: /etc/xen
    hooks: true

- name: An initrd that can boot an iSCSI root
  vman.lifecycle.xen_initrd:
    modules: [iscsi, network-legacy, base, bash, systemd, kernel-modules, kernel-network-modules,
              systemd-initrd, dracut-systemd]
    extra_flags: --add-drivers "xen-blkfront xen-netfront"

- name: Which initrds would be built or removed
  vman.lifecycle.xen_initrd:
  check_mode: true
  diff: true
"""

RETURN = r"""
initrds:
  description: One entry per initrd that exists or should exist, sorted by kernel version.
  returned: always
  type: list
  elements: dict
  contains:
    kernel:
      description: Kernel version.
      type: str
      sample: 6.1.0-28-amd64
    path:
      description: Path of the initrd.
      type: str
      sample: /etc/xen/initrd.img-6.1.0-28-amd64
    changed:
      description: Whether it was (or in check mode would be) built or removed.
      type: bool
    action:
      description: V(build), V(remove) or V(none).
      type: str
    reason:
      description:
        - Why, for example V(missing), V(forced), V(up to date), V(kernel no longer installed), or
          C(changed) followed by the inputs that changed (C(modules), C(extra_flags), C(kernel file) ...).
      type: str
hooks:
  description: Kernel hook files that were (or would be) written or removed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the hook.
      type: str
      sample: /etc/kernel/postinst.d/zz-vman-xen-initrd
    state:
      description: V(present) when written, V(absent) when removed.
      type: str
    changed:
      description: Always V(true) (only changed hooks are listed).
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils import _dracut
from ansible_collections.vman.lifecycle.plugins.module_utils._units import find_binary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            modules=dict(type="list", elements="str", default=list(_dracut.DEFAULT_MODULES)),
            extra_flags=dict(type="str", default=""),
            install_items=dict(type="list", elements="path", default=[]),
            dest_dir=dict(type="path", default="/etc/xen"),
            kernels=dict(type="list", elements="str"),
            hooks=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            build_timeout=dict(type="int", default=3600),
            dracut_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    with errors_to_fail_json(module):
        manager = _dracut.InitrdManager(
            modules=p["modules"], extra_flags=p["extra_flags"], dest_dir=p["dest_dir"],
            kernels=p["kernels"], hooks=p["hooks"], force=p["force"],
            items=p["install_items"],
            dracut=p["dracut_path"] or find_binary("dracut", "/usr/bin/dracut"),
            build_timeout=p["build_timeout"], check_mode=module.check_mode)
        result, diff = manager.apply()
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
