#!/usr/bin/env bash
# Runs INSIDE the chroot of the Xen dom0 image being built by xen-build.sh (never on the host).
# Installs the packages a Xen host of the collection needs and configures the dom0: root SSH
# login by key, eth0 by DHCP, the bridge xenbr0 for domU vifs, /etc/xen/vms, fast shutdown.
#
# Arguments: HOSTNAME BRIDGE_ADDRESS (e.g. xen-testbed 10.200.0.1/24)
set -euo pipefail

hostname=$1
bridge_address=$2

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
apt_install() {
  apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "$@"
}

# The domU initrds built later (xen_initrd) and the dom0's own must be generic: a host-only
# initrd made in this chroot would describe the build machine, not the guest.
mkdir -p /etc/dracut.conf.d
printf '%s\n' '# vman testbed: generic initrds (built in a chroot, booted elsewhere)' \
  'hostonly="no"' >/etc/dracut.conf.d/10-vman-testbed.conf

apt-get update -q
apt-get dist-upgrade -y -q
apt_install \
  linux-image-amd64 dracut dracut-network \
  xen-system-amd64 xen-hypervisor-4.17-amd64 xen-utils-4.17 \
  open-iscsi tgt nfs-kernel-server debootstrap \
  python3-apt sudo rsync xz-utils busybox-static cpio iputils-ping python3-netaddr
apt-get clean
rm -rf /var/lib/apt/lists/*

echo "$hostname" >/etc/hostname
cat >/etc/hosts <<EOF
127.0.0.1 localhost
127.0.1.1 $hostname
::1 localhost ip6-localhost ip6-loopback
EOF

echo '/dev/vda / ext4 errors=remount-ro 0 1' >/etc/fstab

# net.ifnames=0 on the dom0 command line keeps the QEMU NIC named eth0.
cat >/etc/network/interfaces <<EOF
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp

# domU vifs are enslaved here by Xen's vif-bridge script.
auto xenbr0
iface xenbr0 inet static
    address $bridge_address
    bridge_ports none
    bridge_stp off
    bridge_fd 0
EOF

mkdir -p /etc/xen/vms /root/.ssh
chmod 0700 /root/.ssh

cat >/etc/ssh/sshd_config.d/vman-testbed.conf <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF

# A dom0 that is powered off after every test run: never save or restore domains.
if [ -f /etc/default/xendomains ]; then
  sed -i -e 's/^XENDOMAINS_SAVE=.*/XENDOMAINS_SAVE=/' \
    -e 's/^XENDOMAINS_RESTORE=.*/XENDOMAINS_RESTORE=false/' /etc/default/xendomains
fi

# Timers that would only compete for the two emulated CPUs during a test run.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer; do
  systemctl mask "$unit" >/dev/null 2>&1 || true
done

# A tiny PV guest for tests that need a domU fast: the dom0 kernel with this busybox initramfs
# boots in seconds, loads xen-netfront, takes the address given as vman_ip=ADDR/PREFIX on the
# kernel command line (xl's "extra") and idles. Dracut-built initrds are far too big for that.
kver=$(find /lib/modules -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
probe=$(mktemp -d)
mkdir -p "$probe/bin" "$probe/dev" "$probe/proc" "$probe/sys" "$probe/modules"
cp /bin/busybox "$probe/bin/busybox"
cp "$(modinfo -k "$kver" -n xen-netfront)" "$probe/modules/"
cat >"$probe/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in /modules/*.ko; do insmod "$module"; done
for word in $(cat /proc/cmdline); do
  case $word in vman_ip=*) address=${word#vman_ip=} ;; esac
done
ip link set lo up
if [ -n "$address" ]; then
  ip link set eth0 up && ip addr add "$address" dev eth0
fi
echo "vman-probe: up ${address:-without address}"
while :; do sleep 3600; done
INIT
chmod 0755 "$probe/init"
mkdir -p /usr/local/share/vman-testbed
(cd "$probe" && find . | cpio -o -H newc --quiet | gzip -9) \
  >/usr/local/share/vman-testbed/probe-initrd.img
rm -rf "$probe"

# Record what the image carries (read by the build script into the cache).
dpkg-query -W -f '${Package} ${Version}\n' >/root/vman-testbed-packages.txt
