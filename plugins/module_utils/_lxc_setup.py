# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files and one-time commands inside running LXC containers, through ``lxc-attach``.

Private module: no stability promise. Nothing here needs Python, SSH or a mounted rootfs in
the guest: every read and write is an argv run by ``lxc-attach`` (``stat``, ``cat``, ``tee``,
``chmod``, ``chown``, ``mv``), so it works for every backing store (lvm roots are not mounted
on the host). Used by the ``lxc_guest_setup`` module and, through it, by the
``lxc_provision`` role's hosts file, SSH keys, facts and initial setup steps.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc

#: Where the initial setup records that it ran (content: a hash of what it ran).
DEFAULT_MARKER = "/etc/vman/initial-setup.done"
#: Host keys a guest may have; the public halves are returned for known_hosts.
HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")

_MODE_RE = re.compile(r"0?[0-7]{3}")
_PATH_RE = re.compile(r"(?:~[a-z_][a-z0-9_-]{0,31})?(?:/[A-Za-z0-9._+@-]+)+")


def normalize_mode(mode, obj="lxc", field_name="mode") -> str:
    """``'0644'`` / ``'644'`` -> ``'644'`` (the form ``stat -c %a`` prints)."""
    text = str(mode)
    if not _MODE_RE.fullmatch(text):
        raise ValidationError(obj, field_name, mode, "must be an octal mode like '0644'")
    return text[-3:].lstrip("0") or "0"


def validate_path(path, obj="lxc", field_name="path") -> str:
    """An absolute guest path, or ``~user/...``; no ``..`` and no empty parts."""
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path) or \
            any(part in (".", "..") for part in path.split("/")):
        raise ValidationError(obj, field_name, path, "must be an absolute path (or ~user/path) "
                              "of letters, digits and . _ + @ -, without '..'")
    return path


def validate_argv(argv, obj="lxc", field_name="commands") -> list:
    """A command as an argv list of single-line strings (never a shell string)."""
    if not isinstance(argv, (list, tuple)) or not argv:
        raise ValidationError(obj, field_name, argv, "each command must be a non-empty argv list")
    out = []
    for item in argv:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise ValidationError(obj, field_name, argv, "argv items must be strings")
        out.append(_lxc._no_newline(item, obj, field_name))
    return out


@dataclass
class FileSpec:
    """One file inside a guest."""

    path: str
    content: str | None = None
    mode: str = "644"
    owner: str = "root"
    group: str | None = None
    dir_mode: str = "755"
    state: str = "present"


@dataclass
class GuestSpec:
    """What to apply inside one container."""

    name: str
    files: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    regenerate_host_keys: bool = False
    marker: str = DEFAULT_MARKER

    @property
    def runs_once(self) -> bool:
        return bool(self.commands) or self.regenerate_host_keys


def build_file(entry, obj) -> FileSpec:
    """Validate one ``files`` entry of a container."""
    if not isinstance(entry, dict):
        raise ValidationError(obj, "files", entry, "each entry must be a mapping")
    path = validate_path(entry.get("path"), obj, "files.path")
    state = entry.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError(obj, "files.state", state, "must be present or absent")
    content = entry.get("content")
    if state == "present" and not isinstance(content, str):
        raise ValidationError(obj, "files.content", content,
                              f"{path}: a present file needs its content as a string")
    owner = _lxc.validate_user(entry.get("owner") or "root", obj)
    group = _lxc.validate_user(entry["group"], obj) if entry.get("group") else None
    return FileSpec(path=path, content=content, state=state, owner=owner, group=group,
                    mode=normalize_mode(entry.get("mode") or "0644", obj, "files.mode"),
                    dir_mode=normalize_mode(entry.get("dir_mode") or "0755", obj,
                                            "files.dir_mode"))


def build_guest(entry) -> GuestSpec:
    """Validate one ``containers`` entry of the module."""
    name = _lxc.validate_name((entry or {}).get("name"))
    files = [build_file(f, name) for f in entry.get("files") or []]
    paths = [f.path for f in files]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise ValidationError(name, "files.path", dupes[0], "appears twice")
    return GuestSpec(
        name=name, files=files,
        commands=[validate_argv(c, name) for c in entry.get("commands") or []],
        regenerate_host_keys=bool(entry.get("regenerate_host_keys")),
        marker=validate_path(entry.get("marker") or DEFAULT_MARKER, name, "marker"))


def build_guests(entries) -> list:
    specs = [build_guest(e) for e in entries or []]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(dupes[0], "name", dupes[0], "appears twice in containers")
    return specs


def setup_fingerprint(spec) -> str:
    """What the one-time setup ran, as a hash written into the marker file."""
    blob = json.dumps([spec.commands, spec.regenerate_host_keys], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def host_key_commands() -> list:
    """Argv lists that replace a clone's SSH host keys (inherited from its origin)."""
    return [["find", "/etc/ssh", "-maxdepth", "1", "-type", "f", "-name", "ssh_host_*", "-delete"],
            ["ssh-keygen", "-A"]]


def parse_stat(text):
    """``'644|root|root|regular file'`` -> ``('644', 'root', 'root', 'regular file')``."""
    parts = text.strip().split("|", 3)
    if len(parts) != 4:
        raise StateError(f"unexpected stat output {text!r}")
    return tuple(parts)


class GuestSetup:
    """Apply :class:`GuestSpec` objects inside running containers of one lxcpath."""

    def __init__(self, backend, check_mode=False, boot_timeout=90):
        self.backend = backend
        self.check_mode = check_mode
        self.boot_timeout = boot_timeout

    # -- small wrappers around lxc-attach
    def _stat(self, name, path):
        res = self.backend.attach(name, ["stat", "-c", "%a|%U|%G|%F", "--", path], check=False)
        return parse_stat(res.stdout) if res.rc == 0 else None

    def _exists(self, name, path) -> bool:
        return self.backend.attach(name, ["test", "-e", path], check=False).rc == 0

    def _home(self, name, user) -> str:
        res = self.backend.attach(name, ["getent", "passwd", user], check=False)
        entry = res.stdout.strip().split(":")
        if res.rc != 0 or len(entry) < 7 or not entry[5].startswith("/"):
            raise StateError(f"{name}: user {user!r} does not exist in the guest (or has no "
                             "home directory)")
        return entry[5].rstrip("/") or "/"

    def resolve_path(self, name, path) -> str:
        """``~user/x`` -> ``<home of user>/x`` read from the guest's passwd."""
        if not path.startswith("~"):
            return path
        user, _sep, rest = path[1:].partition("/")
        return posixpath.join(self._home(name, user), rest)

    # -- files
    def apply_file(self, name, spec, actions):
        """Converge one file; returns ``(before, after)`` texts for the diff."""
        be = self.backend
        path = self.resolve_path(name, spec.path)
        current = self._stat(name, path)
        if current and current[3] != "regular file":
            raise StateError(f"{name}: {path} is a {current[3]}, not a regular file; "
                             "it is left alone")
        before = be.attach(name, ["cat", "--", path]).stdout if current else None
        if spec.state == "absent":
            if current:
                actions.append(f"remove {path}")
                if not self.check_mode:
                    be.attach(name, ["rm", "-f", "--", path])
            return before, None
        group = spec.group or spec.owner
        wanted_meta = (spec.mode, spec.owner, group)
        if current and before == spec.content and tuple(current[:3]) == wanted_meta:
            return before, before
        actions.append(f"write {path}" if before != spec.content or not current
                       else f"set mode/owner of {path}")
        if self.check_mode:
            return before, spec.content
        parent = posixpath.dirname(path)
        if not self._exists(name, parent):
            be.attach(name, ["mkdir", "-p", "-m", spec.dir_mode, "--", parent])
            be.attach(name, ["chown", f"{spec.owner}:{group}", "--", parent])
        tmp = f"{parent}/.vman-{posixpath.basename(path)}.tmp"
        be.attach(name, ["tee", "--", tmp], data=spec.content)
        be.attach(name, ["chmod", spec.mode, "--", tmp])
        be.attach(name, ["chown", f"{spec.owner}:{group}", "--", tmp])
        be.attach(name, ["mv", "-f", "--", tmp, path])
        return before, spec.content

    # -- the one-time initial setup
    def run_once(self, name, spec, actions):
        be = self.backend
        if self._exists(name, spec.marker):
            return
        actions.append("initial setup")
        if self.check_mode:
            return
        if self._exists(name, "/usr/bin/systemctl") or self._exists(name, "/bin/systemctl"):
            _lxc.wait_running_system(be, name, timeout=self.boot_timeout)
        if spec.regenerate_host_keys:
            if self._exists(name, "/usr/bin/ssh-keygen"):
                for argv in host_key_commands():
                    be.attach(name, argv, timeout=300)
                # best effort: sshd re-reads its keys on restart; no systemd means no restart
                be.attach(name, ["systemctl", "try-restart", "ssh.service"], check=False)
                actions.append("regenerate ssh host keys")
            else:
                actions.append("no ssh-keygen in the guest: host keys left alone")
        for argv in spec.commands:
            be.attach(name, argv, timeout=1800)
            actions.append("run " + argv[0])
        parent = posixpath.dirname(spec.marker)
        be.attach(name, ["mkdir", "-p", "--", parent])
        be.attach(name, ["tee", "--", spec.marker], data=setup_fingerprint(spec) + "\n")

    def host_keys(self, name) -> list:
        """Public SSH host keys of the guest (``'<type> <base64>'``), for known_hosts."""
        out = []
        for kind in HOST_KEY_TYPES:
            res = self.backend.attach(name, ["cat", "--", f"/etc/ssh/ssh_host_{kind}_key.pub"],
                                      check=False)
            words = res.stdout.split()
            if res.rc == 0 and len(words) >= 2:
                out.append(f"{words[0]} {words[1]}")
        return out

    # -- the batch
    def converge(self, specs):
        """Apply every spec; returns ``(results, diffs, changed)``."""
        results, diffs = [], []
        for spec in specs:
            state = self.backend.state(spec.name)
            result = {"name": spec.name, "changed": False, "actions": [], "ssh_host_keys": []}
            if state != "RUNNING":
                if not self.check_mode:
                    raise StateError(f"{spec.name}: container is {(state or 'absent').lower()}; "
                                     "files and commands are applied through lxc-attach into "
                                     "a running container")
                # check mode after a planned (not yet done) spawn: everything would be applied
                result["actions"] = [f"write {f.path}" for f in spec.files if f.state == "present"]
                if spec.runs_once:
                    result["actions"].append("initial setup")
                result["changed"] = bool(result["actions"])
                result["skipped_reason"] = "container not running yet (check mode)"
                results.append(result)
                continue
            for fspec in spec.files:
                before, after = self.apply_file(spec.name, fspec, result["actions"])
                if before != after:
                    diffs.append({"before_header": f"{spec.name}:{fspec.path}",
                                  "after_header": f"{spec.name}:{fspec.path}",
                                  "before": before or "", "after": after or ""})
            if spec.runs_once:
                self.run_once(spec.name, spec, result["actions"])
            result["ssh_host_keys"] = self.host_keys(spec.name)
            result["changed"] = bool(result["actions"])
            results.append(result)
        return results, diffs, any(r["changed"] for r in results)
