# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible_farm's source chains: planning, and every native step on real files (real qemu-img,
real archives, a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import tarfile
import threading
import uuid
import zipfile
import zlib

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _image_source as isrc
from ansible_collections.vman.lifecycle.plugins.module_utils import _kvm_provision as kvm
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError

HAS_QEMU_IMG = shutil.which("qemu-img") is not None
needs_qemu_img = pytest.mark.skipif(not HAS_QEMU_IMG, reason="qemu-img not installed")


def farm_vm(tmp_dir="/srv/farm/tmp/", extend=True):
    """The definition ansible_farm's shared debian platform (+ debian_12's extend step) makes,
    values re-typed."""
    image = "debian-12-nocloud-amd64-daily-20230403-1339.qcow2"
    work = "tmp-debian_12_amd64_" + image
    before = [
        {"callback": "callbacks/sources/fetch.yaml",
         "src": "https://cdimage.debian.org/cdimage/cloud/bookworm/daily/20230403-1339/" + image,
         "dest": image},
        {"callback": "callbacks/sources/copy.yaml", "src": image, "dest": work},
        {"callback": "callbacks/sources/setup_image.yaml", "src": work,
         "keys_path": tmp_dir + "id_ssh_rsa_vm"},
    ]
    if extend:
        before.insert(2, {"callback": "callbacks/sources/extend_and_convert.yaml", "src": work,
                          "dest": work, "from_format": "qcow2", "to_format": "qcow2",
                          "partition_number": 1, "size": "10G"})
    meta = {
        "name": "VM debian_12_amd64", "connection": "qemu:///session", "tmp_dir": tmp_dir,
        "libvirt_pool_dir": "/srv/farm/images/", "hostname": "vm.debian_12.amd64",
        "auth": {"user": "user", "password": "virtualsquare", "become_user": "root",
                 "become_password": "virtualsquare", "become_method": "su"},
        "sources": [{"before_provision": before,
                     "on_provision": {"src": work, "dest": "debian_12_amd64_" + image}}]}
    return {"metadata": meta,
            "disks": [{"type": "qcow2", "devname": "hda", "src": "debian_12_amd64_" + image}]}


# --- planning -------------------------------------------------------------------------------

def test_plan_all_builtin_without_user_files(tmp_path):
    groups = kvm.source_groups(farm_vm(), str(tmp_path))
    assert [g["kind"] for g in groups] == ["native"]
    steps = groups[0]["steps"]
    assert [s["action"] for s in steps] == ["fetch", "copy", "extend_convert", "setup_image", "install"]
    assert steps[0]["dest"] == "/srv/farm/tmp/debian-12-nocloud-amd64-daily-20230403-1339.qcow2"
    assert steps[2]["size"] == 10 << 30 and steps[2]["partition_number"] == 1
    assert steps[3]["keys_path"] == "/srv/farm/tmp/id_ssh_rsa_vm" and steps[3]["user"] == "user"
    assert steps[4]["dest"].startswith("/srv/farm/images/debian_12_amd64_")
    assert steps[4]["src"].startswith("/srv/farm/tmp/tmp-debian_12_amd64_")
    # the plan is printed as a fact: no password in it
    assert "virtualsquare" not in json.dumps(groups)


def test_plan_user_file_in_playbook_tasks_wins_over_native_fallback(tmp_path):
    """ansible_farm's examples ship tasks/callbacks/sources/extend_and_convert.yaml: it is
    included (with the original's variables), splitting the native steps around it."""
    user = tmp_path / "tasks" / "callbacks" / "sources" / "extend_and_convert.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("- ansible.builtin.debug: {msg: hi}\n")
    groups = kvm.source_groups(farm_vm(), str(tmp_path))
    assert [g["kind"] for g in groups] == ["native", "include", "native"]
    inc = groups[1]
    assert inc["file"] == str(user) and inc["task_index"] == 2 and inc["source_index"] == 0
    assert inc["task"]["size"] == "10G" and inc["source"]["on_provision"]["src"].startswith("tmp-")
    assert [s["action"] for s in groups[2]["steps"]] == ["setup_image", "install"]


def test_plan_lookup_dir_overrides_builtin(tmp_path):
    """A callback in hypervisor_lookup_dir_path comes before ansible_farm's built-in one."""
    mine = tmp_path / "setup_hypervisor" / "callbacks" / "sources" / "fetch.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("[]\n")
    groups = kvm.source_groups(farm_vm(extend=False), str(tmp_path))
    assert groups[0] == {**groups[0], "kind": "include", "file": str(mine)}
    # ... while tasks/ in the playbook dir comes after the built-ins (the role's own tasks/)
    other = tmp_path / "tasks" / "callbacks" / "sources" / "copy.yaml"
    other.parent.mkdir(parents=True)
    other.write_text("[]\n")
    groups = kvm.source_groups(farm_vm(extend=False), str(tmp_path), "setup_hypervisor")
    assert groups[1]["kind"] == "native" and groups[1]["steps"][0]["action"] == "copy"


def test_plan_unknown_callback_is_an_error(tmp_path):
    vm = farm_vm()
    vm["metadata"]["sources"][0]["before_provision"][1]["callback"] = "myCustomProcessingTask.yaml"
    with pytest.raises(ValidationError, match=r"before_provision\[1\]\.callback.*myCustomProcessingTask"):
        kvm.source_groups(vm, str(tmp_path))


@pytest.mark.parametrize("field,value", [("src", "../../etc/shadow"), ("dest", "a/../../b")])
def test_plan_relative_paths_stay_in_tmp_dir(tmp_path, field, value):
    vm = farm_vm()
    vm["metadata"]["sources"][0]["before_provision"][1][field] = value
    with pytest.raises(ValidationError, match=rf"before_provision\[1\]\.{field}"):
        kvm.source_groups(vm, str(tmp_path))


def test_plan_needs_tmp_dir_and_a_known_source_key(tmp_path):
    vm = farm_vm()
    del vm["metadata"]["tmp_dir"]
    with pytest.raises(ValidationError, match="metadata.tmp_dir"):
        kvm.source_groups(vm, str(tmp_path))
    vm = farm_vm()
    vm["metadata"]["sources"][0]["befor_provision"] = []
    with pytest.raises(ValidationError, match="befor_provision"):
        kvm.source_groups(vm, str(tmp_path))


@pytest.mark.parametrize("checksum", ["sha256:xyz", "crc32:00ff", "sha256"])
def test_plan_bad_checksum(tmp_path, checksum):
    vm = farm_vm()
    vm["metadata"]["sources"][0]["before_provision"][0]["checksum"] = checksum
    with pytest.raises(ValidationError, match=r"before_provision\[0\]\.checksum"):
        kvm.source_groups(vm, str(tmp_path))


def test_normalize_farm_sources_no_longer_refused(tmp_path):
    out = kvm.normalize(farm_vm(), playbook_dir=str(tmp_path))
    assert out["sources"] == [] and out["tmp_dir"] == "/srv/farm/tmp"
    assert len(out["source_groups"]) == 1
    # setup_image reads auth and hostname: no longer listed as passed through
    assert "metadata.auth" not in out["passthrough_keys"]
    vm = farm_vm()
    del vm["metadata"]["sources"][0]["before_provision"][3]
    assert "metadata.auth" in kvm.normalize(vm, playbook_dir=str(tmp_path))["passthrough_keys"]


def test_uri_sources_still_work():
    vm = {"metadata": {"name": "a", "sources": [{"uri": "https://x.org/a.qcow2"}]}}
    out = kvm.normalize(vm)
    assert out["source_groups"] == [] and out["sources"][0]["kind"] == "url"


# --- fetch over real HTTP --------------------------------------------------------------------

@pytest.fixture(name="http_root")
def fixture_http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _fetch(url, dest, checksum=None):
    return {"action": "fetch", "label": "fetch", "src": url, "dest": str(dest), "checksum": checksum}


def test_fetch_with_checksum(tmp_path, http_root):
    root, base = http_root
    (root / "img.qcow2").write_bytes(b"image-1" * 1000)
    digest = hashlib.sha256(b"image-1" * 1000).hexdigest()
    dest = tmp_path / "cache" / "img.qcow2"
    opener = isrc.Opener(retries=1)
    step = _fetch(base + "/img.qcow2", dest, "sha256:" + digest)
    assert isrc.run_steps([step], check=True, opener=opener)["changed"] is True
    assert not dest.exists()
    assert isrc.run_steps([step], check=False, opener=opener)["changed"] is True
    assert dest.read_bytes() == b"image-1" * 1000
    assert isrc.run_steps([step], check=False, opener=opener)["steps"][0]["msg"] == "cached, checksum matches"
    # the server's file changes: a wrong checksum is an error and the cache is not replaced
    (root / "img.qcow2").write_bytes(b"tampered")
    dest.write_bytes(b"stale")
    with pytest.raises(VmanError, match="sha256 is .* expected " + digest):
        isrc.run_steps([step], check=False, opener=opener)
    assert dest.read_bytes() == b"stale"
    assert [p.name for p in dest.parent.iterdir()] == ["img.qcow2"]  # no temp file left


def test_fetch_without_checksum_compares_sizes(tmp_path, http_root):
    root, base = http_root
    (root / "a.img").write_bytes(b"x" * 10)
    dest = tmp_path / "a.img"
    dest.write_bytes(b"y" * 10)  # same size: ansible_farm keeps the cache
    step = _fetch(base + "/a.img", dest)
    assert isrc.run_steps([step], False, isrc.Opener(retries=1))["changed"] is False
    dest.write_bytes(b"y" * 3)
    assert isrc.run_steps([step], False, isrc.Opener(retries=1))["changed"] is True
    assert dest.read_bytes() == b"x" * 10


def test_fetch_missing_url_fails_with_the_url(tmp_path, http_root):
    _root, base = http_root
    with pytest.raises(VmanError, match="nothere"):
        isrc.run_steps([_fetch(base + "/nothere", tmp_path / "n")], False,
                       isrc.Opener(retries=2, delay=0))


# --- copy, install ---------------------------------------------------------------------------

def test_copy_and_install(tmp_path):
    src, dest = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"abc")
    step = {"action": "copy", "label": "c", "src": str(src), "dest": str(dest), "force": True}
    assert isrc.run_steps([step], True)["changed"] and not dest.exists()
    assert isrc.run_steps([step], False)["changed"] and dest.read_bytes() == b"abc"
    assert not isrc.run_steps([step], False)["changed"]
    dest.write_bytes(b"zzz")
    assert not isrc.run_steps([dict(step, force=False)], False)["changed"]
    assert dest.read_bytes() == b"zzz"
    pool = tmp_path / "pool" / "vm.qcow2"
    inst = {"action": "install", "label": "i", "src": str(dest), "dest": str(pool), "replace": True}
    assert isrc.run_steps([inst], False)["changed"]
    assert pool.read_bytes() == b"zzz" and not dest.exists()
    assert oct(pool.stat().st_mode & 0o777) == "0o644"
    src.write_bytes(b"new")
    kept = dict(inst, src=str(src), replace=False)
    assert not isrc.run_steps([kept], False)["changed"] and pool.read_bytes() == b"zzz"


def test_copy_of_a_missing_source_names_the_step(tmp_path):
    step = {"action": "copy", "label": "metadata.sources[0].before_provision[1]: copy",
            "src": str(tmp_path / "none"), "dest": str(tmp_path / "b"), "force": True}
    with pytest.raises(VmanError, match=r"before_provision\[1\]: copy: .*none does not exist"):
        isrc.run_steps([step], False)


# --- unarchive -------------------------------------------------------------------------------

def _tar(path, members, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "dev":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)


def _unarchive(src, dest):
    return {"action": "unarchive", "label": "u", "src": str(src), "dest": str(dest)}


@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:xz", ".tar.xz"), ("w:bz2", ".tar.bz2"),
                                         ("w", ".tar")])
def test_unarchive_tar(tmp_path, mode, suffix):
    arc = tmp_path / ("disk" + suffix)
    _tar(arc, [("disk.raw", b"R" * 100, "file"), ("sub/readme", b"hi", "file")], mode)
    out = tmp_path / "out"
    out.mkdir()
    res = isrc.run_steps([_unarchive(arc, out)], False)
    assert res["changed"] and (out / "disk.raw").read_bytes() == b"R" * 100
    assert (out / "sub" / "readme").read_bytes() == b"hi"
    assert not isrc.run_steps([_unarchive(arc, out)], False)["changed"]


@pytest.mark.parametrize("members", [
    [("ok", b"1", "file"), ("../evil", b"x", "file")],
    [("ok", b"1", "file"), ("/tmp/evil-abs", b"x", "file")],
    [("ok", b"1", "file"), ("link", "../../outside", "sym")],
    [("ok", b"1", "file"), ("dev", b"", "dev")],
])
def test_unarchive_tar_escape_refused_before_writing(tmp_path, members):
    arc = tmp_path / "bad.tar.gz"
    _tar(arc, members)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VmanError, match="outside|device"):
        isrc.run_steps([_unarchive(arc, out)], False)
    assert list(out.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_unarchive_zip_and_escape(tmp_path):
    arc = tmp_path / "img.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("img.qcow2", b"Q" * 50)
    out = tmp_path / "out"
    out.mkdir()
    assert isrc.run_steps([_unarchive(arc, out)], False)["changed"]
    assert (out / "img.qcow2").read_bytes() == b"Q" * 50
    assert not isrc.run_steps([_unarchive(arc, out)], False)["changed"]
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("fine", b"1")
        zf.writestr("../../evil", b"x")
    with pytest.raises(VmanError, match="outside"):
        isrc.run_steps([_unarchive(bad, out)], False)
    assert not (out / "fine").exists()


@pytest.mark.parametrize("suffix,opener", [(".xz", lzma.open), (".gz", gzip.open)])
def test_unarchive_single_file_keeps_the_archive(tmp_path, suffix, opener):
    arc = tmp_path / ("disk.qcow2" + suffix)
    with opener(arc, "wb") as out:
        out.write(b"D" * 4096)
    res = isrc.run_steps([_unarchive(arc, tmp_path)], False)
    assert res["changed"] and (tmp_path / "disk.qcow2").read_bytes() == b"D" * 4096 and arc.exists()
    assert not isrc.run_steps([_unarchive(arc, tmp_path)], False)["changed"]


# --- qemu-img: convert, extend_convert --------------------------------------------------------

def _gpt_disk(path, size, parts):
    """A raw disk with a protective MBR and a GPT (UEFI 2.x layout: 128 entries of 128 bytes),
    built here from the spec to test the resize code against; ``parts`` = [(first, last)]."""
    sectors = size // 512
    table = bytearray(128 * 128)
    for k, (first, last) in enumerate(parts):
        struct.pack_into("<16s16sQQQ72s", table, k * 128, uuid.uuid4().bytes_le,
                         uuid.uuid4().bytes_le, first, last, 0, "root".encode("utf-16-le"))
    ecrc = zlib.crc32(bytes(table))
    guid = uuid.uuid4().bytes_le

    def header(cur, other, entries):
        fields = [b"EFI PART", b"\0\0\1\0", 92, 0, cur, other, 34, sectors - 34, guid, entries, 128,
                  128, ecrc]
        raw = struct.pack("<8s4sII4xQQQQ16sQIII", *fields)
        fields[3] = zlib.crc32(raw)
        return struct.pack("<8s4sII4xQQQQ16sQIII", *fields)

    with open(path, "wb") as disk:
        disk.truncate(size)
        mbr = bytearray(512)
        struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\0\2\0", 0xEE, b"\xff\xff\xff", 1, sectors - 1)
        mbr[510:512] = b"\x55\xaa"
        disk.write(mbr)
        disk.write(header(1, sectors - 1, 2).ljust(512, b"\0"))
        disk.write(table)
        disk.seek((sectors - 33) * 512)
        disk.write(table)
        disk.write(header(sectors - 1, 1, sectors - 33).ljust(512, b"\0"))


def _read_gpt(path):
    """Parse and verify both GPT headers (CRCs, positions); returns (primary, entries)."""
    sectors = os.path.getsize(path) // 512
    hdr = struct.Struct("<8s4sII4xQQQQ16sQIII")
    with open(path, "rb") as disk:
        out = []
        for lba in (1, sectors - 1):
            disk.seek(lba * 512)
            raw = disk.read(92)
            fields = list(hdr.unpack(raw))
            crc = fields[3]
            fields[3] = 0
            assert zlib.crc32(hdr.pack(*fields)) == crc, f"header CRC at LBA {lba}"
            assert fields[0] == b"EFI PART" and fields[4] == lba
            disk.seek(fields[9] * 512)
            table = disk.read(fields[10] * fields[11])
            assert zlib.crc32(table) == fields[12], f"entries CRC of header at LBA {lba}"
            out.append((fields, table))
    (pri, table), (bak, _t) = out
    assert pri[5] == sectors - 1 and bak[5] == 1 and pri[7] == bak[7] == sectors - 34
    assert bak[9] == sectors - 33
    return pri, [struct.unpack_from("<16s16sQQQ72s", table, k * 128) for k in range(128)]


def test_grow_partition_gpt(tmp_path):
    disk = tmp_path / "d.raw"
    _gpt_disk(disk, 8 << 20, [(2048, 8191), (8192, 16000)])
    _read_gpt(disk)  # the fixture itself is a valid GPT
    os.truncate(disk, 32 << 20)
    with pytest.raises(VmanError, match="partition 1 is not the last"):
        isrc.grow_partition(str(disk), 1, "t")
    assert isrc.grow_partition(str(disk), 2, "t") is True
    _pri, entries = _read_gpt(disk)
    assert entries[1][2:4] == (8192, (32 << 20) // 512 - 34) and entries[0][2:4] == (2048, 8191)
    assert isrc.grow_partition(str(disk), 2, "t") is False
    with open(disk, "rb") as raw:
        raw.seek(446 + 12)
        assert struct.unpack("<I", raw.read(4))[0] == (32 << 20) // 512 - 1


def test_grow_partition_mbr(tmp_path):
    disk = tmp_path / "m.raw"
    with open(disk, "wb") as out:
        out.truncate(4 << 20)
        mbr = bytearray(512)
        struct.pack_into("<B3xB3xII", mbr, 446, 0x80, 0x83, 2048, 4096)
        mbr[510:512] = b"\x55\xaa"
        out.write(mbr)
    os.truncate(disk, 16 << 20)
    assert isrc.grow_partition(str(disk), 1, "t")
    with open(disk, "rb") as raw:
        raw.seek(446)
        assert struct.unpack("<B3xB3xII", raw.read(16))[3] == (16 << 20) // 512 - 2048
    with pytest.raises(VmanError, match="partition 2 does not exist"):
        isrc.grow_partition(str(disk), 2, "t")
    plain = tmp_path / "p.raw"
    plain.write_bytes(b"\0" * 4096)
    with pytest.raises(VmanError, match="no GPT and no MBR"):
        isrc.grow_partition(str(plain), 1, "t")


@needs_qemu_img
def test_convert_and_extend_with_qemu_img(tmp_path):
    raw = tmp_path / "base.raw"
    _gpt_disk(raw, 8 << 20, [(2048, 16350)])
    qcow = tmp_path / "work.qcow2"
    conv = {"action": "convert", "label": "c", "src": str(raw), "dest": str(qcow),
            "from_format": "raw", "to_format": "qcow2"}
    assert isrc.run_steps([conv], True)["changed"] and not qcow.exists()
    assert isrc.run_steps([conv], False)["changed"]
    assert isrc.image_info(str(qcow))["format"] == "qcow2"
    assert not isrc.run_steps([conv], False)["changed"]  # ansible_farm's creates:
    ext = {"action": "extend_convert", "label": "e", "src": str(qcow), "dest": str(qcow),
           "size": 64 << 20, "from_format": "qcow2", "to_format": "qcow2", "partition_number": 1}
    assert isrc.run_steps([ext], True)["changed"]
    assert isrc.image_info(str(qcow))["virtual-size"] == 8 << 20
    assert isrc.run_steps([ext], False)["changed"]
    info = isrc.image_info(str(qcow))
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 << 20
    back = tmp_path / "check.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow), str(back)], check=True)
    _pri, entries = _read_gpt(back)
    assert entries[0][2:4] == (2048, (64 << 20) // 512 - 34)
    assert not isrc.run_steps([ext], False)["changed"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".vman-")] == []
    small = dict(ext, size=4 << 20)
    other = tmp_path / "other.qcow2"
    with pytest.raises(VmanError, match="images only grow"):
        isrc.run_steps([dict(small, dest=str(other))], False)


# --- setup_image -------------------------------------------------------------------------------

def test_setup_image_argv_keeps_passwords_off_the_command_line(tmp_path):
    step = kvm.source_groups(farm_vm(extend=False), str(tmp_path))[0]["steps"][2]
    argv = isrc.setup_image_argv(step, "/run/pw", "/run/script.sh")
    assert argv == ["virt-sysprep", "-a", step["src"], "--root-password", "file:/run/pw",
                    "--hostname", "vm.debian_12.amd64", "--copy-in", "/srv/farm/tmp/id_ssh_rsa_vm.pub:/opt",
                    "--chmod", "0666:/opt/id_ssh_rsa_vm.pub", "--firstboot", "/run/script.sh"]
    script = isrc.setup_image_script("user", "it's secret", "/opt/id_ssh_rsa_vm.pub")
    assert "printf '%s\\n' 'user:it'\\''s secret' | chpasswd" in script
    # the script is valid sh
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


@pytest.mark.skipif(shutil.which("virt-sysprep") is not None, reason="virt-sysprep is installed")
def test_setup_image_without_virt_sysprep_is_a_clear_error(tmp_path):
    src = tmp_path / "img"
    src.write_bytes(b"x")
    (tmp_path / "key.pub").write_text("ssh-ed25519 AAAA test\n")
    step = {"action": "setup_image", "label": "s", "src": str(src), "hostname": None, "user": None,
            "keys_path": str(tmp_path / "key")}
    with pytest.raises(VmanError, match="virt-sysprep .* not installed"):
        isrc.run_steps([step], False, auth={"become_password": "pw"})


def test_unknown_action():
    with pytest.raises(ValidationError, match="steps"):
        isrc.run_steps([{"action": "format_disk"}], False)
