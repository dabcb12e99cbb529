# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start requests in the store (_store/requests.py): the same tests on SQLite and on a real
PostgreSQL server (``pg_server``, tests/testbed/pg_testbed.py)."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store, schema
from ansible_collections.vman.lifecycle.plugins.module_utils._store import requests as rq


LXC = {"backend": "lxc", "hypervisor": "lxchost1", "spec": {"profile_type": "dir-scratch"}}


def test_migration_2_adds_the_request_tables(url):
    with open_store(url) as s:
        assert s.schema_version() >= 2
        with s._tx() as q:
            for table in ("requests", "request_allocators", "request_devices", "redeploy"):
                assert q.one(f"SELECT COUNT(*) AS n FROM {table}")["n"] == 0
    assert [m[0] for m in schema.MIGRATIONS][:2] == [1, 2]


def test_two_services_share_one_request_idempotently(store):
    before, after = store.register_allocator("web", "svc-a", dict(LXC, count=2), who="t")
    assert before is None and after["allocators"] == ["svc-a"] and after["state"] == rq.PENDING
    assert after["count"] == 2 and after["keep_disk"] is True
    before, after = store.register_allocator("web", "svc-b", {})
    assert before["allocators"] == ["svc-a"] and after["allocators"] == ["svc-a", "svc-b"]
    # again: nothing changes
    before, after = store.register_allocator("web", "svc-b", {"backend": "lxc"})
    assert before == after
    assert [r["name"] for r in store.list_requests()] == ["web"]
    events = [e["event"] for e in store.events(rq.event_subject("web"))]
    assert events == ["request_created", "request_allocator_added"]


def test_parameters_change_and_check_mode_writes_nothing(store):
    store.register_allocator("web", "svc-a", LXC)
    before, after = store.register_allocator("web", "svc-a", {"count": 3}, check=True)
    assert before["count"] == 1 and after["count"] == 3
    assert store.get_request("web")["count"] == 1
    assert store.register_allocator("new", "svc-a", LXC, check=True)[0] is None
    assert store.get_request("new") is None
    store.register_allocator("web", "svc-a", {"count": 3, "keep_disk": False})
    got = store.get_request("web")
    assert got["count"] == 3 and got["keep_disk"] is False


def test_new_request_needs_a_backend(store):
    with pytest.raises(ValidationError, match="backend"):
        store.register_allocator("web", "svc-a", {})
    assert store.get_request("web") is None


def test_removing_one_allocator_keeps_the_request_removing_the_last_marks_it_deleting(store):
    store.register_allocator("web", "svc-a", LXC)
    store.register_allocator("web", "svc-b", {})
    before, after = store.unregister_allocator("web", "svc-a")
    assert after["allocators"] == ["svc-b"] and after["state"] == rq.PENDING
    # removing an allocator that is not there changes nothing
    assert store.unregister_allocator("web", "svc-a")[0] == store.get_request("web")
    before, after = store.unregister_allocator("web", "svc-b", check=True)
    assert after["state"] == rq.DELETING and store.get_request("web")["state"] == rq.PENDING
    store.unregister_allocator("web", "svc-b")
    assert store.get_request("web")["state"] == rq.DELETING
    # the reconciler has not torn anything down yet: an allocator coming back revives it
    before, after = store.register_allocator("web", "svc-c", {})
    assert after["state"] == rq.PENDING and after["allocators"] == ["svc-c"]


def test_device_ready_puts_every_allocator_on_redeploy_and_clear_takes_one_off(store):
    store.register_allocator("web", "svc-a", LXC)
    store.register_allocator("web", "svc-b", {})
    assert store.add_device("web", "web-1", 1) is True
    assert store.add_device("web", "web-1", 1) is False
    assert store.inventory_device("web", "web-1", {"backend": "lxc", "spec": {}}, "10.0.0.5")
    assert store.get_vm("web-1")["status"] == "ready"
    assert store.device_ready("web", "web-1", "boot1", "m1") == ["svc-a", "svc-b"]
    got = store.get_request("web")
    assert got["devices"][0] == {"vm": "web-1", "idx": 1, "ready": True, "boot_id": "boot1",
                                 "marker": "m1", "address": "10.0.0.5"}
    assert [r["allocator"] for r in got["redeploy"]] == ["svc-a", "svc-b"]
    index, by_alloc = store.request_devices_index()
    assert index["web-1"]["redeploy"] == ["svc-a", "svc-b"] and by_alloc == {
        "svc-a": ["web"], "svc-b": ["web"]}
    assert store.clear_redeploy("web", "svc-a") is True
    assert store.clear_redeploy("web", "svc-a") is False
    assert [r["allocator"] for r in store.redeploy_entries()] == ["svc-b"]
    # a reboot without redeploy, then a re-initialised VM with one
    assert store.device_rebooted("web", "web-1", "boot2") == []
    assert store.device_rebooted("web", "web-1", "boot3", "m2", "marker missing") == ["svc-a", "svc-b"]
    assert store.get_request("web")["devices"][0]["marker"] == "m2"
    # an allocator that leaves takes its redeploy entry along
    store.unregister_allocator("web", "svc-b")
    assert [r["allocator"] for r in store.redeploy_entries()] == ["svc-a"]


def test_errors_and_delete_failed_are_recorded_with_reason_and_time(store, clock):
    store.register_allocator("web", "svc-a", LXC)
    clock.t += 5
    assert store.request_failed("web", "start_failed", "lxc-start: no rootfs") == ["svc-a"]
    got = store.get_request("web")
    assert (got["state"], got["error_status"], got["error_reason"], got["error_at"]) == (
        rq.ERROR, "start_failed", "lxc-start: no rootfs", clock.t)
    assert store.set_request_state("web", rq.READY) is True
    got = store.get_request("web")
    assert got["error_status"] is None and got["error_at"] is None
    store.request_delete_failed("web", "web-1: lxc-destroy failed")
    got = store.get_request("web")
    assert got["state"] == rq.DELETE_FAILED and got["error_reason"] == "web-1: lxc-destroy failed"


def test_forget_only_without_allocators_and_devices(store):
    store.register_allocator("web", "svc-a", LXC)
    assert store.forget_request("web") is False
    store.add_device("web", "web-1", 1)
    store.unregister_allocator("web", "svc-a")
    assert store.forget_request("web") is False
    store.inventory_device("web", "web-1", {"backend": "lxc", "spec": {}}, "10.0.0.5")
    assert store.uninventory_device("web", "web-1") is True
    assert store.get_vm("web-1") is None
    assert store.drop_device("web", "web-1") is True
    assert store.forget_request("web") is True
    assert store.get_request("web") is None
    assert store.forget_request("web") is False


def test_lease_keeps_a_second_reconciler_away_until_it_expires(store, clock):
    store.register_allocator("web", "svc-a", LXC)
    assert store.lease_request("web", "rec-a", 60)["name"] == "web"
    assert store.lease_request("web", "rec-b", 60) is None
    assert store.lease_request("web", "rec-a", 60) is not None     # renewal by the owner
    clock.t += 61
    assert store.lease_request("web", "rec-b", 60) is not None     # expired: taken over
    store.release_request("web", "rec-a")                          # not the owner: no effect
    assert store.lease_request("web", "rec-a", 60) is None
    store.release_request("web", "rec-b")
    assert store.lease_request("web", "rec-a", 60) is not None
    assert store.lease_request("gone", "rec-a", 60) is None


def test_concurrent_services_register_on_one_new_request(url):
    """16 services register on the same request at once: one request, 16 allocators."""
    errors = []
    barrier = threading.Barrier(16)

    def worker(i):
        try:
            with open_store(url) as s:
                barrier.wait()
                s.register_allocator("shared", f"svc-{i}", LXC)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_store(url) as s:
        got = s.get_request("shared")
        assert sorted(got["allocators"]) == sorted(f"svc-{i}" for i in range(16))
        assert len(s.list_requests()) == 1


def test_concurrent_add_and_remove_of_the_last_allocators(url):
    """Allocators leaving while others arrive: the request ends 'deleting' only if none is
    left, whatever the interleaving."""
    with open_store(url) as s:
        for i in range(8):
            s.register_allocator("race", f"old-{i}", LXC)
    barrier = threading.Barrier(16)
    errors = []

    def worker(i):
        try:
            with open_store(url) as s:
                barrier.wait()
                if i < 8:
                    s.unregister_allocator("race", f"old-{i}")
                else:
                    s.register_allocator("race", f"new-{i}", {})
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_store(url) as s:
        got = s.get_request("race")
        assert sorted(got["allocators"]) == sorted(f"new-{i}" for i in range(8, 16))
        assert got["state"] == rq.PENDING
