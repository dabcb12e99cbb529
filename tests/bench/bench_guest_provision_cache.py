"""Benchmark: guest_provision's init cache -- the second run's wall time over the first's.

One TCG guest (tests/testbed/gp-guest-build.sh, reached through the QEMU guest agent) on a real
qemu:///system, defined by kvm_provision. Run 1 boots it, creates ``clean``, runs the
dependencies and init phases, syncs, creates ``bench.1.init``, runs main and terminate and shuts
down; run 2 boots it, restores ``bench.1.init`` and runs only main and terminate. The phases
here are deliberately small (the dependencies phase byte-compiles a part of the guest's Python
library, the init phase writes a few files): the ratio gets smaller the more work the cached
phases hold. Both runs are whole ansible-playbook processes timed side by side in this run.
Needs root; starts libvirtd (and stops it again) only when none is running.
Last line: ``BENCH guest_provision_cache second_over_first=<ratio>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, "tests", "testbed")
NAME = f"gp-bench-{os.getpid()}"
IMAGES = f"/var/lib/libvirt/images/{NAME}"

DEPENDENCIES = """
- name: Dependencies - byte-compile a part of the Python library (stands for a package install)
  ansible.builtin.command:
    argv: [python3, -m, compileall, -f, -q, /usr/lib/python3.11/json, /usr/lib/python3.11/email,
           /usr/lib/python3.11/http, /usr/lib/python3.11/urllib]
  changed_when: true
- name: Dependencies - marker
  ansible.builtin.raw: mkdir -p /var/lib/bench && echo deps > /var/lib/bench/deps
  args:
    executable: /bin/sh
  changed_when: true
"""
INIT = """
- name: Init - write the project's files
  ansible.builtin.raw: for i in 1 2 3 4 5 6 7 8; do echo init-$i > /var/lib/bench/init-$i; done
  args:
    executable: /bin/sh
  changed_when: true
"""
MAIN = """
- name: Main - read what init left
  ansible.builtin.raw: cat /var/lib/bench/deps /var/lib/bench/init-8
  args:
    executable: /bin/sh
  changed_when: false
"""
TERMINATE = """
- name: Terminate - flush
  ansible.builtin.raw: sync
  changed_when: false
"""
PLAY = """
- name: Bench run
  hosts: guest
  gather_facts: false
  tasks:
    - name: Provision
      ansible.builtin.include_role:
        name: vman.lifecycle.guest_provision
    - name: Keep the decisions
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ guest_provision_cache | to_json }}"
        mode: "0644"
      delegate_to: localhost
"""
KVM = """
- name: Bench {{ kvm_provision_state }}
  hosts: localhost
  gather_facts: false
  tasks:
    - name: kvm_provision
      ansible.builtin.include_role:
        name: vman.lifecycle.kvm_provision
"""


def run(argv, **kw):
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw)


def daemon_up():
    return subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                          check=False).returncode == 0


def main():
    if os.geteuid() != 0:
        sys.exit("bench_guest_provision_cache needs root (libvirtd, image build)")
    started = False
    if not daemon_up():
        run(["bash", os.path.join(TESTBED, "libvirt-up.sh")])
        started = True
    image = run(["bash", os.path.join(TESTBED, "gp-guest-build.sh")]).stdout.strip().split("=", 1)[1]
    os.makedirs(IMAGES, exist_ok=True)
    # the cached files are only read (the guest writes into its own qcow2 overlay)
    for src, dest in (("vmlinuz", "vmlinuz"), ("initrd.img", "initrd.img"), ("root.qcow2", "base.qcow2")):
        os.symlink(os.path.join(image, src), os.path.join(IMAGES, dest))
    vm = {
        "metadata": {"name": NAME, "libvirt_pool_dir": IMAGES, "platform_name": "debian_12",
                     "target_name": "amd64"},
        "virt_domain": "qemu", "ram": 256,
        "kernel": f"{IMAGES}/vmlinuz", "initrd": f"{IMAGES}/initrd.img",
        "cmdline": "root=/dev/vda rw console=ttyS0 init=/sbin/vman-init quiet",
        "disks": [{"src": f"{NAME}.qcow2", "backing": "base.qcow2"}],
    }
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    with tempfile.TemporaryDirectory() as tmp:
        phases = os.path.join(tmp, "phases")
        os.makedirs(phases)
        for name, text in (("dependencies", DEPENDENCIES), ("init", INIT), ("main", MAIN),
                           ("terminate", TERMINATE)):
            with open(os.path.join(phases, name + ".yaml"), "w", encoding="utf-8") as fh:
                fh.write(text)
        inventory = {"all": {"hosts": {
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "guest": {"ansible_connection": "community.libvirt.libvirt_qemu", "ansible_host": NAME,
                      "ansible_python_interpreter": "/usr/bin/python3", "kvm_host": "localhost",
                      "vm": vm, "project_id": "bench", "revision_id": 1, "retry_delay": 2,
                      "retry_count": 30, "phases_lookup_dir_path": phases},
        }}}
        inv = os.path.join(tmp, "inventory.json")
        with open(inv, "w", encoding="utf-8") as fh:
            json.dump(inventory, fh)
        for name, text in (("play.yml", PLAY), ("kvm.yml", KVM)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                fh.write(text)

        def playbook_run(name, *extra):
            t0 = time.perf_counter()
            run([playbook, "-i", inv, *extra, os.path.join(tmp, name)], env=env, cwd=ROOT)
            return time.perf_counter() - t0

        try:
            playbook_run("kvm.yml", "-e", json.dumps({"vm": vm, "kvm_provision_state": "defined"}))
            walls, caches = [], []
            for i in (1, 2):
                out = os.path.join(tmp, f"run{i}.json")
                walls.append(playbook_run("play.yml", "-e", f"out={out}"))
                with open(out, encoding="utf-8") as fh:
                    caches.append(json.load(fh))
            assert caches[0]["create_init"] and caches[0]["run_dependencies"], caches[0]
            assert caches[1]["init_restored"] and not caches[1]["run_dependencies"], caches[1]
        finally:
            subprocess.run([playbook, "-i", inv, "-e", json.dumps(
                {"vm": vm, "kvm_provision_state": "absent", "kvm_provision_delete_disks": True}),
                os.path.join(tmp, "kvm.yml")], env=env, cwd=ROOT, capture_output=True, check=False)
            subprocess.run(["rm", "-rf", IMAGES], check=False)
            if started:
                subprocess.run(["bash", os.path.join(TESTBED, "libvirt-down.sh")], check=False)
    print(f"first run (cold cache: clean + dependencies + init + snapshot): {walls[0]:.1f} s")
    print(f"second run (init snapshot restored): {walls[1]:.1f} s")
    print(f"BENCH guest_provision_cache second_over_first={walls[1] / walls[0]:.2f}")


if __name__ == "__main__":
    main()
