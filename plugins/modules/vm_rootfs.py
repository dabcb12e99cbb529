#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_rootfs
short_description: Install the operating system into the roots of a batch of Xen VMs
version_added: 0.1.0
description:
  - For each VM, installs Debian or Ubuntu into its root directory with C(debootstrap) (or by
    unpacking a tarball made once with C(debootstrap --make-tarball), see O(tarball), or by
    extracting a finished root filesystem image, see O(image)), then
    creates O(user) with O(public_keys) and passwordless sudo, and writes C(/etc/fstab),
    C(/etc/network/interfaces) (static address of C(connection_ip) or the first interface,
    gateway, nameservers, MTU), C(/etc/resolv.conf), C(/etc/hostname) and C(/etc/hosts).
  - "The root of an NFS VM is the directory C(<nfsroot_base>/<org>/<name>-root) on this host:
    the path part of C(nfsroot_base) (C(10.0.0.2:/srv/nfs) gives C(/srv/nfs)), or O(nfs_base).
    Any other root is C(<mount_base>/<org>-<name>), where C(vm_mount@<org>-<name>.service)
    mounts it. A VM's own C(root_path) key overrides both."
  - A root that holds anything (but C(lost+found)) is never touched unless the VM has
    C(reinstall=true); then its content is removed and the OS installed again (stop the VM first).
  - An empty root is installed only when the VM's C(auto_install) is true and it is listed in
    O(new_vms) (it had no Xen configuration before). An install that was interrupted is redone.
  - The C(python) package of the C(xen_vman) README's default package list is installed as
    C(python3) on releases without Python 2 (Debian 11 and later, Ubuntu 20.04 and later).
author:
  - vman.lifecycle contributors (@vman-lifecycle)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One entry per VM to install, with the files written into its root.
options:
  vms:
    description:
      - VM specifications with the keys of the C(xen_vman) README (as for
        M(vman.lifecycle.xen_domain)), plus an optional C(root_path) (absolute, at least two
        levels deep) where this VM's root is on this host.
      - C(os.type) (V(debian) or V(ubuntu)) and C(os.version) (a release number such as V(12)
        or V(18.04), or a code name such as V(bookworm)) select the debootstrap suite.
    type: list
    elements: dict
    required: true
  defaults:
    description: Role-level defaults, keyed as the O(vman.lifecycle.xen_domain#module:defaults) option.
    type: dict
    default: {}
  new_vms:
    description: Names C(<org>-<name>) of the VMs that had no Xen configuration before this run.
    type: list
    elements: str
    default: []
  tarball:
    description:
      - A tarball made by C(debootstrap --make-tarball) with the same suite, variant and
        packages; installs with C(--unpack-tarball) and downloads nothing.
    type: path
  image:
    description:
      - A tar archive (plain, gzip, xz or zstd) of a finished root filesystem, for example one
        made on a fast machine with C(debootstrap) and C(tar --numeric-owner -C ROOT -czf IMAGE .),
        or exported from a golden VM. It is extracted into each root (numeric owners, modes,
        ACLs and extended attributes kept), then configured as a debootstrapped root is.
      - Much faster than O(tarball) where C(debootstrap) itself is slow (its second stage
        configures every package inside the root); O(packages), O(variant) and O(mirror) are
        then not used. The archive must hold C(etc/passwd) at its top and the tools
        C(useradd) needs. Excludes O(tarball).
    type: path
  mirror:
    description: Package mirror; V(http://deb.debian.org/debian) or V(http://archive.ubuntu.com/ubuntu) when not given.
    type: str
  packages:
    description: Packages installed besides the base system (C(xen_vman_debootstrap_packages)).
    type: list
    elements: str
    default: [systemd, systemd-sysv, udev, openssh-server, sudo, python, iproute2, ifupdown]
  variant:
    description: debootstrap variant.
    type: str
    default: minbase
    choices: [minbase, buildd, fakechroot, standard]
  user:
    description:
      - User created in every new root, member of C(sudo), allowed to sudo without password,
        with O(public_keys) as its C(authorized_keys). V(root) only gets the keys.
    type: str
    default: ansible
  public_keys:
    description: OpenSSH public key lines for O(user) (C(xen_vman_public_keys)).
    type: list
    elements: str
    default: []
  mount_base:
    description: Where C(vm_mount@) mounts non-NFS roots (C(<mount_base>/<org>-<name>)).
    type: path
    default: /mnt/vms
  nfs_base:
    description: Host path of the NFS roots' base directory, when it is not the path part of C(nfsroot_base).
    type: path
  debootstrap_path:
    description: Path of C(debootstrap) (found on C(PATH) and in the sbin directories when not given).
    type: path
  install_timeout:
    description: Seconds one debootstrap run may take.
    type: int
    default: 3600
notes:
  - Runs as root on the host that holds the roots (the Xen host). Requires C(debootstrap) and
    C(chroot) there, and the C(netaddr) Python library.
  - The VM is not stopped or started here; the C(vman.lifecycle.xen_vman) role orders that.
seealso:
  - module: vman.lifecycle.xen_domain
"""

EXAMPLES = r"""
- name: Install the roots of new VMs from a prepared tarball
  vman.lifecycle.vm_rootfs:
    vms: "{{ xen_vman_vms }}"
    defaults:
      nfsroot_base: "10.0.0.2:/srv/nfs"
      gateway: 10.0.0.1
    new_vms: [stuvus-web01]
    tarball: /var/cache/vman/bookworm.tgz
    public_keys:
      - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEw8Y2jW1kYd7k3a0Y9o0h2Q3w8vQ9o1bWQm1o3m1o3m admin"

- name: Reinstall one VM whose root is mounted elsewhere
  vman.lifecycle.vm_rootfs:
    vms:
      - org: stuvus
        name: db01
        os: {type: debian, version: "12"}
        interfaces: [{ip: 10.0.0.16/24}]
        storage_type: iscsi
        reinstall: true
        root_path: /mnt/vms/stuvus-db01
    defaults: {iscsi_server: 10.0.0.3, iscsi_base_wwn: "iqn.2024-01.org.example"}
"""

RETURN = r"""
vms:
  description: One entry per VM, in the order of O(vms).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: C(<org>-<name>).
      type: str
    root_path:
      description: The VM's root on this host.
      type: str
      sample: /srv/nfs/stuvus/web01-root
    root_state:
      description: V(missing), V(empty), V(incomplete) or V(installed) before this run (null for absent VMs).
      type: str
    action:
      description: V(install), V(reinstall) or V(skip).
      type: str
    reason:
      description: Why.
      type: str
      sample: root is already installed
    changed:
      description: Whether the root was (or in check mode would be) installed.
      type: bool
    suite:
      description: The debootstrap suite installed.
      type: str
      returned: when installed
    packages:
      description: The packages installed besides the base system (empty for an O(image)).
      type: list
      elements: str
      returned: when installed
    source:
      description: Where the root came from, C(image <file>), C(tarball <file>) or the mirror.
      type: str
      returned: when installed
      sample: image debian-12.tar.zst
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json, hide_vm_secrets, require
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_diff
from ansible_collections.vman.lifecycle.plugins.module_utils import _rootfs, _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._units import find_binary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vms=dict(type="list", elements="dict", required=True),
            defaults=dict(type="dict", default={}),
            new_vms=dict(type="list", elements="str", default=[]),
            tarball=dict(type="path"),
            image=dict(type="path"),
            mirror=dict(type="str"),
            packages=dict(type="list", elements="str", default=list(_rootfs.DEFAULT_PACKAGES)),
            variant=dict(type="str", default="minbase",
                         choices=["minbase", "buildd", "fakechroot", "standard"]),
            user=dict(type="str", default="ansible"),
            public_keys=dict(type="list", elements="str", default=[], no_log=False),
            mount_base=dict(type="path", default="/mnt/vms"),
            nfs_base=dict(type="path"),
            debootstrap_path=dict(type="path"),
            install_timeout=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    require(module, _spec.HAS_NETADDR, "netaddr")
    hide_vm_secrets(module)
    p = module.params
    with errors_to_fail_json(module):
        user = _rootfs.check_user(p["user"])
        _rootfs.check_mirror(p["mirror"])
        keys_text = _rootfs.render_authorized_keys(p["public_keys"])
        vms, root_paths = _rootfs.split_root_paths(p["vms"])
        specs = _spec.normalize_all(vms, p["defaults"])
        entries = _rootfs.plan(specs, root_paths, p["new_vms"], p["mount_base"], p["nfs_base"])
        installer = _rootfs.RootfsInstaller(
            debootstrap=p["debootstrap_path"] or find_binary("debootstrap", "/usr/sbin/debootstrap"),
            chroot=find_binary("chroot", "/usr/sbin/chroot"),
            tar=find_binary("tar", "/bin/tar"),
            timeout=p["install_timeout"])
        results, diffs = _rootfs.converge(
            specs, entries, installer, check_mode=module.check_mode, mirror=p["mirror"],
            packages=p["packages"], variant=p["variant"], tarball=p["tarball"], user=user,
            keys_text=keys_text, image=p["image"])
    result = {"changed": any(r["changed"] for r in results), "vms": results}
    if module._diff:
        result["diff"] = redact_diff(diffs)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
