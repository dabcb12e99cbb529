#!/usr/bin/env bash
# ansible-test bootstraps pip in its venvs with a get-pip script downloaded from a host that is
# not reachable here. It looks in ~/.ansible/test/cache/get_pip_<version>.py first, so put a
# stand-in there: it bootstraps pip with ensurepip and then runs `pip install` with the
# arguments ansible-test passes (minus the get-pip-only flags).
set -euo pipefail
venv=${1:-.venv}
ver=$("$venv/bin/python" -c 'import re,pathlib,ansible_test as a; t=(pathlib.Path(a.__file__).parent/"_internal/python_requirements.py").read_text(); print(re.search(r"pip=.([0-9.]+).", t).group(1))')
cache="$HOME/.ansible/test/cache"
target="$cache/get_pip_${ver//./_}.py"
mkdir -p "$cache"
cat > "$target" <<'PY'
"""Offline stand-in for get-pip.py: ensurepip, then pip install with the given arguments."""
import subprocess
import sys

subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.run([sys.executable, "-m", "pip", "install"] + args).returncode)
PY
echo "ansible-test pip bootstrap stand-in: $target"
