# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install the operating system into a VM's root (private, no stability promise).

Pure functions decide whether a root is installed (:func:`decide`), which suite and packages
debootstrap gets (:func:`suite_for`, :func:`map_packages`, :func:`debootstrap_argv`) and render
the files written into the new root (fstab, ``/etc/network/interfaces``, hostname, hosts,
resolv.conf, sudoers). :class:`RootfsInstaller` runs debootstrap (or unpacks a debootstrap
tarball, or extracts a finished root filesystem image with tar) through the argv runner, then
writes those files and creates the user.

A root directory counts as *installed* when it holds anything but ``lost+found``; such a root
is only touched with ``reinstall``. An install that was interrupted leaves
:data:`INSTALLING_MARK` behind and is redone on the next run.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil

from ansible_collections.vman.lifecycle.plugins.module_utils import _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, ValidationError, bad_char
from ansible_collections.vman.lifecycle.plugins.module_utils._files import (
    lexists_below, open_parent_below, read_below, write_below)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

#: The xen_vman README's default package list (its ``python`` is mapped, see map_packages).
DEFAULT_PACKAGES = ("systemd", "systemd-sysv", "udev", "openssh-server", "sudo", "python",
                    "iproute2", "ifupdown")
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian",
                   "ubuntu": "http://archive.ubuntu.com/ubuntu"}
#: written when an install starts, removed when it is complete
INSTALLING_MARK = ".vman-rootfs-installing"
#: written into the root when an install is complete
DONE_FILE = "etc/vman-rootfs"

SUITES = {
    "debian": {"9": "stretch", "10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"},
    "ubuntu": {"16.04": "xenial", "18.04": "bionic", "20.04": "focal", "22.04": "jammy",
               "24.04": "noble"},
}
# Suites that still ship a package named "python" (Python 2); later ones only have python3.
_PYTHON2_SUITES = frozenset(("stretch", "buster", "xenial", "bionic"))

USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}")
SUITE_RE = re.compile(r"[a-z][a-z0-9-]{1,30}")
MIRROR_RE = re.compile(r"(https?|file)://[A-Za-z0-9._~:/@%+-]+")
_KEY_RE = re.compile(r"(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?")


def suite_for(spec) -> str:
    """Debootstrap suite from ``os.type``/``os.version`` (``12`` or ``bookworm`` for Debian)."""
    versions = SUITES.get(spec.os_type)
    if versions is None:
        raise ValidationError(spec.full_name, "os.type", spec.os_type,
                              f"debootstrap installs only {', '.join(sorted(SUITES))}")
    version = spec.os_version
    if version in versions:
        return versions[version]
    if version in versions.values():
        return version
    raise ValidationError(spec.full_name, "os.version", version,
                          f"unknown {spec.os_type} release (known: "
                          f"{', '.join(f'{k}/{v}' for k, v in versions.items())})")


def map_packages(packages, suite: str) -> list:
    """The package list for ``suite``: ``python`` becomes ``python3`` where Python 2 is gone.

    The seed's default list names ``python``, which Debian 11+ and Ubuntu 20.04+ no longer
    have; debootstrap would fail on it. Duplicates are dropped, order is kept.
    """
    out = []
    for name in packages:
        if not isinstance(name, str) or not PACKAGE_RE.fullmatch(name):
            raise ValidationError("vm_rootfs", "packages", name, "is not a Debian package name")
        if name == "python" and suite not in _PYTHON2_SUITES:
            name = "python3"
        if name not in out:
            out.append(name)
    return out


def local_nfs_base(nfsroot_base: str) -> str:
    """The host path of ``nfsroot_base``: ``10.0.0.2:/srv/nfs`` → ``/srv/nfs``."""
    path = nfsroot_base.split(":", 1)[1] if ":" in nfsroot_base.split("/", 1)[0] else nfsroot_base
    return path


def root_path_for(spec, given: str | None, mount_base: str, nfs_base: str | None) -> str:
    """Where the VM's root is on the host.

    ``given`` (the VM's ``root_path``) wins; an NFS root is ``<nfs_base>/<org>/<name>-root``
    (``nfs_base`` defaults to the path part of ``nfsroot_base``); any other root is the
    ``vm_mount@`` mount point ``<mount_base>/<org>-<name>``.
    """
    if given:
        path = given
    elif spec.storage_type == "nfs" and not spec.manual_root_disk:
        base = nfs_base or (local_nfs_base(spec.nfsroot_base) if spec.nfsroot_base else None)
        if not base:
            raise ValidationError(spec.full_name, "root_path", None,
                                  "no nfsroot_base and no root_path to install into")
        path = _xl.nfs_root_path(base, spec.org, spec.name)
    else:
        path = f"{mount_base.rstrip('/')}/{spec.full_name}"
    return check_root_path(spec.full_name, path)


def check_root_path(label: str, path) -> str:
    """Refuse relative paths, ``..`` and anything shallower than two levels (``/srv/x``)."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise ValidationError(label, "root_path", path, "must be an absolute path")
    norm = os.path.normpath(path)
    if ".." in path.split("/") or norm.count("/") < 2:
        raise ValidationError(label, "root_path", path,
                              "must be at least two levels deep and contain no '..'")
    return norm


# ---- decision ---------------------------------------------------------------------------

def root_state(path: str) -> str:
    """``missing``, ``empty``, ``incomplete`` (our install was interrupted) or ``installed``."""
    try:
        entries = set(os.listdir(path))
    except FileNotFoundError:
        return "missing"
    if INSTALLING_MARK in entries:
        return "incomplete"
    return "installed" if entries - {"lost+found"} else "empty"


def decide(spec, state: str, new: bool) -> tuple:
    """``(action, reason)`` with action ``install``, ``reinstall`` or ``skip``.

    ``reinstall: true`` always reinstalls. Otherwise an installed root is never touched, an
    interrupted install is redone, and an empty root is installed only with ``auto_install``
    for a VM that had no configuration before (``new``).
    """
    if spec.reinstall:
        return "reinstall", "reinstall is true"
    if state == "installed":
        return "skip", "root is already installed"
    if state == "incomplete":
        return "install", "an earlier install was interrupted"
    if not spec.auto_install:
        return "skip", "auto_install is false"
    if not new:
        return "skip", "auto_install only installs VMs that had no configuration before"
    return "install", "new VM with an empty root"


# ---- rendered files ---------------------------------------------------------------------

def _header(comment="#"):
    return f"{comment} Written by vman.lifecycle.vm_rootfs at install time.\n"


def render_fstab(spec) -> str:
    """fstab of the guest: its root (NFS export or ``/dev/xvda``)."""
    if spec.storage_type == "nfs" and not spec.manual_root_disk:
        source = _xl.nfs_root_path(spec.nfsroot_base, spec.org, spec.name)
        line = f"{source} / nfs defaults,_netdev 0 0"
    else:
        line = f"/dev/xvda / {spec.filesystem} defaults,errors=remount-ro 0 1"
    return _header() + "# <file system> <mount point> <type> <options> <dump> <pass>\n" + line + "\n"


def render_interfaces(spec) -> str:
    """``/etc/network/interfaces``: the first NIC (``eth0``) with the VM's static address.

    An NFS root's NIC is configured by the initrd (``ip=`` on the kernel command line) and must
    stay up: it is ``manual`` there (ifupdown never takes it down), static otherwise.
    """
    address, prefix = spec.primary_ip, spec.primary_prefixlen
    # eth0 is the first vif: only its own MTU applies (an MTU of eth1 is not eth0's)
    mtu = spec.interfaces[0].mtu if spec.interfaces else None
    nfs = spec.storage_type == "nfs" and not spec.manual_root_disk
    lines = [_header().rstrip("\n"), "", "source-directory /etc/network/interfaces.d", "",
             "auto lo", "iface lo inet loopback", ""]
    if nfs:
        # static or DHCP alike: the initrd brought eth0 up (ip= on the kernel command line)
        lines += ["# eth0 carries the NFS root: configured by the initrd, never taken down",
                  "iface eth0 inet manual"]
    elif address is None:
        lines += ["auto eth0", "iface eth0 inet dhcp"]
    else:
        family = "inet6" if ":" in address else "inet"
        lines += ["auto eth0", f"iface eth0 {family} static", f"    address {address}/{prefix}"]
        if spec.gateway:
            lines.append(f"    gateway {spec.gateway}")
    if address is not None and mtu:
        lines.append(f"    mtu {mtu}")
    if spec.nameservers and address is not None:
        lines.append(f"    dns-nameservers {' '.join(spec.nameservers)}")
    first = spec.interfaces[0] if spec.interfaces else None
    if first is not None and first.ipv6 and not nfs and address != first.ipv6:
        # the first interface's ipv6 key; an NFS root's eth0 is never brought up by ifupdown,
        # so there it only reaches the vif's ip= (as with the original role)
        lines += ["", "iface eth0 inet6 static",
                  f"    address {first.ipv6}/{first.ipv6_prefixlen or 64}"]
    return "\n".join(lines) + "\n"


def render_resolv_conf(spec) -> str:
    """``/etc/resolv.conf`` with the VM's nameservers (works without resolvconf)."""
    return _header() + "".join(f"nameserver {ns}\n" for ns in spec.nameservers)


def render_hostname(spec) -> str:
    """``/etc/hostname``: the VM's name."""
    return spec.name + "\n"


def render_hosts(spec) -> str:
    """``/etc/hosts`` naming the VM on its own address (or 127.0.1.1)."""
    own = spec.primary_ip or "127.0.1.1"
    return (_header() + "127.0.0.1\tlocalhost\n" + f"{own}\t{spec.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def render_sudoers(user: str) -> str:
    """A sudoers drop-in granting ``user`` passwordless sudo."""
    return _header() + f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"


def check_user(user) -> str:
    """The user created in new roots (vm_rootfs ``user``): a POSIX user name."""
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise ValidationError("vm_rootfs", "user", user, f"must match {USER_RE.pattern}")
    return user


def check_mirror(url):
    """The Debian mirror (vm_rootfs ``mirror``): an http(s) or file URL; None stays None."""
    if url and (not isinstance(url, str) or not MIRROR_RE.fullmatch(url)):
        raise ValidationError("vm_rootfs", "mirror", url, "must be an http(s) or file URL")
    return url


def render_authorized_keys(keys) -> str:
    """``authorized_keys`` text; every key validated as one OpenSSH public key line."""
    out = []
    for index, key in enumerate(keys):
        key = str(key).strip()
        if not _KEY_RE.fullmatch(key) or bad_char(key) is not None:
            raise ValidationError("vm_rootfs", f"public_keys[{index}]", key[:40],
                                  "is not an OpenSSH public key line")
        out.append(key)
    return "".join(k + "\n" for k in out)


def render_done(spec, suite: str, source: str, stamp: str) -> str:
    """The completion marker: what was installed, from where, when."""
    return (_header() + f"os={spec.os_type} {spec.os_version}\nsuite={suite}\n"
            f"source={source}\ninstalled={stamp}\n")


# The unit that stops the network at shutdown would cut an NFS root away under systemd.
NOSTOP_DROPIN = "etc/systemd/system/networking.service.d/vman-nostop.conf"
NOSTOP_TEXT = _header() + "[Service]\nExecStop=\n"


def guest_files(spec, user: str | None, suite: str) -> dict:
    """``{relative path: (text, mode)}`` written into every new root."""
    files = {
        "etc/fstab": (render_fstab(spec), 0o644),
        "etc/network/interfaces": (render_interfaces(spec), 0o644),
        "etc/hostname": (render_hostname(spec), 0o644),
        "etc/hosts": (render_hosts(spec), 0o644),
        "etc/resolv.conf": (render_resolv_conf(spec), 0o644),
    }
    if spec.storage_type == "nfs" and not spec.manual_root_disk:
        files[NOSTOP_DROPIN] = (NOSTOP_TEXT, 0o644)
    if user and user != "root":
        files[f"etc/sudoers.d/90-vman-{user}"] = (render_sudoers(user), 0o440)
    return files


def debootstrap_argv(debootstrap: str, suite: str, root: str, mirror: str, packages,
                     variant: str = "minbase", tarball: str | None = None) -> list:
    """argv of one debootstrap run: download (default) or ``--unpack-tarball``."""
    argv = [debootstrap, f"--variant={variant}"]
    if packages:
        argv.append("--include=" + ",".join(packages))
    if tarball:
        argv.append(f"--unpack-tarball={tarball}")
    return argv + [suite, root, mirror]


def image_argv(tar: str, image: str, root: str) -> list:
    """argv that extracts a root filesystem image (a tar archive, compressed or not) into ``root``.

    Owners stay numeric (the host's user names mean nothing inside the guest), modes, ACLs and
    extended attributes (file capabilities such as ping's) are kept.
    """
    return [tar, "--extract", f"--file={image}", f"--directory={root}", "--numeric-owner",
            "--same-owner", "--preserve-permissions", "--acls", "--xattrs", "--xattrs-include=*"]


def passwd_ids(passwd_text: str, user: str) -> tuple | None:
    """``(uid, gid, home)`` of ``user`` in a passwd file's text, else None."""
    for line in passwd_text.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    return None


# ---- acting -----------------------------------------------------------------------------

class RootfsInstaller:
    """Install roots; every act goes through ``runner`` (argv) or plain file writes."""

    def __init__(self, debootstrap="debootstrap", chroot="chroot", runner=run, timeout=3600,
                 now=None, tar="tar"):
        self.debootstrap = debootstrap
        self.chroot = chroot
        self.tar = tar
        self.runner = runner
        self.timeout = timeout
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc)
                           .strftime("%Y-%m-%dT%H:%M:%SZ"))

    @staticmethod
    def _inside(root: str, rel: str) -> str:
        """``root/rel``, refusing any path that a symlink would lead out of the root."""
        path = os.path.join(root, rel)
        real_root = os.path.realpath(root)
        real_parent = os.path.realpath(os.path.dirname(path))
        if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
            raise ValidationError(root, "root_path", rel, "leads out of the VM's root")
        return path

    @staticmethod
    def wipe(root: str) -> None:
        """Remove everything inside ``root`` (not ``root`` itself: it may be a mount point)."""
        for entry in os.listdir(root):
            if entry == "lost+found":
                continue
            path = os.path.join(root, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def install(self, spec, root: str, *, suite, mirror, packages, variant, tarball, user,
                keys_text, wipe=False, image=None) -> None:
        """Debootstrap ``root`` (or extract ``image`` into it) and configure it for ``spec``."""
        os.makedirs(root, mode=0o755, exist_ok=True)
        if wipe:
            self.wipe(root)
        else:
            mark = os.path.join(root, INSTALLING_MARK)
            if os.path.exists(mark):
                # an interrupted install of ours: start from scratch
                self.wipe(root)
        with open(os.path.join(root, INSTALLING_MARK), "w", encoding="utf-8") as handle:
            handle.write("install in progress\n")
        if image:
            self.runner(image_argv(self.tar, image, root), timeout=self.timeout)
            if not os.path.isfile(os.path.join(root, "etc/passwd")):
                raise ValidationError(spec.full_name, "image", image,
                                      "holds no root filesystem (no etc/passwd at its top)")
            self._own_host_keys(root)
        else:
            self.runner(debootstrap_argv(self.debootstrap, suite, root, mirror, packages, variant,
                                         tarball), timeout=self.timeout)
        # predictable names would call the NIC enX0; the files above configure eth0
        # (the root is the guest's: nothing below it is written through a symlink)
        if not lexists_below(root, "etc/systemd/network/99-default.link"):
            write_below(root, "etc/systemd/network/99-default.link", None, link="/dev/null")
        for rel, (text, mode) in guest_files(spec, user, suite).items():
            # a symlink there (e.g. resolv.conf pointing at a resolver's runtime file) is replaced
            write_below(root, rel, text, mode)
        if user:
            self._user(root, user, keys_text)
        source = install_source(image, tarball, mirror)
        write_below(root, DONE_FILE, render_done(spec, suite, source, self.now()))
        os.unlink(os.path.join(root, INSTALLING_MARK))

    def _own_host_keys(self, root: str) -> None:
        """Give a root extracted from an image SSH host keys of its own.

        Keys that came with the image would be shared by every VM made from it: they are
        removed and new ones made by the root's own ``ssh-keygen -A`` (in a chroot).
        """
        ssh_dir = self._inside(root, "etc/ssh")
        if not os.path.isdir(ssh_dir) or os.path.islink(ssh_dir):
            return
        for entry in os.listdir(ssh_dir):
            if entry.startswith("ssh_host_") and (entry.endswith("_key") or entry.endswith("_key.pub")):
                os.unlink(os.path.join(ssh_dir, entry))
        if os.path.exists(self._inside(root, "usr/bin/ssh-keygen")):
            self.runner([self.chroot, root, "ssh-keygen", "-A"], timeout=300)

    def _user(self, root: str, user: str, keys_text: str) -> None:
        def ids_now():
            return passwd_ids((read_below(root, "etc/passwd") or b"").decode("utf-8", "replace"), user)

        ids = ids_now()
        if ids is None:
            self.runner([self.chroot, root, "useradd", "--create-home", "--shell", "/bin/bash",
                         "--groups", "sudo", user], timeout=120)
            ids = ids_now()
            if ids is None:
                raise ValidationError(root, "user", user, "useradd did not create the user")
        uid, gid, home = ids
        keys = home.strip("/") + "/.ssh/authorized_keys"
        try:
            write_below(root, keys, keys_text, 0o600, owner=(uid, gid),
                        dir_modes={home.strip("/") + "/.ssh": 0o700})
            ssh_fd = open_parent_below(root, keys, create=False)
        except (OSError, ValueError) as exc:
            raise ValidationError(root, "user", user, f"its home {home!r} cannot take SSH keys "
                                  f"without following a symlink ({exc})") from None
        try:
            os.fchmod(ssh_fd, 0o700)
            os.fchown(ssh_fd, uid, gid)
        finally:
            os.close(ssh_fd)


# ---- batch --------------------------------------------------------------------------------

def split_root_paths(vms) -> tuple:
    """``(vm dicts without root_path, {index: root_path})``: ``root_path`` is ours, not the spec's."""
    if not isinstance(vms, (list, tuple)):
        raise ValidationError("(vms)", "vms", vms, "must be a list of VM dicts")
    clean, paths = [], {}
    for index, vm in enumerate(vms):
        if isinstance(vm, dict) and "root_path" in vm:
            vm = dict(vm)
            paths[index] = vm.pop("root_path")
        clean.append(vm)
    return clean, paths


def plan(specs, root_paths: dict, new_vms, mount_base: str, nfs_base: str | None,
         state_of=root_state) -> list:
    """One entry per VM: ``{name, root_path, root_state, action, reason}`` (pure but for ``state_of``).

    VMs with ``state: absent`` are skipped (a root is never removed here).
    """
    new = set(new_vms or ())
    out = []
    for index, spec in enumerate(specs):
        path = root_path_for(spec, root_paths.get(index), mount_base, nfs_base)
        if spec.state == "absent":
            out.append({"name": spec.full_name, "root_path": path, "root_state": None,
                        "action": "skip", "reason": "state is absent"})
            continue
        current = state_of(path)
        action, reason = decide(spec, current, spec.full_name in new)
        out.append({"name": spec.full_name, "root_path": path, "root_state": current,
                    "action": action, "reason": reason})
    return out


def install_source(image, tarball, mirror) -> str:
    """Where a root comes from, as recorded in the root and returned: image, tarball or mirror."""
    if image:
        return f"image {os.path.basename(image)}"
    if tarball:
        return f"tarball {os.path.basename(tarball)}"
    return mirror


def converge(specs, entries, installer, *, check_mode, mirror, packages, variant, tarball,
             user, keys_text, image=None) -> tuple:
    """Install what :func:`plan` decided; return ``(results, diffs)``.

    With ``image`` the root is that archive, extracted; ``packages``, ``variant``, ``tarball``
    and the mirror are then not used.
    """
    if image and tarball:
        raise ValidationError("vm_rootfs", "image", image, "and tarball exclude each other")
    results, diffs, work = [], [], []
    # validate every VM to install before the first one is touched
    for spec, entry in zip(specs, entries):
        result = dict(entry, changed=entry["action"] != "skip")
        results.append(result)
        if result["changed"]:
            suite = suite_for(spec)
            vm_mirror = mirror or DEFAULT_MIRRORS[spec.os_type]
            result.update(suite=suite, packages=[] if image else map_packages(packages, suite),
                          source=install_source(image, tarball, vm_mirror))
            work.append((spec, entry, result, vm_mirror))
    for spec, entry, result, vm_mirror in work:
        suite = result["suite"]
        files = guest_files(spec, user, suite)
        diffs.append({
            "before_header": f"{entry['root_path']} ({entry['root_state']})",
            "after_header": f"{entry['root_path']} ({spec.os_type} {spec.os_version}, {suite})",
            "before": "" if entry["root_state"] in ("missing", "empty")
            else f"{entry['root_state']} root (wiped)\n",
            "after": "".join(f"--- /{rel}\n{text}" for rel, (text, mode) in sorted(files.items())),
        })
        if not check_mode:
            try:
                installer.install(spec, entry["root_path"], suite=suite, mirror=vm_mirror,
                                  packages=result["packages"], variant=variant, tarball=tarball,
                                  user=user, keys_text=keys_text,
                                  wipe=entry["action"] == "reinstall", image=image)
            except CommandError as exc:
                exc.args = (f"{spec.full_name}: {exc}",)
                raise
    return results, diffs
