# roost: every target sets up its own virtualenv, so each works on a fresh machine by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py src/roost/protocol/_speedups.c | sha1sum | cut -c1-12)

.PHONY: venv demo test lint typecheck unit coverage-protocol compliance compliance-quick bench soak \
	cluster-test clean bench-scale

$(STAMP): pyproject.toml setup.py src/roost/protocol/_speedups.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.chat.app --host 127.0.0.1 --port 8080

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples compliance bench
	$(VENV)/bin/ruff format --check src tests examples compliance bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# roost.protocol reaches 100% line and branch coverage from tests/protocol alone, with the C
# accelerator and with its pure-Python fallback. The package is named by its directory: given a
# module name, coverage imports it before tracing and drops it again, and httptools' compiled
# parser then keeps the exception classes of the dropped import.
COVER_PROTOCOL := tests/protocol --cov=src/roost/protocol --cov-branch --cov-report=term-missing \
	--cov-fail-under=100

coverage-protocol: $(STAMP)
	$(PY) -m pytest -q $(COVER_PROTOCOL)
	ROOST_NO_EXTENSIONS=1 $(PY) -m pytest -q $(COVER_PROTOCOL)

unit: $(STAMP)
	$(PY) -m pytest -q
	ROOST_NO_EXTENSIONS=1 $(PY) -m pytest -q tests/protocol tests/integration/test_echo.py \
		tests/integration/test_bad_input.py
	ROOST_TEST_LOOP=uvloop $(PY) -m pytest -q tests/integration tests/hub

compliance-quick: $(STAMP)
	bash compliance/setup.sh
	$(PY) compliance/run.py --quick

compliance: $(STAMP)
	bash compliance/setup.sh
	$(PY) compliance/run.py --full

test: lint typecheck coverage-protocol compliance-quick unit

bench: $(STAMP)
	bash bench/setup.sh
	bench/.venv/bin/python bench/run.py
	bench/.venv/bin/python bench/history_cost.py
	bench/.venv/bin/python bench/latency.py --write
	if [ "$${ROOST_BENCH_SCALE:-0}" = 1 ]; then bench/.venv/bin/python bench/scale.py --write; fi

# Optional (about 3 minutes, not part of make bench unless ROOST_BENCH_SCALE=1): 2,500 to
# 39,000 connections, memory, handshakes and broadcast time; updates docs/benchmarks.md.
bench-scale: $(STAMP)
	bash bench/setup.sh
	bench/.venv/bin/python bench/scale.py --write

soak: $(STAMP)
	$(PY) -m tests.integration.soak
	ROOST_SOAK=1 $(PY) -m pytest -q -m soak tests/attack tests/attack2

# Redis and three nodes, each in its own network namespace (root and iproute2 needed); writes
# the run's results to docs/cluster-test.md.
cluster-test: $(STAMP)
	ROOST_CLUSTER=1 ROOST_CLUSTER_REPORT=docs/cluster-test.md $(PY) -m pytest -q tests/cluster

clean:
	rm -rf $(VENV) build src/*.egg-info src/roost/protocol/*.so .coverage bench/cload/cload
