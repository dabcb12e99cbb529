# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_provision: VM definition normalization, disk argv, sources and template choice."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _kvm_provision as kvm
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


def _vm(**extra):
    vm = {"metadata": {"name": "gp-a", "libvirt_pool_dir": "/pool"}, "arch": "x86_64"}
    meta = extra.pop("metadata", {})
    vm["metadata"].update(meta)
    vm.update(extra)
    return vm


@pytest.mark.parametrize("meta, arch, files, expected", [
    ({"template": "virtio"}, "x86_64", {"/u/virtio.xml.j2", "/u/gp-a.xml.j2"}, "/u/virtio.xml.j2"),
    ({}, "x86_64", {"/u/gp-a.xml.j2", "/u/x86_64.xml.j2"}, "/u/gp-a.xml.j2"),
    ({}, "x86_64", {"/u/x86_64.xml.j2", "/r/default.xml.j2"}, "/u/x86_64.xml.j2"),
    ({}, "aarch64", {"/u/x86_64.xml.j2", "/r/default.xml.j2"}, "/r/default.xml.j2"),
    # the user's directory wins over the role's for the same candidate
    ({}, "x86_64", {"/u/default.xml.j2", "/r/default.xml.j2"}, "/u/default.xml.j2"),
    # a template that does not exist falls through to the next candidate
    ({"template": "missing"}, None, {"/r/default.xml.j2"}, "/r/default.xml.j2"),
    ({"template": "/abs/t.xml.j2"}, None, {"/abs/t.xml.j2", "/u/gp-a.xml.j2"}, "/abs/t.xml.j2"),
])
def test_template_first_match(meta, arch, files, expected):
    vm = _vm(metadata=meta, arch=arch)
    assert kvm.select_template(vm, ["/u", "/r"], isfile=files.__contains__) == expected


def test_no_template_lists_what_was_tried():
    with pytest.raises(ValidationError, match="tried /u/gp-a.xml.j2, /u/x86_64.xml.j2, /u/default.xml.j2"):
        kvm.select_template(_vm(), ["/u"], isfile=lambda p: False)


def test_normalize_defaults():
    n = kvm.normalize({"metadata": {"name": "web01"}})
    assert n["uri"] == "qemu:///system" and n["pool_dir"] == "/var/lib/libvirt/images"
    assert n["domain"]["type"] == "kvm" and n["domain"]["memory_mib"] == 1024
    assert n["domain"]["guest_agent"] is True and n["disks"] == [] and n["sources"] == []


def test_disks_overlay_and_empty_and_existing():
    vm = _vm(disks=[
        {"src": "a.qcow2", "backing": "base.qcow2"},
        {"src": "/data/b.raw", "type": "raw", "size": "2G", "devname": "vdc"},
        {"src": "c.qcow2", "devname": "sda"},
    ])
    a, b, c = kvm.disks(vm)
    assert a == {"path": "/pool/a.qcow2", "format": "qcow2", "target": "vda", "bus": "virtio",
                 "create_argv": ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                                 "/pool/base.qcow2", "/pool/a.qcow2"]}
    assert b["create_argv"] == ["qemu-img", "create", "-q", "-f", "raw", "/data/b.raw", "2G"]
    assert c["create_argv"] is None and c["bus"] == "sata"


@pytest.mark.parametrize("disk, field", [
    ({"src": "../etc/x"}, "disks[0].src"),
    ({"src": "a", "type": "vmdk"}, "disks[0].type"),
    ({"src": "a", "size": "2 GB"}, "disks[0].size"),
    ({"src": "a", "type": "raw", "backing": "b"}, "disks[0].backing"),
    ({"src": "a", "devname": "vd1"}, "disks[0].devname"),
])
def test_bad_disk_names_vm_and_field(disk, field):
    with pytest.raises(ValidationError) as err:
        kvm.disks(_vm(disks=[disk]))
    assert err.value.obj == "gp-a" and err.value.field == field


def test_sources_url_and_file():
    vm = _vm(metadata={"sources": [
        {"uri": "https://example.org/img/deb.qcow2", "checksum_type": "sha256", "checksum_value": "ab"},
        {"uri": "file:///srv/base.qcow2", "unarchived": "gp-base.qcow2"},
    ]})
    url, local = kvm.sources(vm)
    assert url == {"uri": "https://example.org/img/deb.qcow2", "kind": "url", "src": None,
                   "dest": "/pool/deb.qcow2", "checksum": "sha256:ab"}
    assert local["kind"] == "file" and local["src"] == "/srv/base.qcow2"
    assert local["dest"] == "/pool/gp-base.qcow2"


@pytest.mark.parametrize("vm, field", [
    ({"metadata": {"name": "bad/name"}}, "metadata.name"),
    ({"metadata": {"name": ""}}, "metadata.name"),
    ({"metadata": {"name": "VM\tdebian"}}, "metadata.name"),
    ({"metadata": {"name": 12}}, "metadata.name"),
    ({"metadata": {}}, "metadata.name"),
    ({"metadata": {"name": "a", "connection": "localhost"}}, "metadata.connection"),
    ({"metadata": {"name": "a", "libvirt_pool_dir": "rel"}}, "metadata.libvirt_pool_dir"),
    ({"metadata": {"name": "a"}, "ram": "lots"}, "ram"),
    ({"metadata": {"name": "a"}, "virt_domain": "xen"}, "virt_domain"),
    ({"metadata": {"name": "a"}, "kernel": "vmlinuz"}, "kernel"),
    ({"metadata": {"name": "a"}, "net": {"type": "bridge"}}, "net[0].source"),
    ({"metadata": {"name": "a"}, "net": [{"mac": "52:54:00"}]}, "net[0].mac"),
    ({"metadata": {"name": "a", "sources": [{"uri": "s3://b/k"}]}}, "metadata.sources[0].uri"),
])
def test_bad_definition_names_the_field(vm, field):
    with pytest.raises(ValidationError) as err:
        kvm.normalize(vm)
    assert err.value.field == field


def test_interfaces():
    n = kvm.normalize(_vm(net=[{"type": "network"}, {"type": "bridge", "source": "br0", "mac": "52:54:00:AA:bb:01"},
                               {"type": "user", "source": "ignored"}]))
    assert n["domain"]["interfaces"] == [
        {"type": "network", "source": "default", "mac": None, "model": "virtio"},
        {"type": "bridge", "source": "br0", "mac": "52:54:00:aa:bb:01", "model": "virtio"},
        {"type": "user", "source": None, "mac": None, "model": "virtio"},
    ]


# ---- ansible_farm names (issue 12) -----------------------------------------------------------
# The original parse_vms_definitions names every VM "VM <platform_name>_<target_name>"; these are
# the platform and target names of its docs/examples, re-typed.
FARM_PLATFORMS = ["debian_12", "debian_sid", "debian_cloud", "debian_nocloud", "debian_vs",
                  "archlinux", "Arch-Linux", "fedora_38", "fedora_generic", "alpine_stable",
                  "alpine_generic", "debian_11", "debian"]
FARM_TARGETS = ["amd64", "arm64", "ppc64"]
FARM_NAMES = [f"VM {p}_{t}" for p in FARM_PLATFORMS for t in FARM_TARGETS]


@pytest.mark.parametrize("original, domain", [
    ("VM debian_12_amd64", "VM-debian_12_amd64-7ba5d79c"),
    ("VM debian_sid_amd64", "VM-debian_sid_amd64-8a8d4184"),
    ("VM Arch-Linux_arm64", "VM-Arch-Linux_arm64-1c5853a0"),
])
def test_farm_names_map_to_a_stable_domain_name(original, domain):
    vm = _vm(metadata={"name": original})
    assert kvm.domain_name(vm) == domain
    n = kvm.normalize(vm)
    assert n["name"] == domain and n["display_name"] == original


def test_every_farm_example_name_is_accepted_and_distinct():
    domains = [kvm.domain_name(_vm(metadata={"name": n})) for n in FARM_NAMES]
    assert all(kvm.DOMAIN_NAME_RE.fullmatch(d) for d in domains)
    assert len(set(domains)) == len(FARM_NAMES)


@pytest.mark.parametrize("name", ["gp-a", "web1.example.org", "a+b:c_d", "x" * 100])
def test_valid_names_are_kept(name):
    n = kvm.normalize(_vm(metadata={"name": name}))
    assert n["name"] == n["display_name"] == name


@pytest.mark.parametrize("a, b", [
    ("VM a", "VM-a"),          # the mapped text of one is the other's name
    ("VM a", "VM  a"),         # a run of characters becomes one '-'
    ("VM a", "VM/a".replace("/", "*")),
    ("-x", "x"),
    ("x" * 101, "x" * 102),    # cut to length
])
def test_different_originals_never_share_a_domain(a, b):
    assert kvm.map_domain_name(a) != kvm.map_domain_name(b)


@pytest.mark.parametrize("name, domain", [
    ("-x", "x-"),
    ("  spaced  ", "spaced-"),
    ("été", "t-"),
    ("???", "vm-"),
    ("x" * 150, "x" * 91 + "-"),
])
def test_mapping_rules(name, domain):
    mapped = kvm.map_domain_name(name)
    assert mapped.startswith(domain) and len(mapped) == len(domain) + 8
    assert kvm.DOMAIN_NAME_RE.fullmatch(mapped) and mapped == kvm.map_domain_name(name)


def test_templates_are_looked_up_by_the_domain_name():
    assert kvm.template_candidates(_vm(metadata={"name": "VM debian_12_amd64"}))[0] == \
        "VM-debian_12_amd64-7ba5d79c.xml.j2"


# ---- ansible_farm's create_vm / delete_vm / should_remove_all_vm_storage (issue 12) ---------

@pytest.mark.parametrize("kwargs, steps, only_if_missing, wipe", [
    # no switch: kvm_provision_state decides, running by default
    ({}, ["running"], False, False),
    ({"state": "stopped"}, ["stopped"], False, False),
    ({"state": "absent", "delete_disks": True}, ["absent"], False, True),
    # the original's demo "Delete all VMs" play: never started, storage removed
    ({"delete_vm": True, "create_vm": False, "should_remove_all_vm_storage": True},
     ["absent"], False, True),
    ({"delete_vm": True, "create_vm": False}, ["absent"], False, False),
    # the original's defaults (create_vm true, delete_vm false): define a missing VM only
    ({"create_vm": True}, ["defined"], True, False),
    ({"delete_vm": False}, ["defined"], True, False),
    # delete then create: redefined from scratch, not started
    ({"delete_vm": True, "create_vm": True}, ["absent", "defined"], False, False),
    ({"delete_vm": False, "create_vm": False}, [], False, False),
    # the storage switch counts only when the VM is deleted (as in the original)
    ({"create_vm": True, "should_remove_all_vm_storage": True}, ["defined"], True, False),
    # strings from extra vars
    ({"delete_vm": "yes", "create_vm": "false"}, ["absent"], False, False),
])
def test_farm_switches_plan(kwargs, steps, only_if_missing, wipe):
    plan = kvm.normalize(_vm(), **kwargs)["plan"]
    assert plan["steps"] == steps
    assert plan["define_only_if_missing"] is only_if_missing
    assert plan["delete_disks"] is wipe


def test_farm_switches_in_the_definition_and_the_variable_wins():
    vm = _vm(delete_vm=True, create_vm=False, should_remove_all_vm_storage=True)
    assert kvm.lifecycle(vm)["steps"] == ["absent"] and kvm.lifecycle(vm)["delete_disks"]
    assert kvm.lifecycle(vm, create_vm=True)["steps"] == ["absent", "defined"]
    assert kvm.passthrough_keys(vm) == []


@pytest.mark.parametrize("kwargs, field", [
    ({"state": "absent", "delete_vm": True}, "kvm_provision_state"),
    ({"state": "running", "create_vm": True}, "kvm_provision_state"),
    ({"state": "gone"}, "kvm_provision_state"),
    ({"delete_vm": "maybe"}, "delete_vm"),
    ({"create_vm": [True]}, "create_vm"),
])
def test_farm_switches_refused(kwargs, field):
    with pytest.raises(ValidationError) as err:
        kvm.normalize(_vm(), **kwargs)
    assert err.value.field == field


def test_unknown_keys_pass_through_and_are_listed():
    vm = _vm(firmware="/usr/share/OVMF.fd", custom={"x": 1},
             metadata={"hostname": "vm.amd64.debian_12", "tmp_dir": "/tmp/", "auth": {}})
    n = kvm.normalize(vm)
    assert n["passthrough_keys"] == ["custom", "firmware", "metadata.auth", "metadata.hostname"]
    assert kvm.passthrough_keys(_vm()) == []


# ---- ansible_libvirt_uri fallback (issue 12) --------------------------------------------------

@pytest.mark.parametrize("connection, fallback, uri", [
    (None, None, "qemu:///system"),
    (None, "qemu:///session", "qemu:///session"),
    ("", "qemu:///session", "qemu:///session"),
    ("qemu+ssh://h/system", "qemu:///session", "qemu+ssh://h/system"),
])
def test_connection_falls_back_to_ansible_libvirt_uri(connection, fallback, uri):
    vm = _vm(metadata={"connection": connection})
    assert kvm.normalize(vm, libvirt_uri=fallback)["uri"] == uri


def test_bad_ansible_libvirt_uri_is_refused():
    with pytest.raises(ValidationError) as err:
        kvm.normalize(_vm(), libvirt_uri="localhost")
    assert err.value.field == "ansible_libvirt_uri"


def test_converted_farm_example_normalizes():
    """The example of docs/migrating-from-ansible_farm.md (example_01's VM debian_vs_amd64)."""
    image = "debian_vs_debian-sid-v2-amd64-daily-20230301-1306.qcow2"
    vm = {
        "metadata": {"name": "VM debian_vs_amd64", "platform_name": "debian_vs",
                     "target_name": "amd64", "hostname": "vm.debian_vs.amd64",
                     "connection": "qemu:///session",
                     "libvirt_pool_dir": "/home/user/.local/share/libvirt/images/",
                     "tmp_dir": "/home/user/tmp/",
                     "auth": {"user": "user", "become_user": "root", "become_method": "su"},
                     "sources": [{"uri": "https://example.org/images/" + image[len("debian_vs_"):],
                                  "unarchived": image}]},
        "virt_domain": "kvm", "emulator": "/usr/bin/qemu-system-x86_64", "arch": "x86_64",
        "machine": "q35", "cpu": "", "vcpus": 2, "ram": 2048,
        "disks": [{"type": "qcow2", "devname": "hda", "src": image}],
        "net": {"type": "user", "source": "hostfwd=tcp:127.0.0.1:2222-:22",
                "mac": "52:54:00:12:34:56", "ip": "localhost"},
    }
    n = kvm.normalize(vm, delete_vm=True, create_vm=False, should_remove_all_vm_storage=True)
    assert n["name"].startswith("VM-debian_vs_amd64-") and n["display_name"] == "VM debian_vs_amd64"
    assert n["uri"] == "qemu:///session"
    assert n["disks"][0]["path"] == "/home/user/.local/share/libvirt/images/" + image
    assert n["disks"][0]["bus"] == "ide"
    assert n["plan"] == {"mode": "ansible_farm", "steps": ["absent"],
                         "define_only_if_missing": False, "delete_disks": True}
    assert n["passthrough_keys"] == ["metadata.auth", "metadata.hostname"]  # tmp_dir is read (source chains)
