# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle store interface (private, no stability promise).

:class:`Store` holds every operation once, written in the SQL both dialects share (``?``
placeholders; the PostgreSQL backend rewrites them). A backend supplies a connection, the
transaction context (:meth:`Store._tx`) and the row-locking clauses. Every public method is
one transaction. Every status change is planned by ``_lifecycle`` and writes its event row in
the same transaction as the status.
"""

from __future__ import annotations

import json
import time

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    StateError, ValidationError, VmanError)
from ansible_collections.vman.lifecycle.plugins.module_utils._store import schema
from ansible_collections.vman.lifecycle.plugins.module_utils._store.hypervisors import _COLUMNS as HV_COLUMNS
from ansible_collections.vman.lifecycle.plugins.module_utils._store.hypervisors import _row as hv_row
from ansible_collections.vman.lifecycle.plugins.module_utils._store.hypervisors import HypervisorsMixin
from ansible_collections.vman.lifecycle.plugins.module_utils._store.requests import RequestsMixin

NETCONF_KINDS = ("vm", "service", "test-service")

_VM_COLUMNS = ("name, org, flavor, backend, hypervisor, spec, status, status_since, "
               "admin_suspended, ansible_pending, owner, created_at, updated_at")


class StoreError(VmanError):
    """The database failed (connection, lock timeout, constraint we did not foresee)."""


class StoreMissing(StoreError):
    """A read-only open found no store at all (a SQLite file never created)."""


class Store(RequestsMixin, HypervisorsMixin):
    """Base class of the SQLite and PostgreSQL stores (start requests: :class:`RequestsMixin`,
    hypervisors: :class:`HypervisorsMixin`)."""

    dialect = None
    #: appended to a SELECT that must lock the rows it reads (PostgreSQL: FOR UPDATE)
    lock_clause = ""
    #: appended to a claim's SELECT so concurrent claimers pass each other by
    skip_locked_clause = ""

    def __init__(self, clock=time.time, read_only=False):
        self.clock = clock
        #: opened read-only (:func:`open_store` ``read_only``): every write transaction is refused
        self.read_only = bool(read_only)

    # ---- backend hooks -----------------------------------------------------------------
    def _tx(self, write=False):
        """A context manager yielding a :class:`_Q` inside one transaction (``BEGIN IMMEDIATE``
        or row locks when ``write``); commits on success, rolls back on any error."""
        raise NotImplementedError

    def _has_table(self, q, table):
        """Whether ``table`` exists (read-only: never creates it)."""
        raise NotImplementedError

    def _refuse_write(self, write):
        """Raise StoreError for a write transaction on a read-only store."""
        if write and self.read_only:
            raise StoreError(f"the store {self.describe()} is open read-only: nothing can be "
                             f"written through it")

    def describe(self):
        """The store for messages (no password)."""
        return self.dialect

    def _lock_schema(self, q):
        """Serialise concurrent migrations (PostgreSQL takes an advisory lock)."""

    def _lock_pool(self, q):
        """Serialise concurrent pool fills (SQLite's BEGIN IMMEDIATE already does)."""

    def close(self):
        """Close the connection."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- schema ------------------------------------------------------------------------
    def migrate(self):
        """Create or upgrade the schema; return the versions applied (empty when current)."""
        with self._tx(write=True) as q:
            self._lock_schema(q)
            q.run(schema.render(schema.VERSION_TABLE, self.dialect))
            done = {int(r["version"]) for r in q.all("SELECT version FROM schema_version")}
            applied = []
            for version, statements in schema.pending(done, self.dialect):
                for statement in statements:
                    q.run(statement)
                q.run("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                      (version, self.clock()))
                applied.append(version)
            return applied

    def check_schema(self):
        """Read-only check that the schema holds every migration this code knows; StoreError
        naming the missing versions and how to migrate otherwise. Returns the versions
        recorded. A newer schema (migrations this code does not know) is accepted: migrations
        only add tables and columns."""
        with self._tx() as q:
            done = set()
            if self._has_table(q, "schema_version"):
                done = {int(r["version"]) for r in q.all("SELECT version FROM schema_version")}
        missing = sorted(v for v, dummy, dummy2 in schema.MIGRATIONS if v not in done)
        if missing:
            have = max(done) if done else 0
            raise StoreError(
                f"the store {self.describe()} has schema version {have}, this collection needs "
                f"{schema.LATEST} (missing migration{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))}); it is opened read-only here, so it is not "
                f"migrated. Run any vman.lifecycle store module against it once to migrate it, "
                f"for example: ansible localhost -m vman.lifecycle.vm_status_info "
                f"-a store=<the store URL>")
        return done

    def schema_version(self):
        """The highest migration recorded."""
        with self._tx() as q:
            return q.one("SELECT MAX(version) AS v FROM schema_version")["v"] or 0

    # ---- VMs ---------------------------------------------------------------------------
    def create_vms(self, records, who=None, why=None, status=lc.INSTALLING, actor=lc.ADMIN):
        """Insert VMs (dicts: name, org, flavor, backend, hypervisor, spec, owner) in one
        transaction, each with a ``create`` event; return them as stored."""
        with self._tx(write=True) as q:
            return [self._create(q, rec, who, why, status, actor) for rec in records]

    def _create(self, q, rec, who, why, status=lc.INSTALLING, actor=lc.ADMIN):
        if status not in lc.STATUSES:
            raise StateError(f"unknown status '{status}' for new VMs")
        name = rec.get("name")
        if not name:
            raise ValidationError("vm", "name", name, "a VM needs a name")
        if q.one("SELECT 1 AS x FROM vms WHERE name = ?", (name,)):
            raise StateError(f"VM '{name}' already exists in the store")
        now = self.clock()
        q.run(f"INSERT INTO vms ({_VM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (name, rec.get("org"), rec.get("flavor"), rec.get("backend"),
               rec.get("hypervisor"), json.dumps(rec.get("spec") or {}, sort_keys=True),
               status, now, False, False, rec.get("owner"), now, now))
        self._event(q, now, name, actor, who, "create", None, status, why)
        return self._get(q, name)

    def fill_pool(self, flavors, make_name, netconf_pool=None, netconf_kinds=(), who=None,
                  check=False, placer=None):
        """Create ``installing`` VMs until each flavor has ``threshold`` VMs on the way to or in
        the pool (installing, postinstall, preallocated).

        ``flavors``: dicts with name, threshold, spec, org, backend, hypervisor. Each new VM
        gets one netconf of every kind in ``netconf_kinds`` from ``netconf_pool``. All in one
        transaction, serialised against other fillers: a netconf shortage creates nothing.
        ``placer(hypervisor rows, placed VM rows, new records)`` (optional) is called in that
        transaction, in check mode too, with every new VM record (name, flavor, spec, backend,
        hypervisor) of the whole batch and returns ``{name: hypervisor}`` for the records it
        places; the chosen host is stored on the VM and its resources (``resources`` of the
        placer, when it has them) added to the host's use.
        Returns ``(deficit {flavor: n}, created VM dicts with a "netconfs" {kind: row})``.
        """
        pipeline = (lc.INSTALLING, lc.POSTINSTALL, lc.PREALLOCATED)
        with self._tx(write=not check) as q:
            if not check:
                self._lock_pool(q)
            deficit, records = {}, []
            for flavor in flavors:
                have = q.one("SELECT COUNT(*) AS n FROM vms WHERE flavor = ? AND status IN (?, ?, ?)",
                             (flavor["name"],) + pipeline)["n"]
                deficit[flavor["name"]] = max(0, int(flavor["threshold"]) - int(have))
                if check and placer is None:
                    continue
                for dummy in range(deficit[flavor["name"]]):
                    records.append({"name": make_name(), "flavor": flavor["name"],
                                    "spec": flavor.get("spec"), "org": flavor.get("org"),
                                    "backend": flavor.get("backend"),
                                    "hypervisor": flavor.get("hypervisor")})
            placement = {}
            if placer is not None and records:
                placement = placer(*self._placement_rows(q), records)
            if check:
                return deficit, []
            created = []
            for rec in records:
                if rec["name"] in placement:
                    rec["hypervisor"] = placement[rec["name"]]
                vm = self._create(q, rec, who, f"pool fill for flavor {rec['flavor']}")
                vm["netconfs"] = {kind: self._allocate_netconf(q, netconf_pool, kind, vm["name"])[0]
                                  for kind in netconf_kinds} if netconf_pool else {}
                created.append(vm)
            if placement:
                self._assign(q, placement, getattr(placer, "resources", {}))
            return deficit, created

    def _placement_rows(self, q):
        """The hypervisor rows and the VMs placed on a hypervisor, read in ``q``."""
        hypervisors = [hv_row(r) for r in q.all(f"SELECT {HV_COLUMNS} FROM hypervisors ORDER BY name")]
        vms = [self._vm(r) for r in q.all(f"SELECT {_VM_COLUMNS} FROM vms WHERE hypervisor IS NOT NULL "
                                          "ORDER BY id")] if hypervisors else []
        return hypervisors, vms

    def get_vm(self, name):
        """The VM as a dict, or None."""
        with self._tx() as q:
            return self._get(q, name)

    def list_vms(self, status=None, flavor=None, org=None, owner=None, hypervisor=None):
        """VMs matching every filter given, in creation order."""
        where, args = [], []
        for column, value in (("status", status), ("flavor", flavor), ("org", org),
                              ("owner", owner), ("hypervisor", hypervisor)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {_VM_COLUMNS} FROM vms"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx() as q:
            return [self._vm(r) for r in q.all(sql + " ORDER BY id", args)]

    def count_by_flavor(self, status):
        """``{flavor: number of VMs in status}`` for every flavor that has one."""
        with self._tx() as q:
            rows = q.all("SELECT flavor, COUNT(*) AS n FROM vms WHERE status = ? GROUP BY flavor",
                         (status,))
        return {r["flavor"]: int(r["n"]) for r in rows}

    def change_status(self, name, target, actor, who=None, why=None, check=False,
                      grace_days=lc.DEFAULT_GRACE_DAYS):
        """Move VM ``name`` to ``target``; return the :class:`_lifecycle.Plan`.

        With ``check`` nothing is written. Raises StateError for an unknown VM or an illegal
        transition.
        """
        with self._tx(write=not check) as q:
            vm = self._get(q, name, lock=True)
            now = self.clock()
            plan = lc.plan_transition(name, vm["status"], target, actor,
                                      admin_suspended=vm["admin_suspended"],
                                      since=vm["status_since"], now=now, grace_days=grace_days)
            if plan.changed and not check:
                self._apply(q, plan, now, who, why)
            return plan

    def request_ansible(self, name, actor, who=None, why=None, check=False):
        """Request an ansible run (see ``_lifecycle.plan_ansible_request``); return the plan."""
        with self._tx(write=not check) as q:
            vm = self._get(q, name, lock=True)
            plan = lc.plan_ansible_request(name, vm["status"], actor, vm["ansible_pending"])
            if plan.changed and not check:
                now = self.clock()
                if plan.deferred:
                    q.run("UPDATE vms SET ansible_pending = ?, updated_at = ? WHERE name = ?",
                          (True, now, name))
                    self._event(q, now, name, actor, who, plan.event, plan.before, plan.after, why)
                else:
                    self._apply(q, plan, now, who, why)
            return plan

    def finish_ansible_run(self, name, who=None, why=None, check=False):
        """End an ansible run (see ``_lifecycle.plan_run_end``); return the plan."""
        with self._tx(write=not check) as q:
            vm = self._get(q, name, lock=True)
            plan = lc.plan_run_end(name, vm["status"])
            if not check:
                self._apply(q, plan, self.clock(), who, why)
            return plan

    def set_admin_suspended(self, name, suspended, who=None, why=None, check=False):
        """Set or clear the admin suspension; return ``(before, after)``. Admin only by design:
        the caller is the admin; an event records it."""
        with self._tx(write=not check) as q:
            vm = self._get(q, name, lock=True)
            before = vm["admin_suspended"]
            if before != bool(suspended) and not check:
                now = self.clock()
                q.run("UPDATE vms SET admin_suspended = ?, updated_at = ? WHERE name = ?",
                      (bool(suspended), now, name))
                self._event(q, now, name, lc.ADMIN, who,
                            "admin_suspend" if suspended else "admin_unsuspend",
                            vm["status"], vm["status"], why)
            return before, bool(suspended)

    def claim(self, flavor, owner, actor=lc.USER, who=None, why=None, check=False):
        """Atomically hand one preallocated VM of ``flavor`` to ``owner`` (status -> ready).

        Concurrent claimers never receive the same VM. Raises StateError when the pool of that
        flavor is empty.
        """
        with self._tx(write=not check) as q:
            row = q.one(f"SELECT name FROM vms WHERE status = ? AND flavor = ? ORDER BY id LIMIT 1"
                        f"{'' if check else self.skip_locked_clause}", (lc.PREALLOCATED, flavor))
            if row is None:
                raise StateError(f"no preallocated VM of flavor '{flavor}' is left to claim; "
                                 f"fill the pool (vman.lifecycle.vm_pool state=present) first")
            vm = self._get(q, row["name"])
            now = self.clock()
            plan = lc.plan_transition(vm["name"], vm["status"], lc.READY, actor,
                                      admin_suspended=vm["admin_suspended"])
            if check:
                return dict(vm, status=lc.READY, owner=owner)
            q.run("UPDATE vms SET owner = ? WHERE name = ?", (owner, vm["name"]))
            self._apply(q, plan, now, who or owner, why or f"claimed by {owner}")
            return self._get(q, vm["name"])

    def claim_many(self, claims, actor=lc.USER, who=None, why=None, check=False):
        """Hand preallocated VMs to owners, all in one transaction: ``claims`` is a list of
        ``(flavor, owner)``; returns the VMs claimed in that order, each with its
        ``netconfs`` (by kind) and ``before`` (its status and owner before the claim).

        All or nothing: when a flavor has fewer preallocated VMs than the claims ask for,
        nothing is claimed and StateError says, per flavor short, how many were wanted and how
        many are available. Concurrent claimers never receive the same VM (PostgreSQL skips
        the rows another claimer holds; SQLite's BEGIN IMMEDIATE serialises writers).
        """
        wanted = {}
        for flavor, dummy in claims:
            wanted[flavor] = wanted.get(flavor, 0) + 1
        with self._tx(write=not check) as q:
            free = {}
            for flavor, n in wanted.items():
                free[flavor] = [r["name"] for r in q.all(
                    f"SELECT name FROM vms WHERE status = ? AND flavor = ? ORDER BY id LIMIT ?"
                    f"{'' if check else self.skip_locked_clause}", (lc.PREALLOCATED, flavor, n))]
            short = {f: (n, len(free[f])) for f, n in wanted.items() if len(free[f]) < n}
            if short:
                raise StateError(
                    "not enough preallocated VMs for the batch of {} claim{}, nothing was claimed: "
                    "{}; fill the pool (vman.lifecycle.vm_pool state=present) first".format(
                        len(claims), "" if len(claims) == 1 else "s", ", ".join(
                            f"flavor '{f}' wanted {n}, available {have}"
                            for f, (n, have) in sorted(short.items()))))
            now = self.clock()
            taken, out = {f: iter(names) for f, names in free.items()}, []
            for flavor, owner in claims:
                vm = self._get(q, next(taken[flavor]))
                before = {"status": vm["status"], "owner": vm["owner"]}
                plan = lc.plan_transition(vm["name"], vm["status"], lc.READY, actor,
                                          admin_suspended=vm["admin_suspended"])
                if check:
                    vm = dict(vm, status=lc.READY, owner=owner)
                else:
                    q.run("UPDATE vms SET owner = ? WHERE name = ?", (owner, vm["name"]))
                    self._apply(q, plan, now, who or owner, why or f"claimed by {owner}")
                    vm = self._get(q, vm["name"])
                vm["netconfs"] = {r["kind"]: dict(r) for r in q.all(
                    "SELECT pool, kind, hostname, ipv4, ipv6, in_use_by FROM netconfs "
                    "WHERE in_use_by = ? ORDER BY id", (vm["name"],))}
                vm["before"] = before
                out.append(vm)
            return out

    def events(self, name, limit=None):
        """The VM's events, oldest first (the last ``limit`` when given)."""
        with self._tx() as q:
            rows = q.all("SELECT at, vm, actor, who, event, from_status, to_status, why "
                         "FROM events WHERE vm = ? ORDER BY id", (name,))
        rows = [dict(r) for r in rows]
        return rows[-limit:] if limit else rows

    # ---- netconfs ----------------------------------------------------------------------
    def add_netconfs(self, pool, kind, entries, check=False):
        """Add network configs (dicts: hostname, ipv4, ipv6) to ``pool``.

        An entry already present exactly as given is skipped; one that reuses a hostname or
        an address of a different entry raises ValidationError naming the value.
        Returns the hostnames added (or that would be added with ``check``).
        """
        if kind not in NETCONF_KINDS:
            raise ValidationError(f"netconf pool '{pool}'", "kind", kind,
                                  f"must be one of {', '.join(NETCONF_KINDS)}")
        added = []
        with self._tx(write=not check) as q:
            for entry in entries:
                same = q.one("SELECT pool, kind, hostname, ipv4, ipv6 FROM netconfs WHERE hostname = ?",
                             (entry["hostname"],))
                wanted = {"pool": pool, "kind": kind, "hostname": entry["hostname"],
                          "ipv4": entry.get("ipv4"), "ipv6": entry.get("ipv6")}
                if same is not None and dict(same) == wanted:
                    continue
                for field in ("hostname", "ipv4", "ipv6"):
                    value = wanted[field]
                    if value is None:
                        continue
                    clash = q.one(f"SELECT pool, hostname FROM netconfs WHERE {field} = ?", (value,))
                    if clash is not None:
                        raise ValidationError(
                            f"netconf pool '{pool}'", field, value,
                            f"already used by netconf '{clash['hostname']}' in pool '{clash['pool']}'")
                if not check:
                    q.run("INSERT INTO netconfs (pool, kind, hostname, ipv4, ipv6, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          (pool, kind, wanted["hostname"], wanted["ipv4"], wanted["ipv6"], self.clock()))
                added.append(wanted["hostname"])
        return added

    def allocate_netconf(self, pool, kind, vm, check=False):
        """Give one free netconf of ``pool``/``kind`` to ``vm``; return ``(row, changed)``.

        Idempotent: a VM that already holds one of that pool and kind gets it back unchanged.
        Raises StateError naming the pool when none is free.
        """
        with self._tx(write=not check) as q:
            return self._allocate_netconf(q, pool, kind, vm, check)

    def _allocate_netconf(self, q, pool, kind, vm, check=False):
        cols = "id, pool, kind, hostname, ipv4, ipv6, in_use_by"
        mine = q.one(f"SELECT {cols} FROM netconfs WHERE pool = ? AND kind = ? AND in_use_by = ?",
                     (pool, kind, vm))
        if mine is not None:
            return dict(mine), False
        row = q.one(f"SELECT {cols} FROM netconfs WHERE pool = ? AND kind = ? AND in_use_by IS NULL "
                    f"ORDER BY id LIMIT 1{'' if check else self.skip_locked_clause}", (pool, kind))
        if row is None:
            raise StateError(f"netconf pool '{pool}' has no free '{kind}' entry left for VM "
                             f"'{vm}'; add more with vman.lifecycle.netconf_pool")
        if check:
            return dict(row, in_use_by=vm), True
        q.run("UPDATE netconfs SET in_use_by = ?, allocated_at = ? WHERE id = ?",
              (vm, self.clock(), row["id"]))
        return dict(row, in_use_by=vm), True

    def release_netconfs(self, vm, pool=None, check=False):
        """Free every netconf ``vm`` holds (in ``pool`` when given); return their hostnames."""
        where, args = "in_use_by = ?", [vm]
        if pool is not None:
            where, args = where + " AND pool = ?", args + [pool]
        with self._tx(write=not check) as q:
            names = [r["hostname"] for r in q.all(
                f"SELECT hostname FROM netconfs WHERE {where} ORDER BY id", args)]
            if names and not check:
                q.run(f"UPDATE netconfs SET in_use_by = NULL, allocated_at = NULL WHERE {where}", args)
        return names

    def netconfs(self, pool=None, vm=None, in_use=False):
        """Netconf rows of ``pool`` and/or held by ``vm`` (only those held by a VM when
        ``in_use``)."""
        where, args = ["in_use_by IS NOT NULL"] if in_use else [], []
        if pool is not None:
            where.append("pool = ?")
            args.append(pool)
        if vm is not None:
            where.append("in_use_by = ?")
            args.append(vm)
        sql = "SELECT pool, kind, hostname, ipv4, ipv6, in_use_by FROM netconfs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx() as q:
            return [dict(r) for r in q.all(sql + " ORDER BY id", args)]

    def netconf_stats(self, pool):
        """``{kind: {"total": n, "free": m}}`` for ``pool``."""
        with self._tx() as q:
            rows = q.all("SELECT kind, COUNT(*) AS total, COUNT(in_use_by) AS used FROM netconfs "
                         "WHERE pool = ? GROUP BY kind", (pool,))
        return {r["kind"]: {"total": int(r["total"]), "free": int(r["total"]) - int(r["used"])}
                for r in rows}

    # ---- tokens and host keys ----------------------------------------------------------
    def add_token(self, vm, token_hash, expires_at, source_ip=None):
        """Store a token *hash* for ``vm`` (the token itself is never stored)."""
        with self._tx(write=True) as q:
            q.run("INSERT INTO tokens (vm, token_hash, source_ip, expires_at, created_at) "
                  "VALUES (?, ?, ?, ?, ?)", (vm, token_hash, source_ip, expires_at, self.clock()))

    def replace_token(self, vm, token_hash, expires_at, source_ip=None, status=None):
        """Revoke (mark used) every unused token of ``vm`` and store a new token *hash*, in one
        transaction; return how many were revoked.

        The VM row is locked first (PostgreSQL ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``
        serialises every writer), so of concurrent issuers each revokes the token of the one
        before it and exactly one token stays valid. With ``status``, StateError (nothing
        written) unless the VM is in that status.
        """
        with self._tx(write=True) as q:
            row = self._get(q, vm, lock=True)
            if status is not None and row["status"] != status:
                raise StateError(f"VM {vm}: status is {row['status']}, a callback token is only "
                                 f"issued while it is {status}")
            now = self.clock()
            revoked = q.run("UPDATE tokens SET used_at = ? WHERE vm = ? AND used_at IS NULL",
                            (now, vm))
            q.run("INSERT INTO tokens (vm, token_hash, source_ip, expires_at, created_at) "
                  "VALUES (?, ?, ?, ?, ?)", (vm, token_hash, source_ip, expires_at, now))
            return revoked

    def spend_token(self, token_id, vm, target, actor, who=None, why=None,
                    grace_days=lc.DEFAULT_GRACE_DAYS):
        """Mark token ``token_id`` of ``vm`` used and move the VM to ``target``, in one
        transaction: a crash between the two leaves neither. Return the plan, or None when the
        token was already used (nothing written). StateError (nothing written, the token still
        valid) for an unknown VM or an illegal transition.
        """
        with self._tx(write=True) as q:
            row = self._get(q, vm, lock=True)
            now = self.clock()
            if q.run("UPDATE tokens SET used_at = ? WHERE id = ? AND vm = ? AND used_at IS NULL",
                     (now, token_id, vm)) != 1:
                return None
            plan = lc.plan_transition(vm, row["status"], target, actor,
                                      admin_suspended=row["admin_suspended"],
                                      since=row["status_since"], now=now, grace_days=grace_days)
            if plan.changed:
                self._apply(q, plan, now, who, why)
            return plan

    def tokens(self, vm):
        """The VM's token rows (hashes), oldest first."""
        with self._tx() as q:
            return [dict(r) for r in q.all(
                "SELECT id, vm, token_hash, source_ip, expires_at, used_at FROM tokens "
                "WHERE vm = ? ORDER BY id", (vm,))]

    def use_token(self, token_id, now=None):
        """Mark a token used; False when it was already used (so it is accepted only once)."""
        with self._tx(write=True) as q:
            count = q.run("UPDATE tokens SET used_at = ? WHERE id = ? AND used_at IS NULL",
                          (self.clock() if now is None else now, token_id))
            return count == 1

    def drop_tokens(self, vm, check=False):
        """Delete every token row of ``vm``, used or not; return how many there were."""
        with self._tx(write=not check) as q:
            count = q.one("SELECT COUNT(*) AS n FROM tokens WHERE vm = ?", (vm,))["n"]
            if count and not check:
                q.run("DELETE FROM tokens WHERE vm = ?", (vm,))
            return int(count)

    def put_host_keys(self, vm, keys):
        """Replace the VM's public host keys (dicts: key_type, public_key, fp_sha256, fp_sha1)."""
        with self._tx(write=True) as q:
            q.run("DELETE FROM host_keys WHERE vm = ?", (vm,))
            for key in keys:
                q.run("INSERT INTO host_keys (vm, key_type, public_key, fp_sha256, fp_sha1, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (vm, key["key_type"], key["public_key"],
                                                    key["fp_sha256"], key.get("fp_sha1"), self.clock()))

    def drop_host_keys(self, vm, check=False):
        """Delete the VM's public host keys; return the key types deleted (or that would be)."""
        with self._tx(write=not check) as q:
            types = [r["key_type"] for r in q.all(
                "SELECT key_type FROM host_keys WHERE vm = ? ORDER BY key_type", (vm,))]
            if types and not check:
                q.run("DELETE FROM host_keys WHERE vm = ?", (vm,))
            return types

    def host_keys(self, vm):
        """The VM's public host keys."""
        with self._tx() as q:
            return [dict(r) for r in q.all(
                "SELECT key_type, public_key, fp_sha256, fp_sha1 FROM host_keys WHERE vm = ? "
                "ORDER BY key_type", (vm,))]

    # ---- generated secrets (kept until shown) ------------------------------------------
    def put_secret(self, vm, name, make_value):
        """The VM's secret ``name``: the stored value, else ``make_value()`` stored now.

        Returns ``(value, created)``. One transaction, so two runs never store two values.
        """
        with self._tx(write=True) as q:
            self._get(q, vm, lock=True)
            row = q.one("SELECT value FROM vm_secrets WHERE vm = ? AND name = ?", (vm, name))
            if row is not None:
                return row["value"], False
            value = make_value()
            q.run("INSERT INTO vm_secrets (vm, name, value, created_at) VALUES (?, ?, ?, ?)",
                  (vm, name, value, self.clock()))
            return value, True

    def has_secret(self, vm, name):
        """Whether the VM's secret ``name`` is still stored (not shown yet)."""
        with self._tx() as q:
            return q.one("SELECT 1 AS x FROM vm_secrets WHERE vm = ? AND name = ?",
                         (vm, name)) is not None

    def take_secret(self, vm, name, check=False):
        """Return the VM's secret ``name`` and delete it (it is shown once), or None."""
        with self._tx(write=not check) as q:
            row = q.one("SELECT value FROM vm_secrets WHERE vm = ? AND name = ?", (vm, name))
            if row is not None and not check:
                q.run("DELETE FROM vm_secrets WHERE vm = ? AND name = ?", (vm, name))
            return None if row is None else row["value"]

    def drop_secrets(self, vm, name=None, check=False):
        """Delete the VM's secrets (only ``name`` when given); return the names deleted."""
        where, args = "vm = ?", [vm]
        if name is not None:
            where, args = where + " AND name = ?", args + [name]
        with self._tx(write=not check) as q:
            names = [r["name"] for r in q.all(f"SELECT name FROM vm_secrets WHERE {where} "
                                              "ORDER BY name", args)]
            if names and not check:
                q.run(f"DELETE FROM vm_secrets WHERE {where}", args)
            return names

    # ---- helpers -----------------------------------------------------------------------
    def _get(self, q, name, lock=False):
        row = q.one(f"SELECT {_VM_COLUMNS} FROM vms WHERE name = ?"
                    f"{self.lock_clause if lock else ''}", (name,))
        if lock and row is None:
            raise StateError(f"VM '{name}' is not in the store")
        return self._vm(row) if row is not None else None

    @staticmethod
    def _vm(row):
        vm = dict(row)
        if isinstance(vm["spec"], str):
            vm["spec"] = json.loads(vm["spec"])
        vm["admin_suspended"] = bool(vm["admin_suspended"])
        vm["ansible_pending"] = bool(vm["ansible_pending"])
        return vm

    def _apply(self, q, plan, now, who, why):
        # entering a run satisfies any deferred request
        clear = ", ansible_pending = ?" if plan.after == lc.ANSIBLE else ""
        args = [plan.after, now, now] + ([False] if clear else []) + [plan.vm]
        q.run(f"UPDATE vms SET status = ?, status_since = ?, updated_at = ?{clear} WHERE name = ?",
              args)
        self._event(q, now, plan.vm, plan.actor, who, plan.event, plan.before, plan.after, why)

    @staticmethod
    def _event(q, now, vm, actor, who, event, before, after, why):
        q.run("INSERT INTO events (at, vm, actor, who, event, from_status, to_status, why) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (now, vm, actor, who, event, before, after, why))


class _Q:
    """A cursor with the three calls the store needs; backends adapt placeholders."""

    def __init__(self, cursor, adapt=None):
        self._cur = cursor
        self._adapt = adapt or (lambda sql: sql)

    def run(self, sql, args=()):
        """Execute; return the row count."""
        self._cur.execute(self._adapt(sql), tuple(args))
        return self._cur.rowcount

    def one(self, sql, args=()):
        self._cur.execute(self._adapt(sql), tuple(args))
        return self._cur.fetchone()

    def all(self, sql, args=()):
        self._cur.execute(self._adapt(sql), tuple(args))
        return self._cur.fetchall()
