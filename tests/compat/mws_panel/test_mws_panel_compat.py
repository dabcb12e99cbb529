# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mws-panel (seed 000) users: the panel's VM lifecycle and status names through our store.

The fixture (lifecycle.yml) is the seed's lifecycle page and the panel's statuses re-typed as
data. Every step runs through the code of vm_status / vm_status_info / vm_pool
(``_vm_status.apply_status``, ``read_status``, ``Store.claim``) against a real SQLite store in a
temporary directory. Each test names the line of docs/migrating-from-mws-panel.md it checks.
"""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_status import apply_status, read_status
from ansible_collections.vman.lifecycle.plugins.modules import vm_status, vm_status_info

HERE = os.path.dirname(__file__)
DAY = 86400.0

with open(os.path.join(HERE, "lifecycle.yml"), encoding="utf-8") as _handle:
    PANEL = yaml.safe_load(_handle)
#: the panel's status name -> ours, as the migration page maps them
TO_OURS = {row["panel"]: row["ours"] for row in PANEL["statuses"]}


def ours(panel_name):
    return TO_OURS.get(panel_name, panel_name)


class Clock:
    """A settable clock (the grace period is checked without sleeping)."""

    def __init__(self):
        self.t = 1_700_000_000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    s = open_store(f"sqlite://{tmp_path}/state/lifecycle.db", clock=clock)
    yield s
    s.close()


def _new(store, name="mwssite-1", flavor="mws3"):
    store.create_vms([{"name": name, "org": "mws", "flavor": flavor, "backend": "xen", "spec": {}}])
    return name


def _to(store, name, panel_status):
    """Bring a new VM to ``panel_status`` the way the panel's life gets there."""
    route = {"installing": [], "postinstall": ["postinstall"],
             "ready": ["postinstall", "preallocated", "ready"],
             "ansible": ["postinstall", "preallocated", "ready", "+"],
             "ansible_queued": ["postinstall", "preallocated", "ready", "+", "+"]}[panel_status]
    for step in route:
        if step == "+":
            apply_status(store, name, lc.USER, request_ansible=True)
        else:
            apply_status(store, name, lc.ADMIN, status=step)
    assert store.get_vm(name)["status"] == ours(panel_status)


def _status(store, name):
    return store.get_vm(name)["status"]


# ---- the walk of the lifecycle page ----------------------------------------------------------

def test_walk_of_the_lifecycle_page(store):
    """Doc: "The seed's lifecycle, converted" and the status table, step by step."""
    name = _new(store)
    assert _status(store, name) == "installing"
    for step in PANEL["walk"]:
        if "claim" in step:
            claimed = store.claim("mws3", step["claim"])
            assert claimed["name"] == name and claimed["owner"] == step["claim"]
        elif step.get("request_ansible"):
            apply_status(store, name, lc.USER, request_ansible=True, who="panel")
        elif step.get("finish_run"):
            result = apply_status(store, name, lc.ADMIN, finish_run=True)
            assert result["run_again"] is (ours(step["expect"]) == "ansible"), step["do"]
        else:
            apply_status(store, name, step["actor"], status=step["status"], who="panel")
        assert _status(store, name) == ours(step["expect"]), step["do"]


def test_every_panel_status_maps_to_one_of_ours():
    """Doc: "Statuses, one by one"; requested/accepted/denied are not carried."""
    for row in PANEL["statuses"]:
        assert row["ours"] in lc.STATUSES
    for name in PANEL["not_carried"]:
        assert name not in lc.STATUSES and name not in lc.STATUS_ALIASES


@pytest.mark.parametrize("panel_name", ["requested", "accepted", "denied", ""])
def test_statuses_not_carried_and_an_empty_status_are_errors(store, panel_name):
    """Doc: no requested/accepted/denied; an empty status is an error here."""
    name = _new(store)
    with pytest.raises(StateError, match="unknown target status"):
        apply_status(store, name, lc.ADMIN, status=panel_name)


# ---- ansible_queued as an input ---------------------------------------------------------------

def test_ansible_queued_is_accepted_as_a_status_input(store):
    """Doc: `ansible_queued` accepted wherever a status is an input; results say ansible_queue."""
    name = _new(store)
    _to(store, name, "ansible")
    result = apply_status(store, name, lc.USER, status="ansible_queued")
    assert result["after"]["status"] == "ansible_queue" and result["event"] == "ansible_request"
    again = apply_status(store, name, lc.USER, status="ansible_queued")
    assert again["changed"] is False
    listed = read_status(store, status="ansible_queued")["vms"]
    assert [vm["name"] for vm in listed] == [name] and listed[0]["status"] == "ansible_queue"
    assert read_status(store, status="ansible_queue")["vms"] == listed


def test_ansible_queued_is_in_the_modules_choices():
    """Doc: vm_status status= and vm_status_info status= take the alias."""
    status_opt = yaml.safe_load(vm_status.DOCUMENTATION)["options"]["status"]
    assert "ansible_queued" in status_opt["choices"]
    info_opt = yaml.safe_load(vm_status_info.DOCUMENTATION)["options"]["status"]
    assert "ansible_queued" in info_opt.get("choices", ["ansible_queued"])
    assert "ansible_queued" in " ".join(info_opt["description"] if isinstance(
        info_opt["description"], list) else [info_opt["description"]])


def test_ansible_queue_group_name_is_ours():
    """Doc: the inventory group is status_ansible_queue, needs_ansible holds both."""
    assert "ansible_queued" not in lc.STATUSES
    assert set(lc.NEEDS_ANSIBLE) == {"ansible", "ansible_queue"}


# ---- ansible runs -----------------------------------------------------------------------------

@pytest.mark.parametrize("row", PANEL["launch_ansible"], ids=lambda r: r["before"])
def test_launch_ansible_table(store, row):
    """Doc: "Ansible runs", a change coming in."""
    name = _new(store)
    _to(store, name, row["before"])
    result = apply_status(store, name, lc.USER, request_ansible=True)
    assert result["after"]["status"] == ours(row["after"])


@pytest.mark.parametrize("row", PANEL["run_end"], ids=lambda r: r["before"])
def test_run_end_table(store, row):
    """Doc: "Ansible runs", when a run ends."""
    name = _new(store)
    _to(store, name, row["before"])
    result = apply_status(store, name, lc.ADMIN, finish_run=True)
    assert (result["after"]["status"], result["run_again"]) == (ours(row["after"]), row["again"])


def test_difference_request_while_installing_is_remembered(store):
    """Doc: a request while installing is remembered (ansible_pending), not dropped."""
    name = _new(store)
    result = apply_status(store, name, lc.USER, request_ansible=True)
    assert result["deferred"] is True and result["after"]["ansible_pending"] is True
    assert result["after"]["status"] == "installing"
    apply_status(store, name, lc.ADMIN, status="postinstall")
    assert store.get_vm(name)["ansible_pending"] is True
    second = apply_status(store, name, lc.USER, request_ansible=True)
    assert second["deferred"] is True and second["changed"] is False


def test_difference_failed_run_is_failed_not_ready(store):
    """Doc: a failed run makes the VM failed (the panel said ready); an admin repairs it."""
    name = _new(store)
    _to(store, name, "ansible")
    apply_status(store, name, lc.ADMIN, status="failed", reason="playbook failed")
    assert _status(store, name) == "failed"
    with pytest.raises(StateError, match="only admin"):
        apply_status(store, name, lc.USER, status="ready")
    assert apply_status(store, name, lc.ADMIN, status="ready")["event"] == "repaired"


@pytest.mark.parametrize("where", ["quarantined", "disabled", "canceled"])
def test_no_run_on_a_quarantined_disabled_or_canceled_vm(store, where):
    """Doc: anything else than ready/ansible/queue/installing is an error (UnexpectedVMStatus)."""
    name = _new(store)
    _to(store, name, "ready")
    apply_status(store, name, lc.USER, status=where)
    with pytest.raises(StateError, match="cannot request an ansible run"):
        apply_status(store, name, lc.USER, request_ansible=True)


# ---- suspension, cancellation ------------------------------------------------------------------

@pytest.mark.parametrize("where", PANEL["suspended_user_blocked"])
def test_admin_suspension_blocks_the_user_not_the_admin(store, where):
    """Doc: `Suspension` rows -> admin_suspended; the user may not leave, an admin may."""
    name = _new(store)
    _to(store, name, "ready")
    apply_status(store, name, lc.ADMIN, status=where)
    apply_status(store, name, lc.ADMIN, admin_suspended=True, reason="abuse")
    with pytest.raises(StateError, match="administratively suspended"):
        apply_status(store, name, lc.USER, status="ready")
    with pytest.raises(VmanError, match="only an admin"):
        apply_status(store, name, lc.USER, admin_suspended=False)
    assert apply_status(store, name, lc.ADMIN, status="ready")["after"]["status"] == "ready"


def test_canceled_is_purged_only_after_the_grace_period(store, clock):
    """Doc: canceled, then purged after grace_days (30) - the panel deleted after a month."""
    name = _new(store)
    _to(store, name, "ready")
    apply_status(store, name, lc.USER, status="canceled")
    clock.t += (PANEL["grace_days"] - 1) * DAY
    with pytest.raises(StateError, match="grace period"):
        apply_status(store, name, lc.ADMIN, status="purged")
    clock.t += 2 * DAY
    assert apply_status(store, name, lc.ADMIN, status="purged")["after"]["status"] == "purged"


def test_canceled_may_be_restored_during_the_grace_period(store):
    """Doc: an admin may restore a canceled VM during the grace period (to disabled)."""
    name = _new(store)
    _to(store, name, "ready")
    apply_status(store, name, lc.USER, status="canceled")
    assert apply_status(store, name, lc.ADMIN, status="disabled")["event"] == "restore"


def test_preallocated_is_a_status_of_its_own(store):
    """Doc: preallocated is its own status, never mistaken for a user's disabled VM."""
    a, b = _new(store, "mwssite-1"), _new(store, "mwssite-2")
    for name in (a, b):
        _to(store, name, "ready")
    apply_status(store, b, lc.USER, status="disabled")
    c = _new(store, "mwssite-3")
    apply_status(store, c, lc.ADMIN, status="postinstall")
    apply_status(store, c, lc.ADMIN, status="preallocated")
    assert store.claim("mws3", "bob")["name"] == c          # never the disabled one
    with pytest.raises(StateError):
        store.claim("mws3", "carol")                          # none left
