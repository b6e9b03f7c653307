# Each target sets up what it needs: a virtual environment in .venv with the CPU build of
# torch pinned first (any other torch version pulls a multi-GB CUDA build), then clasr.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.clasr-installed
# Test-only oracle: curvlinops (K-FAC reference). Installed without its declared dependencies
# because backpack-for-pytorch asks for torchvision, which would replace the pinned CPU torch;
# the parts the tests use need only these packages.
ORACLES := curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 linear_operator==0.6.1 \
	einops==0.8.2 opt-einsum==3.4.0 einconv==0.1.0 unfoldNd==0.2.3 tqdm scipy
# Mutation-testing tool for `make mutate` (test-only, like the oracles).
MUTMUT := mutmut>=3.8,<4
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test test-slow mutate clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) -m pip install --quiet --no-deps $(ORACLES)
	touch $(STAMP)

setup: $(STAMP)

## The default job: the built-in synthetic benchmark (made once into the cache), tiny.en
## adapted domain after domain with FT, FTA and IHR, one table and a report in results/demo/.
demo: setup
	$(VENV)/bin/clasr demo --output results/demo

## The test suite (what CI runs). Tests needing ../shared/data skip when it is absent.
test: setup
	$(PY) -m pytest -m "not slow" -q

## The slow checks (real weights, resume of every stateful strategy, seeds). pytest exits 5
## when nothing is selected: that is reported, not failed.
test-slow: setup
	$(PY) -m pytest -m slow -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-slow: no test is marked slow"; exit 0; fi; exit $$status

## Mutation testing with mutmut, one core module after another (benchmarks/mutate.py; test files
## per module in [tool.mutmut.module_tests] of pyproject.toml), e.g. `make mutate MODULES=curvature`.
## All four take hours on 2 cores (docs/benchmarks.md). Each module runs in mutants/<module>/ and
## resumes where it stopped; survivors: cd mutants/<module> && ../../.venv/bin/mutmut results.
MODULES ?= metrics curvature strategies adapters
mutate: setup
	$(PY) -m pip install --quiet "$(MUTMUT)"
	$(PY) benchmarks/mutate.py --max-children 2 $(MODULES)

clean:
	rm -rf results .pytest_cache mutants
