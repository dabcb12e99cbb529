# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ensure()/gather() against libvirt's test:///default driver: idempotence, check mode, diff."""

from __future__ import annotations

import libvirt
import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_snapshot import ensure, gather

DOM = ("<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory><os><type>hvm</type>"
       "</os><devices><disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>"
       "<source file='/img/{name}'/><target dev='vda' bus='virtio'/></disk></devices></domain>")


@pytest.fixture
def conn():
    c = lv.connect("test:///default")
    before = {d.name() for d in c.listAllDomains(0)}
    yield c
    for d in c.listAllDomains(0):
        if d.name() not in before:
            if d.isActive():
                d.destroy()
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    lv.close(c)


@pytest.fixture
def dom(conn):
    d = conn.defineXML(DOM.format(name="vm1", fmt="qcow2"))
    d.create()
    return d


def p(**kw):
    base = {"domain": "vm1", "name": "s1", "state": "present", "description": None,
            "kind": "internal", "quiesce": False, "revert_state": "snapshot", "force": False,
            "children": False}
    base.update(kw)
    return base


def names(dom):
    return [s["name"] for s in lv.list_snapshots(dom)]


def test_present_check_mode_creates_nothing(conn, dom):
    res = ensure(conn, p(description="d"), check_mode=True)
    assert res["changed"] and res["snapshot"]["name"] == "s1"
    assert res["snapshot"]["state"] == "running" and res["snapshot"]["description"] == "d"
    assert res["diff"]["before"] == {"snapshots": [], "current": None}
    assert res["diff"]["after"] == {"snapshots": ["s1"], "current": "s1"}
    assert names(dom) == []


def test_present_creates_then_is_idempotent(conn, dom):
    first = ensure(conn, p(description="d"))
    assert first["changed"] and first["snapshot"]["current"] and first["snapshot"]["description"] == "d"
    assert names(dom) == ["s1"]
    again = ensure(conn, p(description="other text"))
    assert not again["changed"]
    assert again["snapshot"]["description"] == "d"          # existing one is left as it is
    assert again["diff"]["before"] == again["diff"]["after"]
    assert ensure(conn, p(), check_mode=True)["changed"] is False


def test_reverted_always_changes_and_check_mode_keeps_state(conn, dom):
    ensure(conn, p())
    dom.suspend()
    ensure(conn, p(name="s2"))
    res = ensure(conn, p(state="reverted"), check_mode=True)
    assert res["changed"] and res["power_state"] == "running"
    assert lv.domain_state(dom) == "paused" and lv.current_snapshot_name(dom) == "s2"
    res = ensure(conn, p(state="reverted"))
    assert res["changed"] and res["power_state"] == "running" and res["snapshot"]["current"]
    assert lv.current_snapshot_name(dom) == "s1"
    assert res["diff"]["after"]["current"] == "s1" and res["diff"]["before"]["current"] == "s2"
    assert ensure(conn, p(state="reverted"))["changed"] is True


def test_reverted_to_requested_state(conn, dom):
    ensure(conn, p())
    assert ensure(conn, p(state="reverted", revert_state="stopped"))["power_state"] == "stopped"
    assert lv.domain_state(dom) == "stopped"
    assert ensure(conn, p(state="reverted", revert_state="paused"),
                  check_mode=True)["power_state"] == "paused"


def test_reverted_missing_snapshot_fails_even_in_check_mode(conn, dom):
    for check in (True, False):
        with pytest.raises(lv.NoSuchSnapshotError, match="domain 'vm1' has no snapshot 's9'"):
            ensure(conn, p(name="s9", state="reverted"), check_mode=check)


def test_absent_check_mode_then_delete_then_idempotent(conn, dom):
    for n in ("s1", "s2", "s3"):
        ensure(conn, p(name=n))
    res = ensure(conn, p(name="s2", state="absent", children=True), check_mode=True)
    assert res["changed"] and res["deleted"] == ["s2", "s3"]
    assert res["diff"]["after"] == {"snapshots": ["s1"], "current": "s1"}
    assert names(dom) == ["s1", "s2", "s3"]
    res = ensure(conn, p(name="s2", state="absent", children=True))
    assert res["changed"] and res["deleted"] == ["s2", "s3"]
    assert names(dom) == ["s1"]
    # the real outcome matches what check mode predicted
    assert res["diff"]["after"] == {"snapshots": ["s1"], "current": "s1"}
    res = ensure(conn, p(name="s2", state="absent"))
    assert not res["changed"] and res["deleted"] == []


def test_absent_without_children_keeps_them(conn, dom):
    for n in ("s1", "s2"):
        ensure(conn, p(name=n))
    predicted = ensure(conn, p(name="s1", state="absent"), check_mode=True)["diff"]["after"]
    real = ensure(conn, p(name="s1", state="absent"))["diff"]["after"]
    assert predicted == real == {"snapshots": ["s2"], "current": "s2"}


def test_errors(conn, dom):
    with pytest.raises(lv.NoSuchDomainError, match="no such domain 'ghost'"):
        ensure(conn, p(domain="ghost"))
    with pytest.raises(ValidationError, match="'name'"):
        ensure(conn, p(name="../x"))
    conn.defineXML(DOM.format(name="rawvm", fmt="raw"))
    for check in (False, True):   # check mode fails where the real run would
        with pytest.raises(lv.DiskFormatError, match="domain 'rawvm': disk vda"):
            ensure(conn, p(domain="rawvm"), check_mode=check)


def test_gather(conn, dom):
    assert gather(conn, {"domain": "vm1"}) == {
        "changed": False, "snapshots": [], "current": None, "power_state": "running"}
    ensure(conn, p(name="a", description="first"))
    ensure(conn, p(name="b"))
    facts = gather(conn, {"domain": "vm1"})
    assert [(s["name"], s["parent"], s["current"], s["state"]) for s in facts["snapshots"]] == [
        ("a", None, False, "running"), ("b", "a", True, "running")]
    assert facts["current"] == "b"
    one = gather(conn, {"domain": "vm1", "name": "a"})
    assert [s["description"] for s in one["snapshots"]] == ["first"]
    with pytest.raises(lv.NoSuchSnapshotError):
        gather(conn, {"domain": "vm1", "name": "zz"})
