# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Xen testbed from Python: a :class:`Testbed` over xen-up.sh / xen-down.sh, and a pytest
plugin with the session fixture ``xen_testbed`` so that all Xen tests of one run share ONE boot.

Use in tests (``tests/testbed/conftest.py`` re-exports the fixture; elsewhere load this file as
a plugin, e.g. ``pytest -p xen_testbed`` with ``tests/testbed`` on the Python path)::

    @pytest.mark.real
    def test_something(xen_testbed):
        assert xen_testbed.ssh(["xl", "list"]).rc == 0

When ``VMAN_XEN_TESTBED`` names the state directory of a testbed that is already up (booted by
``tests/testbed/xen-up.sh DIR``, e.g. once by ``make test`` for pytest, molecule and
playbooks alike), the fixture attaches to it and never powers it off. Otherwise it boots one in
a temporary directory and stops it at the end of the session.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import time

import pytest

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError, VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Result, run

HERE = pathlib.Path(__file__).resolve().parent
ENV_VAR = "VMAN_XEN_TESTBED"
HOST_ALIAS = "testbed"

# What ssh/scp print (exit 255) when the connection itself failed, before any remote command
# ran: retrying these cannot run a command twice. Under TCG on a loaded 2-core machine (load
# 10-14) the dom0's sshd answered the banner too late for ConnectTimeout (seen: five tests of one
# xen-pytest run failed this way), so these are retried with a bounded backoff.
CONNECT_FAILURES = (
    "Connection timed out during banner exchange",
    "banner exchange",
    "kex_exchange_identification",
    "Connection reset by peer",
    "Connection refused",
    "Connection timed out",
    "Connection closed by remote host",
)
CONNECT_ATTEMPTS = int(os.environ.get("VMAN_XEN_SSH_ATTEMPTS", "5"))
CONNECT_BACKOFF = (5, 10, 20, 40)   # seconds slept before attempts 2, 3, 4, 5...


def connect_failed(result: Result) -> bool:
    """True when ssh/scp exited 255 because the connection itself failed."""
    return result.rc == 255 and any(text in result.stderr for text in CONNECT_FAILURES)


class TestbedError(VmanError):
    """The testbed could not be booted, reached or stopped."""


def read_env(path: pathlib.Path) -> dict:
    """Parse the KEY=VALUE lines that xen-up.sh writes (values may be double-quoted)."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key.strip()] = value
    return values


class Testbed:
    """One Xen host in QEMU, described by its state directory.

    ``owned`` testbeds are booted by :meth:`up` and stopped by :meth:`down`; a testbed that
    someone else booted (``owned=False``) is only attached to, and ``down()`` leaves it running.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self, state_dir, owned: bool = True, scripts_dir=HERE):
        self.state_dir = pathlib.Path(state_dir).resolve()
        self.owned = owned
        self.scripts_dir = pathlib.Path(scripts_dir)
        self.env: dict = {}
        self._kernel = None

    @classmethod
    def from_environment(cls) -> "Testbed | None":
        """The already booted testbed named by ``VMAN_XEN_TESTBED``, or None."""
        state = os.environ.get(ENV_VAR)
        if not state:
            return None
        testbed = cls(state, owned=False)
        testbed.attach()
        return testbed

    # ---- paths written by xen-up.sh ----------------------------------------------------------
    @property
    def ssh_config(self) -> pathlib.Path:
        return self.state_dir / "ssh_config"

    @property
    def inventory(self) -> pathlib.Path:
        return self.state_dir / "inventory.ini"

    @property
    def serial_log(self) -> pathlib.Path:
        return self.state_dir / "serial.log"

    @property
    def port(self) -> int:
        return int(self.env["XEN_TESTBED_PORT"])

    # ---- life ------------------------------------------------------------------------------
    def up(self, timeout: float = 300, build_timeout: float = 1800) -> "Testbed":
        """Build the image if needed, boot, and wait for SSH (``timeout`` seconds of boot)."""
        try:
            run([str(self.scripts_dir / "xen-up.sh"), str(self.state_dir)],
                timeout=build_timeout + timeout,
                env={"VMAN_XEN_BOOT_TIMEOUT": str(int(timeout))})
        except VmanError as exc:
            raise TestbedError(f"xen testbed did not come up: {exc}\n"
                               f"{getattr(exc, 'stderr', '')[-4000:]}") from None
        return self.attach()

    def attach(self) -> "Testbed":
        """Read the connection data of a booted testbed and check that SSH answers."""
        env_file = self.state_dir / "env"
        if not env_file.is_file():
            raise TestbedError(f"no booted xen testbed in {self.state_dir} (missing env file)")
        self.env = read_env(env_file)
        self.ssh(["true"], timeout=30)
        return self

    def down(self) -> None:
        """Power off and clean up (only a testbed this object booted). Safe to call twice."""
        if not self.owned:
            return
        run([str(self.scripts_dir / "xen-down.sh"), str(self.state_dir)], timeout=120)
        self.env = {}

    # ---- use -------------------------------------------------------------------------------
    def ssh_argv(self, argv) -> list:
        """The local argv that runs ``argv`` (a list) in dom0, quoted for the remote shell."""
        if isinstance(argv, (str, bytes)):
            raise TypeError("ssh() takes an argv list, not a string")
        return ["ssh", "-F", str(self.ssh_config), HOST_ALIAS, "--", shlex.join(map(str, argv))]

    def kernel(self) -> str:
        """The dom0's running kernel, ``/boot/vmlinuz-<uname -r>``: what domUs boot. Not the
        newest file in /boot, since test_xen_initrd_real "installs" a second kernel for a while
        and xen-pytest runs its files concurrently."""
        if self._kernel is None:
            self._kernel = "/boot/vmlinuz-" + self.ssh(["uname", "-r"]).stdout.strip()
        return self._kernel

    def ssh(self, argv, *, check: bool = True, timeout: float | None = 120,
            data: str | None = None) -> Result:
        """Run ``argv`` in dom0 as root; raises CommandError on failure when ``check``.

        A failed connection (see ``CONNECT_FAILURES``) is retried with backoff; when every
        attempt failed so, :class:`TestbedError` says whether QEMU still runs.
        """
        return self._connect(self.ssh_argv(argv), check=check, timeout=timeout, data=data)

    def copy_to(self, src, dest: str, *, timeout: float | None = 300) -> Result:
        """Copy a local file or directory to ``dest`` in dom0."""
        src = pathlib.Path(src)
        recursive = ["-r"] if src.is_dir() else []
        return self._connect(["scp", "-q", "-F", str(self.ssh_config), *recursive, str(src),
                              f"{HOST_ALIAS}:{dest}"], timeout=timeout)

    def copy_from(self, src: str, dest, *, timeout: float | None = 300) -> Result:
        """Copy a file from dom0 to a local path."""
        return self._connect(["scp", "-q", "-F", str(self.ssh_config), f"{HOST_ALIAS}:{src}",
                              str(dest)], timeout=timeout)

    def _connect(self, argv, *, check: bool = True, timeout: float | None = 120,
                 data: str | None = None, sleep=time.sleep) -> Result:
        started = time.monotonic()
        attempts = max(1, CONNECT_ATTEMPTS)
        for attempt in range(1, attempts + 1):
            result = run(argv, check=False, timeout=timeout, data=data)
            if not connect_failed(result):
                if check and result.rc != 0:
                    raise CommandError(result.argv, result.rc, result.stdout, result.stderr)
                return result
            if attempt < attempts:
                sleep(CONNECT_BACKOFF[min(attempt, len(CONNECT_BACKOFF)) - 1])
        raise TestbedError(
            f"xen testbed unreachable over SSH: {attempts} attempts in "
            f"{time.monotonic() - started:.0f} s, last: {result.stderr.strip()[-300:]!r}; "
            f"{self._qemu_status()} (serial log: {self.serial_log})")

    def _qemu_status(self) -> str:
        pid_file = self.state_dir / "qemu.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return "no QEMU pid file (the testbed is gone)"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"QEMU pid {pid} is gone (the testbed died)"
        except PermissionError:
            pass
        return f"QEMU pid {pid} still runs (the dom0 is alive but not answering: overloaded?)"

    def write_file(self, path: str, text: str, mode: str = "0644") -> None:
        """Write ``text`` to ``path`` in dom0 (through stdin, no temp file here)."""
        self.ssh(["install", "-D", "-m", mode, "/dev/stdin", path], data=text)


def _can_boot() -> str | None:
    """Why this machine cannot boot the testbed, or None when it can."""
    if os.geteuid() != 0:
        return "the Xen testbed needs root (debootstrap/chroot for the image, apt-get for QEMU)"
    return None


@pytest.fixture(scope="session")
def xen_testbed(tmp_path_factory):
    """The Xen testbed shared by every test of the session (booted once, stopped at the end)."""
    attached = Testbed.from_environment()
    if attached is not None:
        yield attached
        return
    reason = _can_boot()
    if reason:
        pytest.skip(reason)
    testbed = Testbed(tmp_path_factory.mktemp("xen-testbed"))
    try:
        testbed.up(timeout=float(os.environ.get("VMAN_XEN_BOOT_TIMEOUT", "300")))
        yield testbed
    finally:
        testbed.down()
