# opsbook: `make lab` brings up the local lab and converges it; `make test` runs every check.
# Both set themselves up on a fresh Debian 12 machine (run as root): apt packages, venv, images.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMPS := .cache/stamps
TIMES := .cache/test-times.txt
LAB_NODES ?= 3
LAB_OS ?= debian12

export PATH := $(BIN):$(PATH)
export CONTAINERS_CONF := $(CURDIR)/src/opsbook/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export OPSBOOK_ROOT := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

# Debian packages the lab and the tests need on the controller.
# systemd: `systemd-analyze verify` checks the units `opsbook schedule` installs (tests/firewall)
APT_PACKAGES := podman runc debootstrap uidmap iptables openssh-client time \
	git make curl ca-certificates postgresql rclone systemd

.PHONY: help deps venv images kube gocheck lab lab-down lint docs pytest molecule test bench lock \
	collections clean

help:
	@echo "make lab        set up, start $(LAB_NODES) lab nodes and run 'opsbook site' against them"
	@echo "make test       lint, pytest and molecule (sets itself up; prints per-part timings)"
	@echo "make bench      benchmarks (writes bench/results.json)"
	@echo "make kube       build the k3s test server (a test double of k3s) from Go modules"
	@echo "make lab-down   remove the lab"

$(STAMPS):
	@mkdir -p $@

deps: $(STAMPS)/deps
$(STAMPS)/deps: | $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

venv: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml requirements/lock.txt | $(STAMPS)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@# uv (pinned in the lock) installs the pinned set: seconds, where pip took about 50 s. It
	@# compiles the bytecode as pip does: the tests run with PYTHONDONTWRITEBYTECODE, so without
	@# it every ansible, molecule and pytest process would compile its imports again.
	@$(BIN)/pip install -q --disable-pip-version-check -c requirements/lock.txt uv
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c requirements/lock.txt -e '.[dev]'
	@touch $@

collections: venv
	$(BIN)/ansible-galaxy collection install -r requirements.yml -p collections

lock: venv
	$(BIN)/pip freeze --exclude-editable | grep -v -i '^opsbook' \
		| sed '1i # Pinned versions of every Python package opsbook installs (pip constraints file).\n# Regenerate with `make lock` after changing pyproject.toml.' > requirements/lock.txt

images: deps venv
	$(BIN)/opsbook lab images

kube: deps
	tests/kube/build.sh

# gofmt, go vet and go test of the k3s test server (tests/kube/k3s).
gocheck: kube
	tests/kube/check.sh

# The nodes are hardened for real, form one k3s cluster (the k3s test server from the air-gap
# directory `make kube` builds) and get the apps (kwok plays the kubelets).
lab: deps venv images kube
	$(BIN)/opsbook lab up --nodes $(LAB_NODES) --os $(LAB_OS)
	$(BIN)/opsbook site -i .opsbook/labs/lab/hosts.yml

lab-down: venv
	$(BIN)/opsbook lab kube down
	$(BIN)/opsbook lab down

lint: venv
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production
	$(BIN)/ruff check src tests roles plugins bench
	$(BIN)/ruff format --check src tests roles plugins bench
	$(BIN)/mypy
	$(BIN)/python -m opsbook.roledocs --check

pytest: deps venv images kube
	$(BIN)/pytest -q --durations=15

# Every molecule scenario: roles/<role>/molecule/<scenario> and molecule/<scenario>, run
# MOLECULE_JOBS at a time (each has its own lab) by tests/test-part; logs in .cache/test-logs/.
# The k3s scenario (three servers, about twice as long as any other) starts first.
MOLECULE_SCENARIOS := $(filter roles/k3s/%,$(sort $(wildcard roles/*/molecule/*/molecule.yml))) \
	$(filter-out roles/k3s/%,$(sort $(wildcard roles/*/molecule/*/molecule.yml) \
	$(wildcard molecule/*/molecule.yml)))
MOLECULE_JOBS ?= 2
molecule: deps venv images kube
	@printf '%s\n' $(MOLECULE_SCENARIOS) | xargs -d '\n' -P $(MOLECULE_JOBS) -n 1 tests/test-part \
		| tee -a $(TIMES)

# `make test` lints beside the image and Go steps, then runs pytest in two parts and every
# molecule scenario, TEST_JOBS parts at a time, longest first (a free slot takes the next
# part): the k3s role's lab module (one cluster's life, about 13 minutes) apart from the rest
# of pytest. Every part runs to the end; the run fails if any does.
PYTEST_APART := tests/k3s/test_k3s_role_lab.py
TEST_PARTS := "pytest main --ignore=$(PYTEST_APART)" "pytest k3s-role-lab $(PYTEST_APART)" \
	$(MOLECULE_SCENARIOS)
TEST_JOBS ?= 2
test: | $(STAMPS)
	@: > $(TIMES)
	@t() { s=$$(date +%s); rc=0; $(MAKE) --no-print-directory "$$@" || rc=$$?; \
		echo "$$1 $$(( $$(date +%s) - s ))s$$([ $$rc = 0 ] || echo " FAILED")" >> $(TIMES); return $$rc; }; \
	t deps; t venv; t lint & lint=$$!; t images; t kube; t gocheck; wait $$lint; \
	s=$$(date +%s); rc=0; printf '%s\n' $(TEST_PARTS) \
		| xargs -d '\n' -P $(TEST_JOBS) -n 1 tests/test-part | tee -a $(TIMES) || rc=1; \
	echo "pytest and molecule $$(( $$(date +%s) - s ))s$$([ $$rc = 0 ] || echo " FAILED")" >> $(TIMES); \
	echo "== time per part =="; grep -v '^    |' $(TIMES); exit $$rc

# bench/ is not in the package: `python -m bench` imports it from the checkout (make's cwd).
bench: deps venv images
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .cache .opsbook

docs: venv
	$(BIN)/python -m opsbook.roledocs
