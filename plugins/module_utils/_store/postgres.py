# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL lifecycle store over psycopg 3 (private, no stability promise).

For several controllers or AWX sharing one store. Every operation is one transaction; a
status change locks its row (``SELECT ... FOR UPDATE``) and a claim takes the first free row
that no one else holds (``FOR UPDATE SKIP LOCKED``), so concurrent claimers never wait on
each other and never get the same VM. Migrations hold a transaction-scoped advisory lock.
Read-only (``read_only=True``): the session is read-only (``default_transaction_read_only``),
so the server refuses any write too; no lock is taken.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import Store, StoreError, _Q

try:
    import psycopg
    from psycopg.rows import dict_row
    HAS_PSYCOPG = True
except ImportError:  # pragma: no cover - reported by the store factory
    psycopg = None
    dict_row = None
    HAS_PSYCOPG = False

# any 64-bit constants work; "vman" and "vmanpool" in ASCII
MIGRATION_LOCK_KEY = 0x766D616E
POOL_LOCK_KEY = 0x766D616E706F6F6C


def redact_url(url):
    """``url`` with the password replaced, for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1********@", url)


class PostgresStore(Store):
    """Store in a PostgreSQL database given by a ``postgresql://`` URL (libpq syntax)."""

    dialect = "postgresql"
    lock_clause = " FOR UPDATE"
    skip_locked_clause = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url, connect_timeout=10, **kwargs):
        super().__init__(**kwargs)
        if not HAS_PSYCOPG:
            raise StoreError("a postgresql:// store needs the Python package psycopg (3.x) "
                             "on the controller: pip install 'psycopg[binary]'")
        self.url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                         connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the store {redact_url(url)}: "
                             f"{str(exc).strip()}") from None
        if self.read_only:
            # psycopg then starts every transaction with BEGIN READ ONLY
            self._conn.read_only = True

    def describe(self):
        return redact_url(self.url)

    def _has_table(self, q, table):
        return q.one("SELECT to_regclass(?) AS t", (table,))["t"] is not None

    @staticmethod
    def _adapt(sql):
        return sql.replace("?", "%s")

    @contextmanager
    def _tx(self, write=False):
        self._refuse_write(write)
        try:
            with self._conn.transaction():
                with self._conn.cursor() as cur:
                    yield _Q(cur, self._adapt)
        except psycopg.Error as exc:
            raise StoreError(f"store {redact_url(self.url)}: {str(exc).strip()}") from None

    def _lock_schema(self, q):
        q.run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))

    def _lock_pool(self, q):
        q.run("SELECT pg_advisory_xact_lock(?)", (POOL_LOCK_KEY,))

    def close(self):
        self._conn.close()
