# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of the ansible_farm helper roles (_farm.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _farm as farm
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


def test_configurations_list_first_then_permutations_unique():
    config = {"list": [{"platform": "debian_11", "target": "armvirt64", "template": "virtio"},
                       {"platform": "debian_sid", "target": "amd64"}],
              "permutations": {"targets": ["amd64", "arm64"], "platforms": ["debian_sid", "fedora"]}}
    assert farm.configurations(config) == [
        {"platform": "debian_11", "target": "armvirt64", "template": "virtio"},
        {"platform": "debian_sid", "target": "amd64"},
        {"platform": "debian_sid", "target": "arm64"},
        {"platform": "fedora", "target": "amd64"},
        {"platform": "fedora", "target": "arm64"}]
    assert farm.configurations(None) == [] and farm.configurations({"list": []}) == []


@pytest.mark.parametrize("config,field", [
    ({"lists": []}, "config"),
    ({"list": [{"platform": "../x", "target": "amd64"}]}, r"config.list\[0\].platform"),
    ({"permutations": {"targets": ["a b"], "platforms": ["p"]}}, r"config.permutations.targets\[0\]"),
    ({"permutations": {"targets": "amd64"}}, "config.permutations.targets"),
])
def test_configurations_refused(config, field):
    with pytest.raises(ValidationError, match=field):
        farm.configurations(config)


def test_definition_file_first_found_order(tmp_path):
    mine, role = tmp_path / "setup_vm" / "targets", tmp_path / "role"
    mine.mkdir(parents=True)
    role.mkdir()
    (role / "amd64.yml").write_text("[]")
    (mine / "default.yaml").write_text("[]")
    dirs = [str(mine), str(role)]
    # a default.* of the user's directory wins over the role's amd64.yml (directory by directory)
    assert farm.definition_file("target", "amd64", dirs) == str(mine / "default.yaml")
    assert farm.definition_file("target", "amd64", dirs, fallback=False) == str(role / "amd64.yml")
    (mine / "amd64.yml").write_text("[]")
    (mine / "amd64.yaml").write_text("[]")
    assert farm.definition_file("target", "amd64", dirs) == str(mine / "amd64.yaml")
    assert farm.definition_file("platform", "none", [str(role)]) is None


CAPS = """<capabilities><host/>
<guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
<guest><os_type>hvm</os_type><arch name='aarch64'><domain type='qemu'/></arch></guest>
</capabilities>"""


def test_capabilities_and_dispatch():
    assert farm.capabilities(CAPS) == {"x86_64": ["qemu", "kvm"], "aarch64": ["qemu"]}
    hosts = {"hv1": {"x86_64": ["qemu", "kvm"]}, "hv2": farm.capabilities(CAPS),
             "hv3": {"x86_64": ["qemu"]}}
    pools = {"x86_64": ["a", "b", "c"], "aarch64": ["d", "e"], "ppc64": ["f"]}
    got = farm.dispatch(pools, hosts, ["kvm", "qemu"], ["hv1", "hv2", "hv3"])
    # kvm first: hv1 and hv2 share x86_64 in turn; hv3 (qemu only) gets none of it
    assert got == {"hv1": ["a", "c"], "hv2": ["b", "d", "e"], "hv3": [], None: ["f"]}
    assert farm.dispatch(pools, hosts, ["qemu"], ["hv1", "hv2", "hv3"])["hv3"] == ["c"]
    with pytest.raises(ValidationError, match="capabilities"):
        farm.capabilities("<capabilities")


def test_vm_host_user_network_with_proxy_jumps():
    vm = {"metadata": {"name": "VM debian_vs_amd64", "platform_name": "debian_vs", "target_name": "amd64",
                       "hostname": "vm.debian_vs.amd64", "connection": "qemu:///session",
                       "auth": {"user": "user", "password": "pw", "become_user": "root",
                                "become_password": "rpw", "become_method": "su"}},
          "net": {"type": "user", "ip": "localhost"}}
    hostvars = {"VM debian_vs_amd64": {"ansible_connection": "ssh", "ansible_ssh_common_args": "-o A=b"},
                "l1": {"ansible_host": "10.0.0.5", "ansible_port": 2222, "ansible_user": "ops",
                       "hostjumps": ["l0"]},
                "l0": {"ansible_host": "gw.example.org"}}
    host = farm.vm_host(vm, "l1", hostvars)
    assert host["groups"] == ["vms", "VM debian_vs_amd64", "debian_vs", "amd64"]
    assert host["hostjumps"] == ["l0", "l1"] and host["kvm_host"] == "l1"
    assert host["ansible_host"] == "localhost" and host["ansible_host_real"] == "localhost"
    assert host["ansible_ssh_common_args"] == "-o A=b -o ProxyJump=gw.example.org,ops@10.0.0.5:2222"
    assert host["ansible_become_password"] == "rpw" and host["ansible_user"] == "user"
    # no proxy jumps asked for: no ProxyJump
    assert "ansible_ssh_common_args" not in farm.vm_host(vm, "l1", hostvars, should_setup_proxy_jumps=False)
    # a local hypervisor is not a hop
    local = farm.vm_host(vm, "hv", {"VM debian_vs_amd64": {"ansible_connection": "ssh"},
                                    "hv": {"ansible_connection": "local"}})
    assert local["hostjumps"] == ["hv"] and "ansible_ssh_common_args" not in local


def test_vm_host_libvirt_qemu_connection():
    vm = {"metadata": {"name": "VM a_b", "connection": "qemu:///system"}, "net": {"ip": "10.0.0.3"}}
    host = farm.vm_host(vm, "hv", {"VM a_b": {"ansible_connection": "community.libvirt.libvirt_qemu"}})
    assert host["ansible_host"] == "VM a_b" and host["ansible_libvirt_uri"] == "qemu:///system"
    assert host["ansible_host_real"] == "10.0.0.3" and "ansible_ssh_common_args" not in host


def test_network_xml_is_valid_libvirt_xml():
    net = {"template": "default", "name": "default-net",
           "bridge": {"name": "virbr1", "stp": True, "mac": "52:54:00:00:00:01", "ip": "10.0.0.254",
                      "netmask": "255.0.0.0"},
           "dhcp": {"start": "10.0.0.1", "end": "10.0.0.253"}, "nat": {"port_start": 1024, "port_end": 65535}}
    root = ET.fromstring(farm.network_xml(net))
    assert root.findtext("name") == "default-net"
    assert root.find("forward/nat/port").attrib == {"start": "1024", "end": "65535"}
    assert root.find("bridge").attrib == {"name": "virbr1", "stp": "on", "delay": "0"}
    assert root.find("ip").attrib == {"address": "10.0.0.254", "netmask": "255.0.0.0"}
    assert root.find("ip/dhcp/range").attrib == {"start": "10.0.0.1", "end": "10.0.0.253"}
    for bad, field in ((dict(net, name="a'b"), "name"), (dict(net, bridge={"ip": "x", "netmask": "8"}), "bridge.ip"),
                       (dict(net, nat={"port_start": 0, "port_end": 2}), "nat.port_start")):
        with pytest.raises(ValidationError, match=field):
            farm.network_xml(bad)


def test_dhcp_host_xml_and_mac():
    assert farm.dhcp_host_xml("52:54:00:AA:bb:01", "10.0.0.21", "vm.a.b") == \
        "<host mac='52:54:00:aa:bb:01' ip='10.0.0.21' name='vm.a.b'/>"
    with pytest.raises(ValidationError, match="hostname"):
        farm.dhcp_host_xml("52:54:00:aa:bb:01", "10.0.0.21", "x'/><evil")
    with pytest.raises(ValidationError, match="'mac'"):
        farm.dhcp_host_xml("52:54:00", "10.0.0.21")
    mac = farm.seeded_mac("VM debian_12_amd64")
    assert mac == farm.seeded_mac("VM debian_12_amd64") != farm.seeded_mac("VM debian_12_arm64")
    assert farm.MAC_RE.fullmatch(mac) and mac.startswith("52:54:00:")
