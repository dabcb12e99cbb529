# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ``xen_vman`` role decides, as pure functions (private, no stability promise).

The role collects its variables and a few facts of the host (the existing xl.cfg files, the
lazily evaluated default bridge per VM) and hands them to :func:`role_defaults` and
:func:`plan` (through the ``vman.lifecycle.xen_vman_*`` filters); the tasks then only call
modules with what these return.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from ansible_collections.vman.lifecycle.plugins.module_utils import _iscsi, _rootfs, _spec, _units, _xl
from ansible_collections.vman.lifecycle.plugins.module_utils._errors import ValidationError

PREFIX = "xen_vman_"
#: role variables that are host settings, not VM defaults
_NOT_DEFAULTS = frozenset((
    "vms", "xl_path", "iscsiadm_path", "vm_config_path", "dracut_modules", "dracut_extra_flags",
    "start_timeout", "stop_timeout", "iscsi_login_timeout", "iscsi_logout_timeout",
    "mount_timeout", "umount_timeout", "public_keys", "debootstrap_packages",
    "debootstrap_tarball", "debootstrap_mirror", "additional_network_scripts", "vm_user",
    "build_initrds", "default_network_bridge", "lazy_default_network_bridge",
    "mount_base", "nfs_base", "iscsi_device_timeout",
))
_OPTIONS = ("default_additonal_xen_options", "default_additional_xen_options")
HOST_PACKAGES = ("debootstrap", "python3-netaddr")
INITRD_PACKAGES = ("dracut", "dracut-network")
ISCSI_PACKAGES = ("open-iscsi",)


def xen_options(value, field: str) -> dict:
    """``additional_xen_options`` as a dict.

    Accepts a dict, or a list of ``[key, value]`` pairs or one-key dicts: the README's default
    is ``[]`` and the original role iterated the option as key/value pairs.
    """
    if value in (None, "", []):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        out = {}
        for index, item in enumerate(value):
            if isinstance(item, Mapping) and len(item) == 1:
                out.update(item)
            elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
                out[item[0]] = item[1]
            else:
                raise ValidationError("xen_vman", f"{field}[{index}]", item,
                                      "must be a [key, value] pair or a one-key dict")
        return out
    raise ValidationError("xen_vman", field, value, "must be a dict of xl.cfg keys to values")


def role_defaults(role_vars: Mapping) -> dict:
    """The ``defaults`` dict of the VM modules from the role's variables.

    ``xen_vman_default_memory`` → ``memory``, ``xen_vman_nfsroot_base`` → ``nfsroot_base``;
    None values are dropped (the module's built-in default applies). Both spellings of
    ``xen_vman_default_additional_xen_options`` are merged, the correct one winning per key.
    """
    out = {}
    for key, value in role_vars.items():
        if not key.startswith(PREFIX):
            continue
        short = key[len(PREFIX):]
        if short in _NOT_DEFAULTS or short in _OPTIONS or value is None:
            continue
        if short.startswith("default_"):
            short = short[len("default_"):]
        out[short] = value
    options = {}
    for short in _OPTIONS:
        options.update(xen_options(role_vars.get(PREFIX + short), PREFIX + short))
    out["additional_xen_options"] = options
    return out


def lazy_bridges(results) -> dict:
    """``{<org>-<name>: bridge}`` from the results of the role's lazy-bridge loop.

    Each result carries the loop item ``vm`` and the evaluated bridge in
    ``ansible_facts.__xen_vman_lazy_bridge``; skipped loops (no lazy bridge) give ``{}``.
    """
    out = {}
    for result in results or ():
        if not isinstance(result, Mapping) or result.get("skipped"):
            continue
        vm = result.get("vm") or {}
        bridge = (result.get("ansible_facts") or {}).get("__xen_vman_lazy_bridge")
        if bridge in (None, ""):
            continue
        if not isinstance(bridge, str):
            raise ValidationError(_spec.full_name(vm.get('org'), vm.get('name')),
                                  "xen_vman_lazy_default_network_bridge", bridge, "must be a string")
        out[_spec.full_name(vm.get('org'), vm.get('name'))] = bridge
    return out


def _with_bridge(vm: Mapping, bridge: str | None) -> dict:
    vm = dict(vm)
    vm.pop("root_path", None)
    if bridge and isinstance(vm.get("interfaces"), list):
        vm["interfaces"] = [dict(i, bridge=bridge) if isinstance(i, Mapping) and not i.get("bridge")
                            else i for i in vm["interfaces"]]
    return vm


#: beside a new VM's xl.cfg until its root is installed (see :func:`plan`)
PENDING_SUFFIX = ".install-pending"


def plan(vms, defaults: Mapping, existing_configs=(), lazy=None, mount_base="/mnt/vms",
         build_initrds=True) -> dict:
    """Everything the role's tasks need, computed once.

    - ``domain_vms``: the VM dicts for ``xen_domain`` (lazy bridge filled in, ``root_path``
      removed, a VM still to be installed never started by the first call);
    - ``new``: ``<org>-<name>`` of VMs without a config file among ``existing_configs``, or
      with a ``<org>-<name>.install-pending`` file there (a run that wrote the config but
      failed before the root was installed);
    - ``pending``: the new VMs about to be installed: the role writes their
      ``.install-pending`` file before their config and removes it once the root is installed;
    - ``install_vms``: VMs ``vm_rootfs`` has to look at (new with ``auto_install``, or
      ``reinstall``), iSCSI ones with ``root_path`` at their ``vm_mount@`` mount point;
    - ``iscsi_vms``: iSCSI-root VMs (all, for ``iscsi_root``); ``mount``: install VMs whose
      root ``vm_mount@`` has to mount; ``stop``: reinstalled VMs (stopped before the wipe);
    - ``start_vms``: installed VMs with ``boot_after_creation`` (started at the end);
    - ``markers``: ``{name, content}`` of the per-VM files that ``vm_iscsi@`` and ``vm_mount@``
      read (``<org>-<name>.iscsi`` of an iSCSI root, ``<org>-<name>.root`` of an iSCSI or an
      NFS root);
    - ``packages``: Debian packages the host needs.

    ``existing_configs`` are paths (or ``find`` results with ``path``) of the xl.cfg and
    ``.install-pending`` files present before this run; ``lazy`` is :func:`lazy_bridges`' output.
    """
    if vms is None:
        vms = []
    bridges = lazy or {}
    specs = _spec.normalize_all([_with_bridge(vm, None) for vm in vms], defaults)
    existing = {os.path.basename(str(p.get("path") if isinstance(p, Mapping) else p))
                for p in existing_configs or ()}
    out = {"domain_vms": [], "new": [], "install_vms": [], "iscsi_vms": [], "mount": [],
           "stop": [], "start_vms": [], "markers": [], "pending": []}
    for vm, spec in zip(vms, specs):
        name = spec.full_name
        domain_vm = _with_bridge(vm, bridges.get(name))
        is_new = f"{name}.cfg" not in existing or f"{name}{PENDING_SUFFIX}" in existing
        if is_new:
            out["new"].append(name)
        iscsi = spec.storage_type == "iscsi" and not spec.manual_root_disk
        if iscsi and spec.state != "absent":
            out["iscsi_vms"].append(domain_vm)
            out["markers"].extend(iscsi_markers(spec))
        elif spec.state != "absent":
            out["markers"].extend(nfs_markers(spec))
        installs = spec.state != "absent" and (spec.reinstall or (is_new and spec.auto_install))
        if installs:
            if domain_vm.get("state") == "running":
                domain_vm = dict(domain_vm, state="present")  # started after the install
            install_vm = dict(domain_vm)
            if vm.get("root_path"):
                install_vm["root_path"] = vm["root_path"]
            elif iscsi:
                install_vm["root_path"] = f"{mount_base.rstrip('/')}/{name}"
                out["mount"].append(name)
            out["install_vms"].append(install_vm)
            if is_new:
                out["pending"].append(name)
            if spec.reinstall and not is_new:
                out["stop"].append(name)
            if spec.boot_after_creation and spec.state in (None, "present", "running"):
                out["start_vms"].append(domain_vm)
        out["domain_vms"].append(domain_vm)
    packages = list(HOST_PACKAGES)
    if build_initrds:
        packages += INITRD_PACKAGES
    if out["iscsi_vms"]:
        packages += ISCSI_PACKAGES
    out["packages"] = packages
    return out


#: what the original xen_vman role installed beside the units this role replaces in place
#: (vm@, vm_iscsi@ and vm_mount@ have the same names and are simply rewritten)
LEGACY_PREPARE_UNIT = "/etc/systemd/system/xen_vman_global_preparation.service"
LEGACY_PREPARE_SCRIPT = "/usr/local/bin/xen_vman_global_preparation.sh"
LEGACY_MOUNT_SCRIPT = "/etc/xen/scripts/mount_vm.sh"
LEGACY_FILES = (LEGACY_PREPARE_UNIT, LEGACY_PREPARE_SCRIPT, LEGACY_MOUNT_SCRIPT)
#: the original's ``<config_path>/.iscsi/<org>-<name>`` marker directory
LEGACY_ISCSI_DIR = ".iscsi"
_LEGACY_NAME_RE = re.compile(r"(?P<org>[a-z0-9][a-z0-9_.]{0,62})-(?P<name>[a-z0-9][a-z0-9_.-]{0,62})")


def _paths(found) -> list:
    """Paths from ``find``/``stat`` results (dicts with ``path``, or ``stat.exists``) or strings."""
    out = []
    for item in found or ():
        if isinstance(item, Mapping):
            if "stat" in item:          # a stat loop result: the item is the path
                if (item.get("stat") or {}).get("exists"):
                    out.append(str(item.get("item") or item["stat"].get("path")))
                continue
            out.append(str(item.get("path")))
        else:
            out.append(str(item))
    return out


def legacy_plan(vms, defaults: Mapping, config_path: str, existing_configs=(), legacy_found=()) -> dict:
    """Take over a host that the original ``xen_vman`` role set up, leaving nothing half-active.

    ``legacy_found`` are the paths present among :data:`LEGACY_FILES` and in
    ``<config_path>/.iscsi/``. Returns:

    - ``disable``: ``xen_vman_global_preparation.service`` when installed (``vm_prepare.service``
      does its work now); ``remove``: its unit and script, ``mount_vm.sh`` (the new
      ``vm_mount@`` does not call it), every ``.iscsi/<org>-<name>`` marker and then the
      directory itself when nothing else is in it;
    - ``markers``: for a marked VM that is not in ``vms`` but still has its ``<org>-<name>.cfg``,
      this role's ``<org>-<name>.iscsi`` and ``.root`` files made from the role's iSCSI
      settings, so its ``vm@`` keeps logging in to its root (VMs in ``vms`` get theirs from
      :func:`plan`). A marker without a config is dropped: the original's ``vm_iscsi@`` skipped
      it too.

    Raises ValidationError when a marked VM with a config cannot be carried over (no
    ``xen_vman_iscsi_server``/``xen_vman_iscsi_base_wwn``, or a name that is not ``org-name``).
    """
    base = config_path.rstrip("/")
    marker_dir = f"{base}/{LEGACY_ISCSI_DIR}"
    found = _paths(legacy_found)
    # a find result that is not a regular file (a directory someone put there) is not ours
    foreign = {str(i.get("path")) for i in legacy_found or ()
               if isinstance(i, Mapping) and "stat" not in i and i.get("isreg") is False}
    configs = {os.path.basename(p) for p in _paths(existing_configs)}
    listed = {spec.full_name for spec in _spec.normalize_all(vms or [], defaults)}
    out = {"disable": [], "remove": [], "markers": []}
    if LEGACY_PREPARE_UNIT in found:
        out["disable"].append(os.path.basename(LEGACY_PREPARE_UNIT))
    out["remove"] += [p for p in LEGACY_FILES if p in found]
    in_dir = sorted({p for p in found if os.path.dirname(p) == marker_dir and p not in foreign})
    d = _spec.normalize_defaults(defaults)
    for path in in_dir:
        full = os.path.basename(path)
        out["remove"].append(path)
        if full in listed or f"{full}.cfg" not in configs:
            continue
        match = _LEGACY_NAME_RE.fullmatch(full)
        if not match:
            raise ValidationError(full, f"{LEGACY_ISCSI_DIR}/{full}", full,
                                  "an iSCSI marker of the original role whose VM has a config "
                                  "but whose name is not <org>-<name>: add the VM to xen_vman_vms")
        if not d.get("iscsi_server") or not d.get("iscsi_base_wwn"):
            raise ValidationError(full, "xen_vman_iscsi_server", d.get("iscsi_server"),
                                  "the original role marked this VM's root as iSCSI; set "
                                  "xen_vman_iscsi_server and xen_vman_iscsi_base_wwn (or add "
                                  "the VM to xen_vman_vms) so that it keeps its root")
        spec = _spec.normalize({"org": match.group("org"), "name": match.group("name"),
                                "storage_type": "iscsi", "interfaces": []}, defaults,
                               require_os=False)
        out["markers"].extend(iscsi_markers(spec))
    if marker_dir in found and not any(os.path.dirname(p) == marker_dir for p in foreign):
        out["remove"].append(marker_dir)     # empty once its markers are gone
    return out


_XL_WORD = re.compile(r"[A-Za-z0-9_.:/+-]{1,255}")


def xl_conf_lines(role_vars: Mapping) -> list:
    """``lineinfile`` items for ``/etc/xen/xl.conf``: default vif script, and bridge when set."""
    out = []
    for key, setting, after in (("script", "vif.default.script", "^# default vif script"),
                                ("bridge", "vif.default.bridge", "^# default bridge device")):
        value = role_vars.get(f"{PREFIX}default_network_{key}")
        if value in (None, ""):
            continue
        if not isinstance(value, str) or not _XL_WORD.fullmatch(value):
            raise ValidationError("xen_vman", f"{PREFIX}default_network_{key}", value,
                                  f"must match {_XL_WORD.pattern}")
        out.append({"regexp": rf"^#?\s*{re.escape(setting)}\s*=", "line": f'{setting}="{value}"',
                    "insertafter": after})
    return out


def iscsi_markers(spec) -> list:
    """The files beside an iSCSI VM's xl.cfg: the login marker and what ``vm_mount@`` mounts."""
    target = _iscsi.target_iqn(spec.iscsi_base_wwn, spec.org, spec.name)
    portal = _iscsi.portal(spec.iscsi_server)
    device = _iscsi.by_path(spec.iscsi_server, spec.iscsi_base_wwn, spec.org, spec.name,
                            spec.iscsi_lun)
    return [
        {"name": f"{spec.full_name}.iscsi", "content": _units.render_iscsi_marker(target, portal)},
        {"name": f"{spec.full_name}.root", "content": _units.render_root_env(device, spec.filesystem)},
    ]


def nfs_markers(spec) -> list:
    """The ``<org>-<name>.root`` file of an NFS root: ``vm_mount@`` mounts the export (the
    original role's ``vm_mount@`` mounted NFS roots too). None for other roots."""
    if spec.storage_type != "nfs" or spec.manual_root_disk or not spec.nfsroot_base:
        return []
    source = _xl.nfs_root_path(spec.nfsroot_base, spec.org, spec.name)
    return [{"name": f"{spec.full_name}.root", "content": _units.render_root_env(source, "nfs")}]


def lifecycle_mac(domain: str) -> str:
    """A stable MAC in Xen's OUI (00:16:3e) for a lifecycle VM without one: the same domain
    gets the same address at every boot, so neighbour caches and DHCP leases stay right."""
    digest = hashlib.sha256(domain.encode("utf-8")).digest()
    # the OUI's top bit of the fourth byte stays clear (xl's own random MACs do the same)
    return "00:16:3e:%02x:%02x:%02x" % (digest[0] & 0x7F, digest[1], digest[2])


def lifecycle_vm(spec, org, name, netconfs, defaults=None, prefix=24) -> dict:
    """The ``xen_domain``/``vm_rootfs`` VM entry of a VM of the lifecycle store, and its root.

    ``spec`` is the VM's stored spec (the flavor's), ``org``/``name`` its store columns,
    ``netconfs`` its netconfs by kind (the fleet inventory's ``vman_netconfs``). A spec without
    ``interfaces`` gets one on the ``vm`` netconf's IPv4 address with ``prefix`` and a stable
    MAC. Returns ``{"vm": entry, "root_path": path}``; ``root_path`` is where the NFS root of
    the VM is on the dom0 (validated as ``vm_rootfs`` does), None for any other root.
    """
    label = _spec.full_name(org, name)
    if not isinstance(spec, Mapping):
        raise ValidationError(label, "spec", spec, "must be a dict (the VM's stored spec)")
    if not isinstance(prefix, int) or isinstance(prefix, bool) or not 1 <= prefix <= 32:
        raise ValidationError(label, "prefix", prefix, "must be an IPv4 prefix length 1-32")
    vm = dict(spec)
    vm["org"], vm["name"] = org, name
    if not vm.get("interfaces"):
        row = (netconfs or {}).get("vm") or {}
        if not row.get("ipv4"):
            raise ValidationError(label, "netconfs.vm.ipv4", row.get("ipv4"),
                                  "a Xen VM of the lifecycle needs an IPv4 netconf of kind vm "
                                  "(or interfaces in its spec)")
        vm["interfaces"] = [{"ip": f"{row['ipv4']}/{prefix}", "mac": lifecycle_mac(label)}]
    normalized = _spec.normalize(vm, defaults or {})
    root_path = None
    if normalized.storage_type == "nfs" and not normalized.manual_root_disk:
        root_path = _rootfs.root_path_for(normalized, None, "/mnt/vms", None)
    return {"vm": vm, "root_path": root_path}
