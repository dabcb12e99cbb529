#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lxc_guest
short_description: Create, clone, start, stop and destroy the LXC containers of a host
version_added: 0.1.0
description:
  - Converges the whole list of containers of one LXC host in one call (seed 001's
    C(makina-states.services.cloud.lxc.targets.<host>) mapping, one entry per container).
  - A container is cloned from O(from_container) (profile types V(lvm), V(dir), V(overlayfs),
    V(btrfs), V(zfs)) or created from the template O(image) (the C(-scratch) types).
    V(overlayfs-scratch) keeps one directory container per template named
    C(vman-image-<image>) and snapshots it, because C(lxc-create) cannot make overlay roots.
  - IP, MAC (C(00:16:3e:xx:xx:xx)) and password are generated when not given and kept in a
    settings file per container (see O(settings_dir)), so the next run reuses them. IPs are
    the lowest free host addresses of O(network) (neither the gateway nor used by another
    container of the host); a full network is an error naming it.
  - Network settings go to the container's lxc config (C(lxc.net.0.*)); the guest's C(eth0)
    is set to C(manual) in its rootfs when it is created, so the guest does not run DHCP (an
    LVM root is mounted for that on a private temporary directory, then unmounted).
  - Password, O(users) and O(ssh_keys) are applied inside the running container with
    C(lxc-attach) (C(useradd), C(chpasswd), C(authorized_keys)) the first time it runs and
    whenever they change.
  - Every option below O(containers) other than C(name), C(ip), C(mac) and C(password) has a
    top-level twin that is its default for every entry.
author:
  - vman.lifecycle developers (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.lxc
attributes:
  check_mode:
    support: full
    description: Reports what would be created, cloned, started, stopped or destroyed; nothing is changed.
  diff_mode:
    support: full
    description: The lxc config text and power state of each container, before and after.
options:
  containers:
    description:
      - The containers of this host. Options not set in an entry take the top-level value.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Container name, a host name or FQDN of at most 63 characters.
        type: str
        required: true
      state:
        description: Desired state (default O(state)).
        type: str
        choices: [present, started, stopped, absent]
      profile_type:
        description: Backing and install mode (default O(profile_type)).
        type: str
        choices: [lvm, lvm-scratch, dir, dir-scratch, overlayfs, overlayfs-scratch, btrfs, btrfs-scratch, zfs, zfs-scratch]
      profile:
        description: Size profile (default O(profile)).
        type: str
        choices: [xxxsmall, xxsmall, xsmall, small, medium, large, xxlarge, xxxlarge, xtrem, xxtrem, xxxtrem]
      from_container:
        description: Origin container of a clone (default O(from_container)).
        type: str
      image:
        description: lxc template of a scratch create (default O(image)).
        type: str
      template_options:
        description: Arguments for the template after C(--) (default O(template_options)).
        type: list
        elements: str
      snapshot:
        description: Clone as a copy-on-write snapshot (default O(snapshot)).
        type: bool
      bridge:
        description: Host bridge of C(eth0) (default O(bridge)).
        type: str
      network:
        description: IPv4 network in CIDR form (default O(network)).
        type: str
      gateway:
        description: Gateway address (default O(gateway)).
        type: str
      ip:
        description: IPv4 address; generated (and kept) when not given.
        type: str
      mac:
        description: MAC address; generated as C(00:16:3e:xx:xx:xx) (and kept) when not given.
        type: str
      password:
        description:
          - Password of O(users); generated (and kept) when not given.
          - At most 512 characters and no control characters (no line break, tab or NUL), since
            it is fed to C(chpasswd) one C(user:password) line per user; the error names the
            field, never the value.
        type: str
      autostart:
        description: Start with the host (C(lxc.start.auto)) (default O(autostart)).
        type: bool
      dnsservers:
        description: Name servers written to the guest's C(/etc/resolv.conf) at creation (default O(dnsservers)).
        type: list
        elements: str
      lxc_conf:
        description: Extra lxc config keys, a list of one-key mappings (default O(lxc_conf)).
        type: list
        elements: dict
      lxc_conf_unset:
        description: lxc config keys to remove (default O(lxc_conf_unset)).
        type: list
        elements: str
      users:
        description: Users that get the password and the SSH keys (default O(users)).
        type: list
        elements: str
      ssh_keys:
        description: Public keys written to each user's C(~/.ssh/authorized_keys) (default O(ssh_keys)).
        type: list
        elements: str
  state:
    description:
      - V(present) creates the container (stopped when new), V(started) creates and starts it,
        V(stopped) creates it and stops it, V(absent) destroys it and deletes its settings file.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  profile_type:
    description:
      - C(<backing>) clones O(from_container); C(<backing>-scratch) creates from O(image).
      - V(lvm) (the production default of the seed) needs the volume group O(vg_name), checked
        before use. V(btrfs) needs O(lxc_path) on a btrfs filesystem and V(zfs) a host with ZFS;
        both are checked before the first create and refused with a clear error otherwise.
      - An V(lvm) clone needs an lvm origin whose volume is in O(vg_name) (C(lxc-copy) copies
        only lvm roots into LVM and puts the clone next to its origin); other origins are
        refused before anything is made. Use V(lvm-scratch) to start from a template instead.
      - A new V(lvm) or V(lvm-scratch) container needs its volume name (the container name) free
        in O(vg_name); a volume kept by an earlier destroy (see O(remove_volume)) is refused.
    type: str
    choices: [lvm, lvm-scratch, dir, dir-scratch, overlayfs, overlayfs-scratch, btrfs, btrfs-scratch, zfs, zfs-scratch]
    default: lvm
  profile:
    description:
      - Size profile; the filesystem size for V(lvm) backings
        (xxxsmall 500m, xxsmall 1g, xsmall 3g, small 5g, medium 10g, large 20g, xxlarge 50g,
        xxxlarge 100g, xtrem 500g, xxtrem 1000g, xxxtrem 2000g).
    type: str
    choices: [xxxsmall, xxsmall, xsmall, small, medium, large, xxlarge, xxxlarge, xtrem, xxtrem, xxxtrem]
    default: medium
  from_container:
    description: Default origin container of clones (must exist, stopped, under O(lxc_path)).
    type: str
  image:
    description: lxc template for scratch creates (C(lxc-create -t)).
    type: str
    default: debian
  template_options:
    description: Arguments passed to the template after C(--), for example C([-r, bookworm]).
    type: list
    elements: str
    default: []
  snapshot:
    description:
      - Clone as a snapshot. Overlayfs clones are always snapshots.
      - Refused when O(production=true) unless O(force_snapshot=true) (seed 001 - do not use
        snapshots in production).
    type: bool
    default: false
  bridge:
    description: Host bridge for C(eth0).
    type: str
    default: lxcbr1
  network:
    description: IPv4 network (CIDR) the addresses are taken from.
    type: str
    default: 10.5.0.0/16
  gateway:
    description: Gateway of the containers, reserved in O(network).
    type: str
    default: 10.5.0.1
  autostart:
    description: Start the containers with the host.
    type: bool
    default: true
  dnsservers:
    description: Name servers for the guests' C(/etc/resolv.conf); empty leaves it as it is.
    type: list
    elements: str
    default: []
  lxc_conf:
    description: 'Extra lxc config keys, for example C([{lxc.cgroup2.memory.max: 1G}]).'
    type: list
    elements: dict
    default: []
  lxc_conf_unset:
    description: lxc config keys to remove.
    type: list
    elements: str
    default: []
  users:
    description: Users (created when missing) that get the password and the SSH keys.
    type: list
    elements: str
    default: [root]
  ssh_keys:
    description: Public SSH keys for O(users).
    type: list
    elements: str
    default: []
  host_id:
    description:
      - Id of this LXC host in profile names (see P(vman.lifecycle.lxc_profile_name#filter));
        the host's FQDN when not given. Usually C({{ inventory_hostname }}).
    type: str
  profile_name_style:
    description:
      - How the C(profile) of each container's settings is spelt (see
        P(vman.lifecycle.lxc_profile_name#filter)). V(makina-states) is the original's
        encoding (C(.) -> C(-), case and C(_) kept; the size only in C(lvm), C(btrfs) and
        C(zfs) clone profiles), so the names makina-states users already have are found.
        V(normalized) lower-cases the host id and puts the size in C(lvm) and C(lvm-scratch)
        profiles.
      - A host id that the chosen style cannot encode is an error naming O(host_id).
      - The profile name is a label in the settings file and the facts; it does not change
        how the container is made (the filesystem size applies to LVM only either way).
    type: str
    choices: [makina-states, normalized]
    default: makina-states
  vg_name:
    description:
      - LVM volume group of V(lvm) backings; V(lvm-scratch) creates the volume there, V(lvm)
        clones need their origin's volume there.
    type: str
    default: lxc
  production:
    description: This is a production host; snapshots are refused (see O(snapshot)).
    type: bool
    default: true
  force_snapshot:
    description: Allow snapshots on a production host.
    type: bool
    default: false
  return_passwords:
    description:
      - Return the passwords in the C(password) key of RV(containers[].settings) instead of C(********).
        Set C(no_log) on the task when you use it.
    type: bool
    default: false
  remove_volume:
    description:
      - With O(state=absent) (or an entry's), also remove the LVM logical volume of an V(lvm)
        container's root. By default the volume is kept (RV(containers[].kept_volume)) and only
        the container's config and settings go; C(lvremove) it yourself or rerun with this option.
      - Other backings keep their root inside the container's directory, which always goes.
    type: bool
    default: false
  start_timeout:
    description: Seconds to wait for a started container to reach RUNNING.
    type: int
    default: 30
  stop_timeout:
    description: Seconds of clean shutdown before C(lxc-stop) kills the container.
    type: int
    default: 30
notes:
  - Runs on the LXC host, as root.
  - Config changes of a running container take effect at its next start
    (RV(containers[].restart_needed)).
seealso:
  - module: vman.lifecycle.lxc_guest_info
  - plugin: vman.lifecycle.lxc_profile_name
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Containers of devhost10 (seed 001's pillar, as a batch)
  vman.lifecycle.lxc_guest:
    host_id: "{{ inventory_hostname }}"
    from_container: makina-states-bookworm
    containers:
      - name: mysupertest3.foo.com          # everything generated and kept
      - name: gfoobar.test.com
        profile: small
        profile_type: lvm
        password: "{{ vault_gfoobar_password }}"
        ip: 10.5.10.16
      - name: gfoobar2.test.com
        profile_type: dir-scratch
        image: debian
        template_options: [-r, bookworm]
  no_log: true

- name: Development host - overlayfs snapshots allowed
  vman.lifecycle.lxc_guest:
    production: false
    profile_type: overlayfs
    from_container: base
    containers: "{{ lxc_containers }}"

- name: Destroy a container and its settings
  vman.lifecycle.lxc_guest:
    containers:
      - name: gfoobar.test.com
        state: absent
"""

RETURN = r"""
containers:
  description: One entry per container, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    state:
      description: The desired state that was applied.
      type: str
    changed:
      description: Whether this container changed.
      type: bool
    actions:
      description: What was done (or would be, in check mode), in order.
      type: list
      elements: str
      sample: [clone base (dir), write config, prepare rootfs network, start, guest setup, save settings]
    created:
      description: The container did not exist before.
      type: bool
    generated:
      description: Values generated in this run (C(ip), C(mac), C(password)).
      type: list
      elements: str
    profile:
      description: Profile name, C(ms-<encoded host id>[-<size>]-<type>).
      type: str
      sample: ms-devhost10-local-small-lvm
    settings:
      description: The settings kept for the container; the password is C(********) unless O(return_passwords).
      type: dict
    restart_needed:
      description: The config changed while the container ran.
      type: bool
      returned: when true
    kept_volume:
      description: The LVM volume left in place by a destroy without O(remove_volume).
      type: str
      returned: when an lvm container was destroyed without O(remove_volume)
      sample: /dev/lxc/gfoobar.test.com
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import redact_diff
from ansible_collections.vman.lifecycle.plugins.module_utils import _lxc

_TYPES = {
    "state": {"type": "str", "choices": list(_lxc.STATES)},
    "profile_type": {"type": "str", "choices": list(_lxc.PROFILE_TYPES)},
    "profile": {"type": "str", "choices": list(_lxc.SIZES)},
    "from_container": {"type": "str"},
    "image": {"type": "str"},
    "template_options": {"type": "list", "elements": "str"},
    "snapshot": {"type": "bool"},
    "bridge": {"type": "str"},
    "network": {"type": "str"},
    "gateway": {"type": "str"},
    "autostart": {"type": "bool"},
    "dnsservers": {"type": "list", "elements": "str"},
    "lxc_conf": {"type": "list", "elements": "dict"},
    "lxc_conf_unset": {"type": "list", "elements": "str"},
    "users": {"type": "list", "elements": "str"},
    "ssh_keys": {"type": "list", "elements": "str", "no_log": False},
}


def argument_spec():
    """Top-level options carry the defaults; entries override them (None = inherit)."""
    entry = {"name": {"type": "str", "required": True}, "ip": {"type": "str"},
             "mac": {"type": "str"}, "password": {"type": "str", "no_log": True}}
    entry.update({k: dict(v) for k, v in _TYPES.items()})
    spec = {k: dict(v, default=_lxc.DEFAULTS[k]) for k, v in _TYPES.items()}
    spec["from_container"].pop("default")
    spec.update(_lxc.HOST_ARGSPEC)
    spec.update(
        containers={"type": "list", "elements": "dict", "required": True, "options": entry},
        host_id={"type": "str"},
        profile_name_style={"type": "str", "choices": list(_lxc.PROFILE_NAME_STYLES),
                            "default": _lxc.DEFAULT_PROFILE_NAME_STYLE},
        vg_name={"type": "str", "default": "lxc"},
        production={"type": "bool", "default": True},
        force_snapshot={"type": "bool", "default": False},
        return_passwords={"type": "bool", "default": False},
        remove_volume={"type": "bool", "default": False},
        start_timeout={"type": "int", "default": 30},
        stop_timeout={"type": "int", "default": 30},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not _lxc.HAS_NETADDR:
        module.fail_json(msg=missing_required_lib("netaddr"))
    p = module.params
    with errors_to_fail_json(module):
        specs = _lxc.build_specs(p["containers"], {k: p[k] for k in _lxc.DEFAULTS})
        manager = _lxc.LxcGuestManager(
            _lxc.LxcBackend(p["lxc_path"]), _lxc.SettingsStore(p["settings_dir"]),
            host_id=p["host_id"], vg_name=p["vg_name"], production=p["production"],
            force_snapshot=p["force_snapshot"], check_mode=module.check_mode,
            stop_timeout=p["stop_timeout"], start_timeout=p["start_timeout"],
            return_passwords=p["return_passwords"], remove_volume=p["remove_volume"],
            profile_name_style=p["profile_name_style"])
        results, diffs, changed = manager.converge(specs)
    for result in results:
        for warning in result.pop("warnings", []):
            module.warn(warning)
    module.exit_json(changed=changed, containers=results,
                     diff=redact_diff([d for d, r in zip(diffs, results) if r["changed"]]))


if __name__ == "__main__":
    main()
