# The few verbs a user needs. Every verb sets itself up first (idempotent), offline-capable
# once the packages are installed. Python 3.11+ and Node.js 20+ are the only prerequisites.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Synth never needs credentials; these keep the CLI and boto3 from looking for any.
export AWS_EC2_METADATA_DISABLED := true

.PHONY: help setup check-config test synth demo drill destroy review lint-templates diagram bench lint api clean
.DEFAULT_GOAL := help

# Variables (`make help` lists the lines marked `#:`):
#: REGIONS=us-west-1,eu-west-1   replica regions for synth, demo, destroy, review, lint-templates (the primary stays cdk.json's)
REGIONS ?=
#: ARGS="..."                    demo: -c key=value and demo options (--lag 2, --json out.json); drill: -c (the store too) and --region R; destroy: --yes, --region R, -c ...; synth/review/lint-templates: cdk synth options (-c ...)
ARGS ?=
#: QUICK=1                       bench: a ~2 min smoke run, written to review-out/benchmarks.md (never the committed RESULTS.md)
QUICK ?=
#: PYTHON=python3.12             the interpreter that creates .venv (default python3)
CONTEXT := $(if $(REGIONS),-c mrk-toolkit:replicaRegions=$(REGIONS),)
# The CDK CLI's notices are off (--no-notices); its count of unconfigured feature flags has no switch
# (aws/aws-cdk-cli#913) and configuring them would change the templates, so that line is filtered out.
CDK_QUIET := --no-notices
CDK_NOISE := ^[0-9]+ feature flags are not configured\. |^Supply a stack id

help: ## list the verbs and the variables they take
	@echo "usage: make <verb> [VARIABLE=value ...]"
	@echo
	@echo "verbs:"
	@grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/^([a-z-]+):.*## /\1\t/' \
		| awk -F'\t' '{ printf "  %-15s %s\n", $$1, $$2 }'
	@echo
	@echo "variables:"
	@sed -n 's/^#: /  /p' $(firstword $(MAKEFILE_LIST))

$(BIN)/.installed: requirements.txt requirements-dev.txt lambda_src/requirements.txt lambda_src/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# record_crypto as the package it is (lambda_src/pyproject.toml), editable: no sys.path edits anywhere.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e ./lambda_src
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

setup: $(BIN)/.installed node_modules/.installed ## install Python (.venv) and the pinned CDK CLI (node_modules)

test: setup ## run the whole test suite
	$(BIN)/python -m pytest

check-config: setup ## check cdk.json (JSON syntax by line and column, then the mrk-toolkit:* config: stacks/config.py)
	$(BIN)/python -m stacks.config cdk.json

synth: check-config ## synthesize every stack into cdk.out (REGIONS=..., ARGS="-c mrk-toolkit:<field>=...")
	rm -f cdk.out/*.template.json cdk.out/*.assets.json cdk.out/manifest.json
	set -o pipefail; cdk synth -q $(CDK_QUIET) -o cdk.out $(CONTEXT) $(ARGS) 2>&1 | { grep -Ev '$(CDK_NOISE)' || true; }
	@echo "Synthesized: $$(ls cdk.out/*.template.json | xargs -n1 basename | sed 's/.template.json//' | tr '\n' ' ')"

demo: check-config ## the main job offline: synth with the CDK CLI, stand up on the emulated AWS (offline/emulator), verify (offline/verification) (REGIONS, ARGS)
	$(BIN)/python -m offline demo --synth-to cdk.out $(CONTEXT) $(ARGS)

drill: check-config ## the store's drills on the emulator: DynamoDB, the region outage runbook (offline/runbooks; the primary goes down; ARGS="--region R": another); ARGS="-c mrk-toolkit:store=aurora-postgresql" (or that store in cdk.json): the Aurora failover drills
	$(BIN)/python -m offline drill $(CONTEXT) $(ARGS)

destroy: check-config ## delete the stacks (credentials' account, or `offline up`) in reverse order; list what stays and how to remove it (offline/runbooks; asks first; ARGS=--yes)
	$(BIN)/python -m offline destroy $(CONTEXT) $(ARGS)

review: synth ## policy review of every key and role (review/): review-out/policy-review.{md,json}
	$(BIN)/python -m review --cdk-out cdk.out --out review-out

lint-templates: synth ## cfn-lint + checkov on the templates (review/lint.py; own venv: .venv-review)
	$(BIN)/python -m review.lint --cdk-out cdk.out

diagram: check-config ## regenerate README's architecture diagram and role contracts table (cdk.json's default deployment)
	$(if $(REGIONS)$(ARGS),$(error make diagram draws cdk.json's default deployment into README.md and takes no \
	REGIONS or ARGS; for another deployment: .venv/bin/python -m review readme OTHER.md -c mrk-toolkit:...))
	$(BIN)/python -m review readme README.md

bench: setup ## the benchmarks (benchmarks/; 5-10 min; writes benchmarks/RESULTS.md; QUICK=1: ~2 min smoke run into review-out/)
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick)

lint: setup ## ruff lint + format check, and a strict type check of the record_crypto package (mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd lambda_src && $(CURDIR)/$(BIN)/mypy

API_MODULES := record_crypto $(subst /,.,$(patsubst lambda_src/%.py,%,$(wildcard lambda_src/record_crypto/[a-z]*.py)))
api: setup ## the record_crypto package's API reference from its docstrings (pdoc) into review-out/api/index.html
	cd lambda_src && PYTHONPATH=. $(CURDIR)/$(BIN)/pdoc -o $(CURDIR)/review-out/api $(API_MODULES)
	test -s review-out/api/record_crypto/service.html

clean: ## remove generated output (cdk.out, review-out, caches); keeps .venv, .venv-review and node_modules
	rm -rf cdk.out .bundle-cache .pytest_cache .hypothesis .ruff_cache review-out
	find . -name __pycache__ -type d -not -path './.venv*' -not -path './node_modules/*' -prune -exec rm -rf {} +
