# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run by scripts/demo.sh after each step (VMAN_DEMO_HOOK): what the guests really look like.

Usage: demo_hook.py OUT.jsonl STEP. Appends one JSON line: the step, the lines of the
controller's known_hosts file (VMAN_DEMO_KNOWN_HOSTS, when set) and, per VM of the store, the
public host keys and the install token hashes the store holds, the guest's state (RUNNING,
STOPPED or absent) and, when it runs, what is inside (owner's account, install token file,
root's password hash, host key, the default web site).
Reads VMAN_STORE and VMAN_DEMO_BACKEND: for ``lxc`` VMAN_LXC_PATH (lxc-info, lxc-attach); for
``xen`` VMAN_XEN_TESTBED and VMAN_DEMO_DIR (``xl`` in the dom0 over SSH, the guest over SSH
through the dom0 with the demo's controller key and known_hosts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
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


# run in a Xen guest as root: the same facts lxc-attach collects, as one JSON line
_GUEST_PROBE = r"""
import json, os, pwd, spwd, sys
owner = sys.argv[1]
try:
    pwd.getpwnam(owner)
    has_owner = bool(owner)
except KeyError:
    has_owner = False
with open("/etc/ssh/ssh_host_ed25519_key.pub") as handle:
    key = handle.read().strip()
print(json.dumps({"token_file": os.path.exists("/etc/vman/install-token"), "owner_account": has_owner,
                  "root_hash": spwd.getspnam("root").sp_pwdp, "host_key": key}))
"""
# run in the dom0: the domain's state and, when it runs, its default web site
_DOM0_PROBE = r"""
import json, os, subprocess, sys, time, urllib.request
domain, ip = sys.argv[1], sys.argv[2]
if subprocess.run(["xl", "domid", domain], capture_output=True).returncode == 0:
    state = "RUNNING"
elif os.path.exists(f"/etc/xen/vms/{domain}.cfg"):
    state = "STOPPED"
else:
    state = "absent"
org, _, name = domain.partition("-")
seen = {"state": state, "nfs_root": os.path.isdir(f"/srv/vman-lifecycle/{org}/{name}-root")}
# a web server just started under TCG takes seconds to listen: refused calls are retried for
# up to 60 s (a quarantined site stays refused)
deadline = time.monotonic() + 60
while state == "RUNNING" and ip:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://{ip}/", timeout=5) as answer:
            seen["web"] = answer.read().decode("utf-8", "replace")
        break
    except OSError as exc:
        seen["web"] = f"error: {exc}"
        if "refused" not in str(exc) or time.monotonic() > deadline:
            break
        time.sleep(3)
print(json.dumps(seen))
"""


def _ssh_json(argv, script, *args):
    remote = " ".join(shlex.quote(a) for a in ["python3", "-c", script] + [str(a) for a in args])
    proc = subprocess.run(argv + [remote], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        return {"probe_error": (proc.stderr or proc.stdout).strip()[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def observe_xen(testbed, demo, domain, owner, ip):
    """A Xen guest of the demo, seen from the dom0 and from inside (through the dom0).

    SSH connections are kept open between the hook's runs (ControlPersist), an SSH handshake
    through the dom0 with a guest under TCG takes 10-40 s.
    """
    # a socket path must stay under 108 bytes: a short one in /tmp, distinct per demo directory
    sockets = f"/tmp/vman-hook-{hashlib.sha256(demo.encode()).hexdigest()[:8]}-%C"
    shared = ["-o", "ControlMaster=auto", "-o", f"ControlPath={sockets}", "-o", "ControlPersist=900"]
    dom0 = ["ssh", "-F", os.path.join(testbed, "ssh_config")] + shared + ["testbed"]
    seen = _ssh_json(dom0, _DOM0_PROBE, domain, ip or "")
    if seen.get("state") != "RUNNING" or not ip:
        return seen
    guest = ["ssh"] + shared + [
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={demo}/known_hosts", "-i", f"{demo}/controller_key",
        "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=30",
        "-o", f"ProxyCommand=ssh -F {testbed}/ssh_config -W %h:%p testbed", f"root@{ip}"]
    seen.update(_ssh_json(guest, _GUEST_PROBE, owner or ""))
    return seen


def main(out, step):
    db = os.environ["VMAN_STORE"][len("sqlite://"):]
    backend = os.environ.get("VMAN_DEMO_BACKEND", "lxc")
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT v.org, v.name, v.owner, n.ipv4 FROM vms v LEFT JOIN netconfs n "
                        "ON n.in_use_by = v.name AND n.kind = 'vm' ORDER BY v.id").fetchall()
    if backend == "xen":
        testbed, demo = os.environ["VMAN_XEN_TESTBED"], os.environ["VMAN_DEMO_DIR"]
        vms = {vm: observe_xen(testbed, demo, f"{org}-{vm}" if org else vm, owner, ip)
               for org, vm, owner, ip in rows}
    else:
        lxc_path = os.environ["VMAN_LXC_PATH"]
        vms = {vm: observe(lxc_path, vm, owner, ip) for _org, vm, owner, ip in rows}
    line = {"step": step, "vms": vms}
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
