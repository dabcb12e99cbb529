# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle store, the same tests on SQLite and on a real PostgreSQL server
(``pg_server``: tests/testbed/pg_testbed.py, registered in tests/unit/conftest.py)."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from collections import Counter

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import (
    StoreError, open_store, resolve_url, schema)


def _vm(name, flavor="small", **kw):
    rec = {"name": name, "org": "acme", "flavor": flavor, "backend": "xen",
           "hypervisor": "xen1", "spec": {"memory": 1024, "os": {"type": "debian"}}}
    rec.update(kw)
    return rec


def _put(store, name, status, **kw):
    """A VM in ``status``, reached by the real transitions."""
    store.create_vms([_vm(name, **kw)], who="test")
    path = {"installing": [], "postinstall": ["postinstall"],
            "preallocated": ["postinstall", "preallocated"],
            "ready": ["postinstall", "preallocated", "ready"]}
    for step in path.get(status, ["postinstall", "preallocated", "ready", status]):
        store.change_status(name, step, "admin", who="test")
    assert store.get_vm(name)["status"] == status


# ---- schema --------------------------------------------------------------------------

def test_migration_empty_db_then_reopen_does_nothing(url):
    with open_store(url, migrate=False) as s:
        assert s.migrate() == [m[0] for m in schema.MIGRATIONS]
        assert s.schema_version() == schema.LATEST
    with open_store(url, migrate=False) as s:
        assert s.migrate() == []
        assert s.schema_version() == schema.LATEST
        with s._tx() as q:
            assert q.one("SELECT COUNT(*) AS n FROM schema_version")["n"] == len(schema.MIGRATIONS)
            for table in ("vms", "netconfs", "tokens", "host_keys", "events"):
                assert q.one(f"SELECT COUNT(*) AS n FROM {table}")["n"] == 0


def test_sqlite_file_modes_and_wal(tmp_path):
    path = tmp_path / "new" / "dir" / "lc.db"
    old = os.umask(0o022)
    try:
        with open_store(f"sqlite://{path}") as s:
            assert s.journal_mode() == "wal"
            s.create_vms([_vm("a")])
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(f"{path}-wal").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    finally:
        os.umask(old)


def test_url_selection(tmp_path, monkeypatch):
    monkeypatch.delenv("VMAN_STORE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_url() == f"sqlite://{tmp_path}/.local/state/vman/lifecycle.db"
    with open_store() as s:
        assert s.path == f"{tmp_path}/.local/state/vman/lifecycle.db"
    monkeypatch.setenv("VMAN_STORE", f"sqlite://{tmp_path}/env.db")
    with open_store() as s:
        assert s.path == f"{tmp_path}/env.db"
    with open_store(f"sqlite://{tmp_path}/arg.db") as s:   # the argument beats the env
        assert s.path == f"{tmp_path}/arg.db"
    with pytest.raises(ValidationError, match="must start with sqlite:/// or postgresql://"):
        open_store("mysql://x@y/z")


def test_postgres_unreachable_error_redacts_password(tmp_path):
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as err:
        open_store(f"postgresql://u:s3cret@/db?host={tmp_path}&port=1", connect_timeout=2)
    assert "s3cret" not in str(err.value) and "********" in str(err.value)


# ---- VMs and statuses --------------------------------------------------------------

def test_create_get_list_and_event(store):
    made = store.create_vms([_vm("a"), _vm("b", flavor="big")], who="pool", why="fill")
    assert [v["name"] for v in made] == ["a", "b"]
    a = store.get_vm("a")
    assert a["status"] == "installing" and a["spec"]["os"]["type"] == "debian"
    assert a["admin_suspended"] is False and a["owner"] is None
    assert [v["name"] for v in store.list_vms(flavor="big")] == ["b"]
    assert store.count_by_flavor("installing") == {"small": 1, "big": 1}
    assert store.events("a") == [{"at": 1_700_000_000.0, "vm": "a", "actor": "admin", "who": "pool",
                                  "event": "create", "from_status": None,
                                  "to_status": "installing", "why": "fill"}]
    assert store.get_vm("nope") is None


def test_create_batch_is_one_transaction(store):
    store.create_vms([_vm("a")])
    with pytest.raises(StateError, match="VM 'a' already exists"):
        store.create_vms([_vm("c"), _vm("a")])
    assert store.get_vm("c") is None and store.events("c") == []


def test_change_status_writes_event_check_mode_and_idempotence(store, clock):
    _put(store, "a", "ready")
    clock.t += 60
    plan = store.change_status("a", "quarantined", "user", who="alice", why="hacked", check=True)
    assert (plan.before, plan.after, plan.changed) == ("ready", "quarantined", True)
    assert store.get_vm("a")["status"] == "ready"
    n = len(store.events("a"))
    plan = store.change_status("a", "quarantined", "user", who="alice", why="hacked")
    vm = store.get_vm("a")
    assert vm["status"] == "quarantined" and vm["status_since"] == clock.t
    last = store.events("a")[-1]
    assert (last["from_status"], last["to_status"], last["actor"], last["who"], last["why"]) == (
        "ready", "quarantined", "user", "alice", "hacked")
    again = store.change_status("a", "quarantined", "user")
    assert again.changed is False and len(store.events("a")) == n + 1


def test_illegal_transition_names_vm_status_and_next(store):
    _put(store, "a", "installing")
    with pytest.raises(StateError, match=r"VM 'a': cannot change status from 'installing' to "
                                         r"'ready' as admin: no such transition; allowed next "
                                         r"statuses for admin: postinstall, failed, canceled"):
        store.change_status("a", "ready", "admin")
    assert store.get_vm("a")["status"] == "installing" and len(store.events("a")) == 1
    with pytest.raises(StateError, match="VM 'ghost' is not in the store"):
        store.change_status("ghost", "ready", "admin")


def test_suspension_blocks_user_enable(store):
    _put(store, "a", "disabled")
    assert store.set_admin_suspended("a", True, who="root", why="abuse") == (False, True)
    with pytest.raises(StateError, match="administratively suspended"):
        store.change_status("a", "ready", "user")
    assert store.events("a")[-1]["event"] == "admin_suspend"
    assert store.set_admin_suspended("a", True) == (True, True)
    store.set_admin_suspended("a", False)
    assert store.change_status("a", "ready", "user").after == "ready"


def test_purge_after_grace(store, clock):
    _put(store, "a", "canceled")
    clock.t += 29 * lc.DAY
    with pytest.raises(StateError, match="days left"):
        store.change_status("a", "purged", "admin")
    assert store.change_status("a", "purged", "admin", grace_days=7).after == "purged"


def test_ansible_request_queue_and_deferral(store):
    _put(store, "a", "ready")
    seq = [store.request_ansible("a", "user").after for dummy in range(3)]
    assert seq == ["ansible", "ansible_queue", "ansible_queue"]
    store.change_status("a", "ansible", "admin", why="run ended, queued run starts")
    store.change_status("a", "ready", "admin", why="run ended")
    _put(store, "b", "installing")
    first = store.request_ansible("b", "user")
    assert first.deferred and first.changed and store.get_vm("b")["ansible_pending"]
    assert store.request_ansible("b", "user").changed is False
    assert store.events("b")[-1]["event"] == "ansible_request_deferred"
    for step in ("postinstall", "preallocated", "ready", "ansible"):
        store.change_status("b", step, "admin")
    assert store.get_vm("b")["ansible_pending"] is False


def test_claim(store):
    with pytest.raises(StateError, match="no preallocated VM of flavor 'small'"):
        store.claim("small", "alice")
    _put(store, "a", "preallocated")
    _put(store, "b", "preallocated", flavor="big")
    vm = store.claim("small", "alice")
    assert (vm["name"], vm["status"], vm["owner"]) == ("a", "ready", "alice")
    assert store.events("a")[-1]["event"] == "claim"
    with pytest.raises(StateError):
        store.claim("small", "bob")


def test_fill_pool_counts_pipeline_and_is_atomic(store):
    names = iter(f"vm{i}" for i in range(100))
    flavors = [{"name": "small", "threshold": 3, "spec": {"memory": 512}, "org": "acme",
                "backend": "xen"},
               {"name": "big", "threshold": 1, "spec": {"memory": 4096}, "backend": "libvirt"}]
    store.add_netconfs("p", "vm", [{"hostname": f"v{i}", "ipv6": f"2001:db8::{i}"} for i in range(4)])
    store.add_netconfs("p", "service", [{"hostname": f"s{i}", "ipv4": f"192.0.2.{i}"} for i in range(3)])
    assert store.fill_pool(flavors, lambda: next(names), check=True) == ({"small": 3, "big": 1}, [])
    assert store.list_vms() == []
    # 4 VMs need 4 service netconfs, there are 3: nothing is created, the pool is named
    with pytest.raises(StateError, match="netconf pool 'p' has no free 'service' entry"):
        store.fill_pool(flavors, lambda: next(names), "p", ("vm", "service"))
    assert store.list_vms() == [] and store.netconf_stats("p")["vm"]["free"] == 4
    deficit, made = store.fill_pool(flavors, lambda: next(names), "p", ("vm",))
    assert deficit == {"small": 3, "big": 1} and len(made) == 4
    assert made[0]["status"] == "installing" and made[0]["spec"] == {"memory": 512}
    assert made[3]["backend"] == "libvirt" and made[3]["netconfs"]["vm"]["in_use_by"] == made[3]["name"]
    # a VM moving along the pipeline still counts; a claimed one leaves the pool
    store.change_status(made[0]["name"], "postinstall", "admin")
    assert store.fill_pool(flavors, lambda: next(names), "p", ("vm",)) == ({"small": 0, "big": 0}, [])
    store.change_status(made[0]["name"], "preallocated", "admin")
    store.claim("small", "alice")
    assert store.fill_pool(flavors, lambda: next(names), check=True)[0] == {"small": 1, "big": 0}


def test_claim_check_mode(store):
    _put(store, "a", "preallocated")
    vm = store.claim("small", "alice", check=True)
    assert (vm["name"], vm["status"], vm["owner"]) == ("a", "ready", "alice")
    assert store.get_vm("a")["status"] == "preallocated"


# ---- netconfs, tokens, keys ------------------------------------------------------------

def test_netconfs(store):
    entries = [{"hostname": f"h{i}.example", "ipv4": f"192.0.2.{i}", "ipv6": f"2001:db8::{i}"}
               for i in (1, 2)]
    assert store.add_netconfs("prod", "vm", entries, check=True) == ["h1.example", "h2.example"]
    assert store.netconfs("prod") == []
    assert store.add_netconfs("prod", "vm", entries) == ["h1.example", "h2.example"]
    assert store.add_netconfs("prod", "vm", entries) == []
    with pytest.raises(ValidationError, match=r"field 'ipv4' = '192.0.2.1': already used by "
                                              r"netconf 'h1.example' in pool 'prod'"):
        store.add_netconfs("prod", "vm", [{"hostname": "h9", "ipv4": "192.0.2.1"}])
    assert store.allocate_netconf("prod", "vm", "vm-a", check=True) == (
        dict(store.netconfs("prod")[0], id=1, in_use_by="vm-a"), True)
    assert store.netconfs(vm="vm-a") == []
    a, changed = store.allocate_netconf("prod", "vm", "vm-a")
    assert a["hostname"] == "h1.example" and changed
    assert store.allocate_netconf("prod", "vm", "vm-a") == (a, False)
    assert [r["hostname"] for r in store.netconfs(in_use=True)] == ["h1.example"]
    store.allocate_netconf("prod", "vm", "vm-b")
    assert store.netconf_stats("prod") == {"vm": {"total": 2, "free": 0}}
    assert [r["in_use_by"] for r in store.netconfs("prod", in_use=True)] == ["vm-a", "vm-b"]
    with pytest.raises(StateError, match="netconf pool 'prod' has no free 'vm' entry left for VM 'vm-c'"):
        store.allocate_netconf("prod", "vm", "vm-c")
    assert store.release_netconfs("vm-a") == ["h1.example"]
    assert store.allocate_netconf("prod", "vm", "vm-c")[0]["hostname"] == "h1.example"


def test_tokens_and_host_keys(store):
    store.add_token("a", "sha256:abc", expires_at=2e9, source_ip="192.0.2.7")
    [tok] = store.tokens("a")
    assert tok["token_hash"] == "sha256:abc" and tok["used_at"] is None
    assert store.use_token(tok["id"]) is True
    assert store.use_token(tok["id"]) is False
    store.add_token("a", "sha256:def", expires_at=2e9)
    store.add_token("b", "sha256:other", expires_at=2e9)
    assert store.drop_tokens("a", check=True) == 2 and len(store.tokens("a")) == 2
    assert store.drop_tokens("a") == 2 and store.tokens("a") == [] and store.drop_tokens("a") == 0
    assert [t["token_hash"] for t in store.tokens("b")] == ["sha256:other"]
    keys = [{"key_type": "ed25519", "public_key": "ssh-ed25519 AAAA", "fp_sha256": "SHA256:x"}]
    store.put_host_keys("a", keys)
    store.put_host_keys("a", keys)
    assert store.host_keys("a") == [dict(keys[0], fp_sha1=None)]
    store.put_host_keys("b", keys)
    assert store.drop_host_keys("a", check=True) == ["ed25519"] and len(store.host_keys("a")) == 1
    assert store.drop_host_keys("a") == ["ed25519"]
    assert store.host_keys("a") == [] and store.drop_host_keys("a") == []
    assert len(store.host_keys("b")) == 1


# ---- concurrency -----------------------------------------------------------------------

CLAIMERS = 32
CLAIMS = 1000


def test_concurrent_claims_never_hand_out_a_vm_twice(url):
    with open_store(url) as s:
        names = [str(uuid.uuid4()) for dummy in range(CLAIMS)]
        s.create_vms([_vm(n) for n in names])
        with s._tx(write=True) as q:   # straight to preallocated: the path is tested elsewhere
            q.run("UPDATE vms SET status = ?", ("preallocated",))
    got, errors = [], []
    lock, start = threading.Lock(), threading.Barrier(CLAIMERS)

    def claimer(i):
        try:
            mine = []
            with open_store(url) as s:
                start.wait()
                while True:
                    try:
                        mine.append(s.claim("small", f"user{i}")["name"])
                    except StateError:
                        break
            with lock:
                got.extend(mine)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    twice = [n for n, c in Counter(got).items() if c > 1]
    assert twice == [] and len(got) == CLAIMS and set(got) == set(names)
    with open_store(url) as s:
        assert len(s.list_vms(status="ready")) == CLAIMS
        with s._tx() as q:
            assert q.one("SELECT COUNT(*) AS n FROM events WHERE event = 'claim'")["n"] == CLAIMS


def test_concurrent_ansible_requests_queue_exactly_one(url):
    with open_store(url) as s:
        _put(s, "a", "ready")
    outcomes, start = [], threading.Barrier(16)

    def req():
        with open_store(url) as s:
            start.wait()
            p = s.request_ansible("a", "user")
            outcomes.append((p.before, p.after, p.changed))

    threads = [threading.Thread(target=req) for dummy in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    changed = sorted(o for o in outcomes if o[2])
    assert changed == [("ansible", "ansible_queue", True), ("ready", "ansible", True)]
    assert len(outcomes) == 16


def test_concurrent_pool_fills_do_not_overfill(url):
    open_store(url).close()
    flavors = [{"name": "small", "threshold": 40, "spec": {}, "backend": "xen"}]
    created, errors, start = [], [], threading.Barrier(8)

    def filler():
        try:
            with open_store(url) as s:
                start.wait()
                created.extend(s.fill_pool(flavors, lambda: str(uuid.uuid4()))[1])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=filler) for dummy in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(created) == 40
    with open_store(url) as s:
        assert s.count_by_flavor("installing") == {"small": 40}


def _claim_in_process(args):
    url, i = args
    mine = []
    with open_store(url) as s:
        while True:
            try:
                mine.append(s.claim("small", f"proc{i}")["name"])
            except StateError:
                return mine


def test_sqlite_claims_from_separate_processes(tmp_path):
    # several ansible-playbook runs on one controller are processes, not threads
    import multiprocessing
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([_vm(f"vm{i}") for i in range(300)])
        with s._tx(write=True) as q:
            q.run("UPDATE vms SET status = ?", ("preallocated",))
    with multiprocessing.get_context("fork").Pool(16) as pool:
        results = pool.map(_claim_in_process, [(url, i) for i in range(16)])
    got = [n for part in results for n in part]
    assert len(got) == 300 and len(set(got)) == 300


# ---- generated secrets and the end of ansible runs (migration 3) ----------------------------

def test_secrets_kept_until_taken_on_both_backends(store):
    store.create_vms([_vm("s1"), _vm("s2")])
    made = iter(["first-value", "second-value"])
    assert store.put_secret("s1", "root", lambda: next(made)) == ("first-value", True)
    # a second put keeps the first value and never calls the generator again
    assert store.put_secret("s1", "root", lambda: "unused") == ("first-value", False)
    assert store.put_secret("s2", "root", lambda: next(made)) == ("second-value", True)
    assert store.take_secret("s1", "root", check=True) == "first-value"
    assert store.has_secret("s1", "root")
    assert store.take_secret("s1", "root") == "first-value"
    assert store.take_secret("s1", "root") is None and not store.has_secret("s1", "root")
    assert store.drop_secrets("s2", check=True) == ["root"] and store.has_secret("s2", "root")
    assert store.drop_secrets("s2") == ["root"] and store.drop_secrets("s2") == []
    with pytest.raises(StateError, match="VM 'nope' is not in the store"):
        store.put_secret("nope", "root", lambda: "x")


def test_finish_ansible_run_on_both_backends(store):
    _put(store, "r1", "ready")
    store.request_ansible("r1", "user")
    store.request_ansible("r1", "user")
    assert store.finish_ansible_run("r1", who="t").after == "ansible"
    assert store.finish_ansible_run("r1", who="t").after == "ready"
    with pytest.raises(StateError, match="no ansible run to finish"):
        store.finish_ansible_run("r1")
    assert [e["event"] for e in store.events("r1")][-2:] == ["ansible_done_run_queued", "ansible_done"]


# ---- read-only opens (the fleet inventory) ---------------------------------------------

def test_read_only_reads_and_refuses_writes(url):
    with open_store(url) as s:
        _put(s, "a", "preallocated")
    with open_store(url, read_only=True) as ro:
        assert ro.read_only and [vm["name"] for vm in ro.list_vms()] == ["a"]
        assert ro.schema_version() == schema.LATEST
        for write in (lambda: ro.claim("small", "alice"),
                      lambda: ro.create_vms([_vm("b")]),
                      lambda: ro.change_status("a", "ready", "admin"),
                      ro.migrate):
            with pytest.raises(StoreError, match="open read-only: nothing can be written"):
                write()
        # check mode only reads: allowed
        assert ro.claim("small", "alice", check=True)["name"] == "a"
    with open_store(url) as s:
        assert s.get_vm("a")["status"] == "preallocated" and s.list_vms(status="ready") == []


def test_read_only_refuses_an_old_schema_and_names_the_fix(url):
    with open_store(url, migrate=False) as s:
        with s._tx(write=True) as q:
            q.run(schema.render(schema.VERSION_TABLE, s.dialect))
            for version, statements in schema.pending(set(), s.dialect):
                if version < schema.LATEST:
                    for statement in statements:
                        q.run(statement)
                    q.run("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                          (version, 0.0))
    with pytest.raises(StoreError, match=rf"schema version {schema.LATEST - 1}, this collection "
                       rf"needs {schema.LATEST} \(missing migration {schema.LATEST}\).*read-only.*"
                       r"vman.lifecycle.vm_status_info"):
        open_store(url, read_only=True)
    with open_store(url) as s:     # a module's open migrates it
        assert s.schema_version() == schema.LATEST
    with open_store(url, read_only=True) as ro:
        assert ro.list_vms() == []


def test_read_only_sqlite_missing_or_empty_file(tmp_path):
    path = tmp_path / "nope" / "lc.db"
    from ansible_collections.vman.lifecycle.plugins.module_utils._store import StoreMissing
    with pytest.raises(StoreMissing, match=r"does not exist; .*not created.*vm_status_info"):
        open_store(f"sqlite://{path}", read_only=True)
    assert not path.parent.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match=r"schema version 0, this collection needs"):
        open_store(f"sqlite://{empty}", read_only=True)
    assert empty.read_bytes() == b""


def _snapshot(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, path.read_bytes()


def test_read_only_sqlite_never_changes_the_file(tmp_path):
    path = tmp_path / "lc.db"
    with open_store(f"sqlite://{path}") as s:
        _put(s, "a", "ready")
    before = _snapshot(path)
    for dummy in range(3):
        with open_store(f"sqlite://{path}", read_only=True) as ro:
            assert ro.get_vm("a")["status"] == "ready"
            with pytest.raises(StoreError):
                ro.put_host_keys("a", [])
            # even a raw write is refused by SQLite itself (mode=ro)
            with pytest.raises(Exception, match="readonly"):
                ro._conn.execute("DELETE FROM vms")
    assert _snapshot(path) == before


def test_read_only_sqlite_reads_while_a_writer_holds_the_lock(tmp_path):
    import sqlite3
    import time
    path = tmp_path / "lc.db"
    with open_store(f"sqlite://{path}") as s:
        _put(s, "a", "ready")
    writer = sqlite3.connect(str(path), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE vms SET owner = 'uncommitted' WHERE name = 'a'")
        start = time.monotonic()
        with open_store(f"sqlite://{path}", read_only=True) as ro:
            vm = ro.get_vm("a")
        assert time.monotonic() - start < 5
        assert vm["owner"] is None       # the writer's uncommitted change is not seen
        # a read-write open would wait for the lock (its migration begins IMMEDIATE)
        with pytest.raises(StoreError, match="locked"):
            _open_rw_briefly(path)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _open_rw_briefly(path):
    from ansible_collections.vman.lifecycle.plugins.module_utils._store import sqlite as sq
    old = sq.BUSY_TIMEOUT_S
    sq.BUSY_TIMEOUT_S = 0.2
    try:
        open_store(f"sqlite://{path}").close()
    finally:
        sq.BUSY_TIMEOUT_S = old


# ---- batch claims ------------------------------------------------------------------------

def test_claim_many_all_or_nothing(store, clock):
    for name, flavor in (("a", "small"), ("b", "small"), ("c", "big"), ("d", "small")):
        _put(store, name, "preallocated", flavor=flavor)
    store.add_netconfs("p", "vm", [{"hostname": "nc-a", "ipv4": "192.0.2.1"}])
    store.allocate_netconf("p", "vm", "a")
    # 2 big wanted, 1 there; 4 small wanted, 3 there: nothing claimed, both named
    with pytest.raises(StateError, match=r"batch of 6 claims, nothing was claimed: flavor 'big' "
                       r"wanted 2, available 1, flavor 'small' wanted 4, available 3"):
        store.claim_many([("small", "u1"), ("big", "u2"), ("small", "u3"), ("small", "u4"),
                          ("big", "u5"), ("small", "u6")])
    assert store.list_vms(status="ready") == []
    with pytest.raises(StateError, match="flavor 'nope' wanted 1, available 0"):
        store.claim_many([("nope", "u1")], check=True)
    # check mode: the same VMs as the real run, nothing written
    dry = store.claim_many([("small", "alice"), ("big", "bob"), ("small", "alice")], check=True)
    assert [(v["name"], v["owner"], v["status"]) for v in dry] == [
        ("a", "alice", "ready"), ("c", "bob", "ready"), ("b", "alice", "ready")]
    assert store.list_vms(status="ready") == []
    got = store.claim_many([("small", "alice"), ("big", "bob"), ("small", "alice")], who="t")
    assert [(v["name"], v["owner"], v["status"]) for v in got] == [
        ("a", "alice", "ready"), ("c", "bob", "ready"), ("b", "alice", "ready")]
    assert got[0]["before"] == {"status": "preallocated", "owner": None}
    assert got[0]["netconfs"]["vm"]["hostname"] == "nc-a" and got[1]["netconfs"] == {}
    assert store.events("c")[-1]["event"] == "claim" and store.events("c")[-1]["who"] == "t"
    assert store.get_vm("b")["owner"] == "alice"
    # not idempotent, as a single claim: the next batch takes the next VMs
    assert [v["name"] for v in store.claim_many([("small", "carol")])] == ["d"]
    with pytest.raises(StateError, match="flavor 'small' wanted 1, available 0"):
        store.claim_many([("small", "carol")])


def test_concurrent_batch_claims_never_share_a_vm(url):
    with open_store(url) as s:
        s.create_vms([_vm(f"v{i}") for i in range(40)], status=lc.PREALLOCATED)
    results, errors = [], []

    def claimer(n):
        with open_store(url) as s:
            try:
                results.append([v["name"] for v in s.claim_many([("small", f"o{n}")] * 15)])
            except StateError as exc:
                errors.append(str(exc))
    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 45 wanted, 40 there: two batches of 15 succeed, the third gets nothing (all or nothing).
    # PostgreSQL skips rows a failing batch holds for a moment, so there a second one may fail.
    assert len(results) + len(errors) == 3
    assert len(results) == 2 if url.startswith("sqlite") else len(results) >= 1
    names = [n for r in results for n in r]
    assert len(names) == len(set(names)) == 15 * len(results)
    assert all("wanted 15, available" in e for e in errors)
    with open_store(url) as s:
        assert len(s.list_vms(status="ready")) == len(names)
