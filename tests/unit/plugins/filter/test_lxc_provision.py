# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lxc_provision filters: registered names, delegation, errors as AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.filter import lxc_provision as flt

SPAWN = {"containers": [{"name": "a.test.com", "settings": {"ip": "10.5.0.2", "users": ["root"]}}]}


def test_registered_filters():
    assert set(flt.FilterModule().filters()) == {
        "lxc_provision_entries", "lxc_provision_step", "lxc_provision_converge",
        "lxc_provision_report", "lxc_provision_recap"}


def test_steps_delegate():
    assert flt.lxc_provision_entries({"a.test.com": {}}) == [{"name": "a.test.com",
                                                              "state": "started"}]
    hosts = flt.lxc_provision_step(SPAWN, "hostsfile", containers={})
    assert "10.5.0.2\ta.test.com a" in hosts[0]["files"][0]["content"]
    keys = flt.lxc_provision_step(SPAWN, "sshkeys", ssh_keys=["ssh-ed25519 K c"])
    assert keys[0]["files"][0]["path"] == "~root/.ssh/authorized_keys"
    facts = flt.lxc_provision_step(SPAWN, "grains", host_id="h", fact_name="site")
    assert facts[0]["files"][0]["path"] == "/etc/ansible/facts.d/site.fact"
    setup = flt.lxc_provision_step(SPAWN, "initial_setup", commands=[["true"]])
    assert setup[0]["commands"] == [["true"]]
    assert "skip" in flt.lxc_provision_converge(SPAWN, {}, "/w")
    assert flt.lxc_provision_report({"containers": []}, "sshkeys") == ["sshkeys: no containers"]
    assert flt.lxc_provision_recap("")["changed"] is False


@pytest.mark.parametrize("call", [
    lambda: flt.lxc_provision_entries({"a": {"mode": "salt"}}),
    lambda: flt.lxc_provision_step(SPAWN, "highstate"),
    lambda: flt.lxc_provision_step({}, "hostsfile"),
    lambda: flt.lxc_provision_converge(SPAWN, {}, "/w", playbook="a", role="b"),
    lambda: flt.lxc_provision_report({}, "nope"),
])
def test_errors_are_filter_errors(call):
    with pytest.raises(AnsibleFilterError):
        call()
