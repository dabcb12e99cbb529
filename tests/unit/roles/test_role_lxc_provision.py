# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/lxc_provision without LXC: argument specs, wiring of every step in check mode, stop at
the first failure. The real run is molecule/lxc_provision (make molecule-lxc)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def run_role(tmp_path, role_vars, check=True, tasks_from=None):
    include = {"name": "vman.lifecycle.lxc_provision"}
    if tasks_from:
        include["tasks_from"] = tasks_from
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": dict({"ansible_python_interpreter": sys.executable,
                           "lxc_provision_lxc_path": str(tmp_path / "lxc"),
                           "lxc_provision_settings_dir": str(tmp_path / "settings"),
                           "lxc_provision_host_id": "devhost10.local"}, **role_vars),
             "tasks": [{"ansible.builtin.include_role": include}]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
            str(path)] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="0")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


CONTAINERS = {"gfoobar.test.com": {"profile_type": "dir-scratch", "ip": "10.5.10.16",
                                   "password": "Sup3rSecret", "facts": {"role": "db"}},
              "mysupertest3.foo.com": {}}


def test_check_mode_walks_every_step_and_changes_nothing(tmp_path):
    proc = run_role(tmp_path, {"lxc_provision_containers": CONTAINERS,
                               "lxc_provision_profile_type": "dir-scratch",
                               "lxc_provision_ssh_keys": ["ssh-ed25519 AAAA t@v"]})
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for line in ("spawn: gfoobar.test.com: create from template debian (dir)",
                 "spawn: mysupertest3.foo.com: create from template debian (dir)",
                 "hostsfile: gfoobar.test.com: write /etc/hosts",
                 "sshkeys: mysupertest3.foo.com: write ~root/.ssh/authorized_keys",
                 "grains: gfoobar.test.com: write /etc/ansible/facts.d/vman_lxc.fact",
                 "initial_setup: gfoobar.test.com: initial setup",
                 "initial_converge: skipped"):
        assert line in out, out
    order = [out.index(f"TASK [vman.lifecycle.lxc_provision : {t}") for t in
             ("Spawn - create", "Hosts file - /etc/hosts", "SSH keys - authorized_keys",
              "Facts - /etc/ansible/facts.d", "Initial setup - once", "Initial converge - report")]
    assert order == sorted(order)
    assert "Sup3rSecret" not in out
    assert not (tmp_path / "lxc").exists() and not (tmp_path / "settings").exists()


def test_bad_input_stops_at_the_first_step(tmp_path):
    proc = run_role(tmp_path, {"lxc_provision_containers": {"a.test.com": {"mode": "mastersalt"}}})
    assert proc.returncode != 0
    assert "a.test.com: field 'mode'" in proc.stdout and "salt option" in proc.stdout
    assert "Hosts file" not in proc.stdout


def test_argument_specs_reject_a_wrong_type(tmp_path):
    proc = run_role(tmp_path, {"lxc_provision_containers": ["a.test.com"]})
    assert proc.returncode != 0
    assert "lxc_provision_containers" in proc.stdout and "dict" in proc.stdout


def test_destroy_entry_point_in_check_mode(tmp_path):
    proc = run_role(tmp_path, {"lxc_provision_containers": CONTAINERS}, tasks_from="destroy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "destroy: gfoobar.test.com: nothing to do" in proc.stdout
