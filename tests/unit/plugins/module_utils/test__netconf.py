# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._netconf import normalise


def test_range_expansion_and_normalisation():
    got = normalise("p", entries=[{"hostname": "mail.example.org", "ipv6": "2001:DB8:0::1"}],
                    ranges=[{"hostname": "web{n:02d}.example.org", "ipv4": "192.0.2.254",
                             "ipv6": "2001:db8::ffff", "count": 3, "start": 9}])
    assert got == [
        {"hostname": "mail.example.org", "ipv4": None, "ipv6": "2001:db8::1"},
        {"hostname": "web09.example.org", "ipv4": "192.0.2.254", "ipv6": "2001:db8::ffff"},
        {"hostname": "web10.example.org", "ipv4": "192.0.2.255", "ipv6": "2001:db8::1:0"},
        {"hostname": "web11.example.org", "ipv4": "192.0.3.0", "ipv6": "2001:db8::1:1"},
    ]


@pytest.mark.parametrize("entry,field,value", [
    ({"hostname": "Bad_Name"}, "hostname", "Bad_Name"),
    ({"hostname": "-x.example"}, "hostname", "-x.example"),
    ({"hostname": "a", "ipv4": "192.0.2"}, "ipv4", "192.0.2"),       # inet_aton would accept it
    ({"hostname": "a", "ipv4": "2001:db8::1"}, "ipv4", "2001:db8::1"),
    ({"hostname": "a", "ipv6": "192.0.2.1"}, "ipv6", "192.0.2.1"),
    ({"hostname": "a", "ipv6": "2001:db8::g"}, "ipv6", "2001:db8::g"),
])
def test_invalid_values_are_named(entry, field, value):
    with pytest.raises(ValidationError) as err:
        normalise("prod", entries=[entry])
    assert (err.value.field, err.value.value) == (field, value)
    assert str(err.value).startswith(f"netconf pool 'prod': field '{field}' = {value!r}")


def test_duplicates_rejected_naming_the_value():
    with pytest.raises(ValidationError, match=r"field 'ipv6' = '2001:db8::2': given twice "
                                              r"\(entries 'a' and 'web2'\)"):
        normalise("p", entries=[{"hostname": "a", "ipv6": "2001:db8:0:0::2"}],
                  ranges=[{"hostname": "web{n}", "ipv6": "2001:db8::1", "count": 2}])
    with pytest.raises(ValidationError, match="'hostname' = 'a': given twice"):
        normalise("p", entries=[{"hostname": "a"}, {"hostname": "a"}])


@pytest.mark.parametrize("rng,field", [
    ({"hostname": "web", "count": 2}, "ranges.hostname"),
    ({"hostname": "web{n}{n}", "count": 2}, "ranges.hostname"),
    ({"hostname": "web{n.__class__}", "count": 2}, "ranges.hostname"),
    ({"hostname": "web{n}", "count": 0}, "ranges.count"),
    ({"hostname": "web{n}", "count": 3, "ipv4": "255.255.255.254"}, "ranges.ipv4"),
])
def test_bad_ranges(rng, field):
    with pytest.raises(ValidationError) as err:
        normalise("p", ranges=[rng])
    assert err.value.field == field
