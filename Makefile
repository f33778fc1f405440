# Two commands a newcomer needs (each sets up its own environment first):
#   make run    execute the notebook series (ENV=cpu|gpu|openvino, PROFILE=full|test)
#   make test   unit tests + every notebook in the test profile (ENVS=all|cpu|gpu|openvino)
ENV ?= cpu
ENVS ?= all
PROFILE ?= full
PYTHON ?= python3

.PHONY: run test setup lab site lint

run:
	$(PYTHON) scripts/suite.py run --env $(ENV) --profile $(PROFILE)

test:
	$(PYTHON) scripts/suite.py test --env $(ENVS)

setup:
	$(PYTHON) scripts/suite.py setup --env $(ENVS)

lab:
	$(PYTHON) scripts/suite.py lab --env $(ENV)

site:
	.venvs/$(ENV)/bin/python -m helpers.site

lint:
	.venvs/cpu/bin/ruff check .
