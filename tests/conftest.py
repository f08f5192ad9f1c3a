import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tests/ holds the shared test modules (helpers, oracle, lab_harness, penalized): test files in
# every folder below import them by name (pytest runs with --import-mode=importlib, see
# pyproject.toml, which puts no test folder on sys.path).
sys.path.insert(0, os.path.join(ROOT, "tests"))

import oracle  # noqa: E402  (PyTorch, imported on first use by tests marked `oracle`)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    oracle.current_test = item
    try:
        yield
    finally:
        oracle.current_test = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # the report carries it to the summary: under pytest-xdist the tests run in worker processes
    if call.when == "call" and item.nodeid in oracle.reached:
        item.user_properties.append(("oracle_reached", True))
    yield


def pytest_terminal_summary(terminalreporter):
    ran = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
           if r.when == "call" and "oracle" in r.keywords]
    unused = sorted(r.nodeid for r in ran if ("oracle_reached", True) not in r.user_properties)
    if unused:
        terminalreporter.write_line(f"{len(unused)} tests marked oracle never reached PyTorch: "
                                    + " ".join(unused[:20]) + (" ..." if len(unused) > 20 else ""))


def pytest_collection_modifyitems(items):
    # ids must be the same in every process: pytest-xdist's workers each collect the suite
    unstable = [item.nodeid for item in items if " at 0x" in item.nodeid]
    if unstable:
        raise pytest.UsageError("test ids with a memory address (use helpers.param_id): "
                                + " ".join(unstable[:5]))


@pytest.fixture(autouse=True)
def _seed():
    from workbench.nn import random
    random.set_seed(1234)
    yield


# ---------------------------------------------------------------------- Spark (workbench.spark)
@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole test session (start-up costs 5-15 s)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from workbench.spark import get_spark
    session = get_spark("local[2]", app_name="workbench-tests",
                        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"},
                        log_level="ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sc(spark):
    return spark.sparkContext
