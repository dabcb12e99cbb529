# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module's EXAMPLES block, as a user copies it.

Parsed: a YAML list of tasks, each naming an existing module by its FQCN, with task keywords
ansible knows and options of that module's real argument spec (suboptions too, where the value
is written out). Run: the examples that need no hypervisor, through ansible-playbook on the
implicit localhost, against a SQLite store in tmp_path, with their paths moved into tmp_path.
The examples that need a hypervisor (or a DNS server, a guest calling back) are listed in
NEEDS_HYPERVISOR with the reason and the stage that runs that module for real.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
import time
from unittest import mock

import ansible
import pytest
import yaml
from ansible.module_utils import basic
from ansible.playbook.task import Task

from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")
                 if not p.name.startswith("_"))
PKG = "ansible_collections.vman.lifecycle.plugins.modules."
TASK_KEYWORDS = set(Task.fattributes) | {"local_action"}

# module, or (module, index of the task in EXAMPLES): why it is not run here
NEEDS_HYPERVISOR = {
    "iscsi_root": "logs in to an iSCSI target and formats its LUNs (make real-xen)",
    "lxc_guest": "creates, clones and destroys LXC containers (make real-lxc)",
    "lxc_guest_info": "reads the live state of an existing LXC container (make real-lxc)",
    "lxc_guest_setup": "writes files through lxc-attach into running containers (make real-lxc)",
    "vm_install_seed": "seeds the rootfs of an existing LXC container (make real-lifecycle)",
    "vm_reconcile": "starts LXC containers and waits for their SSH (make real-requests)",
    "vm_rootfs": "installs roots with debootstrap from a tarball, as root (make real-rootfs)",
    "vm_snapshot": "snapshots a libvirt domain (make real-libvirt)",
    "vm_snapshot_info": "lists the snapshots of a libvirt domain (make real-libvirt)",
    "xen_initrd": "runs dracut for the installed kernels of a Xen host (make real-xen)",
    "xen_units": "systemd-analyze verify of the units needs the Xen host's /usr/sbin/xl "
                 "(make real-xen)",
    ("install_callback", 1): "listens on 192.0.2.1 for up to 30 minutes for the callbacks of "
                             "installing guests (make real-lifecycle)",
    ("ssh_host_keys", 1): "publishes SSHFP records to a DNS server by RFC 2136 (make real-keys "
                          "runs a private BIND)",
    ("ssh_host_keys", 2): "removes SSHFP records from a DNS server by RFC 2136 (make real-keys)",
    ("xen_domain", 0): "starts the domain with xl through vm@.service (make real-xen)",
    "guest": "defines, starts, stops and deletes guests of every kind (make real-lxc and "
             "make real-libvirt run tests/unit/plugins/modules/test_guest_real.py)",
    "vm_capabilities_info": "reads a libvirtd's capabilities (qemu:///system; make real-libvirt)",
    "vm_image_source": "fetches disk images from example.org and converts them with qemu-img "
                       "(tests/unit/plugins/modules/test_vm_image_source.py serves them locally)",
}

# Paths of the examples moved into tmp_path ("{tmp}"), per (module, task index): option -> value.
REDIRECT = {
    ("ssh_host_keys", 0): {"dest": "{tmp}/hostkeys/mws-1234", "known_hosts": "{tmp}/known_hosts"},
    ("ssh_host_keys", 3): {},
    ("vm_status", 3): {"store": "sqlite://{tmp}/lifecycle.db"},
    ("xen_domain", 1): {"config_path": "{tmp}/xen"},
    ("xen_domain", 2): {"config_path": "{tmp}/xen"},
    ("xen_domain_info", 0): {"config_path": "{tmp}/xen"},
    ("xen_domain_info", 1): {"config_path": "{tmp}/xen"},
}

# Values of the variables the examples use (a play of the user's would have them).
VM_ID = "3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77"
VM_PANEL = "8d1b6a3e-0c2f-4f7e-9a51-2b7c4e6d9f10"
VM_CANCELED = "c4e7a1d2-5b3f-4e8a-b6c9-0d2e4f6a8b13"
EXAMPLE_VARS = {
    "install_callback": {"vm": {"name": VM_ID, "netconf": {"ipv4": "192.0.2.10"}}},
    "vm_secret": {"vman_name": VM_ID},
    "xen_domain": {"xen_vman_vms": [
        {"org": "stuvus", "name": "web01", "os": {"type": "debian", "version": "12"},
         "interfaces": [{"ip": "10.0.0.15/24", "mac": "00:16:3e:01:23:45", "bridge": "xenbr0"}]}]},
}


def _vm(store, name, steps=("postinstall", "preallocated", "ready")):
    """A VM record created (status installing), then moved through ``steps``."""
    store.create_vms([{"name": name, "org": "stuvus", "flavor": "small", "backend": "xen",
                       "spec": {}}])
    for step in steps:
        store.change_status(name, step, "admin", who="test setup")


def _vm_canceled_days_ago(url, name, days):
    """A ready VM canceled ``days`` ago: the store opened with its clock set back that far."""
    with open_store(url, clock=lambda: time.time() - days * 86400) as old:
        _vm(old, name, steps=("postinstall", "preallocated", "ready", "canceled"))


def _vm_status_given(store, url):
    _vm(store, VM_ID)
    _vm(store, VM_PANEL)
    _vm_canceled_days_ago(url, VM_CANCELED, 8)


def _preallocated(store, count, flavor):
    names = [f"{flavor}-{n}" for n in range(count)]
    store.create_vms([{"name": n, "flavor": flavor, "backend": "xen", "spec": {}} for n in names])
    for n in names:
        for step in ("postinstall", "preallocated"):
            store.change_status(n, step, "admin", who="test setup")


def _netconfs(store):
    for base, kind in enumerate(("vm", "service", "test-service")):
        store.add_netconfs("cam", kind, [{"hostname": f"{kind}-{n:03d}.example.org",
                                          "ipv4": f"192.0.{2 + base}.{100 + n}"}
                                         for n in range(10)])


# The state of the store an example starts from, made through the store's own API
# (called with the open store and its URL).
GIVEN = {
    "install_callback": lambda s, url: _vm(s, VM_ID, steps=()),
    "ssh_host_keys": lambda s, url: _vm(s, VM_ID),
    "vm_secret": lambda s, url: _vm(s, VM_ID),
    "vm_status": _vm_status_given,
    "vm_status_info": lambda s, url: _vm(s, VM_ID),
    "vm_pool": lambda s, url: (_netconfs(s), _preallocated(s, 4, "small"),
                               _preallocated(s, 1, "large")),
}


def _no_config_written(tmp):
    return not list((tmp / "xen").glob("*.cfg"))


# What each run must have done, from the registered results (r) and tmp_path (tmp).
CHECKS = {
    # three hosts registered; the two that name example.com hosts are not reached and say so,
    # the LXC host is this machine, measured; the maintenance task disables dom0a
    "vm_hypervisor": lambda r, tmp: (
        sorted(h["name"] for h in r["example_0"]["hypervisors"]) == ["dom0a", "kvm1", "lxchost"]
        and sorted(r["example_0"]["not_reached"]) == ["dom0a", "kvm1"]
        and r["example_2"]["changed"]
        and [h for h in r["example_2"]["hypervisors"] if h["name"] == "dom0a"][0]["state"] == "disabled"),
    # an empty store: no host, no move
    "vm_placement_info": lambda r, tmp: r["load"]["hypervisors"] == [] and r["load"]["moves"] == [],
    "install_callback": lambda r, tmp: r["callback_token"]["token"] and r["example_2"]["changed"],
    "netconf_pool": lambda r, tmp: (r["netconf"]["netconf"]["hostname"].startswith("mws-")
                                    and r["netconf"]["netconf"]["in_use_by"] == VM_ID),
    "ssh_host_keys": lambda r, tmp: ((tmp / "hostkeys" / "mws-1234").is_dir()
                                     and "mws-1234.example.org" in (tmp / "known_hosts").read_text()
                                     and not (tmp / "hostkeys" / "mws-1235").exists()),
    "vm_pool": lambda r, tmp: (r["pool"]["deficit"] == {"small": 1, "large": 1}
                               and r["claimed"]["vm"]["owner"] == "alice"
                               and [v["owner"] for v in r["course"]["vms"]]
                               == ["alice", "bob", "carol", "teacher"]),
    # registered, a second service, (no redeploy was asked: unchanged), the first one removed
    "vm_request": lambda r, tmp: ([r[f"example_{n}"]["changed"] for n in range(4)]
                                  == [True, True, False, True]),
    "vm_request_info": lambda r, tmp: r["web_requests"]["requests"] == [],
    "vm_secret": lambda r, tmp: r["root_password"]["value"] == r["shown"]["value"] != "",
    "vm_status": lambda r, tmp: (r["example_0"]["after"]["status"] == "quarantined"
                                 and r["example_3"]["after"]["status"] == "purged"),
    "vm_status_info": lambda r, tmp: (r["site"]["vm"]["status"] == "ready"
                                      and r["quarantined"]["vms"] == []),
    "xen_domain": lambda r, tmp: r["example_1"]["changed"] and _no_config_written(tmp),
    "xen_domain_info": lambda r, tmp: (r["xen"]["domains"] == []
                                       and [(d["name"], d["config_path"]) for d in r["web01"]["domains"]]
                                       == [("stuvus-web01", None)]),
}


def _examples(name):
    mod = importlib.import_module(PKG + name)
    return yaml.safe_load(mod.EXAMPLES)


def _argument_spec(name):
    """The argument spec the module really passes to AnsibleModule (its main() stops there)."""
    class Caught(Exception):
        pass

    def catch(self, *args, **kwargs):
        raise Caught(kwargs.get("argument_spec", args[0] if args else None))

    mod = importlib.import_module(PKG + name)
    with mock.patch.object(basic.AnsibleModule, "__init__", catch):
        try:
            mod.main()
        except Caught as exc:
            return exc.args[0]
    raise AssertionError(f"{name}: main() did not build an AnsibleModule")


def _module_key(task):
    keys = [k for k in task if k not in TASK_KEYWORDS]
    assert len(keys) == 1, f"task {task.get('name')!r}: not one module key but {keys}"
    return keys[0]


def _check_options(where, spec, args):
    """Every option given in ``args`` exists in ``spec``; suboptions where written out."""
    known = {}
    for opt, opt_spec in spec.items():
        known[opt] = opt_spec
        for alias in opt_spec.get("aliases") or ():
            known[alias] = opt_spec
    unknown = sorted(set(args) - set(known))
    assert not unknown, f"{where}: options not in the argument spec: {unknown}"
    for opt, value in args.items():
        sub = known[opt].get("options")
        if not sub:
            continue
        items = value if isinstance(value, list) else [value]
        for n, item in enumerate(items):
            if isinstance(item, dict):
                _check_options(f"{where}.{opt}[{n}]", sub, item)


def _builtin_exists(short):
    base = pathlib.Path(ansible.__file__).parent
    return (base / "modules" / f"{short}.py").is_file() or (base / "plugins" / "action" / f"{short}.py").is_file()


@pytest.mark.parametrize("name", MODULES)
def test_examples_parse_and_name_real_options(name):
    tasks = _examples(name)
    assert isinstance(tasks, list) and tasks, f"{name}: EXAMPLES is not a list of tasks"
    spec = _argument_spec(name)
    own = 0
    for n, task in enumerate(tasks):
        assert isinstance(task, dict) and task.get("name"), f"{name} example {n}: a task with a name"
        key = _module_key(task)
        args = task[key] or {}
        assert isinstance(args, dict), f"{name} example {n}: options as a mapping, not {args!r}"
        assert key.count(".") == 2, f"{name} example {n}: {key} is not an FQCN"
        collection, short = key.rsplit(".", 1)
        if collection == "vman.lifecycle":
            assert short in MODULES, f"{name} example {n}: no module {key}"
            _check_options(f"{key} (example {n})", _argument_spec(short), args)
            own += short == name
        else:
            assert collection == "ansible.builtin" and _builtin_exists(short), \
                f"{name} example {n}: {key} is neither a module of this collection nor a builtin"
    assert own, f"{name}: no example uses the module itself"
    assert spec


def test_needs_and_redirects_name_real_examples():
    """A stale entry (a module renamed, an example removed) fails instead of hiding one."""
    for key in list(NEEDS_HYPERVISOR) + list(REDIRECT):
        name, index = key if isinstance(key, tuple) else (key, 0)
        assert name in MODULES, key
        assert index < len(_examples(name)), key
    for key, options in REDIRECT.items():
        task = _examples(key[0])[key[1]]
        _check_options(f"{key} redirect", _argument_spec(key[0]), options)
        assert key[0] not in NEEDS_HYPERVISOR and key not in NEEDS_HYPERVISOR, key
        assert _module_key(task) == f"vman.lifecycle.{key[0]}", key
    assert sorted(CHECKS) == sorted(m for m in MODULES if _runnable(m))


def _runnable(name):
    if name in NEEDS_HYPERVISOR:
        return []
    return [n for n in range(len(_examples(name))) if (name, n) not in NEEDS_HYPERVISOR]


def _fill(value, tmp):
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    return value


@pytest.mark.parametrize("name", [m for m in MODULES if _runnable(m)])
def test_examples_run_without_a_hypervisor(tmp_path, name):
    """The examples, in order, on the implicit localhost (no -i: ansible-playbook's own Python)."""
    url = f"sqlite://{tmp_path}/lifecycle.db"
    with open_store(url) as store:
        GIVEN.get(name, lambda s, u: None)(store, url)
    examples = _examples(name)
    tasks = []
    for n in _runnable(name):
        task = dict(examples[n])
        key = _module_key(task)
        task[key] = dict(task[key] or {})
        task[key].update({k: _fill(v, tmp_path) for k, v in REDIRECT.get((name, n), {}).items()})
        task.setdefault("register", f"example_{n}")
        tasks.append(task)
    registered = [t["register"] for t in tasks]
    out = tmp_path / "registered.json"
    tasks.append({"name": "Dump what the examples returned", "ansible.builtin.copy": {
        "dest": str(out), "mode": "0600",
        "content": "{{ {%s} | to_json }}" % ", ".join(f"'{r}': {r}" for r in registered)}})
    play = tmp_path / "examples.yml"
    play.write_text(yaml.safe_dump([{"name": f"EXAMPLES of {name}", "hosts": "localhost",
                                     "gather_facts": False, "vars": EXAMPLE_VARS.get(name, {}),
                                     "tasks": tasks}], sort_keys=False))
    env = dict(os.environ, VMAN_STORE=url, HOME=str(tmp_path), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                           str(play)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert sorted(results) == sorted(registered)
    for reg, result in results.items():
        assert not result.get("failed"), (reg, result)
        assert "skipped" not in result, (reg, result)
    assert CHECKS[name](results, tmp_path), results
