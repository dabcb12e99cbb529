# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxc_guest_setup through ansible-playbook, without LXC: validation errors and check mode."""

from __future__ import annotations

from _playbook import run_play


def _task(tmp_path, containers, register="setup"):
    return {"vman.lifecycle.lxc_guest_setup": {"lxc_path": str(tmp_path / "lxc"),
                                               "containers": containers}, "register": register}


def test_check_mode_plans_for_missing_containers_and_bad_input_names_the_field(tmp_path):
    got, _out = run_play(tmp_path, [
        _task(tmp_path, [{"name": "web1.test.com", "regenerate_host_keys": True,
                          "files": [{"path": "/etc/hosts", "content": "x\n"}]}]),
        _task(tmp_path, [{"name": "web1.test.com", "files": [{"path": "etc/hosts",
                                                              "content": "x"}]}], "bad"),
        _task(tmp_path, [{"name": "web1.test.com", "commands": [["true"]]}], "real"),
    ], check=True)
    plan = got["setup"]["containers"][0]
    assert got["setup"]["changed"] and plan["actions"] == ["write /etc/hosts", "initial setup"]
    assert "not running" in plan["skipped_reason"]
    assert got["bad"]["failed"] and got["bad"]["field"] == "files.path"
    assert got["bad"]["object"] == "web1.test.com"


def test_outside_check_mode_a_missing_container_is_an_error(tmp_path):
    got, _out = run_play(tmp_path, [_task(tmp_path, [{"name": "web1.test.com",
                                                      "commands": [["true"]]}])])
    assert got["setup"]["failed"]
    assert "web1.test.com: container is absent" in got["setup"]["msg"]
