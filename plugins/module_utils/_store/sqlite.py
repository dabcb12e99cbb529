# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite lifecycle store (private, no stability promise).

One file, WAL mode, every operation one transaction. Writers start with ``BEGIN IMMEDIATE``
so the write lock is taken before the first read: a claim reads the free VM and updates it
with no other writer in between. The database file (and so its -wal/-shm files, which SQLite
creates with the same mode) is 0600 in a 0700 directory when we create it.

Read-only (``read_only=True``, the fleet inventory): the file is opened through a
``file:...?mode=ro`` URI, never created, no pragma that writes is issued and every
transaction is a plain deferred ``BEGIN``. In WAL mode a reader never waits for a writer
(nor a writer for it), so the inventory lists while a module holds ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from contextlib import contextmanager

from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import Store, StoreError, StoreMissing, _Q

BUSY_TIMEOUT_S = 60


def prepare_file(path):
    """Create the parent directory (0700) and the database file (0600) when missing."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class SqliteStore(Store):
    """The embedded default store."""

    dialect = "sqlite"

    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        if self.read_only:
            self._open_read_only(path)
            return
        try:
            prepare_file(path)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves
            self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store {path}: {exc}") from None

    def _open_read_only(self, path):
        if not os.path.isfile(path):
            raise StoreMissing(f"the SQLite store {path} does not exist; it is opened read-only "
                               f"here, so it is not created. Run any vman.lifecycle store module "
                               f"against it once to create it, for example: ansible localhost -m "
                               f"vman.lifecycle.vm_status_info -a store=sqlite://{path}")
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {path} read-only: {exc}") from None

    def describe(self):
        return self.path

    def _has_table(self, q, table):
        return q.one("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?",
                     (table,)) is not None

    @contextmanager
    def _tx(self, write=False):
        self._refuse_write(write)
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: cannot begin a transaction: {exc}") from None
        try:
            yield _Q(cur)
        except sqlite3.Error as exc:
            self._conn.rollback()
            raise StoreError(f"SQLite store {self.path}: {exc}") from None
        except BaseException:
            self._conn.rollback()
            raise
        else:
            try:
                self._conn.commit()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: commit failed: {exc}") from None
        finally:
            cur.close()

    def journal_mode(self):
        """The journal mode in effect (``wal`` once opened)."""
        return self._conn.execute("PRAGMA journal_mode").fetchone()[0]

    def close(self):
        self._conn.close()
