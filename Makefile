# Two commands matter: `make demo` and `make test`. Both build .venv first if it is missing or stale.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo lint test test-fast fuzz bench stack-up stack-down clean

venv: $(STAMP)

# Bytecode is compiled once here: uv does not, and with PYTHONDONTWRITEBYTECODE=1 (set on this
# machine, and in the image) Python never caches it, so every command compiled ~4,000 modules
# again on every start: `retainwise score` took 10 CPU s instead of 5.5 (benchmarks/README.md).
# One file in a dependency is Python 3.12 syntax, so compileall's exit status is ignored.
# Skipped (compiled in memory if ever imported): the packages' own test suites (75% of pandas's
# compile time), aws_cdk (183 MB of Python, 25% of the whole compile; one test imports ~20 of its
# modules) and sympy (only cfn-lint's conditions use it): 92 -> ~45 CPU s for `make venv`.
COMPILE_SKIP := site-packages/(aws_cdk|sympy)/|site-packages/.*/tests?/
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --system-certs --python $(BIN)/python -c constraints.txt -e '.[dev,local]'
	$(BIN)/python -m compileall -q -j 0 -x '$(COMPILE_SKIP)' $(VENV)/lib > /dev/null || true
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m retainwise.local.demo

# ruff (lint and format check) and mypy (pyproject.toml says how strict, per package); part of `make test`
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# lint first, so CI (.ci/run calls `make test`) fails on a lint or type error too. Both cores:
# a test module goes to one xdist worker whole (its module fixtures run once); the session's
# services (moto, Prefect API, MLflow store) start once per worker, and every test has its own
# home, bucket, queues and database, so the workers share nothing
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# the unit tests only (no moto, Prefect API, MLflow or stack): under a minute. tests/helpers_fast.py
# skips collecting the e2e-only files, puts the files that share one model fit in one xdist group
# (every other file is a group of its own, as with loadfile) and hands the slowest out first;
# schemathesis' plugin is for tests/retainwise/entrypoints/test_api_schema.py, an e2e test. The
# tests' temporary files go to memory where there is /dev/shm: migrating a SQLite test database is
# a dozen fsyncs (tests/retainwise/adapters/test_webhooks.py's SQLite set-ups: 11.5 s on the shared
# disk, 2.4 s in memory). Bytecode is written (__pycache__, git-ignored) even where
# PYTHONDONTWRITEBYTECODE=1 is set: else each worker, and each Python a test starts, compiles the
# repository's modules and pytest rewrites every test file again on every run (~1.5 CPU s a worker)
FAST_TMP := $(shell test -d /dev/shm && test -w /dev/shm && echo /dev/shm)
test-fast: $(STAMP)
	$(if $(FAST_TMP),TMPDIR=$(FAST_TMP)) PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -m "not e2e" -n 2 \
		--dist loadgroup --no-loadscope-reorder -p tests.helpers_fast -p no:schemathesis

# the readers under hypothesis for longer than `make test` does (figures in README.md)
fuzz: $(STAMP)
	RETAINWISE_FUZZ_EXAMPLES=$${RETAINWISE_FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest -q \
		tests/retainwise/uploads/test_fuzz.py -p no:cacheprovider --hypothesis-show-statistics

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

stack-up: $(STAMP)
	$(BIN)/retainwise stack up

stack-down: $(STAMP)
	$(BIN)/retainwise stack down

clean:
	-$(BIN)/retainwise stack down
	rm -rf .retainwise
