#!/usr/bin/env bash
# Run the unit tests and the xen_domain integration playbook under one ansible-core release:
#   scripts/core_tests.sh <label> <pip requirement>   e.g.  core-2.17 'ansible-core==2.17.*'
# in a venv cached outside the checkout (a fresh clone reuses it), keyed by the requirement,
# requirements.txt, this script and the interpreter; a miss builds a new one and removes older
# venvs of the same label. The interpreter is the first Python 3.12/3.13 found (PATH or pyenv),
# in the order of VMAN_CORE_PYTHONS. With none (stock
# Debian 12), say so and succeed: the baseline venv's run has happened already.
set -euo pipefail
label=${1:?label}
req=${2:?pip requirement}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=""
# VMAN_CORE_PYTHONS: the versions to look for, in order (2.17 and 2.18 run on 3.12, not 3.13)
cands=()
for v in ${VMAN_CORE_PYTHONS:-3.12 3.13}; do cands+=("python$v"); done
for v in ${VMAN_CORE_PYTHONS:-3.12 3.13}; do cands+=("$HOME"/.pyenv/versions/"$v"*/bin/python3); done
for cand in "${cands[@]}"; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    py=$(command -v "$cand"); break
  fi
done
if [ -z "$py" ]; then
  echo "$label: no Python 3.12+ on this machine, stage skipped"
  exit 0
fi
stamp=$( (echo "$req"; cat requirements.txt scripts/core_tests.sh; "$py" -VV) | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vman-venvs
venv=$cache/$label-$stamp
mkdir -p "$cache"
find "$cache" -maxdepth 1 -name "$label-*" ! -name "$label-$stamp" -exec rm -rf {} +
if [ "$(cat "$venv/.vman-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "$req" pytest pytest-xdist hypothesis -r requirements.txt
  echo "$stamp" > "$venv/.vman-stamp"
fi
# the version from the package: `ansible --version | head -n1` died of a broken pipe (rc 250)
# when head closed the pipe first under pipefail
"$venv/bin/python" -c 'import ansible.release as r; print("ansible-core", r.__version__)'
# VMAN_CORE_TESTS narrows the test paths (default: every unit and compat test)
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest -q ${VMAN_CORE_TESTS:-tests/unit tests/compat} -m "not real" -n "${VMAN_TEST_WORKERS:-auto}"
ANSIBLE_CONFIG="$root/ansible.cfg" "$venv/bin/ansible-playbook" -i localhost, -c local \
  -e "ansible_python_interpreter=$venv/bin/python" tests/integration/newest_core.yml
