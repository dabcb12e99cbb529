# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real PostgreSQL server for the tests: Debian's server on a private port and socket dir.

Registered once in tests/unit/conftest.py (a session fixture imported into two test modules
would be two fixtures, and two servers on one port).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

PG_PORT = 55432


# ---- a private PostgreSQL server for the session ---------------------------------------

def _pg_bindir():
    for pattern in ("/usr/lib/postgresql/*/bin",):
        for d in sorted(glob.glob(pattern), reverse=True):
            if os.path.exists(os.path.join(d, "initdb")):
                return d
    return None


def _as_pg_user(argv):
    # the server refuses to run as root: use the postgres account then
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


@pytest.fixture(scope="session")
def pg_server():
    """Start Debian's PostgreSQL on a private socket dir; yield a function making databases."""
    bindir = _pg_bindir()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], timeout=900,
            env={"DEBIAN_FRONTEND": "noninteractive"})
        bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries and no way to install them (not root)")
    base = tempfile.mkdtemp(prefix="vman-pg-")
    os.chmod(base, 0o755)
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.mkdir(sock)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    run(_as_pg_user([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "vman", "-E", "UTF8",
                     "--no-sync"]), timeout=120)
    opts = f"-p {PG_PORT} -k {sock} -c listen_addresses='' -c fsync=off -c max_connections=120"
    run(_as_pg_user([f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(base, "log"), "-o", opts,
                     "-w", "-t", "60", "start"]), timeout=90)
    counter = iter(range(1, 10 ** 6))

    def make_db():
        name = f"vman_t{next(counter)}"
        run([f"{bindir}/createdb", "-h", sock, "-p", str(PG_PORT), "-U", "vman", name], timeout=60)
        return f"postgresql://vman@/{name}?host={sock}&port={PG_PORT}"
    try:
        yield make_db
    finally:
        run(_as_pg_user([f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]),
            timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)
