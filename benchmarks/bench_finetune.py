"""Fine-tuning: what a frozen feature extractor saves per iteration, and on the Spark ring.

    .venv/bin/python benchmarks/bench_finetune.py     # writes benchmarks/results/finetune.json

A small VGG-style network (conv 32-64-64 with pooling, fc 256, head 10) on 28x28 digits,
batch 64, built as a ``Sequential`` and as a ``Graph``.  Per case, the median of ``--repeats``
timed backward passes after the same forward:

- ``all_trainable``: the training backward of the whole model;
- ``frozen_full_backward``: features frozen (``freeze_up_to("pool3")``) but a plain ``backward``
  that computes the gradient w.r.t. the input through them (what training did before the
  frozen prefix was skipped);
- ``frozen_training_backward``: the same frozen model under the training loop's
  ``backward_params`` (the frozen prefix is not backward-called);
- ``stop_gradient``: ``stop_gradient("fc1")`` instead of freezing (the graph is cut there).

Then, on Spark ``local[2]``, the bytes each task sends on the ring per iteration with the whole
model trainable and with the features frozen.  The machine is shared: the load average is
recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "finetune.json")


def layers():
    from workbench.nn import (Linear, LogSoftMax, ReLU, Reshape, SpatialConvolution,
                              SpatialMaxPooling)
    return [SpatialConvolution(1, 32, 3, 3, 1, 1, 1, 1).set_name("conv1"), ReLU(),
            SpatialMaxPooling(2, 2, 2, 2).set_name("pool1"),
            SpatialConvolution(32, 64, 3, 3, 1, 1, 1, 1).set_name("conv2"), ReLU(),
            SpatialMaxPooling(2, 2, 2, 2).set_name("pool2"),
            SpatialConvolution(64, 64, 3, 3, 1, 1, 1, 1).set_name("conv3"), ReLU(),
            SpatialMaxPooling(2, 2, 2, 2).set_name("pool3"),
            Reshape([64 * 3 * 3]), Linear(64 * 3 * 3, 256).set_name("fc1"), ReLU(),
            Linear(256, 10).set_name("head"), LogSoftMax()]


def build(kind):
    from workbench.nn import Input, Model, Sequential, random
    random.set_seed(1)
    if kind == "sequential":
        model = Sequential()
        for layer in layers():
            model.add(layer)
        return model
    node = x = Input()
    for layer in layers():
        node = layer(node)
    return Model(x, node)


def time_backward(model, x, g, training, repeats):
    model.forward(x)
    times = []
    for _ in range(repeats + 2):
        model.zero_grad_parameters()
        t0 = time.perf_counter()
        if training:
            model.backward_params(x, g)
        else:
            model.backward(x, g)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def ring_bytes(freeze, iterations):
    import numpy as np

    from workbench.data import Sample, load_digits
    from workbench.nn import ClassNLLCriterion
    from workbench.optim import SGD, MaxIteration, Optimizer
    from workbench.spark import get_spark
    spark = get_spark("local[2]", app_name="bench-finetune", log_level="ERROR",
                      conf={"spark.ui.enabled": "false"})
    (X, y), _ = load_digits(size=28)
    X, y = X[:256], y[:256]
    rdd = spark.sparkContext.parallelize(
        [Sample.from_ndarray(a, b) for a, b in zip(X, y.astype(np.int64))], 2)
    model = build("sequential")
    if freeze:
        model.freeze_up_to("pool3")
    opt = Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(iterations), 64, SGD(0.05),
                    seed=1, progress=False)
    opt.optimize()
    tasks = [t for stretch in opt._runner.stats for t in stretch]
    return {"vector_values": tasks[0]["vector_values"],
            "bytes_per_task_iteration": sum(t["bytes_sent"] for t in tasks)
            / sum(t["iterations"] for t in tasks)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--spark-iterations", type=int, default=5)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import numpy as np

    from workbench.data import load_digits
    (X, _), _ = load_digits(size=28)
    x = X[:64]
    g = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
    result = {"machine": platform.machine(), "load_average": os.getloadavg(),
              "batch": 64, "backward_ms": {}}
    for kind in ("sequential", "graph"):
        cases = {}
        model = build(kind)
        cases["all_trainable"] = time_backward(model, x, g, True, args.repeats)
        model.freeze_up_to("pool3")
        cases["frozen_full_backward"] = time_backward(model, x, g, False, args.repeats)
        cases["frozen_training_backward"] = time_backward(model, x, g, True, args.repeats)
        model = build(kind).stop_gradient("fc1")
        cases["stop_gradient"] = time_backward(model, x, g, True, args.repeats)
        result["backward_ms"][kind] = {k: round(v * 1e3, 3) for k, v in cases.items()}
        print(kind, result["backward_ms"][kind], flush=True)
    result["ring"] = {"all_trainable": ring_bytes(False, args.spark_iterations),
                      "features_frozen": ring_bytes(True, args.spark_iterations)}
    print(result["ring"])
    result["load_average_after"] = os.getloadavg()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
