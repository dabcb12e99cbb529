# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers shared by the modules (private, no stability promise)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time


def read_text(path: str) -> str | None:
    """File content, or None when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomic(path: str, text: str, mode: int = 0o644, backup: bool = False) -> str | None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename.

    The temp file gets ``mode`` before any byte is written (secrets are never readable by
    others, not even briefly). With ``backup`` an existing file is first copied to
    ``<path>.<timestamp>~``; that path is returned (else None).
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    backup_path = None
    if backup and os.path.exists(path):
        backup_path = f"{path}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
        shutil.copy2(path, backup_path)
    fd, tmp = tempfile.mkstemp(prefix=".vman-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return backup_path
