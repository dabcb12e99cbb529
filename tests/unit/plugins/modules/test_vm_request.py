# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_request, vm_request_info and vm_reconcile (check mode) run by ansible-playbook against a
temporary SQLite store; no hypervisor is touched."""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play


def _req(url, **args):
    return dict({"store": url, "name": "web"}, **args)


def test_check_diff_apply_idempotence_and_absent(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    create = _req(url, allocator="svc-a", backend="lxc", count=2, spec={"profile_type": "dir"})
    got, out = run_play(tmp_path, [
        {"vman.lifecycle.vm_request": create, "register": "check"},
    ], check=True, diff=True, name="check")
    assert got["check"]["changed"] and got["check"]["before"] is None
    assert got["check"]["request"]["allocators"] == ["svc-a"]
    assert '+    "count": 2' in out
    with open_store(url) as s:
        assert s.get_request("web") is None

    got, out = run_play(tmp_path, [
        {"vman.lifecycle.vm_request": create, "register": "first"},
        {"vman.lifecycle.vm_request": create, "register": "again"},
        {"vman.lifecycle.vm_request": _req(url, allocator="svc-b"), "register": "second"},
        {"vman.lifecycle.vm_request": _req(url, allocator="svc-a", state="absent"),
         "register": "drop_a"},
        {"vman.lifecycle.vm_request": _req(url, allocator="svc-a", state="absent"),
         "register": "drop_a_again"},
        {"vman.lifecycle.vm_request": _req(url, allocator="bad allocator"), "register": "bad"},
        {"vman.lifecycle.vm_request": _req(url, name="Web_1", allocator="x", backend="lxc"),
         "register": "badname"},
        {"vman.lifecycle.vm_request_info": {"store": url, "allocator": "svc-b"}, "register": "info"},
        {"vman.lifecycle.vm_reconcile": {"store": url, "lxc": {
            "lxc_path": str(tmp_path / "lxc"), "settings_dir": str(tmp_path / "settings")}},
         "register": "plan", "check_mode": True},
    ], name="apply")
    assert got["first"]["changed"] and got["first"]["request"]["count"] == 2
    assert not got["again"]["changed"]
    assert got["second"]["changed"] and got["second"]["request"]["allocators"] == ["svc-a", "svc-b"]
    assert got["drop_a"]["changed"] and got["drop_a"]["request"]["allocators"] == ["svc-b"]
    assert got["drop_a"]["request"]["state"] == "pending"
    assert not got["drop_a_again"]["changed"]
    assert got["bad"]["failed"] and got["bad"]["field"] == "allocator"
    assert got["badname"]["failed"] and got["badname"]["field"] == "name"
    assert "Web_1" in got["badname"]["msg"]
    assert [r["name"] for r in got["info"]["requests"]] == ["web"]
    plan = got["plan"]["requests"][0]
    assert plan["actions"][:3] == ["record web-1: new device", "define web-1: new device",
                                   "start web-1: new device"]
    assert not (tmp_path / "lxc").exists()
    with open_store(url) as s:
        assert s.get_request("web")["devices"] == []

    got, dummy = run_play(tmp_path, [
        {"vman.lifecycle.vm_request": _req(url, allocator="svc-b", state="absent"),
         "register": "last"},
    ], name="last")
    assert got["last"]["request"]["state"] == "deleting"
    assert "no allocator left" in got["last"]["msg"]


def test_redeploy_done_takes_the_allocator_off_the_list(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.register_allocator("web", "svc-a", {"backend": "lxc"})
        s.request_failed("web", "start_failed", "boom")
    done = {"vman.lifecycle.vm_request": _req(url, allocator="svc-a", redeploy_done=True),
            "register": "done"}
    got, dummy = run_play(tmp_path, [dict(done, check_mode=True)], name="check")
    assert got["done"]["changed"] and got["done"]["request"]["redeploy"] == []
    got, dummy = run_play(tmp_path, [done, dict(done, register="again")], name="apply")
    assert got["done"]["changed"] and not got["again"]["changed"]
    with open_store(url) as s:
        assert s.redeploy_entries() == []
