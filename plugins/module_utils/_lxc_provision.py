# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``lxc_provision`` role's logic, as pure functions (its filters are thin wrappers).

Private module: no stability promise. The role runs seed 001's steps in order: spawn
(``lxc_guest``), hosts file, ssh keys, facts (the seed's "grains"), initial setup (the last
four through ``lxc_guest_setup``), initial converge (a playbook or role run by
``ansible-playbook`` against the new containers). Each function turns the role's variables
and the previous step's result into the next module's input, so no logic lives in Jinja.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc_setup

#: Keys of a container entry that go to ``lxc_guest`` unchanged.
GUEST_KEYS = ("profile_type", "profile", "from_container", "image", "template_options",
              "snapshot", "bridge", "network", "gateway", "ip", "mac", "password", "autostart",
              "dnsservers", "lxc_conf", "lxc_conf_unset", "users")
#: Keys only the role reads (later steps).
ROLE_KEYS = ("ssh_keys", "hosts", "facts")
#: Keys of seed 001 that only mean something to salt; refused with an explanation.
SALT_KEYS = ("mode", "bootsalt_branch", "script_args", "master", "master_port")
STEPS = ("spawn", "hostsfile", "sshkeys", "grains", "initial_setup", "initial_converge",
         "destroy")

FACTS_DIR = "/etc/ansible/facts.d"
_FACT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
HOSTS_HEADER = "# managed by vman.lifecycle (lxc_provision): hosts file step\n"
KEYS_HEADER = "# managed by vman.lifecycle (lxc_provision): ssh keys step\n"


def _containers(containers) -> dict:
    """The role's container mapping, validated: ``{name: entry-or-empty}``."""
    if containers is None:
        return {}
    if not isinstance(containers, dict):
        raise ValidationError("lxc_provision_containers", "lxc_provision_containers",
                              type(containers).__name__, "must be a mapping name -> settings")
    out = {}
    for name, entry in containers.items():
        _lxc.validate_name(name, None, "name")
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ValidationError(name, "settings", entry, "must be a mapping (or empty)")
        for key, value in entry.items():
            if key in SALT_KEYS:
                raise ValidationError(name, key, value, "is a salt option of the original "
                                      "(mastersalt/salt minions); Ansible needs no agent, leave "
                                      "it out")
            if key not in GUEST_KEYS and key not in ROLE_KEYS:
                raise ValidationError(name, key, value, "unknown option; known: "
                                      + ", ".join(GUEST_KEYS + ROLE_KEYS))
        out[name] = entry
    return out


def guest_entries(containers, state="started") -> list:
    """``lxc_provision_containers`` -> the ``containers`` list of one ``lxc_guest`` call.

    ``{'a.test.com': {}, 'b.test.com': {'ip': '10.5.10.16'}}`` ->
    ``[{'name': 'a.test.com', 'state': 'started'}, {'name': 'b.test.com', 'ip': ..., ...}]``.
    With ``state='absent'`` only the names are kept (destroy).
    """
    out = []
    for name, entry in _containers(containers).items():
        if state == "absent":
            out.append({"name": name, "state": "absent"})
            continue
        item = {"name": name, "state": state}
        item.update({k: v for k, v in entry.items() if k in GUEST_KEYS and v is not None})
        out.append(item)
    return out


def _spawned(spawn_result, containers=None) -> list:
    """The per-container results of the spawn step (a registered ``lxc_guest`` result).

    With ``containers`` (the role's mapping, in the order the spawn step was given it; an
    empty one is ignored) the
    names are taken from the mapping, position by position: Ansible masks every occurrence of
    a ``no_log`` value in a module's result, so a password that is part of a container name
    (seed 001's ``gfoobar.test.com`` with password ``foobar``) comes back as ``g********...``.
    """
    items = (spawn_result or {}).get("containers")
    if not isinstance(items, list):
        raise ValidationError("lxc_provision", "spawn", spawn_result,
                              "is not an lxc_guest result (no 'containers' list)")
    if containers:
        names = list(_containers(containers))
        if len(names) != len(items):
            raise ValidationError("lxc_provision", "spawn", len(items),
                                  f"results for {len(names)} containers expected")
        items = [dict(item, name=name, settings=dict(item.get("settings") or {}, name=name))
                 for name, item in zip(names, items)]
    return [c for c in items if c.get("state") != "absent"]


def hosts_text(name, ip, peers=(), extra=()) -> str:
    """The guest's /etc/hosts: loopback, itself, its peers, then ``extra`` entries.

    ``peers`` and ``extra`` are ``(ip, [names])`` pairs; an FQDN also gets its short name.
    """
    def names_of(fqdn):
        short = fqdn.split(".", 1)[0]
        return [fqdn] if short == fqdn else [fqdn, short]

    lines = [HOSTS_HEADER.rstrip("\n"),
             "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback",
             "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters",
             f"{ip}\t{' '.join(names_of(name))}"]
    for peer_ip, peer_names in list(peers) + list(extra):
        lines.append(f"{peer_ip}\t{' '.join(peer_names)}")
    return "\n".join(lines) + "\n"


def _extra_hosts(extra) -> list:
    out = []
    for entry in extra or []:
        if not isinstance(entry, dict) or not entry.get("ip") or not entry.get("names"):
            raise ValidationError("lxc_provision_hosts", "hosts", entry,
                                  "each entry needs ip and names")
        names = entry["names"] if isinstance(entry["names"], list) else [entry["names"]]
        for host in names:
            _lxc.validate_name(host, "lxc_provision_hosts", "names")
        out.append((str(entry["ip"]), [str(n) for n in names]))
    return out


def hostsfile_step(spawn_result, containers, extra_hosts=(), peers=True) -> list:
    """``lxc_guest_setup`` input of the hosts file step (``/etc/hosts`` of every container)."""
    spec = _containers(containers)
    spawned = _spawned(spawn_result, containers)
    everyone = [(c["settings"]["ip"], [c["name"], c["name"].split(".", 1)[0]]
                 if "." in c["name"] else [c["name"]]) for c in spawned]
    common = _extra_hosts(extra_hosts)
    out = []
    for item in spawned:
        name = item["name"]
        own = _extra_hosts((spec.get(name) or {}).get("hosts"))
        others = [p for p in everyone if p[1][0] != name] if peers else []
        out.append({"name": name, "files": [{
            "path": "/etc/hosts", "mode": "0644", "owner": "root",
            "content": hosts_text(name, item["settings"]["ip"], others, common + own)}]})
    return out


def sshkeys_step(spawn_result, containers, ssh_keys=()) -> list:
    """``authorized_keys`` of every user of every container: role keys + the entry's keys.

    A container without any key gets no file (an existing authorized_keys is left alone).
    """
    spec = _containers(containers)
    out = []
    for item in _spawned(spawn_result, containers):
        name = item["name"]
        own = (spec.get(name) or {}).get("ssh_keys") or []
        keys = list(dict.fromkeys(k.strip() for k in list(ssh_keys or []) + list(own)
                                  if k.strip()))
        for key in keys:
            _lxc._no_newline(key, name, "ssh_keys")
        files = []
        if keys:
            text = KEYS_HEADER + "".join(k + "\n" for k in keys)
            for user in item["settings"].get("users") or ["root"]:
                files.append({"path": f"~{user}/.ssh/authorized_keys", "content": text,
                              "mode": "0600", "owner": user, "dir_mode": "0700"})
        out.append({"name": name, "files": files})
    return out


#: Settings that never go into facts (the guest can read its facts; secrets stay on the host).
_NOT_FACTS = ("password", "ssh_keys", "lxc_conf", "lxc_conf_unset")


def facts_data(item, host_id, extra=None) -> dict:
    """The custom facts of one container (``ansible_local.<fact_name>``), no secrets."""
    settings = item.get("settings") or {}
    data = {k: v for k, v in settings.items() if k not in _NOT_FACTS}
    data["host"] = host_id
    data["provisioned_by"] = "vman.lifecycle.lxc_provision"
    for key, value in (extra or {}).items():
        if key in data:
            raise ValidationError(item["name"], "facts", key,
                                  "would overwrite a provisioning fact of the same name")
        data[key] = value
    return data


def grains_step(spawn_result, containers, host_id, extra_facts=None, fact_name="vman_lxc") -> list:
    """``lxc_guest_setup`` input of the facts step (``/etc/ansible/facts.d/<fact_name>.fact``)."""
    if not isinstance(fact_name, str) or not _FACT_NAME_RE.fullmatch(fact_name):
        raise ValidationError("lxc_provision", "fact_name", fact_name,
                              "must be lower-case letters, digits and '_'")
    spec = _containers(containers)
    out = []
    for item in _spawned(spawn_result, containers):
        extra = dict(extra_facts or {})
        extra.update((spec.get(item["name"]) or {}).get("facts") or {})
        text = json.dumps(facts_data(item, host_id, extra), indent=2, sort_keys=True) + "\n"
        out.append({"name": item["name"], "files": [{
            "path": f"{FACTS_DIR}/{fact_name}.fact", "content": text, "mode": "0644"}]})
    return out


def initial_setup_step(spawn_result, containers=None, commands=(), regenerate_host_keys=True,
                       marker=_lxc_setup.DEFAULT_MARKER) -> list:
    """``lxc_guest_setup`` input of the one-time initial setup."""
    cmds = [_lxc_setup.validate_argv(c, "lxc_provision", "initial_setup_commands")
            for c in commands or []]
    return [{"name": item["name"], "commands": cmds,
             "regenerate_host_keys": bool(regenerate_host_keys), "marker": marker}
            for item in _spawned(spawn_result, containers)]


def known_hosts_text(spawn_result, setup_result, containers=None) -> str:
    """known_hosts lines for the containers (``<ip>,<name> <type> <key>``), from the guests."""
    ips = {c["name"]: c["settings"]["ip"] for c in _spawned(spawn_result, containers)}
    lines = []
    for item in (setup_result or {}).get("containers") or []:
        for key in item.get("ssh_host_keys") or []:
            if item["name"] in ips:
                lines.append(f"{ips[item['name']]},{item['name']} {key}")
    return "".join(line + "\n" for line in lines)


def converge_plan(spawn_result, setup_result, workdir, playbook=None, role=None, user="root",
                  private_key=None, proxy_jump=None, gather_facts=True,
                  ansible_playbook_python=None, extra_args=(), containers=None) -> dict:
    """Everything the initial converge step writes and runs, or ``{'skip': reason}``.

    Returns ``{'inventory': {...}, 'known_hosts': text, 'playbook': [...] or None,
    'playbook_path': path, 'argv': [...]}``. SSH checks the container host keys read by the
    initial setup step (strict checking against a known_hosts file of this run).
    """
    if not playbook and not role:
        return {"skip": "no playbook or role named (lxc_provision_converge_playbook / "
                        "lxc_provision_converge_role)"}
    if playbook and role:
        raise ValidationError("lxc_provision", "converge", [playbook, role],
                              "name a playbook or a role, not both")
    known = os.path.join(workdir, "known_hosts")
    ssh_args = ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
    if proxy_jump:
        ssh_args += ["-o", "ProxyJump=" + _lxc._no_newline(proxy_jump, "lxc_provision",
                                                           "converge_proxy_jump")]
    hosts = {}
    for item in _spawned(spawn_result, containers):
        hosts[item["name"]] = {"ansible_host": item["settings"]["ip"], "ansible_user": user,
                               "ansible_ssh_common_args": " ".join(ssh_args)}
    inventory = {"all": {"children": {"lxc_provision": {"hosts": hosts}}}}
    doc = None
    path = playbook
    if role:
        doc = [{"name": f"Initial converge with role {role}", "hosts": "lxc_provision",
                "gather_facts": bool(gather_facts), "roles": [{"role": role}]}]
        path = os.path.join(workdir, "converge.yml")
    binary = "ansible-playbook"
    if ansible_playbook_python:
        sibling = os.path.join(os.path.dirname(ansible_playbook_python), "ansible-playbook")
        if os.path.exists(sibling):
            binary = sibling
    argv = [binary, "-i", os.path.join(workdir, "inventory.yml")]
    if private_key:
        argv += ["--private-key", str(private_key)]
    argv += [_lxc._no_newline(a, "lxc_provision", "converge_extra_args") for a in extra_args or []]
    argv.append(path)
    known_hosts = known_hosts_text(spawn_result, setup_result, containers)
    return {"inventory": inventory, "known_hosts": known_hosts,
            # the files the role writes into the work directory (JSON is YAML for the inventory)
            "files": {"inventory.yml": json.dumps(inventory, indent=2, sort_keys=True) + "\n",
                      "known_hosts": known_hosts},
            "playbook": doc, "playbook_path": path, "argv": argv}


_RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+"
                       r"failed=(\d+)", re.M)


def parse_recap(stdout) -> dict:
    """``PLAY RECAP`` of an ansible-playbook run -> ``{host: {ok, changed, unreachable, failed}}``."""
    out = {}
    text = (stdout or "").rsplit("PLAY RECAP", 1)[-1]
    for match in _RECAP_RE.finditer(text):
        out[match.group(1)] = {k: int(match.group(i + 2)) for i, k in
                               enumerate(("ok", "changed", "unreachable", "failed"))}
    return out


def recap_summary(stdout) -> dict:
    """``{'hosts': parse_recap(stdout), 'changed': any changed, 'failed': any failed/unreachable}``."""
    hosts = parse_recap(stdout)
    return {"hosts": hosts, "changed": any(c["changed"] for c in hosts.values()),
            "failed": any(c["failed"] or c["unreachable"] for c in hosts.values())}


def step_report(step, result, containers=None) -> list:
    """One line per container of a step's registered result (for the role's report task).

    ``containers`` restores the names of the spawn and destroy results (see :func:`_spawned`).
    """
    if step not in STEPS:
        raise ValidationError("lxc_provision", "step", step, "must be one of " + ", ".join(STEPS))
    result = result or {}
    if result.get("skipped"):
        return [f"{step}: skipped ({result.get('skip_reason') or result.get('msg') or 'no work'})"]
    if step == "initial_converge":
        recap = parse_recap(result.get("stdout"))
        return [f"{step}: {host}: ok={c['ok']} changed={c['changed']}"
                for host, c in sorted(recap.items())] or [f"{step}: no play recap"]
    lines = []
    items = result.get("containers") or []
    if containers is not None and step in ("spawn", "destroy") and items:
        names = list(_containers(containers))
        if len(names) == len(items):
            items = [dict(item, name=name) for name, item in zip(names, items)]
    for item in items:
        actions = ", ".join(item.get("actions") or []) or "nothing to do"
        lines.append(f"{step}: {item['name']}: {actions}")
    return lines or [f"{step}: no containers"]
