# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live power state of the fleet's VMs, for the ``live_state`` option of the ``fleet``
inventory plugin (private, no stability promise).

Three steps: :func:`plan` lists, per configured hypervisor, the guest names its VMs have
there; :func:`ask_all` asks every hypervisor once for all of them (:meth:`Backend.states`),
all hypervisors at the same time, each within its own deadline, and never raises: a hypervisor
that fails or stays silent is reported with the reason; :func:`merge_power` adds the variable
``vman_power_state`` and the group ``power_<state>`` to copies of the host entries. The first
and last steps are pure.

The backends (libvirt, lxc, xl wrappers) are imported on first use only: an inventory without
``live_state`` does not pay for them.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import VAR_PREFIX, group_name

POWER_VAR = f"{VAR_PREFIX}power_state"
#: the hypervisor answered and does not know the guest
ABSENT = "absent"
#: the hypervisor could not be asked (error, timeout)
UNKNOWN = "unknown"
DEFAULT_TIMEOUT = 30


def _backends():
    from ansible_collections.vman.lifecycle.plugins.module_utils import _backends as backends
    return backends


def parse_live_config(value, default_timeout=DEFAULT_TIMEOUT) -> dict:
    """The ``live_state`` option, checked: ``{hypervisor: {"backend", "timeout", "options"}}``.

    Each entry names its ``backend`` (``lxc``, ``xen``, ``libvirt``), optionally a ``timeout``
    in seconds, and the options of that kind (:data:`STATE_READER_OPTIONS`); anything else is
    a :class:`ValidationError` naming the hypervisor and the key.
    """
    if not value:
        return {}
    reader_options = _backends().STATE_READER_OPTIONS
    if not isinstance(value, dict):
        raise ValidationError("live_state", "live_state", value, "must be a mapping of hypervisor names")
    out = {}
    for hypervisor, entry in value.items():
        obj = f"live_state.{hypervisor}"
        if not isinstance(entry, dict):
            raise ValidationError(obj, "backend", entry, "must be a mapping with a backend key")
        kind = entry.get("backend")
        if kind not in reader_options:
            raise ValidationError(obj, "backend", kind, f"must be one of {', '.join(reader_options)}")
        allowed = reader_options[kind]
        for key in entry:
            if key not in ("backend", "timeout") + allowed:
                raise ValidationError(obj, key, entry[key], f"unknown for backend {kind} "
                                      f"(known: backend, timeout, {', '.join(allowed)})")
        if "ssh" in entry and (not isinstance(entry["ssh"], str) or not entry["ssh"]):
            raise ValidationError(obj, "ssh", entry["ssh"], "must be an ssh destination ([user@]host)")
        args = entry.get("ssh_args", [])
        if not isinstance(args, list) or not all(isinstance(a, (str, int)) for a in args):
            raise ValidationError(obj, "ssh_args", args, "must be a list of ssh options (strings)")
        if args and not entry.get("ssh"):
            raise ValidationError(obj, "ssh_args", args, "needs ssh (the host to run the commands on)")
        timeout = entry.get("timeout", default_timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValidationError(obj, "timeout", timeout, "must be a number of seconds above 0")
        out[str(hypervisor)] = {"backend": kind, "timeout": timeout,
                                "options": {k: entry[k] for k in allowed if k in entry}}
    return out


def guest_name(kind, hostvars):
    """The VM's name on a hypervisor of ``kind``, as the kind's backend names it: the Xen
    domain is ``<org>-<name>`` (as ``xen_domain`` names it), an LXC container or a libvirt
    domain is ``<name>``."""
    return _backends().backend_for(kind).guest_name(hostvars.get(f"{VAR_PREFIX}org"),
                                                    hostvars.get(f"{VAR_PREFIX}name"))


def plan(hosts, config) -> dict:
    """``{hypervisor: [guest names]}`` (sorted, once each) for the configured hypervisors."""
    wanted = {}
    for entry in hosts:
        hypervisor = entry["vars"].get(f"{VAR_PREFIX}hypervisor")
        if hypervisor in config:
            wanted.setdefault(hypervisor, set()).add(guest_name(config[hypervisor]["backend"], entry["vars"]))
    return {hypervisor: sorted(names) for hypervisor, names in wanted.items()}


def _ask_one(reader_factory, conf, names, out, key):
    try:
        reader = reader_factory(conf["backend"], conf["options"], timeout=conf["timeout"])
        out[key] = ("ok", reader.states(names))
    except VmanError as exc:
        out[key] = ("error", str(exc))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # one hypervisor's surprise must not take the whole inventory down
        out[key] = ("error", f"{type(exc).__name__}: {exc}")


def ask_all(config, wanted, reader_factory=None, clock=time.monotonic):
    """Ask each hypervisor of ``wanted`` once, all at the same time.

    Returns ``(states, failures)``: ``{hypervisor: {guest: state or None}}`` for those that
    answered, ``{hypervisor: reason}`` for those that raised or did not answer within their
    ``timeout`` (their thread is a daemon: it cannot keep the inventory from finishing).
    """
    reader_factory = reader_factory or _backends().make_state_reader
    results, threads = {}, {}
    for hypervisor, names in wanted.items():
        thread = threading.Thread(target=_ask_one, daemon=True, name=f"vman-power-{hypervisor}",
                                  args=(reader_factory, config[hypervisor], names, results, hypervisor))
        thread.start()
        threads[hypervisor] = thread
    start = clock()
    states, failures = {}, {}
    for hypervisor, thread in threads.items():
        timeout = config[hypervisor]["timeout"]
        thread.join(max(0.0, start + timeout - clock()))
        outcome = results.get(hypervisor)
        if outcome is None:
            failures[hypervisor] = f"no answer within {timeout} s"
        elif outcome[0] == "ok":
            states[hypervisor] = outcome[1]
        else:
            failures[hypervisor] = outcome[1]
    return states, failures


def merge_power(hosts, config, states, failures) -> list:
    """Copies of the host entries with ``vman_power_state`` and the group ``power_<state>``.

    A VM on a configured hypervisor gets the state its hypervisor reported, ``absent`` when
    the hypervisor does not know it, ``unknown`` when the hypervisor failed. VMs on other
    hypervisors (or none) are returned as they are. ``hosts`` is not changed (it may be the
    inventory cache's data, which must keep store data only).
    """
    out = []
    for entry in hosts:
        hypervisor = entry["vars"].get(f"{VAR_PREFIX}hypervisor")
        if hypervisor not in config:
            out.append(entry)
            continue
        if hypervisor in failures:
            state = UNKNOWN
        else:
            answer = states.get(hypervisor, {}).get(guest_name(config[hypervisor]["backend"], entry["vars"]))
            state = ABSENT if answer is None else str(answer)
        out.append({"name": entry["name"], "groups": list(entry["groups"]) + [group_name("power", state)],
                    "vars": dict(entry["vars"], **{POWER_VAR: state})})
    return out
