# Two commands on a fresh machine: `make train` and `make test`. Both install on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= data/synthetic
# torch/torchvision pair that installs from the wheels on these machines.
ARCH := $(shell uname -m)
ifeq ($(ARCH),aarch64)
TORCH_PAIR ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
endif
TEST_ARGS ?=
# make test: one pytest-xdist worker per logical CPU; a test file stays on one worker (its module fixtures are shared)
TEST_WORKERS ?= logical
# The TensorFlow/Keras reference of `make bench` lives in its own venv (scripts/make_tf_venv.sh).
TF_VENV ?= .venv-tf
KERAS_ARGS ?=

.PHONY: install test-deps data train eval test test-all docs bench bench-keras tf-venv lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PAIR)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Synthetic SALICON-like, Imp1k-like and GDI-like trees, written once (deterministic for the seed); a no-op when
# they are complete.
data: install
	$(VENV)/bin/umsi-make-synthetic --out $(DATA_DIR)

# The main job: pretrain -> best checkpoint -> finetune -> evaluation, on the synthetic data, on the CPU.
train: data
	$(VENV)/bin/umsi-train $(ARGS)

# Tables 1-4 of the paper for the newest `make train` run (synthetic SALICON val, GDI, Imp1k val).
eval: data
	$(VENV)/bin/umsi-eval $(ARGS)

# The system packages the tests need (Debian's chromium + chromium-driver for the browser test of the serve page),
# installed with apt-get when missing; without root or apt-get it stops here, naming them and the command.
test-deps:
	@scripts/test_system_deps.sh

test: test-deps install
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(TEST_ARGS)

test-all: test-deps install
	WANDB_MODE=disabled $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(TEST_ARGS)

# Benchmarks: framework vs plain loop, inference, data pipeline, metrics -> outputs/bench/<date>/bench.{json,md}
# (GPU when present; a few minutes on a 2-core CPU).
bench: install
	WANDB_MODE=disabled $(VENV)/bin/umsi-bench $(ARGS)
	$(PY) scripts/bench_keras.py --tf-python $(TF_VENV)/bin/python $(KERAS_ARGS)

# CPU inference against the released network in Keras/TF, side by side (skips when $(TF_VENV) is missing):
# outputs/bench/<date>/keras.{json,md}. KERAS_ARGS="--h5 path/to/released.h5" for the real weights.
bench-keras: install
	$(PY) scripts/bench_keras.py --tf-python $(TF_VENV)/bin/python $(KERAS_ARGS)

# TensorFlow 2.21 CPU + h5py in $(TF_VENV) (git-ignored; ~1.6 GB), for bench-keras.
tf-venv:
	PYTHON=$(PYTHON) scripts/make_tf_venv.sh $(TF_VENV)

# The documentation site (docs/, mkdocs.yml) -> site/; --strict: a broken link or reference fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) outputs site .pytest_cache .ruff_cache
