# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of the netconf_pool and vm_pool modules (private, no stability promise).

Each function takes an open store and plain values, and returns ``(result, warnings)``.
"""

from __future__ import annotations

import uuid

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import host_name, redact_vm
from ansible_collections.vman.lifecycle.plugins.module_utils._hypervisors import PoolPlacer
from ansible_collections.vman.lifecycle.plugins.module_utils._netconf import normalise

BACKENDS = ("xen", "libvirt", "lxc")


def _low_water(pool, kind, free, low_water):
    if low_water is not None and free <= low_water:
        return [f"netconf pool '{pool}' has {free} free '{kind}' entr{'y' if free == 1 else 'ies'} "
                f"left (low_water {low_water}): add more before the pool runs out"]
    return []


def netconf_pool(store, pool, kind, state, entries=None, ranges=None, vm=None, low_water=None,
                 check=False):
    """Add entries/ranges (present), allocate one to ``vm`` (allocated) or free ``vm``'s
    (released)."""
    result = {"changed": False, "pool": pool, "kind": kind}
    free_now = store.netconf_stats(pool).get(kind, {"free": 0})["free"]
    if state == "present":
        wanted = normalise(pool, entries, ranges)
        added = store.add_netconfs(pool, kind, wanted, check=check)
        result.update(changed=bool(added), added=added)
        free_after = free_now + len(added)
    else:
        if not vm:
            raise ValidationError(f"netconf pool '{pool}'", "vm", vm, f"state={state} needs a vm")
        if state == "allocated":
            row, changed = store.allocate_netconf(pool, kind, vm, check=check)
            row.pop("id", None)
            result.update(changed=changed, netconf=row)
            free_after = free_now - (1 if changed else 0)
        else:
            released = store.release_netconfs(vm, pool=pool, check=check)
            result.update(changed=bool(released), released=released)
            free_after = free_now + len(released)
    stats = store.netconf_stats(pool)
    if check:
        stats.setdefault(kind, {"total": 0, "free": 0})["free"] = free_after
    result["stats"] = stats
    return result, _low_water(pool, kind, free_after, low_water)


def _check_flavors(flavors):
    seen = set()
    for flavor in flavors:
        name = flavor.get("name")
        if not name or name in seen:
            raise ValidationError("vm_pool", "flavors.name", name, "flavor names must be set and unique")
        seen.add(name)
        if int(flavor.get("threshold") or 0) < 0:
            raise ValidationError(f"flavor '{name}'", "threshold", flavor.get("threshold"),
                                  "must be 0 or more")
        if flavor.get("backend") not in BACKENDS:
            raise ValidationError(f"flavor '{name}'", "backend", flavor.get("backend"),
                                  f"must be one of {', '.join(BACKENDS)}")


def _public(vm):
    """A VM record as a result shows it: no netconf row ids, no secrets in the spec (the
    inventory's redaction)."""
    vm = redact_vm(vm)
    for row in (vm.get("netconfs") or {}).values():
        row.pop("id", None)
    return vm


def fill(store, flavors, netconf_pool_name=None, netconf_kinds=(), who=None, check=False,
         make_name=None, headroom="n+1", allocator_command=None, allocator_timeout=None):
    """vm_pool state=present: create the deficit of every flavor in one transaction.

    The new VMs of flavors without a ``hypervisor`` are placed together across the
    hypervisors registered in the store (:class:`_hypervisors.PoolPlacer`; none registered:
    no placement). ``placement`` in the result counts them per flavor and host.
    """
    _check_flavors(flavors)
    placer = PoolPlacer(flavors, headroom, allocator_command, allocator_timeout)
    deficit, created = store.fill_pool(flavors, make_name or (lambda: str(uuid.uuid4())),
                                       netconf_pool_name, tuple(netconf_kinds), who=who, check=check,
                                       placer=placer)
    flavor_of = {vm["name"]: vm["flavor"] for vm in created}
    counts = {}
    if check:
        # the names of a check run are thrown away: count by flavor from the records placed
        flavor_of = placer.flavor_of
    for name, host in placer.placement.items():
        per = counts.setdefault(flavor_of.get(name), {})
        per[host] = per.get(host, 0) + 1
    result = {"changed": any(deficit.values()), "deficit": deficit,
              "created": [_public(vm) for vm in created], "placement": counts}
    return result, []


def claim(store, flavor, owner, actor=lc.USER, who=None, check=False):
    """vm_pool state=claimed: hand one preallocated VM of ``flavor`` to ``owner``."""
    if not owner:
        raise ValidationError("vm_pool", "owner", owner, "state=claimed needs an owner")
    if not flavor:
        raise ValidationError("vm_pool", "flavor", flavor, "state=claimed needs a flavor")
    vm = store.claim(flavor, owner, actor=actor, who=who, check=check)
    vm["netconfs"] = {row["kind"]: row for row in store.netconfs(vm=vm["name"])}
    # the fleet inventory's name of the VM, so a playbook can target it right after the claim
    vm["host"] = host_name(vm)
    return {"changed": True, "vm": redact_vm(vm)}, []


def _claim_diff(vms):
    """Diff of claims: per VM name its status and owner, before and after (no spec, so no
    secret can show)."""
    return {"before": {vm["name"]: vm["before"] for vm in vms},
            "after": {vm["name"]: {"status": vm["status"], "owner": vm["owner"]} for vm in vms}}


def claim_batch(store, claims, flavor=None, actor=lc.USER, who=None, check=False):
    """vm_pool state=claimed with ``claims``: hand one preallocated VM to the owner of every
    item ({owner, flavor}; ``flavor`` is the default flavor), all in one store transaction.

    All or nothing: when a flavor is short, nothing is claimed and the error says how many
    VMs were wanted and are available per flavor. Returns ``vms`` in the order of ``claims``.
    """
    pairs = []
    for idx, item in enumerate(claims or ()):
        owner, item_flavor = item.get("owner"), item.get("flavor") or flavor
        if not owner:
            raise ValidationError(f"vm_pool claims[{idx}]", "owner", owner, "every claim needs an owner")
        if not item_flavor:
            raise ValidationError(f"vm_pool claims[{idx}]", "flavor", item_flavor,
                                  "every claim needs a flavor (its own or the flavor option)")
        pairs.append((item_flavor, owner))
    if not pairs:
        return {"changed": False, "vms": [], "diff": {"before": {}, "after": {}}}, []
    vms = store.claim_many(pairs, actor=actor, who=who, check=check)
    for vm in vms:
        vm["host"] = host_name(vm)
    diff = _claim_diff(vms)
    public = []
    for vm in vms:
        vm.pop("before", None)
        public.append(redact_vm(vm))
    return {"changed": True, "vms": public, "diff": diff}, []
