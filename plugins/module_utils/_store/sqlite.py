# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite lifecycle store (private, no stability promise).

One file, WAL mode, every operation one transaction. Writers start with ``BEGIN IMMEDIATE``
so the write lock is taken before the first read: a claim reads the free VM and updates it
with no other writer in between. The database file (and so its -wal/-shm files, which SQLite
creates with the same mode) is 0600 in a 0700 directory when we create it.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager

from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import Store, StoreError, _Q

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

    @contextmanager
    def _tx(self, write=False):
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
