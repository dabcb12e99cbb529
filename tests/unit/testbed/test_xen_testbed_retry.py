# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Testbed.ssh retries a failed connection, and only that (FAKE ssh: a shell script on PATH).

The real testbed cannot be made to time out on demand, so these tests put a fake ``ssh`` first
on PATH that fails the first N calls the way OpenSSH does when dom0's sshd is too slow for the
banner exchange, then runs the command. They prove the retry loop, its bound, that a failing
remote command is never re-run, and the message when the testbed is really gone.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
from ansible_collections.vman.lifecycle.tests.testbed import xen_testbed as tb

FAKE_SSH = """#!/bin/sh
# Count calls; fail the first $FAIL_TIMES with a connection failure (exit 255).
n=$(cat "$COUNTER" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$COUNTER"
if [ "$n" -le "$FAIL_TIMES" ]; then
  echo "Connection timed out during banner exchange" >&2
  echo "Connection to 127.0.0.1 port 2222 timed out" >&2
  exit 255
fi
# The remote command is the last argument; "fail" exits 3 with an ordinary error.
eval "last=\\${$#}"
case "$last" in
  fail) echo "boom" >&2; exit 3 ;;
  *) echo "ran: $last" ;;
esac
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("ssh", "scp"):
        script = bindir / name
        script.write_text(FAKE_SSH)
        script.chmod(0o755)
    counter = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("COUNTER", str(counter))
    state = tmp_path / "state"
    state.mkdir()
    (state / "qemu.pid").write_text(f"{os.getpid()}\n")   # a pid that is alive
    testbed = tb.Testbed(state, owned=False)
    slept = []

    def calls():
        return int(counter.read_text()) if counter.exists() else 0

    def ssh(argv, fail_times, **kwargs):
        monkeypatch.setenv("FAIL_TIMES", str(fail_times))
        return testbed._connect(testbed.ssh_argv(argv), sleep=slept.append, **kwargs)

    return ssh, calls, slept, testbed, state


def test_banner_timeouts_are_retried_with_backoff_then_the_command_runs(fake):
    ssh, calls, slept, _tb, _state = fake
    result = ssh(["echo", "hi"], fail_times=3)
    assert result.rc == 0 and "ran: echo hi" in result.stdout
    assert calls() == 4
    assert slept == list(tb.CONNECT_BACKOFF[:3])


def test_a_failing_remote_command_is_not_rerun(fake):
    ssh, calls, slept, _tb, _state = fake
    with pytest.raises(CommandError) as err:
        ssh(["fail"], fail_times=0)
    assert err.value.rc == 3 and "boom" in err.value.stderr
    assert calls() == 1 and slept == []


def test_check_false_returns_the_remote_exit_code(fake):
    ssh, calls, _slept, _tb, _state = fake
    assert ssh(["fail"], fail_times=0, check=False).rc == 3
    assert calls() == 1


def test_a_testbed_that_never_answers_fails_bounded_with_a_clear_message(fake):
    ssh, calls, slept, _tb, state = fake
    with pytest.raises(tb.TestbedError) as err:
        ssh(["true"], fail_times=99)
    assert calls() == tb.CONNECT_ATTEMPTS
    assert len(slept) == tb.CONNECT_ATTEMPTS - 1
    text = str(err.value)
    assert f"{tb.CONNECT_ATTEMPTS} attempts" in text and "banner exchange" in text
    assert "still runs" in text and str(state / "serial.log") in text


def test_a_dead_qemu_is_named(fake):
    ssh, _calls, _slept, _tb, state = fake
    (state / "qemu.pid").write_text("999999999\n")
    with pytest.raises(tb.TestbedError, match="is gone"):
        ssh(["true"], fail_times=99)
    (state / "qemu.pid").unlink()
    with pytest.raises(tb.TestbedError, match="no QEMU pid file"):
        ssh(["true"], fail_times=99)


def test_connect_failed_needs_exit_255_and_a_connection_message():
    result = tb.Result(["ssh"], 255, "", "kex_exchange_identification: read: Connection reset by peer")
    assert tb.connect_failed(result)
    assert not tb.connect_failed(tb.Result(["ssh"], 1, "", "Connection refused"))
    assert not tb.connect_failed(tb.Result(["ssh"], 255, "", "Permission denied (publickey)."))
