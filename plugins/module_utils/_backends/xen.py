# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Xen guest backend: ``vm@`` units where the host has them, else ``xl`` (private, no
stability promise)."""

from __future__ import annotations

import os
import shutil

from ansible_collections.vman.lifecycle.plugins.module_utils import _spec, _units, _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._backends.base import (
    RUNNING, STOPPED, SUSPENDED, GuestBackend, NotSupported, check_options, host_boot_id)
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import StateError, ValidationError
from ansible_collections.vman.lifecycle.plugins.module_utils._spec import full_name
from ansible_collections.vman.lifecycle.plugins.module_utils._units import XEN_CONFIG_PATH
from ansible_collections.vman.lifecycle.plugins.module_utils._xen_domain import (
    START_BACKSTOP, DomainConverger, config_file)

MANAGERS = ("auto", "systemd", "xl")
#: keys of the lifecycle's Xen settings that are the install step's (vm_rootfs), not ours
INSTALL_KEYS = ("image", "tarball", "mirror")
HOST_KEYS = ("config_path", "manager", "org", "defaults", "host_kernel", "prefix", "start_timeout",
             "stop_timeout", "shutdown_timeout", "unit_path", "save_dir") + INSTALL_KEYS


class XenGuest(GuestBackend):
    """Xen domains of one dom0, named ``<org>-<name>`` (``name`` alone with ``org=None``).

    ``manager``: ``systemd`` runs each domain as ``vm@<domain>.service`` (the units of
    ``roles/xen_vman``, installed or updated by :meth:`define`, as ``xen_units`` does), ``xl``
    runs ``xl create``/``xl shutdown`` directly, ``auto`` uses the units when PID 1 is systemd
    and a ``vm@.service`` for this ``config_path`` is installed under ``unit_path``, else ``xl``.

    ``spec`` is one ``xen_domain`` VM entry (``org``/``name`` come from the backend); with
    ``netconfs`` a spec without ``interfaces`` gets one on the ``vm`` netconf's address
    (:func:`_xen_vman.lifecycle_vm`). :meth:`define` renders the xl.cfg and writes it when it
    changed. :meth:`delete` stops the domain, disables its unit and removes its xl.cfg; with
    ``keep_storage=False`` and a spec it also removes the domain's NFS root directory on this
    host (iSCSI LUNs and manual roots are the operator's and stay). :meth:`suspend` is
    ``xl save`` to ``<save_dir>/<domain>.save``, :meth:`resume` ``xl restore`` of it, once: the
    image is removed after the restore. Under ``vm@`` units suspend/resume are not supported
    (the units start domains with ``xl create`` only). No snapshots (xl has none). The guest
    cannot be reached from the dom0, so there is no marker.
    """

    kind = "xen"
    options = HOST_KEYS
    reader_options = ("config_path", "ssh", "ssh_args")
    redefines = True

    def __init__(self, config_path=XEN_CONFIG_PATH, org="req", defaults=None, host_kernel=None,
                 shutdown_timeout=60, toolstack=None, config_lister=None, manager="xl",
                 systemctl=None, unit_path="/etc/systemd/system", save_dir="/var/lib/xen/save",
                 prefix=24, start_timeout=None, booted=_units.systemd_booted, installer=None):
        if manager not in MANAGERS:
            raise ValidationError("xen", "manager", manager, f"must be one of {', '.join(MANAGERS)}")
        self.config_path = config_path
        # lists the file names in config_path (a remote dom0's); None: this machine's files
        self.config_lister = config_lister
        self.org = org
        self.defaults = dict(defaults or {})
        self.host_kernel = host_kernel or os.uname().release
        self.xl = toolstack or _xl.XlToolstack()
        self.shutdown_timeout = shutdown_timeout
        self.start_timeout = start_timeout
        self.manager_setting = manager
        self.unit_path = unit_path
        self.save_dir = save_dir
        self.prefix = prefix
        self._systemctl = systemctl
        self._booted = booted
        self._installer = installer
        self._units_ensured = False

    @classmethod
    def from_options(cls, options, timeout=None):
        opts = {k: v for k, v in (options or {}).items() if v is not None}
        check_options(opts, cls.options, "xen")
        stop = opts.get("stop_timeout", opts.get("shutdown_timeout", 60))
        return cls(opts.get("config_path") or XEN_CONFIG_PATH, (options or {}).get("org", "req"),
                   defaults=opts.get("defaults"), host_kernel=opts.get("host_kernel"),
                   shutdown_timeout=stop, manager=opts.get("manager", "auto"),
                   unit_path=opts.get("unit_path", "/etc/systemd/system"),
                   save_dir=opts.get("save_dir", "/var/lib/xen/save"),
                   prefix=opts.get("prefix", 24), start_timeout=opts.get("start_timeout"))

    @classmethod
    def reader(cls, options, executor=None, timeout=30):
        from ansible_collections.vman.lifecycle.plugins.module_utils._runner import Runner, fmt_positional
        config_path = (options or {}).get("config_path") or XEN_CONFIG_PATH
        lister = None
        if executor is not None:
            ls = Runner(["ls"], {"opts": fmt_positional(), "path": fmt_positional()}, executor=executor)

            def lister():
                return ls(["opts", "path"], opts=["-1A", "--"], path=config_path).stdout.splitlines()
        return cls(config_path, org=None, toolstack=_xl.XlToolstack(executor=executor),
                   config_lister=lister)

    @staticmethod
    def guest_name(org, name):
        return full_name(org, name)

    # -- names and paths ---------------------------------------------------------------------

    def domain(self, name):
        """The Xen domain name of guest ``name`` (``name`` itself with ``org=None``)."""
        return name if self.org is None else full_name(self.org, name)

    def _config(self, name):
        return config_file(self.config_path, self.domain(name))

    def save_image(self, name):
        """Where :meth:`suspend` saves ``name``'s memory."""
        return os.path.join(self.save_dir, f"{self.domain(name)}.save")

    @property
    def manager(self):
        """``systemd`` or ``xl``: the setting, with ``auto`` resolved on this host."""
        if self.manager_setting != "auto":
            return self.manager_setting
        if not self._booted():
            return "xl"
        try:
            with open(os.path.join(self.unit_path, _units.VM_UNIT), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            return "xl"
        # units made for another config directory would skip our domains (ConditionPathExists)
        return "systemd" if f"{self.config_path.rstrip('/')}/%i.cfg" in text else "xl"

    @property
    def systemctl(self):
        if self._systemctl is None:
            self._systemctl = _units.Systemctl()
        return self._systemctl

    def _unit(self, name):
        return _units.vm_unit(self.domain(name))

    def _normalized(self, name, spec, netconfs=None):
        from ansible_collections.vman.lifecycle.plugins.module_utils import _xen_vman
        if self.org is None:
            raise ValidationError(name, "org", None, "a Xen guest needs its org to be defined")
        if netconfs is not None:
            vm = _xen_vman.lifecycle_vm(spec or {}, self.org, name, netconfs, self.defaults, self.prefix)["vm"]
        else:
            vm = dict(spec or {})
        vm = {k: v for k, v in vm.items() if k != "state"}
        vm.update(org=self.org, name=name)
        return _spec.normalize(vm, self.defaults, self.host_kernel)

    def _ensure_units(self):
        """With ``manager: systemd`` the units are installed (or updated) once per backend."""
        if self.manager_setting != "systemd" or self._units_ensured:
            return False
        installer = self._installer
        if installer is None:
            settings = {"config_path": self.config_path,
                        "xl_path": _units.find_binary("xl", _units.DEFAULTS["xl_path"]),
                        "iscsiadm_path": _units.find_binary("iscsiadm", _units.DEFAULTS["iscsiadm_path"]),
                        "stop_timeout": int(self.shutdown_timeout)}
            if self.start_timeout:
                settings["start_timeout"] = int(self.start_timeout)
            installer = _units.UnitInstaller(_units.settings(**settings), self.unit_path)
        result, _diffs = installer.apply()
        self._units_ensured = True
        return result["changed"]

    def _converge(self, name, spec, netconfs, state):
        changed = self._ensure_units()
        converger = DomainConverger(self.config_path, self.xl,
                                    systemctl=self.systemctl if self.manager == "systemd" else None,
                                    manager=self.manager, shutdown_timeout=self.shutdown_timeout)
        results, _diffs = converger.converge([self._normalized(name, spec, netconfs)], state)
        return changed or results[0]["changed"]

    # -- the verbs ---------------------------------------------------------------------------

    def define(self, name, spec, netconfs=None):
        if spec is None:
            if os.path.exists(self._config(name)):
                return False
            raise ValidationError(name, "spec", None, "the domain has no xl.cfg; its spec is needed")
        return self._converge(name, spec, netconfs, "present")

    def start(self, name, spec=None, netconfs=None):
        if self.xl.domid(self.domain(name)) is not None:
            return
        if os.path.exists(self.save_image(name)):
            raise StateError(f"{self.domain(name)}: the domain is suspended ({self.save_image(name)}); "
                             "resume it (a fresh start would leave the saved image behind)")
        if spec is not None:
            self._converge(name, spec, netconfs, "running")
        elif self.manager == "systemd":
            self.systemctl.start(self._unit(name), timeout=START_BACKSTOP)
        else:
            self.xl.create(self._config(name))

    def stop(self, name, timeout=None):
        timeout = self.shutdown_timeout if timeout is None else timeout
        if self.manager == "systemd":
            if self.xl.domid(self.domain(name)) is None:
                return
            self.systemctl.stop(self._unit(name), timeout=timeout + 30)
        # under the units too: ExecStop may time out and leave the domain
        self.xl.shutdown(self.domain(name), timeout)

    def delete(self, name, keep_storage=True, spec=None, netconfs=None):
        root = None
        if not keep_storage and spec is not None:
            from ansible_collections.vman.lifecycle.plugins.module_utils import _rootfs
            normalized = self._normalized(name, spec, netconfs)
            if normalized.storage_type == "nfs" and not normalized.manual_root_disk:
                root = _rootfs.root_path_for(normalized, None, "/mnt/vms", None)
        self.stop(name)
        if self.manager == "systemd" and self.systemctl.is_enabled(self._unit(name)):
            self.systemctl.disable(self._unit(name))
        for path in (self._config(name), self.save_image(name)):
            if os.path.lexists(path):
                os.unlink(path)
        if root and os.path.lexists(root):
            if os.path.islink(root) or not os.path.isdir(root):
                os.unlink(root)         # never follow a link out of the NFS export
            else:
                shutil.rmtree(root)

    def state(self, name):
        if self.xl.domid(self.domain(name)) is not None:
            return RUNNING
        if os.path.exists(self.save_image(name)):
            return SUSPENDED
        return STOPPED if os.path.exists(self._config(name)) else None

    def states(self, names):
        """One ``xl list -l`` for all names; a domain that does not run is suspended when its
        saved image exists here, stopped when its xl.cfg exists."""
        running = self.xl.list()
        if self.config_lister is None:
            def has_config(name):
                return os.path.exists(self._config(name))

            def saved(name):
                return os.path.exists(self.save_image(name))
        else:
            files = set(self.config_lister())

            def has_config(name):
                return os.path.basename(self._config(name)) in files

            def saved(_name):
                return False        # a remote dom0's save directory is not listed
        out = {}
        for name in names:
            if self.domain(name) in running:
                out[name] = RUNNING
            elif saved(name):
                out[name] = SUSPENDED
            else:
                out[name] = STOPPED if has_config(name) else None
        return out

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
        return {"boot_id": None if domid is None else f"{host_boot_id()}:{domid}",
                "addresses": addresses}

    def capacity(self):
        info = self.xl.info()
        try:
            return {"vcpus": int(info["nr_cpus"]), "memory_mib": int(info["total_memory"])}
        except (KeyError, ValueError):
            raise StateError(f"xl info did not give nr_cpus and total_memory: {info}") from None

    def _no_units(self, verb):
        if self.manager == "systemd":
            raise NotSupported(self.kind, verb, "the vm@ units start domains with xl create only; "
                               "use manager xl for suspended guests")

    def suspend(self, name):
        self._no_units("suspend")
        image = self.save_image(name)
        if self.xl.domid(self.domain(name)) is None:
            if os.path.exists(image):
                return
            raise StateError(f"{self.domain(name)}: cannot suspend a domain that does not run")
        if os.path.exists(image):
            raise StateError(f"{self.domain(name)}: {image} exists already (an older save); "
                             "remove it or resume the guest from it first")
        os.makedirs(self.save_dir, mode=0o700, exist_ok=True)
        self.xl.save(self.domain(name), image)

    def resume(self, name):
        self._no_units("resume")
        image = self.save_image(name)
        running = self.xl.domid(self.domain(name)) is not None
        if not os.path.exists(image):
            if running:
                return
            raise StateError(f"{self.domain(name)}: cannot resume, there is no saved image {image}")
        if running:
            # the image belongs to this domain, which runs: restoring it would run it twice
            raise StateError(f"{self.domain(name)}: runs already and a saved image {image} is left; "
                             "refusing to restore it a second time (remove it)")
        self.xl.restore(image)
        os.unlink(image)
