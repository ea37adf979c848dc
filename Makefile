# The two commands a fresh machine needs: `make pretext` and `make test` (both install first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline

.PHONY: install test test-quick lint pretext stats bench bench-train

install: $(STAMP)

# torch and torchvision first, pinned: an unpinned resolve would pull several GB of CUDA wheels.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-quick: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .

# The main job on the embedded sample photos, a few minutes on 2 CPU cores; ARGS adds overrides.
pretext: install
	$(PY) pretext/train.py experiment=demo $(ARGS)

stats: install
	$(PY) pretext/stats.py $(ARGS)

bench: install
	$(PY) benchmarks/bench_color.py

bench-train: install
	$(PY) benchmarks/bench_train.py
