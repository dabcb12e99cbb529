# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of the vm_secret module (private, no stability promise).

A generated secret (the database or root password that postinstall sets in a new VM) lives
in the lifecycle store only until it is shown once: ``present`` makes it (or returns the one
stored), ``shown`` returns it and deletes it, ``absent`` deletes it unseen.
"""

from __future__ import annotations

import re
import secrets
import string

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError, as_text

ALPHABET = string.ascii_letters + string.digits
MIN_LENGTH = 12
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def generate(length=24, choice=secrets.choice) -> str:
    """A random password of ``length`` letters and digits (about 5.95 bits each)."""
    if length < MIN_LENGTH:
        raise ValidationError("vm_secret", "length", length, f"must be at least {MIN_LENGTH}")
    return "".join(choice(ALPHABET) for _index in range(length))


def check_name(vm, name):
    """A secret name: lower-case letters, digits and ``_`` (``root``, ``mysql_root``)."""
    if name is not None and not _NAME.fullmatch(as_text(name)):
        raise ValidationError(f"VM '{vm}'", "name", name, "must match " + _NAME.pattern)
    return name


def apply(store, vm, name, state, length=24, check=False) -> dict:
    """What vm_secret returns; ``value`` only for ``present``/``shown`` outside check mode."""
    check_name(vm, name)
    if store.get_vm(vm) is None:
        raise StateError(f"VM '{vm}' is not in the store")
    result = {"vm": vm, "name": name, "changed": False}
    if state == "present":
        if check:
            result["changed"] = not store.has_secret(vm, name)
            return result
        value, created = store.put_secret(vm, name, lambda: generate(length))
        result.update(changed=created, value=value)
    elif state == "shown":
        value = store.take_secret(vm, name, check=check)
        if value is None:
            raise StateError(f"VM '{vm}': secret '{name}' is not in the store (never made, or "
                             "already shown once)")
        result["changed"] = True
        if not check:
            result["value"] = value
    else:
        removed = store.drop_secrets(vm, name, check=check)
        result.update(changed=bool(removed), removed=removed)
    return result
