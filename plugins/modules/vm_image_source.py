#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_image_source
short_description: Run the built-in steps of ansible_farm's image source chains
version_added: 0.1.0
description:
  - Runs, in order, the built-in steps of the C(before_provision) and C(on_provision) chains of
    ansible_farm's C(vm.metadata.sources) on the hypervisor, natively (no shell). The steps
    come from the C(vman.lifecycle.kvm_vm) filter (C(kvm_provision_vm.source_groups)), which
    turns ansible_farm's callback names into the actions below and makes every path absolute;
    the C(vman.lifecycle.kvm_provision) role calls this module for each run of built-in steps
    and includes the user's own callback task files between them.
  - V(fetch) downloads C(src) (http, https, ftp or file URL) to C(dest), 5 tries. A cached
    C(dest) is kept when its C(checksum) matches or, without a checksum, when its size equals
    the remote Content-Length (ansible_farm's rule). A download is verified against the
    checksum before it replaces anything.
  - V(copy) copies C(src) to C(dest), replacing a different C(dest) unless C(force=false).
  - V(convert) runs C(qemu-img convert -f from_format -O to_format) unless C(dest) exists.
  - V(unarchive) decompresses C(.gz), C(.bz2) and C(.xz) files beside themselves (the archive
    is kept) and extracts tar (also compressed) and zip archives into C(dest); a member that
    would land outside C(dest) (absolute, C(..), a link pointing out) or a device file is an
    error before anything of it is written. Members already there with the same size and time
    are not rewritten.
  - V(extend_convert) converts C(src) to raw, grows it to C(size), moves the GPT backup header
    to the new end (or updates the MBR) and grows partition C(partition_number) to the end,
    then converts it to C(to_format) as C(dest). Skipped when C(dest) is C(src), already
    C(to_format) and at least C(size).
  - V(setup_image) runs C(virt-sysprep) on C(src) - root password C(become_password) of O(auth)
    (through a 0600 file, never on a command line), C(hostname), the public key
    C(<keys_path>.pub) copied to C(/opt), and a first-boot script that creates C(user) of O(auth)
    with C(password) of O(auth) and that key. It always reports a change.
  - V(install) moves C(src) to C(dest) (the libvirt pool directory), replacing an existing one
    unless C(replace=false); mode 0644, or 0664 with group O(group).
author:
  - vman.lifecycle developers (@vman-lifecycle)
options:
  steps:
    description:
      - The steps, each a dict with C(action) (V(fetch), V(copy), V(convert), V(unarchive),
        V(extend_convert), V(setup_image), V(install)), C(label) and the action's keys
        (C(src), C(dest), C(checksum), C(force), C(from_format), C(to_format), C(size) in
        bytes, C(partition_number), C(replace), C(hostname), C(user), C(keys_path)) as the
        C(vman.lifecycle.kvm_vm) filter makes them.
    type: list
    elements: dict
    required: true
  group:
    description: Group of installed images (ansible_farm's C(hypervisor_group)); none by default.
    type: str
  auth:
    description:
      - C(vm.metadata.auth) - C(become_password) (root) and C(password) (of C(user)) for
        V(setup_image). Never logged.
    type: dict
  supermin_kernel:
    description: C(SUPERMIN_KERNEL) for C(virt-sysprep) (ansible_farm's Ubuntu workaround).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports what each step would do; downloads are checked with HEAD only.
  diff_mode:
    support: none
    description: Images are binary; the result lists the steps that changed.
seealso:
  - ref: vman.lifecycle.kvm_provision role <ansible_collections.vman.lifecycle.kvm_provision_role>
    description: The role that plans the chains and calls this module.
"""

EXAMPLES = r"""
- name: Fetch, unpack and install an image
  vman.lifecycle.vm_image_source:
    steps:
      - action: fetch
        label: fetch
        src: https://example.org/images/disk.tar.xz
        dest: /var/tmp/farm/disk.tar.xz
        checksum: sha256:3a5f0b0c8e4d9d1f2e6b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a
      - action: unarchive
        label: unpack
        src: /var/tmp/farm/disk.tar.xz
        dest: /var/tmp/farm
      - action: install
        label: install
        src: /var/tmp/farm/disk.qcow2
        dest: /var/lib/libvirt/images/web01.qcow2
        replace: true
"""

RETURN = r"""
steps:
  description: One entry per step, in order.
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: Where the step comes from (C(metadata.sources[0].before_provision[1]) ...).
      type: str
    action:
      description: The action.
      type: str
    changed:
      description: Whether the step changed (or in check mode would change) something.
      type: bool
    msg:
      description: What happened.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._image_source import run_steps


def main():
    module = AnsibleModule(
        argument_spec={
            "steps": {"type": "list", "elements": "dict", "required": True},
            "group": {"type": "str"},
            "auth": {"type": "dict", "no_log": True},
            "supermin_kernel": {"type": "path"},
        },
        supports_check_mode=True)
    auth = module.params["auth"] or {}
    for key in ("become_password", "password"):
        if auth.get(key):
            module.no_log_values.add(str(auth[key]))
    env = {"SUPERMIN_KERNEL": module.params["supermin_kernel"]} if module.params["supermin_kernel"] else None
    with errors_to_fail_json(module):
        result = run_steps(module.params["steps"], module.check_mode, group=module.params["group"],
                           auth=auth, env=env)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
