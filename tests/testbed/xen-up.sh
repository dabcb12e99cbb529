#!/usr/bin/env bash
# Boot the Xen testbed: Xen + Debian 12 dom0 in QEMU (TCG), on a fresh qcow2 overlay over the
# cached image (built by xen-build.sh when missing), SSH forwarded to a free 127.0.0.1 port.
#
# Usage: xen-up.sh STATE_DIR
# Writes into STATE_DIR: overlay.qcow2, qemu.pid, serial.log, id_ed25519 (0600), known_hosts,
# ssh_config (host "testbed"), inventory.ini (host "xen_testbed") and env (KEY=VALUE lines).
# Then `ssh -F STATE_DIR/ssh_config testbed CMD` works. Idempotent: a testbed that is already up
# in STATE_DIR is reused. On failure the serial log's tail is printed, QEMU is stopped and the
# log is kept.
#
# Environment (all optional):
#   VMAN_XEN_BOOT_TIMEOUT  seconds to wait for SSH (300)
#   VMAN_XEN_MEMORY        guest RAM in MiB (3072); VMAN_XEN_DOM0_MEMORY dom0 MiB (1024)
#   VMAN_XEN_SMP           emulated CPUs (2)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
timeout=${VMAN_XEN_BOOT_TIMEOUT:-300}
memory=${VMAN_XEN_MEMORY:-3072}
dom0_memory=${VMAN_XEN_DOM0_MEMORY:-1024}
smp=${VMAN_XEN_SMP:-2}

log() { printf '%s %s\n' "xen-up: $(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
mkdir -p "$1"
state=$(cd "$1" && pwd)
case $state in
  *[[:space:]\'\"\\]*) die "STATE_DIR must not contain spaces or quotes: $state" ;;
esac

# One xen-up at a time per state dir: make test boots the testbed early in the background
# (scripts/stages.sh) and real_xen.sh's own xen-up then waits here and reuses that boot.
# The daemonized QEMU and ssh's ControlPersist master inherit fd 9 and outlive this script, so
# the lock is released explicitly when it ends (LOCK_UN frees it for every holder of the fd).
exec 9>"$state/.up.lock"
flock 9
trap 'flock -u 9 2>/dev/null || true' EXIT

qemu_alive() {
  local pid
  [ -f "$state/qemu.pid" ] || return 1
  pid=$(cat "$state/qemu.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state/qemu.pid"
}

ssh_ok() {
  ssh -F "$state/ssh_config" -o ConnectTimeout=5 testbed true >/dev/null 2>&1
}

if qemu_alive && [ -f "$state/env" ] && ssh_ok; then
  log "already up in $state"
  exit 0
fi

image=$("$here/xen-build.sh" | sed -n 's/^XEN_TESTBED_IMAGE=//p')
if [ -z "$image" ] || [ ! -f "$image/rootfs.raw" ]; then
  die "no image from xen-build.sh"
fi

# A stale QEMU of an earlier failed attempt in this state dir goes first.
"$here/xen-down.sh" "$state" >/dev/null 2>&1 || true

install -m 0600 "$image/id_ed25519" "$state/id_ed25519"
printf 'vman-xen-testbed %s\n' "$(cut -d' ' -f1,2 "$image/host_ed25519.pub")" >"$state/known_hosts"
qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.raw" "$state/overlay.qcow2"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_ssh_config() {
  cat >"$state/ssh_config" <<EOF
Host testbed xen_testbed
  HostName 127.0.0.1
  Port $1
  User root
  IdentityFile $state/id_ed25519
  IdentitiesOnly yes
  HostKeyAlias vman-xen-testbed
  UserKnownHostsFile $state/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 30
  ServerAliveInterval 15
  ServerAliveCountMax 4
  LogLevel ERROR
  # One SSH connection shared by every ssh/scp of the run: a fresh handshake with the TCG dom0
  # took 5.6-9.0 s on a loaded 2-core machine, a multiplexed session 0.2-1.0 s. Short path
  # (sockets are limited to ~100 characters); %C hashes host, port and user.
  ControlMaster auto
  ControlPath /tmp/vman-xen-%C
  ControlPersist 600
EOF
}

start=$(date +%s)
port=
qemu_rc=0
for _attempt in 1 2 3; do
  candidate=$(free_port)
  : >"$state/serial.log"
  # -daemonize returns once QEMU is set up, so a port taken meanwhile fails here, not later.
  if qemu-system-x86_64 -name vman-xen-testbed -accel tcg -cpu qemu64,+svm -smp "$smp" \
    -m "$memory" -machine pc -display none -no-reboot -daemonize \
    -pidfile "$state/qemu.pid" -serial "file:$state/serial.log" \
    -kernel "$image/xen" \
    -append "dom0_mem=${dom0_memory}M,max:${dom0_memory}M dom0_max_vcpus=$smp console=com1 com1=115200,8n1 noreboot" \
    -initrd "$image/vmlinuz root=/dev/vda ro console=hvc0 net.ifnames=0,$image/initrd.img" \
    -drive "file=$state/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$candidate-:22" \
    2>"$state/qemu.err"; then
    port=$candidate
    break
  else
    qemu_rc=$?
  fi
  log "QEMU did not start on port $candidate (exit $qemu_rc): $(tail -n 1 "$state/qemu.err")"
  # Only a port taken meanwhile is worth another try.
  grep -q 'hostfwd\|host forwarding' "$state/qemu.err" || break
done
if [ -z "$port" ]; then
  cat "$state/qemu.err" >&2
  die "QEMU failed to start, exit $qemu_rc (see $state/qemu.err; free memory: $(awk '/MemAvailable/ {print $2 " kB"}' /proc/meminfo))"
fi
write_ssh_config "$port"
log "QEMU pid $(cat "$state/qemu.pid"), ssh port $port, waiting up to ${timeout}s for SSH"

deadline=$(( start + timeout ))
until ssh_ok; do
  if ! qemu_alive; then
    tail -n 40 "$state/serial.log" >&2
    die "QEMU exited during boot (serial log kept: $state/serial.log)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    tail -n 40 "$state/serial.log" >&2
    "$here/xen-down.sh" "$state" >/dev/null 2>&1 || true
    die "no SSH after ${timeout}s (serial log kept: $state/serial.log)"
  fi
  sleep 2
done
boot_seconds=$(( $(date +%s) - start ))

ssh_args="-o IdentitiesOnly=yes -o HostKeyAlias=vman-xen-testbed -o UserKnownHostsFile=$state/known_hosts -o StrictHostKeyChecking=yes -o ServerAliveInterval=15"
cat >"$state/inventory.ini" <<EOF
[xen_hosts]
xen_testbed ansible_host=127.0.0.1 ansible_port=$port ansible_user=root ansible_ssh_private_key_file=$state/id_ed25519 ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='$ssh_args'
EOF
cat >"$state/env" <<EOF
XEN_TESTBED_STATE=$state
XEN_TESTBED_IMAGE=$image
XEN_TESTBED_HOST=127.0.0.1
XEN_TESTBED_PORT=$port
XEN_TESTBED_USER=root
XEN_TESTBED_KEY=$state/id_ed25519
XEN_TESTBED_SSH_CONFIG=$state/ssh_config
XEN_TESTBED_SSH_OPTS="$ssh_args"
XEN_TESTBED_INVENTORY=$state/inventory.ini
XEN_TESTBED_BOOT_SECONDS=$boot_seconds
EOF
log "up in ${boot_seconds}s: ssh -F $state/ssh_config testbed"
