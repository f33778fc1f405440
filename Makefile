# Two commands a newcomer needs (each sets up its own environment first):
#   make run    execute the notebook series (ENV=cpu|gpu|openvino, PROFILE=full|test)
#   make test   unit tests + every notebook in the test profile (ENVS=all|cpu|gpu|openvino)
# More: make setup (environments + kernels), make models (one-time builds), make lab, make kernels, make lock, make site, make lint.
# PYTHON=python3.12 picks the interpreter (3.11-3.13) the environments are made with (without it,
# an environment already made keeps its Python; new ones use python3);
# PYTHON_ENV=$CONDA_PREFIX uses an existing environment instead of .venvs/ (make setup completes
# it, run and test use it as it is); TORCH=cpu installs PyTorch's CPU-only build (Linux).
ENV ?= cpu
ENVS ?= all
PROFILE ?= full
PYTHON ?= python3
# Set when PYTHON came from the command line or the environment, not from the default above.
PYTHON_CHOSEN := $(if $(filter file,$(origin PYTHON)),,$(PYTHON))
# pip or uv (default: scripts/suite.py's choice); e.g. `make setup INSTALLER=uv`
INSTALLER ?=
PYTHON_ENV ?=
TORCH ?=
export INSTALLER PYTHON_ENV TORCH PYTHON_CHOSEN
SUITE = $(PYTHON) scripts/suite.py

.PHONY: run test setup models lab kernels lock site lint

run:
	$(SUITE) run --env $(ENV) --profile $(PROFILE)

test:
	$(SUITE) test --env $(ENVS)

setup:
	$(SUITE) setup --env $(ENVS)

# The one-time builds (QA fine-tune, SmolLM2 conversion, timing graphs); make run and make test do
# this first, so it is only needed to prepare a classroom's cache ahead.
models:
	$(SUITE) models --env $(ENV) --profile $(PROFILE)

lab:
	$(SUITE) lab --env $(ENV)

# Register the kernels of the environments already set up, for your user as well (every Jupyter
# front end then finds them); `make setup` does this too.
kernels:
	$(SUITE) kernels --env $(ENVS)

# Regenerate requirements/lock/<env>.txt from clean resolves (after changing requirements/).
lock:
	$(SUITE) lock --env $(ENVS)

site:
	.venvs/$(ENV)/bin/python -m helpers.course.site

lint:
	.venvs/cpu/bin/ruff check .
