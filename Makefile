# vman.lifecycle: the two commands a fresh Debian 12 machine needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST ?= $(VENV)/bin/pytest
ANSIBLE_TEST_PY ?= 3.11

.PHONY: help deps venv lint sanity units integration test demo bench changelog clean

help:
	@echo "make demo   - the main job (see README)"
	@echo "make test   - everything CI runs: lint, sanity, unit, integration"
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
	$(PYTEST) -q tests/unit -m "not real" -p xdist -n 2

integration: venv
	bash scripts/ansible_test.sh integration --local --python $(ANSIBLE_TEST_PY) --color no

test: lint sanity units integration
	@echo "make test: all stages passed"

demo: venv
	bash scripts/demo.sh

bench: venv
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b; done

changelog: venv
	antsibull-changelog release

clean:
	rm -rf build tests/output
