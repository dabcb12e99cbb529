#!/usr/bin/env bash
# Create .venv (Debian 12's Python 3.11 or the first python3 found), install the pinned
# requirements, and build build/collections/ with vman.lifecycle (a symlink to this checkout)
# and community.libvirt (extracted from PyPI's `ansible` bundle: ansible-galaxy cannot reach
# Galaxy here). Idempotent: a stamp keyed by the requirement files skips repeat work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${VMAN_PYTHON:-python3}
venv=${VMAN_VENV:-.venv}
bundle=ansible==12.3.0   # bundles community.libvirt; matches ansible-core 2.19
stamp_key=$(cat requirements.txt requirements-dev.txt scripts/venv.sh | sha256sum | cut -c1-16)

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
if [ "$(cat "$venv/.vman-stamp" 2>/dev/null)" != "$stamp_key" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r requirements.txt -r requirements-dev.txt
  echo "$stamp_key" > "$venv/.vman-stamp"
fi

coll=build/collections/ansible_collections
mkdir -p "$coll/vman"
ln -sfn ../../../.. "$coll/vman/lifecycle"
if [ ! -f "$coll/community/libvirt/MANIFEST.json" ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/vman-pip
  mkdir -p "$cache"
  whl=$(find "$cache" -maxdepth 1 -name 'ansible-12.3.0-*.whl' | head -n1)
  if [ -z "$whl" ]; then
    "$venv/bin/python" -m pip download -q --no-deps -d "$cache" "$bundle"
    whl=$(find "$cache" -maxdepth 1 -name 'ansible-12.3.0-*.whl' | head -n1)
  fi
  "$venv/bin/python" - "$whl" "$coll" <<'PY'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/community/libvirt/"
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.startswith(prefix)]
    for m in members:
        z.extract(m, dest.rsplit("ansible_collections", 1)[0] or ".")
print(f"extracted community.libvirt ({len(members)} files)")
PY
fi
