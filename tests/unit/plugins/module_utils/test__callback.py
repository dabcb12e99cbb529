# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install-callback tokens and the listener, with a real SQLite store and real HTTP on loopback."""

from __future__ import annotations

import hmac
import json
import threading
import urllib.error
import urllib.request

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _callback as cb
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

VM_IP = "192.0.2.10"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    with open_store(f"sqlite://{tmp_path}/lc.db", clock=clock) as s:
        s.create_vms([{"name": n, "org": "acme", "flavor": "small", "backend": "xen", "spec": {}}
                      for n in ("vm1", "vm2", "vm3")])
        yield s


def test_issue_stores_only_the_hash(store):
    token, expires = cb.issue_token(store, "vm1", [VM_IP], 600)
    assert len(token) >= 40 and expires == store.clock() + 600
    rows = store.tokens("vm1")
    assert len(rows) == 1 and rows[0]["token_hash"] == cb.hash_token(token) != token
    assert rows[0]["source_ip"] == VM_IP
    assert token not in json.dumps(rows)


def test_issue_check_mode_and_errors(store):
    assert cb.issue_token(store, "vm1", [VM_IP], 600, check=True)[0] is None
    assert store.tokens("vm1") == []
    with pytest.raises(ValidationError, match="source_ip"):
        cb.issue_token(store, "vm1", [], 600)
    with pytest.raises(ValidationError, match="source_ip"):
        cb.issue_token(store, "vm1", ["nope"], 600)
    with pytest.raises(ValidationError, match="vm"):
        cb.issue_token(store, "../etc", [VM_IP], 600)
    with pytest.raises(StateError, match="not in the lifecycle store"):
        cb.issue_token(store, "ghost", [VM_IP], 600)
    store.change_status("vm2", "postinstall", "admin")
    with pytest.raises(StateError, match="only issued while it is installing"):
        cb.issue_token(store, "vm2", [VM_IP], 600)


def test_reissue_revokes_the_older_token(store):
    old, _exp = cb.issue_token(store, "vm1", [VM_IP], 600)
    new, _exp = cb.issue_token(store, "vm1", [VM_IP], 600)
    assert cb.verify(store, "vm1", old, VM_IP).reason == "token already used or revoked"
    assert cb.verify(store, "vm1", new, VM_IP).accepted


def test_verify_accepts_once_and_moves_to_postinstall(store):
    token, _exp = cb.issue_token(store, "vm1", [VM_IP], 600)
    verdict = cb.verify(store, "vm1", token, VM_IP)
    assert verdict.accepted and store.get_vm("vm1")["status"] == "postinstall"
    assert store.events("vm1")[-1]["who"] == cb.WHO
    again = cb.verify(store, "vm1", token, VM_IP)
    assert again.code == 403 and "used" in again.reason


def test_verify_refusals(store, clock):
    token, _exp = cb.issue_token(store, "vm1", [VM_IP], 600)
    cases = [
        (dict(token=token + "x", peer=VM_IP), "wrong token"),
        (dict(token=None, peer=VM_IP), "no token"),
        (dict(token=token, peer="192.0.2.99"), "not the VM's"),
        (dict(token=token, peer="10.0.2.2", trusted_proxies=["10.0.2.3"]), "nor a trusted proxy"),
    ]
    for kwargs, reason in cases:
        verdict = cb.verify(store, "vm1", **kwargs)
        assert verdict.code in (401, 403) and reason in verdict.reason
        assert token not in json.dumps(verdict.as_dict())
    other, _exp = cb.issue_token(store, "vm2", [VM_IP], 600)
    assert cb.verify(store, "vm1", other, VM_IP).reason == "wrong token"
    clock.now += 601
    assert cb.verify(store, "vm1", token, VM_IP).reason == "token expired"
    assert store.get_vm("vm1")["status"] == "installing"


def test_trusted_proxy_and_forwarded_for(store):
    tokens = {vm: cb.issue_token(store, vm, [VM_IP], 600)[0] for vm in ("vm1", "vm2", "vm3")}
    nat = ["10.0.2.2"]
    assert cb.verify(store, "vm1", tokens["vm1"], "10.0.2.2", nat).accepted
    assert cb.verify(store, "vm2", tokens["vm2"], "10.0.2.2", nat,
                     forwarded_for="203.0.113.1, 192.0.2.66").code == 403
    assert cb.verify(store, "vm3", tokens["vm3"], "10.0.2.2", nat,
                     forwarded_for="203.0.113.1, " + VM_IP).accepted


def test_compare_is_constant_time(store, monkeypatch):
    token, _exp = cb.issue_token(store, "vm1", [VM_IP], 600)
    cb.issue_token(store, "vm1", [VM_IP], 600)
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr(cb.hmac, "compare_digest", spy)
    cb.verify(store, "vm1", token, VM_IP)
    # every stored row is compared, the matching one is not the last: no early exit
    assert len(calls) == 2 and calls[0][0] == cb.hash_token(token)


def _post(port, vm, token=None, body=None, ctype=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/callback/{vm}", data=body or b"",
                                 method="POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.build_opener().open(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _serve(listener, timeout, calls):
    """Run the listener in this thread and the calls in a client thread; return codes, pending."""
    codes, ready = [], threading.Event()
    port = []

    def on_ready(address):
        port.append(address[1])
        ready.set()

    def client():
        ready.wait(5)
        for call in calls:
            codes.append(_post(port[0], *call[:2], **(call[2] if len(call) > 2 else {})))
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    pending = listener.wait(timeout, on_ready=on_ready)
    thread.join(10)
    return codes, pending


def test_listener_over_real_http(store):
    t1 = cb.issue_token(store, "vm1", ["127.0.0.1"], 600)[0]
    t2 = cb.issue_token(store, "vm2", ["127.0.0.1"], 600)[0]
    listener = cb.Listener(store, ["vm1", "vm2"], bind="127.0.0.1", port=0)
    codes, pending = _serve(listener, 20, [
        ("vm1", "wrong-token"),
        ("vm3", t1),
        ("vm1", t1),
        ("vm1", t1),
        ("vm2", None, {"body": json.dumps({"token": t2}).encode(), "ctype": "application/json"}),
    ])
    assert codes == [403, 404, 200, 403, 200] and pending == []
    assert listener.called_back == ["vm1", "vm2"]
    assert [store.get_vm(v)["status"] for v in ("vm1", "vm2")] == ["postinstall", "postinstall"]
    assert listener.log[0] == {"vm": "vm1", "code": 403, "reason": "wrong token", "source": "127.0.0.1"}
    assert t1 not in json.dumps(listener.log) and "wrong-token" not in json.dumps(listener.log)


def test_listener_timeout_then_failed(store, clock):
    t1 = cb.issue_token(store, "vm1", ["127.0.0.1"], 600)[0]
    listener = cb.Listener(store, ["vm1", "vm2"], bind="127.0.0.1", port=0)
    codes, pending = _serve(listener, 1.5, [("vm1", None, {"body": f"token={t1}".encode(),
                                                           "ctype": "application/x-www-form-urlencoded"})])
    assert codes == [200] and pending == ["vm2"]
    assert cb.fail_pending(store, pending, 1.5, check=True) == ["vm2"]
    assert store.get_vm("vm2")["status"] == "installing"
    assert cb.fail_pending(store, pending, 1.5) == ["vm2"]
    assert store.get_vm("vm2")["status"] == "failed"
    assert "no install callback within 1.5 s" in store.events("vm2")[-1]["why"]


def test_listener_returns_at_once_when_nothing_is_installing(store):
    store.change_status("vm1", "postinstall", "admin")
    assert cb.Listener(store, ["vm1"], port=0).wait(30) == []
    with pytest.raises(StateError):
        cb.Listener(store, ["ghost"], port=0).wait(30)


def test_canonical_peer_maps_dual_stack_addresses():
    assert cb.canonical_peer("::ffff:192.0.2.10") == "192.0.2.10"
    assert cb.canonical_peer("fe80::1%eth0") == "fe80::1"
    assert cb.canonical_peer("2001:DB8::1") == "2001:db8::1"
