# vman.lifecycle: the two commands a fresh Debian 12 machine needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST ?= $(VENV)/bin/pytest
ANSIBLE_TEST_PY ?= 3.11

.PHONY: help deps venv lint sanity units integration newest-core older-cores installed real real-store real-keys real-lxc real-libvirt real-xen xen-pytest real-requests test demo bench changelog clean real-lifecycle molecule-lxc real-guest-provision molecule-xen real-requests-xen real-rootfs xen-lxc-lvm lifecycle-xen

help:
	@echo "make demo   - the main job (see docs/development.md)"
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

# pytest-xdist over the machine's cores (VMAN_TEST_WORKERS=0 runs them in one process)
VMAN_TEST_WORKERS ?= auto
units: venv
	$(PYTEST) -q tests/unit tests/compat -m "not real" -n $(VMAN_TEST_WORKERS)

integration: venv
	bash scripts/ansible_test.sh integration --local --python $(ANSIBLE_TEST_PY) --color no --allow-destructive

# Unit tests + the xen_domain target under the newest ansible-core (Python 3.12+, when present).
newest-core: venv
	bash scripts/newest_core.sh

# The oldest ansible-cores meta/runtime.yml claims (requires_ansible >=2.17.0): the xen_domain
# target and the tests that run ansible-core itself (modules, roles, filters, the inventory, the
# EXAMPLES, the originals' compat fixtures) under 2.17 and 2.18, each in its cached venv
# (scripts/core_tests.sh). The module_utils tests (pure Python, the long property suites) run
# under the baseline and the newest core only: they exercise this collection's Python, not ansible-core.
CORE_TESTS ?= tests/unit/roles tests/unit/plugins/inventory tests/unit/plugins/modules \
  tests/unit/plugins/filter tests/unit/test_module_examples.py tests/compat
older-cores: venv
	VMAN_CORE_TESTS="$(CORE_TESTS)" bash scripts/core_tests.sh core-2.17 'ansible-core==2.17.*'
	VMAN_CORE_TESTS="$(CORE_TESTS)" bash scripts/core_tests.sh core-2.18 'ansible-core==2.18.*'

# The user's install path: the built tarball installed into an empty collections path, used from
# a project directory without this repository's ansible.cfg (scripts/installed_collection.sh).
installed: venv
	VMAN_VENV=$(abspath $(VENV)) bash scripts/installed_collection.sh

# Tests against real components: each fixture installs what it needs (apt-get), starts the
# daemon or guest by hand, and stops it at the end.
real: real-store real-keys real-lxc molecule-lxc real-requests real-lifecycle real-rootfs real-libvirt real-guest-provision real-xen

real-store: venv
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__store.py \
	  tests/unit/plugins/module_utils/test__store_crash.py \
	  tests/unit/plugins/module_utils/test__store_hypervisors.py tests/unit/plugins/module_utils/test__hypervisors.py

# ssh-keygen for keys/SSHFP, a private BIND (named on 127.0.0.1) for the RFC 2136 updates
real-keys: venv
	bash scripts/apt_deps.sh bind9 openssh-client
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__sshkeys.py tests/unit/plugins/modules/test_ssh_host_keys.py

real-lxc: venv
	bash scripts/apt_deps.sh btrfs-progs
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__lxc.py tests/unit/plugins/module_utils/test__lxc_setup.py tests/unit/plugins/modules/test_lxc_guest.py \
	  tests/unit/plugins/inventory/test_fleet_live_real.py::test_lxc_running_stopped_absent_and_bad_lxc_path
	$(PYTEST) -q -m real tests/unit/plugins/modules/test_guest_real.py -k lxc

# roles/lxc_provision on real LXC: molecule (delegated driver, this machine) create -> check ->
# converge -> idempotence -> verify -> destroy. VMAN_LXC_BRIDGE/GATEWAY/PATH pick the testbed.
molecule-lxc: venv
	molecule test -s lxc_provision

real-libvirt: venv
	$(PYTEST) -q -m real tests/unit/plugins/modules/test_vm_snapshot_real.py \
	  tests/unit/plugins/inventory/test_fleet_live_real.py::test_libvirt_running_absent_unreachable_silent_and_cache
	$(PYTEST) -q -m real tests/unit/plugins/modules/test_guest_real.py -k libvirt

# kvm_provision + guest_provision on a real libvirtd with TCG guests: molecule scenario at
# collection level (delegated driver); the guest image is built once and cached (see the scenario).
real-guest-provision: venv
	bash scripts/apt_deps.sh debootstrap qemu-utils e2fsprogs debian-archive-keyring
	molecule test -s guest_provision

# Start requests: store rules and reconciler on a real PostgreSQL, end to end on real LXC
real-requests: venv
	$(PYTEST) -q -m real tests/unit/plugins/module_utils/test__store_requests.py tests/unit/plugins/module_utils/test__reconcile.py tests/unit/plugins/modules/test_vm_reconcile_real.py

# Opt-in (not in real:): the request reconciler with the Xen backend in the Xen testbed's dom0
real-requests-xen: venv
	VMAN_XEN_REQUESTS=1 $(PYTEST) -q -m real tests/testbed/test_vm_reconcile_xen_real.py

# One Xen testbed boot shared by every Xen stage of the run (image built once and cached):
# scripts/real_xen.sh boots it, exports VMAN_XEN_TESTBED, runs the targets below, powers off.
XEN_STAGES ?= xen-pytest molecule-xen
real-xen: venv
	bash scripts/real_xen.sh $(XEN_STAGES)

# Attaches to the testbed named by VMAN_XEN_TESTBED (or boots its own when run alone). On an
# attached testbed the files run in two pytest-xdist workers (each file in one worker, in order):
# the dracut builds of test_xen_initrd_real (the longest file) keep one of the dom0's two vCPUs
# busy while the domain tests use the other. The files share nothing but the dom0
# (own domain names, addresses, iSCSI target, directories; domUs boot the running kernel).
XEN_PYTEST_WORKERS ?= 2
xen-pytest:
	$(PYTEST) -q -m real $(if $(VMAN_XEN_TESTBED),-n $(XEN_PYTEST_WORKERS) --dist loadfile,-p no:xdist) tests/testbed/

# Opt-in XEN_STAGE (not in the default): lxc_guest's lvm and lvm-scratch on real LVM (a loop-device
# volume group) inside the Xen testbed's dom0, since this kernel has no device-mapper.
# Measured under TCG on the shared 2-core machine, testbed already up: warm 11 min 42 s (packages
# and template cache in the dom0), cold 18 min 33 s (apt-get 6.4 min, cache copy-in 40 s).
xen-lxc-lvm:
	VMAN_XEN_LXC_LVM=1 $(PYTEST) -q -s -m real tests/testbed/test_lxc_lvm_real.py

# The lifecycle playbooks end to end on real LXC guests (scripts/demo.sh under -vvv, checked
# step by step, no secret in any output). Cold ~9 min (Debian template + python3 in the base),
# warm ~6 min on a loaded 2-core machine.
real-lifecycle: venv
	$(PYTEST) -q -s -m real -k lxc tests/playbooks/

# The same end-to-end test on Xen domUs (NFS roots) in the Xen testbed's dom0: an opt-in
# XEN_STAGE (not in the default, CI's 90 minutes hold molecule-xen and xen-pytest already), it
# needs VMAN_XEN_TESTBED (make real-xen sets it). Measured on this shared 2-core machine with the
# testbed up and the initrd built: the demo under -vvv 1755-1897 s, the whole target ~30 min.
lifecycle-xen: venv
	$(PYTEST) -q -s -m real -k xen tests/playbooks/

# vm_rootfs with the real debootstrap (--unpack-tarball of a tarball made once and cached in
# ~/.cache/vman-testbed/) into a temporary directory on this machine
real-rootfs: venv
	$(PYTEST) -q -m real -p no:xdist tests/unit/plugins/modules/test_vm_rootfs.py

# The xen_vman role on the Xen testbed (molecule/xen_vman): boots a testbed, or only attaches to
# the one booted earlier when VMAN_XEN_TESTBED names its state directory.
molecule-xen:
	VMAN_MOLECULE_PYTHON=$(CURDIR)/$(VENV)/bin/python $(VENV)/bin/molecule test -s xen_vman

# Each stage is timed by scripts/stages.sh: `stage <name> <seconds>` lines and a total at the end.
TEST_STAGES ?= venv lint sanity units integration newest-core older-cores installed real-store real-keys real-lxc \
  molecule-lxc real-requests real-lifecycle real-rootfs real-libvirt real-guest-provision real-xen
test:
	bash scripts/stages.sh $(TEST_STAGES)
	@echo "make test: all stages passed"

demo: venv
	bash scripts/demo.sh

bench: venv
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b; done

changelog: venv
	antsibull-changelog release

clean:
	rm -rf build tests/output
