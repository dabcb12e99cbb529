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

# The Xen testbed (image build on a fresh machine: ~4 min, mostly downloads; boot ~2 min) is
# started in the background when the run has a real-xen stage, so that it is ready when that
# stage comes; real_xen.sh's xen-up waits for it (a lock) and reuses it. VMAN_XEN_EARLY=0 turns
# this off; a testbed given by VMAN_XEN_TESTBED is never touched.
xen_state=${VMAN_XEN_STATE_DIR:-$root/build/xen-testbed}
early_pid=""
if [ "${VMAN_XEN_EARLY:-1}" = 1 ] && [ -z "${VMAN_XEN_TESTBED:-}" ] && [[ " $* " == *" real-xen "* ]]; then
  # its own process group, so that a run that ends early can stop all of it (build included)
  setsid bash scripts/xen_early_up.sh "$xen_state" "$root/build/xen-up-early.log" &
  early_pid=$!
  echo "== Xen testbed: building/booting in the background (build/xen-up-early.log)"
fi

finish() {
  if [ -n "$early_pid" ]; then
    # a failed or interrupted run must not leave the background QEMU behind
    kill -TERM -- "-$early_pid" 2>/dev/null || true
    wait "$early_pid" 2>/dev/null || true
    bash tests/testbed/xen-down.sh "$xen_state" >/dev/null 2>&1 || true
  fi
  summary
}
trap finish EXIT

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
