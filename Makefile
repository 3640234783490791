# Every target builds its own .venv from pyproject.toml, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/python -m examples.demo

# Each measurement runs in a fresh interpreter: with PYTHONDONTWRITEBYTECODE set (this
# machine sets it) every one compiled every module it imports, mid-run for the modules a
# run imports lazily (a recording's), which is no user's cost (issue 18).
BENCH_ENV := env -u PYTHONDONTWRITEBYTECODE

bench: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
