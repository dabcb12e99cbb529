#!/usr/bin/env bash
# Build (when the image is missing) and boot the Xen testbed ahead of its stage: started in the
# background by scripts/stages.sh; records `stage real-xen/early-up <seconds>` in
# VMAN_STAGE_LOG. Usage: scripts/xen_early_up.sh STATE_DIR LOG_FILE
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
if VMAN_XEN_BOOT_TIMEOUT=${VMAN_XEN_BOOT_TIMEOUT:-900} bash "$root/tests/testbed/xen-up.sh" "$1" >"$2" 2>&1; then
  result="(in the background)"
else
  result="FAILED (in the background; real-xen boots again, see $2)"
fi
[ -z "${VMAN_STAGE_LOG:-}" ] || echo "stage real-xen/early-up $(( $(date +%s) - start )) $result" >>"$VMAN_STAGE_LOG"
