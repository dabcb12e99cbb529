#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lxc_guest_setup
short_description: Files and a one-time setup inside running LXC containers, through lxc-attach
version_added: 0.1.0
description:
  - Converges files (content, mode, owner) inside every listed container of one host in one
    call, and runs a one-time initial setup (new SSH host keys for clones, then your commands)
    the first time it sees a container.
  - Everything runs through C(lxc-attach) as argv lists (C(stat), C(cat), C(tee), C(chmod),
    C(chown), C(mv)), so the guest needs neither Python nor SSH, and block-backed (lvm) roots
    need not be mounted on the host.
  - Used by the C(vman.lifecycle.lxc_provision) role for its hosts file, ssh keys, facts and
    initial setup steps.
  - Returns the public SSH host keys of each guest, for a C(known_hosts) file.
author:
  - vman.lifecycle developers (@vman-lifecycle)
attributes:
  check_mode:
    support: full
    description: Reads the guests, reports what would be written or run; changes nothing.
  diff_mode:
    support: full
    description: Before and after content of every file that changes.
options:
  lxc_path:
    description: The lxcpath of the containers (C(lxc-attach -P)).
    type: path
    default: /var/lib/lxc
  boot_timeout:
    description: Seconds the initial setup waits for systemd in the guest to finish booting.
    type: int
    default: 90
  containers:
    description: The containers and what to apply inside each. Each must be running.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Container name.
        type: str
        required: true
      files:
        description: Files inside the guest.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description:
              - Absolute path in the guest, or C(~user/path) (the home directory is read from the
                guest's passwd).
            type: str
            required: true
          content:
            description: Full content of the file (required when O(containers[].files[].state=present)).
            type: str
          mode:
            description: Octal mode, quoted (V('0644')).
            type: str
            default: '0644'
          owner:
            description: Owner user in the guest.
            type: str
            default: root
          group:
            description: Group in the guest; the owner's name when not given.
            type: str
          dir_mode:
            description: Mode of the parent directory when it has to be created (it is then owned by O(containers[].files[].owner)).
            type: str
            default: '0755'
          state:
            description: V(absent) removes the file.
            type: str
            choices: [present, absent]
            default: present
      commands:
        description:
          - Commands of the initial setup, each an argv list (no shell), run once in order after
            the host keys, while the marker file does not exist.
        type: list
        elements: list
        default: []
      regenerate_host_keys:
        description:
          - In the initial setup, replace the SSH host keys (a clone inherits its origin's) with
            C(ssh-keygen -A) and restart C(ssh.service). Skipped when the guest has no ssh-keygen.
        type: bool
        default: false
      marker:
        description: File whose existence means the initial setup already ran.
        type: str
        default: /etc/vman/initial-setup.done
notes:
  - Runs on the LXC host, as root.
seealso:
  - module: vman.lifecycle.lxc_guest
"""

EXAMPLES = r"""
- name: Hosts file and facts of two containers
  vman.lifecycle.lxc_guest_setup:
    containers:
      - name: web1.test.com
        files:
          - path: /etc/hosts
            content: "127.0.0.1 localhost\n10.5.0.2 web1.test.com web1\n"
          - path: /etc/ansible/facts.d/vman_lxc.fact
            content: '{"role": "web"}'
      - name: db1.test.com
        files:
          - path: ~root/.ssh/authorized_keys
            content: "ssh-ed25519 AAAA... admin@example\n"
            mode: "0600"
            dir_mode: "0700"

- name: One-time setup of a clone
  vman.lifecycle.lxc_guest_setup:
    containers:
      - name: web1.test.com
        regenerate_host_keys: true
        commands:
          - [apt-get, install, -y, python3]
"""

RETURN = r"""
containers:
  description: One entry per container, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    changed:
      description: Whether anything changed in this container.
      type: bool
    actions:
      description: What was done (or would be, in check mode).
      type: list
      elements: str
      sample: [write /etc/hosts, initial setup, regenerate ssh host keys, run apt-get]
    ssh_host_keys:
      description: Public host keys of the guest (C(<type> <base64>)), empty in check mode for a container that is not running yet.
      type: list
      elements: str
    skipped_reason:
      description: Why nothing was read (check mode, container not running yet).
      type: str
      returned: when the container is not running in check mode
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_diff
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc, _lxc_setup


def argument_spec():
    files = {
        "path": {"type": "str", "required": True},
        "content": {"type": "str"},
        "mode": {"type": "str", "default": "0644"},
        "owner": {"type": "str", "default": "root"},
        "group": {"type": "str"},
        "dir_mode": {"type": "str", "default": "0755"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }
    entry = {
        "name": {"type": "str", "required": True},
        "files": {"type": "list", "elements": "dict", "default": [], "options": files},
        "commands": {"type": "list", "elements": "list", "default": []},
        "regenerate_host_keys": {"type": "bool", "default": False},
        "marker": {"type": "str", "default": _lxc_setup.DEFAULT_MARKER},
    }
    return {
        "lxc_path": {"type": "path", "default": "/var/lib/lxc"},
        "boot_timeout": {"type": "int", "default": 90},
        "containers": {"type": "list", "elements": "dict", "required": True, "options": entry},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    with errors_to_fail_json(module):
        specs = _lxc_setup.build_guests(p["containers"])
        setup = _lxc_setup.GuestSetup(_lxc.LxcBackend(p["lxc_path"]), check_mode=module.check_mode,
                                      boot_timeout=p["boot_timeout"])
        results, diffs, changed = setup.converge(specs)
    module.exit_json(changed=changed, containers=results, diff=redact_diff(diffs))


if __name__ == "__main__":
    main()
