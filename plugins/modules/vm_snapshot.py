#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_snapshot
short_description: Create, revert and delete libvirt domain snapshots
version_added: 0.1.0
description:
  - Manages one snapshot of one libvirt domain on any libvirt URI.
  - O(state=present) creates the snapshot when the domain has none of that name. An internal
    snapshot (the default) is stored inside the qcow2 disk images and, for a running domain,
    includes the memory state; it is refused with an error naming the domain, the disk and its
    format when a writable disk is not qcow2. O(kind=external) takes a disk-only snapshot instead;
    every disk gets a new qcow2 overlay next to it and the domain continues on the overlays.
  - O(state=reverted) reverts the domain to the snapshot. It always reverts and always reports
    a change, because libvirt cannot tell whether the disks or the memory changed since the
    snapshot was taken; put it behind a condition when a revert must be rare.
  - O(state=absent) deletes the snapshot when it exists (its descendants too with O(children)).
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
    description:
      - "Name of the snapshot: 1-128 characters of letters, digits, C(_ . + : -), starting with a
        letter or digit."
    type: str
    required: true
    aliases: [snapshot]
  state:
    description:
      - V(present) creates the snapshot if missing; an existing snapshot of that name is left
        as it is (its description and kind are not compared).
      - V(reverted) reverts the domain to the snapshot (a change every time).
      - V(absent) deletes the snapshot if it exists.
    type: str
    choices: [present, reverted, absent]
    default: present
  description:
    description:
      - Free text stored with a new snapshot.
      - At most 4096 characters without control characters (no line break, tab or NUL).
    type: str
  kind:
    description:
      - V(internal) stores the snapshot inside qcow2 images (disks and, when running, memory).
      - V(external) takes a disk-only snapshot into new overlay files with libvirt's default names.
        libvirt before 9.7 (Debian 12 has 9.0) can neither revert nor delete external snapshots;
        the task then fails with libvirt's error.
    type: str
    choices: [internal, external]
    default: internal
  quiesce:
    description:
      - Freeze the guest's filesystems through the QEMU guest agent while the snapshot is taken.
      - Only with O(kind=external); the guest agent must run in the guest.
    type: bool
    default: false
  revert_state:
    description:
      - Power state after O(state=reverted). V(snapshot) restores the state recorded in the
        snapshot; V(running) and V(paused) start the reverted domain that way; V(stopped)
        reverts and then powers the domain off if the snapshot left it running.
    type: str
    choices: [snapshot, running, paused, stopped]
    default: snapshot
  force:
    description: With O(state=reverted), let libvirt revert in cases it refuses by default.
    type: bool
    default: false
  children:
    description:
      - With O(state=absent), delete the snapshot's descendants too. Without it libvirt attaches
        the children to the deleted snapshot's parent.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Nothing is created, reverted or deleted; the result predicts the outcome.
  diff_mode:
    support: full
    description: Shows the domain's snapshot names and current snapshot before and after.
seealso:
  - module: vman.lifecycle.vm_snapshot_info
  - module: community.libvirt.virt
"""

EXAMPLES = r"""
- name: Take a clean snapshot of a guest on qcow2 disks
  vman.lifecycle.vm_snapshot:
    domain: web01
    name: clean
    description: freshly installed

- name: Go back to it, and leave the guest powered off
  vman.lifecycle.vm_snapshot:
    domain: web01
    name: clean
    state: reverted
    revert_state: stopped

- name: Disk-only external snapshot with frozen filesystems, on a remote host
  vman.lifecycle.vm_snapshot:
    uri: qemu+ssh://root@kvm1.example.org/system
    domain: db01
    name: before-upgrade
    kind: external
    quiesce: true

- name: Delete a snapshot and everything taken after it
  vman.lifecycle.vm_snapshot:
    domain: web01
    name: clean
    state: absent
    children: true
"""

RETURN = r"""
snapshot:
  description:
    - Facts of the snapshot after the task (predicted in check mode); null when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Snapshot name.
      type: str
      sample: clean
    description:
      description: Free text stored with the snapshot.
      type: str
    state:
      description: Domain state recorded in the snapshot (running, paused, shutoff, disk-snapshot).
      type: str
      sample: running
    creation_time:
      description: Creation time, seconds since the epoch (null in check mode for a new one).
      type: int
    creation_time_iso:
      description: Creation time as ISO 8601 in UTC.
      type: str
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
      description: Per-disk snapshot mode and, for external ones, the overlay file.
      type: list
      elements: dict
    children:
      description: Number of direct children.
      type: int
power_state:
  description: The domain's power state after the task (running, paused, stopped, ...).
  returned: always
  type: str
  sample: running
deleted:
  description: Names of the snapshots deleted (or that would be deleted in check mode).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [clean]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt as lv
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._vm_snapshot import VM_SNAPSHOT_SPEC, ensure


def main():
    module = AnsibleModule(argument_spec=dict(lv.LIBVIRT_URI_SPEC, **VM_SNAPSHOT_SPEC),
                           supports_check_mode=True)
    if not lv.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=lv.LIBVIRT_IMPORT_ERROR)
    conn = None
    try:
        conn = lv.connect(module.params["uri"])
        result = ensure(conn, module.params, module.check_mode)
    except VmanError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())
    finally:
        lv.close(conn)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
