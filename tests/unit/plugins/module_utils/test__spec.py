# -*- coding: utf-8 -*-
"""Tests of _spec: README variables, defaults merging and validation errors."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

BASE = {"org": "stuvus", "name": "web01", "os": {"type": "debian", "version": "12"},
        "interfaces": [{"ip": "10.0.0.15"}]}
DEFAULTS = {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}


def vm(**over):
    out = dict(BASE)
    out.update(over)
    return out


def test_readme_defaults_apply():
    spec = _spec.normalize(vm(), DEFAULTS)
    assert (spec.memory, spec.vcpus, spec.cpu_str) == (1024, 2, "all,^1")
    assert spec.storage_type == "nfs" and spec.builder == "generic"
    assert spec.initrd == "/etc/xen/initrd.img" and spec.kernel == "/vmlinuz"
    assert spec.nameservers == ("8.8.8.8", "8.8.4.4")
    assert spec.auto_boot and spec.boot_after_creation and spec.auto_install
    assert not spec.reinstall and not spec.manual_root_disk
    assert (spec.spicehost, spec.spiceport, spec.max_usb_redirections) == ("0.0.0.0", 3100, 4)


def test_vm_value_wins_over_default():
    spec = _spec.normalize(vm(memory=4096, vcpus=4), dict(DEFAULTS, memory=2048, vcpus=1))
    assert (spec.memory, spec.vcpus) == (4096, 4)


def test_role_default_used_when_vm_silent():
    spec = _spec.normalize(vm(), dict(DEFAULTS, memory=2048, filesystem="xfs"))
    assert spec.memory == 2048 and spec.filesystem == "xfs"


def test_host_kernel_sets_default_kernel():
    assert _spec.normalize(vm(), DEFAULTS, host_kernel="6.1.0-9-amd64").kernel == "/boot/vmlinuz-6.1.0-9-amd64"
    assert _spec.normalize(vm(kernel="/boot/k"), DEFAULTS, host_kernel="6.1").kernel == "/boot/k"


def test_role_vars_map_to_defaults_keys():
    got = _spec.defaults_from_role_vars({
        "xen_vman_default_gateway": "10.0.0.1", "xen_vman_default_memory": 512,
        "xen_vman_nfsroot_base": "s:/x", "xen_vman_iscsi_server": "10.0.0.3",
        "xen_vman_default_additonal_xen_options": {"on_crash": "preserve"},
        "xen_vman_lazy_default_network_bridge": "br0", "other_var": 1})
    assert got == {"gateway": "10.0.0.1", "memory": 512, "nfsroot_base": "s:/x",
                   "iscsi_server": "10.0.0.3", "additional_xen_options": {"on_crash": "preserve"},
                   "lazy_network_bridge": "br0"}


def test_misspelled_additonal_default_accepted():
    spec = _spec.normalize(vm(), dict(DEFAULTS, additonal_xen_options={"on_crash": "preserve"}))
    assert spec.options == {"on_crash": "preserve"}


def test_additional_options_merge_vm_wins():
    spec = _spec.normalize(vm(additional_xen_options={"on_crash": "destroy", "usbdevice": ["tablet"]}),
                           dict(DEFAULTS, additional_xen_options={"on_crash": "preserve", "pae": True}))
    assert spec.options == {"on_crash": "destroy", "usbdevice": ("tablet",), "pae": 1}


def test_vifname_prefix_rule():
    spec = _spec.normalize(vm(interfaces=[{"ip": "10.0.0.15"}, {"vifname": "own0"}, {}]),
                           dict(DEFAULTS, vifname_prefix="web"))
    assert [i.vifname for i in spec.interfaces] == ["web.0", "own0", "web.2"]


def test_interface_defaults_bridge_script_xen_str_mtu():
    spec = _spec.normalize(vm(interfaces=[{"ip": "10.0.0.15"}, {"bridge": "br1", "xen_str": "rate=10Mb/s"}]),
                           dict(DEFAULTS, lazy_network_bridge="br0", network_script="vif-p2p",
                                xen_str="model=e1000", mtu=9000))
    first, second = spec.interfaces
    assert (first.bridge, first.script, first.xen_str, first.mtu) == ("br0", "vif-p2p", "model=e1000", 9000)
    assert (second.bridge, second.xen_str) == ("br1", "rate=10Mb/s")


def test_mac_canonical_and_cidr_ip():
    spec = _spec.normalize(vm(interfaces=[{"ip": "10.0.0.15/26", "mac": "00-16-3E-AA-BB-CC"}]), DEFAULTS)
    iface = spec.interfaces[0]
    assert (iface.ip, iface.prefixlen, iface.mac) == ("10.0.0.15", 26, "00:16:3e:aa:bb:cc")
    assert spec.primary_prefixlen == 26


@pytest.mark.parametrize("mac", ["00:14:22", "00-14-22", "12345", "0014.2201.0203",
                                 "00:14:22:01:02:03:04", "00:14-22:01:02:03", "00:14:22:01:02:3",
                                 "00:14:22:01:02:03\n", " 00:14:22:01:02:03"])
def test_mac_needs_six_octets(mac):
    with pytest.raises(ValidationError) as err:
        _spec.normalize(vm(interfaces=[{"ip": "10.0.0.15", "mac": mac}]), DEFAULTS)
    assert err.value.field == "interfaces[0].mac" and err.value.value == mac


def test_two_vms_of_one_host_may_not_share_a_mac_or_an_ip():
    one = vm(name="a", interfaces=[{"ip": "10.0.0.15", "mac": "00:16:3e:00:00:01"}])
    other = vm(name="b", interfaces=[{"ip": "10.0.0.16", "mac": "00-16-3E-00-00-01"}])
    with pytest.raises(ValidationError) as err:
        _spec.normalize_all([one, other], DEFAULTS)
    assert err.value.field == "interfaces.mac" and err.value.value == "00:16:3e:00:00:01"
    assert "stuvus-a" in str(err.value) and err.value.obj == "stuvus-b"
    same_ip = vm(name="c", interfaces=[{"ip": "10.0.0.17"}], connection_ip="10.0.0.15")
    with pytest.raises(ValidationError, match="also the IP of VM 'stuvus-a'"):
        _spec.normalize_all([one, same_ip], DEFAULTS)
    # one VM may name its own address twice (connection_ip = its interface's ip)
    own = vm(name="d", interfaces=[{"ip": "10.0.0.18"}], connection_ip="10.0.0.18")
    assert len(_spec.normalize_all([one, own], DEFAULTS)) == 2


def test_iscsi_server_as_host_port_like_the_original():
    defaults = dict(DEFAULTS, iscsi_server="10.0.0.3:3261", iscsi_base_wwn="iqn.2024-01.org.example")
    spec = _spec.normalize(vm(storage_type="iscsi"), defaults)
    assert spec.iscsi_server == "10.0.0.3:3261"
    for bad in ("10.0.0.3:", "10.0.0.3:0", "10.0.0.3:70000", "[fe80::1]junk"):
        with pytest.raises(ValidationError) as err:
            _spec.normalize(vm(storage_type="iscsi"), dict(defaults, iscsi_server=bad))
        assert err.value.field == "iscsi_server" and err.value.value == bad


def test_connection_ip_wins_for_primary():
    spec = _spec.normalize(vm(connection_ip="192.168.1.5/24"), DEFAULTS)
    assert spec.primary_ip == "192.168.1.5" and spec.primary_prefixlen == 24


def test_float_os_version_kept_as_text():
    assert _spec.normalize(vm(os={"type": "ubuntu", "version": 18.04}), DEFAULTS).os_version == "18.04"


@pytest.mark.parametrize("field,value,over", [
    ("org", "Bad Org", {"org": "Bad Org"}),
    ("name", "-x", {"name": "-x"}),
    ("memory", 0, {"memory": 0}),
    ("memory", "lots", {"memory": "lots"}),
    ("vcpus", True, {"vcpus": True}),
    ("storage_type", "ceph", {"storage_type": "ceph"}),
    ("builder", "pvh2", {"builder": "pvh2"}),
    ("interfaces[0].ip", "10.0.0.300", {"interfaces": [{"ip": "10.0.0.300"}]}),
    ("interfaces[0].mac", "01:00:5e:00:00:01", {"interfaces": [{"ip": "10.0.0.1", "mac": "01:00:5e:00:00:01"}]}),
    ("interfaces[0].mtu", 20, {"interfaces": [{"ip": "10.0.0.1", "mtu": 20}]}),
    ("interfaces[0].bridge", "br;rm", {"interfaces": [{"ip": "10.0.0.1", "bridge": "br;rm"}]}),
    ("interfaces[0].colour", "red", {"interfaces": [{"ip": "10.0.0.1", "colour": "red"}]}),
    ("kernel", "vmlinuz", {"kernel": "vmlinuz"}),
    ("cmdline", 'a"b', {"cmdline": 'a"b'}),
    ("max_usb_redirections", 5, {"max_usb_redirections": 5}),
    ("iscsi_lun", -1, {"iscsi_lun": -1}),
    ("spice", True, {"spice": True}),
    ("additional_xen_options", "Bad-Key", {"additional_xen_options": {"Bad-Key": 1}}),
    ("os.type", None, {"os": {"version": "12"}}),
    ("flavour", "x", {"flavour": "x"}),
])
def test_errors_name_vm_field_and_value(field, value, over):
    with pytest.raises(ValidationError) as err:
        _spec.normalize(vm(**over), DEFAULTS)
    assert err.value.field == field
    assert err.value.value == value
    assert err.value.obj.startswith(f"{over.get('org', 'stuvus')}-")
    assert repr(value) in str(err.value)


def test_nfs_needs_base_but_no_address():
    with pytest.raises(ValidationError, match="nfsroot_base"):
        _spec.normalize(vm(), {})
    # no address: DHCP (the original writes ip=::::::dhcp)
    assert _spec.normalize(vm(interfaces=[{}]), DEFAULTS).primary_ip is None


def test_primary_ip_is_the_first_interface_only():
    spec = _spec.normalize(vm(interfaces=[{}, {"ip": "10.9.0.2/16"}]), DEFAULTS)
    assert spec.primary_ip is None
    spec = _spec.normalize(vm(interfaces=[{"ip": "10.9.0.3/16"}, {"ip": "10.8.0.2"}]), DEFAULTS)
    assert (spec.primary_ip, spec.primary_prefixlen) == ("10.9.0.3", 16)


@pytest.mark.parametrize("given, stored", [
    ('"preserve"', "preserve"),          # the original's way of writing an xl string
    ("'preserve'", "preserve"),
    ("preserve", "preserve"),            # plain text stays text (quoted once when rendered)
    ("4096", 4096), ("0x10", 16), ("1.5", 1.5),
    ('["tablet", "a=1,b=2"]', ("tablet", "a=1,b=2")),
    ("[ 'x', ]", ("x",)), ("[]", ()),
])
def test_option_values_written_as_xl_text(given, stored):
    spec = _spec.normalize(vm(additional_xen_options={"k": given}), DEFAULTS)
    assert spec.options == {"k": stored}


@pytest.mark.parametrize("given", ['"a" "b"', '["a" "b"]', "[a]", '"a\\"', '"x'])
def test_option_values_not_xl_text_refused(given):
    with pytest.raises(ValidationError) as err:
        _spec.normalize(vm(additional_xen_options={"k": given}), DEFAULTS)
    assert err.value.field == "additional_xen_options.k"


def test_iscsi_needs_server_and_wwn_unless_manual():
    with pytest.raises(ValidationError, match="iscsi_server"):
        _spec.normalize(vm(storage_type="iscsi"), {})
    spec = _spec.normalize(vm(storage_type="iscsi", manual_root_disk=True, disks=["phy:/dev/vg/x,xvda,w"]), {})
    assert spec.disks == ("phy:/dev/vg/x,xvda,w",)


def test_duplicate_vm_in_batch_rejected():
    with pytest.raises(ValidationError, match=r"defined twice \(vms\[0\] and vms\[1\]\)"):
        _spec.normalize_all([vm(), vm()], DEFAULTS)


def test_duplicate_mac_rejected():
    with pytest.raises(ValidationError, match="more than one interface"):
        _spec.normalize(vm(interfaces=[{"ip": "10.0.0.1", "mac": "00:16:3e:00:00:01"},
                                       {"mac": "00:16:3e:00:00:01"}]), DEFAULTS)


def test_spec_to_dict_drops_spice_password():
    spec = _spec.normalize(vm(builder="hvm", spice=True, spicepasswd="hunter2"), DEFAULTS)
    out = _spec.spec_to_dict(spec)
    assert "hunter2" not in repr(out) and out["full_name"] == "stuvus-web01"


def test_network_bridge_default_used_when_no_lazy_or_own_bridge():
    """defaults.network_bridge (xen_domain called without the role) reaches the vif; the
    role's lazily evaluated bridge and an interface's own bridge win over it."""
    ifaces = [{"ip": "10.0.0.15"}, {"bridge": "br1"}]
    plain = _spec.normalize(vm(interfaces=ifaces), dict(DEFAULTS, network_bridge="xenbr0"))
    assert [i.bridge for i in plain.interfaces] == ["xenbr0", "br1"]
    lazy = _spec.normalize(vm(interfaces=ifaces),
                           dict(DEFAULTS, network_bridge="xenbr0", lazy_network_bridge="br0"))
    assert [i.bridge for i in lazy.interfaces] == ["br0", "br1"]
    bad = dict(DEFAULTS, network_bridge="bad bridge!")
    with pytest.raises(ValidationError) as exc:
        _spec.normalize(vm(interfaces=[{"ip": "10.0.0.15"}]), bad)
    assert "bridge" in str(exc.value) and "bad bridge!" in str(exc.value)


def test_full_name_is_built_in_one_place_and_every_user_agrees():
    """_spec.full_name is the one builder: the VmSpec, the fleet inventory, the Xen backend and
    the iSCSI target all give the same name for one VM."""
    from ansible_collections.vman.lifecycle.plugins.module_utils import _fleet, _iscsi
    from ansible_collections.vman.lifecycle.plugins.module_utils._backends.xen import XenGuest

    assert _spec.full_name("acme", "web01") == "acme-web01"
    assert _spec.full_name(None, "web01") == _spec.full_name("", "web01") == "web01"
    assert _fleet.host_name({"org": "acme", "name": "web01"}) == "acme-web01"
    assert _fleet.host_name({"name": "web01"}) == "web01"
    assert XenGuest.guest_name("acme", "web01") == "acme-web01"
    assert _iscsi.target_iqn("iqn.2020-01.org.example", "acme", "web01") == "iqn.2020-01.org.example:acme-web01"
