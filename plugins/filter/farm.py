# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the ansible_farm helper roles (parse_vms_definitions, vm_dispatcher,
init_vm_connection, libvirt_network): thin wrappers over module_utils/_farm.py, each documented
in its sidecar file (farm_*.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils import _farm
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError


def _plain(value):
    if isinstance(value, dict):
        return {(None if k is None else str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _wrap(func, *args, **kwargs):
    try:
        return func(*[_plain(a) for a in args], **{k: _plain(v) for k, v in kwargs.items()})
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def farm_configurations(config):
    """ansible_farm's VM configuration -> the platform x target entries."""
    return _wrap(_farm.configurations, config)


def farm_definition_file(name, kind, search_dirs, fallback=True):
    """The target / platform definition file first_found picks, or None."""
    return _wrap(_farm.definition_file, kind, name, search_dirs, fallback=bool(fallback))


def farm_capabilities(xml_text):
    """virsh capabilities XML -> {arch: [domain types]}."""
    return _wrap(_farm.capabilities, xml_text)


def farm_dispatch(pools, hosts, priority_domains, host_order):
    """Fair assignment of configurations to hypervisors, per architecture."""
    result = _wrap(_farm.dispatch, pools, hosts, priority_domains, host_order)
    # a JSON-able key for the configurations no hypervisor can run
    result["_unassigned"] = result.pop(None)
    return result


def farm_vm_host(vm, kvm_host, hostvars, should_setup_proxy_jumps=None):
    """The add_host arguments of init_vm_connection for one VM."""
    names = {vm.get("metadata", {}).get("name"), kvm_host} if isinstance(vm, dict) else {kvm_host}
    for jump in (hostvars.get(kvm_host) or {}).get("hostjumps") or []:
        names.add(jump)
    wanted = {}
    for name in names:
        if name in hostvars:
            wanted[name] = {k: hostvars[name].get(k) for k in (
                "ansible_connection", "ansible_host", "ansible_port", "ansible_user", "hostjumps",
                "should_setup_proxy_jumps", "ansible_ssh_common_args") if k in hostvars[name]}
    return _wrap(_farm.vm_host, vm, kvm_host, wanted, should_setup_proxy_jumps)


def farm_network_xml(network):
    """libvirt network XML of an ansible_farm network configuration."""
    return _wrap(_farm.network_xml, network)


def farm_dhcp_host_xml(mac, ip, hostname=None):
    """A DHCP <host/> entry."""
    return _wrap(_farm.dhcp_host_xml, mac, ip, hostname)


def farm_mac(seed, prefix="52:54:00"):
    """A stable MAC address for a seed."""
    return _wrap(_farm.seeded_mac, seed, prefix)


class FilterModule:
    """vman.lifecycle filters of the ansible_farm helper roles."""

    def filters(self):
        return {
            "farm_configurations": farm_configurations,
            "farm_definition_file": farm_definition_file,
            "farm_capabilities": farm_capabilities,
            "farm_dispatch": farm_dispatch,
            "farm_vm_host": farm_vm_host,
            "farm_network_xml": farm_network_xml,
            "farm_dhcp_host_xml": farm_dhcp_host_xml,
            "farm_mac": farm_mac,
        }
