# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt connection, domain and snapshot helpers (private, no stability promise).

Everything here works on any libvirt URI (``qemu:///system``, ``qemu+ssh://host/system``,
``test:///default``). libvirt-python is imported guarded: importing this file never fails,
and :func:`require_libvirt` raises when the binding is missing so a module can report it with
``missing_required_lib``. Helpers raise the exceptions below, never ``fail_json``.

The pure parts (:func:`snapshot_xml`, :func:`parse_snapshot_xml`, :func:`internal_snapshot_blockers`)
take and return plain strings and dicts so they can be tested without a daemon.
"""

from __future__ import annotations

import datetime
import re
import traceback
import xml.etree.ElementTree as ET

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError, check_line

try:
    import libvirt
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

#: The one argument-spec entry for the libvirt URI; documented by doc_fragments/libvirt.py.
LIBVIRT_URI_SPEC = {
    "uri": {"type": "str", "default": "qemu:///system", "aliases": ["libvirt_uri"]},
}

#: Snapshot names become file names for external snapshots: keep them path- and shell-safe.
SNAPSHOT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:-]{0,127}")

SNAPSHOT_KINDS = ("internal", "external")
REVERT_STATES = ("snapshot", "running", "paused", "stopped")

# virDomainState -> our words (the same words the modules' states use).
_DOMAIN_STATES = {
    0: "unknown",      # VIR_DOMAIN_NOSTATE
    1: "running",      # VIR_DOMAIN_RUNNING
    2: "running",      # VIR_DOMAIN_BLOCKED (running, waiting on a resource)
    3: "paused",       # VIR_DOMAIN_PAUSED
    4: "shutdown",     # VIR_DOMAIN_SHUTDOWN (being shut down)
    5: "stopped",      # VIR_DOMAIN_SHUTOFF
    6: "crashed",      # VIR_DOMAIN_CRASHED
    7: "pmsuspended",  # VIR_DOMAIN_PMSUSPENDED
}


class LibvirtError(VmanError):
    """A libvirt call failed; carries the URI, the object and libvirt's own error code."""

    def __init__(self, message: str, uri: str | None = None, code: int | None = None):
        self.uri = uri
        self.code = code
        super().__init__(message)

    def to_result(self) -> dict:
        return {"uri": self.uri, "libvirt_error_code": self.code}


class NoSuchDomainError(LibvirtError):
    """The domain does not exist on the connection."""


class NoSuchSnapshotError(LibvirtError):
    """The snapshot does not exist on the domain."""


class DiskFormatError(ValidationError):
    """A disk's format does not allow the requested snapshot kind."""

    def __init__(self, domain: str, disk: str, source, fmt: str, reason: str):
        super().__init__(domain, f"disk {disk}", fmt, reason)
        self.disk = disk
        self.source = source
        self.args = (f"domain '{domain}': disk {disk} ({source}) has format {fmt}: {reason}",)

    def __str__(self):
        return self.args[0]

    def to_result(self) -> dict:
        return dict(super().to_result(), disk=self.disk, source=self.source, format=self.value)


def require_libvirt() -> None:
    """Raise :class:`LibvirtError` when libvirt-python is not importable."""
    if not HAS_LIBVIRT:
        raise LibvirtError("the python library 'libvirt' (libvirt-python) is required")


def _quiet_handler(_ctx, _err):
    """libvirt prints every error on stderr by default; we raise them instead."""


def _code(exc) -> int | None:
    try:
        return exc.get_error_code()
    except Exception:  # pragma: no cover - a libvirtError always has one
        return None


# ---- connection and domain -------------------------------------------------------------------

def connect(uri: str, readonly: bool = False):
    """Open a libvirt connection to ``uri``; read-only when asked (enough for *_info modules)."""
    require_libvirt()
    libvirt.registerErrorHandler(_quiet_handler, None)
    try:
        return libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot connect to libvirt at {uri}: {exc}", uri, _code(exc)) from None


def close(conn) -> None:
    """Close a connection opened by :func:`connect`, ignoring errors of a dead link."""
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # pragma: no cover - closing a broken link must not hide the real error
        pass


def get_domain(conn, name: str):
    """Return the domain called ``name`` or raise :class:`NoSuchDomainError`."""
    uri = _uri(conn)
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if _code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
            raise NoSuchDomainError(f"no such domain '{name}' on {uri}", uri, _code(exc)) from None
        raise LibvirtError(f"cannot look up domain '{name}' on {uri}: {exc}", uri, _code(exc)) from None


def domain_state(dom) -> str:
    """The domain's power state as one word: running, paused, stopped, ..."""
    state = dom.state()[0]
    return _DOMAIN_STATES.get(state, "unknown")


def _uri(conn) -> str:
    try:
        return conn.getURI()
    except Exception:  # pragma: no cover
        return "?"


# ---- pure XML helpers ------------------------------------------------------------------------

def validate_snapshot_name(domain: str, name: str) -> str:
    """Return ``name`` when it is a safe snapshot name, else raise :class:`ValidationError`."""
    if not isinstance(name, str) or not SNAPSHOT_NAME_RE.fullmatch(name):
        raise ValidationError(domain, "name", name,
                              "a snapshot name is 1-128 characters of A-Z a-z 0-9 _ . + : - "
                              "and starts with a letter or digit")
    return name


def snapshot_xml(name: str, description: str | None = None) -> str:
    """The ``<domainsnapshot>`` document for a new snapshot (libvirt fills in the rest)."""
    root = ET.Element("domainsnapshot")
    ET.SubElement(root, "name").text = name
    if description:
        # XML 1.0 cannot even carry most control characters; refuse them all, by name
        check_line(name, "description", description, max_len=4096)
        ET.SubElement(root, "description").text = description
    return ET.tostring(root, encoding="unicode")


def domain_disks(domain_xml: str) -> list:
    """The writable disks of a domain XML: ``[{target, format, source, snapshot}]``.

    CD-ROMs, floppies, read-only and transient disks are left out: libvirt never snapshots them.
    ``format`` is the ``<driver type>``, or None when the XML does not say.
    """
    root = ET.fromstring(domain_xml)
    disks = []
    for disk in root.findall("./devices/disk"):
        if disk.get("device", "disk") not in ("disk", "lun"):
            continue
        if disk.find("readonly") is not None or disk.find("transient") is not None:
            continue
        target = disk.find("target")
        driver = disk.find("driver")
        source = disk.find("source")
        src = None
        if source is not None:
            src = source.get("file") or source.get("dev") or source.get("name") or source.get("volume")
        disks.append({
            "target": target.get("dev") if target is not None else None,
            "format": driver.get("type") if driver is not None else None,
            "source": src,
            "snapshot": disk.get("snapshot"),
        })
    return disks


def internal_snapshot_blockers(domain: str, domain_xml: str) -> list:
    """One :class:`DiskFormatError` per disk that cannot take an internal snapshot.

    qemu stores internal snapshots inside the image, which only qcow2 can hold. A disk without a
    ``<driver type>`` is raw to libvirt (it does not probe formats), so it blocks too.
    """
    errors = []
    for disk in domain_disks(domain_xml):
        if disk["snapshot"] == "no":
            continue
        if disk["format"] != "qcow2":
            fmt = disk["format"] or "raw (no driver type set)"
            errors.append(DiskFormatError(
                domain, disk["target"], disk["source"], fmt,
                "internal snapshots need qcow2 disks; convert the disk or use kind=external"))
    return errors


def parse_snapshot_xml(text: str) -> dict:
    """The facts of one ``<domainsnapshot>`` document (without the current flag)."""
    root = ET.fromstring(text)

    def _text(path):
        node = root.find(path)
        return node.text if node is not None and node.text is not None else None

    created = _text("creationTime")
    created = int(created) if created is not None else None
    memory = root.find("memory")
    disks = []
    for disk in root.findall("./disks/disk"):
        source = disk.find("source")
        disks.append({
            "name": disk.get("name"),
            "snapshot": disk.get("snapshot"),
            "source": source.get("file") if source is not None else None,
        })
    external = (memory is not None and memory.get("snapshot") == "external") or any(
        d["snapshot"] == "external" for d in disks)
    return {
        "name": _text("name"),
        "description": _text("description"),
        "state": _text("state"),
        "creation_time": created,
        "creation_time_iso": (datetime.datetime.fromtimestamp(created, datetime.timezone.utc)
                              .isoformat() if created is not None else None),
        "parent": _text("./parent/name"),
        "memory": memory.get("snapshot") if memory is not None else None,
        "kind": "external" if external else "internal",
        "disks": disks,
    }


# ---- snapshots -------------------------------------------------------------------------------

def _domain_name(dom) -> str:
    return dom.name()


def _wrap(dom, action: str, exc) -> LibvirtError:
    uri = _uri(dom.connect())
    return LibvirtError(f"domain '{_domain_name(dom)}': {action} failed: {exc}", uri, _code(exc))


def find_snapshot(dom, name: str):
    """The snapshot object called ``name``, or None when the domain has none by that name."""
    try:
        return dom.snapshotLookupByName(name, 0)
    except libvirt.libvirtError as exc:
        if _code(exc) == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            return None
        raise _wrap(dom, f"looking up snapshot '{name}'", exc) from None


def get_snapshot(dom, name: str):
    """The snapshot object called ``name``, or raise :class:`NoSuchSnapshotError`."""
    snap = find_snapshot(dom, name)
    if snap is None:
        uri = _uri(dom.connect())
        raise NoSuchSnapshotError(
            f"domain '{_domain_name(dom)}' has no snapshot '{name}' (on {uri})", uri,
            libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT)
    return snap


def snapshot_info(snap) -> dict:
    """Facts of one snapshot: name, description, state, creation time, parent, current, kind."""
    info = parse_snapshot_xml(snap.getXMLDesc(0))
    info["current"] = bool(snap.isCurrent(0))
    info["children"] = snap.numChildren(0)
    return info


def list_snapshots(dom) -> list:
    """Facts of every snapshot of ``dom``, oldest first (ties by name)."""
    try:
        snaps = dom.listAllSnapshots(0)
    except libvirt.libvirtError as exc:
        raise _wrap(dom, "listing snapshots", exc) from None
    infos = [snapshot_info(s) for s in snaps]
    infos.sort(key=lambda i: (i["creation_time"] or 0, i["name"]))
    return infos


def current_snapshot_name(dom) -> str | None:
    """Name of the domain's current snapshot, or None."""
    if not dom.hasCurrentSnapshot(0):
        return None
    return dom.snapshotCurrent(0).getName()


def create_snapshot(dom, name: str, description: str | None = None, kind: str = "internal",
                    quiesce: bool = False) -> dict:
    """Create snapshot ``name`` and return its facts.

    ``internal``: qemu stores disks (and, for a running domain, memory) inside the qcow2 images;
    refused with :class:`DiskFormatError` when a disk is not qcow2. ``external``: a disk-only
    snapshot; every disk gets a new qcow2 overlay next to it (libvirt's default file names) and
    the domain keeps running on the overlays. ``quiesce`` freezes the guest's filesystems through
    the QEMU guest agent while the external snapshot is taken.
    """
    domain = _domain_name(dom)
    validate_snapshot_name(domain, name)
    if kind not in SNAPSHOT_KINDS:
        raise ValidationError(domain, "kind", kind, f"must be one of {', '.join(SNAPSHOT_KINDS)}")
    flags = 0
    if kind == "internal":
        if quiesce:
            raise ValidationError(domain, "quiesce", quiesce,
                                  "libvirt quiesces only external disk-only snapshots (kind=external)")
        check_internal_snapshot(dom)
    else:
        # ATOMIC: all disks switch to their overlays or none does.
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
        if quiesce:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    try:
        snap = dom.snapshotCreateXML(snapshot_xml(name, description), flags)
    except libvirt.libvirtError as exc:
        raise _wrap(dom, f"creating {kind} snapshot '{name}'", exc) from None
    return snapshot_info(snap)


def check_internal_snapshot(dom) -> None:
    """Raise :class:`DiskFormatError` for the first disk of ``dom`` that is not qcow2."""
    blockers = internal_snapshot_blockers(_domain_name(dom), dom.XMLDesc(0))
    if blockers:
        raise blockers[0]


def revert_snapshot(dom, name: str, state: str = "snapshot", force: bool = False) -> str:
    """Revert ``dom`` to snapshot ``name`` and return the domain's power state afterwards.

    ``state``: ``snapshot`` restores the power state recorded in the snapshot; ``running`` and
    ``paused`` ask libvirt to start the reverted domain that way (and start, resume or suspend
    it afterwards when the driver did not); ``stopped`` reverts, then powers the domain off
    (destroy) if the snapshot left it running or paused.
    ``force`` lets libvirt revert where it would otherwise refuse (e.g. a snapshot without
    memory state onto a running domain).
    """
    domain = _domain_name(dom)
    if state not in REVERT_STATES:
        raise ValidationError(domain, "revert_state", state,
                              f"must be one of {', '.join(REVERT_STATES)}")
    snap = get_snapshot(dom, name)
    flags = 0
    if state == "running":
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
    elif state == "paused":
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
    if force:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE
    try:
        dom.revertToSnapshot(snap, flags)
    except libvirt.libvirtError as exc:
        raise _wrap(dom, f"reverting to snapshot '{name}'", exc) from None
    if state != "snapshot":
        _settle(dom, name, state)
    return domain_state(dom)


def _settle(dom, name: str, wanted: str) -> None:
    """Bring the domain to ``wanted`` after a revert when the driver did not do it.

    Some drivers ignore the REVERT_RUNNING/PAUSED flags for a snapshot of a shut-off domain
    (libvirt's test driver does); there is no flag for "stopped" at all.
    """
    current = domain_state(dom)
    try:
        if wanted == "stopped" and dom.isActive():
            dom.destroy()
        elif wanted == "running" and current == "paused":
            dom.resume()
        elif wanted == "running" and not dom.isActive():
            dom.create()
        elif wanted == "paused" and current == "running":
            dom.suspend()
        elif wanted == "paused" and not dom.isActive():
            _start_paused(dom)
    except libvirt.libvirtError as exc:
        raise _wrap(dom, f"making the domain {wanted} after the revert to '{name}'", exc) from None


def _start_paused(dom) -> None:
    try:
        dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    except libvirt.libvirtError as exc:
        if _code(exc) != libvirt.VIR_ERR_INVALID_ARG:  # "unsupported flags" (test driver)
            raise
        dom.create()
        dom.suspend()


def delete_snapshot(dom, name: str, children: bool = False) -> list:
    """Delete snapshot ``name`` (and its descendants with ``children``); return deleted names.

    Without ``children``, libvirt re-parents the children onto the deleted snapshot's parent.
    """
    snap = get_snapshot(dom, name)
    deleted = [name]
    flags = 0
    if children:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN
        deleted += descendants(dom, name)
    try:
        snap.delete(flags)
    except libvirt.libvirtError as exc:
        raise _wrap(dom, f"deleting snapshot '{name}'", exc) from None
    return deleted


def descendants(dom, name: str) -> list:
    """Names of every descendant of snapshot ``name`` (sorted)."""
    snap = get_snapshot(dom, name)
    try:
        children = snap.listAllChildren(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS)
    except libvirt.libvirtError as exc:
        raise _wrap(dom, f"listing the children of snapshot '{name}'", exc) from None
    return sorted(c.getName() for c in children)
