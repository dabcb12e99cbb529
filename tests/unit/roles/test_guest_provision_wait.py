# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_provision through the real ansible-playbook on libvirt's test:///default driver: the
VM's libvirt network is started and the port wait runs from kvm_host, also without startup.

The "SSH server" here is a fake: a thread on 127.0.0.1 that sends an SSH banner and closes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
pytest.importorskip("libvirt")


@pytest.fixture(name="fake_ssh_banner_port")
def fixture_fake_ssh_banner_port():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = srv.accept()
            except OSError:
                continue
            conn.sendall(b"SSH-2.0-fake_for_tests\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    srv.close()


def _play(tmp_path, port, allowed_phases=(), **extra):
    inventory = {"all": {"hosts": {
        "hv": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "guest": dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "ansible_host": "127.0.0.1", "ansible_port": port, "kvm_host": "hv"}, **extra)}}}
    vm = {"metadata": {"name": "test", "connection": "test:///default"},
          "net": {"type": "network", "source": "default"}}
    play = [{"hosts": "guest", "gather_facts": False, "tasks": [
        {"name": "provision", "ansible.builtin.include_role": {"name": "vman.lifecycle.guest_provision"},
         "vars": {"vm": vm, "allowed_phases": list(allowed_phases), "wait_until_port_reachable": True,
                  "connection_timeout": 10}}]}]
    (tmp_path / "inv.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                           "-i", str(tmp_path / "inv.yml"), str(tmp_path / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_network_started_and_port_wait_from_kvm_host_without_startup(tmp_path, fake_ssh_banner_port):
    proc = _play(tmp_path, fake_ssh_banner_port)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Start the VM's libvirt networks" in out and "[guest -> hv] => (item=default)" in out
    assert "TASK [vman.lifecycle.guest_provision : Start the VM on its hypervisor]" not in out
    wait = out.split("Wait until the VM's port answers, from its hypervisor")[1].splitlines()[1]
    assert wait.startswith("ok: [guest -> hv]"), out


def test_port_wait_times_out_on_a_closed_port(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = _play(tmp_path, port)
    assert proc.returncode != 0
    assert "Timeout when waiting for" in proc.stdout + proc.stderr


def test_external_snapshots_refused_with_the_reason(tmp_path, fake_ssh_banner_port):
    proc = _play(tmp_path, fake_ssh_banner_port, allowed_phases=["create clean"],
                 snapshot_type="external", project_id="p", revision_id="1")
    assert proc.returncode != 0
    assert "snapshot_type" in proc.stdout and "libvirt before 9.7" in proc.stdout
