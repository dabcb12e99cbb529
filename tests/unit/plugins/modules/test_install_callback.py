# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""install_callback run by ansible-playbook -vvv; a real HTTP client posts on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play

VERBOSE = {"ANSIBLE_VERBOSITY": "3"}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port, vm, token, deadline):
    """POST until the listener is up (or the deadline); return the HTTP status."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/callback/{vm}", data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        try:
            with urllib.request.build_opener().open(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    return None


def test_issue_wait_and_no_token_in_output(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([{"name": n, "org": "acme", "flavor": "small", "backend": "xen", "spec": {}}
                      for n in ("vm1", "vm2")])
    issue = {"state": "issued", "source_ip": ["127.0.0.1"], "ttl": 600, "store": url}
    got, out1 = run_play(tmp_path, [
        {"vman.lifecycle.install_callback": dict(issue, vm="vm1"), "register": "loud"},
        {"vman.lifecycle.install_callback": dict(issue, vm="vm1"), "register": "t1", "no_log": True},
        {"vman.lifecycle.install_callback": dict(issue, vm="vm2"), "register": "t2", "no_log": True},
        {"vman.lifecycle.install_callback": dict(issue, vm="vm2"), "register": "dry", "no_log": True,
         "check_mode": True},
    ], env=VERBOSE, name="issue")
    assert got["loud"]["failed"] and "no_log" in got["loud"]["msg"] and "token" not in got["loud"]
    t1, t2 = got["t1"]["token"], got["t2"]["token"]
    assert got["t1"]["callback_path"] == "/callback/vm1" and "token" not in got["dry"]
    assert "ESTABLISH LOCAL CONNECTION" in out1
    assert t1 not in out1 and t2 not in out1

    port = _free_port()
    codes = []

    def installer():
        deadline = time.monotonic() + 30
        codes.append(_post(port, "vm1", t2, deadline))   # vm2's token for vm1: wrong
        codes.append(_post(port, "vm1", t1, deadline))
        codes.append(_post(port, "vm1", t1, deadline))   # replay, while vm2 is still awaited
    thread = threading.Thread(target=installer, daemon=True)
    thread.start()
    wait = {"state": "wait", "vms": ["vm1", "vm2"], "bind": "127.0.0.1", "port": port,
            "timeout": 6, "store": url}
    started = time.monotonic()
    got, out2 = run_play(tmp_path, [
        {"vman.lifecycle.install_callback": wait, "register": "w"},
        {"vman.lifecycle.install_callback": wait, "register": "again"},
    ], env=VERBOSE, name="wait")
    thread.join(10)
    w = got["w"]
    assert time.monotonic() - started < 60
    assert codes == [403, 200, 403]
    assert w["changed"] and w["called_back"] == ["vm1"] and w["failed_vms"] == ["vm2"]
    assert [(e["vm"], e["code"], e["reason"]) for e in w["log"]] == \
        [("vm1", 403, "wrong token"), ("vm1", 200, "accepted"), ("vm1", 403, "already called back")]
    # nothing left installing: the second wait returns at once, changing nothing
    assert got["again"]["changed"] is False and got["again"]["failed_vms"] == []
    assert t1 not in out2 and t2 not in out2
    with open_store(url) as s:
        assert s.get_vm("vm1")["status"] == "postinstall"
        assert s.get_vm("vm2")["status"] == "failed"
        assert "no install callback within 6 s" in s.events("vm2")[-1]["why"]


def test_wait_check_mode_does_not_listen(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([{"name": "vm1", "org": "acme", "flavor": "small", "backend": "xen", "spec": {}}])
    started = time.monotonic()
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.install_callback": {"state": "wait", "vms": ["vm1"], "timeout": 600,
                                             "store": url, "port": _free_port()},
         "register": "w"},
        {"vman.lifecycle.install_callback": {"state": "wait", "vms": ["vm1"], "timeout": 1,
                                             "store": url, "bind": "127.0.0.1", "port": _free_port(),
                                             "fail_on_timeout": True},
         "register": "strict", "check_mode": False},
    ], check=True)
    assert got["w"]["changed"] and got["w"]["pending"] == ["vm1"]
    assert got["strict"]["failed"] and "vm1" in got["strict"]["msg"]
    assert time.monotonic() - started < 60


def test_revoked_deletes_every_token_of_the_vm_only(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([{"name": n, "spec": {}} for n in ("vm1", "vm2")])
        s.add_token("vm1", "hash-used", 2e9)
        s.add_token("vm1", "hash-fresh", 2e9)
        s.add_token("vm2", "hash-other", 2e9)
        s.use_token(s.tokens("vm1")[0]["id"])
    revoke = {"state": "revoked", "vm": "vm1", "store": url}
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.install_callback": revoke, "register": "dry"},
    ], check=True, name="dry")
    assert got["dry"]["changed"] is True and got["dry"]["revoked"] == 2
    with open_store(url) as s:
        assert len(s.tokens("vm1")) == 2
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.install_callback": revoke, "register": "first"},
        {"vman.lifecycle.install_callback": revoke, "register": "second"},
        {"vman.lifecycle.install_callback": {"state": "revoked", "store": url}, "register": "novm"},
    ], name="revoke")
    assert got["first"]["changed"] is True and got["first"]["revoked"] == 2
    assert got["second"]["changed"] is False and got["second"]["revoked"] == 0
    assert got["novm"]["failed"] and "vm" in got["novm"]["msg"]
    with open_store(url) as s:
        assert s.tokens("vm1") == [] and [t["token_hash"] for t in s.tokens("vm2")] == ["hash-other"]
