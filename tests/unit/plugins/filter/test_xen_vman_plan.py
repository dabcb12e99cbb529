# -*- coding: utf-8 -*-
"""The xen_vman_plan filter: a thin wrapper, errors become AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.filter.xen_vman_plan import FilterModule

PLAN = FilterModule().filters()["xen_vman_plan"]
VM = {"org": "t", "name": "a", "os": {"type": "debian", "version": "12"},
      "interfaces": [{"ip": "10.200.0.5"}]}
ROLE_VARS = {"xen_vman_nfsroot_base": "10.200.0.1:/srv/nfs", "xen_vman_default_network_script": "vif-bridge",
             "xen_vman_default_additonal_xen_options": []}


def test_plan_with_defaults_and_xl_conf():
    lazy = [{"vm": VM, "ansible_facts": {"__xen_vman_lazy_bridge": "br-t"}}]
    out = PLAN([VM], ROLE_VARS, [], lazy)
    assert out["defaults"]["nfsroot_base"] == "10.200.0.1:/srv/nfs"
    assert out["domain_vms"][0]["interfaces"][0]["bridge"] == "br-t"
    assert out["new"] == ["t-a"] and out["xl_conf"][0]["line"] == 'vif.default.script="vif-bridge"'


def test_plan_error_names_vm():
    with pytest.raises(AnsibleFilterError, match="t-a"):
        PLAN([dict(VM, memory=-1)], ROLE_VARS)


def test_plan_takes_over_an_original_host_from_find_and_stat_results():
    """The shapes the role's stat loop and find hand over; legacy markers join markers."""
    role_vars = dict(ROLE_VARS, xen_vman_iscsi_server="10.200.0.1:3260",
                     xen_vman_iscsi_base_wwn="iqn.2026-01.test.vman")
    stat = [{"item": "/etc/systemd/system/xen_vman_global_preparation.service", "stat": {"exists": True}},
            {"item": "/usr/local/bin/xen_vman_global_preparation.sh", "stat": {"exists": True}},
            {"item": "/etc/xen/scripts/mount_vm.sh", "stat": {"exists": False}},
            {"item": "/etc/xen/vms/.iscsi", "stat": {"exists": True}}]
    found = [{"path": "/etc/xen/vms/.iscsi/t-db", "isreg": True}]
    out = PLAN([VM], role_vars, ["/etc/xen/vms/t-a.cfg", "/etc/xen/vms/t-db.cfg"], [], "/mnt/vms",
               True, stat + found, "/etc/xen/vms")
    assert out["legacy"]["disable"] == ["xen_vman_global_preparation.service"]
    assert out["legacy"]["remove"] == ["/etc/systemd/system/xen_vman_global_preparation.service",
                                       "/usr/local/bin/xen_vman_global_preparation.sh",
                                       "/etc/xen/vms/.iscsi/t-db", "/etc/xen/vms/.iscsi"]
    assert [m["name"] for m in out["markers"]] == ["t-a.root", "t-db.iscsi", "t-db.root"]
