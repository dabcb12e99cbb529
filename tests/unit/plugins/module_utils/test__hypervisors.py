# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Store rows -> placement input, the advisory report, and registration checks."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _hypervisors as hv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


def _register(store, name, memory=8192, vcpus=8, use=None, kind="xen", **cap):
    store.put_hypervisor(name, {"kind": kind, "capacity": cap})
    store.record_refresh({name: {"capacity": {"memory": memory, "vcpus": vcpus},
                                 "use": use or {}}}, {})


def test_effective_use_is_the_larger_of_measured_and_store(store):
    _register(store, "a", use={"memory": 1000, "vcpus": 1}, reserved_memory=192)
    _register(store, "b", use={"memory": 4096, "vcpus": 1})
    store.put_hypervisor("c", {"kind": "xen"})                 # never measured, nothing declared
    store.create_vms([{"name": f"v{i}", "hypervisor": "a", "status": "installing",
                       "spec": {"memory": 1024, "vcpus": 1, "anti_affinity": ["site-a"]}}
                      for i in range(2)])
    store.create_vms([{"name": "w", "hypervisor": "b", "spec": {"memory": 512}}])
    hosts, by_host = hv.placement_hosts(store)
    by = {h["name"]: h for h in hosts}
    assert by["a"]["capacity"]["memory"] == 8000
    assert by["a"]["use"] == {"memory": 2048, "vcpus": 2, "disk": 0, "groups": ["site-a"]}
    assert by["b"]["use"]["memory"] == 4096 and by["b"]["use"]["vcpus"] == 2
    assert by["c"]["state"] == "unmeasured"
    assert sorted(v["name"] for v in by_host["a"]) == ["v0", "v1"]
    # the store's anti-affinity groups keep a new member off host a
    placed = hv.place(store, [{"name": "n1", "memory": 1024, "anti_affinity": ["site-a"]}], headroom="none")
    assert placed == {"n1": "b"}


def test_place_through_an_external_allocator(store, tmp_path):
    _register(store, "a")
    _register(store, "b")
    script = tmp_path / "alloc.py"
    script.write_text("import json, sys\nd = json.load(sys.stdin)\n"
                      "json.dump({'placement': {v['name']: 'b' for v in d['vms']}}, sys.stdout)\n")
    assert hv.place(store, [{"name": "x", "memory": 512}], allocator_command=[sys.executable, str(script)]) \
        == {"x": "b"}


def test_report_lists_load_and_moves(store):
    _register(store, "a")
    _register(store, "b")
    store.create_vms([{"name": f"v{i}", "hypervisor": "a", "spec": {"memory": 2048, "vcpus": 1}}
                      for i in range(2)])
    result, dummy = hv.report(store, headroom="none")
    by = {h["name"]: h for h in result["hypervisors"]}
    assert by["a"]["memory_ratio"] == 0.5 and by["b"]["memory_ratio"] == 0.0
    assert by["a"]["vms"] == ["v0", "v1"]
    assert result["moves"] == [{"vm": "v0", "from": "a", "to": "b", "score_after": 0.0}]
    assert result["score"] > result["score_after_moves"] == 0.0
    assert store.get_vm("v0")["hypervisor"] == "a"             # advice only
    assert [h["name"] for h in hv.report(store, ["b"], max_moves=0)[0]["hypervisors"]] == ["b"]
    with pytest.raises(ValidationError, match="is not registered"):
        hv.report(store, ["zz"])


@pytest.mark.parametrize("entry, field", [
    ({"name": "bad name", "kind": "xen"}, "name"),
    ({"name": "h", "kind": "esx"}, "kind"),
    ({"name": "h", "kind": "xen", "color": "red"}, "color"),
    ({"name": "h", "kind": "xen", "capacity": {"ram": 1}}, "capacity.ram"),
    ({"name": "h", "kind": "xen", "capacity": {"vcpu_ratio": -1}}, "capacity.vcpu_ratio"),
    ({"name": "h", "kind": "xen", "capacity": {"reserved_memory": "lots"}}, "capacity.reserved_memory"),
    ({"name": "h", "kind": "lxc", "access": {"lxc_path": "rel"}}, "access.lxc_path"),
    ({"name": "h", "kind": "xen", "labels": {"site": ["a"]}}, "labels.site"),
])
def test_normalise_entry_names_the_field(entry, field):
    with pytest.raises(ValidationError) as err:
        hv.normalise_entry(entry)
    assert err.value.field == field


# ---- pool fill with placement (both store dialects) ---------------------------------

def _names():
    counter = iter(range(1000))
    return lambda: f"n{next(counter):03d}"


def test_pool_fill_places_the_whole_batch_and_records_hosts(store):
    from ansible_collections.vman.lifecycle.plugins.module_utils import _pool
    _register(store, "a", memory=4096)
    _register(store, "b", memory=8192)
    _register(store, "l", memory=8192, kind="lxc")
    flavors = [{"name": "small", "threshold": 4, "backend": "xen", "spec": {"memory": 1024, "vcpus": 1}},
               {"name": "pinned", "threshold": 1, "backend": "xen", "hypervisor": "elsewhere",
                "spec": {"memory": 512}},
               {"name": "ct", "threshold": 1, "backend": "lxc", "spec": {"memory": 512}}]
    result, dummy = _pool.fill(store, flavors, check=True, make_name=_names(), headroom="none")
    assert result["deficit"] == {"small": 4, "pinned": 1, "ct": 1} and result["created"] == []
    assert result["placement"] == {"small": {"a": 1, "b": 3}, "ct": {"l": 1}}
    assert store.list_vms() == []
    result, dummy = _pool.fill(store, flavors, make_name=_names(), headroom="none")
    hosts = {vm["name"]: vm["hypervisor"] for vm in store.list_vms()}
    assert sorted(hosts.values()) == ["a", "b", "b", "b", "elsewhere", "l"]
    assert result["placement"] == {"small": {"a": 1, "b": 3}, "ct": {"l": 1}}
    # the use of the hosts counts the new VMs until the next refresh
    assert store.get_hypervisor("b")["use"]["memory"] == 3072
    assert store.get_hypervisor("l")["use"]["memory"] == 512


def test_pool_fill_that_does_not_fit_creates_nothing(store):
    from ansible_collections.vman.lifecycle.plugins.module_utils import _pool
    from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError
    _register(store, "a", memory=2048)
    _register(store, "b", memory=2048, use={"memory": 1024})
    flavors = [{"name": "big", "threshold": 4, "backend": "xen", "spec": {"memory": 1024},
                "labels": {}}]
    with pytest.raises(StateError) as err:
        _pool.fill(store, flavors, make_name=_names(), headroom="none")
    assert "fits on no hypervisor" in str(err.value) or "finds no hypervisor" in str(err.value)
    assert "a: memory: 0 MiB free" in str(err.value) and "b: memory: 0 MiB free" in str(err.value)
    assert store.list_vms() == []
    assert store.get_hypervisor("a")["use"] == {}


def test_pool_fill_without_hypervisors_is_unchanged(store):
    from ansible_collections.vman.lifecycle.plugins.module_utils import _pool
    result, dummy = _pool.fill(store, [{"name": "s", "threshold": 2, "backend": "xen", "spec": {}}],
                               make_name=_names())
    assert result["placement"] == {}
    assert [vm["hypervisor"] for vm in store.list_vms()] == [None, None]
