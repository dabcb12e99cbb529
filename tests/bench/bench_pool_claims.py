"""Benchmark: claims per second through vm_pool, one task per claim vs one batch call.

A temp SQLite store gets preallocated VMs (each holding a ``vm`` netconf) through the store
API. Then the venv's ansible-playbook runs, as a real subprocess: ``VMAN_BENCH_SINGLE``
(default 20) single claims (O(flavor)/O(owner), one task run per claim through a ``loop``),
and one task with ``VMAN_BENCH_CLAIMS`` (default 200) items in O(claims); and a play with no
task, whose time (ansible-playbook's start-up, the same in both) is subtracted to give the
time spent in the claim tasks. Best of ``VMAN_BENCH_RUNS`` (default 2) each, every run on a
fresh store. Prints both rates (with and without the start-up) and their ratio; the last
line is ``BENCH pool_claims batch_claims_per_s=<x>``. Goal (issue 17): at least 100 claims/s
for the batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store  # noqa: E402

SINGLE = int(os.environ.get("VMAN_BENCH_SINGLE", "20"))
CLAIMS = int(os.environ.get("VMAN_BENCH_CLAIMS", "200"))
RUNS = int(os.environ.get("VMAN_BENCH_RUNS", "2"))

PLAY_EMPTY = """
- hosts: localhost
  gather_facts: false
  tasks: []
"""

PLAY_SINGLE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: One claim per task run
      vman.lifecycle.vm_pool:
        store: "{{ store }}"
        state: claimed
        flavor: small
        owner: "{{ item }}"
      loop: "{{ owners }}"
"""

PLAY_BATCH = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Every claim in one call
      vman.lifecycle.vm_pool:
        store: "{{ store }}"
        state: claimed
        flavor: small
        claims: "{{ claims }}"
"""


def make_store(path, n):
    url = f"sqlite://{path}"
    with open_store(url) as store:
        store.add_netconfs("bench", "vm", [{"hostname": f"nc{i}", "ipv4": f"10.{i // 250}.{i % 250}.1"}
                                           for i in range(n)])
        store.create_vms([{"name": f"vm{i:04d}", "org": "bench", "flavor": "small", "backend": "xen",
                           "spec": {"memory": 1024, "root_password": "bench-secret"}}
                          for i in range(n)], status="preallocated")
        for i in range(n):
            store.allocate_netconf("bench", "vm", f"vm{i:04d}")
    return url


def play(path, extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"@{extra}", "-e", "ansible_python_interpreter=" + sys.executable, path]
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def claimed(url):
    with open_store(url) as store:
        return len(store.list_vms(status="ready"))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        books = {}
        for name, text in (("empty", PLAY_EMPTY), ("single", PLAY_SINGLE), ("batch", PLAY_BATCH)):
            books[name] = os.path.join(tmp, f"{name}.yml")
            with open(books[name], "w") as handle:
                handle.write(text)
        counts = {"empty": 0, "single": SINGLE, "batch": CLAIMS}
        times = {name: [] for name in counts}
        for run in range(RUNS):
            for name, n in counts.items():
                url = make_store(os.path.join(tmp, f"{name}{run}.db"), max(n, 1))
                extra = os.path.join(tmp, f"{name}{run}.json")
                with open(extra, "w") as handle:
                    json.dump({"store": url, "owners": [f"user{i}" for i in range(n)],
                               "claims": [{"owner": f"user{i}"} for i in range(n)]}, handle)
                times[name].append(play(books[name], extra))
                assert claimed(url) == n, (name, claimed(url), n)
        best = {name: min(t) for name, t in times.items()}
        base = best["empty"]
        net = {name: max(best[name] - base, 1e-6) for name in ("single", "batch")}
        rate = {name: counts[name] / net[name] for name in net}
        raw = {name: counts[name] / best[name] for name in net}
        print(f"ansible-playbook start-up (no task): {base:.2f} s")
        print(f"one claim per task: {SINGLE} claims in {best['single']:.2f} s "
              f"({net['single']:.2f} s in the tasks): {rate['single']:.1f} claims/s "
              f"({raw['single']:.1f} with the start-up), {net['single'] / SINGLE:.3f} s per claim")
        print(f"one batch call:     {CLAIMS} claims in {best['batch']:.2f} s "
              f"({net['batch']:.2f} s in the task): {rate['batch']:.1f} claims/s "
              f"({raw['batch']:.1f} with the start-up)")
        print(f"ratio batch/single: {rate['batch'] / rate['single']:.1f}x "
              f"({raw['batch'] / raw['single']:.1f}x with the start-up)")
        print(f"BENCH pool_claims ratio={rate['batch'] / rate['single']:.1f}")
        print(f"BENCH pool_claims batch_claims_per_s={rate['batch']:.0f}")


if __name__ == "__main__":
    main()
