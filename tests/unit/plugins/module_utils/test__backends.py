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
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError


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


def test_registry_is_the_one_place_a_kind_is_chosen():
    assert be.backend_for("xen") is be.XenGuest and be.backend_for("lxc") is be.LxcGuest
    assert be.backend_for("libvirt") is be.LibvirtGuest
    assert isinstance(be.make_backend("xen", {"config_path": "/nonexistent"}), be.XenGuest)
    libvirt_backend = be.make_backend("libvirt", {"uri": "test:///default"})
    assert isinstance(libvirt_backend, be.LibvirtGuest) and libvirt_backend.uri == "test:///default"
    for kind in ("vmware", None, ["lxc"]):
        with pytest.raises(ValidationError, match="must be one of lxc, xen, libvirt"):
            be.backend_for(kind)
    with pytest.raises(ValidationError, match="unknown option") as err:
        be.make_backend("lxc", {"lxc_path": "/x", "uri": "qemu:///system"})
    assert err.value.field == "uri"
    for cls in be.BACKENDS.values():
        assert issubclass(cls, be.GuestBackend) and be.backend_for(cls.kind) is cls


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


def test_lxc_states_three_lxc_ls_runs_whatever_the_number_fake_lxc_ls(tmp_path):
    """lxc-ls answered by fake_executor (a stand-in, named as such); real: make real-lxc."""
    from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result
    calls = []

    def fake_executor(argv, **kwargs):         # a stand-in for test/lxc-ls, named as such
        calls.append(([os.path.basename(argv[0])] + argv[1:], kwargs["timeout"]))
        if "--frozen" in argv:
            out = "c-frz\n"
        elif "--running" in argv:
            out = "c-run\nc-frz\n"
        else:
            out = "c-run\nc-off\nc-frz\n"
        return Result(argv, 0, out, "")

    reader = be.LxcGuest.reader({"lxc_path": str(tmp_path)}, executor=fake_executor, timeout=7)
    names = ["c-run", "c-off", "c-frz"] + [f"gone{i}" for i in range(50)]
    got = reader.states(names)
    assert got["c-run"] == be.RUNNING and got["c-off"] == be.STOPPED and got["gone7"] is None
    assert got["c-frz"] == be.SUSPENDED
    assert calls == [(["test", "-d", str(tmp_path)], 7), (["lxc-ls", "-P", str(tmp_path), "-1"], 7),
                     (["lxc-ls", "-P", str(tmp_path), "-1", "--running"], 7),
                     (["lxc-ls", "-P", str(tmp_path), "-1", "--frozen"], 7)]
    assert isinstance(be.make_state_reader("lxc", {"lxc_path": str(tmp_path)}, timeout=7), be.LxcGuest)
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
    assert isinstance(reader, be.LibvirtGuest) and reader.uri == "test:///default" and reader.readonly
    with pytest.raises(ValidationError, match="must be one of"):
        be.make_state_reader("vmware", {})


# ---- Xen: the argv/unit plans over fakes (the real xl and vm@ units: the Xen testbed) ------

class FakeSavingXl(FakeXl):
    """FakeXl with xl save/restore/info (a stand-in for XlToolstack, named as such): save
    writes the image file and removes the domain, restore reads the name back from it."""

    def save(self, name, path):
        self.calls.append(("save", name, path))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(name)
        self.domains.pop(name)

    def restore(self, path):
        self.calls.append(("restore", path))
        with open(path, encoding="utf-8") as handle:
            self.domains[handle.read()] = self.next_id
        self.next_id += 1

    def info(self):
        return {"nr_cpus": "4", "total_memory": "8191", "xen_version": "4.17"}


class FakeSystemctl:
    """systemctl stand-in (a fake, named as such): vm@X.service start/stop runs/stops domain X
    in the FakeXl, as the real unit's ExecStart/ExecStop do."""

    def __init__(self, xl):
        self.xl, self.calls, self.enabled = xl, [], set()

    def _domain(self, unit):
        return unit[len("vm@"):-len(".service")]

    def start(self, unit, timeout=None):
        self.calls.append(("start", unit))
        self.xl.domains[self._domain(unit)] = self.xl.next_id
        self.xl.next_id += 1

    def stop(self, unit, timeout=None):
        self.calls.append(("stop", unit, timeout))
        self.xl.domains.pop(self._domain(unit), None)

    def is_enabled(self, unit):
        return unit in self.enabled

    def enable(self, unit):
        self.calls.append(("enable", unit))
        self.enabled.add(unit)

    def disable(self, unit):
        self.calls.append(("disable", unit))
        self.enabled.discard(unit)


class FakeInstaller:
    """UnitInstaller stand-in (a fake): counts apply() calls."""

    def __init__(self):
        self.applied = 0

    def apply(self):
        self.applied += 1
        return {"changed": self.applied == 1}, []


def test_xen_manager_auto_uses_the_units_only_where_the_host_has_them(tmp_path):
    units = tmp_path / "units"
    units.mkdir()

    def make(booted):
        return be.XenGuest(str(tmp_path), manager="auto", unit_path=str(units), toolstack=FakeXl(),
                           booted=lambda: booted)
    assert make(True).manager == "xl"                 # systemd, but no vm@.service
    (units / "vm@.service").write_text("[Service]\nExecStart=/usr/sbin/xl create /etc/xen/other/%i.cfg\n")
    assert make(True).manager == "xl"                 # units of another config directory
    (units / "vm@.service").write_text(f"[Service]\nExecStart=/usr/sbin/xl create {tmp_path}/%i.cfg\n")
    assert make(True).manager == "systemd" and make(False).manager == "xl"
    with pytest.raises(ValidationError, match="must be one of auto, systemd, xl"):
        be.XenGuest(str(tmp_path), manager="libvirt")
    assert be.make_backend("xen", {"manager": "systemd"}).manager == "systemd"
    # the lifecycle's install keys are accepted (they are vm_rootfs's), others are not
    be.make_backend("xen", {"image": "/srv/root.tar", "prefix": 24})
    with pytest.raises(ValidationError, match="unknown option"):
        be.make_backend("xen", {"uri": "qemu:///system"})


def test_xen_under_units_plan_fake_xl_and_fake_systemctl(tmp_path):
    """manager systemd: units installed once, start/stop through vm@<org>-<name>.service,
    the unit enabled (auto_boot) and disabled on delete; suspend is refused clearly."""
    xl = FakeSavingXl()
    ctl, installer = FakeSystemctl(xl), FakeInstaller()
    backend = be.XenGuest(str(tmp_path), org="acme", toolstack=xl, systemctl=ctl, manager="systemd",
                          installer=installer, host_kernel="6.1.0", shutdown_timeout=45)
    assert backend.define("web", SPEC) is True
    assert installer.applied == 1 and (tmp_path / "acme-web.cfg").exists()
    assert backend.state("web") == be.STOPPED
    backend.start("web", SPEC)
    backend.start("web")                               # runs: nothing
    assert backend.state("web") == be.RUNNING and installer.applied == 1
    assert ("start", "vm@acme-web.service") in ctl.calls and "vm@acme-web.service" in ctl.enabled
    assert not [c for c in xl.calls if c[0] == "create"]     # never bare xl under units
    backend.stop("web", timeout=10)
    assert ("stop", "vm@acme-web.service", 40) in ctl.calls and backend.state("web") == be.STOPPED
    backend.start("web")                               # no spec: the unit again
    assert ctl.calls.count(("start", "vm@acme-web.service")) == 2
    with pytest.raises(be.NotSupported, match="suspend is not supported by the xen backend: the vm@ units"):
        backend.suspend("web")
    with pytest.raises(be.NotSupported, match="snapshot is not supported by the xen backend"):
        backend.snapshot("web", "s1")
    backend.delete("web", keep_storage=True)
    assert ("disable", "vm@acme-web.service") in ctl.calls
    assert backend.state("web") is None and not (tmp_path / "acme-web.cfg").exists()


def test_xen_xl_suspend_resume_once_fake_xl(tmp_path):
    """manager xl: xl save to <save_dir>/<domain>.save, state suspended, xl restore once (the
    image is removed), a second image of a running domain is refused."""
    xl = FakeSavingXl()
    backend = be.XenGuest(str(tmp_path / "cfg"), org="acme", toolstack=xl, manager="xl",
                          save_dir=str(tmp_path / "save"), host_kernel="6.1.0")
    (tmp_path / "cfg").mkdir()
    backend.start("db", SPEC)
    backend.suspend("db")
    image = tmp_path / "save" / "acme-db.save"
    assert image.exists() and backend.state("db") == be.SUSPENDED
    assert backend.states(["db"]) == {"db": be.SUSPENDED}
    backend.suspend("db")                              # suspended already: nothing
    with pytest.raises(StateError, match="suspended"):
        backend.start("db")                            # a fresh boot would orphan the image
    backend.resume("db")
    assert backend.state("db") == be.RUNNING and not image.exists()
    assert [c[0] for c in xl.calls] == ["create", "save", "restore"]
    backend.resume("db")                               # running, no image: nothing
    image.write_text("acme-db")                        # a stale image of the running domain
    with pytest.raises(StateError, match="refusing to restore it a second time"):
        backend.resume("db")
    assert backend.capacity() == {"vcpus": 4, "memory_mib": 8191}


def test_xen_delete_without_keep_storage_removes_the_nfs_root_fake_xl(tmp_path):
    """The purge: config, saved image and the NFS root directory go; a symlink placed where
    the root was is removed, never followed."""
    xl = FakeSavingXl()
    nfs = tmp_path / "nfs"
    backend = be.XenGuest(str(tmp_path), org="acme", toolstack=xl, manager="xl", host_kernel="6.1.0",
                          defaults={"nfsroot_base": f"10.0.0.1:{nfs}", "storage_type": "nfs"})
    netconfs = {"vm": {"ipv4": "10.200.0.40"}}
    spec = {k: v for k, v in SPEC.items() if k != "interfaces"}
    backend.define("app", spec, netconfs)
    cfg_text = (tmp_path / "acme-app.cfg").read_text()
    assert "10.200.0.40" in cfg_text                   # the netconf's address filled in
    root = nfs / "acme" / "app-root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("app\n")
    backend.delete("app", keep_storage=True, spec=spec, netconfs=netconfs)
    assert root.exists() and not (tmp_path / "acme-app.cfg").exists()
    backend.define("app", spec, netconfs)
    backend.delete("app", keep_storage=False, spec=spec, netconfs=netconfs)
    assert not root.exists() and backend.state("app") is None
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    root.symlink_to(outside)
    backend.delete("app", keep_storage=False, spec=spec, netconfs=netconfs)
    assert not os.path.lexists(root) and (outside / "keep").exists()


# ---- libvirt through libvirt's own test driver: a fake hypervisor (API paths only; the real
# qemu:///system run is tests/unit/plugins/modules/test_guest_real.py) -----------------------

FAKE_DOMAIN_XML = """<domain type='test'><name>template</name>
<uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"""


def test_libvirt_verbs_on_the_fake_test_driver():
    """libvirt's test:///default driver (a fake hypervisor inside libvirt, named as such):
    define renames the XML and drops its uuid, start/stop, managed-save suspend and resume,
    snapshot and revert, delete; every verb idempotent."""
    pytest.importorskip("libvirt")
    backend = be.LibvirtGuest("test:///default", stop_timeout=0)
    try:
        name = f"vman-bk-{os.getpid()}"
        assert backend.state(name) is None
        assert backend.define(name, {"xml": FAKE_DOMAIN_XML}) is True
        assert backend.define(name, {"xml": FAKE_DOMAIN_XML}) is False
        assert backend.state(name) == be.STOPPED and backend.facts(name)["boot_id"] is None
        backend.start(name)
        backend.start(name)
        assert backend.state(name) == be.RUNNING
        boot = backend.facts(name)["boot_id"]
        backend.suspend(name)
        backend.suspend(name)
        assert backend.state(name) == be.SUSPENDED and backend.states([name, "nope"]) == {
            name: be.SUSPENDED, "nope": None}
        backend.resume(name)
        assert backend.state(name) == be.RUNNING and backend.facts(name)["boot_id"] != boot
        assert backend.snapshot(name, "s1") is True and backend.snapshot(name, "s1") is False
        backend.stop(name)
        assert backend.state(name) == be.STOPPED
        assert backend.revert(name, "s1") == be.RUNNING
        with pytest.raises(StateError, match="cannot suspend a domain that is stopped"):
            backend.stop(name)
            backend.suspend(name)
        cap = backend.capacity()
        assert cap["vcpus"] >= 1 and cap["memory_mib"] > 0
        backend.delete(name, keep_storage=False)
        backend.delete(name, keep_storage=False)
        assert backend.state(name) is None
        with pytest.raises(ValidationError, match="spec.xml"):
            backend.define(name, {})
        with pytest.raises(ValidationError, match="root element must be <domain>"):
            backend.define(name, {"xml": "<network/>"})
    finally:
        backend.close()
