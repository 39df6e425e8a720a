# advsr: `make demo` and `make test` set everything up in .venv by themselves.
#
# TORCH picks the torch build (default: the CPU wheel torch==2.13.0). GPU users, e.g.:
#   make test TORCH="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX_URL ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.advsr-installed
TORCH_ARGS := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)

.PHONY: venv demo test lint typecheck bench clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, so that no dependency can pull another (CUDA) build
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(TORCH_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,imagenet,ray,browser]"
	# the oldest Typer advsr allows, beside the venv, for tests/test_hardening.py
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/typer-oldest \
		"typer==0.12.5" "click==8.1.7"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/advsr demo

# one worker per core, one torch thread per worker: no oversubscription on a busy machine
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/resize_metrics.py
	$(BIN)/python benchmarks/sr_models.py
	$(BIN)/python benchmarks/attack_overhead.py
	$(BIN)/python benchmarks/attack_memory.py
	$(BIN)/python benchmarks/attack_speed.py
	$(BIN)/python benchmarks/apgd_speed.py
	$(BIN)/python benchmarks/defense_speed.py
	$(BIN)/python benchmarks/perceptual_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache advsr-results.sqlite*

# the documentation site (docs/, mkdocs.yml) into build/docs; --strict turns every warning
# (a broken link or anchor, a page missing from the nav, a docstring Griffe cannot read) into
# a failure. The docs extra holds no torch: the venv's own torch stays.
DOCS_STAMP := $(VENV)/.advsr-docs-installed

.PHONY: docs docs-serve

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@# mkdocs-click renders an empty option list without a warning if it cannot read them
	@grep -q -- '--store' build/docs/cli.html || \
		{ echo "make docs: the CLI reference (build/docs/cli.html) lists no options"; exit 1; }

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# a wheel and an sdist of advsr into $(DIST) with `python -m build` (the sdist first, the
# wheel built from it, in an isolated build environment that pip fills from the index:
# setuptools only, no torch). `make check-dist` then installs that wheel, not editable, in a
# fresh venv outside the checkout (torch first, as above) and runs the demo from it.
DIST ?= dist
BUILD_STAMP := $(VENV)/.advsr-build-installed

.PHONY: dist check-dist

$(BUILD_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet "build>=1.0"
	@touch $(BUILD_STAMP)

dist: $(BUILD_STAMP)
	rm -rf $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .
	@ls -l $(DIST)

check-dist: dist
	PYTHON="$(PYTHON)" TORCH="$(TORCH)" TORCH_INDEX_URL="$(TORCH_INDEX_URL)" \
		bash tools/check_wheel.sh $(DIST)
