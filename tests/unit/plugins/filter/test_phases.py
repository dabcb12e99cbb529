# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phase_import_path filter through Ansible's templar, as a playbook would use it."""

from __future__ import annotations

import os
import sys

import pytest
from ansible.errors import AnsibleError
from ansible.template import Templar
try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates every string it is given; nothing to mark
    def trust_as_template(value):
        return value
from ansible.parsing.dataloader import DataLoader
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

from ansible_collections.vman.lifecycle.plugins.filter.phases import FilterModule


def test_filter_is_registered():
    assert "phase_import_path" in FilterModule().filters()


COLLECTIONS = os.path.join(os.path.dirname(__file__), *[".."] * 4, "build", "collections")


@pytest.fixture(autouse=True, scope="module")
def collection_finder():
    """Let the templar resolve vman.lifecycle.* the way ansible-playbook does.

    pytest imported ``ansible_collections`` as a plain package (pytest.ini pythonpath); Ansible's
    finder only serves it when it imports the package itself, so hide those modules meanwhile.
    """
    saved = {k: sys.modules.pop(k) for k in list(sys.modules)
             if k == "ansible_collections" or k.startswith("ansible_collections.")}
    _AnsibleCollectionFinder(paths=[os.path.abspath(COLLECTIONS)])._install()
    yield
    _AnsibleCollectionFinder._remove()
    for k in [k for k in sys.modules if k == "ansible_collections" or k.startswith("ansible_collections.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def _render(expr, **variables):
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(expr))


def test_templar_finds_platform_file(tmp_path):
    (tmp_path / "debian_12").mkdir()
    (tmp_path / "debian_12" / "main.yaml").write_text("[]\n")
    (tmp_path / "main.yaml").write_text("[]\n")
    got = _render("{{ d | vman.lifecycle.phase_import_path('debian_12', 'amd64', 'main.yaml') }}",
                  d=str(tmp_path))
    assert got == str(tmp_path / "debian_12" / "main.yaml")


def test_templar_none_when_missing(tmp_path):
    got = _render("{{ d | vman.lifecycle.phase_import_path('debian_12', 'amd64', 'init.yaml') is none }}",
                  d=str(tmp_path))
    assert got is True


def test_bad_name_is_a_filter_error():
    with pytest.raises(AnsibleError, match="platform_name"):
        _render("{{ 'ph' | vman.lifecycle.phase_import_path('../x', 'amd64', 'init.yaml', existing=[]) }}")
