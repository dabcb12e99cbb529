# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd units of the Xen host (private, no stability promise).

Pure functions render ``vm@.service``, ``vm_iscsi@.service``, ``vm_mount@.service``, the
global ``vm_prepare.service`` and the helper scripts they call. :class:`UnitInstaller`
verifies them with ``systemd-analyze verify`` and writes only what changed. The
``systemctl`` wrapper starts, stops and enables ``vm@<org>-<name>.service``.

Per-VM files beside the xl.cfg (written by the VM-side modules, rendered here):
``<config_path>/<org>-<name>.iscsi`` marks an iSCSI root and names target and portal;
``<config_path>/<org>-<name>.root`` names the root's mount source and filesystem type.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, ValidationError, bad_char
from ansible_collections.vman.lifecycle.plugins.module_utils._files import write_atomic
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Runner, fmt_flag, fmt_positional, run

VM_UNIT = "vm@.service"
ISCSI_UNIT = "vm_iscsi@.service"
MOUNT_UNIT = "vm_mount@.service"
PREPARE_UNIT = "vm_prepare.service"
STOP_HELPER = "vm-stop"
ISCSI_HELPER = "vm-iscsi"
MOUNT_HELPER = "vm-mount"
# iscsiadm: 15 = session exists (already logged in), 21 = no session/record (already out)
ISCSI_LOGIN_OK = (15,)
ISCSI_LOGOUT_OK = (21,)
# seconds the stop helper waits for an ``xl destroy`` to finish
DESTROY_WAIT = 30

# Paths go into unit files and argv verbatim: no spaces, no "%" specifiers, no quotes.
_PATH_RE = re.compile(r"/[A-Za-z0-9._+/-]*")
_ENV_VALUE_RE = re.compile(r"[A-Za-z0-9._:/@,+=\[\]-]+")

# where the domain configs live (the xen_vman role's vm_config_path): the one place in Python
XEN_CONFIG_PATH = "/etc/xen/vms"

DEFAULTS = {
    "config_path": XEN_CONFIG_PATH,
    "xl_path": "/usr/sbin/xl",
    "iscsiadm_path": "/usr/bin/iscsiadm",
    "helper_path": "/usr/local/libexec/vman",
    "mount_base": "/mnt/vms",
    "initrd_link": "/etc/xen/initrd.img",
    "start_timeout": 15,
    "stop_timeout": 300,
    "iscsi_login_timeout": 40,
    "iscsi_logout_timeout": 40,
    "mount_timeout": 20,
    "umount_timeout": 20,
    "prepare_timeout": 300,
}
#: settings that are not paths or timeouts (validated by their own functions)
_OTHER = {"prepare_commands": ()}

#: in a command given as one string: shell syntax that has no meaning without a shell
_SHELL_CHARS = frozenset("|&;<>()$`\\*?[]{}~#!\n")
_COMMAND_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]{1,255}")


def vm_unit(full_name: str) -> str:
    """The unit that runs a domain: ``vm@<org>-<name>.service``."""
    return f"vm@{full_name}.service"


# ---- validation ---------------------------------------------------------------------------

def check_path(field: str, value) -> str:
    """Return ``value`` when it is an absolute path safe to put into a unit file."""
    if not isinstance(value, str) or not _PATH_RE.fullmatch(value) or "//" in value:
        raise ValidationError("xen_units", field, value,
                              "must be an absolute path of letters, digits and . _ + / -")
    return value.rstrip("/") or "/"


def check_timeout(field: str, value) -> int:
    """Return ``value`` when it is a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("xen_units", field, value, "must be a positive integer (seconds)")
    return value


def find_binary(name: str, fallback: str) -> str:
    """``name`` on PATH or in the sbin directories, else ``fallback`` (verify then says so)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
    return shutil.which(name, path=search) or fallback


def settings(**given) -> dict:
    """Merge ``given`` (None means default) over :data:`DEFAULTS` and validate every value."""
    unknown = set(given) - set(DEFAULTS) - set(_OTHER)
    if unknown:
        raise ValidationError("xen_units", sorted(unknown)[0], given[sorted(unknown)[0]], "unknown setting")
    out = dict(DEFAULTS)
    out.update({k: v for k, v in given.items() if v is not None and k in DEFAULTS})
    for key, value in out.items():
        out[key] = check_timeout(key, value) if key.endswith("_timeout") else check_path(key, value)
    out["prepare_commands"] = prepare_commands(given.get("prepare_commands"))
    return out


def prepare_commands(value, field: str = "prepare_commands") -> tuple:
    """The extra commands of ``vm_prepare.service`` as argv tuples.

    The original role (``xen_vman_additional_global_prepare``) pasted each entry as a line into
    a bash script. Here a command is a list of arguments, or one string split like a shell
    splits words (quotes honoured); a string that needs a shell (pipes, redirections, ``$``,
    globs, ``;`` ...) is refused: put such code into a script and give the script's path.
    """
    if value in (None, ""):
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValidationError("xen_units", field, value, "must be a list of commands")
    out = []
    for index, command in enumerate(value):
        fld = f"{field}[{index}]"
        if isinstance(command, str):
            shell = sorted(ch for ch in set(command) if ch in _SHELL_CHARS)
            if shell:
                raise ValidationError(
                    "xen_units", fld, command,
                    f"uses shell syntax ({' '.join(shell)!s}), and no shell runs it: give the "
                    "command as a list of arguments, or put the shell code into a script "
                    "and give the script's path")
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise ValidationError("xen_units", fld, command, f"cannot be split: {exc}") from None
        elif isinstance(command, (list, tuple)) and all(isinstance(a, str) for a in command):
            argv = list(command)
        else:
            raise ValidationError("xen_units", fld, command,
                                  "must be a string or a list of strings")
        if not argv:
            raise ValidationError("xen_units", fld, command, "is empty")
        for pos, arg in enumerate(argv):
            ch = bad_char(arg)
            if ch is not None:
                raise ValidationError("xen_units", f"{fld}[{pos}]", arg,
                                      f"must not contain control characters (found U+{ord(ch):04X})")
        if not (_PATH_RE.fullmatch(argv[0]) or _COMMAND_NAME_RE.fullmatch(argv[0])) \
                or argv[0][0] in "-@+!:":
            raise ValidationError("xen_units", f"{fld}[0]", argv[0],
                                  "must be an absolute path or a command name "
                                  "(letters, digits and . _ + -)")
        out.append(tuple(argv))
    return tuple(out)


def exec_line(argv) -> str:
    """``argv`` as the value of an ``Exec*=`` line that systemd splits back into ``argv``.

    Each argument is double-quoted with ``\\`` and ``"`` escaped; ``%`` (specifiers) and
    ``$`` (environment variables) are doubled, so nothing is expanded.
    """
    def quote(arg):
        arg = arg.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + arg.replace("%", "%%").replace("$", "$$") + '"'
    return " ".join([argv[0].replace("%", "%%")] + [quote(a) for a in argv[1:]])


def stop_wait(stop_timeout: int) -> int:
    """Seconds the stop helper waits for a clean shutdown before it destroys the domain.

    Leaves room for the destroy inside ``TimeoutStopSec`` so systemd never kills the helper
    while the domain still exists.
    """
    return max(1, stop_timeout - DESTROY_WAIT - 5) if stop_timeout > 2 * (DESTROY_WAIT + 5) \
        else max(1, stop_timeout // 2)


# ---- unit text ----------------------------------------------------------------------------

def render_unit(sections) -> str:
    """Render ``[(section, [(key, value), ...]), ...]`` as unit file text."""
    blocks = []
    for section, entries in sections:
        lines = [f"[{section}]"] + [f"{key}={value}" for key, value in entries]
        blocks.append("\n".join(lines) + "\n")
    return "# Managed by vman.lifecycle.xen_units; local changes are overwritten.\n" + "\n".join(blocks)


def _helper(s, name):
    return f"{s['helper_path']}/{name}"


def render_vm(s: dict) -> str:
    """``vm@.service``: one Xen domain named like the instance (``<org>-<name>``)."""
    return render_unit([
        ("Unit", [
            ("Description", "Xen VM %i"),
            # a VM whose config is gone (removed by hand, host half migrated) is skipped at
            # boot instead of failing, as with the original role's units
            ("ConditionPathExists", f"{s['config_path']}/%i.cfg"),
            ("Wants", PREPARE_UNIT),
            ("Requires", "vm_iscsi@%i.service"),
            ("Conflicts", "vm_mount@%i.service"),
            # vm_mount@ is stopped before the domain starts (any ordering orders stop first)
            ("After", f"{PREPARE_UNIT} vm_iscsi@%i.service vm_mount@%i.service "
                      "xenstored.service xenconsoled.service network-online.target"),
        ]),
        ("Service", [
            # xl create daemonizes its domain monitor: the unit follows the monitor, so a
            # shutdown from inside the guest leaves the unit inactive
            ("Type", "forking"),
            ("ExecStart", f"{s['xl_path']} create {s['config_path']}/%i.cfg"),
            ("ExecStop", f"{_helper(s, STOP_HELPER)} {s['xl_path']} %i {stop_wait(s['stop_timeout'])}"),
            ("TimeoutStartSec", str(s["start_timeout"])),
            ("TimeoutStopSec", str(s["stop_timeout"])),
        ]),
        ("Install", [("WantedBy", "multi-user.target")]),
    ])


def render_iscsi(s: dict) -> str:
    """``vm_iscsi@.service``: login/logout of a VM's iSCSI root; skipped without the marker."""
    marker = f"{s['config_path']}/%i.iscsi"
    args = "${VMAN_ISCSI_TARGET} ${VMAN_ISCSI_PORTAL}"
    return render_unit([
        ("Unit", [
            ("Description", "iSCSI root disk of Xen VM %i"),
            ("ConditionPathExists", marker),
            ("Wants", "network-online.target"),
            ("After", "network-online.target iscsid.service"),
        ]),
        ("Service", [
            ("Type", "oneshot"),
            ("RemainAfterExit", "yes"),
            ("EnvironmentFile", marker),
            ("ExecStart", f"{_helper(s, ISCSI_HELPER)} {s['iscsiadm_path']} login {args}"),
            ("ExecStop", f"{_helper(s, ISCSI_HELPER)} {s['iscsiadm_path']} logout {args}"),
            ("TimeoutStartSec", str(s["iscsi_login_timeout"])),
            ("TimeoutStopSec", str(s["iscsi_logout_timeout"])),
        ]),
    ])


def mount_start_timeout(s: dict) -> int:
    """``TimeoutStartSec`` of ``vm_mount@``: the wait for an iSCSI device, then the mount."""
    return s["iscsi_login_timeout"] + s["mount_timeout"]


def render_mount(s: dict) -> str:
    """``vm_mount@.service``: the VM's root mounted at ``<mount_base>/%i`` while the VM is off.

    NFS roots and iSCSI roots alike (``<org>-<name>.root`` names source and type); a device
    under ``/dev`` is first waited for, up to ``iscsi_login_timeout`` seconds (udev creates the
    by-path link a moment after the login returns).
    """
    target = f"{s['mount_base']}/%i"
    return render_unit([
        ("Unit", [
            ("Description", f"Root filesystem of Xen VM %i mounted at {target}"),
            ("Requires", "vm_iscsi@%i.service"),
            ("Conflicts", "vm@%i.service"),
            # no After=vm@: vm@ orders itself after us, both ways would be an ordering cycle
            ("After", "vm_iscsi@%i.service network-online.target"),
        ]),
        ("Service", [
            ("Type", "oneshot"),
            ("RemainAfterExit", "yes"),
            ("EnvironmentFile", f"{s['config_path']}/%i.root"),
            ("ExecStartPre", f"/bin/mkdir -p {target}"),
            ("ExecStart", f"{_helper(s, MOUNT_HELPER)} /bin/mount ${{VMAN_ROOT_FSTYPE}} "
                          f"${{VMAN_ROOT_SOURCE}} {target} {s['iscsi_login_timeout']}"),
            ("ExecStop", f"/bin/umount {target}"),
            # "-": a mount point someone still uses stays, the unit still stops
            ("ExecStopPost", f"-/bin/rmdir {target}"),
            ("TimeoutStartSec", str(mount_start_timeout(s))),
            ("TimeoutStopSec", str(s["umount_timeout"])),
        ]),
    ])


def render_prepare(s: dict) -> str:
    """``vm_prepare.service``: point the shared initrd link at the running kernel's initrd,
    then run the extra ``prepare_commands`` (each must succeed), once per boot before any VM."""
    link = s["initrd_link"]
    return render_unit([
        ("Unit", [
            ("Description", f"Point {link} at the initrd of the running kernel"),
        ]),
        ("Service", [
            ("Type", "oneshot"),
            ("RemainAfterExit", "yes"),
            # %v is the running kernel release; fail visibly when its initrd is missing
            ("ExecStartPre", f"/usr/bin/test -e {link}-%v"),
            ("ExecStart", f"/bin/ln -sfn {link}-%v {link}"),
        ] + [("ExecStart", exec_line(argv)) for argv in s["prepare_commands"]] + [
            ("TimeoutStartSec", str(s["prepare_timeout"])),
        ]),
        ("Install", [("WantedBy", "multi-user.target")]),
    ])


def render_stop_helper() -> str:
    """``vm-stop XL DOMAIN WAIT``: shut down, wait until ``xl domid`` fails, else destroy."""
    return f"""#!/bin/sh
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
# vm-stop XL DOMAIN WAIT: shut DOMAIN down and return only when xl no longer knows it.
# A plain "xl shutdown -w" can return while the domain hangs in state --ps--.
set -u
if [ "$#" -ne 3 ]; then
    echo "usage: vm-stop XL DOMAIN WAIT" >&2
    exit 2
fi
xl=$1
domain=$2
wait=$3
gone() {{
    ! "$xl" domid "$domain" >/dev/null 2>&1
}}
gone && exit 0
# Deadlines are wall-clock seconds: under load each "xl domid" takes seconds too, and a loop
# counter overran TimeoutStopSec, so systemd killed the helper with the domain still there.
now() {{
    date +%s
}}
"$xl" shutdown -F "$domain" || echo "vm-stop: xl shutdown $domain failed" >&2
deadline=$(( $(now) + wait ))
while ! gone; do
    if [ "$(now)" -ge "$deadline" ]; then
        echo "vm-stop: $domain still exists after $wait s, destroying it" >&2
        "$xl" destroy "$domain" || true
        deadline=$(( $(now) + {DESTROY_WAIT} ))
        while ! gone; do
            if [ "$(now)" -ge "$deadline" ]; then
                echo "vm-stop: $domain still exists after xl destroy" >&2
                exit 1
            fi
            sleep 1
        done
        exit 0
    fi
    sleep 1
done
exit 0
"""


def render_iscsi_helper() -> str:
    """``vm-iscsi ISCSIADM login|logout TARGET PORTAL``: idempotent login and logout."""
    login_ok = " ".join(str(c) for c in ISCSI_LOGIN_OK)
    logout_ok = " ".join(str(c) for c in ISCSI_LOGOUT_OK)
    return f"""#!/bin/sh
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
# vm-iscsi ISCSIADM login|logout TARGET PORTAL
set -u
if [ "$#" -ne 4 ]; then
    echo "usage: vm-iscsi ISCSIADM login|logout TARGET PORTAL" >&2
    exit 2
fi
iscsiadm=$1
action=$2
target=$3
portal=$4
accept() {{
    rc=$1
    shift
    [ "$rc" -eq 0 ] && return 0
    for ok in "$@"; do
        [ "$rc" -eq "$ok" ] && return 0
    done
    return "$rc"
}}
case "$action" in
    login)
        "$iscsiadm" -m discovery -t sendtargets -p "$portal" >/dev/null || exit $?
        "$iscsiadm" -m node -T "$target" -p "$portal" --login
        accept $? {login_ok}
        ;;
    logout)
        "$iscsiadm" -m node -T "$target" -p "$portal" --logout
        accept $? {logout_ok}
        ;;
    *)
        echo "vm-iscsi: unknown action $action" >&2
        exit 2
        ;;
esac
"""


def render_mount_helper() -> str:
    """``vm-mount MOUNT FSTYPE SOURCE TARGET WAIT``: wait for a device, then mount it."""
    return """#!/bin/sh
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
# vm-mount MOUNT FSTYPE SOURCE TARGET WAIT: mount SOURCE at TARGET. A SOURCE under /dev (an
# iSCSI LUN's by-path link, which udev makes a moment after the login) is waited for up to
# WAIT seconds first; any other source (an NFS export, tmpfs) is mounted at once.
set -u
if [ "$#" -ne 5 ]; then
    echo "usage: vm-mount MOUNT FSTYPE SOURCE TARGET WAIT" >&2
    exit 2
fi
mount=$1
fstype=$2
source=$3
target=$4
wait=$5
case "$source" in
    /dev/*)
        deadline=$(( $(date +%s) + wait ))
        while [ ! -b "$source" ]; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "vm-mount: no block device $source after $wait s (iSCSI login?)" >&2
                exit 1
            fi
            sleep 1
        done
        ;;
esac
exec "$mount" -t "$fstype" "$source" "$target"
"""


def _env_value(field, value):
    if not isinstance(value, str) or not _ENV_VALUE_RE.fullmatch(value):
        raise ValidationError("xen_units", field, value,
                              "must be letters, digits and . _ : / @ , + = - only")
    return value


def render_iscsi_marker(target: str, portal: str) -> str:
    """``<config_path>/<org>-<name>.iscsi``: marks an iSCSI root for ``vm_iscsi@``."""
    return (f"VMAN_ISCSI_TARGET={_env_value('iscsi_target', target)}\n"
            f"VMAN_ISCSI_PORTAL={_env_value('iscsi_portal', portal)}\n")


def render_root_env(source: str, fstype: str) -> str:
    """``<config_path>/<org>-<name>.root``: what ``vm_mount@`` mounts, and as which type."""
    return (f"VMAN_ROOT_SOURCE={_env_value('root_source', source)}\n"
            f"VMAN_ROOT_FSTYPE={_env_value('root_fstype', fstype)}\n")


def render_all(s: dict) -> dict:
    """Every file of the Xen host's units: ``{(kind, file name): (text, mode)}``."""
    return {
        ("unit", VM_UNIT): (render_vm(s), 0o644),
        ("unit", ISCSI_UNIT): (render_iscsi(s), 0o644),
        ("unit", MOUNT_UNIT): (render_mount(s), 0o644),
        ("unit", PREPARE_UNIT): (render_prepare(s), 0o644),
        ("helper", STOP_HELPER): (render_stop_helper(), 0o755),
        ("helper", ISCSI_HELPER): (render_iscsi_helper(), 0o755),
        ("helper", MOUNT_HELPER): (render_mount_helper(), 0o755),
    }


# ---- verification -------------------------------------------------------------------------

def verify_units(s: dict, analyze: str | None = None, runner=run) -> None:
    """Run ``systemd-analyze verify`` on the units rendered from settings ``s``.

    The units sit side by side in a temporary directory so their dependencies on each other
    resolve, with the helper scripts rendered beside them (so verify checks the units before
    anything is installed); templates are checked as an instance. A failure, or any warning
    about one of these units (an unknown key, a value systemd ignores), raises
    :class:`CommandError`.
    """
    analyze = analyze or shutil.which("systemd-analyze") or "systemd-analyze"
    with tempfile.TemporaryDirectory(prefix="vman-units-") as tmp:
        helpers = os.path.join(tmp, "libexec")
        os.mkdir(helpers)
        paths = []
        for (kind, name), (text, mode) in sorted(render_all(dict(s, helper_path=helpers)).items()):
            path = os.path.join(helpers if kind == "helper" else tmp, name)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, mode)
            if kind == "unit":
                paths.append(path)
        argv = [analyze, "verify", "--man=no", "--generators=no"] + paths
        result = runner(argv, timeout=120, check=False)
        names = [os.path.basename(p).replace("@.", "@i.") for p in paths]
        ours = [line.replace(tmp + "/", "").replace(helpers, s["helper_path"])
                for line in (result.stdout + result.stderr).splitlines()
                if tmp in line or any(line.startswith(n + ":") for n in names)]
        if result.rc != 0 or ours:
            detail = "; ".join(ours) or result.stderr.strip() or f"exit code {result.rc}"
            raise CommandError(argv, result.rc, result.stdout, result.stderr,
                               reason="systemd-analyze verify rejected the rendered units: " + detail)


def check_shell(texts: dict, runner=run) -> None:
    """``sh -n`` each helper script text ``{name: text}``; raise on a syntax error."""
    for name, text in texts.items():
        result = runner(["/bin/sh", "-n"], timeout=30, check=False, data=text)
        if result.rc != 0:
            raise CommandError(["/bin/sh", "-n", name], result.rc, result.stdout, result.stderr,
                               reason=f"helper {name} is not valid sh: {result.stderr.strip()}")


# ---- installation -------------------------------------------------------------------------

def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def systemd_booted(run_dir: str = "/run/systemd/system") -> bool:
    """Whether PID 1 is systemd (the test ``sd_booted()`` makes)."""
    return os.path.isdir(run_dir)


class UnitInstaller:
    """Install the rendered units and helpers; write only changed files, verify first."""

    def __init__(self, settings_: dict, unit_path: str, check_mode=False, daemon_reload="auto",
                 systemctl=None, analyze=None, runner=run, booted=systemd_booted):
        self.s = settings_
        self.unit_path = check_path("unit_path", unit_path)
        self.check_mode = check_mode
        self.daemon_reload = daemon_reload
        self.systemctl = systemctl
        self.analyze = analyze
        self.runner = runner
        self.booted = booted

    def _target(self, kind, name):
        base = self.unit_path if kind == "unit" else self.s["helper_path"]
        return os.path.join(base, name)

    def plan(self):
        """``[(path, kind, text, mode, before_text, changed)]`` for every file."""
        out = []
        for (kind, name), (text, mode) in render_all(self.s).items():
            path = self._target(kind, name)
            before = _read(path)
            out.append((path, kind, text, mode, before, before != text or _mode(path) != mode))
        return out

    def _reload_wanted(self):
        if self.daemon_reload == "never":
            return False
        return self.daemon_reload == "always" or self.booted()

    def apply(self):
        """Return ``(result, diffs)``; nothing is written when a check fails."""

        plan = self.plan()
        check_shell({os.path.basename(p): t for p, k, t, m, b, c in plan if k == "helper" and c},
                    runner=self.runner)
        units_changed = any(c for p, k, t, m, b, c in plan if k == "unit")
        if units_changed:
            verify_units(self.s, analyze=self.analyze, runner=self.runner)
        files, diffs = [], []
        for path, kind, text, mode, before, changed in plan:
            if changed and not self.check_mode:
                write_atomic(path, text, mode)
            files.append({"path": path, "kind": kind, "changed": changed})
            if changed:
                diffs.append({"before_header": path if before is not None else "(absent)",
                              "after_header": path, "before": before or "", "after": text})
        reload_ = units_changed and self._reload_wanted()
        if reload_ and not self.check_mode:
            (self.systemctl or Systemctl()).daemon_reload()
        result = {"changed": any(f["changed"] for f in files), "files": files,
                  "daemon_reloaded": reload_}
        return result, diffs


# ---- systemctl --------------------------------------------------------------------------

class Systemctl:
    """A thin ``systemctl`` wrapper (argv only)."""

    def __init__(self, path: str | None = None, executor=None):
        formats = {"quiet": fmt_flag("--quiet"), "verb": fmt_positional(), "units": fmt_positional()}
        if path:
            self.ctl = Runner([path], formats, executor=executor)
        else:
            self.ctl = Runner.for_binary("systemctl", formats, executor=executor)

    def _verb(self, verb, units, check=True, timeout=None):
        return self.ctl(["verb", "units"], verb=verb, units=list(units), check=check,
                        timeout=timeout)

    def is_active(self, unit: str) -> bool:
        return self._verb("is-active", [unit], check=False).rc == 0

    def is_enabled(self, unit: str) -> bool:
        return self._verb("is-enabled", [unit], check=False).stdout.strip() in ("enabled", "enabled-runtime")

    def start(self, unit: str, timeout: float | None = None):
        return self._verb("start", [unit], timeout=timeout)

    def stop(self, unit: str, timeout: float | None = None):
        return self._verb("stop", [unit], timeout=timeout)

    def enable(self, unit: str):
        return self._verb("enable", [unit])

    def disable(self, unit: str):
        return self._verb("disable", [unit])

    def daemon_reload(self):
        # a reload can take minutes on a loaded host (seen: > 60 s on a TCG testbed)
        return self.ctl(["verb"], verb="daemon-reload", timeout=300)
