# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions of vman.lifecycle.

Private module: no stability promise. Helpers raise these; only a module's ``main()`` turns
them into ``fail_json``.
"""

from __future__ import annotations


class VmanError(Exception):
    """Base of every error this collection raises on purpose."""

    def to_result(self) -> dict:
        """Keys for ``fail_json`` beyond ``msg``."""
        return {}


class ValidationError(VmanError):
    """Bad input: names the object, the field and the offending value."""

    def __init__(self, obj: str, field: str, value, reason: str):
        self.obj = obj
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{obj}: field '{field}' = {value!r}: {reason}")

    def to_result(self) -> dict:
        return {"object": self.obj, "field": self.field}


class CommandError(VmanError):
    """A command ran and failed (non-zero exit, timeout or missing binary)."""

    def __init__(self, argv, rc, stdout="", stderr="", reason=""):
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        text = reason or (stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {rc}")
        super().__init__(f"command {' '.join(self.argv)!s} failed: {text}")

    def to_result(self) -> dict:
        return {"cmd": self.argv, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


class StateError(VmanError):
    """An operation is not allowed in the current state (e.g. an illegal status transition)."""
