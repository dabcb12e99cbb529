#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_snapshot_info
short_description: List the snapshots of a libvirt domain
version_added: 0.1.0
description:
  - Lists the snapshots of one libvirt domain, oldest first, with creation time, parent,
    current flag, recorded state and kind, over a read-only libvirt connection.
author:
  - vman.lifecycle developers (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.libvirt
options:
  domain:
    description: Name of the libvirt domain.
    type: str
    required: true
    aliases: [vm]
  name:
    description: Only this snapshot; the task fails when the domain has no snapshot of that name.
    type: str
    aliases: [snapshot]
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
seealso:
  - module: vman.lifecycle.vm_snapshot
"""

EXAMPLES = r"""
- name: List the snapshots of web01
  vman.lifecycle.vm_snapshot_info:
    domain: web01
  register: snaps

- name: Is there an init snapshot for this revision?
  ansible.builtin.debug:
    msg: "{{ 'proj.r42.init' in (snaps.snapshots | map(attribute='name')) }}"
"""

RETURN = r"""
snapshots:
  description: The domain's snapshots, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Snapshot name.
      type: str
      sample: clean
    description:
      description: Free text stored with the snapshot, null when none.
      type: str
    state:
      description: Domain state recorded in the snapshot (running, paused, shutoff, disk-snapshot).
      type: str
      sample: shutoff
    creation_time:
      description: Creation time, seconds since the epoch.
      type: int
      sample: 1795328349
    creation_time_iso:
      description: Creation time as ISO 8601 in UTC.
      type: str
      sample: "2026-11-22T06:19:09+00:00"
    parent:
      description: Name of the parent snapshot, null for a root snapshot.
      type: str
    current:
      description: Whether it is the domain's current snapshot.
      type: bool
    kind:
      description: V(internal) or V(external).
      type: str
    memory:
      description: How memory was saved (internal, external, no).
      type: str
    disks:
      description: Per-disk snapshot mode (C(name), C(snapshot), C(source)).
      type: list
      elements: dict
    children:
      description: Number of direct children.
      type: int
current:
  description: Name of the current snapshot, null when none.
  returned: always
  type: str
  sample: clean
power_state:
  description: The domain's power state (running, paused, stopped, ...).
  returned: always
  type: str
  sample: running
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_snapshot import VM_SNAPSHOT_INFO_SPEC, gather


def main():
    module = AnsibleModule(argument_spec=dict(lv.LIBVIRT_URI_SPEC, **VM_SNAPSHOT_INFO_SPEC),
                           supports_check_mode=True)
    if not lv.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=lv.LIBVIRT_IMPORT_ERROR)
    conn = None
    try:
        conn = lv.connect(module.params["uri"], readonly=True)
        result = gather(conn, module.params)
    except VmanError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())
    finally:
        lv.close(conn)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
