# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_status and vm_status_info run by ansible-playbook against a temporary SQLite store."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play


@pytest.fixture
def store_url(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([{"name": n, "org": "acme", "flavor": "small", "backend": "xen",
                       "spec": {}} for n in ("web1", "web2", "new1")])
        for n in ("web1", "web2"):
            for step in ("postinstall", "preallocated", "ready"):
                s.change_status(n, step, "admin", who="setup")
    return url


def _status(url, name):
    with open_store(url) as s:
        return s.get_vm(name)


def test_check_mode_computes_without_writing(tmp_path, store_url):
    got, out = run_play(tmp_path, [
        {"vman.lifecycle.vm_status": {"name": "web1", "status": "quarantined", "store": store_url,
                                      "reason": "compromised"}, "register": "q"},
        {"vman.lifecycle.vm_status": {"name": "web1", "status": "postinstall", "store": store_url},
         "register": "bad"},
    ], check=True, diff=True)
    q = got["q"]
    assert q["changed"] is True and q["event"] == "quarantine"
    assert q["before"]["status"] == "ready" and q["after"]["status"] == "quarantined"
    assert q["diff"] == {"before": q["before"], "after": q["after"]}
    assert '-    "status": "ready"' in out and '+    "status": "quarantined"' in out
    assert got["bad"]["failed"] is True     # illegal is illegal in check mode too
    vm = _status(store_url, "web1")
    assert vm["status"] == "ready"
    with open_store(store_url) as s:
        assert [e["event"] for e in s.events("web1")][-1] == "claim"


def test_apply_idempotence_and_errors(tmp_path, store_url):
    got, dummy = run_play(tmp_path, [
        {"vman.lifecycle.vm_status": {"name": "web1", "status": "quarantined", "store": store_url,
                                      "who": "alice", "reason": "compromised"}, "register": "first"},
        {"vman.lifecycle.vm_status": {"name": "web1", "status": "quarantined", "store": store_url},
         "register": "second"},
        {"vman.lifecycle.vm_status": {"name": "web1", "status": "postinstall", "store": store_url},
         "register": "illegal"},
        {"vman.lifecycle.vm_status": {"name": "web1", "admin_suspended": True, "store": store_url},
         "register": "user_suspends"},
        {"vman.lifecycle.vm_status": {"name": "web1", "admin_suspended": True, "actor": "admin",
                                      "reason": "abuse", "store": store_url}, "register": "suspend"},
        {"vman.lifecycle.vm_status": {"name": "web1", "status": "ready", "store": store_url},
         "register": "user_unquarantine"},
        {"vman.lifecycle.vm_status": {"name": "ghost", "status": "ready", "store": store_url},
         "register": "ghost"},
        {"vman.lifecycle.vm_status_info": {"name": "web1", "store": store_url}, "register": "info"},
    ])
    assert got["first"]["changed"] is True and got["first"]["after"]["status"] == "quarantined"
    assert got["second"]["changed"] is False and got["second"]["event"] is None
    assert got["illegal"]["failed"] is True
    assert got["illegal"]["msg"] == (
        "VM 'web1': cannot change status from 'quarantined' to 'postinstall' as user: no such "
        "transition; allowed next statuses for user: ready, canceled")
    assert got["user_suspends"]["msg"] == (
        "VM 'web1': only an admin may change the admin suspension (actor is 'user')")
    assert got["suspend"]["changed"] is True and got["suspend"]["after"]["admin_suspended"] is True
    assert got["user_unquarantine"]["msg"] == (
        "VM 'web1': cannot change status from 'quarantined' to 'ready' as user: the VM is "
        "administratively suspended; allowed next statuses for user: canceled")
    assert got["ghost"]["msg"] == "VM 'ghost' is not in the store"
    info = got["info"]
    assert info["changed"] is False and info["vm"]["status"] == "quarantined"
    assert info["vm"]["admin_suspended"] is True
    last_two = [(e["event"], e["who"], e["why"]) for e in info["events"][-2:]]
    assert last_two == [("quarantine", "alice", "compromised"), ("admin_suspend", "ansible", "abuse")]


def test_ansible_requests_and_env_store(tmp_path, store_url):
    req = {"vman.lifecycle.vm_status": {"name": "web2", "request_ansible": True}}
    got, dummy = run_play(tmp_path, [
        dict(req, register="r1"), dict(req, register="r2"), dict(req, register="r3"),
        {"vman.lifecycle.vm_status": {"name": "new1", "request_ansible": True}, "register": "d1"},
        {"vman.lifecycle.vm_status": {"name": "new1", "request_ansible": True}, "register": "d2"},
        {"vman.lifecycle.vm_status_info": {"status": "ansible_queue"}, "register": "queued"},
        {"vman.lifecycle.vm_status_info": {"status": "ansible_queued"}, "register": "queued_alias"},
    ], env={"VMAN_STORE": store_url})
    assert [got[r]["after"]["status"] for r in ("r1", "r2", "r3")] == [
        "ansible", "ansible_queue", "ansible_queue"]
    assert [got[r]["changed"] for r in ("r1", "r2", "r3")] == [True, True, False]
    assert got["d1"]["deferred"] is True and got["d1"]["changed"] is True
    assert got["d1"]["after"] == {"status": "installing", "admin_suspended": False,
                                  "ansible_pending": True}
    assert got["d2"]["deferred"] is True and got["d2"]["changed"] is False
    assert [v["name"] for v in got["queued"]["vms"]] == ["web2"]
    # the mws-panel's name of the status filters the same VMs
    assert [v["name"] for v in got["queued_alias"]["vms"]] == ["web2"]


def test_finish_run_runs_the_queued_one_then_ends(tmp_path, store_url):
    req = {"vman.lifecycle.vm_status": {"name": "web2", "request_ansible": True}}
    end = {"vman.lifecycle.vm_status": {"name": "web2", "finish_run": True, "actor": "admin"}}
    got, dummy = run_play(tmp_path, [
        dict(req, register="r1"), dict(req, register="r2"),
        dict(end, register="e1"), dict(end, register="e2"), dict(end, register="e3"),
        {"vman.lifecycle.vm_status": {"name": "web1", "finish_run": True}, "register": "user"},
    ], env={"VMAN_STORE": store_url})
    assert got["e1"]["after"]["status"] == "ansible" and got["e1"]["run_again"] is True
    assert got["e1"]["event"] == "ansible_done_run_queued"
    assert got["e2"]["after"]["status"] == "ready" and got["e2"]["run_again"] is False
    assert got["e3"]["failed"] and "no ansible run to finish in status 'ready'" in got["e3"]["msg"]
    assert got["user"]["failed"] and "only the runner" in got["user"]["msg"]
    assert _status(store_url, "web2")["status"] == "ready"
