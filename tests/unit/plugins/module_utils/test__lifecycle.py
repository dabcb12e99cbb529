# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every (status, target, actor, suspended) combination of the state machine."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError

# Written out by hand from ARCHITECTURE.md ("Lifecycle") and seed 000, independently of the
# table in _lifecycle.py: (source, target) -> actors allowed.
U, A = {"user", "admin"}, {"admin"}
EXPECTED = {
    ("installing", "postinstall"): A,
    ("installing", "failed"): A,
    ("installing", "canceled"): A,
    ("postinstall", "preallocated"): A,
    ("postinstall", "failed"): A,
    ("postinstall", "canceled"): A,
    ("preallocated", "ready"): U,
    ("preallocated", "failed"): A,
    ("preallocated", "canceled"): A,
    ("ready", "ansible"): U,
    ("ready", "quarantined"): U,
    ("ready", "disabled"): U,
    ("ready", "canceled"): U,
    ("ready", "failed"): A,
    ("ansible", "ansible_queue"): U,
    ("ansible", "ready"): A,
    ("ansible", "failed"): A,
    ("ansible", "canceled"): U,
    ("ansible_queue", "ansible"): A,
    ("ansible_queue", "failed"): A,
    ("ansible_queue", "canceled"): U,
    ("quarantined", "ready"): U,      # user only when not suspended
    ("quarantined", "canceled"): U,
    ("disabled", "ready"): U,         # user only when not suspended
    ("disabled", "canceled"): U,
    ("failed", "ready"): A,
    ("failed", "canceled"): U,
    ("canceled", "disabled"): A,
    ("canceled", "purged"): A,        # after the grace period
}
SUSPENSION_GUARDED = {("quarantined", "ready"), ("disabled", "ready")}
NOW = 1_000_000_000.0
LONG_AGO = NOW - 31 * lc.DAY      # grace period (30 days) passed
RECENTLY = NOW - 29 * lc.DAY      # not yet

PRODUCT = list(itertools.product(lc.STATUSES, lc.STATUSES, lc.ACTORS, (False, True)))


def _allowed(src, dst, actor, suspended):
    if src == dst:
        return True
    actors = EXPECTED.get((src, dst), set())
    if actor not in actors:
        return False
    if suspended and actor == "user" and (src, dst) in SUSPENSION_GUARDED:
        return False
    return True


def test_table_has_eleven_statuses_and_unique_pairs():
    assert len(lc.STATUSES) == 11
    pairs = [(t.source, t.target) for t in lc.TRANSITIONS]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == set(EXPECTED)


@pytest.mark.parametrize("src,dst,actor,suspended", PRODUCT,
                         ids=[f"{s}->{d}-{a}-{'susp' if x else 'free'}" for s, d, a, x in PRODUCT])
def test_every_transition(src, dst, actor, suspended):
    kwargs = dict(admin_suspended=suspended, since=LONG_AGO, now=NOW)
    if _allowed(src, dst, actor, suspended):
        plan = lc.plan_transition("vm1", src, dst, actor, **kwargs)
        assert (plan.before, plan.after, plan.changed, plan.deferred) == (src, dst, src != dst, False)
        assert plan.actor == actor
        if src != dst:
            assert plan.event
    else:
        with pytest.raises(StateError) as err:
            lc.plan_transition("vm1", src, dst, actor, **kwargs)
        text = str(err.value)
        assert "VM 'vm1'" in text and f"'{src}'" in text and f"'{dst}'" in text
        expected_next = [d for (s, d) in EXPECTED if s == src and _allowed(s, d, actor, suspended)]
        listed = text.rsplit(f"allowed next statuses for {actor}: ", 1)[1]
        assert set(listed.split(", ")) == (set(expected_next) or {"(none)"})


@pytest.mark.parametrize("src,dst", sorted(SUSPENSION_GUARDED))
def test_suspension_message_and_admin_override(src, dst):
    with pytest.raises(StateError, match="administratively suspended"):
        lc.plan_transition("web1", src, dst, "user", admin_suspended=True)
    assert lc.plan_transition("web1", src, dst, "admin", admin_suspended=True).after == dst


def test_purge_needs_grace_period():
    with pytest.raises(StateError, match=r"grace period of 30 days .*\(1\.0 days left\)"):
        lc.plan_transition("vm1", "canceled", "purged", "admin", since=RECENTLY, now=NOW)
    assert lc.plan_transition("vm1", "canceled", "purged", "admin", since=LONG_AGO, now=NOW).changed
    # exactly at the boundary the period has passed
    assert lc.plan_transition("vm1", "canceled", "purged", "admin",
                              since=NOW - 30 * lc.DAY, now=NOW).after == "purged"
    with pytest.raises(StateError, match="cannot be checked"):
        lc.plan_transition("vm1", "canceled", "purged", "admin")


def test_grace_period_is_configurable():
    assert lc.plan_transition("vm1", "canceled", "purged", "admin", since=RECENTLY, now=NOW,
                              grace_days=7).changed
    with pytest.raises(StateError, match="grace period of 0.5 days"):
        lc.plan_transition("vm1", "canceled", "purged", "admin", since=NOW - 3600, now=NOW,
                           grace_days=0.5)


def test_allowed_next_hides_purge_during_grace():
    assert lc.allowed_next("canceled", "admin", since=RECENTLY, now=NOW) == ["disabled"]
    assert lc.allowed_next("canceled", "admin", since=LONG_AGO, now=NOW) == ["disabled", "purged"]
    assert lc.allowed_next("purged", "admin") == []


@pytest.mark.parametrize("bad", [dict(status="gone"), dict(target="gone"), dict(actor="root")])
def test_unknown_names(bad):
    args = dict(status="ready", target="disabled", actor="user")
    args.update(bad)
    with pytest.raises(StateError, match="unknown"):
        lc.plan_transition("vm1", args["status"], args["target"], args["actor"])


# ---- ansible requests -------------------------------------------------------------------

@pytest.mark.parametrize("actor", lc.ACTORS)
def test_request_while_ready_starts_a_run(actor):
    plan = lc.plan_ansible_request("vm1", "ready", actor)
    assert (plan.after, plan.changed, plan.deferred) == ("ansible", True, False)


@pytest.mark.parametrize("actor", lc.ACTORS)
def test_request_during_run_queues_exactly_one(actor):
    plan = lc.plan_ansible_request("vm1", "ansible", actor)
    assert (plan.after, plan.changed) == ("ansible_queue", True)
    again = lc.plan_ansible_request("vm1", plan.after, actor)
    assert (again.before, again.after, again.changed, again.deferred) == (
        "ansible_queue", "ansible_queue", False, False)


@pytest.mark.parametrize("status", ["installing", "postinstall"])
def test_request_while_installing_is_deferred(status):
    first = lc.plan_ansible_request("vm1", status, "user", ansible_pending=False)
    assert (first.after, first.changed, first.deferred) == (status, True, True)
    second = lc.plan_ansible_request("vm1", status, "user", ansible_pending=True)
    assert (second.after, second.changed, second.deferred) == (status, False, True)


@pytest.mark.parametrize("status", ["preallocated", "quarantined", "disabled", "canceled",
                                    "purged", "failed"])
def test_request_refused_elsewhere(status):
    with pytest.raises(StateError, match=f"VM 'vm1': cannot request an ansible run in status '{status}'"):
        lc.plan_ansible_request("vm1", status, "user")


def test_run_end_semantics():
    assert lc.plan_transition("vm1", "ansible", "ready", "admin").after == "ready"
    # the queued run starts at once rather than dropping the request
    assert lc.plan_transition("vm1", "ansible_queue", "ansible", "admin").after == "ansible"
    with pytest.raises(StateError):
        lc.plan_transition("vm1", "ansible_queue", "ready", "admin")


@pytest.mark.parametrize("status,after", [("ansible", "ready"), ("ansible_queue", "ansible")])
def test_plan_run_end(status, after):
    plan = lc.plan_run_end("vm1", status)
    assert plan.changed and plan.after == after and plan.actor == "admin"


@pytest.mark.parametrize("status", ["ready", "installing", "quarantined", "failed"])
def test_plan_run_end_refused_without_a_run(status):
    with pytest.raises(StateError, match=f"VM 'vm1': no ansible run to finish in status '{status}'"):
        lc.plan_run_end("vm1", status)


def test_the_panels_ansible_queued_is_an_alias_of_ansible_queue():
    plan = lc.plan_transition("vm1", "ansible", "ansible_queued", "user")
    assert (plan.before, plan.after, plan.changed) == ("ansible", "ansible_queue", True)
    assert lc.plan_transition("vm1", "ansible_queue", "ansible_queued", "user").changed is False
    assert lc.canonical_status("ansible_queued") == "ansible_queue"
    assert lc.canonical_status("ready") == "ready" and lc.canonical_status(None) is None
    # an alias is an input only: it is never a stored status
    assert "ansible_queued" not in lc.STATUSES
    with pytest.raises(StateError, match="unknown status 'ansible_queued'"):
        lc.plan_transition("vm1", "ansible_queued", "ready", "admin")
