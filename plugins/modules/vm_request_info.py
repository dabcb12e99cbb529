#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_request_info
short_description: Read VM start requests, their devices and the redeploy list
version_added: 0.1.0
description:
  - Returns start requests (see M(vman.lifecycle.vm_request)) with their allocators, devices,
    state and error, and the redeploy list (which allocator must run its playbook again for
    which request, and why).
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Nothing changes, so there is no difference to show.
options:
  name:
    description: Only this request.
    type: str
  allocator:
    description: Only the requests this allocator is registered on, and its redeploy entries.
    type: str
"""

EXAMPLES = r"""
- name: What must the web service redeploy?
  vman.lifecycle.vm_request_info:
    allocator: service-web
  register: web_requests
  delegate_to: localhost
"""

RETURN = r"""
requests:
  description: The requests, as RV(vman.lifecycle.vm_request#module:request) describes them.
  returned: success
  type: list
  elements: dict
redeploy:
  description: Redeploy entries (C(allocator), C(request), C(reason), C(at)), oldest first.
  returned: success
  type: list
  elements: dict
states:
  description: Every request state.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_request import read_requests


def main():
    argument_spec = dict(name=dict(type="str"), allocator=dict(type="str"))
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    with errors_to_fail_json(module):
        with open_store(module.params["store"]) as store:
            result = read_requests(store, module.params["name"], module.params["allocator"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
