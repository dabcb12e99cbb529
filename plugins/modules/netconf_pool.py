#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: netconf_pool
short_description: Manage pools of network configs (hostname, IPv4, IPv6) for new VMs
version_added: 0.1.0
description:
  - A network config ("netconf") is a host name with an IPv4 and/or IPv6 address, created
    ahead of time (and in the DNS) so that a new VM or service can take one at once.
  - O(state=present) adds lists and ranges of netconfs to a pool, validated with netaddr;
    a host name or address already in any pool (or given twice) is rejected, naming it.
    Entries already present exactly as given are left alone.
  - O(state=allocated) gives one free netconf of O(kind) to O(vm) (the one it already holds,
    if any); when none is free the task fails naming the pool.
  - O(state=released) frees the netconfs O(vm) holds in the pool.
  - With O(low_water), a warning is given when the free entries of O(kind) fall to that
    number, so that an admin adds more in time.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Validates and computes what would be added, allocated or released.
  diff_mode:
    support: none
    description: The result lists what changed.
requirements:
  - netaddr
options:
  pool:
    description: Name of the pool.
    type: str
    required: true
  kind:
    description:
      - What the netconfs are for. C(vm) is a VM's own address, C(service) a production
        service address, C(test-service) a test service's (usually a private IPv4).
    type: str
    choices: [vm, service, test-service]
    default: vm
  state:
    description: See the description.
    type: str
    choices: [present, allocated, released]
    default: present
  entries:
    description: Netconfs to add with O(state=present).
    type: list
    elements: dict
    suboptions:
      hostname:
        description: Host name (lower case, RFC 1123).
        type: str
        required: true
      ipv4:
        description: IPv4 address.
        type: str
      ipv6:
        description: IPv6 address.
        type: str
  ranges:
    description:
      - Ranges of netconfs to add with O(state=present). Entry number C(n) (from O(ranges[].start))
        gets the host name with C({n}) replaced and the first addresses plus C(n - start).
    type: list
    elements: dict
    suboptions:
      hostname:
        description:
          - Host name template with one C({n}) or zero-padded C({n:03d}) placeholder (a width
            of at most 2 digits).
        type: str
        required: true
      ipv4:
        description: IPv4 address of the first entry.
        type: str
      ipv6:
        description: IPv6 address of the first entry.
        type: str
      count:
        description: Number of entries, 1 to 65536 (larger ranges are refused; split them).
        type: int
        required: true
      start:
        description: First value of C(n), 0 to 1000000000.
        type: int
        default: 1
  vm:
    description: The VM that takes (O(state=allocated)) or gives back (O(state=released)) netconfs.
    type: str
  low_water:
    description: Warn when this many or fewer free entries of O(kind) are left.
    type: int
"""

EXAMPLES = r"""
- name: Add 50 VM addresses
  vman.lifecycle.netconf_pool:
    pool: cam
    kind: vm
    ranges:
      - hostname: "mws-{n:03d}.example.org"
        ipv6: "2001:db8:0:1::10"
        count: 50
    low_water: 10
  delegate_to: localhost

- name: Add two service addresses by hand
  vman.lifecycle.netconf_pool:
    pool: cam
    kind: service
    entries:
      - {hostname: site-a.example.org, ipv4: 192.0.2.10, ipv6: "2001:db8:0:2::10"}
      - {hostname: site-b.example.org, ipv4: 192.0.2.11, ipv6: "2001:db8:0:2::11"}
  delegate_to: localhost

- name: Give a VM its address
  vman.lifecycle.netconf_pool:
    pool: cam
    state: allocated
    vm: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    low_water: 10
  delegate_to: localhost
  register: netconf
"""

RETURN = r"""
added:
  description: Host names added (or that would be) with O(state=present).
  returned: when O(state=present)
  type: list
  elements: str
netconf:
  description: The netconf allocated to O(vm).
  returned: when O(state=allocated)
  type: dict
  sample: {"pool": "cam", "kind": "vm", "hostname": "mws-001.example.org", "ipv4": null,
           "ipv6": "2001:db8:0:1::10", "in_use_by": "3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77"}
released:
  description: Host names freed with O(state=released).
  returned: when O(state=released)
  type: list
  elements: str
stats:
  description: Total and free entries per kind in the pool after the task.
  returned: success
  type: dict
  sample: {"vm": {"total": 50, "free": 49}}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._netconf import HAS_NETADDR
from ansible_collections.vman.lifecycle.plugins.module_utils._pool import netconf_pool
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._store.base import NETCONF_KINDS


def main():
    argument_spec = dict(
        pool=dict(type="str", required=True),
        kind=dict(type="str", choices=list(NETCONF_KINDS), default="vm"),
        state=dict(type="str", choices=["present", "allocated", "released"], default="present"),
        entries=dict(type="list", elements="dict", options=dict(
            hostname=dict(type="str", required=True),
            ipv4=dict(type="str"),
            ipv6=dict(type="str"),
        )),
        ranges=dict(type="list", elements="dict", options=dict(
            hostname=dict(type="str", required=True),
            ipv4=dict(type="str"),
            ipv6=dict(type="str"),
            count=dict(type="int", required=True),
            start=dict(type="int", default=1),
        )),
        vm=dict(type="str"),
        low_water=dict(type="int"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[("state", "allocated", ("vm",)), ("state", "released", ("vm",))])
    if not HAS_NETADDR:
        module.fail_json(msg=missing_required_lib("netaddr"))
    p = module.params
    with errors_to_fail_json(module):
        with open_store(p["store"]) as store:
            result, warnings = netconf_pool(store, p["pool"], p["kind"], p["state"],
                                            entries=p["entries"], ranges=p["ranges"], vm=p["vm"],
                                            low_water=p["low_water"], check=module.check_mode)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
