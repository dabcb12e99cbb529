# -*- coding: utf-8 -*-
"""Tests of _rootfs: pure rendering and decisions, and the installer on a temporary root with a
fake debootstrap/chroot runner (named FakeRunner; the real debootstrap runs in the Xen testbed
through molecule/xen_vman)."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _rootfs, _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result, run

DEFAULTS = {"nfsroot_base": "10.200.0.1:/srv/nfs", "gateway": "10.200.0.1",
            "iscsi_server": "10.0.0.3", "iscsi_base_wwn": "iqn.2024-01.org.example"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEw8Y2jW1kYd7k3a0Y9o0h2Q3w8vQ9o1bWQm1o3m1o3m admin@x"


def spec(**over):
    vm = {"org": "stuvus", "name": "web01", "os": {"type": "debian", "version": "12"},
          "interfaces": [{"ip": "10.200.0.15/24", "mtu": 1400}]}
    vm.update(over)
    return _spec.normalize(vm, DEFAULTS)


class FakeRunner:
    """Stands in for debootstrap and chroot: records argv, makes a minimal tree."""

    def __init__(self, fail_debootstrap=False):
        self.calls = []
        self.fail_debootstrap = fail_debootstrap

    def __call__(self, argv, timeout=None, check=True, **kw):
        self.calls.append(list(argv))
        if argv[0].endswith("debootstrap"):
            root = argv[-2]
            if self.fail_debootstrap:
                os.makedirs(os.path.join(root, "usr"), exist_ok=True)
                raise CommandError(argv, 1, "", "E: Couldn't download packages")
            os.makedirs(os.path.join(root, "etc"), exist_ok=True)
            with open(os.path.join(root, "etc/passwd"), "w", encoding="utf-8") as handle:
                handle.write("root:x:0:0:root:/root:/bin/bash\n")
            os.symlink("../run/systemd/resolve/stub-resolv.conf", os.path.join(root, "etc/resolv.conf"))
        elif argv[0].endswith("chroot") and argv[2] == "useradd":
            root, user = argv[1], argv[-1]
            with open(os.path.join(root, "etc/passwd"), "a", encoding="utf-8") as handle:
                handle.write(f"{user}:x:{os.getuid()}:{os.getgid()}::/home/{user}:/bin/bash\n")
            os.makedirs(os.path.join(root, "home", user))
        return Result(argv, 0, "", "")


# ---- pure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("os_type,version,suite", [
    ("debian", "12", "bookworm"), ("debian", "bookworm", "bookworm"), ("debian", "11", "bullseye"),
    ("ubuntu", "18.04", "bionic"), ("ubuntu", "noble", "noble"),
])
def test_suite_for(os_type, version, suite):
    assert _rootfs.suite_for(spec(os={"type": os_type, "version": version})) == suite


def test_suite_for_unknown_names_vm_and_field():
    with pytest.raises(ValidationError) as err:
        _rootfs.suite_for(spec(os={"type": "debian", "version": "99"}))
    assert "stuvus-web01" in str(err.value) and "os.version" in str(err.value)
    with pytest.raises(ValidationError, match="os.type"):
        _rootfs.suite_for(spec(os={"type": "arch", "version": "1"}))


def test_python_maps_to_python3_where_python2_is_gone():
    assert "python3" in _rootfs.map_packages(_rootfs.DEFAULT_PACKAGES, "bookworm")
    assert "python" not in _rootfs.map_packages(_rootfs.DEFAULT_PACKAGES, "bookworm")
    assert "python" in _rootfs.map_packages(_rootfs.DEFAULT_PACKAGES, "bionic")
    assert _rootfs.map_packages(["python", "python3", "sudo"], "bookworm") == ["python3", "sudo"]
    with pytest.raises(ValidationError, match="packages"):
        _rootfs.map_packages(["sudo", "bad pkg;rm"], "bookworm")


def test_debootstrap_argv_download_and_tarball():
    assert _rootfs.debootstrap_argv("/usr/sbin/debootstrap", "bookworm", "/r/x", "http://m/debian",
                                    ["sudo", "python3"]) == [
        "/usr/sbin/debootstrap", "--variant=minbase", "--include=sudo,python3", "bookworm", "/r/x",
        "http://m/debian"]
    argv = _rootfs.debootstrap_argv("debootstrap", "bookworm", "/r/x", "http://m", [], tarball="/t.tgz")
    assert argv == ["debootstrap", "--variant=minbase", "--unpack-tarball=/t.tgz", "bookworm", "/r/x",
                    "http://m"]


def test_root_paths():
    assert _rootfs.root_path_for(spec(), None, "/mnt/vms", None) == "/srv/nfs/stuvus/web01-root"
    assert _rootfs.root_path_for(spec(), None, "/mnt/vms", "/export/") == "/export/stuvus/web01-root"
    assert _rootfs.root_path_for(spec(storage_type="iscsi"), None, "/mnt/vms/", None) == \
        "/mnt/vms/stuvus-web01"
    assert _rootfs.root_path_for(spec(), "/data/r/", "/mnt/vms", None) == "/data/r"
    assert _rootfs.local_nfs_base("/srv/nfs") == "/srv/nfs"
    for bad in ("relative/x", "/", "/srv", "/srv/../etc/x"):
        with pytest.raises(ValidationError, match="root_path"):
            _rootfs.root_path_for(spec(), bad, "/mnt/vms", None)


@pytest.mark.parametrize("state,new,reinstall,auto,action", [
    ("empty", True, False, True, "install"),
    ("missing", True, False, True, "install"),
    ("empty", False, False, True, "skip"),       # had a config before: auto_install does nothing
    ("empty", True, False, False, "skip"),       # auto_install off
    ("installed", True, False, True, "skip"),    # never touch an existing root
    ("incomplete", False, False, True, "install"),
    ("installed", False, True, True, "reinstall"),
])
def test_decide(state, new, reinstall, auto, action):
    assert _rootfs.decide(spec(reinstall=reinstall, auto_install=auto), state, new)[0] == action


def test_root_state(tmp_path):
    assert _rootfs.root_state(str(tmp_path / "nope")) == "missing"
    (tmp_path / "lost+found").mkdir()
    assert _rootfs.root_state(str(tmp_path)) == "empty"
    (tmp_path / "etc").mkdir()
    assert _rootfs.root_state(str(tmp_path)) == "installed"
    (tmp_path / _rootfs.INSTALLING_MARK).write_text("")
    assert _rootfs.root_state(str(tmp_path)) == "incomplete"


def test_interfaces_nfs_root_is_manual_with_mtu_and_dns():
    text = _rootfs.render_interfaces(spec())
    assert "iface eth0 inet manual" in text and "auto eth0" not in text
    assert "    mtu 1400" in text and "dns-nameservers 8.8.8.8 8.8.4.4" in text


def test_interfaces_mtu_is_the_first_interfaces_only():
    text = _rootfs.render_interfaces(spec(storage_type="iscsi", interfaces=[
        {"ip": "10.200.0.15/24"}, {"ip": "10.201.0.15/24", "mtu": 9000}]))
    assert "mtu" not in text
    text = _rootfs.render_interfaces(spec(storage_type="iscsi", interfaces=[
        {"ip": "10.200.0.15/24", "mtu": 1400}, {"ip": "10.201.0.15/24", "mtu": 9000}]))
    assert "    mtu 1400" in text and "9000" not in text


def test_interfaces_ipv6_of_the_first_interface():
    text = _rootfs.render_interfaces(spec(storage_type="iscsi", interfaces=[
        {"ip": "10.200.0.15/24", "ipv6": "fd76:5eac:234:70c8::15"}, {"ipv6": "fd00::9"}]))
    assert "iface eth0 inet6 static\n    address fd76:5eac:234:70c8::15/64\n" in text
    assert "fd00::9" not in text
    text = _rootfs.render_interfaces(spec(storage_type="iscsi", interfaces=[
        {"ip": "10.200.0.15/24", "ipv6": "2001:db8::5/56"}]))
    assert "    address 2001:db8::5/56" in text
    # NFS root: eth0 stays manual, ifupdown never brings it up
    assert "inet6" not in _rootfs.render_interfaces(spec(interfaces=[
        {"ip": "10.200.0.15/24", "ipv6": "2001:db8::5"}]))


def test_interfaces_without_address():
    # NFS root by DHCP: the initrd configured eth0, ifupdown must not touch it
    text = _rootfs.render_interfaces(spec(interfaces=[{"mac": "00:16:3e:00:00:07"}]))
    assert "iface eth0 inet manual" in text and "dhcp" not in text and "auto eth0" not in text
    text = _rootfs.render_interfaces(spec(storage_type="iscsi", interfaces=[{}]))
    assert "auto eth0\niface eth0 inet dhcp\n" in text


def test_interfaces_static_from_connection_ip():
    text = _rootfs.render_interfaces(spec(storage_type="iscsi", connection_ip="10.9.0.5/26"))
    assert "auto eth0\niface eth0 inet static\n    address 10.9.0.5/26\n    gateway 10.200.0.1\n" in text


def test_fstab_hosts_hostname():
    assert "10.200.0.1:/srv/nfs/stuvus/web01-root / nfs defaults,_netdev 0 0" in _rootfs.render_fstab(spec())
    iscsi = spec(storage_type="iscsi", filesystem="xfs")
    assert "/dev/xvda / xfs defaults,errors=remount-ro 0 1" in _rootfs.render_fstab(iscsi)
    assert "10.200.0.15\tweb01\n" in _rootfs.render_hosts(spec())
    assert _rootfs.render_hostname(spec()) == "web01\n"


def test_authorized_keys_validated():
    assert _rootfs.render_authorized_keys([KEY, " " + KEY + "\n"]) == KEY + "\n" + KEY + "\n"
    with pytest.raises(ValidationError, match=r"public_keys\[1\]"):
        _rootfs.render_authorized_keys([KEY, "not a key"])


def test_split_root_paths_keeps_input_intact():
    vms = [{"org": "a", "name": "b", "root_path": "/x/y"}, {"org": "a", "name": "c"}]
    clean, paths = _rootfs.split_root_paths(vms)
    assert paths == {0: "/x/y"} and "root_path" not in clean[0] and "root_path" in vms[0]


# ---- installer ------------------------------------------------------------------------------

def _converge(tmp_path, specs, new, runner, check_mode=False, tarball=None, image=None):
    entries = _rootfs.plan(specs, {}, new, str(tmp_path / "mnt"), str(tmp_path / "nfs"))
    installer = _rootfs.RootfsInstaller(debootstrap="/usr/sbin/debootstrap", chroot="/usr/sbin/chroot",
                                        runner=runner, now=lambda: "2026-01-01T00:00:00Z",
                                        tar="tar")
    return _rootfs.converge(specs, entries, installer, check_mode=check_mode, mirror=None,
                            packages=list(_rootfs.DEFAULT_PACKAGES), variant="minbase",
                            tarball=tarball, user="ansible", keys_text=KEY + "\n", image=image)


def _image(path, passwd="root:x:0:0:root:/root:/bin/bash\n"):
    """A small root filesystem archive: etc/passwd, a setuid file, a symlink (gzip-compressed)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text, mode in (("etc/passwd", passwd, 0o644), ("usr/bin/su", "#!/bin/sh\n", 0o4755),
                                 ("usr/bin/ssh-keygen", "#!/bin/sh\n", 0o755),
                                 ("etc/ssh/ssh_host_ed25519_key", "IMAGE PRIVATE KEY\n", 0o600),
                                 ("etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA image\n", 0o644),
                                 ("etc/ssh/sshd_config", "# config\n", 0o644)):
            info = tarfile.TarInfo(name)
            data = text.encode()
            info.size, info.mode, info.uid, info.gid = len(data), mode, 0, 0
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("etc/resolv.conf")
        link.type, link.linkname = tarfile.SYMTYPE, "../run/systemd/resolve/stub-resolv.conf"
        archive.addfile(link)
    return str(path)


class TarThenFake(FakeRunner):
    """The REAL tar (``_runner.run``) extracts the image; chroot/useradd stay FAKE."""

    def __call__(self, argv, timeout=None, check=True, **kw):
        if argv[0] == "tar":
            self.calls.append(list(argv))
            return run(argv, timeout=timeout, check=check)
        return super().__call__(argv, timeout=timeout, check=check, **kw)


def test_install_from_an_image_with_real_tar(tmp_path):
    image = _image(tmp_path / "root.tar.gz")
    runner = TarThenFake()
    results, _diffs = _converge(tmp_path, [spec()], ["stuvus-web01"], runner, image=image)
    root = tmp_path / "nfs/stuvus/web01-root"
    assert results[0]["changed"] and results[0]["packages"] == []
    assert results[0]["source"] == "image root.tar.gz"
    assert runner.calls[0][:3] == ["tar", "--extract", f"--file={image}"]
    assert not any(c[0].endswith("debootstrap") for c in runner.calls)
    assert stat.S_IMODE((root / "usr/bin/su").stat().st_mode) == 0o4755
    assert not (root / "etc/resolv.conf").is_symlink()  # replaced, not followed
    assert (root / "etc/hostname").read_text() == "web01\n"
    assert (root / "home/ansible/.ssh/authorized_keys").read_text() == KEY + "\n"
    assert "source=image root.tar.gz" in (root / "etc/vman-rootfs").read_text()
    # the image's host keys are not shared by every VM: removed, new ones made in the root
    assert sorted(os.listdir(root / "etc/ssh")) == ["sshd_config"]
    assert ["/usr/sbin/chroot", str(root), "ssh-keygen", "-A"] in runner.calls


def test_image_without_a_root_filesystem_is_refused(tmp_path):
    bad = tmp_path / "notroot.tar"
    with tarfile.open(bad, "w") as archive:
        info = tarfile.TarInfo("data/readme")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValidationError) as err:
        _converge(tmp_path, [spec()], ["stuvus-web01"], TarThenFake(), image=str(bad))
    assert err.value.field == "image" and "no etc/passwd" in str(err.value)
    with pytest.raises(ValidationError, match="exclude each other"):
        _converge(tmp_path, [spec()], ["stuvus-web01"], TarThenFake(), image=str(bad),
                  tarball="/c/b.tgz")


def test_install_new_vm_then_idempotent(tmp_path):
    runner = FakeRunner()
    results, diffs = _converge(tmp_path, [spec()], ["stuvus-web01"], runner, tarball="/c/b.tgz")
    root = tmp_path / "nfs/stuvus/web01-root"
    assert results[0]["changed"] and results[0]["action"] == "install"
    assert runner.calls[0] == ["/usr/sbin/debootstrap", "--variant=minbase",
                               "--include=systemd,systemd-sysv,udev,openssh-server,sudo,python3,"
                               "iproute2,ifupdown", "--unpack-tarball=/c/b.tgz", "bookworm",
                               str(root), "http://deb.debian.org/debian"]
    assert runner.calls[1] == ["/usr/sbin/chroot", str(root), "useradd", "--create-home", "--shell",
                               "/bin/bash", "--groups", "sudo", "ansible"]
    keys = root / "home/ansible/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n" and stat.S_IMODE(keys.stat().st_mode) == 0o600
    sudoers = root / "etc/sudoers.d/90-vman-ansible"
    assert "ansible ALL=(ALL:ALL) NOPASSWD: ALL" in sudoers.read_text()
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440
    # the symlinked resolv.conf was replaced by a file, not followed out of the root
    assert not (root / "etc/resolv.conf").is_symlink()
    assert os.readlink(root / "etc/systemd/network/99-default.link") == "/dev/null"
    assert "source=tarball b.tgz" in (root / "etc/vman-rootfs").read_text()
    assert not (root / _rootfs.INSTALLING_MARK).exists()
    assert "--- /etc/network/interfaces" in diffs[0]["after"]

    again = FakeRunner()
    results, diffs = _converge(tmp_path, [spec()], ["stuvus-web01"], again)
    assert not results[0]["changed"] and results[0]["reason"] == "root is already installed"
    assert again.calls == [] and diffs == []


def test_check_mode_touches_nothing(tmp_path):
    runner = FakeRunner()
    results, diffs = _converge(tmp_path, [spec()], ["stuvus-web01"], runner, check_mode=True)
    assert results[0]["changed"] and len(diffs) == 1 and runner.calls == []
    assert not (tmp_path / "nfs").exists()


def test_existing_root_kept_until_reinstall(tmp_path):
    root = tmp_path / "nfs/stuvus/web01-root"
    (root / "srv").mkdir(parents=True)
    (root / "srv/data").write_text("precious")
    results = _converge(tmp_path, [spec()], ["stuvus-web01"], FakeRunner())[0]
    assert not results[0]["changed"] and (root / "srv/data").read_text() == "precious"
    results = _converge(tmp_path, [spec(reinstall=True)], [], FakeRunner())[0]
    assert results[0]["action"] == "reinstall" and not (root / "srv").exists()
    assert (root / "etc/hostname").read_text() == "web01\n"


def test_interrupted_install_is_redone(tmp_path):
    with pytest.raises(CommandError, match="stuvus-web01"):
        _converge(tmp_path, [spec()], ["stuvus-web01"], FakeRunner(fail_debootstrap=True))
    root = tmp_path / "nfs/stuvus/web01-root"
    assert (root / _rootfs.INSTALLING_MARK).exists()
    results = _converge(tmp_path, [spec()], [], FakeRunner())[0]
    assert results[0]["action"] == "install" and not (root / "usr").exists()
    assert (root / "etc/vman-rootfs").exists()


def test_bad_vm_fails_before_any_install(tmp_path):
    runner = FakeRunner()
    specs = [spec(), spec(name="web02", os={"type": "debian", "version": "99"})]
    with pytest.raises(ValidationError, match="stuvus-web02"):
        _converge(tmp_path, specs, ["stuvus-web01", "stuvus-web02"], runner)
    assert runner.calls == []


def test_absent_vm_skipped(tmp_path):
    results = _converge(tmp_path, [spec(state="absent")], ["stuvus-web01"], FakeRunner())[0]
    assert results[0]["action"] == "skip" and results[0]["reason"] == "state is absent"
