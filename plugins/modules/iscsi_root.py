#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: iscsi_root
short_description: Log a batch of Xen VMs' iSCSI root LUNs in or out, and make their filesystems
version_added: 0.1.0
description:
  - For every VM in O(vms) whose C(storage_type) is V(iscsi) (a VM's own value, else the one in
    O(defaults)), acts on the VM's root target C(<iscsi_base_wwn>:<org>-<name>) on the portal
    C(<iscsi_server>:3260). Other VMs, and VMs with C(manual_root_disk), are skipped.
  - O(state=present) runs a C(sendtargets) discovery against the server and logs in (each
    bounded by O(login_timeout)); then waits at most O(device_timeout) seconds for the LUN's
    C(/dev/disk/by-path/ip-<server>:3260-iscsi-<iqn>-lun-<lun>) device. When the login does not
    finish in time it is stopped and undone, and the module fails.
  - After the login the LUN is probed with C(blkid -p). Only when it holds nothing (no
    filesystem, no partition table, no other signature) is C(mkfs.<filesystem>) run with the VM's
    C(filesystem). A LUN that holds anything is never formatted, unless the VM has
    C(reinstall=true); even then the module refuses while the device is mounted or the domain
    C(<org>-<name>) runs.
  - O(state=absent) logs out (bounded by O(logout_timeout)). A VM whose own C(state) is
    V(absent) is logged out whatever O(state) says.
  - A VM that is already logged in (respectively out) is left alone and reports no change.
  - Options named like the C(xen_vman) role variables without the C(xen_vman_iscsi_) prefix.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - For a VM that is not logged in yet, the LUN cannot be probed, so RV(vms[].mkfs) is only
        V(true) when the VM has C(reinstall=true).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One before/after line per changed VM (logged in or not, mkfs).
options:
  vms:
    description:
      - VM specifications with the keys of the C(xen_vman) README, the same list as for
        M(vman.lifecycle.xen_domain). Used here - C(org), C(name), C(storage_type), C(filesystem),
        C(manual_root_disk), C(reinstall), C(state). The other keys are validated the same way.
    type: list
    elements: dict
    required: true
  defaults:
    description:
      - Role-level values as for M(vman.lifecycle.xen_domain), keyed by the role variable name
        without C(xen_vman_) and C(default_). Needed here - C(iscsi_server) and C(iscsi_base_wwn)
        (unless every VM sets them), C(storage_type), C(filesystem).
    type: dict
    default: {}
  state:
    description: V(present) logs in (and makes the filesystem of an empty LUN), V(absent) logs out.
    type: str
    choices: [present, absent]
    default: present
  login_timeout:
    description: Seconds the discovery and the login may each take (C(xen_vman_iscsi_login_timeout)).
    type: int
    default: 40
  logout_timeout:
    description: Seconds the logout may take (C(xen_vman_iscsi_logout_timeout)).
    type: int
    default: 40
  device_timeout:
    description: Seconds to wait for the by-path device after a login.
    type: int
    default: 30
  mkfs_timeout:
    description: Seconds C(mkfs) may take.
    type: int
    default: 900
  lun:
    description:
      - Number of the root LUN on every target, overriding each VM's C(iscsi_lun) (VM key, or
        C(iscsi_lun) in O(defaults), default C(0)). Targets that keep LUN 0 for a controller
        (tgt) serve the disk at LUN 1.
      - Leave it unset so that the device this module waits for is the one the xl configuration
        of M(vman.lifecycle.xen_domain) and the C(vm_mount@) unit use.
    type: int
  iscsiadm_path:
    description: Path of C(iscsiadm); found on C(PATH) and in the sbin directories when not given.
    type: path
notes:
  - Needs C(open-iscsi) (C(iscsiadm), C(iscsid)), C(blkid) and the C(mkfs) tool of each VM's filesystem on the host.
seealso:
  - module: vman.lifecycle.xen_domain
  - module: vman.lifecycle.xen_units
"""

EXAMPLES = r"""
- name: Log in the iSCSI roots of all VMs, formatting empty LUNs
  vman.lifecycle.iscsi_root:
    vms: "{{ xen_vman_vms }}"
    defaults:
      iscsi_server: "{{ xen_vman_iscsi_server }}"
      iscsi_base_wwn: "{{ xen_vman_iscsi_base_wwn }}"
    login_timeout: "{{ xen_vman_iscsi_login_timeout }}"
    logout_timeout: "{{ xen_vman_iscsi_logout_timeout }}"

- name: Log them out again
  vman.lifecycle.iscsi_root:
    vms: "{{ xen_vman_vms }}"
    defaults: {iscsi_server: 10.0.0.2, iscsi_base_wwn: iqn.2003-01.org.example}
    state: absent
"""

RETURN = r"""
vms:
  description: One entry per VM with an iSCSI root, in the order of O(vms).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: C(<org>-<name>).
      type: str
      sample: stuvus-web01
    org:
      description: The VM's organisation.
      type: str
    iqn:
      description: The target's IQN.
      type: str
      sample: iqn.2003-01.org.example:stuvus-web01
    portal:
      description: C(<iscsi_server>:3260).
      type: str
    device:
      description: The by-path device of the root LUN.
      type: str
      sample: /dev/disk/by-path/ip-10.0.0.2:3260-iscsi-iqn.2003-01.org.example:stuvus-web01-lun-0
    logged_in:
      description: Whether the VM is logged in after the run.
      type: bool
    mkfs:
      description: Whether C(mkfs) ran (or in check mode would run) on the LUN.
      type: bool
    filesystem:
      description: Filesystem type on the LUN after the run (as C(blkid) reports it), null when unknown.
      type: str
    changed:
      description: Whether this VM changed.
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json, hide_vm_secrets, require
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_diff
from ansible_collections.vman.lifecycle.plugins.module_utils import _iscsi, _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._units import find_binary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vms=dict(type="list", elements="dict", required=True),
            defaults=dict(type="dict", default={}),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            login_timeout=dict(type="int", default=40),
            logout_timeout=dict(type="int", default=40),
            device_timeout=dict(type="int", default=30),
            mkfs_timeout=dict(type="int", default=900),
            lun=dict(type="int"),
            iscsiadm_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    require(module, _spec.HAS_NETADDR, "netaddr")
    p = module.params
    hide_vm_secrets(module)
    with errors_to_fail_json(module):
        specs = _iscsi.iscsi_specs(p["vms"], p["defaults"])
        roots = _iscsi.IscsiRoots(
            iscsiadm=p["iscsiadm_path"] or find_binary("iscsiadm", "/usr/bin/iscsiadm"),
            blkid=find_binary("blkid", "/usr/sbin/blkid"), xl=find_binary("xl", "/usr/sbin/xl"),
            login_timeout=p["login_timeout"], logout_timeout=p["logout_timeout"],
            device_timeout=p["device_timeout"], mkfs_timeout=p["mkfs_timeout"], lun=p["lun"],
            check_mode=module.check_mode)
        results, diffs = roots.converge(specs, p["state"])
    result = {"changed": any(r["changed"] for r in results), "vms": results}
    if module._diff:
        result["diff"] = redact_diff(diffs)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
