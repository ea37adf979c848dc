# The two commands a fresh machine needs: `make pretext` and `make test` (both install first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline

.PHONY: install test test-quick lint pretext stats bench bench-train bench-probe linear-probe svm-probe suite report dashboard

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

bench-probe: install
	$(PY) benchmarks/bench_probe.py

# Linear probes on a frozen encoder: make linear-probe LAYER=conv4 CKPT=path [DATA=dir] [ARGS=...]
# (INIT=gaussian instead of CKPT for the random baseline; LAYER=all trains every layer in one pass)
LAYER ?= all
DATA ?= ../shared/data/imagenette
linear-probe: install
	$(PY) downstream/linear_probe.py layer=$(LAYER) data.root=$(DATA) \
		$(if $(CKPT),ckpt=$(CKPT)) $(if $(INIT),init=$(INIT)) $(ARGS)

svm-probe: install
	$(PY) downstream/svm_probe.py layer=$(LAYER) $(if $(CKPT),ckpt=$(CKPT)) $(if $(INIT),init=$(INIT)) $(ARGS)

# The benchmark suite (resumable): make suite SUITE=imagenette_cpu
SUITE ?= imagenette_cpu
suite: install
	$(PY) benchmarks/suite.py suite=$(SUITE) $(ARGS)

# The report of a results store (default: the committed imagenette_cpu suite's), written beside it:
# make report [STORE=outputs/suite/NAME/results.jsonl] [ARGS="--out DIR"]
report: install
	$(PY) benchmarks/report.py $(if $(STORE),--store $(STORE)) $(ARGS)

# Dashboards (HTML page + W&B report spec) from a results store: make dashboard [STORE=...] [ARGS="--out DIR"]
dashboard: install
	$(PY) -m benchmarks.dashboard $(if $(STORE),--store $(STORE)) $(ARGS)
