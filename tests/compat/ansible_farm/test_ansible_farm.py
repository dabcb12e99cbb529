# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible_farm's documented examples (ansible_farm_demo, example_02_VM_provisioning,
example_04_test_farm), re-typed here as fixtures with only the collection prefix changed:

- every playbook passes ``ansible-playbook --syntax-check`` against this collection;
- every definition they produce (definitions.yaml) goes through the planning filters
  (kvm_vm with its source chain, guest_provision_plan) with the example's variables, and comes
  out as docs/migrating-from-ansible_farm.md says.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.filter import provision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
OUR_ROLES = os.path.join(COLLECTIONS, "ansible_collections", "vman", "lifecycle", "roles")
DEFINITIONS = yaml.safe_load(open(os.path.join(HERE, "definitions.yaml"), encoding="utf-8"))["definitions"]

PLAYBOOKS = [
    ("ansible_farm_demo", "init_vm_definitions.yaml"),
    ("ansible_farm_demo", "main.yaml"),
    ("ansible_farm_demo", "run_vm_provision.yaml"),
    ("ansible_farm_demo", "playbook_00_setup_L0_hypervisors.yaml"),
    ("ansible_farm_demo", "playbook_01_L1_vm_provision.yaml"),
    ("ansible_farm_demo", "playbook_02_distribute_vm_provision.yaml"),
    ("example_02_VM_provisioning", "main.yaml"),
    ("example_04_test_farm", "main.yaml"),
]


def _syntax_check(example, playbook, tmp_path=None):
    base = os.path.join(HERE, example)
    # example_02 and example_04 name the roles bare, through ansible_farm's roles_path that
    # pointed at the collection's roles/ (here: ours); the demo has a role of its own
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=os.pathsep.join([os.path.join(base, "roles"), OUR_ROLES]),
               ANSIBLE_CONFIG=os.path.join(base, "ansible.cfg"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--syntax-check",
            "-i", os.path.join(base, "hosts.yaml"), os.path.join(tmp_path or base, playbook)]
    return subprocess.run(argv, cwd=base, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("example,playbook", PLAYBOOKS, ids=[f"{e}/{p}" for e, p in PLAYBOOKS])
def test_playbook_syntax(example, playbook):
    proc = _syntax_check(example, playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: " in proc.stdout


def test_demo_cleanup_task_file_syntax(tmp_path):
    """tasks/cleanup_vms_from_hypervisor.yaml is a task file: imported by a play to be parsed."""
    play = [{"hosts": "hypervisors", "gather_facts": False, "tasks": [
        {"ansible.builtin.import_tasks": os.path.join(HERE, "ansible_farm_demo", "tasks",
                                                      "cleanup_vms_from_hypervisor.yaml")}]}]
    (tmp_path / "wrap.yaml").write_text(yaml.safe_dump(play))
    proc = _syntax_check("ansible_farm_demo", "wrap.yaml", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_demo_test_hypervisor_install_needs_only_community_general():
    """The demo's test_hypervisor_install.yaml calls community.general.ansible_galaxy_install,
    which this collection neither has nor needs: that is its only syntax error."""
    proc = _syntax_check("ansible_farm_demo", "test_hypervisor_install.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "community.general.ansible_galaxy_install" in out
    assert out.count("ERROR") <= 1


def _domain(expected, name):
    return expected.replace("{hash}", hashlib.sha256(name.encode("utf-8")).hexdigest()[:8])


@pytest.mark.parametrize("entry", DEFINITIONS,
                         ids=[f"{d['example']}/{d['vm']['metadata']['name']}" for d in DEFINITIONS])
def test_definition_plans(entry):
    vm, gvars, expect = entry["vm"], entry["vars"], entry["expect"]
    base = os.path.join(HERE, entry["example"])
    kvm = provision.kvm_vm(vm, playbook_dir=base)
    name = vm["metadata"]["name"]
    assert kvm["name"] == _domain(expect["domain"], name) and kvm["display_name"] == name
    assert kvm["uri"] == vm["metadata"]["connection"]
    assert kvm["tmp_dir"] == "/home/user/tmp" and kvm["sources"] == []
    got = []
    for group in kvm["source_groups"]:
        if group["kind"] == "native":
            got.append(["native", [s["action"] for s in group["steps"]]])
        else:
            got.append(["include", os.path.relpath(group["file"], base)])
    assert got == expect["groups"]
    # every native path is absolute and inside tmp_dir or the pool
    for group in kvm["source_groups"]:
        for step in group.get("steps", []):
            for key in ("src", "dest"):
                if key in step and step["action"] != "fetch" or (key == "dest" and step["action"] == "fetch"):
                    assert step[key].startswith(("/home/user/tmp", "/home/user/.local/share/libvirt/images")), step
    # the disks are in the pool, the template candidates start with the definition's template
    assert all(d["path"].startswith("/home/user/.local/share/libvirt/images/") for d in kvm["disks"])
    if vm["metadata"].get("template"):
        assert kvm["templates"][0] == vm["metadata"]["template"] + ".xml.j2"
    # keys no role reads are passed through and listed (firmware of arm64, the demo's net.ip ...)
    if "firmware" in vm:
        assert "firmware" in kvm["passthrough_keys"]
    kwargs = {k: gvars.get(k) for k in ("project_id", "project_revision", "allowed_phases")}
    plan_args = dict(kwargs, phases_lookup_dir_path=gvars.get("phases_lookup_dir_path"), base_dir=base,
                     snapshot_type=gvars.get("snapshot_type"))
    if expect["guest"] == "ok":
        plan = provision.guest_provision_plan(vm, **plan_args)
        assert plan["name"] == kvm["name"] and plan["networks"] == []
        if plan["allowed"]["create init"]:
            assert plan["init_snapshot"] == f"{gvars['project_id']}.{gvars['project_revision']}.init"
        expected_dir = gvars.get("phases_lookup_dir_path") or "phases"
        assert plan["lookup_dir"] == os.path.join(base, expected_dir)
    else:
        with pytest.raises(AnsibleFilterError, match="snapshot_type.*external.*libvirt before 9.7"):
            provision.guest_provision_plan(vm, **plan_args)
        # the same VM plans when no snapshot phase is allowed (the demo's L1 plays)
        no_snap = dict(plan_args, allowed_phases=["startup", "dependencies", "init", "main"])
        assert provision.guest_provision_plan(vm, **no_snap)["snapshot_type"] == "external"


def test_every_example_definition_is_covered():
    """12 definitions: example_02 (2), example_04 (4), the demo (6)."""
    by_example = {}
    for entry in DEFINITIONS:
        by_example.setdefault(entry["example"], []).append(entry["vm"]["metadata"]["name"])
    assert {k: len(v) for k, v in by_example.items()} == {
        "example_02_VM_provisioning": 2, "example_04_test_farm": 4, "ansible_farm_demo": 6}
