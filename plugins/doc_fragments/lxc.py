# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the LXC host options (paired with _lxc.HOST_ARGSPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  lxc_path:
    description:
      - The lxcpath of the containers (C(lxc-* -P)).
    type: path
    default: /var/lib/lxc
  settings_dir:
    description:
      - Directory of the per-container settings files, one C(<name>.json) per container,
        mode C(0600) in a C(0700) directory. They hold the generated IP, MAC and password,
        which later runs reuse.
    type: path
    default: /var/lib/vman/lxc
requirements:
  - LXC userspace tools (C(lxc-create), C(lxc-copy), C(lxc-start), ...) on the LXC host
  - netaddr (Python) on the LXC host
"""
