# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hypervisor backend interface the lifecycle uses (private, no stability promise).

The reconciler of start requests never calls ``xl``, libvirt or ``lxc-*`` itself: it asks a
:class:`Backend` for a few verbs, ``define``, ``start``, ``stop``, ``delete(keep_storage)``,
``state`` and ``facts`` (boot id, addresses), plus a small persistent *marker* inside the
guest that tells a reboot (marker still there) from a re-initialised VM (marker gone).

:class:`LxcRequestBackend` is the LXC implementation over :class:`_lxc.LxcGuestManager`.
:class:`XenRequestBackend` is the Xen implementation over ``_xen_domain.DomainConverger``
(``manager: xl``); it has no way into the guest, so it keeps no marker and every restart of a
ready Xen device counts as re-initialised (its allocators are redeployed, which is always
safe). A libvirt implementation is not written yet: :func:`make_backend` says so clearly.

:meth:`Backend.states` asks for many guests at once (one ``lxc-ls`` pair, one ``xl list``);
:func:`make_state_reader` builds the read-only side the ``fleet`` inventory uses, libvirt
included (:class:`LibvirtStateReader`, one connection for all domains).
"""

from __future__ import annotations

import os
import shlex

from ansible_collections.vman.lifecycle.plugins.module_utils import _libvirt, _lxc, _spec, _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._xen_domain import DomainConverger, config_file
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError, VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._runner import (
    Runner, fmt_flag, fmt_opt, fmt_positional, run)

RUNNING = "running"
STOPPED = "stopped"

#: Where the marker lives inside a guest (persistent storage, not /run).
MARKER_PATH = "/var/lib/vman/request-marker"

KINDS = ("lxc", "xen", "libvirt")


class Backend:
    """What the lifecycle needs from one hypervisor kind. Every verb is idempotent."""

    kind = None

    def define(self, name, spec):
        """Create the hypervisor object ``name`` from ``spec`` when it does not exist."""
        raise NotImplementedError

    def start(self, name, spec=None):
        """Start ``name`` (nothing when it runs); ``spec`` as given to :meth:`define`."""
        raise NotImplementedError

    def stop(self, name, timeout=30):
        """Stop ``name`` cleanly within ``timeout`` s, then hard (nothing when stopped)."""
        raise NotImplementedError

    def delete(self, name, keep_storage=True):
        """Remove ``name``; with ``keep_storage`` its disks stay."""
        raise NotImplementedError

    def state(self, name):
        """:data:`RUNNING`, :data:`STOPPED` or None when ``name`` does not exist."""
        raise NotImplementedError

    def states(self, names):
        """``{name: state}`` for every name, in the words of :meth:`state`; a kind that can
        list its guests asks once for all of them."""
        return {name: self.state(name) for name in names}

    def facts(self, name):
        """``{"boot_id": str or None, "addresses": [str]}`` of a running ``name``; the boot id
        changes at every start of the guest."""
        raise NotImplementedError

    def read_marker(self, name):
        """The marker text inside the running guest, or None when it is missing."""
        raise NotImplementedError

    def write_marker(self, name, value):
        """Write the marker inside the running guest."""
        raise NotImplementedError


def _host_boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def _proc_starttime(pid):
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since the host booted)."""
    with open(f"/proc/{int(pid)}/stat", encoding="ascii") as handle:
        # the command name (field 2) may hold spaces: split after its closing parenthesis
        return handle.read().rsplit(")", 1)[1].split()[19]


class LxcRequestBackend(Backend):
    """LXC containers under one lxcpath, made and started by :class:`_lxc.LxcGuestManager`.

    ``spec`` is one ``lxc_guest`` container entry without ``name`` (profile_type,
    from_container, bridge, network, gateway, ...); ``defaults`` are the host-wide options.
    A container shares the host kernel, so its boot id is derived from the host's boot id and
    the PID and start time of the container's init: it changes at every container start.
    ``delete(keep_storage=True)`` stops the container and leaves it defined (its rootfs is its
    disk); ``keep_storage=False`` destroys it and its settings file.
    """

    kind = "lxc"

    def __init__(self, lxc_path, settings_dir, host_id=None, production=True, defaults=None,
                 stop_timeout=30, start_timeout=30, lxc=None):
        self.lxc = lxc or _lxc.LxcBackend(lxc_path)
        self.settings = _lxc.SettingsStore(settings_dir)
        self.defaults = dict(defaults or {})
        self.stop_timeout = stop_timeout
        self.manager = _lxc.LxcGuestManager(self.lxc, self.settings, host_id=host_id,
                                            production=production, stop_timeout=stop_timeout,
                                            start_timeout=start_timeout)
        self._info = Runner.for_binary("lxc-info", {"lxcpath": fmt_opt("-P"), "name": fmt_opt("-n"),
                                                    "pid": fmt_flag("-p"), "humanless": fmt_flag("-H")},
                                       timeout=30)

    def _converge(self, name, spec, state):
        entry = dict(spec or {}, name=name, state=state)
        self.manager.converge(_lxc.build_specs([entry], self.defaults))

    def define(self, name, spec):
        if self.lxc.state(name) is None:
            self._converge(name, spec, "present")

    def start(self, name, spec=None):
        if self.lxc.state(name) == "RUNNING":
            return
        if spec is None:
            self.lxc.start(name)
        else:
            self._converge(name, spec, "started")

    def stop(self, name, timeout=None):
        if self.lxc.state(name) == "RUNNING":
            self.lxc.stop(name, self.stop_timeout if timeout is None else timeout)

    def delete(self, name, keep_storage=True):
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
        return RUNNING if raw == "RUNNING" else STOPPED

    def states(self, names):
        """Two ``lxc-ls`` calls (all, running) whatever the number of names."""
        if not self.lxc.has_lxcpath():
            raise VmanError(f"lxc_path {self.lxc.lxcpath} is not a directory")
        known = set(self.lxc.list())
        running = set(self.lxc.list(running=True))
        return {name: RUNNING if name in running else STOPPED if name in known else None
                for name in names}

    def facts(self, name):
        res = self._info(["lxcpath", "name", "pid", "humanless"], lxcpath=self.lxc.lxcpath,
                         name=_lxc.validate_name(name), pid=True, humanless=True, check=False)
        pid = res.stdout.strip()
        boot_id = None
        if res.rc == 0 and pid.isdigit():
            try:
                boot_id = f"{_host_boot_id()}:{pid}:{_proc_starttime(pid)}"
            except (OSError, IndexError):
                boot_id = None
        return {"boot_id": boot_id, "addresses": self.lxc.ipv4(name)}

    def read_marker(self, name):
        res = self.lxc.attach(name, ["cat", MARKER_PATH], check=False, timeout=30)
        return res.stdout.strip() or None if res.rc == 0 else None

    def write_marker(self, name, value):
        self.lxc.attach(name, ["mkdir", "-p", os.path.dirname(MARKER_PATH)], timeout=30)
        self.lxc.attach(name, ["tee", MARKER_PATH], data=value + "\n", timeout=30)


class XenRequestBackend(Backend):
    """Xen domains of one dom0 through the ``xen_domain`` logic (xl.cfg rendered from the
    ``xen_vman`` VM variables, ``xl create``/``shutdown``).

    ``spec`` is one ``xen_domain`` VM entry without ``org``/``name``: the domain of device
    ``web-1`` is ``<org>-web-1`` with the backend's ``org``. ``delete`` stops the domain and
    removes its xl.cfg; the root storage (NFS directory, iSCSI LUN) is never removed by the
    reconciler, so ``keep_storage=False`` cannot do more than that. Addresses are the ``ip=``
    of the config's vifs. No marker (see the module docstring).
    """

    kind = "xen"

    def __init__(self, config_path="/etc/xen/vms", org="req", defaults=None, host_kernel=None,
                 shutdown_timeout=60, toolstack=None, config_lister=None):
        self.config_path = config_path
        # lists the file names in config_path (a remote dom0's); None: this machine's files
        self.config_lister = config_lister
        self.org = org
        self.defaults = dict(defaults or {})
        self.host_kernel = host_kernel or os.uname().release
        self.xl = toolstack or _xl.XlToolstack()
        self.shutdown_timeout = shutdown_timeout
        self.converger = DomainConverger(config_path, self.xl, manager="xl",
                                         shutdown_timeout=shutdown_timeout)

    def domain(self, name):
        """The Xen domain name of device ``name`` (``name`` itself with ``org=None``)."""
        return name if self.org is None else f"{self.org}-{name}"

    def _converge(self, name, spec, state):
        vm = {k: v for k, v in (spec or {}).items() if k != "state"}
        vm.update(org=self.org, name=name)
        self.converger.converge([_spec.normalize(vm, self.defaults, self.host_kernel)], state)

    def _config(self, name):
        return config_file(self.config_path, self.domain(name))

    def define(self, name, spec):
        if not os.path.exists(self._config(name)):
            self._converge(name, spec, "present")

    def start(self, name, spec=None):
        if self.xl.domid(self.domain(name)) is not None:
            return
        if spec is None:
            self.xl.create(self._config(name))
        else:
            self._converge(name, spec, "running")

    def stop(self, name, timeout=None):
        self.xl.shutdown(self.domain(name), self.shutdown_timeout if timeout is None else timeout)

    def delete(self, name, keep_storage=True):
        self.stop(name)
        if os.path.exists(self._config(name)):
            os.unlink(self._config(name))

    def state(self, name):
        if self.xl.domid(self.domain(name)) is not None:
            return RUNNING
        return STOPPED if os.path.exists(self._config(name)) else None

    def states(self, names):
        """One ``xl list -l`` for all names; a domain that does not run is stopped when its
        xl.cfg exists."""
        running = self.xl.list()
        if self.config_lister is None:
            def has_config(name):
                return os.path.exists(self._config(name))
        else:
            files = set(self.config_lister())

            def has_config(name):
                return os.path.basename(self._config(name)) in files
        return {name: RUNNING if self.domain(name) in running else STOPPED if has_config(name) else None
                for name in names}

    def facts(self, name):
        domid = self.xl.domid(self.domain(name))
        try:
            with open(self._config(name), encoding="utf-8") as handle:
                vifs = _xl.parse(handle.read()).get("vif") or []
        except OSError:
            vifs = []
        addresses = []
        for vif in vifs if isinstance(vifs, list) else [vifs]:
            for part in str(vif).split(","):
                key, _sep, value = part.partition("=")
                if key.strip() == "ip" and value.strip():
                    addresses.append(value.strip().split("/")[0])
        return {"boot_id": None if domid is None else f"{_host_boot_id()}:{domid}",
                "addresses": addresses}

    def read_marker(self, name):
        return None

    def write_marker(self, name, value):
        return None


class LibvirtStateReader(Backend):
    """The power state of libvirt domains, read only, through one connection to ``uri`` (any
    libvirt URI: ``qemu:///system``, ``qemu+ssh://root@host/system``, ``test:///default``).

    Only :meth:`state` and :meth:`states`: the lifecycle's libvirt backend (define, start, ...)
    is not written yet. The words are those of :func:`_libvirt.domain_state` (``running``,
    ``stopped``, ``paused``, ``shutdown``, ``crashed``, ``pmsuspended``, ``unknown``), None
    for a domain the connection does not know.
    """

    kind = "libvirt"

    def __init__(self, uri="qemu:///system"):
        self.uri = uri

    def state(self, name):
        return self.states([name])[name]

    def states(self, names):
        conn = _libvirt.connect(self.uri, readonly=True)
        try:
            try:
                domains = {dom.name(): dom for dom in conn.listAllDomains(0)}
                found = {name: _libvirt.domain_state(domains[name])
                         for name in names if name in domains}
            except _libvirt.libvirt.libvirtError as exc:
                raise _libvirt.LibvirtError(f"cannot list the domains of {self.uri}: {exc}",
                                            self.uri) from None
        finally:
            _libvirt.close(conn)
        return {name: found.get(name) for name in names}


#: What :func:`make_state_reader` accepts per kind, besides ``backend`` and ``timeout``.
STATE_READER_OPTIONS = {"lxc": ("lxc_path", "ssh", "ssh_args"), "xen": ("config_path", "ssh", "ssh_args"),
                        "libvirt": ("uri",)}


def make_state_reader(kind, options, timeout=30):
    """A read-only backend of ``kind`` on which only :meth:`Backend.states` is called.

    ``options`` are those of :data:`STATE_READER_OPTIONS`. LXC and Xen run ``lxc-ls`` and
    ``xl`` on this machine, or on the host ``ssh`` names (see :func:`ssh_executor`), each
    command within ``timeout`` seconds; the names given to a Xen reader are full domain names
    (``<org>-<name>``). libvirt connects to ``uri`` (remote hosts through libvirt's own
    transports, ``qemu+ssh://``).
    """
    opts = dict(options or {})
    if opts.get("ssh"):
        executor = ssh_executor(opts["ssh"], opts.get("ssh_args") or (), timeout)
    else:
        executor = _with_timeout(timeout)
    if kind == "lxc":
        lxc_path = opts.get("lxc_path") or "/var/lib/lxc"
        return LxcRequestBackend(lxc_path, "/nonexistent", host_id="fleet-inventory",
                                 lxc=_lxc.LxcBackend(lxc_path, executor=executor, timeout=timeout))
    if kind == "xen":
        config_path = opts.get("config_path") or "/etc/xen/vms"
        ls = Runner(["ls"], {"opts": fmt_positional(), "path": fmt_positional()}, executor=executor)

        def config_files():
            return ls(["opts", "path"], opts=["-1A", "--"], path=config_path).stdout.splitlines()
        return XenRequestBackend(config_path, org=None, toolstack=_xl.XlToolstack(executor=executor),
                                 config_lister=config_files)
    if kind == "libvirt":
        return LibvirtStateReader(opts.get("uri") or "qemu:///system")
    raise ValidationError("live_state", "backend", kind, f"must be one of {', '.join(KINDS)}")


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


def make_backend(kind, options):
    """The backend of ``kind`` configured by ``options`` (the reconcile module's ``lxc``
    dict for LXC). Raises ValidationError for a kind that has no implementation yet."""
    if kind == "lxc":
        opts = dict(options or {})
        return LxcRequestBackend(opts.get("lxc_path") or "/var/lib/lxc",
                                 opts.get("settings_dir") or "/var/lib/vman/lxc",
                                 host_id=opts.get("host_id"),
                                 production=opts.get("production", True),
                                 defaults=opts.get("defaults"))
    if kind == "xen":
        opts = dict(options or {})
        return XenRequestBackend(opts.get("config_path") or "/etc/xen/vms", opts.get("org") or "req",
                                 defaults=opts.get("defaults"), host_kernel=opts.get("host_kernel"),
                                 shutdown_timeout=opts.get("shutdown_timeout") or 60)
    if kind in KINDS:
        raise ValidationError("reconcile", "backend", kind,
                              "the request reconciler has no backend for this kind yet "
                              "(lxc and xen); converge it with its own module")
    raise ValidationError("reconcile", "backend", kind, f"must be one of {', '.join(KINDS)}")
