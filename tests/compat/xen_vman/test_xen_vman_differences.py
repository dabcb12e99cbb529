# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each deliberate difference of docs/migrating-from-xen_vman.md (D01 ...), asserted as the
document states it; one test per id, named test_dNN_..., and a check that no id goes untested."""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.filter.xen_vman_plan import FilterModule
from ansible_collections.vman.lifecycle.plugins.module_utils import _rootfs, _spec, _units, _xen_vman, _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

HERE = os.path.dirname(__file__)
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DOC = os.path.join(ROOT, "docs", "migrating-from-xen_vman.md")
ROLE = os.path.join(ROOT, "roles", "xen_vman")
PLAN = FilterModule().filters()["xen_vman_plan"]
BASE = {"xen_vman_nfsroot_base": "10.0.0.2:/srv/nfs", "xen_vman_iscsi_server": "10.0.0.3",
        "xen_vman_iscsi_base_wwn": "iqn.2019-01.de.stuvus.xen"}


def vm(**over):
    out = {"org": "stuvus", "name": "web01", "os": {"type": "debian", "version": "bookworm"},
           "interfaces": [{"ip": "10.0.0.21", "mac": "00:16:3e:00:00:21"}]}
    out.update(over)
    return out


def spec_of(role_vars=None, **over):
    """The spec the role's plan gives (module_utils directly: errors stay ValidationError)."""
    defaults = _xen_vman.role_defaults(dict(BASE, **(role_vars or {})))
    plan = dict(_xen_vman.plan([vm(**over)], defaults), defaults=defaults)
    return _spec.normalize_all(plan["domain_vms"], plan["defaults"], "6.1.0-18-amd64")[0]


def xl_of(role_vars=None, **over):
    return _xl.parse(_xl.render(spec_of(role_vars, **over), created="x"))


def doc_rows() -> dict:
    with open(DOC, encoding="utf-8") as handle:
        return {m.group(1): m.group(0) for m in re.finditer(r"^\| (D\d\d) \|.*$", handle.read(), re.M)}


def test_every_documented_difference_is_tested():
    here = {name[5:8].upper() for name in dir(sys.modules[__name__]) if re.fullmatch(r"test_d\d\d_\w+", name)}
    assert here == set(doc_rows()), sorted(set(doc_rows()) ^ here)


def test_d01_address_without_prefix_gets_24_not_32():
    assert "ip=10.0.0.21:::255.255.255.0:web01:eth0:off" in xl_of()["cmdline"]
    assert "ip=10.0.0.21:::255.255.255.192:" in xl_of(interfaces=[{"ip": "10.0.0.21/26"}])["cmdline"]


def test_d02_type_instead_of_builder():
    assert xl_of()["type"] == "pv" and "builder" not in xl_of()
    assert xl_of(builder="hvm")["type"] == "hvm"


def test_d03_vif_names_its_script_and_mtu():
    out = xl_of({"xen_vman_default_network_script": "vif-route"},
                interfaces=[{"ip": "10.0.0.21", "mtu": 1400, "bridge": "xenbr0"}])
    assert out["vif"] == ["ip=10.0.0.21,bridge=xenbr0,mtu=1400,script=vif-route"]


def test_d04_iscsi_root_read_only_until_fstab():
    spec = spec_of(storage_type="iscsi")
    assert _xl.kernel_cmdline(spec) == "root=/dev/xvda rootfstype=ext4"
    assert "/dev/xvda / ext4 defaults,errors=remount-ro 0 1" in _rootfs.render_fstab(spec)


def test_d05_iscsi_server_without_port_gets_3260():
    disk = xl_of(storage_type="iscsi")["disk"][0]
    assert disk.endswith("target=/dev/disk/by-path/ip-10.0.0.3:3260-iscsi-"
                         "iqn.2019-01.de.stuvus.xen:stuvus-web01-lun-0")
    assert "ip-[fd00::3]:3260-iscsi-" in xl_of({"xen_vman_iscsi_server": "fd00::3"},
                                               storage_type="iscsi")["disk"][0]


def test_d06_nfs_base_joined_with_one_slash_server_required():
    with_slash = xl_of({"xen_vman_nfsroot_base": "10.0.0.2:/srv/nfs/"})["cmdline"]
    without = xl_of({"xen_vman_nfsroot_base": "10.0.0.2:/srv/nfs"})["cmdline"]
    assert with_slash == without and "nfsroot=10.0.0.2:/srv/nfs/stuvus/web01-root " in without
    with pytest.raises(ValidationError, match="nfsroot_base"):
        spec_of({"xen_vman_nfsroot_base": "/srv/nfs"})


def test_d07_nfs_ip_with_gateway_and_hostname_no_post_up():
    spec = spec_of({"xen_vman_default_gateway": "10.0.0.1"})
    assert _xl.kernel_cmdline(spec).endswith(" ip=10.0.0.21::10.0.0.1:255.255.255.0:web01:eth0:off net.ifnames=0")
    assert "post-up" not in _rootfs.render_interfaces(spec)


def test_d08_spice_needs_a_password_and_hvm():
    with pytest.raises(ValidationError, match="spicepasswd"):
        spec_of(builder="hvm", spice=True)
    with pytest.raises(ValidationError, match="builder 'hvm'"):
        spec_of(spice=True, spicepasswd="x")
    assert xl_of(builder="hvm", spice=True, spice_unauthenticated=True)["spicedisable_ticketing"] == 1
    assert xl_of(builder="hvm", spice=True, spicepasswd="pw")["spicedisable_ticketing"] == 0


@pytest.mark.parametrize("mac", ["00:14:22", "00-14-22", "12345", "00:14:22:01:23"])
def test_d09_mac_six_octets_no_duplicates(mac):
    with pytest.raises(ValidationError, match="six hex octets"):
        spec_of(interfaces=[{"ip": "10.0.0.21", "mac": mac}])
    assert spec_of(interfaces=[{"ip": "10.0.0.21", "mac": "00-16-3E-00-00-21"}]).interfaces[0].mac == \
        "00:16:3e:00:00:21"
    with pytest.raises(Exception, match="is also the MAC"):
        PLAN([vm(), vm(name="web02", interfaces=[{"ip": "10.0.0.22", "mac": "00:16:3e:00:00:21"}])], BASE)


def test_d10_vm_options_honoured_dict_accepted_plain_text_quoted():
    out = xl_of({"xen_vman_default_additonal_xen_options": [["on_crash", '"preserve"']]},
                additional_xen_options={"maxmem": "2048", "on_reboot": "destroy"})
    assert (out["on_crash"], out["maxmem"], out["on_reboot"]) == ("preserve", 2048, "destroy")
    text = _xl.render(spec_of(additional_xen_options={"on_reboot": "destroy"}), created="x")
    assert 'on_reboot = "destroy"\n' in text


def test_d11_prepare_commands_argv_once_per_boot_each_must_succeed():
    unit = _units.render_prepare(_units.settings(prepare_commands=["modprobe xen-netback"],
                                                 prepare_timeout=120)).splitlines()
    assert 'ExecStart=modprobe "xen-netback"' in unit and "TimeoutStartSec=120" in unit
    assert "RemainAfterExit=yes" in unit                          # once per boot
    assert not any(line.startswith("ExecStart=-") for line in unit)   # each must succeed
    with pytest.raises(ValidationError, match="shell syntax"):
        _units.settings(prepare_commands=["echo 1 > /proc/sys/net/ipv4/ip_forward"])


def test_d12_guest_user_follows_ansible_user_sudo_drop_in():
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    assert defaults["xen_vman_vm_user"] == "{{ ansible_user | default('ansible') }}"
    files = _rootfs.guest_files(spec_of(), "admin", "bookworm")
    assert files["etc/sudoers.d/90-vman-admin"][0].endswith("admin ALL=(ALL:ALL) NOPASSWD: ALL\n")


def test_d13_nameservers_readme_default_and_resolv_conf():
    spec = spec_of(storage_type="iscsi")
    assert spec.nameservers == ("8.8.8.8", "8.8.4.4")
    assert _rootfs.render_resolv_conf(spec).endswith("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")


def test_d14_failed_first_run_is_finished_by_the_next():
    plan = PLAN([vm()], BASE, ["/etc/xen/vms/stuvus-web01.cfg", "/etc/xen/vms/stuvus-web01.install-pending"])
    assert plan["new"] == ["stuvus-web01"] and [v["name"] for v in plan["install_vms"]] == ["web01"]


def test_d15_existing_root_never_destroyed_unless_reinstall():
    assert _rootfs.decide(spec_of(), "installed", True)[0] == "skip"
    assert _rootfs.decide(spec_of(reinstall=True), "installed", False)[0] == "reinstall"
    assert _rootfs.decide(spec_of(), "incomplete", False)[0] == "install"


def test_d16_stop_waits_until_the_domain_is_gone():
    unit = _units.render_vm(_units.settings(stop_timeout=300)).splitlines()
    assert "ExecStop=/usr/local/libexec/vman/vm-stop /usr/sbin/xl %i 265" in unit
    assert '"$xl" destroy "$domain"' in _units.render_stop_helper()


def test_d17_mount_timeout_is_login_plus_mount():
    unit = _units.render_mount(_units.settings(iscsi_login_timeout=40, mount_timeout=20))
    assert "TimeoutStartSec=60" in unit.splitlines()


def test_d18_header_and_disk_key_syntax():
    text = _xl.render(spec_of(storage_type="iscsi"), created="2019-05-04T10:11:12Z")
    assert text.startswith(_xl.HEADER_MARK + "\n") and "# created: 2019-05-04T10:11:12Z\n" in text
    assert _xl.parse(text)["disk"][0].startswith("format=raw,vdev=xvda,access=rw,target=/dev/disk/by-path/")
    assert _xl.parse_header("#" * 80 + "\n# created at:   2019-05-04T10:11:12Z\n") == {
        "created": "2019-05-04T10:11:12Z"}


def test_d19_vif_openvswitch_left_to_the_xen_package():
    for folder, dummy, files in os.walk(ROLE):
        assert "vif-openvswitch" not in files
        for name in files:
            if name.endswith((".yml", ".j2")):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    assert "vif-openvswitch" not in handle.read(), name


def test_d20_guest_network_files():
    text = _rootfs.render_interfaces(spec_of(storage_type="iscsi", interfaces=[
        {"ip": "10.0.0.21/24", "ipv6": "fd00::21"}]))
    assert "    address 10.0.0.21/24" in text and "iface eth0 inet6 static\n    address fd00::21/64" in text
    assert "auto eth0\niface eth0 inet dhcp" in _rootfs.render_interfaces(
        spec_of(storage_type="iscsi", interfaces=[{}]))
    assert "iface eth0 inet manual" in _rootfs.render_interfaces(spec_of(interfaces=[{}]))
    assert "10.0.0.21\tweb01\n" in _rootfs.render_hosts(spec_of())


def test_d21_nfs_root_installed_at_the_local_export_path():
    spec = spec_of()
    assert _rootfs.root_path_for(spec, None, "/mnt/vms", None) == "/srv/nfs/stuvus/web01-root"
    assert _rootfs.root_path_for(spec, "/export/x/web01", "/mnt/vms", None) == "/export/x/web01"
    # and vm_mount@ can still mount it: the role writes its .root file
    markers = {m["name"]: m["content"] for m in _xen_vman.plan(
        [vm()], _xen_vman.role_defaults(BASE))["markers"]}
    assert markers == {"stuvus-web01.root": "VMAN_ROOT_SOURCE=10.0.0.2:/srv/nfs/stuvus/web01-root\n"
                                            "VMAN_ROOT_FSTYPE=nfs\n"}


def test_head_and_readme_disagree_head_followed_except_the_nameserver_typo():
    """dracut network-legacy and python3 as the original's HEAD; 8.8.4.4 as its README (D13)."""
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    head_modules = ["nfs", "network-legacy", "base", "bash", "systemd", "terminfo", "shutdown",
                    "kernel-modules", "kernel-network-modules", "console-setup", "systemd-initrd",
                    "dracut-systemd"]
    head_packages = ["systemd", "systemd-sysv", "udev", "openssh-server", "sudo", "python3",
                     "iproute2", "ifupdown"]
    assert defaults["xen_vman_dracut_modules"] == head_modules
    assert defaults["xen_vman_debootstrap_packages"] == head_packages
    assert defaults["xen_vman_default_nameserver"] == ["8.8.8.8", "8.8.4.4"]
    assert (defaults["xen_vman_global_preparations_timeout"],
            defaults["xen_vman_additional_global_prepare"]) == (300, [])
    rows = doc_rows()
    assert "4.4.4.4" in rows["D13"]


def test_xl_defaults_left_alone_as_the_original():
    for out in (xl_of(), xl_of(builder="hvm", spice=True, spicepasswd="pw")):
        assert not {"on_poweroff", "on_reboot", "on_crash", "vga"} & set(out)
