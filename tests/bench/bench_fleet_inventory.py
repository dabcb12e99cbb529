"""Benchmark: ``ansible-inventory --list`` through vman.lifecycle.fleet, 5000 VMs vs none.

Fills a temp SQLite store through the store API (netconfs in one transaction, the VMs of each
status in one transaction, their netconfs through one pool fill) and times the venv's
``ansible-inventory -i x.fleet.yml --list`` as a real subprocess on that store and on an empty
one, best of ``VMAN_BENCH_RUNS`` (default 3) each. The last line is
``BENCH fleet_inventory ratio_5000_vs_empty=<x>``. Target: under 1.5 s wall for 5000 VMs.

It also times ansible-core's floor for the same inventory: the host entries the fleet plugin
makes, written to a JSON file and fed to ansible-core by a bench-only plugin
(floor_inventory/vman_bench_floor.py) that does nothing but add_host/add_child/set_variable.
The fleet time minus the floor time is what the plugin itself costs. Wall and CPU seconds are
printed: on a machine shared with other work the CPU time varies less.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import host_entries  # noqa: E402
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store  # noqa: E402

N = int(os.environ.get("VMAN_BENCH_VMS", "5000"))
RUNS = int(os.environ.get("VMAN_BENCH_RUNS", "3"))
TARGET_S = 1.5
# the share of the fleet in each status, as in a panel with a pool and many users
STATUS_MIX = (("ready", 0.6), ("preallocated", 0.15), ("ansible", 0.05), ("quarantined", 0.05),
              ("disabled", 0.05), ("canceled", 0.05), ("failed", 0.05))


def spec(i):
    return {"org": f"org{i % 50}", "name": f"vm{i:05d}", "memory": 1024 * (1 + i % 4),
            "vcpus": 1 + i % 4, "storage_type": "iscsi", "os": {"type": "debian", "version": "12"},
            "interfaces": [{"ip": f"10.{i // 250 % 250}.{i % 250}.10/16", "bridge": "xenbr0",
                            "mac": f"00:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"}],
            "root_password": "not-in-the-inventory"}


def fill(url, n):
    """``n`` VMs over STATUS_MIX; the installing remainder takes netconfs from one pool fill."""
    with open_store(url) as store:
        store.add_netconfs("bench", "vm", [
            {"hostname": f"nc{i:05d}.example.net", "ipv4": f"172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}",
             "ipv6": f"2001:db8::{i:x}"} for i in range(n)])
        i = 0
        for status, share in STATUS_MIX:
            count = int(n * share)
            store.create_vms([{"name": f"vm{j:05d}", "org": f"org{j % 50}", "flavor": f"f{j % 4}",
                               "backend": "xen", "hypervisor": f"dom0-{j % 20}", "spec": spec(j),
                               "owner": None if status == "preallocated" else f"user{j % 700}"}
                              for j in range(i, i + count)], status=status)
            i += count
        # the rest: installing VMs made by a pool fill, each with a vm netconf
        names = iter(f"vm{j:05d}" for j in range(i, n))
        store.fill_pool([{"name": "fill", "threshold": n - i, "spec": spec(i), "org": "pool",
                          "backend": "libvirt", "hypervisor": "kvm1"}],
                        lambda: next(names), netconf_pool="bench", netconf_kinds=("vm",))
        return len(store.list_vms())


def write_floor(url, tmp):
    """The fleet's host entries as JSON and a config of the floor plugin reading them."""
    with open_store(url) as store:
        entries = host_entries(store.list_vms(), store.netconfs(in_use=True),
                               store.request_devices_index()[0])
    path = os.path.join(tmp, "entries.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f)
    cfgs = {}
    for label, variables in (("floor", "true"), ("bare", "false")):
        cfgs[label] = os.path.join(tmp, f"{label}.floor.yml")
        with open(cfgs[label], "w", encoding="utf-8") as f:
            f.write(f"plugin: vman_bench_floor\nentries: {path}\nvariables: {variables}\n")
    return cfgs


def inventory_list(cfg):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_INVENTORY_PLUGINS=os.path.join(ROOT, "tests", "bench", "floor_inventory"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", cfg, "--list"]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(argv, check=True, env=env, capture_output=True, cwd=ROOT)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, json.loads(proc.stdout)


def best(cfgs):
    """``{label: (best wall seconds, best CPU seconds, output)}``; the configs take turns, so
    a burst of load from elsewhere on the machine hits them alike instead of one of them. The
    CPU time (user + system of the ansible-inventory process) varies less with that load."""
    walls, cpus, data = {label: [] for label in cfgs}, {label: [] for label in cfgs}, {}
    for dummy in range(RUNS):
        for label, cfg in cfgs.items():
            wall, cpu, data[label] = inventory_list(cfg)
            walls[label].append(wall)
            cpus[label].append(cpu)
    return {label: (min(walls[label]), min(cpus[label]), data[label]) for label in cfgs}


def main():
    tmp = tempfile.mkdtemp(prefix="vman-bench-fleet-")
    try:
        cfgs = {}
        for label in ("empty", "full"):
            url = f"sqlite:///{tmp}/{label}.db"
            cfg = os.path.join(tmp, f"{label}.fleet.yml")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(f"plugin: vman.lifecycle.fleet\nstore: {url}\n")
            cfgs[label] = cfg
        start = time.perf_counter()
        stored = fill(f"sqlite:///{tmp}/full.db", N)
        print(f"filled the store with {stored} VMs in {time.perf_counter() - start:.2f} s")
        cfgs.update(write_floor(f"sqlite:///{tmp}/full.db", tmp))
        results = best(cfgs)
        (empty_s, empty_cpu, empty), (bare_s, bare_cpu, dummy), (floor_s, floor_cpu, floor), \
            (full_s, full_cpu, full) = (results["empty"], results["bare"], results["floor"],
                                        results["full"])
        hosts = len(full["_meta"]["hostvars"])
        if hosts != N or empty["_meta"]["hostvars"] or floor != full:
            raise SystemExit(f"unexpected inventory: {hosts} hosts for {N} VMs, "
                             f"{len(empty['_meta']['hostvars'])} for the empty store, "
                             f"floor output {'equal' if floor == full else 'differs'}")
        print(f"ansible-inventory --list (best of {RUNS}: wall / CPU seconds)")
        print(f"  fleet, empty store: {empty_s:.3f} / {empty_cpu:.3f}")
        print(f"  ansible-core alone, the same {N} hosts and groups, no variables: "
              f"{bare_s:.3f} / {bare_cpu:.3f} (ratio to empty {bare_s / empty_s:.2f} / "
              f"{bare_cpu / empty_cpu:.2f})")
        print(f"  ansible-core alone, the same {N} hosts, groups and variables: "
              f"{floor_s:.3f} / {floor_cpu:.3f} (ratio to empty {floor_s / empty_s:.2f} / "
              f"{floor_cpu / empty_cpu:.2f})")
        print(f"  fleet, {N} VMs: {full_s:.3f} / {full_cpu:.3f} (ratio to empty "
              f"{full_s / empty_s:.2f} / {full_cpu / empty_cpu:.2f}; target < {TARGET_S} s wall: "
              f"{'met' if full_s < TARGET_S else 'MISSED'})")
        print(f"  the fleet plugin's own share: {full_s - floor_s:.3f} / {full_cpu - floor_cpu:.3f} "
              f"({100 * (full_cpu - floor_cpu) / full_cpu:.0f} % of its CPU time)")
        print(f"BENCH fleet_inventory ratio_{N}_vs_empty={full_s / empty_s:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
