#!/usr/bin/env bash
# Undo libvirt-up.sh: remove the vman-snaptest-* domains (with their snapshots and disks) and
# stop the daemons libvirt-up.sh started (by the pids it recorded, nothing else).
set -uo pipefail
case "${1:-}" in --list|--host) echo "{}"; exit 0;; esac
STATE=${VMAN_LIBVIRT_STATE:-/run/vman-libvirt-testbed}
if virsh -c qemu:///system version >/dev/null 2>&1; then
  for d in $(virsh -c qemu:///system list --all --name | grep '^vman-snaptest-' || true); do
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine "$d" --snapshots-metadata >/dev/null 2>&1 || true
  done
fi
rm -rf /var/lib/libvirt/images/vman-snaptest
for p in libvirtd virtlogd; do
  f="$STATE/$p.pid"
  if [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    pid=$(cat "$f")
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
done
rm -f /var/lib/libvirt/boot/vman-snaptest-vmlinuz /var/lib/libvirt/boot/vman-snaptest-initrd.img
# the qemu.conf lines libvirt-up.sh appended (qemu as root)
if [ -f /etc/libvirt/qemu.conf ]; then
  sed -i '/^# vman-testbed: run qemu as root$/,+2d' /etc/libvirt/qemu.conf
fi
