# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase file lookup: order, optional files, skipped levels, disk and list modes."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._phases import candidates, import_path

ALL = ["ph/deb/amd64/init.yaml", "ph/deb/init.yaml", "ph/init.yaml"]
# with the .yml spelling, in the original ansible_farm's order: directory by directory,
# .yaml before .yml
ALL_EXT = ["ph/deb/amd64/init.yaml", "ph/deb/amd64/init.yml", "ph/deb/init.yaml",
           "ph/deb/init.yml", "ph/init.yaml", "ph/init.yml"]


def test_candidates_most_specific_first():
    assert candidates("ph", "deb", "amd64", "init.yaml") == ALL_EXT


@pytest.mark.parametrize("file_name, first, second", [
    ("init.yaml", "ph/init.yaml", "ph/init.yml"),
    ("init.yml", "ph/init.yml", "ph/init.yaml"),
    ("init", "ph/init.yaml", "ph/init.yml"),
])
def test_both_yaml_extensions(file_name, first, second):
    assert candidates("ph", None, None, file_name) == [first, second]


@pytest.mark.parametrize("existing, expected", [
    (["ph/deb/init.yml"], "ph/deb/init.yml"),
    (["ph/deb/init.yml", "ph/deb/init.yaml"], "ph/deb/init.yaml"),       # .yaml first
    (["ph/deb/init.yml", "ph/init.yaml"], "ph/deb/init.yml"),            # more specific first
    (["ph/deb/amd64/init.yml", "ph/deb/init.yaml"], "ph/deb/amd64/init.yml"),
    (["ph/deb/init.YML"], None),
])
def test_yml_found(existing, expected):
    assert import_path("ph", "deb", "amd64", "init.yaml", existing=existing) == expected


def test_yml_found_on_disk(tmp_path):
    (tmp_path / "deb").mkdir()
    (tmp_path / "deb" / "main.yml").write_text("---\n")
    assert import_path(str(tmp_path), "deb", "amd64", "main.yaml") == str(tmp_path / "deb" / "main.yml")


@pytest.mark.parametrize("existing, expected", [
    (ALL, "ph/deb/amd64/init.yaml"),
    (ALL[1:], "ph/deb/init.yaml"),
    (ALL[2:], "ph/init.yaml"),
    ([ALL[0], ALL[2]], "ph/deb/amd64/init.yaml"),
    ([], None),
    (["ph/deb/amd64/main.yaml", "ph/other/init.yaml"], None),   # other file, other platform
    (["./ph/deb//init.yaml"], "ph/deb/init.yaml"),              # compared normalized
])
def test_first_existing_in_list(existing, expected):
    assert import_path("ph", "deb", "amd64", "init.yaml", existing=existing) == expected


@pytest.mark.parametrize("platform, target, expected", [
    (None, "amd64", ["ph/main.yaml", "ph/main.yml"]),
    ("", None, ["ph/main.yaml", "ph/main.yml"]),
    ("deb", None, ["ph/deb/main.yaml", "ph/deb/main.yml", "ph/main.yaml", "ph/main.yml"]),
    ("deb", "", ["ph/deb/main.yaml", "ph/deb/main.yml", "ph/main.yaml", "ph/main.yml"]),
])
def test_unset_levels_are_skipped(platform, target, expected):
    assert candidates("ph", platform, target, "main.yaml") == expected


@pytest.mark.parametrize("field, args", [
    ("platform_name", ("ph", "..", "amd64", "init.yaml")),
    ("target_name", ("ph", "deb", "a/b", "init.yaml")),
    ("file_name", ("ph", "deb", "amd64", "../init.yaml")),
    ("file_name", ("ph", "deb", "amd64", "")),
    ("phases_lookup_dir_path", ("", "deb", "amd64", "init.yaml")),
    ("platform_name", ("ph", 12, "amd64", "init.yaml")),
])
def test_bad_names_are_refused(field, args):
    with pytest.raises(ValidationError) as err:
        candidates(*args)
    assert err.value.field == field


def test_on_disk_with_root_returns_unprefixed_path(tmp_path):
    (tmp_path / "ph" / "deb").mkdir(parents=True)
    (tmp_path / "ph" / "deb" / "init.yaml").write_text("[]\n")
    (tmp_path / "ph" / "init.yaml").write_text("[]\n")
    assert import_path("ph", "deb", "amd64", "init.yaml", root=str(tmp_path)) == "ph/deb/init.yaml"
    assert import_path("ph", "deb", "amd64", "main.yaml", root=str(tmp_path)) is None


def test_on_disk_absolute_dir_ignores_directories(tmp_path):
    base = tmp_path / "ph"
    (base / "deb" / "amd64" / "init.yaml").mkdir(parents=True)   # a directory, not a file
    (base / "init.yaml").write_text("[]\n")
    assert import_path(str(base), "deb", "amd64", "init.yaml") == str(base / "init.yaml")


names = st.sampled_from(["deb", "fed", "amd64", "arm64"])


@given(platform=names, target=names, present=st.lists(st.booleans(), min_size=6, max_size=6))
def test_result_is_the_first_present_candidate(platform, target, present):
    paths = candidates("ph", platform, target, "x.yaml")
    existing = [p for p, here in zip(paths, present) if here]
    expected = next((p for p, here in zip(paths, present) if here), None)
    assert import_path("ph", platform, target, "x.yaml", existing=existing) == expected
