# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm-manager (seed 004) users: the start-request model through vm_request and the planner.

The fixture (start_requests.yml) is seed 004's request model re-typed as data: a start entry
with two allocators and the vm-manager-x contract, step by step. Requests go through
``_vm_request.apply_request`` (the code of vm_request) on a real SQLite store; plans come from
``_reconcile.plan_request`` (the planner of vm_reconcile) fed with the stored request. Each test
names the line of docs/migrating-from-vm-manager.md it checks.
"""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.module_utils import _reconcile as rc
from ansible_collections.vman.lifecycle.plugins.module_utils._backends import RUNNING
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._store import requests as rq
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_request import apply_request

HERE = os.path.dirname(__file__)
with open(os.path.join(HERE, "start_requests.yml"), encoding="utf-8") as _handle:
    SEED = yaml.safe_load(_handle)
ENTRY = SEED["start"][0]
PARAMS = {k: ENTRY[k] for k in ("backend", "hypervisor", "count", "spec")}


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite://{tmp_path}/state/lifecycle.db")
    yield s
    s.close()


def _register_all(store):
    """``registerStartRequest()`` for every allocator of the seed's entry."""
    for allocator in ENTRY["allocators"]:
        apply_request(store, ENTRY["name"], allocator, "present", PARAMS)
    return store.get_request(ENTRY["name"])


def _kinds(actions, vm=None):
    return [a.kind for a in actions if vm is None or a.vm == vm]


def _contract(rows, license_hook):
    return [k for row in rows if license_hook or not row.get("optional") for k in row["ours"]]


# ---- registering -----------------------------------------------------------------------------

def test_register_start_request_creates_one_request_with_every_allocator(store):
    """Doc: registerStartRequest() -> vm_request allocator=<service> state=present."""
    request = _register_all(store)
    assert sorted(request["allocators"]) == sorted(ENTRY["allocators"])
    assert (request["backend"], request["hypervisor"], request["count"], request["spec"]) == (
        ENTRY["backend"], ENTRY["hypervisor"], ENTRY["count"], ENTRY["spec"])
    assert request["state"] == rq.PENDING and request["devices"] == []
    again = apply_request(store, ENTRY["name"], ENTRY["allocators"][0], "present", PARAMS)
    assert again["changed"] is False


@pytest.mark.parametrize("name", SEED["names"]["accepted"])
def test_request_names_accepted(store, name):
    """Doc: a name is 1-48 of a-z 0-9 - (it names the VMs <request>-<n>)."""
    assert apply_request(store, name, "svc", "present", {"backend": "lxc"})["name"] == name


@pytest.mark.parametrize("name", SEED["names"]["refused"])
def test_request_names_refused(store, name):
    """Doc: the same rule, refused with an error naming the field."""
    with pytest.raises(ValidationError, match="name"):
        apply_request(store, name, "svc", "present", {"backend": "lxc"})


# ---- the vm-manager-x contract -----------------------------------------------------------------

@pytest.mark.parametrize("license_hook", [False, True])
def test_new_entry_plans_the_contract_in_the_seeds_order(store, license_hook):
    """Doc: vm-manager-x on a new entry -> record, define, start, ..., mark_ready, per device."""
    request = _register_all(store)
    plan = rc.plan_request(request, {}, license_hook=license_hook)
    want = _contract(SEED["on_create"], license_hook)
    for idx in range(1, ENTRY["count"] + 1):
        assert _kinds(plan, f"{ENTRY['name']}-{idx}") == want
    assert {a.vm for a in plan} == {f"web-{i}" for i in range(1, ENTRY["count"] + 1)}


def test_ready_device_puts_every_allocator_on_the_redeploy_list(store):
    """Doc: "re-deploy the service" -> every allocator on the redeploy list, cleared by
    redeploy_done."""
    _register_all(store)
    store.add_device("web", "web-1", 1)
    store.device_ready("web", "web-1", "boot-1", "marker-1")
    assert sorted(e["allocator"] for e in store.redeploy_entries()) == sorted(ENTRY["allocators"])
    done = apply_request(store, "web", "service-web", "present", redeploy_done=True)
    assert done["changed"] is True
    assert [e["allocator"] for e in store.redeploy_entries()] == ["service-monitoring"]


def test_reinitialised_vm_is_told_from_a_reboot(store):
    """Doc: boot id changed + marker gone -> reinitialized (redeploy); marker there -> rebooted."""
    _register_all(store)
    store.add_device("web", "web-1", 1)
    store.device_ready("web", "web-1", "boot-1", "marker-1")
    request = store.get_request("web")
    request = dict(request, count=1)
    reboot = {"web-1": {"state": RUNNING, "boot_id": "boot-2", "marker": "marker-1"}}
    assert _kinds(rc.plan_request(request, reboot)) == ["rebooted"]
    lost = {"web-1": {"state": RUNNING, "boot_id": "boot-2", "marker": None}}
    assert _kinds(rc.plan_request(request, lost)) == ["reinitialized"]


def test_failed_start_sets_error_status_and_redeploys_every_allocator(store):
    """Doc: error-status -> request state error with error_status/error_reason, all redeployed."""
    _register_all(store)
    allocators = store.request_failed("web", "start_failed", "lxc-start exited 1")
    request = store.get_request("web")
    assert (request["state"], request["error_status"], request["error_reason"]) == (
        rq.ERROR, "start_failed", "lxc-start exited 1")
    assert sorted(allocators) == sorted(ENTRY["allocators"])


# ---- staged delete ----------------------------------------------------------------------------

def test_staged_delete_removing_one_allocator_keeps_the_vms(store):
    """Doc: several services share a request; the VMs go when the last allocator has gone."""
    _register_all(store)
    store.add_device("web", "web-1", 1)
    store.device_ready("web", "web-1", "b1", "m1")
    first = apply_request(store, "web", "service-web", "absent")
    assert first["changed"] is True and first["msg"] == ""
    request = store.get_request("web")
    assert request["allocators"] == ["service-monitoring"]
    observed = {"web-1": {"state": RUNNING, "boot_id": "b1", "inventoried": True}}
    assert rc.plan_request(dict(request, count=1), observed) == []


@pytest.mark.parametrize("license_hook", [False, True])
def test_staged_delete_last_allocator_gone_vm_torn_down_in_a_later_run(store, license_hook):
    """Doc: vm_request never touches a hypervisor; the next reconcile tears down in the seed's
    order (license, devices tree, stop), then forgets the request."""
    _register_all(store)
    store.add_device("web", "web-1", 1)
    store.device_ready("web", "web-1", "b1", "m1")
    for allocator in ENTRY["allocators"]:
        last = apply_request(store, "web", allocator, "absent")
    assert "no allocator left" in last["msg"]
    request = store.get_request("web")               # still there: nothing was torn down yet
    assert request is not None and [d["vm"] for d in request["devices"]] == ["web-1"]
    observed = {"web-1": {"state": RUNNING, "boot_id": "b1", "inventoried": True}}
    plan = rc.plan_request(request, observed, license_hook=license_hook)
    assert _kinds(plan) == _contract(SEED["on_delete"], license_hook) + SEED["after_delete"]


def test_scale_in_tears_down_the_highest_device_first(store):
    """Doc: lowering count tears down the highest first."""
    _register_all(store)
    for idx in (1, 2, 3):
        store.add_device("web", f"web-{idx}", idx)
        store.device_ready("web", f"web-{idx}", "b1", "m1")
    apply_request(store, "web", "service-web", "present", {"count": 1})
    request = store.get_request("web")
    assert request["count"] == 1
    observed = {f"web-{i}": {"state": RUNNING, "boot_id": "b1", "inventoried": True}
                for i in (1, 2, 3)}
    plan = rc.plan_request(request, observed)
    assert [a.vm for a in plan if a.kind == "stop"] == ["web-3", "web-2"]
    assert "forget" not in _kinds(plan)
