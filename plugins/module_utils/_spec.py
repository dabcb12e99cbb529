# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VM spec model (private, no stability promise).

A VM is one dict whose keys are those of the ``xen_vman`` role README (``org``, ``name``,
``memory``, ``interfaces``, ``os.type`` ...). :func:`normalize` merges it with the role-level
defaults (passed as one dict whose keys are the role variable names without ``xen_vman_`` and
without ``default_``) and validates it into a frozen :class:`VmSpec`. Every error is a
:class:`ValidationError` naming the VM (``org-name``), the field and the bad value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, as_text, bad_char, safe_repr


def full_name(org, name) -> str:
    """A VM's full name, ``<org>-<name>`` (``<name>`` without an org): its Xen domain, ``vm@``
    unit instance and config file stem, its inventory host name, its iSCSI target suffix. The
    one place that builds it."""
    return f"{org}-{name}" if org else str(name)


try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    netaddr = None
    HAS_NETADDR = False

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
IFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
#: xl.cfg's cpus: "all", "0-3,5,^1", "node:0", "nodes:0-1,^node:1", "socket:0"
CPUS_RE = re.compile(r"[a-z0-9,^: -]{1,256}")
#: ``server:/path`` of an NFS root: host name, IPv4 or [IPv6], then an absolute path
NFSROOT_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
                        r":/[^\s,]*")
OPTION_KEY_RE = re.compile(r"[a-z_][a-z0-9_]*")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
#: characters that may not appear inside a quoted xl.cfg string or a kernel command line value
UNSAFE_CHARS = ('"', "\n", "\r", "\x00", "\\")

STORAGE_TYPES = ("nfs", "iscsi")
BUILDERS = ("generic", "hvm")
STATES = ("present", "running", "stopped", "absent")

#: Defaults of the xen_vman README, keyed by the role variable name minus ``xen_vman_[default_]``.
ROLE_DEFAULTS: dict = {
    "memory": 1024,
    "vcpus": 2,
    "cpu_str": "all,^1",
    "storage_type": "nfs",
    "disks": [],
    "manual_root_disk": False,
    "filesystem": "ext4",
    "gateway": None,
    "mtu": None,
    "nameserver": ["8.8.8.8", "8.8.4.4"],
    "boot_after_creation": True,
    "auto_boot": True,
    "builder": "generic",
    "kernel": None,
    "initrd": "/etc/xen/initrd.img",
    "cmdline": None,
    "spice": False,
    "spicehost": "0.0.0.0",
    "spiceport": 3100,
    "mouse": True,
    "share_clipboard": True,
    "spicevdagent": True,
    "max_usb_redirections": 4,
    "additional_xen_options": {},
    "auto_install": True,
    "network_script": "vif-bridge",
    "network_bridge": None,
    "lazy_network_bridge": None,
    "xen_str": None,
    "vifname_prefix": None,
    "nfsroot_base": None,
    "iscsi_server": None,
    "iscsi_base_wwn": None,
    "iscsi_lun": 0,
    "netmask_prefix": 24,
}

#: Keys a VM dict may carry (README "VM variables", plus ``state`` and ``description``).
VM_KEYS = frozenset((
    "org", "name", "memory", "vcpus", "cpu_str", "interfaces", "connection_ip", "storage_type",
    "disks", "manual_root_disk", "filesystem", "os", "boot_after_creation", "auto_boot",
    "builder", "kernel", "initrd", "cmdline", "spice", "spicehost", "spiceport", "spicepasswd",
    "share_clipboard", "spicevdagent", "max_usb_redirections", "mouse", "additional_xen_options",
    "auto_install", "reinstall", "state", "gateway", "mtu", "nameserver", "iscsi_lun",
    "spice_unauthenticated", "description",
))
INTERFACE_KEYS = frozenset(("ip", "ipv6", "mac", "mtu", "bridge", "vifname", "xen_str", "script"))

# The seed README spells the defaults variable "additonal"; accept both, prefer the right one.
_DEFAULT_ALIASES = {
    "additonal_xen_options": "additional_xen_options",
    "lazy_default_network_bridge": "lazy_network_bridge",
}


@dataclass(frozen=True)
class Interface:
    """One vif of a VM."""

    index: int
    ip: str | None = None          # address without prefix
    prefixlen: int | None = None   # from CIDR notation, None when not given
    mac: str | None = None         # canonical lower-case colon form
    mtu: int | None = None
    bridge: str | None = None
    vifname: str | None = None
    script: str | None = None
    xen_str: str | None = None
    ipv6: str | None = None        # the interface's IPv6 address (key ``ipv6``), without prefix
    ipv6_prefixlen: int | None = None


@dataclass(frozen=True)
class VmSpec:
    """A validated VM with every default resolved."""

    org: str
    name: str
    os_type: str
    os_version: str
    memory: int
    vcpus: int
    cpu_str: str | None
    interfaces: tuple
    connection_ip: str | None
    connection_prefixlen: int | None
    storage_type: str
    disks: tuple
    manual_root_disk: bool
    filesystem: str
    gateway: str | None
    nameservers: tuple
    boot_after_creation: bool
    auto_boot: bool
    builder: str
    kernel: str | None
    initrd: str | None
    cmdline: str | None
    spice: bool
    spicehost: str
    spiceport: int
    spicepasswd: str | None
    mouse: bool
    share_clipboard: bool
    spicevdagent: bool
    max_usb_redirections: int
    additional_xen_options: tuple   # sorted (key, value) pairs
    auto_install: bool
    reinstall: bool
    nfsroot_base: str | None
    iscsi_server: str | None
    iscsi_base_wwn: str | None
    iscsi_lun: int
    netmask_prefix: int
    state: str | None = None
    description: str | None = None

    @property
    def full_name(self) -> str:
        """Domain name, unit instance and config file stem: ``<org>-<name>``."""
        return full_name(self.org, self.name)

    @property
    def options(self) -> dict:
        """``additional_xen_options`` as a dict."""
        return dict(self.additional_xen_options)

    @property
    def primary_ip(self) -> str | None:
        """The VM's static address: ``connection_ip`` or the first interface's IP (else None:
        DHCP)."""
        if self.connection_ip:
            return self.connection_ip
        # the first interface only, as the original role: it is eth0, and an address of eth1
        # on eth0 would be wrong (no address there: an NFS root asks DHCP)
        return self.interfaces[0].ip if self.interfaces else None

    @property
    def primary_prefixlen(self) -> int:
        """Prefix length of :attr:`primary_ip` (CIDR given, else ``netmask_prefix``)."""
        if self.connection_ip:
            return self.connection_prefixlen or self.netmask_prefix
        if self.interfaces and self.interfaces[0].ip:
            return self.interfaces[0].prefixlen or self.netmask_prefix
        return self.netmask_prefix


# ---- small validators: each raises ValidationError(vm, field, value, reason) ----------------

class _Checker:
    """Validators bound to one VM label so that every error names it."""

    def __init__(self, label: str):
        self.label = label

    def fail(self, fld: str, value, reason: str):
        raise ValidationError(self.label, fld, value, reason)

    def name(self, fld, value):
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            self.fail(fld, value, f"must match {NAME_RE.pattern}")
        return value

    def positive_int(self, fld, value, maximum=None):
        if isinstance(value, bool):
            self.fail(fld, value, "must be a positive integer, not a boolean")
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            self.fail(fld, value, "must be a positive integer")
        if number <= 0:
            self.fail(fld, value, "must be a positive integer")
        if maximum is not None and number > maximum:
            self.fail(fld, value, f"must be at most {maximum}")
        return number

    def int_range(self, fld, value, low, high):
        if isinstance(value, bool):
            self.fail(fld, value, f"must be an integer from {low} to {high}")
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            self.fail(fld, value, f"must be an integer from {low} to {high}")
        if not low <= number <= high:
            self.fail(fld, value, f"must be an integer from {low} to {high}")
        return number

    def boolean(self, fld, value):
        if isinstance(value, bool):
            return value
        text = as_text(value).strip().lower()
        if text in ("yes", "true", "on", "1"):
            return True
        if text in ("no", "false", "off", "0"):
            return False
        self.fail(fld, value, "must be a boolean")

    def choice(self, fld, value, choices):
        if value not in choices:
            self.fail(fld, value, f"must be one of {', '.join(choices)}")
        return value

    def text(self, fld, value, pattern=None, allow_none=True):
        if value is None:
            if allow_none:
                return None
            self.fail(fld, value, "is required")
        if isinstance(value, (dict, list, bool)):
            self.fail(fld, value, "must be a string")
        value = as_text(value)
        if any(ch in value for ch in UNSAFE_CHARS):
            self.fail(fld, value, "must not contain quotes, backslashes or line breaks")
        ch = bad_char(value)
        if ch is not None:
            self.fail(fld, value, f"must not contain control characters (found U+{ord(ch):04X})")
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(fld, value, f"must match {pattern.pattern}")
        return value

    def path(self, fld, value):
        value = self.text(fld, value)
        if value is not None and not value.startswith("/"):
            self.fail(fld, value, "must be an absolute path")
        return value

    def ip(self, fld, value, allow_prefix=True):
        """Return (address, prefixlen or None)."""
        if value is None or value == "":
            return None, None
        text = self.text(fld, value)
        try:
            if "/" in text:
                if not allow_prefix:
                    self.fail(fld, value, "must be an address without prefix")
                net = netaddr.IPNetwork(text)
                return str(net.ip), net.prefixlen
            return str(netaddr.IPAddress(text)), None
        except (netaddr.AddrFormatError, ValueError, TypeError):
            self.fail(fld, value, "is not a valid IP address")

    def mac(self, fld, value):
        if value is None or value == "":
            return None
        text = self.text(fld, value)
        if not isinstance(text, str) or not _MAC_RE.fullmatch(text):
            # netaddr alone also takes "00:14:22", "00-14-22" or "12345" and makes another
            # MAC of them. Six octets, written as xl takes them (or with dashes, made colons).
            self.fail(fld, value, "must be six hex octets (xx:xx:xx:xx:xx:xx)")
        try:
            eui = netaddr.EUI(text)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            self.fail(fld, value, "is not a valid MAC address")
        if eui.version != 48 or int(eui) >> 40 & 1:
            self.fail(fld, value, "must be a 48-bit unicast MAC address")
        return ":".join(f"{b:02x}" for b in eui.words)

    def str_list(self, fld, value):
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            self.fail(fld, value, "must be a list of strings")
        return tuple(self.text(f"{fld}[{i}]", v, allow_none=False) for i, v in enumerate(value))


_XL_STRING_RE = re.compile(r"\"([^\"\\\n]*)\"|'([^'\\\n]*)'")
_XL_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?")
#: one item of an xl.cfg list (with its comma) or the end of the list, blanks around
_XL_ITEM_RE = re.compile(r"\s*(?:(?P<atom>\"[^\"\\\n]*\"|'[^'\\\n]*'|0[xX][0-9a-fA-F]+|"
                         r"[0-9]+(?:\.[0-9]+)?)\s*(?:,|(?P<end>$))|(?P<end2>$))")


def _xl_atom(text: str):
    """One xl.cfg atom written as xl.cfg text (a quoted string or a number), else None."""
    match = _XL_STRING_RE.fullmatch(text)
    if match:
        return match.group(1) if match.group(1) is not None else match.group(2)
    if _XL_NUMBER_RE.fullmatch(text):
        if text[:2].lower() == "0x":
            return int(text, 16)
        return float(text) if "." in text else int(text)
    return None


def xl_literal(check: _Checker, fld: str, text: str):
    """An ``additional_xen_options`` string value that is written the way xl.cfg writes values.

    The original role put each value verbatim after ``key = ``, so its users wrote xl strings
    with their quotes (``[[on_crash, '"preserve"']]``), numbers as text and lists as
    ``'["a", "b"]'``. Such a value becomes the string, number or tuple it denotes (and is
    rendered once, not quoted twice); any other text is a plain string, quoted when rendered.
    """
    stripped = text.strip()
    atom = _xl_atom(stripped)
    if atom is not None:
        return atom
    if stripped.startswith("[") and stripped.endswith("]"):
        items, pos, inner = [], 0, stripped[1:-1]
        while True:
            match = _XL_ITEM_RE.match(inner, pos)
            if not match:
                check.fail(fld, text, "is an xl.cfg list whose items must be quoted strings or "
                                      "numbers, separated by commas")
            if match.group("atom") is not None:
                items.append(str(_xl_atom(match.group("atom"))))
            pos = match.end()
            if match.group("end") is not None or match.group("end2") is not None:
                return tuple(items)
    return text


def _option_value(check: _Checker, key: str, value):
    """Validate one additional_xen_options value: a string, number, boolean or list of strings."""
    fld = f"additional_xen_options.{key}"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        value = xl_literal(check, fld, value)
        if isinstance(value, tuple):
            return tuple(check.text(f"{fld}[{i}]", v, allow_none=False) for i, v in enumerate(value))
        return value if isinstance(value, (int, float)) else check.text(fld, value)
    if isinstance(value, (list, tuple)):
        return tuple(check.text(f"{fld}[{i}]", v, allow_none=False) for i, v in enumerate(value))
    check.fail(fld, value, "must be a string, number, boolean or list of strings")


def _merge_options(check: _Checker, default_opts, vm_opts) -> tuple:
    merged = {}
    for source, fld in ((default_opts, "defaults.additional_xen_options"),
                        (vm_opts, "additional_xen_options")):
        if source in (None, ""):
            continue
        if not isinstance(source, Mapping):
            check.fail(fld, source, "must be a dict of xl.cfg keys to values")
        for key, value in source.items():
            if not isinstance(key, str) or not OPTION_KEY_RE.fullmatch(key):
                check.fail(fld, key, f"key must match {OPTION_KEY_RE.pattern}")
            merged[key] = _option_value(check, key, value)
    return tuple(sorted(merged.items()))


def normalize_defaults(defaults: Mapping | None) -> dict:
    """Return ROLE_DEFAULTS overlaid with ``defaults`` (None values keep the built-in default).

    Unknown keys are kept (roles pass more variables than the spec uses); the seed's
    misspelled ``additonal_xen_options`` is accepted as ``additional_xen_options``.
    """
    merged = dict(ROLE_DEFAULTS)
    for key, value in (defaults or {}).items():
        key = _DEFAULT_ALIASES.get(key, key)
        if value is None and key in ROLE_DEFAULTS:
            continue
        merged[key] = value
    return merged


def _interfaces(check: _Checker, raw, d: dict) -> tuple:
    if raw is None:
        raw = []
    if not isinstance(raw, (list, tuple)):
        check.fail("interfaces", raw, "must be a list of dicts")
    out = []
    for index, iface in enumerate(raw):
        fld = f"interfaces[{index}]"
        if iface is None:
            iface = {}
        if not isinstance(iface, Mapping):
            check.fail(fld, iface, "must be a dict")
        unknown = sorted(set(iface) - INTERFACE_KEYS)
        if unknown:
            check.fail(f"{fld}.{unknown[0]}", iface[unknown[0]],
                       f"unknown interface key (known: {', '.join(sorted(INTERFACE_KEYS))})")
        ip, prefix = check.ip(f"{fld}.ip", iface.get("ip"))
        ipv6, ipv6_prefix = check.ip(f"{fld}.ipv6", iface.get("ipv6"))
        if ipv6 is not None and ":" not in ipv6:
            check.fail(f"{fld}.ipv6", iface.get("ipv6"), "must be an IPv6 address")
        mtu = iface.get("mtu", d.get("mtu"))
        vifname = iface.get("vifname")
        if vifname is None and d.get("vifname_prefix"):
            vifname = f"{d['vifname_prefix']}.{index}"
        bridge = iface.get("bridge") or d.get("lazy_network_bridge") or d.get("network_bridge") or None
        out.append(Interface(
            index=index,
            ip=ip,
            prefixlen=prefix,
            mac=check.mac(f"{fld}.mac", iface.get("mac")),
            mtu=None if mtu in (None, "") else check.int_range(f"{fld}.mtu", mtu, 68, 65535),
            bridge=check.text(f"{fld}.bridge", bridge, IFACE_RE),
            vifname=check.text(f"{fld}.vifname", vifname, IFACE_RE),
            script=check.text(f"{fld}.script", iface.get("script") or d.get("network_script"),
                              re.compile(r"[A-Za-z0-9_./-]{1,255}")),
            xen_str=check.text(f"{fld}.xen_str", iface.get("xen_str", d.get("xen_str"))),
            ipv6=ipv6,
            ipv6_prefixlen=ipv6_prefix,
        ))
    macs = [i.mac for i in out if i.mac]
    if len(macs) != len(set(macs)):
        dup = next(m for m in macs if macs.count(m) > 1)
        check.fail("interfaces", dup, "MAC address used by more than one interface")
    return tuple(out)


def normalize(vm: Mapping, defaults: Mapping | None = None, host_kernel: str | None = None,
              require_os: bool = True) -> VmSpec:
    """Merge ``vm`` with ``defaults`` and validate it into a :class:`VmSpec`.

    ``host_kernel`` (e.g. ``os.uname().release`` on the hypervisor) makes the default PV kernel
    ``/boot/vmlinuz-<host_kernel>``; without it the default is ``/vmlinuz``.
    """
    if not isinstance(vm, Mapping):
        raise ValidationError("(vm)", "vm", vm, "must be a dict")
    d = normalize_defaults(defaults)
    org, name = vm.get("org"), vm.get("name")
    label = f"{as_text(org)}-{as_text(name)}" if org or name else "(vm)"
    if bad_char(label) is not None or len(label) > 130:
        label = safe_repr(label)  # the label starts every error message: keep it one line
    check = _Checker(label)
    check.name("org", org)
    check.name("name", name)
    unknown = sorted(set(vm) - VM_KEYS)
    if unknown:
        check.fail(unknown[0], vm[unknown[0]], "unknown VM variable")

    def pick(key):
        value = vm.get(key)
        return d.get(key) if value is None else value

    os_info = vm.get("os") or {}
    if not isinstance(os_info, Mapping):
        check.fail("os", os_info, "must be a dict with type and version")
    os_type = check.text("os.type", os_info.get("type"), NAME_RE, allow_none=not require_os)
    version = os_info.get("version")
    if isinstance(version, float):
        # YAML reads 18.04 as a float; keep the digits repr() gives back (18.10 is lost as 18.1).
        version = repr(version)
    os_version = check.text("os.version", None if version is None else str(version),
                            re.compile(r"[A-Za-z0-9_.+~-]{1,64}"), allow_none=not require_os)

    storage = check.choice("storage_type", pick("storage_type"), STORAGE_TYPES)
    builder = check.choice("builder", pick("builder"), BUILDERS)
    spice = check.boolean("spice", pick("spice"))
    if spice and builder != "hvm":
        # The seed documents SPICE for generic VMs, but xl only has SPICE for HVM guests.
        check.fail("spice", True, "SPICE needs builder 'hvm' (xl has no SPICE for PV guests)")

    connection_ip, connection_prefix = check.ip("connection_ip", vm.get("connection_ip"))
    gateway = check.ip("gateway", pick("gateway"), allow_prefix=False)[0]
    kernel = pick("kernel") or (f"/boot/vmlinuz-{host_kernel}" if host_kernel else "/vmlinuz")
    disks = vm.get("disks")
    if disks is None:
        disks = d.get("disks")
    spicepasswd = vm.get("spicepasswd")
    if spice and not spicepasswd and not check.boolean(
            "spice_unauthenticated", vm.get("spice_unauthenticated", False)):
        # xl then writes spicedisable_ticketing = 1: a console anyone who reaches spicehost
        # (0.0.0.0 by default) can take over, so only an explicit request gets one.
        check.fail("spicepasswd", spicepasswd,
                   "SPICE without a password is an unauthenticated console on spicehost "
                   f"{pick('spicehost') or '0.0.0.0'}; set spicepasswd, or "
                   "spice_unauthenticated: true to ask for an open console")

    spec = VmSpec(
        org=org,
        name=name,
        os_type=os_type or "",
        os_version=os_version or "",
        memory=check.positive_int("memory", pick("memory")),
        vcpus=check.positive_int("vcpus", pick("vcpus"), maximum=512),
        cpu_str=check.text("cpu_str", pick("cpu_str"), CPUS_RE) or None,
        interfaces=_interfaces(check, vm.get("interfaces"), d),
        connection_ip=connection_ip,
        connection_prefixlen=connection_prefix,
        storage_type=storage,
        disks=check.str_list("disks", disks),
        manual_root_disk=check.boolean("manual_root_disk", pick("manual_root_disk")),
        filesystem=check.text("filesystem", pick("filesystem"), re.compile(r"[a-z0-9]{2,16}")),
        gateway=gateway,
        nameservers=tuple(check.ip(f"nameserver[{i}]", ns, allow_prefix=False)[0]
                          for i, ns in enumerate(_as_list(check, "nameserver", pick("nameserver")))),
        boot_after_creation=check.boolean("boot_after_creation", pick("boot_after_creation")),
        auto_boot=check.boolean("auto_boot", pick("auto_boot")),
        builder=builder,
        kernel=check.path("kernel", kernel),
        initrd=check.path("initrd", pick("initrd")),
        cmdline=check.text("cmdline", pick("cmdline")) or None,
        spice=spice,
        spicehost=check.ip("spicehost", pick("spicehost"), allow_prefix=False)[0] or "0.0.0.0",
        spiceport=check.int_range("spiceport", pick("spiceport"), 1, 65535),
        spicepasswd=check.text("spicepasswd", spicepasswd) or None,
        mouse=check.boolean("mouse", pick("mouse")),
        share_clipboard=check.boolean("share_clipboard", pick("share_clipboard")),
        spicevdagent=check.boolean("spicevdagent", pick("spicevdagent")),
        max_usb_redirections=check.int_range("max_usb_redirections",
                                             pick("max_usb_redirections"), 0, 4),
        additional_xen_options=_merge_options(check, d.get("additional_xen_options"),
                                              vm.get("additional_xen_options")),
        auto_install=check.boolean("auto_install", pick("auto_install")),
        reinstall=check.boolean("reinstall", vm.get("reinstall", False)),
        nfsroot_base=check.text("nfsroot_base", d.get("nfsroot_base")),
        iscsi_server=check.text("iscsi_server", d.get("iscsi_server"),
                                re.compile(r"[A-Za-z0-9_.:\[\]-]{1,255}")),
        iscsi_base_wwn=check.text("iscsi_base_wwn", d.get("iscsi_base_wwn"),
                                  re.compile(r"[a-z0-9][a-z0-9.:-]{0,200}")),
        iscsi_lun=check.int_range("iscsi_lun", pick("iscsi_lun"), 0, 16383),
        netmask_prefix=check.int_range("netmask_prefix", d.get("netmask_prefix"), 1, 128),
        state=None if vm.get("state") is None else check.choice("state", vm.get("state"), STATES),
        description=_description(check, vm.get("description")),
    )
    _check_root(check, spec)
    return spec


def _as_list(check: _Checker, fld: str, value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        check.fail(fld, value, "must be a list")
    return list(value)


def _check_root(check: _Checker, spec: VmSpec) -> None:
    """Cross-field rules for the root filesystem backends."""
    if spec.manual_root_disk:
        return
    if spec.storage_type == "iscsi":
        if not spec.iscsi_server:
            check.fail("iscsi_server", None, "required for storage_type iscsi (xen_vman_iscsi_server)")
        try:
            split_portal(spec.iscsi_server)
        except ValueError:
            check.fail("iscsi_server", spec.iscsi_server,
                       "must be a host, host:port, an IPv6 address, [IPv6] or [IPv6]:port")
        if not spec.iscsi_base_wwn:
            check.fail("iscsi_base_wwn", None,
                       "required for storage_type iscsi (xen_vman_iscsi_base_wwn)")
    if spec.storage_type == "nfs" and spec.builder == "generic" and not spec.cmdline:
        if not spec.nfsroot_base:
            check.fail("nfsroot_base", None, "required for storage_type nfs (xen_vman_nfsroot_base)")
        if not NFSROOT_RE.fullmatch(spec.nfsroot_base):
            # without a server the kernel gets nfsroot=/path and mounts from whatever server
            # DHCP names (or none): refuse instead of rendering it
            check.fail("nfsroot_base", spec.nfsroot_base,
                       "must be <server>:/<path> (a host name, an IPv4 address or [IPv6] "
                       "before the ':', an absolute path without spaces after it)")


def normalize_all(vms, defaults: Mapping | None = None, host_kernel: str | None = None) -> list:
    """Normalize a batch; reject two VMs with the same ``org-name``."""
    if vms is None:
        return []
    if not isinstance(vms, (list, tuple)):
        raise ValidationError("(vms)", "vms", vms, "must be a list of VM dicts")
    specs, seen = [], {}
    for index, vm in enumerate(vms):
        spec = normalize(vm, defaults, host_kernel)
        if spec.full_name in seen:
            raise ValidationError(spec.full_name, "name", spec.name,
                                  f"defined twice (vms[{seen[spec.full_name]}] and vms[{index}])")
        seen[spec.full_name] = index
        specs.append(spec)
    _refuse_shared_addresses(specs)
    return specs


def split_portal(server: str, port: int = 3260) -> tuple:
    """``(host, port)`` of an iSCSI server given as ``host``, ``host:port``, an IPv6 literal,
    ``[v6]`` or ``[v6]:port`` (the original xen_vman role takes ``host:port``, since it writes
    the server verbatim into the by-path name). IPv6 hosts come back bracketed."""
    text = str(server)
    if text.startswith("["):
        host, _sep, rest = text.partition("]")
        host += "]"
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        elif rest:
            raise ValueError(f"bad iSCSI portal {text!r}")
        return host, port
    if text.count(":") == 1:
        host, _sep, given = text.partition(":")
        if not given.isdigit() or not 0 < int(given) < 65536 or not host:
            raise ValueError(f"bad iSCSI portal {text!r}")
        return host, int(given)
    if ":" in text:
        return f"[{text}]", port
    return text, port


def _description(check, value):
    """The VM's free-text description: one line of printable text (it lands in a comment)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        check.fail("description", value, "must be a string")
    if len(value) > 200 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        check.fail("description", value[:60], "must be one line of at most 200 printable characters")
    return value.strip() or None


def _refuse_shared_addresses(specs) -> None:
    """Two VMs of one host with the same MAC or IP address would fight over it on the bridge."""
    owners = {}
    for spec in specs:
        mine = {("mac", i.mac) for i in spec.interfaces if i.mac}
        mine |= {("ip", i.ip) for i in spec.interfaces if i.ip}
        mine |= {("ip", i.ipv6) for i in spec.interfaces if i.ipv6}
        if spec.connection_ip:
            mine.add(("ip", spec.connection_ip))
        for kind, value in sorted(mine):
            other = owners.setdefault((kind, value), spec.full_name)
            if other != spec.full_name:
                field = "interfaces.mac" if kind == "mac" else "ip"
                raise ValidationError(spec.full_name, field, value,
                                      f"is also the {kind.upper()} of VM '{other}' on this host")


def spec_to_dict(spec: VmSpec) -> dict:
    """A JSON-able view of a spec, secrets removed (for results and inventories)."""
    out = {}
    for key in spec.__dataclass_fields__:
        if key == "spicepasswd":
            continue
        value = getattr(spec, key)
        if key == "interfaces":
            value = [dict(i.__dict__) for i in value]
        elif key == "additional_xen_options":
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value}
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    out["full_name"] = spec.full_name
    return out


def defaults_from_role_vars(role_vars: Mapping[str, Any]) -> dict:
    """Map role variable names to ``defaults`` keys.

    ``xen_vman_default_gateway`` → ``gateway``, ``xen_vman_nfsroot_base`` → ``nfsroot_base``.
    """
    out = {}
    for key, value in role_vars.items():
        if not key.startswith("xen_vman_"):
            continue
        short = key[len("xen_vman_"):]
        if short.startswith("default_"):
            short = short[len("default_"):]
        out[_DEFAULT_ALIASES.get(short, short)] = value
    return out
