# voice-fleet: provision and update a fleet of Raspberry Pi voice assistants.
#
# The two commands of the README:
#   make demo    a simulated fleet deployed from a local Supabase registry
#   make test    everything: lint, unit, integration, molecule, end to end
#
# Every target installs and starts what it needs, and is safe to re-run.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

export VF_ROOT := $(CURDIR)
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# Collections and roles resolve the same way from any scenario directory.
export ANSIBLE_HOME := $(CURDIR)/.ansible

PYTEST ?= pytest
PYTEST_ARGS ?=
DIST ?= dist
# Syntax checks must not need registry credentials.
LINT_ENV := ANSIBLE_INVENTORY=$(CURDIR)/tests/fixtures/lint/inventory.yml

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Controller venv from the locked requirements, Debian tools, collection check
	@scripts/setup.sh

.PHONY: lock
lock: setup ## Re-resolve requirements*.in into the hashed lock files
	uv pip compile -q --python-version 3.11 --generate-hashes requirements-bootstrap.in -o requirements-bootstrap.txt
	uv pip compile -q --python-version 3.11 --generate-hashes requirements.in -o requirements.txt
	uv pip compile -q --python-version 3.11 --no-annotate requirements-ee.in -o requirements-ee.txt

.PHONY: bed
bed: setup ## Docker engine up and the systemd base image built
	@scripts/bed.sh image >/dev/null

.PHONY: env
env: ## Print the exports that let you run molecule/ansible by hand: eval "$(make -s env)"
	@echo "export VF_ROOT='$(CURDIR)' PATH='$(CURDIR)/.venv/bin':\"\$$PATH\" ANSIBLE_HOME='$(ANSIBLE_HOME)'"
	@echo "export VOICE_FLEET_IMAGE='$$(scripts/bed.sh tag)'"
	@if [ -f .stack/env ]; then echo ". '$(CURDIR)/.stack/env'"; fi

.PHONY: stack-up
stack-up: setup ## Start the local registry (PostgreSQL + PostgREST + /rest/v1/), write .stack/env
	@.venv/bin/python tools/stack.py up

.PHONY: stack-down
stack-down: ## Stop the local registry (data and keys are kept)
	@python3 tools/stack.py down

.PHONY: stack-clean
stack-clean: stack-down ## Stop the registry and delete its data and keys
	rm -rf .stack

# The simulated fleet (tools/fleet.py): N devices, ARM64=1 makes the last one aarch64.
N ?= 5
ARM64 ?= 0

.PHONY: fleet-up
fleet-up: bed stack-up ## Simulated fleet of N "Pis" (default 5; ARM64=1: last one aarch64), registry rows, inventory
	@.venv/bin/python tools/fleet.py up --count $(N) $(if $(filter 1,$(ARM64)),--arm64)

.PHONY: fleet-down
fleet-down: setup ## Remove the simulated fleet, its registry rows and known_hosts entries (key and images kept)
	@.venv/bin/python tools/fleet.py down

.PHONY: fleet-status
fleet-status: setup ## One line per simulated device: arch, port, state, systemd, timezone, device_uuid
	@.venv/bin/python tools/fleet.py status

.PHONY: demo
demo: setup bed stack-up ## The whole product on a simulated fleet (N=5 devices): provision, roll out, scheduled play, status
	@DEMO_HOSTS=$(or $(N),5) scripts/demo.sh

# Pull mode (docs/PULL_MODE.md): the publisher's key, once; then a signed release per version.
PUBLISH_KEY ?= $(HOME)/.config/voice-fleet/publisher.key
PLATFORMS ?= cp311-x86_64
STORE ?=
BASE_URL ?=
SOURCE ?=

.PHONY: publish-key
publish-key: setup ## The publisher's ed25519 key pair (PUBLISH_KEY, default ~/.config/voice-fleet/publisher.key, 0600)
	@.venv/bin/python tools/publish.py keygen --out "$(PUBLISH_KEY)"

.PHONY: publish
publish: setup ## Sign and publish a release for pull devices: BASE_URL= [STORE= SOURCE= PLATFORMS=] (registry: SUPABASE_*)
	@[[ -n "$(BASE_URL)" ]] || { echo "error: BASE_URL is the URL devices fetch the store from, e.g. BASE_URL=http://vf-fleet-relay:8080/store for the simulated fleet" >&2; exit 2; }
	@store="$(STORE)"; [[ -n $$store ]] || store=$$( [[ ! -f .stack/env ]] || { . .stack/env; echo "$${VF_STORE_DIR:-}"; } ); \
	[[ -n $$store ]] || { echo "error: STORE= the store directory (or the local stack's: make stack-up)" >&2; exit 2; }; \
	.venv/bin/python tools/publish.py release --key "$(PUBLISH_KEY)" --store "$$store" --base-url "$(BASE_URL)" \
		$(foreach p,$(PLATFORMS),--platform $(p)) $(if $(SOURCE),--source "$(SOURCE)")

# Not part of make test: timings are measured side by side, never asserted.
.PHONY: bench
bench: setup bed stack-up ## Every benchmark on a fleet of its own (about an hour): one table, benchmarks/results/*.json, docs/benchmarks.png
	@.venv/bin/python benchmarks/run_all.py

.PHONY: collection
collection: setup ## The collection tarball javia-voice_fleet-<version>.tar.gz in $(DIST) (ansible-galaxy)
	.venv/bin/ansible-galaxy collection build --force --output-path $(DIST) .

.PHONY: sanity
sanity: setup ## ansible-test sanity on the built collection (its own venv; ignores: tests/sanity/)
	.venv/bin/python tools/sanity.py

.PHONY: lint
lint: setup ## yamllint, ruff (lint + format), ansible-lint (production profile)
	yamllint -s .
	ruff check .
	ruff format --check .
	$(LINT_ENV) ansible-lint

.PHONY: test
test: setup ## The whole suite (what CI runs): lint, then quick, e2e and molecule phases side by side
	@PYTEST_ARGS="$(PYTEST_ARGS)" scripts/test.sh

.PHONY: test-quick
test-quick: setup ## The quick loop: everything but molecule and end-to-end runs
	$(PYTEST) -m "not molecule and not e2e and not slow" $(PYTEST_ARGS)

.PHONY: molecule
molecule: setup ## All molecule scenarios (S=name for one)
	$(PYTEST) tests/molecule $(if $(S),-k "$(S)") $(PYTEST_ARGS)

.PHONY: clean
clean: ## Remove caches (keeps .venv, .stack and the images)
	rm -rf .cache/facts .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
