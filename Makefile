# The two quick-start commands are `make bench` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCENARIO ?= scenarios/quick.toml

.PHONY: venv bench test test-e2e test-all gate gate-baseline lint format perf perf-peers perf-report conform conform-node node-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Run the quick benchmark, print the summary and write report.html.
bench: $(STAMP)
	$(BIN)/rtbench run $(SCENARIO)

## ruff, then every test but the end-to-end ones (a few minutes).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not e2e"

## The end-to-end tests only: whole runs, locust, killed processes, a browser.
test-e2e: $(STAMP)
	$(BIN)/pytest -m e2e

## Everything: what CI runs.
test-all: test test-e2e

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

## rtbench's clients side by side with wrk, h2load and node's ws (benchmarks/peers.py,
## pinned, interleaved rounds); installs wrk and nghttp2-client (apt, as root) and ws
## (npm ci) when missing.
## Pass options with PEERS_ARGS, e.g. PEERS_ARGS="--rounds 4 --duration 4".
PEERS_ARGS ?=
perf-peers: $(STAMP)
	@for tool in wrk:wrk h2load:nghttp2-client; do \
		cmd=$${tool%%:*}; pkg=$${tool#*:}; \
		command -v $$cmd >/dev/null 2>&1 && continue; \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "perf-peers: installing $$pkg (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null 2>&1 || \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg; }; \
		fi; \
		command -v $$cmd >/dev/null 2>&1 || { \
			echo "perf-peers: $$cmd is missing and cannot be installed here; as root: apt-get install $$pkg" >&2; \
			exit 2; }; \
	done
	@test -f benchmarks/peers/node_modules/ws/package.json || { \
		command -v npm >/dev/null 2>&1 || { \
			echo "perf-peers: node and npm are missing; as root: apt-get install nodejs npm" >&2; \
			exit 2; }; \
		echo "perf-peers: installing node's ws (npm ci in benchmarks/peers)"; \
		(cd benchmarks/peers && npm ci --no-audit --no-fund) || { \
			echo "perf-peers: npm ci failed in benchmarks/peers; see the message above" >&2; \
			exit 2; }; }
	$(BIN)/python benchmarks/peers.py $(PEERS_ARGS)

## `rtbench report` on a synthetic run of 10 million samples (benchmarks/reportscale.py,
## generated once into /tmp/rtbench-reportscale): prints wall time, peak RSS and where the
## time goes; exit 1 over 30 s or 2 GB. Options with REPORT_ARGS, e.g. REPORT_ARGS="--no-profile".
REPORT_ARGS ?=
perf-report: $(STAMP)
	$(BIN)/python -m benchmarks.reporttime $(REPORT_ARGS)

## The performance gate on this machine: run scenarios/ci.toml and compare it with the
## committed baseline baselines/ci (exit 1 on a regression beyond the noise, 2 when the
## runs cannot be compared, e.g. another machine type). GATE_LIMITS adds --max-regression specs.
GATE_LIMITS ?= p50:+50% p99:+50% throughput:-15%
gate: $(STAMP)
	rm -rf results/gate
	$(BIN)/rtbench run scenarios/ci.toml --out results/gate --no-progress
	$(BIN)/rtbench compare ci results/gate --out results/gate $(foreach l,$(GATE_LIMITS),--max-regression $(l))

## Record baselines/ci anew (on a quiet machine, the one the gate runs on), then commit it.
gate-baseline: $(STAMP)
	rm -rf results/ci
	$(BIN)/rtbench run scenarios/ci.toml --out results/ci --no-progress
	$(BIN)/rtbench baseline save results/ci --name ci --force

## `rtbench conform` against every server rtbench ships (docs/protocol.md); exit 1 if one
## does not conform.
conform: $(STAMP)
	@for kind in http ws-aiohttp ws-websockets http-uvicorn http-hypercorn http-granian; do \
		$(BIN)/rtbench conform --no-progress -- $(BIN)/python -m servers $$kind || exit 1; \
	done

## The node reference server's npm dependencies (npm ci in servers/node, from its lock file).
NODE_SERVER := servers/node
node-deps: $(NODE_SERVER)/node_modules/.package-lock.json

$(NODE_SERVER)/node_modules/.package-lock.json: $(NODE_SERVER)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "node-deps: node and npm are missing; as root: apt-get install nodejs npm" >&2; \
		exit 2; }
	cd $(NODE_SERVER) && npm ci --no-audit --no-fund

## The node reference server checked by `rtbench conform` (exit 0 when it conforms).
conform-node: $(STAMP) node-deps
	$(BIN)/rtbench conform --no-progress -- node $(NODE_SERVER)/server.js

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
