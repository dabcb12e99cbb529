#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_domain_info
short_description: Read the xl.cfg files and live state of the Xen domains on a host
version_added: 0.1.0
description:
  - Parses every C(*.cfg) file in O(config_path) (or the ones named in O(names)) and merges
    the live state read from C(xl list -l).
  - Domains that run without a configuration file are listed too, with RV(domains[].config_path)
    null.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: This module only reads.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  config_path:
    description: Directory holding the C(<org>-<name>.cfg) files.
    type: path
    default: /etc/xen/vms
  names:
    description: Only these domains (C(<org>-<name>)); all when empty.
    type: list
    elements: str
    default: []
  xl_path:
    description: Path of the C(xl) binary (found on C(PATH) when not given).
    type: path
notes:
  - When C(xl) is not installed the live state is V(unknown) and only the files are read.
"""

EXAMPLES = r"""
- name: What runs here, and from which config
  vman.lifecycle.xen_domain_info:
  register: xen

- name: One domain
  vman.lifecycle.xen_domain_info:
    names: [stuvus-web01]
  register: web01
"""

RETURN = r"""
domains:
  description: One entry per domain, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
    config_path:
      description: Its configuration file, or null when it runs without one here.
      type: str
    config:
      description: The parsed configuration (xl.cfg keys to values); the SPICE password is masked.
      type: dict
    header:
      description: "The C(# key: value) header lines written by M(vman.lifecycle.xen_domain): org, name, os, created and so on."
      type: dict
    state:
      description: V(running), V(stopped) or V(unknown).
      type: str
    domid:
      description: Domain id when running.
      type: int
    live:
      description: Memory (MiB), vcpus, MACs and bridges of the running domain.
      type: dict
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
from ansible_collections.vman.lifecycle.plugins.module_utils import _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._files import read_text
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import REDACTED
from ansible_collections.vman.lifecycle.plugins.module_utils._units import XEN_CONFIG_PATH


def collect(config_path, names, toolstack):
    """Parsed configs merged with live domains, sorted by name."""
    try:
        live = toolstack.list()
    except CommandError as exc:
        if exc.rc != 127:
            raise
        live = None
    paths = {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(config_path, "*.cfg"))}
    wanted = set(names) if names else set(paths) | set(live or {})
    out = []
    for name in sorted(wanted):
        path = paths.get(name)
        text = read_text(path) if path else None
        config = _xl.parse(text) if text is not None else {}
        if "spicepasswd" in config:
            config["spicepasswd"] = REDACTED
        domain = (live or {}).get(name)
        out.append({
            "name": name,
            "config_path": path,
            "config": config,
            "header": _xl.parse_header(text or ""),
            "state": "unknown" if live is None else ("running" if domain else "stopped"),
            "domid": domain.domid if domain else None,
            "live": domain.as_dict() if domain else {},
        })
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_path=dict(type="path", default=XEN_CONFIG_PATH),
            names=dict(type="list", elements="str", default=[]),
            xl_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    with errors_to_fail_json(module):
        domains = collect(module.params["config_path"], module.params["names"],
                          _xl.XlToolstack(module.params["xl_path"]))
    module.exit_json(changed=False, domains=domains)


if __name__ == "__main__":
    main()
