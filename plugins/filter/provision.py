# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the kvm_provision and guest_provision roles (thin wrappers over module_utils).

Documented in the sidecar files kvm_vm.yml, kvm_template.yml, guest_provision_plan.yml and
guest_cache_plan.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils import _guest_provision as gp
from ansible_collections.vman.lifecycle.plugins.module_utils import _kvm_provision as kvm
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError


def _plain(value):
    """Ansible hands filters its own dict/list/str subclasses; module_utils wants plain ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def kvm_vm(vm, state=None, create_vm=None, delete_vm=None, should_remove_all_vm_storage=None,
           delete_disks=False, libvirt_uri=None, playbook_dir=None,
           hypervisor_lookup_dir_path="setup_hypervisor"):
    """The normalized VM definition of kvm_provision (name, uri, disks, sources, templates, plan)."""
    try:
        return kvm.normalize(_plain(vm), state=_plain(state), create_vm=_plain(create_vm),
                             delete_vm=_plain(delete_vm),
                             should_remove_all_vm_storage=_plain(should_remove_all_vm_storage),
                             delete_disks=bool(delete_disks), libvirt_uri=_plain(libvirt_uri) or None,
                             playbook_dir=_plain(playbook_dir) or None,
                             lookup_dir=_plain(hypervisor_lookup_dir_path))
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def kvm_template(vm, search_dirs):
    """Path of the libvirt XML template chosen by first match."""
    try:
        return kvm.select_template(_plain(vm), _plain(search_dirs))
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def guest_provision_plan(vm, project_id=None, revision_id=None, project_revision=None,
                         allowed_phases=None, phases_lookup_dir_path=None, base_dir=None,
                         libvirt_uri=None, snapshot_type=None):
    """What guest_provision will do before it acts (snapshot names, gates, phase files)."""
    try:
        return gp.plan(_plain(vm), project_id=_plain(project_id), revision_id=_plain(revision_id),
                       project_revision=_plain(project_revision),
                       allowed_phases=_plain(allowed_phases),
                       phases_lookup_dir_path=_plain(phases_lookup_dir_path),
                       base_dir=_plain(base_dir), libvirt_uri=_plain(libvirt_uri) or None,
                       snapshot_kind=_plain(snapshot_type))
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def guest_cache_plan(plan, snapshot_names, restore_failed=False):
    """The README's cache control for a VM with these snapshots."""
    try:
        return gp.cache_plan(_plain(plan), _plain(snapshot_names), bool(restore_failed))
    except (VmanError, KeyError) as exc:
        raise AnsibleFilterError(f"guest_cache_plan: {exc}") from None


class FilterModule:
    """vman.lifecycle provisioning filters."""

    def filters(self):
        return {
            "kvm_vm": kvm_vm,
            "kvm_template": kvm_template,
            "guest_provision_plan": guest_provision_plan,
            "guest_cache_plan": guest_cache_plan,
        }
