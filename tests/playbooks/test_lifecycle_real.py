# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end: the lifecycle playbooks on real guests, through `make demo`'s script.

scripts/demo.sh runs every playbook with ansible-playbook -vvv against the fleet inventory
and a SQLite store: preallocate (host keys and a one-time token carried into two Debian
guests, the callback POSTed from inside each), postinstall over SSH with strict host key
checking, allocation to two users, a queued ansible run, quarantine, disable/enable, cancel,
purge. After each step a hook (demo_hook.py) records what the guests really look like.
This test then checks every step, and that neither the -vvv output nor any inventory output
holds a token, a password or a private key.

Each test runs twice: on LXC containers of this machine (``[lxc]``, `make real-lifecycle`) and
on Xen domUs with NFS roots in the Xen testbed's dom0 (``[xen]``, `make lifecycle-xen`, only
when VMAN_XEN_TESTBED names a testbed that is up; the guests' callbacks reach the controller
through an SSH remote forward in the dom0, so the listener sees 127.0.0.1, a trusted proxy).
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import warnings

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._callback import hash_token

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_hook.py")
# what secrets.token_urlsafe(32) makes: 43 URL-safe characters
TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def _unsafe(obj):
    return obj.get("__ansible_unsafe", obj) if len(obj) == 1 else obj


def _can_run():
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("apt-get") is None and shutil.which("lxc-create") is None:
        return "no lxc and no apt-get to install it"
    return None


@pytest.fixture(scope="module", params=["lxc", "xen"])
def demo(request, tmp_path_factory):
    """Run the demo once per backend; return its directory, output, hook lines, inventories
    and the store."""
    backend = request.param
    if backend == "lxc":
        reason = _can_run()
        if reason:
            pytest.skip(f"real LXC impossible here: {reason}")
    elif not os.environ.get("VMAN_XEN_TESTBED"):
        pytest.skip("the Xen lifecycle runs on a Xen testbed that is up: set VMAN_XEN_TESTBED "
                    "(make lifecycle-xen through make real-xen does)")
    work = tmp_path_factory.mktemp(f"demo-{backend}")
    hook_out = work / "hook.jsonl"
    env = dict(os.environ,
               VMAN_DEMO_BACKEND=backend,
               VMAN_DEMO_DIR=str(work / "demo"),
               VMAN_DEMO_KNOWN_HOSTS=str(work / "demo" / "known_hosts"),
               VMAN_DEMO_VERBOSITY="-vvv",
               VMAN_DEMO_HOOK=f"{sys.executable} {HOOK} {hook_out}",
               VMAN_LXC_BRIDGE=os.environ.get("VMAN_LXC_BRIDGE", "lxcbr1"),
               VMAN_LXC_GATEWAY=os.environ.get("VMAN_LXC_GATEWAY", "10.5.0.1/16"),
               VMAN_LXC_PATH=os.environ.get("VMAN_LXC_PATH", "/var/lib/vman-testbed/lxc"))
    # the demo keeps its store after the purge step; the test reads it afterwards
    start = time.monotonic()
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1500 if backend == "lxc" else 3600, check=False)
    seconds = time.monotonic() - start
    (work / "demo.log").write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    print(f"demo.sh -vvv on {backend} wall time: {seconds:.0f} s")
    hooks, known_hosts = {}, {}
    for line in hook_out.read_text().splitlines():
        entry = json.loads(line)
        hooks[entry["step"]] = entry["vms"]
        known_hosts[entry["step"]] = entry.get("known_hosts")
    steps = {}
    for path in sorted(glob.glob(str(work / "demo" / "steps" / "*.json"))):
        with open(path, encoding="utf-8") as handle:
            steps[os.path.basename(path)[3:-5]] = json.load(handle, object_hook=_unsafe)
    db = sqlite3.connect(str(work / "demo" / "lifecycle.db"))
    db.row_factory = sqlite3.Row
    yield {"backend": backend, "dir": work / "demo", "out": proc.stdout, "hooks": hooks, "steps": steps, "db": db,
           "known_hosts": known_hosts,
           "inventory_files": sorted(glob.glob(str(work / "demo" / "steps" / "*.json")))}
    db.close()


def _vms(inv):
    """Host variables of the VMs (the Xen demo's inventory also holds its hypervisor)."""
    return [hv for hv in inv["_meta"]["hostvars"].values() if "vman_status" in hv]


def _status(inv):
    return {hv["vman_name"]: (hv["vman_status"], hv.get("vman_owner")) for hv in _vms(inv)}


def _by_owner(inv, owner):
    return [hv for hv in _vms(inv) if hv.get("vman_owner") == owner][0]


@pytest.mark.real
def test_preallocate_callback_postinstall(demo):
    inv = demo["steps"]["preallocate"]
    assert sorted(s for s, _o in _status(inv).values()) == ["preallocated", "preallocated"]
    assert sorted(inv["pool"]["hosts"]) == sorted(h for h, hv in inv["_meta"]["hostvars"].items() if "vman_status" in hv)
    vms = list(_status(inv))
    # the callback came from inside each guest: its own address, accepted once, token spent
    for vm in vms:
        address = demo["db"].execute("SELECT ipv4 FROM netconfs WHERE in_use_by = ? AND kind = 'vm'",
                                     (vm,)).fetchone()
        # netconfs are released by the purge; the event keeps the source
        why = demo["db"].execute("SELECT why FROM events WHERE vm = ? AND event = 'install_callback'",
                                 (vm,)).fetchone()["why"]
        # LXC: the guest's own address on the bridge; Xen: the end of the SSH tunnel
        source = r"10\.\d+\.\d+\.\d+" if demo["backend"] == "lxc" else r"127\.0\.0\.1"
        assert re.fullmatch(r"install callback from " + source, why), why
        assert address is None
        tokens = demo["hooks"]["preallocate"][vm]["tokens"]
        assert len(tokens) == 1 and tokens[0]["used"], tokens
    # powered off in the pool, with the host keys the controller generated
    for vm, seen in demo["hooks"]["preallocate"].items():
        assert seen["state"] == "STOPPED", (vm, seen)
        assert sorted(seen["stored_keys"]) == ["ecdsa", "ed25519", "rsa"], (vm, seen)


@pytest.mark.real
def test_allocation_personalises_and_password_is_shown_once(demo):
    inv = demo["steps"]["allocate-alice"]
    alice = _by_owner(inv, "alice")
    assert alice["vman_status"] == "ready" and "status_ready" in inv
    seen = demo["hooks"]["allocate-alice"][alice["vman_name"]]
    assert seen["state"] == "RUNNING" and seen["owner_account"] and not seen["token_file"]
    assert alice["vman_netconfs"]["service"]["hostname"] in seen["web"]
    stored = seen["stored_keys"]["ed25519"]
    assert seen["host_key"].split()[:2] == stored.split()[:2]
    # one VM left in the pool, then none
    assert len(demo["steps"]["allocate-alice"]["pool"]["hosts"]) == 1
    assert "pool" not in demo["steps"]["allocate-bob"] or not demo["steps"]["allocate-bob"]["pool"].get("hosts")
    # the root password: set in the guest, kept in the store, shown once into a 0600 file
    shown = glob.glob(str(demo["dir"] / "shown" / "*.root"))
    assert [os.path.basename(p) for p in shown] == [alice["vman_name"] + ".root"]
    assert os.stat(shown[0]).st_mode & 0o777 == 0o600
    password = open(shown[0], encoding="utf-8").read().strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # pylint: disable=deprecated-module  # libcrypt checks the guest's hash
    assert crypt.crypt(password, seen["root_hash"]) == seen["root_hash"]
    assert demo["db"].execute("SELECT COUNT(*) FROM vm_secrets").fetchone()[0] == 0


@pytest.mark.real
def test_queued_ansible_run_quarantine_disable_enable(demo):
    bob = _by_owner(demo["steps"]["allocate-bob"], "bob")["vman_name"]
    alice = _by_owner(demo["steps"]["allocate-alice"], "alice")["vman_name"]
    assert _status(demo["steps"]["request-ansible"])[bob][0] == "ansible"
    assert _status(demo["steps"]["request-again"])[bob][0] == "ansible_queue"
    queued = demo["steps"]["request-again"]
    assert [queued["_meta"]["hostvars"][h]["vman_name"] for h in queued["needs_ansible"]["hosts"]] == [bob]
    assert _status(demo["steps"]["run-ansible"])[bob][0] == "ready"
    runs = [r["event"] for r in demo["db"].execute(
        "SELECT event FROM events WHERE vm = ? AND who = 'run_ansible.yml' ORDER BY id", (bob,))]
    assert runs == ["ansible_done_run_queued", "ansible_done"]
    assert _status(demo["steps"]["quarantine"])[alice][0] == "quarantined"
    assert demo["hooks"]["quarantine"][alice]["web"].startswith("error")
    assert _status(demo["steps"]["unquarantine"])[alice][0] == "ready"
    assert not demo["hooks"]["unquarantine"][alice]["web"].startswith("error")
    assert _status(demo["steps"]["disable"])[bob][0] == "disabled"
    assert demo["hooks"]["disable"][bob]["state"] == "STOPPED"
    assert _status(demo["steps"]["enable"])[bob][0] == "ready"
    assert demo["hooks"]["enable"][bob]["state"] == "RUNNING"


@pytest.mark.real
def test_cancel_and_purge(demo):
    assert sorted(s for s, _o in _status(demo["steps"]["cancel"]).values()) == ["canceled"] * 2
    assert all(seen["state"] == "STOPPED" for seen in demo["hooks"]["cancel"].values())
    # a purge in check mode changes nothing: guests, statuses, host keys, known_hosts
    assert sorted(s for s, _o in _status(demo["steps"]["purge-check"]).values()) == ["canceled"] * 2
    for vm, seen in demo["hooks"]["purge-check"].items():
        assert seen["state"] == "STOPPED" and seen["stored_keys"] == demo["hooks"]["cancel"][vm]["stored_keys"]
        assert len(seen["tokens"]) == 1 and seen["tokens"] == demo["hooks"]["cancel"][vm]["tokens"]
    assert demo["known_hosts"]["purge-check"] == demo["known_hosts"]["cancel"]
    assert sorted(s for s, _o in _status(demo["steps"]["purge"]).values()) == ["purged"] * 2
    assert all(seen["state"] == "absent" for seen in demo["hooks"]["purge"].values())
    if demo["backend"] == "xen":
        # the NFS roots in the dom0 stay until the purge, which removes them
        assert all(seen["nfs_root"] for seen in demo["hooks"]["purge-check"].values())
        assert not any(seen["nfs_root"] for seen in demo["hooks"]["purge"].values())
    free = demo["db"].execute("SELECT COUNT(*) FROM netconfs WHERE in_use_by IS NOT NULL").fetchone()[0]
    assert free == 0
    # the host keys are forgotten: no public key in the store, no entry in known_hosts
    canceled = demo["hooks"]["cancel"]
    blobs = {vm: {key.split()[1] for key in seen["stored_keys"].values()}
             for vm, seen in canceled.items()}
    assert all(len(b) == 3 for b in blobs.values()), canceled
    before = demo["known_hosts"]["cancel"]
    for vm, vm_blobs in blobs.items():
        assert len([line for line in before if line.split()[2] in vm_blobs]) == 3, (vm, before)
    assert all(seen["stored_keys"] == {} for seen in demo["hooks"]["purge"].values())
    assert demo["db"].execute("SELECT COUNT(*) FROM host_keys").fetchone()[0] == 0
    # and so are the install tokens, used or not
    assert all(seen["tokens"] == [] for seen in demo["hooks"]["purge"].values())
    assert demo["db"].execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 0
    after = (demo["dir"] / "known_hosts").read_text().splitlines()
    assert after == demo["known_hosts"]["purge"]
    # the demo's two VMs were its only entries
    assert not [line for line in after if line.strip() and not line.startswith("#")], after
    history = [r["to_status"] for r in demo["db"].execute(
        "SELECT to_status FROM events WHERE vm = (SELECT name FROM vms WHERE owner = 'alice') ORDER BY id")]
    assert history == ["installing", "postinstall", "preallocated", "ready", "quarantined", "ready",
                       "canceled", "purged"]


@pytest.mark.real
def test_no_secret_in_vvv_output_or_inventories(demo):
    texts = {"demo -vvv output": demo["out"]}
    for path in demo["inventory_files"]:
        with open(path, encoding="utf-8") as handle:
            texts[path] = handle.read()
    # really verbose: every command on the controller and every SSH connection is in it
    assert "<127.0.0.1> EXEC" in demo["out"] and "ESTABLISH SSH CONNECTION" in demo["out"]
    # the purge deleted the tokens: their hashes as the hook saw them before
    token_hashes = {t["hash"] for vms in demo["hooks"].values() for seen in vms.values()
                    for t in seen["tokens"]}
    assert len(token_hashes) == 2
    # the detector finds a token wherever a log would put one
    probe = secrets.token_urlsafe(32)
    for context in (f"Bearer {probe}", f'"token": "{probe}"', f"token={probe}&x"):
        assert TOKEN_LIKE.findall(context) == [probe]
    shown = glob.glob(str(demo["dir"] / "shown" / "*.root"))
    password = open(shown[0], encoding="utf-8").read().strip()
    with open(demo["dir"] / "controller_key", encoding="utf-8") as handle:
        controller_key_body = "".join(handle.read().splitlines()[1:3])
    for name, text in texts.items():
        assert "PRIVATE KEY" not in text, name
        assert controller_key_body not in text.replace("\n", ""), name
        assert password not in text, name
        leaked = [c for c in set(TOKEN_LIKE.findall(text)) if hash_token(c) in token_hashes]
        assert leaked == [], name


@pytest.mark.real
def test_live_power_state_in_the_inventory_matches_the_guests(demo):
    """The demo's fleet inventory asks the hypervisor (live_state: lxc-ls on this machine, xl
    over SSH in the dom0): after every step its vman_power_state is what the hook saw."""
    want = {"RUNNING": "running", "STOPPED": "stopped", "absent": "absent"}
    checked = 0
    for step, inv in demo["steps"].items():
        for hv in _vms(inv):
            seen = demo["hooks"].get(step, {}).get(hv.get("vman_name"))
            if "vman_status" not in hv or not seen or seen.get("state") not in want:
                continue
            assert hv["vman_power_state"] == want[seen["state"]], (step, hv["vman_name"], seen["state"])
            assert f"power_{hv['vman_power_state']}" in inv, (step, sorted(inv))
            checked += 1
    # every VM at every step after the netconfs (two VMs, 14 steps)
    assert checked == 2 * (len(demo["steps"]) - 1) == 28, checked
