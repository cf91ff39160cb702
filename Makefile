# splitroute.vpn: `make test` (everything CI checks) and `make demo` (the lab).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := true
export PYTHONPATH := $(CURDIR)/.cache/collections
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONNECTION_PLUGINS := $(CURDIR)/lab/plugins/connection
COLL := $(CURDIR)/.cache/collections/ansible_collections/splitroute/vpn

.PHONY: deps test lint sanity pytest molecule demo lab-image lab-up lab-down bench docs clean

deps:
	@bash scripts/bootstrap.sh

test: deps lint sanity pytest molecule

lint: deps
	yamllint -s .
	ruff check .
	ruff format --check .
	ansible-lint --profile production

sanity: deps
	bash scripts/sanity.sh

pytest: deps
	pytest -p no:cacheprovider tests/unit tests/integration

molecule: deps
	bash scripts/molecule.sh

demo: deps
	bash lab/demo.sh

lab-image: deps
	bash lab/image.sh

lab-up: deps
	bash lab/lab.sh up

lab-down: deps
	bash lab/lab.sh down

bench: deps
	bash benchmarks/run.sh

docs: deps
	python scripts/gen_docs.py

clean:
	rm -rf .cache tests/output
