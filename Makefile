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

.PHONY: all library venv sim sandbox demo test rust-checks rust-tests e2e molecule lint ruff docs-check collection sizes bench bench-norejails bench-roundtrip clean \
	venv-2.21 e2e-2.21 sanity sanity-2.21 ee changelog

all: library

## library: release-build every module into library/ (next to its sidecar docs), plus the
## per-platform name the warden_binary action plugin looks for (<module>_<system>_<arch>);
## and the controller's warden_layout binary (the warden_agent_layout action plugin runs it
## on this machine; it never goes to a target) as library/warden_layout_<system>_<arch>.
HOST_PLATFORM := $(shell uname -s | tr A-Z a-z)_$(shell uname -m)
library:
	cargo build --release $(addprefix -p ,$(MODULES)) -p warden_layout
	for m in $(MODULES); do install -m 0755 target/release/$$m library/$$m && ln -sf $$m library/$${m}_$(HOST_PLATFORM); done
	install -m 0755 target/release/warden_layout library/warden_layout_$(HOST_PLATFORM)
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
test: rust-checks rust-tests library venv e2e molecule lint docs-check sanity e2e-2.21

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

lint: venv ruff
	yamllint -s .
	ansible-lint -q

## ruff: the Python linter over the plugins, bin/'s Python scripts, tests and bench (ruff.toml).
ruff: venv
	ruff check --no-cache

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

## The second supported controller (README, "Supported ansible-core"): ansible-core 2.21 on
## Python 3.13 in .venv-2.21, from requirements-2.21.txt; bin/find-python finds the interpreter
## (PYTHON313, pyenv's newest 3.13, python3.13 on PATH).
VENV221 := .venv-2.21
$(VENV221)/.installed: requirements-2.21.txt
	python313=$$(bin/find-python 3.13) && $$python313 -m venv $(VENV221)
	$(VENV221)/bin/pip install --quiet --disable-pip-version-check -r requirements-2.21.txt
	touch $@
venv-2.21: $(VENV221)/.installed

## e2e-2.21: the e2e core on ansible-core 2.21 (agent.yml twice, check mode, removal, SSH, the
## collection, the binary cache, ansible-core compatibility, module docs); the full suite runs on
## the default.
E2E_CORE := test_agent_playbook.py::test_first_run_provisions_and_second_run_changes_nothing \
	test_agent_playbook.py::test_check_mode_on_a_fresh_host_changes_nothing \
	test_remove_and_validate.py::test_removing_one_agent_leaves_the_other \
	test_ssh.py test_collection.py test_ansible_core.py \
	"test_binary_cache.py::test_planted_binary_at_the_cache_path_is_not_executed[other_content]" \
	test_binary_cache.py::test_cache_directory_that_is_a_symlink_is_replaced_not_followed \
	test_module_docs.py
e2e-2.21: library venv-2.21 sim
	PATH=$(CURDIR)/$(VENV221)/bin:$$PATH $(VENV221)/bin/pytest -q --durations=15 $(addprefix tests/e2e/,$(E2E_CORE))

## sanity: ansible-test sanity on the collection, built and installed into an
## ansible_collections/warden/freebsd tree (bin/sanity; offline-safe, see README).
sanity: library venv
	$(BIN)/python bin/sanity
sanity-2.21: library venv-2.21
	PATH=$(CURDIR)/$(VENV221)/bin:$$PATH $(VENV221)/bin/python bin/sanity

## ee: the execution environment's build context (ansible-builder create) in build/ee.
ee: collection
	ansible-builder create -f collection/ee/execution-environment.yml -c build/ee --output-filename Containerfile

## changelog: fold new changelog fragments into the release history (changelogs/changelog.yaml)
## and collection/CHANGELOG.md, with antsibull-changelog.
changelog: library venv
	bin/changelog update

## bench-norejails: only the converged agent.yml re-run without jails against the stock
## reference (a few minutes) -> bench/results/norejails.json.
bench-norejails: library venv $(VENV)/.bench-installed
	cargo build --release -p warden_probe -p warden_sim
	WARDEN_SIM_BIN=$(CURDIR)/target/release/freebsd-sim python bench/bench.py --only norejails

## bench-roundtrip: one round trip per host (bench/roundtrip.py): SSH sessions per converged
## agent, converged fleets of 10, 50 and 200 simulated hosts, an SSH fleet of 20.
bench-roundtrip: library venv $(VENV)/.bench-installed
	cargo build --release -p warden_probe -p warden_sim
	WARDEN_SIM_BIN=$(CURDIR)/target/release/freebsd-sim python bench/bench.py --only roundtrip

clean:
	cargo clean
	rm -rf $(VENV) $(VENV221) $(SANDBOX) build
	for m in $(MODULES); do rm -f library/$$m library/$${m}_*; done
	rm -f library/warden_layout_*
