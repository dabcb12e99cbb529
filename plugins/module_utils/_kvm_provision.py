# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of the kvm_provision role (private, no stability promise).

A ``vm`` definition (the format of the original kvm_provision README: ``vm.metadata.name``,
``vm.metadata.connection``, ``vm.metadata.libvirt_pool_dir``, ``vm.metadata.sources``,
``vm.disks``, ``vm.arch`` ...) is normalized here once, by pure functions, so the role's tasks
only read fields: the libvirt URI, absolute disk paths, the ``qemu-img`` argv that creates a
missing disk, the sources to fetch, and the XML template chosen by first match.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from typing import Callable, Iterable
from urllib.parse import urlparse

from ansible_collections.vman.lifecycle.plugins.module_utils import _image_source
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    ValidationError, as_text, check_line)

DEFAULT_URI = "qemu:///system"
DEFAULT_POOL_DIR = "/var/lib/libvirt/images"
DEFAULT_TEMPLATE = "default.xml.j2"
TEMPLATE_SUFFIX = ".xml.j2"
DISK_FORMATS = ("raw", "qcow2")
#: libvirt accepts almost anything as a name; we keep names usable in file names and argv.
DOMAIN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:-]{0,99}")
DOMAIN_NAME_MAX = 100
#: a run of characters a domain name does not keep (see :func:`map_domain_name`)
_NAME_DROP_RE = re.compile(r"[^A-Za-z0-9_.+:-]+")
_NAME_HASH_LEN = 8
DEVNAME_RE = re.compile(r"(vd|sd|hd|xvd)[a-z]{1,2}")
SIZE_RE = re.compile(r"[0-9]+[KMGT]?")
URL_SCHEMES = ("http", "https", "ftp")
NET_TYPES = ("network", "bridge", "user")
MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_BUS = {"vd": "virtio", "sd": "sata", "hd": "ide", "xvd": "xen"}
STATES = ("defined", "running", "stopped", "absent")
DEFAULT_STATE = "running"
#: ansible_farm's kvm_provision switches (role variables there; here also keys of ``vm``).
FARM_FLAGS = ("create_vm", "delete_vm", "should_remove_all_vm_storage")
#: The keys of ``vm`` and ``vm.metadata`` this role reads; any other key is passed through
#: untouched (custom templates see ``vm``) and listed in ``passthrough_keys``.
KNOWN_KEYS = frozenset(("metadata", "disks", "arch", "net", "virt_domain", "ram", "vcpus",
                        "machine", "emulator", "cpu", "kernel", "initrd", "cmdline",
                        "guest_agent", "console_log") + FARM_FLAGS)
KNOWN_METADATA_KEYS = frozenset(("name", "connection", "template", "libvirt_pool_dir", "sources",
                                 "platform_name", "target_name", "tmp_dir"))
#: read only by ansible_farm's setup_image step of a source chain
SETUP_IMAGE_METADATA_KEYS = frozenset(("auth", "hostname"))
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _metadata(vm) -> dict:
    if not isinstance(vm, dict):
        raise ValidationError("vm", "vm", type(vm).__name__, "the VM definition must be a dict")
    meta = vm.get("metadata")
    if not isinstance(meta, dict):
        raise ValidationError("vm", "metadata", meta, "vm.metadata must be a dict")
    return meta


def map_domain_name(name: str) -> str:
    """The libvirt domain name of a ``vm.metadata.name`` (the original ansible_farm's names
    look like ``VM debian_12_amd64``).

    A name that already matches :data:`DOMAIN_NAME_RE` is kept as it is. Otherwise every run of
    characters outside ``[A-Za-z0-9_.+:-]`` becomes one ``-``, leading ``-_.+:`` and trailing
    ``-`` are dropped, the rest is cut to 91 characters and ``-`` plus the first 8 hex digits of
    the SHA-256 of the original name (UTF-8) is appended. The hash is appended whenever the name
    was changed, so two different originals never share a domain (``VM a`` and ``VM-a`` give
    ``VM-a-<hash>`` and ``VM-a``), whichever other VMs exist. Same input, same output.
    """
    if DOMAIN_NAME_RE.fullmatch(name):
        return name
    base = _NAME_DROP_RE.sub("-", name).lstrip("-_.+:").rstrip("-")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_NAME_HASH_LEN]
    base = base[:DOMAIN_NAME_MAX - _NAME_HASH_LEN - 1].rstrip("-") or "vm"
    return f"{base}-{digest}"


def display_name(vm) -> str:
    """``vm.metadata.name`` as written, checked: a non-empty string without '/' and without
    control characters (what a libvirt domain name or title cannot hold)."""
    name = _metadata(vm).get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError(as_text(name), "metadata.name", name, "a VM name is a non-empty string")
    check_line(name, "metadata.name", name, forbid="/")
    return name


def domain_name(vm) -> str:
    """The libvirt domain name of the VM: ``vm.metadata.name`` mapped by :func:`map_domain_name`.

    Refused: a missing or empty name, '/' and control characters.
    """
    return map_domain_name(display_name(vm))


def connection_uri(vm, libvirt_uri=None) -> str:
    """The libvirt URI of the VM: ``vm.metadata.connection``, else ``libvirt_uri`` (the roles
    pass ``ansible_libvirt_uri``, as the original ansible_farm roles fall back to it), else
    qemu:///system (community.libvirt's default, which the original got by omitting the URI)."""
    field = "metadata.connection"
    uri = _metadata(vm).get("connection")
    if not uri and libvirt_uri:
        field, uri = "ansible_libvirt_uri", libvirt_uri
    uri = uri or DEFAULT_URI
    if not isinstance(uri, str) or "://" not in uri:
        raise ValidationError(domain_name(vm), field, uri,
                              "must be a libvirt URI such as qemu:///system")
    return uri


def template_candidates(vm) -> list:
    """Template file names to try, first match wins: the VM's template, its name, its arch, default.

    ``vm.metadata.template`` may be a bare name (``virtio`` -> ``virtio.xml.j2``), a file name
    ending in ``.j2`` or an absolute path.
    """
    name = domain_name(vm)
    meta = _metadata(vm)
    out = []
    template = meta.get("template")
    if template:
        if not isinstance(template, str) or "\x00" in template:
            raise ValidationError(name, "metadata.template", template, "must be a string")
        if not (template.endswith(".j2") or os.path.isabs(template)):
            template += TEMPLATE_SUFFIX
        out.append(template)
    out.append(name + TEMPLATE_SUFFIX)
    arch = vm.get("arch")
    if arch:
        if not isinstance(arch, str) or "/" in arch or arch in (".", ".."):
            raise ValidationError(name, "arch", arch, "must be one path component such as x86_64")
        out.append(arch + TEMPLATE_SUFFIX)
    out.append(DEFAULT_TEMPLATE)
    return out


def select_template(vm, search_dirs: Iterable[str],
                    isfile: Callable[[str], bool] = os.path.isfile) -> str:
    """The path of the first template that exists.

    Candidates (:func:`template_candidates`) are tried in order; each is looked up in every
    directory of ``search_dirs`` in order (the user's directories first, the role's own
    ``templates/`` last). An absolute template path is used as it is.
    """
    dirs = [d for d in (search_dirs or []) if d]
    tried = []
    for cand in template_candidates(vm):
        paths = [cand] if os.path.isabs(cand) else [os.path.join(d, cand) for d in dirs]
        for path in paths:
            tried.append(path)
            if isfile(path):
                return path
    raise ValidationError(domain_name(vm), "metadata.template", _metadata(vm).get("template"),
                          "no XML template found; tried " + ", ".join(tried))


def _pool_dir(vm) -> str:
    pool = _metadata(vm).get("libvirt_pool_dir") or DEFAULT_POOL_DIR
    if not isinstance(pool, str) or not os.path.isabs(pool):
        raise ValidationError(domain_name(vm), "metadata.libvirt_pool_dir", pool, "must be an absolute path")
    return posixpath.normpath(pool)


def _in_pool(name: str, pool: str, vm_name: str, field: str) -> str:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValidationError(vm_name, field, name, "must be a file name or an absolute path")
    if os.path.isabs(name):
        return posixpath.normpath(name)
    if ".." in name.split("/"):
        raise ValidationError(vm_name, field, name, "a relative path must stay inside libvirt_pool_dir")
    return posixpath.join(pool, name)


def sources(vm) -> list:
    """``vm.metadata.sources`` as ``[{uri, kind, src, dest, checksum}]``.

    ``kind`` is ``url`` (http, https, ftp: fetched with get_url) or ``file`` (a path or
    ``file://`` URI on the hypervisor, copied). ``dest`` is ``unarchived`` (or the URI's file name)
    inside ``libvirt_pool_dir``. Archives are not unpacked: give the image itself.
    """
    name = domain_name(vm)
    pool = _pool_dir(vm)
    out = []
    if _image_source.is_farm_format(_metadata(vm).get("sources")):
        return out
    for i, src in enumerate(_metadata(vm).get("sources") or []):
        field = f"metadata.sources[{i}]"
        if not isinstance(src, dict) or not src.get("uri"):
            raise ValidationError(name, field, src, "each source needs a 'uri' (or, in "
                                  "ansible_farm's format, 'before_provision' / 'on_provision')")
        uri = src["uri"]
        parsed = urlparse(uri)
        if parsed.scheme in URL_SCHEMES:
            kind, path = "url", None
        elif parsed.scheme in ("", "file"):
            kind, path = "file", parsed.path if parsed.scheme == "file" else uri
            if not os.path.isabs(path):
                raise ValidationError(name, field + ".uri", uri, "a local source must be an absolute path")
        else:
            raise ValidationError(name, field + ".uri", uri,
                                  f"scheme must be one of {', '.join(URL_SCHEMES)}, file or none")
        dest_name = src.get("unarchived") or posixpath.basename(parsed.path)
        checksum = None
        if src.get("checksum_value") and src.get("checksum_type"):
            checksum = f"{src['checksum_type']}:{src['checksum_value']}"
        out.append({"uri": uri, "kind": kind, "src": path,
                    "dest": _in_pool(dest_name, pool, name, field + ".unarchived"),
                    "checksum": checksum})
    return out


def tmp_dir(vm):
    """``vm.metadata.tmp_dir``: ansible_farm's working directory of the source chains (required
    by them, as there); None when unset."""
    value = _metadata(vm).get("tmp_dir")
    if value in (None, ""):
        return None
    check_line(domain_name(vm), "metadata.tmp_dir", value)
    if not os.path.isabs(value):
        raise ValidationError(domain_name(vm), "metadata.tmp_dir", value, "must be an absolute path")
    return posixpath.normpath(value)


def source_groups(vm, playbook_dir=None, lookup_dir="setup_hypervisor") -> list:
    """ansible_farm's ``before_provision`` / ``on_provision`` chains of ``vm.metadata.sources``
    as the groups of :func:`_image_source.plan` (native steps and the user's callback files);
    empty for sources in this collection's own format."""
    meta = _metadata(vm)
    if not _image_source.is_farm_format(meta.get("sources")):
        return []
    name = domain_name(vm)
    work = tmp_dir(vm)
    if work is None:
        raise ValidationError(name, "metadata.tmp_dir", None, "ansible_farm's source chains need "
                              "a working directory (an absolute path)")
    if not isinstance(lookup_dir, str) or not lookup_dir:
        raise ValidationError(name, "hypervisor_lookup_dir_path", lookup_dir, "must be a directory path")
    return _image_source.plan(vm, name, work, _pool_dir(vm), playbook_dir, lookup_dir)


def disks(vm) -> list:
    """``vm.disks`` as ``[{path, format, target, create_argv}]`` with absolute paths.

    A disk's ``src`` is a file name in ``libvirt_pool_dir`` or an absolute path. ``create_argv``
    is the ``qemu-img create`` argv that makes a missing disk: an overlay on ``backing`` (qcow2),
    or an empty image of ``size``; None when the disk must come from a source.
    """
    name = domain_name(vm)
    pool = _pool_dir(vm)
    out = []
    seen = set()
    for i, disk in enumerate(vm.get("disks") or []):
        field = f"disks[{i}]"
        if not isinstance(disk, dict):
            raise ValidationError(name, field, disk, "each disk must be a dict")
        fmt = disk.get("type") or "qcow2"
        if fmt not in DISK_FORMATS:
            raise ValidationError(name, field + ".type", fmt, f"must be one of {', '.join(DISK_FORMATS)}")
        target = disk.get("devname") or f"vd{chr(ord('a') + i)}"
        if not isinstance(target, str) or not DEVNAME_RE.fullmatch(target):
            raise ValidationError(name, field + ".devname", target, "must be a device name such as vda")
        if target in seen:
            raise ValidationError(name, field + ".devname", target, "is used by two disks")
        seen.add(target)
        path = _in_pool(disk.get("src"), pool, name, field + ".src")
        size = disk.get("size")
        if size is not None:
            size = as_text(size)
            if not SIZE_RE.fullmatch(size):
                raise ValidationError(name, field + ".size", size, "must be a size such as 2G or 512M")
        argv = None
        backing = disk.get("backing")
        if backing:
            if fmt != "qcow2":
                raise ValidationError(name, field + ".backing", backing, "an overlay disk must be qcow2")
            backing = _in_pool(backing, pool, name, field + ".backing")
            bfmt = disk.get("backing_format") or "qcow2"
            if bfmt not in DISK_FORMATS:
                raise ValidationError(name, field + ".backing_format", bfmt,
                                      f"must be one of {', '.join(DISK_FORMATS)}")
            argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", bfmt, "-b", backing, path]
            if size:
                argv.append(size)
        elif size:
            argv = ["qemu-img", "create", "-q", "-f", fmt, path, size]
        out.append({"path": path, "format": fmt, "target": target, "create_argv": argv,
                    "bus": _BUS[re.match(r"[a-z]+?d", target).group(0)]})
    return out


def _positive_int(vm, field: str, default: int) -> int:
    value = vm.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not as_text(value).isdigit() \
            or int(value) < 1:
        raise ValidationError(domain_name(vm), field, value, "must be a positive integer")
    return int(value)


def interfaces(vm) -> list:
    """``vm.net`` (one dict or a list) as ``[{type, source, mac, model}]``.

    ``type`` is ``network`` (``source``: a libvirt network, ``default`` by default), ``bridge``
    (``source``: a host bridge) or ``user``.
    """
    name = domain_name(vm)
    nets = vm.get("net") or []
    if isinstance(nets, dict):
        nets = [nets]
    out = []
    for i, net in enumerate(nets):
        field = f"net[{i}]"
        if not isinstance(net, dict):
            raise ValidationError(name, field, net, "must be a dict")
        kind = net.get("type") or "network"
        if kind not in NET_TYPES:
            raise ValidationError(name, field + ".type", kind, f"must be one of {', '.join(NET_TYPES)}")
        source = net.get("source") or ("default" if kind == "network" else None)
        if kind == "bridge" and not source:
            raise ValidationError(name, field + ".source", source, "a bridge interface needs a source bridge")
        mac = net.get("mac")
        if mac is not None and not MAC_RE.fullmatch(as_text(mac)):
            raise ValidationError(name, field + ".mac", mac, "must be a MAC address such as 52:54:00:12:34:56")
        out.append({"type": kind, "source": source if kind != "user" else None,
                    "mac": str(mac).lower() if mac else None, "model": net.get("model") or "virtio"})
    return out


def domain_settings(vm) -> dict:
    """The values the default XML template prints, with their defaults filled in."""
    name = domain_name(vm)
    virt = vm.get("virt_domain") or "kvm"
    if virt not in ("kvm", "qemu"):
        raise ValidationError(name, "virt_domain", virt, "must be kvm or qemu")
    boot = {}
    for field in ("kernel", "initrd"):
        value = vm.get(field)
        if value is not None and (not isinstance(value, str) or not os.path.isabs(value)):
            raise ValidationError(name, field, value, "must be an absolute path on the hypervisor")
        boot[field] = value
    if boot["initrd"] and not boot["kernel"]:
        raise ValidationError(name, "initrd", boot["initrd"], "needs a kernel (direct kernel boot)")
    return {
        "type": virt,
        "memory_mib": _positive_int(vm, "ram", 1024),
        "vcpus": _positive_int(vm, "vcpus", 1),
        "arch": vm.get("arch") or "x86_64",
        "machine": vm.get("machine") or "pc",
        "emulator": vm.get("emulator"),
        "cpu": vm.get("cpu"),
        "kernel": boot["kernel"],
        "initrd": boot["initrd"],
        "cmdline": vm.get("cmdline"),
        "guest_agent": bool(vm.get("guest_agent", True)),
        "console_log": vm.get("console_log"),
        "interfaces": interfaces(vm),
    }


def _flag(vm, key: str, value):
    """A switch of :data:`FARM_FLAGS`: the role variable ``value`` wins over ``vm[key]``;
    None when neither is set."""
    if value is None:
        value = vm.get(key)
    if value is None or isinstance(value, bool):
        return value
    text = as_text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError(domain_name(vm), key, value, "must be a boolean")


def lifecycle(vm, state=None, create_vm=None, delete_vm=None, should_remove_all_vm_storage=None,
              delete_disks=False) -> dict:
    """What the role does, in order: ``steps`` (task files among :data:`STATES`),
    ``define_only_if_missing`` and ``delete_disks``.

    Without ``create_vm``/``delete_vm`` (role variables, or keys of ``vm``; the variable wins),
    ``state`` decides (default ``running``). With either of them, the original kvm_provision's
    rules apply and the VM is never started: ``delete_vm`` (default false) removes the VM when it
    exists; ``create_vm`` (default true) then defines it -- after a delete always, otherwise only
    when it does not exist yet. ``should_remove_all_vm_storage`` also deletes the disk files when
    the VM is removed (like ``delete_disks``). Setting ``state`` together with
    ``create_vm``/``delete_vm`` is an error: they would say two things.
    """
    name = domain_name(vm)
    create = _flag(vm, "create_vm", create_vm)
    delete = _flag(vm, "delete_vm", delete_vm)
    remove_storage = _flag(vm, "should_remove_all_vm_storage", should_remove_all_vm_storage)
    wipe = bool(delete_disks) or bool(remove_storage)
    if create is None and delete is None:
        state = state or DEFAULT_STATE
        if state not in STATES:
            raise ValidationError(name, "kvm_provision_state", state, f"must be one of {', '.join(STATES)}")
        return {"mode": "state", "steps": [state], "define_only_if_missing": False,
                "delete_disks": wipe}
    if state:
        raise ValidationError(name, "kvm_provision_state", state,
                              "is set together with create_vm/delete_vm (ansible_farm's switches); "
                              "set one of them")
    create = True if create is None else create
    delete = False if delete is None else delete
    steps = (["absent"] if delete else []) + (["defined"] if create else [])
    return {"mode": "ansible_farm", "steps": steps, "define_only_if_missing": create and not delete,
            "delete_disks": wipe and delete}


def passthrough_keys(vm, groups=None) -> list:
    """The keys of ``vm`` (and ``metadata.<key>``) this role does not read, sorted: they are
    passed through untouched, for custom templates and other roles. ``metadata.auth`` and
    ``metadata.hostname`` are read when a source chain (``groups``) has a setup_image step."""
    meta = _metadata(vm)
    known = KNOWN_METADATA_KEYS
    if any(step["action"] == "setup_image" for group in groups or () if group["kind"] == "native"
           for step in group["steps"]):
        known = known | SETUP_IMAGE_METADATA_KEYS
    return sorted(str(k) for k in vm if k not in KNOWN_KEYS) + \
        sorted(f"metadata.{k}" for k in meta if k not in known)


def normalize(vm, state=None, create_vm=None, delete_vm=None, should_remove_all_vm_storage=None,
              delete_disks=False, libvirt_uri=None, playbook_dir=None,
              lookup_dir="setup_hypervisor") -> dict:
    """Everything the kvm_provision tasks read, computed once from the ``vm`` definition."""
    groups = source_groups(vm, playbook_dir, lookup_dir)
    return {
        "name": domain_name(vm),
        "display_name": display_name(vm),
        "uri": connection_uri(vm, libvirt_uri),
        "pool_dir": _pool_dir(vm),
        "sources": sources(vm),
        "tmp_dir": tmp_dir(vm),
        "source_groups": groups,
        "disks": disks(vm),
        "domain": domain_settings(vm),
        "templates": template_candidates(vm),
        "plan": lifecycle(vm, state=state, create_vm=create_vm, delete_vm=delete_vm,
                          should_remove_all_vm_storage=should_remove_all_vm_storage,
                          delete_disks=delete_disks),
        "passthrough_keys": passthrough_keys(vm, groups),
    }
