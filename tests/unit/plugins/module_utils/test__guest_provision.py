# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_provision decisions: the plan (names, gates, phase files) and the README's cache control."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _guest_provision as gp
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

VM = {"metadata": {"name": "gp-a", "connection": "qemu:///system",
                   "platform_name": "debian_12", "target_name": "amd64"}}


def _plan(files=(), **kw):
    kw.setdefault("project_id", "proj")
    kw.setdefault("revision_id", 3)
    return gp.plan(VM, phases_lookup_dir_path="/ph", isfile=set(files).__contains__, **kw)


def test_plan_names_and_lookup():
    p = _plan(files=["/ph/debian_12/amd64/init.yaml", "/ph/debian_12/main.yaml", "/ph/main.yaml",
                     "/ph/dependencies.yaml"])
    assert p["name"] == "gp-a" and p["uri"] == "qemu:///system"
    assert p["init_snapshot"] == "proj.3.init" and p["clean_snapshot"] == "clean"
    assert p["files"] == {"dependencies": "/ph/dependencies.yaml",
                          "init": "/ph/debian_12/amd64/init.yaml",
                          "main": "/ph/debian_12/main.yaml", "terminate": None}
    assert all(p["allowed"].values())


def test_relative_lookup_dir_resolved_against_base_dir():
    p = gp.plan(VM, project_id="p", revision_id="r1", phases_lookup_dir_path="phases",
                base_dir="/play", isfile=lambda path: path == "/play/phases/main.yaml")
    assert p["lookup_dir"] == "/play/phases" and p["files"]["main"] == "/play/phases/main.yaml"


@pytest.mark.parametrize("kw, expected", [
    ({"revision_id": 7}, "7"),
    ({"revision_id": None, "project_revision": "abc"}, "abc"),
    ({"revision_id": "5", "project_revision": 5}, "5"),
])
def test_revision_id_and_project_revision_both_accepted(kw, expected):
    assert _plan(**kw)["revision"] == expected


def test_disagreeing_revisions_are_an_error():
    with pytest.raises(ValidationError, match="differs from project_revision"):
        _plan(revision_id=1, project_revision=2)


@pytest.mark.parametrize("kw, field", [
    ({"project_id": None}, "project_id"),
    ({"revision_id": None}, "revision_id"),
    ({"project_id": "a b"}, "project_id"),
    ({"revision_id": "../x"}, "revision_id"),
    ({"allowed_phases": ["main", "reboot"]}, "allowed_phases"),
    ({"allowed_phases": "main"}, "allowed_phases"),
])
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(ValidationError) as err:
        _plan(**kw)
    assert err.value.field == field and err.value.obj == "gp-a"


def test_no_project_needed_without_the_init_cache():
    p = _plan(project_id=None, revision_id=None, allowed_phases=["startup", "main", "shutdown"])
    assert p["init_snapshot"] is None
    assert p["allowed"]["main"] and not p["allowed"]["restore init"]


ALL_FILES = ["/ph/dependencies.yaml", "/ph/init.yaml", "/ph/main.yaml", "/ph/terminate.yaml"]


def test_cold_cache_creates_clean_and_runs_init():
    c = gp.cache_plan(_plan(ALL_FILES), [])
    assert c == {"restore": None, "restore_failed": False, "init_restored": False,
                 "create_clean": True, "run_dependencies": True, "run_init": True,
                 "create_init": True, "replace_init": False}


def test_warm_cache_restores_init_and_skips_dependencies_and_init():
    c = gp.cache_plan(_plan(ALL_FILES), ["clean", "proj.3.init", "proj.2.init"])
    assert c["restore"] == "proj.3.init" and c["init_restored"]
    assert not (c["run_dependencies"] or c["run_init"] or c["create_init"] or c["create_clean"])


def test_new_revision_restores_clean_and_reruns_init():
    c = gp.cache_plan(_plan(ALL_FILES, revision_id=4), ["clean", "proj.3.init"])
    assert c["restore"] == "clean" and not c["init_restored"]
    assert c["run_dependencies"] and c["run_init"] and c["create_init"] and not c["replace_init"]


def test_failed_restore_falls_back_to_running_init():
    c = gp.cache_plan(_plan(ALL_FILES), ["clean", "proj.3.init"], restore_failed=True)
    assert c["restore"] == "proj.3.init" and c["restore_failed"] and not c["init_restored"]
    assert c["run_dependencies"] and c["create_init"] and c["replace_init"]


def test_missing_phase_files_are_skipped_but_init_snapshot_still_taken():
    c = gp.cache_plan(_plan(["/ph/main.yaml"]), [])
    assert not c["run_dependencies"] and not c["run_init"] and c["create_init"]


def test_restore_init_not_allowed_replaces_the_existing_init():
    allowed = [p for p in gp.PHASES if p != "restore init"]
    c = gp.cache_plan(_plan(ALL_FILES, allowed_phases=allowed), ["clean", "proj.3.init"])
    assert c["restore"] == "clean" and c["run_init"] and c["replace_init"]


@pytest.mark.parametrize("subset", [set(c) for r in (0, 3, 6) for c in itertools.combinations(gp.PHASES, r)][:60])
def test_gates_never_allow_what_is_not_listed(subset):
    for names in ([], ["clean"], ["clean", "proj.3.init"]):
        c = gp.cache_plan(_plan(ALL_FILES, allowed_phases=sorted(subset)), names)
        if c["restore"] == "proj.3.init":
            assert "restore init" in subset
        if c["restore"] == "clean":
            assert "restore clean" in subset
        assert not c["create_clean"] or "create clean" in subset
        assert not c["run_dependencies"] or "dependencies" in subset
        assert not c["run_init"] or "init" in subset
        assert not c["create_init"] or "create init" in subset
        # the README: dependencies and init run exactly when init was not restored
        if c["init_restored"]:
            assert not (c["run_dependencies"] or c["run_init"] or c["create_init"])


# ---- ansible_farm compatibility (issue 12) ----------------------------------------------------

def test_plan_farm_name_uri_fallback_and_yml_phase_files():
    vm = {"metadata": {"name": "VM debian_12_amd64", "platform_name": "debian_12",
                       "target_name": "amd64"}}
    files = {"/pb/ph/debian_12/amd64/init.yml", "/pb/ph/debian_12/init.yaml", "/pb/ph/main.yml",
             "/pb/ph/main.yaml"}
    p = gp.plan(vm, allowed_phases=["startup", "main"], phases_lookup_dir_path="ph",
                base_dir="/pb", isfile=files.__contains__, libvirt_uri="qemu:///session")
    assert p["name"] == "VM-debian_12_amd64-7ba5d79c" and p["display_name"] == "VM debian_12_amd64"
    assert p["uri"] == "qemu:///session"
    assert p["files"]["init"] == "/pb/ph/debian_12/amd64/init.yml"     # more specific wins
    assert p["files"]["main"] == "/pb/ph/main.yaml"                    # .yaml before .yml
    assert p["files"]["dependencies"] is None
    vm["metadata"]["connection"] = "qemu:///system"
    assert gp.plan(vm, allowed_phases=[], isfile=files.__contains__,
                   libvirt_uri="qemu:///session")["uri"] == "qemu:///system"


def test_networks_of_the_network_interfaces_started_before_the_vm():
    """ansible_farm starts vm.net.source when vm.net.type is network; here every network NIC."""
    assert _plan()["networks"] == []
    vm = dict(VM, net={"type": "network", "source": "farm-net"})
    assert gp.plan(vm, project_id="p", revision_id=1)["networks"] == ["farm-net"]
    vm = dict(VM, net=[{"type": "network"}, {"type": "user"}, {"type": "network", "source": "b"},
                       {"type": "network", "source": "default"}])
    assert gp.plan(vm, project_id="p", revision_id=1)["networks"] == ["default", "b"]
    vm = dict(VM, net={"type": "user", "source": "hostfwd=tcp:127.0.0.1:2222-:22"})
    assert gp.plan(vm, project_id="p", revision_id=1)["networks"] == []


def test_snapshot_type_internal_and_external_refused_with_the_reason():
    assert _plan()["snapshot_type"] == "internal"
    assert _plan(snapshot_kind="internal")["snapshot_type"] == "internal"
    with pytest.raises(ValidationError, match=r"snapshot_type.*'external'.*libvirt before 9\.7"):
        _plan(snapshot_kind="external")
    with pytest.raises(ValidationError, match="snapshot_type.*must be internal or external"):
        _plan(snapshot_kind="overlay")


def test_external_snapshot_type_is_fine_without_snapshot_phases():
    """ansible_farm's demo sets snapshot_type: external for arm64 and runs some plays without
    any snapshot phase: those plan; with a snapshot phase they are refused."""
    p = _plan(snapshot_kind="external", allowed_phases=["startup", "dependencies", "init", "main"],
              project_id=None, revision_id=None)
    assert p["snapshot_type"] == "external" and p["init_snapshot"] is None
    with pytest.raises(ValidationError, match="snapshot_type"):
        _plan(snapshot_kind="external", allowed_phases=["startup", "create clean"])


def test_default_lookup_dir_falls_back_to_ansible_farms(tmp_path):
    vm = dict(VM)
    assert gp.plan(vm, project_id="p", revision_id=1, base_dir=str(tmp_path))["lookup_dir"] == \
        str(tmp_path / "phases")
    (tmp_path / "provision_phases").mkdir()
    assert gp.plan(vm, project_id="p", revision_id=1, base_dir=str(tmp_path))["lookup_dir"] == \
        str(tmp_path / "provision_phases")
    (tmp_path / "phases").mkdir()
    assert gp.plan(vm, project_id="p", revision_id=1, base_dir=str(tmp_path))["lookup_dir"] == \
        str(tmp_path / "phases")
    # an explicit value is used as it is
    assert gp.plan(vm, project_id="p", revision_id=1, base_dir=str(tmp_path),
                   phases_lookup_dir_path="provision_phases")["lookup_dir"] == str(tmp_path / "provision_phases")
