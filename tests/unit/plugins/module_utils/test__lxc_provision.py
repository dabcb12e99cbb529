# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_lxc_provision: the lxc_provision role's step inputs, converge plan and reports (pure)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc_provision as prov
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

CONTAINERS = {
    "gfoobar.test.com": {"profile": "small", "profile_type": "lvm", "password": "foobar",
                         "ip": "10.5.10.16", "ssh_keys": ["ssh-ed25519 BBBB own@key"],
                         "hosts": [{"ip": "10.5.0.1", "names": ["devhost10.local"]}],
                         "facts": {"role": "db"}, "users": ["root", "sysadmin"]},
    "mysupertest3.foo.com": {},
    "bare": None,
}


def _spawn():
    def item(name, ip, users=("root",)):
        return {"name": name, "state": "started", "changed": True,
                "settings": {"name": name, "ip": ip, "mac": "00:16:3e:00:00:01",
                             "password": "********", "users": list(users), "gateway": "10.5.0.1",
                             "profile": "ms-devhost10-local-dir", "ssh_keys": [],
                             "lxc_conf": [], "lxc_conf_unset": []}}
    return {"changed": True, "containers": [
        item("gfoobar.test.com", "10.5.10.16", ("root", "sysadmin")),
        item("mysupertest3.foo.com", "10.5.0.2"), item("bare", "10.5.0.3")]}


def test_guest_entries_keep_guest_keys_only_and_generate_the_rest():
    entries = prov.guest_entries(CONTAINERS)
    assert entries == [
        {"name": "gfoobar.test.com", "state": "started", "profile": "small",
         "profile_type": "lvm", "password": "foobar", "ip": "10.5.10.16",
         "users": ["root", "sysadmin"]},
        {"name": "mysupertest3.foo.com", "state": "started"},
        {"name": "bare", "state": "started"}]
    assert prov.guest_entries(CONTAINERS, "absent") == [
        {"name": n, "state": "absent"} for n in CONTAINERS]
    assert prov.guest_entries({}) == [] and prov.guest_entries(None) == []


@pytest.mark.parametrize("containers, obj, field, reason", [
    ({"a.test.com": {"mode": "mastersalt"}}, "a.test.com", "mode", "salt option"),
    ({"a.test.com": {"bootsalt_branch": "stable"}}, "a.test.com", "bootsalt_branch", "salt"),
    ({"a.test.com": {"ipaddr": "10.5.0.9"}}, "a.test.com", "ipaddr", "unknown option"),
    ({"a.test.com": "small"}, "a.test.com", "settings", "mapping"),
    ({"../etc": {}}, "../etc", "name", "host name"),
    (["a.test.com"], "lxc_provision_containers", "lxc_provision_containers", "mapping"),
])
def test_guest_entries_reject(containers, obj, field, reason):
    with pytest.raises(ValidationError, match=reason) as err:
        prov.guest_entries(containers)
    assert (err.value.obj, err.value.field) == (obj, field)


def test_hosts_step_lists_self_peers_and_extra_entries():
    steps = prov.hostsfile_step(_spawn(), CONTAINERS,
                                extra_hosts=[{"ip": "10.5.0.254", "names": ["mirror"]}])
    assert [s["name"] for s in steps] == ["gfoobar.test.com", "mysupertest3.foo.com", "bare"]
    text = steps[0]["files"][0]["content"]
    assert steps[0]["files"][0]["path"] == "/etc/hosts"
    lines = text.splitlines()
    assert lines[0].startswith("# managed by vman.lifecycle")
    assert "10.5.10.16\tgfoobar.test.com gfoobar" in lines
    assert "10.5.0.2\tmysupertest3.foo.com mysupertest3" in lines
    assert "10.5.0.3\tbare" in lines
    assert lines[-2:] == ["10.5.0.254\tmirror", "10.5.0.1\tdevhost10.local"]
    other = steps[1]["files"][0]["content"]
    assert "devhost10.local" not in other and "10.5.0.254\tmirror" in other
    lonely = prov.hostsfile_step(_spawn(), CONTAINERS, peers=False)[1]["files"][0]["content"]
    assert "gfoobar" not in lonely and "10.5.0.2\tmysupertest3.foo.com" in lonely


def test_hosts_step_rejects_bad_extra_entries():
    with pytest.raises(ValidationError, match="ip and names"):
        prov.hostsfile_step(_spawn(), CONTAINERS, extra_hosts=[{"ip": "10.5.0.9"}])
    with pytest.raises(ValidationError, match="host name"):
        prov.hostsfile_step(_spawn(), CONTAINERS, extra_hosts=[{"ip": "1.2.3.4", "names": ["a b"]}])


def test_sshkeys_step_per_user_and_container_and_no_file_without_keys():
    keys = ["ssh-ed25519 AAAA ctl@host", "ssh-ed25519 AAAA ctl@host"]
    steps = prov.sshkeys_step(_spawn(), CONTAINERS, ssh_keys=keys)
    given = steps[0]["files"]
    assert [f["path"] for f in given] == ["~root/.ssh/authorized_keys",
                                          "~sysadmin/.ssh/authorized_keys"]
    assert given[1]["owner"] == "sysadmin" and given[1]["mode"] == "0600"
    assert given[1]["dir_mode"] == "0700"
    assert given[0]["content"] == (prov.KEYS_HEADER + "ssh-ed25519 AAAA ctl@host\n"
                                   "ssh-ed25519 BBBB own@key\n")
    assert steps[1]["files"][0]["content"].count("ssh-ed25519") == 1
    assert prov.sshkeys_step(_spawn(), {})[2] == {"name": "bare", "files": []}
    with pytest.raises(ValidationError, match="single line"):
        prov.sshkeys_step(_spawn(), {}, ssh_keys=["a\nb"])


def test_grains_step_facts_without_secrets():
    steps = prov.grains_step(_spawn(), CONTAINERS, "devhost10.local",
                             extra_facts={"site": "lab"})
    given = steps[0]["files"][0]
    assert given["path"] == "/etc/ansible/facts.d/vman_lxc.fact" and given["mode"] == "0644"
    facts = json.loads(given["content"])
    assert facts["ip"] == "10.5.10.16" and facts["host"] == "devhost10.local"
    assert facts["role"] == "db" and facts["site"] == "lab"
    assert not {"password", "ssh_keys", "lxc_conf"} & set(facts)
    assert "role" not in json.loads(steps[1]["files"][0]["content"])
    with pytest.raises(ValidationError, match="overwrite"):
        prov.grains_step(_spawn(), {}, "h", extra_facts={"ip": "x"})
    with pytest.raises(ValidationError, match="fact_name"):
        prov.grains_step(_spawn(), {}, "h", fact_name="Bad-Name")


def test_initial_setup_step():
    steps = prov.initial_setup_step(_spawn(), commands=[["apt-get", "install", "-y", "python3"]])
    assert steps[0] == {"name": "gfoobar.test.com", "regenerate_host_keys": True,
                        "commands": [["apt-get", "install", "-y", "python3"]],
                        "marker": "/etc/vman/initial-setup.done"}
    with pytest.raises(ValidationError, match="argv list"):
        prov.initial_setup_step(_spawn(), commands=["apt-get install python3"])


def test_spawn_result_must_be_an_lxc_guest_result():
    with pytest.raises(ValidationError, match="not an lxc_guest result"):
        prov.hostsfile_step({"changed": False}, {})


SETUP = {"containers": [{"name": "gfoobar.test.com", "ssh_host_keys": ["ssh-ed25519 K1"]},
                        {"name": "mysupertest3.foo.com",
                         "ssh_host_keys": ["ssh-ed25519 K2", "ssh-rsa R2"]}]}


def test_converge_plan_for_a_playbook(tmp_path):
    plan = prov.converge_plan(_spawn(), SETUP, "/tmp/w", playbook="/p/site.yml",
                              private_key="/k/id", proxy_jump="root@devhost10.local",
                              ansible_playbook_python="/nonexistent/bin/python3",
                              extra_args=["-v"])
    hosts = plan["inventory"]["all"]["children"]["lxc_provision"]["hosts"]
    assert hosts["gfoobar.test.com"]["ansible_host"] == "10.5.10.16"
    assert hosts["bare"]["ansible_user"] == "root"
    assert hosts["bare"]["ansible_ssh_common_args"] == (
        "-o UserKnownHostsFile=/tmp/w/known_hosts -o StrictHostKeyChecking=yes "
        "-o ProxyJump=root@devhost10.local")
    assert plan["known_hosts"] == ("10.5.10.16,gfoobar.test.com ssh-ed25519 K1\n"
                                   "10.5.0.2,mysupertest3.foo.com ssh-ed25519 K2\n"
                                   "10.5.0.2,mysupertest3.foo.com ssh-rsa R2\n")
    assert plan["playbook"] is None
    assert plan["argv"] == ["ansible-playbook", "-i", "/tmp/w/inventory.yml",
                            "--private-key", "/k/id", "-v", "/p/site.yml"]
    python = tmp_path / "python3"
    (tmp_path / "ansible-playbook").write_text("")
    plan = prov.converge_plan(_spawn(), SETUP, "/tmp/w", role="acme.web",
                              ansible_playbook_python=str(python), gather_facts=False)
    assert plan["argv"][0] == str(tmp_path / "ansible-playbook")
    assert plan["playbook_path"] == "/tmp/w/converge.yml" == plan["argv"][-1]
    assert plan["playbook"] == [{"name": "Initial converge with role acme.web",
                                 "hosts": "lxc_provision", "gather_facts": False,
                                 "roles": [{"role": "acme.web"}]}]


def test_converge_plan_skip_and_both():
    assert "no playbook or role" in prov.converge_plan(_spawn(), SETUP, "/w")["skip"]
    with pytest.raises(ValidationError, match="not both"):
        prov.converge_plan(_spawn(), SETUP, "/w", playbook="a.yml", role="b")


RECAP = """
PLAY [x] ****
TASK [y] ****
changed: [a.test.com]

PLAY RECAP *********************************************************************
a.test.com                 : ok=3    changed=1    unreachable=0    failed=0    skipped=0
b                          : ok=2    changed=0    unreachable=0    failed=0    skipped=1
"""


def test_recap_and_reports():
    assert prov.parse_recap(RECAP) == {
        "a.test.com": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 0},
        "b": {"ok": 2, "changed": 0, "unreachable": 0, "failed": 0}}
    summary = prov.recap_summary(RECAP)
    assert summary["changed"] and not summary["failed"]
    assert not prov.recap_summary(RECAP.replace("changed=1", "changed=0"))["changed"]
    assert prov.step_report("initial_converge", {"stdout": RECAP}) == [
        "initial_converge: a.test.com: ok=3 changed=1", "initial_converge: b: ok=2 changed=0"]
    assert prov.step_report("spawn", {"containers": [
        {"name": "a", "actions": ["clone base (dir)", "start"]}, {"name": "b", "actions": []}]}) \
        == ["spawn: a: clone base (dir), start", "spawn: b: nothing to do"]
    assert prov.step_report("hostsfile", {"skipped": True, "skip_reason": "x"}) == [
        "hostsfile: skipped (x)"]
    with pytest.raises(ValidationError, match="step"):
        prov.step_report("highstate", {})


def test_names_come_from_the_mapping_when_ansible_masked_a_password_in_them():
    """Password 'foobar' (seed 001) is part of 'gfoobar.test.com': Ansible masks it in results."""
    spawn = _spawn()
    spawn["containers"][0]["name"] = "g********.test.com"
    spawn["containers"][0]["settings"]["name"] = "g********.test.com"
    steps = prov.hostsfile_step(spawn, CONTAINERS)
    assert steps[0]["name"] == "gfoobar.test.com"
    assert "10.5.10.16\tgfoobar.test.com gfoobar" in steps[0]["files"][0]["content"]
    facts = json.loads(prov.grains_step(spawn, CONTAINERS, "h")[0]["files"][0]["content"])
    assert facts["name"] == "gfoobar.test.com"
    assert prov.initial_setup_step(spawn, CONTAINERS)[0]["name"] == "gfoobar.test.com"
    plan = prov.converge_plan(spawn, SETUP, "/w", playbook="p.yml", containers=CONTAINERS)
    assert "gfoobar.test.com" in plan["inventory"]["all"]["children"]["lxc_provision"]["hosts"]
    assert plan["known_hosts"].startswith("10.5.10.16,gfoobar.test.com ssh-ed25519 K1")
    assert prov.step_report("spawn", spawn, CONTAINERS)[0].startswith("spawn: gfoobar.test.com:")
    with pytest.raises(ValidationError, match="results for 1 containers expected"):
        prov.hostsfile_step(spawn, {"a.test.com": {}})
