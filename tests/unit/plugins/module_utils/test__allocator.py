# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The external allocator hook, run against a small real allocator script."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _allocator as al
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    CommandError, StateError, ValidationError)

SCRIPT = textwrap.dedent('''\
    import json, sys
    doc = json.load(sys.stdin)
    mode = sys.argv[1]
    hosts = [h["name"] for h in doc["hosts"] if h["state"] == "enabled"]
    names = [v["name"] for v in doc["vms"]]
    # round-robin over the enabled hosts, as ansible_farm's vm_dispatcher did
    placement = {n: hosts[i % len(hosts)] for i, n in enumerate(names)}
    if mode == "echo":
        json.dump({"placement": placement, "seen": doc}, sys.stdout)
    elif mode == "good":
        json.dump({"placement": placement, "info": "rr"}, sys.stdout)
    elif mode == "missing":
        placement.pop(names[0]); json.dump({"placement": placement}, sys.stdout)
    elif mode == "extra":
        placement["ghost"] = hosts[0]; json.dump({"placement": placement}, sys.stdout)
    elif mode == "unknown":
        placement[names[0]] = "nowhere"; json.dump({"placement": placement}, sys.stdout)
    elif mode == "one-host":
        json.dump({"placement": {n: hosts[0] for n in names}}, sys.stdout)
    elif mode == "dup":
        sys.stdout.write('{"placement": {"%s": "%s", "%s": "%s"}}' % (names[0], hosts[0], names[0], hosts[1]))
    elif mode == "text":
        print("placed everything, trust me")
    elif mode == "list":
        json.dump([placement], sys.stdout)
    else:
        print("allocator: cannot reach the CMDB", file=sys.stderr); sys.exit(3)
''')

HOSTS = [{"name": n, "kind": "xen", "capacity": {"memory": 4096, "vcpus": 4}} for n in ("a", "b")]
HOSTS.append({"name": "c", "kind": "xen", "state": "unreachable", "capacity": {"memory": 4096, "vcpus": 4}})
VMS = [{"name": f"v{i}", "memory": 1024} for i in range(4)]


@pytest.fixture
def allocator(tmp_path):
    path = tmp_path / "alloc.py"
    path.write_text(SCRIPT)
    return lambda mode: [sys.executable, str(path), mode]


def test_good_answer_is_used_and_the_request_document_is_complete(allocator):
    assert al.place_external(allocator("good"), HOSTS, VMS, headroom="none") == \
        {"v0": "a", "v1": "b", "v2": "a", "v3": "b"}
    doc = al.request_document(HOSTS, VMS)
    assert doc["version"] == 1 and doc["request"] == {"type": "allocate", "headroom": "n+1"}
    assert [h["state"] for h in doc["hosts"]] == ["enabled", "enabled", "unreachable"]
    assert doc["hosts"][0]["capacity"]["vcpu_ratio"] == 1.0
    assert [v["name"] for v in doc["vms"]] == ["v0", "v1", "v2", "v3"]
    json.dumps(doc)


@pytest.mark.parametrize("mode, message", [
    ("missing", "left VM v0 without a host"),
    ("extra", "placed 'ghost', which is not a VM of the batch"),
    ("unknown", "put VM v0 on 'nowhere', which is not a known hypervisor"),
    ("one-host", "put VM v4 on a, where it does not fit: memory: 0 MiB free, the VM needs 1024"),
    ("dup", "did not print a JSON placement: the key 'v0' appears twice"),
    ("text", "did not print a JSON placement"),
    ("list", "not an object with a 'placement' mapping"),
])
def test_bad_answers_are_refused_with_a_clear_error(allocator, mode, message):
    with pytest.raises(StateError) as err:
        al.place_external(allocator(mode), HOSTS, VMS + [{"name": "v4", "memory": 1024}]
                          if mode == "one-host" else VMS, headroom="none")
    assert message in str(err.value)
    assert "alloc" in str(err.value) or sys.executable in str(err.value)


def test_the_headroom_applies_to_the_answer(allocator):
    with pytest.raises(StateError, match="N\\+1 headroom"):
        al.place_external(allocator("good"), HOSTS, VMS + [{"name": "v4", "memory": 1024}])


def test_a_failing_allocator_is_a_command_error(allocator):
    with pytest.raises(CommandError) as err:
        al.place_external(allocator("fail"), HOSTS, VMS)
    assert err.value.rc == 3 and "cannot reach the CMDB" in str(err.value)


@pytest.mark.parametrize("argv, field", [
    ("/usr/bin/alloc --json", "allocator_command"),
    ([], "allocator_command"),
    (["alloc", "a\nb"], "allocator_command[1]"),
    ([""], "allocator_command[0]"),
])
def test_command_must_be_an_argv_list(argv, field):
    with pytest.raises(ValidationError) as err:
        al.check_command(argv)
    assert err.value.field == field
