# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest module through ansible-playbook on libvirt's test:///default driver (a fake
hypervisor inside libvirt: API paths only, named as such in every test name). Real LXC and real
qemu:///system: test_guest_real.py."""

from __future__ import annotations

import pytest

from _playbook import run_play

pytest.importorskip("libvirt")

XML = "<domain type='test'><name>x</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>"
BACKENDS = {"libvirt": {"uri": "test:///default", "stop_timeout": 0}}


def test_module_fake_test_driver_check_diff_run_and_idempotence(tmp_path):
    """The driver's own domain ``test`` runs in every new connection; a new domain lives only
    within one module run (one connection), which is enough to see define -> suspend."""
    task = {"vman.lifecycle.guest": {"backends": BACKENDS, "guests": [
        {"name": "test", "kind": "libvirt", "state": "running"},
        {"name": "vman-new", "kind": "libvirt", "state": "suspended", "spec": {"xml": XML}}]},
        "register": "g"}
    res, out = run_play(tmp_path, [task], check=True, diff=True, name="check")
    guests = res["g"]["guests"]
    assert res["g"]["changed"] and [g["actions"] for g in guests] == [[], ["define", "start", "suspend"]]
    assert res["g"]["diff"]["before"] == {"test": "running", "vman-new": "absent"}
    assert res["g"]["diff"]["after"] == {"test": "running", "vman-new": "suspended"}
    assert "vman-new" in out
    res, _out = run_play(tmp_path, [task], name="run")
    guests = res["g"]["guests"]
    assert guests[1]["state_before"] == "absent" and guests[1]["state"] == "suspended"
    assert not guests[0]["changed"] and guests[0]["state"] == "running"
    only_test = {"vman.lifecycle.guest": {"backends": BACKENDS, "guests": [task["vman.lifecycle.guest"]["guests"][0]]},
                 "register": "g"}
    res, _out = run_play(tmp_path, [only_test], name="again")
    assert not res["g"]["changed"] and res["g"]["guests"][0]["actions"] == []


def test_module_fake_test_driver_errors_name_the_guest_and_hide_secrets(tmp_path):
    def task(backends, guest, register):
        return {"vman.lifecycle.guest": {"backends": backends, "guests": [guest]}, "register": register}

    tasks = [task(BACKENDS, {"name": "ghost", "kind": "libvirt", "state": "running"}, "missing"),
             task(BACKENDS, {"name": "s", "kind": "libvirt", "state": "present",
                             "spec": {"xml": "<network/>", "password": "Sekr1t-pw-7"}}, "bad"),
             task({"libvirt": {"url": "x"}}, {"name": "a", "kind": "libvirt"}, "setting")]
    # -vvv prints every module invocation: the spec's password must not be in it
    res, out = run_play(tmp_path, tasks, name="errors", env={"ANSIBLE_VERBOSITY": "3"})
    # ansible-core up to 2.20 prints a failed task's module_args (the spec with the secret
    # masked); 2.21 leaves the invocation out: either way, the secret is never in the output
    if '"invocation"' in out:
        assert "<network/>" in out
    assert "spec.xml" in out
    assert res["missing"]["failed"] and res["missing"]["guest"] == "ghost"
    assert "guest ghost (libvirt): planning failed" in res["missing"]["msg"]
    assert "root element must be <domain>" in res["bad"]["msg"] and res["bad"]["step"] == "define"
    assert "Sekr1t-pw-7" not in out
    assert "unknown option" in res["setting"]["msg"] and "url" in res["setting"]["msg"]
