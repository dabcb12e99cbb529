# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xen_initrd in the Xen testbed's dom0 with the real dracut: build, skip, rebuild on changed
flags, the kernel hooks building for a newly "installed" kernel, removal of a removed kernel's
initrd. dracut under TCG is slow, so these runs use a small module list; one full build with
the module's default list runs only with VMAN_XEN_FULL_INITRD=1 (see tests/testbed/README.md
for the times measured)."""

from __future__ import annotations

import os
import time

import pytest

from xen_play import play

pytestmark = pytest.mark.real

DEST = "/var/tmp/vman-initrd-test"
# Small, but a real initrd: dracut's base module and its dependencies, no kernel modules, and
# none of the work that makes dracut slow under TCG (measured in the testbed with the host
# loaded by three other emulated guests: 11 min 16 s for "base" with Debian's default
# add_dracutmodules "ifcfg" that pulls in systemd-networkd, 2 min 41 s with these flags).
MODULES = ["base"]
FLAGS = "--no-kernel --no-compress --omit ifcfg --nostrip --nohardlink --no-early-microcode"
FAKE = "-vmantest"  # suffix of the second kernel "installed" by the test


def _initrd(version):
    return f"{DEST}/initrd.img-{version}"


def _task(register, **params):
    args = {"modules": MODULES, "extra_flags": FLAGS, "dest_dir": DEST}
    args.update(params)
    return {"vman.lifecycle.xen_initrd": args, "register": register}


def _entries(result):
    assert not result.get("failed"), result.get("msg")
    return {e["kernel"]: e for e in result["initrds"]}


def _mtime(tb, path):
    return tb.ssh(["stat", "-c", "%Y.%s", path]).stdout.strip()


@pytest.fixture
def clean(xen_testbed):
    tb = xen_testbed
    kernel = tb.ssh(["sh", "-c", "ls /lib/modules | sort -V | tail -n 1"]).stdout.strip()
    fake = kernel + FAKE

    def wipe():
        tb.ssh(["rm", "-rf", DEST, f"/lib/modules/{fake}", f"/boot/vmlinuz-{fake}",
                "/etc/kernel/postinst.d/zz-vman-xen-initrd", "/etc/kernel/postrm.d/zz-vman-xen-initrd"],
               check=False)
    wipe()
    yield tb, kernel, fake
    wipe()


def test_build_skip_rebuild_hooks_remove(clean, tmp_path):
    tb, kernel, fake = clean
    # 1. check mode: reports the build, creates nothing
    res, _s = play(tb, tmp_path, [_task("check")], check=True, diff=True, name="check")
    entry = _entries(res["check"])[kernel]
    assert res["check"]["changed"] and entry["action"] == "build" and entry["reason"] == "missing"
    assert _initrd(kernel) in res["check"]["diff"]["after"]
    assert tb.ssh(["test", "-e", DEST], check=False).rc != 0

    # 2. the real build, then a second run that builds nothing
    res, seconds = play(tb, tmp_path, [_task("first"), _task("second")], name="build")
    print(f"TIMING xen_initrd minimal build + skip run {seconds:.1f}s")
    assert _entries(res["first"])[kernel]["changed"]
    second = _entries(res["second"])[kernel]
    assert not res["second"]["changed"] and second["reason"] == "up to date"
    listing = tb.ssh(["lsinitrd", _initrd(kernel)], timeout=300).stdout
    header = listing.split("dracut modules:", 1)
    assert f"--kver '{kernel}' --modules 'base' --no-kernel" in header[0], listing[:1000]
    assert "base" in header[1].split("=====", 1)[0].split()
    assert "usr/lib/dracut/hooks" in listing or "usr/bin/" in listing
    assert int(tb.ssh(["stat", "-c", "%s", _initrd(kernel)]).stdout) > 1_000_000
    assert tb.ssh(["stat", "-c", "%a", _initrd(kernel)]).stdout.strip() == "644"
    record = tb.ssh(["cat", _initrd(kernel) + ".inputs"]).stdout
    assert f"kernel={kernel}\n" in record and "modules=base\n" in record
    assert f"extra_flags={FLAGS}\n" in record and "dracut=dracut 059" in record
    built = _mtime(tb, _initrd(kernel))

    # 3. changed flags: the rebuild is planned (check mode, so no second slow build here;
    #    the rebuild itself is covered by the unit tests); then the hooks go in, nothing rebuilt
    flags = FLAGS + " --omit 'plymouth'"
    res, _s = play(tb, tmp_path, [_task("flags", extra_flags=flags, hooks=True)], check=True, name="flags")
    assert _entries(res["flags"])[kernel]["reason"] == "changed: extra_flags"
    assert _mtime(tb, _initrd(kernel)) == built
    assert tb.ssh(["test", "-e", "/etc/kernel/postinst.d/zz-vman-xen-initrd"], check=False).rc != 0
    res, _s = play(tb, tmp_path, [_task("hooks", hooks=True)], name="hooks")
    assert res["hooks"]["changed"] and not _entries(res["hooks"])[kernel]["changed"]
    assert {h["state"] for h in res["hooks"]["hooks"]} == {"present"}
    assert _mtime(tb, _initrd(kernel)) == built

    # 4. a second kernel appears; the postinst hook (what the kernel package runs) builds its
    #    initrd with real dracut, and the module then finds it up to date
    tb.ssh(["ln", "-s", f"/lib/modules/{kernel}", f"/lib/modules/{fake}"])
    tb.ssh(["cp", f"/boot/vmlinuz-{kernel}", f"/boot/vmlinuz-{fake}"])
    started = time.monotonic()
    tb.ssh(["/etc/kernel/postinst.d/zz-vman-xen-initrd", fake, f"/boot/vmlinuz-{fake}"], timeout=1800)
    print(f"TIMING postinst hook build {time.monotonic() - started:.1f}s")
    assert f"--kver '{fake}'" in tb.ssh(["lsinitrd", _initrd(fake)], timeout=300).stdout
    res, _s = play(tb, tmp_path, [_task("after_hook", hooks=True)], name="hook")
    entries = _entries(res["after_hook"])
    assert not res["after_hook"]["changed"], res["after_hook"]
    assert entries[fake]["reason"] == "up to date" and entries[kernel]["reason"] == "up to date"

    # 5. the second kernel goes away: its initrd and record go too; hooks removed on request
    tb.ssh(["rm", "-f", f"/lib/modules/{fake}", f"/boot/vmlinuz-{fake}"])
    res, _s = play(tb, tmp_path, [_task("removed", hooks=False)], name="removed")
    entry = _entries(res["removed"])[fake]
    assert entry["action"] == "remove" and entry["changed"]
    assert tb.ssh(["test", "-e", _initrd(fake)], check=False).rc != 0
    assert tb.ssh(["test", "-e", _initrd(fake) + ".inputs"], check=False).rc != 0
    assert tb.ssh(["test", "-e", "/etc/kernel/postinst.d/zz-vman-xen-initrd"], check=False).rc != 0
    assert tb.ssh(["test", "-e", _initrd(kernel)]).rc == 0


def test_bad_module_name_fails_clearly(clean, tmp_path):
    tb, _kernel, _fake = clean
    res, _s = play(tb, tmp_path, [_task("bad", modules=["base", "vman-no-such-module"])], name="bad")
    assert res["bad"]["failed"]
    assert "vman-no-such-module" in res["bad"]["msg"] and "not found in /usr/lib/dracut/modules.d" in res["bad"]["msg"]


@pytest.mark.skipif(os.environ.get("VMAN_XEN_FULL_INITRD") != "1",
                    reason="a full dracut initrd takes many minutes under TCG: VMAN_XEN_FULL_INITRD=1")
def test_full_default_initrd(clean, tmp_path):
    """The default module list (network-legacy, nfs, systemd ...) builds in dom0."""
    tb, kernel, _fake = clean
    # the default list has console-setup, whose dracut check needs the console-setup package
    if tb.ssh(["test", "-x", "/bin/setupcon"], check=False).rc != 0:
        res, _s = play(tb, tmp_path, [{"vman.lifecycle.xen_initrd": {"dest_dir": DEST}, "register": "lacks"}],
                       name="lacks")
        assert "install the package console-setup" in res["lacks"]["msg"]
        tb.ssh(["env", "DEBIAN_FRONTEND=noninteractive", "sh", "-c",
                "apt-get update -q && apt-get install -y -q --no-install-recommends console-setup"],
               timeout=1800)
    res, seconds = play(tb, tmp_path, [{"vman.lifecycle.xen_initrd": {"dest_dir": DEST}, "register": "full"}],
                        name="full", timeout=3600)
    print(f"TIMING xen_initrd full default build {seconds:.1f}s")
    assert _entries(res["full"])[kernel]["changed"]
    listing = tb.ssh(["lsinitrd", _initrd(kernel)], timeout=600).stdout
    for needle in ("nfs", "network-legacy", "xen-netfront", "systemd"):
        assert needle in listing, needle
