"""Same seed, data, thread count and backend: the same bits, whatever else the machine does.

Each run is its own process (tests/native/jobs/train_once.py) training LeNet-5 (convolution,
pooling, Linear on the rule's GEMM), a 2-layer LSTM language model (oneDNN's LSTM, LookupTable,
cross-entropy) or an MLP (Linear + ReLU fused, SGD's native momentum update) on the native
backend; one of the two runs has a CPU hog beside it on every core.
Losses of every iteration and the final weights must be bitwise equal: nothing numeric may
depend on timing or load (no timing-chosen kernel, no racy reduction).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import CpuHog

JOB = os.path.join(os.path.dirname(__file__), "jobs", "train_once.py")


def train(model, threads, out):
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBENCH_GEMM", "WORKBENCH_BACKEND", "OMP_NUM_THREADS")}
    subprocess.run([sys.executable, JOB, model, str(threads), str(out)], env=env, check=True,
                   timeout=600)
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("model", ["lenet5", "lstm", "mlp"])
def test_two_processes_give_the_same_bits_with_and_without_load(model, threads, tmp_path):
    quiet = train(model, threads, tmp_path / "quiet.npz")
    with CpuHog():
        loaded = train(model, threads, tmp_path / "loaded.npz")
    for run in (quiet, loaded):
        assert bool(run["native"]) and int(run["threads"]) == threads
        assert np.isfinite(run["losses"]).all() and run["losses"].size >= 20
    assert quiet["losses"][-1] < quiet["losses"][0]  # it trained
    assert quiet["losses"].tobytes() == loaded["losses"].tobytes(), \
        np.flatnonzero(quiet["losses"] != loaded["losses"])[:5]
    assert quiet["weights"].dtype == np.float32
    assert quiet["weights"].tobytes() == loaded["weights"].tobytes(), \
        np.abs(quiet["weights"] - loaded["weights"]).max()


def _spark_lenet(sc, X, y, parts, end, checkpoint=None, resume=None, stretch=None):
    from workbench import models
    from workbench.data import Sample
    from workbench.nn import ClassNLLCriterion, random
    from workbench.optim import Adam, EveryEpoch, Optimizer
    random.set_seed(21)
    model = models.LeNet5(10)
    rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], parts)
    options = {} if stretch is None else {"max_stretch_iterations": stretch}
    opt = Optimizer(model, rdd, ClassNLLCriterion(), end, 40, Adam(2e-3), seed=5,
                    progress=False, **options)
    if checkpoint is not None:
        opt.set_checkpoint(EveryEpoch(), str(checkpoint))
    opt.optimize(resume_from=resume)
    return model.get_parameters()[0].copy()


@pytest.mark.spark
@pytest.mark.timeout(300)
def test_spark_training_gives_the_same_bits_for_the_same_partitioning(sc, tmp_path):
    from workbench.data import load_digits
    from workbench.optim import MaxEpoch
    (X, y), _ = load_digits(size=28)
    X, y = X[:200], y[:200]
    first = _spark_lenet(sc, X, y, 2, MaxEpoch(3))
    with CpuHog():  # stretches of other lengths, tasks scheduled at other times
        again = _spark_lenet(sc, X, y, 2, MaxEpoch(3), stretch=4)
    assert first.tobytes() == again.tobytes(), np.abs(first - again).max()
    # a driver restart from the epoch-2 checkpoint continues bit for bit
    _spark_lenet(sc, X, y, 2, MaxEpoch(2), checkpoint=tmp_path)
    resumed = _spark_lenet(sc, X, y, 2, MaxEpoch(3), resume=str(tmp_path))
    assert first.tobytes() == resumed.tobytes(), np.abs(first - resumed).max()
    # another partitioning sums the gradient in another order: equal within rounding only
    three = _spark_lenet(sc, X, y, 3, MaxEpoch(3))
    assert np.linalg.norm(three - first) <= 1e-5 * np.linalg.norm(first)


@pytest.mark.spark
@pytest.mark.timeout(300)
def test_where_spark_stretches_end_changes_no_bit_with_dropout_and_batch_norm(sc):
    from workbench.data import Sample
    from workbench.nn import (BatchNormalization, ClassNLLCriterion, Dropout, Linear,
                              LogSoftMax, ReLU, Sequential, random)
    from workbench.optim import SGD, MaxIteration, Optimizer
    rng = np.random.default_rng(4)
    X = rng.standard_normal((240, 12)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64)
    rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2)

    def run(stretch):
        random.set_seed(8)
        model = (Sequential().add(Linear(12, 32)).add(BatchNormalization(32)).add(ReLU())
                 .add(Dropout(0.3)).add(Linear(32, 2)).add(LogSoftMax()))
        Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(12), 30,
                  SGD(0.1, momentum=0.9, dampening=0.0), seed=2, progress=False,
                  max_stretch_iterations=stretch).optimize()
        bn = model[1]
        return (model.get_parameters()[0].copy(), bn.running_mean.copy(),
                bn.running_var.copy())

    one_stretch, short_stretches = run(100), run(5)
    for a, b in zip(one_stretch, short_stretches):
        assert a.tobytes() == b.tobytes(), np.abs(a - b).max()
