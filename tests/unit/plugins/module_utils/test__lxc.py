# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_lxc: pure parts (profiles, naming, addresses, settings, config text), then real LXC."""

from __future__ import annotations

import os
import re
import stat
import time

import netaddr
import pytest
from hypothesis import given, strategies as st

from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    StateError, ValidationError)


# ---- sizes, profile types, profile names --------------------------------------------------

def test_size_table_is_the_issue_table():
    assert _lxc.SIZES == {
        "xxxsmall": "500m", "xxsmall": "1g", "xsmall": "3g", "small": "5g", "medium": "10g",
        "large": "20g", "xxlarge": "50g", "xxxlarge": "100g", "xtrem": "500g",
        "xxtrem": "1000g", "xxxtrem": "2000g"}
    assert list(_lxc.SIZES) == sorted(_lxc.SIZES, key=lambda p: _lxc.size_bytes(_lxc.SIZES[p]))


@pytest.mark.parametrize("size, expected", [("500m", 500 * 2 ** 20), ("5g", 5 * 2 ** 30),
                                            ("2000g", 2000 * 2 ** 30), ("1T", 2 ** 40)])
def test_size_bytes(size, expected):
    assert _lxc.size_bytes(size) == expected


@pytest.mark.parametrize("bad", ["5", "g", "5 g", "-1g", "5k", None])
def test_size_bytes_rejects(bad):
    with pytest.raises(ValidationError):
        _lxc.size_bytes(bad)


def test_lxc_size_and_unknown_profile():
    assert _lxc.lxc_size("small") == "5g"
    assert _lxc.lxc_fssize("500m") == "500M"
    with pytest.raises(ValidationError, match="xlarge.*must be one of xxxsmall"):
        _lxc.lxc_size("xlarge")


@pytest.mark.parametrize("value, backing, scratch", [
    ("lvm", "lvm", False), ("lvm-scratch", "lvm", True), ("dir", "dir", False),
    ("dir-scratch", "dir", True), ("overlayfs", "overlayfs", False),
    ("overlayfs-scratch", "overlayfs", True), ("btrfs", "btrfs", False),
    ("zfs-scratch", "zfs", True)])
def test_parse_profile_type(value, backing, scratch):
    ptype = _lxc.parse_profile_type(value)
    assert (ptype.backing, ptype.scratch, ptype.name) == (backing, scratch, value)


@pytest.mark.parametrize("bad", ["lvm-sratch", "overlay", "LVM", "", None, "dir-scratch-x"])
def test_parse_profile_type_rejects(bad):
    with pytest.raises(ValidationError, match="profile_type"):
        _lxc.parse_profile_type(bad)


@pytest.mark.parametrize("host, ptype, size, expected", [
    ("devhost10.local", "overlayfs", None, "ms-devhost10-local-overlayfs"),
    ("devhost-10.local", "dir-scratch", None, "ms-devhost-10-local-dir-scratch"),
    ("devhost-10.local", "lvm-scratch", "small", "ms-devhost-10-local-small-lvm-scratch"),
    ("devhost-10.local", "lvm", "medium", "ms-devhost-10-local-medium-lvm"),
    ("Dev_Host..10.", "dir", None, "ms-dev-host-10-dir"),
])
def test_profile_name_normalized_style(host, ptype, size, expected):
    assert _lxc.profile_name(host, ptype, size, "normalized") == expected


def test_profile_name_normalized_rejects_unencodable_host_and_bad_size():
    with pytest.raises(ValidationError, match="host_id"):
        _lxc.profile_name("...", "dir", style="normalized")
    with pytest.raises(ValidationError, match="profile"):
        _lxc.profile_name("h", "lvm", "huge", "normalized")


# makina-states' own spelling: '.' -> '-' over the whole name, case and '_' kept; the size
# only where mc_cloud_lxc.get_settings_for_vm puts it (lvm, btrfs, zfs clones).
@pytest.mark.parametrize("host, ptype, size, expected", [
    ("devhost10.local", "lvm", "medium", "ms-devhost10-local-medium-lvm"),
    ("devhost10.local", "lvm-scratch", "small", "ms-devhost10-local-lvm-scratch"),
    ("devhost10.local", "btrfs", "small", "ms-devhost10-local-small-btrfs"),
    ("devhost10.local", "btrfs-scratch", "small", "ms-devhost10-local-btrfs-scratch"),
    ("devhost10.local", "zfs", "xxxtrem", "ms-devhost10-local-xxxtrem-zfs"),
    ("devhost10.local", "zfs-scratch", "large", "ms-devhost10-local-zfs-scratch"),
    ("devhost10.local", "dir", "medium", "ms-devhost10-local-dir"),
    ("devhost10.local", "overlayfs", "medium", "ms-devhost10-local-overlayfs"),
    ("devhost10.local", "overlayfs-scratch", None, "ms-devhost10-local-overlayfs-scratch"),
    ("Dev_Host10.Local", "dir-scratch", None, "ms-Dev_Host10-Local-dir-scratch"),
    ("a..b.", "lvm", None, "ms-a--b--lvm"),
])
def test_profile_name_makina_states_style(host, ptype, size, expected):
    assert _lxc.profile_name(host, ptype, size, "makina-states") == expected
    assert _lxc.profile_name(host, ptype, size) == expected  # the default style


@pytest.mark.parametrize("host", ["dev host", "a/b", "h\nx", "h\x00", "caf\u00e9", "x" * 260, "",
                                  None, 12])
def test_profile_name_makina_states_refuses_what_it_cannot_spell(host):
    with pytest.raises(ValidationError, match="host_id") as info:
        _lxc.profile_name(host, "dir", None, "makina-states")
    assert "\n" not in str(info.value)


def test_profile_name_makina_states_checks_size_and_style():
    with pytest.raises(ValidationError, match="profile"):
        _lxc.profile_name("h", "dir", "huge", "makina-states")  # checked even where left out
    with pytest.raises(ValidationError, match="profile_name_style"):
        _lxc.profile_name("h", "dir", None, "makina")


@given(st.text(min_size=1, max_size=60))
def test_profile_name_makina_states_output_fullmatches(host):
    try:
        name = _lxc.profile_name(host, "lvm", "small", "makina-states")
    except ValidationError:
        assert not re.fullmatch(r"[A-Za-z0-9_.-]{1,240}", host)
        return
    assert re.fullmatch(r"ms-[A-Za-z0-9_-]+", name) and "." not in name
    assert name == "ms-" + host.replace(".", "-") + "-small-lvm"


@given(st.text(min_size=1, max_size=40))
def test_encode_host_id_output_alphabet(host):
    try:
        encoded = _lxc.encode_host_id(host)
    except ValidationError:
        assert not any(c.isascii() and c.isalnum() for c in host.lower())
        return
    assert encoded == encoded.strip("-") and "--" not in encoded
    assert set(encoded) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


# ---- name validation -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["web1", "gfoobar.test.com", "a", "x" * 63, "a-b.c-d"])
def test_validate_name_accepts(name):
    assert _lxc.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "a..b", "a/b", "../etc", "a b", "x" * 64,
                                  "a;rm", ".a", None, 5])
def test_validate_name_rejects(name):
    with pytest.raises(ValidationError):
        _lxc.validate_name(name)


@pytest.mark.parametrize("func, good, bad", [
    (_lxc.validate_bridge, "lxcbr1", "a-very-long-bridge-name"),
    (_lxc.validate_vg, "lxc", "-lxc"),
    (_lxc.validate_template, "debian", "../x"),
    (_lxc.validate_user, "sysadmin", "Root"),
])
def test_other_validators(func, good, bad):
    assert func(good) == good
    with pytest.raises(ValidationError):
        func(bad)


# ---- addresses, MACs, passwords ------------------------------------------------------------

def test_allocate_ip_skips_network_gateway_and_used():
    assert _lxc.allocate_ip("10.5.0.0/16", "10.5.0.1") == "10.5.0.2"
    assert _lxc.allocate_ip("10.5.0.0/16", "10.5.0.1", ["10.5.0.2", "10.5.0.3"]) == "10.5.0.4"
    assert _lxc.allocate_ip("10.5.0.0/16", "10.5.0.2") == "10.5.0.1"


def test_allocate_ip_reports_exhaustion_naming_the_network():
    net = "192.168.7.0/29"     # hosts .1 - .6
    used = [f"192.168.7.{i}" for i in range(2, 7)]
    with pytest.raises(StateError, match=r"no free address left in network 192\.168\.7\.0/29"):
        _lxc.allocate_ip(net, "192.168.7.1", used, obj="web1")
    assert _lxc.allocate_ip(net, "192.168.7.1", used[:-1]) == "192.168.7.6"


@given(st.sets(st.integers(min_value=2, max_value=14), max_size=13))
def test_allocate_ip_never_returns_a_taken_address(taken):
    used = [f"10.9.0.{i}" for i in taken]
    try:
        ip = _lxc.allocate_ip("10.9.0.0/28", "10.9.0.1", used)
    except StateError:
        assert len(taken) == 13
        return
    assert ip not in used and ip != "10.9.0.1"
    assert netaddr.IPAddress(ip) in netaddr.IPNetwork("10.9.0.0/28")
    assert ip not in ("10.9.0.0", "10.9.0.15")


@pytest.mark.parametrize("ip, reason", [("10.6.0.2", "not a host address"),
                                        ("10.5.255.255", "not a host address"),
                                        ("10.5.0.0", "not a host address"),
                                        ("10.5.0.1", "gateway"), ("10.5.0.9", "already used"),
                                        ("nope", "IPv4 address")])
def test_check_ip_rejects(ip, reason):
    net = _lxc.parse_network("10.5.0.0/16")
    with pytest.raises(ValidationError, match=reason):
        _lxc.check_ip(ip, net, "10.5.0.1", ["10.5.0.9"])


def test_parse_network_and_gateway():
    assert str(_lxc.parse_network("10.5.3.7/16")) == "10.5.0.0/16"
    for bad in ("10.5.0.0/31", "fd00::/64", "x"):
        with pytest.raises(ValidationError, match="network"):
            _lxc.parse_network(bad)
    with pytest.raises(ValidationError, match="gateway"):
        _lxc.parse_gateway("10.6.0.1", _lxc.parse_network("10.5.0.0/16"))


def test_generate_mac_prefix_and_avoids_used():
    mac = _lxc.generate_mac()
    assert mac.startswith("00:16:3e:") and _lxc.MAC_RE.fullmatch(mac)
    seq = iter([0x000001, 0x000001, 0x0a0b0c])
    assert _lxc.generate_mac(["00:16:3e:00:00:01"], rand=lambda n: next(seq)) == "00:16:3e:0a:0b:0c"
    with pytest.raises(StateError, match="no free MAC"):
        _lxc.generate_mac(["00:16:3e:00:00:01"], rand=lambda n: 1, tries=5)


def test_validate_mac():
    assert _lxc.validate_mac("00:16:3E:00:F1:81") == "00:16:3e:00:f1:81"
    with pytest.raises(ValidationError, match="mac"):
        _lxc.validate_mac("00:16:3e:00:f1")


def test_generate_password():
    pw = _lxc.generate_password()
    assert len(pw) == 24 and set(pw) <= set(_lxc.PASSWORD_ALPHABET)
    assert len({_lxc.generate_password() for _index in range(20)}) == 20


# ---- settings store ------------------------------------------------------------------------

def test_settings_store_roundtrip_modes_and_delete(tmp_path):
    store = _lxc.SettingsStore(tmp_path / "settings")
    assert store.load("web1") is None and store.names() == []
    store.save("web1", {"ip": "10.5.0.2", "password": "s3cret"})
    path = tmp_path / "settings" / "web1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "settings").stat().st_mode) == 0o700
    assert store.load("web1") == {"ip": "10.5.0.2", "password": "s3cret"}
    store.save("web1", {"ip": "10.5.0.3"})
    assert store.all() == {"web1": {"ip": "10.5.0.3"}}
    assert sorted(os.listdir(tmp_path / "settings")) == ["web1.json"]   # no temp files left
    assert store.delete("web1") is True and store.delete("web1") is False
    with pytest.raises(ValidationError):
        store.path("../etc/passwd")


def test_settings_store_bad_file(tmp_path):
    (tmp_path / "web1.json").write_text("{not json")
    with pytest.raises(StateError, match="not JSON"):
        _lxc.SettingsStore(tmp_path).load("web1")


# ---- config text -----------------------------------------------------------------------------

CONFIG = """# Template used to create this container
lxc.net.0.type = veth
lxc.net.0.hwaddr = 00:16:3e:09:d8:d7
lxc.net.0.flags = up
lxc.include = /usr/share/lxc/config/debian.common.conf
lxc.net.0.link = lxcbr0
lxc.net.0.link = lxcbr9
lxc.rootfs.path = dir:/var/lib/lxc/web1/rootfs
lxc.uts.name = web1
lxc.cgroup2.memory.max = 1G
"""


def test_config_value_takes_last():
    assert _lxc.config_value(CONFIG, "lxc.net.0.link") == "lxcbr9"
    assert _lxc.config_value(CONFIG, "lxc.start.auto") is None


def test_render_config_replaces_appends_and_unsets():
    out = _lxc.render_config(CONFIG, {"lxc.net.0.link": "lxcbr1", "lxc.start.auto": "1"},
                             unset=["lxc.cgroup2.memory.max", "lxc.net.0.link"])
    lines = out.splitlines()
    assert lines[0] == "# Template used to create this container"
    assert lines.count("lxc.net.0.link = lxcbr1") == 1 and "lxcbr9" not in out
    assert lines.index("lxc.net.0.link = lxcbr1") == 5     # keeps the first position
    assert lines[-1] == "lxc.start.auto = 1"
    assert "memory.max" not in out
    assert _lxc.render_config(out, {"lxc.net.0.link": "lxcbr1", "lxc.start.auto": "1"}) == out


def test_normalize_lxc_conf():
    assert _lxc.normalize_lxc_conf([{"lxc.cgroup2.memory.max": "1G"}, {"lxc.start.delay": 5}]) == [
        ("lxc.cgroup2.memory.max", "1G"), ("lxc.start.delay", "5")]
    with pytest.raises(ValidationError, match="lxc_conf"):
        _lxc.normalize_lxc_conf([{"lxc.x": "a\nlxc.hook.pre-start = /bin/evil"}])
    with pytest.raises(ValidationError, match="lxc_conf"):
        _lxc.normalize_lxc_conf([{"evil key": "1"}])


# ---- specs -------------------------------------------------------------------------------

def _spec(**entry):
    entry.setdefault("name", "web1.test.com")
    return _lxc.build_spec(_lxc.merge_entry(entry, {"profile_type": "dir",
                                                    "from_container": "base"}))


def test_build_spec_merges_defaults_and_entry_wins():
    spec = _spec(profile="small", bridge="br5")
    assert (spec.ptype.name, spec.from_container, spec.bridge, spec.prefixlen) == (
        "dir", "base", "br5", 16)
    assert spec.size is None                            # dir: no size
    assert _spec(profile_type="lvm", profile="small").size == "5g"
    assert _spec().settings("devhost10.local")["profile"] == "ms-devhost10-local-dir"
    assert _spec(profile_type="lvm", profile="small").settings("h")["profile"] == "ms-h-small-lvm"


@pytest.mark.parametrize("ptype, makina, normalized", [
    ("lvm", "ms-Dev_H10-local-small-lvm", "ms-dev-h10-local-small-lvm"),
    ("lvm-scratch", "ms-Dev_H10-local-lvm-scratch", "ms-dev-h10-local-small-lvm-scratch"),
    ("btrfs", "ms-Dev_H10-local-small-btrfs", "ms-dev-h10-local-btrfs"),
    ("zfs", "ms-Dev_H10-local-small-zfs", "ms-dev-h10-local-zfs"),
    ("zfs-scratch", "ms-Dev_H10-local-zfs-scratch", "ms-dev-h10-local-zfs-scratch"),
    ("overlayfs", "ms-Dev_H10-local-overlayfs", "ms-dev-h10-local-overlayfs"),
])
def test_settings_profile_by_style_and_size_stays_lvm_only(ptype, makina, normalized):
    spec = _spec(profile_type=ptype, profile="small")
    assert spec.settings("Dev_H10.local")["profile"] == makina          # the default
    assert spec.settings("Dev_H10.local", "makina-states")["profile"] == makina
    assert spec.settings("Dev_H10.local", "normalized")["profile"] == normalized
    # what reaches lxc-create --fssize / lxc-copy -L does not depend on the name's spelling
    assert spec.settings("h")["size"] == ("5g" if ptype.startswith("lvm") else None)
    assert spec.settings("h")["size_profile"] == "small"


def test_manager_checks_profile_name_style_and_host_id(tmp_path):
    with pytest.raises(ValidationError, match="profile_name_style"):
        _manager(tmp_path, profile_name_style="makina")
    backend = _lxc.LxcBackend(tmp_path / "lxc")
    with pytest.raises(ValidationError, match="host_id"):
        _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "s"), host_id="my host")
    mgr = _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "s"), host_id="my host",
                               profile_name_style="normalized", check_mode=True)
    results, _diffs, _changed = mgr.converge([_spec(profile_type="dir-scratch")])
    assert results[0]["profile"] == "ms-my-host-dir-scratch"


def test_check_mode_reports_the_makina_states_profile(tmp_path):
    mgr = _lxc.LxcGuestManager(_lxc.LxcBackend(tmp_path / "lxc"),
                               _lxc.SettingsStore(tmp_path / "s"), host_id="DevHost_10.local",
                               check_mode=True)
    results, _diffs, _changed = mgr.converge([_spec(profile_type="dir-scratch")])
    assert results[0]["profile"] == results[0]["settings"]["profile"] == \
        "ms-DevHost_10-local-dir-scratch"


@pytest.mark.parametrize("entry, field", [
    ({"from_container": None, "profile_type": "lvm"}, "from_container"),
    ({"from_container": "web1.test.com"}, "from_container"),
    ({"state": "running"}, "state"),
    ({"gateway": "10.9.0.1"}, "gateway"),
    ({"users": ["Root"]}, "users"),
    ({"dnsservers": ["x"]}, "dnsservers"),
    ({"template_options": ["-r\nbookworm"]}, "template_options"),
])
def test_build_spec_rejects(entry, field):
    merged = _lxc.merge_entry(dict(entry, name="web1.test.com"),
                              {"profile_type": "dir", "from_container": "base"})
    if entry.get("from_container", "base") is None:
        merged["from_container"] = None
    with pytest.raises(ValidationError) as err:
        _lxc.build_spec(merged)
    assert err.value.field == field and err.value.obj == "web1.test.com"


def test_build_specs_refuses_duplicates():
    with pytest.raises(ValidationError, match="twice"):
        _lxc.build_specs([{"name": "a"}, {"name": "a"}], {"profile_type": "dir-scratch"})


def test_public_settings_hides_password():
    data = {"password": "s3cret", "ip": "10.5.0.2", "guest_setup": "abc"}
    assert _lxc.public_settings(data) == {"password": "********", "ip": "10.5.0.2"}
    assert _lxc.public_settings(data, with_password=True)["password"] == "s3cret"


# ---- planning against a real settings dir and an empty lxcpath (no LXC needed) -----------

def _manager(tmp_path, **kwargs):
    backend = _lxc.LxcBackend(tmp_path / "lxc")     # absent lxcpath: no containers
    return _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "settings"),
                                host_id="devhost10.local", check_mode=True, **kwargs)


def test_resolve_reuses_settings_and_generates_the_rest(tmp_path):
    mgr = _manager(tmp_path)
    mgr.store.save("a.test.com", {"ip": "10.5.0.7", "mac": "00:16:3e:00:00:07",
                                  "password": "kept"})
    mgr.store.save("other", {"ip": "10.5.0.2", "mac": "00:16:3e:00:00:02"})
    specs = [_spec(name="a.test.com"), _spec(name="b.test.com"),
             _spec(name="c.test.com", ip="10.5.0.3")]
    mgr.resolve(specs)
    a, b, c = specs
    assert (a.ip, a.mac, a.password, a.generated) == (
        "10.5.0.7", "00:16:3e:00:00:07", "kept", [])
    assert b.ip == "10.5.0.4"          # .2 is other's, .3 was asked for by c
    assert b.generated == ["ip", "mac", "password"] and b.mac not in (a.mac, "00:16:3e:00:00:02")
    assert c.ip == "10.5.0.3"


def test_resolve_refuses_an_address_of_another_container(tmp_path):
    mgr = _manager(tmp_path)
    mgr.store.save("other", {"ip": "10.5.0.2"})
    with pytest.raises(ValidationError, match="already used"):
        mgr.resolve([_spec(ip="10.5.0.2")])


def test_resolve_reports_a_full_network(tmp_path):
    mgr = _manager(tmp_path)
    specs = [_spec(name=f"n{i}", network="10.7.0.0/30", gateway="10.7.0.1") for i in range(2)]
    with pytest.raises(StateError, match="10.7.0.0/30"):
        mgr.resolve(specs)


def test_snapshot_refused_on_production_unless_forced(tmp_path):
    spec = _spec(profile_type="overlayfs")
    with pytest.raises(ValidationError, match="production"):
        _manager(tmp_path).converge([spec])
    with pytest.raises(ValidationError, match="snapshot"):
        _manager(tmp_path).converge([_spec(snapshot=True)])
    # forced: gets past the policy and fails later, on the missing origin container
    with pytest.raises(StateError, match="origin container 'base' does not exist"):
        _manager(tmp_path, force_snapshot=True).converge([_spec(profile_type="overlayfs")])


def test_check_mode_plans_a_scratch_create_without_touching_anything(tmp_path):
    mgr = _manager(tmp_path)
    results, diffs, changed = mgr.converge([_spec(profile_type="dir-scratch")])
    assert changed and results[0]["actions"] == [
        "create from template debian (dir)", "write config", "start", "guest setup",
        "save settings"]
    assert results[0]["settings"]["password"] == "********"
    assert "lxc.net.0.ipv4.address = 10.5.0.2/16" in diffs[0]["after"]
    assert not (tmp_path / "settings").exists() and not (tmp_path / "lxc").exists()


# ---- destroy keeps an lvm volume unless asked; btrfs/zfs need host support -----------------

class FakeLxcTools:
    """Fake executor for LxcBackend: records argv, answers lxc-info/stat/zfs."""

    def __init__(self, state="STOPPED", fstype="ext2/ext3", zfs_rc=127, zfs_out=""):
        self.state, self.fstype, self.zfs_rc, self.zfs_out = state, fstype, zfs_rc, zfs_out
        self.calls = []
        self.config_at_destroy = None

    def __call__(self, argv, timeout=None, check=True, data=None, secrets=()):
        from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result
        from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
        tool = os.path.basename(argv[0])
        self.calls.append([tool] + list(argv[1:]))
        if tool == "lxc-info":
            return Result(argv, 0, self.state + "\n", "")
        if tool == "lxc-destroy":
            path = argv[argv.index("-P") + 1]
            name = argv[argv.index("-n") + 1]
            self.config_at_destroy = open(os.path.join(path, name, "config"),
                                          encoding="utf-8").read()
        if tool == "stat":
            return Result(argv, 0, self.fstype + "\n", "")
        if tool == "zfs":
            if self.zfs_rc and check:
                raise CommandError(argv, self.zfs_rc, "", "zfs: not found")
            return Result(argv, self.zfs_rc, self.zfs_out, "")
        return Result(argv, 0, "", "")


def _lvm_container(tmp_path, state="STOPPED", **kwargs):
    lxcpath = tmp_path / "lxc"
    (lxcpath / "db1.test.com").mkdir(parents=True)
    (lxcpath / "db1.test.com" / "config").write_text(
        "lxc.rootfs.path = lvm:/dev/lxc/db1.test.com\nlxc.uts.name = db1.test.com\n")
    tools = FakeLxcTools(state)
    mgr = _lxc.LxcGuestManager(_lxc.LxcBackend(lxcpath, executor=tools),
                               _lxc.SettingsStore(tmp_path / "settings"), host_id="h", **kwargs)
    return mgr, tools


def test_destroy_keeps_the_lvm_volume_unless_asked(tmp_path):
    mgr, tools = _lvm_container(tmp_path, state="RUNNING")
    assert mgr.backend.rootfs_volume("db1.test.com") == "/dev/lxc/db1.test.com"
    results, _d, changed = mgr.converge([_spec(name="db1.test.com", state="absent")])
    assert changed and results[0]["actions"] == ["keep volume /dev/lxc/db1.test.com", "destroy"]
    assert results[0]["kept_volume"] == "/dev/lxc/db1.test.com"
    assert "lxc.rootfs.path" not in tools.config_at_destroy
    assert [c[0] for c in tools.calls if c[0] not in ("lxc-info", "lxc-ls")] == [
        "lxc-stop", "lxc-destroy"]

    mgr, tools = _lvm_container(tmp_path / "2", remove_volume=True)
    results, _d, _c = mgr.converge([_spec(name="db1.test.com", state="absent")])
    assert results[0]["actions"] == ["destroy"] and "kept_volume" not in results[0]
    assert "lxc.rootfs.path = lvm:/dev/lxc/db1.test.com" in tools.config_at_destroy


class FakeLvmTools(FakeLxcTools):
    """Fake executor with LVM: volume groups and volumes, lxc-copy writing the clone's config,
    mount/umount recording what was written into the mounted root."""

    def __init__(self, lxcpath, vgs=("lxc",), lvs=()):
        super().__init__()
        self.lxcpath, self.vgs, self.lvs = lxcpath, set(vgs), set(lvs)
        self.mounted, self.written = {}, {}

    def __call__(self, argv, timeout=None, check=True, data=None, secrets=()):
        from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result
        from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
        tool = os.path.basename(argv[0])
        if tool == "vgs":
            self.calls.append([tool] + list(argv[1:]))
            if argv[-1] not in self.vgs:
                raise CommandError(argv, 5, "", f'  Volume group "{argv[-1]}" not found')
            return Result(argv, 0, f"  {argv[-1]}\n", "")
        if tool == "lvs":
            self.calls.append([tool] + list(argv[1:]))
            found = argv[-1] in self.lvs
            return Result(argv, 0 if found else 5, f"  {argv[-1].split('/')[1]}\n" if found else "", "")
        if tool == "lxc-copy":
            new = argv[argv.index("-N") + 1]
            (self.lxcpath / new).mkdir()
            (self.lxcpath / new / "config").write_text(
                f"lxc.rootfs.path = lvm:/dev/lxc/{new}\nlxc.uts.name = {new}\n")
        if tool == "mount":
            self.mounted[argv[-1]] = argv[-2]
        if tool == "umount":
            device = self.mounted.pop(argv[-1])
            for root, _dirs, files in os.walk(argv[-1], topdown=False):
                for name in files:
                    path = os.path.join(root, name)
                    self.written[(device, os.path.relpath(path, argv[-1]))] = open(path).read()
                    os.unlink(path)
                for name in _dirs:
                    os.rmdir(os.path.join(root, name))
        return super().__call__(argv, timeout, check, data, secrets)


def _lvm_host(tmp_path, origin_root="lvm:/dev/lxc/base", **kwargs):
    lxcpath = tmp_path / "lxc"
    (lxcpath / "base").mkdir(parents=True)
    (lxcpath / "base" / "config").write_text(f"lxc.rootfs.path = {origin_root}\n")
    tools = FakeLvmTools(lxcpath, **kwargs)
    mgr = _lxc.LxcGuestManager(_lxc.LxcBackend(lxcpath, executor=tools),
                               _lxc.SettingsStore(tmp_path / "settings"), host_id="h")
    return mgr, tools


def test_lvm_clone_sized_logged_and_its_root_prepared_through_a_mount(tmp_path):
    mgr, tools = _lvm_host(tmp_path)
    results, _d, changed = mgr.converge([_spec(profile_type="lvm", profile="xxxsmall",
                                               state="present")])
    assert changed and results[0]["actions"][:3] == [
        "clone base (lvm)", "write config", "prepare rootfs network"]
    copy = next(c for c in tools.calls if c[0] == "lxc-copy")
    assert copy[1:] == ["-P", str(tmp_path / "lxc"), "-l", "ERROR", "-o", "/dev/stderr", "-n",
                        "base", "-N", "web1.test.com", "-B", "lvm", "-L", "500M"]
    mount = next(c for c in tools.calls if c[0] == "mount")
    assert mount[1:4] == ["-o", "nosuid,nodev", "/dev/lxc/web1.test.com"]
    assert ["umount", mount[4]] in tools.calls and not os.path.exists(mount[4])
    assert tools.written == {("/dev/lxc/web1.test.com", "etc/network/interfaces"): _lxc.INTERFACES}
    assert "warnings" not in results[0]


@pytest.mark.parametrize("kwargs, entry, error, match", [
    ({"vgs": ()}, {}, StateError, "LVM volume group 'lxc' is not usable: .*not found"),
    ({"origin_root": "dir:/var/lib/lxc/base/rootfs"}, {}, ValidationError,
     "field 'from_container' = 'base': is not an lvm container; lxc-copy clones only lvm roots"),
    ({"origin_root": "lvm:/dev/vg0/base", "vgs": ("lxc", "vg0")}, {}, ValidationError,
     "field 'vg_name' = 'lxc': the clone would go to volume group 'vg0'"),
    ({"lvs": ("lxc/web1.test.com",)}, {}, StateError,
     r"web1.test.com: LVM volume lxc/web1.test.com already exists \(kept by an earlier destroy"),
    ({"lvs": ("lxc/web1.test.com",)}, {"profile_type": "lvm-scratch"}, StateError,
     "LVM volume lxc/web1.test.com already exists"),
])
def test_lvm_checks_fail_before_anything_is_made(tmp_path, kwargs, entry, error, match):
    mgr, tools = _lvm_host(tmp_path, **kwargs)
    with pytest.raises(error, match=match):
        mgr.converge([_spec(**dict({"profile_type": "lvm"}, **entry))])
    assert not [c for c in tools.calls if c[0] in ("lxc-copy", "lxc-create", "mount")]


def test_destroy_check_mode_reports_the_kept_volume_and_changes_nothing(tmp_path):
    mgr, tools = _lvm_container(tmp_path, check_mode=True)
    results, _d, _c = mgr.converge([_spec(name="db1.test.com", state="absent")])
    assert results[0]["actions"] == ["keep volume /dev/lxc/db1.test.com", "destroy"]
    assert tools.config_at_destroy is None
    assert "lxc.rootfs.path" in (tmp_path / "lxc" / "db1.test.com" / "config").read_text()


def test_destroy_retries_an_origin_after_its_snapshot_clone(tmp_path):
    """lxc-destroy refuses an origin while a snapshot of it exists: the batch order must not matter."""
    lxcpath = tmp_path / "lxc"
    for name in ("base.test.com", "snap.test.com"):
        (lxcpath / name).mkdir(parents=True)
        (lxcpath / name / "config").write_text(f"lxc.uts.name = {name}\n")

    class FakeSnapshotTools(FakeLxcTools):
        """Fake: lxc-destroy of the origin fails while the snapshot clone exists."""

        def __call__(self, argv, timeout=None, check=True, data=None, secrets=()):
            from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
            if os.path.basename(argv[0]) == "lxc-destroy":
                name = argv[argv.index("-n") + 1]
                if name == "base.test.com" and (lxcpath / "snap.test.com").exists():
                    raise CommandError(argv, 1, "", "base.test.com has snapshots")
                self.calls.append(["lxc-destroy", name])
                import shutil
                shutil.rmtree(lxcpath / name)
                return super().__call__(["lxc-info"], timeout, check, data, secrets)
            return super().__call__(argv, timeout, check, data, secrets)

    tools = FakeSnapshotTools()
    mgr = _lxc.LxcGuestManager(_lxc.LxcBackend(lxcpath, executor=tools),
                               _lxc.SettingsStore(tmp_path / "settings"), host_id="h")
    results, _d, changed = mgr.converge([_spec(name="base.test.com", state="absent"),
                                         _spec(name="snap.test.com", state="absent")])
    assert changed and [r["name"] for r in results] == ["base.test.com", "snap.test.com"]
    assert results[0]["actions"] == ["retried after the other destroys", "destroy"]
    assert [c[1] for c in tools.calls if c[0] == "lxc-destroy"] == ["snap.test.com",
                                                                    "base.test.com"]
    assert not lxcpath.joinpath("base.test.com").exists()


@pytest.mark.parametrize("value, volume", [("lvm:/dev/vg0/a", "/dev/vg0/a"), ("/dev/vg0/a", "/dev/vg0/a"),
                                           ("dir:/var/lib/lxc/a/rootfs", None),
                                           ("overlay:/b/rootfs:/a/delta0", None), ("", None)])
def test_rootfs_volume(tmp_path, value, volume):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config").write_text(f"lxc.rootfs.path = {value}\n" if value else "")
    assert _lxc.LxcBackend(tmp_path).rootfs_volume("a") == volume


def test_btrfs_and_zfs_are_checked_before_the_first_create(tmp_path):
    tools = FakeLxcTools()
    backend = _lxc.LxcBackend(tmp_path / "lxc", executor=tools)
    mgr = _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "s"), host_id="h")
    with pytest.raises(StateError, match="btrfs filesystem; .* is on ext2/ext3"):
        mgr.converge([_spec(profile_type="btrfs-scratch")])
    with pytest.raises(StateError, match="need ZFS on this host"):
        mgr.converge([_spec(profile_type="zfs-scratch")])
    tools.zfs_rc = 0
    with pytest.raises(StateError, match="'zfs list' shows none"):
        mgr.converge([_spec(profile_type="zfs-scratch")])
    tools.fstype, tools.zfs_out = "btrfs", "rpool\n"
    mgr = _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "s"), host_id="h")
    results, _d, _c = mgr.converge([_spec(name="a.test.com", profile_type="btrfs-scratch"),
                                    _spec(name="b.test.com", profile_type="zfs-scratch")])
    created = [c for c in tools.calls if c[0] == "lxc-create"]
    assert [c[c.index("-B") + 1] for c in created] == ["btrfs", "zfs"]
    assert ["stat", "-f", "-c", "%T", str(tmp_path)] in tools.calls     # nearest existing dir


def test_real_stat_reports_this_hosts_filesystem(tmp_path):
    """Real ``stat -f``: the temp dir here is not btrfs, so btrfs is refused naming its type."""
    backend = _lxc.LxcBackend(tmp_path)
    with pytest.raises(StateError, match=f"{tmp_path} is on (?!btrfs)"):
        backend.check_backing("btrfs")


# ---- rootfs writes ---------------------------------------------------------------------------

def test_safe_write_creates_dirs_and_refuses_symlinks(tmp_path):
    root = tmp_path / "rootfs"
    root.mkdir()
    _lxc.safe_write(str(root), "etc/network/interfaces", _lxc.INTERFACES)
    assert "iface eth0 inet manual" in (root / "etc/network/interfaces").read_text()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "evil").symlink_to(outside)
    with pytest.raises(OSError):
        _lxc.safe_write(str(root), "evil/x", "no")
    (root / "etc/resolv.conf").symlink_to(tmp_path / "host-file")
    _lxc.safe_write(str(root), "etc/resolv.conf", "nameserver 10.5.0.1\n")
    assert not (tmp_path / "host-file").exists()
    assert (root / "etc/resolv.conf").read_text() == "nameserver 10.5.0.1\n"
    with pytest.raises(ValueError):
        _lxc.safe_write(str(root), "../x", "no")


# ---- real LXC on this machine ---------------------------------------------------------------


def _real_specs(testbed):
    defaults = {"from_container": testbed["BASE"], "bridge": testbed["BRIDGE"],
                "users": ["root", "sysadmin"], "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK"
                                                            "vmantestkeyonly test@vman"]}
    entries = [
        {"name": "t-dir.test.com", "profile_type": "dir"},
        {"name": "t-ovl.test.com", "profile_type": "overlayfs"},
        {"name": "t-scratch.test.com", "profile_type": "dir-scratch", "image": "debian",
         "template_options": ["-r", testbed["RELEASE"]], "dnsservers": ["10.5.0.1"]},
    ]
    return _lxc.build_specs(entries, defaults)


def _shadow_matches(backend, name, user, password):
    """The guest's shadow hash verifies ``password`` (host libcrypt knows yescrypt and sha512)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # pylint: disable=deprecated-module
    hashed = backend.attach(name, ["getent", "shadow", user]).stdout.split(":")[1]
    assert hashed.startswith("$"), hashed
    return crypt.crypt(password, hashed) == hashed and crypt.crypt("wrong", hashed) != hashed


@pytest.mark.real
def test_real_clone_scratch_start_attach_reuse_stop_destroy(lxc_testbed, tmp_path):
    backend = _lxc.LxcBackend(lxc_testbed["LXC_PATH"])
    store = _lxc.SettingsStore(tmp_path / "settings")

    def manager():
        return _lxc.LxcGuestManager(backend, store, host_id="devhost10.local", production=False)

    t0 = time.monotonic()
    results, _diffs, changed = manager().converge(_real_specs(lxc_testbed))
    created_s = time.monotonic() - t0
    assert changed and all(r["created"] for r in results), results
    by_name = {r["name"]: r for r in results}
    assert by_name["t-dir.test.com"]["actions"][0] == "clone vman-base (dir)"
    assert by_name["t-ovl.test.com"]["actions"][0] == "clone vman-base (overlayfs)"
    assert by_name["t-scratch.test.com"]["actions"][0] == "create from template debian (dir)"
    assert config_rootfs(backend, "t-ovl.test.com").startswith("overlay:")

    boot = {}
    for name in by_name:
        t1 = time.monotonic()
        assert _lxc.wait_running_system(backend, name, timeout=90) in ("running", "degraded")
        boot[name] = round(time.monotonic() - t1, 2)
        settings = store.load(name)
        # lxc-attach runs inside: the address lxc configured, the hostname, no DHCP client
        addr = backend.attach(name, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f"inet {settings['ip']}/16" in addr
        assert backend.attach(name, ["hostname"]).stdout.strip() == name
        assert backend.ipv4(name) == [settings["ip"]]
        assert settings["mac"] == _lxc.config_value(backend.read_config(name), "lxc.net.0.hwaddr")
        assert _shadow_matches(backend, name, "sysadmin", settings["password"])
        keys = backend.attach(name, ["cat", "/home/sysadmin/.ssh/authorized_keys"]).stdout
        assert "test@vman" in keys
        mode = backend.attach(name, ["stat", "-c", "%a %U", "/home/sysadmin/.ssh/authorized_keys"])
        assert mode.stdout.split() == ["600", "sysadmin"]
        assert stat.S_IMODE(os.stat(store.path(name)).st_mode) == 0o600
    resolv = backend.attach("t-scratch.test.com", ["cat", "/etc/resolv.conf"]).stdout
    assert resolv == "nameserver 10.5.0.1\n"
    ips = {store.load(n)["ip"] for n in by_name}
    assert len(ips) == 3

    # second run: nothing to do, same generated values
    before = {n: store.load(n) for n in by_name}
    results, _diffs, changed = manager().converge(_real_specs(lxc_testbed))
    assert not changed and all(r["actions"] == [] for r in results), results
    assert {n: store.load(n) for n in by_name} == before

    # stopped, then absent: container and settings gone
    specs = _real_specs(lxc_testbed)
    for spec in specs:
        spec.state = "stopped"
    t2 = time.monotonic()
    manager().converge(specs)
    stop_s = time.monotonic() - t2
    assert {backend.state(n) for n in by_name} == {"STOPPED"}
    assert {n: store.load(n) for n in by_name} == before
    for spec in specs:
        spec.state = "absent"
    results, _diffs, changed = manager().converge(specs)
    assert changed and all(r["actions"] == ["destroy", "delete settings"] for r in results)
    assert not any(backend.exists(n) for n in by_name) and store.names() == []
    assert not os.path.exists(os.path.join(lxc_testbed["LXC_PATH"], "t-dir.test.com"))
    print(f"\nLXC timings: create 3 (dir clone, overlayfs clone, scratch) + start + guest setup "
          f"{created_s:.1f} s; systemd running after {boot}; stop 3 {stop_s:.1f} s; "
          f"template {lxc_testbed.get('TEMPLATE_CACHE', 'warm (base existed)')} "
          f"{lxc_testbed.get('TEMPLATE_SECONDS', '-')} s")


def config_rootfs(backend, name):
    return _lxc.config_value(backend.read_config(name), "lxc.rootfs.path")


@pytest.mark.real
def test_real_vg_check_reports_missing_volume_group(lxc_testbed):
    backend = _lxc.LxcBackend(lxc_testbed["LXC_PATH"])
    with pytest.raises(StateError, match="volume group 'vman-no-such-vg'"):
        backend.check_vg("vman-no-such-vg")


@pytest.mark.real
def test_real_lxc_destroy_leaves_a_forgotten_root_alone(lxc_testbed, tmp_path):
    """What keeps an lvm volume, shown with a real lxc-destroy on a dir root outside lxcpath.

    Without ``lxc.rootfs.path`` lxc-destroy removes only the container directory; with it, it
    destroys the root too (for lvm: lvremove). No device-mapper here, so a dir root stands in.
    """
    backend = _lxc.LxcBackend(lxc_testbed["LXC_PATH"])
    for name, forget in (("t-keep.test.com", True), ("t-drop.test.com", False)):
        root = tmp_path / name
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "hostname").write_text(name + "\n")
        os.makedirs(os.path.join(lxc_testbed["LXC_PATH"], name))
        backend.write_config(name, f"lxc.rootfs.path = dir:{root}\nlxc.uts.name = {name}\n")
        assert backend.state(name) == "STOPPED"
        if forget:
            backend.forget_rootfs(name)
            assert "lxc.rootfs.path" not in backend.read_config(name)
        backend.destroy(name)
        assert not backend.exists(name)
        assert (root / "etc" / "hostname").exists() == forget


@pytest.fixture
def btrfs_lxcpath(tmp_path):
    """An lxcpath on a real btrfs filesystem: a sparse file, mkfs.btrfs, a loop mount."""
    import shutil
    import subprocess
    with open("/proc/filesystems", encoding="utf-8") as handle:
        if "btrfs" not in handle.read():
            pytest.skip("this kernel has no btrfs")
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("btrfs-progs missing (make real-lxc installs it)")
    image, mnt = tmp_path / "btrfs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(2 * 1024 ** 3)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, timeout=120)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True, timeout=60)
    try:
        yield mnt / "lxc"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=60)


@pytest.mark.real
def test_real_btrfs_scratch_and_snapshot_clone(lxc_testbed, btrfs_lxcpath, tmp_path):
    """btrfs where the host supports it: lxc_path on btrfs, scratch create + snapshot clone."""
    import subprocess
    backend = _lxc.LxcBackend(btrfs_lxcpath)
    backend.check_backing("btrfs")                      # the real filesystem type passes
    mgr = _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "settings"),
                               host_id="devhost10.local", production=False)
    entries = [{"name": "b-scratch.test.com", "profile_type": "btrfs-scratch", "state": "present",
                "template_options": ["-r", lxc_testbed["RELEASE"]]},
               {"name": "b-clone.test.com", "profile_type": "btrfs", "snapshot": True,
                "from_container": "b-scratch.test.com"}]
    specs = _lxc.build_specs(entries, {"bridge": lxc_testbed["BRIDGE"]})
    results, _d, _c = mgr.converge(specs)
    try:
        assert [r["actions"][0] for r in results] == [
            "create from template debian (btrfs)", "clone b-scratch.test.com (btrfs)"]
        for name in ("b-scratch.test.com", "b-clone.test.com"):
            root = config_rootfs(backend, name)
            assert root.startswith("btrfs:"), root
            show = subprocess.run(["btrfs", "subvolume", "show", root.split(":", 1)[1]],
                                  capture_output=True, text=True, check=False, timeout=60)
            assert show.returncode == 0, show.stderr
        assert backend.state("b-clone.test.com") == "RUNNING"
        assert backend.attach("b-clone.test.com", ["hostname"]).stdout.strip() == "b-clone.test.com"
    finally:
        for spec in specs:
            spec.state = "absent"
        mgr.converge(specs)
    assert not backend.exists("b-clone.test.com") and not backend.exists("b-scratch.test.com")


@pytest.mark.real
def test_real_batch_destroy_of_an_origin_and_its_overlay_snapshot(lxc_testbed, tmp_path):
    """lxc-destroy refuses an origin while its overlay snapshot exists; the batch retries it."""
    backend = _lxc.LxcBackend(lxc_testbed["LXC_PATH"])
    mgr = _lxc.LxcGuestManager(backend, _lxc.SettingsStore(tmp_path / "settings"),
                               host_id="devhost10.local", production=False)
    specs = _lxc.build_specs(
        [{"name": "o-origin.test.com", "profile_type": "dir", "from_container": lxc_testbed["BASE"]},
         {"name": "o-snap.test.com", "profile_type": "overlayfs",
          "from_container": "o-origin.test.com"}],
        {"bridge": lxc_testbed["BRIDGE"], "state": "present"})
    mgr.converge(specs)
    assert backend.state("o-snap.test.com") == "STOPPED"
    for spec in specs:
        spec.state = "absent"
    results, _d, changed = mgr.converge(specs)          # origin first in the batch
    assert changed and results[0]["actions"][0] == "retried after the other destroys", results
    assert not backend.exists("o-origin.test.com") and not backend.exists("o-snap.test.com")
