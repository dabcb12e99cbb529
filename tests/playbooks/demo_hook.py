# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run by scripts/demo.sh after each step (VMAN_DEMO_HOOK): what the guests really look like.

Usage: demo_hook.py OUT.jsonl STEP. Appends one JSON line: the step, the lines of the
controller's known_hosts file (VMAN_DEMO_KNOWN_HOSTS, when set) and, per VM of the store, the
public host keys and the install token hashes the store holds, the container state and, when it runs, what is inside
(owner's account, install token file, root's password hash, host key, the default web site).
Reads VMAN_STORE and VMAN_LXC_PATH.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request


def attach(lxc_path, name, argv):
    proc = subprocess.run(["lxc-attach", "-P", lxc_path, "-n", name, "--clear-env", "--"] + argv,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout


def web(ip):
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://{ip}/", timeout=3) as answer:
            return answer.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"error: {exc}"


def observe(lxc_path, vm, owner, ip):
    proc = subprocess.run(["lxc-info", "-P", lxc_path, "-n", vm, "-s", "-H"], capture_output=True,
                          text=True, timeout=30, check=False)
    seen = {"state": proc.stdout.strip() if proc.returncode == 0 else "absent"}
    if seen["state"] != "RUNNING":
        return seen
    seen["token_file"] = attach(lxc_path, vm, ["test", "-e", "/etc/vman/install-token"])[0] == 0
    seen["owner_account"] = bool(owner) and attach(lxc_path, vm, ["id", "-u", owner])[0] == 0
    shadow = attach(lxc_path, vm, ["getent", "shadow", "root"])[1].split(":")
    seen["root_hash"] = shadow[1] if len(shadow) > 1 else None
    seen["host_key"] = attach(lxc_path, vm, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])[1].strip()
    seen["web"] = web(ip) if ip else None
    return seen


def main(out, step):
    db = os.environ["VMAN_STORE"][len("sqlite://"):]
    lxc_path = os.environ["VMAN_LXC_PATH"]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT v.name, v.owner, n.ipv4 FROM vms v LEFT JOIN netconfs n "
                        "ON n.in_use_by = v.name AND n.kind = 'vm' ORDER BY v.id").fetchall()
    line = {"step": step, "vms": {vm: observe(lxc_path, vm, owner, ip) for vm, owner, ip in rows}}
    for vm in line["vms"]:
        line["vms"][vm]["stored_keys"] = dict(conn.execute(
            "SELECT key_type, public_key FROM host_keys WHERE vm = ?", (vm,)).fetchall())
        line["vms"][vm]["tokens"] = [{"hash": h, "used": used is not None} for h, used in conn.execute(
            "SELECT token_hash, used_at FROM tokens WHERE vm = ? ORDER BY id", (vm,))]
    known_hosts = os.environ.get("VMAN_DEMO_KNOWN_HOSTS")
    if known_hosts:
        try:
            with open(known_hosts, encoding="utf-8") as handle:
                line["known_hosts"] = handle.read().splitlines()
        except FileNotFoundError:
            line["known_hosts"] = None
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
