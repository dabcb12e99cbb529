# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring a batch of guests of any hypervisor kind to their desired state (private, no
stability promise); the logic of the ``guest`` module.

:func:`plan` is pure: from a guest's current state word and its desired state it gives the
verbs of :class:`_backends.GuestBackend` to call, in order, and the state expected after them.
:class:`GuestConverger` reads each guest's state through its backend (one backend per kind and
org, from :func:`_backends.backend_for`), runs the plan (not in check mode), and reads the
state again.
"""

from __future__ import annotations

from ansible_collections.vman.lifecycle.plugins.module_utils import _backends
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.base import RUNNING, STOPPED, SUSPENDED
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError, check_line

#: the desired states of the module
STATES = ("present", "running", "stopped", "suspended", "absent")
ABSENT = "absent"


class GuestError(VmanError):
    """A guest's verb failed; the message names the guest, its kind and the step."""

    def __init__(self, guest, kind, step, exc):
        self.guest, self.kind, self.step = guest, kind, step
        detail = exc.to_result() if isinstance(exc, VmanError) else {}
        self.detail = {k: v for k, v in detail.items() if k != "msg"}
        super().__init__(f"guest {guest} ({kind}): {step} failed: {exc}")

    def to_result(self) -> dict:
        return dict(self.detail, guest=self.guest, backend=self.kind, step=self.step)


def plan(current, desired, keep_storage=True, keeps_guest=False):
    """``(verbs, expected_state)`` that bring a guest from ``current`` (a state word, None
    when it does not exist) to ``desired`` (one of :data:`STATES`).

    ``present`` defines a missing guest and leaves the power state alone. ``running`` starts
    a stopped guest and resumes a suspended (or paused) one. ``stopped`` stops a running or
    suspended guest (the backends resume a suspended guest first so it shuts down cleanly).
    ``suspended`` starts it first when needed. ``absent`` deletes it; ``keeps_guest`` says the
    kind keeps the guest itself, stopped, when its storage is kept (LXC: the root file system
    is the container).
    """
    if desired not in STATES:
        raise ValueError(desired)
    exists = current not in (None, ABSENT)
    if desired == "absent":
        if not exists:
            return [], ABSENT
        if keep_storage and keeps_guest:
            return ([] if current == STOPPED else ["delete"]), STOPPED
        return ["delete"], ABSENT
    verbs = [] if exists else ["define"]
    now = current if exists else STOPPED
    if desired == "present":
        return verbs, now
    if desired == "running":
        if now == SUSPENDED:
            verbs.append("resume")
        elif now != RUNNING:
            verbs.append("start")
        return verbs, RUNNING
    if desired == "stopped":
        if now != STOPPED:
            verbs.append("stop")
        return verbs, STOPPED
    # suspended
    if now == SUSPENDED:
        return verbs, SUSPENDED
    if now != RUNNING:
        verbs.append("start")
    verbs.append("suspend")
    return verbs, SUSPENDED


def _check_guest(index, guest):
    obj = f"guests[{index}]"
    name = guest.get("name")
    check_line(obj, "name", name)
    obj = f"guest {name}"
    _backends.backend_for(guest.get("kind"), obj)
    if guest.get("org") is not None:
        check_line(obj, "org", guest["org"])
    if guest.get("state") not in STATES:
        raise ValidationError(obj, "state", guest.get("state"), f"must be one of {', '.join(STATES)}")
    timeout = guest.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
        raise ValidationError(obj, "timeout", timeout, "must be a number of seconds, 0 or more")
    for field in ("spec", "netconfs"):
        if guest.get(field) is not None and not isinstance(guest[field], dict):
            raise ValidationError(obj, field, guest[field], "must be a dict")


class GuestConverger:
    """Converge guests of any kind; ``backends`` are the host options per kind
    (``{"lxc": {...}, "xen": {...}, "libvirt": {...}}``)."""

    def __init__(self, backends=None, check_mode=False, factory=None):
        self.options = dict(backends or {})
        for kind in self.options:
            _backends.backend_for(kind, "backends")
        self.check_mode = check_mode
        # (kind, org, options) -> a backend; tests give their own
        self.factory = factory or (lambda kind, options: _backends.make_backend(kind, options, f"backends.{kind}"))
        self._made = {}

    def backend(self, kind, org):
        """The backend of ``kind`` for guests of ``org``, made once."""
        cls = _backends.backend_for(kind)
        takes_org = "org" in cls.options
        key = (kind, org if takes_org else None)
        if key not in self._made:
            options = dict(self.options.get(kind) or {})
            if takes_org:
                # the guest's own org, also when it has none (the name alone is the domain)
                options["org"] = org
            self._made[key] = self.factory(kind, options)
        return self._made[key]

    def close(self):
        for backend in self._made.values():
            backend.close()

    def converge_one(self, guest):
        """Return the result of one guest (see the module's RETURN)."""
        name, kind = guest["name"], guest["kind"]
        cls = _backends.backend_for(kind)
        label = cls.guest_name(guest.get("org"), name)
        step = "reading its state"
        try:
            backend = self.backend(kind, guest.get("org"))
            before = backend.state(name)
            verbs, expected = plan(before, guest["state"], guest.get("keep_storage", True),
                                   cls.keeps_guest_with_storage)
            step = "planning"
            if "define" in verbs and guest.get("spec") is None:
                raise ValidationError(f"guest {label}", "spec", None,
                                      f"the guest does not exist on its {kind} host; its spec is "
                                      f"needed to define it")
            defined = False
            if not self.check_mode:
                if guest["state"] != "absent" and "define" not in verbs and guest.get("spec") is not None \
                        and cls.redefines:
                    # the kind renders its definition from the spec each run (Xen's xl.cfg)
                    step = "define"
                    defined = bool(backend.define(name, guest["spec"], guest.get("netconfs")))
                for verb in verbs:
                    step = verb
                    defined |= bool(self._act(backend, verb, guest)) and verb == "define"
                step = "reading its state"
                after = backend.state(name)
            else:
                after = expected
        except VmanError as exc:
            raise GuestError(label, kind, step, exc) from None
        after = ABSENT if after is None else after
        before = ABSENT if before is None else before
        changed = defined or (bool(verbs) and (self.check_mode or before != after))
        if defined and "define" not in verbs:
            verbs = ["define"] + verbs
        result = {"name": name, "kind": kind, "guest": label, "state_before": before,
                  "state": after, "actions": verbs if changed else [], "changed": changed}
        warnings = list(getattr(backend, "warnings", []) or [])
        if warnings:
            result["warnings"] = warnings
            backend.warnings = []
        return result

    @staticmethod
    def _act(backend, verb, guest):
        name, spec, netconfs = guest["name"], guest.get("spec"), guest.get("netconfs")
        if verb == "define":
            return backend.define(name, spec, netconfs)
        if verb == "start":
            return backend.start(name, spec, netconfs)
        if verb == "stop":
            return backend.stop(name, guest.get("timeout"))
        if verb == "delete":
            return backend.delete(name, guest.get("keep_storage", True), spec, netconfs)
        return getattr(backend, verb)(name)

    def converge(self, guests):
        """``(results, diff)`` for every guest, in order; a failing guest raises
        :class:`GuestError` with the results so far in its ``results`` attribute."""
        seen = {}
        for index, guest in enumerate(guests or []):
            _check_guest(index, guest)
            key = (guest["kind"], _backends.backend_for(guest["kind"]).guest_name(guest.get("org"), guest["name"]))
            if key in seen:
                raise ValidationError(f"guest {key[1]}", "name", guest["name"],
                                      f"appears twice (guests[{seen[key]}] and guests[{index}])")
            seen[key] = index
        results = []
        try:
            for guest in guests or []:
                try:
                    results.append(self.converge_one(guest))
                except GuestError as exc:
                    exc.results = results
                    raise
        finally:
            self.close()
        diff = {"before_header": "guests", "after_header": "guests",
                "before": {r["guest"]: r["state_before"] for r in results},
                "after": {r["guest"]: r["state"] for r in results}}
        return results, diff
