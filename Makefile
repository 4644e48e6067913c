# affectlite: `make demo` sets everything up and runs the whole flow; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,edge,dev

.PHONY: setup demo test lint clean default-bundle pi-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# The tests also train on Keras' JAX backend: `make test` adds the jax extra (`make demo` does not
# need it).
$(VENV)/.installed-jax: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[$(EXTRAS),jax]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/affectlite demo

test: $(VENV)/.installed-jax
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The shipped default bundle, rebuilt from FER+ (about 2.5 h on 2 CPU cores; see
# benchmarks/RESULTS.md): train the compact CNN (30 epochs), continue it with square-root class
# weights (22 epochs, `--init`), convert to int8 with a logit adjustment chosen on the held-out
# 10 % of FER2013Train, score FER2013Valid once, publish into edge_app/models/default.
FERPLUS ?= ../shared/data/ferplus
RUN ?= runs/ferplus-compact-48
AFFECTLITE := $(VENV)/bin/affectlite
FERPLUS_ARGS := --data $(FERPLUS) --format ferplus --ferplus-mode probability --holdout 0.1
RECIPE := --backbone compact --input-size 48 --weights none --batch-size 256 --weight-decay 0.05 \
  --label-smoothing 0.05 --mixed-precision off
default-bundle: setup
	$(AFFECTLITE) train $(FERPLUS_ARGS) $(RECIPE) --epochs 30 --learning-rate 0.0015 \
	  --balance none --dropout 0.4 --out $(RUN)
	$(AFFECTLITE) train $(FERPLUS_ARGS) $(RECIPE) --init $(RUN)/best.keras --epochs 22 \
	  --learning-rate 0.0008 --balance sqrt --dropout 0.3 --out $(RUN)-ft
	$(AFFECTLITE) convert --model $(RUN)-ft/best.keras --mode int8 $(FERPLUS_ARGS) --n 500 \
	  --logit-adjust --out $(RUN)-ft/int8
	$(AFFECTLITE) evaluate --model $(RUN)-ft/int8 --data $(FERPLUS) --format ferplus --split val \
	  --json $(RUN)-ft/ferplus-valid.json
	$(PY) -m affectlite.convert.publish $(RUN)-ft/int8 $(RUN)-ft/ferplus-valid.json \
	  --name ferplus_valid

# The Raspberry Pi install and run, checked in emulated arm64 Debian Bookworm and Trixie (root,
# debootstrap, qemu-user-static, network; root file systems cached in ~/.cache/affectlite).
# Compares labels with this machine; summary in benchmarks/results/pi-check-<date>/.
PI_CHECK_ARGS ?=
pi-check: setup
	$(PY) -m affectlite.benchmarks.pi_check $(PI_CHECK_ARGS)
