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

.PHONY: setup test synth demo review lint-templates diagram bench lint clean

# make demo REGIONS=us-west-1,eu-west-1  (replica regions; the primary stays cdk.json's)
REGIONS ?=
CONTEXT := $(if $(REGIONS),-c mrk-toolkit:replicaRegions=$(REGIONS),)

$(BIN)/.installed: requirements.txt requirements-dev.txt lambda_src/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

setup: $(BIN)/.installed node_modules/.installed ## install Python (.venv) and the pinned CDK CLI (node_modules)

test: setup ## run the whole test suite
	$(BIN)/python -m pytest

synth: setup ## synthesize every stack into cdk.out (add ARGS="-c mrk-toolkit:replicaRegions=us-west-1,eu-west-1")
	cdk synth -q -o cdk.out $(CONTEXT) $(ARGS)
	@echo "Synthesized: $$(ls cdk.out/*.template.json | xargs -n1 basename | sed 's/.template.json//' | tr '\n' ' ')"

demo: setup ## the main job offline: synth with the CDK CLI, stand up on the emulated AWS, verify
	cdk synth -q -o cdk.out $(CONTEXT)
	$(BIN)/python -m offline demo --cdk-out cdk.out $(ARGS)

review: synth ## policy review of every key and role: review-out/policy-review.{md,json}
	$(BIN)/python -m review --cdk-out cdk.out --out review-out

lint-templates: synth ## cfn-lint + checkov on the templates (own venv: .venv-review)
	$(BIN)/python -m review.lint --cdk-out cdk.out

diagram: synth ## regenerate README's architecture diagram from the assembly
	$(BIN)/python -m review readme README.md --cdk-out cdk.out

bench: setup ## the benchmarks (~5 min; QUICK=1 for a ~2 min smoke run): writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick)

lint: setup ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf cdk.out .bundle-cache .pytest_cache review-out
