# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxc_guest / lxc_guest_info through the venv's ansible-playbook (check mode, idempotence)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def play(tmp_path, tasks, check=False, name="play"):
    """Run ``tasks`` on localhost; return ``({register: result}, stdout)``.

    ``-i localhost,`` on the command line: the inventory of ansible.cfg is not used.
    """
    out = tmp_path / f"{name}.json"
    registered = [t["register"] for t in tasks if "register" in t]
    doc = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [dict(t, ignore_errors=True) for t in tasks] + [{
                "ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content":
                                         "{{ {%s} | to_json }}" % ", ".join(
                                             f"'{r}': {r}" for r in registered)},
                "check_mode": False}]}]
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
            str(path)] + (["--check", "--diff"] if check else [])
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def guest_task(tmp_path, lxc_path, containers, **options):
    args = dict(lxc_path=str(lxc_path), settings_dir=str(tmp_path / "settings"),
                host_id="devhost10.local", containers=containers)
    args.update(options)
    return {"vman.lifecycle.lxc_guest": args, "register": "guest"}


def test_refusals_and_check_mode_plan_without_lxc(tmp_path):
    lxc_path = tmp_path / "lxc"
    tasks = [
        guest_task(tmp_path, lxc_path, [{"name": "a.test.com"}], profile_type="overlayfs",
                   from_container="base"),
        dict(guest_task(tmp_path, lxc_path, [{"name": "b.test.com", "password": "Very$ecret1"},
                                             {"name": "c.test.com", "ip": "10.5.0.2"}],
                        profile_type="dir-scratch"), register="plan"),
        dict(guest_task(tmp_path, lxc_path, [{"name": "d.test.com", "ip": "10.9.0.2"}],
                        profile_type="dir-scratch"), register="badip"),
    ]
    res, stdout = play(tmp_path, tasks, check=True)
    assert res["guest"]["failed"] and "refused on production hosts" in res["guest"]["msg"]
    plan = res["plan"]
    assert plan["changed"] and not plan.get("failed")
    b, c = plan["containers"]
    assert b["actions"][0] == "create from template debian (dir)"
    assert c["settings"]["ip"] == "10.5.0.2" and b["settings"]["ip"] == "10.5.0.3"
    assert b["settings"]["profile"] == "ms-devhost10-local-dir-scratch"
    assert "Very$ecret1" not in stdout and "Very$ecret1" not in json.dumps(res)
    assert res["badip"]["failed"] and res["badip"]["field"] == "ip"
    assert "not a host address of network 10.5.0.0/16" in res["badip"]["msg"]
    assert not lxc_path.exists() and not (tmp_path / "settings").exists()


@pytest.mark.real
def test_real_playbook_check_converge_idempotent_info_destroy(lxc_testbed, tmp_path):
    lxc_path = lxc_testbed["LXC_PATH"]
    containers = [{"name": "pb-given.test.com", "ip": "10.5.10.16", "password": "foobar",
                   "profile_type": "dir"},
                  {"name": "pb-generated.test.com"}]
    task = guest_task(tmp_path, lxc_path, containers, production=False, profile_type="overlayfs",
                      from_container=lxc_testbed["BASE"], bridge=lxc_testbed["BRIDGE"])
    info = {"vman.lifecycle.lxc_guest_info": {
        "lxc_path": lxc_path, "settings_dir": str(tmp_path / "settings"),
        "names": ["pb-given.test.com", "pb-generated.test.com"]}, "register": "info"}

    res, _out = play(tmp_path, [task], check=True, name="check1")
    assert res["guest"]["changed"] and not res["guest"].get("failed"), res
    assert not os.path.exists(os.path.join(lxc_path, "pb-given.test.com"))

    res, _out = play(tmp_path, [task, info], name="converge")
    assert res["guest"]["changed"] and not res["guest"].get("failed"), res["guest"]
    generated = res["guest"]["containers"][1]
    assert sorted(generated["generated"]) == ["ip", "mac", "password"]
    live = {c["name"]: c for c in res["info"]["containers"]}
    assert live["pb-given.test.com"]["live"]["ip"] == "10.5.10.16"
    assert live["pb-generated.test.com"]["live"]["ip"] == generated["settings"]["ip"]
    assert live["pb-generated.test.com"]["live"]["state"] == "running"
    assert live["pb-given.test.com"]["settings"]["password"] == "********"
    settings_before = json.loads((tmp_path / "settings" / "pb-generated.test.com.json").read_text())

    for name in ("check2", "again"):
        res, _out = play(tmp_path, [task], check=name == "check2", name=name)
        assert not res["guest"]["changed"], res["guest"]
        assert all(c["actions"] == [] for c in res["guest"]["containers"])
    assert json.loads((tmp_path / "settings" / "pb-generated.test.com.json").read_text()) == \
        settings_before

    absent = guest_task(tmp_path, lxc_path, containers, state="absent")
    res, _out = play(tmp_path, [absent], name="destroy")
    assert res["guest"]["changed"]
    assert not os.path.exists(os.path.join(lxc_path, "pb-generated.test.com"))
    assert os.listdir(tmp_path / "settings") == []
