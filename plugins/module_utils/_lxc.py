# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LXC provisioning: profiles, naming, addresses, settings and an lxc-* backend.

Private module: no stability promise. The pure part (size profiles, profile types, profile
names, address/MAC/password generation, lxc config rendering) is importable and testable
without LXC; :class:`LxcBackend` wraps the ``lxc-*`` commands through the argv-only runner;
:class:`LxcGuestManager` plans and applies the desired state of a batch of containers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import string
import tempfile
import time
from dataclasses import dataclass, field

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # pragma: no cover - reported by the modules via missing_required_lib
    netaddr = None
    HAS_NETADDR = False

from ansible_collections.vman.lifecycle.plugins.module_utils._files import write_atomic, write_below
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    CommandError, StateError, ValidationError, as_text, bad_char, check_line, safe_repr)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import (
    Runner, fmt_flag, fmt_opt, fmt_positional)

# ---- size profiles and profile types (seed 001) -------------------------------------------

#: Size profile -> filesystem size, exactly the seed's table (there is no ``xlarge``).
SIZES = {
    "xxxsmall": "500m",
    "xxsmall": "1g",
    "xsmall": "3g",
    "small": "5g",
    "medium": "10g",
    "large": "20g",
    "xxlarge": "50g",
    "xxxlarge": "100g",
    "xtrem": "500g",
    "xxtrem": "1000g",
    "xxxtrem": "2000g",
}

#: Backing stores. ``overlayfs`` clones are always snapshots of their origin.
BACKINGS = ("lvm", "dir", "overlayfs", "btrfs", "zfs")
#: Backings whose filesystem has a size, so the size profile applies (block level).
SIZED_BACKINGS = ("lvm",)
#: lxc's own name of each backing store (``-B`` of lxc-create / lxc-copy).
_LXC_BDEV = {"lvm": "lvm", "dir": "dir", "overlayfs": "overlay", "btrfs": "btrfs", "zfs": "zfs"}

#: Every profile type: ``<backing>`` clones from a container, ``<backing>-scratch`` starts
#: from a template.
PROFILE_TYPES = tuple(t for b in BACKINGS for t in (b, b + "-scratch"))

_UNITS = {"m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


@dataclass(frozen=True)
class ProfileType:
    """A profile type split in its two halves."""

    backing: str
    scratch: bool

    @property
    def name(self) -> str:
        return self.backing + ("-scratch" if self.scratch else "")


def parse_profile_type(value, obj="lxc") -> ProfileType:
    """``'lvm-scratch'`` -> ``ProfileType('lvm', True)``; anything else unknown is an error."""
    if value not in PROFILE_TYPES:
        raise ValidationError(obj, "profile_type", value,
                              "must be one of " + ", ".join(PROFILE_TYPES))
    backing, _sep, rest = value.partition("-")
    return ProfileType(backing, rest == "scratch")


def lxc_size(profile, obj="lxc") -> str:
    """Size profile name -> size string of the seed's table (``'small'`` -> ``'5g'``)."""
    try:
        return SIZES[profile]
    except (KeyError, TypeError):
        raise ValidationError(obj, "profile", profile,
                              "must be one of " + ", ".join(SIZES)) from None


def size_bytes(size) -> int:
    """``'500m'`` -> 524288000; units m, g, t are binary (as lvcreate reads them)."""
    match = re.fullmatch(r"([0-9]+)([mgtMGT])", as_text(size))
    if not match:
        raise ValidationError("lxc", "size", size, "must be a number followed by m, g or t")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def lxc_fssize(size) -> str:
    """Size string in the form lxc-create --fssize / lxc-copy -L take (``'5g'`` -> ``'5G'``)."""
    size_bytes(size)
    return str(size).upper()


def encode_host_id(host_id) -> str:
    """Encode a host id (minion id, inventory hostname, FQDN) for a ``normalized`` profile name.

    The encoding: lower-case the id, replace every run of characters other than ``a-z`` and
    ``0-9`` by one ``-``, and strip ``-`` from both ends (``devhost10.local`` ->
    ``devhost10-local``, ``Dev_Host.10`` -> ``dev-host-10``). It is not injective (``a.b`` and
    ``a-b`` encode alike), which is harmless because a profile name is only a label.
    """
    encoded = re.sub(r"[^a-z0-9]+", "-", str(host_id or "").lower()).strip("-")
    if not encoded:
        raise ValidationError("lxc", "host_id", host_id, "has no letter or digit to encode")
    return encoded


#: How a profile name is spelt. ``makina-states`` (the default) is the original's own
#: encoding, so the names its users already have in their settings, facts and tooling are the
#: names this collection writes; ``normalized`` is this collection's lower-cased encoding.
PROFILE_NAME_STYLES = ("makina-states", "normalized")
DEFAULT_PROFILE_NAME_STYLE = "makina-states"
#: A ``makina-states`` profile name; anything else in the host id is refused.
MAKINA_PROFILE_RE = re.compile(r"ms-[A-Za-z0-9_-]{1,250}")


def check_profile_name_style(style, obj="lxc") -> str:
    """The style, or a ValidationError naming ``profile_name_style``."""
    if style not in PROFILE_NAME_STYLES:
        raise ValidationError(obj, "profile_name_style", style,
                              "must be one of " + ", ".join(PROFILE_NAME_STYLES))
    return style


def makina_sized(ptype) -> bool:
    """Whether makina-states puts the size profile in the profile name of this type.

    The original (``mc_cloud_lxc.get_settings_for_vm``) leaves the size out when the type
    names ``overlayfs``, ``dir`` or ``scratch``, so only the clone types ``lvm``, ``btrfs``
    and ``zfs`` carry it; ``lvm-scratch`` does not.
    """
    return not ptype.scratch and ptype.backing not in ("dir", "overlayfs")


def _makina_profile_name(host_id, ptype, size) -> str:
    """``ms-<host id, '.' -> '-'>[-<size>]-<type>``, case and ``_`` kept (the original)."""
    if not isinstance(host_id, str) or not host_id:
        raise ValidationError("lxc", "host_id", host_id, "must be a non-empty string")
    parts = ["ms", host_id]
    if size and makina_sized(ptype):
        parts.append(size)
    parts.append(ptype.name)
    name = "-".join(parts).replace(".", "-")
    if not MAKINA_PROFILE_RE.fullmatch(name):
        raise ValidationError("lxc", "host_id", host_id,
                              "gives the makina-states profile name " + safe_repr(name)
                              + ", which must be 'ms-' and 1-250 of A-Z a-z 0-9 _ - (use "
                              "the 'normalized' style for other host ids)")
    return name


def profile_name(host_id, profile_type, size=None, style=DEFAULT_PROFILE_NAME_STYLE) -> str:
    """The profile name of a container of ``host_id``, ``ms-<host>[-<size>]-<type>``.

    ``size`` is the container's size profile name (or None). ``style`` (one of
    :data:`PROFILE_NAME_STYLES`):

    - ``normalized``: the host id as :func:`encode_host_id` makes it; the size part is there
      whenever ``size`` is given. ``profile_name('devhost10.local', 'lvm-scratch', 'small')``
      -> ``'ms-devhost10-local-small-lvm-scratch'``.
    - ``makina-states``: the original's encoding, every ``.`` of the whole name replaced by
      ``-`` and nothing else changed; the size part only for the types the original sizes
      (:func:`makina_sized`). ``profile_name('Dev_Host10.local', 'zfs', 'small',
      'makina-states')`` -> ``'ms-Dev_Host10-local-small-zfs'``.
    """
    check_profile_name_style(style)
    ptype = parse_profile_type(profile_type)
    if size:
        lxc_size(size)
    if style == "makina-states":
        return _makina_profile_name(host_id, ptype, size)
    parts = ["ms", encode_host_id(host_id)]
    if size:
        parts.append(size)
    parts.append(ptype.name)
    return "-".join(parts)


# ---- validation of names that reach argv or paths -----------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
NAME_RE = re.compile(rf"(?=.{{1,63}}\Z){_LABEL}(?:\.{_LABEL})*")
BRIDGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
VG_RE = re.compile(r"[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}")
TEMPLATE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
CONF_KEY_RE = re.compile(r"lxc(?:\.[a-z0-9_]+)+")
MAC_RE = re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}")
MAC_PREFIX = "00:16:3e"


def validate_name(name, obj=None, field_name="name") -> str:
    """A container name: a host name or FQDN of at most 63 characters."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError(obj or as_text(name), field_name, name,
                              "must be a host name or FQDN (letters, digits, '-', '.'), "
                              "at most 63 characters")
    return name


def _check(pattern, value, obj, field_name, what):
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(obj, field_name, value, what)
    return value


def validate_bridge(value, obj="lxc"):
    """A network interface name (at most 15 characters)."""
    return _check(BRIDGE_RE, value, obj, "bridge", "must be an interface name of at most 15 "
                  "characters (letters, digits, '_', '.', '-')")


def validate_vg(value, obj="lxc"):
    """An LVM volume group name."""
    return _check(VG_RE, value, obj, "vg_name", "must be an LVM volume group name")


def validate_template(value, obj="lxc"):
    """An lxc template name (``debian``, ``download``, ``local``...)."""
    return _check(TEMPLATE_RE, value, obj, "image", "must be an lxc template name "
                  "(lower-case letters, digits, '_', '-')")


def validate_user(value, obj="lxc"):
    """A POSIX user name."""
    return _check(USER_RE, value, obj, "users", "must be a user name (lower-case letters, "
                  "digits, '_', '-', at most 32 characters)")


def validate_mac(value, obj="lxc") -> str:
    """A MAC address, returned lower-case."""
    mac = as_text(value).lower() if value is not None else ""
    if not MAC_RE.fullmatch(mac):
        raise ValidationError(obj, "mac", value, "must be a MAC address like 00:16:3e:12:34:56")
    return mac


def _no_newline(value, obj, field_name):
    text = as_text(value)
    if bad_char(text) is not None:
        raise ValidationError(obj, field_name, value,
                              "must be a single line without control characters")
    return text


def validate_password(value, obj="lxc"):
    """The guest password: fed to ``chpasswd`` as ``user:password`` lines, so no line break
    or other control character (``x\nroot:pwned`` would set root's password too). A ':' is
    harmless there (chpasswd splits at the first one, which follows the user name). The
    error names the field, never the value."""
    if value is None:
        return None
    return check_line(obj, "password", value, secret=True, max_len=512)


# ---- addresses, MACs and passwords --------------------------------------------------------

def _require_netaddr():
    if not HAS_NETADDR:
        raise StateError("the Python library netaddr is required for address allocation")


def parse_network(network, obj="lxc"):
    """``'10.5.0.0/16'`` -> an ``IPNetwork`` (the network address, host bits cleared)."""
    _require_netaddr()
    try:
        net = netaddr.IPNetwork(str(network))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValidationError(obj, "network", network, "must be a CIDR network") from None
    if net.version != 4:
        raise ValidationError(obj, "network", network, "must be an IPv4 network")
    if net.prefixlen > 30:
        raise ValidationError(obj, "network", network, "must hold at least two host addresses")
    return net.cidr


def parse_gateway(gateway, net, obj="lxc") -> str:
    """Validate that ``gateway`` is a host address of ``net``."""
    try:
        addr = netaddr.IPAddress(str(gateway))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValidationError(obj, "gateway", gateway, "must be an IPv4 address") from None
    if addr not in net or addr in (net.network, net.broadcast):
        raise ValidationError(obj, "gateway", gateway, f"must be a host address of {net}")
    return str(addr)


def check_ip(ip, net, gateway, used=(), obj="lxc") -> str:
    """Validate a given address: a host address of ``net``, not the gateway, not ``used``."""
    try:
        addr = netaddr.IPAddress(str(ip))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValidationError(obj, "ip", ip, "must be an IPv4 address") from None
    if addr not in net or addr in (net.network, net.broadcast):
        raise ValidationError(obj, "ip", ip, f"is not a host address of network {net}")
    if str(addr) == str(gateway):
        raise ValidationError(obj, "ip", ip, "is the gateway address")
    if str(addr) in {str(u) for u in used}:
        raise ValidationError(obj, "ip", ip, "is already used by another container")
    return str(addr)


def allocate_ip(network, gateway, used=(), obj="lxc") -> str:
    """The lowest host address of ``network`` that is neither the gateway nor ``used``.

    Raises :class:`StateError` naming the network when every host address is taken (the
    seed's "no free IP" error, which could never fire there).
    """
    net = parse_network(network, obj)
    taken = {str(u) for u in used}
    taken.add(str(gateway))
    for addr in net.iter_hosts():
        if str(addr) not in taken:
            return str(addr)
    raise StateError(f"{obj}: no free address left in network {net} "
                     f"({net.size - 2} host addresses, all used or reserved)")


def generate_mac(used=(), rand=None, tries=1000) -> str:
    """A random ``00:16:3e:xx:xx:xx`` address (the Xen OUI lxc uses) not in ``used``."""
    rand = rand or secrets.randbelow
    taken = {str(u).lower() for u in used}
    for _attempt in range(tries):
        tail = rand(1 << 24)
        mac = "%s:%02x:%02x:%02x" % (MAC_PREFIX, tail >> 16, (tail >> 8) & 0xFF, tail & 0xFF)
        if mac not in taken:
            return mac
    raise StateError(f"no free MAC address found under {MAC_PREFIX} after {tries} tries")


PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_password(length=24) -> str:
    """A random password from letters and digits, drawn with :mod:`secrets`."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _index in range(length))


# ---- per-container settings on the host ---------------------------------------------------

class SettingsStore:
    """One JSON file per container (``<directory>/<name>.json``, mode 0600, dir 0700).

    These are the seed's per-VM settings (``get_settings_for_vm``): what was generated once
    (ip, mac, password) is read back on the next run and reused.
    """

    SUFFIX = ".json"

    def __init__(self, directory):
        self.directory = str(directory)

    def path(self, name) -> str:
        return os.path.join(self.directory, validate_name(name) + self.SUFFIX)

    def load(self, name):
        """The stored settings of ``name``, or None."""
        try:
            with open(self.path(name), encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StateError(f"{name}: settings file {self.path(name)} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{name}: settings file {self.path(name)} holds no mapping")
        return data

    def save(self, name, data) -> None:
        """Write atomically with mode 0600 (the file holds the password)."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        write_atomic(self.path(name), json.dumps(data, indent=2, sort_keys=True) + "\n", 0o600)

    def delete(self, name) -> bool:
        try:
            os.unlink(self.path(name))
            return True
        except FileNotFoundError:
            return False

    def names(self) -> list:
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        out = []
        for entry in sorted(entries):
            stem = entry[:-len(self.SUFFIX)]
            if entry.endswith(self.SUFFIX) and NAME_RE.fullmatch(stem):
                out.append(stem)
        return out

    def all(self) -> dict:
        return {name: self.load(name) for name in self.names()}


# ---- lxc config text (pure) ---------------------------------------------------------------

_CONF_LINE = re.compile(r"^\s*(lxc\.[A-Za-z0-9_.]+)\s*=\s*(.*?)\s*$")


def parse_config(text) -> list:
    """``[(key, value), ...]`` of an lxc config, comments and blanks left out."""
    out = []
    for line in (text or "").splitlines():
        match = _CONF_LINE.match(line)
        if match:
            out.append((match.group(1), match.group(2)))
    return out


def config_value(text, key):
    """The last value of ``key`` in config ``text`` (lxc keeps the last), or None."""
    values = [v for k, v in parse_config(text) if k == key]
    return values[-1] if values else None


def render_config(text, managed, unset=()) -> str:
    """Return ``text`` with each key of ``managed`` set once and each key of ``unset`` removed.

    A managed key keeps the position of its first line; further lines of it are dropped;
    missing keys are appended in the order given. Other lines stay as they are.
    """
    managed = dict(managed)
    drop = set(unset) - set(managed)
    seen = set()
    lines = []
    for line in (text or "").splitlines():
        match = _CONF_LINE.match(line)
        key = match.group(1) if match else None
        if key in drop:
            continue
        if key in managed:
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"{key} = {managed[key]}")
            continue
        lines.append(line)
    for key, value in managed.items():
        if key not in seen:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def normalize_lxc_conf(entries, obj="lxc") -> list:
    """The seed's ``lxc_conf`` (a list of one-key mappings, or a mapping) -> ``[(key, value)]``."""
    pairs = []
    if isinstance(entries, dict):
        entries = [entries]
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise ValidationError(obj, "lxc_conf", entry, "each entry must be a mapping key: value")
        for key, value in entry.items():
            _check(CONF_KEY_RE, key, obj, "lxc_conf", "keys must look like lxc.section.key")
            pairs.append((key, _no_newline(value, obj, "lxc_conf")))
    return pairs


def managed_config(spec) -> dict:
    """The lxc config keys this collection owns for ``spec`` (a :class:`ContainerSpec`)."""
    out = {
        "lxc.net.0.type": "veth",
        "lxc.net.0.link": spec.bridge,
        "lxc.net.0.flags": "up",
        "lxc.net.0.hwaddr": spec.mac,
        "lxc.net.0.ipv4.address": f"{spec.ip}/{spec.prefixlen}",
        "lxc.net.0.ipv4.gateway": spec.gateway,
        "lxc.start.auto": "1" if spec.autostart else "0",
        "lxc.uts.name": spec.name,
    }
    for key, value in spec.lxc_conf:
        out[key] = value
    return out


INTERFACES = """# managed by vman.lifecycle: lxc configures eth0 (lxc.net.0.ipv4.*)
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet manual
"""


def render_resolv_conf(dnsservers) -> str:
    return "".join(f"nameserver {d}\n" for d in dnsservers)


# ---- writing into a container's rootfs without following its symlinks ---------------------

def safe_write(root, relpath, text, mode=0o644) -> None:
    """Write ``root/relpath`` refusing symlinks anywhere below ``root`` (:func:`_files.write_below`).

    The rootfs belongs to the guest (or to the container it was cloned from), so a symlink
    there must never make the host write outside it.
    """
    write_below(root, relpath, text, mode)


# ---- the lxc-* backend --------------------------------------------------------------------

def _lxc_formats():
    return {
        "lxcpath": fmt_opt("-P"),
        "name": fmt_opt("-n"),
        "newname": fmt_opt("-N"),
        "template": fmt_opt("-t"),
        "bdev": fmt_opt("-B"),
        "vgname": fmt_opt("--vgname"),
        "fssize": fmt_opt("--fssize"),
        "copy_fssize": fmt_opt("-L"),
        "snapshot": fmt_flag("-s"),
        "force": fmt_flag("-f"),
        "stop_timeout": fmt_opt("-t"),
        "state": fmt_opt("-s"),
        "wait_timeout": fmt_opt("-t"),
        "info_state": fmt_flag("-s"),
        "info_ips": fmt_flag("-i"),
        "humanless": fmt_flag("-H"),
        "one": fmt_flag("-1"),
        "running": fmt_flag("--running"),
        "clear_env": fmt_flag("--clear-env"),
        "setvar": fmt_opt("--set-var"),
        "logfile": fmt_opt("-o"),
        "logpriority": fmt_opt("-l"),
        "sep": fmt_positional(),
        "args": fmt_positional(),
    }


class LxcBackend:
    """The ``lxc-*`` commands for containers under one lxcpath (run on the LXC host)."""

    ATTACH_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    #: lxc-create/-copy/-destroy log nowhere by default and fail with an empty stderr: their
    #: errors go to stderr, so a failure says why (lxc-start forks a monitor that would keep
    #: stderr open, so it keeps its default).
    LOG = {"logpriority": "ERROR", "logfile": "/dev/stderr"}

    def __init__(self, lxcpath="/var/lib/lxc", executor=None, timeout=600):
        self.lxcpath = str(lxcpath)
        kwargs = {"timeout": timeout}
        if executor is not None:
            kwargs["executor"] = executor
        fm = _lxc_formats()
        self._tool = {t: Runner.for_binary(t, fm, **kwargs)
                      for t in ("lxc-create", "lxc-copy", "lxc-start", "lxc-stop", "lxc-destroy",
                                "lxc-info", "lxc-ls", "lxc-wait", "lxc-attach")}
        self._vgs = Runner.for_binary("vgs", {"opts": fmt_positional(), "vg": fmt_positional()},
                                      **kwargs)
        self._lvs = Runner.for_binary("lvs", {"opts": fmt_positional(), "lv": fmt_positional()},
                                      **kwargs)
        self._mount = Runner.for_binary("mount", {"opts": fmt_positional(),
                                                  "device": fmt_positional(),
                                                  "path": fmt_positional()}, **kwargs)
        self._umount = Runner.for_binary("umount", {"path": fmt_positional()}, **kwargs)
        self._stat = Runner.for_binary("stat", {"opts": fmt_positional(),
                                                "path": fmt_positional()}, **kwargs)
        self._zfs = Runner.for_binary("zfs", {"opts": fmt_positional()}, **kwargs)
        self._test = Runner.for_binary("test", {"opts": fmt_positional(), "path": fmt_positional()},
                                       **kwargs)

    # -- reading
    def list(self, running=False) -> list:
        """Names of the containers (only the running ones with ``running``)."""
        res = self._tool["lxc-ls"](["lxcpath", "one", "running"], lxcpath=self.lxcpath,
                                   one=True, running=running)
        return [n for n in res.stdout.split() if n]

    def has_lxcpath(self) -> bool:
        """Whether the lxcpath is a directory, asked through the executor (so on the host the
        commands run on); an executor failure (ssh: 255) raises CommandError."""
        res = self._test(["opts", "path"], opts=["-d"], path=self.lxcpath, check=False)
        if res.rc not in (0, 1):
            raise CommandError(res.argv, res.rc, res.stdout, res.stderr)
        return res.rc == 0

    def exists(self, name) -> bool:
        return os.path.isfile(self.config_path(name))

    def state(self, name):
        """``'RUNNING'``, ``'STOPPED'``, ... or None when the container does not exist."""
        if not self.exists(name):
            return None
        res = self._tool["lxc-info"](["lxcpath", "name", "info_state", "humanless"],
                                     lxcpath=self.lxcpath, name=validate_name(name),
                                     info_state=True, humanless=True, check=False)
        return res.stdout.strip() or None if res.rc == 0 else None

    def ipv4(self, name) -> list:
        """Live IPv4 addresses of a running container."""
        res = self._tool["lxc-info"](["lxcpath", "name", "info_ips", "humanless"],
                                     lxcpath=self.lxcpath, name=validate_name(name),
                                     info_ips=True, humanless=True, check=False)
        return [a for a in res.stdout.split() if "." in a] if res.rc == 0 else []

    def config_path(self, name) -> str:
        return os.path.join(self.lxcpath, validate_name(name), "config")

    def read_config(self, name) -> str:
        try:
            with open(self.config_path(name), encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def write_config(self, name, text) -> None:
        write_atomic(self.config_path(name), text, 0o640)

    def check_vg(self, vg) -> None:
        """Raise :class:`StateError` unless the LVM volume group exists."""
        validate_vg(vg)
        try:
            self._vgs(["opts", "vg"], opts=["--noheadings", "-o", "vg_name"], vg=vg)
        except CommandError as exc:
            raise StateError(f"LVM volume group {vg!r} is not usable: {exc}") from None

    def lv_exists(self, vg, lv) -> bool:
        """Whether the logical volume ``vg/lv`` exists (``lvs`` answers for it)."""
        res = self._lvs(["opts", "lv"], opts=["--noheadings", "-o", "lv_name"],
                        lv=f"{validate_vg(vg)}/{validate_name(lv)}", check=False)
        return res.rc == 0 and res.stdout.strip() == lv

    def volume_vg(self, name):
        """The volume group of an lvm container's root, or None for other backings."""
        parts = (self.rootfs_volume(name) or "").split("/")
        return parts[2] if len(parts) == 4 and parts[:2] == ["", "dev"] else None

    @contextlib.contextmanager
    def mounted_rootfs(self, name):
        """The guest's files as a host directory for the ``with`` block, or None.

        dir, btrfs and overlay roots are directories already (:meth:`rootfs_dir`); an lvm root
        of a stopped container is mounted on a private temporary directory and unmounted at
        the end. zfs datasets are left alone (None).
        """
        root = self.rootfs_dir(name)
        volume = None if root else self.rootfs_volume(name)
        if root or not volume:
            yield root
            return
        mountpoint = tempfile.mkdtemp(prefix="vman-lxc-rootfs-")
        try:
            self._mount(["opts", "device", "path"], opts=["-o", "nosuid,nodev"], device=volume,
                        path=mountpoint)
            try:
                yield mountpoint
            finally:
                self._umount(["path"], path=mountpoint)
        finally:
            with contextlib.suppress(OSError):     # still busy when umount failed
                os.rmdir(mountpoint)

    def rootfs_volume(self, name):
        """The LVM volume of a container's root (``/dev/<vg>/<lv>``), or None for other backings."""
        value = config_value(self.read_config(name), "lxc.rootfs.path") or ""
        kind, sep, rest = value.partition(":")
        if sep and kind == "lvm":
            return rest
        if not sep and value.startswith("/dev/"):
            return value      # lxc < 2.1 wrote the bare device path
        return None

    def check_backing(self, backing) -> None:
        """Raise :class:`StateError` unless this host can hold ``backing`` containers.

        ``btrfs`` needs the lxcpath on a btrfs filesystem (lxc makes subvolumes there);
        ``zfs`` needs the ``zfs`` tool and at least one dataset. ``lvm`` is checked per
        volume group (:meth:`check_vg`); ``dir`` and ``overlayfs`` need nothing.
        """
        if backing == "btrfs":
            path = self.lxcpath
            while not os.path.exists(path) and os.path.dirname(path) != path:
                path = os.path.dirname(path)
            res = self._stat(["opts", "path"], opts=["-f", "-c", "%T"], path=path, check=False)
            fstype = res.stdout.strip() if res.rc == 0 else "unknown"
            if fstype != "btrfs":
                raise StateError(f"profile types btrfs/btrfs-scratch need lxc_path on a btrfs "
                                 f"filesystem; {self.lxcpath} is on {fstype}")
        elif backing == "zfs":
            try:
                res = self._zfs(["opts"], opts=["list", "-H", "-o", "name"])
            except CommandError as exc:
                raise StateError(f"profile types zfs/zfs-scratch need ZFS on this host: {exc}") \
                    from None
            if not res.stdout.strip():
                raise StateError("profile types zfs/zfs-scratch need a ZFS dataset; "
                                 "'zfs list' shows none")

    def forget_rootfs(self, name) -> None:
        """Drop ``lxc.rootfs.path`` from the config so lxc-destroy leaves the volume alone."""
        self.write_config(name, render_config(self.read_config(name), {}, ["lxc.rootfs.path"]))

    # -- acting
    def create(self, name, template, backing="dir", vg=None, fssize=None, template_options=()):
        """lxc-create from a template (``-- template_options`` are the template's own)."""
        order = ["lxcpath", "logpriority", "logfile", "name", "template", "bdev"]
        values = dict(self.LOG, lxcpath=self.lxcpath, name=validate_name(name),
                      template=validate_template(template), bdev=_LXC_BDEV[backing])
        if backing == "lvm":
            order += ["vgname", "fssize"]
            values.update(vgname=validate_vg(vg), fssize=fssize)
        order += ["sep", "args"]
        values.update(sep="--", args=[_no_newline(o, name, "template_options")
                                      for o in template_options])
        return self._tool["lxc-create"](order, **values)

    def clone(self, origin, name, backing="dir", snapshot=False, fssize=None):
        """lxc-copy of a stopped ``origin``; overlayfs clones are always snapshots."""
        order = ["lxcpath", "logpriority", "logfile", "name", "newname", "bdev", "snapshot"]
        values = dict(self.LOG, lxcpath=self.lxcpath, name=validate_name(origin),
                      newname=validate_name(name), bdev=_LXC_BDEV[backing],
                      snapshot=snapshot or backing == "overlayfs")
        if backing == "lvm" and fssize and not values["snapshot"]:
            order.append("copy_fssize")
            values["copy_fssize"] = fssize
        return self._tool["lxc-copy"](order, **values)

    def start(self, name, wait=30):
        self._tool["lxc-start"](["lxcpath", "name"], lxcpath=self.lxcpath, name=validate_name(name))
        self._tool["lxc-wait"](["lxcpath", "name", "state", "wait_timeout"], lxcpath=self.lxcpath,
                               name=name, state="RUNNING", wait_timeout=wait)

    def stop(self, name, timeout=30):
        """Clean shutdown within ``timeout`` seconds, then lxc-stop kills."""
        self._tool["lxc-stop"](["lxcpath", "name", "stop_timeout"], lxcpath=self.lxcpath,
                               name=validate_name(name), stop_timeout=timeout,
                               timeout=timeout + 30)

    def destroy(self, name):
        """lxc-destroy (``-f`` stops it first when running)."""
        self._tool["lxc-destroy"](["lxcpath", "logpriority", "logfile", "name", "force"],
                                  lxcpath=self.lxcpath, name=validate_name(name), force=True,
                                  **self.LOG)

    def attach(self, name, argv, data=None, secrets=(), check=True, timeout=120):
        """Run ``argv`` inside the running container with a clean environment."""
        if isinstance(argv, (str, bytes)):
            raise TypeError("attach() takes an argv list")
        return self._tool["lxc-attach"](
            ["lxcpath", "name", "clear_env", "setvar", "sep", "args"], lxcpath=self.lxcpath,
            name=validate_name(name), clear_env=True, setvar=self.ATTACH_PATH, sep="--",
            args=list(argv), data=data, secrets=secrets, check=check, timeout=timeout)

    def rootfs_dir(self, name):
        """The host directory the guest's files are written to before first boot, or None.

        dir and btrfs: the rootfs itself; overlay: the upper (delta) directory. Block devices
        (lvm, see :meth:`mounted_rootfs`) and zfs datasets: None.
        """
        value = config_value(self.read_config(name), "lxc.rootfs.path") or ""
        kind, sep, rest = value.partition(":")
        if not sep:
            kind, rest = "dir", value
        if kind in ("dir", "btrfs") and rest.startswith("/") and os.path.isdir(rest):
            return rest
        if kind in ("overlay", "overlayfs"):
            upper = rest.rsplit(":", 1)[-1]
            if upper.startswith("/") and os.path.isdir(upper):
                return upper
        return None


# ---- the desired state of one container ---------------------------------------------------

#: Options every container entry may set; the module's top-level ones are their defaults.
DEFAULTS = {
    "state": "started",
    "profile_type": "lvm",
    "profile": "medium",
    "from_container": None,
    "image": "debian",
    "template_options": [],
    "snapshot": False,
    "bridge": "lxcbr1",
    "network": "10.5.0.0/16",
    "gateway": "10.5.0.1",
    "autostart": True,
    "dnsservers": [],
    "lxc_conf": [],
    "lxc_conf_unset": [],
    "users": ["root"],
    "ssh_keys": [],
}
#: Options that only a container entry can set (no host-wide default makes sense).
PER_CONTAINER = ("name", "ip", "mac", "password")
STATES = ("present", "started", "stopped", "absent")


@dataclass
class ContainerSpec:
    """One container, defaults merged and every generated value resolved."""

    name: str
    state: str
    ptype: ProfileType
    profile: str
    from_container: str | None
    image: str
    template_options: list
    snapshot: bool
    bridge: str
    network: str
    prefixlen: int
    gateway: str
    ip: str | None = None
    mac: str | None = None
    password: str | None = None
    autostart: bool = True
    dnsservers: list = field(default_factory=list)
    lxc_conf: list = field(default_factory=list)
    lxc_conf_unset: list = field(default_factory=list)
    users: list = field(default_factory=list)
    ssh_keys: list = field(default_factory=list)
    generated: list = field(default_factory=list)

    @property
    def size(self):
        return lxc_size(self.profile, self.name) if self.ptype.backing in SIZED_BACKINGS else None

    def profile_name(self, host_id, style=DEFAULT_PROFILE_NAME_STYLE) -> str:
        """This container's profile name (see :func:`profile_name`)."""
        if style == "normalized" and self.ptype.backing not in SIZED_BACKINGS:
            return profile_name(host_id, self.ptype.name, None, style)
        return profile_name(host_id, self.ptype.name, self.profile, style)

    def settings(self, host_id, style=DEFAULT_PROFILE_NAME_STYLE) -> dict:
        """The per-container settings file content (the seed's ``get_settings_for_vm``)."""
        return {
            "name": self.name,
            "profile": self.profile_name(host_id, style),
            "profile_type": self.ptype.name,
            "backing": self.ptype.backing,
            "size_profile": self.profile,
            "size": self.size,
            "from_container": None if self.ptype.scratch else self.from_container,
            "image": self.image if self.ptype.scratch else None,
            "snapshot": self.snapshot or self.ptype.backing == "overlayfs",
            "bridge": self.bridge,
            "network": self.network,
            "netmask": self.prefixlen,
            "gateway": self.gateway,
            "ip": self.ip,
            "mac": self.mac,
            "password": self.password,
            "autostart": self.autostart,
            "dnsservers": list(self.dnsservers),
            "lxc_conf": [{k: v} for k, v in self.lxc_conf],
            "lxc_conf_unset": list(self.lxc_conf_unset),
            "users": list(self.users),
            "ssh_keys": list(self.ssh_keys),
        }


def merge_entry(entry, defaults) -> dict:
    """A container entry over the host-wide defaults (None in the entry means 'inherit')."""
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (defaults or {}).items() if v is not None and k in DEFAULTS})
    for key, value in (entry or {}).items():
        if value is not None:
            merged[key] = value
    for key in PER_CONTAINER:
        merged.setdefault(key, None)
    return merged


def build_spec(merged, obj=None) -> ContainerSpec:
    """Validate a merged entry (everything but ip/mac/password resolution)."""
    name = validate_name(merged.get("name"), obj)
    obj = name
    if merged["state"] not in STATES:
        raise ValidationError(obj, "state", merged["state"], "must be one of " + ", ".join(STATES))
    ptype = parse_profile_type(merged["profile_type"], obj)
    lxc_size(merged["profile"], obj)
    origin = merged.get("from_container")
    if not ptype.scratch and merged["state"] != "absent":
        if not origin:
            raise ValidationError(obj, "from_container", origin,
                                  f"is required for profile_type {ptype.name} (a clone)")
        validate_name(origin, obj, "from_container")
        if origin == name:
            raise ValidationError(obj, "from_container", origin, "cannot be the container itself")
    validate_template(merged["image"], obj)
    net = parse_network(merged["network"], obj)
    gateway = parse_gateway(merged["gateway"], net, obj)
    users = [validate_user(u, obj) for u in merged["users"]]
    dns = []
    for server in merged["dnsservers"]:
        try:
            dns.append(str(netaddr.IPAddress(str(server))))
        except (netaddr.AddrFormatError, ValueError):
            raise ValidationError(obj, "dnsservers", server, "must be an IP address") from None
    unset = [_check(CONF_KEY_RE, k, obj, "lxc_conf_unset", "keys must look like lxc.section.key")
             for k in merged["lxc_conf_unset"]]
    return ContainerSpec(
        name=name, state=merged["state"], ptype=ptype, profile=merged["profile"],
        from_container=origin, image=merged["image"],
        template_options=[_no_newline(o, obj, "template_options")
                          for o in merged["template_options"]],
        snapshot=bool(merged["snapshot"]), bridge=validate_bridge(merged["bridge"], obj),
        network=str(net.network), prefixlen=net.prefixlen, gateway=gateway,
        ip=merged.get("ip"), mac=merged.get("mac"),
        password=validate_password(merged.get("password"), obj),
        autostart=bool(merged["autostart"]), dnsservers=dns,
        lxc_conf=normalize_lxc_conf(merged["lxc_conf"], obj), lxc_conf_unset=unset,
        users=users, ssh_keys=[_no_newline(k, obj, "ssh_keys") for k in merged["ssh_keys"]])


def build_specs(entries, defaults) -> list:
    """Validate a batch; a name may appear only once."""
    specs, seen = [], set()
    for entry in entries or []:
        spec = build_spec(merge_entry(entry, defaults))
        if spec.name in seen:
            raise ValidationError(spec.name, "name", spec.name, "appears twice in containers")
        seen.add(spec.name)
        specs.append(spec)
    return specs


def guest_fingerprint(spec) -> str:
    """Hash of what guest setup applies (password, users, keys): changes trigger a rerun."""
    blob = json.dumps([spec.password, spec.users, spec.ssh_keys], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def public_settings(settings, with_password=False) -> dict:
    """Settings for results: the password is left out unless explicitly asked for."""
    out = {k: v for k, v in (settings or {}).items() if k != "guest_setup"}
    if not with_password and "password" in out:
        out["password"] = None if out["password"] is None else "********"
    return out


# ---- planning and applying a batch --------------------------------------------------------

class LxcGuestManager:
    """Converge a batch of containers of one host."""

    def __init__(self, backend, store, host_id=None, vg_name="lxc", production=True,
                 force_snapshot=False, check_mode=False, stop_timeout=30, start_timeout=30,
                 return_passwords=False, remove_volume=False,
                 profile_name_style=DEFAULT_PROFILE_NAME_STYLE):
        self.backend = backend
        self.store = store
        self.host_id = host_id or socket.getfqdn()
        self.profile_name_style = check_profile_name_style(profile_name_style)
        profile_name(self.host_id, "dir", None, self.profile_name_style)
        self.vg_name = validate_vg(vg_name)
        self.production = production
        self.force_snapshot = force_snapshot
        self.check_mode = check_mode
        self.stop_timeout = stop_timeout
        self.start_timeout = start_timeout
        self.return_passwords = return_passwords
        self.remove_volume = remove_volume
        self._vg_checked = set()
        self._backing_checked = set()

    # -- resolution of ip / mac / password
    def _inventory(self, names):
        """Addresses and MACs held by containers outside this batch (settings + configs)."""
        ips, macs = {}, {}
        for other, data in self.store.all().items():
            if other in names or not data:
                continue
            if data.get("ip"):
                ips[data["ip"]] = other
            if data.get("mac"):
                macs[data["mac"]] = other
        for other in self.backend.list() if os.path.isdir(self.backend.lxcpath) else []:
            if other in names or not NAME_RE.fullmatch(other):
                continue
            text = self.backend.read_config(other)
            addr = (config_value(text, "lxc.net.0.ipv4.address") or "").split("/")[0]
            if addr:
                ips.setdefault(addr, other)
            mac = config_value(text, "lxc.net.0.hwaddr")
            if mac:
                macs.setdefault(mac.lower(), other)
        return ips, macs

    def resolve(self, specs):
        """Fill ip, mac and password: given > stored settings > live config > generated."""
        names = {s.name for s in specs}
        used_ips, used_macs = self._inventory(names)
        used_ips, used_macs = set(used_ips), set(used_macs)
        pending = []
        # given values first, so generated ones never take an address someone asked for
        for spec in specs:
            if spec.state == "absent":
                continue
            net = parse_network(f"{spec.network}/{spec.prefixlen}", spec.name)
            if spec.ip:
                spec.ip = check_ip(spec.ip, net, spec.gateway, used_ips, spec.name)
                used_ips.add(spec.ip)
            if spec.mac:
                spec.mac = validate_mac(spec.mac, spec.name)
                if spec.mac in used_macs:
                    raise ValidationError(spec.name, "mac", spec.mac, "is already used")
                used_macs.add(spec.mac)
            pending.append((spec, net))
        for spec, net in pending:
            old = self.store.load(spec.name) or {}
            text = self.backend.read_config(spec.name)
            if not old and text:
                old = {"ip": (config_value(text, "lxc.net.0.ipv4.address") or "").split("/")[0]
                       or None, "mac": config_value(text, "lxc.net.0.hwaddr")}
            if not spec.ip:
                reuse = old.get("ip")
                try:
                    spec.ip = check_ip(reuse, net, spec.gateway, used_ips, spec.name) if reuse else None
                except ValidationError:
                    spec.ip = None
                if not spec.ip:
                    spec.ip = allocate_ip(net, spec.gateway, used_ips, spec.name)
                    spec.generated.append("ip")
                used_ips.add(spec.ip)
            if not spec.mac:
                reuse = (old.get("mac") or "").lower()
                if reuse and MAC_RE.fullmatch(reuse) and reuse not in used_macs:
                    spec.mac = reuse
                else:
                    spec.mac = generate_mac(used_macs)
                    spec.generated.append("mac")
                used_macs.add(spec.mac)
            if not spec.password:
                spec.password = old.get("password") or generate_password()
                if not old.get("password"):
                    spec.generated.append("password")
        return specs

    # -- the batch
    def converge(self, specs):
        """Apply every spec; returns ``(results, diffs, changed)``."""
        for spec in specs:
            if spec.state != "absent":
                self._policy(spec)
        self.resolve(specs)
        results, diffs = [], []
        # absent first: it frees addresses and names before anything is created
        absent = [s for s in specs if s.state == "absent"]
        deferred = []
        for spec in absent:
            try:
                result, diff = self._absent(spec)
            except CommandError:
                # an origin cannot go while its snapshot clones exist: retry after the others
                deferred.append(spec)
                continue
            results.append(result)
            diffs.append(diff)
        for spec in deferred:
            result, diff = self._absent(spec)
            result["actions"].insert(0, "retried after the other destroys")
            results.append(result)
            diffs.append(diff)
        for spec in specs:
            if spec.state != "absent":
                result, diff = self._present(spec)
                results.append(result)
                diffs.append(diff)
        order = {s.name: i for i, s in enumerate(specs)}
        pairs = sorted(zip(results, diffs), key=lambda p: order[p[0]["name"]])
        return [p[0] for p in pairs], [p[1] for p in pairs], any(r["changed"] for r in results)

    def _policy(self, spec):
        snap = spec.snapshot or spec.ptype.backing == "overlayfs"
        if snap and self.production and not self.force_snapshot:
            raise ValidationError(spec.name, "snapshot", True,
                                  "snapshots (and overlayfs clones) are refused on production "
                                  "hosts; set production=false or force_snapshot=true")

    def _absent(self, spec):
        result = {"name": spec.name, "state": "absent", "changed": False, "actions": []}
        before_state = self.backend.state(spec.name)
        had_settings = self.store.load(spec.name) is not None
        if before_state is not None:
            volume = self.backend.rootfs_volume(spec.name)
            if volume and not self.remove_volume:
                # lxc-destroy would lvremove the root; keep it unless asked (remove_volume)
                result["actions"].append(f"keep volume {volume}")
                result["kept_volume"] = volume
                if not self.check_mode:
                    if before_state != "STOPPED":
                        self.backend.stop(spec.name, self.stop_timeout)
                    self.backend.forget_rootfs(spec.name)
            result["actions"].append("destroy")
            if not self.check_mode:
                self.backend.destroy(spec.name)
        if had_settings:
            result["actions"].append("delete settings")
            if not self.check_mode:
                self.store.delete(spec.name)
        result["changed"] = bool(result["actions"])
        diff = {"before_header": spec.name, "after_header": spec.name,
                "before": {"state": (before_state or "absent").lower()}, "after": {"state": "absent"}}
        return result, diff

    def _check_lvm(self, spec):
        """The volume group exists, holds the new root, and the LV name in it is free."""
        be = self.backend
        if self.vg_name not in self._vg_checked:
            be.check_vg(self.vg_name)
            self._vg_checked.add(self.vg_name)
        if not spec.ptype.scratch and be.exists(spec.from_container):
            # lxc-copy -B lvm (lxc 5) only copies lvm roots: from a dir root it never creates
            # the volume and fails mounting it. The clone goes next to the origin's volume.
            vg = be.volume_vg(spec.from_container)
            if vg is None:
                raise ValidationError(spec.name, "from_container", spec.from_container,
                                      "is not an lvm container; lxc-copy clones only lvm roots "
                                      "into LVM (use an lvm origin, or profile_type lvm-scratch)")
            if vg != self.vg_name:
                raise ValidationError(spec.name, "vg_name", self.vg_name,
                                      f"the clone would go to volume group {vg!r}, the one of "
                                      f"{spec.from_container!r} (lxc-copy has no volume group "
                                      f"option)")
        if be.lv_exists(self.vg_name, spec.name):
            raise StateError(f"{spec.name}: LVM volume {self.vg_name}/{spec.name} already "
                             f"exists (kept by an earlier destroy?); remove it with lvremove, "
                             f"or name the container differently")

    def _create(self, spec, actions):
        backing = spec.ptype.backing
        fssize = lxc_fssize(spec.size) if spec.size else None
        if backing == "lvm":
            self._check_lvm(spec)
        if backing in ("btrfs", "zfs") and backing not in self._backing_checked:
            self.backend.check_backing(backing)
            self._backing_checked.add(backing)
        if not spec.ptype.scratch:
            if not self.backend.exists(spec.from_container):
                raise StateError(f"{spec.name}: origin container {spec.from_container!r} does "
                                 f"not exist under {self.backend.lxcpath}")
            actions.append(f"clone {spec.from_container} ({backing})")
            if not self.check_mode:
                self.backend.clone(spec.from_container, spec.name, backing, spec.snapshot, fssize)
            return
        if backing == "overlayfs":
            # lxc-create cannot make overlay roots: keep one dir container per image and
            # snapshot it (the image container is shared by every overlayfs-scratch guest).
            image_ct = f"vman-image-{spec.image}"
            if not self.backend.exists(image_ct):
                actions.append(f"create image container {image_ct}")
                if not self.check_mode:
                    self.backend.create(image_ct, spec.image, "dir",
                                        template_options=spec.template_options)
            actions.append(f"clone {image_ct} (overlayfs)")
            if not self.check_mode:
                self.backend.clone(image_ct, spec.name, "overlayfs", True)
            return
        actions.append(f"create from template {spec.image} ({backing})")
        if not self.check_mode:
            self.backend.create(spec.name, spec.image, backing, self.vg_name, fssize,
                                spec.template_options)

    def _prepare_rootfs(self, spec, actions, warnings):
        with self.backend.mounted_rootfs(spec.name) as root:
            if root is None:
                warnings.append(f"{spec.name}: rootfs not reachable as a directory; eth0 and "
                                "resolv.conf inside the guest were left as they are")
                return
            safe_write(root, "etc/network/interfaces", INTERFACES)
            if spec.dnsservers:
                safe_write(root, "etc/resolv.conf", render_resolv_conf(spec.dnsservers))
        actions.append("prepare rootfs network")

    def _guest_setup(self, spec, actions):
        """Users, password and ssh keys inside the running guest (via lxc-attach)."""
        actions.append("guest setup")
        if self.check_mode:
            return
        # again here: the password may come from the settings file rather than the task
        validate_password(spec.password, spec.name)
        for user in spec.users:
            validate_user(user, spec.name)
        be = self.backend
        for user in spec.users:
            if be.attach(spec.name, ["id", "-u", user], check=False).rc != 0:
                be.attach(spec.name, ["useradd", "-m", "-s", "/bin/bash", user])
        lines = "".join(f"{u}:{spec.password}\n" for u in spec.users)
        be.attach(spec.name, ["chpasswd"], data=lines, secrets=[spec.password])
        if spec.ssh_keys:
            keys = "".join(k.strip() + "\n" for k in spec.ssh_keys)
            for user in spec.users:
                entry = be.attach(spec.name, ["getent", "passwd", user]).stdout.strip().split(":")
                if len(entry) < 7 or not entry[5].startswith("/"):
                    raise StateError(f"{spec.name}: user {user} has no home directory")
                ssh_dir = entry[5].rstrip("/") + "/.ssh"
                be.attach(spec.name, ["install", "-d", "-m", "700", "-o", user, "-g", entry[3],
                                      ssh_dir])
                be.attach(spec.name, ["tee", ssh_dir + "/authorized_keys"], data=keys)
                be.attach(spec.name, ["chown", f"{user}:{entry[3]}", ssh_dir + "/authorized_keys"])
                be.attach(spec.name, ["chmod", "600", ssh_dir + "/authorized_keys"])

    def _present(self, spec):
        actions, warnings = [], []
        be = self.backend
        before_state = be.state(spec.name)
        existed = before_state is not None
        before_conf = be.read_config(spec.name)
        old_settings = self.store.load(spec.name)
        if not existed:
            self._create(spec, actions)
            base_conf = be.read_config(spec.name) if not self.check_mode else ""
        else:
            base_conf = before_conf
        after_conf = render_config(base_conf, managed_config(spec), spec.lxc_conf_unset)
        if after_conf != base_conf or not existed:
            if after_conf != base_conf:
                actions.append("write config")
            if not self.check_mode:
                be.write_config(spec.name, after_conf)
        if not existed and not self.check_mode:
            self._prepare_rootfs(spec, actions, warnings)
        settings = spec.settings(self.host_id, self.profile_name_style)
        settings["guest_setup"] = (old_settings or {}).get("guest_setup")
        state_now = "STOPPED" if not existed else before_state
        if spec.state == "started" and state_now != "RUNNING":
            actions.append("start")
            if not self.check_mode:
                be.start(spec.name, self.start_timeout)
            state_now = "RUNNING"
        elif spec.state == "stopped" and state_now not in ("STOPPED", None):
            actions.append("stop")
            if not self.check_mode:
                be.stop(spec.name, self.stop_timeout)
            state_now = "STOPPED"
        if state_now == "RUNNING":
            fingerprint = guest_fingerprint(spec)
            if settings["guest_setup"] != fingerprint:
                self._guest_setup(spec, actions)
                settings["guest_setup"] = fingerprint
        if settings != old_settings:
            actions.append("save settings")
            if not self.check_mode:
                self.store.save(spec.name, settings)
        changed = bool(actions)
        result = {
            "name": spec.name, "state": spec.state, "changed": changed, "actions": actions,
            "created": not existed, "generated": list(spec.generated),
            "profile": settings["profile"],
            "settings": public_settings(settings, self.return_passwords),
        }
        if existed and before_state == "RUNNING" and "write config" in actions:
            result["restart_needed"] = True
        if warnings:
            result["warnings"] = warnings
        diff = {
            "before_header": f"{spec.name} ({be.config_path(spec.name)})",
            "after_header": f"{spec.name} ({be.config_path(spec.name)})",
            "before": f"# state: {(before_state or 'absent').lower()}\n" + before_conf,
            "after": f"# state: {state_now.lower()}\n" + after_conf,
        }
        return result, diff


def container_info(backend, store, name, with_password=False) -> dict:
    """Stored settings of one container plus its live state, addresses and gateway."""
    validate_name(name)
    settings = store.load(name)
    state = backend.state(name)
    conf = backend.read_config(name) if state is not None else ""
    live = {
        "exists": state is not None,
        "state": (state or "absent").lower(),
        "ips": backend.ipv4(name) if state == "RUNNING" else [],
        "gateway": config_value(conf, "lxc.net.0.ipv4.gateway"),
        "mac": config_value(conf, "lxc.net.0.hwaddr"),
        "bridge": config_value(conf, "lxc.net.0.link"),
        "autostart": config_value(conf, "lxc.start.auto") == "1",
    }
    live["ip"] = live["ips"][0] if live["ips"] else None
    return {"name": name, "settings": public_settings(settings, with_password)
            if settings is not None else None, "live": live}


def containers_info(backend, store, names=None, with_password=False) -> list:
    """:func:`container_info` of ``names``, or of every container with settings or under lxcpath."""
    if not names:
        found = set(store.names())
        if os.path.isdir(backend.lxcpath):
            found.update(n for n in backend.list() if NAME_RE.fullmatch(n))
        names = sorted(found)
    return [container_info(backend, store, n, with_password) for n in names]


def wait_running_system(backend, name, timeout=60, poll=0.5) -> str:
    """Wait until ``systemctl is-system-running`` inside the guest leaves 'starting'."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        res = backend.attach(name, ["systemctl", "is-system-running"], check=False, timeout=10)
        status = res.stdout.strip()
        if status in ("running", "degraded"):
            return status
        time.sleep(poll)
    raise StateError(f"{name}: systemd did not finish booting in {timeout} s (last: {status!r})")


# ---- argument specs shared by the modules (paired with doc_fragments/lxc.py) ---------------

#: Host-side options of every LXC module (documented in ``vman.lifecycle.lxc``).
HOST_ARGSPEC = {
    "lxc_path": {"type": "path", "default": "/var/lib/lxc"},
    "settings_dir": {"type": "path", "default": "/var/lib/vman/lxc"},
}
