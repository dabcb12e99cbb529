#!/usr/bin/env bash
# Build (once) a Debian artefact for vm_rootfs on this fast host, so the TCG testbed neither
# downloads nor runs debootstrap's slow stages:
#   tarball  `debootstrap --make-tarball`: the packages, for vm_rootfs's `tarball` option
#            (`--unpack-tarball`; the second stage still runs where the root is installed)
#   rootfs   a finished root filesystem (full debootstrap here), packed as an uncompressed tar
#            with numeric owners, for vm_rootfs's `image` option; without the downloaded
#            packages, the package lists, the machine id and the SSH host keys (every VM would
#            share them; vm_rootfs makes each root its own)
# Cached in ${VMAN_TESTBED_CACHE:-~/.cache/vman-testbed}/, keyed by the kind, the suite, the
# variant, the package list and this script. Prints the artefact's path.
#
# Usage: debian-cache.sh tarball|rootfs SUITE VARIANT PACKAGES   (PACKAGES comma-separated)
set -euo pipefail

kind=$1
suite=$2
variant=$3
packages=$4
case $kind in
  tarball) suffix=tgz ;;
  rootfs) suffix=tar ;;
  *) echo "debian-cache: unknown kind '$kind' (tarball or rootfs)" >&2; exit 2 ;;
esac
cache_root=${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman-testbed}
mirror=${VMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$( (cat "$here/debian-cache.sh"; printf '%s\n' "$kind" "$suite" "$variant" "$packages") |
  sha256sum | cut -c1-16)
final=$cache_root/$kind-$suite-$key.$suffix

if [ -s "$final" ]; then
  echo "$final"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "debian-cache: needs root" >&2; exit 1; }
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
work=$(mktemp -d "$cache_root/.$kind-XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
if [ "$kind" = tarball ]; then
  debootstrap --variant="$variant" --include="$packages" --make-tarball="$work/out" \
    "$suite" "$work/root" "$mirror" >&2
else
  debootstrap --variant="$variant" --include="$packages" "$suite" "$work/root" "$mirror" >&2
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  rm -f "$work/root/etc/ssh/ssh_host_"*
  : >"$work/root/etc/machine-id"
  tar --create --file="$work/out" --directory="$work/root" --numeric-owner --acls --xattrs \
    --xattrs-include='*' .
fi
mv "$work/out" "$final"
echo "$final"
