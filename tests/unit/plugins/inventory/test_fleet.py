# -*- coding: utf-8 -*-
# Copyright: vman.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet inventory plugin: through the real ansible-inventory / ansible CLIs and through
Ansible's InventoryManager, always against a real temporary SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.vman.lifecycle.plugins.module_utils import _lifecycle as lc
from ansible_collections.vman.lifecycle.plugins.module_utils._store import open_store

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
EVIL = "{{ lookup('pipe','id') }}"
# no brace: a "#jinja2:" header redefines the delimiters (ansible-core < 2.19 honours it)
EVIL_HEADER = "#jinja2:variable_start_string:'[[', variable_end_string:']]'\n[[ lookup('pipe','id') ]]"
SECRETS = ("hunter2-root-pw", "spice-secret-xyz", "nested-user-pw", "tok-secret-value",
           "PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAA", "tokenhash-secret-abc", "vnc-secret-pw",
           "luks-passphrase-xyz")


def _spec(**extra):
    spec = {
        "memory": 2048, "vcpus": 2,
        "root_password": "hunter2-root-pw",
        "spicepasswd": "spice-secret-xyz",
        "vncPasswd": "vnc-secret-pw",
        "api_token": "tok-secret-value",
        "disk": {"luks_passphrase": "luks-passphrase-xyz", "size": "10G"},
        "users": [{"name": "bob", "password": "nested-user-pw"}],
        "ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
                           "-----END OPENSSH PRIVATE KEY-----\n",
        "notes": ["-----BEGIN RSA PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", "keep me"],
        "pci_passthrough": ["0000:01:00.0"],
        "evil": EVIL,
        "evil_header": EVIL_HEADER,
        "interfaces": [{"ip": "10.1.0.7/24", "bridge": "xenbr0"}],
    }
    spec.update(extra)
    return spec


def _fill(url):
    with open_store(url) as store:
        store.add_netconfs("cam", "vm", [{"hostname": "nc1.example.net", "ipv4": "192.0.2.5",
                                          "ipv6": "2001:db8::5"}])
        store.create_vms([
            {"name": "web1", "org": "acme-corp", "flavor": "small", "backend": "xen",
             "hypervisor": "dom0a", "owner": "bob", "spec": _spec()},
            {"name": "run1", "org": "acme-corp", "flavor": "big", "backend": "lxc",
             "hypervisor": "lxchost", "owner": "eve", "spec": {"connection_ip": "10.9.9.9"}},
        ], status=lc.READY)
        store.create_vms([{"name": "pool1", "flavor": "small", "backend": "libvirt",
                           "hypervisor": "kvm1", "spec": {"memory": 1024}}], status=lc.PREALLOCATED)
        store.create_vms([{"name": "q1", "org": "other", "flavor": "small", "backend": "xen",
                           "spec": {}}], status=lc.ANSIBLE_QUEUE)
        store.create_vms([{"name": "inst1", "org": "other", "flavor": "small", "backend": "xen",
                           "spec": {}}], status=lc.INSTALLING)
        store.allocate_netconf("cam", "vm", "pool1")
        store.request_ansible("run1", lc.USER)          # ready -> ansible
        store.request_ansible("inst1", lc.ADMIN)        # deferred: ansible_pending
        store.add_token("web1", "tokenhash-secret-abc", 2 ** 31)


@pytest.fixture()
def fleet(tmp_path):
    """A filled store and a fleet config for it; returns (config path, store URL)."""
    url = f"sqlite:///{tmp_path}/lifecycle.db"
    _fill(url)
    cfg = tmp_path / "x.fleet.yml"
    cfg.write_text(yaml.safe_dump({"plugin": "vman.lifecycle.fleet", "store": url}))
    return cfg, url


def _write_cfg(path, **options):
    path.write_text(yaml.safe_dump(dict({"plugin": "vman.lifecycle.fleet"}, **options)))
    return path


def _cli(tool, *args, env=None):
    full_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    full_env.pop("VMAN_STORE", None)
    full_env.update(env or {})
    proc = subprocess.run([os.path.join(BIN, tool)] + [str(a) for a in args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _list(cfg, *args, env=None):
    proc = _cli("ansible-inventory", "-i", cfg, "--list", *args, env=env)
    return json.loads(proc.stdout), proc.stdout + proc.stderr


def _plain(value):
    """ansible-core >= 2.19 prints an untrusted string as {"__ansible_unsafe": s}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _hosts(data, group):
    return set(data.get(group, {}).get("hosts", []))


def _data_tagging():
    """ansible-core >= 2.19: trust tags, native Jinja types, ansible-inventory --flush-cache."""
    return hasattr(pytest.importorskip("ansible.template"), "trust_as_template")


def _refresh(cfg, tmp_path):
    """Re-read the store and write the cache back: ``ansible-inventory --flush-cache`` where
    it exists (ansible-core >= 2.19), else ``ansible-playbook --flush-cache`` of an empty play."""
    if _data_tagging():
        return _list(cfg, "--flush-cache")
    play = tmp_path / "refresh.yml"
    play.write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
    _cli("ansible-playbook", "-i", cfg, "--flush-cache", play)
    return _list(cfg)


# ---- through the real ansible-inventory -------------------------------------------------

def test_list_hosts_groups_and_vars(fleet):
    cfg, dummy = fleet
    data, out = _list(cfg)
    hostvars = _plain(data["_meta"]["hostvars"])
    assert set(hostvars) == {"acme-corp-web1", "acme-corp-run1", "pool1", "other-q1", "other-inst1"}
    assert _hosts(data, "status_ready") == {"acme-corp-web1"}
    assert _hosts(data, "status_ansible") == {"acme-corp-run1"}
    assert _hosts(data, "org_acme_corp") == {"acme-corp-web1", "acme-corp-run1"}
    assert _hosts(data, "flavor_small") == {"acme-corp-web1", "pool1", "other-q1", "other-inst1"}
    assert _hosts(data, "hypervisor_dom0a") == {"acme-corp-web1"}
    assert _hosts(data, "backend_libvirt") == {"pool1"}
    assert _hosts(data, "pool") == {"pool1"}
    assert _hosts(data, "needs_ansible") == {"acme-corp-run1", "other-q1", "other-inst1"}
    web1 = hostvars["acme-corp-web1"]
    assert web1["vman_status"] == "ready" and web1["vman_owner"] == "bob"
    assert web1["vman_spec"]["memory"] == 2048
    assert web1["vman_spec"]["pci_passthrough"] == ["0000:01:00.0"]
    assert web1["vman_spec"]["notes"] == ["keep me"]
    assert web1["ansible_host"] == "10.1.0.7"                 # first interface, prefix dropped
    assert hostvars["acme-corp-run1"]["ansible_host"] == "10.9.9.9"   # connection_ip
    assert hostvars["pool1"]["ansible_host"] == "192.0.2.5"   # the vm netconf wins
    assert hostvars["pool1"]["vman_netconfs"] == {"vm": {"hostname": "nc1.example.net", "ipv4": "192.0.2.5",
                                                         "ipv6": "2001:db8::5", "pool": "cam"}}
    assert hostvars["pool1"]["vman_owner"] is None
    assert "ansible_host" not in hostvars["other-q1"]
    assert hostvars["other-inst1"]["vman_ansible_pending"] is True
    assert "WARNING" not in out


def test_lists_while_a_module_holds_the_write_lock_and_never_changes_the_store(fleet, tmp_path):
    """The inventory opens the store read-only: a writer's BEGIN IMMEDIATE does not block it
    (before, every parse ran the migration, BEGIN IMMEDIATE, and waited up to 60 s), and the
    SQLite file is left as it was."""
    import sqlite3
    import time
    cfg, url = fleet
    path = url[len("sqlite://"):]
    path = "/" + path.lstrip("/")
    st = os.stat(path)
    before = (st.st_mtime_ns, st.st_size, open(path, "rb").read())
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE vms SET owner = 'uncommitted' WHERE name = 'web1'")
        start = time.monotonic()
        data, dummy = _list(cfg)
        assert time.monotonic() - start < 50
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    hostvars = _plain(data["_meta"]["hostvars"])
    assert hostvars["acme-corp-web1"]["vman_owner"] == "bob"
    assert len(hostvars) == 5
    st = os.stat(path)
    assert (st.st_mtime_ns, st.st_size, open(path, "rb").read()) == before


def test_old_schema_fails_with_the_migration_hint(plugin_loader, tmp_path):
    from ansible.errors import AnsibleParserError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    path = tmp_path / "old.db"
    with open_store(f"sqlite://{path}") as store:
        with store._tx(write=True) as q:
            q.run("DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)")
    before = path.read_bytes()
    cfg = _write_cfg(tmp_path / "old.fleet.yml", store=f"sqlite://{path}")
    plugin = plugin_loader.get("vman.lifecycle.fleet")
    with pytest.raises(AnsibleParserError, match=r"schema version .* read-only.*vm_status_info"):
        plugin.parse(InventoryData(), DataLoader(), str(cfg))
    assert path.read_bytes() == before
    # a store not created yet: an empty fleet, and the file is still not created
    missing = _write_cfg(tmp_path / "missing.fleet.yml", store=f"sqlite://{tmp_path}/none.db")
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(missing))
    assert set(inventory.hosts) == set()
    assert not (tmp_path / "none.db").exists()


def test_no_secret_in_output_nor_verbose_log(fleet):
    cfg, dummy = fleet
    proc = _cli("ansible-inventory", "-i", cfg, "--list", "-vvv")
    out = proc.stdout + proc.stderr
    assert "acme-corp-web1" in out and "hunter2" not in out
    for secret in SECRETS:
        assert secret not in out, secret


def test_store_data_is_never_templated(fleet):
    cfg, dummy = fleet
    data, dummy_out = _list(cfg)
    assert _plain(data["_meta"]["hostvars"]["acme-corp-web1"]["vman_spec"]["evil"]) == EVIL
    for key, literal in (("evil", EVIL), ("evil_header", "[[ lookup('pipe','id') ]]")):
        proc = _cli("ansible", "-i", cfg, "acme-corp-web1", "-c", "local",
                    "-e", f"ansible_python_interpreter={sys.executable}",
                    "-m", "ansible.builtin.debug", "-a", f"msg={{{{ vman_spec.{key} }}}}")
        assert literal in proc.stdout, key
        assert "uid=" not in proc.stdout + proc.stderr, key


def test_store_from_env(fleet, tmp_path):
    dummy, url = fleet
    cfg = _write_cfg(tmp_path / "env.fleet.yaml")
    data, dummy_out = _list(cfg, env={"VMAN_STORE": url})
    assert "pool1" in data["_meta"]["hostvars"]


def test_cache_miss_hit_refresh(fleet, tmp_path):
    dummy, url = fleet
    cache_dir = tmp_path / "cache"
    cfg = _write_cfg(tmp_path / "cached.fleet.yml", store=url, cache=True,
                     cache_plugin="ansible.builtin.jsonfile", cache_connection=str(cache_dir),
                     cache_timeout=3600)
    # miss: nothing cached yet, so the store is read and the result written back
    data, dummy_out = _list(cfg)
    assert "pool1" in data["_meta"]["hostvars"]
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    cached = files[0].read_text()
    assert "pool1" in cached
    for secret in SECRETS:
        assert secret not in cached, secret
    with open_store(url) as store:
        store.create_vms([{"name": "late", "org": "acme-corp", "spec": {}}], status=lc.READY)
    # hit: the store changed, the cache still answers
    data, dummy_out = _list(cfg)
    assert "acme-corp-late" not in data["_meta"]["hostvars"]
    assert "pool1" in data["_meta"]["hostvars"]
    # refresh: --flush-cache reads the store again and writes the cache back
    data, dummy_out = _refresh(cfg, tmp_path)
    assert "acme-corp-late" in data["_meta"]["hostvars"]
    assert "acme-corp-late" in files[0].read_text()
    with open_store(url) as store:
        store.create_vms([{"name": "later", "org": "acme-corp", "spec": {}}], status=lc.READY)
    data, dummy_out = _list(cfg)
    assert "acme-corp-late" in data["_meta"]["hostvars"]
    assert "acme-corp-later" not in data["_meta"]["hostvars"]


def test_without_cache_every_parse_reads_the_store(fleet, tmp_path):
    cfg, url = fleet
    _list(cfg)
    with open_store(url) as store:
        store.create_vms([{"name": "late", "org": "acme-corp", "spec": {}}], status=lc.READY)
    data, dummy_out = _list(cfg)
    assert "acme-corp-late" in data["_meta"]["hostvars"]


# ---- through Ansible's InventoryManager, in this process ----------------------------------

@pytest.fixture(scope="module")
def plugin_loader():
    from ansible.plugins.loader import init_plugin_loader, inventory_loader
    init_plugin_loader([os.path.join(ROOT, "build", "collections")])
    # pytest imported the collection as a plain package (pytest.ini's pythonpath) before the
    # collection finder existed, so the package lacks the routing metadata the finder would
    # have read from meta/runtime.yml; nothing there routes inventory plugins
    pkg = sys.modules.get("ansible_collections.vman.lifecycle")
    if pkg is not None and getattr(pkg, "_collection_meta", None) is None:
        pkg._collection_meta = {}
    return inventory_loader


def _manager(cfg, cache=True):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    return InventoryManager(loader=DataLoader(), sources=[str(cfg)], cache=cache)


def test_constructable(plugin_loader, fleet, tmp_path):
    dummy, url = fleet
    cfg = _write_cfg(tmp_path / "c.fleet.yml", store=url, strict=True,
                     compose={"ansible_user": "vman_owner | default('root', true)",
                              "mem_gb": "(vman_spec.memory | default(0)) // 1024"},
                     groups={"big_mem": "(vman_spec.memory | default(0)) >= 2048"},
                     keyed_groups=[{"key": "vman_owner", "prefix": "owner"}])
    inv = _manager(cfg)
    web1 = inv.get_host("acme-corp-web1").get_vars()
    # before 2.19, Jinja results are strings unless jinja2_native is set
    assert web1["ansible_user"] == "bob" and web1["mem_gb"] == (2 if _data_tagging() else "2")
    assert inv.get_host("pool1").get_vars()["ansible_user"] == "root"
    assert {h.name for h in inv.groups["big_mem"].get_hosts()} == {"acme-corp-web1"}
    assert {h.name for h in inv.groups["owner_eve"].get_hosts()} == {"acme-corp-run1"}
    assert "status_ready" in inv.groups and "pool" in inv.groups


def test_strict_compose_error(plugin_loader, fleet, tmp_path):
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    dummy, url = fleet
    cfg = _write_cfg(tmp_path / "s.fleet.yml", store=url, strict=True,
                     compose={"x": "vman_spec.no_such_key.deeper"})
    plugin = plugin_loader.get("vman.lifecycle.fleet")
    with pytest.raises(AnsibleError, match="Could not set x"):
        plugin.parse(InventoryData(), DataLoader(), str(cfg))


def test_templating_hostvars_keeps_literal(plugin_loader, fleet):
    from ansible.template import Templar
    from ansible.parsing.dataloader import DataLoader
    cfg, dummy = fleet
    inv = _manager(cfg)
    hostvars = inv.get_host("acme-corp-web1").get_vars()
    templar = Templar(loader=DataLoader(), variables=hostvars)
    assert templar.template(hostvars["vman_spec"]["evil"]) == EVIL
    assert templar.template(hostvars["vman_spec"])["evil"] == EVIL
    assert templar.template(hostvars["vman_spec"]["evil_header"]) == EVIL_HEADER
    expression = "{{ vman_spec.evil_header }}"
    if _data_tagging():     # a playbook's own template is trusted; a plain str in a test is not
        from ansible.template import trust_as_template
        expression = trust_as_template(expression)
    assert templar.template(expression) == EVIL_HEADER


def test_older_core_wraps_exactly_the_templatable_strings(plugin_loader, fleet):
    """ansible-core < 2.19 marks unsafe by type: every string that could be a template is
    AnsibleUnsafeText, host names and plain words are str (printed as plain strings)."""
    if _data_tagging():
        pytest.skip("ansible-core >= 2.19 marks unsafe by tags, not by type")
    from ansible.utils.unsafe_proxy import AnsibleUnsafe
    cfg, dummy = fleet
    inv = _manager(cfg)
    host = inv.get_host("acme-corp-web1")
    spec = host.get_vars()["vman_spec"]
    assert isinstance(spec["evil"], AnsibleUnsafe) and isinstance(spec["evil_header"], AnsibleUnsafe)
    assert not isinstance(host.name, AnsibleUnsafe)
    assert not isinstance(host.get_vars()["vman_owner"], AnsibleUnsafe)
    assert host.get_vars()["vman_owner"] == "bob"


def test_verify_file(plugin_loader, tmp_path):
    plugin = plugin_loader.get("vman.lifecycle.fleet")
    for name, ok in (("x.fleet.yml", True), ("fleet.yaml", True), ("x.yml", False),
                     ("fleet.yml.bak", False)):
        (tmp_path / name).write_text("plugin: vman.lifecycle.fleet\n")
        assert plugin.verify_file(str(tmp_path / name)) is ok, name
    assert plugin.verify_file(str(tmp_path / "missing.fleet.yml")) is False


def test_bad_store_url_is_a_parser_error(plugin_loader, tmp_path):
    from ansible.errors import AnsibleParserError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    cfg = _write_cfg(tmp_path / "bad.fleet.yml", store="mysql://nope/db")
    plugin = plugin_loader.get("vman.lifecycle.fleet")
    with pytest.raises(AnsibleParserError, match="sqlite:///"):
        plugin.parse(InventoryData(), DataLoader(), str(cfg))


def test_colliding_host_names_keep_the_first(plugin_loader, tmp_path):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    url = f"sqlite:///{tmp_path}/dup.db"
    with open_store(url) as store:
        store.create_vms([{"name": "b-c", "org": "a", "spec": {}},
                          {"name": "c", "org": "a-b", "spec": {}}], status=lc.READY)
    cfg = _write_cfg(tmp_path / "dup.fleet.yml", store=url)
    inventory = InventoryData()
    plugin_loader.get("vman.lifecycle.fleet").parse(inventory, DataLoader(), str(cfg))
    assert set(inventory.hosts) == {"a-b-c"}
    assert inventory.hosts["a-b-c"].get_vars()["vman_name"] == "b-c"


def test_request_devices_and_redeploy_groups(plugin_loader, tmp_path):
    url = f"sqlite:///{tmp_path}/lifecycle.db"
    with open_store(url) as store:
        store.register_allocator("web", "svc-a", {"backend": "lxc"})
        store.register_allocator("web", "svc.b", {})
        store.add_device("web", "web-1", 1)
        store.inventory_device("web", "web-1", {"backend": "lxc", "spec": {"connection_ip": "10.5.0.9"}},
                               "10.5.0.9")
        store.device_ready("web", "web-1", "boot1", "m1")
        store.clear_redeploy("web", "svc-a")
        store.register_allocator("broken", "svc-a", {"backend": "lxc"})
        store.request_failed("broken", "start_failed", "no rootfs")
    cfg = _write_cfg(tmp_path / "r.fleet.yml", store=url)
    data, dummy_out = _list(cfg)
    assert _hosts(data, "request_web") == {"web-1"}
    assert _hosts(data, "redeploy_svc_b") == {"web-1"}
    # svc-a only has the failed request (no device): an empty group carrying the request
    assert _hosts(data, "redeploy_svc_a") == set()
    group = _manager(cfg).groups["redeploy_svc_a"]
    assert group.get_hosts() == [] and group.get_vars() == {"vman_redeploy_requests": ["broken"]}
    hostvars = _plain(data["_meta"]["hostvars"]["web-1"])
    assert hostvars["vman_request"] == {"request": "web", "ready": True,
                                        "allocators": ["svc-a", "svc.b"], "redeploy": ["svc.b"]}
    assert hostvars["ansible_host"] == "10.5.0.9"


def _trust_all(value, trust):
    if isinstance(value, dict):
        return {k: _trust_all(v, trust) for k, v in value.items()}
    if isinstance(value, list):
        return [_trust_all(v, trust) for v in value]
    return trust(value) if isinstance(value, str) else value


def test_cache_file_with_trusted_strings_stays_unsafe(plugin_loader, fleet, tmp_path):
    """Fresh store data holds no trust tag, but a cache file is outside the store: on
    ansible-core >= 2.19 it persists data tags, so a crafted (or shared, writable) cache could
    mark a string trusted. Data read back from a cache is wrapped, which drops such tags."""
    template = pytest.importorskip("ansible.template")
    if not hasattr(template, "trust_as_template"):
        pytest.skip("ansible-core < 2.19 marks unsafe values by type, not by tags")
    from ansible._internal._json._profiles import _cache_persistence
    dummy, url = fleet
    cache_dir = tmp_path / "cache"
    cfg = _write_cfg(tmp_path / "t.fleet.yml", store=url, cache=True,
                     cache_plugin="ansible.builtin.jsonfile", cache_timeout=3600,
                     cache_connection=str(cache_dir))
    fresh = _manager(cfg, cache=False).get_host("acme-corp-web1").get_vars()["vman_spec"]["evil"]
    assert fresh == EVIL and not template.is_trusted_as_template(fresh)
    [cache_file] = cache_dir.iterdir()
    outer = json.loads(cache_file.read_text())
    payload = json.loads(outer["__payload__"], cls=_cache_persistence.Decoder)
    payload = _trust_all(payload, template.trust_as_template)
    outer["__payload__"] = json.dumps(payload, cls=_cache_persistence.Encoder)
    cache_file.write_text(json.dumps(outer))
    with open_store(url) as store:
        store.create_vms([{"name": "late", "org": "acme-corp", "spec": {}}], status=lc.READY)
    inv = _manager(cfg)
    assert "acme-corp-late" not in inv.hosts                     # a cache hit
    web1 = inv.get_host("acme-corp-web1").get_vars()
    assert web1["vman_spec"]["evil"] == EVIL
    assert not template.is_trusted_as_template(web1["vman_spec"]["evil"])
    assert not template.is_trusted_as_template(web1["vman_owner"])


def test_malformed_live_state_is_a_parser_error(plugin_loader, fleet, tmp_path):
    from ansible.errors import AnsibleParserError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    dummy, url = fleet
    cfg = _write_cfg(tmp_path / "l.fleet.yml", store=url,
                     live_state={"kvm1": {"backend": "libvirt", "url": "qemu:///system"}})
    plugin = plugin_loader.get("vman.lifecycle.fleet")
    with pytest.raises(AnsibleParserError, match=r"live_state.kvm1: field 'url'.*unknown for backend libvirt"):
        plugin.parse(InventoryData(), DataLoader(), str(cfg))


def test_without_live_state_no_power_state(fleet):
    cfg, dummy = fleet
    data, dummy_out = _list(cfg)
    assert not any(g.startswith("power_") for g in data)
    assert not any("vman_power_state" in v for v in data["_meta"]["hostvars"].values())
