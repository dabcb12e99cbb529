# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypervisors as store rows, for placement (private, no stability promise).

A row holds what an operator registers (``kind``, ``access``: how to reach the host,
``labels``, and the ``capacity`` keys only an operator knows, such as ``vcpu_ratio`` and
``reserved_memory``) and what a refresh measures (the rest of ``capacity``, ``use``,
``refreshed_at``). ``state`` is ``enabled`` (placement may use it), ``unreachable`` (the last
refresh could not reach it; ``reason`` says why) or ``disabled`` (by the operator). Mixed into
:class:`Store`; every public method is one transaction.
"""

from __future__ import annotations

import json

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError

HYPERVISOR_KINDS = ("xen", "libvirt", "lxc")
HYPERVISOR_STATES = ("enabled", "unreachable", "disabled")
#: fields a caller sets through :meth:`HypervisorsMixin.put_hypervisor`
HYPERVISOR_FIELDS = ("kind", "access", "labels", "capacity", "state")
_JSON = ("access", "labels", "capacity", "use")
_COLUMNS = ("name, kind, access, labels, capacity, use, state, reason, refreshed_at, "
            "created_at, updated_at")


def _row(row):
    if row is None:
        return None
    out = dict(row)
    for key in _JSON:
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out


def _dump(value):
    return json.dumps(value if value is not None else {}, sort_keys=True)


class HypervisorsMixin:
    """Hypervisor operations of :class:`Store` (uses its ``_tx``, ``lock_clause``, ``clock``)."""

    def get_hypervisor(self, name):
        """The hypervisor row as a dict (JSON columns decoded), or None."""
        with self._tx() as q:
            return self._hypervisor(q, name)

    def list_hypervisors(self, state=None, kind=None):
        """Hypervisor rows matching the filters given, by name."""
        where, args = [], []
        for column, value in (("state", state), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM hypervisors"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx() as q:
            return [_row(r) for r in q.all(sql + " ORDER BY name", args)]

    def _hypervisor(self, q, name, lock=False):
        return _row(q.one(f"SELECT {_COLUMNS} FROM hypervisors WHERE name = ?"
                          f"{self.lock_clause if lock else ''}", (name,)))

    def put_hypervisor(self, name, fields, check=False):
        """Create or update hypervisor ``name`` with ``fields`` (see
        :data:`HYPERVISOR_FIELDS`; a field left out or None is kept; ``capacity`` keys are
        merged over the stored ones). Returns ``(before, after)``; ``before`` None for a new
        row. A new row needs ``kind``."""
        fields = {k: v for k, v in fields.items() if k in HYPERVISOR_FIELDS and v is not None}
        if "kind" in fields and fields["kind"] not in HYPERVISOR_KINDS:
            raise ValidationError(f"hypervisor {name}", "kind", fields["kind"],
                                  f"must be one of {', '.join(HYPERVISOR_KINDS)}")
        if "state" in fields and fields["state"] not in HYPERVISOR_STATES:
            raise ValidationError(f"hypervisor {name}", "state", fields["state"],
                                  f"must be one of {', '.join(HYPERVISOR_STATES)}")
        with self._tx(write=not check) as q:
            before = self._hypervisor(q, name, lock=True)
            now = self.clock()
            if before is None:
                if "kind" not in fields:
                    raise ValidationError(f"hypervisor {name}", "kind", None,
                                          "a new hypervisor needs a kind")
                after = {"name": name, "kind": fields["kind"], "access": fields.get("access") or {},
                         "labels": fields.get("labels") or {}, "capacity": fields.get("capacity") or {},
                         "use": {}, "state": fields.get("state", "enabled"), "reason": None,
                         "refreshed_at": None, "created_at": now, "updated_at": now}
                if not check:
                    q.run(f"INSERT INTO hypervisors ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (name, after["kind"], _dump(after["access"]), _dump(after["labels"]),
                           _dump(after["capacity"]), _dump({}), after["state"], None, None, now, now))
                    after = self._hypervisor(q, name)
                return None, after
            after = dict(before)
            for key, value in fields.items():
                after[key] = dict(before["capacity"], **value) if key == "capacity" else value
            if after.get("state") != before["state"] and after["state"] != "unreachable":
                after["reason"] = None
            if after == before:
                return before, after
            if fields.get("kind") not in (None, before["kind"]) and before["use"].get("memory"):
                raise StateError(f"hypervisor {name} is a {before['kind']} host carrying guests; "
                                 f"its kind cannot change to {fields['kind']}")
            after["updated_at"] = now
            if not check:
                q.run("UPDATE hypervisors SET kind = ?, access = ?, labels = ?, capacity = ?, "
                      "state = ?, reason = ?, updated_at = ? WHERE name = ?",
                      (after["kind"], _dump(after["access"]), _dump(after["labels"]),
                       _dump(after["capacity"]), after["state"], after["reason"], now, name))
            return before, after

    def remove_hypervisor(self, name, check=False):
        """Delete hypervisor ``name``; return the row removed (or that would be), or None.
        StateError while VMs of the store are placed on it (nothing is removed)."""
        with self._tx(write=not check) as q:
            before = self._hypervisor(q, name, lock=True)
            if before is None:
                return None
            vms = [r["name"] for r in q.all("SELECT name FROM vms WHERE hypervisor = ? ORDER BY id "
                                            "LIMIT 6", (name,))]
            if vms:
                listed = ", ".join(vms[:5]) + (", ..." if len(vms) > 5 else "")
                raise StateError(f"hypervisor {name} still carries VMs of the store ({listed}); "
                                 f"move or delete them first")
            if not check:
                q.run("DELETE FROM hypervisors WHERE name = ?", (name,))
            return before

    def record_refresh(self, measured, failed, check=False):
        """Store a refresh in one transaction: ``measured`` ``{name: {"capacity", "use"}}``
        (measured capacity keys merged over the stored ones; ``use`` replaced; state back to
        ``enabled`` unless the operator disabled it), ``failed`` ``{name: reason}`` (state
        ``unreachable`` with the reason, capacity and use kept). Unknown names are skipped.
        Returns ``{name: (before, after)}`` for the rows that changed."""
        changed = {}
        with self._tx(write=not check) as q:
            now = self.clock()
            for name in sorted(set(measured) | set(failed)):
                before = self._hypervisor(q, name, lock=True)
                if before is None:
                    continue
                after = dict(before, refreshed_at=now)
                if name in measured:
                    after["capacity"] = dict(before["capacity"], **measured[name].get("capacity", {}))
                    after["use"] = dict(measured[name].get("use", {}))
                    if before["state"] != "disabled":
                        after["state"], after["reason"] = "enabled", None
                elif before["state"] != "disabled":
                    after["state"], after["reason"] = "unreachable", str(failed[name])
                changed[name] = (before, after)
                if not check:
                    q.run("UPDATE hypervisors SET capacity = ?, use = ?, state = ?, reason = ?, "
                          "refreshed_at = ?, updated_at = ? WHERE name = ?",
                          (_dump(after["capacity"]), _dump(after["use"]), after["state"],
                           after["reason"], now, now, name))
        return changed

    def assign_hypervisors(self, placement, resources, check=False):
        """Record a placement: set each VM's ``hypervisor`` and add its ``resources``
        (``{vm: {"memory", "vcpus", "disk"}}``) to its host's ``use``, so a
        placement before the next refresh counts it. ``placement`` is ``{vm: host}``; an
        unknown VM or host is a StateError (nothing written)."""
        with self._tx(write=not check) as q:
            return self._assign(q, placement, resources, check)

    def _assign(self, q, placement, resources, check=False):
        hosts = {}
        for vm, host in sorted(placement.items()):
            if host not in hosts:
                hosts[host] = self._hypervisor(q, host, lock=True)
                if hosts[host] is None:
                    raise StateError(f"VM {vm}: hypervisor {host} is not registered")
            if q.one("SELECT 1 AS x FROM vms WHERE name = ?", (vm,)) is None:
                raise StateError(f"VM '{vm}' is not in the store")
            use = hosts[host]["use"]
            res = resources.get(vm, {})
            for key in ("memory", "vcpus", "disk"):
                use[key] = int(use.get(key) or 0) + int(res.get(key) or 0)
        if not check:
            now = self.clock()
            for vm, host in sorted(placement.items()):
                q.run("UPDATE vms SET hypervisor = ?, updated_at = ? WHERE name = ?", (host, now, vm))
            for host, row in sorted(hosts.items()):
                q.run("UPDATE hypervisors SET use = ?, updated_at = ? WHERE name = ?",
                      (_dump(row["use"]), now, host))
        return {host: row["use"] for host, row in hosts.items()}
