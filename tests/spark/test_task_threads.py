"""The native threads of Spark tasks follow ``spark.task.cpus`` (not the executor's cores that
Spark puts into ``OMP_NUM_THREADS``), unless the user chose them (``Optimizer(cores=...)``,
``spark.executorEnv.*``, ``WORKBENCH_NUM_THREADS``)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import four_class_mlp as mlp, four_class_problem as problem
from workbench.data import Sample
from workbench.nn import ClassNLLCriterion, backend
from workbench.optim import SGD, MaxIteration, Optimizer
from workbench.spark.engine import explicit_task_threads

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]
JOB = Path(__file__).parent / "jobs" / "task_threads.py"


def test_task_threads_rule(monkeypatch):
    monkeypatch.delenv("WORKBENCH_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert backend.task_threads(1) == 1
    assert backend.task_threads(cores + 5) == cores  # never more threads than cores
    assert backend.task_threads(1, explicit=3) == 3  # the user's choice wins
    monkeypatch.setenv("WORKBENCH_NUM_THREADS", "2")
    assert backend.task_threads(1) == 2
    with pytest.raises(ValueError, match="positive int"):
        backend.task_threads(1, explicit=0)


def train(sc, **options):
    X, y = problem()
    model = mlp()
    rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2)
    opt = Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(4), 37, SGD(0.1), seed=3,
                    progress=False, **options)
    opt.optimize()
    return model, [task["threads"] for stretch in opt._runner.stats for task in stretch]


def test_one_cpu_tasks_run_one_thread_and_train_as_the_local_loop(sc):
    assert sc.getConf().get("spark.task.cpus", "1") == "1"
    assert explicit_task_threads(sc) is None
    model, threads = train(sc)
    assert threads == [1, 1]
    X, y = problem()
    local = mlp()
    previous = backend.set_num_threads(1)
    try:
        Optimizer(local, (X, y), ClassNLLCriterion(), MaxIteration(4), 37, SGD(0.1), seed=3,
                  progress=False).optimize()
    finally:
        backend.set_num_threads(previous)
    w, _ = model.get_parameters()
    r, _ = local.get_parameters()
    assert float(np.linalg.norm(w - r) / np.linalg.norm(r)) <= 1e-5


def test_optimizer_cores_set_the_threads_of_every_task(sc):
    _, threads = train(sc, cores=2)
    assert threads == [2, 2]


def test_two_cpu_tasks_run_two_threads(tmp_path):
    """A session of its own (spark.task.cpus is fixed per SparkContext)."""
    out = tmp_path / "threads.json"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("WORKBENCH_NUM_THREADS", None)
    proc = subprocess.run([sys.executable, str(JOB), str(out)], env=env, capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["task_cpus"] == 2
    assert result["default"] == [min(2, len(os.sched_getaffinity(0)))]
    assert result["cores_1"] == [1]
