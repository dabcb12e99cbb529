# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iSCSI roots of Xen VMs (private, no stability promise).

Naming: pure functions shared by the xl.cfg renderer and the iSCSI login code, so that the
disk path in a config and the device a login creates are computed in one place.

Host side: :class:`IscsiRoots` logs a batch of VMs in or out of their root targets with
``iscsiadm`` (discovery, login, logout, each bounded by its timeout), waits for the by-path
device with a timeout that ends, and makes the VM's filesystem on a LUN only when ``blkid``
finds nothing on it (or the VM has ``reinstall: true``). The output parsers are pure.
"""

from __future__ import annotations

import os
import re
import shutil
import time

from ansible_collections.vman.lifecycle.plugins.module_utils import _spec
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

ISCSI_PORT = 3260


def target_iqn(base_wwn: str, org: str, name: str) -> str:
    """IQN of a VM's root target: ``<base_wwn>:<org>-<name>``."""
    return f"{base_wwn}:{_spec.full_name(org, name)}"


def portal(server: str, port: int = ISCSI_PORT) -> str:
    """``host:port``; IPv6 literals are bracketed as udev names them, a port already in
    ``server`` (``10.0.0.3:3261``) is kept."""
    host, port = _spec.split_portal(server, port)
    return f"{host}:{port}"


def by_path(server: str, base_wwn: str, org: str, name: str, lun: int = 0) -> str:
    """The udev by-path device of a VM's root LUN after login."""
    return (f"/dev/disk/by-path/ip-{portal(server)}-iscsi-"
            f"{target_iqn(base_wwn, org, name)}-lun-{lun}")


# ---- parsers (pure) -----------------------------------------------------------------------

#: iscsiadm exit codes: 15 = session exists (already logged in), 21 = no session/records
RC_SESSION_EXISTS = 15
RC_NO_OBJECTS = 21

#: ``tcp: [1] 10.200.0.1:3260,1 iqn.2003-01.org.example:org-name (non-flash)``
_SESSION_RE = re.compile(r"^\S+:\s+\[(?P<sid>\d+)\]\s+(?P<portal>\S+?),(?P<tpgt>-?\d+)\s+(?P<iqn>\S+)")
#: ``10.200.0.1:3260,1 iqn.2003-01.org.example:org-name``
_DISCOVERY_RE = re.compile(r"^(?P<portal>\S+?),(?P<tpgt>-?\d+)\s+(?P<iqn>\S+)")

#: flags that let mkfs overwrite an existing signature (only used for ``reinstall``)
MKFS_FORCE = {"ext2": ["-F"], "ext3": ["-F"], "ext4": ["-F"], "xfs": ["-f"], "btrfs": ["-f"],
              "f2fs": ["-f"]}


def parse_sessions(text: str) -> dict:
    """``iscsiadm -m session`` output as ``{iqn: portal}`` (portal ``address:port``)."""
    out = {}
    for line in (text or "").splitlines():
        match = _SESSION_RE.match(line.strip())
        if match:
            out[match.group("iqn")] = match.group("portal")
    return out


def parse_discovery(text: str) -> dict:
    """``iscsiadm -m discovery -t sendtargets`` output as ``{iqn: [portal, ...]}``."""
    out: dict = {}
    for line in (text or "").splitlines():
        match = _DISCOVERY_RE.match(line.strip())
        if match:
            out.setdefault(match.group("iqn"), []).append(match.group("portal"))
    return out


def parse_blkid(text: str) -> dict:
    """``blkid -p -o export`` output as a dict (``TYPE``, ``PTTYPE``, ``UUID`` ...)."""
    out = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def by_path_for_portal(session_portal: str, iqn: str, lun: int = 0) -> str:
    """The by-path device of a LUN of a logged-in session (portal as the session shows it)."""
    return f"/dev/disk/by-path/ip-{session_portal}-iscsi-{iqn}-lun-{lun}"


def mkfs_argv(filesystem: str, device: str, force: bool) -> list:
    """``mkfs.<filesystem> [force flag] DEVICE``."""
    return [f"mkfs.{filesystem}"] + (MKFS_FORCE.get(filesystem, []) if force else []) + [device]


def iscsi_specs(vms, defaults=None) -> list:
    """The VMs of a batch whose root is an iSCSI LUN, as :class:`_spec.VmSpec`.

    Other VMs are skipped before validation (they are not this module's business); VMs with
    ``manual_root_disk`` have no managed root LUN and are skipped too. Two VMs with the same
    ``org-name`` are an error.
    """
    if vms is None:
        return []
    if not isinstance(vms, (list, tuple)):
        raise ValidationError("(vms)", "vms", vms, "must be a list of VM dicts")
    base = _spec.normalize_defaults(defaults)
    specs, seen = [], {}
    for index, vm in enumerate(vms):
        if isinstance(vm, dict) and (vm.get("storage_type") or base.get("storage_type")) != "iscsi":
            continue
        spec = _spec.normalize(vm, defaults, require_os=False)
        if spec.storage_type != "iscsi" or spec.manual_root_disk:
            continue
        if spec.full_name in seen:
            raise ValidationError(spec.full_name, "name", spec.name,
                                  f"defined twice (vms[{seen[spec.full_name]}] and vms[{index}])")
        seen[spec.full_name] = index
        specs.append(spec)
    return specs


def mounted_sources(mounts_text: str) -> dict:
    """``/proc/mounts`` text as ``{source: mount point}``."""
    out = {}
    for line in (mounts_text or "").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            out[fields[0]] = fields[1].replace("\\040", " ")
    return out


# ---- the host side ------------------------------------------------------------------------

class IscsiRoots:
    """Log the iSCSI roots of a batch of VMs in or out; make filesystems where none exist.

    ``runner`` runs argv lists (:func:`_runner.run`); ``sleep``/``clock``/``exists`` are
    parameters so that the device wait can be driven without real time in unit tests.
    """

    def __init__(self, iscsiadm="iscsiadm", blkid="blkid", xl="xl", login_timeout=40,
                 logout_timeout=40, device_timeout=30, mkfs_timeout=900, lun=None,
                 check_mode=False, runner=run, sleep=time.sleep, clock=time.monotonic,
                 exists=os.path.exists, mounts_file="/proc/mounts"):
        for fld, value in (("login_timeout", login_timeout), ("logout_timeout", logout_timeout),
                           ("device_timeout", device_timeout), ("mkfs_timeout", mkfs_timeout)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError("iscsi_root", fld, value, "must be a positive integer (seconds)")
        if lun is not None and (isinstance(lun, bool) or not isinstance(lun, int)
                                or not 0 <= lun <= 16383):
            raise ValidationError("iscsi_root", "lun", lun, "must be an integer from 0 to 16383")
        self.iscsiadm, self.blkid, self.xl = iscsiadm, blkid, xl
        self.login_timeout, self.logout_timeout = login_timeout, logout_timeout
        self.device_timeout, self.mkfs_timeout = device_timeout, mkfs_timeout
        self.lun = lun  # None: each VM's iscsi_lun
        self.check_mode = check_mode
        self.run, self.sleep, self.clock, self.exists = runner, sleep, clock, exists
        self.mounts_file = mounts_file

    # -- reading ------------------------------------------------------------------------

    def sessions(self) -> dict:
        """Active sessions ``{iqn: portal}`` (empty when there are none)."""
        result = self.run([self.iscsiadm, "-m", "session"], timeout=self.login_timeout, check=False)
        if result.rc == RC_NO_OBJECTS:
            return {}
        if result.rc != 0:
            raise CommandError(result.argv, result.rc, result.stdout, result.stderr)
        return parse_sessions(result.stdout)

    def signature(self, device: str) -> dict:
        """What ``blkid`` finds on ``device`` (low-level probe); empty when it holds nothing."""
        result = self.run([self.blkid, "-p", "-o", "export", device], timeout=60, check=False)
        if result.rc == 2:  # nothing found
            return {}
        if result.rc != 0:
            raise CommandError(result.argv, result.rc, result.stdout, result.stderr,
                               reason=f"blkid could not probe {device}")
        return parse_blkid(result.stdout)

    def mount_point(self, device: str) -> str | None:
        """Where ``device`` (or what it points to) is mounted, or None."""
        try:
            with open(self.mounts_file, encoding="utf-8") as handle:
                mounts = mounted_sources(handle.read())
        except FileNotFoundError:
            return None
        real = os.path.realpath(device)
        for source, target in mounts.items():
            if source.startswith("/") and os.path.realpath(source) == real:
                return target
        return None

    def domain_running(self, full_name: str) -> bool:
        """Whether a Xen domain of that name exists (False when there is no ``xl``)."""
        try:
            return self.run([self.xl, "domid", full_name], timeout=30, check=False).rc == 0
        except CommandError:
            return False

    # -- acting -------------------------------------------------------------------------

    def login(self, spec, iqn: str, target_portal: str) -> None:
        """Discovery on the VM's server, then login to its target; both bounded in time."""
        argv = [self.iscsiadm, "-m", "discovery", "-t", "sendtargets", "-p", target_portal]
        try:
            found = parse_discovery(self.run(argv, timeout=self.login_timeout).stdout)
        except CommandError as exc:
            exc.args = (f"{spec.full_name}: iSCSI discovery on {target_portal} failed: {exc}",)
            raise
        if iqn not in found:
            raise StateError(f"{spec.full_name}: target {iqn} is not offered by {target_portal} "
                             f"(offered: {', '.join(sorted(found)) or 'none'})")
        argv = [self.iscsiadm, "-m", "node", "-T", iqn, "-p", target_portal, "--login"]
        try:
            result = self.run(argv, timeout=self.login_timeout, check=False)
        except CommandError as exc:
            # a login that hangs is stopped; do not leave iscsid retrying it in the background
            self.run([self.iscsiadm, "-m", "node", "-T", iqn, "-p", target_portal, "--logout"],
                     timeout=self.logout_timeout, check=False)
            exc.args = (f"{spec.full_name}: iSCSI login to {iqn} did not finish within "
                        f"{self.login_timeout} s: {exc}",)
            raise
        if result.rc not in (0, RC_SESSION_EXISTS):
            raise CommandError(argv, result.rc, result.stdout, result.stderr,
                               reason=f"{spec.full_name}: iSCSI login to {iqn} failed: "
                                      f"{(result.stderr or result.stdout).strip() or result.rc}")

    def logout(self, spec, iqn: str, portal_: str) -> None:
        """Logout of the VM's target, bounded by ``logout_timeout``."""
        argv = [self.iscsiadm, "-m", "node", "-T", iqn, "-p", portal_, "--logout"]
        try:
            result = self.run(argv, timeout=self.logout_timeout, check=False)
        except CommandError as exc:
            exc.args = (f"{spec.full_name}: iSCSI logout from {iqn} did not finish within "
                        f"{self.logout_timeout} s: {exc}",)
            raise
        if result.rc not in (0, RC_NO_OBJECTS):
            raise CommandError(argv, result.rc, result.stdout, result.stderr,
                               reason=f"{spec.full_name}: iSCSI logout from {iqn} failed: "
                                      f"{(result.stderr or result.stdout).strip() or result.rc}")

    def wait_device(self, spec, device: str) -> None:
        """Wait until ``device`` exists; fail after ``device_timeout`` seconds."""
        deadline = self.clock() + self.device_timeout
        while not self.exists(device):
            if self.clock() >= deadline:
                raise StateError(f"{spec.full_name}: {device} did not appear within "
                                 f"{self.device_timeout} s after the iSCSI login")
            self.sleep(0.5)

    def mkfs(self, spec, device: str, force: bool) -> None:
        """Make the VM's filesystem on its LUN (refused while mounted or in use by the domain)."""
        target = self.mount_point(device)
        if target:
            raise StateError(f"{spec.full_name}: refusing mkfs.{spec.filesystem} on {device}: "
                             f"it is mounted at {target}")
        if force and self.domain_running(spec.full_name):
            raise StateError(f"{spec.full_name}: refusing to reinstall the root on {device}: "
                             f"domain {spec.full_name} is running")
        argv = mkfs_argv(spec.filesystem, device, force)
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        binary = shutil.which(argv[0], path=search)
        if binary is None:
            raise StateError(f"{spec.full_name}: {argv[0]} not found: install the tools of "
                             f"filesystem {spec.filesystem!r} on the host")
        argv[0] = binary
        try:
            self.run(argv, timeout=self.mkfs_timeout)
        except CommandError as exc:
            exc.args = (f"{spec.full_name}: making the {spec.filesystem} root on {device} failed: {exc}",)
            raise

    # -- one VM, then the batch ---------------------------------------------------------

    def present(self, spec, sessions: dict) -> tuple:
        """Log in (if needed), wait for the LUN, mkfs when empty or reinstalling."""
        iqn = target_iqn(spec.iscsi_base_wwn, spec.org, spec.name)
        target_portal = portal(spec.iscsi_server)
        was_in = iqn in sessions
        if not was_in and not self.check_mode:
            self.login(spec, iqn, target_portal)
            sessions = self.sessions()
            if iqn not in sessions:
                raise StateError(f"{spec.full_name}: iscsiadm reported a login to {iqn}, "
                                 "but no session exists")
        if iqn in sessions:
            device = by_path_for_portal(sessions[iqn], iqn, self.lun_of(spec))
        else:  # check mode, not logged in: the device the login would create
            device = by_path(spec.iscsi_server, spec.iscsi_base_wwn, spec.org, spec.name,
                             self.lun_of(spec))
        found = None
        if iqn in sessions:
            self.wait_device(spec, device)
            found = self.signature(device)
        if spec.reinstall:
            make = True
        else:
            make = found is not None and not found
        if make and iqn in sessions:
            if not self.check_mode:
                self.mkfs(spec, device, force=bool(found))
            elif spec.reinstall and self.domain_running(spec.full_name):
                raise StateError(f"{spec.full_name}: refusing to reinstall the root on {device}: "
                                 f"domain {spec.full_name} is running")
        fstype = spec.filesystem if make else (found or {}).get("TYPE")
        result = {"name": spec.full_name, "org": spec.org, "iqn": iqn, "portal": target_portal,
                  "device": device, "logged_in": True, "mkfs": make,
                  "filesystem": fstype, "changed": (not was_in) or make}
        diff = {"before": f"{spec.full_name}: logged_in={was_in}\n",
                "after": f"{spec.full_name}: logged_in=True"
                         + (f", mkfs.{spec.filesystem} {device}" if make else "") + "\n"}
        return result, diff

    def lun_of(self, spec) -> int:
        """The root LUN: the ``lun`` given to the manager, else the VM's ``iscsi_lun``."""
        return spec.iscsi_lun if self.lun is None else self.lun

    def absent(self, spec, sessions: dict) -> tuple:
        """Log out when logged in."""
        iqn = target_iqn(spec.iscsi_base_wwn, spec.org, spec.name)
        target_portal = portal(spec.iscsi_server)
        was_in = iqn in sessions
        lun = self.lun_of(spec)
        device = (by_path_for_portal(sessions[iqn], iqn, lun) if was_in else
                  by_path(spec.iscsi_server, spec.iscsi_base_wwn, spec.org, spec.name, lun))
        if was_in and not self.check_mode:
            self.logout(spec, iqn, target_portal)
        result = {"name": spec.full_name, "org": spec.org, "iqn": iqn, "portal": target_portal,
                  "device": device, "logged_in": False, "mkfs": False, "filesystem": None,
                  "changed": was_in}
        diff = {"before": f"{spec.full_name}: logged_in={was_in}\n",
                "after": f"{spec.full_name}: logged_in=False\n"}
        return result, diff

    def converge(self, specs, state: str = "present") -> tuple:
        """Every VM to ``state`` (a VM's own ``state: absent`` logs it out); ``(results, diffs)``."""
        if state not in ("present", "absent"):
            raise ValidationError("iscsi_root", "state", state, "must be present or absent")
        results, diffs = [], []
        sessions = self.sessions() if specs else {}
        for spec in specs:
            wanted = "absent" if spec.state == "absent" else state
            if wanted == "present":
                result, diff = self.present(spec, sessions)
            else:
                result, diff = self.absent(spec, sessions)
            results.append(result)
            if result["changed"]:
                diffs.append(diff)
        return results, diffs
