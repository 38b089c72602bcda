# Two commands matter: `make demo` and `make test`. Both build .venv first if it is missing or stale.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast fuzz bench stack-up stack-down clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --system-certs --python $(BIN)/python -c constraints.txt -e '.[dev,local]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m retainwise.local.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the unit tests only (no moto, Prefect API, MLflow or stack): under a minute
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e" -n 2

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
