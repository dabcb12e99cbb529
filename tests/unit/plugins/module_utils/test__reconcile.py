# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_reconcile: the pure planner, then the executor against the store (SQLite and a real
PostgreSQL) with FakeBackend, an in-memory stand-in for a hypervisor (named as such; the real
LXC run is in tests/unit/plugins/modules/test_vm_reconcile_real.py)."""

from __future__ import annotations

import base64
import struct
import sys
import threading

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _reconcile as rc
from ansible_collections.vman.lifecycle.plugins.module_utils._backends import RUNNING, STOPPED, Backend
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._store import requests as rq


# ---- the planner (pure) ------------------------------------------------------------------

def _req(allocators=("svc-a",), count=1, devices=(), keep_disk=True):
    return {"name": "web", "backend": "lxc", "hypervisor": None, "flavor": None, "spec": {},
            "count": count, "keep_disk": keep_disk, "state": rq.PENDING,
            "allocators": list(allocators), "devices": list(devices), "redeploy": []}


def _dev(idx, ready=True, boot="b1", marker="m1"):
    return {"vm": f"web-{idx}", "idx": idx, "ready": ready, "boot_id": boot, "marker": marker,
            "address": None}


def _kinds(actions, vm=None):
    return [a.kind for a in actions if vm is None or a.vm == vm]


UP = ["wait_reachable", "host_keys", "inventory", "write_marker", "mark_ready"]


def test_plan_new_request_starts_every_device_with_license_hook_only_when_set():
    plan = rc.plan_request(_req(count=2), {})
    assert _kinds(plan, "web-1") == ["record", "define", "start"] + UP
    assert _kinds(plan, "web-2") == ["record", "define", "start"] + UP
    with_hook = rc.plan_request(_req(), {}, license_hook=True)
    assert "license_load" in _kinds(with_hook)
    assert _kinds(with_hook).index("license_load") < _kinds(with_hook).index("mark_ready")


def test_plan_is_empty_when_everything_is_ready():
    obs = {"web-1": {"state": RUNNING, "boot_id": "b1", "inventoried": True}}
    assert rc.plan_request(_req(devices=[_dev(1)]), obs) == []


def test_plan_boot_id_changed_marker_decides_reboot_or_reinitialised():
    req = _req(devices=[_dev(1)])
    rebooted = rc.plan_request(req, {"web-1": {"state": RUNNING, "boot_id": "b2", "marker": "m1"}})
    assert _kinds(rebooted) == ["rebooted"]
    for marker in (None, "other"):
        plan = rc.plan_request(req, {"web-1": {"state": RUNNING, "boot_id": "b2", "marker": marker}})
        assert _kinds(plan) == ["reinitialized"]
    assert rc.needs_marker(_dev(1), {"state": RUNNING, "boot_id": "b2"})
    assert not rc.needs_marker(_dev(1), {"state": RUNNING, "boot_id": "b1"})
    assert not rc.needs_marker(_dev(1, ready=False), {"state": RUNNING, "boot_id": "b2"})


def test_plan_vanished_vm_is_recreated_and_stopped_one_started():
    plan = rc.plan_request(_req(devices=[_dev(1)]), {"web-1": {"state": None}})
    assert _kinds(plan) == ["define", "start"] + UP
    assert plan[-1].why == "VM missing, re-created"
    assert _kinds(rc.plan_request(_req(devices=[_dev(1)]), {"web-1": {"state": STOPPED}})) == ["start"]
    # stopped before it was ever ready: start and bring up
    assert _kinds(rc.plan_request(_req(devices=[_dev(1, ready=False)]),
                                  {"web-1": {"state": STOPPED}})) == ["start"] + UP


def test_plan_teardown_order_per_device_then_forget():
    req = _req(allocators=(), devices=[_dev(1), _dev(2)], keep_disk=False)
    obs = {"web-1": {"state": RUNNING, "inventoried": True},
           "web-2": {"state": STOPPED, "inventoried": True}}
    plan = rc.plan_request(req, obs, license_hook=True)
    assert [(a.kind, a.vm) for a in plan] == [
        ("license_release", "web-2"), ("uninventory", "web-2"), ("delete", "web-2"),
        ("drop_device", "web-2"),
        ("license_release", "web-1"), ("uninventory", "web-1"), ("stop", "web-1"),
        ("delete", "web-1"), ("drop_device", "web-1"), ("forget", None)]
    assert plan[2].why.endswith("(disk removed)")


def test_plan_scale_out_and_in():
    obs = {"web-1": {"state": RUNNING, "boot_id": "b1"}}
    out = rc.plan_request(_req(count=2, devices=[_dev(1)]), obs)
    assert _kinds(out, "web-1") == [] and _kinds(out, "web-2")[:3] == ["record", "define", "start"]
    obs["web-2"] = {"state": RUNNING, "boot_id": "b1", "inventoried": True}
    scale_in = rc.plan_request(_req(count=1, devices=[_dev(1), _dev(2)]), obs)
    assert _kinds(scale_in) == ["uninventory", "stop", "delete", "drop_device"]
    assert {a.vm for a in scale_in} == {"web-2"} and "forget" not in _kinds(scale_in)


def test_plan_after_a_crash_continues_where_it_stopped():
    # recorded and running but never made ready (crash before mark_ready): bring-up only
    obs = {"web-1": {"state": RUNNING, "boot_id": "b9", "inventoried": True}}
    assert _kinds(rc.plan_request(_req(devices=[_dev(1, ready=False)]), obs)) == UP
    # teardown crashed after the VM was deleted: only the bookkeeping is left
    req = _req(allocators=(), devices=[_dev(1, ready=False)])
    assert _kinds(rc.plan_request(req, {"web-1": {"state": None}})) == ["drop_device", "forget"]
    assert _kinds(rc.plan_request(_req(allocators=()), {})) == ["forget"]


def test_parse_keyscan_and_key_rows():
    out = "# 10.0.0.5:22 SSH-2.0-OpenSSH_9.2\n10.0.0.5 " + ED25519 + "\n10.0.0.5 " + ED25519 + "\n"
    assert rc.parse_keyscan(out) == [ED25519]
    row = rc.key_rows([ED25519])[0]
    assert row["key_type"] == "ed25519" and row["fp_sha256"].startswith("SHA256:")


# ---- the executor with FakeBackend ---------------------------------------------------------

def _ed25519(seed):
    name = b"ssh-ed25519"
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + bytes([seed]) * 32
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


ED25519 = _ed25519(7)


class Crash(BaseException):
    """The reconciler process dies here (not an error it handles)."""


class FakeBackend(Backend):
    """In-memory hypervisor: VMs with a state, a boot counter, a marker and a disk flag."""

    kind = "lxc"

    def __init__(self):
        self.vms, self.calls, self.fail, self.crash = {}, [], {}, set()
        self.boots = 0
        self.kept_disks = set()
        self.lock = threading.Lock()

    def _hit(self, verb, name):
        with self.lock:
            self.calls.append((verb, name))
        if verb in self.crash:
            self.crash.discard(verb)
            raise Crash(verb)
        if verb in self.fail:
            raise CommandError([verb, name], 1, stderr=self.fail[verb])

    def define(self, name, spec):
        self._hit("define", name)
        self.vms.setdefault(name, {"state": STOPPED, "boot": None, "marker": None})

    def start(self, name, spec=None):
        self._hit("start", name)
        vm = self.vms[name]
        if vm["state"] != RUNNING:
            with self.lock:
                self.boots += 1
                vm.update(state=RUNNING, boot=f"boot{self.boots}")

    def stop(self, name, timeout=30):
        self._hit("stop", name)
        self.vms[name]["state"] = STOPPED

    def delete(self, name, keep_storage=True):
        self._hit("delete", name)
        self.vms.pop(name, None)
        if keep_storage:
            self.kept_disks.add(name)

    def state(self, name):
        vm = self.vms.get(name)
        return vm["state"] if vm else None

    def facts(self, name):
        vm = self.vms[name]
        return {"boot_id": vm["boot"], "addresses": [f"10.99.0.{int(name.rsplit('-', 1)[1]) + 1}"]}

    def read_marker(self, name):
        return self.vms[name]["marker"]

    def write_marker(self, name, value):
        self._hit("write_marker", name)
        self.vms[name]["marker"] = value


@pytest.fixture
def fake():
    return FakeBackend()


def _reconciler(store, fake, tmp_path, **kw):
    opts = dict(owner="rec-1", known_hosts=str(tmp_path / "known_hosts"),
                keyscan=lambda address, port: f"{address} {ED25519}\n", probe=lambda a, p: True,
                sleep=lambda s: None)
    opts.update(kw)
    return rc.Reconciler(store, {"lxc": fake}, **opts)


def _redeploy(store):
    return sorted((r["allocator"], r["request"]) for r in store.redeploy_entries())


def _clear(store, name="web"):
    for entry in store.redeploy_entries():
        store.clear_redeploy(entry["request"], entry["allocator"])


def test_two_services_share_a_request_removing_one_keeps_the_vm_both_tear_it_down(
        store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc", "keep_disk": False,
                                              "spec": {"root_password": "s3cret"}})
    store.register_allocator("web", "svc-b", {})
    rec = _reconciler(store, fake, tmp_path)
    [res] = rec.reconcile()
    assert res["error"] is None and res["state"] == rq.READY, res
    assert fake.state("web-1") == RUNNING
    vm = store.get_vm("web-1")
    assert vm["status"] == "ready" and vm["spec"]["connection_ip"] == "10.99.0.2"
    assert "root_password" not in vm["spec"]
    assert _redeploy(store) == [("svc-a", "web"), ("svc-b", "web")]
    assert (tmp_path / "known_hosts").read_text().startswith("web-1,10.99.0.2 ssh-ed25519 ")
    assert store.host_keys("web-1")[0]["public_key"] == ED25519
    # second run: nothing to do
    [res] = rec.reconcile()
    assert res["actions"] == [] and not res["changed"]

    _clear(store)
    store.unregister_allocator("web", "svc-a")
    [res] = rec.reconcile()
    assert res["actions"] == [] and fake.state("web-1") == RUNNING
    assert store.get_vm("web-1") is not None and _redeploy(store) == []

    store.unregister_allocator("web", "svc-b")
    calls = len(fake.calls)
    [res] = rec.reconcile()
    assert res["state"] == "deleted" and res["error"] is None
    assert fake.calls[calls:] == [("stop", "web-1"), ("delete", "web-1")]
    assert fake.state("web-1") is None and "web-1" not in fake.kept_disks
    assert store.get_vm("web-1") is None and store.get_request("web") is None


def test_crash_between_inventory_removal_and_delete_is_completed_next_time(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    _reconciler(store, fake, tmp_path).reconcile()
    store.unregister_allocator("web", "svc-a")
    fake.crash.add("delete")
    with pytest.raises(Crash):
        _reconciler(store, fake, tmp_path).reconcile()
    # the first transaction happened, the VM is still there
    assert store.get_vm("web-1") is None and fake.state("web-1") == STOPPED
    assert store.get_request("web")["state"] == rq.DELETING
    [res] = _reconciler(store, fake, tmp_path, owner="rec-2").reconcile()
    assert res["state"] == "deleted", res
    assert fake.state("web-1") is None and "web-1" in fake.kept_disks      # keep_disk default
    assert store.get_request("web") is None


def test_crash_during_bring_up_is_completed_next_time(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    fake.crash.add("write_marker")
    with pytest.raises(Crash):
        _reconciler(store, fake, tmp_path).reconcile()
    got = store.get_request("web")
    assert got["devices"][0]["ready"] is False and fake.state("web-1") == RUNNING
    assert _redeploy(store) == []
    [res] = _reconciler(store, fake, tmp_path, owner="rec-2").reconcile()
    assert res["state"] == rq.READY and _redeploy(store) == [("svc-a", "web")]
    assert [c for c in fake.calls if c[0] == "define"] == [("define", "web-1")]


def test_failed_start_sets_error_and_redeploys_then_recovers(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    store.register_allocator("web", "svc-b", {})
    fake.fail["start"] = "lxc-start: failed to mount rootfs"
    [res] = _reconciler(store, fake, tmp_path).reconcile()
    got = store.get_request("web")
    assert got["state"] == rq.ERROR and got["error_status"] == "start_failed"
    assert "failed to mount rootfs" in got["error_reason"] and got["error_at"] is not None
    assert res["error"].startswith("start_failed: web-1:")
    assert _redeploy(store) == [("svc-a", "web"), ("svc-b", "web")]
    _clear(store)
    del fake.fail["start"]
    [res] = _reconciler(store, fake, tmp_path).reconcile()
    got = store.get_request("web")
    assert got["state"] == rq.READY and got["error_status"] is None
    assert _redeploy(store) == [("svc-a", "web"), ("svc-b", "web")]


def test_failed_delete_is_delete_failed_and_retried(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    _reconciler(store, fake, tmp_path).reconcile()
    store.unregister_allocator("web", "svc-a")
    fake.fail["delete"] = "lxc-destroy: device busy"
    [res] = _reconciler(store, fake, tmp_path).reconcile()
    got = store.get_request("web")
    assert got["state"] == rq.DELETE_FAILED and "device busy" in got["error_reason"]
    assert res["error"].startswith("delete_failed: web-1:")
    del fake.fail["delete"]
    [res] = _reconciler(store, fake, tmp_path).reconcile()
    assert res["state"] == "deleted" and store.get_request("web") is None


def test_reboot_keeps_quiet_reinitialised_vm_redeploys_vanished_vm_is_recreated(
        store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc", "count": 2})
    rec = _reconciler(store, fake, tmp_path)
    rec.reconcile()
    _clear(store)
    # plain reboot: marker still there
    fake.stop("web-1")
    [res] = rec.reconcile()
    assert [a.split(":")[0] for a in res["actions"]] == ["start web-1", "rebooted web-1"]
    assert _redeploy(store) == []
    # restarted without its configuration: new boot, no marker
    fake.vms["web-2"].update(boot="fresh", marker=None)
    [res] = rec.reconcile()
    assert res["actions"] == ["reinitialized web-2: boot id changed and marker missing"]
    assert _redeploy(store) == [("svc-a", "web")]
    _clear(store)
    # gone behind the manager's back: created again, allocators redeployed
    fake.vms.pop("web-1")
    [res] = rec.reconcile()
    assert res["state"] == rq.READY and fake.state("web-1") == RUNNING
    assert _redeploy(store) == [("svc-a", "web")]
    assert "re-created" in store.redeploy_entries()[0]["reason"]


def test_scale_out_then_in(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    rec = _reconciler(store, fake, tmp_path)
    rec.reconcile()
    store.register_allocator("web", "svc-a", {"count": 2})
    [res] = rec.reconcile()
    assert [d["vm"] for d in store.get_request("web")["devices"]] == ["web-1", "web-2"]
    assert res["state"] == rq.READY
    store.register_allocator("web", "svc-a", {"count": 1})
    rec.reconcile()
    assert [d["vm"] for d in store.get_request("web")["devices"]] == ["web-1"]
    assert fake.state("web-2") is None and store.get_vm("web-2") is None


def test_host_keys_that_differ_from_the_stored_ones_are_refused(store, fake, tmp_path):
    store.put_host_keys("web-1", rc.key_rows([_ed25519(9)]))
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    [res] = _reconciler(store, fake, tmp_path).reconcile()
    assert res["error"].startswith("host_keys_failed") and "differ" in res["error"]
    assert store.get_request("web")["state"] == rq.ERROR
    assert not (tmp_path / "known_hosts").exists()


def test_check_mode_plans_without_acting_and_other_backends_are_skipped(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    store.register_allocator("xenvm", "svc-a", {"backend": "xen"})
    rec = _reconciler(store, fake, tmp_path)
    res = rec.reconcile(check=True)
    assert res[0]["actions"][0] == "record web-1: new device" and res[0]["changed"]
    assert res[1]["skipped"] == "backend 'xen' is not configured here"
    assert fake.calls == [] and store.get_request("web")["devices"] == []
    assert rec.reconcile()[1]["skipped"]


def test_two_reconcilers_at_once_start_each_vm_once(url, tmp_path):
    with open_store(url) as s:
        for name in ("a", "b", "c"):
            s.register_allocator(name, "svc", {"backend": "lxc", "count": 2})
    fake = FakeBackend()
    barrier = threading.Barrier(2)
    errors = []

    def worker(i):
        try:
            with open_store(url) as s:
                barrier.wait()
                _reconciler(s, fake, tmp_path / f"r{i}", owner=f"rec-{i}",
                            known_hosts=None).reconcile()
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    defines = sorted(c[1] for c in fake.calls if c[0] == "define")
    assert defines == sorted(f"{n}-{i}" for n in "abc" for i in (1, 2))


def test_license_hooks_run_with_the_device_in_their_environment(store, fake, tmp_path):
    log = tmp_path / "licenses.log"
    script = ("import os, sys; open(sys.argv[1], 'a').write("
              "' '.join([sys.argv[2], os.environ['VMAN_REQUEST'], os.environ['VMAN_DEVICE'], "
              "os.environ['VMAN_ADDRESS']]) + '\\n')")
    hooks = {f"license_{verb}": [sys.executable, "-c", script, str(log), verb]
             for verb in ("load", "release")}
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    rec = _reconciler(store, fake, tmp_path, **hooks)
    rec.reconcile()
    assert log.read_text() == "load web web-1 10.99.0.2\n"
    store.unregister_allocator("web", "svc-a")
    [res] = rec.reconcile()
    assert res["state"] == "deleted"
    assert log.read_text().splitlines() == ["load web web-1 10.99.0.2", "release web web-1 10.99.0.2"]
    # the release ran before the VM was stopped
    assert [a.split(" ")[0] for a in res["actions"]][:3] == ["license_release", "uninventory", "stop"]


def test_a_failing_license_hook_is_a_start_error(store, fake, tmp_path):
    store.register_allocator("web", "svc-a", {"backend": "lxc"})
    [res] = _reconciler(store, fake, tmp_path, license_load=[sys.executable, "-c", "raise SystemExit(3)"]
                        ).reconcile()
    assert res["error"].startswith("license_load_failed: web-1:")
    got = store.get_request("web")
    assert got["state"] == rq.ERROR and not got["devices"][0]["ready"]


def test_libvirt_requests_on_the_fake_test_driver(store, tmp_path):
    """The reconciler gains libvirt: a request of backend libvirt (spec {xml}) is defined,
    started and torn down through the registry's LibvirtGuest on libvirt's test:///default
    driver (a fake hypervisor inside libvirt, named as such); no marker, so no marker write."""
    pytest.importorskip("libvirt")
    from ansible_collections.vman.lifecycle.plugins.module_utils._backends import make_backend
    backend = make_backend("libvirt", {"uri": "test:///default", "stop_timeout": 0})
    xml = ("<domain type='test'><name>t</name><memory unit='MiB'>32</memory>"
           "<os><type>hvm</type></os></domain>")
    try:
        store.register_allocator("lv", "svc-a", {"backend": "libvirt", "count": 2, "keep_disk": False,
                                                 "spec": {"xml": xml}})
        rec = rc.Reconciler(store, {"libvirt": backend}, owner="rec-1", known_hosts=str(tmp_path / "kh"),
                            keyscan=None, reachable="running", sleep=lambda s: None)
        [res] = rec.reconcile()
        assert res["error"] is None and res["state"] == rq.READY, res
        assert backend.states(["lv-1", "lv-2"]) == {"lv-1": RUNNING, "lv-2": RUNNING}
        assert store.get_vm("lv-2")["status"] == "ready"
        [res] = rec.reconcile()
        assert res["actions"] == [] and not res["changed"]
        store.unregister_allocator("lv", "svc-a")
        [res] = rec.reconcile()
        assert res["state"] == "deleted" and backend.states(["lv-1", "lv-2"]) == {"lv-1": None, "lv-2": None}
    finally:
        backend.close()
