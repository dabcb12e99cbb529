# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of the vm_request, vm_request_info and vm_reconcile modules (private, no stability
promise). No hypervisor work happens in vm_request: it only changes store rows."""

from __future__ import annotations

import re

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, check_int
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_vm
from ansible_collections.vman.lifecycle.plugins.module_utils._store import requests as rq

#: a request name becomes part of VM names (``<name>-<n>``) and of host names
NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")
ALLOCATOR_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,127}")
#: the hypervisor is an inventory host name (and becomes an inventory group)
HYPERVISOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
#: a flavor names a pool size class (recorded on the devices in the inventory)
FLAVOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MAX_COUNT = 64
BACKENDS = ("lxc", "xen", "libvirt")
DEFAULT_WHO = "ansible"


def validate_request(name, allocator=None, params=None):
    """Check the name, the allocator and the parameters; raise ValidationError naming them."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError(f"request '{name}'", "name", name,
                              "must be 1-48 lower-case letters, digits or '-' (not at either end)")
    obj = f"request '{name}'"
    if allocator is not None and (not isinstance(allocator, str) or not ALLOCATOR_RE.fullmatch(allocator)):
        raise ValidationError(obj, "allocator", allocator,
                              "must be 1-128 letters, digits or _ . : @ / - (not starting with a sign)")
    params = params or {}
    if params.get("backend") is not None and params["backend"] not in BACKENDS:
        raise ValidationError(obj, "backend", params["backend"], f"must be one of {', '.join(BACKENDS)}")
    if params.get("count") is not None:
        check_int(obj, "count", params["count"], 1, MAX_COUNT)
    if params.get("hypervisor") is not None and (
            not isinstance(params["hypervisor"], str)
            or not HYPERVISOR_RE.fullmatch(params["hypervisor"])):
        raise ValidationError(obj, "hypervisor", params["hypervisor"],
                              "must be a host name: 1-253 letters, digits or _ . - "
                              "(starting with a letter or digit)")
    if params.get("flavor") is not None and (
            not isinstance(params["flavor"], str) or not FLAVOR_RE.fullmatch(params["flavor"])):
        raise ValidationError(obj, "flavor", params["flavor"],
                              "must be 1-63 letters, digits or _ . - (starting with a letter or digit)")
    if params.get("spec") is not None and not isinstance(params["spec"], dict):
        raise ValidationError(obj, "spec", params["spec"], "must be a dictionary")


def _view(request):
    """What the module shows and diffs (without times that change on every run)."""
    if request is None:
        return None
    return {k: v for k, v in request.items() if k not in ("error_at",)}


def apply_request(store, name, allocator, state="present", params=None, redeploy_done=False,
                  who=None, check=False):
    """Register (``present``) or remove (``absent``) one allocator; return the module result."""
    validate_request(name, allocator, params)
    who = who or DEFAULT_WHO
    cleared = False
    if state == "present":
        before, after = store.register_allocator(name, allocator, params, who=who, check=check)
        if redeploy_done and before is not None:
            cleared = store.clear_redeploy(name, allocator, check=check)
            if cleared and check:
                after = dict(after, redeploy=[r for r in after["redeploy"]
                                              if r["allocator"] != allocator])
            elif cleared:
                after = store.get_request(name)
    elif state == "absent":
        before, after = store.unregister_allocator(name, allocator, who=who, check=check)
    else:
        raise ValidationError(f"request '{name}'", "state", state, "must be present or absent")
    before, after = _view(before), _view(after)
    changed = before != after or cleared
    # compared in clear (a changed password is a change), shown without the spec's secrets
    before, after = redact_vm(before), redact_vm(after)
    msg = ""
    if state == "absent" and after is not None and not after["allocators"] and changed:
        msg = (f"request '{name}' has no allocator left: the next reconcile tears its devices "
               f"down")
    return {"changed": changed, "name": name, "request": after, "before": before,
            "after": after, "msg": msg}


def read_requests(store, name=None, allocator=None):
    """What vm_request_info returns: the requests (one, or those of ``allocator``, or all) and
    the redeploy entries (of ``allocator`` when given)."""
    if name is not None:
        validate_request(name)
        one = store.get_request(name)
        requests = [one] if one is not None else []
    else:
        requests = store.list_requests()
    if allocator is not None:
        requests = [r for r in requests if allocator in r["allocators"]]
    return {"requests": [redact_vm(r) for r in requests], "redeploy": store.redeploy_entries(allocator),
            "states": list(rq.REQUEST_STATES)}
