# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_pool run by ansible-playbook against a temporary SQLite store."""

from __future__ import annotations

import uuid

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play

FLAVORS = [{"name": "small", "threshold": 3, "spec": {"memory": 1024}, "org": "acme"},
           {"name": "large", "threshold": 1, "backend": "libvirt", "spec": {"memory": 8192}}]


def _netconfs(url, n):
    with open_store(url) as s:
        s.add_netconfs("cam", "vm", [{"hostname": f"vm{i}", "ipv6": f"2001:db8::{i + 1:x}"}
                                     for i in range(n)])
        s.add_netconfs("cam", "service", [{"hostname": f"svc{i}", "ipv4": f"192.0.2.{i + 1}"}
                                          for i in range(n)])
        s.add_netconfs("cam", "test-service", [{"hostname": f"test{i}", "ipv4": f"10.0.0.{i + 1}"}
                                               for i in range(n)])


def test_fill_check_idempotence_and_claim(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    _netconfs(url, 3)
    fill = {"vman.lifecycle.vm_pool": {"flavors": FLAVORS, "netconf_pool": "cam", "store": url}}
    got, dummy = run_play(tmp_path, [dict(fill, register="check")], check=True, name="check")
    assert got["check"]["changed"] is True and got["check"]["deficit"] == {"small": 3, "large": 1}
    with open_store(url) as s:
        assert s.list_vms() == []

    claim = {"vman.lifecycle.vm_pool": {"state": "claimed", "flavor": "small", "owner": "alice",
                                        "store": url}}
    got, dummy = run_play(tmp_path, [
        dict(claim, register="empty"),
        dict(fill, register="short"),      # 4 VMs need 4 netconfs of each kind, there are 3
    ], name="short")
    assert got["empty"]["failed"] is True and got["empty"]["msg"].startswith(
        "no preallocated VM of flavor 'small' is left to claim")
    assert got["short"]["msg"].startswith("netconf pool 'cam' has no free ")
    with open_store(url) as s:
        assert s.list_vms() == []

    _netconfs_more(url)
    got, dummy = run_play(tmp_path, [dict(fill, register="fill"), dict(fill, register="again")],
                          name="fill")
    made = got["fill"]["created"]
    assert got["fill"]["changed"] is True and len(made) == 4
    assert all(str(uuid.UUID(vm["name"], version=4)) == vm["name"] for vm in made)
    assert {vm["status"] for vm in made} == {"installing"}
    assert sorted(made[0]["netconfs"]) == ["service", "test-service", "vm"]
    assert made[3]["backend"] == "libvirt" and made[0]["backend"] == "xen"
    assert got["again"]["changed"] is False and got["again"]["created"] == []
    assert got["again"]["deficit"] == {"small": 0, "large": 0}

    with open_store(url) as s:
        for vm in made[:2]:
            s.change_status(vm["name"], "postinstall", "admin")
            s.change_status(vm["name"], "preallocated", "admin")
    got, dummy = run_play(tmp_path, [dict(claim, register="dry")], check=True, name="dry")
    assert got["dry"]["vm"]["name"] == made[0]["name"] and got["dry"]["vm"]["status"] == "ready"
    got, dummy = run_play(tmp_path, [dict(claim, register="c1"), dict(claim, register="c2"),
                                     dict(claim, register="c3")], name="claim")
    assert [got[c]["vm"]["name"] for c in ("c1", "c2")] == [made[0]["name"], made[1]["name"]]
    assert got["c1"]["vm"]["owner"] == "alice" and got["c1"]["vm"]["status"] == "ready"
    assert got["c1"]["vm"]["netconfs"]["vm"]["in_use_by"] == made[0]["name"]
    assert got["c3"]["failed"] is True


def _netconfs_more(url):
    with open_store(url) as s:
        for kind, ip in (("vm", "2001:db8::ff"), ("service", "192.0.2.99"),
                         ("test-service", "10.0.0.99")):
            field = "ipv6" if kind == "vm" else "ipv4"
            s.add_netconfs("cam", kind, [{"hostname": f"{kind}-extra", field: ip}])


def test_batch_claims_check_diff_all_or_nothing_and_no_secrets(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([{"name": f"s{i}", "org": "acme", "flavor": "small", "backend": "xen",
                       "spec": {"memory": 1024, "root_password": "hunter2-batch",
                                "spicepasswd": "spice-batch-pw"}} for i in range(3)]
                     + [{"name": "l0", "flavor": "large", "backend": "libvirt", "spec": {}}],
                     status="preallocated")
        s.add_netconfs("cam", "vm", [{"hostname": "nc-s0", "ipv4": "192.0.2.10"}])
        s.allocate_netconf("cam", "vm", "s0")
    batch = {"state": "claimed", "flavor": "small", "store": url,
             "claims": [{"owner": "alice"}, {"owner": "bob", "flavor": "large"}, {"owner": "alice"}]}
    too_many = dict(batch, claims=batch["claims"] + [{"owner": "eve", "flavor": "large"},
                                                     {"owner": "eve"}, {"owner": "eve"}])
    got, out = run_play(tmp_path, [
        {"vman.lifecycle.vm_pool": batch, "register": "dry"},
        {"vman.lifecycle.vm_pool": too_many, "register": "dry_short"},
    ], check=True, diff=True, name="dry")
    assert got["dry"]["changed"] is True
    assert [(v["name"], v["owner"], v["status"]) for v in got["dry"]["vms"]] == [
        ("s0", "alice", "ready"), ("l0", "bob", "ready"), ("s1", "alice", "ready")]
    assert got["dry"]["diff"]["before"]["l0"] == {"status": "preallocated", "owner": None}
    assert got["dry"]["diff"]["after"]["l0"] == {"status": "ready", "owner": "bob"}
    assert got["dry_short"]["failed"] is True
    assert "flavor 'large' wanted 2, available 1, flavor 'small' wanted 4, available 3" in \
        got["dry_short"]["msg"]
    with open_store(url) as s:
        assert s.list_vms(status="ready") == []

    got, out = run_play(tmp_path, [
        {"vman.lifecycle.vm_pool": too_many, "register": "short"},
        {"vman.lifecycle.vm_pool": batch, "register": "real"},
        {"vman.lifecycle.vm_pool": batch, "register": "again"},
        {"vman.lifecycle.vm_pool": dict(batch, claims=[]), "register": "empty"},
        {"vman.lifecycle.vm_pool": dict(batch, owner="x"), "register": "both"},
        {"vman.lifecycle.vm_pool": {"state": "claimed", "claims": [{"owner": "z"}], "store": url},
         "register": "noflavor"},
    ], diff=True, name="real")
    assert got["short"]["failed"] is True and "nothing was claimed" in got["short"]["msg"]
    real = got["real"]
    assert real["changed"] is True and [v["name"] for v in real["vms"]] == ["s0", "l0", "s1"]
    assert real["vms"][0]["host"] == "acme-s0" and real["vms"][1]["host"] == "l0"
    assert real["vms"][0]["netconfs"]["vm"]["ipv4"] == "192.0.2.10"
    assert real["vms"][0]["spec"] == {"memory": 1024}
    assert "diff" in real and set(real["diff"]["after"]) == {"s0", "l0", "s1"}
    # as a single claim, a second run claims more: one small left, two wanted, so nothing
    assert got["again"]["failed"] is True
    assert "flavor 'small' wanted 2, available 1" in got["again"]["msg"]
    assert got["empty"]["changed"] is False and got["empty"]["vms"] == []
    assert got["both"]["failed"] is True and "mutually exclusive" in got["both"]["msg"]
    assert got["noflavor"]["failed"] is True and "needs a flavor" in got["noflavor"]["msg"]
    for secret in ("hunter2-batch", "spice-batch-pw"):
        assert secret not in out and secret not in str(got)
    with open_store(url) as s:
        assert {v["name"]: v["owner"] for v in s.list_vms(status="ready")} == {
            "s0": "alice", "l0": "bob", "s1": "alice"}
        assert s.get_vm("s2")["status"] == "preallocated"
