# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_power without a hypervisor: the config check, the plan, the merge (pure) and ask_all over
FakeReader (a stand-in for a backend, named as such). Real LXC and libvirt:
tests/unit/plugins/inventory/test_fleet_live_real.py."""

from __future__ import annotations

import copy
import threading

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _power as pw
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError


def _host(name, hypervisor, org=None, groups=("status_ready",)):
    return {"name": f"{org}-{name}" if org else name, "groups": list(groups),
            "vars": {"vman_name": name, "vman_org": org, "vman_hypervisor": hypervisor}}


CONFIG = pw.parse_live_config({
    "dom0a": {"backend": "xen", "config_path": "/etc/xen/vms"},
    "lxchost": {"backend": "lxc", "lxc_path": "/var/lib/lxc", "timeout": 5},
    "kvm1": {"backend": "libvirt", "uri": "qemu+ssh://root@kvm1/system"},
})
HOSTS = [_host("web1", "dom0a", org="acme"), _host("web2", "dom0a", org="acme"),
         _host("c1", "lxchost", org="acme"), _host("c2", "lxchost"),
         _host("k1", "kvm1"), _host("k2", "kvm1"), _host("elsewhere", "unlisted"), _host("nohv", None)]


def test_parse_live_config():
    assert CONFIG["dom0a"] == {"backend": "xen", "timeout": 30, "options": {"config_path": "/etc/xen/vms"}}
    assert CONFIG["lxchost"]["timeout"] == 5
    assert CONFIG["kvm1"]["options"] == {"uri": "qemu+ssh://root@kvm1/system"}
    assert pw.parse_live_config(None) == {} and pw.parse_live_config({}) == {}


@pytest.mark.parametrize("value, field, message", [
    ({"h": {"backend": "vmware"}}, "backend", "must be one of lxc, xen, libvirt"),
    ({"h": {"uri": "qemu:///system"}}, "backend", "must be one of"),
    ({"h": {"backend": "lxc", "uri": "x"}}, "uri",
     r"unknown for backend lxc \(known: backend, timeout, lxc_path, ssh, ssh_args\)"),
    ({"h": {"backend": "libvirt", "ssh": "root@h"}}, "ssh", "unknown for backend libvirt"),
    ({"h": {"backend": "xen", "ssh": ""}}, "ssh", "ssh destination"),
    ({"h": {"backend": "xen", "ssh": "h", "ssh_args": "-p 22"}}, "ssh_args", "list of ssh options"),
    ({"h": {"backend": "xen", "ssh_args": ["-p", "22"]}}, "ssh_args", "needs ssh"),
    ({"h": {"backend": "libvirt", "timeout": 0}}, "timeout", "above 0"),
    ({"h": {"backend": "libvirt", "timeout": "10"}}, "timeout", "number of seconds"),
    ({"h": "libvirt"}, "backend", "mapping with a backend key"),
    (["h"], "live_state", "mapping of hypervisor names"),
])
def test_parse_live_config_refusals_name_the_hypervisor_and_key(value, field, message):
    with pytest.raises(ValidationError, match=message) as err:
        pw.parse_live_config(value)
    assert err.value.field == field
    if isinstance(value, dict):
        assert err.value.obj == "live_state.h"


def test_guest_names_per_kind():
    assert pw.guest_name("xen", HOSTS[0]["vars"]) == "acme-web1"     # xen_domain's <org>-<name>
    assert pw.guest_name("lxc", HOSTS[2]["vars"]) == "c1"
    assert pw.guest_name("libvirt", HOSTS[4]["vars"]) == "k1"
    assert pw.guest_name("xen", HOSTS[3]["vars"]) == "c2"             # no org: the name


def test_plan_asks_each_listed_hypervisor_once_for_all_its_vms():
    hosts = HOSTS + [_host("web1", "dom0a", org="acme", groups=())]   # a duplicate row
    assert pw.plan(hosts, CONFIG) == {"dom0a": ["acme-web1", "acme-web2"], "lxchost": ["c1", "c2"],
                                      "kvm1": ["k1", "k2"]}


def test_merge_states_absent_unknown_and_untouched_input():
    before = copy.deepcopy(HOSTS)
    states = {"dom0a": {"acme-web1": "running", "acme-web2": "stopped"},
              "kvm1": {"k1": "paused", "k2": None}}
    merged = pw.merge_power(HOSTS, CONFIG, states, {"lxchost": "lxc-ls timed out"})
    assert HOSTS == before                                 # the cache's data stays store data
    power = {h["name"]: h["vars"].get("vman_power_state") for h in merged}
    assert power == {"acme-web1": "running", "acme-web2": "stopped", "acme-c1": "unknown",
                     "c2": "unknown", "k1": "paused", "k2": "absent", "elsewhere": None, "nohv": None}
    groups = {h["name"]: h["groups"] for h in merged}
    assert groups["acme-web1"] == ["status_ready", "power_running"]
    assert groups["k2"] == ["status_ready", "power_absent"]
    assert groups["elsewhere"] == ["status_ready"]
    assert merged[6] is HOSTS[6]                            # not configured: as it was


class FakeReader:
    """A stand-in backend: answers from a dict, raises, or blocks until released."""

    def __init__(self, answer=None, error=None, gate=None):
        self.answer, self.error, self.gate, self.asked = answer or {}, error, gate, []

    def states(self, names):
        self.asked.append(list(names))
        if self.gate is not None:
            self.gate.wait()
        if self.error is not None:
            raise self.error
        return {n: self.answer.get(n) for n in names}


def test_ask_all_one_call_per_hypervisor_and_failures_reported():
    readers = {"xen": FakeReader({"acme-web1": "running"}),
               "lxc": FakeReader(error=VmanError("lxc_path /nope is not a directory")),
               "libvirt": FakeReader(error=KeyError("surprise"))}
    made = []

    def factory(kind, options, timeout):
        made.append((kind, options, timeout))
        return readers[kind]

    states, failures = pw.ask_all(CONFIG, pw.plan(HOSTS, CONFIG), reader_factory=factory)
    assert states == {"dom0a": {"acme-web1": "running", "acme-web2": None}}
    assert failures == {"lxchost": "lxc_path /nope is not a directory", "kvm1": "KeyError: 'surprise'"}
    assert readers["xen"].asked == [["acme-web1", "acme-web2"]]
    assert sorted(made) == [("libvirt", {"uri": "qemu+ssh://root@kvm1/system"}, 30),
                            ("lxc", {"lxc_path": "/var/lib/lxc"}, 5),
                            ("xen", {"config_path": "/etc/xen/vms"}, 30)]


def test_ask_all_gives_up_on_a_silent_hypervisor():
    gate = threading.Event()
    config = pw.parse_live_config({"slow": {"backend": "libvirt", "timeout": 7}})
    ticks = iter([0.0, 100.0])          # a fake clock: the deadline has passed at the first join
    try:
        states, failures = pw.ask_all(config, {"slow": ["k1"]}, clock=lambda: next(ticks),
                                      reader_factory=lambda kind, options, timeout: FakeReader(gate=gate))
    finally:
        gate.set()
    assert states == {} and failures == {"slow": "no answer within 7 s"}
