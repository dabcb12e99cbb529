# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_backends without a hypervisor: the Xen backend over FakeXl (an in-memory stand-in for the
xl toolstack, named as such; the real xl run is tests/testbed/test_vm_reconcile_xen_real.py),
the factory, and the LXC boot-id helper. Real LXC: tests/unit/plugins/modules/test_vm_reconcile_real.py."""

from __future__ import annotations

import json
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


class FakeListingXl:
    """Running domains for ``xl list -l``; counts the calls (a stand-in for XlToolstack)."""

    def __init__(self, running):
        self.running, self.lists = running, 0

    def list(self):
        self.lists += 1
        return {name: object() for name in self.running}


def test_xen_states_one_xl_list_for_all_domains(tmp_path):
    (tmp_path / "acme-off.cfg").write_text('name = "acme-off"\n')
    xl = FakeListingXl(["acme-on", "other-on"])
    reader = be.XenRequestBackend(str(tmp_path), org=None, toolstack=xl, host_kernel="6.1.0")
    assert reader.states(["acme-on", "acme-off", "acme-gone"]) == {
        "acme-on": be.RUNNING, "acme-off": be.STOPPED, "acme-gone": None}
    assert xl.lists == 1
    # the reconciler's org-prefixed names are unchanged
    assert be.XenRequestBackend(str(tmp_path), org="acme", toolstack=xl).states(["off"]) == {"off": be.STOPPED}


def test_lxc_states_two_lxc_ls_runs_whatever_the_number(tmp_path):
    from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc
    from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result
    calls = []

    def fake_executor(argv, **kwargs):         # a stand-in for test/lxc-ls, named as such
        calls.append(([os.path.basename(argv[0])] + argv[1:], kwargs["timeout"]))
        out = "c-run\n" if "--running" in argv else "c-run\nc-off\n"
        return Result(argv, 0, out, "")

    reader = be.make_state_reader("lxc", {"lxc_path": str(tmp_path)}, timeout=7)
    reader.lxc = _lxc.LxcBackend(str(tmp_path), executor=fake_executor, timeout=7)
    names = ["c-run", "c-off"] + [f"gone{i}" for i in range(50)]
    got = reader.states(names)
    assert got["c-run"] == be.RUNNING and got["c-off"] == be.STOPPED and got["gone7"] is None
    assert calls == [(["test", "-d", str(tmp_path)], 7), (["lxc-ls", "-P", str(tmp_path), "-1"], 7),
                     (["lxc-ls", "-P", str(tmp_path), "-1", "--running"], 7)]
    missing = be.make_state_reader("lxc", {"lxc_path": str(tmp_path / "nope")})
    with pytest.raises(be.VmanError, match="is not a directory"):
        missing.states(["c-run"])


XL_LIST = json.dumps([{"domid": 0, "config": {"c_info": {"name": "Domain-0"}}},
                      {"domid": 7, "config": {"c_info": {"name": "acme-on"}, "b_info": {}}}])


def test_xen_reader_over_ssh_argv_and_states(monkeypatch):
    """The ssh executor's argv, with a stand-in for the local run (fake_run); real ssh and xl:
    tests/testbed/test_fleet_live_xen_real.py."""
    from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result
    seen = []

    def fake_run(argv, **kwargs):
        seen.append((argv, kwargs["timeout"]))
        out = XL_LIST if argv[-1] == "xl list -l" else "acme-on.cfg\nacme-off.cfg\nnotes.txt\n"
        return Result(argv, 0, out, "")

    monkeypatch.setattr(be, "run", fake_run)
    reader = be.make_state_reader("xen", {"config_path": "/srv/xen vms", "ssh": "root@dom0a",
                                          "ssh_args": ["-p", 2222]}, timeout=9)
    assert reader.states(["acme-on", "acme-off", "acme-gone"]) == {
        "acme-on": be.RUNNING, "acme-off": be.STOPPED, "acme-gone": None}
    prefix = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=9", "-p", "2222", "--", "root@dom0a"]
    assert seen == [(prefix + ["xl list -l"], 9), (prefix + ["ls -1A -- '/srv/xen vms'"], 9)]


@pytest.mark.parametrize("destination", ["", "-oProxyCommand=x", "root@h x", None])
def test_ssh_destination_refused(destination):
    with pytest.raises(ValidationError, match="ssh destination"):
        be.ssh_executor(destination)


def test_state_reader_factory():
    assert isinstance(be.make_state_reader("xen", {}), be.XenRequestBackend)
    assert be.make_state_reader("xen", {}).domain("acme-web1") == "acme-web1"
    reader = be.make_state_reader("libvirt", {"uri": "test:///default"})
    assert isinstance(reader, be.LibvirtStateReader) and reader.uri == "test:///default"
    with pytest.raises(ValidationError, match="must be one of"):
        be.make_state_reader("vmware", {})
