# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provisioning filters as plain functions, and kvm_provision's default XML template.

The template is rendered with Jinja2 the way ``lookup('template')`` does (autoescape off, the
``e`` filter where values reach the XML) and parsed back, for a full and a minimal VM.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.filter import provision

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
TEMPLATES = os.path.join(ROOT, "roles", "kvm_provision", "templates")


def test_filters_registered():
    assert set(provision.FilterModule().filters()) == {
        "kvm_vm", "kvm_template", "guest_provision_plan", "guest_cache_plan"}


def test_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError, match="metadata.name"):
        provision.kvm_vm({"metadata": {"name": "a/b"}})
    with pytest.raises(AnsibleFilterError, match="revision_id"):
        provision.guest_provision_plan({"metadata": {"name": "a"}}, project_id="p")
    with pytest.raises(AnsibleFilterError, match="guest_cache_plan"):
        provision.guest_cache_plan({}, [])


def test_plan_then_cache_plan_through_the_filters(tmp_path):
    (tmp_path / "main.yaml").write_text("[]\n")
    vm = {"metadata": {"name": "gp-f"}}
    plan = provision.guest_provision_plan(vm, project_id="p", project_revision=1,
                                          phases_lookup_dir_path=str(tmp_path))
    assert plan["files"]["main"] == str(tmp_path / "main.yaml") and plan["files"]["init"] is None
    cache = provision.guest_cache_plan(plan, ["clean", "p.1.init"])
    assert cache["restore"] == "p.1.init" and cache["init_restored"]


def test_kvm_template_prefers_the_users_dir(tmp_path):
    (tmp_path / "gp-t.xml.j2").write_text("<domain/>")
    assert provision.kvm_template({"metadata": {"name": "gp-t"}}, [str(tmp_path), TEMPLATES]) == \
        str(tmp_path / "gp-t.xml.j2")
    assert provision.kvm_template({"metadata": {"name": "other"}}, [str(tmp_path), TEMPLATES]) == \
        os.path.join(TEMPLATES, "default.xml.j2")


def _render(vm):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True)
    text = env.get_template("default.xml.j2").render(vm=vm, kvm_provision_vm=provision.kvm_vm(vm))
    return ET.fromstring(text)


def test_default_template_full_vm():
    vm = {
        "metadata": {"name": "gp-x", "libvirt_pool_dir": "/pool"},
        "virt_domain": "qemu", "ram": 256, "vcpus": 2, "cpu": "qemu64",
        "kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img",
        "cmdline": "root=/dev/vda console=ttyS0 x=<&'\">",
        "console_log": "/pool/gp-x.log",
        "disks": [{"src": "gp-x.qcow2", "backing": "base.qcow2"}],
        "net": {"type": "bridge", "source": "br0", "mac": "52:54:00:00:00:01"},
    }
    dom = _render(vm)
    assert dom.get("type") == "qemu" and dom.findtext("name") == "gp-x"
    assert dom.findtext("memory") == "256" and dom.findtext("vcpu") == "2"
    assert dom.findtext("os/kernel") == "/boot/vmlinuz"
    assert dom.findtext("os/cmdline") == "root=/dev/vda console=ttyS0 x=<&'\">"   # escaped, parsed back
    disk = dom.find("devices/disk")
    assert disk.find("source").get("file") == "/pool/gp-x.qcow2"
    assert disk.find("driver").get("type") == "qcow2" and disk.find("target").get("dev") == "vda"
    iface = dom.find("devices/interface")
    assert iface.get("type") == "bridge" and iface.find("source").get("bridge") == "br0"
    assert dom.find("devices/serial/source").get("path") == "/pool/gp-x.log"
    assert dom.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"


def test_default_template_farm_name_is_the_title():
    dom = _render({"metadata": {"name": "VM debian_12_amd64 <&>"}})
    assert dom.findtext("name").startswith("VM-debian_12_amd64-")
    assert dom.findtext("title") == "VM debian_12_amd64 <&>"
    assert _render({"metadata": {"name": "gp-min"}}).find("title") is None


def test_default_template_minimal_vm_boots_from_disk():
    dom = _render({"metadata": {"name": "gp-min"}, "guest_agent": False})
    assert dom.get("type") == "kvm" and dom.find("os/kernel") is None
    assert dom.find("os/boot").get("dev") == "hd"
    assert dom.find("devices/channel") is None and dom.find("devices/serial").get("type") == "pty"
