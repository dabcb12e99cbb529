#!/usr/bin/env bash
# Runs INSIDE the Xen testbed's dom0 (copied there by molecule/xen_vman): builds a small busybox
# initramfs that boots a PV domU from an NFS root with the dom0 kernel. It reads the kernel
# command line that xen_domain generates for NFS roots:
#   root=/dev/nfs nfsroot=SERVER:/PATH ip=ADDR::GW:MASK:HOST:eth0:off
# brings eth0 up, mounts the export (NFSv3, no locking) and switches to its /sbin/init.
# dracut builds the real initrds (xen_initrd) but takes ~15 min under TCG; this takes seconds.
#
# Usage: nfsroot-initrd.sh OUTPUT
set -euo pipefail

out=$1
kver=$(uname -r)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/dev" "$work/proc" "$work/sys" "$work/newroot" "$work/modules"
cp /bin/busybox "$work/bin/busybox"

# modules in load order, dependencies first (e.g. sunrpc, grace, lockd before nfs)
: >"$work/modules/order"
for module in xen-netfront nfsv3; do
  modprobe -S "$kver" --show-depends "$module" | awk '$1 == "insmod" {print $2}' |
    while read -r path; do
      name=$(basename "$path")
      if ! grep -qx "$name" "$work/modules/order"; then
        cp "$path" "$work/modules/$name"
        echo "$name" >>"$work/modules/order"
      fi
    done
done

cat >"$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r module; do insmod "/modules/$module" || echo "nfsroot-initrd: insmod $module failed"; done </modules/order
nfsroot= ipconf=
for word in $(cat /proc/cmdline); do
  case $word in
    nfsroot=*) nfsroot=${word#nfsroot=} ;;
    ip=*) ipconf=${word#ip=} ;;
  esac
done
IFS=: read -r address _peer gateway netmask _host _dev _auto <<EOF2
$ipconf
EOF2
ip link set lo up
n=0
until [ -e /sys/class/net/eth0 ] || [ "$n" -ge 50 ]; do sleep 0.2; n=$((n + 1)); done
ifconfig eth0 "$address" netmask "$netmask" up
[ -n "$gateway" ] && route add default gw "$gateway"
server=${nfsroot%%:*}
echo "nfsroot-initrd: eth0 $address, mounting $nfsroot"
if mount -t nfs -o "nolock,vers=3,addr=$server" "$nfsroot" /newroot; then
  umount /proc /sys
  mount --move /dev /newroot/dev 2>/dev/null || umount /dev
  exec switch_root /newroot /sbin/init
fi
echo "nfsroot-initrd: mounting $nfsroot failed"
while :; do sleep 3600; done
INIT
chmod 0755 "$work/init"
mkdir -p "$(dirname "$out")"
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
