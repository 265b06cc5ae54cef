# untwine: every target creates/reuses .venv, installs torch 2.13.0 (CPU build here), then the package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.untwine-installed

.PHONY: demo test results-check bench gpu-check install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/untwine demo

test: $(STAMP)
	$(PY) -m pytest -q

# Every generated table in docs/results/*/*.md and the README, and every committed `untwine report` table
# (docs/results/**/tables/*.md), against the committed data it is made from (seconds; nothing is trained). Fails with a diff; `$(PY) scripts/results_tables.py --write` rewrites them.
results-check: $(STAMP)
	$(PY) scripts/results_tables.py --check

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# On a machine with CUDA (the GPU tests + bench_gpu.py, with that machine's python3 and PyTorch).
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) build src/*.egg-info
