# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase file lookup of the guest_provision role (private, no stability promise).

A phase file (``dependencies.yaml``, ``init.yaml``, ``main.yaml``, ``terminate.yaml``) is looked
up per file, most specific first: ``<dir>/<platform>/<target>/<file>``, then
``<dir>/<platform>/<file>``, then ``<dir>/<file>``. Every phase file is optional.

In each directory the file is tried with both YAML extensions, the one asked for first:
``init.yaml`` then ``init.yml`` (the original ansible_farm's ``first_found`` order: directory by
directory, ``.yaml`` before ``.yml``); a name without an extension is tried as ``.yaml``, then
``.yml``.
"""

from __future__ import annotations

import os
import posixpath
from typing import Callable, Iterable

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


def _part(field: str, value) -> str | None:
    """A platform/target name as one path component, or None when it is not set."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError("phase_import_path", field, value, "must be a string")
    if value in (".", "..") or "/" in value or "\x00" in value:
        raise ValidationError("phase_import_path", field, value,
                              "must be one path component (no '/', not '.' or '..')")
    return value


YAML_EXTENSIONS = (".yaml", ".yml")


def _variants(file_name: str) -> list:
    """``file_name`` and its other YAML spelling, the one given first."""
    stem, ext = posixpath.splitext(file_name)
    if ext == ".yaml":
        return [file_name, stem + ".yml"]
    if ext == ".yml":
        return [file_name, stem + ".yaml"]
    return [file_name + e for e in YAML_EXTENSIONS]


def candidates(lookup_dir: str, platform_name: str | None, target_name: str | None,
               file_name: str) -> list:
    """The paths to try for ``file_name``, most specific first.

    Each directory is tried with both YAML extensions (see the module docstring).
    A level whose name is not set is left out: without a platform only ``<dir>/<file>`` is
    tried; a target without a platform means nothing, so it is ignored too.
    """
    if not isinstance(lookup_dir, str) or not lookup_dir:
        raise ValidationError("phase_import_path", "phases_lookup_dir_path", lookup_dir,
                              "must be a non-empty path")
    file_name = _part("file_name", file_name)
    if file_name is None:
        raise ValidationError("phase_import_path", "file_name", file_name, "must be set")
    platform = _part("platform_name", platform_name)
    target = _part("target_name", target_name)
    dirs = []
    if platform is not None:
        if target is not None:
            dirs.append(posixpath.join(lookup_dir, platform, target))
        dirs.append(posixpath.join(lookup_dir, platform))
    dirs.append(lookup_dir)
    return [posixpath.join(d, f) for d in dirs for f in _variants(file_name)]


def import_path(lookup_dir: str, platform_name: str | None, target_name: str | None,
                file_name: str, existing: Iterable[str] | None = None, root: str | None = None,
                isfile: Callable[[str], bool] = os.path.isfile) -> str | None:
    """The first candidate of :func:`candidates` that exists, or None when none does.

    ``existing``: the known files (e.g. the ``path`` of ``ansible.builtin.find`` results); when
    given, nothing is read from disk. Otherwise each candidate is checked with ``isfile``, under
    ``root`` when the candidate is relative and ``root`` is given. The path returned is the
    candidate as built from ``lookup_dir`` (not prefixed with ``root``).
    """
    paths = candidates(lookup_dir, platform_name, target_name, file_name)
    if existing is not None:
        known = {posixpath.normpath(p) for p in existing}
        for path in paths:
            if posixpath.normpath(path) in known:
                return path
        return None
    for path in paths:
        probe = os.path.join(root, path) if root and not os.path.isabs(path) else path
        if isfile(probe):
            return path
    return None
