#!/usr/bin/env bash
# Base container of the lifecycle playbooks' LXC guests: lxc-setup.sh's Debian container
# (vman-base) copied as a dir container plus python3 (for Ansible's modules over SSH) and
# openssh-server, installed in a chroot from Debian's mirror. The .debs and package lists are
# cached under ~/.cache/vman-testbed/lxc-lifecycle-apt, so a rebuild downloads nothing new.
# Idempotent; run lxc-setup.sh first. Same environment as lxc-setup.sh, plus
#   VMAN_LIFECYCLE_BASE  name of the container made here (vman-lifecycle-base)
# Prints LIFECYCLE_BASE=<name> and LIFECYCLE_BASE_SECONDS=<time taken>.
set -euo pipefail
lxcpath=${VMAN_LXC_PATH:-/var/lib/vman-testbed/lxc}
base=${VMAN_LXC_BASE:-vman-base}
name=${VMAN_LIFECYCLE_BASE:-vman-lifecycle-base}
cache=${VMAN_TESTBED_CACHE:-$HOME/.cache/vman-testbed}/lxc-lifecycle-apt
packages=(python3 openssh-server)

log() { printf '%s\n' "lxc-lifecycle-base: $*" >&2; }

[ $# -eq 0 ] || { log "takes no arguments"; exit 2; }
[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
release=${VMAN_LXC_RELEASE:-bookworm}
mirror=${VMAN_LXC_MIRROR:-http://deb.debian.org/debian}
marker=etc/vman-lifecycle-base.done
start=$(date +%s.%N)
if lxc-info -P "$lxcpath" -n "$name" >/dev/null 2>&1 && [ ! -e "$lxcpath/$name/rootfs/$marker" ]; then
  log "removing the unfinished $name of an interrupted run"
  lxc-destroy -P "$lxcpath" -n "$name" -f >&2
fi
if ! lxc-info -P "$lxcpath" -n "$name" >/dev/null 2>&1; then
  lxc-info -P "$lxcpath" -n "$base" >/dev/null 2>&1 || { log "no $base under $lxcpath: run lxc-setup.sh"; exit 2; }
  log "copying $base to $name"
  lxc-copy -P "$lxcpath" -n "$base" -N "$name" -B dir >&2
  rootfs=$lxcpath/$name/rootfs
  mkdir -p "$cache/archives/partial" "$cache/lists/partial"
  mounts=()
  cleanup() {
    local m
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
    rm -f "$rootfs/usr/sbin/policy-rc.d"
  }
  trap cleanup EXIT
  for pair in "archives:var/cache/apt/archives" "lists:var/lib/apt/lists"; do
    mkdir -p "$rootfs/${pair#*:}"
    mount --bind "$cache/${pair%%:*}" "$rootfs/${pair#*:}"
    mounts+=("$rootfs/${pair#*:}")
  done
  mount -t proc proc "$rootfs/proc"
  mounts+=("$rootfs/proc")
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # the template's security line (bookworm/updates) does not exist for bookworm; the main
  # archive is all the guests need
  printf 'deb %s %s main\n' "$mirror" "$release" > "$rootfs/etc/apt/sources.list"
  # no daemon may start inside the chroot
  printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get -q update >&2
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get -q -y install --no-install-recommends "${packages[@]}" >&2
  cleanup
  trap - EXIT
  touch "$rootfs/$marker"
fi
end=$(date +%s.%N)
printf 'LIFECYCLE_BASE=%s\nLIFECYCLE_BASE_SECONDS=%s\n' "$name" \
  "$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')"
