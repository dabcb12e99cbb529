# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Store rows -> inventory hosts, for the ``vman.lifecycle.fleet`` inventory plugin.

Private module: no stability promise. Pure functions, importable without Ansible running:
:func:`host_entries` turns the VM rows and netconf rows of the lifecycle store into plain,
JSON-serialisable host entries (name, groups, variables) with every secret removed, so that
neither the inventory output nor an inventory cache file ever holds one.
"""

from __future__ import annotations

import functools
import re

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._spec import full_name

#: prefix of every host variable the plugin sets (inventory variables have the lowest
#: precedence: unprefixed names such as ``status`` would be shadowed silently by play vars)
VAR_PREFIX = "vman_"

# Key names that hold secrets. Word-ish matching: ``pass`` alone is a secret, ``passthrough``
# (PCI passthrough in a spec) is not.
_SECRET_KEY = re.compile(
    r"passw|passwd|passphrase|secret|token|credential|priv(ate)?_?key|api_?key"
    r"|(^|[_.-])(pass|pw|pwd)($|[_.-])",
    re.IGNORECASE)
# Values that are private key material whatever key they sit under.
_SECRET_VALUE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File")
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def is_secret_key(key) -> bool:
    """True when a mapping key names a secret (password, token, private key, ...)."""
    return isinstance(key, str) and _is_secret_name(key)


# the same few spec keys repeat in every VM: one regex search per distinct key, not per VM
@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(value):
    """A copy of ``value`` without secret keys or private key material, at any depth."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()
                if not is_secret_key(k) and not _is_secret_value(v)}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value if not _is_secret_value(v)]
    return value


def _is_secret_value(value) -> bool:
    return isinstance(value, str) and bool(_SECRET_VALUE.search(value))


#: what a secret value in config text is replaced with (the runner's mask)
TEXT_MASK = "********"
# ``key = value`` / ``key: value`` lines of config text (xl.cfg, LXC config, ini-like files)
_CONFIG_LINE = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)"
                          r"(?P<sep>\s*[=:]\s*)(?P<value>.*?)(?P<trail>\s*)$")
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"
    r"|PuTTY-User-Key-File.*?(Private-MAC:[^\n]*|\Z)", re.DOTALL)


def _mask_line(match) -> str:
    if not is_secret_key(match["key"]) or not match["value"]:
        return match[0]
    value = match["value"]
    quote = value[0] if value[0] in "\"'" and value.endswith(value[0]) and len(value) > 1 else ""
    return f"{match['lead']}{match['key']}{match['sep']}{quote}{TEXT_MASK}{quote}{match['trail']}"


def redact_text(text):
    """Config text with the value of every secret-named ``key = value`` line (the keys
    :func:`redact` drops, e.g. ``spicepasswd = "..."`` in an xl.cfg) and every private key
    block masked; the text's shape is kept so a diff still shows which line changed.
    ``None`` stays ``None``."""
    if not isinstance(text, str) or not text:
        return text
    text = _PRIVATE_KEY_BLOCK.sub(TEXT_MASK, text)
    return "".join(_CONFIG_LINE.sub(_mask_line, line.rstrip("\n")) + ("\n" if line.endswith("\n") else "")
                   for line in text.splitlines(True))


def redact_diff(diff):
    """A module diff (a dict, or a list of them) with both sides redacted: text through
    :func:`redact_text`, dicts and lists through :func:`redact`."""
    if isinstance(diff, list):
        return [redact_diff(d) for d in diff]
    if not isinstance(diff, dict):
        return diff
    out = dict(diff)
    for side in ("before", "after"):
        if side in out:
            value = out[side]
            out[side] = redact_text(value) if isinstance(value, str) else redact(value)
    return out


def redact_vm(vm):
    """A VM record (store row) with the secrets of its spec removed, as the inventory does."""
    if not isinstance(vm, dict):
        return vm
    out = dict(vm)
    if isinstance(out.get("spec"), dict):
        out["spec"] = redact(out["spec"])
    return out


def group_name(prefix: str, value) -> str:
    """``<prefix>_<value>`` with every character that is not a letter, digit or ``_``
    replaced by ``_`` (so org ``acme-corp`` is group ``org_acme_corp``)."""
    return _GROUP_UNSAFE.sub("_", f"{prefix}_{value}")


def host_name(vm: dict) -> str:
    """The inventory name of a VM: ``<org>-<name>``, or ``<name>`` for a VM without org."""
    return full_name(vm.get("org"), vm["name"])


def _strip_prefix(address):
    if not isinstance(address, str) or not address.strip():
        return None
    return address.strip().split("/", 1)[0]


def primary_address(spec: dict, netconfs: dict):
    """The address Ansible connects to: the VM's ``vm`` netconf (IPv4, else IPv6), else the
    spec's ``connection_ip``, else the first interface address (prefix removed)."""
    row = netconfs.get("vm") or {}
    for address in (row.get("ipv4"), row.get("ipv6"), spec.get("connection_ip")):
        address = _strip_prefix(address)
        if address:
            return address
    interfaces = spec.get("interfaces")
    for iface in interfaces if isinstance(interfaces, list) else ():
        address = _strip_prefix(iface.get("ip")) if isinstance(iface, dict) else None
        if address:
            return address
    return None


def groups_for(vm: dict, request=None) -> list:
    """The built-in groups of a VM (see the plugin's documentation); ``request`` is the VM's
    entry of :meth:`Store.request_devices_index` when it is a device of a start request."""
    groups = [group_name("status", vm["status"])]
    for prefix, column in (("org", "org"), ("flavor", "flavor"), ("hypervisor", "hypervisor"),
                           ("backend", "backend")):
        if vm.get(column):
            groups.append(group_name(prefix, vm[column]))
    if vm["status"] == lc.PREALLOCATED:
        groups.append("pool")
    if vm["status"] in lc.NEEDS_ANSIBLE or vm.get("ansible_pending"):
        groups.append("needs_ansible")
    if request:
        groups.append(group_name("request", request["request"]))
        groups.extend(group_name("redeploy", a) for a in request["redeploy"])
    return groups


def redeploy_groups(by_allocator) -> dict:
    """``{"redeploy_<allocator>": {"vman_redeploy_requests": [requests]}}``: the group exists
    (with the requests as a group variable) even when a failed request has no device."""
    return {group_name("redeploy", a): {f"{VAR_PREFIX}redeploy_requests": sorted(reqs)}
            for a, reqs in by_allocator.items()}


def _netconfs_by_vm(netconfs):
    by_vm = {}
    for row in netconfs:
        if row.get("in_use_by"):
            entry = {k: row.get(k) for k in ("hostname", "ipv4", "ipv6", "pool")}
            by_vm.setdefault(row["in_use_by"], {})[row["kind"]] = entry
    return by_vm


def host_entries(vms, netconfs, requests=None) -> list:
    """One ``{"name", "groups", "vars"}`` dict per VM row, in the order given.

    ``vms`` are :meth:`Store.list_vms` rows, ``netconfs`` :meth:`Store.netconfs` rows (those
    not in use are ignored), ``requests`` the device index of the start requests. Variables
    are prefixed with :data:`VAR_PREFIX`, plus ``ansible_host`` when the VM has an address.
    Secrets are removed (:func:`redact`).
    """
    by_vm = _netconfs_by_vm(netconfs)
    requests = requests or {}
    entries = []
    for vm in vms:
        spec = redact(vm.get("spec") or {})
        nets = by_vm.get(vm["name"], {})
        hostvars = {
            f"{VAR_PREFIX}name": vm["name"],
            f"{VAR_PREFIX}org": vm.get("org"),
            f"{VAR_PREFIX}flavor": vm.get("flavor"),
            f"{VAR_PREFIX}backend": vm.get("backend"),
            f"{VAR_PREFIX}hypervisor": vm.get("hypervisor"),
            f"{VAR_PREFIX}status": vm["status"],
            f"{VAR_PREFIX}status_since": vm.get("status_since"),
            f"{VAR_PREFIX}owner": vm.get("owner"),
            f"{VAR_PREFIX}admin_suspended": bool(vm.get("admin_suspended")),
            f"{VAR_PREFIX}ansible_pending": bool(vm.get("ansible_pending")),
            f"{VAR_PREFIX}spec": spec,
            f"{VAR_PREFIX}netconfs": nets,
        }
        request = requests.get(vm["name"])
        if request:
            hostvars[f"{VAR_PREFIX}request"] = dict(request)
        address = primary_address(spec, nets)
        if address:
            hostvars["ansible_host"] = address
        entries.append({"name": host_name(vm), "groups": groups_for(vm, request),
                        "vars": hostvars})
    return entries
