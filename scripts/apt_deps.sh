#!/usr/bin/env bash
# Install the Debian packages the tests need, only those missing (one apt-get update at most).
# Usage: scripts/apt_deps.sh [package ...]   (default: the base set below)
set -euo pipefail
base=(shellcheck git python3-venv python3-dev gcc pkg-config libvirt-dev openssh-client)
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=("${base[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "apt-get install: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
