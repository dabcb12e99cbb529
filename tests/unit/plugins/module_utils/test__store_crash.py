# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash safety of the SQLite store: SIGKILL inside four store operations, 50 times each.

Technique: the parent forks a child (os.fork, the parent's store closed first so no SQLite
connection crosses the fork); the child opens the store fresh, then wraps the store's cursor
calls (``_Q.run/one/all``) and its connection (``cursor``/``commit``) so that every statement
and the commit give two kill points (before and after). The parent picks one of the points of
the operation uniformly at random (seeded: ``VMAN_CRASH_SEED``, printed) and the child sends
itself SIGKILL there, so the kills land inside the transactions reliably (after BEGIN, between
statements, just before and just after COMMIT), not merely near them as a timer would.
A second test adds timer kills (0-30 ms, the child looping all four operations), which can
also land inside SQLite's own C code (a COMMIT writing its WAL frames).

After each kill the parent opens the store fresh, checks the invariants of the schema (below)
and runs the next operation to completion. Operations: a pool fill as vm_pool does it
(``_pool.fill`` with a netconf pool), a claim (``_pool.claim``), a status transition
(``Store.change_status``) and an install callback (``_callback.verify``).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections import Counter

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _callback
from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils import _pool
from ansible_collections.vman.lifecycle.plugins.module_utils._store import base, open_store, schema

pytestmark = pytest.mark.real

KILLS = 50
SEED = int(os.environ.get("VMAN_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
FLAVOR = {"name": "small", "threshold": 0, "spec": {"memory": 512}, "org": "acme", "backend": "xen"}
PRE_CLAIM = (lc.INSTALLING, lc.POSTINSTALL, lc.PREALLOCATED)


class _Conn:
    """The store's connection with a kill point before ``cursor()`` (so before BEGIN) and
    before and after ``commit()``."""

    def __init__(self, conn, point):
        self._conn, self._point = conn, point

    def cursor(self):
        self._point()
        return self._conn.cursor()

    def commit(self):
        self._point()
        self._conn.commit()
        self._point()

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _instrument(store, kill_at):
    """Make ``store`` SIGKILL its own process at hook point ``kill_at`` (None: only count);
    return the counter."""
    count = [0]

    def point():
        if kill_at is not None and count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        count[0] += 1

    def wrap(orig):
        def call(self, sql, args=()):
            point()
            out = orig(self, sql, args)
            point()
            return out
        return call

    for name in ("run", "one", "all"):
        setattr(base._Q, name, wrap(getattr(base._Q, name)))
    store._conn = _Conn(store._conn, point)  # pylint: disable=protected-access
    return count


def _in_child(url, op, kill_at):
    """Run ``op(store)`` in a forked child killed at ``kill_at``; return its wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            store = open_store(url)
            _instrument(store, kill_at)
            op(store)
            code = 0
        finally:
            os._exit(code)  # pylint: disable=protected-access
    _pid, status = os.waitpid(pid, 0)
    return status


def _points(url, op):
    """How many kill points ``op`` passes: counted in a child, which then exits normally, on a
    copy of the store (SQLite's backup API), so the store itself is left as it was."""
    path = base_path = url[len("sqlite://"):]
    copy = base_path + ".count"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(copy + suffix):
            os.unlink(copy + suffix)
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    url = "sqlite://" + copy
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        code = 1
        try:
            store = open_store(url)
            count = _instrument(store, None)
            op(store)
            os.write(write, str(count[0]).encode())
            code = 0
        finally:
            os._exit(code)  # pylint: disable=protected-access
    os.close(write)
    _pid, status = os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        text = f.read()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return int(text)


def _invariants(url):
    """Check every invariant of the schema on a freshly opened store."""
    with open_store(url) as s:
        with s._tx() as q:  # pylint: disable=protected-access
            assert q.one("PRAGMA integrity_check")[0] == "ok"
            versions = {r["version"] for r in q.all("SELECT version FROM schema_version")}
            assert versions == {m[0] for m in schema.MIGRATIONS}
            vms = {r["name"]: dict(r) for r in q.all("SELECT * FROM vms")}
            events = q.all("SELECT * FROM events ORDER BY id")
            netconfs = [dict(r) for r in q.all("SELECT * FROM netconfs")]
            tokens = [dict(r) for r in q.all("SELECT * FROM tokens")]
        assert s.schema_version() == schema.LATEST
    by_vm = {}
    for ev in events:
        by_vm.setdefault(ev["vm"], []).append(ev)
    assert set(by_vm) == set(vms), "events of a VM that is not there, or a VM without events"
    now = time.time()
    for name, vm in vms.items():
        # one current status, a valid one, and the event chain ends in it
        assert vm["status"] in lc.STATUSES, vm
        chain = by_vm[name]
        assert chain[0]["event"] == "create" and chain[0]["from_status"] is None
        for before, after in zip(chain, chain[1:]):
            assert after["from_status"] == before["to_status"], (name, chain)
        assert chain[-1]["to_status"] == vm["status"], (name, chain[-1], vm)
        # a claimed VM has an owner; one not yet claimed has none (none is created with one here)
        claimed = any(ev["event"] == "claim" for ev in chain)
        assert claimed == (vm["owner"] is not None), vm
        assert claimed == (vm["status"] not in PRE_CLAIM), vm
        mine = [t for t in tokens if t["vm"] == name]
        valid = [t for t in mine if t["used_at"] is None and t["expires_at"] > now]
        assert len([t for t in mine if t["used_at"] is None]) <= 1, mine
        if vm["status"] == lc.INSTALLING and mine:
            # a spent token while still installing: only as a revoked one beside a valid one
            assert valid, (name, mine)
        if mine and any(ev["event"] == "install_callback" for ev in chain):
            # a VM given a token left installing by spending it (the setup here moves
            # token-less VMs on by change_status)
            assert not valid and any(t["used_at"] is not None for t in mine), (name, mine)
    # no VM holds two netconfs of a pool and kind; every holder exists; a filled VM holds one
    held = {}
    for row in netconfs:
        assert (row["in_use_by"] is None) == (row["allocated_at"] is None), row
        if row["in_use_by"] is not None:
            key = (row["in_use_by"], row["pool"], row["kind"])
            assert key not in held, (row, held.get(key))
            held[key] = row
            assert row["in_use_by"] in vms, row
    for name in vms:
        assert (name, "p", "vm") in held, f"VM {name} was filled without its netconf"
    return vms


def _setup(url):
    with open_store(url) as s:
        s.add_netconfs("p", "vm", [{"hostname": f"h{i}", "ipv4": f"10.1.{i // 250}.{i % 250 + 1}"}
                                   for i in range(400)])


def _fill(n):
    def op(store):
        return _pool.fill(store, [dict(FLAVOR, threshold=n)], "p", ("vm",), who="pool")
    return op


def _pipeline(url):
    with open_store(url) as s:
        return sum(s.count_by_flavor(st).get("small", 0) for st in PRE_CLAIM)


def _pipeline_in(s):
    return sum(s.count_by_flavor(st).get("small", 0) for st in PRE_CLAIM)


def _kill_loop(url, make_op, after, rng, label):
    """``KILLS`` times: the op of ``make_op()`` killed at a random point, the invariants, then
    ``after(op_args)`` (the next operation, run to completion and checked)."""
    where, outcomes = [], Counter()
    for i in range(KILLS):
        op, state = make_op(i)
        n = _points(url, op)
        kill_at = rng.randrange(n)
        status = _in_child(url, op, kill_at)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
            f"{label} #{i}: the child was not killed at point {kill_at} of {n} ({status})"
        where.append(kill_at)
        _invariants(url)
        outcomes[after(state)] += 1
        _invariants(url)
    print(f"{label}: {KILLS} SIGKILLs at points {sorted(where)} of {n} (before/after each "
          f"statement, cursor and commit); the killed operation had {dict(outcomes)}")
    return where


def test_sigkill_inside_fill_claim_transition_and_callback(tmp_path):
    print(f"VMAN_CRASH_SEED={SEED}")
    rng = random.Random(SEED)
    url = f"sqlite://{tmp_path}/lc.db"
    _setup(url)
    started = time.monotonic()

    # 1. pool fill: two more VMs (each with a netconf) wanted; after the kill, the next fill
    # tops the flavor up to exactly that many
    def fill_op(_i):
        want = _pipeline(url) + 2
        return _fill(want), {"want": want}

    def fill_after(state):
        with open_store(url) as s:
            got, _w = _pool.fill(s, [dict(FLAVOR, threshold=state["want"])], "p", ("vm",))
            assert got["deficit"]["small"] in (0, 2)
        assert _pipeline(url) == state["want"]
        return "committed" if got["deficit"]["small"] == 0 else "rolled back"
    _kill_loop(url, fill_op, fill_after, rng, "fill")

    # move the pipeline on (and 20 VMs more), so the claims find preallocated VMs
    with open_store(url) as s:
        _pool.fill(s, [dict(FLAVOR, threshold=_pipeline_in(s) + 20)], "p", ("vm",))
        for vm in s.list_vms(status=lc.INSTALLING):
            s.change_status(vm["name"], lc.POSTINSTALL, lc.ADMIN)
            s.change_status(vm["name"], lc.PREALLOCATED, lc.ADMIN)

    # 2. claim: the killed claim either handed one VM to its owner or nothing; the next claim
    # gets a VM of its own
    def claim_op(i):
        with open_store(url) as s:
            before = {v["name"] for v in s.list_vms(status=lc.READY)}
        return (lambda store: _pool.claim(store, "small", f"user{i}")), {"i": i, "before": before}

    def claim_after(state):
        with open_store(url) as s:
            ready = {v["name"]: v for v in s.list_vms(status=lc.READY)}
            new = set(ready) - state["before"]
            assert len(new) <= 1 and all(ready[n]["owner"] == f"user{state['i']}" for n in new)
            got, _w = _pool.claim(s, "small", f"next{state['i']}")
            assert got["vm"]["owner"] == f"next{state['i']}" and got["vm"]["name"] not in ready
        return "committed" if new else "rolled back"
    _kill_loop(url, claim_op, claim_after, rng, "claim")

    # 3. a status transition (ready <-> quarantined of one claimed VM): after the kill the VM is
    # in one of the two, and the next transition completes
    with open_store(url) as s:
        victim = s.list_vms(status=lc.READY)[0]["name"]

    def status_op(i):
        with open_store(url) as s:
            now = s.get_vm(victim)["status"]
        target = lc.QUARANTINED if now == lc.READY else lc.READY
        return (lambda store: store.change_status(victim, target, lc.USER)), {"from": now, "to": target}

    def status_after(state):
        with open_store(url) as s:
            now = s.get_vm(victim)["status"]
            assert now in (state["from"], state["to"])
            if now == state["from"]:
                assert s.change_status(victim, state["to"], lc.USER).changed
            assert s.get_vm(victim)["status"] == state["to"]
        return "rolled back" if now == state["from"] else "committed"
    _kill_loop(url, status_op, status_after, rng, "status")

    # 4. install callback verify: a fresh installing VM with a token each time; after the kill
    # either the token is spent and the VM postinstall, or neither; the next call (the installer
    # retrying) is accepted, or refused as already used when the killed one had committed
    def verify_op(i):
        with open_store(url) as s:
            got, _w = _pool.fill(s, [dict(FLAVOR, threshold=_pipeline_in(s) + 1)], "p", ("vm",))
            vm = got["created"][0]["name"]
            token, _exp = _callback.issue_token(s, vm, ["127.0.0.1"], 600)
        return ((lambda store: _callback.verify(store, vm, token, "127.0.0.1")),
                {"vm": vm, "token": token})

    def verify_after(state):
        with open_store(url) as s:
            status = s.get_vm(state["vm"])["status"]
            assert status in (lc.INSTALLING, lc.POSTINSTALL)
            verdict = _callback.verify(s, state["vm"], state["token"], "127.0.0.1")
            if status == lc.INSTALLING:
                assert verdict.code == 200, verdict.as_dict()
            else:
                assert verdict.code == 403 and "used" in verdict.reason, verdict.as_dict()
            assert s.get_vm(state["vm"])["status"] == lc.POSTINSTALL
        return "rolled back" if status == lc.INSTALLING else "committed"
    _kill_loop(url, verify_op, verify_after, rng, "verify")

    vms = _invariants(url)
    print(f"{len(vms)} VMs, {4 * KILLS} kills in {time.monotonic() - started:.1f}s")


def _cycle(store, tag):
    """The four operations in a row, on a VM of its own: fill, callback, claim, transition."""
    got, _w = _pool.fill(store, [dict(FLAVOR, threshold=_pipeline_in(store) + 1)], "p", ("vm",))
    vm = got["created"][0]["name"]
    token, _exp = _callback.issue_token(store, vm, ["127.0.0.1"], 600)
    verdict = _callback.verify(store, vm, token, "127.0.0.1")
    assert verdict.code == 200, verdict.as_dict()
    store.change_status(vm, lc.PREALLOCATED, lc.ADMIN)
    claimed, _w = _pool.claim(store, "small", tag)
    store.change_status(claimed["vm"]["name"], lc.QUARANTINED, lc.USER)


def test_sigkill_at_random_times_while_looping_the_operations(tmp_path):
    seed = SEED + 1
    print(f"VMAN_CRASH_SEED={SEED} (timer kills: seed {seed})")
    rng = random.Random(seed)
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.add_netconfs("p", "vm", [{"hostname": f"h{i}", "ipv4": f"10.2.{i // 250}.{i % 250 + 1}"}
                                   for i in range(2000)])
    started, delays = time.monotonic(), []
    for i in range(KILLS):
        delay = rng.uniform(0, 0.03)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                with open_store(url) as store:
                    for n in range(10000):
                        _cycle(store, f"loop{i}-{n}")
            finally:
                os._exit(1)  # pylint: disable=protected-access
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
            f"timer kill #{i}: the child ended by itself ({status})"
        delays.append(round(delay * 1000, 1))
        _invariants(url)
        with open_store(url) as s:
            # the callback of a VM left installing with a valid token still works
            for vm in s.list_vms(status=lc.INSTALLING):
                valid = [t for t in s.tokens(vm["name"]) if t["used_at"] is None]
                assert len(valid) <= 1
            _cycle(s, f"next{i}")
        _invariants(url)
    with open_store(url) as s:
        made = len(s.list_vms())
    print(f"timer: {KILLS} SIGKILLs after {sorted(delays)} ms; {made} VMs made, "
          f"{time.monotonic() - started:.1f}s")
