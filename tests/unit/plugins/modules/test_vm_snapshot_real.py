# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_snapshot on a real qemu:///system with a TCG guest on a qcow2 disk, run by ansible-playbook.

Setup is tests/testbed/libvirt-up.sh (Debian packages, virtlogd + libvirtd started by hand, a
Debian cloud kernel and a busybox initramfs); teardown removes the guests and, when this session
started the daemons, stops them with libvirt-down.sh. The guest serves a shell on its serial
port (a unix socket); the test writes to /dev/vda and to tmpfs through it, reverts, and reads
the earlier content back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.real

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
TESTBED = os.path.join(ROOT, "tests", "testbed")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
IMAGES = "/var/lib/libvirt/images/vman-snaptest"
ORIGINAL = b"VMAN-ORIGINAL-01"
CHANGED = b"VMAN-CHANGED-002"
TIMINGS: dict = {}


def _daemon_up() -> bool:
    return subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                          check=False).returncode == 0 if _has("virsh") else False


def _has(binary):
    return any(os.access(os.path.join(d, binary), os.X_OK) for d in os.environ["PATH"].split(":"))


@pytest.fixture(scope="module")
def testbed():
    if os.geteuid() != 0:
        pytest.skip("needs root to install packages and run libvirtd")
    started = not _daemon_up()
    t0 = time.monotonic()
    out = subprocess.run(["bash", os.path.join(TESTBED, "libvirt-up.sh")], capture_output=True,
                         text=True, check=True, timeout=900).stdout
    TIMINGS["testbed_up_s"] = round(time.monotonic() - t0, 1)
    info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    yield info
    if started:
        subprocess.run(["bash", os.path.join(TESTBED, "libvirt-down.sh")], check=False, timeout=120)
    print("\nvm_snapshot real timings:", json.dumps(TIMINGS, sort_keys=True))


class Guest:
    """A TCG guest on qemu:///system with a busybox shell on a unix-socket serial port."""

    def __init__(self, name, info, disk_format="qcow2"):
        import libvirt
        self.name = name
        self.disk = os.path.join(IMAGES, f"{name}.{disk_format}")
        self.sock_path = f"/var/lib/libvirt/qemu/{name}.sock"
        os.makedirs(IMAGES, exist_ok=True)
        raw = self.disk + ".src"
        with open(raw, "wb") as fh:
            fh.write(ORIGINAL.ljust(1 << 20, b"\0"))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", disk_format, raw, self.disk], check=True)
        os.unlink(raw)
        self.conn = libvirt.open("qemu:///system")
        self.dom = self.conn.defineXML(f"""
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{info['kernel']}</kernel>
    <initrd>{info['initrd']}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='{disk_format}'/>
      <source file='{self.disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='unix'><source mode='bind' path='{self.sock_path}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>""")
        self.sock = None

    def start(self):
        t0 = time.monotonic()
        self.dom.create()
        self.connect(wait_ready=True)
        TIMINGS["guest_start_to_shell_s"] = round(time.monotonic() - t0, 1)
        self.sh("stty -echo")

    def connect(self, wait_ready=False, timeout=120):
        if self.sock is not None:
            self.sock.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(self.sock_path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.settimeout(0.5)
        if wait_ready:
            self._read_until(b"VMAN-GUEST-READY", deadline)

    def _read_until(self, marker, deadline):
        buf = b""
        while marker not in buf:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {marker!r} on the serial port; got {buf[-400:]!r}")
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"{self.name}: serial port closed")
            buf += chunk
        return buf

    def sh(self, command, timeout=60):
        """Run a shell command in the guest; return its output (bytes, prompt noise included)."""
        self.sock.sendall(command.encode() + b'; echo "@@END$((40+2))@@"\n')
        out = self._read_until(b"@@END42@@", time.monotonic() + timeout)
        return out[:out.index(b"@@END42@@")]

    def disk_head(self):
        """First 16 bytes of /dev/vda as the guest sees them, page cache dropped."""
        out = self.sh("echo 3 > /proc/sys/vm/drop_caches; head -c 16 /dev/vda")
        return out[-16:]

    def offline_head(self, tmp_path):
        raw = tmp_path / "head.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", self.disk, str(raw)], check=True)
        return raw.read_bytes()[:16]

    def remove(self):
        import libvirt
        if self.sock is not None:
            self.sock.close()
        if self.dom.isActive():
            self.dom.destroy()
        self.dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        self.conn.close()
        if os.path.exists(self.disk):
            os.unlink(self.disk)


@pytest.fixture
def guest(testbed):
    g = Guest("vman-snaptest-a", testbed)
    try:
        yield g
    finally:
        g.remove()


def playbook(tmp_path, name, tasks, domain, expect_rc=0):
    """Run one play of ``tasks`` (YAML text) on localhost with ansible-playbook; return seconds."""
    body = ("- hosts: localhost\n  gather_facts: false\n  vars:\n"
            f"    d: {domain}\n  tasks:\n" + "\n".join("    " + line for line in tasks.splitlines()))
    path = tmp_path / f"{name}.yml"
    path.write_text(body + "\n")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    t0 = time.monotonic()
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={os.path.join(VENV_BIN, 'python')}", str(path)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    elapsed = round(time.monotonic() - t0, 1)
    assert proc.returncode == expect_rc, f"{name}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    TIMINGS[f"playbook_{name}_s"] = elapsed
    return proc


CREATE = """
- name: Create (check mode) changes nothing
  vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, description: proof, uri: "qemu:///system"}
  check_mode: true
  register: check
- vman.lifecycle.vm_snapshot_info: {domain: "{{ d }}"}
  register: info0
- name: Create
  vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, description: proof}
  register: first
- name: Create again is idempotent
  vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, description: proof}
  register: second
- vman.lifecycle.vm_snapshot_info: {domain: "{{ d }}"}
  register: info1
- ansible.builtin.assert:
    that:
      - check is changed
      - info0.snapshots == []
      - first is changed
      - second is not changed
      - info1.snapshots | length == 1
      - info1.snapshots[0].name == 'before'
      - info1.snapshots[0].current
      - info1.snapshots[0].state == 'running'
      - info1.snapshots[0].memory == 'internal'
      - info1.snapshots[0].description == 'proof'
      - info1.snapshots[0].creation_time is number
      - info1.current == 'before'
"""

REVERT_CHECK = """
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, state: reverted}
  check_mode: true
  register: check
- ansible.builtin.assert: {that: [check is changed, check.power_state == 'running']}
"""

REVERT = """
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, state: reverted}
  register: rev
- ansible.builtin.assert: {that: [rev is changed, rev.power_state == 'running', rev.snapshot.current]}
"""

REVERT_STOPPED = """
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, state: reverted, revert_state: stopped}
  register: rev
- ansible.builtin.assert: {that: [rev is changed, rev.power_state == 'stopped']}
- name: Offline internal snapshot of the stopped guest
  vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: offline}
  register: offsnap
- ansible.builtin.assert: {that: [offsnap is changed, offsnap.snapshot.state == "shutoff", offsnap.snapshot.parent == "before"]}
"""

REVERT_OFFLINE = """
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: offline, state: reverted}
  register: rev
- ansible.builtin.assert: {that: [rev is changed, rev.power_state == 'stopped']}
"""

DELETE = """
- name: Delete (check mode) changes nothing
  vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, state: absent, children: true}
  check_mode: true
  diff: true
  register: check
- vman.lifecycle.vm_snapshot_info: {domain: "{{ d }}"}
  register: info0
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, state: absent, children: true}
  register: gone
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: before, state: absent, children: true}
  register: again
- vman.lifecycle.vm_snapshot_info: {domain: "{{ d }}"}
  register: info1
- ansible.builtin.assert:
    that:
      - check is changed
      - check.deleted == ['before', 'offline']
      - check.diff.after.snapshots == []
      - info0.snapshots | map(attribute='name') | list == ['before', 'offline']
      - gone is changed
      - gone.deleted == ['before', 'offline']
      - again is not changed
      - info1.snapshots == []
"""

RAW_REFUSED = """
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: s}
  register: raw
  ignore_errors: true
- ansible.builtin.assert:
    that:
      - raw is failed
      - "'vman-snaptest-raw' in raw.msg"
      - "'disk vda' in raw.msg"
      - "'format raw' in raw.msg"
      - raw.format == 'raw'
"""


def test_snapshot_revert_delete_on_qemu(guest, tmp_path):
    import libvirt
    guest.start()
    assert guest.disk_head() == ORIGINAL
    guest.sh("echo memory-before > /tmp/marker")

    playbook(tmp_path, "create", CREATE, guest.name)

    guest.connect()
    guest.sh(f"printf {CHANGED.decode()} | dd of=/dev/vda bs=16 count=1 conv=notrunc,fsync 2>/dev/null; sync")
    guest.sh("echo memory-after > /tmp/marker")
    assert guest.disk_head() == CHANGED

    playbook(tmp_path, "revert_check", REVERT_CHECK, guest.name)
    assert guest.disk_head() == CHANGED           # check mode reverted nothing

    playbook(tmp_path, "revert", REVERT, guest.name)
    guest.connect()                                # qemu may restart on revert
    assert guest.disk_head() == ORIGINAL           # disk content of the snapshot is back
    assert b"memory-before" in guest.sh("cat /tmp/marker")   # and so is the guest's memory

    # revert again into a powered-off guest, then the offline (qemu-img) snapshot path
    playbook(tmp_path, "revert_stopped", REVERT_STOPPED, guest.name)
    assert not guest.dom.isActive()
    assert guest.offline_head(tmp_path) == ORIGINAL
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 16", guest.disk],
                   check=True, capture_output=True)
    assert guest.offline_head(tmp_path) == b"Z" * 16
    playbook(tmp_path, "revert_offline", REVERT_OFFLINE, guest.name)
    assert guest.offline_head(tmp_path) == ORIGINAL

    playbook(tmp_path, "delete", DELETE, guest.name)
    assert guest.dom.snapshotNum(0) == 0
    assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


EXTERNAL = """
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: ext, kind: external, description: overlay}
  register: ext
- vman.lifecycle.vm_snapshot: {domain: "{{ d }}", name: ext, kind: external}
  register: ext_again
- ansible.builtin.assert:
    that:
      - ext is changed
      - ext_again is not changed
      - ext.snapshot.kind == 'external'
      - ext.snapshot.state == 'disk-snapshot'
      - ext.snapshot.disks[0].snapshot == 'external'
"""


def test_raw_disk_internal_refused_external_works(testbed, tmp_path):
    g = Guest("vman-snaptest-raw", testbed, disk_format="raw")
    overlay = None
    try:
        playbook(tmp_path, "raw_refused", RAW_REFUSED, g.name)
        assert g.dom.snapshotNum(0) == 0
        g.start()
        playbook(tmp_path, "external", EXTERNAL, g.name)
        snap = g.dom.snapshotLookupByName("ext", 0)
        assert "snapshot='external'" in snap.getXMLDesc(0)
        # the running guest now writes into a qcow2 overlay next to the raw image
        overlay = [line.split("'")[1] for line in g.dom.XMLDesc(0).splitlines()
                   if "<source file=" in line][0]
        assert overlay != g.disk and os.path.exists(overlay)
        info = subprocess.run(["qemu-img", "info", "-U", "--output=json", overlay], check=True,
                              capture_output=True, text=True).stdout
        assert json.loads(info)["format"] == "qcow2"
    finally:
        g.remove()
        if overlay and os.path.exists(overlay):
            os.unlink(overlay)


def test_lib_timings_on_qemu(guest):
    """Direct helper timings (no ansible overhead) for the report: snapshot and revert."""
    from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
    guest.start()
    conn = lv.connect("qemu:///system")
    try:
        dom = lv.get_domain(conn, guest.name)
        t0 = time.monotonic()
        info = lv.create_snapshot(dom, "t1")
        TIMINGS["lib_snapshot_running_s"] = round(time.monotonic() - t0, 2)
        assert info["state"] == "running"
        t0 = time.monotonic()
        assert lv.revert_snapshot(dom, "t1") == "running"
        TIMINGS["lib_revert_running_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        assert lv.delete_snapshot(dom, "t1") == ["t1"]
        TIMINGS["lib_delete_s"] = round(time.monotonic() - t0, 2)
    finally:
        lv.close(conn)
