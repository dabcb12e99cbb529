# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit text of the Xen host, its verification by the real systemd-analyze, the helper
scripts run for real against a fake xl/iscsiadm, and the installer."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils import _units
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, ValidationError

HAS_ANALYZE = shutil.which("systemd-analyze") is not None
needs_analyze = pytest.mark.skipif(not HAS_ANALYZE, reason="systemd-analyze not installed")

VM_DEFAULT = """\
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
[Unit]
Description=Xen VM %i
ConditionPathExists=/etc/xen/vms/%i.cfg
Wants=vm_prepare.service
Requires=vm_iscsi@%i.service
Conflicts=vm_mount@%i.service
After=vm_prepare.service vm_iscsi@%i.service vm_mount@%i.service xenstored.service \
xenconsoled.service network-online.target

[Service]
Type=forking
ExecStart=/usr/sbin/xl create /etc/xen/vms/%i.cfg
ExecStop=/usr/local/libexec/vman/vm-stop /usr/sbin/xl %i 265
TimeoutStartSec=15
TimeoutStopSec=300

[Install]
WantedBy=multi-user.target
"""

ISCSI_DEFAULT = """\
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
[Unit]
Description=iSCSI root disk of Xen VM %i
ConditionPathExists=/etc/xen/vms/%i.iscsi
Wants=network-online.target
After=network-online.target iscsid.service

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/xen/vms/%i.iscsi
ExecStart=/usr/local/libexec/vman/vm-iscsi /usr/bin/iscsiadm login ${VMAN_ISCSI_TARGET} \
${VMAN_ISCSI_PORTAL}
ExecStop=/usr/local/libexec/vman/vm-iscsi /usr/bin/iscsiadm logout ${VMAN_ISCSI_TARGET} \
${VMAN_ISCSI_PORTAL}
TimeoutStartSec=40
TimeoutStopSec=40
"""

MOUNT_DEFAULT = """\
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
[Unit]
Description=Root filesystem of Xen VM %i mounted at /mnt/vms/%i
Requires=vm_iscsi@%i.service
Conflicts=vm@%i.service
After=vm_iscsi@%i.service network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/xen/vms/%i.root
ExecStartPre=/bin/mkdir -p /mnt/vms/%i
ExecStart=/usr/local/libexec/vman/vm-mount /bin/mount ${VMAN_ROOT_FSTYPE} ${VMAN_ROOT_SOURCE} \
/mnt/vms/%i 40
ExecStop=/bin/umount /mnt/vms/%i
ExecStopPost=-/bin/rmdir /mnt/vms/%i
TimeoutStartSec=60
TimeoutStopSec=20
"""

PREPARE_DEFAULT = """\
# Managed by vman.lifecycle.xen_units; local changes are overwritten.
[Unit]
Description=Point /etc/xen/initrd.img at the initrd of the running kernel

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStartPre=/usr/bin/test -e /etc/xen/initrd.img-%v
ExecStart=/bin/ln -sfn /etc/xen/initrd.img-%v /etc/xen/initrd.img
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
"""


def _executable(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def fake_xl(tmp_path):
    """A stand-in xl that exists (verify checks Exec binaries) and logs its argv."""
    log = tmp_path / "xl.log"
    return _executable(tmp_path / "xl", f'#!/bin/sh\necho "$*" >> {log}\nexit 0\n')


# ---- exact text ---------------------------------------------------------------------------

def test_default_texts_are_exact():
    s = _units.settings()
    assert _units.render_vm(s) == VM_DEFAULT
    assert _units.render_iscsi(s) == ISCSI_DEFAULT
    assert _units.render_mount(s) == MOUNT_DEFAULT
    assert _units.render_prepare(s) == PREPARE_DEFAULT


@pytest.mark.parametrize("option, value, render, line", [
    ("start_timeout", 42, _units.render_vm, "TimeoutStartSec=42"),
    ("stop_timeout", 600, _units.render_vm, "TimeoutStopSec=600"),
    ("stop_timeout", 600, _units.render_vm,
     "ExecStop=/usr/local/libexec/vman/vm-stop /usr/sbin/xl %i 565"),
    ("iscsi_login_timeout", 90, _units.render_iscsi, "TimeoutStartSec=90"),
    ("iscsi_logout_timeout", 91, _units.render_iscsi, "TimeoutStopSec=91"),
    ("mount_timeout", 33, _units.render_mount, "TimeoutStartSec=73"),
    ("umount_timeout", 34, _units.render_mount, "TimeoutStopSec=34"),
    ("config_path", "/srv/xen/cfg", _units.render_vm, "ExecStart=/usr/sbin/xl create /srv/xen/cfg/%i.cfg"),
    ("config_path", "/srv/xen/cfg", _units.render_vm, "ConditionPathExists=/srv/xen/cfg/%i.cfg"),
    ("config_path", "/srv/xen/cfg", _units.render_iscsi, "ConditionPathExists=/srv/xen/cfg/%i.iscsi"),
    ("config_path", "/srv/xen/cfg", _units.render_iscsi, "EnvironmentFile=/srv/xen/cfg/%i.iscsi"),
    ("config_path", "/srv/xen/cfg", _units.render_mount, "EnvironmentFile=/srv/xen/cfg/%i.root"),
    ("xl_path", "/opt/xen/bin/xl", _units.render_vm,
     "ExecStop=/usr/local/libexec/vman/vm-stop /opt/xen/bin/xl %i 265"),
    ("iscsiadm_path", "/sbin/iscsiadm", _units.render_iscsi,
     "ExecStop=/usr/local/libexec/vman/vm-iscsi /sbin/iscsiadm logout ${VMAN_ISCSI_TARGET} ${VMAN_ISCSI_PORTAL}"),
    ("helper_path", "/opt/vman/", _units.render_vm, "ExecStop=/opt/vman/vm-stop /usr/sbin/xl %i 265"),
    ("mount_base", "/srv/mnt", _units.render_mount, "ExecStop=/bin/umount /srv/mnt/%i"),
    ("mount_base", "/srv/mnt", _units.render_mount, "ExecStartPre=/bin/mkdir -p /srv/mnt/%i"),
    ("initrd_link", "/boot/xen-initrd", _units.render_prepare,
     "ExecStart=/bin/ln -sfn /boot/xen-initrd-%v /boot/xen-initrd"),
])
def test_each_option_reaches_its_line(option, value, render, line):
    default = render(_units.settings())
    text = render(_units.settings(**{option: value}))
    assert line in text.splitlines()
    assert line not in default.splitlines()


def test_prepare_commands_and_timeout():
    s = _units.settings(prepare_timeout=60, prepare_commands=[
        "modprobe xen-netback", ["/usr/sbin/sysctl", "-w", "net.ipv4.ip_forward=1"],
        "/usr/local/bin/tune 'a b' \"100%\"", ["/bin/echo", 'say "$HOME"\\']])
    lines = _units.render_prepare(s).splitlines()
    execs = [line for line in lines if line.startswith("ExecStart=")]
    assert execs[1:] == [
        'ExecStart=modprobe "xen-netback"',
        'ExecStart=/usr/sbin/sysctl "-w" "net.ipv4.ip_forward=1"',
        'ExecStart=/usr/local/bin/tune "a b" "100%%"',
        'ExecStart=/bin/echo "say \\"$$HOME\\"\\\\"',
    ]
    assert "TimeoutStartSec=60" in lines


@pytest.mark.parametrize("command, field", [
    ("echo 1 > /proc/sys/net/ipv4/ip_forward", "prepare_commands[0]"),
    ("modprobe a; modprobe b", "prepare_commands[0]"),
    ("echo $(uname -r)", "prepare_commands[0]"),
    ("rm /tmp/*", "prepare_commands[0]"),
    ("", "prepare_commands[0]"),
    ([], "prepare_commands[0]"),
    (["-/bin/true"], "prepare_commands[0][0]"),
    (["bin/true"], "prepare_commands[0][0]"),
    (["/bin/echo", "a\nExecStart=/bin/reboot"], "prepare_commands[0][1]"),
    ("'unclosed", "prepare_commands[0]"),
    ({"cmd": "x"}, "prepare_commands[0]"),
])
def test_prepare_commands_refused(command, field):
    with pytest.raises(ValidationError) as info:
        _units.settings(prepare_commands=[command])
    assert info.value.field == field


def _after(text):
    return {u for line in text.splitlines() if line.startswith(("After=", "Before="))
            for u in line.split("=", 1)[1].split()}


def test_vm_and_mount_conflict_without_an_ordering_cycle():
    s = _units.settings()
    vm, mount = _units.render_vm(s), _units.render_mount(s)
    assert "Conflicts=vm_mount@%i.service" in vm.splitlines()
    assert "Conflicts=vm@%i.service" in mount.splitlines()
    # the mount is stopped before the VM starts (vm@ is ordered after it), never both ways
    assert "vm_mount@%i.service" in _after(vm) and "vm@%i.service" not in _after(mount)


@pytest.mark.parametrize("stop_timeout, wait", [(300, 265), (71, 36), (70, 35), (20, 10), (1, 1)])
def test_stop_wait_leaves_room_for_destroy(stop_timeout, wait):
    assert _units.stop_wait(stop_timeout) == wait


@pytest.mark.parametrize("given, field", [
    ({"config_path": "etc/xen"}, "config_path"),
    ({"mount_base": "/mnt/my vms"}, "mount_base"),
    ({"xl_path": "/usr/sbin/xl;reboot"}, "xl_path"),
    ({"initrd_link": "/etc/xen/%n"}, "initrd_link"),
    ({"start_timeout": 0}, "start_timeout"),
    ({"stop_timeout": True}, "stop_timeout"),
    ({"umount_timeout": "20"}, "umount_timeout"),
    ({"bogus": 1}, "bogus"),
])
def test_settings_reject_bad_values(given, field):
    with pytest.raises(ValidationError) as info:
        _units.settings(**given)
    assert info.value.field == field


def test_marker_and_root_env_files():
    assert _units.render_iscsi_marker("iqn.2024-01.org.example:acme-web1", "10.0.0.2:3260") == (
        "VMAN_ISCSI_TARGET=iqn.2024-01.org.example:acme-web1\nVMAN_ISCSI_PORTAL=10.0.0.2:3260\n")
    assert _units.render_root_env("10.0.0.2:/srv/nfs/acme/web1-root", "nfs") == (
        "VMAN_ROOT_SOURCE=10.0.0.2:/srv/nfs/acme/web1-root\nVMAN_ROOT_FSTYPE=nfs\n")
    with pytest.raises(ValidationError):
        _units.render_iscsi_marker("iqn.x:a\nVMAN_ISCSI_PORTAL=evil", "10.0.0.2")
    with pytest.raises(ValidationError):
        _units.render_root_env("/dev/sda1 $(reboot)", "ext4")


# ---- systemd-analyze verify, for real -----------------------------------------------------

@pytest.mark.real
@needs_analyze
@pytest.mark.parametrize("given", [
    {},
    {"start_timeout": 1, "stop_timeout": 3600, "iscsi_login_timeout": 5, "iscsi_logout_timeout": 6,
     "mount_timeout": 7, "umount_timeout": 8, "config_path": "/srv/xen", "mount_base": "/srv/m",
     "initrd_link": "/boot/xen-initrd", "helper_path": "/opt/vman", "prepare_timeout": 9,
     "prepare_commands": ["/bin/true 'a b' 100%", ["/bin/echo", 'say "$HOME"\\']]},
])
def test_every_rendered_unit_passes_verify(fake_xl, given):
    s = _units.settings(xl_path=fake_xl, **given)
    _units.verify_units(s)     # raises on any error or warning about our units


@pytest.mark.real
@needs_analyze
def test_verify_rejects_a_missing_xl():
    with pytest.raises(CommandError) as info:
        _units.verify_units(_units.settings(xl_path="/nonexistent/xl"))
    assert "vm@i.service: Command /nonexistent/xl is not executable" in str(info.value)


@pytest.mark.real
@needs_analyze
def test_verify_rejects_a_warning_about_our_units(fake_xl, monkeypatch):
    real = _units.render_mount
    monkeypatch.setattr(_units, "render_mount",
                        lambda s: real(s).replace("TimeoutStopSec=20", "TimeoutStopSec=soon"))
    with pytest.raises(CommandError) as info:
        _units.verify_units(_units.settings(xl_path=fake_xl))
    assert str(info.value).endswith(
        "rejected the rendered units: vm_mount@.service:17: Failed to parse time value, ignoring: soon")


# ---- helper scripts, run for real --------------------------------------------------------

def _fake_xl_domain(tmp_path, polls_until_gone, destroy_kills=True):
    """A fake xl whose domain disappears after ``polls_until_gone`` ``domid`` calls (never when
    negative) or when destroyed."""
    state = tmp_path / "polls"
    state.write_text("0")
    log = tmp_path / "xl.log"
    return _executable(tmp_path / "xl", f"""#!/bin/sh
echo "$*" >> {log}
case "$1" in
  domid)
    [ -e {tmp_path}/destroyed ] && exit 1
    n=$(cat {state}); echo $((n + 1)) > {state}
    if [ {polls_until_gone} -ge 0 ] && [ "$n" -ge {polls_until_gone} ]; then exit 1; fi
    echo 7; exit 0 ;;
  destroy) {'touch ' + str(tmp_path / 'destroyed') if destroy_kills else ':'}; exit 0 ;;
  *) exit 0 ;;
esac
"""), log


def _run_helper(tmp_path, text, args, timeout=60):
    helper = _executable(tmp_path / "helper", text)
    return subprocess.run([helper] + args, capture_output=True, text=True, timeout=timeout, check=False)


def test_stop_helper_waits_until_the_domain_is_gone(tmp_path):
    xl, log = _fake_xl_domain(tmp_path, polls_until_gone=3)
    proc = _run_helper(tmp_path, _units.render_stop_helper(), [xl, "acme-web1", "30"])
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls == ["domid acme-web1", "shutdown -F acme-web1", "domid acme-web1",
                     "domid acme-web1", "domid acme-web1"]


def test_stop_helper_destroys_after_the_wait(tmp_path):
    xl, log = _fake_xl_domain(tmp_path, polls_until_gone=-1)
    proc = _run_helper(tmp_path, _units.render_stop_helper(), [xl, "acme-web1", "2"])
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert "destroy acme-web1" in calls and calls[-1] == "domid acme-web1"
    assert "still exists after 2 s, destroying it" in proc.stderr


def test_stop_helper_does_nothing_for_an_absent_domain(tmp_path):
    xl, log = _fake_xl_domain(tmp_path, polls_until_gone=0)
    proc = _run_helper(tmp_path, _units.render_stop_helper(), [xl, "acme-web1", "5"])
    assert proc.returncode == 0 and log.read_text().splitlines() == ["domid acme-web1"]


def test_stop_helper_usage(tmp_path):
    proc = _run_helper(tmp_path, _units.render_stop_helper(), ["xl"])
    assert proc.returncode == 2 and "usage" in proc.stderr


@pytest.mark.parametrize("action, rc, ok", [
    ("login", 0, True), ("login", 15, True), ("login", 8, False),
    ("logout", 0, True), ("logout", 21, True), ("logout", 15, False),
])
def test_iscsi_helper_accepts_only_harmless_codes(tmp_path, action, rc, ok):
    log = tmp_path / "iscsiadm.log"
    iscsiadm = _executable(tmp_path / "iscsiadm", f"""#!/bin/sh
echo "$*" >> {log}
case "$*" in *--login*|*--logout*) exit {rc} ;; esac
exit 0
""")
    proc = _run_helper(tmp_path, _units.render_iscsi_helper(),
                       [iscsiadm, action, "iqn.2024-01.org.example:acme-web1", "10.0.0.2"])
    assert (proc.returncode == 0) is ok, proc.stderr
    calls = log.read_text().splitlines()
    node = f"-m node -T iqn.2024-01.org.example:acme-web1 -p 10.0.0.2 --{action}"
    if action == "login":
        assert calls == ["-m discovery -t sendtargets -p 10.0.0.2", node]
    else:
        assert calls == [node]


def _fake_mount(tmp_path):
    log = tmp_path / "mount.log"
    return _executable(tmp_path / "mount", f'#!/bin/sh\necho "$*" >> {log}\nexit 0\n'), log


def test_mount_helper_mounts_nfs_without_waiting(tmp_path):
    mount, log = _fake_mount(tmp_path)
    proc = _run_helper(tmp_path, _units.render_mount_helper(),
                       [mount, "nfs", "10.0.0.2:/srv/nfs/acme/web1-root", "/mnt/vms/acme-web1", "0"])
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == "-t nfs 10.0.0.2:/srv/nfs/acme/web1-root /mnt/vms/acme-web1\n"


def test_mount_helper_waits_for_the_block_device_then_gives_up(tmp_path):
    mount, log = _fake_mount(tmp_path)
    missing = "/dev/disk/by-path/ip-10.0.0.3:3260-iscsi-iqn.2024-01.org.example.vman-test:acme-web1-lun-0"
    assert not os.path.exists(missing)
    proc = _run_helper(tmp_path, _units.render_mount_helper(),
                       [mount, "ext4", missing, "/mnt/vms/acme-web1", "2"])
    assert proc.returncode == 1 and f"no block device {missing} after 2 s" in proc.stderr
    assert not log.exists()


def test_mount_helper_mounts_a_source_outside_dev_at_once(tmp_path):
    """tmpfs (the Xen testbed's stand-in root) or anything not under /dev: no wait."""
    mount, log = _fake_mount(tmp_path)
    proc = _run_helper(tmp_path, _units.render_mount_helper(),
                       [mount, "tmpfs", "tmpfs", "/mnt/vms/acme-web1", "30"], timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == "-t tmpfs tmpfs /mnt/vms/acme-web1\n"


def test_mount_helper_mounts_a_block_device_that_is_there(tmp_path):
    mount, log = _fake_mount(tmp_path)
    device = next(p for p in ("/dev/loop0", "/dev/ram0", "/dev/sda", "/dev/vda")
                  if stat.S_ISBLK(os.stat(p).st_mode)) if any(
        os.path.exists(p) for p in ("/dev/loop0", "/dev/ram0", "/dev/sda", "/dev/vda")) else None
    if device is None:
        pytest.skip("no block device on this machine")
    proc = _run_helper(tmp_path, _units.render_mount_helper(),
                       [mount, "ext4", device, "/mnt/vms/acme-web1", "5"])
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == f"-t ext4 {device} /mnt/vms/acme-web1\n"


def test_mount_waits_up_to_the_login_timeout():
    s = _units.settings(iscsi_login_timeout=90, mount_timeout=15)
    lines = _units.render_mount(s).splitlines()
    assert "TimeoutStartSec=105" in lines
    assert any(line.startswith("ExecStart=") and line.endswith(" /mnt/vms/%i 90") for line in lines)


def test_helpers_are_valid_sh():
    _units.check_shell({"vm-stop": _units.render_stop_helper(),
                        "vm-iscsi": _units.render_iscsi_helper(),
                        "vm-mount": _units.render_mount_helper()})
    with pytest.raises(CommandError):
        _units.check_shell({"broken": "if then fi\n"})


# ---- installer ----------------------------------------------------------------------------

class FakeSystemctl:
    def __init__(self):
        self.reloads = 0

    def daemon_reload(self):
        self.reloads += 1


def _installer(tmp_path, fake_xl, check_mode=False, daemon_reload="auto", booted=False, **given):
    s = _units.settings(xl_path=fake_xl, helper_path=str(tmp_path / "libexec"), **given)
    ctl = FakeSystemctl()
    inst = _units.UnitInstaller(s, str(tmp_path / "units"), check_mode=check_mode,
                                daemon_reload=daemon_reload, systemctl=ctl,
                                booted=lambda: booted)
    return inst, ctl


@needs_analyze
def test_installer_writes_once_then_nothing(tmp_path, fake_xl):
    inst, ctl = _installer(tmp_path, fake_xl, booted=True)
    first, diffs = inst.apply()
    assert first["changed"] is True and first["daemon_reloaded"] is True and ctl.reloads == 1
    assert [f["path"] for f in first["files"]] == [
        str(tmp_path / "units" / n) for n in ("vm@.service", "vm_iscsi@.service",
                                              "vm_mount@.service", "vm_prepare.service")] + [
        str(tmp_path / "libexec" / n) for n in ("vm-stop", "vm-iscsi", "vm-mount")]
    assert len(diffs) == 7 and all(d["before_header"] == "(absent)" for d in diffs)
    assert stat.S_IMODE(os.stat(tmp_path / "libexec" / "vm-stop").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "units" / "vm@.service").st_mode) == 0o644
    second, diffs = inst.apply()
    assert second["changed"] is False and diffs == [] and ctl.reloads == 1
    assert second["daemon_reloaded"] is False


@needs_analyze
def test_installer_rewrites_only_the_changed_unit(tmp_path, fake_xl):
    _installer(tmp_path, fake_xl)[0].apply()
    inst, ctl = _installer(tmp_path, fake_xl, booted=True, mount_timeout=99)
    result, diffs = inst.apply()
    assert [f["path"] for f in result["files"] if f["changed"]] == [
        str(tmp_path / "units" / "vm_mount@.service")]
    assert "TimeoutStartSec=139" in diffs[0]["after"] and "TimeoutStartSec=60" in diffs[0]["before"]
    assert ctl.reloads == 1


@needs_analyze
def test_installer_repairs_a_helper_mode_without_reload(tmp_path, fake_xl):
    _installer(tmp_path, fake_xl)[0].apply()
    os.chmod(tmp_path / "libexec" / "vm-stop", 0o644)
    inst, ctl = _installer(tmp_path, fake_xl, booted=True)
    result, dummy = inst.apply()
    assert result["changed"] is True and ctl.reloads == 0     # no unit changed
    assert stat.S_IMODE(os.stat(tmp_path / "libexec" / "vm-stop").st_mode) == 0o755


@needs_analyze
def test_installer_check_mode_writes_nothing(tmp_path, fake_xl):
    inst, ctl = _installer(tmp_path, fake_xl, check_mode=True, booted=True)
    result, diffs = inst.apply()
    assert result["changed"] is True and result["daemon_reloaded"] is True and len(diffs) == 7
    assert not (tmp_path / "units").exists() and not (tmp_path / "libexec").exists()
    assert ctl.reloads == 0


@needs_analyze
def test_installer_installs_nothing_when_verify_fails(tmp_path):
    inst, ctl = _installer(tmp_path, "/nonexistent/xl", booted=True)
    with pytest.raises(CommandError) as info:
        inst.apply()
    assert "not executable" in str(info.value)
    assert not (tmp_path / "units").exists() and not (tmp_path / "libexec").exists()
    assert ctl.reloads == 0


@needs_analyze
@pytest.mark.parametrize("mode, booted, reloads", [
    ("auto", True, 1), ("auto", False, 0), ("always", False, 1), ("never", True, 0)])
def test_daemon_reload_modes(tmp_path, fake_xl, mode, booted, reloads):
    inst, ctl = _installer(tmp_path, fake_xl, daemon_reload=mode, booted=booted)
    result, dummy = inst.apply()
    assert ctl.reloads == reloads and result["daemon_reloaded"] is bool(reloads)


def test_systemd_booted_looks_for_the_run_directory(tmp_path):
    assert _units.systemd_booted(str(tmp_path)) is True
    assert _units.systemd_booted(str(tmp_path / "missing")) is False


def test_vm_unit_name():
    assert _units.vm_unit("acme-web1") == "vm@acme-web1.service"
