# Everything a fresh machine needs: `make demo` and `make test` build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv sim bench bench-calls crash-loop clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo

# The suite mostly waits (subprocess daemons, simulators): 6 xdist workers even on 2 cores
# (1,045 tests: 6 m 43 s with 4 workers, 5 m 15 s with 6 on this 2-core machine, idle).
# --maxschedchunk 1: tests are handed out one at a time, so the longest ones (collected
# first: tests/conftest.py SLOW_FIRST) start on different workers; by default each worker
# took a block of ~50 consecutive tests and one worker got every long one.
TEST_WORKERS ?= 6
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -n $(TEST_WORKERS) --maxschedchunk 1 $(PYTEST_ARGS)

sim: $(STAMP)
	$(BIN)/syncd sim

bench: $(STAMP)
	$(BIN)/python bench/propagation.py

# Every benchmark at its default (bounded) size, one after the other: ~10 minutes.
# A bench exits 1 when a goal is not met; "-" runs the others anyway.
bench-all: $(STAMP)
	-$(BIN)/python bench/propagation.py
	-$(BIN)/python bench/throughput.py
	-$(BIN)/python bench/backlog.py
	-$(BIN)/python bench/links_scale.py

# Vendor calls, polls and echoes counted (issue 16): ~10 minutes.
bench-calls: $(STAMP)
	-$(BIN)/python bench/propagation.py --polls
	-$(BIN)/python bench/escalation.py
	-$(BIN)/python bench/fanout.py
	-$(BIN)/python bench/idle.py

# Long seeded crash loop (issue 5): SEED=n ROUNDS=n; CI runs a 3-round one in the tests.
ROUNDS ?= 40
crash-loop: $(STAMP)
	$(BIN)/python bench/crash_loop.py --rounds $(ROUNDS) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) build *.egg-info
