# -*- coding: utf-8 -*-
"""vm_rootfs run by ansible-playbook: check mode and diff on a temporary directory, and (marked
real) a real ``debootstrap --unpack-tarball`` install from the cached tarball on this machine, and
an install from a cached root image with the real tar, chroot and ssh-keygen."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from _playbook import ROOT, run_play

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEw8Y2jW1kYd7k3a0Y9o0h2Q3w8vQ9o1bWQm1o3m1o3m test@x"
PACKAGES = ["systemd", "systemd-sysv", "udev", "openssh-server", "sudo", "python", "iproute2", "ifupdown"]


def _vm(tmp_path, **over):
    vm = {"org": "t", "name": "web01", "os": {"type": "debian", "version": "12"},
          "interfaces": [{"ip": "10.200.0.20/24"}], "root_path": str(tmp_path / "roots" / "web01")}
    vm.update(over)
    return vm


def _task(tmp_path, register, vms, **extra):
    args = {"vms": vms, "defaults": {"nfsroot_base": "10.200.0.1:/srv/nfs", "gateway": "10.200.0.1"},
            "new_vms": ["t-web01"], "public_keys": [KEY], "packages": PACKAGES}
    args.update(extra)
    return {"vman.lifecycle.vm_rootfs": args, "register": register}


def _cached(kind):
    """Path of the debootstrap tarball or root image tests/testbed/debian-cache.sh keeps."""
    script = os.path.join(ROOT, "tests", "testbed", "debian-cache.sh")
    mapped = ",".join("python3" if p == "python" else p for p in PACKAGES)
    return subprocess.run(["bash", script, kind, "bookworm", "minbase", mapped], check=True,
                          capture_output=True, text=True, timeout=1800).stdout.strip()


def test_check_mode_diff_and_bad_input(tmp_path):
    got, out = run_play(tmp_path, [
        _task(tmp_path, "check", [_vm(tmp_path)]),
        _task(tmp_path, "bad", [_vm(tmp_path, os={"type": "debian", "version": "7"})]),
        _task(tmp_path, "badkey", [_vm(tmp_path)], public_keys=["nope"]),
    ], check=True, diff=True)
    check = got["check"]
    assert check["changed"] and check["vms"][0]["action"] == "install"
    assert check["vms"][0]["suite"] == "bookworm" and "python3" in check["vms"][0]["packages"]
    assert "+iface eth0 inet manual" in out
    assert not (tmp_path / "roots").exists()
    assert got["bad"]["failed"] and "t-web01" in got["bad"]["msg"] and "os.version" in got["bad"]["msg"]
    assert got["badkey"]["failed"] and "public_keys[0]" in got["badkey"]["msg"]


@pytest.mark.real
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root")
def test_real_unpack_tarball_install_then_idempotent(tmp_path):
    tarball = _cached("tarball")
    vm = _vm(tmp_path)
    try:
        got, dummy = run_play(tmp_path, [
            _task(tmp_path, "first", [vm], tarball=tarball, install_timeout=1800),
            _task(tmp_path, "second", [vm], tarball=tarball),
        ])
        root = tmp_path / "roots" / "web01"
        assert got["first"]["changed"] and not got["first"].get("failed"), got["first"]
        assert not got["second"]["changed"] and got["second"]["vms"][0]["reason"] == "root is already installed"
        assert (root / "usr/bin/python3").exists() and (root / "usr/sbin/sshd").exists()
        assert "ansible:" in (root / "etc/passwd").read_text()
        assert "ansible" in [g.split(":")[3] for g in (root / "etc/group").read_text().splitlines()
                             if g.startswith("sudo:")][0]
        assert (root / "home/ansible/.ssh/authorized_keys").read_text() == KEY + "\n"
        assert (root / "etc/hostname").read_text() == "web01\n"
        assert "source=tarball" in (root / "etc/vman-rootfs").read_text()
    finally:
        # debootstrap mounts proc and sys in the target; never leave them behind
        for sub in ("proc", "sys"):
            path = tmp_path / "roots" / "web01" / sub
            if os.path.ismount(path):
                subprocess.run(["umount", "-l", str(path)], check=False)
        shutil.rmtree(tmp_path / "roots", ignore_errors=True)


@pytest.mark.real
@pytest.mark.skipif(os.geteuid() != 0, reason="extracting owners and chroot need root")
def test_real_image_install_own_host_keys(tmp_path):
    """The image option with the real tar, chroot, useradd and ssh-keygen -A of the root."""
    image = _cached("rootfs")
    first = _vm(tmp_path)
    second = _vm(tmp_path, name="web02", root_path=str(tmp_path / "roots" / "web02"),
                 interfaces=[{"ip": "10.200.0.21/24"}])
    try:
        got, dummy = run_play(tmp_path, [
            _task(tmp_path, "first", [first, second], image=image, new_vms=["t-web01", "t-web02"]),
            _task(tmp_path, "again", [first, second], image=image, new_vms=["t-web01", "t-web02"]),
        ])
        assert got["first"]["changed"] and not got["first"].get("failed"), got["first"]
        assert [v["source"] for v in got["first"]["vms"]] == [f"image {os.path.basename(image)}"] * 2
        assert not got["again"]["changed"]
        keys = []
        for name in ("web01", "web02"):
            root = tmp_path / "roots" / name
            assert (root / "usr/sbin/sshd").exists() and "ansible:" in (root / "etc/passwd").read_text()
            assert (root / "home/ansible/.ssh/authorized_keys").read_text() == KEY + "\n"
            private = root / "etc/ssh/ssh_host_ed25519_key"
            assert oct(private.stat().st_mode & 0o777) == "0o600"
            keys.append((root / "etc/ssh/ssh_host_ed25519_key.pub").read_text())
            assert (root / "etc/hostname").read_text() == f"{name}\n"
        # each root has host keys of its own
        assert keys[0] != keys[1]
    finally:
        shutil.rmtree(tmp_path / "roots", ignore_errors=True)
