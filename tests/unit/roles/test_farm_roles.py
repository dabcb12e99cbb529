# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible_farm's helper roles as vman.lifecycle provides them, through the real
ansible-playbook (libvirt parts on the test:///default driver)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PY = sys.executable


def _run(tmp_path, plays, inventory=None):
    inventory = inventory or {"all": {"hosts": {"localhost": {}}}}
    for host in inventory["all"]["hosts"].values():
        host.setdefault("ansible_connection", "local")
        host.setdefault("ansible_python_interpreter", PY)
    (tmp_path / "inv.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(PY), "ansible-playbook"), "-i",
                           str(tmp_path / "inv.yml"), str(tmp_path / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


def _dump(tmp_path, expr, name="out.json", host="localhost"):
    return {"name": "dump", "ansible.builtin.copy": {"dest": str(tmp_path / name), "mode": "0600",
                                                     "content": "{{ %s | to_json }}" % expr},
            "delegate_to": "localhost"} if host == "localhost" else {}


def test_parse_vms_definitions_merge_order(tmp_path):
    """Target, shared defaults, platform: each sees what came before, overrides and adds."""
    targets = tmp_path / "setup_vm" / "targets"
    platforms = tmp_path / "setup_vm" / "platforms"
    targets.mkdir(parents=True)
    platforms.mkdir(parents=True)
    (targets / "amd64.yaml").write_text(yaml.safe_dump([{"ansible.builtin.set_fact": {"vm": {
        "arch": "x86_64", "machine": "pc", "ram": 512, "metadata": {"target_name": "amd64"}}}}]))
    (platforms / "debian_vs.yml").write_text(yaml.safe_dump([{"ansible.builtin.set_fact": {"vm": {
        "metadata": {"name": "VM {{ vm.metadata.platform_name }}_{{ vm.metadata.target_name }}",
                     "seen_ram": "{{ vm.ram }}"}, "vcpus": 2}}}]))
    plays = [{"hosts": "localhost", "gather_facts": True,
              "vars": {"config": {"permutations": {"targets": ["amd64", "arm64"], "platforms": ["debian_vs"]},
                                  "list": [{"platform": "debian_vs", "target": "amd64", "template": "virtio"}]}},
              "roles": ["vman.lifecycle.parse_vms_definitions"],
              "tasks": [_dump(tmp_path, "virtual_machines")]}]
    proc, out = _run(tmp_path, plays)
    assert proc.returncode == 0, out
    vms = json.loads((tmp_path / "out.json").read_text())
    assert [v["metadata"]["name"] for v in vms] == ["VM debian_vs_amd64", "VM debian_vs_amd64", "VM debian_vs_arm64"]
    first = vms[0]
    assert first["metadata"]["template"] == "virtio" and "template" not in vms[1]["metadata"]
    # the platform saw the target's ram (512: the shared defaults' 2048 came later and won)
    assert str(first["metadata"]["seen_ram"]) == "2048" and first["ram"] == 2048 and first["machine"] == "pc"
    assert first["vcpus"] == 2 and first["net"]["type"] == "user"
    assert first["metadata"]["tmp_dir"].endswith("/tmp/") and first["metadata"]["platform_name"] == "debian_vs"
    # arm64 from the role's own targets
    assert vms[2]["arch"] == "aarch64" and vms[2]["emulator"] == "/usr/bin/qemu-system-aarch64"


def test_vm_dispatcher_assigns_by_architecture(tmp_path):
    inventory = {"all": {"hosts": {
        "localhost": {"config": {"permutations": {"targets": ["amd64", "arm64", "ppc64"],
                                                  "platforms": ["debian", "fedora"]}}},
        "hv1": {"libvirt_supported_virtualization_types": {"x86_64": ["qemu", "kvm"]}},
        "hv2": {"libvirt_supported_virtualization_types": {"x86_64": ["qemu"], "aarch64": ["qemu"]}},
        "hv3": {"ansible_libvirt_uri": "test:///default"}}}}
    plays = [{"hosts": "hv1,hv2,hv3", "gather_facts": True, "roles": ["vman.lifecycle.vm_dispatcher"],
              "tasks": [{"name": "dump", "ansible.builtin.copy": {
                  "dest": str(tmp_path) + "/{{ inventory_hostname }}.json", "mode": "0600",
                  "content": "{{ {'config': config, 'types': libvirt_supported_virtualization_types,"
                             " 'unassigned': vm_dispatcher_unassigned} | to_json }}"}}]}]
    proc, out = _run(tmp_path, plays, inventory)
    assert proc.returncode == 0, out
    got = {h: json.loads((tmp_path / f"{h}.json").read_text()) for h in ("hv1", "hv2", "hv3")}
    assert got["hv1"]["config"]["list"] == [{"platform": "debian", "target": "amd64"},
                                            {"platform": "fedora", "target": "amd64"}]
    assert got["hv2"]["config"]["list"] == [{"platform": "debian", "target": "arm64"},
                                            {"platform": "fedora", "target": "arm64"}]
    assert got["hv3"]["config"]["list"] == [] and got["hv3"]["types"] == {"i686": ["test"]}
    assert got["hv1"]["unassigned"] == [{"platform": "debian", "target": "ppc64"},
                                        {"platform": "fedora", "target": "ppc64"}]


def test_init_vm_connection_adds_the_vm(tmp_path):
    vm = {"metadata": {"name": "VM debian_vs_amd64", "platform_name": "debian_vs", "target_name": "amd64",
                       "hostname": "vm.debian_vs.amd64", "auth": {"user": "user", "password": "S3cret"}},
          "net": {"type": "user", "ip": "localhost", "source": "hostfwd=tcp:127.0.0.1:2201-:22"}}
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "add", "ansible.builtin.include_role": {"name": "vman.lifecycle.init_vm_connection"},
         "loop": [vm], "loop_control": {"loop_var": "vm", "label": "{{ vm.metadata.name }}"}}]},
        {"hosts": "debian_vs:&amd64:&vms", "gather_facts": False, "tasks": [
            {"name": "dump", "ansible.builtin.copy": {
                "dest": str(tmp_path / "vm.json"), "mode": "0600",
                "content": "{{ {'host': ansible_host, 'real': ansible_host_real, 'kvm': kvm_host,"
                           " 'jumps': hostjumps, 'user': ansible_user, 'name': vm.metadata.name,"
                           " 'hostname': ansible_hostname} | to_json }}"},
             "delegate_to": "localhost"}]}]
    proc, out = _run(tmp_path, plays)
    assert proc.returncode == 0, out
    assert json.loads((tmp_path / "vm.json").read_text()) == {
        "host": "localhost", "real": "localhost", "kvm": "localhost", "jumps": ["localhost"],
        "user": "user", "name": "VM debian_vs_amd64", "hostname": "vm.debian_vs.amd64"}
    assert "S3cret" not in out


@pytest.mark.parametrize("snapshot_type", ["external"])
def test_libvirt_snapshot_external_refused(tmp_path, snapshot_type):
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "snap", "ansible.builtin.include_role": {"name": "vman.lifecycle.libvirt_snapshot"},
         "vars": {"vm_name": "test", "uri": "test:///default", "create": "cp1",
                  "snapshot_type": snapshot_type}}]}]
    proc, out = _run(tmp_path, plays)
    assert proc.returncode != 0 and "only internal snapshots are supported" in out


def test_libvirt_snapshot_list_and_network_define_on_the_test_driver(tmp_path):
    pytest.importorskip("libvirt")
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "snap", "ansible.builtin.include_role": {"name": "vman.lifecycle.libvirt_snapshot"},
         "vars": {"vm_name": "test", "uri": "test:///default", "list": True}},
        _dump(tmp_path, "{'list': snapshot_list, 'power': snapshot_list_result.power_state}", "snap.json"),
        {"name": "net", "ansible.builtin.include_role": {"name": "vman.lifecycle.libvirt_network",
                                                         "tasks_from": "define.yml"},
         "vars": {"name": "default-net", "libvirt_uri": "test:///default"}}]}]
    proc, out = _run(tmp_path, plays)
    assert proc.returncode == 0, out
    snap = json.loads((tmp_path / "snap.json").read_text())
    assert snap == {"list": [], "power": "running"}
    assert "TASK [vman.lifecycle.libvirt_network : Define the network]" in out
