# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_libvirt: pure XML helpers, then the snapshot helpers against libvirt's test:///default driver.

The test driver keeps its state per connection, so every test gets a fresh connection with its
own domains (defined here with qcow2 or raw disks).
"""

from __future__ import annotations

import libvirt
import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


def domain_xml(name, disks=(("vda", "qcow2", "/img/a.qcow2"),), extra=""):
    """A test-driver domain; each disk is (target, format or None, source)."""
    parts = []
    for target, fmt, src in disks:
        driver = f"<driver name='qemu' type='{fmt}'/>" if fmt else ""
        parts.append(f"<disk type='file' device='disk'>{driver}<source file='{src}'/>"
                     f"<target dev='{target}' bus='virtio'/></disk>")
    return (f"<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>"
            f"<os><type>hvm</type></os><devices>{''.join(parts)}{extra}</devices></domain>")


# ---- pure ------------------------------------------------------------------------------------

def test_snapshot_xml_escapes_description():
    xml = lv.snapshot_xml("s1", "a <b> & 'c'")
    parsed = lv.parse_snapshot_xml(xml)
    assert parsed["name"] == "s1"
    assert parsed["description"] == "a <b> & 'c'"
    assert "<description>" not in lv.snapshot_xml("s1")


@pytest.mark.parametrize("name", ["clean", "proj.r42.init", "a", "A_b-c+d:e", "x" * 128])
def test_good_snapshot_names(name):
    assert lv.validate_snapshot_name("vm", name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "a/b", "a b", "x" * 129, "a\nb", None, "é"])
def test_bad_snapshot_names(name):
    with pytest.raises(ValidationError) as err:
        lv.validate_snapshot_name("vm", name)
    assert err.value.field == "name" and err.value.obj == "vm"


def test_domain_disks_skips_cdrom_readonly_transient():
    extra = ("<disk type='file' device='cdrom'><driver type='raw'/><source file='/i.iso'/>"
             "<target dev='sda'/><readonly/></disk>"
             "<disk type='file' device='disk'><driver type='raw'/><source file='/ro.img'/>"
             "<target dev='vdc'/><readonly/></disk>"
             "<disk type='file' device='disk'><driver type='raw'/><source file='/t.img'/>"
             "<target dev='vdd'/><transient/></disk>")
    disks = lv.domain_disks(domain_xml("d", [("vda", "qcow2", "/a"), ("vdb", None, "/b")], extra))
    assert [(d["target"], d["format"], d["source"]) for d in disks] == [
        ("vda", "qcow2", "/a"), ("vdb", None, "/b")]


def test_blockers_name_domain_disk_and_format():
    errs = lv.internal_snapshot_blockers(
        "web01", domain_xml("web01", [("vda", "qcow2", "/a.qcow2"), ("vdb", "raw", "/b.img"),
                                      ("vdc", None, "/c.img")]))
    assert [(e.disk, e.value) for e in errs] == [("vdb", "raw"), ("vdc", "raw (no driver type set)")]
    msg = str(errs[0])
    assert "web01" in msg and "vdb" in msg and "/b.img" in msg and "raw" in msg and "qcow2" in msg
    assert errs[0].to_result()["format"] == "raw"


def test_disk_with_snapshot_no_does_not_block():
    xml = domain_xml("d").replace("</devices>",
                                  "<disk type='file' device='disk' snapshot='no'><driver type='raw'/>"
                                  "<source file='/s.img'/><target dev='vdb'/></disk></devices>")
    assert lv.internal_snapshot_blockers("d", xml) == []


def test_parse_snapshot_xml_external_with_parent():
    xml = ("<domainsnapshot><name>b</name><state>disk-snapshot</state><creationTime>1700000000"
           "</creationTime><parent><name>a</name></parent><memory snapshot='no'/><disks>"
           "<disk name='vda' snapshot='external'><source file='/img/a.b'/></disk></disks>"
           "</domainsnapshot>")
    info = lv.parse_snapshot_xml(xml)
    assert info["parent"] == "a" and info["kind"] == "external" and info["memory"] == "no"
    assert info["creation_time"] == 1700000000
    assert info["creation_time_iso"] == "2023-11-14T22:13:20+00:00"
    assert info["disks"] == [{"name": "vda", "snapshot": "external", "source": "/img/a.b"}]


# ---- test:///default -------------------------------------------------------------------------
# Within one process every open of test:///default shares one driver instance, so each test
# removes the domains it defined.

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
    return conn.defineXML(domain_xml("g1"))


def test_connect_bad_uri_is_a_clear_error():
    with pytest.raises(lv.LibvirtError, match="cannot connect to libvirt at nosuchdriver:///x"):
        lv.connect("nosuchdriver:///x")


def test_no_such_domain(conn):
    with pytest.raises(lv.NoSuchDomainError, match="no such domain 'ghost' on test:///default"):
        lv.get_domain(conn, "ghost")


def test_no_such_snapshot(dom):
    assert lv.find_snapshot(dom, "nope") is None
    with pytest.raises(lv.NoSuchSnapshotError, match="domain 'g1' has no snapshot 'nope'"):
        lv.revert_snapshot(dom, "nope")
    with pytest.raises(lv.NoSuchSnapshotError):
        lv.delete_snapshot(dom, "nope")


def test_create_list_parent_current(dom):
    assert lv.domain_state(dom) == "stopped"
    a = lv.create_snapshot(dom, "a", "first")
    assert (a["name"], a["description"], a["state"], a["current"], a["parent"]) == (
        "a", "first", "shutoff", True, None)
    assert a["kind"] == "internal" and isinstance(a["creation_time"], int)
    dom.create()
    b = lv.create_snapshot(dom, "b")
    assert b["parent"] == "a" and b["state"] == "running" and b["current"]
    snaps = lv.list_snapshots(dom)
    assert [s["name"] for s in snaps] == ["a", "b"]
    assert [s["current"] for s in snaps] == [False, True]
    assert snaps[0]["children"] == 1
    assert lv.current_snapshot_name(dom) == "b"


def test_create_duplicate_is_a_libvirt_error(dom):
    lv.create_snapshot(dom, "a")
    with pytest.raises(lv.LibvirtError, match="creating internal snapshot 'a' failed"):
        lv.create_snapshot(dom, "a")


def test_internal_refused_on_raw_disk(conn):
    d = conn.defineXML(domain_xml("rawvm", [("vda", "qcow2", "/a.qcow2"), ("vdb", "raw", "/b.img")]))
    with pytest.raises(lv.DiskFormatError) as err:
        lv.create_snapshot(d, "s")
    assert "domain 'rawvm': disk vdb (/b.img) has format raw" in str(err.value)
    assert d.snapshotNum(0) == 0


def test_quiesce_needs_external(dom):
    with pytest.raises(ValidationError, match="quiesce"):
        lv.create_snapshot(dom, "s", quiesce=True)


@pytest.mark.parametrize("snap_running, wanted, expected", [
    (True, "snapshot", "running"),
    (False, "snapshot", "stopped"),
    (False, "running", "running"),
    (False, "paused", "paused"),
    (True, "paused", "paused"),
    (True, "stopped", "stopped"),
])
def test_revert_power_state(dom, snap_running, wanted, expected):
    if snap_running:
        dom.create()
    lv.create_snapshot(dom, "s")
    if snap_running:
        dom.destroy()
    else:
        dom.create()
    assert lv.revert_snapshot(dom, "s", wanted) == expected
    assert lv.domain_state(dom) == expected


def test_revert_makes_snapshot_current(dom):
    lv.create_snapshot(dom, "a")
    lv.create_snapshot(dom, "b")
    lv.revert_snapshot(dom, "a")
    assert lv.current_snapshot_name(dom) == "a"


def test_delete_reparents_or_takes_children(dom):
    for name in ("a", "b", "c"):
        lv.create_snapshot(dom, name)
    assert lv.descendants(dom, "a") == ["b", "c"]
    assert lv.delete_snapshot(dom, "b") == ["b"]
    assert {s["name"]: s["parent"] for s in lv.list_snapshots(dom)} == {"a": None, "c": "a"}
    assert lv.delete_snapshot(dom, "a", children=True) == ["a", "c"]
    assert lv.list_snapshots(dom) == []
    assert lv.current_snapshot_name(dom) is None
