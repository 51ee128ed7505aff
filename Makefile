# The course's commands. `make lab` and `make test` work on a fresh clone with only
# python3 (3.11+), pip and make: both create .venv on first use, and first install the
# command-line tools they need (nc, telnet, curl, ...; tools/system-tools.sh, apt-get).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_ARGS ?=
# Jupyter refuses to run as root unless told; CI and containers often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
NBVAL := --nbval --ignore=notebooks/scratch --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=60
LINTED := helpers tests bench tools conftest.py
WORKERS ?= 4
LEARNERS ?= 4
ROUNDS ?= 1

.PHONY: help install system-tools system-tools-lab lab test test-timings lint tests-and-notebooks unit nbval notebooks bench \
	class-check binder-check ipykernel629-check clean

help:
	@echo "make lab          start JupyterLab at notebook 00 (creates .venv on first use)"
	@echo "make test         lint, unit tests of helpers, strict nbval on every notebook"
	@echo "make system-tools install the tools notebooks and tests run (nc, telnet, curl, ss,"
	@echo "                  iperf3, chromium) with apt-get; make lab/test do it first"
	@echo "make test-timings where make test spends its time (slowest tests)"
	@echo "make notebooks    re-execute every notebook and store its outputs"
	@echo "make bench        benchmarks that print figures (not tests)"
	@echo "make class-check  LEARNERS copies of the course run strict nbval at once, ROUNDS times"
	@echo "make binder-check replay Binder's install without Docker and test in it"

$(STAMP): binder/requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Every tool (the tests'), or only those the notebooks run (lab). Quick and silent when all
# are there; otherwise one line says what is installed and why, or what command to run.
system-tools:
	@bash tools/system-tools.sh test

system-tools-lab:
	@bash tools/system-tools.sh lab

# The file browser starts at the repository root (helpers/ and notebooks/ both in
# reach) with notebook 00 open. jupyter/ is the course's own Jupyter config, searched
# before ~/.jupyter (and not replacing it): it turns JupyterLab's news pop-up off.
lab: system-tools-lab $(STAMP)
	exec env JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) \
		$(LAB_ARGS) notebooks/00-welcome.ipynb

# `make test` prints its time at the end; `make test-timings` shows where it goes.
# lint, then the unit tests and strict nbval of every notebook in one parallel run
# (pytest-xdist, one file at a time per worker: conftest.py says how they share the
# machine, and why the kernels talk over IPC). `make unit` and `make nbval` run a part.
test: system-tools $(STAMP)
	@start=$$(date +%s); $(MAKE) --no-print-directory lint tests-and-notebooks && \
	echo "make test: passed in $$(( $$(date +%s) - start )) s"

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

tests-and-notebooks: system-tools $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile $(NBVAL) tests notebooks

unit: system-tools $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile tests

test-timings: system-tools $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile $(NBVAL) --durations=40 tests notebooks

nbval: system-tools $(STAMP)
	$(BIN)/python -m pytest -q $(NBVAL) notebooks

notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py notebooks/*.ipynb

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

class-check: system-tools $(STAMP)
	bash tools/class-check.sh $(LEARNERS) $(ROUNDS)

binder-check:
	bash tools/binder-check.sh

ipykernel629-check:
	bash tools/ipykernel629-check.sh

clean:
	rm -rf $(VENV) .venv-binder .venv-ipk629 artifacts notebooks/scratch
