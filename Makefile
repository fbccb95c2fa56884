# roomtrust: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: all venv demo test bench lint format fuzz up down status clean image

all: venv

$(UV):
	python3 -m pip install --user --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

venv: $(VENV)/.synced

demo: venv
	$(VENV)/bin/roomtrust up
	$(VENV)/bin/roomtrust fleet run scenarios/smoke.yaml
	$(VENV)/bin/roomtrust demo

test: venv
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

fuzz: venv
	ROOMTRUST_FUZZ_EXAMPLES=100 $(VENV)/bin/pytest -q --timeout=3600 tests/meeting/test_meeting_fuzz.py

bench: venv
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Containerfile
	$(VENV)/bin/lint-imports

# The services' image, with buildah (no container engine needed). IMAGE_BASE: a base image with
# Python 3.11; `tools/container/debian-base.sh` builds one from Debian's packages.
IMAGE_BASE ?= localhost/roomtrust/base:bookworm
image:
	buildah --storage-driver vfs bud --isolation chroot --format docker \
		--build-arg BASE=$(IMAGE_BASE) -t localhost/roomtrust/dm:$$(git rev-parse --short HEAD) .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

up: venv
	$(VENV)/bin/roomtrust up

down: venv
	$(VENV)/bin/roomtrust down

status: venv
	$(VENV)/bin/roomtrust status

clean:
	-$(VENV)/bin/roomtrust down
	rm -rf .roomtrust reports/out
