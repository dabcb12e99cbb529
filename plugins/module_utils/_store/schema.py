# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifecycle store schema and migrations (private, no stability promise).

One description serves both dialects: the statements below use ``{tokens}`` for the few
column types that differ, and :func:`render` fills them in for ``sqlite`` or ``postgresql``.
A migration is appended, never edited: its number is recorded in ``schema_version``.
"""

from __future__ import annotations

TYPES = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "json": "TEXT",
        "bool": "INTEGER",
        "false": "0",
        "true": "1",
        "ts": "REAL",
    },
    "postgresql": {
        "id": "BIGSERIAL PRIMARY KEY",
        "json": "JSONB",
        "bool": "BOOLEAN",
        "false": "FALSE",
        "true": "TRUE",
        "ts": "DOUBLE PRECISION",
    },
}

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at {ts} NOT NULL
)"""

#: (version, description, statements). Timestamps are epoch seconds (UTC).
MIGRATIONS = (
    (1, "vms, netconfs, tokens, host_keys, events", (
        """CREATE TABLE vms (
            id {id},
            name TEXT NOT NULL UNIQUE,
            org TEXT,
            flavor TEXT,
            backend TEXT,
            hypervisor TEXT,
            spec {json} NOT NULL,
            status TEXT NOT NULL,
            status_since {ts} NOT NULL,
            admin_suspended {bool} NOT NULL DEFAULT {false},
            ansible_pending {bool} NOT NULL DEFAULT {false},
            owner TEXT,
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL
        )""",
        "CREATE INDEX vms_status_flavor ON vms (status, flavor)",
        """CREATE TABLE netconfs (
            id {id},
            pool TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('vm', 'service', 'test-service')),
            hostname TEXT NOT NULL UNIQUE,
            ipv4 TEXT UNIQUE,
            ipv6 TEXT UNIQUE,
            in_use_by TEXT,
            allocated_at {ts},
            created_at {ts} NOT NULL
        )""",
        "CREATE INDEX netconfs_pool_free ON netconfs (pool, kind, in_use_by)",
        """CREATE TABLE tokens (
            id {id},
            vm TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            source_ip TEXT,
            expires_at {ts} NOT NULL,
            used_at {ts},
            created_at {ts} NOT NULL
        )""",
        "CREATE INDEX tokens_vm ON tokens (vm)",
        """CREATE TABLE host_keys (
            id {id},
            vm TEXT NOT NULL,
            key_type TEXT NOT NULL,
            public_key TEXT NOT NULL,
            fp_sha256 TEXT NOT NULL,
            fp_sha1 TEXT,
            created_at {ts} NOT NULL,
            UNIQUE (vm, key_type)
        )""",
        """CREATE TABLE events (
            id {id},
            at {ts} NOT NULL,
            vm TEXT NOT NULL,
            actor TEXT NOT NULL,
            who TEXT,
            event TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT,
            why TEXT
        )""",
        "CREATE INDEX events_vm ON events (vm, id)",
    )),
    # seed 004: start requests shared by allocators (services), their devices and the list
    # of allocators whose playbooks must run again
    (2, "requests, request_allocators, request_devices, redeploy", (
        """CREATE TABLE requests (
            id {id},
            name TEXT NOT NULL UNIQUE,
            backend TEXT NOT NULL,
            hypervisor TEXT,
            flavor TEXT,
            spec {json} NOT NULL,
            count INTEGER NOT NULL DEFAULT 1,
            keep_disk {bool} NOT NULL DEFAULT {true},
            state TEXT NOT NULL CHECK (state IN
                ('pending', 'ready', 'error', 'deleting', 'delete_failed')),
            error_status TEXT,
            error_reason TEXT,
            error_at {ts},
            lease_owner TEXT,
            lease_until {ts},
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL
        )""",
        """CREATE TABLE request_allocators (
            id {id},
            request TEXT NOT NULL,
            allocator TEXT NOT NULL,
            created_at {ts} NOT NULL,
            UNIQUE (request, allocator)
        )""",
        """CREATE TABLE request_devices (
            id {id},
            request TEXT NOT NULL,
            vm TEXT NOT NULL UNIQUE,
            idx INTEGER NOT NULL,
            ready {bool} NOT NULL DEFAULT {false},
            boot_id TEXT,
            marker TEXT,
            address TEXT,
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL,
            UNIQUE (request, idx)
        )""",
        """CREATE TABLE redeploy (
            id {id},
            allocator TEXT NOT NULL,
            request TEXT NOT NULL,
            reason TEXT,
            at {ts} NOT NULL,
            UNIQUE (allocator, request)
        )""",
    )),
    # generated passwords (seed 000: shown to the owner once, then gone)
    (3, "vm_secrets: generated passwords, kept until shown once", (
        """CREATE TABLE vm_secrets (
            id {id},
            vm TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at {ts} NOT NULL,
            UNIQUE (vm, name)
        )""",
    )),
    # placement (issue 15): the hypervisors, their capacity and use as last refreshed
    (4, "hypervisors: kind, access, labels, capacity and use for placement", (
        """CREATE TABLE hypervisors (
            id {id},
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('xen', 'libvirt', 'lxc')),
            access {json} NOT NULL,
            labels {json} NOT NULL,
            capacity {json} NOT NULL,
            use {json} NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('enabled', 'unreachable', 'disabled')),
            reason TEXT,
            refreshed_at {ts},
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL
        )""",
        "CREATE INDEX vms_hypervisor ON vms (hypervisor)",
    )),
)

LATEST = MIGRATIONS[-1][0]


def render(statement: str, dialect: str) -> str:
    """Fill the type tokens of ``statement`` for ``dialect``."""
    return statement.format(**TYPES[dialect])


def pending(done, dialect: str):
    """Yield ``(version, [rendered statements])`` for every migration not applied yet.

    ``done`` is the set of versions recorded (an int means every version up to it): a
    migration numbered below the highest one applied, merged from a parallel branch, still runs.
    """
    if isinstance(done, int):
        done = range(done + 1)
    done = set(done)
    for version, _desc, statements in MIGRATIONS:
        if version not in done:
            yield version, [render(s, dialect) for s in statements]
