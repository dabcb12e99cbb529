# -*- coding: utf-8 -*-
"""Tests of _xl: rendering every README variable, parsing, round trips, live-state parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.vman.lifecycle.plugins.module_utils import _spec, _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result

DEFAULTS = {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1",
            "iscsi_server": "10.0.0.3", "iscsi_base_wwn": "iqn.2024-01.org.example"}


def cfg(defaults=None, **vm):
    base = {"org": "stuvus", "name": "web01", "os": {"type": "debian", "version": "12"},
            "interfaces": [{"ip": "10.0.0.15"}]}
    base.update(vm)
    spec = _spec.normalize(base, DEFAULTS if defaults is None else defaults)
    return _xl.parse(_xl.render(spec, created="2026-01-01T00:00:00Z"))


# ---- one test per README variable -----------------------------------------------------------

def test_name_is_org_dash_name():
    assert cfg()["name"] == "stuvus-web01"


def test_memory_vcpus_cpu_str():
    out = cfg(memory=3072, vcpus=3, cpu_str="0-3,^2")
    assert (out["memory"], out["vcpus"], out["cpus"]) == (3072, 3, "0-3,^2")


def test_generic_is_pv_with_kernel_initrd():
    out = cfg(kernel="/boot/vmlinuz-x", initrd="/boot/initrd-x")
    assert (out["type"], out["kernel"], out["ramdisk"]) == ("pv", "/boot/vmlinuz-x", "/boot/initrd-x")


def test_nfs_root_cmdline():
    out = cfg()
    assert out["cmdline"] == ("root=/dev/nfs nfsroot=10.0.0.2:/srv/nfs/stuvus/web01-root "
                              "ip=10.0.0.15::10.0.0.1:255.255.255.0:web01:eth0:off net.ifnames=0")
    assert "disk" not in out


@pytest.mark.parametrize("base", ["10.0.0.2:/srv/nfs", "10.0.0.2:/srv/nfs/", "10.0.0.2:/srv/nfs//"])
def test_nfs_path_joined_with_one_slash(base):
    out = cfg(dict(DEFAULTS, nfsroot_base=base))
    assert "nfsroot=10.0.0.2:/srv/nfs/stuvus/web01-root " in out["cmdline"]


def test_nfs_static_address_from_connection_ip_and_prefix():
    out = cfg(connection_ip="192.168.7.9/28")
    assert "ip=192.168.7.9::10.0.0.1:255.255.255.240:web01:eth0:off" in out["cmdline"]


def test_nfs_ipv6_address():
    out = cfg(dict(DEFAULTS, gateway="2001:db8::1"), interfaces=[{"ip": "2001:db8::15/64"}])
    assert "ip=[2001:db8::15]::[2001:db8::1]:64:web01:eth0:none" in out["cmdline"]


def test_iscsi_server_with_port_reaches_the_by_path_disk_unchanged():
    out = cfg(defaults=dict(DEFAULTS, iscsi_server="10.0.0.3:3261"), storage_type="iscsi")
    assert "target=/dev/disk/by-path/ip-10.0.0.3:3261-iscsi-iqn.2024-01.org.example:stuvus-web01-lun-0" in out["disk"][0]


def test_iscsi_root_disk_and_cmdline():
    out = cfg(storage_type="iscsi", filesystem="xfs", disks=["phy:/dev/vg/data,xvdb,w"])
    assert out["disk"] == [
        "format=raw,vdev=xvda,access=rw,target=/dev/disk/by-path/"
        "ip-10.0.0.3:3260-iscsi-iqn.2024-01.org.example:stuvus-web01-lun-0",
        "phy:/dev/vg/data,xvdb,w"]
    assert out["cmdline"] == "root=/dev/xvda rootfstype=xfs"


def test_iscsi_root_lun_from_defaults_or_vm():
    out = cfg(dict(DEFAULTS, iscsi_lun=1), storage_type="iscsi")
    assert out["disk"] == ["format=raw,vdev=xvda,access=rw,target=/dev/disk/by-path/"
                           "ip-10.0.0.3:3260-iscsi-iqn.2024-01.org.example:stuvus-web01-lun-1"]
    assert cfg(dict(DEFAULTS, iscsi_lun=1), storage_type="iscsi", iscsi_lun=3)["disk"][0].endswith("-lun-3")


def test_manual_root_disk_uses_only_given_disks():
    out = cfg(storage_type="iscsi", manual_root_disk=True, disks=["phy:/dev/vg/root,xvda,w"])
    assert out["disk"] == ["phy:/dev/vg/root,xvda,w"]


def test_default_disks_used_when_vm_has_none():
    out = cfg(dict(DEFAULTS, disks=["phy:/dev/vg/swap,xvdc,w"]))
    assert out["disk"] == ["phy:/dev/vg/swap,xvdc,w"]


def test_cmdline_replaces_generated():
    assert cfg(cmdline="root=/dev/xvda1 ro quiet")["cmdline"] == "root=/dev/xvda1 ro quiet"


def test_vif_entries():
    out = cfg(dict(DEFAULTS, vifname_prefix="web", network_script="vif-p2p"), interfaces=[
        {"ip": "10.0.0.15", "mac": "00:16:3e:00:00:01", "bridge": "xenbr0", "mtu": 9000,
         "xen_str": "rate=100Mb/s"},
        {"vifname": "own1", "script": "vif-route"}])
    assert out["vif"] == [
        "mac=00:16:3e:00:00:01,ip=10.0.0.15,bridge=xenbr0,mtu=9000,script=vif-p2p,vifname=web.0,rate=100Mb/s",
        "script=vif-route,vifname=own1"]


def test_interface_ipv6_joins_ip_in_the_vif_as_the_original():
    out = cfg(interfaces=[{"ip": "10.0.0.15/24", "ipv6": "fd76:5eac:234:70c8::15", "mac": "00:16:3e:00:00:01"},
                          {"ipv6": "2001:db8::2/64"}])
    assert out["vif"][0].startswith("mac=00:16:3e:00:00:01,ip=10.0.0.15 fd76:5eac:234:70c8::15,")
    assert out["vif"][1].startswith("ip=2001:db8::2")
    with pytest.raises(ValidationError) as err:
        cfg(interfaces=[{"ip": "10.0.0.15", "ipv6": "10.0.0.16"}])
    assert err.value.field == "interfaces[0].ipv6" and err.value.value == "10.0.0.16"
    with pytest.raises(ValidationError, match="interfaces\\[0\\].ipv6"):
        cfg(interfaces=[{"ip": "10.0.0.15", "ipv6": "fd00::1\n"}])


def test_description_lands_in_the_header_and_is_one_line():
    text = _xl.render(_spec.normalize({"org": "stuvus", "name": "web01", "os": {"type": "debian", "version": "12"},
                                       "interfaces": [{"ip": "10.0.0.15"}], "description": "Web server #1"},
                                      DEFAULTS), created="2026-01-01T00:00:00Z")
    assert "# description: Web server #1\n" in text
    assert _xl.parse_header(text)["description"] == "Web server #1"
    for bad in ("two\nlines", "nul\x00", "cr\r", "x" * 201, 5):
        with pytest.raises(ValidationError) as err:
            cfg(description=bad)
        assert err.value.field == "description"
    assert "description" not in _xl.render(_spec.normalize(
        {"org": "o", "name": "n", "os": {"type": "debian", "version": "12"}, "interfaces": [{"ip": "10.0.0.9"}]},
        DEFAULTS))


@pytest.mark.parametrize("cpus", ["all", "0-3,5,^1", "node:0", "nodes:0-1,^node:1", "socket:0"])
def test_cpu_str_takes_xls_cpus_syntax(cpus):
    assert cfg(cpu_str=cpus)["cpus"] == cpus


def test_hvm_with_spice():
    out = cfg(builder="hvm", spice=True, spicehost="127.0.0.1", spiceport=5901, spicepasswd="pw",
              share_clipboard=False, spicevdagent=False, max_usb_redirections=2, mouse=False)
    assert out["type"] == "hvm" and "kernel" not in out
    assert (out["spice"], out["spicehost"], out["spiceport"], out["spicepasswd"]) == (1, "127.0.0.1", 5901, "pw")
    assert (out["spiceagent_mouse"], out["spicevdagent"], out["spice_clipboard_sharing"],
            out["spiceusbredirection"]) == (0, 0, 0, 2)
    assert out["spicedisable_ticketing"] == 0


def test_hvm_spice_without_password_is_refused_unless_asked_for():
    with pytest.raises(ValidationError) as err:
        cfg(builder="hvm", spice=True)
    assert err.value.field == "spicepasswd" and "unauthenticated console" in str(err.value)
    assert "0.0.0.0" in str(err.value)
    with pytest.raises(ValidationError, match="spicepasswd"):
        cfg(builder="hvm", spice=True, spicepasswd="")
    with pytest.raises(ValidationError) as err:
        cfg(builder="hvm", spice=True, spice_unauthenticated="sure")
    assert err.value.field == "spice_unauthenticated"


def test_hvm_spice_unauthenticated_on_request_disables_ticketing_and_clipboard_implies_vdagent():
    out = cfg(builder="hvm", spice=True, spicevdagent=False, spice_unauthenticated=True)
    assert out["spicedisable_ticketing"] == 1 and out["spicevdagent"] == 1


def test_hvm_without_spice_has_no_spice_keys():
    assert not any(k.startswith("spice") for k in cfg(builder="hvm"))


def test_additional_options_override_and_extend():
    out = cfg(dict(DEFAULTS, additional_xen_options={"on_crash": "preserve", "maxmem": 4096}),
              additional_xen_options={"maxmem": 8192, "usbdevice": ["tablet"]})
    assert (out["on_crash"], out["maxmem"], out["usbdevice"]) == ("preserve", 8192, ["tablet"])


def test_option_with_quotes_rendered_once():
    spec = _spec.normalize({"org": "o", "name": "n", "os": {"type": "debian", "version": "12"},
                            "interfaces": [{"ip": "10.0.0.1"}]},
                           dict(DEFAULTS, additonal_xen_options={"on_crash": '"preserve"',
                                                                 "usbdevice": '["tablet"]'}))
    text = _xl.render(spec, created="x")
    assert 'on_crash = "preserve"\n' in text and '""' not in text
    assert _xl.parse(text)["usbdevice"] == ["tablet"]


def test_nfs_root_without_address_asks_dhcp():
    out = cfg(interfaces=[{"mac": "00:16:3e:00:00:01"}])
    assert "ip=::::::dhcp" in out["cmdline"].split()
    assert out["cmdline"].startswith("root=/dev/nfs nfsroot=10.0.0.2:/srv/nfs/stuvus/web01-root ")


def test_header_records_and_keeps_date():
    spec = _spec.normalize({"org": "o", "name": "n", "os": {"type": "debian", "version": "12"},
                            "interfaces": [{"ip": "10.0.0.1"}], "auto_boot": False}, DEFAULTS)
    text = _xl.render(spec, created="2020-02-02T02:02:02Z")
    head = _xl.parse_header(text)
    assert head == {"org": "o", "name": "n", "os": "debian 12", "memory": "1024", "vcpus": "2",
                    "storage_type": "nfs", "auto_boot": "false", "created": "2020-02-02T02:02:02Z"}
    assert _xl.render(spec, created=head["created"]) == text


def test_header_absent_for_foreign_file():
    assert _xl.parse_header('name = "x"\n') == {}


# ---- parser ---------------------------------------------------------------------------------

def test_parse_grammar():
    text = """# comment
name = 'single' ; memory = 0x400
vif = [ "a=1", # inline comment
        'b=2', ]
empty = []
ratio = 1.5
"""
    assert _xl.parse(text) == {"name": "single", "memory": 1024, "vif": ["a=1", "b=2"],
                               "empty": [], "ratio": 1.5}


def test_parse_escapes():
    assert _xl.parse(r'extra = "a \"quoted\" word"') == {"extra": 'a "quoted" word'}


@pytest.mark.parametrize("bad", ['name = ', 'name "x"', 'vif = [ "a" "b" ]', 'x = [ "a"', 'name = "x" y', '= 3'])
def test_parse_errors(bad):
    with pytest.raises(_xl.XlParseError):
        _xl.parse(bad)


# ---- property-based: valid specs round-trip, invalid ones raise only ValidationError --------

names = st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,20}\Z")
macs = st.lists(st.integers(0, 255), min_size=5, max_size=5).map(
    lambda b: "00:" + ":".join(f"{x:02x}" for x in b))
ipv4 = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t)))
interfaces = st.lists(st.fixed_dictionaries({}, optional={
    "ip": ipv4, "mac": macs, "mtu": st.integers(68, 65535),
    "bridge": st.from_regex(r"\A[a-z][a-z0-9]{0,10}\Z"),
    "vifname": st.from_regex(r"\A[a-z][a-z0-9.]{0,10}\Z"),
    "xen_str": st.from_regex(r"\A[a-z]{1,5}=[a-z0-9/]{1,8}\Z")}), min_size=1, max_size=4).filter(
    lambda ifs: len({i["mac"] for i in ifs if "mac" in i}) == sum("mac" in i for i in ifs))
valid_vms = st.fixed_dictionaries({
    "org": names, "name": names,
    "os": st.fixed_dictionaries({"type": st.sampled_from(["debian", "ubuntu"]),
                                 "version": st.sampled_from(["12", "22.04", "bookworm"])}),
    "interfaces": interfaces.map(lambda ifs: [dict(ifs[0], ip=ifs[0].get("ip", "10.1.2.3"))] + ifs[1:]),
}, optional={
    "memory": st.integers(1, 1 << 20), "vcpus": st.integers(1, 512),
    "storage_type": st.sampled_from(["nfs", "iscsi"]), "builder": st.sampled_from(["generic", "hvm"]),
    "disks": st.lists(st.from_regex(r"\Aphy:/dev/vg/[a-z]{1,8},xvd[b-z],w\Z"), max_size=3),
    "manual_root_disk": st.booleans(), "filesystem": st.sampled_from(["ext4", "xfs", "btrfs"]),
    "auto_boot": st.booleans(), "cmdline": st.from_regex(r"\A[a-z0-9=/ ]{1,30}\Z"),
    "additional_xen_options": st.dictionaries(st.from_regex(r"\A[a-z_][a-z0-9_]{0,10}\Z"),
                                              st.one_of(st.integers(0, 10**6), st.from_regex(r"\A[a-z0-9,]{0,10}\Z")),
                                              max_size=3),
})


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_vms)
def test_valid_specs_render_and_parse_back(vm):
    spec = _spec.normalize(vm, DEFAULTS)
    text = _xl.render(spec, created="2026-01-01T00:00:00Z")
    parsed = _xl.parse(text)
    assert parsed == {k: list(v) if isinstance(v, tuple) else v for k, v in _xl.config_items(spec).items()}
    assert parsed["name"] == f"{vm['org']}-{vm['name']}"
    assert _xl.parse_header(text)["created"] == "2026-01-01T00:00:00Z"


junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=12),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_vms, st.sampled_from(["org", "name", "memory", "vcpus", "cpu_str", "interfaces", "storage_type",
                                   "disks", "builder", "kernel", "cmdline", "os", "spiceport",
                                   "max_usb_redirections", "additional_xen_options", "connection_ip",
                                   "filesystem", "auto_boot"]), junk)
def test_mutated_specs_raise_only_validation_errors(vm, key, value):
    vm = dict(vm, **{key: value})
    try:
        spec = _spec.normalize(vm, DEFAULTS)
    except ValidationError as exc:
        assert exc.field and (key in exc.field or exc.field in ("nfsroot_base", "interfaces", "spice")
                              or exc.field.startswith(("os", "interfaces")))
        return
    _xl.parse(_xl.render(spec))


# ---- live state (xl list -l JSON) -----------------------------------------------------------

LIST_LONG = json.dumps([
    {"domid": 0, "config": {"c_info": {"name": "Domain-0"}, "b_info": {"max_memkb": 1 << 20}}},
    {"domid": 7, "config": {"c_info": {"name": "stuvus-web01", "type": "pv"},
                            "b_info": {"max_vcpus": 2, "max_memkb": 1048576, "target_memkb": 1048576},
                            "nics": [{"devid": 0, "mac": "00:16:3E:00:00:15", "bridge": "xenbr0"}]}},
])


def test_parse_list_long_skips_dom0():
    doms = _xl.parse_list_long(LIST_LONG)
    assert list(doms) == ["stuvus-web01"]
    web = doms["stuvus-web01"]
    assert (web.domid, web.memory, web.vcpus, web.macs, web.bridges) == (
        7, 1024, 2, ("00:16:3e:00:00:15",), ("xenbr0",))


def test_parse_list_long_rejects_sxp():
    with pytest.raises(_xl.XlParseError, match="JSON"):
        _xl.parse_list_long("(domain (domid 0))")


def test_drift_reports_memory_vcpus_vifs():
    dom = _xl.parse_list_long(LIST_LONG)["stuvus-web01"]
    same = _spec.normalize({"org": "stuvus", "name": "web01", "os": {"type": "d", "version": "1"},
                            "interfaces": [{"ip": "10.0.0.15", "mac": "00:16:3e:00:00:15", "bridge": "xenbr0"}]},
                           DEFAULTS)
    assert _xl.drift(same, dom) == {}
    other = _spec.normalize({"org": "stuvus", "name": "web01", "os": {"type": "d", "version": "1"}, "memory": 2048,
                             "vcpus": 4, "interfaces": [{"ip": "10.0.0.15"}, {}]}, DEFAULTS)
    got = _xl.drift(other, dom)
    assert got["memory"] == {"config": 2048, "running": 1024}
    assert got["vcpus"] == {"config": 4, "running": 2}
    assert len(got["vifs"]["config"]) == 2 and len(got["vifs"]["running"]) == 1


class FakeXlExecutor:
    """A fake executor for XlToolstack's control flow (the real xl runs in the Xen testbed)."""

    def __init__(self, alive_polls):
        self.calls, self.alive_polls = [], alive_polls

    def __call__(self, argv, **kw):
        self.calls.append(argv[1:])
        if argv[1] == "domid":
            alive = self.alive_polls > 0
            self.alive_polls -= 1
            return Result(argv, 0 if alive else 1, "5\n" if alive else "", "")
        return Result(argv, 0, "", "")


def test_fake_xl_shutdown_waits_then_returns():
    fake = FakeXlExecutor(alive_polls=3)
    xl = _xl.XlToolstack("/usr/sbin/xl", executor=fake, sleep=lambda s: None)
    assert xl.shutdown("a-b", timeout=60) == "shutdown"
    assert ["shutdown", "a-b"] in fake.calls and ["destroy", "a-b"] not in fake.calls


def test_fake_xl_shutdown_destroys_after_deadline():
    fake = FakeXlExecutor(alive_polls=10**6)
    clock = iter(range(0, 10**6, 10))
    xl = _xl.XlToolstack("/usr/sbin/xl", executor=fake, sleep=lambda s: None, clock=lambda: next(clock))
    assert xl.shutdown("a-b", timeout=30) == "destroyed"
    assert fake.calls[-1] == ["destroy", "a-b"]


def test_manual_root_disk_cmdline_points_at_first_disk():
    out = cfg(manual_root_disk=True, interfaces=[{}], disks=["phy:/dev/vg/r,xvda,w"])
    assert out["cmdline"] == "root=/dev/xvda"


def test_header_of_the_original_role_gives_its_install_date():
    original = ("#" * 80 + "\n# Ansible managed\n" + "#" * 80 + "\n# web01 @stuvus\n# \n"
                "#" + "-" * 79 + "\n# initial OS:   debian 12\n#\n"
                "# created at:   2019-05-04T10:11:12Z\n# auto boot:    True\n"
                "# storage type: nfs\n" + "#" * 80 + "\n\nname = \"stuvus-web01\"\n")
    assert _xl.parse_header(original) == {"created": "2019-05-04T10:11:12Z"}
    # only in the leading comment, and only a date
    assert _xl.parse_header('name = "x"\n# created at:   2019-05-04T10:11:12Z\n') == {}
    assert _xl.parse_header("# created at:   $(reboot)\n") == {}


def test_xl_defaults_left_alone_as_in_the_original():
    """No on_poweroff/on_reboot/on_crash and no vga: xl's defaults, as the original wrote."""
    for out in (cfg(), cfg(builder="hvm", spice=True, spicepasswd="s3cret")):
        assert not {"on_poweroff", "on_reboot", "on_crash", "vga"} & set(out)
    assert cfg(additional_xen_options={"on_crash": '"restart"'})["on_crash"] == "restart"
