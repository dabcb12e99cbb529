#!/usr/bin/env bash
# Real-LXC testbed on this machine (no systemd as PID 1, so no lxc-net): install Debian's lxc,
# make a bridge with the gateway address, and create a base container from Debian's template
# whose rootfs download is cached under ~/.cache/vman-testbed/lxc (first run ~2 min, then
# seconds). Idempotent: rerunning only fills in what is missing.
#
# Environment (all optional):
#   VMAN_LXC_PATH     lxcpath for test containers   (/var/lib/vman-testbed/lxc)
#   VMAN_LXC_BRIDGE   bridge name                   (lxcbr1, the collection's default)
#   VMAN_LXC_GATEWAY  bridge address / prefix        (10.5.0.1/16)
#   VMAN_LXC_RELEASE  Debian release of the template (bookworm)
#   VMAN_LXC_BASE     name of the base container     (vman-base)
#   VMAN_TESTBED_CACHE cache root                    (~/.cache/vman-testbed)
# Prints KEY=VALUE lines the tests read (LXC_PATH, BRIDGE, BASE, CACHE, TIMINGS).
set -euo pipefail

lxcpath=${VMAN_LXC_PATH:-/var/lib/vman-testbed/lxc}
bridge=${VMAN_LXC_BRIDGE:-lxcbr1}
gateway=${VMAN_LXC_GATEWAY:-10.5.0.1/16}
release=${VMAN_LXC_RELEASE:-bookworm}
base=${VMAN_LXC_BASE:-vman-base}
cache=${VMAN_TESTBED_CACHE:-$HOME/.cache/vman-testbed}/lxc

log() { printf '%s\n' "lxc-setup: $*" >&2; }

if [ $# -gt 0 ]; then
  log "takes no arguments (configure it through the environment)"; exit 2
fi

if [ "$(id -u)" != 0 ]; then
  log "needs root"; exit 2
fi

missing=()
for tool in lxc-create:lxc debootstrap:debootstrap rsync:rsync; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
# The debian template is in lxc-templates, a Recommends of lxc that --no-install-recommends skips.
[ -x /usr/share/lxc/templates/lxc-debian ] || missing+=(lxc-templates)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
fi

# Bridge with the gateway address; containers get static addresses from the module, so no
# DHCP server is needed.
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add name "$bridge" type bridge
fi
ip link set "$bridge" up
# `replace` is idempotent (a second setup in the same boot must not fail on "already assigned").
ip addr replace "$gateway" dev "$bridge"

mkdir -p "$lxcpath" "$cache"
template_timing=warm
if [ ! -e "$cache/debian/rootfs-$release-amd64" ]; then
  template_timing=cold
fi

if ! lxc-info -P "$lxcpath" -n "$base" >/dev/null 2>&1; then
  start=$(date +%s.%N)
  log "creating $base from the debian template (cache: $cache, $template_timing)"
  LXC_CACHE_PATH=$cache lxc-create -P "$lxcpath" -n "$base" -t debian -- -r "$release" >&2
  end=$(date +%s.%N)
  printf 'TEMPLATE_SECONDS=%s\nTEMPLATE_CACHE=%s\n' "$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')" "$template_timing"
  rootfs=$lxcpath/$base/rootfs
  # LXC configures eth0 from lxc.net.0.ipv4.*; dhclient in the guest would only block boot.
  cat > "$rootfs/etc/network/interfaces" <<'IFACES'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet manual
IFACES
  # The template's default config links to lxcbr0; the module sets the link per container,
  # but the base itself must start too.
  sed -i '/^lxc.net.0.link/d' "$lxcpath/$base/config"
  printf 'lxc.net.0.link = %s\n' "$bridge" >> "$lxcpath/$base/config"
fi

printf 'LXC_PATH=%s\nBRIDGE=%s\nGATEWAY=%s\nBASE=%s\nCACHE=%s\nRELEASE=%s\n' \
  "$lxcpath" "$bridge" "$gateway" "$base" "$cache" "$release"
