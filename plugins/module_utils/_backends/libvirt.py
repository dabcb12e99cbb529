# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt guest backend over libvirt-python (private, no stability promise)."""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlparse

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.base import (
    RUNNING, STOPPED, SUSPENDED, GuestBackend, check_options)
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError


def domain_xml_for(name, xml):
    """``xml`` (a libvirt domain definition) with its ``<name>`` set to ``name``; a ``<uuid>``
    is dropped when the name changes (two domains cannot share one)."""
    if not isinstance(xml, str) or not xml.strip():
        raise ValidationError(name, "spec.xml", xml, "must be a libvirt domain XML document")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValidationError(name, "spec.xml", xml[:60], f"is not well-formed XML ({exc})") from None
    if root.tag != "domain":
        raise ValidationError(name, "spec.xml", root.tag, "the root element must be <domain>")
    node = root.find("name")
    if node is None:
        node = ET.SubElement(root, "name")
    if node.text != name:
        node.text = name
        for uuid in root.findall("uuid"):
            root.remove(uuid)
    return ET.tostring(root, encoding="unicode")


class LibvirtGuest(GuestBackend):
    """Domains of one libvirt connection (``qemu:///system``, ``qemu+ssh://root@host/system``,
    ``test:///default`` ...), opened once per backend.

    ``spec`` is ``{"xml": <domain XML>}``: :meth:`define` defines it under the guest's name
    when the domain does not exist. :meth:`stop` asks the guest to shut down (ACPI) and
    destroys it when ``timeout`` seconds pass. :meth:`delete` undefines the domain with its
    managed-save image and snapshot metadata; with ``keep_storage=False`` the writable disks
    go too (storage volumes through libvirt, plain files of a local URI directly; anything
    else is listed in :attr:`warnings`). :meth:`suspend` is libvirt's managed save (memory
    to disk, domain off), :meth:`resume` starts it again from that image (libvirt consumes
    the image: it is resumed once). Snapshots are libvirt's (``_libvirt``). The state words are
    those of :func:`_libvirt.domain_state`, with a shut-off domain that has a managed-save
    image reported as ``suspended``. No marker (the guest is not reachable from here).
    """

    kind = "libvirt"
    options = ("uri", "stop_timeout")
    reader_options = ("uri",)

    def __init__(self, uri="qemu:///system", stop_timeout=60, readonly=False, poll=0.5,
                 sleep=time.sleep, clock=time.monotonic):
        self.uri = uri
        self.stop_timeout = stop_timeout
        self.readonly = readonly
        self._poll, self._sleep, self._clock = poll, sleep, clock
        self._conn = None
        self.warnings = []

    @classmethod
    def from_options(cls, options, timeout=None):
        opts = {k: v for k, v in (options or {}).items() if v is not None}
        check_options(opts, cls.options, "libvirt")
        return cls(opts.get("uri") or "qemu:///system", stop_timeout=opts.get("stop_timeout", 60))

    @classmethod
    def reader(cls, options, executor=None, timeout=30):
        return cls((options or {}).get("uri") or "qemu:///system", readonly=True)

    @property
    def conn(self):
        if self._conn is None:
            self._conn = _libvirt.connect(self.uri, readonly=self.readonly)
        return self._conn

    def close(self):
        _libvirt.close(self._conn)
        self._conn = None

    def _error(self, name, action, exc):
        return _libvirt.LibvirtError(f"domain '{name}' on {self.uri}: {action} failed: {exc}", self.uri)

    def _find(self, name):
        try:
            return _libvirt.get_domain(self.conn, name)
        except _libvirt.NoSuchDomainError:
            return None

    def _get(self, name):
        dom = self._find(name)
        if dom is None:
            raise StateError(f"{name}: no such domain on {self.uri}")
        return dom

    def _call(self, name, action, func, *args):
        try:
            return func(*args)
        except _libvirt.libvirt.libvirtError as exc:
            raise self._error(name, action, exc) from None

    @staticmethod
    def _word(dom):
        word = _libvirt.domain_state(dom)
        if word == STOPPED and dom.hasManagedSaveImage(0):
            return SUSPENDED
        return word

    # -- the verbs ---------------------------------------------------------------------------

    def define(self, name, spec, netconfs=None):
        if self._find(name) is not None:
            return False
        xml = domain_xml_for(name, (spec or {}).get("xml"))
        self._call(name, "define", self.conn.defineXML, xml)
        return True

    def start(self, name, spec=None, netconfs=None):
        dom = self._find(name)
        if dom is None and spec is not None:
            self.define(name, spec, netconfs)
            dom = self._get(name)
        elif dom is None:
            raise StateError(f"{name}: no such domain on {self.uri} (give its spec to define it)")
        word = self._word(dom)
        if word == RUNNING:
            return
        if word == "paused":
            self._call(name, "resume", dom.resume)
        elif not dom.isActive():
            # a managed-save image is restored by libvirt here (and then removed)
            self._call(name, "start", dom.create)

    def stop(self, name, timeout=None):
        dom = self._find(name)
        if dom is None:
            return
        if self._word(dom) == SUSPENDED:
            # back from the image first, so the guest shuts down cleanly and nothing is lost
            self._call(name, "start from the managed-save image", dom.create)
        if not dom.isActive():
            return
        timeout = self.stop_timeout if timeout is None else timeout
        try:
            dom.shutdown()
        except _libvirt.libvirt.libvirtError:
            pass        # no ACPI, no agent: the deadline below forces it off
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            if not dom.isActive():
                return
            self._sleep(self._poll)
        if dom.isActive():
            self._call(name, "destroy", dom.destroy)

    def delete(self, name, keep_storage=True, spec=None, netconfs=None):
        dom = self._find(name)
        if dom is None:
            return
        disks = [] if keep_storage else [d["source"] for d in _libvirt.domain_disks(dom.XMLDesc(0))
                                         if d["source"]]
        if dom.isActive():
            self._call(name, "destroy", dom.destroy)
        lv = _libvirt.libvirt
        flags = lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        self._call(name, "undefine", dom.undefineFlags, flags)
        for path in disks:
            self._remove_disk(name, path)

    def _remove_disk(self, name, path):
        lv = _libvirt.libvirt
        try:
            self.conn.storageVolLookupByPath(path).delete(0)
            return
        except lv.libvirtError:
            pass
        if not urlparse(self.uri).netloc and os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
        elif os.path.lexists(path) or urlparse(self.uri).netloc:
            self.warnings.append(f"{name}: disk {path} is not a storage volume of {self.uri}; "
                                 "left in place")

    def state(self, name):
        dom = self._find(name)
        return None if dom is None else self._word(dom)

    def states(self, names):
        """One ``listAllDomains`` for all names."""
        try:
            domains = {dom.name(): dom for dom in self.conn.listAllDomains(0)}
            return {name: self._word(domains[name]) if name in domains else None for name in names}
        except _libvirt.libvirt.libvirtError as exc:
            raise _libvirt.LibvirtError(f"cannot list the domains of {self.uri}: {exc}", self.uri) from None

    def facts(self, name):
        dom = self._find(name)
        if dom is None or not dom.isActive():
            return {"boot_id": None, "addresses": []}
        addresses = []
        try:
            lv = _libvirt.libvirt
            ifaces = dom.interfaceAddresses(lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0) or {}
            for iface in ifaces.values():
                for addr in iface.get("addrs") or []:
                    if addr.get("type") == lv.VIR_IP_ADDR_TYPE_IPV4:
                        addresses.append(addr["addr"])
        except _libvirt.libvirt.libvirtError:
            addresses = []      # no DHCP leases known to libvirt (bridged, static, test driver)
        return {"boot_id": f"{dom.UUIDString()}:{dom.ID()}", "addresses": addresses}

    def capacity(self):
        info = self._call("(host)", "getInfo", self.conn.getInfo)
        return {"vcpus": int(info[2]), "memory_mib": int(info[1])}

    def snapshot(self, name, snapshot):
        dom = self._get(name)
        if _libvirt.find_snapshot(dom, snapshot) is not None:
            return False
        _libvirt.create_snapshot(dom, snapshot)
        return True

    def revert(self, name, snapshot):
        return _libvirt.revert_snapshot(self._get(name), snapshot)

    def suspend(self, name):
        dom = self._get(name)
        word = self._word(dom)
        if word == SUSPENDED:
            return
        if not dom.isActive():
            raise StateError(f"{name}: cannot suspend a domain that is {word} (it must run)")
        self._call(name, "managed save", dom.managedSave, 0)

    def resume(self, name):
        dom = self._get(name)
        word = self._word(dom)
        if word == RUNNING:
            return
        if word == "paused":
            self._call(name, "resume", dom.resume)
        elif word == SUSPENDED:
            self._call(name, "start from the managed-save image", dom.create)
        else:
            raise StateError(f"{name}: cannot resume a domain that is {word} (it is not suspended)")
