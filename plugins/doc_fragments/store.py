# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``store`` option, paired with STORE_ARGUMENT_SPEC in module_utils/_store."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  store:
    description:
      - Where the lifecycle store lives, as a URL.
      - C(sqlite:///absolute/path/lifecycle.db) is a SQLite file on the controller (WAL mode,
        created 0600 with its directory 0700 when missing).
      - C(postgresql://user@host/dbname) (libpq URL syntax, C(?host=/socket/dir&port=N) accepted)
        is a PostgreSQL database shared by several controllers or AWX; it needs the Python
        package C(psycopg) 3.x on the controller.
      - When not set, the environment variable E(VMAN_STORE) is used, and without it
        C(~/.local/state/vman/lifecycle.db).
      - The schema is created or upgraded on first use.
      - The value is never logged, because a PostgreSQL URL may carry a password.
    type: str
notes:
  - The store is on the controller; run store-side tasks delegated to C(localhost)
    (or on a play against C(localhost)).
requirements:
  - psycopg >= 3.1 (only for a PostgreSQL store)
"""
