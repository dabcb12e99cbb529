# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_guest: the pure plan table, input checks, and the converger over libvirt's test:///default
driver (a fake hypervisor inside libvirt, named as such in the test names). Real LXC and real
qemu:///system: tests/unit/plugins/modules/test_guest_real.py."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _guest
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError


@pytest.mark.parametrize("current, desired, verbs, after", [
    (None, "present", ["define"], "stopped"),
    ("running", "present", [], "running"),
    ("suspended", "present", [], "suspended"),
    (None, "running", ["define", "start"], "running"),
    ("stopped", "running", ["start"], "running"),
    ("suspended", "running", ["resume"], "running"),
    ("paused", "running", ["start"], "running"),
    ("running", "running", [], "running"),
    (None, "stopped", ["define"], "stopped"),
    ("running", "stopped", ["stop"], "stopped"),
    ("suspended", "stopped", ["stop"], "stopped"),
    ("stopped", "stopped", [], "stopped"),
    (None, "suspended", ["define", "start", "suspend"], "suspended"),
    ("stopped", "suspended", ["start", "suspend"], "suspended"),
    ("running", "suspended", ["suspend"], "suspended"),
    ("suspended", "suspended", [], "suspended"),
    (None, "absent", [], "absent"),
    ("running", "absent", ["delete"], "absent"),
    ("suspended", "absent", ["delete"], "absent"),
])
def test_plan_table(current, desired, verbs, after):
    assert _guest.plan(current, desired) == (verbs, after)


def test_plan_absent_of_a_kind_that_keeps_the_guest_with_its_storage():
    assert _guest.plan("running", "absent", keep_storage=True, keeps_guest=True) == (["delete"], "stopped")
    assert _guest.plan("stopped", "absent", keep_storage=True, keeps_guest=True) == ([], "stopped")
    assert _guest.plan("stopped", "absent", keep_storage=False, keeps_guest=True) == (["delete"], "absent")


@pytest.mark.parametrize("guest, field, message", [
    ({"name": "a", "kind": "vmware", "state": "running"}, "kind", "must be one of lxc, xen, libvirt"),
    ({"name": "a\nb", "kind": "lxc", "state": "running"}, "name", "control"),
    ({"name": "a", "kind": "lxc", "state": "paused"}, "state", "must be one of present"),
    ({"name": "a", "kind": "lxc", "state": "stopped", "timeout": -1}, "timeout", "0 or more"),
    ({"name": "a", "kind": "lxc", "state": "stopped", "spec": "x"}, "spec", "must be a dict"),
])
def test_bad_guests_are_refused_naming_the_field(guest, field, message):
    with pytest.raises(ValidationError, match=message) as err:
        _guest.GuestConverger().converge([guest])
    assert err.value.field == field


def test_a_guest_twice_is_refused():
    guests = [{"name": "a", "kind": "libvirt", "state": "present"}] * 2
    with pytest.raises(ValidationError, match=r"appears twice \(guests\[0\] and guests\[1\]\)"):
        _guest.GuestConverger({"libvirt": {"uri": "test:///default"}}).converge(guests)


def test_unknown_backend_settings_are_refused():
    with pytest.raises(ValidationError, match="must be one of") as err:
        _guest.GuestConverger({"vmware": {}})
    assert err.value.obj == "backends"
    conv = _guest.GuestConverger({"libvirt": {"url": "x"}})
    with pytest.raises(_guest.GuestError, match="guest a \\(libvirt\\): reading its state failed: .*url"):
        conv.converge([{"name": "a", "kind": "libvirt", "state": "present"}])


XML = "<domain type='test'><name>x</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>"


def test_converger_on_the_fake_test_driver_check_run_idempotent_and_errors():
    """test:///default (libvirt's fake hypervisor): check mode plans without acting, a run
    acts, the second run changes nothing, a missing guest without spec fails naming it, and
    the results before the failing guest are kept."""
    pytest.importorskip("libvirt")
    opts = {"libvirt": {"uri": "test:///default", "stop_timeout": 0}}
    guests = [{"name": "vman-conv", "kind": "libvirt", "state": "suspended", "spec": {"xml": XML}},
              {"name": "test", "kind": "libvirt", "state": "running"}]
    conv = _guest.GuestConverger(opts, check_mode=True)
    # one converger keeps one connection: the test driver's state lives in it
    conv.close = lambda: None
    results, diff = conv.converge(guests)
    assert [r["actions"] for r in results] == [["define", "start", "suspend"], []]
    assert diff["before"] == {"vman-conv": "absent", "test": "running"}
    assert diff["after"] == {"vman-conv": "suspended", "test": "running"}
    backend = conv.backend("libvirt", None)
    assert backend.state("vman-conv") is None              # check mode: nothing defined
    conv.check_mode = False
    results, _diff = conv.converge(guests)
    assert results[0]["changed"] and results[0]["state"] == "suspended"
    assert backend.state("vman-conv") == "suspended" and not results[1]["changed"]
    results, _diff = conv.converge(guests)
    assert not any(r["changed"] for r in results) and results[0]["actions"] == []
    results, _diff = conv.converge([dict(guests[0], state="absent", keep_storage=False)])
    assert results[0]["state"] == "absent" and backend.state("vman-conv") is None
    with pytest.raises(_guest.GuestError) as err:
        conv.converge([guests[1], {"name": "ghost", "kind": "libvirt", "state": "running"}])
    assert "guest ghost (libvirt): planning failed" in str(err.value)
    assert "its spec is needed to define it" in str(err.value)
    assert [r["name"] for r in err.value.results] == ["test"]
    assert err.value.to_result()["guest"] == "ghost"
    backend.close()
