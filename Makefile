# warden: build, demo and test. The two commands a new machine needs: `make demo`, `make test`.
SHELL := /bin/sh
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Module binaries built into library/ (each is a workspace package of the same name).
MODULES := warden_rcd warden_bridge_alias warden_pf_net bastille_jail warden_db warden_env warden_vm
SIM := target/debug/freebsd-sim
SANDBOX := .sandbox
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: all library venv sim sandbox demo test rust-checks rust-tests e2e molecule lint docs-check collection sizes bench clean

all: library

## library: release-build every module into library/ (next to its sidecar docs), plus the
## per-platform name the warden_binary action plugin looks for (<module>_<system>_<arch>).
HOST_PLATFORM := $(shell uname -s | tr A-Z a-z)_$(shell uname -m)
library:
	cargo build --release $(addprefix -p ,$(MODULES))
	for m in $(MODULES); do install -m 0755 target/release/$$m library/$$m && ln -sf $$m library/$${m}_$(HOST_PLATFORM); done
	bin/platform-docs library

## venv: the pinned controller tools (ansible-core, ansible-lint, molecule, yamllint, pytest).
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@
venv: $(VENV)/.installed

sim:
	cargo build -p warden_sim --bin freebsd-sim

## sandbox: a fresh simulated FreeBSD host sim1 under .sandbox/ (inventory/sandbox.yml).
sandbox: sim
	tests/sandbox.sh $(SANDBOX) $(SIM) sim1

## demo: build, provision agents mevy and clawdie on a fresh simulated host, re-run both to
## show changed=0.
DEMO_AGENTS := mevy clawdie
demo: library venv sandbox
	@for a in $(DEMO_AGENTS); do \
		echo "== first run: ansible-playbook playbooks/agent.yml -e agent_name=$$a --diff"; \
		ansible-playbook playbooks/agent.yml -e agent_name=$$a --diff || exit 1; \
	done
	@for a in $(DEMO_AGENTS); do \
		echo "== second run for $$a: nothing left to change"; \
		ansible-playbook playbooks/agent.yml -e agent_name=$$a | tee $(SANDBOX)/second-run-$$a.log; \
		grep -Eq 'sim1 +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' $(SANDBOX)/second-run-$$a.log \
			|| { echo "second run for $$a was not changed=0"; exit 1; }; \
	done
	@echo
	@echo "Second runs: changed=0 for $(DEMO_AGENTS). Where to look:"
	@echo "  rc.conf        $(SANDBOX)/hosts/sim1/etc/rc.conf"
	@echo "  PF include     $(SANDBOX)/hosts/sim1/etc/pf.warden.conf (loaded: WARDEN_SIM_ROOT=$(CURDIR)/$(SANDBOX)/hosts/sim1 $(SANDBOX)/bin/pfctl -s nat)"
	@echo "  rc.d scripts   $(SANDBOX)/hosts/sim1/usr/local/etc/rc.d/mevy and .../clawdie"
	@echo "  .env files     $(SANDBOX)/hosts/sim1/home/mevy/.env and .../clawdie/.env (mode 0600)"
	@echo "  service state  WARDEN_SIM_ROOT=$(CURDIR)/$(SANDBOX)/hosts/sim1 $(SANDBOX)/bin/service mevy status"
	@echo "  tmux session   tmux -S $(SANDBOX)/hosts/sim1/var/run/mevy.tmux attach -t mevy   (detach: C-b d)"
	@echo "  jails          WARDEN_SIM_ROOT=$(CURDIR)/$(SANDBOX)/hosts/sim1 $(SANDBOX)/bin/bastille list"
	@echo "  database       $(SANDBOX)/pg/env has the throw-away server's port and password; statements in $(SANDBOX)/pg/server.log"
	@echo "  secrets        $(SANDBOX)/secrets/ (each agent's generated DB password, made once)"
	@echo "  tool calls     $(SANDBOX)/hosts/sim1/sim/calls.log"

## test: everything CI runs.
test: rust-checks rust-tests library venv e2e molecule lint docs-check

rust-checks:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

rust-tests:
	cargo build --workspace
	cargo test --workspace

e2e: library venv sim
	pytest -q tests/e2e

## molecule: one host with two agents, and a fleet of simulated hosts (delegated driver).
molecule: library venv sim
	molecule test -s default
	molecule test -s fleet

lint: venv
	yamllint -s .
	ansible-lint -q

docs-check: library venv
	for m in $(MODULES); do ansible-doc -M library $$m > /dev/null || exit 1; done

## collection: the warden.freebsd collection tarball in build/ (ansible-galaxy collection install it).
collection: library venv
	bin/build-collection build

## sizes: stripped release size of every module (the README reports them).
sizes: library
	@for m in $(MODULES); do printf '%-22s %8d bytes\n' $$m $$(wc -c < library/$$m); done

## bench: warden against the stock-module way and Ansible's floor (not part of make test):
## per step, modules alone, whole re-runs, fleet scaling, SSH, sizes -> bench/results/.
$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@
bench: library venv $(VENV)/.bench-installed
	cargo build --release -p warden_probe -p warden_sim
	WARDEN_SIM_BIN=$(CURDIR)/target/release/freebsd-sim python bench/bench.py

clean:
	cargo clean
	rm -rf $(VENV) $(SANDBOX) build
	for m in $(MODULES); do rm -f library/$$m library/$${m}_*; done
