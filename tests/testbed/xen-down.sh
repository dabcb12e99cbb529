#!/usr/bin/env bash
# Stop the Xen testbed booted by xen-up.sh in STATE_DIR: power dom0 off over SSH, wait a short
# while for QEMU to exit, then kill it; remove the overlay and the connection files. The serial
# and QEMU logs (serial.log, qemu.err) are kept. Safe to call twice, or on a state dir whose boot failed.
#
# Usage: xen-down.sh STATE_DIR
# Environment: VMAN_XEN_DOWN_TIMEOUT  seconds to wait for a clean poweroff (60)
set -euo pipefail

timeout=${VMAN_XEN_DOWN_TIMEOUT:-60}
log() { printf '%s %s\n' "xen-down: $(date +%H:%M:%S)" "$*" >&2; }

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
state=$(cd "$1" && pwd)

# The pid file's process, only if it still is our QEMU (pids get reused).
qemu_pid() {
  local pid
  [ -f "$state/qemu.pid" ] || return 1
  pid=$(cat "$state/qemu.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state/qemu.pid" || return 1
  echo "$pid"
}

wait_gone() {   # PID SECONDS
  local end=$(( $(date +%s) + $2 ))
  while [ -d "/proc/$1" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
  [ ! -d "/proc/$1" ]
}

if pid=$(qemu_pid); then
  if [ -f "$state/ssh_config" ]; then
    # --no-block: the SSH session ends before the connection is torn down.
    timeout 15 ssh -F "$state/ssh_config" -o ConnectTimeout=5 testbed \
      systemctl poweroff --no-block >/dev/null 2>&1 || true
  fi
  if wait_gone "$pid" "$timeout"; then
    log "powered off"
  else
    log "no clean poweroff within ${timeout}s, killing QEMU $pid"
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || kill -9 "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || log "QEMU $pid still there"
  fi
fi

# the shared SSH connection (ControlMaster of ssh_config) ends with the testbed
[ ! -f "$state/ssh_config" ] || ssh -F "$state/ssh_config" -O exit testbed >/dev/null 2>&1 || true
rm -f "$state/overlay.qcow2" "$state/qemu.pid" "$state/env" "$state/ssh_config" \
  "$state/inventory.ini" "$state/known_hosts" "$state/id_ed25519"
