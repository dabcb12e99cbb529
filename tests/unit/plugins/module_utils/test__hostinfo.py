# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host capacity parsers against real sample outputs (hostinfo_samples/README.md), the
gatherers against this machine (LXC host) and libvirt's test driver, and the parallel
refresh with its deadline."""

from __future__ import annotations

import pathlib
import time

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _hostinfo as hi
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

SAMPLES = pathlib.Path(__file__).parent / "hostinfo_samples"


def _sample(name):
    return (SAMPLES / name).read_text()


def test_xl_info_sample_from_the_manual():
    info = hi.parse_xl_info(_sample("xl-info.txt"))
    assert info["total_memory"] == "6141" and info["free_memory"] == "4274"
    assert info["nr_cpus"] == "4"
    assert info["xen_changeset"].endswith("24066:54a5e994a241")   # a value holding ':'
    assert hi.xen_caps(info["xen_caps"]) == (["i686", "x86_64"], ["hvm", "pv", "pvh"])


def test_xl_list_sample_from_the_manual_leaves_dom0_out():
    assert hi.parse_xl_list(_sample("xl-list.txt")) == {
        "win": {"memory": 1019, "vcpus": 1}, "linux": {"memory": 2048, "vcpus": 2}}
    spaced = "Name ID Mem VCPUs State Time(s)\nmy guest  7  512  1  -b----  1.0\n"
    assert hi.parse_xl_list(spaced) == {"my guest": {"memory": 512, "vcpus": 1}}


def test_xen_facts_count_free_plus_domus():
    facts = hi.xen_facts(_sample("xl-info.txt"), _sample("xl-list.txt"))
    assert facts["capacity"] == {"memory": 4274 + 1019 + 2048, "vcpus": 4,
                                 "arches": ["i686", "x86_64"], "domain_types": ["hvm", "pv", "pvh"]}
    assert facts["use"] == {"memory": 3067, "vcpus": 3, "guests": 2}


@pytest.mark.parametrize("text, message", [
    ("host : x\n", "xl info printed no total_memory line"),
    ("Name ID\n", None),
])
def test_xl_info_and_list_refuse_other_text(text, message):
    with pytest.raises(hi.HostInfoError) as err:
        hi.parse_xl_info(text)
    if message:
        assert message in str(err.value)
    with pytest.raises(hi.HostInfoError):
        hi.parse_xl_list("error: cannot connect\n")
    with pytest.raises(hi.HostInfoError, match="unexpected line"):
        hi.parse_xl_list("Name ID Mem VCPUs State Time(s)\nbroken line\n")


def test_libvirt_capabilities_captured_from_the_test_driver():
    assert hi.parse_capabilities(_sample("libvirt-test-capabilities.xml")) == (["i686"], ["test"])
    with pytest.raises(hi.HostInfoError, match="not XML"):
        hi.parse_capabilities("<capabilities>")


def test_libvirt_capabilities_of_a_kvm_host():
    """Hand-written in the shape of a qemu:///system answer (no libvirtd on this machine)."""
    xml = ("<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
           "<guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/>"
           "<domain type='kvm'/></arch></guest>"
           "<guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest>"
           "</capabilities>")
    assert hi.parse_capabilities(xml) == (["i686", "x86_64"], ["kvm", "qemu"])


def test_libvirt_gather_from_the_real_test_driver():
    libvirt = pytest.importorskip("libvirt")
    del libvirt
    facts = hi.gather_libvirt({"uri": "test:///default"}, 10)
    # test:///default: 3072 MiB, 16 CPUs; its one running domain "test" has 2 GiB, 2 vCPUs
    assert facts["capacity"] == {"memory": 3072, "vcpus": 16, "arches": ["i686"],
                                 "domain_types": ["test"]}
    assert facts["use"] == {"memory": 2048, "vcpus": 2, "guests": 1}


def test_meminfo_captured_and_sizes():
    assert hi.parse_meminfo(_sample("meminfo.txt")) > 1024
    with pytest.raises(hi.HostInfoError):
        hi.parse_meminfo("MemFree: 1 kB\n")
    assert [hi.parse_size(v) for v in ("512M", "2G", "1073741824", "max", "-1", "524288K")] == \
        [512, 2048, 1024, None, None, 512]
    with pytest.raises(hi.HostInfoError):
        hi.parse_size("lots")
    assert [hi.cpuset_size(v) for v in ("0", "0-3", "0-1,4,6-7")] == [1, 4, 5]


def test_container_limits_from_grep_lines():
    grep = ("/var/lib/lxc/web1/config:lxc.cgroup2.memory.max = 512M\n"
            "/var/lib/lxc/web1/config:lxc.cgroup2.cpuset.cpus = 0-1\n"
            "/var/lib/lxc/old/config:lxc.cgroup.memory.limit_in_bytes = 1G\n"
            "/var/lib/lxc/stopped/config:lxc.cgroup2.memory.max = 8G\n")
    limits = hi.parse_container_limits(grep, ["web1", "old", "free"])
    assert limits == {"web1": {"memory": 512, "vcpus": 2}, "old": {"memory": 1024, "vcpus": None},
                      "free": {"memory": None, "vcpus": None}}
    facts = hi.lxc_facts(_sample("meminfo.txt"), "4\n", "x86_64\n", limits)
    assert facts["use"] == {"memory": 1536, "vcpus": 2 + 4 + 4, "guests": 3, "unlimited": ["free"]}
    assert facts["capacity"]["domain_types"] == ["lxc"] and facts["capacity"]["vcpus"] == 4


def test_lxc_gather_on_this_machine(tmp_path):
    facts = hi.gather_lxc({"lxc_path": str(tmp_path)}, 20)
    with open("/proc/meminfo", encoding="utf-8") as fh:
        assert facts["capacity"]["memory"] == hi.parse_meminfo(fh.read())
    assert facts["capacity"]["vcpus"] >= 1
    assert facts["use"] == {"memory": 0, "vcpus": 0, "guests": 0, "unlimited": []}


@pytest.mark.parametrize("kind, access, field", [
    ("xen", {"uri": "qemu:///system"}, "access.uri"),
    ("xen", {"ssh": "-oProxyCommand=x"}, "access.ssh"),
    ("xen", {"ssh": "root@a b"}, "access.ssh"),
    ("lxc", {"ssh_args": ["-p", "22"]}, "access.ssh_args"),
    ("lxc", {"lxc_path": "relative"}, "access.lxc_path"),
    ("libvirt", {"uri": "qemu:///system\n"}, "access.uri"),
])
def test_check_access_names_the_key(kind, access, field):
    with pytest.raises(ValidationError) as err:
        hi.check_access("h", kind, access)
    assert err.value.field == field


def test_refresh_all_parallel_with_one_deadline_and_failures():
    """Fake gatherers (named so): one fast, one raising, one slower than the deadline."""
    def fake_fast(access, timeout):
        return {"capacity": {"memory": 1}, "use": {}}

    def fake_broken(access, timeout):
        raise hi.HostInfoError("xl info printed no nr_cpus line")

    def fake_slow(access, timeout):
        time.sleep(3)
        return {"capacity": {}, "use": {}}

    hosts = [{"name": "a", "kind": "xen"}, {"name": "b", "kind": "libvirt"},
             {"name": "c", "kind": "lxc"}, {"name": "d", "kind": "xen"}]
    start = time.monotonic()
    measured, failed = hi.refresh_all(hosts, timeout=0.5, gatherers={
        "xen": fake_fast, "libvirt": fake_broken, "lxc": fake_slow})
    assert time.monotonic() - start < 2.5
    assert measured == {"a": {"capacity": {"memory": 1}, "use": {}},
                        "d": {"capacity": {"memory": 1}, "use": {}}}
    assert failed == {"b": "xl info printed no nr_cpus line", "c": "no answer within 0.5 s"}


def test_refresh_all_real_unreachable_hosts():
    # xl is not installed here and nothing listens on that libvirt URI: both fail, for real
    measured, failed = hi.refresh_all(
        [{"name": "dom0", "kind": "xen", "access": {}},
         {"name": "kvm", "kind": "libvirt", "access": {"uri": "qemu+tcp://127.0.0.1:1/system"}}],
        timeout=20)
    assert measured == {}
    assert sorted(failed) == ["dom0", "kvm"]
    assert "xl" in failed["dom0"] and "not found" in failed["dom0"]
