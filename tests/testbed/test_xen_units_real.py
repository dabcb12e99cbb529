# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xen_units in the Xen testbed's dom0: real systemd loads the units, vm@ starts and stops a
tiny PV domain, vm_mount@ and vm@ exclude each other, vm_prepare links the initrd."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.real

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBE_INITRD = "/usr/local/share/vman-testbed/probe-initrd.img"
DOMAIN = "vman-unitprobe"
UNIT = f"vm@{DOMAIN}.service"


def _install_units(testbed, tmp_path, **params):
    """Run xen_units on the testbed twice; return both results."""
    out_file = tmp_path / "units.json"
    task = {"vman.lifecycle.xen_units": dict({"start_timeout": 240, "stop_timeout": 90}, **params)}
    book = tmp_path / "units.yml"
    book.write_text(json.dumps([{
        "hosts": "xen_hosts", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
        "tasks": [dict(task, register="first"), dict(task, register="second"),
                  {"ansible.builtin.copy": {"content": "{{ [first, second] | to_json }}",
                                            "dest": str(out_file)},
                   "delegate_to": "localhost"}]}]))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                           str(testbed.inventory), str(book)], capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
                          cwd=str(ROOT), timeout=600, check=False)
    assert proc.returncode == 0 and out_file.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out_file.read_text())


def _domid(testbed):
    res = testbed.ssh(["xl", "domid", DOMAIN], check=False)
    return res.stdout.strip() if res.rc == 0 else None


def test_units_run_a_real_domain(xen_testbed, tmp_path):
    tb = xen_testbed
    first, second = _install_units(tb, tmp_path)
    assert first["changed"] and first["daemon_reloaded"], first
    assert not second["changed"] and not second["daemon_reloaded"], second

    cat = tb.ssh(["systemctl", "cat", UNIT]).stdout
    assert "xl create /etc/xen/vms/%i.cfg" in cat
    assert "TimeoutStopSec=90" in cat
    verify = tb.ssh(["systemd-analyze", "verify", "--man=no", "/etc/systemd/system/vm@.service",
                     "/etc/systemd/system/vm_iscsi@.service", "/etc/systemd/system/vm_mount@.service",
                     "/etc/systemd/system/vm_prepare.service"], check=False)
    assert verify.rc == 0, verify.stderr

    kernel = tb.kernel()
    release = tb.ssh(["uname", "-r"]).stdout.strip()
    tb.write_file(f"/etc/xen/vms/{DOMAIN}.cfg", f"""name = "{DOMAIN}"
type = "pv"
kernel = "{kernel}"
ramdisk = "{PROBE_INITRD}"
extra = "console=hvc0 vman_ip=10.200.0.5/24"
memory = 128
vcpus = 1
vif = [ "bridge=xenbr0" ]
on_crash = "destroy"
""")
    # vm_mount@ with a tmpfs "root": mount point created, mounted
    tb.write_file(f"/etc/xen/vms/{DOMAIN}.root", "VMAN_ROOT_SOURCE=tmpfs\nVMAN_ROOT_FSTYPE=tmpfs\n")
    tb.write_file(f"/etc/xen/initrd.img-{release}", "initrd stand-in\n")
    try:
        tb.ssh(["systemctl", "start", f"vm_mount@{DOMAIN}.service"], timeout=60)
        assert tb.ssh(["findmnt", "-n", "-o", "FSTYPE", f"/mnt/vms/{DOMAIN}"]).stdout.strip() == "tmpfs"

        started = time.monotonic()
        tb.ssh(["systemctl", "start", UNIT], timeout=300)
        print(f"TIMING systemctl start vm@ {time.monotonic() - started:.1f}s")
        assert _domid(tb) is not None
        assert tb.ssh(["systemctl", "is-active", UNIT], check=False).stdout.strip() == "active"
        # no iSCSI marker: vm_iscsi@ was skipped by its condition, not failed
        iscsi = tb.ssh(["systemctl", "show", f"vm_iscsi@{DOMAIN}.service", "-p", "ConditionResult",
                        "-p", "ActiveState"]).stdout.split()
        assert "ConditionResult=no" in iscsi and "ActiveState=failed" not in iscsi, iscsi
        # vm@ conflicts with vm_mount@: the mount went away, and its mount point with it
        assert tb.ssh(["systemctl", "is-active", f"vm_mount@{DOMAIN}.service"], check=False).rc != 0
        assert tb.ssh(["test", "-e", f"/mnt/vms/{DOMAIN}"], check=False).rc != 0
        # vm_prepare pointed the shared link at the running kernel's initrd
        assert tb.ssh(["readlink", "/etc/xen/initrd.img"]).stdout.strip() == f"/etc/xen/initrd.img-{release}"

        started = time.monotonic()
        tb.ssh(["systemctl", "stop", UNIT], timeout=300)
        print(f"TIMING systemctl stop vm@ {time.monotonic() - started:.1f}s")
        # ExecStop returned only once the domain was gone
        assert _domid(tb) is None
        assert tb.ssh(["systemctl", "is-active", UNIT], check=False).stdout.strip() == "inactive"
    finally:
        tb.ssh(["systemctl", "stop", UNIT, f"vm_mount@{DOMAIN}.service"], check=False, timeout=300)
        tb.ssh(["xl", "destroy", DOMAIN], check=False)
        tb.ssh(["rm", "-f", f"/etc/xen/vms/{DOMAIN}.cfg", f"/etc/xen/vms/{DOMAIN}.root"], check=False)
