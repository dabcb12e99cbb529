# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_secret and vm_install_seed through ansible-playbook: no_log enforced, values never printed."""

from __future__ import annotations

from ansible_collections.vman.lifecycle.tests.unit.plugins.modules._playbook import run_play
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store


def test_vm_secret_needs_no_log_and_is_shown_once(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as store:
        store.create_vms([{"name": "vm1", "org": "acme", "flavor": "small", "backend": "lxc"}])
    env = {"VMAN_STORE": url}
    tasks = [
        {"vman.lifecycle.vm_secret": {"vm": "vm1", "name": "root"}, "register": "logged"},
        {"vman.lifecycle.vm_secret": {"vm": "vm1", "name": "root"}, "no_log": True,
         "register": "made"},
        {"vman.lifecycle.vm_secret": {"vm": "vm1", "name": "root", "state": "shown"},
         "no_log": True, "register": "shown"},
        {"vman.lifecycle.vm_secret": {"vm": "vm1", "name": "root", "state": "shown"},
         "no_log": True, "register": "again"},
        {"vman.lifecycle.vm_secret": {"vm": "vm1", "state": "absent"}, "register": "absent"},
    ]
    res, out = run_play(tmp_path, tasks, env=env)
    assert res["logged"]["failed"] and "no_log" in res["logged"]["msg"]
    assert res["made"]["changed"] and len(res["made"]["value"]) == 24
    assert res["shown"]["value"] == res["made"]["value"]
    assert res["again"]["failed"]
    assert not res["absent"]["changed"]
    assert res["made"]["value"] not in out


def test_vm_install_seed_needs_no_log_and_writes(tmp_path):
    root = tmp_path / "guest"
    root.mkdir()
    args = {"root": str(root), "callback_url": "http://127.0.0.1:1/callback/vm1",
            "token": "T" * 43, "hostname": "vm1.example.org"}
    tasks = [
        {"vman.lifecycle.vm_install_seed": args, "register": "logged"},
        {"vman.lifecycle.vm_install_seed": args, "no_log": True, "register": "first"},
        {"vman.lifecycle.vm_install_seed": args, "no_log": True, "register": "second"},
    ]
    res, out = run_play(tmp_path, tasks)
    assert res["logged"]["failed"] and "no_log" in res["logged"]["msg"]
    assert res["first"]["changed"] and "etc/vman/install-token" in res["first"]["written"]
    assert not res["second"]["changed"]
    assert (root / "etc/vman/install-token").read_text() == "T" * 43 + "\n"
    assert "T" * 43 not in out
