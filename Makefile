# One command each: `make demo` (install + run the pipeline) and `make test` (install + run the tests).
# Offline, point the demo at a local CIFAR-10 archive: make demo ARCHIVE=../shared/datasets/cifar10-jpg.tar.gz
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
SKY_VENV := .venv-sky
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install sky lock demo study full test bench mlflow-ui

install: $(VENV)/.installed

# The lock is all that is installed (hashes checked, no resolution); a changed lock rebuilds the environment, so
# the venv holds exactly what the lock lists (tests/test_environment.py checks it against `pip freeze`).
$(VENV)/.installed: requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# SkyPilot's own environment (cluster/requirements-skypilot.txt says why): `$(SKY_VENV)/bin/sky launch ...`.
sky: $(SKY_VENV)/.installed

$(SKY_VENV)/.installed: cluster/requirements-skypilot.lock
	rm -rf $(SKY_VENV)
	$(PYTHON) -m venv $(SKY_VENV)
	$(SKY_VENV)/bin/python -m pip install -q --require-hashes --no-deps -r cluster/requirements-skypilot.lock
	touch $@

# Resolve the intent files into the locks, for the machines the project runs on (Linux x86-64, Python 3.11).
# Versions already locked are kept where the intent still allows them; UPGRADE=1 takes the newest of everything.
# Then `make test` (which reinstalls from the new lock) and commit the intent file and its lock together.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock: install
	$(LOCK) requirements.txt -o requirements.lock
	$(LOCK) cluster/requirements-skypilot.txt -o cluster/requirements-skypilot.lock

# ARCHIVE is remembered for this clone (conf/local/settings.yaml, git-ignored, composed after the preset), so the
# README's later `dvc exp run -S ...` read the same archive. Each run is a DVC experiment, shown by `dvc exp show`.
demo: install
ifdef ARCHIVE
	$(BIN)/synthaug local 'fetch.archive=$(abspath $(ARCHIVE))'
endif
	$(BIN)/synthaug check
	dvc exp run
	dvc metrics show

# The study preset: both trained generators long enough to learn, the CNN trained until validation macro-F1 stops
# rising. Its time is in docs/benchmarks.md.
study: install
ifdef ARCHIVE
	$(BIN)/synthaug local 'fetch.archive=$(abspath $(ARCHIVE))'
endif
	$(BIN)/synthaug check preset=study
	dvc exp run -S preset=study

# The reference-scale experiment (hours on a CPU): ViT 224/16, 10 epochs, all of imbalanced CIFAR-10.
full: install
ifdef ARCHIVE
	$(BIN)/synthaug local 'fetch.archive=$(abspath $(ARCHIVE))'
endif
	$(BIN)/synthaug check preset=full
	dvc exp run -S preset=full

# The type checker (mypy over src/), lint and format check first (configured in pyproject.toml; .pre-commit-config.yaml
# runs the same before a commit), then the tests. pytest exits 5 when it collects no test: make fails then, as it
# should. Two workers, one file each, handed out in collection order: the e2e module (one dvc repository shared by its
# tests) and the cluster fan-out start first, one per worker (tests/conftest.py, SLOWEST_FIRST), and the unit tests
# fill in around them.
test: install sky
	$(BIN)/mypy
	$(BIN)/ruff check src stages tests bench
	$(BIN)/ruff format --check src stages tests bench
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The CPU benchmarks, one after the other: each prints its table and writes its
# section of metrics/bench.json. GPU-only (bench/sdxl_full.py; bench/models.py's ddpm_sample and inception) and
# whole-DAG (bench/pipeline.py) ones: see docs/benchmarks.md.
bench: install
ifndef ARCHIVE
	$(error make bench needs ARCHIVE=<CIFAR-10 ImageFolder tarball>)
endif
	$(BIN)/python bench/input_pipeline.py --archive $(ARCHIVE)
	$(BIN)/python bench/input_pipeline.py --archive $(ARCHIVE) --image-size 224 --images 2048 --batch-size 32
	$(BIN)/python bench/scaling.py --archive $(ARCHIVE)
	$(BIN)/python bench/models.py --cases vit224 vit32 cnn ddpm_train gan_train gan_sample --repeats 3
	$(BIN)/python bench/synthesize.py

# The address opens the experiment on its runs (MLflow 3.17's UI otherwise starts on its GenAI overview).
mlflow-ui: install
	@echo "open http://127.0.0.1:5000/$$($(BIN)/python -c 'from synthaug.core.tracking import UI_PATH; print(UI_PATH)')"
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000
