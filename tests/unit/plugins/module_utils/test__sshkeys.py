# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_sshkeys against the real ssh-keygen: SSHFP, fingerprints, key files, known_hosts, store."""

from __future__ import annotations

import base64
import os
import stat
import subprocess

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _sshkeys as sk
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

import _named

HOST = "vm1.example.org"
# (our type, ssh-keygen -t, -b)
KINDS = [("rsa", "rsa", "2048"), ("dsa", "dsa", "1024"), ("ecdsa", "ecdsa", "256"),
         ("ecdsa", "ecdsa", "384"), ("ecdsa", "ecdsa", "521"), ("ed25519", "ed25519", None)]


def _keygen(tmp_path, t, bits, name="k"):
    path = tmp_path / f"{name}_{t}_{bits}"
    argv = ["ssh-keygen", "-q", "-t", t, "-N", "", "-C", "c", "-f", str(path)]
    argv += ["-b", bits] if bits else []
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module")
def pubkeys(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keys")
    return [(our, _keygen(tmp, t, bits)) for our, t, bits in KINDS]


@pytest.mark.parametrize("index", range(len(KINDS)), ids=[f"{t}-{b}" for _o, t, b in KINDS])
def test_sshfp_is_byte_identical_to_ssh_keygen_r(pubkeys, index):
    our, path = pubkeys[index]
    pub = str(path) + ".pub"
    real = subprocess.run(["ssh-keygen", "-r", HOST, "-f", pub], check=True,
                          capture_output=True, text=True).stdout
    text = open(pub).read()
    assert "\n".join(sk.sshfp_records(HOST, text, sha1=True)) + "\n" == real
    sha256_only = [line for line in real.splitlines() if f" {sk.KEY_TYPES[our][0]} 2 " in line]
    assert sk.sshfp_records(HOST, text) == sha256_only and len(sha256_only) == 1


@pytest.mark.parametrize("index", range(len(KINDS)), ids=[f"{t}-{b}" for _o, t, b in KINDS])
def test_fingerprints_match_ssh_keygen_l(pubkeys, index):
    _our, path = pubkeys[index]
    pub = str(path) + ".pub"
    blob = sk.parse_public_key(open(pub).read())[2]
    for digest in ("sha256", "sha1"):
        out = subprocess.run(["ssh-keygen", "-l", "-E", digest, "-f", pub], check=True,
                             capture_output=True, text=True).stdout.split()
        assert sk.fingerprint(blob, digest) == out[1]


def test_parse_public_key_rejects_garbage():
    with pytest.raises(ValidationError, match="not an OpenSSH public key"):
        sk.parse_public_key("ssh-ed25519")
    with pytest.raises(ValidationError, match="host key type"):
        sk.parse_public_key("ssh-foo AAAA")
    with pytest.raises(ValidationError, match="base64"):
        sk.parse_public_key("ssh-ed25519 !!!!")
    # a valid rsa blob labelled ed25519
    blob = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"
    with pytest.raises(ValidationError, match="another algorithm"):
        sk.parse_public_key(f"ssh-ed25519 {blob}")


def test_validation_of_hostname_and_ips():
    assert sk.validate_hostname("a-b.example.org") == "a-b.example.org"
    for bad in ("-a.example", "a b", "a;rm", "", "x" * 64 + ".org"):
        with pytest.raises(ValidationError, match="hostname"):
            sk.validate_hostname(bad)
    assert sk.validate_ips(["2001:DB8::0:1", "192.0.2.1"]) == ["2001:db8::1", "192.0.2.1"]
    with pytest.raises(ValidationError, match="ip"):
        sk.validate_ips(["192.0.2.300"])


def test_merge_known_hosts_replaces_in_place_and_is_idempotent():
    existing = ("# comment\nother.example ssh-ed25519 AAAA1\n"
                f"{HOST},192.0.2.1 ssh-rsa OLD\n192.0.2.1 ssh-ed25519 OLD2\n"
                "|1|hashed= ssh-ed25519 AAAA3\n@cert-authority *.example.org ssh-ed25519 CA\n"
                "last.example ssh-ed25519 AAAA4\n")
    lines = [f"{HOST},192.0.2.1 ssh-ed25519 NEW"]
    merged = sk.merge_known_hosts(existing, [HOST, "192.0.2.1"], lines)
    assert merged == ("# comment\nother.example ssh-ed25519 AAAA1\n"
                      f"{HOST},192.0.2.1 ssh-ed25519 NEW\n"
                      "|1|hashed= ssh-ed25519 AAAA3\n@cert-authority *.example.org ssh-ed25519 CA\n"
                      "last.example ssh-ed25519 AAAA4\n")
    assert sk.merge_known_hosts(merged, [HOST, "192.0.2.1"], lines) == merged
    assert sk.merge_known_hosts("", [HOST], lines) == lines[0] + "\n"
    assert sk.merge_known_hosts("a.example ssh-rsa X", [HOST], lines) == \
        "a.example ssh-rsa X\n" + lines[0] + "\n"


def test_drop_known_hosts_entries_by_name_and_by_key():
    existing = ("# comment\nother.example ssh-ed25519 AAAA1\n"
                f"{HOST},192.0.2.1 ssh-rsa OLD\n192.0.2.1 ssh-ed25519 OLD2\n"
                "|1|hashed= ssh-ed25519 MINE\nformer.example ssh-rsa MINE2\n"
                "@cert-authority *.example.org ssh-ed25519 MINE\nlast.example ssh-ed25519 AAAA4")
    text, removed = sk.drop_known_hosts_entries(existing, [HOST, "192.0.2.1"],
                                                ["ssh-ed25519 MINE root@x", "ssh-rsa MINE2"])
    assert removed == [f"{HOST},192.0.2.1 ssh-rsa OLD", "192.0.2.1 ssh-ed25519 OLD2",
                       "|1|hashed= ssh-ed25519 MINE", "former.example ssh-rsa MINE2"]
    assert text == ("# comment\nother.example ssh-ed25519 AAAA1\n"
                    "@cert-authority *.example.org ssh-ed25519 MINE\nlast.example ssh-ed25519 AAAA4\n")
    # nothing of the VM left: the text comes back as it was (no newline added)
    assert sk.drop_known_hosts_entries(existing.replace(HOST, "x.example").replace("192.0.2.1", "y"),
                                       [HOST, "192.0.2.1"], [])[1] == []
    assert sk.drop_known_hosts_entries("a.example ssh-rsa X", [HOST], []) == ("a.example ssh-rsa X", [])
    assert sk.drop_known_hosts_entries(f"{HOST} ssh-rsa X\n", [HOST], []) == ("", [f"{HOST} ssh-rsa X"])


def _manager(dest, **kw):
    return sk.HostKeys(HOST, dest=str(dest) if dest else None, rsa_bits=2048, **kw)


def test_generate_then_reuse(tmp_path):
    dest = tmp_path / "keys"
    keys, changed = _manager(dest).ensure()
    assert changed and [k["type"] for k in keys] == ["rsa", "ecdsa", "ed25519"]
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    for key in keys:
        assert key["generated"] and "private_key" not in key
        assert key["path"] == str(dest / f"ssh_host_{key['type']}_key")
        assert stat.S_IMODE(os.stat(key["path"]).st_mode) == 0o600
        assert open(key["path"] + ".pub").read().split()[:2] == key["public_key"].split()[:2]
        assert key["public_key"].endswith(f"root@{HOST}")
    again, changed2 = _manager(dest).ensure(want_private=True)
    assert not changed2
    assert [k["public_key"] for k in again] == [k["public_key"] for k in keys]
    assert not any(k["generated"] for k in again)
    assert again[2]["private_key"] == open(keys[2]["path"]).read()
    assert "PRIVATE KEY" in again[2]["private_key"]


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "keys"
    keys, changed = _manager(dest).ensure(check=True)
    assert changed and not dest.exists()
    assert all(k["generated"] and k["public_key"] is None for k in keys)


def test_repairs_mode_and_missing_pub_without_regenerating(tmp_path):
    dest = tmp_path / "keys"
    keys = _manager(dest, key_types=["ed25519"]).ensure()[0]
    path = keys[0]["path"]
    os.chmod(path, 0o644)
    os.unlink(path + ".pub")
    same, changed = _manager(dest, key_types=["ed25519"]).ensure(check=True)
    assert changed and not os.path.exists(path + ".pub")
    same, changed = _manager(dest, key_types=["ed25519"]).ensure()
    assert changed and not same[0]["generated"]
    assert same[0]["public_key"].split()[:2] == keys[0]["public_key"].split()[:2]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and os.path.exists(path + ".pub")


def test_wrong_key_in_file_is_an_error(tmp_path):
    dest = tmp_path / "keys"
    dest.mkdir()
    src = _keygen(tmp_path, "ed25519", None)
    (dest / "ssh_host_rsa_key").write_text(src.read_text())
    with pytest.raises(ValidationError, match="holds a ed25519 key"):
        _manager(dest, key_types=["rsa"]).ensure()


def test_without_dest_keys_live_only_in_the_result(tmp_path):
    keys, changed = _manager(None, key_types=["ed25519", "dsa"]).ensure(want_private=True)
    assert changed and all(k["path"] is None and "PRIVATE KEY" in k["private_key"] for k in keys)
    assert [sk.parse_public_key(k["public_key"])[0] for k in keys] == ["ed25519", "dsa"]


def test_bad_key_type():
    with pytest.raises(ValidationError, match="key_types"):
        sk.HostKeys(HOST, key_types=["rsa1"])


def test_update_known_hosts_real_ssh_keygen_finds_it(tmp_path):
    keys = _manager(tmp_path / "keys").ensure()[0]
    kh = tmp_path / "ssh" / "known_hosts"
    pubs = [k["public_key"] for k in keys]
    changed, before, after = sk.update_known_hosts(str(kh), [HOST, "192.0.2.5"], pubs, check=True)
    assert changed and before == "" and not kh.exists()
    changed, _b, after = sk.update_known_hosts(str(kh), [HOST, "192.0.2.5"], pubs)
    assert changed and kh.read_text() == after and len(after.splitlines()) == 3
    assert sk.update_known_hosts(str(kh), [HOST, "192.0.2.5"], pubs)[0] is False
    for name in (HOST, "192.0.2.5"):
        found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(kh)], capture_output=True,
                               text=True, check=True).stdout
        assert keys[2]["public_key"].split()[1] in found


def test_record_in_store(tmp_path):
    keys = _manager(tmp_path / "keys").ensure()[0]
    with open_store(f"sqlite://{tmp_path}/lc.db") as store:
        assert sk.record_in_store(store, "vm1", keys, check=True) is True
        assert store.host_keys("vm1") == []
        assert sk.record_in_store(store, "vm1", keys) is True
        rows = store.host_keys("vm1")
        assert {r["key_type"]: r["fp_sha256"] for r in rows} == \
            {k["type"]: k["fingerprint_sha256"] for k in keys}
        assert not any("PRIVATE" in str(r) for r in rows)
        assert sk.record_in_store(store, "vm1", keys) is False


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    if not _named.NAMED:
        pytest.skip("BIND named is not installed")
    proc, port, secret = _named.start_named(tmp_path_factory.mktemp("named"))
    yield port, secret
    _named.stop_named(proc)


@pytest.mark.real
def test_sshfp_published_by_rfc2136_to_a_real_named(named, tmp_path):
    port, secret = named
    host = f"vm1.{_named.ZONE}"
    keys = _manager(tmp_path / "keys").ensure()[0]
    lines = [rec for k in keys for rec in sk.sshfp_records(host, k["public_key"], sha1=True)]
    pub = sk.SshfpPublisher("127.0.0.1", _named.ZONE, port=port, key_name=_named.KEY_NAME,
                            key_secret=secret, ttl=600)
    assert pub.publish(host, lines, check=True) == (True, [])
    assert pub.current(host) == set()
    changed, before = pub.publish(host, lines)
    assert changed and before == []
    assert pub.current(host) == {line.split(" IN SSHFP ")[1] for line in lines}
    assert pub.publish(host, lines)[0] is False
    # fewer records (SHA-256 only) replace the RRset, they are not added to it
    sha256 = [line for line in lines if line.split(" IN SSHFP ")[1].split()[1] == "2"]
    assert pub.publish(host, sha256)[0] is True
    assert pub.current(host) == {line.split(" IN SSHFP ")[1] for line in sha256}
    # no record wanted: the RRset is deleted, once
    assert pub.publish(host, [], check=True)[0] is True and pub.current(host)
    changed, before = pub.publish(host, [])
    assert changed and sorted(before) == sorted(pub_text.split(" IN SSHFP ")[1] for pub_text in sha256)
    assert pub.current(host) == set()
    assert pub.publish(host, []) == (False, [])


@pytest.mark.real
def test_rfc2136_refused_without_the_right_key(named):
    port, _secret = named
    host = f"vm2.{_named.ZONE}"
    line = f"{host} IN SSHFP 4 2 " + "ab" * 32
    wrong = sk.SshfpPublisher("127.0.0.1", _named.ZONE, port=port, key_name=_named.KEY_NAME,
                              key_secret=base64.b64encode(b"x" * 32).decode())
    with pytest.raises(StateError, match="NOTAUTH|REFUSED|failed"):
        wrong.publish(host, [line])
    unsigned = sk.SshfpPublisher("127.0.0.1", _named.ZONE, port=port)
    with pytest.raises(StateError, match="REFUSED"):
        unsigned.publish(host, [line])
    with pytest.raises(ValidationError, match="not inside zone"):
        unsigned.publish("vm.other.test", [line])


def test_forget_known_hosts_files_and_store_then_nothing_left(tmp_path):
    dest = tmp_path / "keys"
    keys = _manager(dest).ensure()[0]
    kh = tmp_path / "known_hosts"
    # a former address and a hashed entry of the VM, and another host's entry
    kh.write_text("other.example ssh-ed25519 AAAAC3NzaOTHER\n")
    sk.update_known_hosts(str(kh), [HOST, "192.0.2.5"], [k["public_key"] for k in keys])
    sk.update_known_hosts(str(kh), ["198.51.100.9"], [keys[0]["public_key"]])
    os.chmod(kh, 0o600)
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as store:
        sk.record_in_store(store, "vm1", keys)
        sk.record_in_store(store, "vm2", keys[:1])
        before_text = kh.read_text()
        removed, before, after = sk.forget("vm1", [HOST], str(kh), str(dest), store, check=True)
        assert kh.read_text() == before_text == before and dest.is_dir()
        assert len(store.host_keys("vm1")) == 3
        assert len(removed["known_hosts"]) == 4 and removed["store"] == ["ecdsa", "ed25519", "rsa"]
        assert str(dest) in removed["files"] and len(removed["files"]) == 7   # 3 keys x 2 + dir
        assert after == "other.example ssh-ed25519 AAAAC3NzaOTHER\n"
        assert sk.forget("vm1", [HOST], str(kh), str(dest), store) == (removed, before, after)
        assert kh.read_text() == after and stat.S_IMODE(os.stat(kh).st_mode) == 0o600
        assert not dest.exists() and store.host_keys("vm1") == []
        assert len(store.host_keys("vm2")) == 1                      # another VM's row stays
        again = sk.forget("vm1", [HOST], str(kh), str(dest), store)
        assert not any(again[0].values()) and kh.read_text() == after
    # ssh-keygen agrees: nothing left for the VM's name nor its former address
    for name in (HOST, "192.0.2.5", "198.51.100.9"):
        assert subprocess.run(["ssh-keygen", "-F", name, "-f", str(kh)], capture_output=True,
                              text=True, check=False).stdout == ""


def test_remove_key_files_keeps_a_dest_holding_other_files(tmp_path):
    dest = tmp_path / "keys"
    _manager(dest).ensure()
    (dest / "notes.txt").write_text("mine")
    removed = sk.remove_key_files(str(dest))
    assert len(removed) == 6 and sorted(os.listdir(dest)) == ["notes.txt"]
    assert sk.remove_key_files(str(dest)) == [] and sk.remove_key_files(str(tmp_path / "none")) == []
