# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_image_source and kvm_provision's source_group.yml through the real ansible-playbook:
ansible_farm's chain of a definition (fetch, copy, a user callback file, unarchive, install)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile

import yaml

from _playbook import ROOT, run_play


def _indexes_as_templated(value):
    """The callback's ``task_index``/``source_index`` as the running ansible-core templates them:
    ints from 2.19 on; before 2.19 (jinja2_native off) every templated scalar is a string, as
    Ansible documents, so the same playbook sees ``'2'`` there (docs/migrating-from-ansible_farm.md)."""
    from ansible.release import __version__ as core
    return value if tuple(int(x) for x in core.split(".")[:2]) >= (2, 19) else str(value)


CALLBACK = """
- name: user callback, as ansible_farm includes it
  ansible.builtin.copy:
    dest: "{{ vm.metadata.tmp_dir }}/seen.json"
    mode: "0600"
    content: "{{ {'task': task, 'task_index': task_index, 'source_index': source_index,
                  'on_provision': source.on_provision, 'callback': callback_task_file} | to_json }}"
"""


def _definition(tmp_path):
    www = tmp_path / "www"
    www.mkdir(exist_ok=True)
    disk = www / "disk.raw"
    disk.write_bytes(b"R" * 4096)
    with tarfile.open(www / "image.tar.gz", "w:gz") as tar:
        tar.add(disk, arcname="disk.raw")
    digest = hashlib.sha256((www / "image.tar.gz").read_bytes()).hexdigest()
    meta = {
        "name": "VM debian_12_amd64", "connection": "test:///default",
        "tmp_dir": str(tmp_path / "work"), "libvirt_pool_dir": str(tmp_path / "pool"),
        "sources": [{
            "before_provision": [
                {"callback": "callbacks/sources/fetch.yaml", "src": f"file://{www}/image.tar.gz",
                 "dest": "image.tar.gz", "checksum": "sha256:" + digest},
                {"callback": "callbacks/sources/unarchive.yml", "src": "image.tar.gz"},
                {"callback": "callbacks/sources/my_step.yaml", "src": "disk.raw", "size": "1G"},
                {"callback": "callbacks/sources/copy.yaml", "src": "disk.raw", "dest": "tmp-disk.raw"},
            ],
            "on_provision": {"src": "tmp-disk.raw", "dest": "vm.raw"}}]}
    return {"metadata": meta, "disks": [{"type": "raw", "src": "vm.raw"}]}


def _run(tmp_path, check=False):
    book = tmp_path / "book"
    (book / "setup_hypervisor" / "callbacks" / "sources").mkdir(parents=True, exist_ok=True)
    (book / "setup_hypervisor" / "callbacks" / "sources" / "my_step.yaml").write_text(CALLBACK)
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": {"ansible_python_interpreter": sys.executable, "vm": _definition(tmp_path)},
             "tasks": [
                 {"name": "plan", "ansible.builtin.set_fact": {
                     "kvm_provision_vm": "{{ vm | vman.lifecycle.kvm_vm(playbook_dir=playbook_dir) }}"}},
                 {"name": "work dir", "ansible.builtin.file": {
                     "path": "{{ kvm_provision_vm.tmp_dir }}", "state": "directory", "mode": "0755"}},
                 {"name": "groups", "ansible.builtin.include_role": {
                     "name": "vman.lifecycle.kvm_provision", "tasks_from": "source_group.yml"},
                  "loop": "{{ kvm_provision_vm.source_groups }}",
                  "loop_control": {"loop_var": "kvm_provision_group"}},
             ]}]
    path = book / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
            str(path)] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc


def test_chain_through_the_role_file(tmp_path):
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "pool" / "vm.raw").read_bytes() == b"R" * 4096
    assert not (tmp_path / "work" / "tmp-disk.raw").exists()  # moved, as install_to_libvirt
    seen = json.loads((tmp_path / "work" / "seen.json").read_text())
    assert seen == {"task": {"callback": "callbacks/sources/my_step.yaml", "src": "disk.raw", "size": "1G"},
                    "task_index": _indexes_as_templated(2), "source_index": _indexes_as_templated(0),
                    "on_provision": {"src": "tmp-disk.raw", "dest": "vm.raw"},
                    "callback": "callbacks/sources/my_step.yaml"}
    # a second run: the cache is current, the copy and install still move the image again
    again = _run(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


def test_chain_check_mode_changes_nothing(tmp_path):
    proc = _run(tmp_path, check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "pool").exists()
    assert not (tmp_path / "work").exists() or os.listdir(tmp_path / "work") == []
    # the steps report what they would change
    assert int(re.search(r"changed=(\d+)", proc.stdout).group(1)) >= 1


def test_module_hides_passwords_and_reports_steps(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"abc")
    steps = [{"action": "copy", "label": "s0: copy", "src": str(src), "dest": str(tmp_path / "b"),
              "force": True},
             {"action": "install", "label": "s0: install", "src": str(tmp_path / "b"),
              "dest": str(tmp_path / "pool" / "b"), "replace": True}]
    tasks = [{"name": "run", "vman.lifecycle.vm_image_source": {
        "steps": steps, "auth": {"become_password": "S3cr3t-root", "password": "S3cr3t-user"}},
        "register": "r"}]
    res, out = run_play(tmp_path, tasks, name="p1")
    assert res["r"]["changed"] is True
    assert [s["action"] for s in res["r"]["steps"]] == ["copy", "install"]
    assert (tmp_path / "pool" / "b").read_bytes() == b"abc"
    bad = [{"name": "bad", "vman.lifecycle.vm_image_source": {
        "steps": [dict(steps[0], src=str(tmp_path / "missing"))],
        "auth": {"become_password": "S3cr3t-root"}}, "register": "f"}]
    res, out = run_play(tmp_path, bad, name="p2", env={"ANSIBLE_VERBOSITY": "3"})
    assert res["f"]["failed"] and "s0: copy" in res["f"]["msg"] and "missing does not exist" in res["f"]["msg"]
    assert "S3cr3t" not in out
