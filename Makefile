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

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/affectlite demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The shipped default bundle, rebuilt from FER+ (about 90 min on 2 CPU cores; see
# benchmarks/RESULTS.md): train the compact CNN, convert to int8 with a logit adjustment chosen on
# the held-out 10 % of FER2013Train, score FER2013Valid once, publish into edge_app/models/default.
FERPLUS ?= ../shared/data/ferplus
RUN ?= runs/ferplus-compact-48
AFFECTLITE := $(VENV)/bin/affectlite
default-bundle: setup
	$(AFFECTLITE) train --data $(FERPLUS) --format ferplus --ferplus-mode probability \
	  --holdout 0.1 --backbone compact --input-size 48 --weights none --epochs 30 \
	  --batch-size 256 --learning-rate 0.0015 --weight-decay 0.05 --label-smoothing 0.05 \
	  --balance none --dropout 0.4 --mixed-precision off --out $(RUN)
	$(AFFECTLITE) convert --model $(RUN)/best.keras --mode int8 --data $(FERPLUS) --format ferplus \
	  --ferplus-mode probability --holdout 0.1 --n 500 --logit-adjust --out $(RUN)/int8
	$(AFFECTLITE) evaluate --model $(RUN)/int8 --data $(FERPLUS) --format ferplus --split val \
	  --json $(RUN)/ferplus-valid.json
	$(PY) -m affectlite.convert.publish $(RUN)/int8 $(RUN)/ferplus-valid.json --name ferplus_valid

# The Raspberry Pi install and run, checked in emulated arm64 Debian Bookworm and Trixie (root,
# debootstrap, qemu-user-static, network; root file systems cached in ~/.cache/affectlite).
# Compares labels with this machine; summary in benchmarks/results/pi-check-<date>/.
PI_CHECK_ARGS ?=
pi-check: setup
	$(PY) -m affectlite.benchmarks.pi_check $(PI_CHECK_ARGS)
