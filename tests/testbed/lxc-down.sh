#!/usr/bin/env bash
# Undo lxc-setup.sh: destroy every container under the testbed lxcpath and remove the bridge.
# The template cache (~/.cache/vman-testbed/lxc) is kept. Same environment as lxc-setup.sh.
set -uo pipefail
lxcpath=${VMAN_LXC_PATH:-/var/lib/vman-testbed/lxc}
bridge=${VMAN_LXC_BRIDGE:-lxcbr1}
if [ $# -gt 0 ]; then
  echo "lxc-down: takes no arguments" >&2; exit 2
fi
if [ -d "$lxcpath" ] && command -v lxc-ls >/dev/null 2>&1; then
  # overlay snapshots first: their origin cannot go while they exist
  for pass in 1 2; do
    for name in $(lxc-ls -P "$lxcpath" -1); do
      lxc-destroy -P "$lxcpath" -n "$name" -f >/dev/null 2>&1 || [ "$pass" = 1 ] ||
        echo "lxc-down: could not destroy $name" >&2
    done
  done
  rmdir "$lxcpath" 2>/dev/null || true
fi
if ip link show "$bridge" >/dev/null 2>&1; then
  ip link del "$bridge"
fi
