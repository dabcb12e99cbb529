# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest backends of the lifecycle, one class per hypervisor kind (private, no stability
promise).

The lifecycle (the ``guest`` module, the request reconciler, the fleet inventory's live state)
never calls ``xl``, libvirt or ``lxc-*`` itself: it asks :func:`backend_for` for the class of
a guest's kind, the only place a kind is chosen, and calls the verbs of
:class:`~.base.GuestBackend` on it. Adding a kind is one class here and one entry in
:data:`BACKENDS`.

:func:`make_backend` configures a backend from a module's host options;
:func:`make_state_reader` builds the read-only side the ``fleet`` inventory uses, on this
machine or over ``ssh``.
"""

from __future__ import annotations

import os
import shlex

from ansible_collections.vman.lifecycle.plugins.module_utils._backends.base import (  # noqa: F401
    MARKER_PATH, RUNNING, STOPPED, SUSPENDED, GuestBackend, NotSupported, host_boot_id, proc_starttime)
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.libvirt import LibvirtGuest
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.lxc import LxcGuest
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.xen import XenGuest
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError  # noqa: F401
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import run

#: kind -> class. The one table that knows the kinds.
BACKENDS = {cls.kind: cls for cls in (LxcGuest, XenGuest, LibvirtGuest)}
KINDS = tuple(BACKENDS)
#: What :func:`make_state_reader` accepts per kind, besides ``backend`` and ``timeout``.
STATE_READER_OPTIONS = {kind: cls.reader_options for kind, cls in BACKENDS.items()}

# the names of the first version of this module, kept for its importers
Backend = GuestBackend
LxcRequestBackend = LxcGuest
XenRequestBackend = XenGuest
_host_boot_id = host_boot_id
_proc_starttime = proc_starttime


def backend_for(kind, obj="backend"):
    """The :class:`GuestBackend` class of ``kind``; a ValidationError naming ``obj`` for a
    kind that has none."""
    try:
        return BACKENDS[kind]
    except (KeyError, TypeError):
        raise ValidationError(obj, "kind", kind, f"must be one of {', '.join(KINDS)}") from None


def make_backend(kind, options, obj="backend"):
    """The backend of ``kind`` configured by the host options ``options``."""
    return backend_for(kind, obj).from_options(options)


def make_state_reader(kind, options, timeout=30):
    """A read-only backend of ``kind`` on which only :meth:`GuestBackend.states` is called.

    ``options`` are those of :data:`STATE_READER_OPTIONS`. Kinds that run commands (LXC, Xen)
    run them on this machine, or on the host ``ssh`` names (see :func:`ssh_executor`), each
    within ``timeout`` seconds; the names given to a Xen reader are full domain names
    (``<org>-<name>``). libvirt connects to ``uri`` (remote hosts through libvirt's own
    transports, ``qemu+ssh://``).
    """
    cls = backend_for(kind, "live_state")
    opts = dict(options or {})
    if opts.get("ssh"):
        executor = ssh_executor(opts["ssh"], opts.get("ssh_args") or (), timeout)
    else:
        executor = _with_timeout(timeout)
    return cls.reader(opts, executor=executor, timeout=timeout)


def _with_timeout(timeout):
    def _run(argv, **kwargs):
        kwargs["timeout"] = timeout
        return run(argv, **kwargs)
    return _run


def ssh_executor(destination, ssh_args=(), timeout=30):
    """A :class:`Runner` executor that runs each command on ``destination`` through ``ssh``.

    The local command is an argv list (never a shell): ``ssh -o BatchMode=yes -o
    ConnectTimeout=T [ssh_args] -- DESTINATION 'WORD WORD ...'``, where the words are the
    command's, each quoted with :func:`shlex.quote` for the remote shell and the program
    reduced to its name (the remote PATH finds it). BatchMode: a host that wants a password
    fails instead of prompting. ``ssh_args`` are extra ssh options (``-p``, ``-i``, ``-F``).
    """
    if not isinstance(destination, str) or not destination or destination.startswith("-") \
            or any(c.isspace() for c in destination):
        raise ValidationError("live_state", "ssh", destination, "must be an ssh destination "
                              "([user@]host or a Host alias), without spaces, not starting with -")
    prefix = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(timeout))}",
              *[str(a) for a in ssh_args], "--", destination]

    def _run(argv, **kwargs):
        kwargs["timeout"] = timeout
        words = [os.path.basename(str(argv[0]))] + [str(a) for a in argv[1:]]
        return run(prefix + [shlex.join(words)], **kwargs)
    return _run
