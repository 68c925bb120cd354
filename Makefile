# tfship: every target runs through the `tfship` console entry point in a local virtualenv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
UV_VERSION := 0.13.8
TFSERVING_API := tensorflow-serving-api==2.21.0
EXTRAS ?= model,api,monitoring,loadtests,test
# Pulumi's policy SDK and checkov each pin protobuf/packaging against TensorFlow and Pulumi,
# so the Pulumi programs and the scanner get virtualenvs of their own.
INFRA_VENV ?= .venv-infra
SCAN_VENV ?= .venv-scan
BIN := $(VENV)/bin
TFSHIP := $(BIN)/tfship
UV := $(PYTHON) -m uv
hash = $(shell cat pyproject.toml $(1) 2>/dev/null | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(call hash,requirements.lock)
INFRA_STAMP := $(INFRA_VENV)/.installed-$(call hash,requirements-infra.lock)
SCAN_STAMP := $(SCAN_VENV)/.installed-$(call hash,requirements-scan.lock)
export KERAS_HOME ?= $(CURDIR)/.tfship/keras
export TF_CPP_MIN_LOG_LEVEL ?= 2

comma := ,
.PHONY: uv setup train demo up down status test lock clean generate generate-check render bench

setup: $(STAMP) $(INFRA_STAMP) $(SCAN_STAMP)

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"

# --compile-bytecode: uv (unlike pip) writes no .pyc files, and with PYTHONDONTWRITEBYTECODE set
# nothing caches them later, so every process compiled ~420 modules from source at each start
# (70% of the API's time to ready; the local stack took 18.6 s to be healthy instead of 5.2 s).
$(STAMP): pyproject.toml requirements.lock | uv
	@test -x $(BIN)/python || $(UV) venv -q -p $(PYTHON) $(VENV)
	$(UV) pip install -q --compile-bytecode -p $(VENV) -r requirements.lock -e ".[$(EXTRAS)]"
	@# Its declared dependency is the CUDA tensorflow wheel; the protos need only tensorflow-cpu.
	$(UV) pip install -q --compile-bytecode -p $(VENV) --no-deps "$(TFSERVING_API)"
	@rm -f $(VENV)/.installed-* && touch $@

$(INFRA_STAMP): pyproject.toml requirements-infra.lock | uv
	@test -x $(INFRA_VENV)/bin/python || $(UV) venv -q -p $(PYTHON) $(INFRA_VENV)
	$(UV) pip install -q --compile-bytecode -p $(INFRA_VENV) -r requirements-infra.lock -e ".[infra,monitoring,test]"
	@rm -f $(INFRA_VENV)/.installed-* && touch $@

$(SCAN_STAMP): requirements-scan.lock | uv
	@test -x $(SCAN_VENV)/bin/python || $(UV) venv -q -p $(PYTHON) $(SCAN_VENV)
	$(UV) pip install -q --compile-bytecode -p $(SCAN_VENV) -r requirements-scan.lock
	@rm -f $(SCAN_VENV)/.installed-* && touch $@

lock: uv
	$(UV) pip compile -q pyproject.toml $(foreach e,$(subst $(comma), ,$(EXTRAS)),--extra $(e)) -p 3.11 -o requirements.lock
	$(UV) pip compile -q pyproject.toml --extra infra --extra monitoring --extra test -p 3.11 -o requirements-infra.lock
	$(UV) pip compile -q pyproject.toml --extra scan -p 3.11 -o requirements-scan.lock

train: setup
	$(TFSHIP) train

demo: setup
	$(TFSHIP) demo

up: setup
	$(TFSHIP) up

down:
	@if [ -x $(TFSHIP) ]; then $(TFSHIP) down; else echo "nothing to stop (no virtualenv)"; fi

status: setup
	$(TFSHIP) status

test: setup
	$(TFSHIP) doctor --install
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)
	@# The Pulumi programs run in their own virtualenv (no TensorFlow); the local stack's tests above.
	$(INFRA_VENV)/bin/pytest tests/infra --ignore=tests/infra/local $(PYTEST_ARGS)

# Side-by-side benchmarks on loopback (wrk); writes BENCHMARKS.md and build/bench/results.json.
bench: setup
	$(TFSHIP) doctor --install
	$(BIN)/python -m loadtests.bench $(BENCH_ARGS)

# Regenerate monitoring/generated/ from the SLO file (`make generate-check` fails on drift).
generate: setup
	$(BIN)/python -m monitoring.generate

generate-check: setup
	$(BIN)/python -m monitoring.generate --check

# Every Kubernetes object of a stack as YAML, for review and GitOps: make render STACK=dev
STACK ?= dev
render: setup
	$(INFRA_VENV)/bin/python -m infra.render --stack $(STACK) --out build/render/$(STACK)

clean: down
	rm -rf $(VENV) $(INFRA_VENV) $(SCAN_VENV) .tfship models
