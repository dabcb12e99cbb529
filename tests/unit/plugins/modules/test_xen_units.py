# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xen_units run by ansible-playbook against temporary unit and helper directories, with the
real systemd-analyze verifying the units (PID 1 here is not systemd)."""

from __future__ import annotations

import os
import shutil

import pytest

from _playbook import run_play

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed")

UNITS = ("vm@.service", "vm_iscsi@.service", "vm_mount@.service", "vm_prepare.service")
HELPERS = ("vm-stop", "vm-iscsi", "vm-mount")


@pytest.fixture
def args(tmp_path):
    xl = tmp_path / "xl"
    xl.write_text("#!/bin/sh\nexit 0\n")
    xl.chmod(0o755)
    return {"unit_path": str(tmp_path / "units"), "helper_path": str(tmp_path / "libexec"),
            "xl_path": str(xl), "iscsiadm_path": "/usr/bin/iscsiadm"}


def _task(args, register, **extra):
    return {"vman.lifecycle.xen_units": dict(args, **extra), "register": register}


def test_install_idempotence_and_change(tmp_path, args):
    got, dummy = run_play(tmp_path, [
        _task(args, "first", stop_timeout=120),
        _task(args, "second", stop_timeout=120),
        _task(args, "changed", stop_timeout=600, daemon_reload="never"),
    ])
    first, second, changed = got["first"], got["second"], got["changed"]
    assert first["changed"] is True and all(f["changed"] for f in first["files"])
    assert [f["path"] for f in first["files"]] == (
        [f"{args['unit_path']}/{u}" for u in UNITS] + [f"{args['helper_path']}/{h}" for h in HELPERS])
    # auto: daemon-reload only where PID 1 is systemd (not on this machine: it would fail)
    assert first["daemon_reloaded"] is os.path.isdir("/run/systemd/system")
    assert second["changed"] is False and not any(f["changed"] for f in second["files"])
    assert [f["path"] for f in changed["files"] if f["changed"]] == [f"{args['unit_path']}/vm@.service"]
    vm = (tmp_path / "units" / "vm@.service").read_text().splitlines()
    assert "TimeoutStopSec=600" in vm
    assert f"ExecStop={args['helper_path']}/vm-stop {args['xl_path']} %i 565" in vm
    assert f"ExecStart={args['xl_path']} create /etc/xen/vms/%i.cfg" in vm


def test_check_mode_and_diff_write_nothing(tmp_path, args):
    got, out = run_play(tmp_path, [_task(args, "check", start_timeout=33)], check=True, diff=True)
    check = got["check"]
    assert check["changed"] is True and len(check["diff"]) == 7
    assert "+TimeoutStartSec=33" in out
    assert not (tmp_path / "units").exists() and not (tmp_path / "libexec").exists()


def test_verify_error_installs_nothing(tmp_path, args):
    got, dummy = run_play(tmp_path, [
        _task(dict(args, xl_path=str(tmp_path / "no-xl")), "bad"),
        _task(args, "bad_timeout", mount_timeout=0),
    ])
    bad = got["bad"]
    assert bad["failed"] is True
    assert f"vm@i.service: Command {tmp_path}/no-xl is not executable" in bad["msg"]
    assert bad["cmd"][1] == "verify"
    assert not (tmp_path / "units").exists() and not (tmp_path / "libexec").exists()
    assert got["bad_timeout"]["failed"] is True
    assert got["bad_timeout"]["msg"] == (
        "xen_units: field 'mount_timeout' = 0: must be a positive integer (seconds)")


def test_daemon_reload_always_runs_systemctl(tmp_path, args):
    # Here systemctl exists but cannot reach a systemd PID 1: "always" really runs it.
    if shutil.which("systemctl") is None or os.path.isdir("/run/systemd/system"):
        pytest.skip("needs a systemctl without a systemd PID 1")
    got, dummy = run_play(tmp_path, [
        _task(args, "always", daemon_reload="always"),
        _task(args, "unchanged", daemon_reload="always"),
    ])
    assert got["always"]["failed"] is True and got["always"]["cmd"][-1] == "daemon-reload"
    # no unit changed on the second run, so no daemon-reload and no failure
    assert got["unchanged"].get("failed") is not True and got["unchanged"]["changed"] is False
    assert got["unchanged"]["daemon_reloaded"] is False
