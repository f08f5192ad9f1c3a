"""SGD's native momentum update (kernels_native/optim.cpp, ``sgd_momentum``): the same bits as
the numpy code on 1 and 2 threads, close to PyTorch's SGD, the fallbacks to numpy, and a crash
fuzz of the entry point.  No timing here: speed is in benchmarks/bench_native.py.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from oracle import torch

from workbench.nn import backend
from workbench.optim import SGD

# sizes below, at and above the length from which the pass runs on several threads (2 * 32768)
SIZES = [1, 7, 65536, 65537, 200_003]


@pytest.fixture(autouse=True)
def _native_backend():
    previous, threads = backend.set_backend("native"), backend.get_num_threads()
    yield
    backend.set_backend(previous)
    backend.set_num_threads(threads)
    backend.set_kernel("sgd", True)


def _train(size, native, threads, steps=4, **hyper):
    """The weights after ``steps`` updates from fixed weights and gradients."""
    backend.set_num_threads(threads)
    backend.set_kernel("sgd", native)
    rng = np.random.default_rng(size)
    w = rng.standard_normal(size).astype(np.float32)
    method = SGD(**hyper)
    for _ in range(steps):
        method.update(w, rng.standard_normal(size).astype(np.float32))
    return w, method._buffers["momentum"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hyper", [
    dict(learningrate=0.1, momentum=0.9, dampening=0.0),
    dict(learningrate=0.05, momentum=0.5, dampening=0.3, weightdecay=1e-2),
    dict(learningrate=1e-3, momentum=0.99, weightdecay=5e-4),  # dampening None: = momentum
    dict(learningrate=0.1, learningrate_decay=0.1, momentum=0.9, dampening=0.0),
])
def test_native_update_gives_the_numpy_bits(size, threads, hyper):
    reference = _train(size, False, 1, **hyper)
    native = _train(size, True, threads, **hyper)
    for a, b, what in zip(reference, native, ("weights", "momentum buffer")):
        assert a.tobytes() == b.tobytes(), (what, np.abs(a - b).max())


def test_the_native_kernel_runs_for_the_common_case_only():
    """It runs for float32 vectors with momentum from the second update on; Nesterov,
    per-parameter learning rates, strided views and float64 keep the numpy code (which still
    trains)."""
    nat = backend.native()
    calls = []
    original = nat.sgd_momentum

    class Spy:
        def __getattr__(self, name):
            return getattr(nat, name)

        def sgd_momentum(self, *args):
            calls.append(args[3:])
            return original(*args)

    spy = Spy()
    saved = backend._state["module"]
    backend._state["module"] = spy
    try:
        w = np.ones(10, np.float32)
        g = np.full(10, 0.5, np.float32)
        SGD(learningrate=0.1, momentum=0.9).update(w, g)  # first update: numpy fills the buffer
        assert calls == []
        method = SGD(learningrate=0.1, momentum=0.9)
        method.update(w, g)
        method.update(w, g)
        assert len(calls) == 1
        for method, vec in ((SGD(learningrate=0.1, momentum=0.9, dampening=0.0, nesterov=True),
                             w),
                            (SGD(learningrate=0.1, momentum=0.9, learningrates=np.ones(10)), w),
                            (SGD(learningrate=0.1, momentum=0.9), np.ones(20, np.float32)[::2]),
                            (SGD(learningrate=0.1, momentum=0.9), w.astype(np.float64))):
            before = vec.copy()
            for _ in range(2):
                method.update(vec, g.astype(vec.dtype))
            assert (vec < before).all()
        assert len(calls) == 1
    finally:
        backend._state["module"] = saved


@pytest.mark.oracle
@pytest.mark.parametrize("threads", [1, 2])
def test_native_update_follows_torch_sgd(threads):
    backend.set_num_threads(threads)
    rng = np.random.default_rng(9)
    w0 = rng.standard_normal(100_000).astype(np.float32)
    grads = [rng.standard_normal(w0.size).astype(np.float32) for _ in range(5)]
    w = w0.copy()
    method = SGD(learningrate=0.05, momentum=0.9, dampening=0.1, weightdecay=1e-3)
    tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    topt = torch.optim.SGD([tw], lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3)
    for g in grads:
        method.update(w, g)
        tw.grad = torch.from_numpy(g.copy())
        topt.step()
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_sgd_momentum_rejects_bad_arrays():
    nat = backend.native()
    w, g, b = (np.zeros(8, np.float32) for _ in range(3))
    for args in ((w.astype(np.float64), g, b), (w, g[:4], b), (w, g, w), (w, g, w[2:] * 0),
                 (w[::2], g[:4], b[:4]), (w.reshape(2, 4), g, b)):
        with pytest.raises(ValueError):
            nat.sgd_momentum(*args, 0.1, 0.9, 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        nat.sgd_momentum(w, g, b, float("nan"), 0.9, 0.0, 0.0)
    ro = np.zeros(8, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        nat.sgd_momentum(ro, g, b, 0.1, 0.9, 0.0, 0.0)
    big = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        nat.sgd_momentum(big[:8], g, big[4:12], 0.1, 0.9, 0.0, 0.0)


FUZZ = r"""
import numpy as np, sys
from workbench.nn import backend
nat = backend.native()
rng = np.random.default_rng(int(sys.argv[1]))
calls = errors = 0
def arr(n):
    dtype = np.float32 if rng.random() > 0.15 else rng.choice([np.float64, np.int32, np.float16])
    a = np.zeros(max(0, int(n)) * (2 if rng.random() < 0.1 else 1), dtype)
    return a[::2] if a.size and rng.random() < 0.1 else a
for i in range(500):
    n = [int(v) for v in rng.integers(-1, 70000 if rng.random() < 0.1 else 9, size=3)]
    scalars = [float(v) for v in rng.choice([0.0, 0.5, -1.0, np.inf, np.nan, 1e30], size=4)]
    calls += 1
    try:
        nat.sgd_momentum(arr(n[0]), arr(n[1]), arr(n[2]), *scalars)
    except (ValueError, TypeError):
        errors += 1
print(calls, errors)
"""


def test_sgd_momentum_fuzz_raises_never_crashes():
    """Random, mostly invalid sizes, dtypes, strides and scalars straight into the entry point,
    in a child process so that a crash is reported instead of killing the test run."""
    done = subprocess.run([sys.executable, "-c", FUZZ, "5"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    calls, errors = map(int, done.stdout.split())
    assert calls == 500 and errors > calls // 2
