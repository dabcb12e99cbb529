# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An external allocator in place of :func:`_placement.place` (private, no stability promise).

In the spirit of Ganeti's iallocator: the operator's command (an argv list, run without a
shell) reads one JSON document on stdin and prints one on stdout.

Input::

    {"version": 1, "request": {"type": "allocate", "headroom": "n+1"},
     "hosts": [{"name", "kind", "state", "labels", "capacity": {...}, "use": {...}}, ...],
     "vms": [{"name", "memory", "vcpus", "disk", "arch", "domain_type", "kind", "labels",
              "anti_affinity"}, ...]}

(the hosts and VMs as :func:`_placement.parse_host` / :func:`_placement.parse_vm` read them).
Output: ``{"placement": {"<vm>": "<host>", ...}}``; other keys are ignored. A non-zero exit
is an error carrying the command's stderr.

The answer is checked like user input: a JSON object whose ``placement`` names every VM of
the batch exactly once (a key repeated in the JSON is refused, not collapsed), each on a
known host where it fits by the rules of :mod:`_placement` (capacity, kind, arch, domain
type, labels, anti-affinity, headroom), checked VM by VM in the placing order. Anything else
is a :class:`StateError` naming the command, the VM and the reason; nothing is placed.
"""

from __future__ import annotations

import json

from ansible_collections.vman.lifecycle.plugins.module_utils import _placement as pl
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    StateError, ValidationError, check_line, safe_repr)
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

PROTOCOL_VERSION = 1
DEFAULT_TIMEOUT = 60


def check_command(argv):
    """The ``allocator_command`` option: a non-empty list of strings without control
    characters (never a shell string)."""
    if not isinstance(argv, (list, tuple)) or not argv:
        raise ValidationError("placement", "allocator_command", argv,
                              "must be a non-empty list: the program and its arguments (no shell)")
    for idx, word in enumerate(argv):
        check_line("placement", f"allocator_command[{idx}]", word)
        if idx == 0 and not word:
            raise ValidationError("placement", "allocator_command[0]", word, "names the program")
    return [str(w) for w in argv]


def request_document(hosts, vms, headroom="n+1") -> dict:
    """The JSON document the allocator reads (hosts and VMs normalised)."""
    parsed_hosts = [pl.parse_host(h) for h in hosts]
    doc_hosts = []
    for h in parsed_hosts:
        doc_hosts.append({
            "name": h["name"], "kind": h["kind"], "state": h["state"], "labels": h["labels"],
            "capacity": {"memory": h["memory"], "vcpus": h["vcpus"], "vcpu_ratio": h["vcpu_ratio"],
                         "disk": h["disk"], "arches": list(h["arches"]),
                         "domain_types": list(h["domain_types"])},
            "use": {"memory": h["use_memory"], "vcpus": h["use_vcpus"], "disk": h["use_disk"],
                    "groups": list(h["groups"])}})
    doc_vms = [dict(v, anti_affinity=list(v["anti_affinity"]))
               for v in pl.order_vms(pl.parse_vm(v) for v in vms)]
    return {"version": PROTOCOL_VERSION, "request": {"type": "allocate", "headroom": headroom},
            "hosts": doc_hosts, "vms": doc_vms}


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def check_answer(hosts, vms, answer_text, headroom="n+1", who="the allocator") -> dict:
    """The allocator's stdout checked (see the module docstring); returns ``{vm: host}``."""
    try:
        answer = json.loads(answer_text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise StateError(f"{who} did not print a JSON placement: {exc}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("placement"), dict):
        raise StateError(f"{who} printed {safe_repr(answer)}, not an object with a "
                         f"'placement' mapping of VM names to hosts")
    placement = answer["placement"]
    parsed_hosts = [pl.parse_host(h) for h in hosts]
    ordered = pl.order_vms(pl.parse_vm(v) for v in vms)
    names = {v["name"] for v in ordered}
    extra = sorted(set(placement) - names)
    missing = sorted(names - set(placement))
    if extra:
        raise StateError(f"{who} placed {safe_repr(extra[0])}, which is not a VM of the batch")
    if missing:
        raise StateError(f"{who} left VM {missing[0]} without a host (every VM of the batch "
                         f"is placed exactly once)")
    cluster = pl.Cluster(parsed_hosts, headroom)
    for vm in ordered:
        host = placement[vm["name"]]
        if not isinstance(host, str) or host not in cluster.hosts:
            raise StateError(f"{who} put VM {vm['name']} on {safe_repr(host)}, which is not a "
                             f"known hypervisor")
        why = cluster.why_not(cluster.hosts[host], vm)
        if why is not None:
            raise StateError(f"{who} put VM {vm['name']} on {host}, where it does not fit: {why}")
        cluster.add(cluster.hosts[host], vm)
    return {vm["name"]: placement[vm["name"]] for vm in ordered}


def place_external(argv, hosts, vms, headroom="n+1", timeout=DEFAULT_TIMEOUT, runner=run) -> dict:
    """Run the allocator ``argv`` on the batch and return its checked placement, in the shape
    of :func:`_placement.place`'s ``placement``."""
    argv = check_command(argv)
    document = request_document(hosts, vms, headroom)
    result = runner(argv, data=json.dumps(document, sort_keys=True), timeout=timeout, check=True)
    return check_answer(hosts, vms, result.stdout, headroom, who=f"the allocator {argv[0]}")
