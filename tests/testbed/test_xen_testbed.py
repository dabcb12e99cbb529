# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Xen testbed is a real Xen host: dom0 under xl, systemd, the tools the collection drives,
xl's dry run, and a PV domU that really starts on the bridge."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

import pytest

pytestmark = pytest.mark.real

PROBE_INITRD = "/usr/local/share/vman-testbed/probe-initrd.img"
PROBE_IP = "10.200.0.2"
MINIMAL_PV = """\
name = "vman-dryrun"
type = "pv"
kernel = "{kernel}"
ramdisk = "{initrd}"
memory = 128
vcpus = 1
vif = [ "bridge=xenbr0" ]
"""


def _boot_files(testbed):
    """Paths in dom0 of its running kernel and of the image's tiny busybox initramfs."""
    return testbed.kernel(), PROBE_INITRD


def test_dom0_is_listed_by_xl(xen_testbed):
    lines = xen_testbed.ssh(["xl", "list"]).stdout.splitlines()
    assert lines[0].split()[:2] == ["Name", "ID"]
    dom0 = [line.split() for line in lines[1:] if line.startswith("Domain-0")]
    assert len(dom0) == 1 and dom0[0][1] == "0", lines


def test_xl_info_reports_xen_417(xen_testbed):
    info = dict(line.split(":", 1) for line in xen_testbed.ssh(["xl", "info"]).stdout.splitlines()
                if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    assert info["xen_major"] == "4" and info["xen_minor"] == "17", info
    assert int(info["nr_cpus"]) >= 1
    assert int(info["total_memory"]) > 1024


def test_systemd_is_up(xen_testbed):
    result = xen_testbed.ssh(["systemctl", "is-system-running", "--wait"], check=False,
                             timeout=300)
    failed = xen_testbed.ssh(["systemctl", "--failed", "--no-legend", "--plain"]).stdout
    assert result.stdout.strip() in ("running", "degraded"), (result.stdout, failed)


@pytest.mark.parametrize("argv", [
    ["tgtadm", "--help"],
    ["iscsiadm", "--version"],
    ["exportfs", "-v"],
    ["dracut", "--list-modules"],
    ["lsinitrd", "--help"],
    ["debootstrap", "--version"],
    ["systemd-analyze", "--version"],
    ["python3", "-c", "import apt"],
])
def test_tools_of_the_collection_run(xen_testbed, argv):
    assert xen_testbed.ssh(argv, check=False).rc == 0


def test_bridge_for_domus(xen_testbed):
    out = xen_testbed.ssh(["ip", "-brief", "address", "show", "dev", "xenbr0"]).stdout
    assert "10.200.0.1/24" in out
    assert os.path.basename("/etc/xen/vms") in xen_testbed.ssh(["ls", "/etc/xen"]).stdout.split()


def test_xl_dry_run_accepts_a_minimal_pv_config(xen_testbed):
    kernel, initrd = _boot_files(xen_testbed)
    xen_testbed.write_file("/tmp/vman-ok.cfg", MINIMAL_PV.format(kernel=kernel, initrd=initrd))
    started = time.monotonic()
    result = xen_testbed.ssh(["xl", "-N", "create", "/tmp/vman-ok.cfg"], check=False)
    print(f"TIMING xl dry run {time.monotonic() - started:.1f}s")
    assert result.rc == 0, result.stderr
    # A dry run creates nothing.
    assert "vman-dryrun" not in xen_testbed.ssh(["xl", "list"]).stdout


@pytest.mark.parametrize("text", [
    'name = "broken"\nmemory = \n',                       # syntax error
    'name = "broken"\ntype = "pv"\nmemory = 128\n',        # PV without a kernel
    'name = "broken"\ntype = "nonsense"\nkernel = "/k"\nmemory = 128\n',  # unknown type
])
def test_xl_dry_run_rejects_a_broken_config(xen_testbed, text):
    xen_testbed.write_file("/tmp/vman-broken.cfg", text)
    result = xen_testbed.ssh(["xl", "-N", "create", "/tmp/vman-broken.cfg"], check=False)
    assert result.rc != 0, (result.stdout, result.stderr)


def test_a_pv_domu_starts_answers_on_the_bridge_and_is_destroyed(xen_testbed):
    kernel, initrd = _boot_files(xen_testbed)
    cfg = MINIMAL_PV.replace("vman-dryrun", "vman-probe").format(kernel=kernel, initrd=initrd)
    cfg += f'extra = "console=hvc0 vman_ip={PROBE_IP}/24"\non_crash = "destroy"\n'
    xen_testbed.write_file("/tmp/vman-probe.cfg", cfg)
    started = time.monotonic()
    xen_testbed.ssh(["xl", "create", "/tmp/vman-probe.cfg"], timeout=300)
    print(f"TIMING xl create {time.monotonic() - started:.1f}s")
    try:
        assert "vman-probe" in xen_testbed.ssh(["xl", "list", "vman-probe"]).stdout
        domid = xen_testbed.ssh(["xl", "domid", "vman-probe"]).stdout.strip()
        # The vif went onto the bridge, and the guest's own kernel brought its NIC up there.
        assert f"vif{domid}.0" in xen_testbed.ssh(["ls", "/sys/class/net/xenbr0/brif"]).stdout
        deadline = time.monotonic() + 180
        while True:
            ping = xen_testbed.ssh(["ping", "-c", "1", "-W", "2", PROBE_IP], check=False)
            if ping.rc == 0 or time.monotonic() > deadline:
                break
        print(f"TIMING domU create to ping {time.monotonic() - started:.1f}s")
        assert ping.rc == 0, ping.stdout
    finally:
        xen_testbed.ssh(["xl", "destroy", "vman-probe"], check=False, timeout=120)
    assert xen_testbed.ssh(["xl", "domid", "vman-probe"], check=False).rc != 0


def test_copy_to_round_trip(xen_testbed, tmp_path):
    src = tmp_path / "payload.txt"
    src.write_text("vman testbed\n")
    xen_testbed.copy_to(src, "/tmp/payload.txt")
    back = tmp_path / "back.txt"
    xen_testbed.copy_from("/tmp/payload.txt", back)
    assert back.read_text() == "vman testbed\n"


def test_ansible_reaches_the_testbed_through_its_inventory(xen_testbed):
    venv_bin = pathlib.Path(__file__).resolve().parents[2] / ".venv" / "bin"
    ansible = venv_bin / "ansible"
    if not ansible.exists():
        pytest.skip("no .venv with ansible")
    proc = subprocess.run(
        [str(ansible), "-i", str(xen_testbed.inventory), "xen_testbed", "-m",
         "ansible.builtin.command", "-a", "xl list"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Domain-0" in proc.stdout
