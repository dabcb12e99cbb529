# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where new VMs go: a pure placement function over the hypervisors' capacity (private, no
stability promise).

In the spirit of Ganeti's allocator (``hail``: cluster state in, placement out, the host that
keeps the cluster most balanced wins), written for this collection. Nothing here reads the
store or a host: :func:`place` takes plain dicts and returns plain dicts.

**Hosts** (:func:`parse_host`): ``name``, ``kind`` (``xen``, ``libvirt``, ``lxc``), ``labels``
(``{rack: r1, site: a}``), ``state`` (only ``enabled`` hosts carry VMs), ``capacity``
(``memory`` MiB available to guests, ``vcpus`` physical, ``vcpu_ratio`` overcommit, default
1.0, ``disk`` MiB or None when not tracked, ``arches``, ``domain_types``) and ``use`` (the
``memory``, ``vcpus``, ``disk`` its guests take now, and ``groups``: the anti-affinity groups
of its guests, a list).

**VMs** (:func:`parse_vm`): ``name``, ``memory`` MiB, ``vcpus``, ``disk`` MiB (default 0),
``arch`` and ``domain_type`` (None: any), ``kind`` (None: any), ``labels`` (constraints: the
host must carry every one with that value) and ``anti_affinity`` (group names: two VMs of a
group, or a VM and a guest of that group already there, never share a host).

**Fit** of a VM on a host: enabled, same kind, the labels, arch and domain type, and after
adding it ``use.memory <= memory``, ``use.vcpus <= vcpus * vcpu_ratio``, ``use.disk <= disk``
(when tracked), no anti-affinity group shared, and the N+1 headroom below still holding.

**N+1 headroom** (``headroom="n+1"``, the default; ``"none"`` turns it off), per kind (a guest
can only fail over to a host of its own kind): let H be the enabled host of that kind whose
guests use the most memory (ties: the first by name), its load L = ``use.memory``; the free
memory of the other enabled hosts of that kind, F = sum of ``max(0, memory - use.memory)``,
must be at least L. Only the kinds that receive a VM of the batch are checked (a kind already
short of headroom blocks placement on its own hosts only). It is an aggregate test (the
failed host's guests are not packed one by one) on memory only, checked after every VM
placed, so also on the state after the whole batch (placing only lowers F and raises L). A
kind with a single host can never keep it while carrying guests: use ``headroom="none"``.
Unmeasured, unreachable and disabled hosts count neither as load nor as free memory.

**Balance score** (lower is better), over all enabled hosts: the population standard
deviation of the memory use ratios ``use.memory / memory``, plus that of the vCPU ratios
``use.vcpus / (vcpus * vcpu_ratio)``, plus that of the disk ratios over the hosts that track
disk; each weight 1 (hbal weighs its standard deviations equally too).

**Batch**: VMs are placed largest first (memory, then vCPUs, then disk, all descending; ties
by name), each on the fitting host with the lowest score after it (ties: host name), so the
answer is deterministic. When that greedy pass leaves a VM without a host, a depth-first
search over the same order (hosts best score first) looks for any arrangement that fits,
within :data:`SEARCH_BUDGET` steps: on small inputs it is exhaustive, so a placement that
exists is found. No fit is a :class:`StateError` naming the VM and, per host, why not.
"""

from __future__ import annotations

import math
import re

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    StateError, ValidationError, check_line, safe_repr)

KINDS = ("xen", "libvirt", "lxc")
HOST_STATES = ("enabled", "unreachable", "disabled", "unmeasured")
HEADROOMS = ("n+1", "none")
#: steps of the fallback search before it gives up (each step tries one VM on one host)
SEARCH_BUDGET = 200_000
MAX_MIB = 1 << 40
MAX_VCPUS = 1 << 20

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}")


# ---- input -------------------------------------------------------------------------------

def _name(obj, field, value):
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(obj, field, value, "must be a name of letters, digits, '.', '_' "
                              "and '-' (1 to 253 characters, starting with a letter or digit)")
    return value


def _number(obj, field, value, low=0, high=MAX_MIB, integer=True, default=None):
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not float(value).is_integer()) or not math.isfinite(value) or \
            not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ValidationError(obj, field, value, f"must be {kind} from {low} to {high}")
    return int(value) if integer else float(value)


def _labels(obj, field, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(obj, field, value, "must be a mapping of label names to values")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise ValidationError(obj, f"{field}.{safe_repr(key)}", key,
                                  "a label name is letters, digits, '.', '_', '/' and '-'")
        if isinstance(val, bool) or not isinstance(val, (str, int)):
            raise ValidationError(obj, f"{field}.{key}", val, "a label value is a string")
        out[key] = check_line(obj, f"{field}.{key}", str(val), max_len=253)
    return out


def _words(obj, field, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(obj, field, value, "must be a list of names")
    return tuple(sorted({_name(obj, field, v) for v in value}))


def parse_host(raw) -> dict:
    """A host dict checked and normalised (see the module docstring); ValidationError names
    the host and the field."""
    if not isinstance(raw, dict):
        raise ValidationError("hypervisor", "name", raw, "a hypervisor is a mapping")
    name = _name("hypervisor", "name", raw.get("name"))
    obj = f"hypervisor {name}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValidationError(obj, "kind", kind, f"must be one of {', '.join(KINDS)}")
    state = raw.get("state", "enabled")
    if state not in HOST_STATES:
        raise ValidationError(obj, "state", state, f"must be one of {', '.join(HOST_STATES)}")
    cap = raw.get("capacity") or {}
    use = raw.get("use") or {}
    for field, value in (("capacity", cap), ("use", use)):
        if not isinstance(value, dict):
            raise ValidationError(obj, field, value, "must be a mapping")
    disk = cap.get("disk")
    return {
        "name": name, "kind": kind, "state": state,
        "labels": _labels(obj, "labels", raw.get("labels")),
        "memory": _number(obj, "capacity.memory", cap.get("memory")),
        "vcpus": _number(obj, "capacity.vcpus", cap.get("vcpus"), high=MAX_VCPUS),
        "vcpu_ratio": _number(obj, "capacity.vcpu_ratio", cap.get("vcpu_ratio"), low=0.01,
                              high=1000, integer=False, default=1.0),
        "disk": None if disk is None else _number(obj, "capacity.disk", disk),
        "arches": _words(obj, "capacity.arches", cap.get("arches") or []),
        "domain_types": _words(obj, "capacity.domain_types", cap.get("domain_types") or []),
        "use_memory": _number(obj, "use.memory", use.get("memory", 0)),
        "use_vcpus": _number(obj, "use.vcpus", use.get("vcpus", 0), high=MAX_VCPUS),
        "use_disk": _number(obj, "use.disk", use.get("disk", 0)),
        "groups": _words(obj, "use.groups", use.get("groups") or []),
    }


def parse_vm(raw) -> dict:
    """A VM-to-place dict checked and normalised; ValidationError names the VM and field."""
    if not isinstance(raw, dict):
        raise ValidationError("vm", "name", raw, "a VM to place is a mapping")
    name = _name("vm", "name", raw.get("name"))
    obj = f"vm {name}"
    kind = raw.get("kind")
    if kind is not None and kind not in KINDS:
        raise ValidationError(obj, "kind", kind, f"must be one of {', '.join(KINDS)} or unset")
    return {
        "name": name, "kind": kind,
        "memory": _number(obj, "memory", raw.get("memory"), low=1),
        "vcpus": _number(obj, "vcpus", raw.get("vcpus", 1), low=1, high=MAX_VCPUS),
        "disk": _number(obj, "disk", raw.get("disk", 0) or 0),
        "arch": None if raw.get("arch") is None else _name(obj, "arch", raw.get("arch")),
        "domain_type": None if raw.get("domain_type") is None
        else _name(obj, "domain_type", raw.get("domain_type")),
        "labels": _labels(obj, "labels", raw.get("labels")),
        "anti_affinity": _words(obj, "anti_affinity", raw.get("anti_affinity") or []),
    }


def order_vms(vms):
    """The placing order: largest first (memory, vCPUs, disk), ties by name."""
    return sorted(vms, key=lambda v: (-v["memory"], -v["vcpus"], -v["disk"], v["name"]))


# ---- the cluster state ---------------------------------------------------------------------

class _Stat:
    """Sum and sum of squares of one ratio over hosts, for an O(1) standard deviation."""

    __slots__ = ("n", "s1", "s2")

    def __init__(self, values):
        values = list(values)
        self.n = len(values)
        self.s1 = sum(values)
        self.s2 = sum(v * v for v in values)

    def sd(self, old=0.0, new=0.0):
        """The standard deviation with one value changed from ``old`` to ``new``."""
        if not self.n:
            return 0.0
        s1 = self.s1 - old + new
        s2 = self.s2 - old * old + new * new
        mean = s1 / self.n
        return math.sqrt(max(0.0, s2 / self.n - mean * mean))

    def change(self, old, new):
        self.s1 += new - old
        self.s2 += new * new - old * old


def _ratio(used, cap):
    if cap <= 0:
        return 0.0 if used <= 0 else float(used)
    return used / cap


class Cluster:
    """Mutable use of the enabled hosts while a batch is placed (undo for the search)."""

    def __init__(self, hosts, headroom="n+1"):
        if headroom not in HEADROOMS:
            raise ValidationError("placement", "headroom", headroom,
                                  f"must be one of {', '.join(HEADROOMS)}")
        self.headroom = headroom
        self.hosts = {h["name"]: h for h in hosts}
        self.enabled = [h for h in sorted(self.hosts.values(), key=lambda h: h["name"])
                        if h["state"] == "enabled"]
        self.mem = {h["name"]: h["use_memory"] for h in self.enabled}
        self.cpu = {h["name"]: h["use_vcpus"] for h in self.enabled}
        self.disk = {h["name"]: h["use_disk"] for h in self.enabled}
        self.groups = {h["name"]: dict.fromkeys(h["groups"], 1) for h in self.enabled}
        self._summary = {}
        self.stats = {
            "memory": _Stat(self._r_mem(h, self.mem[h["name"]]) for h in self.enabled),
            "vcpus": _Stat(self._r_cpu(h, self.cpu[h["name"]]) for h in self.enabled),
            "disk": _Stat(self._r_disk(h, self.disk[h["name"]]) for h in self.enabled
                          if h["disk"] is not None),
        }

    @staticmethod
    def _r_mem(h, used):
        return _ratio(used, h["memory"])

    @staticmethod
    def _r_cpu(h, used):
        return _ratio(used, h["vcpus"] * h["vcpu_ratio"])

    @staticmethod
    def _r_disk(h, used):
        return _ratio(used, h["disk"] or 0)

    def score(self):
        """The balance score of the current state."""
        return sum(s.sd() for s in self.stats.values())

    def score_with(self, h, vm):
        """The balance score if ``vm`` went to host ``h``."""
        name = h["name"]
        total = self.stats["memory"].sd(self._r_mem(h, self.mem[name]),
                                        self._r_mem(h, self.mem[name] + vm["memory"]))
        total += self.stats["vcpus"].sd(self._r_cpu(h, self.cpu[name]),
                                        self._r_cpu(h, self.cpu[name] + vm["vcpus"]))
        if h["disk"] is not None:
            total += self.stats["disk"].sd(self._r_disk(h, self.disk[name]),
                                           self._r_disk(h, self.disk[name] + vm["disk"]))
        else:
            total += self.stats["disk"].sd()
        return total

    def _shift(self, h, vm, sign):
        name = h["name"]
        pairs = (("memory", self.mem, vm["memory"], self._r_mem),
                 ("vcpus", self.cpu, vm["vcpus"], self._r_cpu),
                 ("disk", self.disk, vm["disk"], self._r_disk))
        for key, table, amount, ratio in pairs:
            old = table[name]
            table[name] = old + sign * amount
            if key != "disk" or h["disk"] is not None:
                self.stats[key].change(ratio(h, old), ratio(h, table[name]))
        for group in vm["anti_affinity"]:
            self.groups[name][group] = self.groups[name].get(group, 0) + sign
            if not self.groups[name][group]:
                del self.groups[name][group]

    def add(self, h, vm):
        self._summary.clear()
        self._shift(h, vm, 1)

    def remove(self, h, vm):
        self._summary.clear()
        self._shift(h, vm, -1)

    def _kind_summary(self, kind):
        """``(free memory of the kind's hosts, the two most loaded as (-load, name))``, kept
        until the next change, so each candidate's headroom test is O(1)."""
        cached = self._summary.get(kind)
        if cached is None:
            peers = [p for p in self.enabled if p["kind"] == kind]
            free = sum(max(0, p["memory"] - self.mem[p["name"]]) for p in peers)
            top = sorted((-self.mem[p["name"]], p["name"]) for p in peers)[:2]
            cached = self._summary[kind] = (free, top)
        return cached

    def headroom_after(self, h, vm):
        """None when the N+1 headroom of ``h``'s kind holds with ``vm`` on ``h``, else why."""
        if self.headroom == "none":
            return None
        total_free, top = self._kind_summary(h["kind"])
        name = h["name"]
        load_h = self.mem[name] + vm["memory"]
        free_h = max(0, h["memory"] - load_h)
        total_free += free_h - max(0, h["memory"] - self.mem[name])
        other = next((t for t in top if t[1] != name), None)
        if other is None or (-load_h, name) < other:
            biggest, load, free = name, load_h, total_free - free_h
        else:
            biggest, load = other[1], -other[0]
            free = total_free - max(0, self.hosts[biggest]["memory"] - load)
        if load <= 0 or load <= free:
            return None
        return (f"N+1 headroom: {biggest} would carry {load} MiB of guests, the other "
                f"{h['kind']} hosts would have {free} MiB free")

    def why_not(self, h, vm):
        """None when ``vm`` fits on host ``h`` now, else the first reason it does not."""
        if h["state"] != "enabled":
            return f"host is {h['state']}"
        if vm["kind"] is not None and vm["kind"] != h["kind"]:
            return f"kind is {h['kind']}, the VM needs {vm['kind']}"
        for key, value in sorted(vm["labels"].items()):
            if h["labels"].get(key) != value:
                return f"label {key} is {h['labels'].get(key)!r}, the VM needs {value!r}"
        if vm["arch"] is not None and vm["arch"] not in h["arches"]:
            return f"arch {vm['arch']} not among {', '.join(h['arches']) or 'none'}"
        if vm["domain_type"] is not None and vm["domain_type"] not in h["domain_types"]:
            return (f"domain type {vm['domain_type']} not among "
                    f"{', '.join(h['domain_types']) or 'none'}")
        name = h["name"]
        free = h["memory"] - self.mem[name]
        if vm["memory"] > free:
            return f"memory: {max(0, free)} MiB free, the VM needs {vm['memory']}"
        vcpu_cap = h["vcpus"] * h["vcpu_ratio"]
        if self.cpu[name] + vm["vcpus"] > vcpu_cap + 1e-9:
            return (f"vcpus: {self.cpu[name]} of {vcpu_cap:g} in use (ratio "
                    f"{h['vcpu_ratio']:g}), the VM needs {vm['vcpus']}")
        if h["disk"] is not None and vm["disk"] > h["disk"] - self.disk[name]:
            return f"disk: {max(0, h['disk'] - self.disk[name])} MiB free, the VM needs {vm['disk']}"
        shared = sorted(g for g in vm["anti_affinity"] if g in self.groups[name])
        if shared:
            return f"anti-affinity: a member of group {shared[0]} is already there"
        return self.headroom_after(h, vm)

    def candidates(self, vm):
        """The hosts ``vm`` fits on, best score first (ties by name)."""
        fits = [h for h in self.enabled if self.why_not(h, vm) is None]
        return sorted(fits, key=lambda h: (round(self.score_with(h, vm), 12), h["name"]))

    def reasons(self, vm):
        """``{host: why not}`` for every host ``vm`` does not fit on."""
        out = {}
        for name in sorted(self.hosts):
            why = self.why_not(self.hosts[name], vm)
            if why is not None:
                out[name] = why
        return out


# ---- placing -------------------------------------------------------------------------------

def _no_fit(vm, reasons, after=None):
    lines = "; ".join(f"{host}: {why}" for host, why in sorted(reasons.items())) or "no hypervisor"
    if after:
        head = (f"VM {vm['name']} finds no hypervisor once {after} of the batch are placed, and "
                f"no other arrangement of the batch fits either")
    else:
        head = f"VM {vm['name']} fits on no hypervisor"
    return StateError(f"{head} ({lines})")


def _search(cluster, vms, index, chosen, budget):
    if index == len(vms):
        return True
    vm = vms[index]
    for h in cluster.candidates(vm):
        budget[0] -= 1
        if budget[0] < 0:
            return False
        cluster.add(h, vm)
        chosen.append(h["name"])
        if _search(cluster, vms, index + 1, chosen, budget):
            return True
        chosen.pop()
        cluster.remove(h, vm)
    return False


def place(hosts, vms, headroom="n+1", budget=SEARCH_BUDGET) -> dict:
    """Place the batch ``vms`` on ``hosts`` together (see the module docstring).

    Returns ``{"placement": {vm: host}, "order": [vm names in placing order], "score_before",
    "score_after", "hosts": {host: {"memory", "vcpus", "disk"} used after}}``. Raises
    ValidationError for bad input, StateError when no arrangement fits.
    """
    hosts = [parse_host(h) for h in hosts]
    vms = order_vms(parse_vm(v) for v in vms)
    for field, items in (("name", hosts), ("vm", vms)):
        seen = set()
        for item in items:
            if item["name"] in seen:
                raise ValidationError("placement", field, item["name"], "appears twice")
            seen.add(item["name"])
    cluster = Cluster(hosts, headroom)
    before = cluster.score()
    for vm in vms:
        alone = cluster.reasons(vm)
        if len(alone) == len(cluster.hosts):
            raise _no_fit(vm, alone)
    chosen, stuck = [], None
    for vm in vms:
        best = cluster.candidates(vm)
        if not best:
            stuck = (vm, cluster.reasons(vm), len(chosen))
            break
        cluster.add(best[0], vm)
        chosen.append(best[0]["name"])
    if stuck is not None:
        for vm, name in zip(vms, chosen):
            cluster.remove(cluster.hosts[name], vm)
        chosen = []
        if not _search(cluster, vms, 0, chosen, [budget]):
            vm, reasons, placed = stuck
            raise _no_fit(vm, reasons, after=f"the {placed} VM{'s' if placed != 1 else ''} before it")
    return {
        "placement": {vm["name"]: name for vm, name in zip(vms, chosen)},
        "order": [vm["name"] for vm in vms],
        "score_before": round(before, 6),
        "score_after": round(cluster.score(), 6),
        "hosts": {h["name"]: {"memory": cluster.mem[h["name"]], "vcpus": cluster.cpu[h["name"]],
                              "disk": cluster.disk[h["name"]]} for h in cluster.enabled},
    }


# ---- advisory rebalancing ------------------------------------------------------------------

#: how many of the most loaded hosts (by memory ratio) a rebalancing step takes guests from
SOURCE_HOSTS = 5


def suggest_moves(hosts, guests, max_moves=10, headroom="n+1") -> dict:
    """Moves of existing guests that would even the cluster out; nothing is moved.

    ``hosts`` as for :func:`place`, their ``use`` including the guests; ``guests`` are VM
    dicts (as for :func:`place`) plus ``host``, the host they are on. Each step takes the one
    move, of a guest on one of the :data:`SOURCE_HOSTS` hosts with the highest memory ratio to
    another enabled host of the same kind where it fits (the fit rules of :func:`place`), that
    lowers the balance score most; it stops after ``max_moves`` steps or when no move lowers
    the score. Returns ``{"moves": [{"vm", "from", "to", "score_after"}], "score_before",
    "score_after"}``.
    """
    hosts = [parse_host(h) for h in hosts]
    cluster = Cluster(hosts, headroom)
    placed = []
    for raw in guests:
        guest = parse_vm(raw)
        where = raw.get("host")
        if where not in cluster.mem:
            continue
        guest["kind"] = cluster.hosts[where]["kind"]
        placed.append([guest, where])
    before = score = cluster.score()
    moves = []
    for dummy in range(max(0, int(max_moves))):
        ratio = {h["name"]: _ratio(cluster.mem[h["name"]], h["memory"]) for h in cluster.enabled}
        sources = set(sorted(ratio, key=lambda n: (-ratio[n], n))[:SOURCE_HOSTS])
        best = None
        for entry in sorted(placed, key=lambda e: e[0]["name"]):
            guest, where = entry
            if where not in sources:
                continue
            origin = cluster.hosts[where]
            cluster.remove(origin, guest)
            for target in cluster.enabled:
                if target["name"] == where or cluster.why_not(target, guest) is not None:
                    continue
                option = (round(cluster.score_with(target, guest), 12), guest["name"], target["name"])
                if best is None or option < best[0]:
                    best = (option, entry, target)
            cluster.add(origin, guest)
        if best is None or best[0][0] >= round(score, 12) - 1e-9:
            break
        (new_score, dummy2, dummy3), entry, target = best
        cluster.remove(cluster.hosts[entry[1]], entry[0])
        cluster.add(target, entry[0])
        moves.append({"vm": entry[0]["name"], "from": entry[1], "to": target["name"],
                      "score_after": round(new_score, 6)})
        entry[1] = target["name"]
        score = cluster.score()
    return {"moves": moves, "score_before": round(before, 6), "score_after": round(score, 6)}
