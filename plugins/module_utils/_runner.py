# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argv-only command runner (private, no stability promise).

In the spirit of community.general's CmdRunner, written for this collection: a ``Runner`` is
built once per tool with named argument formatters, then called with the names to emit and
their values. Commands are always argv lists, never a shell. Values marked secret are
replaced by ``********`` in every error message and log line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable, Iterable, Mapping, Sequence

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError

REDACTED = "********"
# the environment every command runs with on top of the module's (see :func:`run`)
PARSE_ENV = {"LC_ALL": "C", "LANG": "C"}


# ---- argument formatters: value -> list of argv items ------------------------------------

def fmt_flag(flag: str) -> Callable[[object], list]:
    """Emit ``flag`` when the value is truthy."""
    return lambda value: [flag] if value else []


def fmt_opt(option: str, joined: bool = False) -> Callable[[object], list]:
    """Emit ``option value`` (or ``option=value`` when ``joined``); nothing for None."""
    def _fmt(value):
        if value is None:
            return []
        return [f"{option}={value}"] if joined else [option, str(value)]
    return _fmt


def fmt_repeat(option: str) -> Callable[[object], list]:
    """Emit ``option item`` for every item of a list."""
    return lambda values: [a for v in (values or []) for a in (option, str(v))]


def fmt_positional() -> Callable[[object], list]:
    """Emit the value itself (a list is spread)."""
    def _fmt(value):
        if value is None:
            return []
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]
    return _fmt


class Result:
    """Outcome of one command."""

    __slots__ = ("argv", "rc", "stdout", "stderr")

    def __init__(self, argv, rc, stdout, stderr):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr

    def __repr__(self):
        return f"Result(rc={self.rc}, argv={self.argv!r})"


def redact(argv: Sequence[str], secrets: Iterable[str] = ()) -> list:
    """Return argv with every occurrence of a secret replaced."""
    secrets = [s for s in secrets if s]
    out = []
    for item in argv:
        for secret in secrets:
            item = item.replace(secret, REDACTED)
        out.append(item)
    return out


def run(argv: Sequence[str], *, timeout: float | None = 60, check: bool = True,
        data: str | None = None, env: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (), cwd: str | None = None) -> Result:
    """Run ``argv`` (a list, never a shell string) and return a :class:`Result`.

    Raises :class:`CommandError` on a missing binary, a timeout, or (with ``check``) a
    non-zero exit; the error's argv and output have ``secrets`` redacted.
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("run() takes an argv list, not a string")
    argv = [str(a) for a in argv]
    secrets = list(secrets)
    # every caller parses what the tools print (xl, lxc-info, qemu-img, ip, ...): messages and
    # number formats in the C locale, whatever the host or the user set; ``env`` may override
    full_env = dict(os.environ)
    full_env.pop("LANGUAGE", None)
    full_env.update(PARSE_ENV)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=cwd, check=False)
    except FileNotFoundError as exc:
        raise CommandError(redact(argv, secrets), 127, reason=f"not found: {exc.filename}") from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(redact(argv, secrets), -1, _scrub(out, secrets), _scrub(err, secrets),
                           reason=f"timed out after {timeout} s") from None
    if check and proc.returncode != 0:
        raise CommandError(redact(argv, secrets), proc.returncode,
                           _scrub(proc.stdout, secrets), _scrub(proc.stderr, secrets))
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class Runner:
    """A command-line tool with named argument formatters.

    >>> xl = Runner(["xl"], {"dry_run": fmt_flag("-N"), "verb": fmt_positional(),
    ...                      "path": fmt_positional()})
    >>> xl.argv(["dry_run", "verb", "path"], dry_run=True, verb="create", path="/etc/xen/a.cfg")
    ['xl', '-N', 'create', '/etc/xen/a.cfg']
    """

    def __init__(self, command: Sequence[str], formats: Mapping[str, Callable[[object], list]],
                 timeout: float | None = 60, executor: Callable[..., Result] | None = None):
        self.command = list(command)
        self.formats = dict(formats)
        self.timeout = timeout
        self._run = executor or run

    @classmethod
    def for_binary(cls, name: str, formats, path: str | None = None, **kwargs) -> "Runner":
        """Build a runner for ``name``, resolved on PATH (and sbin dirs) unless ``path`` given."""
        resolved = path or shutil.which(name) or shutil.which(
            name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])) or name
        return cls([resolved], formats, **kwargs)

    def argv(self, order: Sequence[str], **values) -> list:
        """Build the argv for the named arguments in ``order``."""
        out = list(self.command)
        for name in order:
            if name not in self.formats:
                raise KeyError(f"unknown argument {name!r} for {self.command[0]}")
            out.extend(self.formats[name](values.get(name)))
        return out

    def __call__(self, order: Sequence[str], *, timeout: float | None = None, check: bool = True,
                 data: str | None = None, secrets: Iterable[str] = (), **values) -> Result:
        return self._run(self.argv(order, **values), timeout=self.timeout if timeout is None else timeout,
                         check=check, data=data, secrets=secrets)
