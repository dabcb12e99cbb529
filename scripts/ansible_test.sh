#!/usr/bin/env bash
# Run ansible-test on this checkout. ansible-test locates the collection through os.getcwd(),
# which resolves symlinks, so the symlink in build/collections cannot serve it: mirror the
# files git knows (tracked + untracked, minus ignored) into a tree outside the repository (inside
# it, ansible-test would find this repository's .git and see the mirror as ignored) and run there.
# Usage: scripts/ansible_test.sh sanity|units|integration [ansible-test args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VMAN_VENV:-$root/.venv}
mirror=${VMAN_ANSIBLE_TEST_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/vman-ansible-test/$(printf %s "$root" | sha256sum | cut -c1-12)}
dest=$mirror/ansible_collections/vman/lifecycle
bash "$root/scripts/ansible_test_offline.sh" "$venv" >/dev/null
# keep tests/output (ansible-test caches there) and replace the rest
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} + 2>/dev/null || true
find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} + 2>/dev/null || true
mkdir -p "$dest" "$mirror/ansible_collections/community"
ln -sfn "$root/build/collections/ansible_collections/community/libvirt" \
  "$mirror/ansible_collections/community/libvirt"
(cd "$root" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
   [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -xf - -C "$dest"
cd "$dest"
export PATH="$venv/bin:$PATH"
exec ansible-test "$@"
