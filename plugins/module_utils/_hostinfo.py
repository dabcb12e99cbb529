# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capacity and current use of hypervisor hosts, measured on the hosts (private, no stability
promise).

Parsers (pure) for what the hosts print: ``xl info`` and ``xl list`` (Xen), libvirt's
``getInfo()`` list and capabilities XML, an LXC host's ``/proc/meminfo`` and the memory and
cpuset limits in its containers' configs. Gatherers run those commands (argv lists, on this
machine or through ``ssh``) or open a read-only libvirt connection, and
:func:`refresh_all` asks every host at once, within one deadline, and never raises: a host
that fails or stays silent is reported with the reason, and nothing about it is guessed.

What is measured, per kind (every amount in MiB):

- **xen**: ``capacity.memory`` = ``free_memory`` of ``xl info`` plus the memory of the running
  domUs (so dom0's own share is left out); ``capacity.vcpus`` = ``nr_cpus``; ``arches`` and
  ``domain_types`` from ``xen_caps`` (``xen-3.0-*`` gives ``pv``, ``hvm-3.0-*`` gives ``hvm``
  and ``pvh``; ``x86_32``/``x86_32p`` are ``i686``). ``use`` = the running domUs' memory and
  vCPUs (``xl list``).
- **libvirt**: ``capacity.memory`` and ``vcpus`` from ``getInfo()``; ``arches`` and
  ``domain_types`` (``kvm``, ``qemu``, ...) from the capabilities' ``<guest>`` entries.
  ``use`` = the active domains' current memory and vCPUs.
- **lxc**: ``capacity.memory`` = ``MemTotal`` of ``/proc/meminfo``; ``vcpus`` = ``nproc``;
  ``arches`` = ``uname -m``; ``domain_types`` = ``[lxc]``. ``use`` = the configured
  ``memory.max`` / ``memory.limit_in_bytes`` and cpuset sizes of the running containers; a
  running container without a memory limit is listed in ``use.unlimited`` (its real use is
  not guessed).

Disk is not measured (storage differs too much between hosts): declare ``capacity.disk``.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
import xml.etree.ElementTree as ET

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    CommandError, ValidationError, VmanError)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

DEFAULT_TIMEOUT = 30
#: the access keys each kind accepts (the fleet inventory's ``live_state`` uses the same)
ACCESS_KEYS = {"xen": ("ssh", "ssh_args"), "libvirt": ("uri",), "lxc": ("ssh", "ssh_args", "lxc_path")}

_ARCH = {"x86_64": "x86_64", "x86_32": "i686", "x86_32p": "i686", "aarch64": "aarch64",
         "armv7l": "armv7l", "ia64": "ia64"}


class HostInfoError(VmanError):
    """A host printed something we cannot read."""


# ---- Xen -----------------------------------------------------------------------------------

def parse_xl_info(text: str) -> dict:
    """``xl info`` (``key : value`` lines) -> ``{key: value}``, values as printed."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    for key in ("total_memory", "free_memory", "nr_cpus", "xen_caps"):
        if key not in out:
            raise HostInfoError(f"xl info printed no {key} line")
    return out


def xen_caps(caps: str):
    """``xen_caps`` -> ``(arches, domain_types)``, both sorted."""
    arches, types = set(), set()
    for word in caps.split():
        match = re.fullmatch(r"(xen|hvm)-[0-9.]+-([A-Za-z0-9_]+)", word)
        if not match:
            continue
        arches.add(_ARCH.get(match.group(2), match.group(2)))
        types.update(("pv",) if match.group(1) == "xen" else ("hvm", "pvh"))
    return sorted(arches), sorted(types)


def parse_xl_list(text: str) -> dict:
    """``xl list`` (the table) -> ``{name: {"memory", "vcpus"}}`` without Domain-0."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].split()[:1] == ["Name"]:
        raise HostInfoError("xl list printed no 'Name ID Mem VCPUs State Time(s)' header")
    out = {}
    for line in lines[1:]:
        words = line.split()
        # the name may hold spaces: the five right-hand columns are fixed
        if len(words) < 6 or not all(w.isdigit() for w in words[-5:-2]):
            raise HostInfoError(f"xl list printed an unexpected line: {line.strip()[:120]!r}")
        name, domid = " ".join(words[:-5]), int(words[-5])
        if domid == 0 or name == "Domain-0":
            continue
        out[name] = {"memory": int(words[-4]), "vcpus": int(words[-3])}
    return out


def xen_facts(info_text: str, list_text: str) -> dict:
    """``{"capacity", "use"}`` of a Xen host from ``xl info`` and ``xl list``."""
    info = parse_xl_info(info_text)
    guests = parse_xl_list(list_text)
    try:
        free, cpus = int(info["free_memory"]), int(info["nr_cpus"])
    except ValueError:
        raise HostInfoError(f"xl info: free_memory {info['free_memory']!r} or nr_cpus "
                            f"{info['nr_cpus']!r} is not a number") from None
    arches, types = xen_caps(info["xen_caps"])
    used_mem = sum(g["memory"] for g in guests.values())
    return {"capacity": {"memory": free + used_mem, "vcpus": cpus, "arches": arches,
                         "domain_types": types},
            "use": {"memory": used_mem, "vcpus": sum(g["vcpus"] for g in guests.values()),
                    "guests": len(guests)}}


# ---- libvirt -------------------------------------------------------------------------------

def parse_capabilities(xml_text: str):
    """libvirt capabilities XML -> ``(arches, domain_types)``, both sorted (the guest arches
    the host can run and the ``<domain type>`` values offered for them)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise HostInfoError(f"libvirt capabilities are not XML: {exc}") from None
    arches, types = set(), set()
    for arch in root.findall("./guest/arch"):
        if arch.get("name"):
            arches.add(arch.get("name"))
        types.update(d.get("type") for d in arch.findall("domain") if d.get("type"))
    return sorted(arches), sorted(types)


def libvirt_facts(node_info, caps_xml: str, domain_infos) -> dict:
    """``{"capacity", "use"}`` from ``getInfo()``, ``getCapabilities()`` and the ``info()``
    lists of the active domains (``[state, max KiB, current KiB, vcpus, cpu time]``)."""
    if not isinstance(node_info, (list, tuple)) or len(node_info) < 3:
        raise HostInfoError(f"libvirt getInfo() returned {node_info!r}")
    arches, types = parse_capabilities(caps_xml)
    domain_infos = list(domain_infos)
    return {"capacity": {"memory": int(node_info[1]), "vcpus": int(node_info[2]),
                         "arches": arches, "domain_types": types},
            "use": {"memory": sum(int(d[2]) // 1024 for d in domain_infos),
                    "vcpus": sum(int(d[3]) for d in domain_infos), "guests": len(domain_infos)}}


# ---- LXC -----------------------------------------------------------------------------------

_SIZE = re.compile(r"([0-9]+)\s*([KMGT]?)(i?B?)?", re.IGNORECASE)
_UNIT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_meminfo(text: str) -> int:
    """``/proc/meminfo`` -> MemTotal in MiB."""
    match = re.search(r"^MemTotal:\s+([0-9]+)\s*kB", text, re.MULTILINE)
    if not match:
        raise HostInfoError("/proc/meminfo has no MemTotal line")
    return int(match.group(1)) // 1024


def parse_size(value: str):
    """An LXC memory limit (``512M``, ``2G``, ``1073741824``) in MiB; None for ``max``/-1."""
    value = value.strip()
    if value in ("max", "-1", ""):
        return None
    match = _SIZE.fullmatch(value)
    if not match:
        raise HostInfoError(f"cannot read the memory limit {value!r}")
    return int(match.group(1)) * _UNIT[match.group(2).upper()] // (1 << 20)


def cpuset_size(value: str) -> int:
    """The number of CPUs of a cpuset list (``0-3,6``)."""
    total = 0
    for part in value.strip().split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise HostInfoError(f"cannot read the cpuset {value!r}")
        total += int(high) - int(low) + 1 if sep else 1
    return total


_LIMIT = re.compile(r"(?P<file>.*?/(?P<name>[^/]+)/config):\s*lxc\.cgroup2?\."
                    r"(?P<key>memory\.max|memory\.limit_in_bytes|cpuset\.cpus)\s*=\s*(?P<value>.*)")


def parse_container_limits(grep_text: str, running) -> dict:
    """``grep -H`` lines of the running containers' configs -> ``{name: {"memory", "vcpus"}}``
    (None where the config sets no limit)."""
    out = {name: {"memory": None, "vcpus": None} for name in running}
    for line in grep_text.splitlines():
        match = _LIMIT.fullmatch(line.strip())
        if not match or match.group("name") not in out:
            continue
        entry = out[match.group("name")]
        if match.group("key") == "cpuset.cpus":
            entry["vcpus"] = cpuset_size(match.group("value"))
        else:
            entry["memory"] = parse_size(match.group("value"))
    return out


def lxc_facts(meminfo: str, nproc: str, machine: str, limits: dict, host_cpus=None) -> dict:
    """``{"capacity", "use"}`` of an LXC host; a container without a cpuset counts as all
    the host's CPUs, one without a memory limit is listed in ``use.unlimited``."""
    cpus = int(nproc.strip()) if nproc.strip().isdigit() else None
    if cpus is None:
        raise HostInfoError(f"nproc printed {nproc.strip()[:40]!r}")
    unlimited = sorted(n for n, e in limits.items() if e["memory"] is None)
    return {"capacity": {"memory": parse_meminfo(meminfo), "vcpus": cpus,
                         "arches": [machine.strip()], "domain_types": ["lxc"]},
            "use": {"memory": sum(e["memory"] or 0 for e in limits.values()),
                    "vcpus": sum(e["vcpus"] or (host_cpus or cpus) for e in limits.values()),
                    "guests": len(limits), "unlimited": unlimited}}


# ---- gathering -----------------------------------------------------------------------------

def check_access(name, kind, access) -> dict:
    """The ``access`` mapping of hypervisor ``name``, checked for its ``kind``."""
    obj = f"hypervisor {name}"
    access = dict(access or {})
    allowed = ACCESS_KEYS.get(kind, ())
    for key in access:
        if key not in allowed:
            raise ValidationError(obj, f"access.{key}", access[key],
                                  f"unknown for kind {kind} (known: {', '.join(allowed)})")
    ssh = access.get("ssh")
    if ssh is not None and (not isinstance(ssh, str) or not ssh or ssh.startswith("-")
                            or any(c.isspace() or ord(c) < 32 for c in ssh)):
        raise ValidationError(obj, "access.ssh", ssh, "must be an ssh destination ([user@]host), "
                              "without spaces, not starting with -")
    args = access.get("ssh_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) and "\n" not in a for a in args):
        raise ValidationError(obj, "access.ssh_args", args, "must be a list of ssh options (strings)")
    if args and not ssh:
        raise ValidationError(obj, "access.ssh_args", args, "needs access.ssh")
    for key in ("uri", "lxc_path"):
        value = access.get(key)
        if value is not None and (not isinstance(value, str) or not value
                                  or any(ord(c) < 32 for c in value)):
            raise ValidationError(obj, f"access.{key}", value, "must be a non-empty string "
                                  "without control characters")
    if access.get("lxc_path") is not None and not access["lxc_path"].startswith("/"):
        raise ValidationError(obj, "access.lxc_path", access["lxc_path"], "must be an absolute path")
    return access


def _executor(access, timeout):
    if access.get("ssh"):
        from ansible_collections.vman.lifecycle.plugins.module_utils._backends import ssh_executor
        return ssh_executor(access["ssh"], access.get("ssh_args") or (), timeout)

    def _run(argv, **kwargs):
        kwargs["timeout"] = timeout
        return run(argv, **kwargs)
    return _run


def gather_xen(access, timeout):
    execute = _executor(access, timeout)
    return xen_facts(execute(["xl", "info"]).stdout, execute(["xl", "list"]).stdout)


def gather_libvirt(access, timeout):
    from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt
    uri = access.get("uri") or "qemu:///system"
    conn = _libvirt.connect(uri, readonly=True)
    try:
        try:
            infos = [dom.info() for dom in conn.listAllDomains(0) if dom.isActive()]
            return libvirt_facts(conn.getInfo(), conn.getCapabilities(), infos)
        except _libvirt.libvirt.libvirtError as exc:
            raise _libvirt.LibvirtError(f"cannot read the node info of {uri}: {exc}", uri) from None
    finally:
        _libvirt.close(conn)


def gather_lxc(access, timeout):
    execute = _executor(access, timeout)
    lxc_path = access.get("lxc_path") or "/var/lib/lxc"
    running = [n for n in execute(["lxc-ls", "-P", lxc_path, "-1", "--running"]).stdout.split() if n]
    grep = ""
    if running:
        files = [f"{lxc_path.rstrip('/')}/{n}/config" for n in running]
        result = execute(["grep", "-H", "-E", r"^\s*lxc\.cgroup2?\.(memory\.max|memory\.limit_in_bytes"
                          r"|cpuset\.cpus)\s*=", "--", *files], check=False)
        if result.rc not in (0, 1):
            raise CommandError(result.argv, result.rc, result.stdout, result.stderr)
        grep = result.stdout
    return lxc_facts(execute(["cat", "/proc/meminfo"]).stdout, execute(["nproc"]).stdout,
                     execute(["uname", "-m"]).stdout, parse_container_limits(grep, running))


GATHERERS = {"xen": gather_xen, "libvirt": gather_libvirt, "lxc": gather_lxc}


def _ask(gatherer, access, timeout):
    try:
        return "ok", gatherer(access, timeout)
    except VmanError as exc:
        return "error", str(exc)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # one host's surprise must not take the whole refresh down
        return "error", f"{type(exc).__name__}: {exc}"


def refresh_all(hosts, timeout=DEFAULT_TIMEOUT, gatherers=None, clock=time.monotonic):
    """Measure every host of ``hosts`` (dicts: name, kind, access) at the same time.

    Returns ``(measured {name: {"capacity", "use"}}, failed {name: reason})``. The whole batch
    shares one deadline of ``timeout`` seconds (each command also gets it as its own
    timeout); a host not done by then is failed with "no answer within ... s". Never raises
    for a host's failure.
    """
    gatherers = gatherers or GATHERERS
    measured, failed = {}, {}
    if not hosts:
        return measured, failed
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(hosts)),
                                                 thread_name_prefix="vman-hostinfo")
    try:
        futures = {}
        for host in hosts:
            gatherer = gatherers.get(host["kind"])
            if gatherer is None:
                failed[host["name"]] = f"no way to measure a host of kind {host['kind']}"
                continue
            futures[pool.submit(_ask, gatherer, dict(host.get("access") or {}), timeout)] = host["name"]
        deadline = clock() + timeout
        done, dummy = concurrent.futures.wait(futures, timeout=max(0.0, deadline - clock()))
        for future, name in futures.items():
            if future in done:
                status, value = future.result()
                (measured if status == "ok" else failed)[name] = value
            else:
                failed[name] = f"no answer within {timeout:g} s"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return measured, failed
