"""Native (oneDNN) kernels called from several Python threads.

A cached primitive built on one thread must run on any other: training on the main thread, then
on a second thread, then on three threads at once gives the same outputs, gradients and
weights (same inputs and initial weights) and never crashes.  oneDNN's default per-thread
scratchpad once made this segfault or fail with "could not execute a primitive".

The training runs in a child process with a timeout, so a crash or a deadlock fails the test
instead of killing pytest.  No timing here.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

import workbench

STEPS = 3   # SGD steps per run
LR = 0.05
RUNS = ("main", "second", "concurrent0", "concurrent1", "concurrent2")


def _models():
    from workbench.models import LeNet5
    from workbench.nn import LSTM, Linear, LogSoftMax, Recurrent, ReLU, Reshape, Select, \
        Sequential, Sigmoid, SoftMax, SpatialBatchNormalization, SpatialConvolution, \
        SpatialMaxPooling, Tanh

    conv_bn = (Sequential()
               .add(SpatialConvolution(1, 8, 3, 3, 1, 1, 1, 1))
               .add(SpatialBatchNormalization(8))
               .add(ReLU())
               .add(SpatialMaxPooling(2, 2, 2, 2))
               .add(Reshape([8 * 14 * 14]))
               .add(Linear(8 * 14 * 14, 10))
               .add(LogSoftMax()))
    mlp = (Sequential()
           .add(Linear(20, 32)).add(ReLU())
           .add(Linear(32, 32)).add(Tanh())
           .add(Linear(32, 16)).add(Sigmoid())
           .add(Linear(16, 5)).add(SoftMax()))
    lstm = Sequential().add(Recurrent().add(LSTM(6, 12))).add(Select(2, -1))
    return {"lenet5": LeNet5(10), "conv_bn": conv_bn, "mlp": mlp, "lstm": lstm}


def _inputs():
    rng = np.random.default_rng(0)
    return {"lenet5": rng.random((16, 1, 28, 28), np.float32),
            "conv_bn": rng.random((8, 1, 28, 28), np.float32),
            "mlp": rng.standard_normal((32, 20), np.float32),
            "lstm": rng.standard_normal((4, 7, 6), np.float32)}


def _train(init, inputs):
    """Fresh models with the initial weights ``init``, STEPS steps of SGD on a fixed gradient."""
    out = {}
    for name, model in _models().items():
        weights, grads = model.get_parameters()
        weights[:] = init[name]
        x = inputs[name]
        for _ in range(STEPS):
            grads.fill(0)
            y = model.forward(x)
            g = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
            gx = model.backward(x, g)
            weights -= LR * grads
        out[name + "/output"] = np.array(y, copy=True)
        out[name + "/grad_input"] = np.array(gx, copy=True)
        out[name + "/grad"] = grads.copy()
        out[name + "/weights"] = weights.copy()
    return out


def child(path):
    """Train on the main thread, a second thread and three at once; save every run's results."""
    from workbench.nn import backend, random

    backend.set_backend("native")
    assert backend.get_backend() == "native", backend.native_error()
    backend.set_num_threads(2)
    random.set_seed(0)
    init = {name: m.get_parameters()[0].copy() for name, m in _models().items()}
    inputs = _inputs()
    results, errors = {}, []

    def run(key):
        try:
            results[key] = _train(init, inputs)
        except BaseException as e:  # reported to the parent, which fails the test
            errors.append(f"{key}: {e!r}")

    run("main")
    t = threading.Thread(target=run, args=("second",))
    t.start()
    t.join()
    threads = [threading.Thread(target=run, args=(f"concurrent{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("errors: " + "; ".join(errors))
    np.savez(path, **{f"{run_}|{k}": v for run_, res in results.items() for k, v in res.items()})
    print("ok")


def test_native_kernels_give_the_same_results_on_any_thread(tmp_path):
    path = tmp_path / "results.npz"
    root = str(Path(workbench.__file__).resolve().parent.parent)   # the child imports this one
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    data = np.load(path)
    by_run = {r: {k.split("|", 1)[1]: data[k] for k in data.files if k.startswith(r + "|")}
              for r in RUNS}
    reference = by_run["main"]
    assert len(reference) == 16
    for name, ref in reference.items():
        assert np.all(np.isfinite(ref)), name
        assert np.abs(ref).max() > 0, name   # something was computed
        for run_ in RUNS[1:]:
            got = by_run[run_][name]
            assert got.shape == ref.shape, (run_, name)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{run_} differs from the main thread: {name}")


if __name__ == "__main__":
    child(sys.argv[1])
