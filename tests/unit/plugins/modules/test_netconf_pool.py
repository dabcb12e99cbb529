# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netconf_pool run by ansible-playbook against a temporary SQLite store."""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play

RANGE = {"hostname": "mws-{n:02d}.example.org", "ipv4": "192.0.2.10", "ipv6": "2001:db8::10",
         "count": 3}


def test_netconf_pool(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    add = {"vman.lifecycle.netconf_pool": {"pool": "cam", "ranges": [RANGE], "store": url}}
    got, dummy = run_play(tmp_path, [dict(add, register="check")], check=True, name="check")
    assert got["check"]["changed"] is True and got["check"]["added"] == [
        "mws-01.example.org", "mws-02.example.org", "mws-03.example.org"]
    with open_store(url) as s:
        assert s.netconfs("cam") == []

    alloc = {"pool": "cam", "state": "allocated", "low_water": 1, "store": url}
    got, out = run_play(tmp_path, [
        dict(add, register="add"),
        dict(add, register="again"),
        {"vman.lifecycle.netconf_pool": {
            "pool": "other", "store": url,
            "entries": [{"hostname": "x.example.org", "ipv6": "2001:DB8:0::11"}]}, "register": "dup"},
        {"vman.lifecycle.netconf_pool": {
            "pool": "cam", "store": url, "entries": [{"hostname": "Bad_Name"}]}, "register": "bad"},
        {"vman.lifecycle.netconf_pool": dict(alloc, vm="a"), "register": "a1"},
        {"vman.lifecycle.netconf_pool": dict(alloc, vm="a"), "register": "a2"},
        {"vman.lifecycle.netconf_pool": dict(alloc, vm="b"), "register": "b"},
        {"vman.lifecycle.netconf_pool": dict(alloc, vm="c"), "register": "c"},
        {"vman.lifecycle.netconf_pool": dict(alloc, vm="d"), "register": "d"},
        {"vman.lifecycle.netconf_pool": {"pool": "cam", "state": "released", "vm": "b", "store": url},
         "register": "rel"},
    ], name="apply")
    assert got["add"]["changed"] is True and got["add"]["stats"] == {"vm": {"total": 3, "free": 3}}
    assert got["again"]["changed"] is False and got["again"]["added"] == []
    assert got["dup"]["failed"] is True and got["dup"]["msg"] == (
        "netconf pool 'other': field 'ipv6' = '2001:db8::11': already used by netconf "
        "'mws-02.example.org' in pool 'cam'")
    assert got["bad"]["msg"].startswith("netconf pool 'cam': field 'hostname' = 'Bad_Name'")
    assert got["a1"]["changed"] is True and got["a1"]["netconf"] == {
        "pool": "cam", "kind": "vm", "hostname": "mws-01.example.org", "ipv4": "192.0.2.10",
        "ipv6": "2001:db8::10", "in_use_by": "a"}
    assert got["a2"]["changed"] is False and got["a2"]["netconf"] == got["a1"]["netconf"]
    assert "warnings" not in got["a1"]
    assert got["b"]["warnings"] == [
        "netconf pool 'cam' has 1 free 'vm' entry left (low_water 1): add more before the pool runs out"]
    assert got["c"]["stats"]["vm"]["free"] == 0
    assert got["d"]["failed"] is True and got["d"]["msg"] == (
        "netconf pool 'cam' has no free 'vm' entry left for VM 'd'; add more with "
        "vman.lifecycle.netconf_pool")
    assert got["rel"]["released"] == ["mws-02.example.org"] and got["rel"]["changed"] is True
    assert "WARNING" in out and "low_water 1" in out
