# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated secrets kept in the store until shown once (real SQLite store)."""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _vm_secret as vs
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite://{tmp_path}/lc.db") as s:
        s.create_vms([{"name": "vm1", "org": "acme", "flavor": "small", "backend": "lxc"},
                      {"name": "vm2", "org": "acme", "flavor": "small", "backend": "lxc"}])
        yield s


def test_generate_alphabet_length_and_minimum():
    value = vs.generate(30)
    assert len(value) == 30 and set(value) <= set(vs.ALPHABET)
    assert vs.generate(24) != vs.generate(24)
    with pytest.raises(ValidationError, match="length"):
        vs.generate(8)


def test_present_is_made_once_and_reused(store):
    first = vs.apply(store, "vm1", "root", "present")
    assert first["changed"] and len(first["value"]) == 24
    again = vs.apply(store, "vm1", "root", "present")
    assert not again["changed"] and again["value"] == first["value"]
    other = vs.apply(store, "vm2", "root", "present")
    assert other["value"] != first["value"]


def test_check_mode_returns_no_value_and_writes_nothing(store):
    res = vs.apply(store, "vm1", "root", "present", check=True)
    assert res["changed"] and "value" not in res
    assert not store.has_secret("vm1", "root")
    vs.apply(store, "vm1", "root", "present")
    assert not vs.apply(store, "vm1", "root", "present", check=True)["changed"]
    shown = vs.apply(store, "vm1", "root", "shown", check=True)
    assert shown["changed"] and "value" not in shown and store.has_secret("vm1", "root")


def test_shown_once_then_gone(store, tmp_path):
    made = vs.apply(store, "vm1", "root", "present")["value"]
    shown = vs.apply(store, "vm1", "root", "shown")
    assert shown["value"] == made and shown["changed"]
    with pytest.raises(StateError, match="VM 'vm1': secret 'root' is not in the store"):
        vs.apply(store, "vm1", "root", "shown")
    # gone from the file too, not only hidden
    rows = sqlite3.connect(str(tmp_path / "lc.db")).execute("SELECT * FROM vm_secrets").fetchall()
    assert rows == []


def test_absent_one_or_all(store):
    for name in ("root", "mysql_root"):
        vs.apply(store, "vm1", name, "present")
    assert vs.apply(store, "vm1", "root", "absent")["removed"] == ["root"]
    res = vs.apply(store, "vm1", None, "absent")
    assert res["removed"] == ["mysql_root"] and res["changed"]
    assert not vs.apply(store, "vm1", None, "absent")["changed"]


def test_errors_name_the_vm(store):
    with pytest.raises(StateError, match="VM 'nope' is not in the store"):
        vs.apply(store, "nope", "root", "present")
    with pytest.raises(ValidationError, match="VM 'vm1': field 'name' = 'Root!'"):
        vs.apply(store, "vm1", "Root!", "present")
