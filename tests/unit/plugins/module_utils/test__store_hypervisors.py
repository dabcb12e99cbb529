# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypervisor rows of the lifecycle store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store, schema


def _xen(**kw):
    fields = {"kind": "xen", "access": {"ssh": "root@dom0a"}, "labels": {"site": "a"},
              "capacity": {"vcpu_ratio": 2.0}}
    fields.update(kw)
    return fields


def test_migration_keeps_every_earlier_row(tmp_path):
    url = f"sqlite://{tmp_path}/old.db"
    with open_store(url, migrate=False) as s:
        with s._tx(write=True) as q:
            q.run(schema.render(schema.VERSION_TABLE, "sqlite"))
            for version, statements in schema.pending(set(), "sqlite"):
                if version >= 4:
                    break
                for statement in statements:
                    q.run(statement)
                q.run("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, 0))
        s.create_vms([{"name": "old", "hypervisor": "xen1", "spec": {"memory": 512}}])
        assert s.migrate() == [4]
        assert s.get_vm("old")["hypervisor"] == "xen1"
        assert s.list_hypervisors() == []


def test_put_get_list_update_and_check_mode(store, clock):
    before, after = store.put_hypervisor("dom0a", _xen(), check=True)
    assert before is None and after["kind"] == "xen"
    assert store.get_hypervisor("dom0a") is None
    before, after = store.put_hypervisor("dom0a", _xen())
    assert before is None
    row = store.get_hypervisor("dom0a")
    assert row["access"] == {"ssh": "root@dom0a"} and row["labels"] == {"site": "a"}
    assert row["capacity"] == {"vcpu_ratio": 2.0} and row["use"] == {}
    assert row["state"] == "enabled" and row["refreshed_at"] is None
    # the same again changes nothing
    before, after = store.put_hypervisor("dom0a", _xen())
    assert before == after
    clock.t += 5
    before, after = store.put_hypervisor("dom0a", {"labels": {"site": "b"}, "capacity": {"memory": 4096}})
    assert after["capacity"] == {"vcpu_ratio": 2.0, "memory": 4096}
    assert store.get_hypervisor("dom0a")["labels"] == {"site": "b"}
    assert store.get_hypervisor("dom0a")["updated_at"] == clock.t
    store.put_hypervisor("kvm1", {"kind": "libvirt"})
    assert [h["name"] for h in store.list_hypervisors()] == ["dom0a", "kvm1"]
    assert [h["name"] for h in store.list_hypervisors(kind="libvirt")] == ["kvm1"]


def test_put_refuses_bad_kind_state_and_a_new_row_without_kind(store):
    with pytest.raises(ValidationError) as err:
        store.put_hypervisor("h", {"kind": "vmware"})
    assert err.value.field == "kind"
    with pytest.raises(ValidationError):
        store.put_hypervisor("h", {"labels": {}})
    with pytest.raises(ValidationError) as err:
        store.put_hypervisor("h", {"kind": "lxc", "state": "gone"})
    assert err.value.field == "state"
    assert store.list_hypervisors() == []


def test_refresh_records_use_and_unreachable_with_reason(store, clock):
    store.put_hypervisor("a", _xen())
    store.put_hypervisor("b", _xen())
    store.put_hypervisor("c", _xen(state="disabled"))
    clock.t += 10
    changed = store.record_refresh(
        {"a": {"capacity": {"memory": 8192, "vcpus": 4}, "use": {"memory": 1024, "vcpus": 1}}},
        {"b": "no answer within 5 s", "c": "ssh failed", "ghost": "x"})
    assert sorted(changed) == ["a", "b", "c"]
    a, b, c = (store.get_hypervisor(n) for n in "abc")
    assert a["capacity"] == {"vcpu_ratio": 2.0, "memory": 8192, "vcpus": 4}
    assert a["use"] == {"memory": 1024, "vcpus": 1} and a["refreshed_at"] == clock.t
    assert (b["state"], b["reason"]) == ("unreachable", "no answer within 5 s")
    assert c["state"] == "disabled"                   # the operator's choice stays
    store.record_refresh({"b": {"capacity": {"memory": 1}, "use": {}}}, {})
    assert (store.get_hypervisor("b")["state"], store.get_hypervisor("b")["reason"]) == ("enabled", None)
    assert [h["name"] for h in store.list_hypervisors(state="enabled")] == ["a", "b"]


def test_assign_records_host_and_use_then_remove_is_refused(store):
    store.put_hypervisor("a", _xen())
    store.record_refresh({"a": {"capacity": {"memory": 8192}, "use": {"memory": 1024, "groups": ["g0"]}}}, {})
    store.create_vms([{"name": "v1", "spec": {}}, {"name": "v2", "spec": {}}])
    res = {"v1": {"memory": 512, "vcpus": 1}, "v2": {"memory": 256, "vcpus": 2}}
    assert store.assign_hypervisors({"v1": "a", "v2": "a"}, res, check=True)["a"]["memory"] == 1792
    assert store.get_vm("v1")["hypervisor"] is None
    store.assign_hypervisors({"v1": "a", "v2": "a"}, res)
    assert store.get_vm("v1")["hypervisor"] == "a"
    assert store.get_hypervisor("a")["use"] == {"memory": 1792, "vcpus": 3, "disk": 0,
                                                "groups": ["g0"]}
    assert [v["name"] for v in store.list_vms(hypervisor="a")] == ["v1", "v2"]
    with pytest.raises(StateError, match="hypervisor nope is not registered"):
        store.assign_hypervisors({"v1": "nope"}, res)
    with pytest.raises(StateError, match="still carries VMs of the store \\(v1, v2\\)"):
        store.remove_hypervisor("a")
    assert store.get_hypervisor("a") is not None
    store.put_hypervisor("empty", {"kind": "lxc"})
    assert store.remove_hypervisor("empty", check=True)["name"] == "empty"
    assert store.get_hypervisor("empty") is not None
    assert store.remove_hypervisor("empty")["name"] == "empty"
    assert store.get_hypervisor("empty") is None
    assert store.remove_hypervisor("empty") is None
