# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hide_vm_secrets, with a stand-in for AnsibleModule (only ``params`` and ``no_log_values``)."""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import hide_vm_secrets


class FakeModule:
    """Not AnsibleModule: the two attributes hide_vm_secrets touches."""

    def __init__(self, vms):
        self.params = {"vms": vms}
        self.no_log_values = set()


def test_spice_passwords_become_no_log_values():
    module = FakeModule([{"name": "a", "spicepasswd": "s3cret"}, {"name": "b"}, "not a dict",
                         {"name": "c", "spicepasswd": 1234}])
    hide_vm_secrets(module)
    assert module.no_log_values == {"s3cret", "1234"}


def test_no_vms_is_fine():
    module = FakeModule(None)
    hide_vm_secrets(module)
    assert module.no_log_values == set()
