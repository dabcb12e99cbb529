# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LXC naming filters over the pure functions of module_utils/_lxc.py (thin wrappers).

Documented in the sidecar files lxc_profile_name.yml and lxc_size.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc


def lxc_profile_name(host_id, profile_type, size=None, style=_lxc.DEFAULT_PROFILE_NAME_STYLE):
    """``ms-<encoded host id>[-<size>]-<type>``."""
    try:
        return _lxc.profile_name(host_id, profile_type, size, style)
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def lxc_size(profile):
    """Size profile -> size (``small`` -> ``5g``)."""
    try:
        return _lxc.lxc_size(profile)
    except VmanError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """vman.lifecycle LXC filters."""

    def filters(self):
        return {"lxc_profile_name": lxc_profile_name, "lxc_size": lxc_size}
