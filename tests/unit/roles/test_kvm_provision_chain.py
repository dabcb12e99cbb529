# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_provision with an ansible_farm source chain, the whole role through the real
ansible-playbook on libvirt's test:///default driver (which defines the domain; its state
lasts one connection): the chain runs before the define, a user callback in the playbook's
tasks/ directory is included with ansible_farm's variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
pytest.importorskip("libvirt")


def _indexes_as_templated(value):
    """The callback's ``task_index``/``source_index`` as the running ansible-core templates them:
    ints from 2.19 on; before 2.19 (jinja2_native off) every templated scalar is a string, as
    Ansible documents, so the same playbook sees ``'2'`` there (docs/migrating-from-ansible_farm.md)."""
    from ansible.release import __version__ as core
    return value if tuple(int(x) for x in core.split(".")[:2]) >= (2, 19) else str(value)


CALLBACK = """
- name: the user's callback, as ansible_farm includes it
  ansible.builtin.copy:
    dest: "{{ vm.metadata.tmp_dir }}/callback.json"
    mode: "0600"
    content: "{{ {'task_index': task_index, 'src': task.src, 'callback': callback_task_file} | to_json }}"
"""


def _run(tmp_path, check=False):
    (tmp_path / "www").mkdir(exist_ok=True)
    (tmp_path / "www" / "disk.raw").write_bytes(b"RAW" * 100)
    cb = tmp_path / "book" / "tasks" / "callbacks" / "sources" / "mark.yaml"
    cb.parent.mkdir(parents=True, exist_ok=True)
    cb.write_text(CALLBACK)
    meta = {
        "name": "VM farm_chain", "connection": "test:///default",
        "tmp_dir": str(tmp_path / "work"), "libvirt_pool_dir": str(tmp_path / "pool"),
        "sources": [{"before_provision": [
            {"callback": "callbacks/sources/fetch.yaml", "src": f"file://{tmp_path}/www/disk.raw",
             "dest": "disk.raw"},
            {"callback": "callbacks/sources/mark.yaml", "src": "disk.raw"},
            {"callback": "callbacks/sources/copy.yaml", "src": "disk.raw", "dest": "tmp-disk.raw"}],
            "on_provision": {"src": "tmp-disk.raw", "dest": "vm.raw"}}]}
    vm = {"metadata": meta, "virt_domain": "qemu", "disks": [{"type": "raw", "src": "vm.raw"}]}
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": {"ansible_python_interpreter": sys.executable, "vm": vm},
             "tasks": [{"name": "provision", "ansible.builtin.include_role": {
                 "name": "vman.lifecycle.kvm_provision"}, "vars": {"create_vm": True}}]}]
    path = tmp_path / "book" / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
            str(path)] + (["--check"] if check else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


def test_chain_then_define(tmp_path):
    proc, out = _run(tmp_path)
    assert proc.returncode == 0, out
    assert (tmp_path / "pool" / "vm.raw").read_bytes() == b"RAW" * 100
    assert json.loads((tmp_path / "work" / "callback.json").read_text()) == {
        "task_index": _indexes_as_templated(1), "src": "disk.raw", "callback": "callbacks/sources/mark.yaml"}
    assert "TASK [vman.lifecycle.kvm_provision : Define the domain]" in out
    define = out.split("TASK [vman.lifecycle.kvm_provision : Define the domain]")[1].splitlines()[1]
    assert define.startswith("changed: [localhost]")


def test_chain_check_mode(tmp_path):
    proc, out = _run(tmp_path, check=True)
    assert proc.returncode == 0, out
    assert not (tmp_path / "pool").exists() and not (tmp_path / "work").exists()
