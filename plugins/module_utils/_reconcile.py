# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile start requests with their VMs (private, no stability promise).

Seed 004's ``vm-manager-x``: :func:`plan_request` is pure. Given a request as the store holds
it (allocators, devices) and what the backend shows (per VM: state, boot id, marker, whether
it is in the fleet inventory), it returns the ordered :class:`Action` list that brings the
request one step closer to its goal:

* a request with allocators gets ``count`` devices named ``<request>-<n>``: each is recorded
  first, then defined, started, waited for until reachable, its SSH host keys fetched into
  ``known_hosts``, put into the fleet inventory, licensed (optional hook), marked, and made
  ready, which puts every allocator on the redeploy list;
* a ready device whose boot id changed is checked for its marker: still there means a plain
  reboot (only the boot id is recorded), gone means the VM came back without its
  configuration, and every allocator is put on the redeploy list;
* devices beyond ``count`` (scale-in), and every device of a request without allocators,
  are torn down: license released (optional hook), removed from the inventory, stopped,
  deleted (the disk kept unless the request says otherwise) and forgotten; then the request.

Day-1 configuration is never done here: it is the allocators' own playbooks, run again
because they are on the redeploy list.

:class:`Reconciler` executes plans through a :class:`_backends.Backend` and the store, one
store transaction per step, so a crash between two steps leaves a state from which the next
run's plan continues. It re-observes and re-plans until a plan is empty (at most
:data:`MAX_PASSES` times).
"""

from __future__ import annotations

import secrets
import socket
import time
from collections import namedtuple

from ansible_collections.vman.lifecycle.plugins.module_utils import _sshkeys
from ansible_collections.vman.lifecycle.plugins.module_utils._backends import RUNNING, STOPPED
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import (
    StateError, ValidationError, VmanError)
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run
from ansible_collections.vman.lifecycle.plugins.module_utils._store import requests as rq

Action = namedtuple("Action", "kind vm why")
Action.__doc__ = "One step of a plan: ``kind`` (see :data:`KINDS`), the device, why."

#: Steps that bring a device up, in order.
BRING_UP = ("wait_reachable", "host_keys", "inventory", "license_load", "write_marker",
            "mark_ready")
#: Steps that take a device down, in order.
TEAR_DOWN = ("license_release", "uninventory", "stop", "delete", "drop_device")
KINDS = ("record", "define", "start") + BRING_UP + ("rebooted", "reinitialized") + TEAR_DOWN \
    + ("forget",)

MAX_PASSES = 4
#: how a started device counts as reachable: its SSH port answers, or the backend says running
REACHABLE = ("tcp", "running")


def device_name(request, idx):
    """The VM name of device ``idx`` (1-based) of ``request``."""
    return f"{request}-{idx}"


def _bring_up(vm, why, license_hook):
    return [Action(k, vm, why) for k in BRING_UP if license_hook or k != "license_load"]


def _tear_down(vm, dev, obs, keep_disk, license_hook, why):
    steps = []
    if dev.get("ready") and license_hook:
        steps.append(Action("license_release", vm, why))
    if obs.get("inventoried") or dev.get("ready"):
        steps.append(Action("uninventory", vm, why))
    if obs.get("state") == RUNNING:
        steps.append(Action("stop", vm, why))
    if obs.get("state") is not None:
        steps.append(Action("delete", vm, why + (" (disk kept)" if keep_disk else " (disk removed)")))
    steps.append(Action("drop_device", vm, why))
    return steps


def plan_request(request, observed, license_hook=False):
    """The actions for ``request`` (a :meth:`Store.get_request` dict) given ``observed``
    ``{vm: {"state": "running"|"stopped"|None, "boot_id", "marker", "inventoried"}}``.

    ``marker`` is only needed for a ready, running device whose boot id changed. An empty
    list means the request is where it should be.
    """
    name = request["name"]
    devices = {d["vm"]: d for d in request["devices"]}
    actions = []
    if not request["allocators"]:
        for dev in sorted(request["devices"], key=lambda d: -d["idx"]):
            actions += _tear_down(dev["vm"], dev, observed.get(dev["vm"], {}), request["keep_disk"],
                                  license_hook, "no allocator left")
        return actions + [Action("forget", None, "no allocator left")]
    for dev in sorted(request["devices"], key=lambda d: -d["idx"]):
        if dev["idx"] > request["count"]:
            actions += _tear_down(dev["vm"], dev, observed.get(dev["vm"], {}), request["keep_disk"],
                                  license_hook, f"scale in to {request['count']}")
    for idx in range(1, request["count"] + 1):
        vm = device_name(name, idx)
        dev = devices.get(vm)
        obs = observed.get(vm, {})
        state = obs.get("state")
        if dev is None:
            actions += [Action("record", vm, "new device"), Action("define", vm, "new device"),
                        Action("start", vm, "new device")] + _bring_up(vm, "new device", license_hook)
        elif state is None:
            why = "VM missing, re-created" if dev["ready"] else "new device"
            actions += [Action("define", vm, why), Action("start", vm, why)]
            actions += _bring_up(vm, why, license_hook)
        elif state == STOPPED:
            actions.append(Action("start", vm, "VM stopped"))
            if not dev["ready"]:
                actions += _bring_up(vm, "new device", license_hook)
        elif not dev["ready"]:
            actions += _bring_up(vm, "new device", license_hook)
        elif obs.get("boot_id") != dev["boot_id"]:
            if obs.get("marker") and obs.get("marker") == dev["marker"]:
                actions.append(Action("rebooted", vm, "boot id changed, marker present"))
            else:
                actions.append(Action("reinitialized", vm, "boot id changed and marker missing"))
    return actions


def needs_marker(dev, obs):
    """Whether :func:`plan_request` will look at the marker of this device."""
    return bool(dev and dev["ready"] and obs.get("state") == RUNNING
                and obs.get("boot_id") != dev["boot_id"])


# ---- SSH host keys -------------------------------------------------------------------------

def parse_keyscan(text):
    """Public key lines (``<algo> <base64>``) from ``ssh-keyscan`` output, sorted, unique."""
    keys = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            keys.add(f"{fields[1]} {fields[2]}")
    return sorted(keys)


def key_rows(public_keys):
    """``Store.put_host_keys`` rows for scanned public keys."""
    rows = []
    for pub in public_keys:
        our, _algo, blob = _sshkeys.parse_public_key(pub)
        rows.append({"key_type": our, "public_key": pub,
                     "fp_sha256": _sshkeys.fingerprint(blob, "sha256"),
                     "fp_sha1": _sshkeys.fingerprint(blob, "sha1")})
    return rows


def _blobs(public_keys):
    return {_sshkeys.parse_public_key(p)[2] for p in public_keys}


# ---- executing plans -----------------------------------------------------------------------

class Reconciler:
    """Run plans for the requests of a store.

    ``backends`` maps a backend kind to a :class:`_backends.Backend`. ``keyscan`` is a
    callable ``(address, port) -> ssh-keyscan output`` (None: no host keys are fetched).
    ``license_load``/``license_release`` are argv lists run on this host with the
    environment ``VMAN_REQUEST``, ``VMAN_DEVICE`` and ``VMAN_ADDRESS``. ``reachable`` is
    ``tcp`` (the SSH port answers) or ``running`` (the backend reports the VM running; for
    guests without SSH).
    """

    def __init__(self, store, backends, owner=None, known_hosts=None, keyscan=None,
                 ssh_port=22, reachable_timeout=120, license_load=None, license_release=None,
                 lease_ttl=900, who="reconcile", clock=time.monotonic, sleep=time.sleep,
                 probe=None, reachable="tcp"):
        self.store = store
        self.backends = backends
        self.owner = owner or f"{socket.gethostname()}:{secrets.token_hex(4)}"
        self.known_hosts = known_hosts
        self.keyscan = keyscan
        self.ssh_port = ssh_port
        self.reachable_timeout = reachable_timeout
        self.license_load = license_load
        self.license_release = license_release
        self.lease_ttl = lease_ttl
        self.who = who
        self.clock = clock
        self.sleep = sleep
        self.probe = probe or tcp_probe
        if reachable not in REACHABLE:
            raise ValidationError("reconcile", "reachable", reachable,
                                  f"must be one of {', '.join(REACHABLE)}")
        self.reachable = reachable
        # carried from one step of a device's bring-up to the next
        self._addresses = {}
        self._markers = {}

    # -- observing
    def observe(self, request):
        """What the backend shows for every device of ``request`` (recorded or wanted)."""
        backend = self._backend(request)
        devices = {d["vm"]: d for d in request["devices"]}
        names = set(devices) | {device_name(request["name"], i)
                                for i in range(1, request["count"] + 1)} \
            if request["allocators"] else set(devices)
        observed = {}
        for vm in sorted(names):
            obs = {"state": backend.state(vm), "inventoried": self.store.get_vm(vm) is not None}
            if obs["state"] == RUNNING:
                obs["boot_id"] = backend.facts(vm)["boot_id"]
                if needs_marker(devices.get(vm), obs):
                    obs["marker"] = backend.read_marker(vm)
            observed[vm] = obs
        return observed

    def _backend(self, request):
        backend = self.backends.get(request["backend"])
        if backend is None:
            raise ValidationError(f"request '{request['name']}'", "backend", request["backend"],
                                  "no backend of this kind is configured for the reconciler")
        return backend

    # -- the loop
    def reconcile(self, names=None, check=False):
        """Reconcile ``names`` (default: every request); one result dict per request."""
        results = []
        for name in names if names is not None else self.store.request_names():
            results.append(self.reconcile_one(name, check))
        return results

    def reconcile_one(self, name, check=False):
        """Plan (and unless ``check`` execute) request ``name``; returns its result."""
        result = {"name": name, "actions": [], "changed": False, "state": None, "error": None,
                  "skipped": None}
        if check:
            request = self.store.get_request(name)
            if request is None:
                result["skipped"] = "no such request"
                return result
            if request["backend"] not in self.backends:
                result["skipped"] = f"backend '{request['backend']}' is not configured here"
                return result
            try:
                plan = plan_request(request, self.observe(request), self._hook())
            except VmanError as exc:
                result["error"] = str(exc)
                return result
            result.update(actions=[_describe(a) for a in plan], changed=bool(plan),
                          state=request["state"])
            return result
        request = self.store.get_request(name)
        if request is not None and request["backend"] not in self.backends:
            result["skipped"] = f"backend '{request['backend']}' is not configured here"
            return result
        request = self.store.lease_request(name, self.owner, self.lease_ttl)
        if request is None:
            result["skipped"] = "gone or leased by another reconciler"
            return result
        try:
            self._passes(request, result)
        finally:
            self.store.release_request(name, self.owner)
        after = self.store.get_request(name)
        result["state"] = after["state"] if after else "deleted"
        return result

    def _hook(self):
        return bool(self.license_load or self.license_release)

    def _passes(self, request, result):
        name = request["name"]
        for _pass in range(MAX_PASSES):
            # re-read every pass: an allocator may have come back meanwhile
            teardown = not request["allocators"]
            try:
                plan = plan_request(request, self.observe(request), self._hook())
            except VmanError as exc:
                self._fail(request, teardown, "observe_failed", exc, result)
                return
            if not plan:
                break
            for action in plan:
                try:
                    self._do(request, action)
                except (VmanError, OSError) as exc:
                    self._fail(request, teardown, f"{action.kind}_failed", exc, result, action)
                    return
                result["actions"].append(_describe(action))
                result["changed"] = True
            request = self.store.get_request(name)
            if request is None:
                return
        if request["allocators"]:
            done = all(d["ready"] for d in request["devices"]) and \
                len(request["devices"]) == request["count"]
            if self.store.set_request_state(name, rq.READY if done else rq.PENDING, who=self.who):
                result["changed"] = True

    def _fail(self, request, teardown, status, exc, result, action=None):
        reason = f"{action.vm}: {exc}" if action is not None and action.vm else str(exc)
        result["error"] = f"{status}: {reason}"
        result["changed"] = True
        if teardown:
            self.store.request_delete_failed(request["name"], f"{status}: {reason}", who=self.who)
        else:
            self.store.request_failed(request["name"], status, reason, who=self.who)

    # -- one step each
    def _do(self, request, action):
        getattr(self, "_" + action.kind)(request, action)

    def _record(self, request, action):
        idx = int(action.vm.rsplit("-", 1)[1])
        self.store.add_device(request["name"], action.vm, idx)

    def _define(self, request, action):
        self._backend(request).define(action.vm, request["spec"])

    def _start(self, request, action):
        self._backend(request).start(action.vm, request["spec"])

    def _wait_reachable(self, request, action):
        backend = self._backend(request)
        deadline = self.clock() + self.reachable_timeout
        last = "no address yet"
        while True:
            if backend.state(action.vm) != RUNNING:
                last = "not running"
            else:
                addresses = backend.facts(action.vm)["addresses"]
                if self.reachable == "running":
                    self._addresses[action.vm] = addresses[0] if addresses else None
                    return
                for address in addresses:
                    if self.probe(address, self.ssh_port):
                        self._addresses[action.vm] = address
                        return
                if addresses:
                    last = f"port {self.ssh_port} of {', '.join(addresses)} not answering"
            if self.clock() >= deadline:
                raise StateError(f"{action.vm} not reachable within {self.reachable_timeout} s "
                                 f"({last})")
            self.sleep(1.0)

    def _address_of(self, request, vm):
        address = self._addresses.get(vm)
        if address is None:
            addresses = self._backend(request).facts(vm)["addresses"]
            address = addresses[0] if addresses else None
        return address

    def _host_keys(self, request, action):
        if self.keyscan is None:
            return
        address = self._address_of(request, action.vm)
        scanned = parse_keyscan(self.keyscan(address, self.ssh_port))
        if not scanned:
            raise StateError(f"{action.vm}: ssh-keyscan of {address} returned no host key")
        stored = [k["public_key"] for k in self.store.host_keys(action.vm)]
        if stored and _blobs(stored) != _blobs(scanned):
            raise StateError(f"{action.vm}: the host keys at {address} differ from the keys "
                             f"(SSHFP) stored for it; refusing to trust them")
        if not stored:
            self.store.put_host_keys(action.vm, key_rows(scanned))
        if self.known_hosts:
            _sshkeys.update_known_hosts(self.known_hosts, [action.vm, address], scanned)

    def _inventory(self, request, action):
        address = self._address_of(request, action.vm)
        spec = redact(dict(request["spec"] or {}))
        spec["connection_ip"] = address
        record = {"org": spec.get("org"), "flavor": request["flavor"],
                  "backend": request["backend"], "hypervisor": request["hypervisor"],
                  "spec": spec, "owner": rq.event_subject(request["name"])}
        self.store.inventory_device(request["name"], action.vm, record, address, who=self.who)

    def _hook_env(self, request, vm):
        dev = next((d for d in request["devices"] if d["vm"] == vm), {})
        return {"VMAN_REQUEST": request["name"], "VMAN_DEVICE": vm,
                "VMAN_ADDRESS": self._addresses.get(vm) or dev.get("address") or ""}

    def _license_load(self, request, action):
        if self.license_load:
            run(self.license_load, env=self._hook_env(request, action.vm), timeout=300)

    def _license_release(self, request, action):
        if self.license_release:
            run(self.license_release, env=self._hook_env(request, action.vm), timeout=300)

    def _write_marker(self, request, action):
        self._markers[action.vm] = secrets.token_hex(16)
        self._backend(request).write_marker(action.vm, self._markers[action.vm])

    def _mark_ready(self, request, action):
        boot_id = self._backend(request).facts(action.vm)["boot_id"]
        self.store.device_ready(request["name"], action.vm, boot_id, self._markers.pop(action.vm),
                                reason=action.why, who=self.who)

    def _rebooted(self, request, action):
        boot_id = self._backend(request).facts(action.vm)["boot_id"]
        self.store.device_rebooted(request["name"], action.vm, boot_id, who=self.who)

    def _reinitialized(self, request, action):
        backend = self._backend(request)
        marker = secrets.token_hex(16)
        backend.write_marker(action.vm, marker)
        self.store.device_rebooted(request["name"], action.vm, backend.facts(action.vm)["boot_id"],
                                   marker=marker, redeploy_reason=action.why, who=self.who)

    def _uninventory(self, request, action):
        self.store.uninventory_device(request["name"], action.vm, who=self.who)

    def _stop(self, request, action):
        self._backend(request).stop(action.vm)

    def _delete(self, request, action):
        self._backend(request).delete(action.vm, keep_storage=request["keep_disk"])

    def _drop_device(self, request, action):
        self.store.drop_device(request["name"], action.vm)

    def _forget(self, request, action):
        self.store.forget_request(request["name"], who=self.who)


def _describe(action):
    return f"{action.kind} {action.vm}: {action.why}" if action.vm else f"{action.kind}: {action.why}"


def tcp_probe(address, port, timeout=2.0):
    """True when a TCP connection to ``address:port`` succeeds."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def ssh_keyscan(address, port, timeout=10):
    """``ssh-keyscan`` output for ``address`` (RSA, ECDSA, ED25519 keys)."""
    res = run(["ssh-keyscan", "-T", str(timeout), "-p", str(port), "-t", "rsa,ecdsa,ed25519",
               address], timeout=timeout + 20, check=False)
    return res.stdout
