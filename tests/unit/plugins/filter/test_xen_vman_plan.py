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
