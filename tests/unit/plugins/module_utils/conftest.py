# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Store fixtures shared by the store, request and reconciler tests: the same tests run on
SQLite and on a real PostgreSQL server (``pg_server``, registered in tests/unit/conftest.py)."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store


class Clock:
    """A settable clock: tests move ``t`` instead of sleeping."""

    def __init__(self, t=1_700_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.real)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/state/lifecycle.db"
    return request.getfixturevalue("pg_server")()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(url, clock):
    s = open_store(url, clock=clock)
    yield s
    s.close()
