"""Benchmark: 200 VM configs converged by one xen_domain call vs one call per VM.

Both variants run through ansible-playbook in this process's run, on temp config paths (config
files only, check mode off), each twice: the first converge writes 200 files, the second is the
idempotent run. Prints the per-VM/batch wall-time ratios; the last line is
``BENCH xen_domain_batch idempotent_ratio=<x>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = int(os.environ.get("VMAN_BENCH_VMS", "200"))

PLAY_BATCH = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: All VMs in one call
      vman.lifecycle.xen_domain:
        config_path: "{{ cfg_path }}"
        defaults: "{{ defaults }}"
        vms: "{{ vms }}"
"""

PLAY_LOOP = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: One call per VM
      vman.lifecycle.xen_domain:
        config_path: "{{ cfg_path }}"
        defaults: "{{ defaults }}"
        vms: ["{{ item }}"]
      loop: "{{ vms }}"
"""


def vms():
    return [{"org": "bench", "name": f"vm{i:04d}", "memory": 512 + i, "os": {"type": "debian", "version": "12"},
             "interfaces": [{"ip": f"10.{i // 250}.{i % 250}.10/24", "bridge": "xenbr0"}]} for i in range(N)]


def play(path, extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"@{extra}", "-e", "ansible_python_interpreter=" + sys.executable, path]
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main():
    with tempfile.TemporaryDirectory() as tmp:
        books = {}
        for name, text in (("batch", PLAY_BATCH), ("loop", PLAY_LOOP)):
            books[name] = os.path.join(tmp, f"{name}.yml")
            with open(books[name], "w") as handle:
                handle.write(text)
        times = {}
        for name in ("batch", "loop"):
            extra = os.path.join(tmp, f"{name}.json")
            with open(extra, "w") as handle:
                json.dump({"cfg_path": os.path.join(tmp, name), "vms": vms(),
                           "defaults": {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}}, handle)
            times[name] = [play(books[name], extra), play(books[name], extra)]
            assert len(os.listdir(os.path.join(tmp, name))) == N
        for label, idx in (("first converge", 0), ("idempotent run", 1)):
            print(f"{label}: batch {times['batch'][idx]:.2f} s, per-VM {times['loop'][idx]:.2f} s, "
                  f"ratio {times['loop'][idx] / times['batch'][idx]:.1f}x")
        print(f"BENCH xen_domain_batch first_ratio={times['loop'][0] / times['batch'][0]:.1f}")
        print(f"BENCH xen_domain_batch idempotent_ratio={times['loop'][1] / times['batch'][1]:.1f}")


if __name__ == "__main__":
    main()
