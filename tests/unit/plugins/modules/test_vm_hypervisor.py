# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_hypervisor and vm_placement_info through ansible-playbook, measuring real hosts: this
machine as an LXC host, libvirt's test:///default driver, and a Xen host that cannot be
reached (no xl here)."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.tests.unit.plugins.modules._playbook import run_play
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store


def test_register_refresh_check_diff_report_and_remove(tmp_path):
    pytest.importorskip("libvirt")
    url = f"sqlite://{tmp_path}/lc.db"
    lxc_path = tmp_path / "lxc"
    lxc_path.mkdir()
    hosts = [
        {"name": "here", "kind": "lxc", "access": {"lxc_path": str(lxc_path)}, "labels": {"site": "a"},
         "capacity": {"vcpu_ratio": 4, "reserved_memory": 512}},
        {"name": "testdrv", "kind": "libvirt", "access": {"uri": "test:///default"}},
        {"name": "dom0", "kind": "xen", "labels": {"site": "b"}},
    ]
    register = {"vman.lifecycle.vm_hypervisor": {"hypervisors": hosts, "refresh": True,
                                                 "refresh_timeout": 20}}
    env = {"VMAN_STORE": url}
    res, out = run_play(tmp_path, [dict(register, register="r")], check=True, diff=True, env=env,
                        name="check")
    assert res["r"]["changed"] and sorted(res["r"]["diff"]["after"]) == ["dom0", "here", "testdrv"]
    assert res["r"]["diff"]["before"] == {"dom0": None, "here": None, "testdrv": None}
    assert sorted(h["name"] for h in res["r"]["hypervisors"]) == ["dom0", "here", "testdrv"]
    with open_store(url) as store:
        assert store.list_hypervisors() == []
    tasks = [
        dict(register, register="first"),
        {"vman.lifecycle.vm_hypervisor": {"hypervisors": hosts}, "register": "again"},
        {"vman.lifecycle.vm_placement_info": {"headroom": "none"}, "register": "info"},
        {"vman.lifecycle.vm_hypervisor": {"hypervisors": [{"name": "dom0", "enabled": False}]},
         "register": "disable"},
        {"vman.lifecycle.vm_hypervisor": {"hypervisors": [{"name": "testdrv", "state": "absent"}]},
         "register": "remove"},
        {"vman.lifecycle.vm_hypervisor": {"hypervisors": [{"name": "new1"}]}, "register": "nokind"},
        {"vman.lifecycle.vm_hypervisor": {"hypervisors": [
            {"name": "x", "kind": "xen", "access": {"uri": "qemu:///system"}}]}, "register": "badkey"},
    ]
    res, out = run_play(tmp_path, tasks, diff=True, env=env)
    first = {h["name"]: h for h in res["first"]["hypervisors"]}
    assert first["here"]["state"] == "enabled" and first["here"]["capacity"]["domain_types"] == ["lxc"]
    assert first["here"]["capacity"]["vcpu_ratio"] == 4 and first["here"]["capacity"]["memory"] > 1024
    assert first["testdrv"]["capacity"]["memory"] == 3072 and first["testdrv"]["use"]["memory"] == 2048
    assert first["dom0"]["state"] == "unreachable" and "not found" in first["dom0"]["reason"]
    assert list(res["first"]["not_reached"]) == ["dom0"]
    assert out.count("hypervisor dom0 could not be measured") == 1
    assert not res["again"]["changed"]
    info = {h["name"]: h for h in res["info"]["hypervisors"]}
    assert info["here"]["capacity"]["memory"] == first["here"]["capacity"]["memory"] - 512
    assert info["testdrv"]["memory_ratio"] == round(2048 / 3072, 4)
    assert info["dom0"]["state"] == "unreachable"
    assert res["info"]["moves"] == [] and not res["info"]["changed"]
    assert res["disable"]["changed"]
    assert res["disable"]["diff"]["after"]["dom0"]["state"] == "disabled"
    assert res["remove"]["removed"] == ["testdrv"]
    assert res["nokind"]["failed"] and "a new hypervisor needs a kind" in res["nokind"]["msg"]
    assert res["badkey"]["failed"] and "access.uri" in res["badkey"]["msg"]
    with open_store(url) as store:
        assert [h["name"] for h in store.list_hypervisors()] == ["dom0", "here"]
        assert store.get_hypervisor("dom0")["state"] == "disabled"
