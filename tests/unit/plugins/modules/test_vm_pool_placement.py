# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pool fill placed on two real hypervisors (two libvirt test-driver connections, one the
stock test:///default node with its running domain, one a node of our own), measured by
vm_hypervisor, then placed by vm_pool according to their real free memory; the chosen hosts
land in the store and in the fleet inventory's hypervisor_<h> groups."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.tests.unit.plugins.modules._playbook import run_play
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import host_entries
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads>
    <active>8</active><mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>4194304</memory>
</node>
"""


def test_pool_fill_places_by_real_free_memory(tmp_path):
    pytest.importorskip("libvirt")
    node = tmp_path / "node4g.xml"
    node.write_text(NODE)
    url = f"sqlite://{tmp_path}/lc.db"
    env = {"VMAN_STORE": url}
    flavor = {"name": "small", "backend": "libvirt", "spec": {"memory": 1024, "vcpus": 1}}
    tasks = [
        {"vman.lifecycle.vm_hypervisor": {"refresh": True, "hypervisors": [
            # test:///default: 3072 MiB, its running domain "test" takes 2048
            {"name": "stock", "kind": "libvirt", "access": {"uri": "test:///default"}},
            {"name": "node4g", "kind": "libvirt", "access": {"uri": f"test://{node}"}}]},
         "register": "hv"},
        {"vman.lifecycle.vm_pool": {"flavors": [dict(flavor, threshold=6)], "headroom": "none"},
         "register": "too_many"},
        {"vman.lifecycle.vm_pool": {"flavors": [dict(flavor, threshold=5)], "headroom": "none"},
         "register": "planned"},
        {"vman.lifecycle.vm_pool": {"flavors": [dict(flavor, threshold=5)], "headroom": "none"},
         "register": "fill"},
        {"vman.lifecycle.vm_pool": {"flavors": [dict(flavor, threshold=5)], "headroom": "none"},
         "register": "again"},
    ]
    # "planned" runs in check mode through the task keyword
    tasks[2]["check_mode"] = True
    res, out = run_play(tmp_path, tasks, env=env)
    caps = {h["name"]: (h["capacity"]["memory"], h["use"]["memory"]) for h in res["hv"]["hypervisors"]}
    assert caps == {"stock": (3072, 2048), "node4g": (4096, 0)}
    # 6 x 1 GiB: 1 + 4 GiB free in all, so nothing is created and the error says why per host
    assert res["too_many"]["failed"]
    assert "node4g: memory: 0 MiB free, the VM needs 1024" in res["too_many"]["msg"]
    assert "stock: memory: 0 MiB free, the VM needs 1024" in res["too_many"]["msg"]
    assert res["planned"]["placement"] == {"small": {"node4g": 4, "stock": 1}}
    assert res["fill"]["placement"] == {"small": {"node4g": 4, "stock": 1}}
    assert sorted(vm["hypervisor"] for vm in res["fill"]["created"]) == ["node4g"] * 4 + ["stock"]
    assert not res["again"]["changed"] and res["again"]["placement"] == {}
    with open_store(url) as store:
        vms = store.list_vms()
        assert len(vms) == 5
        entries = host_entries(vms, [])
    groups = [g for e in entries for g in e["groups"] if g.startswith("hypervisor_")]
    assert sorted(groups) == ["hypervisor_node4g"] * 4 + ["hypervisor_stock"]
