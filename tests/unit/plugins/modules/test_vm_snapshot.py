# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_snapshot / vm_snapshot_info main(): arguments, results and failures on test:///default.

Within one process every test:///default connection shares one driver, so the domain this
test defines is seen by the connection the module opens. The real-hypervisor proof is
test_vm_snapshot_real.py.
"""

from __future__ import annotations

import contextlib
import json

import libvirt
import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19: AnsibleModule reads basic._ANSIBLE_ARGS
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

from ansible_collections.vman.lifecycle.plugins.modules import vm_snapshot, vm_snapshot_info

DOM = ("<domain type='test'><name>mvm</name><memory unit='MiB'>64</memory><os><type>hvm</type>"
       "</os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
       "<source file='/img/mvm.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>")


@pytest.fixture
def dom():
    conn = libvirt.open("test:///default")
    d = conn.defineXML(DOM)
    d.create()
    yield d
    d.destroy()
    d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    conn.close()


def run(module, capsys, check=False, diff=False, **args):
    args = dict({"uri": "test:///default", "domain": "mvm"}, **args)
    args.update(_ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_create_idempotent_with_aliases(dom, capsys):
    res = run(vm_snapshot, capsys, vm="mvm", snapshot="s1", description="hello")
    assert res["changed"] is True and res["snapshot"]["description"] == "hello"
    assert "diff" not in res
    res = run(vm_snapshot, capsys, diff=True, name="s1")
    assert res["changed"] is False
    assert res["diff"]["before"] == res["diff"]["after"] == {"snapshots": ["s1"], "current": "s1"}
    assert dom.snapshotNum(0) == 1


def test_check_mode_and_diff(dom, capsys):
    res = run(vm_snapshot, capsys, check=True, diff=True, name="s1")
    assert res["changed"] is True and res["diff"]["after"]["snapshots"] == ["s1"]
    assert dom.snapshotNum(0) == 0


def test_revert_and_delete(dom, capsys):
    run(vm_snapshot, capsys, name="s1")
    res = run(vm_snapshot, capsys, name="s1", state="reverted", revert_state="paused")
    assert res["changed"] is True and res["power_state"] == "paused"
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    res = run(vm_snapshot, capsys, name="s1", state="absent")
    assert res["changed"] is True and res["deleted"] == ["s1"] and res["snapshot"] is None
    assert run(vm_snapshot, capsys, name="s1", state="absent")["changed"] is False


def test_info(dom, capsys):
    run(vm_snapshot, capsys, name="a")
    run(vm_snapshot, capsys, name="b")
    res = run(vm_snapshot_info, capsys)
    assert res["changed"] is False and res["current"] == "b"
    assert [(s["name"], s["parent"], s["current"]) for s in res["snapshots"]] == [
        ("a", None, False), ("b", "a", True)]
    assert all(isinstance(s["creation_time"], int) for s in res["snapshots"])


@pytest.mark.parametrize("args, needle", [
    ({"domain": "ghost", "name": "s"}, "no such domain 'ghost' on test:///default"),
    ({"name": "nope", "state": "reverted"}, "domain 'mvm' has no snapshot 'nope'"),
    ({"name": "a b"}, "field 'name'"),
    ({"name": "s", "quiesce": True}, "quiesce"),
    ({"name": "s", "uri": "nosuch:///x"}, "cannot connect to libvirt at nosuch:///x"),
])
def test_failures_are_clear(dom, capsys, args, needle):
    res = run(vm_snapshot, capsys, **args)
    assert res["failed"] is True and needle in res["msg"]


def test_info_unknown_snapshot_fails(dom, capsys):
    res = run(vm_snapshot_info, capsys, name="zz")
    assert res["failed"] is True and "no snapshot 'zz'" in res["msg"]
