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


# ---- writing below a root that belongs to a guest ------------------------------------------
# A guest's root file system (an LXC rootfs, a Xen NFS root, a seeded disk) is the guest's: a
# symlink in it must never make the host write (or read) outside it. Every component below the
# root is opened with O_NOFOLLOW relative to its parent's fd; the root itself is the
# operator's path and is followed.

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def _parts(relpath: str) -> list:
    parts = relpath.split("/")
    if not relpath or relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad relative path {relpath!r}")
    return parts


def open_parent_below(root: str, relpath: str, create: bool = True, dir_modes=None):
    """An fd of ``relpath``'s parent directory below ``root``, no symlink followed on the way.

    Missing directories are made (mode from ``dir_modes`` by their relative path, else 0755)
    when ``create``; otherwise None is returned for a missing one. A symlink on the way raises
    OSError (ELOOP or ENOTDIR).
    """
    parts = _parts(relpath)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    walked = []
    try:
        for part in parts[:-1]:
            walked.append(part)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                os.mkdir(part, (dir_modes or {}).get("/".join(walked), 0o755), dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def write_below(root: str, relpath: str, data, mode: int = 0o644, link: str | None = None,
                dir_modes=None, owner=None) -> None:
    """Write ``root/relpath`` (text or bytes; or a symlink to ``link``) atomically, following
    no symlink below ``root``: through a temp file made with O_EXCL|O_NOFOLLOW and ``mode``
    before any byte, renamed over the name (a symlink there is replaced, never followed).
    ``owner`` (uid, gid) chowns the new file without following it."""
    fd = open_parent_below(root, relpath, create=True, dir_modes=dir_modes)
    name = relpath.rsplit("/", 1)[-1]
    tmp = f".{name}.vman-tmp"
    try:
        try:
            os.unlink(tmp, dir_fd=fd)
        except FileNotFoundError:
            pass
        if link is not None:
            os.symlink(link, tmp, dir_fd=fd)
        else:
            file_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd)
            with os.fdopen(file_fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                if owner is not None:
                    os.fchown(handle.fileno(), owner[0], owner[1])
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=fd)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def read_below(root: str, relpath: str) -> bytes | None:
    """The bytes of ``root/relpath`` read without following a symlink below ``root``; None when
    it (or a directory on the way) does not exist."""
    fd = open_parent_below(root, relpath, create=False)
    if fd is None:
        return None
    try:
        file_fd = os.open(relpath.rsplit("/", 1)[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as handle:
        return handle.read()


def lexists_below(root: str, relpath: str) -> bool:
    """Whether ``root/relpath`` exists (a symlink counts, and is not followed) below ``root``."""
    fd = open_parent_below(root, relpath, create=False)
    if fd is None:
        return False
    try:
        os.lstat(relpath.rsplit("/", 1)[-1], dir_fd=fd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
