# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of the vm_hypervisor and vm_placement_info modules, and the bridge from store rows
to :mod:`_placement` (private, no stability promise).

Each entry point takes an open store and plain values and returns ``(result, warnings)``.
"""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils import _allocator, _hostinfo, _placement
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

#: capacity keys an operator may declare (a refresh measures memory, vcpus, arches and
#: domain_types and replaces them; vcpu_ratio, reserved_memory and disk stay as declared)
CAPACITY_KEYS = ("memory", "vcpus", "vcpu_ratio", "reserved_memory", "disk", "arches", "domain_types")
ENTRY_KEYS = ("name", "kind", "access", "labels", "capacity", "enabled", "state")
_TIMES = ("created_at", "updated_at", "refreshed_at")


def normalise_entry(raw) -> dict:
    """One item of vm_hypervisor's ``hypervisors``, checked."""
    if not isinstance(raw, dict):
        raise ValidationError("vm_hypervisor", "hypervisors", raw, "each item is a mapping")
    name = _placement._name("hypervisor", "name", raw.get("name"))  # pylint: disable=protected-access
    obj = f"hypervisor {name}"
    for key in raw:
        if key not in ENTRY_KEYS:
            raise ValidationError(obj, key, raw[key], f"unknown key (known: {', '.join(ENTRY_KEYS)})")
    state = raw.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError(obj, "state", state, "must be present or absent")
    out = {"name": name, "state": state}
    if state == "absent":
        return out
    kind = raw.get("kind")
    if kind is not None and kind not in _placement.KINDS:
        raise ValidationError(obj, "kind", kind, f"must be one of {', '.join(_placement.KINDS)}")
    out["kind"] = kind
    if raw.get("access") is not None:
        out["access"] = _hostinfo.check_access(name, kind or "", raw["access"]) if kind else raw["access"]
    if raw.get("labels") is not None:
        out["labels"] = _placement._labels(obj, "labels", raw["labels"])  # pylint: disable=protected-access
    capacity = raw.get("capacity")
    if capacity is not None:
        if not isinstance(capacity, dict):
            raise ValidationError(obj, "capacity", capacity, "must be a mapping")
        for key in capacity:
            if key not in CAPACITY_KEYS:
                raise ValidationError(obj, f"capacity.{key}", capacity[key],
                                      f"unknown (known: {', '.join(CAPACITY_KEYS)})")
        # the placement rules check every value; reserved_memory is ours
        probe = {"name": name, "kind": kind or "xen",
                 "capacity": dict({"memory": 0, "vcpus": 0}, **capacity)}
        _placement.parse_host(probe)
        if capacity.get("reserved_memory") is not None:
            _placement._number(obj, "capacity.reserved_memory",  # pylint: disable=protected-access
                               capacity["reserved_memory"])
        out["capacity"] = {k: (list(v) if isinstance(v, (list, tuple)) else v)
                           for k, v in capacity.items()}
    enabled = raw.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ValidationError(obj, "enabled", enabled, "must be true or false")
    out["enabled"] = enabled
    return out


def _view(row):
    """A hypervisor row as results and diffs show it (no timestamps in diffs)."""
    if row is None:
        return None
    return {k: v for k, v in row.items() if k not in _TIMES}


def _fields(entry, current):
    fields = {k: entry.get(k) for k in ("kind", "access", "labels", "capacity")}
    if entry.get("enabled") is False:
        fields["state"] = "disabled"
    elif entry.get("enabled") is True and current is not None and current["state"] == "disabled":
        fields["state"] = "enabled"
    return fields


def apply(store, entries, refresh=False, timeout=_hostinfo.DEFAULT_TIMEOUT, check=False,
          gatherers=None):
    """vm_hypervisor: register, update or remove ``entries``, then (``refresh``) measure the
    hypervisors named (every registered one when ``entries`` is empty) in one parallel batch.

    Returns ``(result, warnings)``; ``result`` has ``changed``, ``hypervisors`` (the rows
    after), ``removed``, ``not_reached`` ``{name: reason}`` and ``diff``.
    """
    entries = [normalise_entry(e) for e in entries or ()]
    seen = set()
    for entry in entries:
        if entry["name"] in seen:
            raise ValidationError("vm_hypervisor", "hypervisors.name", entry["name"], "appears twice")
        seen.add(entry["name"])
    before, after, removed = {}, {}, []
    for entry in entries:
        name = entry["name"]
        current = store.get_hypervisor(name)
        if entry["state"] == "absent":
            gone = store.remove_hypervisor(name, check=check)
            if gone is not None:
                before[name], after[name] = _view(gone), None
                removed.append(name)
            continue
        if current is not None and entry.get("access") is not None and not entry.get("kind"):
            _hostinfo.check_access(name, current["kind"], entry["access"])
        old, new = store.put_hypervisor(name, _fields(entry, current), check=check)
        if old != new:
            before[name], after[name] = _view(old), _view(new)
    warnings, unreachable = [], {}
    if refresh:
        names = [e["name"] for e in entries if e["state"] == "present"]
        rows = [r for r in store.list_hypervisors() if not names or r["name"] in names]
        if check:
            # rows a check run would create are measured too
            known = {r["name"] for r in rows}
            rows += [dict(after[n], name=n) for n in names if n not in known and after.get(n)]
        measured, failed = _hostinfo.refresh_all(
            [r for r in rows if r["state"] != "disabled"], timeout=timeout, gatherers=gatherers)
        for name, reason in sorted(failed.items()):
            warnings.append(f"hypervisor {name} could not be measured ({reason}); it is marked "
                            f"unreachable and left out of placement until a refresh reaches it")
        unreachable = failed
        changed = store.record_refresh(measured, failed, check=check)
        for name, (old, new) in changed.items():
            old_view = {k: v for k, v in _view(old).items() if k != "refreshed_at"}
            new_view = {k: v for k, v in _view(new).items() if k != "refreshed_at"}
            if old_view != new_view:
                before.setdefault(name, old_view)
                after[name] = new_view
    rows = {r["name"]: r for r in store.list_hypervisors()}
    if check:
        # what the store would hold: the planned rows over the stored ones
        for name, row in after.items():
            if row is None:
                rows.pop(name, None)
            else:
                rows[name] = dict(rows.get(name) or {}, **row)
    listed = [rows[e["name"]] for e in entries if e["name"] in rows] if entries else list(rows.values())
    # not "unreachable": Ansible reads that result key as the managed host being unreachable
    result = {"changed": bool(after), "hypervisors": listed, "removed": removed,
              "not_reached": unreachable, "diff": {"before": before, "after": after}}
    return result, warnings


# ---- store rows -> placement input --------------------------------------------------------

def vm_resources(vm) -> dict:
    """What a store VM takes on its host: ``spec.memory`` MiB (default 1024, as the spec
    defaults), ``spec.vcpus`` (default 2), ``spec.disk`` MiB (default 0), and its anti-affinity
    groups ``spec.anti_affinity``."""
    spec = vm.get("spec") or {}
    groups = spec.get("anti_affinity") or []
    return {"memory": int(spec.get("memory") or 1024), "vcpus": int(spec.get("vcpus") or 2),
            "disk": int(spec.get("disk") or 0),
            "groups": sorted({str(g) for g in (groups if isinstance(groups, list) else [groups])})}


def placement_hosts(store):
    """:func:`hosts_from_rows` of the store's hypervisors and VMs."""
    return hosts_from_rows(store.list_hypervisors(), store.list_vms())


def hosts_from_rows(hypervisor_rows, vms):
    """The registered hypervisors as :func:`_placement.place` reads them, and the store VMs
    on each: ``(hosts, {host: [vm rows]})``.

    Capacity: the stored (measured or declared) ``memory`` less ``reserved_memory``. Use: per
    amount the larger of the last measurement and the sum over the store's VMs on the host
    (VMs that do not run now still hold their place); groups: those of the store's VMs. A
    host never measured that declares no memory is ``unmeasured`` (left out, with that reason).
    """
    by_host = {}
    for vm in vms:
        if vm.get("hypervisor") and vm.get("status") not in ("canceled", "purged"):
            by_host.setdefault(vm["hypervisor"], []).append(vm)
    hosts = []
    for row in hypervisor_rows:
        cap, use = dict(row["capacity"]), dict(row["use"])
        mine = [vm_resources(v) for v in by_host.get(row["name"], [])]
        state = row["state"]
        if cap.get("memory") is None or cap.get("vcpus") is None:
            state = "unmeasured" if state == "enabled" else state
        memory = max(0, int(cap.get("memory") or 0) - int(cap.get("reserved_memory") or 0))
        hosts.append({
            "name": row["name"], "kind": row["kind"], "state": state, "labels": row["labels"],
            "capacity": {"memory": memory, "vcpus": int(cap.get("vcpus") or 0),
                         "vcpu_ratio": cap.get("vcpu_ratio", 1.0), "disk": cap.get("disk"),
                         "arches": cap.get("arches") or [], "domain_types": cap.get("domain_types") or []},
            "use": dict({key: max(int(use.get(key) or 0), sum(m[key] for m in mine))
                         for key in ("memory", "vcpus", "disk")},
                        groups=sorted({g for m in mine for g in m["groups"]}))})
    return hosts, by_host


def flavor_vm(record, labels=None) -> dict:
    """A new pool VM record (name, backend, spec) as a VM to place: its kind is the flavor's
    backend; ``spec.memory``, ``vcpus``, ``disk``, ``arch``, ``domain_type`` and
    ``anti_affinity`` size and constrain it, the flavor's ``labels`` choose the hosts."""
    spec = record.get("spec") or {}
    res = vm_resources(record)
    return {"name": record["name"], "kind": record.get("backend"), "memory": res["memory"],
            "vcpus": res["vcpus"], "disk": res["disk"], "arch": spec.get("arch"),
            "domain_type": spec.get("domain_type"), "labels": labels or {},
            "anti_affinity": res["groups"]}


class PoolPlacer:
    """The ``placer`` of :meth:`Store.fill_pool`: places the new VMs of flavors without a
    ``hypervisor`` across the registered hypervisors, the whole batch at once. With no
    hypervisor registered it places nothing (the fill is as without placement)."""

    def __init__(self, flavors, headroom="n+1", allocator_command=None, allocator_timeout=None):
        self.labels = {f["name"]: f.get("labels") or {} for f in flavors}
        self.headroom = headroom
        self.allocator_command = allocator_command
        self.allocator_timeout = allocator_timeout or _allocator.DEFAULT_TIMEOUT
        self.placement = {}
        self.resources = {}
        #: flavor of every record placed, by name
        self.flavor_of = {}

    def __call__(self, hypervisor_rows, vms, records):
        todo = [r for r in records if not r.get("hypervisor")]
        self.flavor_of = {r["name"]: r["flavor"] for r in todo}
        if not hypervisor_rows or not todo:
            return {}
        hosts, dummy = hosts_from_rows(hypervisor_rows, vms)
        batch = [flavor_vm(r, self.labels.get(r["flavor"])) for r in todo]
        if self.allocator_command:
            self.placement = _allocator.place_external(self.allocator_command, hosts, batch,
                                                       self.headroom, timeout=self.allocator_timeout)
        else:
            self.placement = _placement.place(hosts, batch, headroom=self.headroom)["placement"]
        self.resources = {v["name"]: {k: v[k] for k in ("memory", "vcpus", "disk")} for v in batch}
        return self.placement


def place(store, vms, headroom="n+1", allocator_command=None, allocator_timeout=None):
    """Place the batch ``vms`` (placement dicts) on the registered hypervisors: by
    :func:`_placement.place`, or by the external allocator when ``allocator_command`` is
    given. Returns ``{vm: host}``."""
    hosts, dummy = placement_hosts(store)
    if allocator_command:
        return _allocator.place_external(allocator_command, hosts, vms, headroom,
                                         timeout=allocator_timeout or _allocator.DEFAULT_TIMEOUT)
    return _placement.place(hosts, vms, headroom=headroom)["placement"]


def report(store, names=None, max_moves=10, headroom="n+1"):
    """vm_placement_info: per host its capacity, use and ratios, and the advisory moves."""
    hosts, by_host = placement_hosts(store)
    if names:
        unknown = sorted(set(names) - {h["name"] for h in hosts})
        if unknown:
            raise ValidationError("vm_placement_info", "hypervisors", unknown[0], "is not registered")
    rows = {r["name"]: r for r in store.list_hypervisors()}
    out = []
    for h in hosts:
        if names and h["name"] not in names:
            continue
        cap, use = h["capacity"], h["use"]
        vcpu_cap = cap["vcpus"] * float(cap["vcpu_ratio"] or 1.0)
        out.append({
            "name": h["name"], "kind": h["kind"], "state": h["state"],
            "reason": rows[h["name"]]["reason"], "labels": h["labels"],
            "refreshed_at": rows[h["name"]]["refreshed_at"], "capacity": cap, "use": use,
            "memory_ratio": round(use["memory"] / cap["memory"], 4) if cap["memory"] else None,
            "vcpu_ratio": round(use["vcpus"] / vcpu_cap, 4) if vcpu_cap else None,
            "vms": [v["name"] for v in by_host.get(h["name"], [])]})
    guests = []
    for host, vms in by_host.items():
        for vm in vms:
            res = vm_resources(vm)
            guests.append({"name": vm["name"], "host": host, "memory": res["memory"],
                           "vcpus": res["vcpus"], "disk": res["disk"], "anti_affinity": res["groups"]})
    advice = _placement.suggest_moves(hosts, guests, max_moves=max_moves, headroom=headroom)
    return {"changed": False, "hypervisors": out, "moves": advice["moves"],
            "score": advice["score_before"], "score_after_moves": advice["score_after"]}, []
