#!/usr/bin/env bash
# The main job (see README "Demo").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ANSIBLE_CONFIG="$root/ansible.cfg"
rm -rf build/demo
.venv/bin/ansible-playbook -c local playbooks/xen_domain_demo.yml
