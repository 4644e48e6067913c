# affectlite: `make demo` sets everything up and runs the whole flow; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,edge,dev

.PHONY: setup demo test lint clean default-bundle resnet50-bundle resnet50-offline pi-check

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

# The card's ResNet50 (issue 21), as a second shipped bundle, `resnet50`: from scratch at 96 px
# (ImageNet weights are not fetched) on Keras' JAX backend, on a GPU (pip install 'jax[cuda12]';
# a plain script of this recipe took 161 s on one H200), then converted, scored and published as
# default-bundle is. The kept epoch is the one with the best hold-out macro-F1; FER2013Valid is
# scored once, after it is chosen. A GPU machine with no package index or no TensorFlow:
# `make resnet50-offline` here, then docs/gpu-offline.md (remote there, finish here, publish).
R50_RUN ?= runs/ferplus-resnet50-96
R50_STAGE := --backbone resnet50 --input-size 96 --weights none --batch-size 256 --epochs 80 \
  --learning-rate 0.002 --warmup-epochs 3 --weight-decay 0.05 --label-smoothing 0.1 \
  --mixed-precision bf16 --balance none --dropout 0.3
resnet50-bundle: $(VENV)/.installed-jax
	$(AFFECTLITE) train --backend jax $(FERPLUS_ARGS) $(R50_STAGE) --out $(R50_RUN)
	$(AFFECTLITE) convert --model $(R50_RUN)/best.keras --mode int8 $(FERPLUS_ARGS) --n 500 \
	  --logit-adjust --out $(R50_RUN)/int8
	$(AFFECTLITE) evaluate --model $(R50_RUN)/int8 --data $(FERPLUS) --format ferplus --split val \
	  --json $(R50_RUN)/ferplus-valid.json
	$(PY) -m affectlite.convert.publish $(R50_RUN)/int8 $(R50_RUN)/ferplus-valid.json \
	  --name ferplus_valid --dest edge_app/models/resnet50

resnet50-offline: setup
	$(PY) -m affectlite.train.offline_gpu prepare --data $(FERPLUS) --stage "$(R50_STAGE)"

# The Raspberry Pi install and run, checked in emulated arm64 Debian Bookworm and Trixie (root,
# debootstrap, qemu-user-static, network; root file systems cached in ~/.cache/affectlite).
# Compares labels with this machine; summary in benchmarks/results/pi-check-<date>/.
PI_CHECK_ARGS ?=
pi-check: setup
	$(PY) -m affectlite.benchmarks.pi_check $(PI_CHECK_ARGS)
