import os
import sys

import pytest

try:  # torch is the test-only oracle; its default threading crawls on tiny ops on shared cores
    import torch
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is in the test extra
    pass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))


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
