# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private BIND (named) on 127.0.0.1 with one zone open to TSIG-signed RFC 2136 updates."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time

NAMED = shutil.which("named") or shutil.which("named", path="/usr/sbin:/sbin")
ZONE = "example.test"
KEY_NAME = "vman-test"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_named(directory):
    """Start named in ``directory``; return ``(process, port, tsig_secret)``. The caller stops it."""
    secret = base64.b64encode(os.urandom(32)).decode()
    port = _free_port()
    directory = str(directory)
    with open(os.path.join(directory, "zone.db"), "w") as zone:
        zone.write(f"$TTL 300\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 300\n"
                   f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n")
    with open(os.path.join(directory, "named.conf"), "w") as conf:
        conf.write(f"""
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{secret}"; }};
options {{
    directory "{directory}";
    pid-file none;
    session-keyfile "{directory}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
}};
zone "{ZONE}" {{ type primary; file "zone.db"; allow-update {{ key "{KEY_NAME}"; }}; }};
""")
    proc = subprocess.Popen([NAMED, "-g", "-4", "-n", "1", "-u", "root" if os.geteuid() == 0 else
                             os.environ.get("USER", "root"), "-c", os.path.join(directory, "named.conf")],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(directory, "named.log"), "w"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("named exited: " + open(os.path.join(directory, "named.log")).read())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port, secret
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("named did not listen in 20 s")


def stop_named(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
