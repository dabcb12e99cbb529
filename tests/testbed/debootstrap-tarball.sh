#!/usr/bin/env bash
# Build (once) a debootstrap tarball for vm_rootfs tests: `debootstrap --make-tarball` on this
# fast host, so the TCG testbed only runs `--unpack-tarball` (no downloads, no first stage).
# Cached as ${VMAN_TESTBED_CACHE:-~/.cache/vman-testbed}/debootstrap-<suite>-<hash>.tgz, keyed by
# the suite, the variant, the package list and this script. Prints the tarball's path.
#
# Usage: debootstrap-tarball.sh SUITE VARIANT PACKAGES   (PACKAGES comma-separated)
set -euo pipefail

suite=$1
variant=$2
packages=$3
cache_root=${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman-testbed}
mirror=${VMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$( (cat "$here/debootstrap-tarball.sh"; printf '%s\n' "$suite" "$variant" "$packages") |
  sha256sum | cut -c1-16)
final=$cache_root/debootstrap-$suite-$key.tgz

if [ -s "$final" ]; then
  echo "$final"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "debootstrap-tarball: needs root" >&2; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin
command -v debootstrap >/dev/null || {
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
}
mkdir -p "$cache_root"
exec 9>"$final.lock"
flock 9
if [ -s "$final" ]; then
  echo "$final"
  exit 0
fi
work=$(mktemp -d "$cache_root/.debootstrap-XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
debootstrap --variant="$variant" --include="$packages" --make-tarball="$work/out.tgz" \
  "$suite" "$work/root" "$mirror" >&2
mv "$work/out.tgz" "$final"
echo "$final"
