# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real-LXC testbed from pytest: lxc-setup.sh once per session, lxc-down.sh at the end.

Set VMAN_LXC_KEEP=1 to keep containers and bridge after the session (debugging).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _can_run_lxc():
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/proc/self/ns/net") or not os.path.isdir("/sys/fs/cgroup"):
        return "no namespaces or cgroups"
    if shutil.which("apt-get") is None and shutil.which("lxc-create") is None:
        return "no lxc and no apt-get to install it"
    return None


@pytest.fixture(scope="session")
def lxc_testbed():
    """``{'LXC_PATH', 'BRIDGE', 'GATEWAY', 'BASE', 'CACHE', 'RELEASE', 'TEMPLATE_SECONDS'?}``."""
    reason = _can_run_lxc()
    if reason:
        pytest.skip(f"real LXC impossible here: {reason}")
    proc = subprocess.run(["bash", os.path.join(HERE, "lxc-setup.sh")], capture_output=True,
                          text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    os.environ["LXC_CACHE_PATH"] = info["CACHE"]     # scratch creates reuse the template cache
    yield info
    if not os.environ.get("VMAN_LXC_KEEP"):
        subprocess.run(["bash", os.path.join(HERE, "lxc-down.sh")], timeout=300, check=False)
