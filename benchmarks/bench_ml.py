"""Pipeline ``fit`` with ``NNClassifier`` vs the ``Optimizer`` on the same DataFrame.

    .venv/bin/python benchmarks/bench_ml.py          # writes benchmarks/results/ml.json

Both train the same MLP (64-128-10, same initial weights, same seed) on the same cached
DataFrame (the digits' 64 pixels as an ml Vector column, tiled to ``--rows`` rows, 2
partitions) with the same global batch, optim method and epochs on local[2]: one side calls
``Pipeline([NNClassifier]).fit(df)``, the other ``Optimizer(model, df, ...).optimize()``.
Throughput is records trained per second of wall time of that call (building the training
blocks included on both sides).  Runs alternate (which side goes first alternates too) after one
warm-up of each; the ratio is of the medians.  The goal (issue 12, never a test) is ≥ 0.95×:
what ``NNClassifier`` adds (schema checks, one pass over the cached blocks checking the
labels, copying the model) should cost little.  The machine is shared: the load average is
recorded with the result.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "ml.json")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=11496)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import numpy as np
    from pyspark.ml import Pipeline
    from pyspark.ml.linalg import Vectors

    from workbench.data import load_digits
    from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, ReLU, Sequential, random
    from workbench.optim import SGD, MaxEpoch, Optimizer
    from workbench.spark import get_spark
    from workbench.spark.ml import NNClassifier

    spark = get_spark(args.master, app_name="bench-ml", conf={"spark.ui.enabled": "false"},
                      log_level="ERROR")
    (X, y), _ = load_digits(size=8)
    X = X.reshape(len(X), -1)
    reps = -(-args.rows // len(X))
    X, y = np.tile(X, (reps, 1))[:args.rows], np.tile(y, reps)[:args.rows]
    df = spark.createDataFrame([(Vectors.dense(x.astype(float)), float(t)) for x, t in zip(X, y)],
                               ["features", "label"]).repartition(2).cache()
    n = df.count()
    random.set_seed(0)
    model = Sequential().add(Linear(64, 128)).add(ReLU()).add(Linear(128, 10)).add(LogSoftMax())
    seed = 11

    def run_pipeline():
        est = NNClassifier(model, ClassNLLCriterion(), [64], batchSize=args.batch,
                           maxEpoch=args.epochs, seed=seed, showProgress=False)
        est.setOptimMethod(SGD(0.05))
        start = time.perf_counter()
        fitted = Pipeline(stages=[est]).fit(df)
        took = time.perf_counter() - start
        return took, fitted.stages[-1].getModel().get_parameters()[0]

    def run_optimizer():
        trained = copy.deepcopy(model)
        start = time.perf_counter()
        Optimizer(trained, df, ClassNLLCriterion(), MaxEpoch(args.epochs), args.batch,
                  SGD(0.05), seed=seed, progress=False).optimize()
        took = time.perf_counter() - start
        return took, trained.get_parameters()[0]

    sides = {"pipeline_fit": run_pipeline, "optimizer": run_optimizer}
    load_before = os.getloadavg()
    for fn in sides.values():  # warm-up: Python workers, first jobs
        fn()
    times = {k: [] for k in sides}
    weights = {}
    for r in range(args.repeats):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for k in order:
            took, w = sides[k]()
            times[k].append(took)
            weights[k] = w
            print(f"repeat {r} {k}: {took:.2f} s, {n * args.epochs / took:,.0f} records/s",
                  flush=True)
    load_after = os.getloadavg()
    records = n * args.epochs
    medians = {k: statistics.median(v) for k, v in times.items()}
    throughput = {k: records / v for k, v in medians.items()}
    res = {
        "benchmark": "Pipeline([NNClassifier]).fit vs Optimizer.optimize on the same DataFrame",
        "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "pyspark": __import__("pyspark").__version__, "master": args.master,
        "load_average_before": list(load_before), "load_average_after": list(load_after),
        "rows": n, "partitions": df.rdd.getNumPartitions(), "batch": args.batch,
        "epochs": args.epochs, "model": "MLP 64-128-10, SGD(0.05)", "repeats": args.repeats,
        "seconds": times, "median_seconds": medians, "records_per_s": throughput,
        "ratio_pipeline_to_optimizer": throughput["pipeline_fit"] / throughput["optimizer"],
        "goal": ">= 0.95 (issue 12)",
        "same_weights": bool(np.array_equal(weights["pipeline_fit"], weights["optimizer"])),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps({k: v for k, v in res.items() if k != "seconds"}, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
