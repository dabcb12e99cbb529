# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install seed: rendering, writing below a guest root without following symlinks, and the
callback client against the real listener (loopback HTTP, real SQLite store)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _callback as cb
from ansible_collections.vman.lifecycle.plugins.module_utils import _install_seed as seed
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

TOKEN = "A" * 20 + "_-b" * 5
KEY = {"type": "ed25519", "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"
       "-----END OPENSSH PRIVATE KEY-----\n", "public_key": "ssh-ed25519 AAAAC3Nz root@x",
       "fingerprint_sha256": "SHA256:ignored"}
URL = "http://10.5.0.1:8765/callback/vm1"


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_seed_files_parts_and_modes():
    files = {f.path: f for f in seed.seed_files("vm01.example.org", URL, TOKEN, [KEY],
                                                ["ssh-ed25519 AAAA controller"])}
    assert files["etc/hostname"].text == "vm01\n"
    assert files[seed.TOKEN_PATH].mode == 0o600 and files[seed.TOKEN_PATH].secret
    assert files[seed.URL_PATH].text == URL + "\n"
    assert files[seed.WANTS_PATH].link == "/" + seed.UNIT_PATH
    assert files["etc/ssh/ssh_host_ed25519_key"].mode == 0o600
    assert files["etc/ssh/ssh_host_ed25519_key.pub"].text == KEY["public_key"] + "\n"
    assert files["root/.ssh/authorized_keys"].mode == 0o600
    assert seed.seed_files() == []
    # the token is in exactly one file
    assert [p for p, f in files.items() if f.text and TOKEN in f.text] == [seed.TOKEN_PATH]


@pytest.mark.parametrize("kwargs,field", [
    ({"token": TOKEN}, "callback_url"),
    ({"token": "short", "callback_url": URL}, "token"),
    ({"token": TOKEN, "callback_url": "ftp://x/callback/vm1"}, "callback_url"),
    ({"token": TOKEN, "callback_url": URL + "?token=x"}, "callback_url"),
    ({"hostname": "Bad_Host"}, "hostname"),
    ({"host_keys": [dict(KEY, type="xmss")]}, "host_keys.type"),
    ({"host_keys": [dict(KEY, private_key="ssh-ed25519 AAAA")]}, "host_keys"),
    ({"authorized_keys": ["a\nb"]}, "authorized_keys"),
])
def test_seed_files_refuses_bad_input(kwargs, field):
    with pytest.raises(ValidationError) as err:
        seed.seed_files(**kwargs)
    assert err.value.field == field
    assert TOKEN not in str(err.value)


def test_apply_writes_then_nothing_changes(tmp_path):
    files = seed.seed_files("vm01.example.org", URL, TOKEN, [KEY], ["ssh-ed25519 AAAA c"])
    assert seed.apply_seed(str(tmp_path), files, check=True) == [f.path for f in files]
    assert os.listdir(tmp_path) == []
    assert sorted(seed.apply_seed(str(tmp_path), files)) == sorted(f.path for f in files)
    assert _mode(tmp_path / seed.TOKEN_PATH) == 0o600
    assert _mode(tmp_path / "etc/vman") == 0o700 and _mode(tmp_path / "root/.ssh") == 0o700
    assert _mode(tmp_path / seed.SCRIPT_PATH) == 0o755
    assert os.readlink(tmp_path / seed.WANTS_PATH) == "/" + seed.UNIT_PATH
    assert seed.apply_seed(str(tmp_path), files) == []
    os.chmod(tmp_path / seed.TOKEN_PATH, 0o644)
    assert seed.apply_seed(str(tmp_path), files) == [seed.TOKEN_PATH]
    assert _mode(tmp_path / seed.TOKEN_PATH) == 0o600


def test_symlinks_in_the_guest_are_never_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)
    with pytest.raises(StateError, match="symlinks in the guest are never followed"):
        seed.apply_seed(str(root), seed.seed_files("vm01"))
    assert os.listdir(outside) == []
    # a symlink in the place of the file itself is replaced, its target untouched
    (root / "etc").unlink()
    (root / "etc").mkdir()
    victim = outside / "victim"
    victim.write_text("keep\n")
    (root / "etc" / "hostname").symlink_to(victim)
    assert seed.apply_seed(str(root), seed.seed_files("vm01")) == ["etc/hostname"]
    assert victim.read_text() == "keep\n"
    assert not os.path.islink(root / "etc" / "hostname")
    assert (root / "etc" / "hostname").read_text() == "vm01\n"


def test_callback_client_against_the_real_listener(tmp_path):
    """The client the seed installs, run as a process, posts its token to the listener; the VM
    moves to postinstall and the client deletes the token."""
    with open_store(f"sqlite://{tmp_path}/lc.db") as store:
        store.create_vms([{"name": "vm1", "org": "acme", "flavor": "small", "backend": "lxc"}])
        token, _exp = cb.issue_token(store, "vm1", ["127.0.0.1"], 600)
        listener = cb.Listener(store, ["vm1"], bind="127.0.0.1", port=0)
        procs = []

        def on_ready(addr):
            # the listener is bound: seed a tree with its URL and start the client there
            files = seed.seed_files(None, f"http://127.0.0.1:{addr[1]}/callback/vm1", token)
            seed.apply_seed(str(tmp_path), files)
            script = (tmp_path / seed.SCRIPT_PATH).read_text()
            # the same client, pointed at this tree instead of the guest's /
            script = script.replace('"/etc/vman/', f'"{tmp_path}/etc/vman/')
            procs.append(subprocess.Popen([sys.executable, "-c", script], text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))

        result = {"pending": listener.wait(60, on_ready=on_ready)}
        stdout, stderr = procs[0].communicate(timeout=30)
        assert procs[0].returncode == 0, stderr
        assert ": 200" in stdout and token not in stdout + stderr
        assert result["pending"] == []
        assert not (tmp_path / seed.TOKEN_PATH).exists()
        assert store.get_vm("vm1")["status"] == "postinstall"
        assert [e["code"] for e in listener.log] == [200]
