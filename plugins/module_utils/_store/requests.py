# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start requests, allocators, devices and the redeploy list (private, no stability promise).

Seed 004's contract as store operations, mixed into :class:`Store`. Every public method is one
transaction, and every one that writes starts by locking the request row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), so
an allocator added while a reconciler tears the request down, or two reconcilers working on
the same request, are ordered by the database. The reconciler additionally takes a lease
(:meth:`RequestsMixin.lease_request`) that keeps a second reconciler away for its duration.

Request states: ``pending`` (devices still to start), ``ready`` (every device ready),
``error`` (the last start failed; ``error_status``/``error_reason``/``error_at`` say why),
``deleting`` (the last allocator is gone; the reconciler tears the devices down) and
``delete_failed`` (a teardown failed; retried by the next reconcile).
Events go to the events table under ``request:<name>``.
"""

from __future__ import annotations

import json

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError

PENDING = "pending"
READY = "ready"
ERROR = "error"
DELETING = "deleting"
DELETE_FAILED = "delete_failed"
REQUEST_STATES = (PENDING, READY, ERROR, DELETING, DELETE_FAILED)

#: Request fields a caller may set (``None`` means "leave as it is").
PARAMS = ("backend", "hypervisor", "flavor", "spec", "count", "keep_disk")

_REQ_COLUMNS = ("name, backend, hypervisor, flavor, spec, count, keep_disk, state, error_status, "
                "error_reason, error_at, lease_owner, lease_until, created_at, updated_at")
_DEV_COLUMNS = "request, vm, idx, ready, boot_id, marker, address"


def event_subject(name):
    """The ``vm`` column of a request's events."""
    return f"request:{name}"


class RequestsMixin:
    """Request operations of :class:`Store` (uses its ``_tx``, ``lock_clause``, ``_event``)."""

    # ---- reading -----------------------------------------------------------------------
    def get_request(self, name):
        """The request with its allocators, devices and redeploy entries, or None."""
        with self._tx() as q:
            return self._request(q, name)

    def list_requests(self):
        """Every request (as :meth:`get_request`), in creation order."""
        with self._tx() as q:
            names = [r["name"] for r in q.all("SELECT name FROM requests ORDER BY id")]
            return [self._request(q, n) for n in names]

    def redeploy_entries(self, allocator=None):
        """Redeploy rows (allocator, request, reason, at), oldest first."""
        sql, args = "SELECT allocator, request, reason, at FROM redeploy", ()
        if allocator is not None:
            sql, args = sql + " WHERE allocator = ?", (allocator,)
        with self._tx() as q:
            return [dict(r) for r in q.all(sql + " ORDER BY id", args)]

    def request_devices_index(self):
        """``{vm: {request, ready, allocators, redeploy}}`` for the fleet inventory, plus the
        redeploy entries by allocator: ``(index, {allocator: [requests]})``."""
        with self._tx() as q:
            allocs, redeploy = {}, {}
            for row in q.all("SELECT request, allocator FROM request_allocators ORDER BY id"):
                allocs.setdefault(row["request"], []).append(row["allocator"])
            for row in q.all("SELECT allocator, request FROM redeploy ORDER BY id"):
                redeploy.setdefault(row["allocator"], []).append(row["request"])
            index = {}
            for row in q.all(f"SELECT {_DEV_COLUMNS} FROM request_devices ORDER BY id"):
                req = row["request"]
                index[row["vm"]] = {
                    "request": req, "ready": bool(row["ready"]),
                    "allocators": allocs.get(req, []),
                    "redeploy": sorted(a for a, reqs in redeploy.items() if req in reqs)}
            return index, redeploy

    # ---- the module side: allocators ---------------------------------------------------
    def register_allocator(self, name, allocator, params=None, who=None, check=False):
        """Register ``allocator`` on request ``name``, creating the request when missing.

        ``params`` (see :data:`PARAMS`) set or change the request's backend parameters; a new
        request needs ``backend``. A request being torn down (``deleting``,
        ``delete_failed``) that gets an allocator again goes back to ``pending``.
        Returns ``(before, after)`` request views (``before`` None for a new request).
        """
        params = {k: v for k, v in (params or {}).items() if k in PARAMS and v is not None}
        with self._tx(write=not check) as q:
            before = self._request(q, name, lock=True)
            now = self.clock()
            if before is None:
                if not params.get("backend"):
                    raise ValidationError(f"request '{name}'", "backend", None,
                                          "a new request needs a backend")
                after = {"name": name, "backend": params["backend"],
                         "hypervisor": params.get("hypervisor"), "flavor": params.get("flavor"),
                         "spec": params.get("spec") or {}, "count": int(params.get("count", 1)),
                         "keep_disk": bool(params.get("keep_disk", True)), "state": PENDING,
                         "error_status": None, "error_reason": None, "error_at": None,
                         "allocators": [allocator], "devices": [], "redeploy": []}
                if check:
                    return None, after
                # a missing row cannot be locked: two creators meet at the unique name, the
                # second one waits for the first to commit and then finds its row
                inserted = q.run(
                    f"INSERT INTO requests ({_REQ_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, after["backend"], after["hypervisor"], after["flavor"],
                     json.dumps(after["spec"], sort_keys=True), after["count"],
                     after["keep_disk"], PENDING, now, now))
                if inserted:
                    self._add_allocator(q, name, allocator, now)
                    self._event(q, now, event_subject(name), lc.ADMIN, who, "request_created",
                                None, PENDING, f"allocator {allocator}")
                    return None, self._request(q, name)
                before = self._request(q, name, lock=True)
            after = dict(before, allocators=list(before["allocators"]))
            changes = {k: v for k, v in params.items() if before.get(k) != _norm(k, v)}
            for key, value in changes.items():
                after[key] = _norm(key, value)
            if before["state"] in (DELETING, DELETE_FAILED):
                after["state"] = PENDING
            if allocator not in after["allocators"]:
                after["allocators"].append(allocator)
            if check or after == before:
                return before, after
            if changes or after["state"] != before["state"]:
                sets = [f"{k} = ?" for k in changes] + ["state = ?", "updated_at = ?"]
                args = [json.dumps(v, sort_keys=True) if k == "spec" else _norm(k, v)
                        for k, v in changes.items()] + [after["state"], now, name]
                q.run(f"UPDATE requests SET {', '.join(sets)} WHERE name = ?", args)
            if allocator not in before["allocators"]:
                self._add_allocator(q, name, allocator, now)
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_allocator_added",
                        before["state"], after["state"], f"allocator {allocator}")
            return before, self._request(q, name)

    def unregister_allocator(self, name, allocator, who=None, check=False):
        """Remove ``allocator`` from request ``name`` (only that allocator, nothing else).

        When it was the last one the request becomes ``deleting`` in the same transaction;
        the reconciler does the teardown later. Returns ``(before, after)`` (both None when
        the request does not exist).
        """
        with self._tx(write=not check) as q:
            before = self._request(q, name, lock=True)
            if before is None or allocator not in before["allocators"]:
                return before, before
            left = [a for a in before["allocators"] if a != allocator]
            after = dict(before, allocators=left,
                         redeploy=[r for r in before["redeploy"] if r["allocator"] != allocator])
            if not left:
                after["state"] = DELETING
            if check:
                return before, after
            now = self.clock()
            q.run("DELETE FROM request_allocators WHERE request = ? AND allocator = ?",
                  (name, allocator))
            q.run("DELETE FROM redeploy WHERE request = ? AND allocator = ?", (name, allocator))
            if after["state"] != before["state"]:
                q.run("UPDATE requests SET state = ?, updated_at = ? WHERE name = ?",
                      (after["state"], now, name))
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_allocator_removed",
                        before["state"], after["state"], f"allocator {allocator}")
            return before, self._request(q, name)

    def clear_redeploy(self, name, allocator, check=False):
        """The allocator's playbook ran again: drop its redeploy entry; True when there was one."""
        with self._tx(write=not check) as q:
            self._lock_request(q, name, must_exist=False)
            row = q.one("SELECT 1 AS x FROM redeploy WHERE request = ? AND allocator = ?",
                        (name, allocator))
            if row is not None and not check:
                q.run("DELETE FROM redeploy WHERE request = ? AND allocator = ?", (name, allocator))
            return row is not None

    # ---- the reconciler side -----------------------------------------------------------
    def request_names(self):
        """Names of every request, in creation order."""
        with self._tx() as q:
            return [r["name"] for r in q.all("SELECT name FROM requests ORDER BY id")]

    def lease_request(self, name, owner, ttl):
        """Take (or renew) the reconcile lease of ``name`` for ``ttl`` seconds.

        Returns the request view, or None when it is gone or another owner's lease has not
        expired yet (that reconciler is working on it).
        """
        with self._tx(write=True) as q:
            row = self._lock_request(q, name, must_exist=False)
            if row is None:
                return None
            now = self.clock()
            if row["lease_owner"] not in (None, owner) and (row["lease_until"] or 0) > now:
                return None
            q.run("UPDATE requests SET lease_owner = ?, lease_until = ? WHERE name = ?",
                  (owner, now + ttl, name))
            return self._request(q, name)

    def release_request(self, name, owner):
        """Give the lease back (only the owner's)."""
        with self._tx(write=True) as q:
            q.run("UPDATE requests SET lease_owner = NULL, lease_until = NULL "
                  "WHERE name = ? AND lease_owner = ?", (name, owner))

    def add_device(self, name, vm, idx):
        """Record that device ``vm`` (index ``idx``) is being started for the request, before
        the backend is asked, so a crash leaves a trace the next reconcile follows up."""
        with self._tx(write=True) as q:
            self._lock_request(q, name)
            if q.one("SELECT 1 AS x FROM request_devices WHERE vm = ?", (vm,)) is None:
                now = self.clock()
                q.run(f"INSERT INTO request_devices ({_DEV_COLUMNS}, created_at, updated_at) "
                      "VALUES (?, ?, ?, ?, NULL, NULL, NULL, ?, ?)",
                      (name, vm, idx, False, now, now))
                return True
            return False

    def inventory_device(self, name, vm, record, address, who=None):
        """Put device ``vm`` into the fleet inventory (the vms table, status ``ready``) and
        remember its address; nothing when it is there already."""
        with self._tx(write=True) as q:
            self._lock_request(q, name)
            now = self.clock()
            q.run("UPDATE request_devices SET address = ?, updated_at = ? WHERE vm = ?",
                  (address, now, vm))
            if q.one("SELECT 1 AS x FROM vms WHERE name = ?", (vm,)) is None:
                self._create(q, dict(record, name=vm), who, f"device of request {name}",
                             status=lc.READY)
                return True
            return False

    def device_ready(self, name, vm, boot_id, marker, reason="device ready", who=None):
        """Mark ``vm`` ready with its boot id and marker, and put every allocator of the
        request on the redeploy list, in one transaction. Returns the allocators."""
        with self._tx(write=True) as q:
            self._lock_request(q, name)
            now = self.clock()
            q.run("UPDATE request_devices SET ready = ?, boot_id = ?, marker = ?, updated_at = ? "
                  "WHERE vm = ? AND request = ?", (True, boot_id, marker, now, vm, name))
            allocators = self._redeploy_all(q, name, f"{vm}: {reason}", now)
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_device_ready",
                        None, None, vm)
            return allocators

    def device_rebooted(self, name, vm, boot_id, marker=None, redeploy_reason=None, who=None):
        """Record a new boot id (and marker); with ``redeploy_reason`` (the VM came back
        without its configuration) every allocator goes on the redeploy list."""
        with self._tx(write=True) as q:
            self._lock_request(q, name)
            now = self.clock()
            if marker is None:
                q.run("UPDATE request_devices SET boot_id = ?, updated_at = ? WHERE vm = ?",
                      (boot_id, now, vm))
            else:
                q.run("UPDATE request_devices SET boot_id = ?, marker = ?, updated_at = ? "
                      "WHERE vm = ?", (boot_id, marker, now, vm))
            if not redeploy_reason:
                return []
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_device_reinitialized",
                        None, None, f"{vm}: {redeploy_reason}")
            return self._redeploy_all(q, name, f"{vm}: {redeploy_reason}", now)

    def set_request_state(self, name, state, who=None):
        """Set the request state; leaving ``error``/``delete_failed`` clears the error fields."""
        if state not in REQUEST_STATES:
            raise StateError(f"request '{name}': unknown state '{state}'")
        with self._tx(write=True) as q:
            row = self._lock_request(q, name)
            if row["state"] == state:
                return False
            now = self.clock()
            clear = state not in (ERROR, DELETE_FAILED)
            q.run("UPDATE requests SET state = ?, updated_at = ?"
                  + (", error_status = NULL, error_reason = NULL, error_at = NULL" if clear else "")
                  + " WHERE name = ?", (state, now, name))
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_state",
                        row["state"], state, None)
            return True

    def request_failed(self, name, status, reason, who=None):
        """A start failed or a device died for good: ``error`` with status, reason and time,
        and every allocator on the redeploy list, in one transaction."""
        with self._tx(write=True) as q:
            row = self._lock_request(q, name)
            now = self.clock()
            q.run("UPDATE requests SET state = ?, error_status = ?, error_reason = ?, "
                  "error_at = ?, updated_at = ? WHERE name = ?",
                  (ERROR, status, reason, now, now, name))
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_error",
                        row["state"], ERROR, f"{status}: {reason}")
            return self._redeploy_all(q, name, f"error: {status}", now)

    def request_delete_failed(self, name, reason, who=None):
        """A teardown step failed: ``delete_failed`` with the reason (retried next time)."""
        with self._tx(write=True) as q:
            row = self._lock_request(q, name)
            now = self.clock()
            q.run("UPDATE requests SET state = ?, error_status = ?, error_reason = ?, "
                  "error_at = ?, updated_at = ? WHERE name = ?",
                  (DELETE_FAILED, "delete_failed", reason, now, now, name))
            self._event(q, now, event_subject(name), lc.ADMIN, who, "request_delete_failed",
                        row["state"], DELETE_FAILED, reason)

    def uninventory_device(self, name, vm, who=None):
        """Remove ``vm`` from the fleet inventory (its vms row) and mark it not ready; the
        device row stays until the VM itself is deleted."""
        with self._tx(write=True) as q:
            self._lock_request(q, name)
            now = self.clock()
            q.run("UPDATE request_devices SET ready = ?, updated_at = ? WHERE vm = ?",
                  (False, now, vm))
            removed = q.run("DELETE FROM vms WHERE name = ?", (vm,))
            if removed:
                self._event(q, now, vm, lc.ADMIN, who, "request_device_removed", None, None,
                            f"device of request {name}")
            return bool(removed)

    def drop_device(self, name, vm):
        """Forget device ``vm`` (after the backend deleted it)."""
        with self._tx(write=True) as q:
            self._lock_request(q, name)
            return bool(q.run("DELETE FROM request_devices WHERE vm = ? AND request = ?", (vm, name)))

    def forget_request(self, name, who=None):
        """Delete the request row once it has no allocator and no device left; True if done.

        Checked under the row lock: an allocator registered meanwhile keeps the request."""
        with self._tx(write=True) as q:
            row = self._lock_request(q, name, must_exist=False)
            if row is None:
                return False
            for table in ("request_allocators", "request_devices"):
                if q.one(f"SELECT 1 AS x FROM {table} WHERE request = ?", (name,)) is not None:
                    return False
            q.run("DELETE FROM redeploy WHERE request = ?", (name,))
            q.run("DELETE FROM requests WHERE name = ?", (name,))
            self._event(q, self.clock(), event_subject(name), lc.ADMIN, who, "request_deleted",
                        row["state"], None, None)
            return True

    # ---- helpers -----------------------------------------------------------------------
    def _lock_request(self, q, name, must_exist=True):
        row = q.one(f"SELECT state, lease_owner, lease_until FROM requests WHERE name = ?"
                    f"{self.lock_clause}", (name,))
        if row is None and must_exist:
            raise StateError(f"request '{name}' is not in the store")
        return row

    def _request(self, q, name, lock=False):
        row = q.one(f"SELECT {_REQ_COLUMNS} FROM requests WHERE name = ?"
                    f"{self.lock_clause if lock else ''}", (name,))
        if row is None:
            return None
        req = dict(row)
        if isinstance(req["spec"], str):
            req["spec"] = json.loads(req["spec"])
        req["keep_disk"] = bool(req["keep_disk"])
        req["count"] = int(req["count"])
        for key in ("lease_owner", "lease_until", "created_at", "updated_at"):
            req.pop(key)
        req["allocators"] = [r["allocator"] for r in q.all(
            "SELECT allocator FROM request_allocators WHERE request = ? ORDER BY id", (name,))]
        req["devices"] = [dict(r, ready=bool(r["ready"])) for r in q.all(
            f"SELECT {_DEV_COLUMNS} FROM request_devices WHERE request = ? ORDER BY idx", (name,))]
        for dev in req["devices"]:
            dev.pop("request")
        req["redeploy"] = [dict(r) for r in q.all(
            "SELECT allocator, reason, at FROM redeploy WHERE request = ? ORDER BY id", (name,))]
        return req

    @staticmethod
    def _add_allocator(q, name, allocator, now):
        q.run("INSERT INTO request_allocators (request, allocator, created_at) VALUES (?, ?, ?)",
              (name, allocator, now))

    @staticmethod
    def _redeploy_all(q, name, reason, now):
        allocators = [r["allocator"] for r in q.all(
            "SELECT allocator FROM request_allocators WHERE request = ? ORDER BY id", (name,))]
        for allocator in allocators:
            # the request row is locked by the caller, so check-then-write cannot race
            if q.run("UPDATE redeploy SET reason = ?, at = ? WHERE request = ? AND allocator = ?",
                     (reason, now, name, allocator)) == 0:
                q.run("INSERT INTO redeploy (allocator, request, reason, at) VALUES (?, ?, ?, ?)",
                      (allocator, name, reason, now))
        return allocators


def _norm(key, value):
    if key == "count":
        return int(value)
    if key == "keep_disk":
        return bool(value)
    return value
