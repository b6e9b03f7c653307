# Each target sets up what it needs: a virtual environment in .venv with the CPU build of
# torch pinned first (any other torch version pulls a multi-GB CUDA build), then clasr.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.clasr-installed
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test test-slow bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## The default job: tiny.en through AN4 → ARCTIC (bundled mini sets) with FT and with FTA.
demo: setup
	$(VENV)/bin/clasr run examples/demo.yaml --strategy ft --output results/demo-ft
	$(VENV)/bin/clasr run examples/demo.yaml --strategy fta --output results/demo-fta

## The test suite (what CI runs). Tests needing ../shared/data skip when it is absent.
test: setup
	$(PY) -m pytest -m "not slow" -q

test-slow: setup
	$(PY) -m pytest -m slow -q

clean:
	rm -rf results .pytest_cache
