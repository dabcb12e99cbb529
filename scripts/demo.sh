#!/usr/bin/env bash
# make demo: the whole life of two VMs with the lifecycle playbooks and the SQLite store, on
# real LXC guests on this machine (see README "Demo"): preallocate (host keys, token, first
# boot, install callback from inside the guest), postinstall over SSH, allocate to two users,
# an ansible run with a queued one, quarantine, disable/enable, cancel, purge. The fleet
# inventory is printed after every step (and saved as JSON in build/demo/steps/).
#
# Environment (all optional):
#   VMAN_LXC_BRIDGE / VMAN_LXC_GATEWAY / VMAN_LXC_PATH   as tests/testbed/lxc-setup.sh
#   VMAN_DEMO_DIR        work directory (build/demo)
#   VMAN_DEMO_VERBOSITY  e.g. -vvv, passed to ansible-playbook and ansible-inventory
#   VMAN_DEMO_HOOK       a command run after each step with the step name as argument
#   VMAN_LXC_KEEP=1      keep the bridge and the base containers afterwards
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0
export VMAN_LXC_BRIDGE=${VMAN_LXC_BRIDGE:-lxcbr1}
export VMAN_LXC_GATEWAY=${VMAN_LXC_GATEWAY:-10.5.0.1/16}
export VMAN_LXC_PATH=${VMAN_LXC_PATH:-/var/lib/vman-testbed/lxc}
demo=${VMAN_DEMO_DIR:-$root/build/demo}
verbosity=${VMAN_DEMO_VERBOSITY:-}
hook=${VMAN_DEMO_HOOK:-}
py=$root/.venv/bin/python
bin=$root/.venv/bin

banner() { printf '\n==== %s\n' "$*"; }

rm -rf "$demo"
mkdir -p "$demo/inventory/group_vars" "$demo/steps" "$demo/shown"
chmod 0700 "$demo"
export VMAN_STORE="sqlite:///$demo/lifecycle.db"
export VMAN_LXC_SETTINGS="$demo/lxc-settings"

banner "testbed: LXC bridge $VMAN_LXC_BRIDGE ($VMAN_LXC_GATEWAY), lxcpath $VMAN_LXC_PATH"
bash tests/testbed/lxc-setup.sh > "$demo/lxc-setup.env"
bash tests/testbed/lxc-lifecycle-base.sh > "$demo/lxc-base.env"
cat "$demo/lxc-base.env"
cleanup() {
  # guests of a failed run; the purge step already removed them on success
  for ct in $(lxc-ls -P "$VMAN_LXC_PATH" -1 2>/dev/null | grep -E '^[0-9a-f]{8}-' || true); do
    lxc-destroy -P "$VMAN_LXC_PATH" -n "$ct" -f >/dev/null 2>&1 || true
  done
  [ -n "${VMAN_LXC_KEEP:-}" ] || bash tests/testbed/lxc-down.sh || true
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -C vman-demo-controller -f "$demo/controller_key"
# addresses: the gateway's network; the demo's guests take the upper half of it
read -r gateway network vm_first svc_first test_first port < <("$py" - "$VMAN_LXC_GATEWAY" <<'PY'
import ipaddress, socket, sys
iface = ipaddress.ip_interface(sys.argv[1])
net = iface.network
half = net.network_address + net.num_addresses // 2
s = socket.socket()
s.bind((str(iface.ip), 0))
port = s.getsockname()[1]
s.close()
print(iface.ip, net, half + 10, half + 40, half + 70, port)
PY
)

cat > "$demo/lifecycle.yml" <<YAML
lifecycle_netconf_pool: demo
lifecycle_demo_netconfs:
  - {kind: vm, ranges: [{hostname: "vm{n:02d}.demo.vman.test", ipv4: "$vm_first", ipv6: "fd00:56::a:0", count: 4}]}
  - {kind: service, ranges: [{hostname: "site{n:02d}.demo.vman.test", ipv4: "$svc_first", ipv6: "fd00:56::b:0", count: 4}]}
  - {kind: test-service, ranges: [{hostname: "test-site{n:02d}.demo.vman.test", ipv4: "$test_first", count: 4}]}
lifecycle_flavors:
  - name: small
    threshold: 2
    org: demo
    backend: lxc
    hypervisor: localhost
    spec: {memory: 512, vcpus: 1, os: {type: debian, version: bookworm}}
lifecycle_flavor: small
lifecycle_callback_bind: "$gateway"
lifecycle_callback_host: "$gateway"
lifecycle_callback_port: $port
lifecycle_callback_timeout: 300
lifecycle_authorized_keys: ["$(cat "$demo/controller_key.pub")"]
lifecycle_known_hosts: "$demo/known_hosts"
lifecycle_password_dir: "$demo/shown"
lifecycle_lxc:
  lxc_path: "$VMAN_LXC_PATH"
  settings_dir: "$VMAN_LXC_SETTINGS"
  profile_type: dir
  from_container: vman-lifecycle-base
  production: true
  bridge: "$VMAN_LXC_BRIDGE"
  network: "$network"
  gateway: "$gateway"
YAML

cat > "$demo/inventory/demo.fleet.yml" <<YAML
plugin: vman.lifecycle.fleet
store: "$VMAN_STORE"
keyed_groups:
  - key: vman_owner | default('nobody', true)
    prefix: owner
YAML
cat > "$demo/inventory/group_vars/backend_lxc.yml" <<YAML
ansible_user: root
ansible_python_interpreter: /usr/bin/python3
ansible_ssh_private_key_file: "$demo/controller_key"
ansible_host_key_checking: true
ansible_pipelining: true
ansible_ssh_common_args: "-o UserKnownHostsFile=$demo/known_hosts -o StrictHostKeyChecking=yes"
YAML

step_no=0
show_inventory() {
  step_no=$((step_no + 1))
  local file
  file=$(printf '%s/steps/%02d-%s.json' "$demo" "$step_no" "$1")
  # shellcheck disable=SC2086
  "$bin/ansible-inventory" $verbosity -i "$demo/inventory" --list --output "$file"
  echo "-- inventory after $1:"
  "$py" - "$file" <<'PY'
import json, sys
# ansible-inventory --output keeps the unsafe marks of the fleet plugin's values
inv = json.load(open(sys.argv[1]), object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)
hostvars = inv.get("_meta", {}).get("hostvars", {})
if not hostvars:
    print("   (no VM in the store)")
for host, hv in sorted(hostvars.items()):
    groups = sorted(g for g, v in inv.items() if g not in ("_meta", "all") and host in v.get("hosts", []))
    print(f"   {host:45} {hv['vman_status']:13} owner={hv.get('vman_owner') or '-':6} "
          f"{hv.get('ansible_host', '-'):15} groups={','.join(groups)}")
PY
  if [ -n "$hook" ]; then $hook "$1"; fi
}

play() {
  local name=$1; shift
  banner "$name: ansible-playbook $*"
  local t0 t1
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$bin/ansible-playbook" $verbosity -i "$demo/inventory" -e "@$demo/lifecycle.yml" "$@"
  t1=$(date +%s.%N)
  printf -- '-- %s took %.1f s\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
  show_inventory "$name"
}

play netconfs playbooks/lifecycle_demo_setup.yml
play preallocate playbooks/preallocate.yml
play allocate-alice playbooks/allocate.yml -e lifecycle_owner=alice
play allocate-bob playbooks/allocate.yml -e lifecycle_owner=bob
play show-password playbooks/show_password.yml -e lifecycle_vms=owner_alice
echo "-- alice's root password is in $(ls "$demo"/shown/*) (0600); the store no longer has it"

play request-ansible playbooks/request_ansible.yml -e lifecycle_vms=owner_bob
play request-again playbooks/request_ansible.yml -e lifecycle_vms=owner_bob
play run-ansible playbooks/run_ansible.yml
play quarantine playbooks/quarantine.yml -e lifecycle_vms=owner_alice
play unquarantine playbooks/quarantine.yml -e lifecycle_vms=owner_alice -e lifecycle_quarantine=false
play disable playbooks/disable.yml -e lifecycle_vms=owner_bob
play enable playbooks/enable.yml -e lifecycle_vms=owner_bob
play cancel playbooks/cancel.yml -e 'lifecycle_vms=owner_alice:owner_bob'
play purge-check playbooks/purge.yml --check -e lifecycle_grace_days=0
play purge playbooks/purge.yml -e lifecycle_grace_days=0

banner "the store keeps the history"
"$py" - "$demo/lifecycle.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for vm, n, last in db.execute("SELECT vm, COUNT(*), MAX(id) FROM events GROUP BY vm ORDER BY vm"):
    path = " -> ".join(s for (s,) in db.execute(
        "SELECT to_status FROM events WHERE vm = ? ORDER BY id", (vm,)))
    print(f"   {vm}: {path}")
PY
banner "make demo: done"
