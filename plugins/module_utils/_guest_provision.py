# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of the guest_provision role (private, no stability promise).

The role's tasks only act; what to run is decided here by two pure functions:

- :func:`plan` (once per run): the VM's domain name and libvirt URI, the snapshot names
  (``clean`` and ``<project_id>.<revision>.init``), which sub-phases ``allowed_phases`` lets
  run, and the phase file of each use-case phase (most specific first, see ``_phases.py``).
- :func:`cache_plan` (after listing the VM's snapshots): the README's cache control -- restore
  the init snapshot if present, else restore ``clean``, else create ``clean``; when init was not
  restored run dependencies and init and create the init snapshot.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterable

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, as_text
from ansible_collections.vman.lifecycle.plugins.module_utils._kvm_provision import (
    connection_uri, display_name, domain_name, interfaces)
from ansible_collections.vman.lifecycle.plugins.module_utils._phases import import_path

#: The sub-phases of the README, in the order they run.
PHASES = ("startup", "restore init", "restore clean", "create clean", "dependencies", "init",
          "create init", "main", "terminate", "shutdown")
#: The use-case phases that have a phase file.
PHASE_FILES = ("dependencies", "init", "main", "terminate")
CLEAN_SNAPSHOT = "clean"
SNAPSHOT_TYPES = ("internal", "external")
#: why ``snapshot_type: external`` is refused (docs/migrating-from-ansible_farm.md says more)
EXTERNAL_REFUSED = (
    "external snapshots are not supported by guest_provision: libvirt before 9.7 (Debian 12 "
    "has 9.0) can neither revert nor delete them, and ansible_farm's emulation (redefining the "
    "domain on new overlay files, restarting the VM, editing the snapshot metadata by hand) "
    "loses the guest's memory state and leaves overlay chains libvirt does not track; use "
    "snapshot_type: internal (qcow2 disks), or kvm_provision with a qcow2 'backing' disk for "
    "firmware (UEFI/pflash) VMs")
# same alphabet as vm_snapshot's names (the project id and revision become part of one)
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:-]{0,60}")


def revision(revision_id=None, project_revision=None, obj: str = "guest_provision") -> str | None:
    """The init revision: ``revision_id`` (README) or ``project_revision``; both must agree."""
    values = [v for v in (revision_id, project_revision) if v is not None and v != ""]
    if len(values) == 2 and str(values[0]) != str(values[1]):
        raise ValidationError(obj, "revision_id", revision_id,
                              f"differs from project_revision = {project_revision!r}; set one of them")
    if not values:
        return None
    value = values[0]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(obj, "revision_id", value, "must be a string or an integer")
    value = as_text(value)
    if not _ID_RE.fullmatch(value):
        raise ValidationError(obj, "revision_id", value,
                              "1-61 characters of A-Z a-z 0-9 _ . + : -, starting with a letter or digit")
    return value


def init_snapshot_name(project_id, rev: str, obj: str = "guest_provision") -> str:
    """``<project_id>.<revision>.init``, the README's name of the init snapshot."""
    if project_id is None or project_id == "":
        raise ValidationError(obj, "project_id", project_id, "is required for the init snapshot")
    project_id = as_text(project_id)
    if not _ID_RE.fullmatch(project_id):
        raise ValidationError(obj, "project_id", project_id,
                              "1-61 characters of A-Z a-z 0-9 _ . + : -, starting with a letter or digit")
    if rev is None:
        raise ValidationError(obj, "revision_id", rev,
                              "is required for the init snapshot (or set project_revision)")
    return f"{project_id}.{rev}.init"


def allowed(allowed_phases: Iterable[str] | None, obj: str = "guest_provision") -> dict:
    """``{phase: bool}`` for every sub-phase; None or an omitted value allows them all."""
    if allowed_phases is None:
        return {p: True for p in PHASES}
    if isinstance(allowed_phases, str) or not isinstance(allowed_phases, (list, tuple, set)):
        raise ValidationError(obj, "allowed_phases", allowed_phases, "must be a list of phase names")
    unknown = sorted(set(allowed_phases) - set(PHASES))
    if unknown:
        raise ValidationError(obj, "allowed_phases", unknown,
                              f"unknown phase; the phases are: {', '.join(PHASES)}")
    return {p: p in allowed_phases for p in PHASES}


def networks(vm) -> list:
    """The libvirt networks the VM's ``network`` interfaces use (``vm.net``, one dict or a
    list), in order, each once: started before the VM, as ansible_farm's guest_provision did."""
    out = []
    for nic in interfaces(vm):
        if nic["type"] == "network" and nic["source"] not in out:
            out.append(nic["source"])
    return out


def snapshot_type(value, obj: str = "guest_provision") -> str:
    """ansible_farm's ``snapshot_type``: ``internal`` (the default); ``external`` is refused."""
    value = "internal" if value in (None, "") else value
    if value not in SNAPSHOT_TYPES:
        raise ValidationError(obj, "snapshot_type", value, "must be internal or external")
    if value == "external":
        raise ValidationError(obj, "snapshot_type", value, EXTERNAL_REFUSED)
    return value


DEFAULT_LOOKUP = "phases"
#: ansible_farm's default phases directory, used when ours is not there and it is
FARM_LOOKUP = "provision_phases"


def default_lookup(base_dir: str | None) -> str:
    """``phases`` when ``<base_dir>/phases`` is a directory, else ansible_farm's
    ``provision_phases`` when that one is, else ``phases``."""
    base = base_dir or "."
    for name in (DEFAULT_LOOKUP, FARM_LOOKUP):
        if os.path.isdir(os.path.join(base, name)):
            return name
    return DEFAULT_LOOKUP


def plan(vm, project_id=None, revision_id=None, project_revision=None, allowed_phases=None,
         phases_lookup_dir_path=None, base_dir: str | None = None,
         isfile: Callable[[str], bool] = os.path.isfile, libvirt_uri: str | None = None,
         snapshot_kind=None) -> dict:
    """Everything the role needs to know before it acts (see the module docstring).

    ``phases_lookup_dir_path`` is resolved against ``base_dir`` (the playbook directory) when
    relative (unset: :func:`default_lookup`); the phase files are looked up on the controller, where ``include_tasks`` reads them
    (``<phase>.yaml``, else ``<phase>.yml``, per directory). ``libvirt_uri`` (the role passes
    ``ansible_libvirt_uri``) is the URI when ``vm.metadata.connection`` is not set.
    """
    name = domain_name(vm)
    meta = vm["metadata"]
    gates = allowed(allowed_phases, name)
    # the snapshot kind matters only when a snapshot phase may run
    snapshot_phases = ("restore init", "create init", "restore clean", "create clean")
    kind = snapshot_type(snapshot_kind, name) if any(gates[p] for p in snapshot_phases) else \
        ("internal" if snapshot_kind in (None, "") else snapshot_kind)
    rev = revision(revision_id, project_revision, name)
    needs_init = gates["restore init"] or gates["create init"]
    init = init_snapshot_name(project_id, rev, name) if needs_init else None
    if phases_lookup_dir_path is None or phases_lookup_dir_path == "":
        phases_lookup_dir_path = default_lookup(base_dir)
    if not isinstance(phases_lookup_dir_path, str):
        raise ValidationError(name, "phases_lookup_dir_path", phases_lookup_dir_path, "must be a path")
    lookup = phases_lookup_dir_path
    if not os.path.isabs(lookup) and base_dir:
        lookup = os.path.join(base_dir, lookup)
    files = {
        phase: import_path(lookup, meta.get("platform_name"), meta.get("target_name"),
                           phase + ".yaml", isfile=isfile)
        for phase in PHASE_FILES
    }
    return {
        "name": name,
        "display_name": display_name(vm),
        "uri": connection_uri(vm, libvirt_uri),
        "clean_snapshot": CLEAN_SNAPSHOT,
        "init_snapshot": init,
        "revision": rev,
        "allowed": gates,
        "files": files,
        "lookup_dir": lookup,
        "networks": networks(vm),
        "snapshot_type": kind,
    }


def cache_plan(the_plan: dict, snapshot_names: Iterable[str], restore_failed: bool = False) -> dict:
    """The cache control of the README for a VM that has ``snapshot_names``.

    Returns ``restore`` (the snapshot to revert to, or None), ``init_restored``,
    ``create_clean``, ``run_dependencies``, ``run_init``, ``create_init`` and ``replace_init``
    (the init snapshot exists but was not restored, so it is deleted and taken again).
    ``restore_failed``: the revert was tried and failed (tolerated only when the cache is not
    required); the plan then treats the snapshot as not restored.
    """
    names = set(snapshot_names or [])
    gates = the_plan["allowed"]
    init = the_plan["init_snapshot"]
    clean = the_plan["clean_snapshot"]
    restore = None
    if gates["restore init"] and init in names:
        restore = init
    elif gates["restore clean"] and clean in names:
        restore = clean
    create_clean = restore is None and gates["create clean"] and clean not in names
    init_restored = restore is not None and restore == init and not restore_failed
    create_init = not init_restored and gates["create init"]
    return {
        "restore": restore,
        "restore_failed": bool(restore_failed),
        "init_restored": init_restored,
        "create_clean": create_clean,
        "run_dependencies": (not init_restored and gates["dependencies"]
                             and the_plan["files"]["dependencies"] is not None),
        "run_init": not init_restored and gates["init"] and the_plan["files"]["init"] is not None,
        "create_init": create_init,
        "replace_init": create_init and init in names,
    }
