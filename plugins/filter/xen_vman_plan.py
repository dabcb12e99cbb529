# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The xen_vman role's plan, from the pure functions of module_utils (thin wrapper)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: xen_vman_plan
short_description: What the xen_vman role does with its VMs
version_added: 0.1.0
description:
  - Computes, once and in Python, what the tasks of the C(vman.lifecycle.xen_vman) role need,
    that is the C(defaults) dict of the VM modules built from the role variables, the VM dicts for
    M(vman.lifecycle.xen_domain) with the lazily evaluated default bridge filled in, the VMs
    that are new, the VMs M(vman.lifecycle.vm_rootfs) has to install, the iSCSI VMs, the VMs
    to stop before a reinstall and to start afterwards, and the Debian packages the host needs.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
positional: role_vars, configs, lazy_results, mount_base, build_initrds, legacy_found, config_path
options:
  _input:
    description: The VM list (C(xen_vman_vms)).
    type: list
    elements: dict
    required: true
  role_vars:
    description:
      - The role variables by name (C(xen_vman_default_memory) ...); those holding VM
        defaults become the C(defaults) dict (see M(vman.lifecycle.xen_domain)).
    type: dict
    required: true
  configs:
    description: Paths of the xl.cfg files present before this run (or C(find) results with C(path)).
    type: list
    elements: raw
    default: []
  lazy_results:
    description:
      - Results of the role's loop that evaluates C(xen_vman_lazy_default_network_bridge) with
        the loop variable C(vm) (one per VM, the value in C(ansible_facts.__xen_vman_lazy_bridge)).
    type: list
    elements: dict
    default: []
  mount_base:
    description: Where C(vm_mount@) mounts a VM's root.
    type: str
    default: /mnt/vms
  build_initrds:
    description: Whether the host builds initrds (adds dracut to the packages).
    type: bool
    default: true
  legacy_found:
    description:
      - What the original C(xen_vman) role left on the host, as C(find) results (the entries of
        C(<config_path>/.iscsi/)) and C(stat) loop results (its preparation unit and script,
        C(mount_vm.sh), the C(.iscsi) directory). Planned into C(legacy), see RETURN.
    type: list
    elements: raw
    default: []
  config_path:
    description: The directory of the xl configurations (C(xen_vman_vm_config_path)).
    type: str
    default: /etc/xen/vms
"""

EXAMPLES = r"""
- name: Plan
  ansible.builtin.set_fact:
    plan: "{{ xen_vman_vms | vman.lifecycle.xen_vman_plan({'xen_vman_nfsroot_base': '10.0.0.2:/srv/nfs'}) }}"
"""

RETURN = r"""
_value:
  description: >-
    A dict with C(defaults), C(domain_vms), C(new), C(install_vms), C(iscsi_vms), C(mount),
    C(stop), C(start_vms), C(packages), C(xl_conf) (lineinfile items for C(/etc/xen/xl.conf))
    and C(legacy) (C(disable), the units of the original role to disable; C(remove), its files
    to remove; C(markers), this role's marker files for VMs the original marked as iSCSI
    that are not in the VM list, also added to C(markers)).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils import _xen_vman
from ansible_collections.vman.lifecycle.plugins.module_utils._units import XEN_CONFIG_PATH


def xen_vman_plan(vms, role_vars, configs=None, lazy_results=None, mount_base="/mnt/vms",
                  build_initrds=True, legacy_found=None, config_path=XEN_CONFIG_PATH):
    """The role's plan (see :func:`_xen_vman.plan` and :func:`_xen_vman.legacy_plan`)."""
    try:
        defaults = _xen_vman.role_defaults(role_vars or {})
        out = _xen_vman.plan(vms, defaults, configs or [], _xen_vman.lazy_bridges(lazy_results),
                             mount_base, bool(build_initrds))
        out["legacy"] = _xen_vman.legacy_plan(vms, defaults, config_path, configs or [],
                                              legacy_found or [])
        out["markers"] = out["markers"] + out["legacy"]["markers"]
        out["defaults"] = defaults
        out["xl_conf"] = _xen_vman.xl_conf_lines(role_vars or {})
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return out


class FilterModule:
    """vman.lifecycle xen_vman role filter."""

    def filters(self):
        return {"xen_vman_plan": xen_vman_plan}
