# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install-callback listener under attack, with a real SQLite store and real sockets.

Only loopback addresses (127.0.0.1 and other 127.x sources) are used; no daemon is needed, so
this runs in the plain unit suite. Every loop is bounded in count and every socket operation
and join in time.
"""

from __future__ import annotations

import selectors
import socket
import sqlite3
import threading
import time

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _callback as cb
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

HOST = "127.0.0.1"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "lc.db")


@pytest.fixture
def store(db, clock):
    with open_store(f"sqlite://{db}", clock=clock) as s:
        s.create_vms([{"name": n, "org": "acme", "flavor": "small", "backend": "xen", "spec": {}}
                      for n in ("vm1", "vm2", "vm3")])
        yield s


def _snapshot(path):
    """Every row of every table, without the row ids, as a sorted list per table."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            cur = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 (names from sqlite_master)
            names = [d[0] for d in cur.description]
            out[table] = sorted(repr(tuple(v for n, v in zip(names, row) if n != "id")) for row in cur)
        return out
    finally:
        conn.close()


def _copy(src, dst):
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def _connect(port, src=HOST, timeout=3.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((src, 0))
    sock.connect((HOST, port))
    return sock


def _read_code(sock, limit=3.0):
    """The status code of the answer on ``sock`` (None when it closed without one)."""
    data, end = b"", time.monotonic() + limit
    while b"\r\n" not in data and time.monotonic() < end and len(data) < 65536:
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        data += chunk
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def _raw(port, payload, src=HOST):
    with _connect(port, src) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass
        return _read_code(sock)


def _post(vm, token, port=None):
    return (f"POST /callback/{vm} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n").encode()


def _legit(port, vm, token, results, limit=2.0):
    """An honest installer: post, retry on 503 or a refused connection, for at most ``limit`` s."""
    started = time.monotonic()
    code = None
    for _i in range(50):
        if time.monotonic() - started > limit:
            break
        try:
            code = _raw(port, _post(vm, token, port))
        except OSError:
            code = None
        if code not in (None, 503):
            break
        time.sleep(0.05)
    results[vm] = (code, time.monotonic() - started)


def _drip(port, payload, every, report, src, prefix=b""):
    """Send ``prefix``, then ``payload`` one byte every ``every`` s; report when the listener
    cut us off (the answer's code and the seconds since the connect)."""
    started = time.monotonic()
    code = None
    try:
        with _connect(port, src, timeout=every) as sock:
            sock.sendall(prefix)
            for i in range(min(len(payload), 100)):
                try:
                    sock.send(payload[i:i + 1])
                except OSError:
                    break
                try:
                    chunk = sock.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if chunk.startswith(b"HTTP/"):
                    code = int(chunk.split(b" ", 2)[1])
                break
    except OSError:
        pass
    report.append((code, time.monotonic() - started))


MALFORMED = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST /callback/vm1 HTTP/9.9\r\n\r\n", 400),
    (b"POST /callback/vm1 HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"POST /callback/vm1 HTTP/1.1\r\n folded: header\r\n\r\n", 400),
    (b"POST /callback/vm1 HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /callback/vm1 HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    (b"POST /callback/vm1 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400),
    (b"POST /callback/vm1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", 400),
    (b"POST /callback/../../etc HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 404),
    (b"GET /callback/vm1 HTTP/1.1\r\n\r\n", 405),
    (b"POST /callback/vm1 HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
]


def test_attack_does_not_keep_legitimate_callbacks_out(store, db, tmp_path):
    t1 = cb.issue_token(store, "vm1", [HOST], 600)[0]
    t2 = cb.issue_token(store, "vm2", [HOST], 600)[0]
    t3 = cb.issue_token(store, "vm3", [HOST], 600)[0]
    # what the store must look like afterwards: the two legitimate callbacks, nothing else
    control = str(tmp_path / "control.db")
    _copy(db, control)
    with open_store(f"sqlite://{control}", clock=store.clock) as other:
        assert cb.verify(other, "vm1", t1, HOST).accepted and cb.verify(other, "vm2", t2, HOST).accepted
    expected = _snapshot(control)

    listener = cb.Listener(store, ["vm1", "vm2"], bind=HOST, port=0)
    port, ready, attack_on = [], threading.Event(), threading.Event()
    legit, refused, flood_codes, drips, idle = {}, [], [], [], []

    def attacker():
        ready.wait(5)
        p = port[0]
        for payload, _want in MALFORMED:
            refused.append(_raw(p, payload, "127.0.0.20"))
        # a body far above the limit: refused at its head, unread
        with _connect(p, "127.0.0.21") as sock:
            sock.sendall(b"POST /callback/vm1 HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n")
            try:
                sock.sendall(b"x" * 65536)
            except OSError:
                pass
            refused.append(_read_code(sock))
        # the real token of vm1, but not from the VM's address
        refused.append(_raw(p, _post("vm1", t1, p), "127.0.0.77"))
        for i in range(60):
            try:
                idle.append(_connect(p, f"127.0.0.{100 + i}"))
            except OSError:
                break
        for i in range(2):
            threading.Thread(target=_drip, daemon=True, args=(
                p, _post("vm1", "x" * 40, p), 1.0, drips, f"127.0.0.{30 + i}")).start()
        flood, sel = [], selectors.DefaultSelector()
        for i in range(200):
            vm, token = [("vm1", "wrong-" + str(i)), ("vm2", t3), ("vm3", t3), ("vm1", t2)][i % 4]
            try:
                sock = _connect(p, f"127.0.{1 + i // 250}.{2 + i % 250}")
                sock.sendall(_post(vm, token, p))
            except OSError:
                continue
            flood.append(sock)
            sel.register(sock, selectors.EVENT_READ)
            if i == 100:
                attack_on.set()   # the legitimate installers call in the middle of the flood
        attack_on.set()
        end = time.monotonic() + 5
        while sel.get_map() and time.monotonic() < end:
            for key, _mask in sel.select(0.2):
                sel.unregister(key.fileobj)
                flood_codes.append(_read_code(key.fileobj, 0.5))
        sel.close()
        for sock in flood:
            sock.close()

    def installers():
        attack_on.wait(10)
        threads = [threading.Thread(target=_legit, args=(port[0], vm, tok, legit), daemon=True)
                   for vm, tok in (("vm1", t1), ("vm2", t2))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)

    def on_ready(address):
        port.append(address[1])
        ready.set()

    threads = [threading.Thread(target=attacker, daemon=True), threading.Thread(target=installers, daemon=True)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    pending = listener.wait(8, on_ready=on_ready)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(10)
    for sock in idle:
        sock.close()

    print(f"\nlegitimate callbacks: vm1 {legit['vm1'][1]:.3f} s, vm2 {legit['vm2'][1]:.3f} s; "
          f"wait returned after {took:.3f} s; flood answers {sorted(set(flood_codes), key=str)}")
    assert legit["vm1"][0] == 200 and legit["vm1"][1] < 2
    assert legit["vm2"][0] == 200 and legit["vm2"][1] < 2
    assert pending == [] and took < 8 + 1
    assert refused == [want for _p, want in MALFORMED] + [413, 403]
    assert len(idle) == 60 and 200 not in flood_codes
    assert [e["vm"] for e in listener.log if e["code"] == 200] in (["vm1", "vm2"], ["vm2", "vm1"])
    assert t1 not in repr(listener.log) and t3 not in repr(listener.log)
    assert _snapshot(db) == expected


def test_idle_and_dripping_connections_neither_block_nor_outlast_the_deadlines(store):
    t1 = cb.issue_token(store, "vm1", [HOST], 600)[0]
    listener = cb.Listener(store, ["vm1", "vm3"], bind=HOST, port=0, request_timeout=1.5)
    port, ready = [], threading.Event()
    legit, drips, idle = {}, [], []

    def attacker():
        ready.wait(5)
        p = port[0]
        for i in range(60):
            try:
                idle.append(_connect(p, f"127.0.0.{100 + i}"))
            except OSError:
                break
        # a byte every 0.3 s: never idle for long, but the request never gets whole in time
        head = _post("vm1", "x" * 40, p)
        body = b"POST /callback/vm1 HTTP/1.1\r\nContent-Length: 30\r\n\r\n"
        for prefix, payload, src in ((b"", head, "127.0.0.30"), (body, b"token=" + b"y" * 24, "127.0.0.31")):
            threading.Thread(target=_drip, daemon=True,
                             args=(p, payload, 0.3, drips, src, prefix)).start()
        time.sleep(0.3)
        _legit(p, "vm1", t1, legit)

    def on_ready(address):
        port.append(address[1])
        ready.set()

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    started = time.monotonic()
    pending = listener.wait(3, on_ready=on_ready)
    took = time.monotonic() - started
    thread.join(10)
    codes = []
    for sock in idle:
        codes.append(_read_code(sock, 0.2))
        sock.close()
    deadline_end = time.monotonic() + 3
    while len(drips) < 2 and time.monotonic() < deadline_end:
        time.sleep(0.05)

    print(f"\nlegitimate callback beside 60 idle connections: {legit['vm1'][1]:.3f} s; "
          f"wait(3) returned after {took:.3f} s; drips cut off after "
          f"{', '.join(f'{d[1]:.2f}' for d in drips)} s")
    assert legit["vm1"][0] == 200 and legit["vm1"][1] < 2
    assert pending == ["vm3"] and 3 <= took < 3 + 1
    # cut off at the request deadline, although they kept sending
    assert len(drips) == 2 and all(code == 408 and 1.2 < t < 2.5 for code, t in drips), drips
    assert codes == [408] * 60
    assert store.get_vm("vm1")["status"] == "postinstall"
    assert store.get_vm("vm3")["status"] == "installing"


def test_connections_beyond_the_bound_evict_the_oldest(store):
    t1 = cb.issue_token(store, "vm1", [HOST], 600)[0]
    listener = cb.Listener(store, ["vm1"], bind=HOST, port=0, max_connections=8)
    port, ready, legit, idle = [], threading.Event(), {}, []

    def client():
        ready.wait(5)
        for i in range(20):
            idle.append(_connect(port[0], f"127.0.0.{100 + i}"))
        time.sleep(0.2)
        _legit(port[0], "vm1", t1, legit)

    def on_ready(address):
        port.append(address[1])
        ready.set()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert listener.wait(5, on_ready=on_ready) == []
    thread.join(10)
    codes = [_read_code(sock, 0.2) for sock in idle]
    for sock in idle:
        sock.close()
    assert legit["vm1"][0] == 200 and legit["vm1"][1] < 2
    # the oldest were told 503 and closed (the 13th for the installer's connection); the
    # newest were still open when the wait ended
    assert codes == [503] * 13 + [None] * 7
    assert [e["code"] for e in listener.log] == [503] * 13 + [200]


def test_store_failure_on_one_call_and_expect_100_continue(store, monkeypatch):
    t1 = cb.issue_token(store, "vm1", [HOST], 600)[0]
    listener = cb.Listener(store, ["vm1"], bind=HOST, port=0)
    real, fails = store.tokens, [1]

    def tokens(vm):
        if fails:
            fails.pop()
            raise RuntimeError("database is locked")
        return real(vm)
    monkeypatch.setattr(store, "tokens", tokens)
    port, ready, got = [], threading.Event(), {}

    def client():
        ready.wait(5)
        p = port[0]
        got["failed"] = _raw(p, _post("vm1", t1, p))
        body = f"token={t1}".encode()
        with _connect(p) as sock:
            sock.sendall(b"POST /callback/vm1 HTTP/1.1\r\nExpect: 100-continue\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            got["continue"] = sock.recv(25)
            sock.sendall(body)
            got["accepted"] = _read_code(sock)

    def on_ready(address):
        port.append(address[1])
        ready.set()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert listener.wait(5, on_ready=on_ready) == []
    thread.join(10)
    assert got == {"failed": 500, "continue": b"HTTP/1.1 100 Continue\r\n\r\n", "accepted": 200}
    assert [(e["code"], e["reason"]) for e in listener.log] == \
        [(500, "internal error (RuntimeError)"), (200, "accepted")]
