# The two commands a new machine needs (see README.md):
#   make demo       set up, then run a whole build on the embedded AWS emulator
#   make test-all   set up, then run every check and test (CI: .ci/run)
# and the everyday loop:
#   make test       the same without the tests marked slow (pytest -m slow --co -q lists them)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_DEFAULT_REGION ?= us-east-1

# The 15 slowest tests are listed at the end, so a slow-down is seen.
PYTEST := $(BIN)/pytest -n 2 -q --durations=15

.PHONY: setup setup-dev demo test test-all lint typecheck clean

$(BIN)/petal: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

setup: $(BIN)/petal

$(VENV)/.dev-installed: pyproject.toml requirements-pcluster.txt $(BIN)/petal
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r requirements-pcluster.txt
	touch $@

# npm ci empties node_modules first: only when the lock file changed or it is missing.
node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

setup-dev: $(VENV)/.dev-installed node_modules/.installed

# A build of the small test seed, then a cluster config from its snapshot. With AWS
# credentials that reach a deployed petal stack it builds there; otherwise on the
# embedded emulator (`petal --local`), which keeps running between commands
# (`.venv/bin/petal local stop` ends it).
demo: setup
	mkdir -p build
	@mode="$$($(BIN)/python -m petal.aws.deployment)"; set -x; \
	$(BIN)/petal $$mode build --seed seeds/testing/workload-basic.yaml && \
	$(BIN)/petal $$mode create --seed seeds/testing/workload-basic.yaml --name demo \
		--config-out build/demo-config.yaml && \
	$(BIN)/petal $$mode build list

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup-dev
	$(BIN)/mypy $(wildcard petal lambdas stacks app.py ssm_documents)

test: lint typecheck
	$(PYTEST) -m "not slow"

test-all: lint typecheck
	$(PYTEST)

clean:
	-$(BIN)/petal local stop
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache .mypy_cache .ruff_cache
