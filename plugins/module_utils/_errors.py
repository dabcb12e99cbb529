# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions of vman.lifecycle.

Private module: no stability promise. Helpers raise these; only a module's ``main()`` turns
them into ``fail_json``.
"""

from __future__ import annotations

import re
import unicodedata


class VmanError(Exception):
    """Base of every error this collection raises on purpose."""

    def to_result(self) -> dict:
        """Keys for ``fail_json`` beyond ``msg``."""
        return {}


#: longest rendering of an offending value in an error message (longer ones are cut)
VALUE_LIMIT = 120

# Bidirectional overrides and isolates: invisible, and they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,40}")


def safe_repr(value, limit: int = VALUE_LIMIT) -> str:
    """``repr(value)`` that never raises and is at most ``limit`` characters (plus a marker).

    Integers past Python's int->str digit limit (4300 by default) are rendered by their digit
    count, anything whose ``repr`` raises by its type name; long renderings are cut.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            text = repr(value)
        except ValueError:
            digits = int(value.bit_length() * 0.30103) + 1
            return f"<integer of about {digits} digits>"
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - an error message must never fail itself
            return f"<{type(value).__name__}>"
    if not isinstance(text, str):
        return f"<{type(value).__name__}>"
    if len(text) > limit:
        return f"{text[:limit]}...<{len(text)} characters>"
    return text


def as_text(value) -> str:
    """``str(value)`` for validation, total: an integer past the int->str digit limit becomes
    a marker text that no validator accepts, instead of raising ValueError."""
    try:
        return str(value)
    except ValueError:
        return safe_repr(value)


def bad_char(text: str):
    """The first control character of ``text`` (C0/C1 controls, DEL, line/paragraph separators,
    surrogates, bidi controls), or None."""
    for ch in text:
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            return ch
    return None


class ValidationError(VmanError):
    """Bad input: names the object, the field and the offending value.

    ``secret=True`` leaves the value out of the message and of ``self.value`` (passwords).
    """

    def __init__(self, obj: str, field: str, value, reason: str, secret: bool = False):
        self.obj = obj
        self.field = field
        self.value = None if secret else value
        self.reason = reason
        if secret:
            super().__init__(f"{obj}: field '{field}' (value hidden): {reason}")
        else:
            super().__init__(f"{obj}: field '{field}' = {safe_repr(value)}: {reason}")

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


def check_line(obj: str, field: str, value, *, forbid: str = "", secret: bool = False,
               max_len: int | None = None, allow_none: bool = False):
    """A free-text value that reaches a file, a unit, an XML document or a command line:
    a string without control characters (so no line breaks, NUL, escapes, bidi overrides) and
    without any character of ``forbid``. Returns it; raises :class:`ValidationError` naming
    ``field`` (without the value when ``secret``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ValidationError(obj, field, value, "must be a string", secret=secret)
    if max_len is not None and len(value) > max_len:
        raise ValidationError(obj, field, value, f"must be at most {max_len} characters",
                              secret=secret)
    ch = bad_char(value)
    if ch is not None:
        raise ValidationError(obj, field, value, f"must not contain control characters "
                              f"(found U+{ord(ch):04X})", secret=secret)
    for ch in forbid:
        if ch in value:
            raise ValidationError(obj, field, value, f"must not contain {ch!r}", secret=secret)
    return value


def check_int(obj: str, field: str, value, low: int, high: int) -> int:
    """An integer (or its decimal text) from ``low`` to ``high``; never a boolean. Huge
    values are refused before any int<->str conversion could raise."""
    if isinstance(value, bool):
        raise ValidationError(obj, field, value, f"must be an integer from {low} to {high}")
    if isinstance(value, str):
        text = value.strip()
        if not _INT_TEXT.fullmatch(text):
            raise ValidationError(obj, field, value, f"must be an integer from {low} to {high}")
        value = int(text)
    if not isinstance(value, int):
        raise ValidationError(obj, field, value, f"must be an integer from {low} to {high}")
    if not low <= value <= high:
        raise ValidationError(obj, field, value, f"must be an integer from {low} to {high}")
    return value
