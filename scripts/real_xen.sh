#!/usr/bin/env bash
# Every Xen stage of a run on ONE testbed boot: boot the Xen testbed once (the image is built
# and cached by xen-up.sh when missing), export VMAN_XEN_TESTBED so that pytest fixtures,
# molecule scenarios and playbooks attach to it, run the given make targets in order, and
# power the testbed off at the end whatever happened. The serial log stays in STATE_DIR.
# When VMAN_XEN_TESTBED is already set (a testbed booted by hand), it is used and left running.
# Usage: scripts/real_xen.sh MAKE_TARGET...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -gt 0 ] || { echo "usage: $0 MAKE_TARGET..." >&2; exit 2; }
if [ -z "${VMAN_XEN_TESTBED:-}" ]; then
  state=${VMAN_XEN_STATE_DIR:-$root/build/xen-testbed}
  trap 'bash tests/testbed/xen-down.sh "$state" || true' EXIT
  start=$(date +%s)
  # 40-80 s to SSH on an idle machine; a loaded one (seen: load 12 on 2 cores) took over 300 s.
  VMAN_XEN_BOOT_TIMEOUT=${VMAN_XEN_BOOT_TIMEOUT:-900} bash tests/testbed/xen-up.sh "$state"
  echo "real-xen: testbed up in $(( $(date +%s) - start )) s (build included when the image was missing)"
  [ -z "${VMAN_STAGE_LOG:-}" ] || echo "stage real-xen/testbed-up $(( $(date +%s) - start ))" >>"$VMAN_STAGE_LOG"
  export VMAN_XEN_TESTBED=$state
fi
for target in "$@"; do
  start=$(date +%s)
  rc=0
  make --no-print-directory "$target" || rc=$?
  echo "real-xen: $target took $(( $(date +%s) - start )) s"
  [ -z "${VMAN_STAGE_LOG:-}" ] || echo "stage real-xen/$target $(( $(date +%s) - start ))$([ "$rc" -eq 0 ] || echo " FAILED")" >>"$VMAN_STAGE_LOG"
  [ "$rc" -eq 0 ] || exit "$rc"
done
