# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest initrds: flag splitting, the inputs record, rebuild reasons, the dracut argv, and the
manager over a temporary host tree with a FAKE dracut (a sh script that records its argv);
the kernel hooks are run for real by /bin/sh against the same fake."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _dracut
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, ValidationError

K1 = "6.1.0-28-amd64"
K2 = "6.1.0-29-amd64"


# ---- pure parts ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("", ()),
    (None, ()),
    ("--no-hostonly", ("--no-hostonly",)),
    ('--add-drivers "xen-blkfront xen-netfront" -q', ("--add-drivers", "xen-blkfront xen-netfront", "-q")),
    ("--omit 'plymouth' ; rm -rf /", ("--omit", "plymouth", ";", "rm", "-rf", "/")),
    ("$(reboot) `id`", ("$(reboot)", "`id`")),
    (["--a", "b c"], ("--a", "b c")),
])
def test_split_flags_never_a_shell(text, expected):
    assert _dracut.split_flags(text) == expected


@pytest.mark.parametrize("text, word", [
    ('--add-drivers "unbalanced', "cannot be split"),
    ("--kver 6.1", "--kver is set by the module"),
    ("--modules=base", "--modules is set by the module"),
    ("-f", "-f is set by the module"),
    ("--install /x", "--install is set by the module"),
    (42, "must be a string"),
])
def test_split_flags_rejects(text, word):
    with pytest.raises(ValidationError) as err:
        _dracut.split_flags(text)
    assert err.value.field == "extra_flags" and word in str(err.value)


def test_check_modules_keeps_order_drops_repeats():
    assert _dracut.check_modules(["nfs", "base", "nfs"]) == ("nfs", "base")


@pytest.mark.parametrize("modules, field", [
    ([], "modules"), ("nfs base", "modules"), (["nfs", "Bad Name"], "modules[1]"),
    (["nfs", "a;b"], "modules[1]"), ([None], "modules[0]"),
])
def test_check_modules_rejects(modules, field):
    with pytest.raises(ValidationError) as err:
        _dracut.check_modules(modules)
    assert err.value.field == field


def test_default_modules_use_network_legacy():
    assert "network-legacy" in _dracut.DEFAULT_MODULES and "network" not in _dracut.DEFAULT_MODULES
    assert len(_dracut.DEFAULT_MODULES) == 12


@pytest.mark.parametrize("version", ["../../etc", "6.1 x", "", "a/b", "-rf"])
def test_check_version_rejects(version):
    with pytest.raises(ValidationError):
        _dracut.check_version("kernels[0]", version)


def test_install_items_add_the_iscsi_fix_only_with_iscsi():
    exists = {"/lib/open-iscsi/startup-checks.sh"}.__contains__
    assert _dracut.install_items(("nfs",), (), exists) == ()
    assert _dracut.install_items(("iscsi", "base"), ("/etc/x",), exists) == (
        "/etc/x", "/lib/open-iscsi/startup-checks.sh")
    assert _dracut.install_items(("iscsi",), (), lambda p: False) == ()
    with pytest.raises(ValidationError) as err:
        _dracut.install_items(("nfs",), ("rel/path",))
    assert err.value.field == "install_items[0]"


def _wanted(**over):
    args = dict(version=K1, kernel_sha256="aa", dracut_version="dracut 059", modules=("nfs", "base"),
                flags=("--add-drivers", "xen-blkfront xen-netfront"), items=())
    args.update(over)
    return _dracut.parse_inputs(_dracut.render_inputs(**args))


def test_inputs_record_round_trips():
    text = _dracut.render_inputs(K1, "aa", "dracut 059", ("nfs", "base"), ("--x", "a b"), ("/f",))
    assert text.startswith(_dracut.INPUTS_HEADER + "\n")
    assert _dracut.parse_inputs(text) == {
        "kernel": K1, "kernel_sha256": "aa", "dracut": "dracut 059", "modules": "nfs base",
        "extra_flags": "--x 'a b'", "install_items": "/f"}
    assert _dracut.parse_inputs(None) is None


@pytest.mark.parametrize("exists, recorded, force, expected", [
    (True, _wanted(), False, None),
    (False, _wanted(), False, "missing"),
    (True, None, False, "no inputs record (not built by xen_initrd)"),
    (True, _wanted(), True, "forced"),
    (True, _wanted(modules=("nfs",)), False, "changed: modules"),
    (True, _wanted(kernel_sha256="bb", dracut_version="dracut 060"), False,
     "changed: kernel file, dracut version"),
    (True, _wanted(flags=()), False, "changed: extra_flags"),
    (True, _wanted(items=("/f",)), False, "changed: install_items"),
])
def test_rebuild_reason(exists, recorded, force, expected):
    assert _dracut.rebuild_reason(exists, recorded, _wanted(), force) == expected


def test_dracut_argv():
    assert _dracut.dracut_argv("/usr/bin/dracut", K1, "/etc/xen/.tmp", ("nfs", "base"),
                               ("--add-drivers", "a b"), ("/f", "/g")) == [
        "/usr/bin/dracut", "--force", "--kver", K1, "--modules", "nfs base",
        "--install", "/f /g", "--add-drivers", "a b", "/etc/xen/.tmp"]
    assert "--install" not in _dracut.dracut_argv("dracut", K1, "/o", ("base",), (), ())


# ---- a host tree and a FAKE dracut --------------------------------------------------------

FAKE_DRACUT = """#!/bin/sh
# FAKE dracut for tests: --version prints a version; a build writes its argv into the output
# (like Debian's dracut 059: the version on stdout, exit code 1)
if [ "$1" = "--version" ]; then echo "dracut 059-fake"; exit 1; fi
for last; do :; done
printf '%s\\n' "$@" >"$last"
echo "$@" >>"$(dirname "$0")/calls"
"""


@pytest.fixture
def host(tmp_path):
    """A host with kernels K1 and K2, dracut modules, and the fake dracut."""
    for sub in ("lib/modules", "boot", "etc/xen", "etc/kernel", "dracut.d", "bin"):
        (tmp_path / sub).mkdir(parents=True)
    for version in (K1, K2):
        (tmp_path / "lib/modules" / version).mkdir()
        (tmp_path / "boot" / f"vmlinuz-{version}").write_bytes(version.encode() * 100)
    (tmp_path / "lib/modules/5.10.0-old").mkdir()  # modules left over, no kernel: not a kernel
    for module in ("90nfs", "35network-legacy", "99base", "00bash", "95iscsi"):
        (tmp_path / "dracut.d" / module).mkdir()
    fake = tmp_path / "bin" / "fake-dracut"
    fake.write_text(FAKE_DRACUT)
    fake.chmod(0o755)
    return tmp_path


def manager(host, **over):
    args = dict(modules=["nfs", "network-legacy", "base"], extra_flags="--add-drivers 'xen-blkfront'",
                dest_dir=str(host / "etc/xen"), dracut=str(host / "bin/fake-dracut"),
                modules_dir=str(host / "lib/modules"), boot_dir=str(host / "boot"),
                hook_dir=str(host / "etc/kernel"), dracut_modules_dir=str(host / "dracut.d"))
    args.update(over)
    return _dracut.InitrdManager(**args)


def calls(host):
    path = host / "bin" / "calls"
    return path.read_text().splitlines() if path.exists() else []


def by_kernel(result):
    return {e["kernel"]: e for e in result["initrds"]}


def test_installed_kernels_need_modules_and_vmlinuz(host):
    assert _dracut.installed_kernels(str(host / "lib/modules"), str(host / "boot")) == [K1, K2]
    assert _dracut.installed_kernels(str(host / "nowhere")) == []


def test_builds_every_kernel_then_skips(host):
    result, diff = manager(host).apply()
    assert result["changed"]
    assert {k: (e["action"], e["reason"]) for k, e in by_kernel(result).items()} == {
        K1: ("build", "missing"), K2: ("build", "missing")}
    for version in (K1, K2):
        initrd = host / "etc/xen" / f"initrd.img-{version}"
        argv = initrd.read_text().splitlines()
        assert argv[:5] == ["--force", "--kver", version, "--modules", "nfs network-legacy base"]
        assert argv[5:7] == ["--add-drivers", "xen-blkfront"]
        assert oct(initrd.stat().st_mode & 0o777) == "0o644"
        record = _dracut.parse_inputs((host / "etc/xen" / f"initrd.img-{version}.inputs").read_text())
        assert record["dracut"] == "dracut 059-fake" and record["kernel"] == version
    assert str(host / "etc/xen" / f"initrd.img-{K1}") in diff["after"]
    assert len(calls(host)) == 2
    assert not [p for p in os.listdir(host / "etc/xen") if p.startswith(".")]  # no temp files left

    again, diff = manager(host).apply()
    assert not again["changed"] and diff["after"] == "" and len(calls(host)) == 2
    assert {e["reason"] for e in again["initrds"]} == {"up to date"}


def test_rebuilds_on_each_changed_input(host):
    manager(host).apply()
    result, _diff = manager(host, extra_flags="").apply()
    assert {e["reason"] for e in result["initrds"]} == {"changed: extra_flags"}
    result, _diff = manager(host, extra_flags="", modules=["nfs", "base"]).apply()
    assert {e["reason"] for e in result["initrds"]} == {"changed: modules"}
    (host / "boot" / f"vmlinuz-{K2}").write_bytes(b"a new build of the same version")
    result, _diff = manager(host, extra_flags="", modules=["nfs", "base"]).apply()
    assert by_kernel(result)[K2]["reason"] == "changed: kernel file"
    assert not by_kernel(result)[K1]["changed"]
    result, _diff = manager(host, extra_flags="", modules=["nfs", "base"], force=True,
                            kernels=[K1]).apply()
    assert by_kernel(result)[K1]["reason"] == "forced" and K2 not in by_kernel(result)
    assert (host / "etc/xen" / f"initrd.img-{K2}").exists()  # outside the list: left as it is


def test_check_mode_builds_nothing(host):
    result, diff = manager(host, check_mode=True).apply()
    assert result["changed"] and calls(host) == []
    assert not list((host / "etc/xen").iterdir())
    assert diff["before"] == "" and f"initrd.img-{K2} (built: missing)" in diff["after"]


def test_removed_kernel_loses_its_initrd_foreign_files_stay(host):
    manager(host).apply()
    (host / "boot" / f"vmlinuz-{K1}").unlink()
    (host / "etc/xen" / "initrd.img-4.19.0-foreign").write_text("someone else's")
    check, diff = manager(host, check_mode=True).apply()
    assert by_kernel(check)[K1]["action"] == "remove"
    assert (host / "etc/xen" / f"initrd.img-{K1}").exists()
    assert f"initrd.img-{K1}\n" in diff["before"]
    result, _diff = manager(host).apply()
    entries = by_kernel(result)
    assert entries[K1] == {"kernel": K1, "path": str(host / "etc/xen" / f"initrd.img-{K1}"),
                           "changed": True, "reason": "kernel no longer installed", "action": "remove"}
    assert not (host / "etc/xen" / f"initrd.img-{K1}").exists()
    assert not (host / "etc/xen" / f"initrd.img-{K1}.inputs").exists()
    assert entries["4.19.0-foreign"]["action"] == "none" and not entries["4.19.0-foreign"]["changed"]
    assert (host / "etc/xen" / "initrd.img-4.19.0-foreign").exists()
    assert not manager(host).apply()[0]["changed"]


def test_unknown_dracut_module_fails_before_building(host):
    with pytest.raises(ValidationError) as err:
        manager(host, modules=["nfs", "network", "base"]).apply()
    assert err.value.value == ["network"] and "not found" in str(err.value)
    assert calls(host) == []


def test_module_with_a_missing_requirement_fails_before_building(host):
    (host / "dracut.d" / "09console-setup").mkdir()
    with pytest.raises(ValidationError) as err:
        manager(host, modules=["base", "console-setup"], host_has=lambda path: path != "/bin/setupcon").apply()
    assert err.value.value == ["console-setup"]
    assert "needs /bin/setupcon (install the package console-setup" in str(err.value)
    assert calls(host) == []
    assert manager(host, modules=["base", "console-setup"], host_has=lambda path: True).apply()[0]["changed"]


def test_dracut_without_version_output_is_an_error(host):
    (host / "bin/fake-dracut").write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(CommandError) as err:
        manager(host).apply()
    assert "printed nothing" in str(err.value)


def test_kernel_not_installed_is_an_error(host):
    with pytest.raises(ValidationError) as err:
        manager(host, kernels=["5.10.0-old"]).apply()
    assert err.value.field == "kernels[0]" and K1 in str(err.value)


def test_failed_build_keeps_the_old_initrd(host):
    manager(host).apply()
    before = (host / "etc/xen" / f"initrd.img-{K1}").read_text()
    (host / "bin/fake-dracut").write_text('#!/bin/sh\n[ "$1" = --version ] && echo "dracut 060" && exit 0\n'
                                          'echo "dracut: cannot do it" >&2; exit 1\n')
    with pytest.raises(CommandError) as err:
        manager(host).apply()
    assert "building the initrd of kernel" in str(err.value) and "cannot do it" in str(err.value)
    assert (host / "etc/xen" / f"initrd.img-{K1}").read_text() == before
    assert not [p for p in os.listdir(host / "etc/xen") if p.startswith(".")]


# ---- kernel hooks -------------------------------------------------------------------------

def test_hooks_installed_idempotent_and_removed(host):
    result, diff = manager(host, hooks=True).apply()
    inst = host / "etc/kernel/postinst.d" / _dracut.HOOK_NAME
    rm = host / "etc/kernel/postrm.d" / _dracut.HOOK_NAME
    assert oct(inst.stat().st_mode & 0o777) == "0o755" and rm.exists()
    assert {h["state"] for h in result["hooks"]} == {"present"}
    assert f"{inst} (hook)" in diff["after"]
    assert subprocess.run(["/bin/sh", "-n", str(inst)], check=False).returncode == 0
    assert not manager(host, hooks=True).apply()[0]["changed"]
    result, _diff = manager(host, hooks=False).apply()
    assert {h["state"] for h in result["hooks"]} == {"absent"}
    assert not inst.exists() and not rm.exists()


def test_postinst_hook_writes_the_record_the_module_expects(host):
    """A kernel installed later gets its initrd from the hook, and the next run skips it."""
    flags = "--add-drivers 'xen-blkfront xen-netfront' --omit \"plymouth $(x)\""
    manager(host, hooks=True, extra_flags=flags, modules=["iscsi", "base"],
            items=["/etc/hosts"]).apply()
    k3 = "6.1.0-30-amd64"
    (host / "lib/modules" / k3).mkdir()
    (host / "boot" / f"vmlinuz-{k3}").write_bytes(b"kernel three")
    hook = host / "etc/kernel/postinst.d" / _dracut.HOOK_NAME
    proc = subprocess.run([str(hook), k3, f"/boot/vmlinuz-{k3}"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    argv = (host / "etc/xen" / f"initrd.img-{k3}").read_text().splitlines()
    assert argv[:7] == ["--force", "--kver", k3, "--modules", "iscsi base", "--install", "/etc/hosts"]
    assert argv[7:11] == ["--add-drivers", "xen-blkfront xen-netfront", "--omit", "plymouth $(x)"]
    result, _diff = manager(host, hooks=True, extra_flags=flags, modules=["iscsi", "base"],
                            items=["/etc/hosts"]).apply()
    assert by_kernel(result)[k3] == {"kernel": k3, "path": str(host / "etc/xen" / f"initrd.img-{k3}"),
                                     "changed": False, "reason": "up to date", "action": "none"}

    rm_hook = host / "etc/kernel/postrm.d" / _dracut.HOOK_NAME
    subprocess.run([str(rm_hook), k3], check=True)
    assert not (host / "etc/xen" / f"initrd.img-{k3}").exists()
    assert not (host / "etc/xen" / f"initrd.img-{k3}.inputs").exists()


def test_postinst_hook_without_kernel_file_does_nothing(host):
    manager(host, hooks=True).apply()
    hook = host / "etc/kernel/postinst.d" / _dracut.HOOK_NAME
    proc = subprocess.run([str(hook), "9.9.9-none"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "no guest initrd" in proc.stderr
    assert not (host / "etc/xen" / "initrd.img-9.9.9-none").exists()
