# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of the vm_status and vm_status_info modules (private, no stability promise)."""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_vm

DEFAULT_WHO = "ansible"


def _view(vm):
    return {"status": vm["status"], "admin_suspended": vm["admin_suspended"],
            "ansible_pending": vm["ansible_pending"]}


def apply_status(store, name, actor, status=None, request_ansible=False, admin_suspended=None,
                 who=None, reason=None, grace_days=lc.DEFAULT_GRACE_DAYS, check=False,
                 finish_run=False):
    """Apply what vm_status asks for; return the module result (without ``diff``).

    ``finish_run`` ends an ansible run (``ansible -> ready``, ``ansible_queue -> ansible``);
    the result's ``run_again`` is then true when a queued run must start now.
    """
    who = who or DEFAULT_WHO
    status = lc.canonical_status(status)
    if actor not in lc.ACTORS:
        raise ValidationError(f"VM '{name}'", "actor", actor, f"must be one of {', '.join(lc.ACTORS)}")
    if sum(bool(x) for x in (status is not None, request_ansible, finish_run)) > 1:
        raise ValidationError(f"VM '{name}'", "status", status,
                              "give only one of a target status, request_ansible, finish_run")
    if finish_run and actor != lc.ADMIN:
        raise StateError(f"VM '{name}': only the runner (actor admin) ends an ansible run")
    if admin_suspended is not None and actor != lc.ADMIN:
        raise StateError(f"VM '{name}': only an admin may change the admin suspension "
                         f"(actor is '{actor}')")
    vm = store.get_vm(name)
    if vm is None:
        raise StateError(f"VM '{name}' is not in the store")
    before = _view(vm)
    after = dict(before)
    plan = None
    if admin_suspended is not None:
        store.set_admin_suspended(name, admin_suspended, who=who, why=reason, check=check)
        after["admin_suspended"] = bool(admin_suspended)
    if status is not None:
        plan = store.change_status(name, status, actor, who=who, why=reason, check=check,
                                   grace_days=grace_days)
    elif request_ansible:
        plan = store.request_ansible(name, actor, who=who, why=reason, check=check)
    elif finish_run:
        plan = store.finish_ansible_run(name, who=who, why=reason, check=check)
    if plan is not None:
        after["status"] = plan.after
        if plan.deferred:
            after["ansible_pending"] = True
        elif plan.after == lc.ANSIBLE and plan.changed:
            after["ansible_pending"] = False
    return {
        "changed": after != before,
        "name": name,
        "before": before,
        "after": after,
        "event": plan.event if plan is not None and plan.changed else None,
        "deferred": bool(plan is not None and plan.deferred),
        "run_again": bool(finish_run and plan.after == lc.ANSIBLE),
        "msg": plan.message if plan is not None else "",
    }


def read_status(store, name=None, status=None, flavor=None, org=None, owner=None,
                events=True, limit=None):
    """What vm_status_info returns: one VM with its history, or the VMs matching filters."""
    if name is not None:
        vm = store.get_vm(name)
        if vm is None:
            return {"exists": False, "vm": None, "events": []}
        return {"exists": True, "vm": redact_vm(vm), "events": store.events(name, limit) if events else []}
    vms = store.list_vms(status=lc.canonical_status(status), flavor=flavor, org=org, owner=owner)
    return {"vms": [redact_vm(vm) for vm in vms]}
