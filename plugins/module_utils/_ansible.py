# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between our module_utils and AnsibleModule (private, no stability promise).

Error handling is written once here: a module's ``main()`` runs its body inside
:func:`errors_to_fail_json`, so helpers only raise :class:`VmanError` subclasses.
"""

from __future__ import annotations

import contextlib

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import is_secret_key, redact


@contextlib.contextmanager
def errors_to_fail_json(module):
    """Turn our exceptions into ``module.fail_json`` with their structured fields."""
    try:
        yield
    except VmanError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())


def require(module, available: bool, library: str, error=None):
    """``fail_json`` with Ansible's standard text when a Python library is missing."""
    if not available:
        module.fail_json(msg=missing_required_lib(library), exception=error)


def hide_vm_secrets(module):
    """Register the secrets of the VM specs in ``module.params['vms']`` as ``no_log`` values.

    A VM dict sits in a plain ``list`` option, so Ansible would echo its ``spicepasswd`` in the
    invocation and in any result that repeats it; every module that takes VM specs calls this.
    """
    for vm in module.params.get("vms") or ():
        if isinstance(vm, dict) and vm.get("spicepasswd"):
            module.no_log_values.add(str(vm["spicepasswd"]))


def hide_spec_secrets(module, *specs):
    """Register the secrets in free-form spec dicts (vm_pool's ``flavors[].spec``, vm_request's
    ``spec``) as ``no_log`` values: the value of every secret-named key (``_fleet.is_secret_key``,
    at any depth) and every private key block.

    A ``type=dict`` option without suboptions cannot mark a key no_log, so Ansible echoed the
    whole spec, passwords included, in the invocation that ``-vvv`` prints.
    """
    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from leaves(item)
        elif value is not None and not isinstance(value, bool) and str(value):
            yield str(value)

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if is_secret_key(key):
                    module.no_log_values.update(leaves(item))
                else:
                    walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value and not redact([value]):  # private key material
            module.no_log_values.add(value)

    for spec in specs:
        walk(spec)
