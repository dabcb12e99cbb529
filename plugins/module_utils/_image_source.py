# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible_farm's ``vm.metadata.sources`` chains, planned and run natively (private, no
stability promise).

In ansible_farm each source is ``{before_provision: [task, ...], on_provision: task}``; a task
names a ``callback`` task file and carries its arguments (``src``, ``dest`` ... relative to
``vm.metadata.tmp_dir``). Every ``before_provision`` task of every source runs first, in order,
then every ``on_provision`` task (which moves ``src`` from ``tmp_dir`` to ``dest`` in
``libvirt_pool_dir`` when it names no callback).

:func:`plan` turns the chains into groups: a ``native`` group is a run of built-in steps that
the ``vm_image_source`` module executes in one call (:func:`run_steps`); an ``include`` group is
a user's callback task file, included by the role with the variables ansible_farm gives it
(``vm``, ``source``, ``source_index``, ``task``, ``task_index``).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import time
import zipfile
import zlib
from typing import Callable
from urllib.parse import urlparse

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    CommandError, ValidationError, VmanError, as_text, check_line)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

#: ansible_farm's own callbacks (its kvm_provision role's tasks/), run natively here.
BUILTIN_CALLBACKS = {
    "callbacks/sources/fetch.yaml": "fetch",
    "callbacks/sources/copy.yaml": "copy",
    "callbacks/sources/img_convert.yaml": "convert",
    "callbacks/sources/unarchive.yml": "unarchive",
    "callbacks/sources/unarchive.yaml": "unarchive",
    "callbacks/sources/setup_image.yaml": "setup_image",
    "callbacks/sources/install_to_libvirt.yaml": "install",
}
#: Callbacks that ansible_farm's examples ship as the user's own task files: a user's file
#: wins (as there); without one the step runs natively.
FALLBACK_CALLBACKS = {
    "callbacks/sources/extend_and_convert.yaml": "extend_convert",
}
ACTIONS = ("fetch", "copy", "convert", "unarchive", "setup_image", "install", "extend_convert")
IMAGE_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "qed", "luks")
URL_SCHEMES = ("http", "https", "ftp")
CHECKSUM_RE = re.compile(r"(md5|sha1|sha224|sha256|sha384|sha512):([0-9A-Fa-f]+)")
SIZE_RE = re.compile(r"([0-9]{1,15})([KMGT]?)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SECTOR = 512
FETCH_RETRIES = 5
CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# planning (controller side, pure apart from looking up the user's callback files)

def is_farm_format(sources) -> bool:
    """True when ``vm.metadata.sources`` uses ansible_farm's chains (any source with
    ``before_provision`` or ``on_provision``)."""
    return isinstance(sources, list) and any(
        isinstance(s, dict) and ("before_provision" in s or "on_provision" in s) for s in sources)


def _rel(obj: str, field: str, value, base: str) -> str:
    """``value`` joined to ``base`` as ansible_farm's ``path_join`` does (an absolute value
    stays absolute); a relative value must stay inside ``base``."""
    value = check_line(obj, field, value)
    if not value:
        raise ValidationError(obj, field, value, "must not be empty")
    if posixpath.isabs(value):
        return posixpath.normpath(value)
    if ".." in value.split("/"):
        raise ValidationError(obj, field, value, f"a relative path must stay inside {base}")
    return posixpath.normpath(posixpath.join(base, value))


def parse_size(obj: str, field: str, value) -> int:
    """``10G``, ``512M``, ``2048`` (bytes) -> bytes."""
    text = as_text(value).strip().upper().removesuffix("B") if value is not None else ""
    match = SIZE_RE.fullmatch(text)
    if isinstance(value, bool) or not match or int(match.group(1)) == 0:
        raise ValidationError(obj, field, value, "must be a size such as 10G, 512M or a byte count")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _fmt(obj: str, field: str, value, default: str) -> str:
    value = default if value in (None, "") else value
    if value not in IMAGE_FORMATS:
        raise ValidationError(obj, field, value, f"must be one of {', '.join(IMAGE_FORMATS)}")
    return value


def _bool(obj: str, field: str, value, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = as_text(value).lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValidationError(obj, field, value, "must be a boolean")


def native_step(obj: str, field: str, action: str, task: dict, tmp_dir: str, pool_dir: str,
                meta: dict) -> dict:
    """One built-in step with validated, absolute paths (what ``vm_image_source`` takes)."""
    def src():
        return _rel(obj, field + ".src", task.get("src"), tmp_dir)

    def dest(base=tmp_dir):
        return _rel(obj, field + ".dest", task.get("dest"), base)

    step = {"action": action, "label": f"{field}: {action}"}
    if action == "fetch":
        url = check_line(obj, field + ".src", task.get("src"))
        parsed = urlparse(url)
        if parsed.scheme not in URL_SCHEMES and not (parsed.scheme == "file" and parsed.path):
            raise ValidationError(obj, field + ".src", url,
                                  f"must be a {', '.join(URL_SCHEMES)} or file URL")
        checksum = task.get("checksum")
        if checksum in (None, "") and task.get("checksum_type") and task.get("checksum_value"):
            checksum = f"{task['checksum_type']}:{task['checksum_value']}"
        if checksum not in (None, ""):
            if not isinstance(checksum, str) or not CHECKSUM_RE.fullmatch(checksum):
                raise ValidationError(obj, field + ".checksum", checksum,
                                      "must be <algorithm>:<hex digest>, algorithm one of "
                                      "md5, sha1, sha224, sha256, sha384, sha512")
            checksum = checksum.lower()
        else:
            checksum = None
        step.update(src=url, dest=dest(), checksum=checksum)
    elif action == "copy":
        step.update(src=src(), dest=dest(), force=_bool(obj, field + ".force", task.get("force"), True))
    elif action == "convert":
        step.update(src=src(), dest=dest(),
                    from_format=_fmt(obj, field + ".from", task.get("from", task.get("from_format")), "raw"),
                    to_format=_fmt(obj, field + ".to", task.get("to", task.get("to_format")), "qcow2"))
    elif action == "unarchive":
        step.update(src=src(), dest=_rel(obj, field + ".dest", task.get("dest") or tmp_dir, tmp_dir))
    elif action == "extend_convert":
        step.update(src=src(), dest=dest(), size=parse_size(obj, field + ".size", task.get("size")),
                    from_format=_fmt(obj, field + ".from_format", task.get("from_format"), "raw"),
                    to_format=_fmt(obj, field + ".to_format", task.get("to_format"), "qcow2"),
                    partition_number=check_int_text(obj, field + ".partition_number",
                                                    task.get("partition_number"), 1, 128))
    elif action == "install":
        step.update(src=src(), dest=dest(pool_dir),
                    replace=_bool(obj, field + ".replace", task.get("replace"), True))
    elif action == "setup_image":
        auth = meta.get("auth") if isinstance(meta.get("auth"), dict) else {}
        keys = task.get("keys_path") or posixpath.join(tmp_dir, "id_ssh_rsa_" + meta.get("name", "vm"))
        step.update(src=src(),
                    hostname=check_line(obj, "metadata.hostname", meta.get("hostname"),
                                        forbid="'\"/ ", allow_none=True),
                    user=check_line(obj, "metadata.auth.user", auth.get("user"),
                                    forbid=":'\"/ ", allow_none=True),
                    keys_path=_rel(obj, field + ".keys_path", keys, tmp_dir))
        # Passwords stay out of the plan (it is printed as a fact): the module reads them
        # from ``vm.metadata.auth`` given to it as a no_log option.
    return step


def check_int_text(obj: str, field: str, value, low: int, high: int) -> int:
    """An integer (or its text) from low to high; None -> low."""
    if value is None or value == "":
        return low
    text = as_text(value)
    if isinstance(value, bool) or not text.isdigit() or len(text) > 6 or not low <= int(text) <= high:
        raise ValidationError(obj, field, value, f"must be an integer from {low} to {high}")
    return int(text)


def find_callback(name: str, search_dirs) -> str | None:
    """The first ``<dir>/<name>`` that is a file, or None."""
    for base in search_dirs:
        path = posixpath.normpath(posixpath.join(base, name))
        if os.path.isfile(path):
            return path
    return None


def plan(vm: dict, obj: str, tmp_dir: str, pool_dir: str, playbook_dir: str | None,
         lookup_dir: str = "setup_hypervisor") -> list:
    """ansible_farm's chains of ``vm.metadata.sources`` as groups, in execution order.

    A callback is looked up as ansible_farm does, then: ``<lookup_dir>/<callback>`` (relative
    to ``playbook_dir``), ansible_farm's built-in callbacks (run natively), ``tasks/<callback>``
    in ``playbook_dir``, the native fallbacks (``extend_and_convert.yaml``). A callback found
    nowhere is an error (ansible_farm skipped it silently).
    """
    meta = vm.get("metadata") or {}
    sources = meta.get("sources")
    base = playbook_dir or "."
    lookup = lookup_dir if posixpath.isabs(lookup_dir) else posixpath.join(base, lookup_dir)
    work = []
    for i, source in enumerate(sources):
        field = f"metadata.sources[{i}]"
        if not isinstance(source, dict):
            raise ValidationError(obj, field, source, "each source must be a dict")
        unknown = sorted(set(source) - {"before_provision", "on_provision"})
        if unknown:
            raise ValidationError(obj, field, unknown, "unknown keys of an ansible_farm source "
                                  "(before_provision, on_provision)")
        before = source.get("before_provision") or []
        if not isinstance(before, list):
            raise ValidationError(obj, field + ".before_provision", before, "must be a list of tasks")
        for j, task in enumerate(before):
            work.append((i, source, j, task, f"{field}.before_provision[{j}]", False))
    for i, source in enumerate(sources):
        task = source.get("on_provision")
        if task not in (None, {}):
            work.append((i, source, None, task, f"metadata.sources[{i}].on_provision", True))
    groups = []
    for i, source, j, task, field, on_provision in work:
        if not isinstance(task, dict):
            raise ValidationError(obj, field, task, "each task must be a dict")
        callback = task.get("callback")
        if callback in (None, "") and on_provision:
            callback = "callbacks/sources/install_to_libvirt.yaml"
        callback = check_line(obj, field + ".callback", callback)
        if not callback or posixpath.isabs(callback) or ".." in callback.split("/"):
            raise ValidationError(obj, field + ".callback", callback,
                                  "must be a task file name relative to the lookup directories")
        path = find_callback(callback, [lookup])
        action = None if path else BUILTIN_CALLBACKS.get(callback)
        if path is None and action is None:
            path = find_callback(callback, [posixpath.join(base, "tasks")])
        if path is None and action is None:
            action = FALLBACK_CALLBACKS.get(callback)
        if path is None and action is None:
            raise ValidationError(obj, field + ".callback", callback,
                                  f"no such task file in {lookup} or {posixpath.join(base, 'tasks')}, "
                                  f"and not a built-in callback ({', '.join(sorted(BUILTIN_CALLBACKS))}, "
                                  f"{', '.join(FALLBACK_CALLBACKS)})")
        if action:
            step = native_step(obj, field, action, task, tmp_dir, pool_dir, meta)
            if groups and groups[-1]["kind"] == "native":
                groups[-1]["steps"].append(step)
            else:
                groups.append({"kind": "native", "steps": [step], "label": step["label"]})
        else:
            groups.append({"kind": "include", "file": path, "callback": callback, "label": f"{field}: {callback}",
                           "source": source, "source_index": i, "task": task,
                           "task_index": j if j is not None else 0})
    return groups


# ---------------------------------------------------------------------------------------------
# execution (on the hypervisor, inside vm_image_source)

def _hash(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _same_file(a: str, b: str) -> bool:
    if not os.path.isfile(b) or os.path.getsize(a) != os.path.getsize(b):
        return False
    return _hash(a, "sha256") == _hash(b, "sha256")


def _tmp_beside(path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".vman-", dir=os.path.dirname(path) or ".")
    os.close(fd)
    return tmp


def _commit(tmp: str, path: str, mode: int = 0o644):
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _discard(path: str):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _need(path: str, label: str):
    if not os.path.isfile(path):
        raise VmanError(f"{label}: {path} does not exist (an earlier step should make it)")


class Opener:
    """Fetches URLs with Ansible's ``open_url`` (proxies, CA bundle); ``file://`` directly."""

    def __init__(self, timeout: int = 20, retries: int = FETCH_RETRIES, delay: float = 1.0):
        self.timeout, self.retries, self.delay = timeout, retries, delay

    def _open(self, url: str, method: str = "GET"):
        from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
        last = None
        for attempt in range(self.retries):
            try:
                return open_url(url, method=method, timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 - retried, then reported with the URL
                last = exc
                if attempt + 1 < self.retries:
                    time.sleep(self.delay)
        raise VmanError(f"fetch {url}: {last}")

    def size(self, url: str):
        """The remote size (Content-Length of a HEAD), or None when unknown."""
        if urlparse(url).scheme == "file":
            path = urlparse(url).path
            return os.path.getsize(path) if os.path.isfile(path) else None
        try:
            resp = self._open(url, "HEAD")
        except VmanError:
            return None
        length = resp.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def download(self, url: str, path: str):
        if urlparse(url).scheme == "file":
            shutil.copyfile(urlparse(url).path, path)
            return
        resp = self._open(url)
        with open(path, "wb") as out:
            shutil.copyfileobj(resp, out, CHUNK)


def do_fetch(step: dict, check: bool, opener: Opener) -> dict:
    """Download ``src`` to ``dest`` unless the cached file is current: with a ``checksum``, when
    its digest matches (the download is verified before it replaces anything); without one, as
    ansible_farm, when its size equals the remote Content-Length (or the size is unknown)."""
    dest, checksum = step["dest"], step.get("checksum")
    algorithm, digest = checksum.split(":", 1) if checksum else (None, None)
    if os.path.isfile(dest):
        if checksum:
            if _hash(dest, algorithm) == digest:
                return {"changed": False, "msg": "cached, checksum matches"}
        else:
            remote = opener.size(step["src"])
            if remote is None or remote == os.path.getsize(dest):
                return {"changed": False, "msg": "cached"}
    if check:
        return {"changed": True, "msg": "would download"}
    tmp = _tmp_beside(dest)
    try:
        opener.download(step["src"], tmp)
        if checksum:
            got = _hash(tmp, algorithm)
            if got != digest:
                raise VmanError(f"{step['label']}: {step['src']}: {algorithm} is {got}, expected {digest}")
        _commit(tmp, dest)
    finally:
        _discard(tmp)
    return {"changed": True, "msg": "downloaded"}


def do_copy(step: dict, check: bool, _opener=None) -> dict:
    """``src`` -> ``dest`` in tmp_dir; an existing ``dest`` is replaced when it differs and
    ``force`` (ansible_farm's default), kept otherwise."""
    if check and not os.path.isfile(step["src"]):
        return {"changed": True, "msg": "would copy (source made by an earlier step)"}
    _need(step["src"], step["label"])
    if os.path.isfile(step["dest"]) and (not step["force"] or _same_file(step["src"], step["dest"])):
        return {"changed": False, "msg": "up to date"}
    if check:
        return {"changed": True, "msg": "would copy"}
    tmp = _tmp_beside(step["dest"])
    try:
        shutil.copyfile(step["src"], tmp)
        _commit(tmp, step["dest"])
    finally:
        _discard(tmp)
    return {"changed": True, "msg": "copied"}


def qemu_img(args, timeout: float = 3600):
    """``qemu-img`` with an argv list."""
    binary = shutil.which("qemu-img") or "qemu-img"
    return run([binary] + list(args), timeout=timeout)


def image_info(path: str) -> dict:
    """``qemu-img info`` of a file, as JSON."""
    return json.loads(qemu_img(["info", "--output=json", "-U", path], timeout=120).stdout)


def _convert(src: str, src_fmt: str, dest: str, dest_fmt: str):
    tmp = _tmp_beside(dest)
    try:
        qemu_img(["convert", "-f", src_fmt, "-O", dest_fmt, src, tmp])
        _commit(tmp, dest)
    finally:
        _discard(tmp)


def do_convert(step: dict, check: bool, _opener=None) -> dict:
    """``qemu-img convert -f <from> -O <to>``; skipped when ``dest`` exists (ansible_farm's
    ``creates``)."""
    if os.path.exists(step["dest"]):
        return {"changed": False, "msg": "exists"}
    if check:
        return {"changed": True, "msg": "would convert"}
    _need(step["src"], step["label"])
    _convert(step["src"], step["from_format"], step["dest"], step["to_format"])
    return {"changed": True, "msg": "converted"}


_STREAMS = ((".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open))
_TAR_SUFFIXES = (".tar", ".tgz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz")


def _inside(root: str, name: str, label: str) -> str:
    """``root/name`` for an archive member; a member that would land outside ``root`` (absolute,
    ``..``, drive letters) is an error."""
    norm = posixpath.normpath(name.replace("\\", "/"))
    if not name or posixpath.isabs(norm) or norm == ".." or norm.startswith("../") or ":" in norm.split("/")[0]:
        raise VmanError(f"{label}: archive member {name!r} would be written outside {root}")
    return os.path.join(root, norm)


def _tar_members(archive: tarfile.TarFile, root: str, label: str):
    for member in archive.getmembers():
        target = _inside(root, member.name, label)
        if member.issym() or member.islnk():
            # a symlink resolves from its own directory, a hard link from the archive's root
            base = posixpath.dirname(member.name) if member.issym() else ""
            link = member.linkname
            _inside(root, link if posixpath.isabs(link) else posixpath.join(base, link), label)
        elif not (member.isfile() or member.isdir()):
            raise VmanError(f"{label}: archive member {member.name!r} is a device or FIFO; refused")
        yield member, target


def _outdated(target: str, mtime: float, size=None) -> bool:
    if not os.path.lexists(target):
        return True
    st = os.lstat(target)
    return (size is not None and st.st_size != size) or int(st.st_mtime) != int(mtime)


def do_unarchive(step: dict, check: bool, _opener=None) -> dict:
    """Unpack ``src`` into ``dest`` (tmp_dir): ``.gz``/``.bz2``/``.xz`` are decompressed beside
    themselves (the archive kept, as ansible_farm's ``-k``), tar archives (also compressed) and
    ``.zip`` are extracted. No member may leave ``dest``; members already there with the same
    size and time are not rewritten."""
    src, dest, label = step["src"], step["dest"], step["label"]
    if not check:
        _need(src, label)
    elif not os.path.isfile(src):
        return {"changed": True, "msg": "would unpack (archive not there yet)"}
    lower = src.lower()
    written = []
    is_tar = lower.endswith(_TAR_SUFFIXES) or (
        os.path.isfile(src) and tarfile.is_tarfile(src) and not lower.endswith(".zip"))
    if is_tar:
        with tarfile.open(src) as archive:
            # every member is checked before the first one is written
            for member, target in list(_tar_members(archive, dest, label)):
                if member.isdir():
                    if not os.path.isdir(target):
                        written.append(target)
                        if not check:
                            os.makedirs(target, exist_ok=True)
                    continue
                if not _outdated(target, member.mtime, member.size if member.isfile() else None):
                    continue
                written.append(target)
                if check:
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if member.issym():
                    _discard(target)
                    os.symlink(member.linkname, target)
                    continue
                if member.islnk():
                    source = _inside(dest, member.linkname, label)
                    _discard(target)
                    shutil.copyfile(source, target)
                else:
                    tmp = _tmp_beside(target)
                    try:
                        with archive.extractfile(member) as data, open(tmp, "wb") as out:
                            shutil.copyfileobj(data, out, CHUNK)
                        _commit(tmp, target, stat.S_IMODE(member.mode) & 0o755 or 0o644)
                    finally:
                        _discard(tmp)
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    elif lower.endswith(".zip"):
        with zipfile.ZipFile(src) as archive:
            checked = [(info, _inside(dest, info.filename, label)) for info in archive.infolist()]
            for info, target in checked:
                if info.is_dir():
                    if not check:
                        os.makedirs(target, exist_ok=True)
                    continue
                mtime = time.mktime(info.date_time + (0, 0, -1))
                if not _outdated(target, mtime, info.file_size):
                    continue
                written.append(target)
                if check:
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                tmp = _tmp_beside(target)
                try:
                    with archive.open(info) as data, open(tmp, "wb") as out:
                        shutil.copyfileobj(data, out, CHUNK)
                    _commit(tmp, target)
                finally:
                    _discard(tmp)
                os.utime(target, (mtime, mtime))
    else:
        for suffix, opener in _STREAMS:
            if lower.endswith(suffix):
                target = os.path.join(dest, os.path.basename(src)[:-len(suffix)])
                mtime = os.path.getmtime(src)
                if _outdated(target, mtime):
                    written.append(target)
                    if not check:
                        tmp = _tmp_beside(target)
                        try:
                            with opener(src, "rb") as data, open(tmp, "wb") as out:
                                shutil.copyfileobj(data, out, CHUNK)
                            _commit(tmp, target)
                        finally:
                            _discard(tmp)
                        os.utime(target, (mtime, mtime))
                break
        else:
            raise VmanError(f"{label}: {src}: not a tar, zip, .gz, .bz2 or .xz archive")
    return {"changed": bool(written), "msg": f"{len(written)} file(s) unpacked", "files": written}


# GPT header fields (UEFI spec 5.3.2), little endian, 92 bytes.
_GPT = struct.Struct("<8s4sII4xQQQQ16sQIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")


def _gpt_header(raw: bytes):
    fields = list(_GPT.unpack_from(raw))
    if fields[0] != b"EFI PART":
        return None
    return fields


def _gpt_pack(fields) -> bytes:
    fields = list(fields)
    fields[3] = 0
    body = _GPT.pack(*fields)[:fields[2]]
    fields[3] = zlib.crc32(body) & 0xFFFFFFFF
    return _GPT.pack(*fields)


def grow_partition(path: str, number: int, label: str) -> bool:
    """Move a GPT's backup header and entries to the end of the (grown) raw image, and end
    partition ``number`` at the last usable sector (what ansible_farm's ``parted fix`` +
    ``resizepart N 100%`` did); an MBR's partition ``number`` (1-4) ends at the last sector.
    Only the last partition on the disk can grow. Returns whether anything changed."""
    total = os.path.getsize(path) // SECTOR
    with open(path, "r+b") as disk:
        disk.seek(SECTOR)
        header = _gpt_header(disk.read(SECTOR))
        if header is None:
            return _grow_mbr(disk, total, number, label)
        (_sig, _rev, hsize, _crc, cur, _backup, first, _last, guid, entries_lba, count, esize,
         _ecrc) = header
        if hsize < 92 or hsize > SECTOR or esize < _ENTRY.size or count > 4096:
            raise VmanError(f"{label}: {path}: unsupported GPT header")
        disk.seek(entries_lba * SECTOR)
        table = bytearray(disk.read(count * esize))
        esectors = -(-count * esize // SECTOR)
        last_usable = total - 2 - esectors
        if number > count:
            raise VmanError(f"{label}: {path}: partition {number} does not exist")
        entry = list(_ENTRY.unpack_from(table, (number - 1) * esize))
        if entry[0] == b"\0" * 16:
            raise VmanError(f"{label}: {path}: partition {number} does not exist")
        for k in range(count):
            other = _ENTRY.unpack_from(table, k * esize)
            if k != number - 1 and other[0] != b"\0" * 16 and other[2] > entry[2]:
                raise VmanError(f"{label}: {path}: partition {number} is not the last one on the disk")
        if last_usable < entry[3]:
            raise VmanError(f"{label}: {path}: the image is smaller than partition {number}")
        changed = entry[3] != last_usable or _backup != total - 1 or _last != last_usable
        entry[3] = last_usable
        _ENTRY.pack_into(table, (number - 1) * esize, *entry)
        ecrc = zlib.crc32(bytes(table)) & 0xFFFFFFFF
        primary = [b"EFI PART", _rev, hsize, 0, cur, total - 1, first, last_usable, guid,
                   entries_lba, count, esize, ecrc]
        backup = [b"EFI PART", _rev, hsize, 0, total - 1, cur, first, last_usable, guid,
                  total - 1 - esectors, count, esize, ecrc]
        disk.seek(SECTOR)
        disk.write(_gpt_pack(primary))
        disk.seek(entries_lba * SECTOR)
        disk.write(table)
        disk.seek((total - 1 - esectors) * SECTOR)
        disk.write(table)
        disk.seek((total - 1) * SECTOR)
        disk.write(_gpt_pack(backup).ljust(SECTOR, b"\0"))
        # the protective MBR covers the whole disk (capped at 2^32-1 sectors)
        disk.seek(446)
        pmbr = bytearray(disk.read(16))
        if pmbr[4] == 0xEE:
            struct.pack_into("<I", pmbr, 12, min(total - 1, 0xFFFFFFFF))
            disk.seek(446)
            disk.write(pmbr)
    return changed


def _grow_mbr(disk, total: int, number: int, label: str) -> bool:
    disk.seek(0)
    mbr = bytearray(disk.read(SECTOR))
    if mbr[510:512] != b"\x55\xaa":
        raise VmanError(f"{label}: no GPT and no MBR partition table found")
    if not 1 <= number <= 4:
        raise VmanError(f"{label}: an MBR partition to grow must be 1-4, not {number}")
    parts = [struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * k) for k in range(4)]
    _boot, kind, start, size = parts[number - 1]
    if kind == 0:
        raise VmanError(f"{label}: partition {number} does not exist")
    if kind in (0x05, 0x0F, 0x85):
        raise VmanError(f"{label}: partition {number} is an extended partition; refused")
    if any(p[1] and p[2] > start for k, p in enumerate(parts) if k != number - 1):
        raise VmanError(f"{label}: partition {number} is not the last one on the disk")
    new = min(total - start, 0xFFFFFFFF)
    if new == size:
        return False
    struct.pack_into("<I", mbr, 446 + 16 * (number - 1) + 12, new)
    disk.seek(0)
    disk.write(mbr)
    return True


def do_extend_convert(step: dict, check: bool, _opener=None) -> dict:
    """ansible_farm's extend_and_convert: ``src`` to raw, grown to ``size``, the partition table
    fixed and partition ``partition_number`` grown to the end, converted to ``dest``. Nothing
    happens when ``dest`` is already ``size`` (or larger) in ``to_format`` and ``src`` is
    ``dest`` (the chains extend in place)."""
    src, dest, size, label = step["src"], step["dest"], step["size"], step["label"]
    if check and not os.path.isfile(src):
        return {"changed": True, "msg": "would extend (source made by an earlier step)"}
    _need(src, label)
    if os.path.isfile(dest):
        info = image_info(dest)
        if info.get("format") == step["to_format"] and info.get("virtual-size", 0) >= size and \
                os.path.realpath(src) == os.path.realpath(dest):
            return {"changed": False, "msg": "already extended"}
    if check:
        return {"changed": True, "msg": "would extend"}
    raw = _tmp_beside(dest)
    try:
        qemu_img(["convert", "-f", step["from_format"], "-O", "raw", src, raw])
        if os.path.getsize(raw) > size:
            raise VmanError(f"{label}: {src} is larger than {size} bytes; images only grow")
        os.truncate(raw, size)
        grow_partition(raw, step["partition_number"], label)
        _convert(raw, "raw", dest, step["to_format"])
    finally:
        _discard(raw)
    return {"changed": True, "msg": "extended"}


def do_install(step: dict, check: bool, _opener=None, group=None) -> dict:
    """ansible_farm's install_to_libvirt: move ``src`` (tmp_dir) to ``dest`` (libvirt pool),
    replacing an existing one when ``replace`` (its default). Mode 0644, or 0664 and group
    ``group`` (ansible_farm's hypervisor_group) when one is given."""
    src, dest = step["src"], step["dest"]
    if os.path.exists(dest) and not step["replace"]:
        return {"changed": False, "msg": "installed, kept (replace: false)"}
    if check:
        return {"changed": True, "msg": "would install"}
    _need(src, step["label"])
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError:  # another file system: copy beside the destination, then rename
        tmp = _tmp_beside(dest)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            _discard(tmp)
        os.unlink(src)
    os.chmod(dest, 0o664 if group else 0o644)
    if group:
        shutil.chown(dest, group=group)
    return {"changed": True, "msg": "installed"}


def setup_image_script(user, password, key_path) -> str:
    """The first-boot script of setup_image: host keys, root login by key, the user with its
    password and authorized key (each value quoted for sh)."""
    def q(text):
        return "'" + text.replace("'", "'\\''") + "'"
    lines = ["#!/bin/sh", "set -e", "ssh-keygen -A",
             "sed -i 's/^#*PermitRootLogin.*$/PermitRootLogin yes/' /etc/ssh/sshd_config"]
    if user:
        home = "/home/" + user
        lines += [f"id {q(user)} >/dev/null 2>&1 || adduser --disabled-password --gecos '' {q(user)}"]
        if password:
            lines += [f"printf '%s\\n' {q(user + ':' + password)} | chpasswd"]
        if key_path:
            lines += [f"mkdir -p {q(home + '/.ssh')}", f"chmod 700 {q(home + '/.ssh')}",
                      f"cat {q(key_path)} >> {q(home + '/.ssh/authorized_keys')}",
                      f"chmod 600 {q(home + '/.ssh/authorized_keys')}",
                      f"chown -R {q(user + ':' + user)} {q(home + '/.ssh')}",
                      f"rm -f {q(key_path)}"]
    return "\n".join(lines) + "\n"


def setup_image_argv(step: dict, password_file: str | None, script: str) -> list:
    """The ``virt-sysprep`` argv of setup_image (the root password is read from a file, so it
    never appears on a command line)."""
    key = step["keys_path"] + ".pub"
    inside = "/opt/" + os.path.basename(key)
    argv = ["virt-sysprep", "-a", step["src"]]
    if password_file:
        argv += ["--root-password", "file:" + password_file]
    if step.get("hostname"):
        argv += ["--hostname", step["hostname"]]
    argv += ["--copy-in", key + ":/opt", "--chmod", "0666:" + inside, "--firstboot", script]
    return argv


def do_setup_image(step: dict, check: bool, _opener=None, auth=None, env=None) -> dict:
    """ansible_farm's setup_image: ``virt-sysprep`` sets the root password
    (``auth.become_password``), the hostname, copies the public key ``<keys_path>.pub`` in and
    adds a first-boot script that creates ``auth.user`` with ``auth.password`` and that key."""
    auth = auth or {}
    if check:
        return {"changed": True, "msg": "would prepare the image"}
    _need(step["src"], step["label"])
    _need(step["keys_path"] + ".pub", step["label"])
    binary = shutil.which("virt-sysprep")
    if not binary:
        raise VmanError(f"{step['label']}: virt-sysprep (libguestfs-tools) is not installed")
    secrets = [s for s in (auth.get("become_password"), auth.get("password")) if s]
    workdir = tempfile.mkdtemp(prefix="vman-setup-image-")
    try:
        pwfile = None
        if auth.get("become_password"):
            pwfile = os.path.join(workdir, "root-password")
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(str(auth["become_password"]) + "\n")
        script = os.path.join(workdir, "setup_image_auth.sh")
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(fd, "w") as out:
            out.write(setup_image_script(step.get("user"), auth.get("password"),
                                         "/opt/" + os.path.basename(step["keys_path"] + ".pub")))
        argv = setup_image_argv(step, pwfile, script)
        argv[0] = binary
        run(argv, timeout=3600, env=env, secrets=secrets)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"changed": True, "msg": "prepared"}


_DO: dict[str, Callable] = {
    "fetch": do_fetch, "copy": do_copy, "convert": do_convert, "unarchive": do_unarchive,
    "extend_convert": do_extend_convert, "install": do_install, "setup_image": do_setup_image,
}


def run_steps(steps: list, check: bool, opener: Opener | None = None, group: str | None = None,
              auth: dict | None = None, env: dict | None = None) -> dict:
    """Run the native steps in order; returns ``{changed, steps: [{label, action, changed, msg}]}``.

    A failing step raises (with its label); the steps before it stay done.
    """
    opener = opener or Opener()
    out = []
    for step in steps:
        action = step.get("action")
        if action not in _DO:
            raise ValidationError("vm_image_source", "steps[].action", action,
                                  f"must be one of {', '.join(ACTIONS)}")
        kwargs = {}
        if action == "install":
            kwargs["group"] = group
        elif action == "setup_image":
            kwargs.update(auth=auth, env=env)
        try:
            result = _DO[action](step, check, opener, **kwargs)
        except CommandError as exc:
            raise CommandError(exc.argv, exc.rc, exc.stdout, exc.stderr,
                               reason=f"{step.get('label', action)}: {exc}") from None
        out.append(dict(result, label=step.get("label", action), action=action))
    return {"changed": any(r["changed"] for r in out), "steps": out}
