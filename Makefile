# vman.lifecycle: the two commands a fresh Debian 12 machine needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST ?= $(VENV)/bin/pytest
ANSIBLE_TEST_PY ?= 3.11

.PHONY: help deps venv lint sanity units integration newest-core real real-store real-keys real-lxc real-libvirt real-xen real-rootfs molecule-xen test demo bench changelog clean

help:
	@echo "make demo   - the main job (see README)"
	@echo "make test   - everything CI runs: lint, sanity, unit, integration, real components"
	@echo "make bench  - benchmarks under tests/bench/"

deps:
	bash scripts/apt_deps.sh

venv: deps
	bash scripts/venv.sh

lint: venv
	ansible-lint --profile production --offline

sanity: venv
	bash scripts/ansible_test.sh sanity --local --python $(ANSIBLE_TEST_PY) --color no

units: venv
	$(PYTEST) -q tests/unit -m "not real" -p no:xdist

integration: venv
	bash scripts/ansible_test.sh integration --local --python $(ANSIBLE_TEST_PY) --color no --allow-destructive

# Unit tests + the xen_domain target under the newest ansible-core (Python 3.12+, when present).
newest-core: venv
	bash scripts/newest_core.sh

# Tests against real components: each fixture installs what it needs (apt-get), starts the
# daemon or guest by hand, and stops it at the end.
real: real-store real-keys real-lxc real-libvirt real-xen real-rootfs

real-store: venv
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__store.py

# ssh-keygen for keys/SSHFP, a private BIND (named on 127.0.0.1) for the RFC 2136 updates
real-keys: venv
	bash scripts/apt_deps.sh bind9 openssh-client
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__sshkeys.py tests/unit/plugins/modules/test_ssh_host_keys.py

real-lxc: venv
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__lxc.py tests/unit/plugins/modules/test_lxc_guest.py

real-libvirt: venv
	$(PYTEST) -q -m real tests/unit/plugins/modules/test_vm_snapshot_real.py

# One Xen testbed boot shared by every Xen test of the run (image built once and cached).
real-xen: venv
	$(PYTEST) -q -m real tests/testbed/

# vm_rootfs with the real debootstrap (--unpack-tarball of a tarball made once and cached in
# ~/.cache/vman-testbed/) into a temporary directory on this machine
real-rootfs: venv
	$(PYTEST) -q -m real -p no:xdist tests/unit/plugins/modules/test_vm_rootfs.py

# The xen_vman role on the Xen testbed (molecule/xen_vman): boots a testbed, or only attaches to
# the one booted earlier when VMAN_XEN_TESTBED names its state directory.
molecule-xen: venv
	VMAN_MOLECULE_PYTHON=$(CURDIR)/$(VENV)/bin/python $(VENV)/bin/molecule test -s xen_vman

test: lint sanity units integration newest-core real
	@echo "make test: all stages passed"

demo: venv
	bash scripts/demo.sh

bench: venv
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b; done

changelog: venv
	antsibull-changelog release

clean:
	rm -rf build tests/output
