# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret in ``ansible-playbook -vvv --diff`` output, nor in the registered results (outside
the one key a module returns a secret in, by design and only with no_log), for every module that
takes or returns one: install_callback (tokens), vm_install_seed (token, host keys), vm_secret
(generated passwords), ssh_host_keys (private keys), lxc_guest (passwords, check mode: no LXC
needed), xen_domain (spicepasswd), vm_pool/vm_request (specs). Old values too, where a value is
replaced. The secrets are ones the test knows: given as input, or read back from the registered
result of a no_log task and from the 0600 files the modules wrote.
"""

from __future__ import annotations

import copy
import json
import os
import stat

from ansible_collections.vman.lifecycle.plugins.module_utils._ansible import hide_spec_secrets
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

from _playbook import run_play

VERBOSE = {"ANSIBLE_VERBOSITY": "3"}
SPICE = ("spice-old-4711x", "spice-new-0815y", "spice-check-999z")
ROOT_PW = "spec-root-pw-1234q"
LXC_PW = ("Lxc$ecret-old-given-1", "Lxc$ecret-check-2", "Lxc$ecret-stored-3")
DEFAULTS = {"nfsroot_base": "10.0.0.2:/srv/nfs", "gateway": "10.0.0.1"}


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _xen(tmp_path, password):
    return {"vman.lifecycle.xen_domain": {
        "vms": [{"org": "o", "name": "h", "builder": "hvm", "spice": True, "spicepasswd": password,
                 "os": {"type": "debian", "version": "12"}, "interfaces": [{}]}],
        "defaults": DEFAULTS, "config_path": str(tmp_path / "vms"), "manager": "xl",
        "xl_path": "/nonexistent/xl", "host_kernel": "6.1.0-test"}}


def _keys(tmp_path, **kw):
    args = {"vm": "vm1", "hostname": "vm1.example.org", "key_types": ["ed25519", "ecdsa"],
            "dest": str(tmp_path / "keys")}
    args.update(kw)
    return {"vman.lifecycle.ssh_host_keys": args}


def _pool_tasks(url, password, prefix):
    spec = {"memory": 1024, "spicepasswd": password, "root_password": ROOT_PW}
    return [
        {"vman.lifecycle.vm_pool": {"flavors": [{"name": "small", "threshold": 2, "spec": spec}],
                                    "store": url}, "register": f"{prefix}fill"},
        {"vman.lifecycle.vm_request": {"store": url, "name": "web", "allocator": "svc-a",
                                       "backend": "xen", "spec": spec}, "register": f"{prefix}req"},
        {"vman.lifecycle.vm_status_info": {"store": url}, "register": f"{prefix}info"},
        {"vman.lifecycle.vm_request_info": {"store": url}, "register": f"{prefix}reqinfo"},
    ]


def _bodies(private_key, public_keys):
    """The lines of an OpenSSH private key that carry private material: an OpenSSH private key
    embeds its public key, so a line sharing 12 characters with a public key (which may be shown)
    is left out. At least one line is left per key."""
    publics = "\n".join(public_keys)
    lines = [ln for ln in private_key.splitlines() if ln and "PRIVATE KEY" not in ln]
    secret = [ln for ln in lines
              if len(ln) >= 16 and not any(ln[i:i + 12] in publics for i in range(len(ln) - 11))]
    assert secret, private_key
    return secret


def _assert_absent(secrets, out, results, allowed=()):
    """No ``secrets`` in ``out`` nor in ``results`` once the ``allowed`` (register, path...)
    keys, where a module returns a secret on purpose, are dropped."""
    results = copy.deepcopy(results)
    for reg, *path in allowed:
        node = results[reg]
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    text = json.dumps(results)
    leaks = []
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        at = out.find(secret)
        while at >= 0:
            task = out.rfind("TASK [", 0, at)
            leaks.append(f"{secret[:6]}... in the output of {out[task:out.find(']', task) + 1]}")
            at = out.find(secret, at + 1)
        leaks += [f"{secret[:6]}... in {reg}" for reg, res in results.items()
                  if secret in json.dumps(res)]
    assert not leaks, "\n".join(sorted(set(leaks)))


def test_every_secret_module_vvv_diff_and_check(tmp_path):
    url = f"sqlite://{tmp_path}/lc.db"
    with open_store(url) as s:
        s.create_vms([{"name": n, "org": "acme", "flavor": "small", "backend": "xen", "spec": {}}
                      for n in ("vm1", "vm2")])
    (tmp_path / "root").mkdir()
    # an LXC host's kept settings (0600, as SettingsStore writes them): a password given earlier
    # and one generated earlier
    settings = tmp_path / "settings"
    settings.mkdir(mode=0o700)
    for name, password, ip in (("b.test.com", LXC_PW[0], "10.5.0.7"),
                               ("g.test.com", LXC_PW[2], "10.5.0.8")):
        path = settings / f"{name}.json"
        path.write_text(json.dumps({"ip": ip, "mac": "00:16:3e:00:00:0" + ip[-1],
                                    "password": password}))
        path.chmod(0o600)
    issue = {"state": "issued", "vm": "vm1", "source_ip": ["127.0.0.1"], "ttl": 600, "store": url}
    seed = {"root": str(tmp_path / "root"), "hostname": "vm1.example.org",
            "callback_url": "http://127.0.0.1:8765/callback/vm1"}
    secret = {"vm": "vm1", "name": "root", "store": url}
    tasks = [
        # tokens: issued, then replaced (the first one revoked)
        {"vman.lifecycle.install_callback": issue, "register": "t1", "no_log": True},
        {"vman.lifecycle.install_callback": issue, "register": "t2", "no_log": True},
        # host keys: kept in dest (0600), returned once with no_log, then replaced
        dict(_keys(tmp_path), register="k0"),
        dict(_keys(tmp_path, return_private=True), register="k1", no_log=True),
        dict(_keys(tmp_path, state="absent"), register="kgone"),
        dict(_keys(tmp_path, return_private=True), register="k2", no_log=True),
        dict(_keys(tmp_path), register="k3"),
        # the install seed: the old token and the old keys, then the new ones
        {"vman.lifecycle.vm_install_seed": dict(seed, token="{{ t1.token }}",
                                                host_keys="{{ k1['keys'] }}"),
         "register": "seed1", "no_log": True},
        {"vman.lifecycle.vm_install_seed": dict(seed, token="{{ t2.token }}",
                                                host_keys="{{ k2['keys'] }}"),
         "register": "seed2", "no_log": True},
        # generated passwords: made, shown (and gone), made anew
        {"vman.lifecycle.vm_secret": secret, "register": "s1", "no_log": True},
        {"vman.lifecycle.vm_secret": secret, "register": "s1again", "no_log": True},
        {"vman.lifecycle.vm_secret": dict(secret, state="shown"), "register": "s2", "no_log": True},
        {"vman.lifecycle.vm_secret": secret, "register": "s3", "no_log": True},
        {"vman.lifecycle.vm_secret": dict(secret, state="absent"), "register": "sgone"},
        # spice password replaced (diff of both sides)
        dict(_xen(tmp_path, SPICE[0]), register="x1"),
        dict(_xen(tmp_path, SPICE[1]), register="x2"),
        {"vman.lifecycle.xen_domain_info": {"config_path": str(tmp_path / "vms"),
                                            "xl_path": "/nonexistent/xl"}, "register": "xinfo"},
        {"vman.lifecycle.lxc_guest_info": {"lxc_path": str(tmp_path / "lxc"),
                                           "settings_dir": str(tmp_path / "settings")},
         "register": "linfo"},
        # no_log off on purpose: a plain module task of the pool and the requests
    ] + _pool_tasks(url, SPICE[0], "a") + _pool_tasks(url, SPICE[1], "b")
    got, out = run_play(tmp_path, tasks, diff=True, env=VERBOSE, name="real")
    assert "ESTABLISH LOCAL CONNECTION" in out  # the output really is -vvv

    failed = {k: v.get("msg") for k, v in got.items() if v.get("failed")}
    assert not failed, failed
    tokens = [got["t1"]["token"], got["t2"]["token"]]
    assert len(set(tokens)) == 2
    # keys: the private files are 0600 and hold the key last returned; the replaced key differs
    privates = [k["private_key"] for reg in ("k1", "k2") for k in got[reg]["keys"]]
    assert len(set(privates)) == 4
    for key in got["k2"]["keys"]:
        path = tmp_path / "keys" / f"ssh_host_{key['type']}_key"
        assert _mode(path) == 0o600 and path.read_text().strip() == key["private_key"].strip()
    assert got["k3"]["changed"] is False
    # the seed: token and keys in 0600 files, the newest ones
    root = tmp_path / "root"
    token_file = root / "etc" / "vman" / "install-token"
    assert _mode(token_file) == 0o600 and token_file.read_text().strip() == tokens[1]
    for key in got["k2"]["keys"]:
        path = root / "etc" / "ssh" / f"ssh_host_{key['type']}_key"
        assert _mode(path) == 0o600 and path.read_text().strip() == key["private_key"].strip()
    assert got["seed2"]["changed"] is True
    # passwords: present twice is the same value, shown gives it once, then a new one
    passwords = [got["s1"]["value"], got["s3"]["value"]]
    assert got["s1again"]["value"] == got["s2"]["value"] == passwords[0] != passwords[1]
    # xen: the config holding the password is written; both diff sides masked
    cfg = tmp_path / "vms" / "o-h.cfg"
    assert SPICE[1] in cfg.read_text() and got["x2"]["changed"] is True and _mode(cfg) == 0o600
    assert "********" in json.dumps(got["x2"]["diff"])
    assert got["bfill"]["changed"] is False and got["breq"]["changed"] is True
    # the store file: 0600, and no token (only hashes) nor key in it
    db = b"".join((tmp_path / name).read_bytes() for name in os.listdir(tmp_path)
                  if name.startswith("lc.db"))
    assert _mode(tmp_path / "lc.db") == 0o600
    publics = [k["public_key"] for reg in ("k1", "k2") for k in got[reg]["keys"]]
    bodies = [b for p in privates for b in _bodies(p, publics)]
    for value in tokens + bodies:
        assert value.encode() not in db

    allowed = [("t1", "token"), ("t2", "token"), ("s1", "value"), ("s1again", "value"),
               ("s2", "value"), ("s3", "value")]
    allowed += [(reg, "keys", i, "private_key") for reg in ("k1", "k2")
                for i in range(len(got[reg]["keys"]))]
    assert got["xinfo"]["domains"][0]["config"]["spicepasswd"] == "********"
    assert {c["name"] for c in got["linfo"]["containers"]} == {"b.test.com", "g.test.com"}
    _assert_absent(tokens + passwords + bodies + list(SPICE[:2]) + [ROOT_PW, LXC_PW[0], LXC_PW[2]],
                   out, got, allowed)

    # check mode, -vvv --diff: a new token, password, key, spice and container password would be
    # made or changed; none is shown, nor are the current ones
    lxc = {"lxc_path": str(tmp_path / "lxc"), "settings_dir": str(tmp_path / "settings"),
           "host_id": "devhost10.local", "profile_type": "dir-scratch",
           "containers": [{"name": "b.test.com", "password": LXC_PW[1]}, {"name": "g.test.com"}]}
    dry = [
        {"vman.lifecycle.install_callback": dict(issue, vm="vm2"), "register": "ct",
         "no_log": True},
        {"vman.lifecycle.vm_install_seed": dict(seed, token="check-token-abcdef1234"),
         "register": "cseed", "no_log": True},
        {"vman.lifecycle.vm_secret": dict(secret, vm="vm2"), "register": "cs", "no_log": True},
        dict(_keys(tmp_path, state="absent"), register="ckgone"),
        dict(_keys(tmp_path, dest=str(tmp_path / "keys2")), register="cknew"),
        dict(_xen(tmp_path, SPICE[2]), register="cx"),
        {"vman.lifecycle.lxc_guest": lxc, "register": "clxc"},
        {"vman.lifecycle.lxc_guest": dict(lxc, return_passwords=True), "register": "clxcpw",
         "no_log": True},
    ] + _pool_tasks(url, SPICE[2], "c")
    got, out = run_play(tmp_path, dry, check=True, diff=True, env=VERBOSE, name="check")
    failed = {k: v.get("msg") for k, v in got.items() if v.get("failed")}
    assert not failed, failed
    assert "token" not in got["ct"] and got["cs"].get("value") is None
    assert got["cx"]["changed"] and SPICE[1] in cfg.read_text()
    assert got["cseed"]["changed"] and token_file.read_text().strip() == tokens[1]
    assert got["ckgone"]["changed"] and got["cknew"]["changed"] and not (tmp_path / "keys2").exists()
    assert got["clxc"]["changed"] and not (tmp_path / "lxc").exists()
    # the kept settings are read back (b's password replaced by the given one, g's reused, not
    # generated) and shown masked
    b, g = got["clxc"]["containers"]
    assert (b["settings"]["ip"], g["settings"]["ip"]) == ("10.5.0.7", "10.5.0.8")
    assert g["generated"] == [] and b["settings"]["password"] == g["settings"]["password"] == "********"
    # even return_passwords does not hand back a given password: it is a no_log option, so
    # Ansible masks its value everywhere in the result
    given, stored = (c["settings"]["password"] for c in got["clxcpw"]["containers"])
    assert given == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" and stored == LXC_PW[2]
    assert json.loads((settings / "b.test.com.json").read_text())["password"] == LXC_PW[0]
    _assert_absent(tokens + passwords + bodies + list(SPICE) + list(LXC_PW)
                   + [ROOT_PW, "check-token-abcdef1234"],
                   out, got, [("clxcpw", "containers", 1, "settings", "password")])


def test_hide_spec_secrets_registers_secret_leaves_only():
    class Module:
        no_log_values = set()
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    hide_spec_secrets(Module, {"memory": 1024, "spicepasswd": "s1", "passthrough": ["00:02.0"],
                               "users": [{"name": "u", "password": "s2", "admin": True}],
                               "api_token": {"a": "s3", "b": 4711}, "blob": [key], "k": key},
                      None, {"root_pw": ""})
    assert Module.no_log_values == {"s1", "s2", "s3", "4711", key}
