# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest backend interface (private, no stability promise).

:class:`GuestBackend` is what the lifecycle needs from one hypervisor kind. The verbs take the
guest's name on that kind's host (see :meth:`GuestBackend.guest_name`) and are idempotent: a
verb that finds the guest already where it should be does nothing. A verb a kind does not have
raises :class:`NotSupported`, which names the kind and the verb.

The state words are :data:`RUNNING`, :data:`STOPPED`, :data:`SUSPENDED` (saved or frozen:
:meth:`~GuestBackend.resume` brings it back running, with its memory), None for a guest the
host does not know, and a kind's own word for anything else (libvirt's ``paused``,
``crashed`` ...).
"""

from __future__ import annotations

import abc

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError

RUNNING = "running"
STOPPED = "stopped"
SUSPENDED = "suspended"

#: Where the reconciler's marker lives inside a guest (persistent storage, not /run).
MARKER_PATH = "/var/lib/vman/request-marker"


class NotSupported(VmanError):
    """A verb the guest's hypervisor kind does not have."""

    def __init__(self, kind, verb, why=""):
        self.kind, self.verb = kind, verb
        super().__init__(f"{verb} is not supported by the {kind} backend" + (f": {why}" if why else ""))

    def to_result(self) -> dict:
        return {"error": "not_supported", "backend": self.kind, "verb": self.verb}


def check_options(options, allowed, obj):
    """Refuse a host option a backend does not know, naming it and the known ones."""
    for key in options:
        if key not in allowed:
            raise ValidationError(obj, key, options[key], f"unknown option (known: {', '.join(allowed)})")


def host_boot_id():
    """This host's boot id (changes at every host boot), ``unknown`` when unreadable."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def proc_starttime(pid):
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since the host booted)."""
    with open(f"/proc/{int(pid)}/stat", encoding="ascii") as handle:
        # the command name (field 2) may hold spaces: split after its closing parenthesis
        return handle.read().rsplit(")", 1)[1].split()[19]


class GuestBackend(abc.ABC):
    """One hypervisor kind on one host. Subclasses set :attr:`kind` and implement the
    abstract verbs; :meth:`snapshot`, :meth:`revert`, :meth:`suspend` and :meth:`resume`
    raise :class:`NotSupported` unless the kind has them."""

    #: the word that selects this class in ``backend_for`` (``xen``, ``libvirt``, ``lxc``)
    kind = None
    #: the host options :meth:`from_options` accepts (the module's per-kind dict)
    options = ()
    #: the options a read-only reader (the fleet inventory's ``live_state``) accepts
    reader_options = ()
    #: whether :meth:`read_marker`/:meth:`write_marker` reach inside the guest
    has_marker = False
    #: ``delete(keep_storage=True)`` leaves the guest itself, stopped (its root is its storage)
    keeps_guest_with_storage = False
    #: :meth:`define` of an existing guest renders its definition again from the spec
    redefines = False

    @classmethod
    def from_options(cls, options, timeout=None):
        """The backend configured by the host options ``options`` (validated: an unknown key
        is a ValidationError naming it). Every registered kind implements it."""
        raise NotImplementedError(f"{cls.__name__} cannot be configured from options")

    @classmethod
    def reader(cls, options, executor=None, timeout=30):
        """A read-only backend on which only :meth:`states` is called (``options`` from
        :attr:`reader_options`; ``executor`` runs its commands, e.g. over ssh)."""
        return cls.from_options(options, timeout=timeout)

    @staticmethod
    def guest_name(org, name):
        """The guest's name on its host for the lifecycle VM ``org``/``name``."""
        return name

    # -- the verbs ---------------------------------------------------------------------------

    @abc.abstractmethod
    def define(self, name, spec, netconfs=None):
        """Create the hypervisor object ``name`` from ``spec`` when it does not exist (powered
        off). ``netconfs`` (the lifecycle's netconfs by kind) fill the addresses the spec
        leaves out. Returns True when something was created."""

    @abc.abstractmethod
    def start(self, name, spec=None, netconfs=None):
        """Start ``name`` (nothing when it runs); ``spec``/``netconfs`` as given to
        :meth:`define`, which runs first when ``name`` does not exist and a spec is given."""

    @abc.abstractmethod
    def stop(self, name, timeout=None):
        """Stop ``name`` cleanly within ``timeout`` s, then force it off (nothing when stopped)."""

    @abc.abstractmethod
    def delete(self, name, keep_storage=True, spec=None, netconfs=None):
        """Remove ``name`` (stopping it first); with ``keep_storage`` its disks stay."""

    @abc.abstractmethod
    def state(self, name):
        """One of the state words (see the module docstring), None when ``name`` is unknown."""

    def states(self, names):
        """``{name: state}`` for every name; a kind that can list its guests asks once."""
        return {name: self.state(name) for name in names}

    @abc.abstractmethod
    def facts(self, name):
        """``{"boot_id": str or None, "addresses": [str]}`` of ``name``; the boot id changes
        at every start of the guest (None when it does not run)."""

    def capacity(self):
        """The host's ``{"vcpus": int, "memory_mib": int}`` (for placement)."""
        raise NotSupported(self.kind, "capacity")

    def snapshot(self, name, snapshot):
        """Take snapshot ``snapshot`` of ``name``."""
        raise NotSupported(self.kind, "snapshot")

    def revert(self, name, snapshot):
        """Bring ``name`` back to snapshot ``snapshot``."""
        raise NotSupported(self.kind, "revert")

    def suspend(self, name):
        """Save ``name``'s memory and stop it using CPU (resumed by :meth:`resume`)."""
        raise NotSupported(self.kind, "suspend")

    def resume(self, name):
        """Bring a suspended ``name`` back running from where it was suspended."""
        raise NotSupported(self.kind, "resume")

    # -- the reconciler's marker (persistent file inside the guest) --------------------------

    def read_marker(self, name):
        """The marker text inside the running guest, or None (also when unreachable)."""
        return None

    def write_marker(self, name, value):
        """Write the marker inside the running guest (nothing when the kind cannot)."""
        return None

    def close(self):
        """Release connections (libvirt); the other kinds hold none."""
        return None
