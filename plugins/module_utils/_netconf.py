# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network configs (hostname + IPv4 + IPv6) for the netconf pools (private, no stability promise).

Pure: expands ranges, validates with netaddr and normalises addresses, so that the same
address written two ways is seen as a duplicate.
"""

from __future__ import annotations

import re

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, check_int

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # pragma: no cover - the module reports it
    netaddr = None
    HAS_NETADDR = False

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# "{n}" or "{n:03d}"-style; nothing else may be formatted into a hostname
# (the width has at most 2 digits: "{n:0999999999d}" would build a gigabyte string)
_TEMPLATE_FIELD = re.compile(r"\{n(?::0?[0-9]{0,2}d)?\}")
#: most entries one range may expand to (refused beyond: the expansion is held in memory)
MAX_RANGE_COUNT = 65536
#: largest first ``n`` of a range
MAX_RANGE_START = 10 ** 9


def check_hostname(pool, value):
    """A lower-case RFC 1123 host name (labels a-z0-9-, 253 characters at most)."""
    if not isinstance(value, str) or not value or len(value) > 253 or value.endswith("."):
        raise ValidationError(f"netconf pool '{pool}'", "hostname", value, "not a valid host name")
    if not all(_LABEL.fullmatch(label) for label in value.split(".")):
        raise ValidationError(f"netconf pool '{pool}'", "hostname", value,
                              "not a valid host name (lower-case letters, digits, '-' per label)")
    return value


def check_ip(pool, field, value):
    """Normalised IPv4 (``field == 'ipv4'``) or IPv6 address; None stays None."""
    if value is None or value == "":
        return None
    version = 4 if field == "ipv4" else 6
    try:
        addr = netaddr.IPAddress(str(value), version=version, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValidationError(f"netconf pool '{pool}'", field, value,
                              f"not an IPv{version} address") from None
    return str(addr)


def expand_range(pool, rng):
    """Entries of a range: ``hostname`` (a template with ``{n}``), ``ipv4``/``ipv6`` first
    addresses, ``count``, ``start`` (first n, default 1). The n-th entry gets the first
    addresses plus n - start."""
    template, count, start = rng.get("hostname"), rng.get("count"), rng.get("start")
    start = 1 if start is None else start
    if not isinstance(template, str) or len(_TEMPLATE_FIELD.findall(template)) != 1 or \
            "{" in _TEMPLATE_FIELD.sub("", template) or "}" in _TEMPLATE_FIELD.sub("", template):
        raise ValidationError(f"netconf pool '{pool}'", "ranges.hostname", template,
                              "needs exactly one {n} (or {n:03d}) placeholder")
    count = check_int(f"netconf pool '{pool}'", "ranges.count", count, 1, MAX_RANGE_COUNT)
    start = check_int(f"netconf pool '{pool}'", "ranges.start", start, 0, MAX_RANGE_START)
    first = {f: check_ip(pool, f, rng.get(f)) for f in ("ipv4", "ipv6")}
    for field, addr in first.items():
        top = 2 ** (32 if field == "ipv4" else 128) - 1
        if addr is not None and int(netaddr.IPAddress(addr)) + count - 1 > top:
            raise ValidationError(f"netconf pool '{pool}'", f"ranges.{field}", addr,
                                  f"{count} addresses from here overflow the address space")
    out = []
    for i in range(count):
        entry = {"hostname": template.format(n=start + i)}
        for field, addr in first.items():
            entry[field] = None if addr is None else str(netaddr.IPAddress(addr) + i)
        out.append(entry)
    return out


def normalise(pool, entries=(), ranges=()):
    """Validated, normalised entries from ``entries`` and ``ranges``; a hostname or address
    given twice raises ValidationError naming it."""
    out = [
        {"hostname": check_hostname(pool, e.get("hostname")),
         "ipv4": check_ip(pool, "ipv4", e.get("ipv4")),
         "ipv6": check_ip(pool, "ipv6", e.get("ipv6"))}
        for e in entries or ()
    ]
    for rng in ranges or ():
        out.extend({"hostname": check_hostname(pool, e["hostname"]), "ipv4": e["ipv4"],
                    "ipv6": e["ipv6"]} for e in expand_range(pool, rng))
    seen = {}
    for entry in out:
        for field in ("hostname", "ipv4", "ipv6"):
            value = entry[field]
            if value is None:
                continue
            if (field, value) in seen:
                raise ValidationError(f"netconf pool '{pool}'", field, value,
                                      f"given twice (entries '{seen[(field, value)]}' and "
                                      f"'{entry['hostname']}')")
            seen[(field, value)] = entry["hostname"]
    return out
