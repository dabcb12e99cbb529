# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest module on real hypervisors, through ansible-playbook: LXC containers of this
machine (the lxc_testbed fixture: bridge, gateway and base container from the testbed, never
hard-coded) and a TCG domain on a real qemu:///system (tests/testbed/libvirt-up.sh: virtlogd and
libvirtd started by hand, a Debian cloud kernel and a busybox initramfs).

Each test walks one guest through define -> running -> suspended -> running -> stopped ->
absent, checks every step against the hypervisor's own tools (lxc-info, libvirt), that a
second run of a step changes nothing, and that the suspended guest comes back with its
processes (LXC: the same init PID) or from its saved image (libvirt: the image exists while
suspended, the domain runs "restored" afterwards and the image is gone).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from _playbook import run_play

pytestmark = pytest.mark.real

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
TESTBED = os.path.join(ROOT, "tests", "testbed")


def _lxc_info(testbed, name, flag):
    proc = subprocess.run(["lxc-info", "-P", testbed["LXC_PATH"], "-n", name, flag, "-H"],
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _step(tmp_path, backends, guest, name, check=False):
    task = {"vman.lifecycle.guest": {"backends": backends, "guests": [guest]}, "register": "g"}
    res, _out = run_play(tmp_path, [task], check=check, diff=True, name=name)
    assert not res["g"].get("failed"), res["g"]
    return res["g"]


def test_real_lxc_define_run_freeze_thaw_stop_purge(lxc_testbed, tmp_path):
    iface = ipaddress.ip_interface(lxc_testbed["GATEWAY"])
    ip = str(iface.network.network_address + iface.network.num_addresses // 2 + 201)
    name = "vman-guest-real"
    backends = {"lxc": {"lxc_path": lxc_testbed["LXC_PATH"], "settings_dir": str(tmp_path / "settings"),
                        "host_id": "guest.test", "production": False, "profile_type": "dir",
                        "from_container": lxc_testbed["BASE"], "bridge": lxc_testbed["BRIDGE"],
                        "network": str(iface.network), "gateway": str(iface.ip), "users": []}}
    guest = {"name": name, "kind": "lxc", "state": "running", "spec": {"memory": 512},
             "netconfs": {"vm": {"ipv4": ip}}}
    try:
        res = _step(tmp_path, backends, guest, "check", check=True)
        assert res["changed"] and res["guests"][0]["actions"] == ["define", "start"]
        assert _lxc_info(lxc_testbed, name, "-s") is None              # nothing made
        res = _step(tmp_path, backends, guest, "run")
        assert res["guests"][0]["state"] == "running" and _lxc_info(lxc_testbed, name, "-s") == "RUNNING"
        assert res["diff"]["before"] == {name: "absent"} and res["diff"]["after"] == {name: "running"}
        config = open(os.path.join(lxc_testbed["LXC_PATH"], name, "config"), encoding="utf-8").read()
        assert f"lxc.net.0.ipv4.address = {ip}/" in config               # the netconf's address
        assert not _step(tmp_path, backends, guest, "run-again")["changed"]
        pid = _lxc_info(lxc_testbed, name, "-p")

        frozen = dict(guest, state="suspended")
        res = _step(tmp_path, backends, frozen, "suspend")
        assert res["changed"] and res["guests"][0]["actions"] == ["suspend"]
        assert _lxc_info(lxc_testbed, name, "-s") == "FROZEN"
        assert not _step(tmp_path, backends, frozen, "suspend-again")["changed"]
        res = _step(tmp_path, backends, guest, "resume")
        assert res["guests"][0]["actions"] == ["resume"] and _lxc_info(lxc_testbed, name, "-s") == "RUNNING"
        assert _lxc_info(lxc_testbed, name, "-p") == pid                 # thawed, not rebooted

        res = _step(tmp_path, backends, dict(guest, state="stopped", timeout=20), "stop")
        assert res["guests"][0]["state"] == "stopped" and _lxc_info(lxc_testbed, name, "-s") == "STOPPED"
        res = _step(tmp_path, backends, dict(guest, state="suspended", spec=None), "stopped-to-suspended")
        assert res["guests"][0]["actions"] == ["start", "suspend"]
        assert _lxc_info(lxc_testbed, name, "-s") == "FROZEN"
        # absent keeping storage: the container is its storage, so it is kept, stopped
        res = _step(tmp_path, backends, dict(guest, state="absent"), "absent-keep")
        assert res["guests"][0]["state"] == "stopped" and _lxc_info(lxc_testbed, name, "-s") == "STOPPED"
        assert not _step(tmp_path, backends, dict(guest, state="absent"), "absent-keep-again")["changed"]
        res = _step(tmp_path, backends, dict(guest, state="absent", keep_storage=False), "purge")
        assert res["guests"][0]["state"] == "absent" and _lxc_info(lxc_testbed, name, "-s") is None
        assert not os.path.exists(tmp_path / "settings" / f"{name}.json")
        missing = _step_failing(tmp_path, backends, dict(guest, spec=None, netconfs=None), "missing")
        assert missing["guest"] == name and "its spec is needed" in missing["msg"]
    finally:
        subprocess.run(["lxc-destroy", "-P", lxc_testbed["LXC_PATH"], "-n", name, "-f"],
                       capture_output=True, timeout=120, check=False)


def _step_failing(tmp_path, backends, guest, name):
    """The module's failure result, or None when the step did not fail."""
    task = {"vman.lifecycle.guest": {"backends": backends, "guests": [guest]}, "register": "g"}
    res, _out = run_play(tmp_path, [task], name=name)
    return res["g"] if res["g"].get("failed") else None


# ---- real qemu:///system -------------------------------------------------------------------

def _libvirt_up():
    return subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope="module")
def libvirt_testbed():
    if os.geteuid() != 0:
        pytest.skip("needs root to install packages and run libvirtd")
    started = not (subprocess.run(["sh", "-c", "command -v virsh"], capture_output=True,
                                  check=False).returncode == 0 and _libvirt_up())
    out = subprocess.run(["bash", os.path.join(TESTBED, "libvirt-up.sh")], capture_output=True,
                         text=True, check=True, timeout=900).stdout
    yield dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if started:
        subprocess.run(["bash", os.path.join(TESTBED, "libvirt-down.sh")], check=False, timeout=120)


def test_real_libvirt_tcg_define_run_managed_save_resume_stop_purge(libvirt_testbed, tmp_path):
    import libvirt
    name = "vman-guest-real"
    images = "/var/lib/libvirt/images/vman-guest-real"
    os.makedirs(images, exist_ok=True)
    disk = os.path.join(images, f"{name}.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"], check=True, timeout=60)
    xml = f"""<domain type='qemu'><name>template</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{libvirt_testbed['kernel']}</kernel>
    <initrd>{libvirt_testbed['initrd']}</initrd><cmdline>console=ttyS0 quiet panic=-1</cmdline></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
    <memballoon model='none'/></devices></domain>"""
    backends = {"libvirt": {"uri": "qemu:///system", "stop_timeout": 5}}
    guest = {"name": name, "kind": "libvirt", "state": "running", "spec": {"xml": xml}}
    conn = libvirt.open("qemu:///system")
    saved = f"/var/lib/libvirt/qemu/save/{name}.save"
    try:
        res = _step(tmp_path, backends, guest, "check", check=True)
        assert res["guests"][0]["actions"] == ["define", "start"] and name not in conn.listDefinedDomains()
        res = _step(tmp_path, backends, guest, "run")
        dom = conn.lookupByName(name)
        assert res["guests"][0]["state"] == "running" and dom.isActive()
        assert not _step(tmp_path, backends, guest, "run-again")["changed"]

        res = _step(tmp_path, backends, dict(guest, state="suspended"), "suspend")
        assert res["guests"][0]["actions"] == ["suspend"] and res["guests"][0]["state"] == "suspended"
        assert not dom.isActive() and dom.hasManagedSaveImage(0) and os.path.exists(saved)
        assert not _step(tmp_path, backends, dict(guest, state="suspended"), "suspend-again")["changed"]
        res = _step(tmp_path, backends, guest, "resume")
        assert res["guests"][0]["actions"] == ["resume"] and dom.isActive()
        assert dom.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_RESTORED]
        assert not dom.hasManagedSaveImage(0) and not os.path.exists(saved)

        # the busybox guest ignores ACPI: the clean shutdown times out and it is forced off
        res = _step(tmp_path, backends, dict(guest, state="stopped", timeout=3), "stop")
        assert res["guests"][0]["state"] == "stopped" and not dom.isActive()
        res = _step(tmp_path, backends, dict(guest, state="absent"), "absent-keep")
        assert res["guests"][0]["state"] == "absent" and os.path.exists(disk)
        assert name not in conn.listDefinedDomains()
        _step(tmp_path, backends, dict(guest, state="stopped"), "define-again")
        res = _step(tmp_path, backends, dict(guest, state="absent", keep_storage=False), "purge")
        assert res["guests"][0]["state"] == "absent" and not os.path.exists(disk)
    finally:
        try:
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        except libvirt.libvirtError:
            pass
        conn.close()
        subprocess.run(["rm", "-rf", images], check=False)
