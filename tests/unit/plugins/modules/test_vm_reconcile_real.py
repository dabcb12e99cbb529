# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end on real LXC: vm_request + playbooks/reconcile_requests.yml + the fleet inventory.

Two services share one request; it is created, scaled to two devices, one container is killed
and another destroyed behind the manager's back, then the services leave one after the other.
Network values come from the testbed fixture (BRIDGE, GATEWAY), never hard-coded.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import ROOT, run_play

BIN = os.path.dirname(sys.executable)


def _reconcile(tmp_path, testbed, url, name, pre=()):
    """Run ``pre`` tasks (vm_request calls of the services), then
    playbooks/reconcile_requests.yml, in one ansible-playbook run; return the vm_reconcile
    result by request."""
    extra = {
        "vman_store": url,
        "vman_reconcile_lxc": {"lxc_path": testbed["LXC_PATH"],
                               "settings_dir": str(tmp_path / "settings"),
                               "host_id": "vmreq.test", "production": False},
        "vman_reconcile_known_hosts": str(tmp_path / "known_hosts"),
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
    }
    (tmp_path / f"{name}.json").write_text(json.dumps(extra))
    out = tmp_path / f"{name}.result.json"
    # the playbook itself, then one play that dumps what it registered
    wrapper = [{"hosts": "localhost", "gather_facts": False, "tasks": list(pre)},
               {"import_playbook": os.path.join(ROOT, "playbooks", "reconcile_requests.yml")},
               {"hosts": "localhost", "gather_facts": False, "tasks": [{
                   "ansible.builtin.copy": {"dest": str(out), "mode": "0600",
                                            "content": "{{ vman_reconcile_result | to_json }}"}}]}]
    (tmp_path / f"{name}.yml").write_text(yaml.safe_dump(wrapper, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    t0 = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,",
                           str(tmp_path / f"{name}.yml"), "-e", f"@{tmp_path / f'{name}.json'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    print(f"{name}: {time.monotonic() - t0:.1f} s")
    result = json.loads(out.read_text())
    assert not result.get("errors"), result
    return {r["name"]: r for r in result["requests"]}


def _inventory(tmp_path, url):
    cfg = tmp_path / "real.fleet.yml"
    cfg.write_text(yaml.safe_dump({"plugin": "vman.lifecycle.fleet", "store": url}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    env.pop("VMAN_STORE", None)
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", str(cfg), "--list"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    return {g: set(v.get("hosts", [])) for g, v in data.items() if g != "_meta"}


def _lxc(testbed, *argv):
    return subprocess.run([argv[0], "-P", testbed["LXC_PATH"]] + list(argv[1:]),
                          capture_output=True, text=True, timeout=120, check=False)


def _state(testbed, name):
    res = _lxc(testbed, "lxc-info", "-n", name, "-s", "-H")
    return res.stdout.strip() if res.returncode == 0 else None


def _redeploy(url):
    with open_store(url) as s:
        return sorted((r["allocator"], r["request"], r["reason"]) for r in s.redeploy_entries())


@pytest.mark.real
def test_real_lxc_create_scale_kill_recreate_delete(lxc_testbed, tmp_path):
    started = time.monotonic()
    url = f"sqlite://{tmp_path}/lc.db"
    gateway = ipaddress.ip_interface(lxc_testbed["GATEWAY"])
    spec = {"profile_type": "overlayfs", "from_container": lxc_testbed["BASE"],
            "bridge": lxc_testbed["BRIDGE"], "network": str(gateway.network),
            "gateway": str(gateway.ip)}
    for name in ("e2e-1", "e2e-2"):
        _lxc(lxc_testbed, "lxc-destroy", "-f", "-n", name)     # leftovers of a killed run

    def request(allocator, **args):
        return {"vman.lifecycle.vm_request": dict({"store": url, "name": "e2e",
                                                   "allocator": allocator}, **args),
                "register": "r"}

    # two services ask for the same VM; nothing starts until the reconciler runs
    got, _out = run_play(tmp_path, [request("svc-a", backend="lxc", keep_disk=False, spec=spec),
                                    dict(request("svc-b"), register="r2")], name="create")
    assert got["r2"]["request"]["allocators"] == ["svc-a", "svc-b"]
    assert _state(lxc_testbed, "e2e-1") is None

    res = _reconcile(tmp_path, lxc_testbed, url, "reconcile1")["e2e"]
    assert res["state"] == "ready" and res["error"] is None, res
    assert _state(lxc_testbed, "e2e-1") == "RUNNING"
    with open_store(url) as s:
        dev = s.get_request("e2e")["devices"][0]
        assert dev["ready"] and dev["boot_id"] and dev["marker"]
        assert ipaddress.ip_address(dev["address"]) in gateway.network
        assert s.get_vm("e2e-1")["status"] == "ready" and s.host_keys("e2e-1")
    known = (tmp_path / "known_hosts").read_text()
    assert known.startswith(f"e2e-1,{dev['address']} ")
    assert [r[:2] for r in _redeploy(url)] == [("svc-a", "e2e"), ("svc-b", "e2e")]
    # the marker is really inside the guest
    cat = _lxc(lxc_testbed, "lxc-attach", "-n", "e2e-1", "--", "cat", "/var/lib/vman/request-marker")
    assert cat.stdout.strip() == dev["marker"]

    # scale out to two devices
    res = _reconcile(tmp_path, lxc_testbed, url, "reconcile2", [request("svc-a", count=2)])["e2e"]
    assert res["state"] == "ready" and _state(lxc_testbed, "e2e-2") == "RUNNING", res
    groups = _inventory(tmp_path, url)
    assert groups["request_e2e"] == {"e2e-1", "e2e-2"}
    assert groups["redeploy_svc_a"] == groups["redeploy_svc_b"] == {"e2e-1", "e2e-2"}
    # the services ran again and say so; one container is killed behind the manager's back:
    # restarted, the marker is still there -> no redeploy
    _lxc(lxc_testbed, "lxc-stop", "-k", "-n", "e2e-1")
    res = _reconcile(tmp_path, lxc_testbed, url, "reconcile3",
                     [request("svc-a", redeploy_done=True),
                      dict(request("svc-b", redeploy_done=True), register="r2")])["e2e"]
    assert [a.split(":")[0] for a in res["actions"]] == ["start e2e-1", "rebooted e2e-1"], res
    assert _state(lxc_testbed, "e2e-1") == "RUNNING" and _redeploy(url) == []

    # destroyed behind its back: created again without its configuration -> redeploy
    _lxc(lxc_testbed, "lxc-destroy", "-f", "-n", "e2e-2")
    res = _reconcile(tmp_path, lxc_testbed, url, "reconcile4")["e2e"]
    assert res["state"] == "ready" and _state(lxc_testbed, "e2e-2") == "RUNNING", res
    assert [r[:2] for r in _redeploy(url)] == [("svc-a", "e2e"), ("svc-b", "e2e")]
    assert all("re-created" in r[2] for r in _redeploy(url))
    assert _inventory(tmp_path, url)["redeploy_svc_b"] == {"e2e-1", "e2e-2"}

    # one service leaves: the VMs stay; the last one leaves: they are torn down
    res = _reconcile(tmp_path, lxc_testbed, url, "reconcile5",
                     [request("svc-a", state="absent")])["e2e"]
    assert res["actions"] == [] and _state(lxc_testbed, "e2e-2") == "RUNNING"
    res = _reconcile(tmp_path, lxc_testbed, url, "reconcile6",
                     [request("svc-b", state="absent")])["e2e"]
    assert res["state"] == "deleted", res
    assert _state(lxc_testbed, "e2e-1") is None and _state(lxc_testbed, "e2e-2") is None
    with open_store(url) as s:
        assert s.get_request("e2e") is None and s.list_vms() == []
    assert not os.listdir(tmp_path / "settings")
    print(f"\nreal LXC request lifecycle: {time.monotonic() - started:.1f} s")
