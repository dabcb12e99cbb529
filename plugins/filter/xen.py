# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the pure Xen functions of module_utils (thin wrappers)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: xl_config
short_description: Render the xl.cfg text of a VM spec
version_added: 0.1.0
description:
  - The same text M(vman.lifecycle.xen_domain) writes, from the same pure function.
  - The header date is the current time unless O(created) is given.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
positional: defaults
options:
  _input:
    description: One VM dict with the keys of the C(xen_vman) README.
    type: dict
    required: true
  defaults:
    description: Role-level defaults keyed like the O(vman.lifecycle.xen_domain#module:defaults) option.
    type: dict
    default: {}
  created:
    description: Header date to write.
    type: str
  host_kernel:
    description: Kernel release for the default PV kernel path (C(/vmlinuz) when not given).
    type: str
"""

EXAMPLES = r"""
- name: Show the config a VM would get
  ansible.builtin.debug:
    msg: "{{ vm | vman.lifecycle.xl_config({'nfsroot_base': '10.0.0.2:/srv/nfs', 'gateway': '10.0.0.1'}) }}"
  vars:
    vm: {org: stuvus, name: web01, os: {type: debian, version: "12"}, interfaces: [{ip: 10.0.0.15}]}
"""

RETURN = r"""
_value:
  description: The xl.cfg text.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils import _spec, _xl


def xl_config(vm, defaults=None, created=None, host_kernel=None):
    """Render ``vm`` merged with ``defaults`` as xl.cfg text."""
    try:
        return _xl.render(_spec.normalize(vm, defaults or {}, host_kernel), created=created)
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """vman.lifecycle Xen filters."""

    def filters(self):
        return {"xl_config": xl_config}
