#!/usr/bin/env bash
# Build (once) the Xen host image of the testbed: a Debian 12 dom0 root filesystem made by
# debootstrap from Debian's mirror, plus the Xen hypervisor, the dom0 kernel and initrd, and an
# SSH key pair. Everything lands in a cache directory keyed by a hash of the build scripts:
#   ${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-~/.cache}/vman-testbed}/xen-<hash>/
#     rootfs.raw  xen  vmlinuz  initrd.img  id_ed25519{,.pub}  host_ed25519.pub
#     packages.txt  build-info
# A present cache is reused as is. The build happens in a temporary sibling directory that is
# renamed at the end, so an interrupted build never leaves a half cache. Needs root (debootstrap,
# chroot); installs its host tools with apt-get when they are missing.
#
# Environment (all optional):
#   VMAN_TESTBED_CACHE        cache root (see above)
#   VMAN_DEBIAN_MIRROR        Debian mirror (default: the one apt on this machine uses)
#   VMAN_DEBIAN_SECURITY      Debian security mirror (default: the one apt uses, if any)
#   VMAN_XEN_IMAGE_SIZE       size of the (sparse) root filesystem image (8G)
# Prints one line on stdout: XEN_TESTBED_IMAGE=<cache dir>. Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman-testbed}
image_size=${VMAN_XEN_IMAGE_SIZE:-8G}
suite=bookworm
hostname=xen-testbed
bridge_address=10.200.0.1/24

log() { printf '%s %s\n' "xen-build: $(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

key=$(cat "$here/xen-build.sh" "$here/xen-image-setup.sh" | sha256sum | cut -c1-16)
final=$cache_root/xen-$key

if [ -f "$final/build-info" ]; then
  echo "XEN_TESTBED_IMAGE=$final"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot)"

# ---- host tools ---------------------------------------------------------------------------
missing=()
for tool in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils debootstrap:debootstrap \
  mkfs.ext4:e2fsprogs ssh:openssh-client ssh-keygen:openssh-client flock:util-linux \
  findmnt:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 ||
    PATH=$PATH:/usr/sbin:/sbin command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing host packages: ${missing[*]}"
  apt-get update -q >&2
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
fi
export PATH=$PATH:/usr/sbin:/sbin

# ---- mirrors: the ones apt uses on this machine -------------------------------------------
# First URI of a deb822 or one-line source whose suite matches $1 (exactly).
apt_uri_for_suite() {
  local want=$1 files
  files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  [ -n "$files" ] || return 0
  # shellcheck disable=SC2086
  awk -v want="$want" '
    /^[[:space:]]*#/ { next }
    /^deb[[:space:]]/ {               # one-line format: deb [opts] URI SUITE COMPONENTS
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i+1) == want) { print $i; exit }
      next
    }
    /^URIs:/   { uri = $2 }
    /^Suites:/ { for (j = 2; j <= NF; j++) if ($j == want && uri != "") { print uri; exit } }
    /^[[:space:]]*$/ { uri = "" }
  ' $files
}
mirror=${VMAN_DEBIAN_MIRROR:-$(apt_uri_for_suite "$suite")}
mirror=${mirror:-http://deb.debian.org/debian}
security=${VMAN_DEBIAN_SECURITY-$(apt_uri_for_suite "$suite-security")}
log "mirror $mirror, security ${security:-none}, cache $final"

# ---- build in a temporary directory, renamed at the end -----------------------------------
mkdir -p "$cache_root"
exec 9>"$cache_root/xen-$key.lock"
flock 9
if [ -f "$final/build-info" ]; then   # another build finished while we waited
  echo "XEN_TESTBED_IMAGE=$final"
  exit 0
fi

tmp=$(mktemp -d "$cache_root/.xen-$key.build.XXXXXX")
rootfs=$tmp/rootfs

# Long steps run in their own process group, in the background, so that an interrupt reaches
# the trap at once (bash defers traps while a foreground child runs) and ends the whole step.
child=
run_step() {
  local rc=0
  setsid "$@" &
  child=$!
  wait "$child" || rc=$?
  child=
  return "$rc"
}

unmount_all() {
  local target
  # Deepest first; lazy unmount as a last resort so that rm below never crosses into /dev.
  for target in $(findmnt -rn -o TARGET | grep -F "$rootfs" | sort -r); do
    umount "$target" 2>/dev/null || umount -l "$target" || true
  done
}
cleanup() {
  if [ -n "$child" ]; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  unmount_all
  if findmnt -rn -o TARGET | grep -qF "$rootfs"; then
    log "mounts left under $rootfs, not removing $tmp"
    return
  fi
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
log "debootstrap $suite (minbase + base tools)"
run_step debootstrap --variant=minbase --merged-usr \
  --include=systemd-sysv,udev,dbus,kmod,ifupdown,isc-dhcp-client,iproute2,bridge-utils,openssh-server,python3,ca-certificates,procps,less,netbase,gnupg \
  "$suite" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
  { tail -n 30 "$tmp/debootstrap.log" >&2; [ -f "$rootfs/debootstrap/debootstrap.log" ] &&
    tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2; die "debootstrap failed"; }
t_debootstrap=$(( $(date +%s) - start ))

{
  echo 'Types: deb'
  echo "URIs: $mirror"
  echo "Suites: $suite $suite-updates"
  echo 'Components: main'
  echo 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
  if [ -n "$security" ]; then
    echo
    echo 'Types: deb'
    echo "URIs: $security"
    echo "Suites: $suite-security"
    echo 'Components: main'
    echo 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"
rm -f "$rootfs/etc/apt/sources.list"

# Package scripts in the chroot must not start services.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"

mount -t proc proc "$rootfs/proc"
mount -t sysfs sysfs "$rootfs/sys"
mount --bind /dev "$rootfs/dev"
mount --bind /dev/pts "$rootfs/dev/pts"

log "installing Xen, kernel, dracut, iSCSI, NFS in the chroot"
install -m 0755 "$here/xen-image-setup.sh" "$rootfs/root/xen-image-setup.sh"
run_step chroot "$rootfs" /root/xen-image-setup.sh "$hostname" "$bridge_address" \
  >"$tmp/setup.log" 2>&1 || { tail -n 40 "$tmp/setup.log" >&2; die "chroot setup failed"; }
rm -f "$rootfs/root/xen-image-setup.sh" "$rootfs/usr/sbin/policy-rc.d"
unmount_all
t_setup=$(( $(date +%s) - start - t_debootstrap ))

# ---- boot artefacts and keys --------------------------------------------------------------
kernel=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
[ -n "$kernel" ] || die "no kernel in the image"
kver=${kernel##*/vmlinuz-}
[ -f "$rootfs/boot/initrd.img-$kver" ] || die "no initrd for $kver"
xen_gz=$(find "$rootfs/boot" -maxdepth 1 -name 'xen-4.*-amd64.gz' | sort -V | tail -n 1)
[ -n "$xen_gz" ] || die "no Xen hypervisor in the image"
cp "$kernel" "$tmp/vmlinuz"
cp "$rootfs/boot/initrd.img-$kver" "$tmp/initrd.img"
gunzip -c "$xen_gz" >"$tmp/xen"

ssh-keygen -q -t ed25519 -N '' -C vman-xen-testbed -f "$tmp/id_ed25519"
chmod 0600 "$tmp/id_ed25519"
install -m 0600 "$tmp/id_ed25519.pub" "$rootfs/root/.ssh/authorized_keys"
cp "$rootfs/etc/ssh/ssh_host_ed25519_key.pub" "$tmp/host_ed25519.pub"
mv "$rootfs/root/vman-testbed-packages.txt" "$tmp/packages.txt"

log "making the ext4 image ($image_size, sparse)"
mkfs.ext4 -q -F -L vman-xen-root -d "$rootfs" "$tmp/rootfs.raw" "$image_size" >&2
rm -rf --one-file-system "$rootfs"
t_total=$(( $(date +%s) - start ))

cat >"$tmp/build-info" <<EOF
key=$key
kernel=$kver
xen=${xen_gz##*/}
mirror=$mirror
security=$security
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
seconds_debootstrap=$t_debootstrap
seconds_setup=$t_setup
seconds_total=$t_total
EOF
mv "$tmp" "$final"
trap - EXIT

# Images of earlier versions of these scripts go, unless a QEMU still boots from one.
for old in "$cache_root"/xen-*/; do
  old=${old%/}
  if [ "$old" = "$final" ] || [ ! -f "$old/build-info" ]; then continue; fi
  if grep -qsF "$old/" /proc/[0-9]*/cmdline; then
    log "keeping $old (in use)"
  else
    log "removing old image $old"
    rm -rf --one-file-system "$old"
    rm -f "$old.lock"
  fi
done
log "built in ${t_total}s (debootstrap ${t_debootstrap}s, packages ${t_setup}s)"
echo "XEN_TESTBED_IMAGE=$final"
