# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 13 (items 2, 4, 7, 9): every validating regex refuses a trailing newline, free text
refuses control characters, huge integers give a validation error (not a traceback), the LXC
password cannot inject a chpasswd line, and an NFS root needs a server."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import (
    _callback, _dracut, _guest_provision, _install_seed, _kvm_provision, _libvirt, _lxc, _netconf,
    _rootfs, _spec, _sshkeys, _units, _vm_request, _vm_secret, _vm_snapshot, _xen_vman, _xl)
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    ValidationError, check_int, check_line, safe_repr)

HUGE = 10 ** 5000  # past Python's 4300-digit int->str limit

SPEC_BASE = {"org": "acme", "name": "web", "os": {"type": "debian", "version": "12"},
             "interfaces": [{"ip": "10.0.0.15"}]}
SPEC_DEFAULTS = {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}


def _spec_vm(**over):
    vm = dict(SPEC_BASE)
    vm.update(over)
    return _spec.normalize(vm, SPEC_DEFAULTS)


def _spec_iface(**over):
    return _spec_vm(interfaces=[dict({"ip": "10.0.0.15"}, **over)])


def _spec_default(**over):
    return _spec.normalize(dict(SPEC_BASE), dict(SPEC_DEFAULTS, **over))


def _kvm_vm(**extra):
    vm = {"metadata": {"name": "gp-a", "libvirt_pool_dir": "/pool"}, "arch": "x86_64"}
    vm["metadata"].update(extra.pop("metadata", {}))
    vm.update(extra)
    return vm


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEw8Y2jW1kYd7k3a0Y9o0h2Q3w8vQ9o1bWQm1o3m1o3m admin@x"

#: (id, callable taking the value, a valid value, the field the error must name)
CASES = [
    ("spec.name", lambda v: _spec_vm(name=v), "web", "name"),
    ("spec.org", lambda v: _spec_vm(org=v), "acme", "org"),
    ("spec.os.type", lambda v: _spec_vm(os={"type": v, "version": "12"}), "debian", "os.type"),
    ("spec.os.version", lambda v: _spec_vm(os={"type": "debian", "version": v}), "12",
     "os.version"),
    ("spec.cpu_str", lambda v: _spec_vm(cpu_str=v), "all,^1", "cpu_str"),
    ("spec.filesystem", lambda v: _spec_vm(filesystem=v), "ext4", "filesystem"),
    ("spec.bridge", lambda v: _spec_iface(bridge=v), "xenbr0", "interfaces[0].bridge"),
    ("spec.vifname", lambda v: _spec_iface(vifname=v), "web.0", "interfaces[0].vifname"),
    ("spec.script", lambda v: _spec_iface(script=v), "vif-bridge", "interfaces[0].script"),
    ("spec.option_key", lambda v: _spec_vm(additional_xen_options={v: "1"}), "on_crash",
     "additional_xen_options"),
    ("spec.iscsi_server", lambda v: _spec_default(iscsi_server=v), "10.0.0.3", "iscsi_server"),
    ("spec.iscsi_base_wwn", lambda v: _spec_default(iscsi_base_wwn=v), "iqn.2024-01.org.x",
     "iscsi_base_wwn"),
    ("netconf.hostname", lambda v: _netconf.check_hostname("p", v), "web1.example.org",
     "hostname"),
    ("netconf.range", lambda v: _netconf.normalise("p", ranges=[{"hostname": v, "count": 1}]),
     "web{n}.example.org", "hostname"),
    ("sshkeys.hostname", _sshkeys.validate_hostname, "web1.example.org", "hostname"),
    ("install_seed.hostname", lambda v: _install_seed.seed_files(hostname=v), "web1.example.org",
     "hostname"),
    ("install_seed.token", lambda v: _install_seed.seed_files(
        token=v, callback_url="http://10.0.0.1:8080/"), "A" * 20, "token"),
    ("callback.vm", _callback.validate_vm, "acme-web", "vm"),
    ("vm_secret.name", lambda v: _vm_secret.check_name("acme-web", v), "root_password", "name"),
    ("units.path", lambda v: _units.check_path("mount_base", v), "/mnt/vms", "mount_base"),
    ("units.env", lambda v: _units._env_value("portal", v), "10.0.0.3:3260", "portal"),
    ("dracut.module", lambda v: _dracut.check_modules([v]), "nfs", "modules[0]"),
    ("dracut.version", lambda v: _dracut.check_version("kernel", v), "6.1.0-18-amd64", "kernel"),
    ("dracut.path", lambda v: _dracut.check_path("dest", v), "/etc/xen", "dest"),
    ("libvirt.snapshot", lambda v: _libvirt.validate_snapshot_name("d", v), "clean", "name"),
    ("kvm.domain", lambda v: _kvm_provision.domain_name(_kvm_vm(metadata={"name": v})), "gp-a",
     "metadata.name"),
    ("kvm.devname", lambda v: _kvm_provision.disks(_kvm_vm(disks=[{"src": "a.raw", "devname": v}])),
     "vda", "disks[0].devname"),
    ("kvm.size", lambda v: _kvm_provision.disks(_kvm_vm(disks=[{"src": "/d/b.raw", "type": "raw", "size": v}])), "2G",
     "disks[0].size"),
    ("kvm.mac", lambda v: _kvm_provision.interfaces(_kvm_vm(net=[{"mac": v}])),
     "52:54:00:12:34:56", "net[0].mac"),
    ("xen_vman.xl_word", lambda v: _xen_vman.xl_conf_lines(
        {"xen_vman_default_network_script": v}), "vif-bridge",
     "xen_vman_default_network_script"),
    ("guest_provision.revision", _guest_provision.revision, "r1", "revision_id"),
    ("guest_provision.project", lambda v: _guest_provision.init_snapshot_name(v, "r1"), "proj",
     "project_id"),
    ("rootfs.package", lambda v: _rootfs.map_packages([v], "bookworm"), "openssh-server",
     "packages"),
    ("rootfs.user", _rootfs.check_user, "admin", "user"),
    ("rootfs.mirror", _rootfs.check_mirror, "http://deb.debian.org/debian", "mirror"),
    ("lxc.name", _lxc.validate_name, "web1", "name"),
    ("lxc.user", _lxc.validate_user, "admin", "users"),
    ("vm_request.name", _vm_request.validate_request, "web", "name"),
    ("vm_request.allocator", lambda v: _vm_request.validate_request("web", v), "svc", "allocator"),
    ("vm_request.hypervisor", lambda v: _vm_request.validate_request(
        "web", "svc", {"hypervisor": v}), "lxchost1", "hypervisor"),
    ("vm_request.flavor", lambda v: _vm_request.validate_request("web", "svc", {"flavor": v}),
     "small", "flavor"),
]

# suffixes that must never pass a name check
HOSTILE_SUFFIXES = ["\n", "\r\n", "\x00", "\nroot"]


@pytest.mark.parametrize("case_id, call, good, field", CASES, ids=[c[0] for c in CASES])
def test_valid_value_passes(case_id, call, good, field):
    call(good)


@pytest.mark.parametrize("suffix", HOSTILE_SUFFIXES, ids=repr)
@pytest.mark.parametrize("case_id, call, good, field", CASES, ids=[c[0] for c in CASES])
def test_trailing_newline_refused(case_id, call, good, field, suffix):
    with pytest.raises(ValidationError) as err:
        call(good + suffix)
    assert err.value.field == field


def test_rootfs_suite_and_key_regexes_are_whole_string():
    assert _rootfs.SUITE_RE.fullmatch("bookworm") and not _rootfs.SUITE_RE.fullmatch("bookworm\n")
    with pytest.raises(ValidationError, match="public_keys"):
        _rootfs.render_authorized_keys([KEY + "\x1b[2J"])
    assert _rootfs.render_authorized_keys([KEY]) == KEY + "\n"


def test_xen_domain_file_name_newline_refused():
    # the report: a name "web\n" wrote the file "acme-web\n.cfg"
    with pytest.raises(ValidationError) as err:
        _xl.render(_spec_vm(name="web\n"))
    assert err.value.field == "name"


# ---- free text ---------------------------------------------------------------------------

CONTROL = ["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u202e"]


@pytest.mark.parametrize("char", CONTROL, ids=repr)
def test_free_text_refuses_control_characters(char):
    with pytest.raises(ValidationError) as err:
        _sshkeys.HostKeys("web1.example.org", ["ed25519"], comment=f"root@web{char}x")
    assert err.value.field == "comment"
    with pytest.raises(ValidationError) as err:
        _libvirt.snapshot_xml("clean", f"before upgrade{char}")
    assert err.value.field == "description"
    with pytest.raises(ValidationError) as err:
        _spec_vm(cmdline=f"console=hvc0{char}")
    assert err.value.field == "cmdline"


def test_free_text_plain_values_pass():
    assert _sshkeys.HostKeys("web1", ["ed25519"], comment="root@web1 (acme)").comment == \
        "root@web1 (acme)"
    assert _sshkeys.HostKeys("web1", ["ed25519"]).comment == "root@web1"
    assert "<description>before upgrade: ok</description>" in \
        _libvirt.snapshot_xml("clean", "before upgrade: ok")


def test_vm_snapshot_checks_description_before_any_work():
    class Conn:  # ensure() must refuse before it looks the domain up ... or right after
        def lookupByName(self, name):  # noqa: N802
            raise AssertionError("not reached")

    params = {"domain": "d", "name": "clean", "description": "x\ny", "state": "present"}
    with pytest.raises((ValidationError, AssertionError)) as err:
        _vm_snapshot.ensure(Conn(), params)
    if isinstance(err.value, ValidationError):
        assert err.value.field == "description"


@pytest.mark.parametrize("bad", ["a\nb", "a\x00", "\x1b[31m"], ids=repr)
def test_lxc_template_options_and_keys_single_line(bad):
    with pytest.raises(ValidationError):
        _lxc._no_newline(bad, "c1", "template_options")
    assert _lxc._no_newline("--release bookworm", "c1", "template_options")


# ---- item 4: chpasswd injection through the LXC password ----------------------------------

@pytest.mark.parametrize("password", ["x\nroot:pwned", "x\rroot:pwned", "x\x00", "pw\t",
                                      "\u2028root:pwned", 12345, ["x"]], ids=repr)
def test_lxc_password_refused_without_echo(password):
    with pytest.raises(ValidationError) as err:
        _lxc.validate_password(password, "c1")
    assert err.value.field == "password"
    assert err.value.value is None
    if isinstance(password, str):
        assert password not in str(err.value) and "pwned" not in str(err.value)


@pytest.mark.parametrize("password", ["s3cret", "with:colon", "ünïcode spaces ok", None])
def test_lxc_password_accepted(password):
    assert _lxc.validate_password(password, "c1") == password


def test_lxc_build_spec_checks_password():
    merged = _lxc.merge_entry({"name": "web1.test.com", "password": "x\nroot:pwned"},
                              {"profile_type": "dir", "from_container": "base"})
    with pytest.raises(ValidationError) as err:
        _lxc.build_spec(merged)
    assert err.value.field == "password" and "pwned" not in str(err.value)
    merged["password"] = "fine:pw"
    assert _lxc.build_spec(merged).password == "fine:pw"


# ---- item 7: huge integers and unbounded counts -------------------------------------------

def test_safe_repr_never_raises():
    assert "digits" in safe_repr(HUGE)
    assert len(safe_repr("x" * 10000)) < 200
    assert safe_repr(-HUGE).startswith("<integer")

    class Bad:
        def __repr__(self):
            raise RuntimeError("no")

    assert safe_repr(Bad()) == "<Bad>"


@pytest.mark.parametrize("value", [HUGE, -HUGE, 65, 0, -1, True, "many", "1" * 5000, 1.5, None,
                                   [3]], ids=lambda v: safe_repr(v, 20))
def test_vm_request_count_refused_with_field(value):
    with pytest.raises(ValidationError) as err:
        _vm_request.validate_request("web", "svc", {"count": value} if value is not None
                                     else {"count": [None]})
    assert err.value.field == "count"
    assert len(str(err.value)) < 400


@pytest.mark.parametrize("value", [1, 64, "3"])
def test_vm_request_count_accepted(value):
    _vm_request.validate_request("web", "svc", {"count": value})


@pytest.mark.parametrize("value", ["$(id)", "a\x00b", "../etc", "..", "a b", "-x", "a;b", "",
                                   "x" * 300, 5], ids=repr)
@pytest.mark.parametrize("field", ["hypervisor", "flavor"])
def test_vm_request_hypervisor_flavor_like_names(field, value):
    with pytest.raises(ValidationError) as err:
        _vm_request.validate_request("web", "svc", {field: value})
    assert err.value.field == field


@pytest.mark.parametrize("count", [HUGE, 1000000000, _netconf.MAX_RANGE_COUNT + 1, 0, -5, True,
                                   "ten"], ids=lambda v: safe_repr(v, 20))
def test_netconf_range_count_bounded(count):
    with pytest.raises(ValidationError) as err:
        _netconf.expand_range("p", {"hostname": "web{n}", "count": count})
    assert err.value.field == "ranges.count"
    assert len(str(err.value)) < 400


def test_netconf_range_count_at_cap_and_start():
    assert len(_netconf.expand_range("p", {"hostname": "w{n}", "count": 3, "start": 0})) == 3
    for start in (HUGE, -1, "x", True):
        with pytest.raises(ValidationError) as err:
            _netconf.expand_range("p", {"hostname": "w{n}", "count": 1, "start": start})
        assert err.value.field == "ranges.start"
    with pytest.raises(ValidationError) as err:  # a gigabyte-wide placeholder
        _netconf.expand_range("p", {"hostname": "w{n:0999999999d}", "count": 1})
    assert err.value.field == "ranges.hostname"
    assert _netconf.expand_range("p", {"hostname": "w{n:03d}", "count": 1})[0]["hostname"] == \
        "w001"


@pytest.mark.parametrize("memory", [HUGE, -HUGE, "9" * 5000], ids=["huge", "-huge", "text"])
def test_spec_memory_huge_is_validation_error(memory):
    with pytest.raises(ValidationError) as err:
        _spec_vm(memory=memory)
    assert err.value.field == "memory"
    assert len(str(err.value)) < 400


def test_xl_config_filter_huge_memory_is_filter_error():
    pytest.importorskip("ansible")
    from ansible.errors import AnsibleFilterError
    from ansible_collections.vman.lifecycle.plugins.filter import xen
    with pytest.raises(AnsibleFilterError, match="memory"):
        xen.xl_config(dict(SPEC_BASE, memory=HUGE), SPEC_DEFAULTS)


def test_check_int_and_check_line():
    assert check_int("o", "f", " 7 ", 1, 9) == 7
    for bad in ("+-5", "٣", "1e3", HUGE, True, 2.0):
        with pytest.raises(ValidationError):
            check_int("o", "f", bad, 1, 9)
    assert check_line("o", "f", "plain text: ok") == "plain text: ok"
    with pytest.raises(ValidationError, match="'x'"):
        check_line("o", "f", "axb", forbid="x")
    with pytest.raises(ValidationError, match=r"value hidden"):
        check_line("o", "f", "a\nb", secret=True)


# ---- item 9: an NFS root without a server ----------------------------------------------------

@pytest.mark.parametrize("base", ["/srv/nfs", ":/srv/nfs", "srv/nfs", "10.0.0.2:", "10.0.0.2:srv",
                                  "10.0.0.2:/srv nfs", "-x:/srv", "10.0.0.2:/srv,vers=3"])
def test_nfsroot_without_server_refused(base):
    with pytest.raises(ValidationError) as err:
        _spec.normalize(dict(SPEC_BASE), dict(SPEC_DEFAULTS, nfsroot_base=base))
    assert err.value.field == "nfsroot_base"
    assert repr(base) in str(err.value)


@pytest.mark.parametrize("base", ["10.0.0.2:/srv/nfs", "10.0.0.2:/srv/nfs/", "nfs.example.org:/x",
                                  "[2001:db8::2]:/srv/nfs", "s:/x"])
def test_nfsroot_with_server_accepted(base):
    spec = _spec.normalize(dict(SPEC_BASE), dict(SPEC_DEFAULTS, nfsroot_base=base))
    assert f"nfsroot={base.rstrip('/')}/acme/web-root " in _xl.kernel_cmdline(spec)


def test_nfsroot_not_needed_with_own_cmdline():
    # a VM with its own cmdline never renders nfsroot=, so the base is not checked there
    spec = _spec.normalize(dict(SPEC_BASE, cmdline="root=/dev/xvda"),
                           dict(SPEC_DEFAULTS, nfsroot_base="/srv/nfs"))
    assert spec.cmdline == "root=/dev/xvda"
