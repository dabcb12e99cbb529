# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Store rows -> inventory host entries (pure functions of _fleet)."""

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _fleet


@pytest.mark.parametrize("key, secret", [
    ("root_password", True), ("spicepasswd", True), ("vncPasswd", True), ("luks_passphrase", True),
    ("api_token", True), ("token", True), ("ssh_private_key", True), ("privkey", True),
    ("client_secret", True), ("db_pass", True), ("pw", True), ("credentials", True),
    ("pci_passthrough", False), ("bypass_cache", False), ("memory", False), ("ssh_host_keys", False),
    ("public_key", False), (3, False),
])
def test_is_secret_key(key, secret):
    assert _fleet.is_secret_key(key) is secret


def test_redact_removes_secrets_at_any_depth():
    spec = {"a": {"b": [{"password": "x", "ok": 1}, "-----BEGIN EC PRIVATE KEY-----\n..."]},
            "key_text": "-----BEGIN OPENSSH PRIVATE KEY-----", "pci_passthrough": ["0000:01:00.0"]}
    assert _fleet.redact(spec) == {"a": {"b": [{"ok": 1}]}, "pci_passthrough": ["0000:01:00.0"]}
    assert "password" in spec["a"]["b"][0]          # the input is not changed


@pytest.mark.parametrize("spec, netconfs, expected", [
    ({"connection_ip": "10.0.0.2/24", "interfaces": [{"ip": "10.0.0.3"}]}, {}, "10.0.0.2"),
    ({"interfaces": [{"bridge": "br0"}, {"ip": "10.0.0.3/16"}]}, {}, "10.0.0.3"),
    ({"connection_ip": "10.0.0.2"}, {"vm": {"ipv4": None, "ipv6": "2001:db8::1"}}, "2001:db8::1"),
    ({"connection_ip": "10.0.0.2"}, {"vm": {"ipv4": "192.0.2.1"}, "service": {"ipv4": "192.0.2.9"}},
     "192.0.2.1"),
    ({"interfaces": "not a list"}, {"service": {"ipv4": "192.0.2.9"}}, None),
])
def test_primary_address(spec, netconfs, expected):
    assert _fleet.primary_address(spec, netconfs) == expected


def test_host_entries_groups_names_and_netconfs():
    vms = [
        {"name": "a1", "org": "acme-corp", "flavor": "s.1", "backend": "xen", "hypervisor": "dom0",
         "status": "preallocated", "spec": {"pw": "x"}, "ansible_pending": False},
        {"name": "b1", "org": None, "flavor": None, "backend": None, "hypervisor": None,
         "status": "installing", "spec": None, "ansible_pending": True},
    ]
    netconfs = [{"pool": "p", "kind": "vm", "hostname": "h1", "ipv4": "192.0.2.1", "ipv6": None,
                 "in_use_by": "a1"},
                {"pool": "p", "kind": "vm", "hostname": "h2", "ipv4": "192.0.2.2", "ipv6": None,
                 "in_use_by": None}]
    first, second = _fleet.host_entries(vms, netconfs)
    assert first["name"] == "acme-corp-a1"
    assert first["groups"] == ["status_preallocated", "org_acme_corp", "flavor_s_1", "hypervisor_dom0",
                               "backend_xen", "pool"]
    assert first["vars"]["ansible_host"] == "192.0.2.1"
    assert first["vars"]["vman_spec"] == {}
    assert first["vars"]["vman_netconfs"] == {"vm": {"hostname": "h1", "ipv4": "192.0.2.1", "ipv6": None,
                                                     "pool": "p"}}
    assert second["name"] == "b1"
    assert second["groups"] == ["status_installing", "needs_ansible"]
    assert "ansible_host" not in second["vars"]
