# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_lxc_setup: validation, then GuestSetup against a fake guest (argv checked), then real LXC."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc, _lxc_setup
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    CommandError, StateError, ValidationError)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result


# ---- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, expected", [("0644", "644"), ("600", "600"), ("0700", "700"),
                                            ("0000", "0")])
def test_normalize_mode(mode, expected):
    assert _lxc_setup.normalize_mode(mode) == expected


@pytest.mark.parametrize("bad", ["644x", "8", "u+x", "06444", None])
def test_normalize_mode_rejects(bad):
    with pytest.raises(ValidationError, match="octal"):
        _lxc_setup.normalize_mode(bad)


@pytest.mark.parametrize("path", ["/etc/hosts", "~root/.ssh/authorized_keys",
                                  "/etc/ansible/facts.d/vman_lxc.fact"])
def test_validate_path_accepts(path):
    assert _lxc_setup.validate_path(path) == path


@pytest.mark.parametrize("bad", ["etc/hosts", "/etc/../shadow", "/etc//hosts", "~Root/x",
                                 "/etc/ho sts", "/etc/hosts\n", "", None, "~root"])
def test_validate_path_rejects(bad):
    with pytest.raises(ValidationError):
        _lxc_setup.validate_path(bad)


def test_build_guest_rejects_with_the_container_and_field():
    cases = [
        ({"files": [{"path": "/x", "state": "present"}]}, "files.content"),
        ({"files": [{"path": "/x", "content": "a", "mode": "rw"}]}, "files.mode"),
        ({"files": [{"path": "/x", "content": "a"}, {"path": "/x", "content": "b"}]},
         "files.path"),
        ({"files": [{"path": "/x", "content": "a", "owner": "Bad"}]}, "users"),
        ({"commands": ["echo hi"]}, "commands"),
        ({"commands": [["echo", "a\nb"]]}, "commands"),
        ({"marker": "relative"}, "marker"),
    ]
    for entry, field in cases:
        with pytest.raises(ValidationError) as err:
            _lxc_setup.build_guest(dict(entry, name="web1.test.com"))
        assert (err.value.obj, err.value.field) == ("web1.test.com", field), entry
    with pytest.raises(ValidationError, match="twice"):
        _lxc_setup.build_guests([{"name": "a"}, {"name": "a"}])


def test_parse_stat():
    assert _lxc_setup.parse_stat("600|root|root|regular file\n") == (
        "600", "root", "root", "regular file")
    with pytest.raises(StateError):
        _lxc_setup.parse_stat("garbage")


# ---- a fake guest behind a real LxcBackend (the executor is faked, the argv are real) --------

class FakeGuest:
    """Fake: a running container's files, answering the argv GuestSetup sends via lxc-attach."""

    def __init__(self, state="RUNNING"):
        self.state = state
        self.files = {"/etc/hosts": ["127.0.0.1 localhost\n", "644", "root", "root"],
                      "/etc/ssh/ssh_host_ed25519_key.pub": ["ssh-ed25519 OLDKEY root@base\n",
                                                            "644", "root", "root"],
                      "/usr/bin/ssh-keygen": ["", "755", "root", "root"]}
        self.dirs = {"/", "/etc", "/etc/ssh", "/root", "/home", "/home/sysadmin", "/usr",
                     "/usr/bin"}
        self.users = {"root": "/root", "sysadmin": "/home/sysadmin"}
        self.calls = []

    def __call__(self, argv, timeout=None, check=True, data=None, secrets=()):
        tool = os.path.basename(argv[0])
        if tool == "lxc-info":
            return Result(argv, 0, self.state + "\n", "")
        assert tool == "lxc-attach", argv
        cmd = argv[argv.index("--") + 1:]
        self.calls.append(cmd)
        rc, out = self._guest(cmd, data)
        if check and rc:
            raise CommandError(argv, rc, out, "failed")
        return Result(argv, rc, out, "")

    def _guest(self, cmd, data):
        name, args = cmd[0], cmd[1:]
        if name == "stat":
            path = args[-1]
            if path in self.files:
                _c, mode, owner, group = self.files[path]
                return 0, f"{mode}|{owner}|{group}|regular file\n"
            if path in self.dirs:
                return 0, "755|root|root|directory\n"
            return 1, ""
        if name == "test":
            return (0 if args[-1] in self.files or args[-1] in self.dirs else 1), ""
        if name == "cat":
            path = args[-1]
            return (0, self.files[path][0]) if path in self.files else (1, "")
        if name == "getent":
            home = self.users.get(args[-1])
            return (0, f"{args[-1]}:x:1000:1000::{home}:/bin/bash\n") if home else (2, "")
        if name == "mkdir":
            self.dirs.add(args[-1])
            return 0, ""
        if name == "tee":
            self.files[args[-1]] = [data, "644", "root", "root"]
            return 0, data
        if name == "chmod":
            self.files[args[-1]][1] = args[0]
            return 0, ""
        if name == "chown":
            if args[-1] in self.files:
                self.files[args[-1]][2:] = args[0].split(":")
            return 0, ""
        if name == "mv":
            self.files[args[-1]] = self.files.pop(args[-2])
            return 0, ""
        if name == "rm":
            self.files.pop(args[-1], None)
            return 0, ""
        if name == "find":
            for path in [p for p in self.files if p.startswith("/etc/ssh/ssh_host_")]:
                del self.files[path]
            return 0, ""
        if name == "ssh-keygen":
            self.files["/etc/ssh/ssh_host_ed25519_key.pub"] = ["ssh-ed25519 NEWKEY root@x\n",
                                                               "644", "root", "root"]
            return 0, ""
        if name in ("systemctl", "touch"):
            return 0, ""
        if name == "false":
            return 1, ""
        raise AssertionError(f"unexpected guest command {cmd}")


def _setup(tmp_path, guest, check_mode=False):
    lxcpath = tmp_path / "lxc"
    (lxcpath / "web1.test.com").mkdir(parents=True, exist_ok=True)
    (lxcpath / "web1.test.com" / "config").write_text("lxc.uts.name = web1.test.com\n")
    backend = _lxc.LxcBackend(lxcpath, executor=guest)
    return _lxc_setup.GuestSetup(backend, check_mode=check_mode)


def _specs(**entry):
    return _lxc_setup.build_guests([dict(entry, name="web1.test.com")])


def test_files_are_written_through_a_temp_file_then_unchanged(tmp_path):
    guest = FakeGuest()
    keys = "ssh-ed25519 AAAA test@vman\n"
    specs = _specs(files=[
        {"path": "/etc/hosts", "content": "127.0.0.1 localhost\n10.5.0.2 web1\n"},
        {"path": "~sysadmin/.ssh/authorized_keys", "content": keys, "mode": "0600",
         "owner": "sysadmin", "dir_mode": "0700"}])
    results, diffs, changed = _setup(tmp_path, guest).converge(specs)
    assert changed and results[0]["actions"] == [
        "write /etc/hosts", "write /home/sysadmin/.ssh/authorized_keys"]
    assert guest.files["/home/sysadmin/.ssh/authorized_keys"] == [keys, "600", "sysadmin",
                                                                  "sysadmin"]
    assert ["mkdir", "-p", "-m", "700", "--", "/home/sysadmin/.ssh"] in guest.calls
    assert ["chown", "sysadmin:sysadmin", "--", "/home/sysadmin/.ssh"] in guest.calls
    tmp = "/home/sysadmin/.ssh/.vman-authorized_keys.tmp"
    assert ["tee", "--", tmp] in guest.calls
    assert ["mv", "-f", "--", tmp, "/home/sysadmin/.ssh/authorized_keys"] in guest.calls
    assert diffs[0]["before"] == "127.0.0.1 localhost\n"
    assert results[0]["ssh_host_keys"] == ["ssh-ed25519 OLDKEY"]

    guest.calls.clear()
    results, diffs, changed = _setup(tmp_path, guest).converge(specs)
    assert not changed and results[0]["actions"] == [] and diffs == []
    assert not [c for c in guest.calls if c[0] in ("tee", "mv", "chmod", "chown", "mkdir")]


def test_mode_only_change_and_absent(tmp_path):
    guest = FakeGuest()
    guest.files["/etc/x"] = ["a\n", "666", "root", "root"]
    results, _d, _c = _setup(tmp_path, guest).converge(_specs(files=[
        {"path": "/etc/x", "content": "a\n"}, {"path": "/etc/hosts", "state": "absent"}]))
    assert results[0]["actions"] == ["set mode/owner of /etc/x", "remove /etc/hosts"]
    assert guest.files["/etc/x"][1] == "644" and "/etc/hosts" not in guest.files


def test_check_mode_reads_but_writes_nothing(tmp_path):
    guest = FakeGuest()
    results, diffs, changed = _setup(tmp_path, guest, check_mode=True).converge(
        _specs(files=[{"path": "/etc/hosts", "content": "new\n"}], commands=[["touch", "/x"]]))
    assert changed and results[0]["actions"] == ["write /etc/hosts", "initial setup"]
    assert diffs[0]["after"] == "new\n"
    assert guest.files["/etc/hosts"][0] == "127.0.0.1 localhost\n"
    assert not [c for c in guest.calls if c[0] in ("tee", "mv", "touch")]


def test_refuses_to_replace_a_directory(tmp_path):
    guest = FakeGuest()
    with pytest.raises(StateError, match="/etc/ssh is a directory"):
        _setup(tmp_path, guest).converge(_specs(files=[{"path": "/etc/ssh", "content": "x"}]))


def test_unknown_user_home_is_an_error(tmp_path):
    with pytest.raises(StateError, match="user 'nobody2' does not exist"):
        _setup(tmp_path, FakeGuest()).converge(
            _specs(files=[{"path": "~nobody2/.ssh/authorized_keys", "content": "k\n"}]))


def test_not_running_fails_but_check_mode_plans(tmp_path):
    specs = _specs(files=[{"path": "/etc/hosts", "content": "x\n"}], regenerate_host_keys=True)
    with pytest.raises(StateError, match="web1.test.com: container is stopped"):
        _setup(tmp_path, FakeGuest("STOPPED")).converge(specs)
    results, _d, changed = _setup(tmp_path, FakeGuest("STOPPED"), check_mode=True).converge(specs)
    assert changed and results[0]["actions"] == ["write /etc/hosts", "initial setup"]
    assert "not running" in results[0]["skipped_reason"]


def test_initial_setup_runs_once_new_host_keys_then_commands(tmp_path):
    guest = FakeGuest()
    specs = _specs(regenerate_host_keys=True, commands=[["touch", "/srv/a"]])
    results, _d, changed = _setup(tmp_path, guest).converge(specs)
    assert changed and results[0]["actions"] == [
        "initial setup", "regenerate ssh host keys", "run touch"]
    order = [c[0] for c in guest.calls]
    assert order.index("find") < order.index("ssh-keygen") < order.index("touch")
    assert ["systemctl", "try-restart", "ssh.service"] in guest.calls
    marker = guest.files[_lxc_setup.DEFAULT_MARKER][0]
    assert marker == _lxc_setup.setup_fingerprint(specs[0]) + "\n"
    assert results[0]["ssh_host_keys"] == ["ssh-ed25519 NEWKEY"]

    guest.calls.clear()
    results, _d, changed = _setup(tmp_path, guest).converge(specs)
    assert not changed and not [c for c in guest.calls if c[0] in ("touch", "ssh-keygen")]


def test_failing_setup_command_fails_and_leaves_no_marker(tmp_path):
    guest = FakeGuest()
    with pytest.raises(CommandError):
        _setup(tmp_path, guest).converge(_specs(commands=[["false"]]))
    assert _lxc_setup.DEFAULT_MARKER not in guest.files


# ---- real LXC --------------------------------------------------------------------------------

@pytest.mark.real
def test_real_files_and_initial_setup_in_a_clone(lxc_testbed, tmp_path):
    backend = _lxc.LxcBackend(lxc_testbed["LXC_PATH"])
    store = _lxc.SettingsStore(tmp_path / "settings")
    manager = _lxc.LxcGuestManager(backend, store, host_id="devhost10.local", production=False)
    name = "t-setup.test.com"
    spec = _lxc.build_specs([{"name": name}], {"profile_type": "overlayfs",
                                               "from_container": lxc_testbed["BASE"],
                                               "bridge": lxc_testbed["BRIDGE"]})
    manager.converge(spec)
    try:
        setup = _lxc_setup.GuestSetup(backend)
        specs = _lxc_setup.build_guests([{
            "name": name, "regenerate_host_keys": True, "commands": [["touch", "/root/ran"]],
            "files": [{"path": "/etc/hosts", "content": "127.0.0.1\tlocalhost\n"},
                      {"path": "~root/.ssh/authorized_keys", "content": "ssh-ed25519 AAAA t@v\n",
                       "mode": "0600", "dir_mode": "0700"}]}])
        t0 = time.monotonic()
        results, _d, changed = setup.converge(specs)
        first_s = time.monotonic() - t0
        assert changed and "regenerate ssh host keys" in results[0]["actions"], results
        assert backend.attach(name, ["cat", "/etc/hosts"]).stdout == "127.0.0.1\tlocalhost\n"
        mode = backend.attach(name, ["stat", "-c", "%a %U", "/root/.ssh/authorized_keys"])
        assert mode.stdout.split() == ["600", "root"]
        assert backend.attach(name, ["test", "-e", "/root/ran"], check=False).rc == 0
        base_key = open(os.path.join(lxc_testbed["LXC_PATH"], lxc_testbed["BASE"], "rootfs",
                                     "etc/ssh/ssh_host_ed25519_key.pub"), encoding="utf-8").read()
        keys = results[0]["ssh_host_keys"]
        assert keys and base_key.split()[1] not in " ".join(keys)
        t1 = time.monotonic()
        results, _d, changed = setup.converge(specs)
        assert not changed and results[0]["ssh_host_keys"] == keys
        print(f"\nlxc_guest_setup: first run {first_s:.1f} s, second {time.monotonic() - t1:.1f} s")
    finally:
        for item in spec:
            item.state = "absent"
        manager.converge(spec)
