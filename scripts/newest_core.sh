#!/usr/bin/env bash
# Run the unit tests and the xen_domain integration playbook under the newest ansible-core,
# which needs Python 3.12+. Uses the first python3.13/python3.12 found (PATH or pyenv); when
# none exists (stock Debian 12), say so and succeed: the 2.19 baseline has run already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=""
for cand in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    py=$(command -v "$cand"); break
  fi
done
if [ -z "$py" ]; then
  echo "newest ansible-core: no Python 3.12+ on this machine, stage skipped"
  exit 0
fi
# Cached outside the checkout (a fresh clone reuses it), keyed by the requirements, this script
# and the interpreter; a miss builds a new one. Older ones of this kind are removed.
stamp=$( (cat requirements.txt scripts/newest_core.sh; "$py" -VV) | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vman-venvs
venv=$cache/newest-core-$stamp
mkdir -p "$cache"
find "$cache" -maxdepth 1 -name 'newest-core-*' ! -name "newest-core-$stamp" -exec rm -rf {} +
if [ "$(cat "$venv/.vman-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q ansible-core pytest pytest-xdist hypothesis -r requirements.txt
  echo "$stamp" > "$venv/.vman-stamp"
fi
# the version from the package: `ansible --version | head -n1` died of a broken pipe (rc 250)
# when head closed the pipe first under pipefail
"$venv/bin/python" -c 'import ansible.release as r; print("ansible-core", r.__version__)'
"$venv/bin/python" -m pytest -q tests/unit tests/compat -m "not real" -n "${VMAN_TEST_WORKERS:-auto}"
ANSIBLE_CONFIG="$root/ansible.cfg" "$venv/bin/ansible-playbook" -i localhost, -c local \
  -e "ansible_python_interpreter=$venv/bin/python" tests/integration/newest_core.yml
