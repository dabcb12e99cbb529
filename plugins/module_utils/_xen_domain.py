# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Batch convergence of Xen domains (private, no stability promise).

One :class:`DomainConverger` call renders every VM's xl.cfg, compares it with the file on
disk, writes only what changed (atomically), then brings each domain to its state through
``systemd`` (``vm@<org>-<name>.service``) or ``xl`` directly. Check mode stops before every act.
"""

from __future__ import annotations

import os

from ansible_collections.vman.lifecycle.plugins.module_utils import _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._files import read_text, write_atomic
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_text
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import REDACTED
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import CommandError
from ansible_collections.vman.lifecycle.plugins.module_utils._units import vm_unit

#: seconds ``systemctl start vm@...`` may block before the module gives up
START_BACKSTOP = 900


def config_file(config_path: str, full_name: str) -> str:
    """Where a domain's xl.cfg lives: ``<config_path>/<org>-<name>.cfg``."""
    return os.path.join(config_path, f"{full_name}.cfg")


def redact_config(text: str | None, spec=None) -> str | None:
    """Config text for a diff: every secret line masked (:func:`_fleet.redact_text`, so the
    old file's ``spicepasswd`` too, not only the new spec's), and any remaining occurrence
    of the spec's SPICE password replaced."""
    text = redact_text(text)
    if text is None or spec is None or not spec.spicepasswd:
        return text
    return text.replace(spec.spicepasswd, REDACTED)


class DomainConverger:
    """Converge a batch of :class:`VmSpec` on one Xen host."""

    def __init__(self, config_path, toolstack, systemctl=None, manager="systemd",
                 check_mode=False, shutdown_timeout=300, restart_on_change=False,
                 purge=False, backup=False):
        self.config_path = config_path
        self.xl = toolstack
        self.systemctl = systemctl
        self.manager = manager
        self.check_mode = check_mode
        self.shutdown_timeout = shutdown_timeout
        self.restart_on_change = restart_on_change
        self.purge = purge
        self.backup = backup

    # -- live state ------------------------------------------------------------------------

    def live_domains(self, states) -> dict | None:
        """Running domains, or None when ``xl`` is absent and no state needs a toolstack.

        Without ``xl`` no domain can run here, so ``present`` and ``absent`` reduce to managing
        files; ``running`` and ``stopped`` need a Xen host and fail clearly.
        """
        try:
            return self.xl.list()
        except CommandError as exc:
            if exc.rc != 127:
                raise
            if all(s in ("present", "absent") for s in states):
                return None
            needing = sorted({s for s in states if s not in ("present", "absent")})
            exc.args = (f"state {', '.join(needing)} needs the xl toolstack: {exc}",)
            raise

    # -- acts (skipped in check mode by the callers) ----------------------------------------

    def _start(self, spec, path):
        if self.manager == "systemd":
            # systemd ends the start at the unit's TimeoutStartSec; this is only a backstop
            # (the runner's 60 s default was too short for xl create on a loaded TCG testbed)
            self.systemctl.start(vm_unit(spec.full_name), timeout=START_BACKSTOP)
        else:
            self.xl.create(path)

    def _stop(self, spec):
        if self.manager == "systemd":
            self.systemctl.stop(vm_unit(spec.full_name), timeout=self.shutdown_timeout + 30)
            # ExecStop may time out and leave the domain; make sure it is gone.
            if self.xl.domid(spec.full_name) is not None:
                self.xl.shutdown(spec.full_name, timeout=self.shutdown_timeout)
        else:
            self.xl.shutdown(spec.full_name, timeout=self.shutdown_timeout)

    def _set_enabled(self, spec, want: bool) -> bool:
        unit = vm_unit(spec.full_name)
        if self.systemctl.is_enabled(unit) == want:
            return False
        if not self.check_mode:
            (self.systemctl.enable if want else self.systemctl.disable)(unit)
        return True

    # -- one VM ------------------------------------------------------------------------------

    def converge_one(self, spec, desired: str, live: dict | None):
        """Return ``(result, diff or None)`` for one VM."""
        path = config_file(self.config_path, spec.full_name)
        domain = live.get(spec.full_name) if live is not None else None
        before = "unknown" if live is None else ("running" if domain else "stopped")
        result = {"name": spec.full_name, "config_path": path, "state_before": before,
                  "changed": False, "config_changed": False, "domid": domain.domid if domain else None,
                  "drift": {}, "restart_required": False}
        existing = read_text(path)
        diff = None

        if desired == "absent":
            if domain:
                if not self.check_mode:
                    self._stop(spec)
                result["changed"] = True
            if self.manager == "systemd" and live is not None:
                result["changed"] |= self._set_enabled(spec, False)
            if self.purge and existing is not None:
                if not self.check_mode:
                    os.unlink(path)
                result["changed"] = result["config_changed"] = True
                diff = {"before_header": path, "after_header": path,
                        "before": redact_config(existing, spec), "after": ""}
            result["state_after"] = "stopped" if live is not None else "unknown"
            result["domid"] = None
            return result, diff

        created = _xl.parse_header(existing or "").get("created")
        text = _xl.render(spec, created=created)
        if text != existing:
            result["config_changed"] = result["changed"] = True
            diff = {"before_header": path if existing is not None else "(absent)",
                    "after_header": path,
                    "before": redact_config(existing or "", spec),
                    "after": redact_config(text, spec)}
            if not self.check_mode:
                backup = write_atomic(path, text, 0o600 if spec.spicepasswd else 0o644, self.backup)
                if backup:
                    result["backup_file"] = backup

        if domain:
            result["drift"] = _xl.drift(spec, domain)
            result["restart_required"] = bool(result["config_changed"] or result["drift"])

        after = before
        if desired == "running":
            if not domain:
                if not self.check_mode:
                    self._start(spec, path)
                result["changed"], after = True, "running"
            elif result["restart_required"] and self.restart_on_change:
                if not self.check_mode:
                    self._stop(spec)
                    self._start(spec, path)
                result["changed"] = True
                result["restart_required"] = False
        elif desired == "stopped" and domain:
            if not self.check_mode:
                self._stop(spec)
            result["changed"], after = True, "stopped"
            result["restart_required"] = False

        if self.manager == "systemd" and live is not None:
            result["changed"] |= self._set_enabled(spec, spec.auto_boot)
        result["state_after"] = after
        if after == "running" and not self.check_mode and (not domain or result["changed"]):
            result["domid"] = self.xl.domid(spec.full_name)
        elif after != "running":
            result["domid"] = None
        return result, diff

    def converge(self, specs, default_state="present"):
        """Converge all specs; return ``(results, diffs)``."""
        states = [s.state or default_state for s in specs]
        live = self.live_domains(states)
        results, diffs = [], []
        for spec, desired in zip(specs, states):
            try:
                result, diff = self.converge_one(spec, desired, live)
            except CommandError as exc:
                # Keep the command, rc and output of the error, and say which VM it was.
                exc.args = (f"{spec.full_name}: {exc}",)
                raise
            results.append(result)
            if diff:
                diffs.append(diff)
        return results, diffs
