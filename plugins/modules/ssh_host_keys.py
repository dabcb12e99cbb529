#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_host_keys
short_description: Generate a VM's SSH host keys, their SSHFP records and known_hosts entries
version_added: 0.1.0
description:
  - Generates the SSH host keys of one VM with C(ssh-keygen) on the controller, before the VM
    is installed, so the keys can be injected into the install and the controller trusts the
    VM from its first boot.
  - Keys kept in O(dest) are reused on the next run, never regenerated; only a missing
    private key is generated. A wrong mode on a private key is repaired to C(0600) and a
    missing or stale C(.pub) file is rewritten from the private key.
  - Computes the SSHFP records of every key exactly as C(ssh-keygen -r) prints them.
  - Writes or updates a C(known_hosts) file for the controller with the VM's host name and
    addresses.
  - Optionally records the public keys and fingerprints (never the private keys) in the
    lifecycle store.
  - With O(dns_server), publishes the SSHFP records by an RFC 2136 dynamic update, signed
    with a TSIG key; the host name's SSHFP RRset on that server is made exactly the computed
    records (stale ones are removed), and left alone when it already is.
  - With O(state=absent) it forgets the VM's host keys instead, when the VM is purged; its
    C(known_hosts) entries, the key files in O(dest), the public keys in the store
    (O(record_in_store)) and the SSHFP RRset on O(dns_server) are removed.
author:
  - vman.lifecycle contributors (@vman-lifecycle)
extends_documentation_fragment:
  - vman.lifecycle.store
attributes:
  check_mode:
    support: full
    description: Reports which keys would be generated (or removed) and which files would
      change, and writes nothing. Keys that do not exist yet have no public part in check mode.
  diff_mode:
    support: full
    description: Shows the C(known_hosts) file before and after.
options:
  state:
    description:
      - C(present) generates or reuses the keys and writes what the other options ask for.
      - C(absent) removes the VM's keys from everywhere this module put them. Entries of
        O(known_hosts) are removed when they name O(hostname) or one of O(ip), or hold one
        of the VM's public keys (those recorded in the store with O(record_in_store=true) and
        those in O(dest)), so hashed entries and entries under former addresses go as well.
        With O(record_in_store=true) the stored public keys are deleted, with O(dest) the key
        files (and O(dest) when it is left empty), with O(dns_server) the SSHFP RRset of
        O(hostname). Running it again changes nothing.
    type: str
    choices: [present, absent]
    default: present
  vm:
    description: Name of the VM, used for the store record.
    type: str
    required: true
  hostname:
    description:
      - The VM's DNS name; owner name of the SSHFP records and first name of its
        C(known_hosts) entries.
      - Required with O(state=present), and with O(state=absent) when O(dns_server) is set.
    type: str
  ip:
    description: Addresses of the VM, added to the host names of its C(known_hosts) entries.
    type: list
    elements: str
    default: []
  key_types:
    description:
      - Host key types to have.
      - C(dsa) only when asked for, and with a warning, because OpenSSH no longer supports it.
    type: list
    elements: str
    choices: [rsa, ecdsa, ed25519, dsa]
    default: [rsa, ecdsa, ed25519]
  rsa_bits:
    description: Size of a new RSA key.
    type: int
    default: 3072
  ecdsa_bits:
    description: Size of a new ECDSA key.
    type: int
    choices: [256, 384, 521]
    default: 256
  dest:
    description:
      - Directory on the controller that keeps the keys under OpenSSH's names
        (C(ssh_host_<type>_key) 0600 and C(ssh_host_<type>_key.pub)); created 0700.
      - Without it the keys are generated anew on every run and exist only in
        RV(keys[].private_key), so O(return_private=true) is then required.
    type: path
  return_private:
    description:
      - Return the private keys in RV(keys[].private_key) for injection into the install.
      - The task must set C(no_log) to true; the module fails otherwise, so a private key
        never reaches a log.
    type: bool
    default: false
  comment:
    description:
      - Comment of new keys. Defaults to C(root@<hostname>).
      - One line of at most 1024 characters without control characters (no line break, tab
        or NUL).
    type: str
  sshfp_sha1:
    description: Also compute SHA-1 (type 1) SSHFP records; SHA-256 (type 2) ones always are.
    type: bool
    default: false
  known_hosts:
    description: A C(known_hosts) file on the controller to hold this VM's keys. Entries that
      name the VM's host name or one of its addresses are replaced in place; other entries,
      comments and hashed entries are kept.
    type: path
  record_in_store:
    description: Record the public keys and their fingerprints for O(vm) in the lifecycle
      store (see O(store)); with O(state=absent), delete them from it.
    type: bool
    default: false
  dns_server:
    description: Address of the primary DNS server to send the RFC 2136 update of the SSHFP
      records to. Not set, nothing is published.
    type: str
  dns_port:
    description: Port of O(dns_server) (TCP).
    type: int
    default: 53
  dns_zone:
    description: The zone holding O(hostname); required with O(dns_server).
    type: str
  dns_ttl:
    description: TTL of the published SSHFP records.
    type: int
    default: 3600
  tsig_key_name:
    description: Name of the TSIG key that signs the update and the query.
    type: str
  tsig_key_secret:
    description: Base64 secret of O(tsig_key_name).
    type: str
  tsig_key_algorithm:
    description: Algorithm of the TSIG key.
    type: str
    choices: [hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1, hmac-md5]
    default: hmac-sha256
notes:
  - SSHFP records are computed from the public keys; they are the lines C(ssh-keygen -r) prints,
    ready for a zone file or an RFC 2136 update.
requirements:
  - ssh-keygen (OpenSSH) on the controller
  - dnspython >= 2.0 (only with O(dns_server))
"""

EXAMPLES = r"""
- name: Host keys for a new VM, kept on the controller
  vman.lifecycle.ssh_host_keys:
    vm: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    hostname: mws-1234.example.org
    ip: [192.0.2.10, 2001:db8::10]
    dest: /srv/vman/hostkeys/mws-1234
    known_hosts: ~/.ssh/known_hosts
    record_in_store: true
  delegate_to: localhost
  register: hostkeys

- name: Same keys, SSHFP records published by RFC 2136
  vman.lifecycle.ssh_host_keys:
    vm: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    hostname: mws-1234.example.org
    dest: /srv/vman/hostkeys/mws-1234
    dns_server: 192.0.2.53
    dns_zone: example.org
    tsig_key_name: vman
    tsig_key_secret: "{{ vault_tsig_secret }}"
  delegate_to: localhost

- name: The VM is purged, its keys are forgotten (known_hosts, store, SSHFP)
  vman.lifecycle.ssh_host_keys:
    state: absent
    vm: 3f2c0e9a-4a7e-4c55-9d1f-8c6f0b2d1e77
    hostname: mws-1234.example.org
    dest: /srv/vman/hostkeys/mws-1234
    known_hosts: ~/.ssh/known_hosts
    record_in_store: true
    dns_server: 192.0.2.53
    dns_zone: example.org
    tsig_key_name: vman
    tsig_key_secret: "{{ vault_tsig_secret }}"
  delegate_to: localhost

- name: Keys only for the install, never written on the controller
  vman.lifecycle.ssh_host_keys:
    vm: mws-1235
    hostname: mws-1235.example.org
    return_private: true
  delegate_to: localhost
  no_log: true
  register: install_keys
"""

RETURN = r"""
keys:
  description: One entry per key type.
  returned: O(state=present)
  type: list
  elements: dict
  contains:
    type:
      description: Key type.
      type: str
      sample: ed25519
    public_key:
      description: The OpenSSH public key line; null in check mode for a key not generated yet.
      type: str
      sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ... root@mws-1234.example.org
    fingerprint_sha256:
      description: As C(ssh-keygen -l) prints it.
      type: str
      sample: SHA256:ZhJg7Ic6G3kv7qQk5I7tq2bT4Hbb2l0SJ0h0M8yR5dE
    fingerprint_sha1:
      description: As C(ssh-keygen -l -E sha1) prints it.
      type: str
    path:
      description: Path of the private key, or null without O(dest).
      type: str
    generated:
      description: Whether this run generated the key (or would, in check mode).
      type: bool
    private_key:
      description: The private key, only with O(return_private=true) (and C(no_log)).
      type: str
sshfp:
  description: SSHFP records of all keys, each line exactly as C(ssh-keygen -r <hostname>) prints it.
  returned: O(state=present)
  type: list
  elements: str
  sample: ["mws-1234.example.org IN SSHFP 4 2 0d8b5f..."]
dns_before:
  description: The rdata of the host name's SSHFP records on O(dns_server) before the task.
  returned: when O(dns_server) is set
  type: list
  elements: str
known_hosts:
  description: The C(known_hosts) lines for the VM.
  returned: O(state=present)
  type: list
  elements: str
removed:
  description: What O(state=absent) removed (or would remove, in check mode).
  returned: O(state=absent)
  type: dict
  contains:
    known_hosts:
      description: The C(known_hosts) lines removed.
      type: list
      elements: str
    store:
      description: The key types whose public key was deleted from the store.
      type: list
      elements: str
    files:
      description: The key files (and the emptied O(dest)) deleted.
      type: list
      elements: str
    dns:
      description: The rdata of the SSHFP records deleted from O(dns_server).
      type: list
      elements: str
  sample: {known_hosts: ["mws-1234.example.org,192.0.2.10 ssh-ed25519 AAAAC3..."],
           store: [ecdsa, ed25519, rsa], files: [], dns: []}
"""

from contextlib import ExitStack

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vman.lifecycle.plugins.module_utils import _sshkeys as sk
from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import errors_to_fail_json, require
from ansible_collections.vman.lifecycle.plugins.module_utils._store import STORE_ARGUMENT_SPEC, open_store


def _publisher(p):
    return sk.SshfpPublisher(p["dns_server"], p["dns_zone"], port=p["dns_port"],
                             key_name=p["tsig_key_name"], key_secret=p["tsig_key_secret"],
                             key_algorithm=p["tsig_key_algorithm"], ttl=p["dns_ttl"])


def forget(module):
    """state=absent: remove the VM's keys from known_hosts, dest, the DNS and the store."""
    p = module.params
    if p["dns_server"] and not p["hostname"]:
        module.fail_json(msg="state=absent with dns_server needs the hostname whose SSHFP "
                             "records to delete")
    with errors_to_fail_json(module):
        hosts = ([sk.validate_hostname(p["hostname"])] if p["hostname"] else []) + sk.validate_ips(p["ip"])
        publisher = _publisher(p) if p["dns_server"] else None
        with ExitStack() as stack:
            store = stack.enter_context(open_store(p["store"])) if p["record_in_store"] else None
            removed, before, after = sk.forget(p["vm"], hosts, p["known_hosts"], p["dest"],
                                               store, publisher, check=module.check_mode)
    result = dict(changed=any(removed.values()), removed=removed)
    if module._diff and p["known_hosts"]:
        result["diff"] = {"before": before, "after": after,
                          "before_header": p["known_hosts"], "after_header": p["known_hosts"]}
    module.exit_json(**result)


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        vm=dict(type="str", required=True),
        hostname=dict(type="str"),
        ip=dict(type="list", elements="str", default=[]),
        key_types=dict(type="list", elements="str", choices=list(sk.KEY_TYPES),
                       default=list(sk.DEFAULT_KEY_TYPES)),
        rsa_bits=dict(type="int", default=3072),
        ecdsa_bits=dict(type="int", choices=[256, 384, 521], default=256),
        dest=dict(type="path"),
        return_private=dict(type="bool", default=False),
        comment=dict(type="str"),
        sshfp_sha1=dict(type="bool", default=False),
        known_hosts=dict(type="path"),
        record_in_store=dict(type="bool", default=False),
        dns_server=dict(type="str"),
        dns_port=dict(type="int", default=53),
        dns_zone=dict(type="str"),
        dns_ttl=dict(type="int", default=3600),
        tsig_key_name=dict(type="str", no_log=False),
        tsig_key_secret=dict(type="str", no_log=True),
        tsig_key_algorithm=dict(type="str", choices=list(sk.TSIG_ALGORITHMS), default="hmac-sha256"),
    )
    argument_spec.update(STORE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_by={"dns_server": ("dns_zone",)},
                           required_if=[("state", "present", ("hostname",))],
                           required_together=[("tsig_key_name", "tsig_key_secret")])
    p = module.params
    if p["dns_server"]:
        require(module, sk.HAS_DNSPYTHON, "dnspython", str(sk.DNSPYTHON_ERROR))
    if p["state"] == "absent":
        forget(module)  # exits
        return
    if not p["dest"] and not p["return_private"]:
        module.fail_json(msg="one of dest or return_private: true is needed, "
                             "or the generated keys would be lost")
    if p["return_private"] and not module.no_log:
        module.fail_json(msg="return_private: true needs no_log: true on the task, "
                             "so the private keys never reach a log")
    if "dsa" in p["key_types"]:
        module.warn(sk.DSA_WARNING)
    result = dict(changed=False)
    with errors_to_fail_json(module):
        ips = sk.validate_ips(p["ip"])
        manager = sk.HostKeys(p["hostname"], p["key_types"], dest=p["dest"], comment=p["comment"],
                              rsa_bits=p["rsa_bits"], ecdsa_bits=p["ecdsa_bits"])
        keys, changed = manager.ensure(check=module.check_mode, want_private=p["return_private"])
        publics = [k["public_key"] for k in keys if k["public_key"]]
        result["keys"] = keys
        result["sshfp"] = [line for pub in publics
                           for line in sk.sshfp_records(p["hostname"], pub, sha1=p["sshfp_sha1"])]
        hosts = [p["hostname"]] + ips
        result["known_hosts"] = [sk.known_hosts_line(hosts, pub) for pub in publics]
        # in check mode a key not generated yet has no public part: the files and the DNS
        # would change, but what they would hold is not known
        complete = all(k["public_key"] for k in keys)
        if p["known_hosts"] and complete:
            kh_changed, before, after = sk.update_known_hosts(p["known_hosts"], hosts, publics,
                                                              check=module.check_mode)
            changed = changed or kh_changed
            if module._diff:
                result["diff"] = {"before": before, "after": after,
                                  "before_header": p["known_hosts"], "after_header": p["known_hosts"]}
        if p["dns_server"] and complete:
            publisher = _publisher(p)
            dns_changed, result["dns_before"] = publisher.publish(p["hostname"], result["sshfp"],
                                                                  check=module.check_mode)
            changed = changed or dns_changed
        if p["record_in_store"]:
            with open_store(p["store"]) as store:
                changed = sk.record_in_store(store, p["vm"], keys, check=module.check_mode) or changed
        result["changed"] = changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
