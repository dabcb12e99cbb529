#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_capabilities_info
short_description: The guest architectures and domain types a libvirt host offers
version_added: 0.1.0
description:
  - Reads the libvirt capabilities of a host over a read-only connection (what C(virsh
    capabilities) prints) and returns the guest architectures with their domain types
    (V(kvm), V(qemu) ...). The C(vman.lifecycle.vm_dispatcher) role assigns VM configurations
    by it, as ansible_farm's vm_dispatcher did with C(virsh capabilities).
author:
  - vman.lifecycle developers (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.libvirt
options: {}
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
seealso:
  - ref: vman.lifecycle.vm_dispatcher role <ansible_collections.vman.lifecycle.vm_dispatcher_role>
    description: The role that assigns VM configurations by these capabilities.
"""

EXAMPLES = r"""
- name: What can this host run?
  vman.lifecycle.vm_capabilities_info:
    uri: qemu:///system
  register: caps

- name: Does it run aarch64 guests with KVM?
  ansible.builtin.debug:
    msg: "{{ 'kvm' in caps.guests.aarch64 | default([]) }}"
"""

RETURN = r"""
guests:
  description: The guest architectures and their domain types, in libvirt's order.
  returned: always
  type: dict
  sample: {"x86_64": ["qemu", "kvm"], "aarch64": ["qemu"]}
xml:
  description: The capabilities XML.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._farm import capabilities


def main():
    module = AnsibleModule(argument_spec=dict(lv.LIBVIRT_URI_SPEC), supports_check_mode=True)
    if not lv.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=lv.LIBVIRT_IMPORT_ERROR)
    conn = None
    try:
        conn = lv.connect(module.params["uri"], readonly=True)
        xml = conn.getCapabilities()
        result = {"changed": False, "xml": xml, "guests": capabilities(xml)}
    except VmanError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())
    except lv.libvirt.libvirtError as exc:  # pylint: disable=no-member
        module.fail_json(msg=f"libvirt capabilities of {module.params['uri']}: {exc}")
    finally:
        lv.close(conn)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
