# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ssh_host_keys run by ansible-playbook with the real ssh-keygen and a SQLite store."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play

HOST = "mws-1.example.org"

_SPEC = importlib.util.spec_from_file_location(
    "_named", os.path.join(os.path.dirname(__file__), "..", "module_utils", "_named.py"))
_named = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_named)


def _task(tmp_path, **extra):
    args = {"vm": "vm1", "hostname": HOST, "ip": ["192.0.2.7", "2001:db8::7"],
            "dest": str(tmp_path / "keys"), "known_hosts": str(tmp_path / "known_hosts"),
            "record_in_store": True, "store": f"sqlite://{tmp_path}/lc.db", "rsa_bits": 2048}
    args.update(extra)
    return {k: v for k, v in args.items() if v is not None}


def test_check_then_generate_then_idempotent(tmp_path):
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path), "register": "dry"},
    ], check=True, name="dry")
    assert got["dry"]["changed"] is True and not (tmp_path / "keys").exists()
    assert not (tmp_path / "known_hosts").exists()

    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, sshfp_sha1=True), "register": "first"},
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, sshfp_sha1=True), "register": "second"},
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path), "register": "third"},
    ], diff=True)
    first, second = got["first"], got["second"]
    assert first["changed"] is True and second["changed"] is False, second
    assert got["third"]["changed"] is False
    assert [k["public_key"] for k in first["keys"]] == [k["public_key"] for k in second["keys"]]
    assert all("private_key" not in k for k in first["keys"])
    assert not any("PRIVATE KEY" in str(v) for v in first.values())
    # the module's SSHFP lines are what ssh-keygen -r prints for the written keys
    real = []
    for key in first["keys"]:
        real += subprocess.run(["ssh-keygen", "-r", HOST, "-f", key["path"] + ".pub"], check=True,
                               capture_output=True, text=True).stdout.splitlines()
    assert first["sshfp"] == real
    assert got["third"]["sshfp"] == [line for line in real if " 2 " in line.split("SSHFP")[1][:5]]
    kh = (tmp_path / "known_hosts").read_text()
    assert kh.splitlines() == first["known_hosts"]
    assert kh.startswith(f"{HOST},192.0.2.7,2001:db8::7 ssh-rsa ")
    assert "diff" not in second or second["diff"]["before"] == second["diff"]["after"]
    with open_store(f"sqlite://{tmp_path}/lc.db") as store:
        rows = store.host_keys("vm1")
    assert sorted(r["key_type"] for r in rows) == ["ecdsa", "ed25519", "rsa"]
    assert {r["key_type"]: r["fp_sha256"] for r in rows} == \
        {k["type"]: k["fingerprint_sha256"] for k in first["keys"]}


def test_absent_forgets_known_hosts_store_and_files_check_mode_and_idempotent(tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("other.example ssh-ed25519 AAAAC3NzaOTHER\n")
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path), "register": "made"},
        # the store's keys also find an entry under an address the VM had before
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, ip=["198.51.100.9"], dest=None,
                                               hostname="old.example.org", record_in_store=False,
                                               return_private=True),
         "no_log": True, "register": "unrelated"},
    ], name="made")
    with_vm = kh.read_text()
    assert len(with_vm.splitlines()) == 7 and (tmp_path / "keys").is_dir()
    absent = _task(tmp_path, state="absent", hostname=None, ip=None, rsa_bits=None)
    # an entry of the VM's key under a former address (written by hand here)
    rsa = next(k["public_key"] for k in got["made"]["keys"] if k["type"] == "rsa")
    kh.write_text(with_vm + "198.51.100.77 " + " ".join(rsa.split()[:2]) + "\n")
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": absent, "register": "dry"},
    ], check=True, diff=True, name="dry")
    dry = got["dry"]
    assert dry["changed"] is True and len(dry["removed"]["known_hosts"]) == 4
    assert dry["removed"]["store"] == ["ecdsa", "ed25519", "rsa"] and len(dry["removed"]["files"]) == 7
    assert "198.51.100.77" in dry["diff"]["before"] and "198.51.100.77" not in dry["diff"]["after"]
    assert (tmp_path / "keys").is_dir() and "198.51.100.77" in kh.read_text()
    with open_store(f"sqlite://{tmp_path}/lc.db") as store:
        assert len(store.host_keys("vm1")) == 3
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": absent, "register": "first"},
        {"vman.lifecycle.ssh_host_keys": absent, "register": "second"},
    ], name="absent")
    assert got["first"]["changed"] is True and got["first"]["removed"] == dry["removed"]
    assert got["second"]["changed"] is False
    assert not any(got["second"]["removed"].values())
    assert not (tmp_path / "keys").exists()
    left = kh.read_text().splitlines()
    # what is left: the other host and the unrelated key under old.example.org (not the VM's)
    assert left[0] == "other.example ssh-ed25519 AAAAC3NzaOTHER"
    assert len(left) == 4 and all(line.startswith("old.example.org,198.51.100.9 ") for line in left[1:])
    with open_store(f"sqlite://{tmp_path}/lc.db") as store:
        assert store.host_keys("vm1") == []
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": dict(absent, dns_server="127.0.0.1", dns_zone="example.org"),
         "register": "nohost"},
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, hostname=None), "register": "present"},
    ], name="bad")
    assert got["nohost"]["failed"] and "hostname" in got["nohost"]["msg"]
    assert got["present"]["failed"] and "hostname" in got["present"]["msg"]


def test_return_private_needs_no_log_and_never_reaches_the_output(tmp_path):
    args = _task(tmp_path, dest=None, known_hosts=None, record_in_store=False, store=None,
                 return_private=True, key_types=["ed25519", "dsa"])
    got, out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": args, "register": "loud"},
        {"vman.lifecycle.ssh_host_keys": args, "register": "quiet", "no_log": True},
    ], env={"ANSIBLE_VERBOSITY": "3"})
    assert got["loud"]["failed"] is True and "no_log" in got["loud"]["msg"]
    quiet = got["quiet"]
    assert quiet["changed"] is True and "DSA" in " ".join(quiet["warnings"])
    privates = [k["private_key"] for k in quiet["keys"]]
    assert len(privates) == 2 and all("PRIVATE KEY" in p for p in privates)
    assert "ESTABLISH LOCAL CONNECTION" in out  # the output really is -vvv
    assert "PRIVATE KEY" not in out
    for private in privates:
        body = private.splitlines()[1]
        assert body not in out
    assert all(k["path"] is None for k in quiet["keys"])


def test_bad_input_fails_clearly(tmp_path):
    got, _out = run_play(tmp_path, [
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, hostname="bad host"), "register": "h"},
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, ip=["10.0.0.300"]), "register": "i"},
        {"vman.lifecycle.ssh_host_keys": _task(tmp_path, dest=None), "register": "d"},
    ])
    assert got["h"]["failed"] and "hostname" in got["h"]["msg"] and got["h"]["field"] == "hostname"
    assert got["i"]["failed"] and "10.0.0.300" in got["i"]["msg"]
    assert got["d"]["failed"] and "dest" in got["d"]["msg"]
    assert not os.path.exists(tmp_path / "keys")


@pytest.mark.real
@pytest.mark.skipif(not _named.NAMED, reason="BIND named is not installed")
def test_publishes_sshfp_to_a_real_named(tmp_path):
    proc, port, secret = _named.start_named(tmp_path)
    try:
        host = f"vm9.{_named.ZONE}"
        args = _task(tmp_path, hostname=host, known_hosts=None, record_in_store=False, store=None,
                     dns_server="127.0.0.1", dns_port=port, dns_zone=_named.ZONE, dns_ttl=600,
                     tsig_key_name=_named.KEY_NAME, tsig_key_secret=secret)
        got, out = run_play(tmp_path, [
            {"vman.lifecycle.ssh_host_keys": args, "register": "dry"},
        ], check=True, name="dry")
        assert got["dry"]["changed"] and "dns_before" not in got["dry"]  # no keys yet: not asked
        got, out = run_play(tmp_path, [
            {"vman.lifecycle.ssh_host_keys": args, "register": "first"},
            {"vman.lifecycle.ssh_host_keys": args, "register": "second"},
            {"vman.lifecycle.ssh_host_keys": dict(args, tsig_key_secret="bm90LXRoZS1rZXk="),
             "register": "wrong"},
        ], env={"ANSIBLE_VERBOSITY": "3"})
        first, second = got["first"], got["second"]
        assert first["changed"] and first["dns_before"] == []
        assert second["changed"] is False
        assert sorted(second["dns_before"]) == sorted(line.split(" IN SSHFP ")[1] for line in first["sshfp"])
        assert len(second["dns_before"]) == 3
        assert got["wrong"]["failed"] and "SSHFP" in got["wrong"]["msg"]
        assert secret not in out
        got, out = run_play(tmp_path, [
            {"vman.lifecycle.ssh_host_keys": dict(args, state="absent"), "register": "gone"},
            {"vman.lifecycle.ssh_host_keys": dict(args, state="absent"), "register": "again"},
        ], name="gone")
        assert got["gone"]["changed"] and sorted(got["gone"]["removed"]["dns"]) == sorted(second["dns_before"])
        assert got["again"]["changed"] is False and got["again"]["removed"]["dns"] == []
    finally:
        _named.stop_named(proc)
