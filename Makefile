# hatcl: `make run` sets up .venv and runs the default experiment; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
APT_PACKAGES ?= dataset-fashion-mnist chromium
ARGS ?=
BIN := $(VENV)/bin

.PHONY: run install install-dev system-deps test lint bench clean

STAMP := $(shell date +%Y%m%d-%H%M%S)
RUN_DIR ?= runs/quickstart-$(STAMP)

# The default experiment (FG-AdaHAT), then HAT and fine-tuning on the same data and seed; ARGS
# (Hydra overrides, e.g. ARGS="data.num_tasks=2 trainer.max_epochs=1") go to all three runs.
# One sweep in one process: the start-up (importing torch and Lightning) is paid once, not three
# times; each run is the same as its own `hatcl run` (same files, same numbers).
run: install
	$(BIN)/hatcl run -m algorithm=fgadahat,hat,finetuning \
		'output_dir=$(RUN_DIR)/$${algorithm.name}' hydra.sweep.dir=$(RUN_DIR) $(ARGS)
	$(BIN)/hatcl compare $(RUN_DIR) --output $(RUN_DIR)/comparison.md

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, from the exact spec (a CPU wheel here), unless some torch is already importable.
# The install is editable (source edits need none) and redone only when pyproject.toml changed:
# the stamp file records the last one, so a second `make run` starts training at once.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	@touch $@

install-dev: $(BIN)/python system-deps
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"

# Debian packages used by the tests (Fashion-MNIST IDX files; Chromium renders the HTML reports);
# skipped where apt is unavailable.
system-deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q $(APT_PACKAGES) >/dev/null || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $(APT_PACKAGES); }; \
	else echo "apt-get not found: install $(APT_PACKAGES) by hand for the tests that use them"; fi

# The suite on TEST_WORKERS processes (pytest-xdist; a test file stays on one worker, so that its
# module fixtures are built once); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

test: install-dev
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15
	$(BIN)/ruff check src tests benchmarks

lint: install-dev
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/loop_overhead.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
