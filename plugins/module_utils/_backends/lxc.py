# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The LXC guest backend over :class:`_lxc.LxcGuestManager` (private, no stability promise)."""

from __future__ import annotations

import os

from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.base import (
    MARKER_PATH, RUNNING, STOPPED, SUSPENDED, GuestBackend, check_options, host_boot_id, proc_starttime)
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Runner, fmt_flag, fmt_opt

#: lxc-info's words -> the interface's (others, STARTING, STOPPING ..., are kept in lower case)
_STATES = {"RUNNING": RUNNING, "STOPPED": STOPPED, "FROZEN": SUSPENDED}
#: the container entry keys of lxc_guest a spec may carry (the rest of a store spec, memory,
#: vcpus, os, describes the VM for the other kinds and is not LXC's)
ENTRY_KEYS = tuple(k for k in _lxc.DEFAULTS if k != "state") + ("ip", "mac", "password")
HOST_KEYS = ("lxc_path", "settings_dir", "host_id", "production", "force_snapshot",
             "stop_timeout", "start_timeout", "defaults")


class LxcGuest(GuestBackend):
    """LXC containers under one lxcpath, made and started by :class:`_lxc.LxcGuestManager`.

    ``spec`` is one ``lxc_guest`` container entry without ``name`` (profile_type,
    from_container, ip, ...; other keys are ignored); ``defaults`` are the host-wide entry
    options. A container's ``ip`` not in its spec comes from the ``vm`` netconf.
    A container shares the host kernel, so its boot id is derived from the host's boot id and
    the PID and start time of the container's init: it changes at every container start.
    ``delete(keep_storage=True)`` stops the container and leaves it defined (its root file
    system is its disk); ``keep_storage=False`` destroys it and its settings file.
    ``suspend`` freezes the container's processes (``lxc-freeze``; memory stays in RAM),
    ``resume`` thaws them (``lxc-unfreeze``). No snapshots.
    """

    kind = "lxc"
    options = HOST_KEYS + ENTRY_KEYS
    reader_options = ("lxc_path", "ssh", "ssh_args")
    has_marker = True
    keeps_guest_with_storage = True

    def __init__(self, lxc_path="/var/lib/lxc", settings_dir="/var/lib/vman/lxc", host_id=None,
                 production=True, defaults=None, stop_timeout=30, start_timeout=30, lxc=None,
                 force_snapshot=False, executor=None, timeout=600):
        self.lxc = lxc or _lxc.LxcBackend(lxc_path, executor=executor, timeout=timeout)
        self.settings = _lxc.SettingsStore(settings_dir)
        self.defaults = dict(defaults or {})
        self.stop_timeout = stop_timeout
        self.manager = _lxc.LxcGuestManager(self.lxc, self.settings, host_id=host_id,
                                            production=production, stop_timeout=stop_timeout,
                                            start_timeout=start_timeout,
                                            force_snapshot=force_snapshot)
        kwargs = {"timeout": timeout} if executor is None else {"timeout": timeout, "executor": executor}
        formats = {"lxcpath": fmt_opt("-P"), "name": fmt_opt("-n"), "pid": fmt_flag("-p"),
                   "humanless": fmt_flag("-H"), "one": fmt_flag("-1"), "frozen": fmt_flag("--frozen")}
        self._tools = {tool: Runner.for_binary(tool, formats, **kwargs)
                       for tool in ("lxc-info", "lxc-freeze", "lxc-unfreeze", "lxc-ls")}

    @classmethod
    def from_options(cls, options, timeout=None):
        opts = {k: v for k, v in (options or {}).items() if v is not None}
        check_options(opts, cls.options, "lxc")
        defaults = dict(opts.get("defaults") or {})
        defaults.update({k: opts[k] for k in ENTRY_KEYS if k in opts})
        kwargs = {k: opts[k] for k in ("host_id", "production", "force_snapshot", "stop_timeout",
                                       "start_timeout") if k in opts}
        return cls(opts.get("lxc_path") or "/var/lib/lxc",
                   opts.get("settings_dir") or "/var/lib/vman/lxc", defaults=defaults, **kwargs)

    @classmethod
    def reader(cls, options, executor=None, timeout=30):
        lxc_path = (options or {}).get("lxc_path") or "/var/lib/lxc"
        return cls(lxc_path, "/nonexistent", host_id="fleet-inventory",
                   lxc=_lxc.LxcBackend(lxc_path, executor=executor, timeout=timeout),
                   executor=executor, timeout=timeout)

    def _entry(self, name, spec, netconfs, state):
        entry = {k: v for k, v in (spec or {}).items() if k in ENTRY_KEYS}
        ipv4 = ((netconfs or {}).get("vm") or {}).get("ipv4")
        if not entry.get("ip") and ipv4:
            entry["ip"] = ipv4
        entry.update(name=name, state=state)
        return entry

    def _converge(self, name, spec, netconfs, state):
        _results, _diffs, changed = self.manager.converge(
            _lxc.build_specs([self._entry(name, spec, netconfs, state)], self.defaults))
        return changed

    def define(self, name, spec, netconfs=None):
        if self.lxc.state(name) is None:
            return self._converge(name, spec, netconfs, "present")
        return False

    def start(self, name, spec=None, netconfs=None):
        raw = self.lxc.state(name)
        if raw == "RUNNING":
            return
        if raw == "FROZEN":
            raise StateError(f"{name}: the container is frozen (suspended); resume it")
        if spec is None:
            self.lxc.start(name)
        else:
            self._converge(name, spec, netconfs, "started")

    def stop(self, name, timeout=None):
        raw = self.lxc.state(name)
        if raw == "FROZEN":
            # a frozen init cannot act on the shutdown signal: thaw it first
            self.resume(name)
            raw = "RUNNING"
        if raw not in (None, "STOPPED"):
            self.lxc.stop(name, self.stop_timeout if timeout is None else timeout)

    def delete(self, name, keep_storage=True, spec=None, netconfs=None):
        if keep_storage:
            self.stop(name)
            return
        if self.lxc.state(name) is not None:
            self.lxc.destroy(name)
        self.settings.delete(name)

    def state(self, name):
        raw = self.lxc.state(name)
        if raw is None:
            return None
        return _STATES.get(raw, raw.lower())

    def _ls(self, **flags):
        order = ["lxcpath", "one"] + list(flags)
        res = self._tools["lxc-ls"](order, lxcpath=self.lxc.lxcpath, one=True, **flags)
        return {n for n in res.stdout.split() if n}

    def states(self, names):
        """Three ``lxc-ls`` calls (all, running, frozen) whatever the number of names."""
        if not self.lxc.has_lxcpath():
            raise VmanError(f"lxc_path {self.lxc.lxcpath} is not a directory")
        known = set(self.lxc.list())
        running = set(self.lxc.list(running=True))
        frozen = self._ls(frozen=True) if running else set()
        out = {}
        for name in names:
            if name in frozen:
                out[name] = SUSPENDED
            elif name in running:
                out[name] = RUNNING
            else:
                out[name] = STOPPED if name in known else None
        return out

    def facts(self, name):
        res = self._tools["lxc-info"](["lxcpath", "name", "pid", "humanless"], lxcpath=self.lxc.lxcpath,
                                      name=_lxc.validate_name(name), pid=True, humanless=True,
                                      check=False)
        pid = res.stdout.strip()
        boot_id = None
        if res.rc == 0 and pid.isdigit():
            try:
                boot_id = f"{host_boot_id()}:{pid}:{proc_starttime(pid)}"
            except (OSError, IndexError):
                boot_id = None
        return {"boot_id": boot_id, "addresses": self.lxc.ipv4(name)}

    def capacity(self):
        with open("/proc/meminfo", encoding="ascii") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal:"))
        return {"vcpus": os.cpu_count() or 1, "memory_mib": kib // 1024}

    def suspend(self, name):
        raw = self.lxc.state(name)
        if raw == "FROZEN":
            return
        if raw != "RUNNING":
            raise StateError(f"{name}: cannot suspend a container that is "
                             f"{'absent' if raw is None else raw.lower()} (it must run)")
        self._tools["lxc-freeze"](["lxcpath", "name"], lxcpath=self.lxc.lxcpath,
                                  name=_lxc.validate_name(name))

    def resume(self, name):
        raw = self.lxc.state(name)
        if raw == "RUNNING":
            return
        if raw != "FROZEN":
            raise StateError(f"{name}: cannot resume a container that is "
                             f"{'absent' if raw is None else raw.lower()} (it is not suspended)")
        self._tools["lxc-unfreeze"](["lxcpath", "name"], lxcpath=self.lxc.lxcpath,
                                    name=_lxc.validate_name(name))

    def read_marker(self, name):
        res = self.lxc.attach(name, ["cat", MARKER_PATH], check=False, timeout=30)
        return res.stdout.strip() or None if res.rc == 0 else None

    def write_marker(self, name, value):
        self.lxc.attach(name, ["mkdir", "-p", os.path.dirname(MARKER_PATH)], timeout=30)
        self.lxc.attach(name, ["tee", MARKER_PATH], data=value + "\n", timeout=30)
