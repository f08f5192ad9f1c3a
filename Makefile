# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --quiet --disable-pip-version-check

.PHONY: demo test venv benchmark clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The package with the notebook extra (console progress, matplotlib for plots).
$(VENV)/.demo: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e ".[notebook]"
	touch $@

# The package with the test extra (pytest, nbval, torch CPU as the numerical oracle).
$(VENV)/.test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e ".[test]"
	touch $@ $(VENV)/.demo

venv: $(VENV)/.test

demo: $(VENV)/.demo
	$(PY) -m workbench.cli train lenet5 --dataset digits --epochs 15 --batch-size 32 --log-dir runs

test: $(VENV)/.test
	$(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider

benchmark: $(VENV)/.test
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf $(VENV) runs checkpoints
