# The two commands a new machine needs (see README.md):
#   make demo       set up, then run a whole build on the embedded AWS emulator
#   make test-all   set up, then run every check and test (CI: .ci/run)
# and the everyday loop:
#   make test       the same without the tests marked slow (pytest -m slow --co -q lists them)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every Python dependency is pinned with its hashes in requirements/*.txt, generated from
# pyproject.toml and requirements/*.in by `make lock`. uv installs them: from its cache
# (~/.cache/uv) a set-up takes seconds. uv has a venv of its own, so that syncing the
# project's venv to a lock file (which removes whatever the lock does not list) keeps it.
LOCKS := requirements
UV_VENV := $(VENV)/uv
UV := $(UV_VENV)/bin/uv
# ParallelCluster's config schema, for the tests that load it (tests/conftest.py puts it
# on sys.path): outside bin/ and site-packages, so no broken `pcluster` script shadows
# a real one on the PATH of an activated venv.
PCLUSTER_SCHEMA := $(VENV)/pcluster-schema
# `make lock LOCK_FLAGS=--upgrade` (or --upgrade-package NAME) moves pins; plain
# `make lock` keeps every pin that still satisfies pyproject.toml.
LOCK_FLAGS ?=
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_DEFAULT_REGION ?= us-east-1

# The 15 slowest tests are listed at the end, so a slow-down is seen.
PYTEST := $(BIN)/pytest -n 2 -q --durations=15

.PHONY: setup setup-dev lock demo test test-all lint typecheck clean

$(UV_VENV)/.installed: $(LOCKS)/uv.txt
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		-r $(LOCKS)/uv.txt
	touch $@

# checkov scans the synthesized template (tests/infra/test_checkov.py). Like uv it has a
# venv of its own, so its many pins never meet the project's; `make test` and
# `make test-all` install it first.
CHECKOV_VENV := $(VENV)/checkov
$(CHECKOV_VENV)/.installed: $(LOCKS)/checkov.txt | $(UV_VENV)/.installed
	$(PYTHON) -m venv --without-pip $(CHECKOV_VENV)
	$(UV) pip sync --quiet --python $(CHECKOV_VENV)/bin/python $(LOCKS)/checkov.txt
	touch $@
test test-all: $(CHECKOV_VENV)/.installed

# The node-setup tests (tests/infra/test_node_setup.py) run real bash, dash and tcsh login
# shells with ParallelCluster's module system, Environment Modules, installed, and with an
# Lmod like the one Spack builds onto the volume. Debian lets only one of the two be
# installed, so Lmod's package is unpacked into $(NODE_SHELLS)/lmod (its dependencies are
# installed). Does nothing when all is there; installing needs apt-get and root or sudo.
NODE_SHELLS := $(VENV)/node-shells
NODE_SHELL_PACKAGES := environment-modules tcsh dash lua5.3 lua-posix lua-filesystem lua-json \
	lua-term
.PHONY: node-shells
node-shells:
	@set -e; missing=""; \
	for p in $(NODE_SHELL_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null | grep -qx installed || \
			missing="$$missing $$p"; \
	done; \
	[ -n "$$missing" ] || [ ! -x "$(NODE_SHELLS)/lmod/usr/share/lmod/lmod/libexec/lmod" ] || exit 0; \
	fail() { echo "make node-shells: $$1. The node-setup tests need the Debian packages" \
		"$(NODE_SHELL_PACKAGES) and lmod (unpacked into $(NODE_SHELLS)/lmod): run" \
		"\`make node-shells\` as root or with sudo, on Debian or Ubuntu" >&2; exit 2; }; \
	command -v apt-get >/dev/null || fail "apt-get not found"; \
	sudo=""; [ "$$(id -u)" = 0 ] || ! sudo -n true 2>/dev/null || sudo="sudo -n"; \
	if [ -n "$$missing" ]; then \
		[ "$$(id -u)" = 0 ] || [ -n "$$sudo" ] || \
			fail "cannot install:$$missing (not root, and sudo asks for a password)"; \
		echo "make node-shells: installing$$missing"; \
		$$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
			{ $$sudo apt-get update -qq && \
			$$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
			fail "apt-get could not install:$$missing"; \
	fi; \
	if [ ! -x "$(NODE_SHELLS)/lmod/usr/share/lmod/lmod/libexec/lmod" ]; then \
		echo "make node-shells: unpacking Debian's lmod into $(NODE_SHELLS)/lmod"; \
		rm -rf "$(NODE_SHELLS)/download" "$(NODE_SHELLS)/lmod"; \
		mkdir -p "$(NODE_SHELLS)/download"; \
		download() { ( cd "$(NODE_SHELLS)/download" && apt-get download lmod >/dev/null 2>&1 ); }; \
		download || { $$sudo apt-get update -qq && download; } || \
			fail "apt-get download lmod failed"; \
		dpkg-deb -x "$(NODE_SHELLS)"/download/lmod_*.deb "$(NODE_SHELLS)/lmod"; \
		rm -rf "$(NODE_SHELLS)/download"; \
	fi
test test-all: node-shells

# No pip: the venv holds exactly a lock file's packages (pip is in the dev set).
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

# Sync the venv to lock file $(1) (hashes are checked), then install petal itself,
# editable, built by the pinned setuptools.
define install_locked
	$(UV) pip sync --quiet --python $(BIN)/python $(1)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps \
		--build-constraints $(LOCKS)/build.txt --require-build-hashes -e .
endef

$(BIN)/petal: $(LOCKS)/local.txt $(LOCKS)/build.txt pyproject.toml | $(BIN)/python $(UV_VENV)/.installed
	$(call install_locked,$(LOCKS)/local.txt)
	@# The sync removed the dev tools, if there were any.
	rm -f $(VENV)/.dev-installed
	touch $@

setup: $(BIN)/petal

# The dev set includes all of `setup`'s, so it leaves `setup` up to date too.
$(VENV)/.dev-installed: $(LOCKS)/dev.txt $(LOCKS)/build.txt $(LOCKS)/pcluster.txt pyproject.toml | $(BIN)/python $(UV_VENV)/.installed
	$(call install_locked,$(LOCKS)/dev.txt)
	rm -rf $(PCLUSTER_SCHEMA)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --target $(PCLUSTER_SCHEMA) \
		-r $(LOCKS)/pcluster.txt
	rm -rf $(PCLUSTER_SCHEMA)/bin
	touch $@ $(BIN)/petal

# npm ci empties node_modules first: only when the lock file changed or it is missing.
node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

setup-dev: $(VENV)/.dev-installed node_modules/.installed

# Regenerates requirements/*.txt. The dev set is locked first and constrains the local
# set, so switching between `setup` and `setup-dev` changes no shared version; the
# Lambda set is locked for Lambda's interpreter and platform (LAMBDA_PYTHON_VERSION and
# LAMBDA_PLATFORM in petal/lambda_bundle.py) and to the local set's versions.
COMPILE = $(UV) pip compile --quiet --generate-hashes $(LOCK_FLAGS)
# For every Python petal supports (requires-python >= 3.11) and every platform.
UNIVERSAL := --universal --python-version 3.11
lock: $(UV_VENV)/.installed
	$(COMPILE) $(UNIVERSAL) pyproject.toml --extra dev -o $(LOCKS)/dev.txt
	$(COMPILE) $(UNIVERSAL) pyproject.toml --extra local -c $(LOCKS)/dev.txt -o $(LOCKS)/local.txt
	$(COMPILE) $(UNIVERSAL) $(LOCKS)/build.in -o $(LOCKS)/build.txt
	$(COMPILE) $(UNIVERSAL) --no-deps $(LOCKS)/pcluster.in -o $(LOCKS)/pcluster.txt
	$(COMPILE) $(UNIVERSAL) $(LOCKS)/uv.in -o $(LOCKS)/uv.txt
	$(COMPILE) $(UNIVERSAL) $(LOCKS)/checkov.in -o $(LOCKS)/checkov.txt
	$(COMPILE) --python-version 3.12 --python-platform x86_64-manylinux2014 --only-binary :all: \
		$(LOCKS)/lambda.in -c $(LOCKS)/local.txt -o $(LOCKS)/lambda.txt

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
	$(BIN)/petal $$mode build list && \
	{ set +x; } 2>/dev/null && \
	if [ "$$mode" = --local ]; then \
		echo && $(BIN)/petal local status && \
		echo "To stop it: $(BIN)/petal local stop"; \
	fi

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup-dev
	$(BIN)/mypy $(wildcard petal lambdas stacks app.py ssm_documents)

test: lint typecheck
	$(PYTEST) -m "not slow"

test-all: lint typecheck
	$(PYTEST)

# The real Spack (docs/SEEDS.md, "Checking a seed with the real Spack"): concretizes every
# seed under seeds/ with Spack from SPACK_TARBALL, offline, asserts what their spack.lock
# must hold and `spack install --fake`s the test seed (tests/spack/, the tests marked
# `spack`, which `make test` never collects). Spack, its solver's venv
# (requirements/spack-check.txt) and the solved locks are cached in ~/.cache/petal/spack.
SPACK_TARBALL ?= ../shared/tools/spack-v0.23.0.tar.gz
.PHONY: spack-check
spack-check: $(VENV)/.dev-installed
	@test -f "$(SPACK_TARBALL)" || { echo "make spack-check: SPACK_TARBALL=$(SPACK_TARBALL)" \
		"does not exist: give the path of Spack v0.23.0's release tarball" >&2; exit 2; }
	PETAL_SPACK_TARBALL="$(abspath $(SPACK_TARBALL))" $(BIN)/pytest -q -m spack \
		--durations=0 tests/spack

clean:
	-$(BIN)/petal local stop
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache .mypy_cache .ruff_cache
