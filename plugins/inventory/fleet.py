# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
short_description: The VMs of the vman lifecycle store as an inventory
version_added: 0.1.0
description:
  - Reads the lifecycle store (SQLite or PostgreSQL, the same store the C(vm_pool),
    C(vm_status) and C(netconf_pool) modules write) and makes one host per VM, named
    C(<org>-<name>) (C(<name>) for a VM without org).
  - "Built-in groups: C(status_<status>), C(org_<org>), C(flavor_<flavor>),
    C(hypervisor_<hypervisor>), C(backend_<backend>) (C(xen), C(libvirt), C(lxc)), C(pool)
    (VMs in status C(preallocated)) and C(needs_ansible) (status C(ansible) or
    C(ansible_queue), or an ansible run requested while the VM was installing),
    C(request_<request>) (the devices of a start request, see M(vman.lifecycle.vm_request))
    and C(redeploy_<allocator>) (the devices of the requests whose allocator must run its
    playbook again; the group variable C(vman_redeploy_requests) lists those requests, so the
    group exists even for a request that failed before it had a device)."
  - Characters other than letters, digits and C(_) in a built-in group name become C(_).
  - "Host variables: C(vman_name), C(vman_org), C(vman_flavor), C(vman_backend),
    C(vman_hypervisor), C(vman_status), C(vman_status_since), C(vman_owner),
    C(vman_admin_suspended), C(vman_ansible_pending), C(vman_spec) (the VM spec),
    C(vman_netconfs) (the network configs the VM holds, by kind: C(hostname), C(ipv4),
    C(ipv6), C(pool)), C(vman_request) (for a device of a start request: C(request),
    C(ready), C(allocators), C(redeploy)) and C(ansible_host)."
  - C(ansible_host) is the VM's primary address, the IPv4 (else IPv6) address of its C(vm)
    netconf, else the spec's C(connection_ip), else the address of its first interface.
  - Secrets never reach the inventory nor its cache. Spec keys that name a password,
    passphrase, token, secret, credential or private key (for example C(root_password),
    C(spicepasswd), C(vncpasswd)) and values holding private key material are left out at
    any depth; token hashes and host keys are not read at all.
  - Everything read from the store is marked unsafe, so a C({{ ... }}) in a spec is never
    templated. With ansible-core 2.17 and 2.18 (which mark unsafe by type), the strings that
    could be a template (holding a C({) or C(}) or a C(#jinja2:) header) are the ones wrapped
    as unsafe; the others cannot be templated and stay plain strings.
  - Uses a YAML configuration file whose name ends with C(fleet.yml) or C(fleet.yaml).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; set it to C(vman.lifecycle.fleet) to use it.
    type: str
    required: true
    choices: [vman.lifecycle.fleet]
  store:
    description:
      - Where the lifecycle store lives, as a URL.
      - C(sqlite:///absolute/path/lifecycle.db) is a SQLite file on the controller.
      - C(postgresql://user@host/dbname) (libpq URL syntax) is a PostgreSQL database; it needs
        the Python package C(psycopg) 3.x on the controller.
      - Without this option and without E(VMAN_STORE), C(~/.local/state/vman/lifecycle.db).
      - The inventory opens the store read-only and never writes to it, so it never waits
        for a module that holds the store's write lock, nor makes one wait. A SQLite file is
        opened with C(mode=ro) (never created nor changed; a SQLite file that does not exist
        yet is an empty fleet, no host); a PostgreSQL session is read-only.
      - So the inventory does not create nor upgrade the schema. A store whose schema is older
        than the collection's fails the inventory with an error that says so; running any
        store module of the collection against it once migrates it, for example
        C(ansible localhost -m vman.lifecycle.vm_status_info -a store=<URL>).
    type: str
    env:
      - name: VMAN_STORE
  live_state:
    description:
      - Ask hypervisors for the live power state of their VMs, by hypervisor name (the
        C(vman_hypervisor) of the VMs). Each entry names its C(backend) and how to reach it.
        Hypervisors not listed are not asked, and their VMs get no power state. Empty (the
        default), the inventory shows what the store records, nothing else.
      - C(backend=libvirt) connects to C(uri) (default C(qemu:///system)), any libvirt URI, so
        C(qemu+ssh://root@kvm1/system) reaches a remote host (read-only connection); the
        domain of a VM is its C(vman_name).
      - C(backend=lxc) runs C(lxc-ls) for C(lxc_path) (default C(/var/lib/lxc)); the
        container of a VM is its C(vman_name).
      - C(backend=xen) runs C(xl list -l) and lists the xl.cfg files in C(config_path)
        (default C(/etc/xen/vms)); a domain that does not run is C(stopped) when its
        C(<domain>.cfg) is there. The domain of a VM is C(<org>-<name>), as
        M(vman.lifecycle.xen_domain) names it.
      - LXC and Xen commands run on the controller, or on the host C(ssh) names
        (C([user@]host) or a C(Host) of the ssh configuration) through the C(ssh) client
        (C(BatchMode=yes), so a host that wants a password fails instead of prompting),
        with C(ssh_args) as extra ssh options (for example C([-p, 2222, -i, /path/key])).
        The local command is an argument list, never a shell; each word is quoted for the
        remote shell.
      - C(timeout) (seconds, default 30) bounds the wait for one hypervisor.
      - Each hypervisor is asked once for all its VMs (libvirt one connection; LXC a
        C(test -d) and three C(lxc-ls) runs (all, running, frozen); Xen one C(xl list -l) and one C(ls)), all
        hypervisors at the same time.
      - "Every VM of a listed hypervisor gets the host variable C(vman_power_state) and the
        group C(power_<state>). The states: C(running), C(stopped), C(suspended) (every
        backend: a frozen container, a libvirt domain with a managed-save image, a Xen domain
        with a saved image on a local dom0); with libvirt also C(paused), C(shutdown) (shutting down), C(crashed),
        C(pmsuspended) and C(unknown) (libvirt's no-state); C(absent) when the hypervisor
        does not know the VM; C(unknown) when the hypervisor could not be asked."
      - A hypervisor that cannot be asked (an error, no answer within C(timeout), a missing
        C(lxc_path) or C(config_path)) does not fail the inventory; its VMs get C(unknown)
        and one warning names the hypervisor and the reason. A malformed entry (unknown
        backend or key) fails the inventory.
      - The live state is never cached. With O(cache=true) the store data comes from the
        cache, and the hypervisors are asked again at every run.
    type: dict
    default: {}
notes:
  - "With O(cache=true) the inventory comes from the cache until it expires or
    C(--flush-cache) (or C(meta: refresh_inventory)) refreshes it."
  - "With ansible-core 2.19 or later, C(ansible-inventory --list) prints each string variable of
    this inventory as C({\"__ansible_unsafe\": \"...\"}), on the screen and with C(--output) alike.
    That is how ansible-core writes any unsafe (untrusted) string in that JSON format, so that
    the output, read back as an inventory script's, stays unsafe: a C(!unsafe) value of a YAML
    inventory prints the same way. C(--yaml) and C(--host) print plain strings. With
    ansible-core 2.17 and 2.18 only the strings that could be a template print that way.
    Host names in group lists are plain strings with every ansible-core."
  - "C(ansible-inventory) has C(--flush-cache) from ansible-core 2.19 on; with 2.17 and 2.18,
    C(ansible-playbook --flush-cache) or C(meta: refresh_inventory) refresh the cache."
  - With ansible-core 2.19, most of the time of C(ansible-inventory --list) on a large fleet is
    ansible-core's own work for that many hosts and variables, not the store's; see
    C(tests/bench/bench_fleet_inventory.py) in the collection, which measures both.
requirements:
  - psycopg >= 3.1 (only for a PostgreSQL store)
"""

EXAMPLES = r"""
# fleet.yml: every VM of the default store
plugin: vman.lifecycle.fleet
---
# live.fleet.yml: plus the live power state (group power_running, power_stopped, ...)
plugin: vman.lifecycle.fleet
live_state:
  kvm1:
    backend: libvirt
    uri: qemu+ssh://root@kvm1.example.com/system
    timeout: 10
  lxchost:          # the controller itself runs the LXC containers
    backend: lxc
    lxc_path: /var/lib/lxc
  dom0a:
    backend: xen
    ssh: root@dom0a.example.com
    ssh_args: [-i, ~/.ssh/fleet_ed25519]
groups:
  # claimed by a user but not running: worth a look
  ready_but_down: vman_status == 'ready' and vman_power_state | default('') != 'running'
---
# prod.fleet.yml: a PostgreSQL store, cached for 5 minutes, plus groups by owner
plugin: vman.lifecycle.fleet
store: postgresql://vman@db.example.com/vman
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/vman-fleet
cache_timeout: 300
keyed_groups:
  - key: vman_owner | default('nobody', true)
    prefix: owner
compose:
  ansible_user: "'root' if vman_status == 'preallocated' else vman_owner"
groups:
  big: vman_spec.memory | default(0) | int >= 8192
"""

import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.vman.lifecycle.plugins.module_utils._errors import VmanError
from ansible_collections.vman.lifecycle.plugins.module_utils._fleet import host_entries, redeploy_groups
from ansible_collections.vman.lifecycle.plugins.module_utils._power import ask_all, merge_power, parse_live_config, plan
from ansible_collections.vman.lifecycle.plugins.module_utils._store import StoreMissing, open_store

SUFFIXES = ("fleet.yml", "fleet.yaml")

# ansible-core >= 2.19 (data tagging): wrap_var returns a plain str, because there a str is
# templated only when tagged trusted, and an inventory plugin's values are not (its
# trusted_by_default is False). Data fresh from the store (sqlite3, psycopg, json.loads) holds
# no trust tag, so wrapping it would only deep-copy it before set_variable deep-copies it
# again. Older cores mark unsafe by type (AnsibleUnsafeText): see _wrap_templatable.
_PLAIN_STR_IS_UNSAFE = type(wrap_var("x")) is str  # pylint: disable=unidiomatic-typecheck

# What makes a string templatable on ansible-core < 2.19: a Jinja delimiter (each starts or
# ends with a brace) or a "#jinja2:" header, which may redefine the delimiters without braces.
_TEMPLATABLE = re.compile(r"[{}]|#jinja2:")


def _as_is(value):
    return value


def _wrap_templatable(value):
    """ansible-core < 2.19: a copy of ``value`` where every string that could be templated is
    AnsibleUnsafeText, the other strings plain.

    A string without a delimiter nor a header is never templated, so it is as safe plain; plain,
    ``ansible-inventory --list`` prints it as a string (host names in group lists included), not
    as ``{"__ansible_unsafe": ...}``, which inventory consumers (AWX) do not read back.
    """
    if isinstance(value, str):
        return wrap_var(value) if _TEMPLATABLE.search(value) else value
    if isinstance(value, dict):
        return {_wrap_templatable(k): _wrap_templatable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wrap_templatable(v) for v in value]
    return value


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Hosts and groups from the vman lifecycle store."""

    NAME = "vman.lifecycle.fleet"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            live_config = parse_live_config(self.get_option("live_state"))
        except VmanError as exc:
            raise AnsibleParserError(f"vman.lifecycle.fleet: {exc}") from None
        # the standard cache pattern: ``cache`` is False when the inventory is refreshed
        # (--flush-cache, meta: refresh_inventory); the user's option says whether to cache
        cache_key = self.get_cache_key(path)
        user_cache = self.get_option("cache")
        read_cache = user_cache and cache
        update_cache = user_cache and not cache
        entries = None
        if read_cache:
            try:
                entries = self._cache[cache_key]
            except KeyError:
                update_cache = True
        fresh = entries is None
        if fresh:
            entries = self._read_store()
        if update_cache:
            self._cache[cache_key] = entries
        if live_config:
            entries = self._with_live_state(entries, live_config)
        if not _PLAIN_STR_IS_UNSAFE:
            wrap = _wrap_templatable
        else:
            # a cache plugin may hand back strings tagged trusted (a YAML or legacy-JSON
            # decoder): cached data is always wrapped, which strips such tags
            wrap = _as_is if fresh else wrap_var
        self._populate(entries, wrap)

    def _read_store(self):
        try:
            with open_store(self.get_option("store"), read_only=True) as store:
                index, by_allocator = store.request_devices_index()
                return {"hosts": host_entries(store.list_vms(), store.netconfs(in_use=True), index),
                        "groups": redeploy_groups(by_allocator)}
        except StoreMissing:
            # a SQLite store not created yet holds no VM (the first run of preallocate.yml)
            return {"hosts": [], "groups": {}}
        except VmanError as exc:
            raise AnsibleParserError(f"vman.lifecycle.fleet: {exc}") from None

    def _with_live_state(self, data, config):
        """``data`` with the power state merged (a copy: ``data`` may be the cache's)."""
        hosts = data["hosts"] if isinstance(data, dict) else data
        states, failures = ask_all(config, plan(hosts, config))
        for hypervisor, reason in sorted(failures.items()):
            self.display.warning(f"vman.lifecycle.fleet: hypervisor '{hypervisor}' could not be asked "
                                 f"for the live power state ({reason}); its VMs are in power_unknown")
        merged = merge_power(hosts, config, states, failures)
        return dict(data, hosts=merged) if isinstance(data, dict) else merged

    def _populate(self, data, wrap):
        """Hosts, groups and variables from host entries; ``wrap`` marks values unsafe."""
        # a cache written before the group variables existed holds the host list alone
        entries = data["hosts"] if isinstance(data, dict) else data
        for group, group_vars in (data.get("groups", {}) if isinstance(data, dict) else {}).items():
            self.inventory.add_group(group)
            for key, value in wrap(group_vars).items():
                self.inventory.set_variable(group, key, value)
        strict = self.get_option("strict")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        constructed = bool(compose or groups or keyed_groups)
        seen = set()
        for entry in entries:
            name = entry["name"]
            if name in seen:
                self.display.warning(f"vman.lifecycle.fleet: two VMs make the inventory host "
                                     f"'{name}'; only the first is used")
                continue
            seen.add(name)
            hostvars = wrap(entry["vars"])
            self.inventory.add_host(wrap(name))
            for group in entry["groups"]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
            if constructed:
                self._set_composite_vars(compose, hostvars, name, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, name, strict=strict)
