# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VM status state machine (private, no stability promise).

Pure code: no I/O, no clock of its own (callers pass ``now``). Every allowed status change is
one row of :data:`TRANSITIONS`; everything else is refused with a :class:`StateError` that
names the VM, its status and the statuses it may move to.

Admin suspension is a flag beside the status, not a status: while it is set, a ``user`` may
not leave ``quarantined`` or ``disabled`` (the seed's "unless the site is administratively
suspended"); an ``admin`` still may.

Ansible runs are *requested* (:func:`plan_ansible_request`) rather than set:

========================  ===================================================================
status when requested     outcome
========================  ===================================================================
``ready``                 -> ``ansible`` (a run starts)
``ansible``               -> ``ansible_queue`` (exactly one more run is queued)
``ansible_queue``         nothing changes: the queued run will see this request too
``installing``,           *deferred*: the status does not change; ``deferred`` is true and the
``postinstall``           caller records a pending request (the store's ``ansible_pending``),
                          which the run after postinstall/claim satisfies. A second deferred
                          request while one is pending changes nothing.
anything else             :class:`StateError` (no run on a quarantined, disabled, ... VM)
========================  ===================================================================

When a run ends the runner sets the target status: ``ansible -> ready`` or
``ansible_queue -> ansible`` (the queued run starts at once).
"""

from __future__ import annotations

from collections import namedtuple

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError

INSTALLING = "installing"
POSTINSTALL = "postinstall"
PREALLOCATED = "preallocated"
READY = "ready"
ANSIBLE = "ansible"
ANSIBLE_QUEUE = "ansible_queue"
QUARANTINED = "quarantined"
DISABLED = "disabled"
CANCELED = "canceled"
PURGED = "purged"
FAILED = "failed"

STATUSES = (INSTALLING, POSTINSTALL, PREALLOCATED, READY, ANSIBLE, ANSIBLE_QUEUE,
            QUARANTINED, DISABLED, CANCELED, PURGED, FAILED)

#: Other names accepted wherever a status is an input, mapped to the collection's own. The
#: panel of seed 000 (mws-panel) calls the queued state ``ansible_queued``; the store, the
#: results and the inventory always say ``ansible_queue``.
STATUS_ALIASES = {"ansible_queued": ANSIBLE_QUEUE}


def canonical_status(status):
    """``status`` with an alias (:data:`STATUS_ALIASES`) replaced by the status it names."""
    if isinstance(status, str):
        return STATUS_ALIASES.get(status, status)
    return status


USER = "user"
ADMIN = "admin"
ACTORS = (USER, ADMIN)

DEFAULT_GRACE_DAYS = 30
DAY = 86400.0

# Guards a row may carry.
NOT_SUSPENDED = "not_suspended"   # a user may not take this step while admin_suspended
GRACE = "grace"                   # only once the grace period since entering the status passed

Transition = namedtuple("Transition", "source target event actors guard")

_U = frozenset((USER, ADMIN))
_A = frozenset((ADMIN,))


def _t(source, target, event, actors, guard=None):
    return Transition(source, target, event, actors, guard)


#: The whole state machine. (source, target) pairs are unique.
TRANSITIONS = (
    # installation and the preallocation pool (driven by the controller, i.e. admin)
    _t(INSTALLING, POSTINSTALL, "install_callback", _A),
    _t(INSTALLING, FAILED, "install_failed", _A),
    _t(POSTINSTALL, PREALLOCATED, "postinstall_done", _A),
    _t(POSTINSTALL, FAILED, "postinstall_failed", _A),
    _t(PREALLOCATED, READY, "claim", _U),
    _t(PREALLOCATED, FAILED, "preallocated_failed", _A),
    # ansible runs: the request rows, then the end-of-run rows
    _t(READY, ANSIBLE, "ansible_request", _U),
    _t(ANSIBLE, ANSIBLE_QUEUE, "ansible_request", _U),
    _t(ANSIBLE, READY, "ansible_done", _A),
    _t(ANSIBLE_QUEUE, ANSIBLE, "ansible_done_run_queued", _A),
    _t(ANSIBLE, FAILED, "ansible_failed", _A),
    _t(ANSIBLE_QUEUE, FAILED, "ansible_failed", _A),
    # the user's own switches
    _t(READY, QUARANTINED, "quarantine", _U),
    _t(QUARANTINED, READY, "unquarantine", _U, NOT_SUSPENDED),
    _t(READY, DISABLED, "disable", _U),
    _t(DISABLED, READY, "enable", _U, NOT_SUSPENDED),
    _t(READY, FAILED, "failed", _A),
    # an admin may repair a failed VM that a user owns, or put it away
    _t(FAILED, READY, "repaired", _A),
    # cancellation: the user cancels what is theirs, an admin anything still alive
    _t(INSTALLING, CANCELED, "cancel", _A),
    _t(POSTINSTALL, CANCELED, "cancel", _A),
    _t(PREALLOCATED, CANCELED, "cancel", _A),
    _t(READY, CANCELED, "cancel", _U),
    _t(ANSIBLE, CANCELED, "cancel", _U),
    _t(ANSIBLE_QUEUE, CANCELED, "cancel", _U),
    _t(QUARANTINED, CANCELED, "cancel", _U),
    _t(DISABLED, CANCELED, "cancel", _U),
    _t(FAILED, CANCELED, "cancel", _U),
    # an admin may undo a cancellation during the grace period: the VM comes back powered off
    _t(CANCELED, DISABLED, "restore", _A),
    _t(CANCELED, PURGED, "purge", _A, GRACE),
)

_BY_PAIR = {(t.source, t.target): t for t in TRANSITIONS}

#: Statuses in which an ansible request is remembered instead of acted on.
DEFERRING = (INSTALLING, POSTINSTALL)

#: Statuses that count as "an ansible run is wanted or running" for the inventory.
NEEDS_ANSIBLE = (ANSIBLE, ANSIBLE_QUEUE)


Plan = namedtuple("Plan", "vm before after event actor changed deferred message")
Plan.__doc__ = """Outcome of planning a status change (nothing is written by this module).

``changed`` is true when the status changes or (for a deferred ansible request) when a new
pending request must be recorded. ``deferred`` is true only for an ansible request made while
installing or in postinstall.
"""


def _check_status(vm, status, field="status"):
    if status not in STATUSES:
        raise StateError(f"VM '{vm}': unknown {field} '{status}'; known statuses: {', '.join(STATUSES)}")


def _check_actor(vm, actor):
    if actor not in ACTORS:
        raise StateError(f"VM '{vm}': unknown actor '{actor}'; actors are: {', '.join(ACTORS)}")


def _blocked(row, actor, admin_suspended, since, now, grace_days):
    """Return why ``row`` may not be taken now, or None when it may."""
    if actor not in row.actors:
        return f"only {' or '.join(sorted(row.actors))} may {row.event}"
    if row.guard == NOT_SUSPENDED and admin_suspended and actor != ADMIN:
        return "the VM is administratively suspended"
    if row.guard == GRACE:
        if since is None or now is None:
            return f"the grace period of {grace_days:g} days cannot be checked (no time given)"
        left = since + grace_days * DAY - now
        if left > 0:
            return (f"the grace period of {grace_days:g} days since cancellation has not passed "
                    f"({left / DAY:.1f} days left)")
    return None


def allowed_next(status, actor, admin_suspended=False, since=None, now=None,
                 grace_days=DEFAULT_GRACE_DAYS):
    """Statuses ``actor`` may move a VM in ``status`` to now, in table order."""
    return [t.target for t in TRANSITIONS if t.source == status
            and _blocked(t, actor, admin_suspended, since, now, grace_days) is None]


def plan_transition(vm, status, target, actor, admin_suspended=False, since=None, now=None,
                    grace_days=DEFAULT_GRACE_DAYS):
    """Plan moving VM ``vm`` from ``status`` to ``target`` on behalf of ``actor``.

    ``since`` is when the VM entered ``status`` and ``now`` the current time (epoch seconds);
    both are needed only for the grace period of ``canceled -> purged``. Asking for the
    status the VM already has is not an error: the plan has ``changed`` false.
    Raises :class:`StateError` naming the VM, its status and the allowed next statuses.
    ``target`` may be an alias (:data:`STATUS_ALIASES`).
    """
    target = canonical_status(target)
    _check_status(vm, status)
    _check_status(vm, target, "target status")
    _check_actor(vm, actor)
    if target == status:
        return Plan(vm, status, status, None, actor, False, False, f"VM '{vm}' is already {status}")
    row = _BY_PAIR.get((status, target))
    why = "no such transition" if row is None else _blocked(row, actor, admin_suspended, since,
                                                            now, grace_days)
    if why is not None:
        nxt = allowed_next(status, actor, admin_suspended, since, now, grace_days)
        raise StateError(
            f"VM '{vm}': cannot change status from '{status}' to '{target}' as {actor}: {why}; "
            f"allowed next statuses for {actor}: {', '.join(nxt) if nxt else '(none)'}")
    return Plan(vm, status, target, row.event, actor, True, False,
                f"VM '{vm}': {status} -> {target} ({row.event})")


def plan_ansible_request(vm, status, actor, ansible_pending=False):
    """Plan a request for an ansible run (see the module docstring for the table)."""
    _check_status(vm, status)
    _check_actor(vm, actor)
    if status == ANSIBLE_QUEUE:
        return Plan(vm, status, status, None, actor, False, False,
                    f"VM '{vm}': a run is already queued; it will apply this request")
    if status in DEFERRING:
        return Plan(vm, status, status, "ansible_request_deferred", actor, not ansible_pending, True,
                    f"VM '{vm}' is {status}: the ansible request is deferred"
                    + (" (one is already pending)" if ansible_pending else ""))
    if status in (READY, ANSIBLE):
        target = ANSIBLE if status == READY else ANSIBLE_QUEUE
        return plan_transition(vm, status, target, actor)
    raise StateError(
        f"VM '{vm}': cannot request an ansible run in status '{status}'; requests are accepted "
        f"in: {', '.join((READY, ANSIBLE, ANSIBLE_QUEUE) + DEFERRING)}")


def plan_run_end(vm, status):
    """Plan the end of an ansible run: ``ansible -> ready``, or ``ansible_queue -> ansible``
    when a request came in during the run (the queued run starts at once: ``Plan.after`` is
    then ``ansible`` and the caller runs again). Any other status is a StateError."""
    _check_status(vm, status)
    if status == ANSIBLE:
        return plan_transition(vm, status, READY, ADMIN)
    if status == ANSIBLE_QUEUE:
        return plan_transition(vm, status, ANSIBLE, ADMIN)
    raise StateError(f"VM '{vm}': no ansible run to finish in status '{status}'; a run ends in "
                     f"'{ANSIBLE}' or '{ANSIBLE_QUEUE}'")
