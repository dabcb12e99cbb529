# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the shared libvirt connection option (paired with _libvirt.LIBVIRT_URI_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI of the hypervisor, for example V(qemu:///system),
        V(qemu+ssh://root@host/system) or V(test:///default).
      - libvirt's C(test:///) driver keeps its state only for one connection, that is one task.
    type: str
    default: qemu:///system
    aliases: [libvirt_uri]
requirements:
  - libvirt-python (the C(libvirt) Python binding) on the host that runs the module
"""
