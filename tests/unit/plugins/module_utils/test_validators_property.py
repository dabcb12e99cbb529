# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property tests of the validators hardened for issue 13 (items 2, 4, 7, 9).

Hostile input (control characters, NUL, path traversal, shell metacharacters, look-alike
Unicode, huge and negative integers, wrong types) may only ever be accepted or refused with a
:class:`ValidationError` naming the field: never a traceback, never a value that carries a
control character into a file, a unit name or a command line.
"""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ansible_collections.vman.lifecycle.plugins.module_utils import (  # noqa: E402
    _callback, _dracut, _install_seed, _libvirt, _lxc, _netconf, _rootfs, _spec, _sshkeys, _units,
    _vm_request, _vm_secret, _xen_vman)
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (  # noqa: E402
    ValidationError, bad_char, check_int, check_line, safe_repr)

SETTINGS = settings(max_examples=2000, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

HOSTILE = ["\n", "\r\n", "\r", "\x00", "\t", "\x0b", "\x1b[2J", "\x7f", "\x85", "\u2028",
           "\u2029", "\u202e", "\u2066", "../", "..", "/", "$(id)", "`id`", ";", "|", "&", ">",
           "'", '"', "\\", " ", "*", "{", "}", "%n", ":", ",", "=", "#", "-",
           "\uff0e",  # fullwidth full stop
           "\u0430",  # Cyrillic a
           "\u0131",  # dotless i
           "\u212a",  # Kelvin sign (folds to k)
           "\u00a0",  # no-break space
           "\u0663",  # Arabic-Indic digit three
           "\ud800",  # lone surrogate
           "\ufeff"]  # BOM
HUGE_INTS = [10 ** 5000, -10 ** 5000, 2 ** 63, -1, 0, 65537, 10 ** 9 + 1]

plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=0, max_size=12)
hostile_text = st.builds(lambda a, b, c: a + b + c, plain, st.sampled_from(HOSTILE), plain)
any_text = st.one_of(plain, hostile_text, st.text(max_size=20))
wrong_types = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.binary(max_size=6),
                        st.lists(plain, max_size=2), st.dictionaries(plain, plain, max_size=2))
ints = st.one_of(st.integers(), st.sampled_from(HUGE_INTS),
                 st.integers(min_value=-10 ** 6000, max_value=10 ** 6000))
anything = st.one_of(any_text, wrong_types, ints)


def outcome(call, value, field):
    """Run ``call(value)``: success, or a ValidationError naming ``field`` whose message is
    short and renders; return the result (None when refused)."""
    try:
        return call(value)
    except ValidationError as err:
        assert err.field == field or err.field.startswith(field), (err.field, field)
        text = str(err)
        assert len(text) < 1000
        return None


def accepted_clean(result, value):
    """An accepted string carries no control character."""
    if isinstance(value, str) and result is not None:
        assert bad_char(value) is None, repr(value)


#: validators of paths (or path-like words) given by the administrator: ".." may appear
PATHS = ("units.path", "xen_vman.xl_word")
NAME_VALIDATORS = [
    ("callback.vm", _callback.validate_vm, "vm"),
    ("sshkeys.hostname", _sshkeys.validate_hostname, "hostname"),
    ("netconf.hostname", lambda v: _netconf.check_hostname("p", v), "hostname"),
    ("vm_secret.name", lambda v: _vm_secret.check_name("acme-web", v) or v, "name"),
    ("units.path", lambda v: _units.check_path("mount_base", v), "mount_base"),
    ("dracut.version", lambda v: _dracut.check_version("kernel", v), "kernel"),
    ("libvirt.snapshot", lambda v: _libvirt.validate_snapshot_name("d", v), "name"),
    ("lxc.name", _lxc.validate_name, "name"),
    ("lxc.user", _lxc.validate_user, "users"),
    ("rootfs.user", _rootfs.check_user, "user"),
    ("install_seed.hostname", lambda v: _install_seed.seed_files(hostname=v) and v, "hostname"),
    ("xen_vman.xl_word", lambda v: _xen_vman.xl_conf_lines(
        {"xen_vman_default_network_script": v}) and v, "xen_vman_default_network_script"),
    ("vm_request.hypervisor", lambda v: _vm_request.validate_request(
        "web", "svc", {"hypervisor": v}) or v, "hypervisor"),
    ("vm_request.flavor", lambda v: _vm_request.validate_request(
        "web", "svc", {"flavor": v}) or v, "flavor"),
]


@pytest.mark.parametrize("case_id, call, field", NAME_VALIDATORS, ids=[c[0] for c in NAME_VALIDATORS])
@SETTINGS
@given(value=anything)
def test_name_validators(case_id, call, field, value):
    result = outcome(call, value, field)
    if result is not None and isinstance(value, str):
        assert bad_char(value) is None and "\n" not in value and "$(" not in value
        if case_id not in PATHS:
            assert ".." not in value.split("/") and ";" not in value and " " not in value


@SETTINGS
@given(value=anything)
def test_vm_request_count(value):
    result = outcome(lambda v: _vm_request.validate_request("web", "svc", {"count": v}) or v,
                     value, "count")
    if result is not None:
        assert 1 <= int(result) <= 64


@SETTINGS
@given(count=st.one_of(ints, wrong_types, any_text), start=st.one_of(st.just(1), ints))
def test_netconf_range_bounded(count, start):
    # a count that got through is small enough to expand (the cap), so run it only then
    try:
        checked = check_int("p", "ranges.count", count, 1, _netconf.MAX_RANGE_COUNT)
    except ValidationError:
        checked = None
    if checked is not None and checked > 50:
        count = 50
    try:
        out = _netconf.expand_range("p", {"hostname": "w{n}", "count": count, "start": start})
    except ValidationError as err:
        assert err.field in ("ranges.count", "ranges.start")
        assert len(str(err)) < 1000
    else:
        assert 1 <= len(out) <= _netconf.MAX_RANGE_COUNT


@SETTINGS
@given(value=anything)
def test_lxc_password_never_echoed(value):
    try:
        result = _lxc.validate_password(value, "c1")
    except ValidationError as err:
        assert err.field == "password" and err.value is None
        if isinstance(value, str) and len(value) >= 4:
            assert value not in str(err)
    else:
        assert result is None or ("\n" not in result and bad_char(result) is None)


@SETTINGS
@given(value=anything)
def test_free_text_check_line(value):
    result = outcome(lambda v: check_line("o", "comment", v, max_len=1024), value, "comment")
    accepted_clean(result, value)


SPEC_BASE = {"org": "acme", "name": "web", "os": {"type": "debian", "version": "12"},
             "interfaces": [{"ip": "10.0.0.15"}]}
SPEC_FIELDS = ["name", "org", "memory", "vcpus", "cpu_str", "filesystem", "cmdline", "spicepasswd"]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(SPEC_FIELDS + ["nfsroot_base"]), value=anything)
def test_spec_normalize(key, value):
    vm, defaults = dict(SPEC_BASE), {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}
    if key == "nfsroot_base":
        defaults[key] = value
    else:
        vm[key] = value
    try:
        spec = _spec.normalize(vm, defaults)
    except ValidationError as err:
        # a missing value is reported by what it misses (e.g. nfsroot_base None -> required)
        assert err.field in (key, "os.type", "nfsroot_base") or key == "name" or key == "org", \
            (err.field, key)
        assert len(str(err)) < 1000
    else:
        for fld in ("name", "org", "cpu_str", "filesystem", "cmdline", "nfsroot_base"):
            text = getattr(spec, fld)
            assert text is None or bad_char(str(text)) is None


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(anything, st.sampled_from([10 ** 5000, -10 ** 5000])))
def test_safe_repr_total(value):
    assert len(safe_repr(value)) < 200
