#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_install_seed
short_description: Write the install seed (callback token, host keys, controller keys) into a new guest
version_added: 0.1.0
description:
  - Writes into the root file system of a guest that has not booted yet what its first boot
    needs to finish the install and report back, as the seed document's installer did.
  - With O(token), the one-time install-callback token (C(/etc/vman/install-token), C(0600)),
    the callback URL, and a small Python client started by systemd
    (C(vman-install-callback.service), enabled for C(multi-user.target)) that POSTs the token
    to O(callback_url) with an C(Authorization) header, retries until it is accepted and then
    deletes the token.
  - With O(host_keys), the VM's SSH host keys generated on the controller by
    M(vman.lifecycle.ssh_host_keys), so the controller's C(known_hosts) is right before the
    first connection. With O(authorized_keys), root's C(~/.ssh/authorized_keys). With
    O(hostname), C(/etc/hostname).
  - Only files whose content or mode differ are written (atomically); nothing is removed.
    Paths are opened one directory at a time without following symlinks, so a link in the
    guest's tree never makes the host write outside it.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    support: full
    description: Lists the files that would be written and writes nothing.
  diff_mode:
    support: none
    description: The seed holds secrets; only the paths written are returned.
options:
  root:
    description: The guest's root directory on this host (a directory root, an NFS root export).
    type: path
  lxc_name:
    description:
      - Instead of O(root), the LXC container whose rootfs to seed (a C(dir) or C(btrfs)
        rootfs, or the upper directory of an overlay clone).
    type: str
  lxc_path:
    description: The lxcpath of O(lxc_name).
    type: path
    default: /var/lib/lxc
  hostname:
    description: Host name of the guest; its first label goes to C(/etc/hostname).
    type: str
  callback_url:
    description: URL the guest POSTs its token to, ending in C(/callback/<vm>) (see M(vman.lifecycle.install_callback)).
    type: str
  token:
    description: The one-time token that M(vman.lifecycle.install_callback) issued (its C(state=issued)).
    type: str
  host_keys:
    description:
      - Host keys for C(/etc/ssh/), as returned in C(keys) by M(vman.lifecycle.ssh_host_keys)
        with C(return_private=true); each entry needs C(type) (V(rsa), V(ecdsa), V(ed25519),
        V(dsa)), C(private_key) and C(public_key); other keys of an entry are ignored.
    type: list
    elements: dict
    default: []
  authorized_keys:
    description: Public keys that may log in as root (the controller's).
    type: list
    elements: str
    default: []
notes:
  - Run it on the host that holds the guest's root, as root, before the guest's first boot.
  - The task must set C(no_log) when O(token) or O(host_keys) are given; the module fails otherwise.
  - Files are owned by the user running the module (root); for unprivileged (id-mapped)
    containers the ownership would need shifting, which this module does not do.
"""

EXAMPLES = r"""
- name: Seed a new LXC guest before its first start
  vman.lifecycle.vm_install_seed:
    lxc_name: "{{ vman_name }}"
    lxc_path: /var/lib/lxc
    hostname: "{{ vman_netconfs.vm.hostname }}"
    callback_url: "http://10.5.0.1:8765/callback/{{ vman_name }}"
    token: "{{ callback_token.token }}"
    host_keys: "{{ host_keys['keys'] }}"
    authorized_keys: ["{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"]
  delegate_to: "{{ vman_hypervisor }}"
  no_log: true
"""

RETURN = r"""
root:
  description: The directory seeded.
  returned: success
  type: str
written:
  description: Paths (relative to RV(root)) written, or that would be in check mode.
  returned: success
  type: list
  elements: str
  sample: [etc/vman/install-token, etc/ssh/ssh_host_ed25519_key]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _install_seed as seed
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError
from ansible_collections.vman.lifecycle.plugins.module_utils._lxc import LxcBackend


def _root(p):
    if p["root"]:
        return p["root"]
    root = LxcBackend(p["lxc_path"]).rootfs_dir(p["lxc_name"])
    if root is None:
        raise StateError(f"{p['lxc_name']}: no rootfs directory under {p['lxc_path']} "
                         "(missing container, or a block-device rootfs)")
    return root


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path"),
            lxc_name=dict(type="str"),
            lxc_path=dict(type="path", default="/var/lib/lxc"),
            hostname=dict(type="str"),
            callback_url=dict(type="str"),
            token=dict(type="str", no_log=True),
            host_keys=dict(type="list", elements="dict", default=[], no_log=True),
            authorized_keys=dict(type="list", elements="str", default=[], no_log=False),
        ),
        mutually_exclusive=[("root", "lxc_name")],
        required_one_of=[("root", "lxc_name")],
        required_by={"token": ("callback_url",)},
        supports_check_mode=True,
    )
    p = module.params
    if (p["token"] or p["host_keys"]) and not module.no_log:
        module.fail_json(msg="a token or host keys need no_log: true on the task")
    with errors_to_fail_json(module):
        root = _root(p)
        files = seed.seed_files(p["hostname"], p["callback_url"], p["token"], p["host_keys"],
                                p["authorized_keys"])
        written = seed.apply_seed(root, files, check=module.check_mode)
    module.exit_json(changed=bool(written), root=root, written=written)


if __name__ == "__main__":
    main()
