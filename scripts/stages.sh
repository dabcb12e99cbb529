#!/usr/bin/env bash
# Run make targets as the stages of one run, in order, and time each: after every stage and at
# the end (also when a stage failed) print one line per stage, `stage <name> <seconds>`, and a
# total, so every change shows what it costs. Stops at the first failing stage, as make would.
# Nested timings (scripts/real_xen.sh's testbed boot and Xen stages) append to the same log
# through VMAN_STAGE_LOG. Usage: scripts/stages.sh TARGET...
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
[ $# -gt 0 ] || { echo "usage: $0 MAKE_TARGET..." >&2; exit 2; }
mkdir -p build
export VMAN_STAGE_LOG=${VMAN_STAGE_LOG:-$root/build/stages.log}
: >"$VMAN_STAGE_LOG"
run_start=$(date +%s)
failed=""

summary() {
  echo "== stage summary (seconds; nested lines are parts of the stage after them)"
  cat "$VMAN_STAGE_LOG"
  echo "stage total $(( $(date +%s) - run_start ))"
  [ -z "$failed" ] || echo "stage FAILED $failed"
}
trap summary EXIT

for target in "$@"; do
  start=$(date +%s)
  echo "== stage $target: started $(date -u +%H:%M:%S)"
  if ! make --no-print-directory "$target"; then
    failed=$target
    echo "stage $target $(( $(date +%s) - start )) FAILED" >>"$VMAN_STAGE_LOG"
    exit 1
  fi
  echo "stage $target $(( $(date +%s) - start ))" | tee -a "$VMAN_STAGE_LOG"
done
