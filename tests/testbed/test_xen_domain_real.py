# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xen_domain and the rendered xl.cfg corpus against the real xl in the Xen testbed's dom0."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _spec, _xl

pytestmark = pytest.mark.real

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBE_INITRD = "/usr/local/share/vman-testbed/probe-initrd.img"
DEFAULTS = {"nfsroot_base": "10.200.0.1:/srv/nfs", "gateway": "10.200.0.1", "iscsi_server": "10.200.0.1",
            "iscsi_base_wwn": "iqn.2026-11.org.example.vman", "lazy_network_bridge": "xenbr0"}


def corpus(kernel):
    """One VM per README feature: the configs xl must accept."""
    base = {"org": "corpus", "os": {"type": "debian", "version": "12"}, "kernel": kernel,
            "initrd": PROBE_INITRD, "memory": 128, "vcpus": 1}
    vms = [
        dict(base, name="nfs", interfaces=[{"ip": "10.200.0.20/24", "mac": "00:16:3e:00:01:20"}]),
        dict(base, name="iscsi", storage_type="iscsi", filesystem="xfs", interfaces=[{"ip": "10.200.0.21"}],
             disks=["format=raw,vdev=xvdb,access=rw,target=/dev/null"]),
        dict(base, name="manual", manual_root_disk=True, interfaces=[{}],
             disks=["format=raw,vdev=xvda,access=rw,target=/dev/null"]),
        dict(base, name="vifs", cpu_str="all", interfaces=[
            {"ip": "10.200.0.22", "mtu": 1400, "vifname": "vmanv0", "xen_str": "rate=10Mb/s"},
            {"mac": "00:16:3e:00:01:23", "script": "vif-bridge"}]),
        dict(base, name="cmdline", cmdline="console=hvc0 quiet", interfaces=[{"ip": "10.200.0.24"}],
             additional_xen_options={"on_crash": "preserve", "maxmem": 256}),
        dict(base, name="hvm", builder="hvm", spice=True, spicehost="127.0.0.1", spiceport=5910,
             spicepasswd="pw-corpus", max_usb_redirections=2, interfaces=[{"ip": "10.200.0.25"}]),
        dict(base, name="hvmplain", builder="hvm", interfaces=[{"ip": "10.200.0.26"}]),
    ]
    return [_spec.normalize(vm, DEFAULTS) for vm in vms]


def _kernel(testbed):
    return testbed.kernel()


def test_rendered_corpus_accepted_by_real_xl_dry_run(xen_testbed):
    specs = corpus(_kernel(xen_testbed))
    failures = {}
    for spec in specs:
        path = f"/tmp/vman-corpus/{spec.full_name}.cfg"
        xen_testbed.write_file(path, _xl.render(spec))
        res = xen_testbed.ssh(["xl", "-N", "create", path], check=False, timeout=180)
        if res.rc != 0:
            failures[spec.full_name] = res.stderr[-400:]
        else:
            # xl -N prints the parsed domain config (JSON); its name must be ours.
            assert f'"{spec.full_name}"' in res.stdout, res.stdout[:400]
    assert not failures, failures


def playbook(testbed, tmp_path, tasks, extra):
    """Run ``tasks`` on the testbed; return (rc, registered results of each task, stderr+stdout)."""
    out_file = tmp_path / "results.json"
    tasks = [dict(t, register=f"r{i}") for i, t in enumerate(tasks)]
    names = ", ".join(f"r{i}" for i in range(len(tasks)))
    tasks.append({"ansible.builtin.copy": {"content": "{{ [%s] | to_json }}" % names, "dest": str(out_file)},
                  "delegate_to": "localhost"})
    book = tmp_path / "play.yml"
    book.write_text(json.dumps([{"hosts": "xen_hosts", "gather_facts": False, "tasks": tasks}]))
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(dict(extra, ansible_python_interpreter="/usr/bin/python3")))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    if out_file.exists():
        out_file.unlink()
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                          str(testbed.inventory), "-e", f"@{vars_file}", str(book)],
                         capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=900, check=False)
    log = res.stdout[-3000:] + res.stderr[-2000:]
    assert out_file.exists(), log
    return res.returncode, json.loads(out_file.read_text()), log


def xen_domain_task(**params):
    return {"vman.lifecycle.xen_domain": dict({"vms": "{{ vms }}", "defaults": "{{ defaults }}",
                                               "config_path": "/etc/xen/vms", "manager": "xl",
                                               "shutdown_timeout": 20}, **params)}


def test_xen_domain_runs_a_real_domain(xen_testbed, tmp_path):
    """Start, idempotence, drift and restart_required, stop and purge, on the real toolstack."""
    vm = {"org": "vman", "name": "probe1", "memory": 128, "vcpus": 1, "kernel": _kernel(xen_testbed),
          "initrd": PROBE_INITRD, "cmdline": "console=hvc0 vman_ip=10.200.0.3/24",
          "os": {"type": "busybox", "version": "1"},
          "interfaces": [{"ip": "10.200.0.3", "mac": "00:16:3e:00:02:03", "bridge": "xenbr0"}]}
    extra = {"vms": [vm], "defaults": {}}
    try:
        rc, (started, again), log = playbook(xen_testbed, tmp_path, [
            xen_domain_task(state="running"), xen_domain_task(state="running")], extra)
        assert rc == 0, log
        first = started["vms"][0]
        assert started["changed"] and first["state_before"] == "stopped" and first["state_after"] == "running"
        assert isinstance(first["domid"], int) and first["domid"] > 0
        assert not again["changed"] and again["vms"][0]["drift"] == {}, again
        assert xen_testbed.ssh(["xl", "domid", "vman-probe1"]).stdout.strip() == str(first["domid"])

        extra["vms"] = [dict(vm, memory=160)]
        rc, (resized,), log = playbook(xen_testbed, tmp_path, [xen_domain_task(state="running")], extra)
        entry = resized["vms"][0]
        assert rc == 0 and entry["config_changed"] and entry["restart_required"], log
        assert entry["drift"]["memory"] == {"config": 160, "running": 128}
        cfg = xen_testbed.ssh(["cat", "/etc/xen/vms/vman-probe1.cfg"]).stdout
        assert "memory = 160" in cfg

        rc, (stopped, purged), log = playbook(xen_testbed, tmp_path, [
            xen_domain_task(state="stopped"), xen_domain_task(state="absent", purge=True)], extra)
        assert rc == 0 and stopped["changed"] and stopped["vms"][0]["state_after"] == "stopped", log
        assert xen_testbed.ssh(["xl", "domid", "vman-probe1"], check=False).rc != 0
        assert purged["changed"] and xen_testbed.ssh(["test", "-e", "/etc/xen/vms/vman-probe1.cfg"], check=False).rc != 0
    finally:
        xen_testbed.ssh(["xl", "destroy", "vman-probe1"], check=False)
