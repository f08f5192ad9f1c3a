"""The native (oneDNN) layer core: parity with the numpy reference and PyTorch, shape checks that
stop bad input before native code, a crash fuzz, and the backend / thread settings.

Property-based over random geometries (hypothesis).  No timing here: speed is in
benchmarks/bench_native.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from oracle import F, torch

import hypothesis  # noqa: E402,F401  (test extra)
from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers import _close, _never_called, _run_both, NATIVE_SETTINGS as SETTINGS
from workbench.nn import BatchNormalization, LayerError, SpatialAveragePooling, \
    SpatialBatchNormalization, SpatialConvolution, SpatialMaxPooling, backend  # noqa: E402

# oneDNN is a declared dependency and `pip install` compiles the kernels: every test here
# requires them, so a silent build failure shows up as failures, never as skips.
assert metadata.distribution("onednn-cpu-gomp")


def needs_native(test):
    """Marks a test of the native kernels (documentation only: they are always required)."""
    return test


@pytest.fixture(autouse=True)
def _native_backend():
    previous = backend.set_backend("native")
    yield
    backend.set_backend(previous)


def test_native_module_loads():
    assert backend.native() is not None, backend.native_error()
    assert backend.native().onednn_version().startswith("3.")


# ---------------------------------------------------------------------- convolution
@st.composite
def conv_cases(draw):
    g = draw(st.integers(1, 3))
    c, o = g * draw(st.integers(1, 4)), g * draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    same = draw(st.booleans()) and draw(st.booleans())
    ph, pw = (-1, -1) if same else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    n = draw(st.integers(1, 3))
    bias = draw(st.booleans()) or draw(st.booleans())
    return n, c, o, g, kh, kw, sh, sw, ph, pw, dh, dw, h, w, bias


def _conv_layer(c, o, g, kh, kw, sh, sw, ph, pw, dh, dw, bias):
    layer = SpatialConvolution(c, o, kw, kh, sw, sh, pw, ph, g, with_bias=bias)
    layer.dilation_h, layer.dilation_w = dh, dw  # as SpatialDilatedConvolution does
    return layer


@pytest.mark.oracle
@needs_native
@SETTINGS
@given(conv_cases(), st.integers(0, 2**31 - 1))
def test_conv_native_equals_numpy_and_torch(case, seed):
    n, c, o, g, kh, kw, sh, sw, ph, pw, dh, dw, h, w, bias = case
    layer = _conv_layer(c, o, g, kh, kw, sh, sw, ph, pw, dh, dw, bias)
    oh, ow, (top, bottom, left, right) = layer._geometry(h, w)
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    gout = rng.standard_normal((n, o, oh, ow)).astype(np.float32)
    r = _run_both(layer, x, lambda shape: gout)
    names = ["output", "grad_input", "grad_weight", "grad_bias"]
    for name, a, b in zip(names, r["numpy"], r["native"]):
        _close(b, a, f"native vs numpy: {name} {case}", scale=np.abs(a).max(initial=0))

    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(layer.weight.copy()).requires_grad_()
    tb = torch.from_numpy(layer.bias.copy()).requires_grad_() if bias else None
    ty = F.conv2d(F.pad(tx, (left, right, top, bottom)), tw, tb, (sh, sw), 0, (dh, dw), g)
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()] + (
        [tb.grad.numpy()] if bias else [])
    for name, a, b in zip(names, oracle, r["native"]):
        _close(b, a, f"native vs torch: {name} {case}", scale=np.abs(a).max(initial=0))


@needs_native
def test_conv_native_accumulates_and_handles_nhwc_and_unbatched():
    rng = np.random.default_rng(0)
    for data_format, shape in (("NCHW", (3, 7, 7)), ("NHWC", (2, 7, 7, 3))):
        layer = SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1, data_format=data_format)
        x = rng.standard_normal(shape).astype(np.float32)
        backend.set_backend("numpy")
        layer.zero_grad_parameters()
        y = layer.forward(x).copy()
        g = rng.standard_normal(y.shape).astype(np.float32)
        gi = layer.backward(x, g).copy()
        layer.backward(x, g)  # gradients accumulate over two calls
        ref = layer.grad_weight.copy(), layer.grad_bias.copy()
        backend.set_backend("native")
        layer.zero_grad_parameters()
        _close(layer.forward(x), y, data_format)
        _close(layer.backward(x, g), gi, data_format)
        layer.backward(x, g)
        _close(layer.grad_weight, ref[0], data_format, 10)
        _close(layer.grad_bias, ref[1], data_format, 10)


def test_float64_stays_in_numpy(monkeypatch):
    layer = SpatialConvolution(2, 3, 3, 3).double()
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    native = backend.native()
    if native is not None:
        monkeypatch.setattr(native, "conv_forward", _never_called)
    assert layer.forward(x).dtype == np.float64


# ---------------------------------------------------------------------- pooling
@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["max", "avg", "avg_exclude"]))
    ceil = draw(st.booleans())
    return n, c, h, w, kh, kw, sh, sw, ph, pw, kind, ceil


@pytest.mark.oracle
@needs_native
@SETTINGS
@given(pool_cases(), st.integers(0, 2**31 - 1))
def test_pool_native_equals_numpy_and_torch(case, seed):
    n, c, h, w, kh, kw, sh, sw, ph, pw, kind, ceil = case
    if kind == "max":
        layer = SpatialMaxPooling(kw, kh, sw, sh, pw, ph, to_ceil=ceil)
    else:
        layer = SpatialAveragePooling(kw, kh, sw, sh, pw, ph, ceil_mode=ceil,
                                      count_include_pad=kind == "avg")
    _, _, oh, ow, _ = layer._geometry(h, w)
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    gout = rng.standard_normal((n, c, oh, ow)).astype(np.float32)
    r = _run_both(layer, x, lambda shape: gout)
    for name, a, b in zip(["output", "grad_input"], r["numpy"], r["native"]):
        _close(b, a, f"native vs numpy: {name} {case}")
    tx = torch.from_numpy(x.copy()).requires_grad_()
    if kind == "max":
        ty = F.max_pool2d(tx, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil)
    else:
        ty = F.avg_pool2d(tx, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil,
                          count_include_pad=kind == "avg")
    ty.backward(torch.from_numpy(gout))
    for name, a, b in zip(["output", "grad_input"], [ty.detach().numpy(), tx.grad.numpy()],
                          r["native"]):
        _close(b, a, f"native vs torch: {name} {case}")


@needs_native
def test_two_max_pools_of_one_shape_keep_their_own_argmax():
    rng = np.random.default_rng(3)
    a, b = SpatialMaxPooling(2, 2), SpatialMaxPooling(2, 2)
    xa, xb = (rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(2))
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    a.forward(xa)
    b.forward(xb)  # same shape: must not overwrite a's argmax
    ga = a.backward(xa, g).copy()
    backend.set_backend("numpy")
    a.forward(xa)
    _close(ga, a.backward(xa, g), "argmax of the first layer")


# ---------------------------------------------------------------------- batch normalization
@pytest.fixture
def native_batch_norm():
    previous = backend.set_kernel("batch_norm", True)  # on by default; a test may turn it off
    yield
    backend.set_kernel("batch_norm", previous)


@pytest.mark.oracle
@needs_native
@pytest.mark.usefixtures("native_batch_norm")
@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 3), st.integers(0, 3),
       st.booleans(), st.booleans(), st.sampled_from([1e-5, 1e-3]), st.integers(0, 2**31 - 1))
def test_batch_norm_native_equals_numpy_and_torch(n, c, h, w, affine, train, eps, seed):
    spatial = h > 0 and w > 0
    shape = (n, c, h, w) if spatial else (n, c)
    assume(not train or n * (h * w if spatial else 1) >= 2)
    rng = np.random.default_rng(seed)
    layer = (SpatialBatchNormalization if spatial else BatchNormalization)(c, eps, 0.1, affine)
    if affine:
        layer.weight[...] = rng.standard_normal(c)
        layer.bias[...] = rng.standard_normal(c)
    start_mean = rng.standard_normal(c).astype(np.float32)
    start_var = rng.uniform(0.5, 2, c).astype(np.float32)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    gout = rng.standard_normal(shape).astype(np.float32)
    results = {}
    for name in ("numpy", "native"):
        backend.set_backend(name)
        layer.running_mean[...], layer.running_var[...] = start_mean, start_var
        layer.training() if train else layer.evaluate()
        layer.zero_grad_parameters()
        y = layer.forward(x).copy()
        gi = layer.backward(x, gout).copy()
        results[name] = [y, gi, layer.running_mean.copy(), layer.running_var.copy()] + (
            [layer.grad_weight.copy(), layer.grad_bias.copy()] if affine else [])
    for a, b in zip(results["numpy"], results["native"]):
        _close(b, a, "native vs numpy batch-norm", scale=np.abs(a).max(initial=0))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    rm, rv = torch.from_numpy(start_mean.copy()), torch.from_numpy(start_var.copy())
    tw = torch.from_numpy(layer.weight.copy()).requires_grad_() if affine else None
    tb = torch.from_numpy(layer.bias.copy()).requires_grad_() if affine else None
    ty = F.batch_norm(tx, rm, rv, tw, tb, train, 0.1, eps)
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), tx.grad.numpy(), rm.numpy(), rv.numpy()] + (
        [tw.grad.numpy(), tb.grad.numpy()] if affine else [])
    for a, b in zip(oracle, results["native"]):
        _close(b, a, "native vs torch batch-norm", scale=np.abs(a).max(initial=0))


# ---------------------------------------------------------------------- bad shapes
@pytest.mark.parametrize("layer, x, expected", [
    (SpatialConvolution(3, 6, 5, 5).set_name("conv1"), np.zeros((8, 1, 28, 28), np.float32),
     "expected input (N, 3, H, W), got (8, 1, 28, 28)"),
    (SpatialConvolution(1, 6, 5, 5).set_name("conv1"), np.zeros((8, 1, 3, 28), np.float32),
     "expected input (N, 1, H>=5, W>=5), got (8, 1, 3, 28)"),
    (SpatialConvolution(1, 6, 5, 5).set_name("conv1"), np.zeros((28, 28), np.float32),
     "got (28, 28)"),
    (SpatialMaxPooling(2, 2).set_name("pool1"), np.zeros((4, 3, 1, 9), np.float32),
     "got (4, 3, 1, 9)"),
    (SpatialAveragePooling(3, 3).set_name("pool1"), np.zeros((4, 9), np.float32),
     "got (4, 9)"),
    (SpatialBatchNormalization(3).set_name("bn1"), np.zeros((4, 2, 5, 5), np.float32),
     "expected input (N, 3, H, W), got (4, 2, 5, 5)"),
    (SpatialBatchNormalization(3).set_name("bn1"), np.zeros((1, 3, 1, 1), np.float32),
     "(1, 3, 1, 1)"),
])
def test_bad_shapes_fail_in_python_with_layer_name_and_shapes(monkeypatch, layer, x, expected):
    native = backend.native()
    if native is not None:
        for fn in ("conv_forward", "conv_backward_data", "conv_backward_weights",
                   "pool_forward", "pool_backward", "bn_forward", "bn_backward"):
            monkeypatch.setattr(native, fn, _never_called)
    with pytest.raises(LayerError) as err:
        layer.forward(x)
    message = str(err.value)
    assert layer.label() in message and expected in message, message


@needs_native
def test_bad_grad_output_fails_in_python(monkeypatch):
    layer = SpatialConvolution(1, 2, 3, 3).set_name("c")
    x = np.zeros((2, 1, 6, 6), np.float32)
    layer.forward(x)
    monkeypatch.setattr(backend.native(), "conv_backward_data", _never_called)
    with pytest.raises(LayerError, match=r"c.*\(2, 2, 4, 4\).*\(2, 2, 4, 5\)"):
        layer.backward(x, np.zeros((2, 2, 4, 5), np.float32))


@SETTINGS
@given(st.lists(st.integers(0, 6), min_size=4, max_size=4), st.integers(1, 4), st.integers(1, 4),
       st.integers(0, 3), st.integers(1, 3))
def test_layer_fuzz_over_degenerate_shapes_raises_never_crashes(shape, c, k, pad, stride):
    layers = [SpatialConvolution(c, 2, k, k, stride, stride, pad, pad)]
    if pad <= k // 2:
        layers += [SpatialMaxPooling(k, k, stride, stride, pad, pad),
                   SpatialAveragePooling(k, k, stride, stride, pad, pad)]
    x = np.ones(shape, np.float32)
    for layer in layers:
        try:
            y = layer.forward(x)
        except LayerError:
            continue
        layer.backward(x, np.ones_like(y))


FUZZ = r"""
import numpy as np, sys
from workbench.nn import backend
nat = backend.native()
rng = np.random.default_rng(int(sys.argv[1]))
calls = errors = 0
CONV = (
    "n c_in h w c_out kernel_h kernel_w stride_h stride_w dilation_h dilation_w "
    "pad_top pad_bottom pad_left pad_right groups bias relu src_channels_last "
    "dst_channels_last"
).split()
POOL = (
    "n c h w kernel_h kernel_w stride_h stride_w pad_top pad_bottom pad_left "
    "pad_right alg out_h out_w channels_last train"
).split()
BN = (
    "n c l train affine relu channels_last"
).split()
def conv(v):  # the fields given in order (a short list leaves the rest at their defaults)
    return nat.ConvGeometry(**dict(zip(CONV, v)))
def pool(v):
    return nat.PoolGeometry(**dict(zip(POOL, v)))
def bn(v):
    return nat.BatchNormGeometry(**dict(zip(BN, v)))
def arr(shape, dtype=np.float32):
    return np.zeros([max(0, s) for s in shape], dtype)
for i in range(400):
    v = [int(t) for t in rng.integers(-2, 7, size=20)]
    # the flags (bias, relu, src / dst channels-last): valid mostly, sometimes not
    v[16:20] = [int(t) for t in rng.integers(0, 2, size=4)]
    if rng.integers(0, 8) == 0:
        v[int(rng.integers(16, 20))] = int(rng.choice([-1, 2]))
    cl, train = int(rng.integers(0, 2)), int(rng.integers(0, 2))
    shape = [int(t) for t in rng.integers(0, 7, size=4)]
    for fn, args in (
        (nat.conv_forward, (arr(shape), arr(shape), None, arr(shape), conv(v))),
        (nat.conv_backward_data, (arr(shape), arr(shape), arr(shape), conv(v))),
        (nat.conv_backward_weights, (arr(shape), arr(shape), arr(shape), None, conv(v))),
        (nat.pool_forward, (arr(shape), arr(shape), None, pool(v[:15] + [cl, train]))),
        (nat.pool_backward, (arr(shape), arr(shape), arr([8], np.uint8),
                             pool(v[:15] + [cl, train]))),
        (nat.conv_forward, (arr(shape, np.float64), arr(shape), None, arr(shape), conv(v))),
        (nat.pool_forward, (arr(shape), arr(shape), None, pool(v[:3]))),
        (nat.bn_forward, (arr(shape[:3]), arr(shape[:3]), arr(shape[:1]), arr(shape[:1]),
                          None, None, bn(v[:7]), float(v[5]) / 3)),
        (nat.bn_backward, (arr(shape[:3]), arr(shape[:3]), arr(shape[:1]), arr(shape[:1]),
                           None, arr(shape[:3]), None, None, bn(v[:7]), 1e-5)),
    ):
        calls += 1
        try:
            fn(*args)
        except (ValueError, TypeError):
            errors += 1
print(calls, errors)
"""


@needs_native
def test_native_entry_points_fuzz_raise_never_crash():
    """Random (mostly invalid) geometries and arrays straight into the native functions, in a
    child process so that a crash is reported instead of killing the test run."""
    for seed in (1, 2):
        done = subprocess.run([sys.executable, "-c", FUZZ, str(seed)], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        calls, errors = map(int, done.stdout.split())
        assert calls == 3600 and errors > 0


# ---------------------------------------------------------------------- settings
def _child(code, **env):
    full = dict(os.environ, **env)
    for key in ("WORKBENCH_BACKEND", "WORKBENCH_NUM_THREADS", "OMP_NUM_THREADS"):
        if key not in env:
            full.pop(key, None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


SETTINGS_CODE = r"""
import json, os, sys
import numpy as np
from workbench.nn import backend, SpatialConvolution
SpatialConvolution(1, 2, 3, 3).forward(np.zeros((1, 1, 5, 5), np.float32))
nat = backend.native()
print(json.dumps({"backend": backend.get_backend(), "threads": backend.get_num_threads(),
                  "omp": nat.get_num_threads() if nat else None,
                  "cores": len(os.sched_getaffinity(0)), "torch": "torch" in sys.modules}))
"""


def test_default_threads_follow_affinity_and_omp_num_threads():
    r = _child(SETTINGS_CODE)
    assert r["threads"] == r["cores"] and r["backend"] == "native"
    assert not r["torch"], "the package must never import torch"
    if r["omp"] is not None:
        assert r["omp"] == r["threads"]
    r = _child(SETTINGS_CODE, OMP_NUM_THREADS="1")  # what Spark sets in its Python workers
    assert r["threads"] == 1 and r["omp"] in (None, 1)


def test_env_vars_select_backend_and_threads():
    r = _child(SETTINGS_CODE, WORKBENCH_BACKEND="numpy", WORKBENCH_NUM_THREADS="1")
    assert r["backend"] == "numpy" and r["threads"] == 1 and r["omp"] in (None, 1)


def test_set_num_threads_reaches_the_native_library():
    previous = backend.set_num_threads(1)
    try:
        assert backend.get_num_threads() == 1
        if backend.native() is not None:
            assert backend.native().get_num_threads() == 1
        try:
            from threadpoolctl import threadpool_info
            assert all(p["num_threads"] == 1 for p in threadpool_info()
                       if p["user_api"] == "blas" and "torch" not in p["filepath"])
        except ImportError:
            pass
    finally:
        backend.set_num_threads(previous)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        backend.set_num_threads(bad)
    with pytest.raises(ValueError, match="set_backend"):
        backend.set_backend("mkl")
    with pytest.raises(ValueError, match="set_kernel"):
        backend.set_kernel("winograd", True)
