"""A job for test_task_threads: a local[2] session with spark.task.cpus=2 (one task slot of 2
cores) trains a small MLP on Spark, by default and with ``Optimizer(cores=1)``, and scores it
with ``predict``; writes the native threads each training task reported as one JSON document.

    python task_threads.py OUT.json
"""
import json
import os
import sys

import numpy as np

import workbench.spark as wspark
from workbench.data import Sample
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential, Tanh, random
from workbench.optim import SGD, MaxIteration, Optimizer

spark = wspark.get_spark("local[2]", app_name="workbench-task-threads",
                         conf={"spark.task.cpus": "2", "spark.ui.enabled": "false"},
                         log_level="ERROR")
sc = spark.sparkContext
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 8)).astype(np.float32)
y = (X[:, 0] > 0).astype(np.int64)
rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 1)


def train(**options):
    random.set_seed(5)
    model = Sequential().add(Linear(8, 16)).add(Tanh()).add(Linear(16, 2)).add(LogSoftMax())
    opt = Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(3), 16, SGD(0.1), seed=3,
                    progress=False, **options)
    opt.optimize()
    return [task["threads"] for stretch in opt._runner.stats for task in stretch]


result = {
    "task_cpus": int(sc.getConf().get("spark.task.cpus")),
    "omp_num_threads_in_worker": sc.parallelize([0], 1).map(
        lambda _: os.environ.get("OMP_NUM_THREADS")).collect()[0],
    "default": train(),
    "cores_1": train(cores=1),
}
spark.stop()
with open(sys.argv[1], "w") as f:
    json.dump(result, f)
