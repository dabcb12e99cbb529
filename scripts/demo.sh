#!/usr/bin/env bash
# make demo: the whole life of two VMs with the lifecycle playbooks and the SQLite store (see
# docs/development.md "Demo"): preallocate (host keys, token, first boot, install callback from inside the
# guest), postinstall over SSH, allocate to two users, an ansible run with a queued one,
# quarantine, disable/enable, cancel, purge. The fleet inventory is printed after every step
# (and saved as JSON in build/demo/steps/).
#
# The guests are Xen domUs on the Xen testbed (default: a Debian dom0 with Xen in QEMU, booted
# here or attached to) or, with VMAN_DEMO_BACKEND=lxc, LXC containers on this machine.
#
# Environment (all optional):
#   VMAN_DEMO_BACKEND    xen (default) or lxc
#   VMAN_XEN_TESTBED     state directory of a Xen testbed already up (left running); without it
#                        one is booted in VMAN_XEN_STATE_DIR (build/demo-xen-testbed) and
#                        powered off at the end
#   VMAN_LXC_BRIDGE / VMAN_LXC_GATEWAY / VMAN_LXC_PATH   as tests/testbed/lxc-setup.sh
#   VMAN_DEMO_DIR        work directory (build/demo)
#   VMAN_DEMO_VERBOSITY  e.g. -vvv, passed to ansible-playbook and ansible-inventory
#   VMAN_DEMO_HOOK       a command run after each step with the step name as argument
#   VMAN_LXC_KEEP=1      keep the bridge and the base containers afterwards
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0
backend=${VMAN_DEMO_BACKEND:-xen}
demo=${VMAN_DEMO_DIR:-$root/build/demo}
verbosity=${VMAN_DEMO_VERBOSITY:-}
hook=${VMAN_DEMO_HOOK:-}
py=$root/.venv/bin/python
bin=$root/.venv/bin
case $backend in
  xen|lxc) ;;
  *) echo "demo.sh: VMAN_DEMO_BACKEND must be xen or lxc, not '$backend'" >&2; exit 2 ;;
esac

banner() { printf '\n==== %s\n' "$*"; }

rm -rf "$demo"
mkdir -p "$demo/inventory/group_vars" "$demo/steps" "$demo/shown"
chmod 0700 "$demo"
export VMAN_STORE="sqlite:///$demo/lifecycle.db" VMAN_DEMO_BACKEND=$backend VMAN_DEMO_DIR=$demo
ssh-keygen -q -t ed25519 -N '' -C vman-demo-controller -f "$demo/controller_key"
cleanups=()
cleanup() {
  # shellcheck disable=SC2034  # read by the cleanups (eval)
  rc=$?
  local i
  for (( i=${#cleanups[@]}-1; i>=0; i-- )); do eval "${cleanups[i]}" || true; done
}
trap cleanup EXIT

free_port() {
  "$py" -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# lifecycle.yml, what both backends share: netconfs (first IPv4 of each kind), one flavor of
# two VMs (backend, hypervisor, spec), the callback listener (bind, host, port), the controller's
# SSH side. Arguments: VM SERVICE TEST-SERVICE BACKEND HYPERVISOR SPEC BIND HOST PORT
write_settings() {
  cat > "$demo/lifecycle.yml" <<YAML
lifecycle_netconf_pool: demo
lifecycle_demo_netconfs:
  - {kind: vm, ranges: [{hostname: "vm{n:02d}.demo.vman.test", ipv4: "$1", ipv6: "fd00:56::a:0", count: 4}]}
  - {kind: service, ranges: [{hostname: "site{n:02d}.demo.vman.test", ipv4: "$2", ipv6: "fd00:56::b:0", count: 4}]}
  - {kind: test-service, ranges: [{hostname: "test-site{n:02d}.demo.vman.test", ipv4: "$3", count: 4}]}
lifecycle_flavors:
  - name: small
    threshold: 2
    org: demo
    backend: $4
    hypervisor: $5
    spec: $6
lifecycle_flavor: small
lifecycle_callback_bind: "$7"
lifecycle_callback_host: "$8"
lifecycle_callback_port: $9
lifecycle_authorized_keys: ["$(cat "$demo/controller_key.pub")"]
lifecycle_known_hosts: "$demo/known_hosts"
lifecycle_password_dir: "$demo/shown"
YAML
}

setup_lxc() {
  export VMAN_LXC_BRIDGE=${VMAN_LXC_BRIDGE:-lxcbr1}
  export VMAN_LXC_GATEWAY=${VMAN_LXC_GATEWAY:-10.5.0.1/16}
  export VMAN_LXC_PATH=${VMAN_LXC_PATH:-/var/lib/vman-testbed/lxc}
  export VMAN_LXC_SETTINGS="$demo/lxc-settings"
  banner "testbed: LXC bridge $VMAN_LXC_BRIDGE ($VMAN_LXC_GATEWAY), lxcpath $VMAN_LXC_PATH"
  bash tests/testbed/lxc-setup.sh > "$demo/lxc-setup.env"
  bash tests/testbed/lxc-lifecycle-base.sh > "$demo/lxc-base.env"
  cat "$demo/lxc-base.env"
  # guests of a failed run; the purge step already removed them on success (evaluated later)
  # shellcheck disable=SC2016
  cleanups+=('for ct in $(lxc-ls -P "$VMAN_LXC_PATH" -1 2>/dev/null | grep -E "^[0-9a-f]{8}-" || true); do lxc-destroy -P "$VMAN_LXC_PATH" -n "$ct" -f >/dev/null 2>&1 || true; done')
  # shellcheck disable=SC2016
  cleanups+=('[ -n "${VMAN_LXC_KEEP:-}" ] || bash tests/testbed/lxc-down.sh')
  # addresses: the gateway's network; the demo's guests take the upper half of it
  local gateway network vm_first svc_first test_first port
  read -r gateway network vm_first svc_first test_first < <("$py" - "$VMAN_LXC_GATEWAY" <<'PY'
import ipaddress, sys
iface = ipaddress.ip_interface(sys.argv[1])
half = iface.network.network_address + iface.network.num_addresses // 2
print(iface.ip, iface.network, half + 10, half + 40, half + 70)
PY
)
  port=$(free_port "$gateway")
  write_settings "$vm_first" "$svc_first" "$test_first" lxc localhost \
    "{memory: 512, vcpus: 1, os: {type: debian, version: bookworm}}" "$gateway" "$gateway" "$port"
  cat >> "$demo/lifecycle.yml" <<YAML
lifecycle_callback_timeout: 300
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
  live_state="{localhost: {backend: lxc, lxc_path: '$VMAN_LXC_PATH'}}"
  cat > "$demo/inventory/group_vars/backend_lxc.yml" <<YAML
ansible_user: root
ansible_python_interpreter: /usr/bin/python3
ansible_ssh_private_key_file: "$demo/controller_key"
ansible_host_key_checking: true
ansible_pipelining: true
ansible_ssh_common_args: "-o UserKnownHostsFile=$demo/known_hosts -o StrictHostKeyChecking=yes"
YAML
}

# the domains of org "demo" (the demo's), their units, configs and NFS roots in the dom0
xen_remove_demo_guests() {
  ssh -F "$1/ssh_config" testbed 'for c in /etc/xen/vms/demo-*.cfg; do
      [ -e "$c" ] || continue; d=$(basename "$c" .cfg)
      systemctl stop "vm@$d.service"; systemctl disable -q "vm@$d.service"
      rm -f "$c" "/etc/xen/vms/$d.install-pending"; echo "demo.sh: removed the Xen guest $d"
    done; rm -rf /srv/vman-lifecycle/demo'
}

setup_xen() {
  local state
  if [ -n "${VMAN_XEN_TESTBED:-}" ]; then
    state=$VMAN_XEN_TESTBED
    banner "testbed: the Xen testbed up in $state"
  else
    state=${VMAN_XEN_STATE_DIR:-$root/build/demo-xen-testbed}
    banner "testbed: booting the Xen testbed in $state (the image is built and cached when missing)"
    cleanups+=("bash tests/testbed/xen-down.sh '$state'")
    VMAN_XEN_BOOT_TIMEOUT=${VMAN_XEN_BOOT_TIMEOUT:-900} bash tests/testbed/xen-up.sh "$state"
  fi
  export VMAN_XEN_TESTBED=$state
  # guests of an earlier failed run on this testbed (same addresses) go first; this run's go
  # at the end when it fails (the purge step removes them when it succeeds)
  xen_remove_demo_guests "$state"
  cleanups+=("[ \$rc -eq 0 ] || xen_remove_demo_guests '$state'")
  banner "Xen host: vm@ units, domU initrd (dracut), NFS export of the roots, root image"
  # shellcheck disable=SC2086
  "$bin/ansible-playbook" $verbosity -i "$state/inventory.ini" tests/testbed/xen-lifecycle-host.yml
  # the guests (10.200.0.0/24 behind the dom0) reach the controller's callback listener through
  # a remote forward of this SSH connection: the listener sees 127.0.0.1, the tunnel's end
  local port
  port=$(free_port 127.0.0.1)
  ssh -F "$state/ssh_config" -N -o ExitOnForwardFailure=yes \
    -R "10.200.0.1:$port:127.0.0.1:$port" testbed &
  local tunnel=$!
  cleanups+=("kill $tunnel 2>/dev/null")
  sleep 2
  kill -0 "$tunnel" || { echo "demo.sh: the callback tunnel to the dom0 did not come up" >&2; exit 1; }
  cp "$state/inventory.ini" "$demo/inventory/hypervisors.ini"
  live_state="{xen_testbed: {backend: xen, ssh: testbed, ssh_args: [-F, '$state/ssh_config']}}"
  write_settings 10.200.0.40 10.200.0.140 10.200.0.170 xen xen_testbed \
    '{memory: 256, vcpus: 1, os: {type: debian, version: "12"}}' 127.0.0.1 10.200.0.1 "$port"
  cat >> "$demo/lifecycle.yml" <<YAML
lifecycle_callback_timeout: 1200
lifecycle_connect_timeout: 1200
lifecycle_trusted_proxies: [127.0.0.1]
lifecycle_xen:
  config_path: /etc/xen/vms
  manager: systemd
  prefix: 24
  start_timeout: 120
  stop_timeout: 120
  image: /var/cache/vman-testbed/rootfs-bookworm.tar
  defaults:
    storage_type: nfs
    nfsroot_base: "10.200.0.1:/srv/vman-lifecycle"
    gateway: 10.200.0.1
    nameserver: [10.200.0.1]
    network_bridge: xenbr0
    initrd: /etc/xen/initrd.img
    cpu_str: all
    additional_xen_options: {on_crash: destroy}
YAML
  # the guests are reached through the dom0 (their network has no route from here)
  cat > "$demo/inventory/group_vars/backend_xen.yml" <<YAML
ansible_user: root
ansible_python_interpreter: /usr/bin/python3
ansible_ssh_private_key_file: "$demo/controller_key"
ansible_host_key_checking: true
ansible_pipelining: true
ansible_ssh_common_args: >-
  -o UserKnownHostsFile=$demo/known_hosts -o StrictHostKeyChecking=yes
  -o ProxyCommand="ssh -F $state/ssh_config -W %h:%p testbed"
YAML
}

"setup_$backend"

cat > "$demo/inventory/demo.fleet.yml" <<YAML
plugin: vman.lifecycle.fleet
store: "$VMAN_STORE"
# the power state each hypervisor reports, beside the status the store records
live_state: $live_state
keyed_groups:
  - key: vman_owner | default('nobody', true)
    prefix: owner
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
vms = {host: hv for host, hv in hostvars.items() if "vman_status" in hv}
if not vms:
    print("   (no VM in the store)")
for host, hv in sorted(vms.items()):
    groups = sorted(g for g, v in inv.items() if g not in ("_meta", "all") and host in v.get("hosts", []))
    print(f"   {host:45} {hv['vman_status']:13} {hv.get('vman_power_state', '-'):8} owner={hv.get('vman_owner') or '-':6} "
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
