# Two commands matter: `make demo` and `make test`. Both build .venv first if it is missing or stale.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast bench stack-up stack-down clean

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
	$(BIN)/python -m pytest -q -m "not e2e"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

stack-up: $(STAMP)
	$(BIN)/retainwise stack up

stack-down: $(STAMP)
	$(BIN)/retainwise stack down

clean:
	-$(BIN)/retainwise stack down
	rm -rf .retainwise
