# -*- coding: utf-8 -*-
"""Tests of _xen_domain on real files (no xl: only the file-level states run here).

Power-state paths run against the real xl in the Xen testbed (tests/testbed)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
from ansible_collections.vman.lifecycle.plugins.module_utils._xen_domain import DomainConverger
from ansible_collections.vman.lifecycle.plugins.module_utils._xl import XlToolstack

DEFAULTS = {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}
NO_XL = "/nonexistent/xl"


def specs(n=3, **over):
    return _spec.normalize_all([dict({"org": "o", "name": f"vm{i}", "os": {"type": "debian", "version": "12"},
                                      "interfaces": [{"ip": f"10.0.1.{i + 1}"}]}, **over) for i in range(n)],
                               DEFAULTS)


def conv(tmp_path, **kw):
    return DomainConverger(str(tmp_path / "vms"), XlToolstack(NO_XL), manager="xl", **kw)


def test_check_mode_writes_nothing(tmp_path):
    results, diffs = conv(tmp_path, check_mode=True).converge(specs())
    assert all(r["changed"] for r in results) and len(diffs) == 3
    assert not (tmp_path / "vms").exists()


def test_converge_then_idempotent(tmp_path):
    first = conv(tmp_path).converge(specs())[0]
    assert [r["config_changed"] for r in first] == [True] * 3
    assert stat.S_IMODE(os.stat(first[0]["config_path"]).st_mode) == 0o644
    second, diffs = conv(tmp_path).converge(specs())
    assert not any(r["changed"] for r in second) and diffs == []
    assert all(r["state_before"] == "unknown" for r in second)


def test_only_changed_file_rewritten_and_date_kept(tmp_path):
    first = conv(tmp_path).converge(specs())[0]
    mtimes = [os.stat(r["config_path"]).st_mtime_ns for r in first]
    changed = specs()
    changed[1] = _spec.normalize({"org": "o", "name": "vm1", "memory": 4096, "os": {"type": "debian", "version": "12"},
                                  "interfaces": [{"ip": "10.0.1.2"}]}, DEFAULTS)
    results, diffs = conv(tmp_path, backup=True).converge(changed)
    assert [r["changed"] for r in results] == [False, True, False]
    assert [os.stat(r["config_path"]).st_mtime_ns == m for r, m in zip(results, mtimes)] == [True, False, True]
    before_date = [l for l in diffs[0]["before"].splitlines() if l.startswith("# created")]
    after_date = [l for l in diffs[0]["after"].splitlines() if l.startswith("# created")]
    assert before_date == after_date and os.path.exists(results[1]["backup_file"])


def test_spice_password_file_0600_and_masked_in_diff(tmp_path):
    s = _spec.normalize_all([{"org": "o", "name": "h", "builder": "hvm", "spice": True, "spicepasswd": "pw-XYZ",
                              "os": {"type": "debian", "version": "12"}, "interfaces": [{}]}], DEFAULTS)
    results, diffs = conv(tmp_path).converge(s)
    assert stat.S_IMODE(os.stat(results[0]["config_path"]).st_mode) == 0o600
    assert "pw-XYZ" not in diffs[0]["after"] and "pw-XYZ" in open(results[0]["config_path"]).read()


def test_absent_keeps_file_unless_purge(tmp_path):
    conv(tmp_path).converge(specs(1))
    path = str(tmp_path / "vms" / "o-vm0.cfg")
    results = conv(tmp_path).converge(specs(1), "absent")[0]
    assert os.path.exists(path) and not results[0]["changed"]
    results, diffs = conv(tmp_path, purge=True).converge(specs(1), "absent")
    assert not os.path.exists(path) and results[0]["changed"] and diffs[0]["after"] == ""


def test_running_without_xl_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="state running needs the xl toolstack"):
        conv(tmp_path).converge(specs(1), "running")
    assert not (tmp_path / "vms").exists()
