# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""README.md for the collection's users: its two set-up commands first, and a plugin table that
lists exactly the modules, inventory plugins, filters and roles the collection has, each with
the short description ``ansible-doc`` shows."""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ROW = re.compile(r"\| `vman\.lifecycle\.(?P<name>[a-z0-9_]+)` \| (?P<kind>[a-z]+) \| (?P<what>.+) \|")
KINDS = ("module", "inventory", "filter", "role")


def _table():
    section = README.split("\n## Plugins\n", 1)[1].split("\n## ", 1)[0]
    rows = [ROW.fullmatch(line) for line in section.splitlines() if line.startswith("| `")]
    assert all(rows), [line for line in section.splitlines() if line.startswith("| `")]
    return [(m["kind"], m["name"], m["what"]) for m in rows]


def _filter_names():
    names = []
    for path in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        mod = importlib.import_module("ansible_collections.vman.lifecycle.plugins.filter." + path.stem)
        names += list(mod.FilterModule().filters())
    return names


def _on_disk():
    """The plugins as files and code define them (not as documented: an undocumented one counts)."""
    plugins = ROOT / "plugins"
    return {
        "module": sorted(p.stem for p in (plugins / "modules").glob("*.py") if not p.stem.startswith("_")),
        "inventory": sorted(p.stem for p in (plugins / "inventory").glob("*.py") if not p.stem.startswith("_")),
        "filter": sorted(_filter_names()),
        "role": sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()),
    }


def _short_descriptions(kind):
    """``ansible-doc -t KIND -l vman.lifecycle --json``: name -> short description."""
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-t", kind,
                           "-l", "vman.lifecycle", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    listed = json.loads(proc.stdout)
    if kind == "role":
        listed = {name: entry["entry_points"]["main"] for name, entry in listed.items()}
    # ansible-doc markup C(x) is `x` in the README's Markdown
    return {name.rsplit(".", 1)[1]: re.sub(r"C\(([^)]*)\)", r"`\1`", what)
            for name, what in listed.items()}


def test_readme_starts_with_its_two_commands():
    lines = README.splitlines()
    assert lines[0] == "# vman.lifecycle"
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in block] == [["make", "demo"], ["make", "test"]]
    assert README.index("```sh") < README.index("\n## ")


def test_table_lists_exactly_what_exists():
    table = _table()
    assert len(table) == len({(k, n) for k, n, w in table}), "a plugin listed twice"
    for kind in KINDS:
        listed = sorted(n for k, n, w in table if k == kind)
        assert listed == _on_disk()[kind], kind
    assert {k for k, n, w in table} == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_table_says_what_ansible_doc_says(kind):
    documented = _short_descriptions(kind)
    assert sorted(documented) == _on_disk()[kind], f"{kind}: documented and existing differ"
    rows = {n: w for k, n, w in _table() if k == kind}
    wrong = {n: (rows[n], documented[n]) for n in rows if rows[n] != documented[n]}
    assert not wrong, f"README row != ansible-doc short description: {wrong}"


def test_developer_material_lives_in_docs_development():
    dev = (ROOT / "docs" / "development.md").read_text()
    for topic in ("TEST_STAGES", "Layout of the build folder", "scripts/stages.sh", "retried"):
        assert topic in dev, topic
        assert topic not in README, topic
