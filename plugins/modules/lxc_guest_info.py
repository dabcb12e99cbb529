#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lxc_guest_info
short_description: Settings and live state of the LXC containers of a host
version_added: 0.1.0
description:
  - Returns the settings kept for each container by M(vman.lifecycle.lxc_guest) (seed 001's
    C(get_settings_for_vm)) next to the live values read from the host - power state, the
    running container's IPv4 addresses, and the gateway, MAC, bridge and autostart of its
    lxc config.
  - Settings are what was used at creation; only the live values are current.
author:
  - vman.lifecycle developers (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.lxc
attributes:
  check_mode:
    support: full
    description: Read-only.
options:
  names:
    description:
      - Containers to report. Every container with a settings file or under O(lxc_path) when
        empty.
    type: list
    elements: str
    default: []
  show_passwords:
    description:
      - Return the stored passwords instead of C(********). Set C(no_log) on the task when you
        use it.
    type: bool
    default: false
notes:
  - Runs on the LXC host, as root.
seealso:
  - module: vman.lifecycle.lxc_guest
"""

EXAMPLES = r"""
- name: Settings of one container
  vman.lifecycle.lxc_guest_info:
    names: [gfoobar.test.com]
  register: info

- name: Its live address
  ansible.builtin.debug:
    msg: "{{ info.containers[0].live.ip }}"
"""

RETURN = r"""
containers:
  description: One entry per container.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    settings:
      description: The stored settings (null when the container has none).
      type: dict
      sample: {ip: 10.5.0.12, mac: "00:16:3e:00:f1:81", gateway: 10.5.0.1, netmask: 16,
               profile: ms-devhost10-local-overlayfs, password: "********", users: [root]}
    live:
      description: Values read from the host now.
      type: dict
      contains:
        exists:
          description: The container exists under O(lxc_path).
          type: bool
        state:
          description: C(running), C(stopped), ... or C(absent).
          type: str
        ip:
          description: First IPv4 address of the running container.
          type: str
        ips:
          description: Every IPv4 address of the running container.
          type: list
          elements: str
        gateway:
          description: C(lxc.net.0.ipv4.gateway) of the config.
          type: str
        mac:
          description: C(lxc.net.0.hwaddr) of the config.
          type: str
        bridge:
          description: C(lxc.net.0.link) of the config.
          type: str
        autostart:
          description: C(lxc.start.auto) is 1.
          type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc


def main():
    spec = dict(_lxc.HOST_ARGSPEC)
    spec.update(names={"type": "list", "elements": "str", "default": []},
                show_passwords={"type": "bool", "default": False})
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    with errors_to_fail_json(module):
        containers = _lxc.containers_info(_lxc.LxcBackend(p["lxc_path"]),
                                          _lxc.SettingsStore(p["settings_dir"]),
                                          p["names"], p["show_passwords"])
    module.exit_json(changed=False, containers=containers)


if __name__ == "__main__":
    main()
