# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of ansible_farm's helper roles, as this collection provides them (private,
no stability promise): ``parse_vms_definitions`` (which platform x target pairs, which
definition files), ``vm_dispatcher`` (libvirt capabilities, fair assignment per architecture),
``init_vm_connection`` (the inventory host of a VM) and ``libvirt_network`` (network XML, DHCP
host entries). The roles only include files and act; these pure functions decide.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    ValidationError, as_text, check_line)

#: a platform / target name becomes a file name and a group name
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")
NET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,49}")
BRIDGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
SSH_CONNECTIONS = ("ssh", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh")
LIBVIRT_QEMU = ("community.libvirt.libvirt_qemu", "libvirt_qemu")


def _name(obj: str, field: str, value) -> str:
    text = as_text(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not NAME_RE.fullmatch(text):
        raise ValidationError(obj, field, value, "must be 1-100 characters of A-Z a-z 0-9 _ . + -, "
                              "starting with a letter or digit (it names a definition file)")
    return text


def configurations(config) -> list:
    """ansible_farm's ``config``: ``list`` entries first, then every ``platform x target`` of
    ``permutations`` (platforms outer, targets inner), duplicates dropped (first kept)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValidationError("parse_vms_definitions", "config", config, "must be a dict")
    unknown = sorted(set(config) - {"list", "permutations"})
    if unknown:
        raise ValidationError("parse_vms_definitions", "config", unknown,
                              "unknown keys (list, permutations)")
    out = []
    entries = config.get("list") or []
    if not isinstance(entries, list):
        raise ValidationError("parse_vms_definitions", "config.list", entries, "must be a list")
    for i, item in enumerate(entries):
        field = f"config.list[{i}]"
        if not isinstance(item, dict):
            raise ValidationError("parse_vms_definitions", field, item, "must be a dict")
        entry = {"platform": _name("parse_vms_definitions", field + ".platform", item.get("platform")),
                 "target": _name("parse_vms_definitions", field + ".target", item.get("target"))}
        if item.get("template") not in (None, ""):
            entry["template"] = _name("parse_vms_definitions", field + ".template", item["template"])
        out.append(entry)
    perm = config.get("permutations") or {}
    if not isinstance(perm, dict):
        raise ValidationError("parse_vms_definitions", "config.permutations", perm, "must be a dict")
    platforms = perm.get("platforms") or []
    targets = perm.get("targets") or []
    for field, values in (("platforms", platforms), ("targets", targets)):
        if not isinstance(values, list):
            raise ValidationError("parse_vms_definitions", f"config.permutations.{field}", values,
                                  "must be a list")
    for i, platform in enumerate(platforms):
        for j, target in enumerate(targets):
            out.append({"platform": _name("parse_vms_definitions", f"config.permutations.platforms[{i}]", platform),
                        "target": _name("parse_vms_definitions", f"config.permutations.targets[{j}]", target)})
    unique = []
    for entry in out:
        if entry not in unique:
            unique.append(entry)
    return unique


def definition_file(kind: str, name, search_dirs, fallback: bool = True):
    """The file ansible_farm's ``first_found`` picks for a ``target`` or ``platform``:
    ``<name>.yaml``, ``<name>.yml``, then (``fallback``) ``default.yaml``, ``default.yml``, in
    each directory in turn (most specific directory first); None when none exists."""
    if kind not in ("target", "platform", "defaults"):
        raise ValidationError("parse_vms_definitions", "kind", kind, "must be target, platform or defaults")
    names = ["defaults.yaml", "defaults.yml"] if kind == "defaults" else \
        [f"{_name('parse_vms_definitions', kind, name)}.yaml", f"{name}.yml"] + \
        (["default.yaml", "default.yml"] if fallback else [])
    for base in search_dirs or []:
        for file_name in names:
            path = posixpath.join(str(base), file_name)
            if os.path.isfile(path):
                return path
    return None


def capabilities(xml_text: str) -> dict:
    """``virsh capabilities`` -> ``{arch: [domain types]}`` (the guests libvirt can run)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValidationError("vm_dispatcher", "capabilities", xml_text[:80], f"not libvirt XML: {exc}") from None
    out = {}
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        if arch is None or not arch.get("name"):
            continue
        types = out.setdefault(arch.get("name"), [])
        for domain in arch.findall("domain"):
            if domain.get("type") and domain.get("type") not in types:
                types.append(domain.get("type"))
    return out


def dispatch(pools: dict, hosts: dict, priority_domains, host_order) -> dict:
    """ansible_farm's fair queue: for each architecture, the hosts that support the first
    domain type of ``priority_domains`` any host supports get the pool's configurations in
    turn (round robin in ``host_order``). ``pools`` is ``{arch: [configuration]}``, ``hosts``
    ``{host: {arch: [types]}}``. Returns ``{host: [configuration]}`` (every host present);
    configurations no host can run are listed under ``None``."""
    out = {h: [] for h in host_order}
    unassigned = []
    for arch, pool in pools.items():
        queue = []
        for domain in priority_domains or []:
            queue = [h for h in host_order if domain in (hosts.get(h) or {}).get(arch, [])]
            if queue:
                break
        if not queue:
            unassigned.extend(pool)
            continue
        for i, entry in enumerate(pool):
            out[queue[i % len(queue)]].append(entry)
    out[None] = unassigned
    return out


def _hostvar(hostvars: dict, host: str, key: str, default=None):
    value = (hostvars.get(host) or {}).get(key, default)
    return default if value in (None, "") else value


def vm_host(vm: dict, kvm_host: str, hostvars: dict, should_setup_proxy_jumps=None) -> dict:
    """The inventory host ansible_farm's ``init_vm_connection`` adds for ``vm`` (run on its
    hypervisor ``kvm_host``): ``name`` (``vm.metadata.name``), ``groups`` (``vms``, the name,
    the platform, the target), the connection variables from ``vm.metadata.auth``,
    ``ansible_host_real`` (``vm.net.ip``), ``ansible_host``, ``ansible_hostname``, ``vm``,
    ``kvm_host``, ``hostjumps`` and, with proxy jumps, ``ansible_ssh_common_args``.

    ``hostvars`` are what the inventory already says about the VM and its hypervisors (the
    VM's own ``ansible_connection``, ``should_setup_proxy_jumps``, the hypervisor's
    ``hostjumps``, each jump host's ``ansible_host``/``ansible_port``/``ansible_user``).
    """
    meta = vm.get("metadata") if isinstance(vm, dict) else None
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ValidationError("init_vm_connection", "vm.metadata.name", None, "is required")
    name = check_line("init_vm_connection", "vm.metadata.name", meta["name"])
    groups = ["vms", name]
    for key in ("platform_name", "target_name"):
        if meta.get(key) not in (None, ""):
            groups.append(check_line(name, f"vm.metadata.{key}", meta[key]))
    net = vm.get("net") if isinstance(vm.get("net"), dict) else {}
    auth = meta.get("auth") if isinstance(meta.get("auth"), dict) else {}
    host = {"name": name, "groups": groups, "vm": vm, "kvm_host": kvm_host}
    for var, key in (("ansible_user", "user"), ("ansible_password", "password"),
                     ("ansible_become_method", "become_method"), ("ansible_become_user", "become_user"),
                     ("ansible_become_password", "become_password")):
        if auth.get(key) not in (None, ""):
            host[var] = auth[key]
    if meta.get("hostname") not in (None, ""):
        host["ansible_hostname"] = check_line(name, "vm.metadata.hostname", meta["hostname"])
    mine = hostvars.get(name) or {}
    connection = mine.get("ansible_connection")
    if net.get("ip") not in (None, ""):
        host["ansible_host_real"] = check_line(name, "vm.net.ip", as_text(net["ip"]))
        host["ansible_host"] = host["ansible_host_real"]
    if connection in LIBVIRT_QEMU:
        host["ansible_host"] = name
        if meta.get("connection"):
            host["ansible_libvirt_uri"] = meta["connection"]
    proxy = mine.get("should_setup_proxy_jumps", should_setup_proxy_jumps)
    if proxy is None:
        proxy = connection in SSH_CONNECTIONS
    jumps = list(_hostvar(hostvars, kvm_host, "hostjumps", [])) + [kvm_host]
    host["hostjumps"] = jumps
    if proxy:
        if net.get("type") == "user" and host.get("ansible_hostname") and host.get("ansible_host_real"):
            # ansible_farm aliased the VM by its hostname in a generated ssh config; the
            # address is the real one, reached through the jumps
            host["ansible_host"] = host["ansible_host_real"]
        hops = []
        for jump in jumps:
            if _hostvar(hostvars, jump, "ansible_connection", "ssh") not in SSH_CONNECTIONS:
                hops = []  # a local or non-ssh hop: the chain starts after it
                continue
            addr = as_text(_hostvar(hostvars, jump, "ansible_host", jump))
            user = _hostvar(hostvars, jump, "ansible_user")
            port = _hostvar(hostvars, jump, "ansible_port")
            hop = (f"{user}@" if user else "") + (f"[{addr}]" if ":" in addr else addr) + (f":{port}" if port else "")
            hops.append(check_line(name, f"hostvars[{jump}].ansible_host", hop, forbid=" ,'\""))
        if hops:
            host["ansible_ssh_common_args"] = (as_text(mine.get("ansible_ssh_common_args") or "") +
                                               " -o ProxyJump=" + ",".join(hops)).strip()
    return host


def _ip(obj, field, value, version=4):
    try:
        addr = ipaddress.ip_address(as_text(value))
    except ValueError:
        raise ValidationError(obj, field, value, "must be an IP address") from None
    if addr.version != version:
        raise ValidationError(obj, field, value, f"must be an IPv{version} address")
    return str(addr)


def network_xml(network: dict) -> str:
    """libvirt network XML of ansible_farm's network configuration (``name``, ``bridge``
    ``{name, stp, mac, ip, netmask}``, ``dhcp`` ``{start, end}``, ``nat``
    ``{port_start, port_end}``, ``domain_name``): a NAT network, every value validated."""
    if not isinstance(network, dict):
        raise ValidationError("libvirt_network", "network", network, "must be a dict")
    name = as_text(network.get("name", ""))
    if not NET_NAME_RE.fullmatch(name):
        raise ValidationError("libvirt_network", "name", network.get("name"),
                              "must be 1-50 characters of A-Z a-z 0-9 _ . + -")
    bridge = network.get("bridge") or {}
    if not isinstance(bridge, dict) or not bridge.get("ip") or not bridge.get("netmask"):
        raise ValidationError(name, "bridge", bridge, "needs ip and netmask")
    ip = _ip(name, "bridge.ip", bridge["ip"])
    try:
        netmask = str(ipaddress.ip_network(f"0.0.0.0/{as_text(bridge['netmask'])}").netmask)
    except ValueError:
        raise ValidationError(name, "bridge.netmask", bridge["netmask"], "must be a netmask") from None
    lines = ["<network>", f"  <name>{name}</name>"]
    nat = network.get("nat")
    if nat:
        if not isinstance(nat, dict):
            raise ValidationError(name, "nat", nat, "must be a dict")
        ports = []
        for key in ("port_start", "port_end"):
            value = as_text(nat.get(key, ""))
            if not value.isdigit() or not 1 <= int(value) <= 65535:
                raise ValidationError(name, f"nat.{key}", nat.get(key), "must be a port 1-65535")
            ports.append(int(value))
        lines += ['  <forward mode="nat">', "    <nat>",
                  f'      <port start="{ports[0]}" end="{ports[1]}"/>', "    </nat>", "  </forward>"]
    else:
        lines.append('  <forward mode="nat"/>')
    if bridge.get("name"):
        bname = as_text(bridge["name"])
        if not BRIDGE_RE.fullmatch(bname):
            raise ValidationError(name, "bridge.name", bridge["name"], "must be an interface name (1-15 characters)")
        stp = "on" if bridge.get("stp") in (True, "true", "yes", "on", 1) else "off"
        lines.append(f'  <bridge name="{bname}" stp="{stp}" delay="0"/>')
    if bridge.get("mac"):
        if not MAC_RE.fullmatch(as_text(bridge["mac"])):
            raise ValidationError(name, "bridge.mac", bridge["mac"], "must be a MAC such as 52:54:00:00:00:01")
        lines.append(f'  <mac address="{bridge["mac"]}"/>')
    if network.get("domain_name"):
        domain = as_text(network["domain_name"])
        if not HOSTNAME_RE.fullmatch(domain):
            raise ValidationError(name, "domain_name", domain, "must be a DNS name")
        lines.append(f"  <domain name={quoteattr(domain)}/>")
    lines.append(f'  <ip address="{ip}" netmask="{netmask}">')
    dhcp = network.get("dhcp")
    if dhcp:
        start = _ip(name, "dhcp.start", dhcp.get("start") if isinstance(dhcp, dict) else None)
        end = _ip(name, "dhcp.end", dhcp.get("end"))
        lines += ["    <dhcp>", f'      <range start="{start}" end="{end}"/>', "    </dhcp>"]
    lines += ["  </ip>", "</network>"]
    return "\n".join(lines) + "\n"


def dhcp_host_xml(mac, ip, hostname=None, obj: str = "libvirt_network") -> str:
    """``<host mac=... ip=... name=.../>`` for ``virt_net command=modify``."""
    if not MAC_RE.fullmatch(as_text(mac or "")):
        raise ValidationError(obj, "mac", mac, "must be a MAC such as 52:54:00:12:34:56")
    addr = _ip(obj, "ip", ip)
    text = f"<host mac='{as_text(mac).lower()}' ip='{addr}'"
    if hostname not in (None, ""):
        if not HOSTNAME_RE.fullmatch(as_text(hostname)):
            raise ValidationError(obj, "hostname", hostname, "must be a DNS name")
        text += f" name='{hostname}'"
    return text + "/>"


def seeded_mac(seed, prefix: str = "52:54:00") -> str:
    """A stable MAC for ``seed``: ``prefix`` (QEMU's 52:54:00) and the first bytes of the
    SHA-256 of the seed (UTF-8). Not community.general's ``random_mac(seed=...)`` value."""
    import hashlib  # pylint: disable=import-outside-toplevel
    prefix = as_text(prefix).lower()
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){0,4}", prefix):
        raise ValidationError("farm_mac", "prefix", prefix, "must be 1-5 octets such as 52:54:00")
    have = prefix.count(":") + 1
    digest = hashlib.sha256(as_text(seed).encode("utf-8")).digest()
    return prefix + "".join(f":{b:02x}" for b in digest[:6 - have])
