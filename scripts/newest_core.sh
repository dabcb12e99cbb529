#!/usr/bin/env bash
# Run the unit tests and the xen_domain integration playbook under the newest ansible-core
# (Python 3.13 preferred, 3.12 else; with neither the stage says so and succeeds): the same run
# as make older-cores, in its own cached venv (scripts/core_tests.sh).
set -euo pipefail
VMAN_CORE_PYTHONS="3.13 3.12" exec bash "$(dirname "$0")/core_tests.sh" newest-core ansible-core
