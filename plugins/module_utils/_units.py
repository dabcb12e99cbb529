# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd units of the Xen host (private, no stability promise).

Holds the ``systemctl`` wrapper used to start, stop and enable ``vm@<org>-<name>.service``.
"""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Runner, fmt_flag, fmt_positional


def vm_unit(full_name: str) -> str:
    """The unit that runs a domain: ``vm@<org>-<name>.service``."""
    return f"vm@{full_name}.service"


class Systemctl:
    """A thin ``systemctl`` wrapper (argv only)."""

    def __init__(self, path: str | None = None, executor=None):
        formats = {"quiet": fmt_flag("--quiet"), "verb": fmt_positional(), "units": fmt_positional()}
        if path:
            self.ctl = Runner([path], formats, executor=executor)
        else:
            self.ctl = Runner.for_binary("systemctl", formats, executor=executor)

    def _verb(self, verb, units, check=True, timeout=None):
        return self.ctl(["verb", "units"], verb=verb, units=list(units), check=check,
                        timeout=timeout)

    def is_active(self, unit: str) -> bool:
        return self._verb("is-active", [unit], check=False).rc == 0

    def is_enabled(self, unit: str) -> bool:
        return self._verb("is-enabled", [unit], check=False).stdout.strip() in ("enabled", "enabled-runtime")

    def start(self, unit: str, timeout: float | None = None):
        return self._verb("start", [unit], timeout=timeout)

    def stop(self, unit: str, timeout: float | None = None):
        return self._verb("stop", [unit], timeout=timeout)

    def enable(self, unit: str):
        return self._verb("enable", [unit])

    def disable(self, unit: str):
        return self._verb("disable", [unit])

    def daemon_reload(self):
        return self.ctl(["verb"], verb="daemon-reload")
