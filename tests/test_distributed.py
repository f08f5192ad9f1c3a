"""workbench.distributed: data dispatch by type, with no import-order dependence.

Each import-order check runs in a fresh interpreter: in this one, other tests have already
imported everything."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from workbench.distributed import engine_for, is_distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fresh(code, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               SPARK_LOCAL_IP="127.0.0.1")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=timeout, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_in_memory_data_runs_in_process_without_importing_optim_first_or_spark_at_all():
    out = run_fresh("""
        import sys
        import numpy as np
        from workbench.nn import Linear, LogSoftMax, Sequential
        assert "workbench.optim" not in sys.modules
        model = Sequential().add(Linear(4, 3)).add(LogSoftMax())
        X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
        y = np.arange(10) % 3
        (acc,) = model.evaluate((X, y), 4)      # BigDL's evaluate(data, batch_size)
        assert acc.name == "Top1Accuracy" and 0 <= acc.value <= 1, acc
        assert model.predict(X, 4).shape == (10, 3)
        assert "pyspark" not in sys.modules and "workbench.spark" not in sys.modules
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.spark
def test_an_rdd_trains_predicts_and_evaluates_without_importing_workbench_spark():
    out = run_fresh("""
        import sys
        import numpy as np
        from pyspark import SparkConf, SparkContext
        from workbench.data import Sample
        from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential
        from workbench.optim import SGD, MaxIteration, Optimizer, Top1Accuracy
        assert "workbench.spark" not in sys.modules
        sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("dispatch")
                          .set("spark.ui.enabled", "false"))
        sc.setLogLevel("ERROR")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((64, 4)).astype(np.float32)
        y = (X[:, 0] > 0).astype(np.int64)
        rdd = sc.parallelize([Sample.from_ndarray(x, t) for x, t in zip(X, y)], 2)
        model = Sequential().add(Linear(4, 2)).add(LogSoftMax())
        trained = Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(3), 16, SGD(0.1),
                            progress=False).optimize()
        assert trained is model
        assert np.stack(model.predict(rdd, 16).collect()).shape == (64, 2)
        (acc,) = model.evaluate(rdd, 16, [Top1Accuracy()])
        assert acc.name == "Top1Accuracy" and 0 <= acc.value <= 1
        assert "workbench.spark" in sys.modules
        sc.stop()
        print("ok")
    """)
    assert out.strip().endswith("ok")


@pytest.mark.spark
def test_spark_objects_are_recognised_by_type_and_others_are_not(spark, sc):
    rdd = sc.parallelize([1, 2, 3])
    df = spark.createDataFrame([(1.0,)], ["x"])
    assert is_distributed(rdd) and is_distributed(rdd.map(lambda v: v))  # PipelinedRDD
    assert is_distributed(df)
    import workbench.spark
    assert engine_for(df) is workbench.spark

    class RDD:  # a user's class of the same name is not Spark's
        pass

    for other in (np.zeros(3), [1, 2], (np.zeros(2), np.zeros(2)), RDD(), None):
        assert not is_distributed(other) and engine_for(other) is None


def test_the_spark_package_implements_the_engine_protocol():
    from workbench.distributed import DistributedEngine
    import workbench.spark
    for name in ("predict", "evaluate", "SparkTrainer"):
        assert name in DistributedEngine.__dict__
        assert callable(getattr(workbench.spark, name)), name
