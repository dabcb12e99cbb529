# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret in module results: the diff (both sides) of xen_domain and vm_request, and the
VM specs returned by vm_pool, vm_status_info and vm_request_info, run by ansible-playbook
against temporary files and a temporary SQLite store."""

from __future__ import annotations

import json

from _playbook import run_play

OLD, NEW = "old-spice-pw-4711", "new-spice-pw-0815"
ROOT = "root-pw-1234"
DEFAULTS = {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}


def _xen(tmp_path, password):
    return {"vman.lifecycle.xen_domain": {
        "vms": [{"org": "o", "name": "h", "builder": "hvm", "spice": True, "spicepasswd": password,
                 "os": {"type": "debian", "version": "12"}, "interfaces": [{}]}],
        "defaults": DEFAULTS, "config_path": str(tmp_path / "vms"), "manager": "xl",
        "xl_path": "/nonexistent/xl", "host_kernel": "6.1.0-test"}}


def test_xen_domain_diff_hides_old_and_new_spice_password(tmp_path):
    got, out = run_play(tmp_path, [dict(_xen(tmp_path, OLD), register="first")], name="first")
    assert got["first"]["changed"] is True, got
    assert OLD in (tmp_path / "vms" / "o-h.cfg").read_text()

    got, out = run_play(tmp_path, [dict(_xen(tmp_path, NEW), register="second")], diff=True,
                        name="second")
    second = got["second"]
    assert second["changed"] is True and NEW in (tmp_path / "vms" / "o-h.cfg").read_text()
    diff, = second["diff"]
    assert 'spicepasswd = "********"' in diff["before"] and 'spicepasswd = "********"' in diff["after"]
    text = json.dumps(second) + out
    assert OLD not in text and NEW not in text


def test_vm_pool_status_info_and_requests_return_no_secret(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    spec = {"memory": 1024, "spicepasswd": OLD, "root_password": ROOT, "passthrough": ["00:02.0"]}
    fill = {"flavors": [{"name": "small", "threshold": 2, "spec": spec, "org": "acme"}], "store": url}
    request = {"store": url, "name": "web", "allocator": "svc-a", "backend": "xen", "spec": spec}
    got, out = run_play(tmp_path, [
        {"vman.lifecycle.vm_pool": fill, "register": "fill"},
        {"vman.lifecycle.vm_status": {"store": url, "name": "{{ fill.created[0].name }}",
                                      "status": "postinstall", "actor": "admin"}, "register": "s1"},
        {"vman.lifecycle.vm_status": {"store": url, "name": "{{ fill.created[0].name }}",
                                      "status": "preallocated", "actor": "admin"}, "register": "s2"},
        {"vman.lifecycle.vm_pool": {"state": "claimed", "flavor": "small", "owner": "alice",
                                    "store": url}, "register": "claim"},
        {"vman.lifecycle.vm_status_info": {"store": url}, "register": "all"},
        {"vman.lifecycle.vm_status_info": {"store": url, "name": "{{ claim.vm.name }}"},
         "register": "one"},
        {"vman.lifecycle.vm_request": request, "register": "request"},
        {"vman.lifecycle.vm_request": dict(request, spec=dict(spec, spicepasswd=NEW)),
         "register": "changed"},
        {"vman.lifecycle.vm_request_info": {"store": url}, "register": "requests"},
    ], diff=True, name="store")
    assert len(got["fill"]["created"]) == 2 and got["claim"]["vm"]["owner"] == "alice", got
    assert len(got["all"]["vms"]) == 2 and got["one"]["exists"] is True
    # the rest of the spec is kept, as in the inventory
    for vm in got["fill"]["created"] + [got["claim"]["vm"], got["one"]["vm"]] + got["all"]["vms"]:
        assert vm["spec"] == {"memory": 1024, "passthrough": ["00:02.0"]}
    # a changed password is still a change, shown without either value
    assert got["changed"]["changed"] is True
    assert got["changed"]["diff"]["before"]["spec"] == {"memory": 1024, "passthrough": ["00:02.0"]}
    assert got["requests"]["requests"][0]["spec"] == {"memory": 1024, "passthrough": ["00:02.0"]}
    text = json.dumps(got)
    for secret in (OLD, NEW, ROOT):
        assert secret not in text
