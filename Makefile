# The two quick-start commands are `make bench` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCENARIO ?= scenarios/quick.toml

.PHONY: venv bench test lint format perf clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Run the quick benchmark, print the summary and write report.html.
bench: $(STAMP)
	$(BIN)/rtbench run $(SCENARIO)

## ruff, then the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

## Micro-benchmarks (benchmarks/, never collected by `make test`): each run is saved in
## .benchmarks/ and compared with the previous save, failing when a mean got 25% slower.
## The first run on a machine only saves.
PERF_ARGS := --benchmark-only --benchmark-autosave --benchmark-sort=name
perf: $(STAMP)
	@id=$$($(BIN)/python -c 'from pytest_benchmark.utils import get_machine_id; print(get_machine_id())'); \
	if ls .benchmarks/$$id/*.json >/dev/null 2>&1; then \
		$(BIN)/pytest benchmarks $(PERF_ARGS) --benchmark-compare --benchmark-compare-fail=mean:25%; \
	else \
		echo "perf: no saved run in .benchmarks/$$id yet: this run becomes the reference"; \
		$(BIN)/pytest benchmarks $(PERF_ARGS); \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
