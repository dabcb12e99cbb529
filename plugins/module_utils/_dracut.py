# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dracut initrds for Xen guests, one per installed kernel (private, no stability promise).

For every kernel installed on the host (``<modules_dir>/<version>`` with a
``<boot_dir>/vmlinuz-<version>``) the guests' initrd lives at ``<dest_dir>/initrd.img-<version>``.
Beside it, ``initrd.img-<version>.inputs`` records what it was built from (kernel version, the
kernel file's SHA-256, dracut's version, the module list, the extra flags, the extra files):
the initrd is rebuilt only when that record differs from the inputs of this run. The record is
plain text so that the kernel hooks (:func:`render_postinst_hook`) can write the very same
text from sh, and a kernel installed later by apt needs no rebuild on the next run.

Pure parts: :func:`split_flags`, :func:`check_modules`, :func:`render_inputs`,
:func:`parse_inputs`, :func:`rebuild_reason`, :func:`dracut_argv`, the hook renderers.
:class:`InitrdManager` reads the host, plans, and acts (check mode stops before the act).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shlex
import tempfile

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._files import read_text, write_atomic
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

OBJ = "xen_initrd"

#: The seed's ``xen_vman_dracut_modules`` with one deliberate difference: ``network-legacy``
#: instead of ``network``. On Debian 12 dracut's ``network`` module picks network-manager or
#: systemd-networkd, and an NFS root then fails to come up in a domU; ``network-legacy``
#: (dhclient/ifup scripts, what the seed's Debian had) works.
DEFAULT_MODULES = ("nfs", "network-legacy", "base", "bash", "systemd", "terminfo", "shutdown",
                   "kernel-modules", "kernel-network-modules", "console-setup", "systemd-initrd",
                   "dracut-systemd")

#: Files dracut's ``iscsi`` module misses on Debian 12: without it the open-iscsi unit
#: conditions fail in the initrd and the iSCSI root never logs in.
ISCSI_EXTRA_ITEMS = ("/lib/open-iscsi/startup-checks.sh",)

#: dracut modules whose check() needs a file from a package that a Xen host may lack; dracut
#: itself only says "cannot be found or installed" after minutes of work (seen in the testbed)
MODULE_NEEDS = {"console-setup": ("/bin/setupcon", "console-setup")}

INPUTS_SUFFIX = ".inputs"
INITRD_PREFIX = "initrd.img-"
HOOK_NAME = "zz-vman-xen-initrd"
INPUTS_HEADER = "# vman.lifecycle.xen_initrd: the inputs this initrd was built from"

MODULE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: kernel releases as ``uname -r`` prints them; also what may follow ``initrd.img-`` in a path
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")
_PATH_RE = re.compile(r"/[A-Za-z0-9._+/-]*")
#: flags that would take over what the module itself controls
RESERVED_FLAGS = ("-f", "--force", "-m", "--modules", "--kver", "--install")


# ---- validation and pure helpers ----------------------------------------------------------

def split_flags(extra_flags) -> tuple:
    """Split the ``xen_vman_dracut_extra_flags`` string like a POSIX shell, without running one.

    A list is accepted as already split. Flags the module controls itself (``--kver``,
    ``--force``, ``--modules``, ``--install``) are rejected with a pointer to the option to use.
    """
    if extra_flags is None:
        return ()
    if isinstance(extra_flags, (list, tuple)):
        items = [str(item) for item in extra_flags]
    elif isinstance(extra_flags, str):
        try:
            items = shlex.split(extra_flags, comments=False, posix=True)
        except ValueError as exc:
            raise ValidationError(OBJ, "extra_flags", extra_flags, f"cannot be split: {exc}") from None
    else:
        raise ValidationError(OBJ, "extra_flags", extra_flags, "must be a string of dracut flags")
    for item in items:
        if "\n" in item or "\x00" in item:
            raise ValidationError(OBJ, "extra_flags", extra_flags, "must not contain line breaks")
        name = item.split("=", 1)[0]
        if name in RESERVED_FLAGS:
            raise ValidationError(OBJ, "extra_flags", extra_flags,
                                  f"{name} is set by the module (use the options modules, "
                                  "install_items, kernels or force)")
    return tuple(items)


def check_modules(modules) -> tuple:
    """Validate the dracut module list; keeps the order, drops repeats."""
    if isinstance(modules, str) or not isinstance(modules, (list, tuple)) or not modules:
        raise ValidationError(OBJ, "modules", modules, "must be a non-empty list of dracut module names")
    out = []
    for index, module in enumerate(modules):
        if not isinstance(module, str) or not MODULE_RE.fullmatch(module):
            raise ValidationError(OBJ, f"modules[{index}]", module, f"must match {MODULE_RE.pattern}")
        if module not in out:
            out.append(module)
    return tuple(out)


def check_version(field: str, version) -> str:
    """A kernel release safe to put into a path and an argv."""
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version) or ".." in version:
        raise ValidationError(OBJ, field, version, f"is not a kernel version (must match {VERSION_RE.pattern})")
    return version


def check_path(field: str, value) -> str:
    """An absolute path of plain characters (it goes into hook scripts and argv)."""
    if not isinstance(value, str) or not _PATH_RE.fullmatch(value) or "//" in value or "/../" in value:
        raise ValidationError(OBJ, field, value, "must be an absolute path of letters, digits and . _ + / -")
    return value.rstrip("/") or "/"


def install_items(modules, items=(), exists=os.path.exists) -> tuple:
    """Extra files for ``dracut --install``: ``items`` plus the iSCSI fix when ``iscsi`` is used."""
    out = []
    for index, item in enumerate(items or ()):
        out.append(check_path(f"install_items[{index}]", item))
    if "iscsi" in modules:
        out.extend(p for p in ISCSI_EXTRA_ITEMS if exists(p) and p not in out)
    return tuple(out)


def initrd_path(dest_dir: str, version: str) -> str:
    """``<dest_dir>/initrd.img-<version>``."""
    return os.path.join(dest_dir, INITRD_PREFIX + version)


def inputs_path(initrd: str) -> str:
    """The record of an initrd's inputs, beside it."""
    return initrd + INPUTS_SUFFIX


def render_inputs(version: str, kernel_sha256: str, dracut_version: str, modules, flags,
                  items) -> str:
    """The inputs record of one initrd (also written by the postinst hook: keep in step)."""
    return "\n".join([
        INPUTS_HEADER,
        f"kernel={version}",
        f"kernel_sha256={kernel_sha256}",
        f"dracut={dracut_version}",
        f"modules={' '.join(modules)}",
        f"extra_flags={shlex.join(flags)}",
        f"install_items={' '.join(items)}",
    ]) + "\n"


def parse_inputs(text: str | None) -> dict | None:
    """``key=value`` lines of an inputs record as a dict (None for a missing record)."""
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        out[key] = value
    return out


#: record keys in the order a reason names them
_REASON_KEYS = (("kernel", "kernel version"), ("kernel_sha256", "kernel file"),
                ("modules", "modules"), ("extra_flags", "extra_flags"),
                ("install_items", "install_items"), ("dracut", "dracut version"))


def rebuild_reason(initrd_exists: bool, recorded: dict | None, wanted: dict, force: bool = False):
    """Why an initrd must be built, or None when it is up to date.

    ``recorded`` is the parsed record on disk, ``wanted`` the record of this run.
    """
    if force:
        return "forced"
    if not initrd_exists:
        return "missing"
    if recorded is None:
        return "no inputs record (not built by xen_initrd)"
    changed = [label for key, label in _REASON_KEYS if recorded.get(key) != wanted.get(key)]
    if changed:
        return "changed: " + ", ".join(changed)
    return None


def dracut_argv(dracut: str, version: str, output: str, modules, flags, items) -> list:
    """The dracut command that builds ``output`` for kernel ``version`` (an argv, no shell)."""
    argv = [dracut, "--force", "--kver", version, "--modules", " ".join(modules)]
    if items:
        argv += ["--install", " ".join(items)]
    return argv + list(flags) + [output]


def installed_kernels(modules_dir: str = "/lib/modules", boot_dir: str = "/boot") -> list:
    """Versions with both ``<modules_dir>/<v>/`` and ``<boot_dir>/vmlinuz-<v>``, sorted."""
    try:
        names = os.listdir(modules_dir)
    except FileNotFoundError:
        return []
    out = [name for name in names
           if VERSION_RE.fullmatch(name) and os.path.isdir(os.path.join(modules_dir, name))
           and os.path.isfile(os.path.join(boot_dir, f"vmlinuz-{name}"))]
    return sorted(out)


def existing_initrds(dest_dir: str) -> dict:
    """``{version: managed}`` of the initrds in ``dest_dir`` (managed = an inputs record beside)."""
    out = {}
    for path in glob.glob(os.path.join(glob.escape(dest_dir), INITRD_PREFIX + "*")):
        name = os.path.basename(path)
        if name.endswith(INPUTS_SUFFIX):
            version = name[len(INITRD_PREFIX):-len(INPUTS_SUFFIX)]
            if VERSION_RE.fullmatch(version):
                out[version] = True
            continue
        version = name[len(INITRD_PREFIX):]
        if VERSION_RE.fullmatch(version) and os.path.isfile(path) and not os.path.islink(path):
            out.setdefault(version, os.path.exists(inputs_path(path)))
    return out


def file_sha256(path: str) -> str:
    """SHA-256 of a file, hex (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- kernel hooks -------------------------------------------------------------------------

_HOOK_HEAD = "#!/bin/sh\n# Managed by vman.lifecycle.xen_initrd; local changes are overwritten.\n"


def render_postinst_hook(dracut: str, dest_dir: str, boot_dir: str, modules, flags, items) -> str:
    """``/etc/kernel/postinst.d`` hook: build the guest initrd of a newly installed kernel.

    Writes the same inputs record as :func:`render_inputs`, so the next module run sees the
    initrd as up to date. Every value is quoted with :func:`shlex.quote`.
    """
    q = shlex.quote
    mods = " ".join(modules)
    tail = " ".join(q(f) for f in flags)
    install = f"--install {q(' '.join(items))} " if items else ""
    return _HOOK_HEAD + f"""# Called by the kernel packages as: {HOOK_NAME} VERSION [IMAGE]
set -eu
version=${{1:?usage: {HOOK_NAME} VERSION [IMAGE]}}
dest={q(dest_dir)}
kernel={q(boot_dir)}/vmlinuz-$version
if [ ! -f "$kernel" ]; then
    echo "{HOOK_NAME}: no $kernel, no guest initrd for $version" >&2
    exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp "$dest/.{INITRD_PREFIX}$version.XXXXXX")
trap 'rm -f "$tmp" "$tmp{INPUTS_SUFFIX}"' EXIT
echo "{HOOK_NAME}: building $dest/{INITRD_PREFIX}$version" >&2
{q(dracut)} --force --kver "$version" --modules {q(mods)} {install}{tail} "$tmp"
chmod 0644 "$tmp"
sum=$(sha256sum <"$kernel" | cut -d ' ' -f 1)
dracut_version=$({q(dracut)} --version 2>/dev/null | head -n 1)
{{
    echo {q(INPUTS_HEADER)}
    echo "kernel=$version"
    echo "kernel_sha256=$sum"
    echo "dracut=$dracut_version"
    echo {q('modules=' + mods)}
    echo {q('extra_flags=' + shlex.join(flags))}
    echo {q('install_items=' + ' '.join(items))}
}} >"$tmp{INPUTS_SUFFIX}"
mv -f "$tmp" "$dest/{INITRD_PREFIX}$version"
mv -f "$tmp{INPUTS_SUFFIX}" "$dest/{INITRD_PREFIX}$version{INPUTS_SUFFIX}"
"""


def render_postrm_hook(dest_dir: str) -> str:
    """``/etc/kernel/postrm.d`` hook: drop the guest initrd of a removed kernel."""
    q = shlex.quote
    return _HOOK_HEAD + f"""# Called by the kernel packages as: {HOOK_NAME} VERSION [IMAGE]
set -eu
version=${{1:?usage: {HOOK_NAME} VERSION [IMAGE]}}
rm -f {q(dest_dir)}/{INITRD_PREFIX}"$version" {q(dest_dir)}/{INITRD_PREFIX}"$version"{INPUTS_SUFFIX}
"""


# ---- the manager --------------------------------------------------------------------------

class InitrdManager:
    """Plan and apply the guest initrds of one host.

    ``runner`` runs argv lists (the module passes :func:`_runner.run`); paths are parameters so
    that tests can point the manager at a temporary tree.
    """

    def __init__(self, modules, extra_flags="", dest_dir="/etc/xen", kernels=None, hooks=False,
                 force=False, items=(), dracut="dracut", modules_dir="/lib/modules",
                 boot_dir="/boot", hook_dir="/etc/kernel", dracut_modules_dir="/usr/lib/dracut/modules.d",
                 build_timeout=3600, check_mode=False, runner=run, host_has=os.path.exists):
        self.modules = check_modules(modules)
        self.flags = split_flags(extra_flags)
        self.dest_dir = check_path("dest_dir", dest_dir)
        self.kernels = None if kernels is None else [check_version(f"kernels[{i}]", k)
                                                     for i, k in enumerate(kernels)]
        self.hooks = hooks
        self.force = force
        self.items = install_items(self.modules, items)
        self.dracut = dracut
        self.modules_dir = modules_dir
        self.boot_dir = check_path("boot_dir", boot_dir)
        self.hook_dir = check_path("hook_dir", hook_dir)
        self.dracut_modules_dir = dracut_modules_dir
        self.build_timeout = build_timeout
        self.check_mode = check_mode
        self.run = runner
        self.host_has = host_has

    # -- reading the host ---------------------------------------------------------------

    def dracut_version(self) -> str:
        """First line of ``dracut --version`` (e.g. ``dracut 059-4``).

        Debian's dracut 059 prints its version and exits 1, so the exit code is not checked;
        no output at all is an error.
        """
        result = self.run([self.dracut, "--version"], timeout=60, check=False)
        lines = (result.stdout or result.stderr).strip().splitlines()
        if not lines:
            raise CommandError(result.argv, result.rc, result.stdout, result.stderr,
                               reason="dracut --version printed nothing (is dracut installed?)")
        return lines[0].strip()

    def missing_dracut_modules(self) -> list:
        """Modules of the list that dracut does not have (``<NN><name>`` dirs)."""
        if not os.path.isdir(self.dracut_modules_dir):
            return []
        present = {re.sub(r"^[0-9]{2}", "", name) for name in os.listdir(self.dracut_modules_dir)}
        return [m for m in self.modules if m not in present]

    def unusable_dracut_modules(self) -> list:
        """``(module, file, package)`` of listed modules whose known requirement is missing."""
        return [(m, path, package) for m in self.modules if m in MODULE_NEEDS
                for path, package in [MODULE_NEEDS[m]] if not self.host_has(path)]

    def target_kernels(self) -> tuple:
        """(kernels to build for, all installed kernels)."""
        installed = installed_kernels(self.modules_dir, self.boot_dir)
        if self.kernels is None:
            return installed, installed
        for index, version in enumerate(self.kernels):
            if version not in installed:
                raise ValidationError(OBJ, f"kernels[{index}]", version,
                                      f"is not installed (no {self.modules_dir}/{version} with "
                                      f"{self.boot_dir}/vmlinuz-{version}); installed: "
                                      f"{', '.join(installed) or 'none'}")
        return list(self.kernels), installed

    def plan(self) -> dict:
        """What to build, remove and leave: a dict with ``build``, ``remove``, ``keep``, ``hooks``."""
        missing = self.missing_dracut_modules()
        if missing:
            raise ValidationError(OBJ, "modules", missing,
                                  f"not found in {self.dracut_modules_dir} (is dracut-network installed?)")
        unusable = self.unusable_dracut_modules()
        if unusable:
            raise ValidationError(OBJ, "modules", [m for m, _p, _k in unusable], "; ".join(
                f"dracut module {m} needs {path} (install the package {package} or drop {m})"
                for m, path, package in unusable))
        targets, installed = self.target_kernels()
        dracut_version = self.dracut_version() if targets else ""
        build, keep = [], []
        for version in targets:
            path = initrd_path(self.dest_dir, version)
            wanted_text = render_inputs(version, file_sha256(os.path.join(self.boot_dir, f"vmlinuz-{version}")),
                                        dracut_version, self.modules, self.flags, self.items)
            reason = rebuild_reason(os.path.isfile(path), parse_inputs(read_text(inputs_path(path))),
                                    parse_inputs(wanted_text), self.force)
            entry = {"kernel": version, "path": path, "inputs": wanted_text, "reason": reason or "up to date"}
            (build if reason else keep).append(entry)
        remove, foreign = [], []
        for version, managed in sorted(existing_initrds(self.dest_dir).items()):
            if version in installed:
                continue
            entry = {"kernel": version, "path": initrd_path(self.dest_dir, version)}
            if managed:
                remove.append(dict(entry, reason="kernel no longer installed"))
            else:
                foreign.append(dict(entry, reason="kernel not installed, but not built by xen_initrd: left alone"))
        return {"build": build, "keep": keep, "remove": remove, "foreign": foreign,
                "hooks": self.plan_hooks()}

    def hook_files(self) -> dict:
        """``{path: text}`` of the kernel hooks (empty text: remove)."""
        post_inst = os.path.join(self.hook_dir, "postinst.d", HOOK_NAME)
        post_rm = os.path.join(self.hook_dir, "postrm.d", HOOK_NAME)
        if not self.hooks:
            return {post_inst: None, post_rm: None}
        return {
            post_inst: render_postinst_hook(self.dracut, self.dest_dir, self.boot_dir, self.modules,
                                            self.flags, self.items),
            post_rm: render_postrm_hook(self.dest_dir),
        }

    def plan_hooks(self) -> list:
        """Hook files whose content (or presence) differs from what they should be."""
        out = []
        for path, text in self.hook_files().items():
            current = read_text(path)
            if current != text:
                out.append({"path": path, "before": current, "after": text})
        return out

    # -- acting -------------------------------------------------------------------------

    def build(self, entry) -> None:
        """Build one initrd into a temp file, then rename it and its record into place."""
        os.makedirs(self.dest_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{INITRD_PREFIX}{entry['kernel']}.", dir=self.dest_dir)
        os.close(fd)
        try:
            argv = dracut_argv(self.dracut, entry["kernel"], tmp, self.modules, self.flags, self.items)
            try:
                self.run(argv, timeout=self.build_timeout)
            except CommandError as exc:
                exc.args = (f"{OBJ}: building the initrd of kernel {entry['kernel']} failed: {exc}",)
                raise
            if not os.path.getsize(tmp):
                raise CommandError(argv, 0, reason=f"dracut left an empty initrd for {entry['kernel']}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, entry["path"])
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        write_atomic(inputs_path(entry["path"]), entry["inputs"])

    def apply(self):
        """Converge; return ``(result, diff)`` for the module."""
        plan = self.plan()
        if not self.check_mode:
            for hook in plan["hooks"]:
                if hook["after"] is None:
                    os.unlink(hook["path"])
                else:
                    write_atomic(hook["path"], hook["after"], mode=0o755)
            for entry in plan["build"]:
                self.build(entry)
            for entry in plan["remove"]:
                for path in (entry["path"], inputs_path(entry["path"])):
                    if os.path.lexists(path):
                        os.unlink(path)
        initrds = [{"kernel": e["kernel"], "path": e["path"], "changed": True, "reason": e["reason"],
                    "action": "build"} for e in plan["build"]]
        initrds += [{"kernel": e["kernel"], "path": e["path"], "changed": False, "reason": e["reason"],
                     "action": "none"} for e in plan["keep"] + plan["foreign"]]
        initrds += [{"kernel": e["kernel"], "path": e["path"], "changed": True, "reason": e["reason"],
                     "action": "remove"} for e in plan["remove"]]
        initrds.sort(key=lambda e: (e["kernel"], e["path"]))
        result = {
            "changed": bool(plan["build"] or plan["remove"] or plan["hooks"]),
            "initrds": initrds,
            "hooks": [{"path": h["path"], "changed": True,
                       "state": "absent" if h["after"] is None else "present"} for h in plan["hooks"]],
        }
        return result, render_diff(plan)


def render_diff(plan: dict) -> dict:
    """Before/after lists of the initrds (and hooks) the run builds or removes."""
    before, after = [], []
    for entry in plan["build"]:
        existed = os.path.isfile(entry["path"])
        if existed:
            before.append(f"{entry['path']}\n")
        after.append(f"{entry['path']} (built: {entry['reason']})\n")
    for entry in plan["remove"]:
        before.append(f"{entry['path']}\n")
    for hook in plan["hooks"]:
        if hook["before"] is not None:
            before.append(f"{hook['path']} (hook)\n")
        if hook["after"] is not None:
            after.append(f"{hook['path']} (hook)\n")
    return {"before_header": "initrds", "after_header": "initrds",
            "before": "".join(sorted(before)), "after": "".join(sorted(after))}
