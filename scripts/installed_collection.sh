#!/usr/bin/env bash
# The user's install path: build the collection with `ansible-galaxy collection build`, install
# the tarball into an empty collections path (community.libvirt copied from build/collections:
# Galaxy is not reachable here), and from a project directory of its own, with its own minimal
# ansible.cfg and ANSIBLE_COLLECTIONS_PATH naming only that path, check what a user runs:
#   - the tarball holds no build/, .venv, caches, test output;
#   - ansible-doc of every module, inventory, filter and role, without any error or warning;
#   - the xen_domain demo playbook by its FQCN (configs rendered into a temporary directory);
#   - every lifecycle playbook by its FQCN with --syntax-check, and those that need no
#     hypervisor run against a temporary SQLite store (netconf pool, pool deficit, ansible
#     request, password shown once);
#   - the fleet inventory (`ansible-inventory -i x.fleet.yml --list`) on VMs a module run made.
# Prints one `checked ...` line per check. Usage: scripts/installed_collection.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${VMAN_VENV:-$root/.venv}
bin=$venv/bin
[ -x "$bin/ansible-galaxy" ] || { echo "no $bin/ansible-galaxy: run scripts/venv.sh first" >&2; exit 2; }
libvirt_src=$root/build/collections/ansible_collections/community/libvirt
[ -f "$libvirt_src/MANIFEST.json" ] || { echo "no $libvirt_src: run scripts/venv.sh first" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vman-installed.XXXXXX")
trap 'rm -rf "$work"' EXIT
coll=$work/collections
proj=$work/project
mkdir -p "$coll/ansible_collections/community" "$proj" "$work/home"
started=$(date +%s)

fail() { echo "installed: FAILED: $*" >&2; exit 1; }
# run CMD...: output to $work/out; fails on a non-zero exit or on any warning or error line
run() {
  local t0=$SECONDS
  if ! "$@" >"$work/out" 2>&1; then
    cat "$work/out" >&2; fail "$*"
  fi
  if grep -E '^\[(WARNING|DEPRECATION WARNING|ERROR)\]' "$work/out" >&2; then
    fail "$* printed a warning or an error"
  fi
  [ -z "${VMAN_INSTALLED_TIMES:-}" ] || echo "  $(( SECONDS - t0 )) s: ${*#"$bin"/}" >&2
}

# --- the project's settings: none of the repository's reach the commands below
# (a user's own choices: no retry files, no warning that only the implicit localhost exists)
cat >"$proj/ansible.cfg" <<'CFG'
[defaults]
retry_files_enabled = false
localhost_warning = false

[inventory]
inventory_unparsed_warning = false
CFG
export ANSIBLE_CONFIG=$proj/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$coll ANSIBLE_HOME=$work/home
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export VMAN_STORE=sqlite://$work/store/lifecycle.db
unset PYTHONPATH ANSIBLE_INVENTORY ANSIBLE_LIBRARY ANSIBLE_ROLES_PATH

# --- build and install
run "$bin/ansible-galaxy" collection build --output-path "$work" "$root"
tarball=$(find "$work" -maxdepth 1 -name 'vman-lifecycle-*.tar.gz')
[ -n "$tarball" ] || fail "no tarball built"
tar -tzf "$tarball" >"$work/members"
if grep -E '(^|/)(build|\.venv|\.git|\.hypothesis|\.pytest_cache|__pycache__|\.ansible|\.cache)(/|$)|^tests/output/|\.pyc$|\.tar\.gz$' \
    "$work/members"; then
  fail "the tarball holds files a user must not get (above)"
fi
echo "checked build: $(basename "$tarball"), $(wc -l <"$work/members") members, no build/venv/cache files"

cp -a "$libvirt_src" "$coll/ansible_collections/community/libvirt"
run "$bin/ansible-galaxy" collection install --offline -p "$coll" "$tarball"
installed=$coll/ansible_collections/vman/lifecycle
if [ ! -f "$installed/MANIFEST.json" ] || [ -L "$installed" ]; then fail "not installed into $coll"; fi
echo "checked install: $installed"

cd "$proj"

# --- ansible-doc of every plugin: the names come from the installed files, so a plugin that
# ansible-doc does not list (no documentation) fails too
names_of() {  # names_of TYPE: the plugin names of the installed collection
  case $1 in
    module) find "$installed/plugins/modules" -name '*.py' ! -name '_*' -printf '%f\n' | sed 's/\.py$//' ;;
    inventory) find "$installed/plugins/inventory" -name '*.py' ! -name '_*' -printf '%f\n' | sed 's/\.py$//' ;;
    role) find "$installed/roles" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' ;;
    filter) "$bin/python" - "$installed/plugins/filter" <<'PY'
import importlib.util, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.py")):
    spec = importlib.util.spec_from_file_location(
        "ansible_collections.vman.lifecycle.plugins.filter." + path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print("\n".join(mod.FilterModule().filters()))
PY
    ;;
  esac
}
for type in module inventory filter role; do
  mapfile -t names < <(PYTHONPATH=$coll names_of "$type" | sort)
  [ "${#names[@]}" -gt 0 ] || fail "no $type found in $installed"
  fqcns=("${names[@]/#/vman.lifecycle.}")
  run "$bin/ansible-doc" -t "$type" --json "${fqcns[@]}"
  "$bin/python" - "$work/out" "$type" "${fqcns[@]}" <<'PY' || fail "ansible-doc -t $type"
import json, sys
docs, kind, want = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
missing = [n for n in want if not (docs.get(n) or {}).get("doc" if kind != "role" else "entry_points")]
if missing or sorted(docs) != sorted(want):
    sys.exit(f"{kind}: no documentation for {missing}; got {sorted(docs)}")
PY
  echo "checked ansible-doc -t $type: ${#names[@]} (${names[*]})"
done

# --- the xen_domain demo: two VMs' configs, converged twice, read back
run "$bin/ansible-playbook" vman.lifecycle.xen_domain_demo -e "demo_config_path=$work/vms"
grep -q 'first run changed: True, second run changed: False' "$work/out" || { cat "$work/out"; fail "xen_domain_demo: not idempotent"; }
if [ ! -f "$work/vms/demo-web01.cfg" ] || [ ! -f "$work/vms/demo-db01.cfg" ]; then
  fail "xen_domain_demo wrote no configs in $work/vms"
fi
echo "checked playbook vman.lifecycle.xen_domain_demo: demo-web01.cfg, demo-db01.cfg, second run unchanged"

# --- every lifecycle playbook by its FQCN (on an empty fleet, their groups match no host:
# ANSIBLE_HOST_PATTERN_MISMATCH=ignore silences only that warning)
mkdir -p "$work/store" "$proj/inventory"
printf 'plugin: vman.lifecycle.fleet\nstore: %s\n' "$VMAN_STORE" >"$proj/inventory/vms.fleet.yml"
mapfile -t playbooks < <(find "$installed/playbooks" -maxdepth 1 -name '*.yml' -printf '%f\n' | sed 's/\.yml$//' | sort)
for pb in "${playbooks[@]}"; do
  run env ANSIBLE_HOST_PATTERN_MISMATCH=ignore "$bin/ansible-playbook" -i inventory/vms.fleet.yml --syntax-check "vman.lifecycle.$pb"
done
echo "checked --syntax-check: ${#playbooks[@]} playbooks (${playbooks[*]})"

cat >"$proj/settings.yml" <<YAML
lifecycle_netconf_pool: installed
lifecycle_demo_netconfs:
  - {kind: vm, ranges: [{hostname: "vm{n:02d}.installed.test", ipv4: 192.0.2.10, count: 4}]}
  - {kind: service, ranges: [{hostname: "site{n:02d}.installed.test", ipv4: 192.0.2.20, count: 4}]}
  - {kind: test-service, ranges: [{hostname: "test{n:02d}.installed.test", ipv4: 192.0.2.30, count: 4}]}
lifecycle_flavors: []
lifecycle_password_dir: $work/shown
YAML
run "$bin/ansible-playbook" -i inventory/vms.fleet.yml -e @settings.yml vman.lifecycle.lifecycle_demo_setup
# an empty pool deficit: the pool play runs, no VM is created, the install plays have no host
run env ANSIBLE_HOST_PATTERN_MISMATCH=ignore "$bin/ansible-playbook" -i inventory/vms.fleet.yml -e @settings.yml vman.lifecycle.preallocate
grep -q 'skipping: no hosts matched' "$work/out" || { cat "$work/out"; fail "preallocate: expected no VM to install"; }
echo "checked playbooks run: lifecycle_demo_setup (netconf pool installed), preallocate (empty deficit)"

# three VMs in the store by a module run from a playbook of the project (status installing)
cat >"$proj/make_vms.yml" <<'YAML'
- name: Three VMs of flavor small, one with a password
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Pool deficit
      vman.lifecycle.vm_pool:
        flavors:
          - {name: small, threshold: 3, org: inst, backend: lxc, hypervisor: lxchost1,
             spec: {memory: 512, root_password: not-in-the-inventory}}
        netconf_pool: installed
        netconf_kinds: [vm]
      register: made
    - name: A password for the first one
      vman.lifecycle.vm_secret:
        vm: "{{ made.created[0].name }}"
        name: root
      no_log: true
    - name: Name of the first one
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/first_vm"
        content: "{{ made.created[0].org }}-{{ made.created[0].name }}"
        mode: "0600"
YAML
run "$bin/ansible-playbook" make_vms.yml
first=$(cat "$proj/first_vm")
run "$bin/ansible-inventory" -i inventory/vms.fleet.yml --list
"$bin/python" - "$work/out" "$first" <<'PY' || fail "ansible-inventory --list"
import json, sys
inv = json.load(open(sys.argv[1]))
hosts = inv["status_installing"]["hosts"]
assert len(hosts) == 3 and sys.argv[2] in hosts, hosts
assert sorted(inv["flavor_small"]["hosts"]) == sorted(hosts), inv["flavor_small"]
assert "not-in-the-inventory" not in open(sys.argv[1]).read(), "a secret reached the inventory"
print("checked ansible-inventory --list: hosts", ", ".join(sorted(hosts)),
      "in status_installing and flavor_small, no secret")
PY

# store-only playbooks on one of those VMs: an ansible run requested while it installs
# (deferred), its password shown once into a 0600 file
run "$bin/ansible-playbook" -i inventory/vms.fleet.yml -e @settings.yml -e "lifecycle_vms=$first" vman.lifecycle.request_ansible
run "$bin/ansible-inventory" -i inventory/vms.fleet.yml --host "$first"
grep -q '"vman_ansible_pending": true' "$work/out" || { cat "$work/out"; fail "request_ansible: no pending run"; }
run "$bin/ansible-playbook" -i inventory/vms.fleet.yml -e @settings.yml -e "lifecycle_vms=$first" vman.lifecycle.show_password
shown=$(find "$work/shown" -type f -name '*.root')
if [ -z "$shown" ] || [ "$(stat -c %a "$shown")" != 600 ] || [ ! -s "$shown" ]; then
  fail "show_password: no 0600 file in $work/shown"
fi
if "$bin/ansible-playbook" -i inventory/vms.fleet.yml -e @settings.yml -e "lifecycle_vms=$first" \
    vman.lifecycle.show_password >"$work/out" 2>&1; then
  fail "show_password showed the password twice"
fi
if ! grep -q 'TASK \[Take the password out of the store\]' "$work/out" || ! grep -q 'failed=1' "$work/out"; then
  cat "$work/out"; fail "show_password the second time: not refused by the store"
fi
echo "checked playbooks run: request_ansible (pending on $first), show_password (0600 file, refused the second time)"
echo "installed: all checks passed in $(( $(date +%s) - started )) s"
