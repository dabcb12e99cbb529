# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_root in the Xen testbed's dom0: a tgt target on the dom0 itself serves a file-backed
LUN; the module discovers, logs in with the real iscsiadm, waits for the by-path device, makes
the filesystem once (blkid proves it, a second run does not touch it), reinstalls on request,
logs out; an unreachable server fails within the login timeout."""

from __future__ import annotations

import time

import pytest

from xen_play import play

pytestmark = pytest.mark.real

SERVER = "10.200.0.1"   # dom0's xenbr0 address: where domUs would reach the target too
WWN = "iqn.2026-11.org.example.vman"
TID = 77
LUN = 1                 # tgt keeps LUN 0 of every target for its controller
BACKING = "/var/tmp/vman-iscsi-test-root.img"
VM = {"org": "vmantest", "name": "iroot", "storage_type": "iscsi", "filesystem": "ext4"}
IQN = f"{WWN}:vmantest-iroot"
DEVICE = f"/dev/disk/by-path/ip-{SERVER}:3260-iscsi-{IQN}-lun-{LUN}"
DEFAULTS = {"iscsi_server": SERVER, "iscsi_base_wwn": WWN, "nfsroot_base": "10.200.0.1:/srv/nfs"}
NFS_VM = {"org": "vmantest", "name": "nfsvm", "storage_type": "nfs", "interfaces": [{"ip": "10.200.0.9"}]}


def _tgtadm(tb, *args, check=True):
    return tb.ssh(["tgtadm", "--lld", "iscsi", *args], check=check)


def _teardown(tb):
    tb.ssh(["iscsiadm", "-m", "node", "-T", IQN, "--logout"], check=False, timeout=60)
    tb.ssh(["iscsiadm", "-m", "node", "-T", IQN, "-o", "delete"], check=False)
    _tgtadm(tb, "--op", "delete", "--mode", "target", "--tid", str(TID), "--force", check=False)
    tb.ssh(["rm", "-f", BACKING], check=False)


@pytest.fixture
def target(xen_testbed):
    """A tgt target with one empty 64 MiB file-backed LUN, on the dom0 itself."""
    tb = xen_testbed
    _teardown(tb)
    tb.ssh(["systemctl", "start", "tgt.service", "iscsid.socket"], timeout=120)
    tb.ssh(["truncate", "-s", "64M", BACKING])
    _tgtadm(tb, "--op", "new", "--mode", "target", "--tid", str(TID), "-T", IQN)
    _tgtadm(tb, "--op", "new", "--mode", "logicalunit", "--tid", str(TID), "--lun", str(LUN), "-b", BACKING)
    _tgtadm(tb, "--op", "bind", "--mode", "target", "--tid", str(TID), "-I", "ALL")
    yield tb
    _teardown(tb)


def _task(register, state="present", vms=None, **params):
    args = {"vms": vms or [NFS_VM, VM], "defaults": DEFAULTS, "state": state, "lun": LUN,
            "login_timeout": 40, "logout_timeout": 40, "device_timeout": 60}
    args.update(params)
    return {"vman.lifecycle.iscsi_root": args, "register": register}


def _only(result):
    assert not result.get("failed"), result.get("msg")
    assert [v["name"] for v in result["vms"]] == ["vmantest-iroot"]  # the NFS VM is skipped
    return result["vms"][0]


def _sessions(tb):
    res = tb.ssh(["iscsiadm", "-m", "session"], check=False)
    return res.stdout if res.rc == 0 else ""


def _uuid(tb):
    return tb.ssh(["blkid", "-p", "-o", "value", "-s", "UUID", DEVICE]).stdout.strip()


def test_login_mkfs_once_reinstall_logout(target, tmp_path):
    tb = target
    # check mode: would log in, changes nothing
    res, _s = play(tb, tmp_path, [_task("check")], check=True, diff=True, name="check")
    vm = _only(res["check"])
    assert vm["changed"] and not vm["mkfs"] and IQN not in _sessions(tb)
    assert res["check"]["diff"][0]["after"].startswith("vmantest-iroot: logged_in=True")

    # login + mkfs on the empty LUN, then a second run that does nothing
    res, seconds = play(tb, tmp_path, [_task("first"), _task("second")], name="login")
    print(f"TIMING iscsi_root login+mkfs and idempotent run {seconds:.1f}s")
    first, second = _only(res["first"]), _only(res["second"])
    assert first == {"name": "vmantest-iroot", "org": "vmantest", "iqn": IQN, "portal": f"{SERVER}:3260",
                     "device": DEVICE, "logged_in": True, "mkfs": True, "filesystem": "ext4",
                     "changed": True}
    assert IQN in _sessions(tb)
    assert tb.ssh(["test", "-b", DEVICE]).rc == 0
    assert tb.ssh(["blkid", "-p", "-o", "value", "-s", "TYPE", DEVICE]).stdout.strip() == "ext4"
    uuid = _uuid(tb)
    assert not second["changed"] and not second["mkfs"] and second["filesystem"] == "ext4"
    assert _uuid(tb) == uuid  # the filesystem made by the first run is untouched

    # a LUN that holds a filesystem the module did not make is never formatted either
    tb.ssh(["wipefs", "-a", DEVICE])
    tb.ssh(["mkfs.ext2", "-q", "-L", "keepme", DEVICE], timeout=120)
    res, _s = play(tb, tmp_path, [_task("foreign", vms=[dict(VM, filesystem="ext4")])], name="foreign")
    vm = _only(res["foreign"])
    assert not vm["changed"] and not vm["mkfs"] and vm["filesystem"] == "ext2"
    assert tb.ssh(["blkid", "-p", "-o", "value", "-s", "LABEL", DEVICE]).stdout.strip() == "keepme"

    # reinstall: a new filesystem, every time it is asked for
    res, _s = play(tb, tmp_path, [_task("reinstall", vms=[dict(VM, reinstall=True)])], name="reinstall")
    vm = _only(res["reinstall"])
    assert vm["changed"] and vm["mkfs"]
    assert tb.ssh(["blkid", "-p", "-o", "value", "-s", "TYPE", DEVICE]).stdout.strip() == "ext4"
    assert _uuid(tb) != uuid

    # logout, then nothing left to do
    res, seconds = play(tb, tmp_path, [_task("out", state="absent"), _task("out_again", state="absent")],
                        name="logout")
    print(f"TIMING iscsi_root logout and idempotent run {seconds:.1f}s")
    out, again = _only(res["out"]), _only(res["out_again"])
    assert out["changed"] and not out["logged_in"] and IQN not in _sessions(tb)
    assert not again["changed"]
    deadline = time.monotonic() + 30
    while tb.ssh(["test", "-e", DEVICE], check=False).rc == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert tb.ssh(["test", "-e", DEVICE], check=False).rc != 0


def test_unreachable_server_fails_within_the_login_timeout(xen_testbed, tmp_path):
    tb = xen_testbed
    defaults = dict(DEFAULTS, iscsi_server="10.200.0.254")  # on the bridge, nobody answers
    res, seconds = play(tb, tmp_path, [_task("late", defaults=defaults, login_timeout=5)], name="late")
    print(f"TIMING iscsi_root unreachable server {seconds:.1f}s")
    assert res["late"]["failed"]
    # nobody answers on the bridge: iscsiadm would keep trying; the login timeout stops it
    assert res["late"]["msg"].startswith("vmantest-iroot: iSCSI discovery on 10.200.0.254:3260 failed: ")
    assert res["late"]["msg"].endswith("timed out after 5 s")
    assert seconds < 120
    assert IQN not in _sessions(tb)
