#!/usr/bin/env bash
# Bring up a real libvirt (qemu:///system) on this machine for the vm_snapshot tests, and build
# the guest boot files: a Debian cloud kernel and a busybox initramfs whose init loads virtio_blk
# and serves a shell on ttyS0 (the tests reach it through a unix-socket serial port).
# PID 1 is not systemd here, so the daemons are started by hand; their pids go to $STATE.
# Prints "key=value" lines (kernel, initrd, timings) on stdout; idempotent.
set -euo pipefail
# Never act when run as an inventory script (ansible passes --list to executable files).
case "${1:-}" in --list|--host) echo "{}"; exit 0;; esac
STATE=${VMAN_LIBVIRT_STATE:-/run/vman-libvirt-testbed}
BOOT=/var/lib/libvirt/boot
here=$(cd "$(dirname "$0")" && pwd)
key=$(sha256sum "$here/libvirt-up.sh" | cut -c1-12)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vman-testbed/libvirt-$key
mkdir -p "$STATE" "$CACHE"
log() { echo "libvirt-up: $*" >&2; }

# ---- packages ---------------------------------------------------------------------------------
need=()
command -v libvirtd >/dev/null || need+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod || need+=(busybox-static)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cpio >/dev/null || need+=(cpio)
[ -e /usr/include/libvirt/libvirt.h ] || need+=(libvirt-dev)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >&2
fi

# ---- guest boot files (cached) -----------------------------------------------------------------
if [ ! -s "$CACHE/vmlinuz" ] || [ ! -s "$CACHE/initrd.img" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  deb=$(find /var/cache/apt/archives -maxdepth 1 -name 'linux-image-*-cloud-amd64_*.deb' | sort -V | tail -1)
  if [ -z "$deb" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    (cd "$work" && apt-get download "$pkg" >&2)
    deb=$(find "$work" -maxdepth 1 -name 'linux-image-*.deb' | head -1)
  fi
  log "kernel from $deb"
  dpkg-deb -x "$deb" "$work/k"
  cp "$work"/k/boot/vmlinuz-* "$CACHE/vmlinuz"
  root="$work/initramfs"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
    f=$(find "$work/k/lib/modules" -name "$m.ko" | head -1)
    [ -n "$f" ] && cp "$f" "$root/lib/modules/"
  done
  cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
echo 1 > /proc/sys/kernel/printk
while true; do
  echo VMAN-GUEST-READY > /dev/ttyS0
  setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
done
INIT
  chmod 755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$CACHE/initrd.img"
  rm -rf "$work"; trap - EXIT
fi
mkdir -p "$BOOT"
install -m 0644 "$CACHE/vmlinuz" "$BOOT/vman-snaptest-vmlinuz"
install -m 0644 "$CACHE/initrd.img" "$BOOT/vman-snaptest-initrd.img"

# ---- daemons ------------------------------------------------------------------------------------
# /dev/kvm here is root-only (0600, no udev): libvirt probes QEMU with KVM enabled, then finds
# KVM "not available" to the libvirt-qemu user and throws its capability cache away on every
# call (defineXML took 32 s). The guests are TCG (type='qemu') anyway; running QEMU as root
# keeps the cache valid.
if ! grep -q '^# vman-testbed: run qemu as root' /etc/libvirt/qemu.conf; then
  printf '\n# vman-testbed: run qemu as root\nuser = "root"\ngroup = "root"\n' >> /etc/libvirt/qemu.conf
fi
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
t0=$(date +%s.%N)
if ! alive "$STATE/virtlogd.pid"; then
  virtlogd -d -p "$STATE/virtlogd.pid"
fi
if ! alive "$STATE/libvirtd.pid"; then
  libvirtd -d -p "$STATE/libvirtd.pid" >>"$STATE/libvirtd.log" 2>&1
fi
for _ in $(seq 1 240); do
  if virsh -c qemu:///system version >/dev/null 2>&1; then break; fi
  sleep 0.25
done
virsh -c qemu:///system version >/dev/null
t1=$(date +%s.%N)
echo "kernel=$BOOT/vman-snaptest-vmlinuz"
echo "initrd=$BOOT/vman-snaptest-initrd.img"
echo "daemon_ready_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
