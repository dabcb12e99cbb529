# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iSCSI roots: naming, the iscsiadm/blkid parsers, VM selection, and IscsiRoots driven by a
FAKE runner (a scripted iscsiadm/blkid/mkfs/xl that records every argv). The real iscsiadm,
tgt target, blkid and mkfs run in tests/testbed/test_iscsi_root_real.py."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _iscsi
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result

WWN = "iqn.2003-01.org.example"
DEFAULTS = {"iscsi_server": "10.200.0.1", "iscsi_base_wwn": WWN, "storage_type": "iscsi"}
IQN = f"{WWN}:stuvus-web01"
DEV = f"/dev/disk/by-path/ip-10.200.0.1:3260-iscsi-{IQN}-lun-0"


def test_naming():
    assert _iscsi.target_iqn(WWN, "stuvus", "web01") == IQN
    assert _iscsi.portal("fe80::1") == "[fe80::1]:3260"
    # the original xen_vman takes host:port (it writes the server verbatim into by-path names)
    assert _iscsi.portal("10.200.0.1:3261") == "10.200.0.1:3261"
    assert _iscsi.portal("10.200.0.1:3260") == "10.200.0.1:3260"
    assert _iscsi.portal("[fe80::1]:3262") == "[fe80::1]:3262"
    assert _iscsi.portal("[fe80::1]") == "[fe80::1]:3260"
    assert _iscsi.portal("san.example") == "san.example:3260"
    assert _iscsi.by_path("10.200.0.1:3260", "iqn.2026-01.x", "o", "n").startswith(
        "/dev/disk/by-path/ip-10.200.0.1:3260-iscsi-iqn.2026-01.x:o-n-lun-0")
    for bad in ("10.200.0.1:", "10.200.0.1:99999", ":3260", "[fe80::1]x"):
        with pytest.raises(ValueError):
            _iscsi.portal(bad)
    assert _iscsi.by_path("10.200.0.1", WWN, "stuvus", "web01") == DEV
    assert _iscsi.by_path_for_portal("10.200.0.1:3260", IQN, 1).endswith("-lun-1")


def test_parsers():
    sessions = ("tcp: [1] 10.200.0.1:3260,1 iqn.2003-01.org.example:stuvus-web01 (non-flash)\n"
                "tcp: [12] [fe80::1]:3260,1 iqn.2003-01.org.example:b-c (non-flash)\n")
    assert _iscsi.parse_sessions(sessions) == {IQN: "10.200.0.1:3260", f"{WWN}:b-c": "[fe80::1]:3260"}
    assert _iscsi.parse_sessions("iscsiadm: No active sessions.") == {}
    found = _iscsi.parse_discovery(f"10.200.0.1:3260,1 {IQN}\n10.0.2.15:3260,1 {IQN}\n")
    assert found == {IQN: ["10.200.0.1:3260", "10.0.2.15:3260"]}
    assert _iscsi.parse_blkid("DEVNAME=/dev/sdb\nUUID=1-2\nTYPE=ext4\nUSAGE=filesystem\n")["TYPE"] == "ext4"
    assert _iscsi.mounted_sources("/dev/sdb /mnt/a\\040b ext4 rw 0 0\n") == {"/dev/sdb": "/mnt/a b"}


def test_mkfs_argv_forces_only_when_asked():
    assert _iscsi.mkfs_argv("ext4", "/dev/sdb", False) == ["mkfs.ext4", "/dev/sdb"]
    assert _iscsi.mkfs_argv("ext4", "/dev/sdb", True) == ["mkfs.ext4", "-F", "/dev/sdb"]
    assert _iscsi.mkfs_argv("xfs", "/dev/sdb", True) == ["mkfs.xfs", "-f", "/dev/sdb"]


def test_only_iscsi_vms_are_selected():
    vms = [{"org": "stuvus", "name": "web01"},
           {"org": "stuvus", "name": "nfs01", "storage_type": "nfs"},
           {"org": "stuvus", "name": "man", "manual_root_disk": True},
           {"org": "other", "name": "db", "filesystem": "xfs", "reinstall": True}]
    specs = _iscsi.iscsi_specs(vms, DEFAULTS)
    assert [(s.full_name, s.filesystem, s.reinstall) for s in specs] == [
        ("stuvus-web01", "ext4", False), ("other-db", "xfs", True)]
    assert _iscsi.iscsi_specs([{"org": "a", "name": "b"}], {}) == []  # default storage is nfs


@pytest.mark.parametrize("vms, defaults, field", [
    ([{"org": "stuvus", "name": "web01"}], {"storage_type": "iscsi", "iscsi_base_wwn": WWN}, "iscsi_server"),
    ([{"org": "stuvus", "name": "web01", "filesystem": "ext4;rm"}], DEFAULTS, "filesystem"),
    ([{"org": "stuvus", "name": "web01"}, {"org": "stuvus", "name": "web01"}], DEFAULTS, "name"),
    ([{"org": "Bad Org", "name": "x"}], DEFAULTS, "org"),
])
def test_bad_vms_name_vm_and_field(vms, defaults, field):
    with pytest.raises(ValidationError) as err:
        _iscsi.iscsi_specs(vms, defaults)
    assert err.value.field == field


# ---- IscsiRoots with a FAKE runner --------------------------------------------------------

class FakeHost:
    """FAKE iscsiadm/blkid/mkfs/xl: a tiny model of one initiator and one target portal."""

    def __init__(self, targets=(IQN,), signature="", running=(), login_hangs=False, lun=0):
        self.targets = list(targets)
        self.lun = lun  # the LUN the target serves its disk at (tgt: 1)
        self.sessions = {}
        self.signature = {t: signature for t in targets}
        self.running = set(running)
        self.login_hangs = login_hangs
        self.calls = []
        self.devices = set()

    def exists(self, path):
        return path in self.devices

    def __call__(self, argv, timeout=None, check=True, **_kw):
        self.calls.append(list(argv))
        tool = argv[0].rsplit("/", 1)[-1]
        rc, out = 0, ""
        if tool == "iscsiadm" and argv[1:3] == ["-m", "session"]:
            if not self.sessions:
                rc, out = 21, "iscsiadm: No active sessions.\n"
            out = out or "".join(f"tcp: [{i}] 10.200.0.1:3260,1 {t} (non-flash)\n"
                                 for i, t in enumerate(self.sessions, 1))
        elif tool == "iscsiadm" and argv[1:3] == ["-m", "discovery"]:
            out = "".join(f"10.200.0.1:3260,1 {t}\n" for t in self.targets)
        elif tool == "iscsiadm" and "--login" in argv:
            if self.login_hangs:
                raise CommandError(argv, -1, reason=f"timed out after {timeout} s")
            iqn = argv[argv.index("-T") + 1]
            if iqn in self.sessions:
                rc = 15
            else:
                self.sessions[iqn] = True
                self.devices.add(_iscsi.by_path_for_portal("10.200.0.1:3260", iqn, self.lun))
        elif tool == "iscsiadm" and "--logout" in argv:
            iqn = argv[argv.index("-T") + 1]
            rc = 0 if self.sessions.pop(iqn, None) else 21
        elif tool == "blkid":
            iqn = argv[-1].split("-iscsi-")[1].rsplit("-lun-", 1)[0]
            sig = self.signature[iqn]
            rc, out = (0, f"TYPE={sig}\n") if sig else (2, "")
        elif tool.startswith("mkfs."):
            iqn = argv[-1].split("-iscsi-")[1].rsplit("-lun-", 1)[0]
            self.signature[iqn] = tool[len("mkfs."):]
        elif tool == "xl":
            rc = 0 if argv[-1] in self.running else 1
        result = Result(list(argv), rc, out, "")
        if check and rc != 0:
            raise CommandError(argv, rc, out, "")
        return result

    def acts(self):
        """The calls that change something."""
        return [c for c in self.calls if "--login" in c or "--logout" in c
                or c[0].rsplit("/", 1)[-1].startswith("mkfs.")]


@pytest.fixture(autouse=True)
def _mkfs_on_path(monkeypatch):
    monkeypatch.setattr(_iscsi.shutil, "which", lambda name, path=None: f"/sbin/{name}")


def roots(host, **kw):
    args = dict(runner=host, exists=host.exists, sleep=lambda s: None, mounts_file="/nonexistent")
    args.update(kw)
    return _iscsi.IscsiRoots(**args)


def specs(**vm):
    return _iscsi.iscsi_specs([dict({"org": "stuvus", "name": "web01"}, **vm)], DEFAULTS)


def test_login_mkfs_then_nothing():
    host = FakeHost()
    results, diffs = roots(host).converge(specs())
    assert results == [{"name": "stuvus-web01", "org": "stuvus", "iqn": IQN, "portal": "10.200.0.1:3260",
                        "device": DEV, "logged_in": True, "mkfs": True, "filesystem": "ext4",
                        "changed": True}]
    assert ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", "10.200.0.1:3260"] in host.calls
    assert host.acts() == [["iscsiadm", "-m", "node", "-T", IQN, "-p", "10.200.0.1:3260", "--login"],
                           ["/sbin/mkfs.ext4", DEV]]
    assert "mkfs.ext4" in diffs[0]["after"] and "logged_in=False" in diffs[0]["before"]

    host.calls.clear()
    results, diffs = roots(host).converge(specs())
    assert not results[0]["changed"] and not results[0]["mkfs"] and results[0]["filesystem"] == "ext4"
    assert host.acts() == [] and diffs == []


def test_root_lun_from_the_vm_or_the_lun_option():
    lun1 = DEV.replace("-lun-0", "-lun-1")
    host = FakeHost(lun=1)
    results, _diffs = roots(host).converge(specs(iscsi_lun=1))
    assert results[0]["device"] == lun1 and results[0]["mkfs"]
    assert host.acts()[-1] == ["/sbin/mkfs.ext4", lun1]
    # the lun option wins over the VM's iscsi_lun: LUN 0 never appears, the wait ends in an error
    clock = iter(range(0, 1000, 5))
    with pytest.raises(StateError) as err:
        roots(FakeHost(lun=1), lun=0, device_timeout=20,
              clock=lambda: next(clock)).converge(specs(iscsi_lun=1))
    assert DEV in str(err.value)


def test_existing_filesystem_is_never_formatted():
    host = FakeHost(signature="xfs")
    results, _diffs = roots(host).converge(specs())
    assert results[0]["changed"] and not results[0]["mkfs"] and results[0]["filesystem"] == "xfs"
    assert not [c for c in host.acts() if "mkfs" in c[0]]


def test_reinstall_formats_with_force_but_not_a_running_domain():
    host = FakeHost(signature="ext4")
    results, _diffs = roots(host).converge(specs(reinstall=True))
    assert results[0]["mkfs"] and ["/sbin/mkfs.ext4", "-F", DEV] in host.acts()
    host = FakeHost(signature="ext4", running={"stuvus-web01"})
    with pytest.raises(StateError) as err:
        roots(host).converge(specs(reinstall=True))
    assert "stuvus-web01" in str(err.value) and "is running" in str(err.value)
    assert not [c for c in host.acts() if "mkfs" in c[0]]


def test_mounted_device_is_not_formatted(tmp_path):
    host = FakeHost(signature="ext4")
    mounts = tmp_path / "mounts"
    mounts.write_text(f"{DEV} /mnt/vms/stuvus-web01 ext4 rw 0 0\n")
    with pytest.raises(StateError) as err:
        roots(host, mounts_file=str(mounts)).converge(specs(reinstall=True))
    assert "mounted at /mnt/vms/stuvus-web01" in str(err.value)


def test_check_mode_changes_nothing():
    host = FakeHost()
    results, diffs = roots(host, check_mode=True).converge(specs())
    assert results[0]["changed"] and results[0]["logged_in"] and not results[0]["mkfs"]
    assert host.acts() == [] and diffs
    roots(host).converge(specs())
    host.signature[IQN] = ""  # logged in, LUN empty again: check mode predicts the mkfs
    host.calls.clear()
    results, _diffs = roots(host, check_mode=True).converge(specs())
    assert results[0]["mkfs"] and results[0]["changed"] and host.acts() == []


def test_logout_and_absent_is_idempotent():
    host = FakeHost()
    roots(host).converge(specs())
    results, _diffs = roots(host, check_mode=True).converge(specs(), "absent")
    assert results[0]["changed"] and host.sessions
    results, _diffs = roots(host).converge(specs(), "absent")
    assert results[0]["changed"] and not results[0]["logged_in"] and not host.sessions
    results, _diffs = roots(host).converge(specs(), "absent")
    assert not results[0]["changed"]


def test_vm_state_absent_wins():
    host = FakeHost()
    roots(host).converge(specs())
    results, _diffs = roots(host).converge(specs(state="absent"), "present")
    assert not results[0]["logged_in"] and not host.sessions


def test_target_not_offered_is_clear():
    host = FakeHost(targets=[f"{WWN}:other-vm"])
    with pytest.raises(StateError) as err:
        roots(host).converge(specs())
    assert IQN in str(err.value) and f"{WWN}:other-vm" in str(err.value)


def test_hanging_login_ends_and_is_undone():
    host = FakeHost(login_hangs=True)
    with pytest.raises(CommandError) as err:
        roots(host, login_timeout=7).converge(specs())
    assert "did not finish within 7 s" in str(err.value) and "stuvus-web01" in str(err.value)
    assert host.acts()[-1][-1] == "--logout"


def test_device_wait_ends():
    host = FakeHost()
    host.exists = lambda path: False
    clock = iter(range(0, 1000, 5))
    with pytest.raises(StateError) as err:
        roots(host, exists=host.exists, device_timeout=20, clock=lambda: next(clock)).converge(specs())
    assert "did not appear within 20 s" in str(err.value) and DEV in str(err.value)


@pytest.mark.parametrize("field, value", [("login_timeout", 0), ("device_timeout", True), ("lun", -1)])
def test_bad_settings(field, value):
    with pytest.raises(ValidationError) as err:
        _iscsi.IscsiRoots(**{field: value})
    assert err.value.field == field
