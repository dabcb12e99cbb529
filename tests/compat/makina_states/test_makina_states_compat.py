# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""makina-states (seed 001) users: their pillar, settings and profile names through our LXC code.

The fixtures are seed 001's documented examples re-typed as data. Each test says which line of
docs/migrating-from-makina-states.md it checks. No LXC is needed: the specs are validated,
resolved against an empty lxcpath and a real settings directory, and their settings rendered.
"""

from __future__ import annotations

import itertools
import os

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.filter.lxc import lxc_profile_name
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc_provision as prov
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

HERE = os.path.dirname(__file__)
TARGETS = "makina-states.services.cloud.lxc.targets."


def _load(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _pillar():
    """``{compute node: {container: entry}}`` from the seed's pillar keys."""
    return {key[len(TARGETS):]: value for key, value in _load("pillar_devhost10.yml").items()}


def _converted(containers):
    """The migration page's conversion: salt keys dropped, gfoobar2's repeated IP changed."""
    out = {}
    for name, entry in containers.items():
        entry = {k: v for k, v in (entry or {}).items() if k not in prov.SALT_KEYS}
        if name == "gfoobar2.test.coma":
            entry["ip"] = "10.5.10.18"
        out[name] = entry
    return out


def _manager(tmp_path, host_id, **kwargs):
    return _lxc.LxcGuestManager(_lxc.LxcBackend(tmp_path / "lxc"),
                                _lxc.SettingsStore(tmp_path / "settings"), host_id=host_id,
                                check_mode=True, **kwargs)


def _specs(containers, **defaults):
    entries = prov.guest_entries(containers)
    return _lxc.build_specs(entries, dict({"from_container": "makina-states-precise"}, **defaults))


# ---- the pillar ------------------------------------------------------------------------------

def test_pillar_salt_keys_are_refused_with_an_explanation():
    """Doc: `mode`, `bootsalt_branch`, ... refused with an explanation."""
    (containers,) = _pillar().values()
    with pytest.raises(ValidationError, match="salt option") as info:
        prov.guest_entries(containers)
    assert "mode" in str(info.value)
    for key in ("mode", "bootsalt_branch", "script_args", "master", "master_port"):
        with pytest.raises(ValidationError, match=key):
            prov.guest_entries({"a.test.com": {key: "x"}})


def test_pillar_repeated_ip_of_the_seed_is_refused(tmp_path):
    """Doc: the seed's example gives gfoobar3 and gfoobar2 both 10.5.10.17: refused."""
    (host, containers), = _pillar().items()
    containers = {k: {x: y for x, y in (v or {}).items() if x not in prov.SALT_KEYS}
                  for k, v in containers.items()}
    specs = _specs(containers)
    with pytest.raises(ValidationError, match="already used") as info:
        _manager(tmp_path, host).resolve(specs)
    assert "10.5.10.17" in str(info.value) and "gfoobar2.test.coma" in str(info.value)


def test_pillar_converted_is_accepted_and_named_as_the_original_names_it(tmp_path):
    """Doc: the converted example and its profiles; an empty entry is all generated."""
    (host, containers), = _pillar().items()
    specs = _specs(_converted(containers))
    _manager(tmp_path, host).resolve(specs)
    by_name = {s.name: s for s in specs}
    assert list(by_name) == list(containers)           # every container, in the pillar's order
    profiles = {n: s.settings(host)["profile"] for n, s in by_name.items()}
    assert profiles == {
        "mysupertest3.foo.com": "ms-devhost10-local-medium-lvm",
        "gfoobar.test.com": "ms-devhost10-local-small-lvm",
        "gfoobar4.test.com": "ms-devhost10-local-small-lvm",
        "gfoobar3.test.com": "ms-devhost10-local-dir",
        "gfoobar2.test.coma": "ms-devhost10-local-dir-scratch",
    }
    empty = by_name["mysupertest3.foo.com"]
    assert empty.generated == ["ip", "mac", "password"]
    assert empty.ip not in {s.ip for s in specs if s is not empty}
    assert empty.mac.startswith("00:16:3e:")
    gfoobar = by_name["gfoobar.test.com"].settings(host)
    assert (gfoobar["ip"], gfoobar["password"], gfoobar["size"], gfoobar["backing"]) == (
        "10.5.10.16", "foobar", "5g", "lvm")
    assert by_name["gfoobar3.test.com"].settings(host)["from_container"] == "makina-states-precise"
    assert by_name["gfoobar2.test.coma"].settings(host)["from_container"] is None


def test_pillar_clone_without_a_reference_container_is_an_error():
    """Doc: there is no built-in reference container (makina-states-precise); name yours."""
    with pytest.raises(ValidationError, match="from_container"):
        _lxc.build_specs(prov.guest_entries({"gfoobar.test.com": {"profile_type": "lvm"}}), {})


# ---- the per-VM settings ---------------------------------------------------------------------

def test_settings_example_renders_the_same_keys_and_values():
    """Doc: the settings file keeps the original's names; network + netmask as the seed shows."""
    data = _load("settings_nmdcarto51.yml")
    want = data["settings"]
    spec = _lxc.build_spec(_lxc.merge_entry({
        "name": want["name"], "profile_type": want["backing"], "from_container": want["from_container"],
        "ip": want["ip"], "mac": want["mac"]}, {}))
    got = spec.settings(data["compute_node"])
    assert {k: got[k] for k in want} == want


def test_settings_defaults_that_differ_from_the_original():
    """Doc: dnsservers none (not 8.8.8.8, 4.4.4.4), users root only, image debian, lvm type."""
    spec = _lxc.build_spec(_lxc.merge_entry({"name": "a.test.com", "from_container": "base"}, {}))
    got = spec.settings("devhost10.local")
    assert got["dnsservers"] == [] and got["users"] == ["root"]
    assert spec.image == "debian" and spec.ptype.name == "lvm" and spec.profile == "medium"
    for key in ("netmask", "backing", "size", "vgname", "ssh_gateway", "domains", "fstab"):
        with pytest.raises(ValidationError, match="unknown option"):
            prov.guest_entries({"a.test.com": {key: "x"}})


# ---- sizes and profile types ----------------------------------------------------------------

def test_size_profiles_are_the_originals():
    """Doc: the size table is the original's."""
    assert _lxc.SIZES == _load("sizes.yml")


def test_misspelt_lvm_sratch_is_refused_listing_the_types():
    """Doc: `lvm-sratch` refused, the error lists the types."""
    with pytest.raises(ValidationError, match="lvm-scratch"):
        _lxc.parse_profile_type("lvm-sratch")


def test_lvm_scratch_is_really_on_lvm():
    """Doc: the original made `lvm-scratch` a dir/overlayfs container; here it is LVM."""
    spec = _lxc.build_spec(_lxc.merge_entry({"name": "a.test.com", "profile_type": "lvm-scratch",
                                             "profile": "small"}, {}))
    got = spec.settings("h")
    assert (got["backing"], got["size"], spec.size) == ("lvm", "5g", "5g")


# ---- profile names ---------------------------------------------------------------------------

def _makina_oracle(target, profile_type, size):
    """makina-states' naming as the migration page states it: ``ms-<target>[-<size>]-<type>``
    with the size left out for types naming overlayfs, dir or scratch, then '.' -> '-'."""
    sized = not any(word in profile_type for word in ("overlayfs", "dir", "scratch"))
    name = "ms-" + target + ("-" + size if sized else "") + "-" + profile_type
    return name.replace(".", "-")


HOSTS = ["devhost10.local", "Dev_Host10.Example.ORG", "node_1", "a.b.c.d", "x-y.z"]


@pytest.mark.parametrize("host, ptype, size", list(itertools.product(
    HOSTS, _lxc.PROFILE_TYPES, ["small", "xxxtrem", "xxxsmall"])))
def test_profile_names_are_the_originals(host, ptype, size):
    """Doc: default style = the original's encoding and size placement."""
    want = _makina_oracle(host, ptype, size)
    assert _lxc.profile_name(host, ptype, size) == want
    assert lxc_profile_name(host, ptype, size) == want
    spec = _lxc.build_spec(_lxc.merge_entry({"name": "a.test.com", "profile_type": ptype,
                                             "profile": size, "from_container": "base"}, {}))
    assert spec.settings(host)["profile"] == want


@pytest.mark.parametrize("ptype, makina, normalized", [
    ("lvm", "ms-devhost10-local-small-lvm", "ms-devhost10-local-small-lvm"),
    ("lvm-scratch", "ms-devhost10-local-lvm-scratch", "ms-devhost10-local-small-lvm-scratch"),
    ("btrfs", "ms-devhost10-local-small-btrfs", "ms-devhost10-local-btrfs"),
    ("zfs", "ms-devhost10-local-small-zfs", "ms-devhost10-local-zfs"),
    ("dir", "ms-devhost10-local-dir", "ms-devhost10-local-dir"),
    ("overlayfs-scratch", "ms-devhost10-local-overlayfs-scratch",
     "ms-devhost10-local-overlayfs-scratch"),
])
def test_profile_name_table_of_the_migration_page(ptype, makina, normalized):
    """Doc: the table for devhost10.local and size profile small, both styles."""
    spec = _lxc.build_spec(_lxc.merge_entry({"name": "a.test.com", "profile_type": ptype,
                                             "profile": "small", "from_container": "base"}, {}))
    assert spec.settings("devhost10.local", "makina-states")["profile"] == makina
    assert spec.settings("devhost10.local", "normalized")["profile"] == normalized


def test_profile_name_case_and_underscore_kept_unlike_normalized():
    """Doc: `.` -> `-`, case and `_` kept; normalized lower-cases."""
    assert lxc_profile_name("Dev_Host10.local", "dir") == "ms-Dev_Host10-local-dir"
    assert lxc_profile_name("Dev_Host10.local", "dir", style="normalized") == "ms-dev-host10-local-dir"


@pytest.mark.parametrize("host", ["dev host.local", "a/b", "tab\there", "caf\u00e9.local"])
def test_profile_name_host_ids_the_original_wrote_blindly_are_refused(host, tmp_path):
    """Doc: a host id with a space, `/`, control or non-ASCII characters is an error naming
    host_id (use normalized)."""
    with pytest.raises(ValidationError, match="host_id"):
        _lxc.profile_name(host, "dir")
    with pytest.raises(ValidationError, match="host_id"):
        _manager(tmp_path, host)
    assert _lxc.profile_name(host, "dir", style="normalized").startswith("ms-")


def test_manager_records_the_chosen_style_in_results(tmp_path):
    """Doc: `lxc_guest` returns the profile and stores it in the settings file."""
    spec = _lxc.build_spec(_lxc.merge_entry({"name": "a.test.com", "profile_type": "dir-scratch"},
                                            {}))
    results, _diffs, _changed = _manager(tmp_path, "Dev_Host10.local").converge([spec])
    assert results[0]["profile"] == "ms-Dev_Host10-local-dir-scratch"
    results, _diffs, _changed = _manager(tmp_path, "Dev_Host10.local",
                                         profile_name_style="normalized").converge([spec])
    assert results[0]["profile"] == "ms-dev-host10-local-dir-scratch"
