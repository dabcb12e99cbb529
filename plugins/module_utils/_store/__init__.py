# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle store (private, no stability promise).

:func:`open_store` picks the backend from a URL: ``sqlite:///path/to/file.db`` (the default,
``~/.local/state/vman/lifecycle.db``) or ``postgresql://user@host/db`` (also
``postgres://``). Without a URL the environment variable ``VMAN_STORE`` decides.
``STORE_ARGUMENT_SPEC`` is the ``store`` option every store-side module shares; its
documentation is the ``vman.lifecycle.store`` doc fragment.
"""

from __future__ import annotations

import os

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import Store, StoreError, StoreMissing

__all__ = ["Store", "StoreError", "StoreMissing", "open_store", "resolve_url", "STORE_ARGUMENT_SPEC",
           "DEFAULT_PATH", "ENV_VAR"]

ENV_VAR = "VMAN_STORE"
DEFAULT_PATH = "~/.local/state/vman/lifecycle.db"

#: The shared ``store`` option (paired with plugins/doc_fragments/store.py). no_log because a
#: PostgreSQL URL may carry a password.
STORE_ARGUMENT_SPEC = {
    "store": {"type": "str", "no_log": True},
}


def resolve_url(url=None):
    """The store URL in effect: ``url``, else ``$VMAN_STORE``, else the default SQLite file."""
    url = url or os.environ.get(ENV_VAR) or ""
    if not url.strip():
        return "sqlite:///" + os.path.expanduser(DEFAULT_PATH).lstrip("/")
    return url.strip()


def sqlite_path(url):
    """The file path of a ``sqlite:///`` URL (``sqlite:////abs`` is accepted too)."""
    rest = url[len("sqlite://"):]
    if not rest.startswith("/"):
        raise ValidationError("store", "store", url, "a SQLite URL is sqlite:///absolute/path")
    rest = "/" + rest.lstrip("/")
    if rest.startswith("/~"):
        rest = os.path.expanduser(rest[1:])
    return rest


def open_store(url=None, migrate=True, read_only=False, **kwargs):
    """Open the store at ``url`` (see :func:`resolve_url`) and bring its schema up to date.

    With ``read_only`` nothing is ever written: no migration runs (``migrate`` is ignored), a
    SQLite file is opened with ``mode=ro`` (never created, never locked for writing, so a
    concurrent writer is never blocked and the file is never changed), a PostgreSQL session
    is read-only, and every write method raises StoreError. A store whose schema is older than
    this collection's (or missing) raises StoreError telling how to migrate it (StoreMissing
    for a SQLite file that does not exist): run any
    vman.lifecycle store module against it once, e.g.
    ``ansible localhost -m vman.lifecycle.vm_status_info -a store=URL``.
    """
    url = resolve_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from ansible_collections.vman.lifecycle.plugins.module_utils._store.sqlite import SqliteStore
        store = SqliteStore(sqlite_path(url), read_only=read_only, **kwargs)
    elif scheme in ("postgresql", "postgres"):
        from ansible_collections.vman.lifecycle.plugins.module_utils._store.postgres import PostgresStore
        store = PostgresStore(url, read_only=read_only, **kwargs)
    else:
        raise ValidationError("store", "store", scheme or url.split("/", 1)[0],
                              "the store URL must start with sqlite:/// or postgresql://")
    try:
        if read_only:
            store.check_schema()
        elif migrate:
            store.migrate()
    except Exception:
        store.close()
        raise
    return store
