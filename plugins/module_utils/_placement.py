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
can only fail over to a host of its own kind): should any one enabled host of that kind fail,
the memory of its guests (``use.memory``, L) must fit in the free memory of the other enabled
hosts of that kind, summed (F = sum of ``max(0, memory - use.memory)``): L <= F for every host
that carries guests, the most loaded one included. Since L + its own free memory is
``max(memory, use.memory)``, that is one test per kind: the largest ``max(memory,
use.memory)`` of its hosts with guests must not exceed the kind's total free memory (so the
host that binds is the biggest loaded one, not always the most loaded one). It is an
aggregate test (the failed host's guests are not packed one by one) on memory only. Only the
kinds that receive a VM of the batch are checked (a kind already short of headroom blocks
placement on its own hosts only). Placing a VM only lowers the free memory and raises a
load, so a state that breaks the headroom cannot be mended by placing more: it is checked
after every VM placed, which also checks the state after the whole batch. A kind with a
single host can never keep it while carrying guests: use ``headroom="none"``. Unmeasured,
unreachable and disabled hosts count neither as load nor as free memory.

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
        self.by_kind = {}
        for h in self.enabled:
            self.by_kind.setdefault(h["kind"], []).append(h)
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
        kind = h["kind"]
        cached = self._summary.get(kind)
        if cached is not None:
            # adding only raises one host's load: update the summary in O(1)
            self._summary[kind] = self._summary_with(cached, h, vm)
        self._shift(h, vm, 1)

    def remove(self, h, vm):
        self._summary.clear()
        self._shift(h, vm, -1)

    @staticmethod
    def _need(h, load):
        """What host ``h`` needs from the others should it fail, plus its own free memory:
        ``load + max(0, memory - load)``, so the test "its guests fit in the others' free
        memory" reads ``need <= the kind's total free memory``."""
        return max(h["memory"], load)

    def _kind_summary(self, kind):
        """``(free memory of the kind's hosts, (need, name) of its loaded host that needs the
        most, ties by name, or None)``, kept until a guest is removed, so each candidate's
        headroom test is O(1)."""
        cached = self._summary.get(kind)
        if cached is None:
            free, worst = 0, None
            for p in self.by_kind.get(kind, ()):
                load = self.mem[p["name"]]
                free += max(0, p["memory"] - load)
                if load > 0:
                    entry = (self._need(p, load), p["name"])
                    if worst is None or entry[0] > worst[0] or (entry[0] == worst[0] and entry[1] < worst[1]):
                        worst = entry
            cached = self._summary[kind] = (free, worst)
        return cached

    def _summary_with(self, summary, h, vm):
        """The kind summary once ``vm`` is on ``h``."""
        free, worst = summary
        name, load = h["name"], self.mem[h["name"]]
        new_load = load + vm["memory"]
        free -= max(0, h["memory"] - load) - max(0, h["memory"] - new_load)
        entry = (self._need(h, new_load), name)
        if worst is None or worst[1] == name or entry[0] > worst[0] \
                or (entry[0] == worst[0] and name < worst[1]):
            worst = entry
        return free, worst

    def headroom_after(self, h, vm):
        """None when the N+1 headroom of ``h``'s kind holds with ``vm`` on ``h``, else why."""
        if self.headroom == "none":
            return None
        free, worst = self._summary_with(self._kind_summary(h["kind"]), h, vm)
        if worst is None or worst[0] <= free:
            return None
        failed = worst[1]
        load = self.mem[failed] + (vm["memory"] if failed == h["name"] else 0)
        others = free - max(0, self.hosts[failed]["memory"] - load)
        return (f"N+1 headroom: {failed} would carry {load} MiB of guests, the other "
                f"{h['kind']} hosts would have {others} MiB free")

    def why_not(self, h, vm):
        """None when ``vm`` fits on host ``h`` now, else the first reason it does not."""
        return self._why_not_basic(h, vm) or self.headroom_after(h, vm)

    def _why_not_basic(self, h, vm):
        """:meth:`why_not` without the headroom test."""
        if h["state"] != "enabled":
            return f"host is {h['state']}"
        if vm["kind"] is not None and vm["kind"] != h["kind"]:
            return f"kind is {h['kind']}, the VM needs {vm['kind']}"
        if vm["labels"]:
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
        if vm["anti_affinity"]:
            groups = self.groups[name]
            shared = sorted(g for g in vm["anti_affinity"] if g in groups)
            if shared:
                return f"anti-affinity: a member of group {shared[0]} is already there"
        return None

    def _ranked(self, vm, order=True):
        """``(score, name, host)`` of the hosts ``vm`` fits on without the headroom test,
        best first (in host order when not ``order``)."""
        hosts = self.enabled if vm["kind"] is None else self.by_kind.get(vm["kind"], [])
        ranked = []
        memory, vcpus, disk = vm["memory"], vm["vcpus"], vm["disk"]
        mem, cpu, dsk = self.mem, self.cpu, self.disk
        sm, sc, sd_ = self.stats["memory"], self.stats["vcpus"], self.stats["disk"]
        disk_sd = sd_.sd()
        sqrt = math.sqrt
        # hosts in by_kind are enabled and of the VM's kind (any for a VM without): with no
        # other constraint on the VM, memory and vCPUs (and a host's disk) are all to check
        constrained = bool(vm["labels"] or vm["arch"] or vm["domain_type"] or vm["anti_affinity"])
        for h in hosts:
            name = h["name"]
            used = mem[name]
            cap = h["vcpus"] * h["vcpu_ratio"]
            # the cheap refusals first; _why_not_basic then checks everything in order
            if memory > h["memory"] - used or cpu[name] + vcpus > cap + 1e-9:
                continue
            if (constrained or h["disk"] is not None) \
                    and self._why_not_basic(h, vm) is not None:
                continue
            # the score of score_with, inlined (the same operations, so the same floats)
            old, new = _ratio(used, h["memory"]), _ratio(used + memory, h["memory"])
            s1, s2 = sm.s1 - old + new, sm.s2 - old * old + new * new
            mean = s1 / sm.n
            total = sqrt(max(0.0, s2 / sm.n - mean * mean))
            old, new = _ratio(cpu[name], cap), _ratio(cpu[name] + vcpus, cap)
            s1, s2 = sc.s1 - old + new, sc.s2 - old * old + new * new
            mean = s1 / sc.n
            total += sqrt(max(0.0, s2 / sc.n - mean * mean))
            if h["disk"] is not None:
                total += sd_.sd(_ratio(dsk[name], h["disk"]), _ratio(dsk[name] + disk, h["disk"]))
            else:
                total += disk_sd
            ranked.append((round(total, 12), name, h))
        if order:
            ranked.sort(key=lambda t: (t[0], t[1]))
        return ranked

    def best(self, vm):
        """The host ``vm`` fits on with the best score (ties by name), or None. The headroom
        test runs in score order until a host passes."""
        ranked = self._ranked(vm, order=False)
        if not ranked:
            return None
        first = min(ranked, key=lambda t: (t[0], t[1]))
        if self.headroom_after(first[2], vm) is None:
            return first[2]
        ranked.sort(key=lambda t: (t[0], t[1]))
        for dummy, dummy2, h in ranked[1:]:
            if self.headroom_after(h, vm) is None:
                return h
        return None

    def candidates(self, vm):
        """The hosts ``vm`` fits on, best score first (ties by name)."""
        return [h for dummy, dummy2, h in self._ranked(vm) if self.headroom_after(h, vm) is None]

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
    chosen, stuck = [], None
    for vm in vms:
        best = cluster.best(vm)
        if best is None:
            stuck = (vm, cluster.reasons(vm), len(chosen))
            break
        cluster.add(best, vm)
        chosen.append(best["name"])
    if stuck is not None:
        for vm, name in zip(vms, chosen):
            cluster.remove(cluster.hosts[name], vm)
        chosen = []
        # a VM that fits nowhere even alone needs no search
        for vm in vms:
            alone = cluster.reasons(vm)
            if len(alone) == len(cluster.hosts):
                raise _no_fit(vm, alone)
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
