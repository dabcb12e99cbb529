#!/usr/bin/env bash
# Build (once) a finished Debian root filesystem image for vm_rootfs's `image` option: a full
# debootstrap on this fast host, packed as an uncompressed tar with numeric owners (the TCG
# testbed would spend minutes in gunzip and hours in debootstrap's second stage).
# Cached as ${VMAN_TESTBED_CACHE:-~/.cache/vman-testbed}/rootfs-<suite>-<hash>.tar, keyed by the
# suite, the variant, the package list and this script. Prints the image's path.
#
# Usage: rootfs-image.sh SUITE VARIANT PACKAGES   (PACKAGES comma-separated)
set -euo pipefail

suite=$1
variant=$2
packages=$3
cache_root=${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman-testbed}
mirror=${VMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$( (cat "$here/rootfs-image.sh"; printf '%s\n' "$suite" "$variant" "$packages") |
  sha256sum | cut -c1-16)
final=$cache_root/rootfs-$suite-$key.tar

if [ -s "$final" ]; then
  echo "$final"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "rootfs-image: needs root" >&2; exit 1; }
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
work=$(mktemp -d "$cache_root/.rootfs-XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
debootstrap --variant="$variant" --include="$packages" "$suite" "$work/root" "$mirror" >&2
# what an image should not carry: downloaded packages, package lists, this host's machine id,
# SSH host keys (every VM would share them; vm_rootfs makes each root its own)
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
rm -f "$work/root/etc/ssh/ssh_host_"*
: >"$work/root/etc/machine-id"
tar --create --file="$work/out.tar" --directory="$work/root" --numeric-owner --acls --xattrs \
  --xattrs-include='*' .
mv "$work/out.tar" "$final"
echo "$final"
