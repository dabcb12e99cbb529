# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the guest_provision phase lookup (documented in phase_import_path.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._phases import import_path


def phase_import_path(phases_lookup_dir_path, platform_name, target_name, file_name,
                      existing=None, root=None):
    """Path of the most specific phase file that exists, or None."""
    try:
        return import_path(phases_lookup_dir_path, platform_name, target_name, file_name,
                           existing=existing, root=root)
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """vman.lifecycle phase filters."""

    def filters(self):
        return {"phase_import_path": phase_import_path}
