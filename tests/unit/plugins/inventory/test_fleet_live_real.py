# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet inventory's ``live_state`` against real hypervisors, through the real
``ansible-inventory``: real LXC containers (the session's LXC testbed: its lxcpath, bridge and
base container; ``make real-lxc`` runs the ``lxc`` test, ~2 s once the session's base container exists, ~6 s more
when it is the first test of a session) and real libvirt (``make real-libvirt`` runs the
``libvirt`` test, ~8 s: two inventory runs that each wait 3 s for a silent socket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._lxc import LxcBackend
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

pytestmark = pytest.mark.real

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
BIN = os.path.dirname(sys.executable)


def _store(tmp_path, vms):
    url = f"sqlite:///{tmp_path}/lifecycle.db"
    with open_store(url) as store:
        store.create_vms(vms, status=lc.READY)
    return url


def _inventory(cfg):
    """``ansible-inventory --list``: (data, stderr, seconds)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("VMAN_STORE", None)
    start = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", str(cfg), "--list"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout), proc.stderr, time.monotonic() - start


def _plain(value):
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else value
    return value


def _power(data):
    return {host: _plain(hostvars.get("vman_power_state"))
            for host, hostvars in data["_meta"]["hostvars"].items()}


def _hosts(data, group):
    return set(data.get(group, {}).get("hosts", []))


def _warnings(stderr):
    # the warning wraps over lines: join them to match a whole one
    return " ".join(stderr.split()).count("[WARNING]: vman.lifecycle.fleet: hypervisor")


@pytest.fixture()
def silent_socket(tmp_path):
    """A unix socket that accepts connections and never answers (a hung libvirtd)."""
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    yield path
    server.close()


# libvirt's test driver reads its domains, with their run states, from a node file
NODE_XML = """<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>on</name><memory>65536</memory><os><type>hvm</type></os>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>off</name><memory>65536</memory><os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>held</name><memory>65536</memory><os><type>hvm</type></os>
    <test:runstate>3</test:runstate>
  </domain>
</node>
"""


def test_libvirt_running_absent_unreachable_silent_and_cache(tmp_path, silent_socket):
    """libvirt's test driver is a real libvirt driver (libvirt's own code, in the client
    library, no daemon): ``test:///default`` always holds one running domain, ``test``, and
    ``test:///<file>`` holds the domains of a node file in the run states it gives (shut off,
    paused). The same reader code reaches ``qemu:///system`` or ``qemu+ssh://`` hosts. The
    failing hypervisors are real too: a socket path where no daemon listens, and a socket
    that never answers."""
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML)
    url = _store(tmp_path, [
        {"name": "test", "backend": "libvirt", "hypervisor": "testdrv", "spec": {}},
        {"name": "ghost", "backend": "libvirt", "hypervisor": "testdrv", "spec": {}},
        {"name": "on", "backend": "libvirt", "hypervisor": "nodefile", "spec": {}},
        {"name": "off", "backend": "libvirt", "hypervisor": "nodefile", "spec": {}},
        {"name": "held", "backend": "libvirt", "hypervisor": "nodefile", "spec": {}},
        {"name": "k1", "backend": "libvirt", "hypervisor": "nodaemon", "spec": {}},
        {"name": "k2", "backend": "libvirt", "hypervisor": "hung", "spec": {}},
        {"name": "k3", "backend": "libvirt", "hypervisor": "hung", "spec": {}},
        {"name": "free", "backend": "libvirt", "hypervisor": "unlisted", "spec": {}},
    ])
    cache_dir = tmp_path / "cache"
    cfg = tmp_path / "live.fleet.yml"
    cfg.write_text(yaml.safe_dump({
        "plugin": "vman.lifecycle.fleet", "store": url,
        "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(cache_dir), "cache_timeout": 3600,
        "live_state": {
            "testdrv": {"backend": "libvirt", "uri": "test:///default"},
            "nodefile": {"backend": "libvirt", "uri": f"test://{node}"},
            "nodaemon": {"backend": "libvirt", "uri": f"qemu+unix:///system?socket={tmp_path}/none.sock"},
            "hung": {"backend": "libvirt", "uri": f"qemu+unix:///system?socket={silent_socket}",
                     "timeout": 3},
        }}))
    for run in ("miss", "hit"):
        data, stderr, seconds = _inventory(cfg)
        assert _power(data) == {"test": "running", "ghost": "absent", "on": "running", "off": "stopped",
                                "held": "paused", "k1": "unknown", "k2": "unknown", "k3": "unknown",
                                "free": None}, run
        assert _hosts(data, "power_running") == {"test", "on"}
        assert _hosts(data, "power_stopped") == {"off"} and _hosts(data, "power_paused") == {"held"}
        assert _hosts(data, "power_absent") == {"ghost"}
        assert _hosts(data, "power_unknown") == {"k1", "k2", "k3"}
        flat = " ".join(stderr.split())
        assert _warnings(stderr) == 2, stderr                   # one per hypervisor, not per VM
        assert "hypervisor 'nodaemon' could not be asked" in flat and "none.sock" in flat
        assert "hypervisor 'hung' could not be asked for the live power state (no answer within 3 s)" in flat
        assert seconds < 60, seconds        # the hung hypervisor did not hold the inventory
    # the cache holds the store data only: the state above was asked again on the hit
    [cache_file] = cache_dir.iterdir()
    assert "ghost" in cache_file.read_text() and "vman_power_state" not in cache_file.read_text()


LXC_NAMES = ("fleetlive-on", "fleetlive-off")


@pytest.fixture()
def lxc_guests(lxc_testbed):
    """Two overlayfs snapshots of the testbed's base container, one started."""
    lxc = LxcBackend(lxc_testbed["LXC_PATH"])
    for name in LXC_NAMES:
        if lxc.exists(name):             # leftovers of a killed run
            lxc.destroy(name)
    try:
        for name in LXC_NAMES:
            lxc.clone(lxc_testbed["BASE"], name, backing="overlayfs")
        lxc.start("fleetlive-on")
        yield lxc
    finally:
        for name in LXC_NAMES:
            if lxc.exists(name):
                lxc.destroy(name)


def test_lxc_running_stopped_absent_and_bad_lxc_path(lxc_guests, tmp_path):
    url = _store(tmp_path, [
        {"name": name, "org": "acme", "backend": "lxc", "hypervisor": "here", "spec": {}}
        for name in LXC_NAMES + ("fleetlive-gone",)] + [
        {"name": "c9", "backend": "lxc", "hypervisor": "badpath", "spec": {}}])
    cfg = tmp_path / "lxc.fleet.yml"
    cfg.write_text(yaml.safe_dump({
        "plugin": "vman.lifecycle.fleet", "store": url,
        "live_state": {"here": {"backend": "lxc", "lxc_path": lxc_guests.lxcpath},
                       "badpath": {"backend": "lxc", "lxc_path": str(tmp_path / "nope")}}}))
    data, stderr, dummy = _inventory(cfg)
    assert _power(data) == {"acme-fleetlive-on": "running", "acme-fleetlive-off": "stopped",
                            "acme-fleetlive-gone": "absent", "c9": "unknown"}
    assert _hosts(data, "power_running") == {"acme-fleetlive-on"}
    assert _hosts(data, "power_stopped") == {"acme-fleetlive-off"}
    assert _warnings(stderr) == 1 and "hypervisor 'badpath'" in " ".join(stderr.split())
    # the state is live: stop the running one and ask again
    lxc_guests.stop("fleetlive-on", timeout=10)
    data, stderr, dummy = _inventory(cfg)
    assert _power(data)["acme-fleetlive-on"] == "stopped"
