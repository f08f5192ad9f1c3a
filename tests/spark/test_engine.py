"""BigDL's context helpers: ``create_spark_conf``, ``get_spark_context``, ``init_nncontext``
return (or configure) the one running context, never a second one."""
import pytest

from workbench.spark import (DataSet, create_spark_conf, get_spark_context, init_engine,
                             init_nncontext)
from workbench.spark.engine import DEFAULT_CONF

pytestmark = pytest.mark.spark


def test_create_spark_conf_holds_the_workbench_defaults_and_keeps_the_users():
    from pyspark import SparkConf
    given = SparkConf()  # what the JVM's system properties set already wins (pyspark 3.5 sets
    conf = create_spark_conf()  # spark.ui.showConsoleProgress there, for one)
    for key, value in DEFAULT_CONF.items():
        assert conf.get(key) == given.get(key, value)
    assert conf.get("spark.scheduler.barrier.maxConcurrentTasksCheck.interval") == "2s"
    assert create_spark_conf().set("spark.python.worker.reuse", "false").get(
        "spark.python.worker.reuse") == "false"


def test_context_helpers_return_the_running_context(sc):
    conf = create_spark_conf().setAppName("ported-script").setMaster("local[1]")
    assert get_spark_context(conf) is sc
    assert get_spark_context() is sc
    assert init_nncontext("ported-script") is sc
    assert init_nncontext(conf, spark_log_level="ERROR", redirect_spark_log=True) is sc
    assert init_engine().sparkContext is sc
    # the context returned runs workbench's data sets as any other
    ds = DataSet(sc.parallelize([([1.0, 2.0], 0), ([3.0, 4.0], 1)], 2), "pairs")
    try:
        assert ds.n == 2 and ds.feature_shape == (2,)
    finally:
        ds.unpersist()
