# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run module tasks against the Xen testbed's dom0 through the real ansible-playbook (its
inventory.ini, SSH) and return what each task registered."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def play(testbed, tmp_path, tasks, *, check=False, diff=False, name="play", timeout=1800):
    """Run ``tasks`` on the testbed; return ``({register: result}, seconds)``.

    Every task gets ``ignore_errors: true``, so a failed task is returned (``failed``, ``msg``)
    rather than stopping the play; the results are copied back as JSON by a last local task.
    """
    out = tmp_path / f"{name}.json"
    registered = [t["register"] for t in tasks if "register" in t]
    book = tmp_path / f"{name}.yml"
    book.write_text(json.dumps([{
        "hosts": "xen_hosts", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
        "tasks": [dict(t, ignore_errors=True) for t in tasks] + [{
            "ansible.builtin.copy": {
                "dest": str(out), "mode": "0600",
                "content": "{{ {%s} | to_json }}" % ", ".join(f"'{r}': {r}" for r in registered)},
            "delegate_to": "localhost", "check_mode": False, "diff": False}],
    }]))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
            str(testbed.inventory), str(book)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(ROOT), timeout=timeout,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                                   ANSIBLE_NOCOLOR="1"), check=False)
    seconds = time.monotonic() - started
    assert proc.returncode == 0 and out.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text()), seconds
