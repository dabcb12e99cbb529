# -*- coding: utf-8 -*-
"""Tests of _runner: argv building, real subprocesses, redaction, timeouts."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _runner
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError


def test_formatters_build_argv():
    tool = _runner.Runner(["tool"], {"dry": _runner.fmt_flag("-N"), "opt": _runner.fmt_opt("--name"),
                                     "kv": _runner.fmt_opt("--x", joined=True),
                                     "rep": _runner.fmt_repeat("-v"), "pos": _runner.fmt_positional()})
    assert tool.argv(["dry", "opt", "kv", "rep", "pos"], dry=True, opt="a b", kv=3, rep=[1, 2], pos=["p", "q"]) == [
        "tool", "-N", "--name", "a b", "--x=3", "-v", "1", "-v", "2", "p", "q"]
    assert tool.argv(["dry", "opt", "pos"], dry=False) == ["tool"]
    with pytest.raises(KeyError):
        tool.argv(["nope"])


def test_run_real_process_no_shell():
    res = _runner.run([sys.executable, "-c", "import sys; print(sys.argv[1])", "$(echo hi); rm -rf /"])
    assert res.rc == 0 and res.stdout.strip() == "$(echo hi); rm -rf /"


def test_run_refuses_string():
    with pytest.raises(TypeError):
        _runner.run("echo hi")


def test_failure_redacts_secrets():
    with pytest.raises(CommandError) as err:
        _runner.run([sys.executable, "-c", "import sys; sys.stderr.write('bad token ' + sys.argv[1]); sys.exit(3)",
                     "tok-SECRET-123"], secrets=["tok-SECRET-123"])
    text = str(err.value) + repr(err.value.to_result())
    assert "tok-SECRET-123" not in text and "********" in text and err.value.rc == 3


def test_missing_binary_is_rc_127():
    with pytest.raises(CommandError) as err:
        _runner.run(["/nonexistent/binary-vman"])
    assert err.value.rc == 127


def test_timeout_ends():
    with pytest.raises(CommandError, match="timed out after 0.5 s"):
        _runner.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_check_false_returns_rc():
    assert _runner.run([sys.executable, "-c", "raise SystemExit(4)"], check=False).rc == 4


def test_commands_run_in_the_c_locale_whatever_the_caller_set(monkeypatch):
    """Parsed output must not depend on the operator's locale: a real ``env`` shows LC_ALL=C
    and LANG=C even when the module runs under a German locale, and ``env=`` still wins."""
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")
    lines = _runner.run(["env"]).stdout.splitlines()
    assert "LC_ALL=C" in lines and "LANG=C" in lines
    assert not [line for line in lines if line.startswith("LANGUAGE=")]
    assert "LC_ALL=C.UTF-8" in _runner.run(["env"], env={"LC_ALL": "C.UTF-8"}).stdout.splitlines()
