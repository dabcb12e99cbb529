# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The original xen_vman README's examples (fixtures/readme_examples.yml, re-typed as data) fed
through the role's planning (the xen_vman_plan filter), xl.cfg rendering, the guest files and
the units: each is accepted and rendered as the original's templates render it, except for the
lines the fixture lists under a deliberate difference of docs/migrating-from-xen_vman.md."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.filter.xen_vman_plan import FilterModule
from ansible_collections.vman.lifecycle.plugins.module_utils import _rootfs, _spec, _units, _xl

HERE = os.path.dirname(__file__)
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DOC = os.path.join(ROOT, "docs", "migrating-from-xen_vman.md")
HOST_KERNEL = "6.1.0-18-amd64"
PLAN = FilterModule().filters()["xen_vman_plan"]

with open(os.path.join(HERE, "fixtures", "readme_examples.yml"), encoding="utf-8") as _handle:
    CASES = yaml.safe_load(_handle)["cases"]


def doc_ids() -> set:
    """The ids of the deliberate differences the migration document lists."""
    with open(DOC, encoding="utf-8") as handle:
        return set(re.findall(r"^\| (D\d\d) \|", handle.read(), re.M))


def render_case(case):
    """``{full name: (parsed xl.cfg, xl.cfg text, spec)}`` and the plan, as the role makes them."""
    plan = PLAN(case["vms"], case["role_vars"], [], [], "/mnt/vms", True, [], "/etc/xen/vms")
    specs = _spec.normalize_all(plan["domain_vms"], plan["defaults"], HOST_KERNEL)
    out = {}
    for spec in specs:
        text = _xl.render(spec, created="2026-01-01T00:00:00Z")
        out[spec.full_name] = (_xl.parse(text), text, spec)
    return out, plan


def vif_fields(entry: str) -> dict:
    return dict(part.split("=", 1) for part in entry.split(","))


def disk_fields(entry: str) -> tuple:
    """(target, format, vdev, access) of xl's positional or key=value disk syntax."""
    if "target=" in entry:
        head, target = entry.split("target=", 1)
        keys = dict(p.split("=", 1) for p in head.strip(",").split(",") if p)
        return target, keys.get("format"), keys.get("vdev"), keys.get("access")
    return tuple(entry.rsplit(",", 3))


def overrides(case, vm, section):
    """``{original line or key: (difference id, our value)}`` of one section."""
    out = {}
    for key, by_id in ((case.get("ours") or {}).get(vm, {}).get(section) or {}).items():
        ((diff_id, value),) = by_id.items()
        out[key] = (diff_id, value)
    return out


def idfn(case):
    return case["id"]


def case_ids(case) -> set:
    """The difference ids a case's ``ours`` uses (``fstab`` is ``{id: line}``, the other
    sections ``{original key or line: {id: ours}}``)."""
    out = set()
    for sections in (case.get("ours") or {}).values():
        for name, section in sections.items():
            out |= set(section) if name == "fstab" else {i for by_id in section.values() for i in by_id}
    return out


def test_fixture_differences_are_documented():
    listed = doc_ids()
    used = set()
    for case in CASES:
        assert case_ids(case) <= listed, case["id"]
        used |= case_ids(case)
    assert used   # the fixtures do exercise differences


@pytest.mark.parametrize("case", CASES, ids=idfn)
def test_xl_config_as_the_original_renders_it(case):
    rendered, dummy = render_case(case)
    assert sorted(rendered) == sorted(case["original"])
    for vm, want in case["original"].items():
        ours = rendered[vm][0]
        over = overrides(case, vm, "xl")
        for key, value in want["xl"].items():
            if key in over:
                continue
            if key == "vif":
                assert len(ours["vif"]) == len(value)
                for index, (mine, theirs) in enumerate(zip(ours["vif"], value)):
                    fields = vif_fields(mine)
                    iface = rendered[vm][2].interfaces[index]
                    # D03: the vif also names its script and carries the interface's MTU
                    assert fields.pop("script") == iface.script
                    if iface.mtu:
                        assert fields.pop("mtu") == str(iface.mtu)
                    assert fields == {k: str(v) for k, v in theirs.items()}, (vm, index)
            elif key == "disk":
                assert [disk_fields(d) for d in ours["disk"]] == [disk_fields(d) for d in value]
            elif isinstance(value, list):
                assert ours[key] == value, (vm, key)
            else:
                assert str(ours[key]) == str(value), (vm, key)
        for key, (diff_id, value) in over.items():
            if value is None:
                assert key not in ours, (vm, key, diff_id)
            else:
                assert str(ours[key]) == str(value), (vm, key, diff_id)
        if want.get("xl_complete"):
            extra = set(ours) - set(want["xl"]) - {k for k, (i, v) in over.items() if v is not None}
            assert extra <= {"type"}, (vm, extra)        # D02: PV domains say type = "pv"
            assert ours["type"] == ("hvm" if rendered[vm][2].builder == "hvm" else "pv")


def _lines(text):
    return [" ".join(line.split()) for line in text.splitlines()]


def _compare_lines(case, vm, section, want_lines, ours_text):
    ours = _lines(ours_text)
    over = overrides(case, vm, section)
    for line in want_lines:
        if line in over:
            diff_id, value = over[line]
            assert line not in ours or value == line, (vm, section, line, diff_id)
            if value is not None:
                assert value in ours, (vm, section, value, diff_id)
        else:
            assert line in ours, (vm, section, line)


@pytest.mark.parametrize("case", CASES, ids=idfn)
def test_guest_files_as_the_original_writes_them(case):
    rendered, dummy = render_case(case)
    for vm, want in case["original"].items():
        spec = rendered[vm][2]
        files = _rootfs.guest_files(spec, "ansible", "bookworm")
        if "fstab" in want:
            fstab_over = (case.get("ours") or {}).get(vm, {}).get("fstab") or {}
            theirs = (list(fstab_over.values()) or [want["fstab"]])[0].split()
            (mine,) = [ln.split() for ln in files["etc/fstab"][0].splitlines()
                       if ln and not ln.startswith("#")]
            # same source, mount point, type, dump and pass; the original's options all there
            assert (mine[0], mine[1], mine[2], mine[4:]) == (theirs[0], theirs[1], theirs[2], theirs[4:])
            assert set(theirs[3].split(",")) <= set(mine[3].split(",")), (vm, mine, theirs)
            if not fstab_over:
                assert set(want["fstab"].split()[3].split(",")) <= set(mine[3].split(","))
        if "interfaces" in want:
            _compare_lines(case, vm, "interfaces", want["interfaces"],
                           files["etc/network/interfaces"][0])
        if "header" in want:
            header = [ln for ln in rendered[vm][1].splitlines() if ln.startswith("#")]
            assert any(ln.endswith(" " + want["header"]) for ln in header)


@pytest.mark.parametrize("case", [c for c in CASES if any(
    "prepare" in v or "xl_conf" in v for v in c["original"].values())], ids=idfn)
def test_host_files_as_the_original_writes_them(case):
    dummy, plan = render_case(case)
    role_vars = case["role_vars"]
    for vm, want in case["original"].items():
        if "xl_conf" in want:
            assert [i["line"] for i in plan["xl_conf"]] == want["xl_conf"]
        if "prepare" in want:
            unit = _units.render_prepare(_units.settings(
                prepare_commands=role_vars.get("xen_vman_additional_global_prepare"),
                prepare_timeout=role_vars.get("xen_vman_global_preparations_timeout")))
            _compare_lines(case, vm, "prepare", want["prepare"], unit)
            # the original's first step: the initrd link of the running kernel
            assert "ExecStart=/bin/ln -sfn /etc/xen/initrd.img-%v /etc/xen/initrd.img" in unit
