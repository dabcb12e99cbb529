# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Xen VM entry of a lifecycle VM, from the pure function of module_utils (thin wrapper)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: xen_lifecycle_vm
short_description: The Xen VM entry and root path of a VM of the lifecycle store
version_added: 0.1.0
description:
  - Turns what the C(vman.lifecycle.fleet) inventory knows of a VM (its spec, org, name and
    netconfs) into the VM dict that M(vman.lifecycle.xen_domain) and
    M(vman.lifecycle.vm_rootfs) take, as the lifecycle playbooks do for Xen guests.
  - A spec without C(interfaces) gets one interface on the C(vm) netconf's IPv4 address with
    O(prefix) and a MAC derived from the domain name (stable across boots, in Xen's
    C(00:16:3e) range).
  - Also returns where the VM's NFS root is on the dom0 (as M(vman.lifecycle.vm_rootfs)
    computes it from C(nfsroot_base)); null for iSCSI or manual roots.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
positional: org, name, netconfs, defaults, prefix
options:
  _input:
    description: The VM's stored spec (C(vman_spec)).
    type: dict
    required: true
  org:
    description: The VM's org (C(vman_org)).
    type: str
    required: true
  name:
    description: The VM's name (C(vman_name)); the domain is C(<org>-<name>).
    type: str
    required: true
  netconfs:
    description: The VM's netconfs by kind (C(vman_netconfs)).
    type: dict
    default: {}
  defaults:
    description: Defaults keyed like the O(vman.lifecycle.xen_domain#module:defaults) option.
    type: dict
    default: {}
  prefix:
    description: Prefix length of the interface made from the C(vm) netconf.
    type: int
    default: 24
"""

EXAMPLES = r"""
- name: The Xen domain of a lifecycle VM
  vman.lifecycle.xen_domain:
    vms: ["{{ xen.vm }}"]
    defaults: "{{ lifecycle_xen.defaults }}"
    state: present
  vars:
    xen: "{{ vman_spec | vman.lifecycle.xen_lifecycle_vm(vman_org, vman_name, vman_netconfs, lifecycle_xen.defaults) }}"
"""

RETURN = r"""
_value:
  description: C(vm), the VM dict, and C(root_path), the NFS root on the dom0 or null.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils import _xen_vman


def xen_lifecycle_vm(spec, org, name, netconfs=None, defaults=None, prefix=24):
    """See :func:`_xen_vman.lifecycle_vm`."""
    try:
        return _xen_vman.lifecycle_vm(spec, org, name, netconfs, defaults, prefix)
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """vman.lifecycle lifecycle filter for Xen guests."""

    def filters(self):
        return {"xen_lifecycle_vm": xen_lifecycle_vm}
