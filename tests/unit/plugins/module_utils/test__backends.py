# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_backends without a hypervisor: the Xen backend over FakeXl (an in-memory stand-in for the
xl toolstack, named as such; the real xl run is tests/testbed/test_vm_reconcile_xen_real.py),
the factory, and the LXC boot-id helper. Real LXC: tests/unit/plugins/modules/test_vm_reconcile_real.py."""

from __future__ import annotations

import os

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _backends as be
from ansible_collections.vman.lifecycle.plugins.module_utils import _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


class FakeXl:
    """Domains in a dict; create reads the name from the config file like xl does."""

    def __init__(self):
        self.domains, self.calls, self.next_id = {}, [], 1

    def list(self):
        return {}

    def domid(self, name):
        return self.domains.get(name)

    def create(self, path, dry_run=False):
        self.calls.append(("create", path))
        with open(path, encoding="utf-8") as handle:
            name = _xl.parse(handle.read())["name"]
        self.domains[name] = self.next_id
        self.next_id += 1

    def shutdown(self, name, timeout=300, poll=1.0):
        self.calls.append(("shutdown", name))
        self.domains.pop(name, None)
        return "shutdown"


SPEC = {"memory": 128, "vcpus": 1, "kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img",
        "cmdline": "console=hvc0",
        "os": {"type": "busybox", "version": "1"},
        "interfaces": [{"ip": "10.200.0.31/24", "mac": "00:16:3e:00:03:31", "bridge": "xenbr0"}]}


def test_xen_backend_define_start_facts_stop_delete(tmp_path):
    xl = FakeXl()
    backend = be.XenRequestBackend(str(tmp_path), org="req", toolstack=xl, host_kernel="6.1.0")
    assert backend.state("web-1") is None
    backend.define("web-1", dict(SPEC, state="running", org="ignored"))
    cfg = tmp_path / "req-web-1.cfg"
    assert cfg.exists() and backend.state("web-1") == be.STOPPED and xl.calls == []
    backend.start("web-1", SPEC)
    assert backend.state("web-1") == be.RUNNING and xl.domains == {"req-web-1": 1}
    facts = backend.facts("web-1")
    assert facts["addresses"] == ["10.200.0.31"] and facts["boot_id"].endswith(":1")
    backend.start("web-1", SPEC)                       # running: nothing
    assert [c[0] for c in xl.calls] == ["create"]
    backend.stop("web-1")
    backend.start("web-1")                             # from the config on disk
    assert backend.facts("web-1")["boot_id"].endswith(":2")
    assert backend.read_marker("web-1") is None        # no way into a Xen guest
    backend.delete("web-1", keep_storage=False)
    assert backend.state("web-1") is None and not cfg.exists()


def test_factory_and_unimplemented_kinds():
    assert isinstance(be.make_backend("xen", {"config_path": "/nonexistent"}), be.XenRequestBackend)
    with pytest.raises(ValidationError, match="no backend for this kind yet"):
        be.make_backend("libvirt", {})
    with pytest.raises(ValidationError, match="must be one of"):
        be.make_backend("vmware", {})


def test_lxc_boot_id_parts_come_from_proc():
    start = be._proc_starttime(os.getpid())
    assert start.isdigit()
    assert be._proc_starttime(os.getpid()) == start     # stable for one process
    assert len(be._host_boot_id()) >= 8


def test_lxc_backend_on_an_empty_lxcpath(tmp_path):
    backend = be.LxcRequestBackend(str(tmp_path / "lxc"), str(tmp_path / "settings"),
                                   host_id="t.example")
    assert backend.state("web-1") is None
    backend.delete("web-1", keep_storage=False)        # nothing there: nothing to do
