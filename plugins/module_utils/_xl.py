# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xl.cfg rendering and parsing, and the ``xl`` toolstack (private, no stability promise).

:func:`render` and :func:`parse` are pure: they turn a :class:`VmSpec` into xl.cfg text and
xl.cfg text back into a dict. :class:`XlToolstack` runs ``xl`` through the argv runner.
"""

from __future__ import annotations

import datetime
import json
import re
import time

from ansible_collections.vman.lifecycle.plugins.module_utils import _iscsi
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    CommandError, VmanError)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Runner, fmt_flag, fmt_positional

HEADER_MARK = "# Managed by vman.lifecycle (xen_domain); local changes are overwritten."
_HEADER_RE = re.compile(r"^#\s*([a-z_]+):\s*(.*?)\s*$")

try:
    import netaddr
except ImportError:  # pragma: no cover
    netaddr = None


class XlParseError(VmanError):
    """xl.cfg text that does not follow the xl.cfg grammar."""


# ---- rendering ------------------------------------------------------------------------------

def _quote(value: str) -> str:
    return '"' + value + '"'


def _value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + "".join(f"    {_quote(str(v))},\n" for v in value) + "]"
    return _quote(str(value))


def nfs_root_path(base: str, org: str, name: str) -> str:
    """``<base>/<org>/<name>-root`` joined with exactly one slash after the base."""
    return f"{base.rstrip('/')}/{org}/{name}-root"


def _ip_arg(spec) -> str:
    """dracut/kernel ``ip=`` argument: a static address on eth0, or DHCP without one."""
    address = spec.primary_ip
    if address is None:
        # the form the original role writes for a VM without an address: every field empty
        # but autoconf (client, server, gateway, netmask, hostname, device, "dhcp")
        return "ip=::::::dhcp"
    prefix = spec.primary_prefixlen
    gateway = spec.gateway or ""
    if ":" in address:  # IPv6: bracketed, prefix length instead of a netmask
        gw = f"[{gateway}]" if gateway else ""
        return f"ip=[{address}]::{gw}:{prefix}:{spec.name}:eth0:none"
    mask = str(netaddr.IPNetwork(f"0.0.0.0/{min(prefix, 32)}").netmask)
    return f"ip={address}::{gateway}:{mask}:{spec.name}:eth0:off"


def kernel_cmdline(spec) -> str | None:
    """The kernel command line: ``cmdline`` when given, else generated from the root backend."""
    if spec.cmdline:
        return spec.cmdline
    if spec.builder != "generic":
        return None
    if spec.manual_root_disk:
        # The user's own disks hold the root; by convention the first one is xvda.
        return "root=/dev/xvda"
    if spec.storage_type == "iscsi":
        return f"root=/dev/xvda rootfstype={spec.filesystem}"
    # NFS root: net.ifnames=0 keeps the name eth0 (Xen's netfront is otherwise renamed enX0).
    return (f"root=/dev/nfs nfsroot={nfs_root_path(spec.nfsroot_base, spec.org, spec.name)} "
            f"{_ip_arg(spec)} net.ifnames=0")


def root_disk(spec) -> str | None:
    """The generated root disk spec (iSCSI LUN as xvda), or None."""
    if spec.manual_root_disk or spec.storage_type != "iscsi":
        return None
    target = _iscsi.by_path(spec.iscsi_server, spec.iscsi_base_wwn, spec.org, spec.name,
                            spec.iscsi_lun)
    # target= must come last: xl takes the rest of the spec verbatim as the path.
    return f"format=raw,vdev=xvda,access=rw,target={target}"


def vif_spec(iface) -> str:
    """One entry of ``vif = [...]``."""
    parts = []
    for key in ("mac", "ip", "bridge", "mtu", "script", "vifname"):
        value = getattr(iface, key)
        if key == "ip":
            # as the original role: both addresses, space-separated, for the vif script
            value = " ".join(a for a in (iface.ip, iface.ipv6) if a)
        if value not in (None, ""):
            parts.append(f"{key}={value}")
    if iface.xen_str:
        parts.append(iface.xen_str.strip(","))
    return ",".join(parts)


def config_items(spec) -> dict:
    """Ordered xl.cfg keys and values for a spec; additional options override in place."""
    items = {"name": spec.full_name, "type": "pv" if spec.builder == "generic" else "hvm",
             "memory": spec.memory, "vcpus": spec.vcpus}
    if spec.cpu_str:
        items["cpus"] = spec.cpu_str
    if spec.builder == "generic":
        items["kernel"] = spec.kernel
        if spec.initrd:
            items["ramdisk"] = spec.initrd
        cmdline = kernel_cmdline(spec)
        if cmdline:
            items["cmdline"] = cmdline
    elif spec.cmdline:
        items["cmdline"] = spec.cmdline
    items["vif"] = [vif_spec(i) for i in spec.interfaces]
    disks = [d for d in (root_disk(spec),) if d] + list(spec.disks)
    if disks:
        items["disk"] = disks
    if spec.builder == "hvm" and spec.spice:
        # no vga: xl's default adapter, as with the original role (qxl wants a guest driver)
        items.update({
            "spice": 1,
            "spicehost": spec.spicehost,
            "spiceport": spec.spiceport,
        })
        if spec.spicepasswd:
            # as the original writes it: tickets (the password) required, said explicitly
            items["spicedisable_ticketing"] = 0
            items["spicepasswd"] = spec.spicepasswd
        else:
            items["spicedisable_ticketing"] = 1
        items.update({
            "spiceagent_mouse": int(spec.mouse),
            # xl turns the vdagent on by itself when clipboard sharing is on; say so explicitly.
            "spicevdagent": int(spec.spicevdagent or spec.share_clipboard),
            "spice_clipboard_sharing": int(spec.share_clipboard),
            "spiceusbredirection": spec.max_usb_redirections,
        })
    # on_poweroff/on_reboot/on_crash: xl's defaults (destroy, restart, destroy), as with the
    # original role; additional_xen_options set them
    for key, value in spec.additional_xen_options:
        items[key] = list(value) if isinstance(value, tuple) else value
    return items


def header(spec, created: str) -> str:
    """The header comment: what the file is for, and when it was first written."""
    lines = [
        HEADER_MARK,
        f"# org: {spec.org}",
        f"# name: {spec.name}",
        f"# os: {spec.os_type} {spec.os_version}".rstrip(),
        f"# memory: {spec.memory}",
        f"# vcpus: {spec.vcpus}",
        f"# storage_type: {spec.storage_type}",
        f"# auto_boot: {'true' if spec.auto_boot else 'false'}",
        f"# created: {created}",
    ]
    if spec.description:
        lines.insert(3, f"# description: {spec.description}")
    return "\n".join(lines) + "\n"


def now_stamp() -> str:
    """UTC timestamp as written into the header."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(spec, created: str | None = None) -> str:
    """Render the xl.cfg text of ``spec``.

    ``created`` is the header date to keep (read from the existing file with
    :func:`parse_header`); when None the current time is written.
    """
    body = "".join(f"{key} = {_value(value)}\n" for key, value in config_items(spec).items())
    return header(spec, created or now_stamp()) + "\n" + body


# ---- parsing --------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<nl>\n)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[=\[\],;])
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _tokens(text: str):
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise XlParseError(f"xl.cfg line {line}: unexpected {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        value = match.group(kind)
        pos = match.end()
        if kind == "nl":
            line += 1
            yield "nl", value, line
        elif kind not in ("ws", "comment"):
            yield kind, value, line


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _number(token: str):
    if token.lower().startswith("0x"):
        return int(token, 16)
    return float(token) if "." in token else int(token)


def parse(text: str) -> dict:
    """Parse xl.cfg text into ``{key: str | int | float | list}`` (comments dropped).

    Follows the xl.cfg grammar: ``KEY = VALUE`` statements ended by a newline or ``;``, where a
    value is a quoted string, a number or a ``[ ... ]`` list of strings/numbers (which may span
    lines and end with a trailing comma).
    """
    toks = list(_tokens(text))
    out: dict = {}
    i = 0

    def expect(kind, value=None):
        nonlocal i
        while i < len(toks) and toks[i][0] == "nl" and kind != "nl":
            i += 1
        if i >= len(toks) or toks[i][0] != kind or (value is not None and toks[i][1] != value):
            got = toks[i][1] if i < len(toks) else "end of file"
            line = toks[i][2] if i < len(toks) else "end"
            raise XlParseError(f"xl.cfg line {line}: expected {value or kind}, got {got!r}")
        tok = toks[i]
        i += 1
        return tok

    def scalar():
        nonlocal i
        kind, value, line = toks[i] if i < len(toks) else ("eof", "", "end")
        if kind == "string":
            i += 1
            return _unquote(value)
        if kind == "number":
            i += 1
            return _number(value)
        raise XlParseError(f"xl.cfg line {line}: expected a value, got {value!r}")

    while i < len(toks):
        kind, value, line = toks[i]
        if kind == "nl" or (kind == "punct" and value == ";"):
            i += 1
            continue
        key = expect("ident")[1]
        expect("punct", "=")
        while i < len(toks) and toks[i][0] == "nl":
            i += 1
        if i < len(toks) and toks[i][:2] == ("punct", "["):
            i += 1
            items = []
            while True:
                while i < len(toks) and toks[i][0] == "nl":
                    i += 1
                if i < len(toks) and toks[i][:2] == ("punct", "]"):
                    i += 1
                    break
                items.append(scalar())
                while i < len(toks) and toks[i][0] == "nl":
                    i += 1
                if i < len(toks) and toks[i][:2] == ("punct", ","):
                    i += 1
                elif i < len(toks) and toks[i][:2] == ("punct", "]"):
                    continue
                else:
                    got = toks[i][1] if i < len(toks) else "end of file"
                    raise XlParseError(f"xl.cfg line {line}: list of {key!r} not closed, got {got!r}")
            out[key] = items
        else:
            out[key] = scalar()
        if i < len(toks) and not (toks[i][0] == "nl" or toks[i][:2] == ("punct", ";")):
            raise XlParseError(f"xl.cfg line {toks[i][2]}: unexpected {toks[i][1]!r} after {key!r}")
    return out


#: the original xen_vman role's header line with the VM's first install date
_LEGACY_CREATED_RE = re.compile(r"^#\s*created at:\s*([0-9][0-9A-Za-z:.+ -]{3,40}?)\s*$")


def parse_header(text: str) -> dict:
    """The ``# key: value`` lines of our header.

    A file written by the original ``xen_vman`` role gives only ``created`` (its
    ``# created at:`` line), so taking a VM over keeps its install date; any other file: ``{}``.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER_MARK:
        for line in lines:
            if not line.startswith("#"):
                break                       # the original's header is the leading comment
            match = _LEGACY_CREATED_RE.match(line)
            if match:
                return {"created": match.group(1)}
        return {}
    out = {}
    for line in lines[1:]:
        match = _HEADER_RE.match(line)
        if not match:
            break
        out[match.group(1)] = match.group(2)
    return out


# ---- live state -----------------------------------------------------------------------------

class Domain:
    """A running domain as ``xl list -l`` describes it."""

    __slots__ = ("name", "domid", "memory", "vcpus", "macs", "bridges")

    def __init__(self, name, domid, memory=None, vcpus=None, macs=(), bridges=()):
        self.name, self.domid, self.memory, self.vcpus = name, domid, memory, vcpus
        self.macs, self.bridges = tuple(macs), tuple(bridges)

    def as_dict(self) -> dict:
        return {"name": self.name, "domid": self.domid, "memory": self.memory,
                "vcpus": self.vcpus, "macs": list(self.macs), "bridges": list(self.bridges)}


def parse_list_long(text: str) -> dict:
    """``xl list -l`` JSON → ``{name: Domain}`` (Domain-0 left out)."""
    try:
        data = json.loads(text or "[]")
    except ValueError as exc:
        raise XlParseError(f"xl list -l did not print JSON (output_format sxp?): {exc}") from None
    out = {}
    for entry in data:
        config = entry.get("config", {})
        c_info, b_info = config.get("c_info", {}), config.get("b_info", {})
        name = c_info.get("name")
        if not name or name == "Domain-0" or entry.get("domid") == 0:
            continue
        memkb = b_info.get("target_memkb") or b_info.get("max_memkb")
        nics = config.get("nics", []) or []
        out[name] = Domain(
            name=name,
            domid=entry.get("domid"),
            memory=memkb // 1024 if isinstance(memkb, int) and memkb > 0 else None,
            vcpus=b_info.get("max_vcpus"),
            macs=[str(n.get("mac", "")).lower() for n in nics],
            bridges=[n.get("bridge") for n in nics],
        )
    return out


def drift(spec, domain: Domain) -> dict:
    """Fields where a running domain differs from the spec: ``{field: {config, running}}``."""
    out = {}
    if domain.memory is not None and domain.memory != spec.memory:
        out["memory"] = {"config": spec.memory, "running": domain.memory}
    if domain.vcpus is not None and domain.vcpus != spec.vcpus:
        out["vcpus"] = {"config": spec.vcpus, "running": domain.vcpus}
    want = [(i.mac, i.bridge) for i in spec.interfaces]
    have = list(zip(domain.macs, domain.bridges))
    mismatch = len(want) != len(have) or any(
        (mac and mac != hmac) or (bridge and bridge != hbridge)
        for (mac, bridge), (hmac, hbridge) in zip(want, have))
    if mismatch:
        out["vifs"] = {"config": [{"mac": m, "bridge": b} for m, b in want],
                       "running": [{"mac": m, "bridge": b} for m, b in have]}
    return out


class XlToolstack:
    """The ``xl`` command: list, create, shutdown (with a deadline), destroy, dry run."""

    def __init__(self, xl_path: str | None = None, executor=None, sleep=time.sleep,
                 clock=time.monotonic):
        formats = {"verb": fmt_positional(), "dry_run": fmt_flag("-N"),
                   "long": fmt_flag("-l"), "args": fmt_positional()}
        if xl_path:
            self.xl = Runner([xl_path], formats, executor=executor)
        else:
            self.xl = Runner.for_binary("xl", formats, executor=executor)
        self._sleep, self._clock = sleep, clock

    def list(self) -> dict:
        """Running domains by name."""
        return parse_list_long(self.xl(["verb", "long"], verb="list", long=True).stdout)

    def domid(self, name: str) -> int | None:
        """The domain id, or None when no such domain runs."""
        res = self.xl(["verb", "args"], verb="domid", args=[name], check=False)
        if res.rc != 0:
            return None
        try:
            return int(res.stdout.strip())
        except ValueError:
            return None

    def create(self, path: str, dry_run: bool = False):
        """``xl create PATH`` (``-N``: parse and check only)."""
        return self.xl(["dry_run", "verb", "args"], dry_run=dry_run, verb="create", args=[path],
                       timeout=180)

    def destroy(self, name: str):
        """``xl destroy NAME``."""
        return self.xl(["verb", "args"], verb="destroy", args=[name])

    def save(self, name: str, path: str):
        """``xl save NAME PATH``: the domain's memory to PATH, then the domain is gone."""
        return self.xl(["verb", "args"], verb="save", args=[name, path], timeout=900)

    def restore(self, path: str):
        """``xl restore PATH``: the saved domain runs again from where it was saved."""
        return self.xl(["verb", "args"], verb="restore", args=[path], timeout=900)

    def info(self) -> dict:
        """``xl info`` as ``{key: value}`` (``nr_cpus``, ``total_memory`` in MiB, ...)."""
        out = {}
        for line in self.xl(["verb"], verb="info").stdout.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def shutdown(self, name: str, timeout: float = 300, poll: float = 1.0) -> str:
        """Ask the guest to shut down; destroy it when ``timeout`` seconds pass.

        Returns ``"shutdown"`` or ``"destroyed"``.
        """
        if self.domid(name) is None:
            return "shutdown"
        try:
            self.xl(["verb", "args"], verb="shutdown", args=[name])
        except CommandError:
            # A guest without PV drivers cannot be asked; the deadline below handles it.
            pass
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            if self.domid(name) is None:
                return "shutdown"
            self._sleep(poll)
        self.destroy(name)
        return "destroyed"
