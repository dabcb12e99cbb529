# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a few module tasks through the venv's ansible-playbook and return what they registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def run_play(tmp_path, tasks, check=False, diff=False, env=None, name="play"):
    """Run ``tasks`` (each may carry ``register``) on localhost; return ``({register: result},
    stdout + stderr)``.

    Every task gets ``ignore_errors: true`` so a failure is returned, not raised.
    """
    out = tmp_path / f"{name}.json"
    registered = [t["register"] for t in tasks if "register" in t]
    play = [{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [dict(t, ignore_errors=True) for t in tasks] + [{
            "name": "dump registered results",
            "ansible.builtin.copy": {
                "dest": str(out), "mode": "0600",
                "content": "{{ {%s} | to_json }}" % ", ".join(f"'{r}': {r}" for r in registered)},
            "check_mode": False,
            "diff": False,
        }],
    }]
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    # -i: ansible.cfg's "inventory = localhost," splits into "localhost" and "", and the
    # empty entry resolves to the config directory, which is then parsed as an inventory tree
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
            str(path)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    full_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                    ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0")
    full_env.update(env or {})
    proc = subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout + proc.stderr
