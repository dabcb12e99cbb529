# -*- coding: utf-8 -*-
"""Tests of _xen_vman: the xen_vman role's decisions (defaults, lazy bridge, plan, xl.conf)."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _xen_vman
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

ROLE_VARS = {
    "xen_vman_nfsroot_base": "10.200.0.1:/srv/nfs",
    "xen_vman_iscsi_server": "10.200.0.1",
    "xen_vman_iscsi_base_wwn": "iqn.2026-01.test.vman",
    "xen_vman_default_memory": 256,
    "xen_vman_default_gateway": None,
    "xen_vman_default_additonal_xen_options": [["on_crash", "destroy"], {"localtime": 1}],
    "xen_vman_default_additional_xen_options": {"on_crash": "preserve"},
    "xen_vman_default_network_script": "vif-bridge",
    "xen_vman_default_network_bridge": "xenbr0",
    "xen_vman_public_keys": ["ssh-ed25519 AAAA x"],
}


def vm(name, **over):
    out = {"org": "t", "name": name, "os": {"type": "debian", "version": "12"},
           # one address per name: two VMs of a host may not share one
           "interfaces": [{"ip": f"10.200.{len(name)}.{sum(map(ord, name)) % 250 + 2}"}]}
    out.update(over)
    return out


def test_role_defaults_maps_names_and_merges_both_spellings():
    d = _xen_vman.role_defaults(ROLE_VARS)
    assert d["memory"] == 256 and d["nfsroot_base"] == "10.200.0.1:/srv/nfs"
    assert "gateway" not in d                       # None: the module default applies
    assert "public_keys" not in d and "network_bridge" not in d
    assert d["additional_xen_options"] == {"on_crash": "preserve", "localtime": 1}
    assert d["network_script"] == "vif-bridge"


def test_xen_options_forms():
    assert _xen_vman.xen_options([], "x") == {}
    assert _xen_vman.xen_options({"a": 1}, "x") == {"a": 1}
    with pytest.raises(ValidationError, match=r"x\[0\]"):
        _xen_vman.xen_options([["a", 1, 2]], "x")
    with pytest.raises(ValidationError):
        _xen_vman.xen_options("a=1", "x")


def test_lazy_bridges_from_loop_results():
    results = [
        {"vm": vm("a"), "ansible_facts": {"__xen_vman_lazy_bridge": "br-t"}},
        {"vm": vm("b"), "skipped": True},
        {"vm": vm("c"), "ansible_facts": {"__xen_vman_lazy_bridge": ""}},
    ]
    assert _xen_vman.lazy_bridges(results) == {"t-a": "br-t"}
    assert _xen_vman.lazy_bridges(None) == {}
    with pytest.raises(ValidationError, match="t-a"):
        _xen_vman.lazy_bridges([{"vm": vm("a"), "ansible_facts": {"__xen_vman_lazy_bridge": ["x"]}}])


def test_plan_new_vms_install_and_start():
    defaults = _xen_vman.role_defaults(ROLE_VARS)
    vms = [vm("old"), vm("new", state="running"), vm("manual", auto_install=False),
           vm("again", reinstall=True, boot_after_creation=False),
           vm("disk", storage_type="iscsi"), vm("gone", state="absent")]
    plan = _xen_vman.plan(vms, defaults, [{"path": "/etc/xen/vms/t-old.cfg"}, "/etc/xen/vms/t-again.cfg"])
    assert plan["new"] == ["t-new", "t-manual", "t-disk", "t-gone"]
    assert [v["name"] for v in plan["install_vms"]] == ["new", "again", "disk"]
    assert plan["stop"] == ["t-again"]
    assert [v["name"] for v in plan["start_vms"]] == ["new", "disk"]
    # a VM still to be installed is not started by the first xen_domain call
    new = next(v for v in plan["domain_vms"] if v["name"] == "new")
    assert new["state"] == "present" and vms[1]["state"] == "running"
    assert plan["install_vms"][2]["root_path"] == "/mnt/vms/t-disk"
    assert plan["mount"] == ["t-disk"]
    assert [v["name"] for v in plan["iscsi_vms"]] == ["disk"]
    markers = {m["name"]: m["content"] for m in plan["markers"]}
    # every root vm_mount@ can mount has its .root file (NFS too); the absent VM none
    assert sorted(markers) == ["t-again.root", "t-disk.iscsi", "t-disk.root", "t-manual.root",
                               "t-new.root", "t-old.root"]
    assert markers["t-old.root"] == ("VMAN_ROOT_SOURCE=10.200.0.1:/srv/nfs/t/old-root\n"
                                     "VMAN_ROOT_FSTYPE=nfs\n")
    assert "VMAN_ISCSI_TARGET=iqn.2026-01.test.vman:t-disk\nVMAN_ISCSI_PORTAL=10.200.0.1:3260\n" == \
        markers["t-disk.iscsi"]
    assert markers["t-disk.root"].startswith(
        "VMAN_ROOT_SOURCE=/dev/disk/by-path/ip-10.200.0.1:3260-iscsi-iqn.2026-01.test.vman:t-disk-lun-0\n")
    assert plan["packages"] == ["debootstrap", "python3-netaddr", "dracut", "dracut-network", "open-iscsi"]


def test_plan_second_run_does_nothing():
    vms = [vm("a"), vm("b")]
    plan = _xen_vman.plan(vms, _xen_vman.role_defaults(ROLE_VARS), ["t-a.cfg", "t-b.cfg"],
                          build_initrds=False)
    assert plan["new"] == [] and plan["install_vms"] == [] and plan["start_vms"] == []
    assert plan["packages"] == ["debootstrap", "python3-netaddr"]


def test_plan_config_without_an_installed_root_is_still_new():
    """A run that wrote t-a.cfg but failed before the install left t-a.install-pending."""
    vms = [vm("a"), vm("b"), vm("c")]
    plan = _xen_vman.plan(vms, _xen_vman.role_defaults(ROLE_VARS),
                          ["/etc/xen/vms/t-a.cfg", "/etc/xen/vms/t-a.install-pending", "/etc/xen/vms/t-b.cfg"],
                          build_initrds=False)
    assert plan["new"] == ["t-a", "t-c"] and plan["pending"] == ["t-a", "t-c"]
    assert [v["name"] for v in plan["install_vms"]] == ["a", "c"]
    # auto_install false: new, but nothing to install, so nothing pending
    plan = _xen_vman.plan([vm("d", auto_install=False)], _xen_vman.role_defaults(ROLE_VARS), [],
                          build_initrds=False)
    assert plan["new"] == ["t-d"] and plan["pending"] == [] and plan["install_vms"] == []


def test_plan_lazy_bridge_only_where_no_bridge():
    vms = [vm("a", interfaces=[{"ip": "10.200.0.5"}, {"bridge": "own"}]), vm("b")]
    plan = _xen_vman.plan(vms, _xen_vman.role_defaults(ROLE_VARS), [], lazy={"t-a": "br-a"})
    assert [i.get("bridge") for i in plan["domain_vms"][0]["interfaces"]] == ["br-a", "own"]
    assert "bridge" not in plan["domain_vms"][1]["interfaces"][0]
    assert "bridge" not in vms[0]["interfaces"][0]      # the input is not modified


def test_plan_root_path_kept_for_install_only():
    vms = [vm("a", root_path="/data/roots/a")]
    plan = _xen_vman.plan(vms, _xen_vman.role_defaults(ROLE_VARS), [])
    assert "root_path" not in plan["domain_vms"][0]
    assert plan["install_vms"][0]["root_path"] == "/data/roots/a"


def test_plan_names_bad_vm():
    with pytest.raises(ValidationError, match="t-bad"):
        _xen_vman.plan([vm("bad", memory="lots")], _xen_vman.role_defaults(ROLE_VARS), [])


def test_xl_conf_lines():
    lines = _xen_vman.xl_conf_lines(ROLE_VARS)
    assert [i["line"] for i in lines] == ['vif.default.script="vif-bridge"', 'vif.default.bridge="xenbr0"']
    assert _xen_vman.xl_conf_lines({"xen_vman_default_network_script": "vif-p2p"})[0]["regexp"] == \
        r"^#?\s*vif\.default\.script\s*="
    with pytest.raises(ValidationError, match="network_bridge"):
        _xen_vman.xl_conf_lines({"xen_vman_default_network_bridge": 'x"; evil'})


# --- lifecycle_vm: the Xen entry of a VM of the lifecycle store -------------------------------

LC_DEFAULTS = {"nfsroot_base": "10.200.0.1:/srv/vman-lifecycle", "gateway": "10.200.0.1",
               "storage_type": "nfs"}
LC_SPEC = {"memory": 256, "vcpus": 1, "os": {"type": "debian", "version": "12"}}
LC_NAME = "0f6c2a52-5d0e-4c39-9d0b-3a1f6a3e9b10"


def test_lifecycle_vm_interface_from_the_vm_netconf_and_nfs_root():
    out = _xen_vman.lifecycle_vm(LC_SPEC, "demo", LC_NAME, {"vm": {"ipv4": "10.200.0.40"}},
                                 LC_DEFAULTS, 24)
    assert out["vm"]["org"] == "demo" and out["vm"]["name"] == LC_NAME
    assert out["vm"]["memory"] == 256
    (iface,) = out["vm"]["interfaces"]
    assert iface["ip"] == "10.200.0.40/24"
    assert iface["mac"] == _xen_vman.lifecycle_mac(f"demo-{LC_NAME}")
    assert out["root_path"] == f"/srv/vman-lifecycle/demo/{LC_NAME}-root"
    # the stored spec is not changed in place
    assert "interfaces" not in LC_SPEC and "org" not in LC_SPEC


def test_lifecycle_mac_is_stable_xen_and_differs_per_domain():
    mac = _xen_vman.lifecycle_mac("demo-a")
    assert mac == _xen_vman.lifecycle_mac("demo-a")
    assert mac != _xen_vman.lifecycle_mac("demo-b")
    assert mac.startswith("00:16:3e:") and int(mac.split(":")[3], 16) < 0x80


def test_lifecycle_vm_keeps_interfaces_of_the_spec():
    spec = dict(LC_SPEC, interfaces=[{"ip": "10.9.0.5/16", "mac": "00:16:3e:00:00:01"}])
    out = _xen_vman.lifecycle_vm(spec, "demo", "x1", {}, LC_DEFAULTS)
    assert out["vm"]["interfaces"] == spec["interfaces"]


def test_lifecycle_vm_iscsi_root_has_no_root_path():
    defaults = dict(LC_DEFAULTS, storage_type="iscsi", iscsi_server="10.200.0.1",
                    iscsi_base_wwn="iqn.2026-11.test")
    out = _xen_vman.lifecycle_vm(LC_SPEC, "demo", "x1", {"vm": {"ipv4": "10.200.0.41"}}, defaults)
    assert out["root_path"] is None


@pytest.mark.parametrize("netconfs", [{}, {"vm": {"ipv4": None}}, None])
def test_lifecycle_vm_without_address_names_the_field(netconfs):
    with pytest.raises(ValidationError) as exc:
        _xen_vman.lifecycle_vm(LC_SPEC, "demo", "x1", netconfs, LC_DEFAULTS)
    assert "demo-x1" in str(exc.value) and "netconfs.vm.ipv4" in str(exc.value)


@pytest.mark.parametrize("prefix", [0, 33, "24", True])
def test_lifecycle_vm_bad_prefix(prefix):
    with pytest.raises(ValidationError) as exc:
        _xen_vman.lifecycle_vm(LC_SPEC, "demo", "x1", {"vm": {"ipv4": "10.0.0.1"}}, LC_DEFAULTS, prefix)
    assert "prefix" in str(exc.value)


def test_lifecycle_vm_spec_must_be_a_dict():
    with pytest.raises(ValidationError) as exc:
        _xen_vman.lifecycle_vm("small", "demo", "x1", {}, LC_DEFAULTS)
    assert "spec" in str(exc.value) and "small" in str(exc.value)


# ---- taking over a host of the original role --------------------------------------------

ORIGINAL = ["/etc/systemd/system/xen_vman_global_preparation.service",
            "/usr/local/bin/xen_vman_global_preparation.sh", "/etc/xen/scripts/mount_vm.sh",
            "/etc/xen/vms/.iscsi"]


def test_legacy_plan_removes_the_original_units_scripts_and_markers():
    defaults = _xen_vman.role_defaults(ROLE_VARS)
    vms = [vm("web", storage_type="iscsi"), vm("nfs")]
    found = ORIGINAL + ["/etc/xen/vms/.iscsi/t-web", "/etc/xen/vms/.iscsi/t-nfs",
                        "/etc/xen/vms/.iscsi/t-gone"]
    out = _xen_vman.legacy_plan(vms, defaults, "/etc/xen/vms",
                                ["/etc/xen/vms/t-web.cfg", "/etc/xen/vms/t-nfs.cfg"], found)
    assert out["disable"] == ["xen_vman_global_preparation.service"]
    assert out["remove"] == ORIGINAL[:3] + ["/etc/xen/vms/.iscsi/t-gone", "/etc/xen/vms/.iscsi/t-nfs",
                                            "/etc/xen/vms/.iscsi/t-web", "/etc/xen/vms/.iscsi"]
    # listed VMs get their markers from plan(); t-gone has no config: nothing to carry over
    assert out["markers"] == []


def test_legacy_plan_carries_an_unlisted_iscsi_vm_over():
    """A VM the original marked as iSCSI, still configured but not in xen_vman_vms, keeps
    logging in to its root: its marker becomes this role's .iscsi and .root files."""
    defaults = _xen_vman.role_defaults(dict(ROLE_VARS, xen_vman_iscsi_server="10.200.0.1:3261"))
    out = _xen_vman.legacy_plan([vm("web")], defaults, "/etc/xen/vms/",
                                [{"path": "/etc/xen/vms/stuvus-db.cfg"}],
                                [{"path": "/etc/xen/vms/.iscsi/stuvus-db", "isreg": True}])
    assert {m["name"]: m["content"] for m in out["markers"]} == {
        "stuvus-db.iscsi": "VMAN_ISCSI_TARGET=iqn.2026-01.test.vman:stuvus-db\n"
                           "VMAN_ISCSI_PORTAL=10.200.0.1:3261\n",
        "stuvus-db.root": "VMAN_ROOT_SOURCE=/dev/disk/by-path/ip-10.200.0.1:3261-iscsi-"
                          "iqn.2026-01.test.vman:stuvus-db-lun-0\nVMAN_ROOT_FSTYPE=ext4\n"}
    assert out["remove"] == ["/etc/xen/vms/.iscsi/stuvus-db"]     # the directory was not seen
    assert out["disable"] == []


def test_legacy_plan_refuses_to_leave_an_unlisted_iscsi_vm_without_its_root():
    defaults = _xen_vman.role_defaults({k: v for k, v in ROLE_VARS.items()
                                        if k != "xen_vman_iscsi_server"})
    with pytest.raises(ValidationError, match="stuvus-db.*xen_vman_iscsi_server"):
        _xen_vman.legacy_plan([], defaults, "/etc/xen/vms", ["/etc/xen/vms/stuvus-db.cfg"],
                              ["/etc/xen/vms/.iscsi/stuvus-db"])
    with pytest.raises(ValidationError, match="not <org>-<name>"):
        _xen_vman.legacy_plan([], _xen_vman.role_defaults(ROLE_VARS), "/etc/xen/vms",
                              ["/etc/xen/vms/stuvusdb.cfg"], ["/etc/xen/vms/.iscsi/stuvusdb"])


def test_legacy_plan_keeps_a_directory_with_foreign_content():
    out = _xen_vman.legacy_plan([], _xen_vman.role_defaults(ROLE_VARS), "/etc/xen/vms", [],
                                [{"item": "/etc/xen/vms/.iscsi", "stat": {"exists": True}},
                                 {"path": "/etc/xen/vms/.iscsi/notes", "isreg": False}])
    assert out == {"disable": [], "remove": [], "markers": []}


def test_legacy_plan_on_a_host_without_the_original_is_empty():
    assert _xen_vman.legacy_plan([vm("a")], _xen_vman.role_defaults(ROLE_VARS), "/etc/xen/vms",
                                 ["/etc/xen/vms/t-a.cfg"],
                                 [{"item": p, "stat": {"exists": False}} for p in ORIGINAL]) == {
        "disable": [], "remove": [], "markers": []}
