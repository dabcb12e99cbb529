# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet inventory's ``live_state`` with ``backend: xen`` over real ssh into the Xen
testbed's dom0: the real ``xl list -l`` and ``ls`` of an xl.cfg directory, a real PV domain
running, through the real ``ansible-inventory``. Part of ``make xen-pytest`` (all of
tests/testbed/); ~50 s in a booted testbed under TCG, most of it ``xl create``."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

pytestmark = pytest.mark.real

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBE_INITRD = "/usr/local/share/vman-testbed/probe-initrd.img"
CONFIG_DIR = "/etc/xen/vman-fleetlive"


def _plain(value):
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def test_fleet_live_state_xen_over_ssh(xen_testbed, tmp_path):
    kernel = xen_testbed.kernel()
    xen_testbed.ssh(["xl", "destroy", "fleet-on"], check=False)        # leftovers of a killed run
    xen_testbed.ssh(["rm", "-rf", CONFIG_DIR])
    for name in ("fleet-on", "fleet-off"):
        xen_testbed.write_file(f"{CONFIG_DIR}/{name}.cfg",
                               f'name = "{name}"\ntype = "pv"\nkernel = "{kernel}"\n'
                               f'ramdisk = "{PROBE_INITRD}"\nextra = "console=hvc0"\n'
                               f'memory = 128\nvcpus = 1\n')
    try:
        xen_testbed.ssh(["xl", "create", f"{CONFIG_DIR}/fleet-on.cfg"], timeout=300)
        url = f"sqlite:///{tmp_path}/lifecycle.db"
        with open_store(url) as store:
            store.create_vms([{"name": name, "org": "fleet", "backend": "xen", "hypervisor": "dom0",
                               "spec": {}} for name in ("on", "off", "gone")]
                             + [{"name": "x1", "org": "fleet", "backend": "xen", "hypervisor": "down",
                                 "spec": {}}], status=lc.READY)
        ssh_args = ["-F", str(xen_testbed.ssh_config)]
        cfg = tmp_path / "xen.fleet.yml"
        cfg.write_text(yaml.safe_dump({
            "plugin": "vman.lifecycle.fleet", "store": url,
            "live_state": {
                "dom0": {"backend": "xen", "config_path": CONFIG_DIR, "ssh": "testbed", "ssh_args": ssh_args},
                # nothing listens on port 1: ssh fails at once
                "down": {"backend": "xen", "ssh": "root@127.0.0.1", "ssh_args": ["-p", "1"], "timeout": 20},
            }}))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"),
                               "-i", str(cfg), "--list"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        data = json.loads(proc.stdout)
        power = {h: _plain(v.get("vman_power_state")) for h, v in data["_meta"]["hostvars"].items()}
        assert power == {"fleet-on": "running", "fleet-off": "stopped", "fleet-gone": "absent",
                         "fleet-x1": "unknown"}, proc.stderr
        assert set(data["power_running"]["hosts"]) == {"fleet-on"}
        flat = " ".join(proc.stderr.split())
        assert flat.count("[WARNING]: vman.lifecycle.fleet: hypervisor") == 1, proc.stderr
        assert "hypervisor 'down' could not be asked" in flat and "Connection refused" in flat
    finally:
        xen_testbed.ssh(["xl", "destroy", "fleet-on"], check=False)
        xen_testbed.ssh(["rm", "-rf", CONFIG_DIR], check=False)
