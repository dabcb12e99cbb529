#!/usr/bin/env bash
# Build (once) the tiny libvirt guest of the guest_provision / kvm_provision tests: a Debian 12
# root made by debootstrap (minbase + python3 + qemu-guest-agent + the cloud kernel), booted by
# direct kernel boot with its own PID 1 (no systemd: it mounts, starts qemu-ga and reaps).
# Ansible reaches it through the community.libvirt.libvirt_qemu connection (the guest agent),
# so the guest needs no network, no sshd and no keys.
#   ${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-~/.cache}/vman-testbed}/gp-guest-<hash>/
#     vmlinuz  initrd.img  root.qcow2  build-info
# The cache key is a hash of the image part of this script (below the "image recipe" line), so
# changes to the host-tool set-up do not rebuild; a present cache is reused as is. The build runs in a
# temporary sibling directory renamed at the end (an interrupted build leaves no half cache).
# Prints "GP_GUEST_IMAGE=<dir>" on stdout; progress on stderr. Needs root.
set -euo pipefail
case "${1:-}" in --list|--host) echo "{}"; exit 0;; esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${VMAN_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vman-testbed}
key=$(sed -n '/^# ---- image recipe/,$p' "$here/gp-guest-build.sh" | sha256sum | cut -c1-16)
final=$cache_root/gp-guest-$key
log() { printf '%s %s\n' "gp-guest-build: $(date +%H:%M:%S)" "$*" >&2; }

if [ -f "$final/build-info" ]; then
  echo "GP_GUEST_IMAGE=$final"
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot)"; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
      --no-install-recommends "$@" >&2
  }
  # a fresh machine may have no package lists yet
  apt_install "${missing[@]}" || { apt-get -o DPkg::Lock::Timeout=600 update -q >&2 && apt_install "${missing[@]}"; }
fi

# the mirror apt uses here (deb822 or one-line sources), else Debian's
mirror=${VMAN_DEBIAN_MIRROR:-$( (cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) |
  awk '/^URIs:/ {print $2; exit} /^deb[[:space:]]+http/ {print $2; exit}')}
mirror=${mirror:-http://deb.debian.org/debian}

# ---- image recipe (everything below is hashed into the cache key) -------------------------------
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/.gp-guest-build.XXXXXX")
cleanup() {
  for m in proc sys dev; do
    mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
t0=$(date +%s)
log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,qemu-guest-agent,kmod,linux-image-cloud-amd64,initramfs-tools \
  bookworm "$root" "$mirror" >&2

# The initramfs has no udev (minbase): load the root disk's drivers explicitly, and only them
# (MODULES=list: a small initrd unpacks faster under TCG).
printf '%s\n' virtio_pci virtio_blk crc32c_generic ext4 >> "$root/etc/initramfs-tools/modules"
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
mount -t proc proc "$root/proc"
chroot "$root" update-initramfs -u -k all >&2
umount "$root/proc"

cat > "$root/sbin/vman-init" <<'INIT'
#!/bin/bash
# PID 1 of the test guest: mount, start the guest agent, reap children.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mount -o remount,rw /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/pts /run/lock && mount -t devpts devpts /dev/pts
hostname "$(cat /etc/hostname)"
modprobe virtio_console
port=
for _ in $(seq 1 100); do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/$(basename "$p")
  done
  [ -n "$port" ] && [ -e "$port" ] && break
  sleep 0.1
done
echo "vman-init: guest agent on $port" > /dev/console
qemu-ga --method=virtio-serial --path="$port" --daemonize --pidfile=/run/qemu-ga.pid
echo "VMAN-GP-GUEST-READY" > /dev/console
trap '' TERM INT
while true; do wait; sleep 1; done
INIT
chmod 0755 "$root/sbin/vman-init"

# qemu-ga's guest-shutdown runs /sbin/shutdown and waits for it. Like systemd's, this one only
# schedules the power-off and returns, so the agent answers before the guest goes away.
rm -f "$root/sbin/shutdown"
cat > "$root/sbin/shutdown" <<'SHUT'
#!/bin/sh
case " $* " in
  *" -r "*) action=b ;;
  *) action=o ;;
esac
( sleep 1; sync; mount -o remount,ro / 2>/dev/null; echo $action > /proc/sysrq-trigger ) \
  </dev/null >/dev/null 2>&1 &
exit 0
SHUT
chmod 0755 "$root/sbin/shutdown"
echo gp-guest > "$root/etc/hostname"
printf '/dev/vda / ext4 defaults 0 1\n' > "$root/etc/fstab"

mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
rm -rf "${root:?}"/boot/* "${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/var/lib/apt/lists/*
rm -rf "${root:?}"/usr/share/doc/* "${root:?}"/usr/share/man/* "${root:?}"/usr/share/locale/*
log "filesystem image"
mkfs.ext4 -q -L gp-root -d "$root" "$work/root.raw" 1G >&2
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$work/out/root.qcow2"
chmod 0644 "$work/out/"*
{
  echo "built=$(date -u +%FT%TZ)"
  echo "mirror=$mirror"
  echo "seconds=$(( $(date +%s) - t0 ))"
  echo "kernel=$(ls "$root/lib/modules")"
} > "$work/out/build-info"
rm -rf "$final"
mv "$work/out" "$final"
# older builds of this script (other hashes) are of no use any more
for old in "$cache_root"/gp-guest-*; do
  [ "$old" = "$final" ] || rm -rf "$old"
done
log "built $final in $(( $(date +%s) - t0 )) s"
echo "GP_GUEST_IMAGE=$final"
