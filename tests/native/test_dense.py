"""The native dense kernels (kernels_native/dense.cpp): Linear on the GEMM rule, element-wise
activations, SoftMax/LogSoftMax, SpatialCrossMapLRN and LookupTable.  Parity with the numpy
reference and PyTorch over random shapes (hypothesis), shape errors raised in Python before native
code, a crash fuzz of the entry points, and the GEMM rule.  No timing here: speed is in
benchmarks/bench_native.py.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from oracle import F, torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import _close, _never_called, _run_both, NATIVE_SETTINGS as SETTINGS
from workbench.nn import (ELU, GELU, LayerError, LeakyReLU, Linear, LogSoftMax, LookupTable,
                          ReLU, Sequential, Sigmoid, SiLU, SoftMax, SoftPlus, SpatialCrossMapLRN,
                          Tanh, backend, gemm)
from workbench.nn.module import input_grad_unused

FEW = SETTINGS.__class__(SETTINGS, max_examples=30)
DENSE_ENTRY_POINTS = ("linear_forward", "linear_backward_data", "linear_backward_weights",
                      "linear_backward",
                      "eltwise_forward", "eltwise_backward", "softmax_forward",
                      "softmax_backward", "lrn_forward", "lrn_backward", "lookup_forward",
                      "lookup_backward")


@pytest.fixture(autouse=True)
def _native_backend():
    previous = backend.set_backend("native")
    yield
    backend.set_backend(previous)


def test_dense_entry_points_exist():
    nat = backend.native()
    assert nat is not None, backend.native_error()
    for name in DENSE_ENTRY_POINTS:
        assert callable(getattr(nat, name)), name


def _compare(results, oracle, what):
    for i, (a, b, t) in enumerate(zip(results["numpy"], results["native"], oracle)):
        scale = np.abs(t).max(initial=0)
        _close(b, a, f"native vs numpy [{i}] {what}", scale=scale)
        _close(b, t, f"native vs torch [{i}] {what}", scale=scale)


# ---------------------------------------------------------------------- Linear
@pytest.mark.oracle
@SETTINGS
@given(st.integers(1, 7), st.integers(1, 40), st.integers(1, 40), st.booleans(), st.booleans(),
       st.sampled_from(["auto", "onednn", "openblas"]), st.integers(0, 2**31 - 1))
def test_linear_native_equals_numpy_and_torch(n, k, o, bias, batched, provider, seed):
    previous = gemm.set_gemm(provider)
    try:
        rng = np.random.default_rng(seed)
        layer = Linear(k, o, with_bias=bias)
        x = rng.standard_normal((n, k) if batched else (k,)).astype(np.float32)
        gout = rng.standard_normal((n, o) if batched else (o,)).astype(np.float32)
        r = _run_both(layer, x, lambda shape: gout)
    finally:
        gemm.set_gemm(previous)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(layer.weight.copy()).requires_grad_()
    tb = torch.from_numpy(layer.bias.copy()).requires_grad_() if bias else None
    ty = F.linear(tx, tw, tb)
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()] + (
        [tb.grad.numpy()] if bias else [])
    _compare(r, oracle, (n, k, o, bias, batched, provider))


def _mlp_block(k, o, bias):
    return Sequential().add(Linear(k, o, with_bias=bias)).add(ReLU())


@pytest.mark.oracle
@SETTINGS
@given(st.integers(1, 7), st.integers(1, 40), st.integers(1, 40), st.booleans(), st.booleans(),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_linear_relu_fused_equals_numpy_and_torch(n, k, o, bias, batched, params_only, seed):
    """Linear + ReLU in a Sequential: one native pass forward (bias and ReLU together) and one
    native call backward (the ReLU's mask, grad_input and the parameter gradients), against the
    numpy layers run one by one and PyTorch; ``params_only``: no gradient w.r.t. the input
    (the first layer under training), as the Optimizers run it."""
    rng = np.random.default_rng(seed)
    block = _mlp_block(k, o, bias)
    linear = block._children[0]
    x = rng.standard_normal((n, k) if batched else (k,)).astype(np.float32)
    gout = rng.standard_normal((n, o) if batched else (o,)).astype(np.float32)
    results = {}
    for name in ("numpy", "native"):
        backend.set_backend(name)
        block.zero_grad_parameters()
        y = block.forward(x).copy()
        fused = linear.__dict__["_scratch"]["fused_relu"] is not None
        assert fused == (name == "native"), name
        if params_only:
            with input_grad_unused():
                gi = block.backward(x, gout)
            assert gi is None
            gi = np.zeros_like(x)
        else:
            gi = block.backward(x, gout).copy()
        results[name] = [y, gi, linear.grad_weight.copy()] + (
            [linear.grad_bias.copy()] if bias else [])
    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(linear.weight.copy()).requires_grad_()
    tb = torch.from_numpy(linear.bias.copy()).requires_grad_() if bias else None
    ty = torch.relu(F.linear(tx, tw, tb))
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), np.zeros_like(x) if params_only else tx.grad.numpy(),
              tw.grad.numpy()] + ([tb.grad.numpy()] if bias else [])
    _compare(results, oracle, (n, k, o, bias, batched, params_only))


def test_linear_relu_fused_keeps_regularizers_and_frozen_layers_and_falls_back():
    """The fused backward adds the regularizers' gradients as the unfused path does, leaves a
    frozen layer's gradients alone, and a float64 input (no native kernel) runs unfused."""
    from workbench.nn import L2Regularizer
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 9)).astype(np.float32)
    gout = rng.standard_normal((6, 5)).astype(np.float32)
    grads = {}
    for name in ("numpy", "native"):
        backend.set_backend(name)
        block = Sequential().add(Linear(9, 5, wRegularizer=L2Regularizer(0.1))).add(ReLU())
        linear = block._children[0]
        linear.weight[...] = np.linspace(-1, 1, 45, dtype=np.float32).reshape(5, 9)
        linear.bias[...] = np.linspace(-0.5, 0.5, 5, dtype=np.float32)
        block.forward(x)
        block.backward(x, gout)
        grads[name] = linear.grad_weight.copy()
    _close(grads["native"], grads["numpy"], "regularized", scale=5)
    frozen = _mlp_block(9, 5, True)
    frozen._children[0].freeze()
    frozen.forward(x)
    gi = frozen.backward(x, gout)
    assert not frozen._children[0].grad_weight.any() and gi.shape == x.shape
    block = _mlp_block(9, 5, True)
    block.forward(x.astype(np.float64))
    assert block._children[0].__dict__["_scratch"]["fused_relu"] is None


def test_linear_native_accumulates_gradients_and_casts_grad_output():
    rng = np.random.default_rng(1)
    layer = Linear(13, 9)
    x = rng.standard_normal((5, 13)).astype(np.float32)
    g = rng.standard_normal((5, 9))  # float64 and (below) a non-contiguous view: cast in Python
    results = {}
    for name in ("numpy", "native"):
        backend.set_backend(name)
        layer.zero_grad_parameters()
        layer.forward(x)
        layer.backward(x, g)
        gi = layer.backward(x, np.asfortranarray(g)).copy()
        results[name] = [gi, layer.grad_weight.copy(), layer.grad_bias.copy()]
    for a, b in zip(results["numpy"], results["native"]):
        _close(b, a, "accumulated", scale=10)
    _close(results["native"][1], 2 * (g.T @ x), "two backward calls add up", scale=10)


def test_every_gemm_provider_gives_the_same_linear_and_the_rule_decides_auto():
    rng = np.random.default_rng(2)
    layer = Linear(37, 23)
    x = rng.standard_normal((11, 37)).astype(np.float32)
    providers = gemm.gemm_providers()
    assert "onednn" in providers and "openblas" in providers  # numpy's OpenBLAS is always there
    outs = {}
    for p in providers:
        previous = gemm.set_gemm(p)
        try:
            outs[p] = layer.forward(x).copy()
        finally:
            gemm.set_gemm(previous)
    for p in providers:
        _close(outs[p], x @ layer.weight.T + layer.bias, p)
    gemm.set_gemm("auto")
    previous = backend.set_num_threads(1)
    try:
        layer.forward(x)
        layer.backward(x, np.ones((11, 23), np.float32))
    finally:
        backend.set_num_threads(previous)
    ran = {c["kernel"]: c["provider"] for c in gemm.gemm_choices()
           if (c["batch"], c["in"], c["out"], c["threads"]) == (11, 37, 23, 1)}
    assert set(ran) == {"forward", "grad_input", "grad_weight"}, gemm.gemm_choices()
    for kernel, provider in ran.items():  # what ran is what the rule says
        assert provider == gemm.gemm_rule(kernel, 11, 37, 23, 1)


def test_gemm_rule_is_a_function_of_shape_threads_and_cpu():
    # the weight gradient of a big layer on one thread is OpenBLAS's on AVX2 (measured by
    # benchmarks/bench_gemm.py); small layers, the other kernels and more threads are oneDNN's
    avx512 = backend.native().has_avx512()
    assert gemm.gemm_rule("grad_weight", 256, 512, 512, 1) == ("onednn" if avx512 else "openblas")
    for args in (("grad_weight", 128, 100, 10, 1), ("grad_weight", 256, 512, 512, 2),
                 ("forward", 256, 512, 512, 1), ("grad_input", 256, 512, 512, 1),
                 ("grad_weight", 128, 256, 64, 1)):
        assert gemm.gemm_rule(*args) == "onednn", args
    with pytest.raises(ValueError, match="gemm_rule"):
        gemm.gemm_rule("backward", 1, 1, 1)
    # a forced provider wins over the rule, and "auto" goes back to it
    layer, x = Linear(512, 512), np.ones((256, 512), np.float32)
    previous = backend.set_num_threads(1)
    try:
        for setting, expected in (("onednn", "onednn"),
                                  ("auto", gemm.gemm_rule("grad_weight", 256, 512, 512, 1))):
            gemm.set_gemm(setting)
            layer.forward(x)
            layer.backward(x, x)
            ran = [c["provider"] for c in gemm.gemm_choices() if c["kernel"] == "grad_weight"
                   and (c["batch"], c["in"], c["out"], c["threads"]) == (256, 512, 512, 1)]
            assert ran == [expected]
    finally:
        gemm.set_gemm("auto")
        backend.set_num_threads(previous)
    with pytest.raises(ValueError, match="set_gemm"):
        gemm.set_gemm("cublas")


# ---------------------------------------------------------------------- element-wise
ACTIVATIONS = {
    "relu": (lambda: ReLU(), lambda t: torch.relu(t)),
    "leaky_relu": (lambda: LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
    "tanh": (lambda: Tanh(), lambda t: torch.tanh(t)),
    "sigmoid": (lambda: Sigmoid(), lambda t: torch.sigmoid(t)),
    "elu": (lambda: ELU(0.7), lambda t: F.elu(t, 0.7)),
    "silu": (lambda: SiLU(), lambda t: F.silu(t)),
    "gelu": (lambda: GELU(), lambda t: F.gelu(t)),
    "gelu_tanh": (lambda: GELU("tanh"), lambda t: F.gelu(t, approximate="tanh")),
    "softplus": (lambda: SoftPlus(2.0), lambda t: F.softplus(t, 2.0)),
}


@pytest.mark.oracle
@SETTINGS
@given(st.sampled_from(sorted(ACTIVATIONS)), st.lists(st.integers(1, 6), min_size=0, max_size=4),
       st.floats(0.1, 8), st.integers(0, 2**31 - 1))
def test_activations_native_equal_numpy_and_torch(name, shape, spread, seed):
    make, torch_fn = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * spread, dtype=np.float32)
    x.flat[0] = 0.0  # the kink of ReLU & co.: both backends must agree there too
    gout = np.asarray(rng.standard_normal(shape), dtype=np.float32)
    r = _run_both(make(), x, lambda s: gout)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch_fn(tx)
    ty.backward(torch.from_numpy(gout))
    _compare(r, [ty.detach().numpy(), tx.grad.numpy()], (name, shape))


def test_activation_on_a_non_contiguous_view_and_float64_stays_correct(monkeypatch):
    x = np.random.default_rng(4).standard_normal((6, 8)).astype(np.float32)[:, ::2]
    _close(Tanh().forward(x), np.tanh(x), "strided view")
    monkeypatch.setattr(backend.native(), "eltwise_forward", _never_called)
    assert Tanh().forward(x.astype(np.float64)).dtype == np.float64


# ---------------------------------------------------------------------- softmax
@pytest.mark.oracle
@SETTINGS
@given(st.booleans(), st.integers(1, 4), st.integers(1, 5), st.integers(1, 12),
       st.integers(1, 4), st.floats(0.1, 30), st.integers(0, 2**31 - 1))
def test_softmax_native_equals_numpy_and_torch(log, ndim, n, c, hw, spread, seed):
    shape = {1: (c,), 2: (n, c), 3: (c, hw, hw + 1), 4: (n, c, hw, 2)}[ndim]
    axis = {1: 0, 2: 1, 3: 0, 4: 1}[ndim]
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * spread).astype(np.float32)
    gout = rng.standard_normal(shape).astype(np.float32)
    r = _run_both(LogSoftMax() if log else SoftMax(), x, lambda s: gout)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = (F.log_softmax if log else F.softmax)(tx, dim=axis)
    ty.backward(torch.from_numpy(gout))
    _compare(r, [ty.detach().numpy(), tx.grad.numpy()], (log, shape))


# ---------------------------------------------------------------------- LRN
@pytest.mark.oracle
@FEW
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5),
       st.sampled_from([1, 3, 5, 7]), st.floats(1e-4, 2), st.floats(0.25, 1.5),
       st.floats(0.5, 3), st.integers(0, 2**31 - 1))
def test_cross_map_lrn_native_equals_numpy_and_torch(n, c, h, w, size, alpha, beta, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    gout = rng.standard_normal((n, c, h, w)).astype(np.float32)
    r = _run_both(SpatialCrossMapLRN(size, alpha, beta, k), x, lambda s: gout)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = F.local_response_norm(tx, size, alpha, beta, k)
    ty.backward(torch.from_numpy(gout))
    _compare(r, [ty.detach().numpy(), tx.grad.numpy()], (n, c, h, w, size, alpha, beta, k))


# ---------------------------------------------------------------------- LookupTable
@pytest.mark.oracle
@SETTINGS
@given(st.integers(1, 30), st.integers(1, 17), st.lists(st.integers(1, 6), min_size=1,
       max_size=2), st.booleans(), st.integers(0, 2**31 - 1))
def test_lookup_table_native_equals_numpy_and_torch(rows, dim, shape, padded, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, rows, shape)  # repeated ids: the scatter-add must sum them
    pad = int(ids.flat[0]) if padded else None
    layer = LookupTable(rows, dim, padding_value=pad)
    gout = rng.standard_normal(tuple(shape) + (dim,)).astype(np.float32)
    r = _run_both(layer, ids, lambda s: gout)
    tw = torch.from_numpy(layer.weight.copy()).requires_grad_()
    ty = F.embedding(torch.from_numpy(ids), tw, padding_idx=pad)
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), np.zeros(ids.shape, np.float32), tw.grad.numpy()]
    _compare(r, oracle, (rows, dim, shape, pad))


# ---------------------------------------------------------------------- bad shapes
@pytest.mark.parametrize("layer, x, expected", [
    (Linear(10, 4).set_name("fc1"), np.zeros((3, 11), np.float32),
     "expected input (N, 10), got (3, 11)"),
    (Linear(10, 4).set_name("fc1"), np.zeros((2, 3, 10), np.float32), "got (2, 3, 10)"),
    (SoftMax().set_name("sm"), np.zeros((2, 3, 4, 5, 6), np.float32), "got (2, 3, 4, 5, 6)"),
    (LogSoftMax().set_name("lsm"), np.zeros((), np.float32), "got ()"),
    (SpatialCrossMapLRN(5).set_name("lrn"), np.zeros((2, 3, 4), np.float32), "got (2, 3, 4)"),
    (LookupTable(5, 3).set_name("emb"), np.zeros((2, 3, 4), np.int64), "got (2, 3, 4)"),
    (LookupTable(5, 3).set_name("emb"), np.array([1, 5]), "5 at position 1 is out of range"),
])
def test_bad_input_fails_in_python_with_layer_name_and_shapes(monkeypatch, layer, x, expected):
    for fn in DENSE_ENTRY_POINTS:
        monkeypatch.setattr(backend.native(), fn, _never_called)
    with pytest.raises(LayerError) as err:
        layer.forward(x)
    message = str(err.value)
    assert layer.label() in message and expected in message, message


@pytest.mark.parametrize("layer, x, bad_grad", [
    (Linear(6, 4).set_name("fc"), np.zeros((3, 6), np.float32), np.zeros((3, 5), np.float32)),
    (ReLU().set_name("act"), np.zeros((3, 6), np.float32), np.zeros((6, 3), np.float32)),
    (Sigmoid().set_name("act"), np.zeros((3, 6), np.float32), np.zeros((3, 6, 1), np.float32)),
    (LogSoftMax().set_name("lsm"), np.zeros((3, 6), np.float32), np.zeros((3, 7), np.float32)),
    (SpatialCrossMapLRN(3).set_name("lrn"), np.zeros((1, 4, 2, 2), np.float32),
     np.zeros((1, 4, 2, 3), np.float32)),
    (LookupTable(5, 3).set_name("emb"), np.array([[1, 2]]), np.zeros((1, 2, 4), np.float32)),
])
def test_bad_grad_output_fails_in_python_with_layer_name_and_shapes(monkeypatch, layer, x,
                                                                     bad_grad):
    y = layer.forward(x)
    for fn in DENSE_ENTRY_POINTS:
        monkeypatch.setattr(backend.native(), fn, _never_called)
    with pytest.raises(LayerError) as err:
        layer.backward(x, bad_grad)
    message = str(err.value)
    shape = lambda s: "(" + ", ".join(map(str, s)) + ")"  # noqa: E731
    assert layer.label() in message and shape(y.shape) in message and \
        shape(bad_grad.shape) in message, message


# ---------------------------------------------------------------------- crash fuzz
FUZZ = r"""
import numpy as np, sys
from workbench.nn import backend, gemm
nat = backend.native()
gemm.gemm_providers()  # loads the BLAS candidates
rng = np.random.default_rng(int(sys.argv[1]))
calls = errors = 0
def arr(shape, dtype=np.float32):
    dtype = dtype if rng.random() > 0.1 else rng.choice([np.float64, np.int32, np.float16])
    a = np.zeros([max(0, int(s)) for s in shape], dtype)
    return a if rng.random() > 0.1 or a.ndim < 2 else a.T
def dims(n):
    return [int(t) for t in rng.integers(-1, 6, size=n)]
def lrn(v):  # n, c, h, w, size by name
    return nat.LrnGeometry(**dict(zip(("n", "c", "h", "w", "size"), v)))
for i in range(300):
    d = dims(6)
    ids = rng.integers(-3, 8, size=max(0, d[0])).astype(
        np.int64 if rng.random() > 0.1 else np.int32)
    for fn, args in (
        (nat.linear_forward, (arr(d[:2]), arr(d[2:4]), None if d[4] < 2 else arr(d[4:5]),
                              arr(d[1:3]), bool(d[5] % 2))),
        (nat.linear_backward_data, (arr(d[:2]), arr(d[2:4]), arr(d[4:6]))),
        (nat.linear_backward_weights, (arr(d[:2]), arr(d[2:4]), arr(d[3:5]),
                                       None if d[5] < 2 else arr(d[5:6]))),
        (nat.linear_backward, (arr(d[:2]), arr(d[2:4]), arr(d[3:5]),
                               None if d[5] < 1 else arr(d[2:4]),
                               None if d[5] == 2 else arr(d[1:3]),
                               None if d[4] < 1 else arr(d[:2]), None if d[4] < 3 else arr(d[3:5]),
                               None if d[5] < 3 else arr(d[3:4]))),
        (nat.eltwise_forward, (arr(d[:3]), arr(d[1:4]), d[4] + 3, float(d[5]))),
        (nat.eltwise_backward, (arr(d[:2]), arr(d[:2]), arr(d[1:3]), arr(d[:2]), d[3] + 4,
                                float(d[4]))),
        (nat.softmax_forward, (arr(d[:3]), arr(d[:3]), dims(4))),
        (nat.softmax_backward, (arr(d[:3]), arr(d[1:4]), arr(d[:3]), dims(4))),
        (nat.lrn_workspace_size, (lrn(dims(5)), float(d[0]), float(d[1]), float(d[2]))),
        (nat.lrn_forward, (arr(d[:4]), arr(d[:4]), arr([d[5] * 50], np.uint8), lrn(dims(5)),
                           1.0, 0.75, float(d[4]))),
        (nat.lrn_backward, (arr(d[:4]), arr(d[:4]), arr(d[:4]), None, lrn(dims(5)), 1.0, 0.75,
                            1.0)),
        (nat.lookup_forward, (arr(d[1:3]), ids, arr([len(ids), d[2]]))),
        (nat.lookup_backward, (arr([len(ids), d[2]]), ids, arr(d[1:3]), int(d[3]))),
        (nat.load_blas, (["openblas", "mkl", "x"][d[0] % 3], "/nonexistent/lib%d.so" % d[1])),
        (nat.set_gemm_provider, (["auto", "onednn", "mkl", "x"][d[0] % 4],)),
    ):
        calls += 1
        try:
            fn(*args)
        except (ValueError, TypeError):
            errors += 1
print(calls, errors)
"""


def test_dense_entry_points_fuzz_raise_never_crash():
    """Random, mostly invalid shapes, dtypes, layouts and ids straight into the native functions,
    in a child process so that a crash is reported instead of killing the test run."""
    done = subprocess.run([sys.executable, "-c", FUZZ, "7"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    calls, errors = map(int, done.stdout.split())
    assert calls == 300 * 15 and errors > calls // 2


@FEW
@given(st.lists(st.integers(0, 5), min_size=0, max_size=4), st.integers(1, 5), st.integers(1, 5))
def test_dense_layers_over_degenerate_shapes_raise_layer_errors_only(shape, k, o):
    x = np.ones(shape, np.float32)
    for layer in (Linear(k, o), ReLU(), Tanh(), SoftMax(), LogSoftMax(), SpatialCrossMapLRN(3)):
        try:
            y = layer.forward(x)
        except LayerError:
            continue
        gi = layer.backward(x, np.ones_like(y))
        assert gi.shape == x.shape


# ---------------------------------------------------------------------- cross-entropy
@pytest.mark.oracle
@FEW
@given(st.integers(1, 40), st.integers(2, 300), st.floats(0.1, 200.0), st.integers(0, 2**31 - 1))
def test_cross_entropy_native_softmax_equals_numpy_and_torch(rows, classes, spread, seed):
    """Forward on oneDNN's softmax (kept for backward) vs the numpy log-sum-exp; a large
    ``spread`` drives some target probabilities below float32's range (exact fallback)."""
    from workbench.nn import CrossEntropyCriterion
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, classes)) * spread).astype(np.float32)
    t = rng.integers(0, classes, rows)
    crit = CrossEntropyCriterion()
    backend.set_backend("numpy")
    loss0, grad0 = crit.forward(x, t), crit.backward(x, t).copy()
    backend.set_backend("native")
    loss, grad = crit.forward(x, t), crit.backward(x, t)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    ref = F.cross_entropy(tx, torch.from_numpy(t))
    ref.backward()
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, loss0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-5, atol=1e-5)
    _close(grad, grad0, "cross-entropy grad vs numpy")
    _close(grad, tx.grad.numpy(), "cross-entropy grad vs torch")


def test_cross_entropy_backward_of_other_scores_recomputes():
    from workbench.nn import CrossEntropyCriterion
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6)
    crit = CrossEntropyCriterion()
    crit.forward(a, t)
    b = a * 3  # other scores: the softmax kept from forward must not be used
    backend.set_backend("numpy")
    expected = crit.backward(b, t).copy()
    backend.set_backend("native")
    crit.forward(a, t)
    _close(crit.backward(b, t), expected, "backward of other scores")
    # twice in a row after one forward: the second recomputes (the kept softmax is consumed)
    crit.forward(a, t)
    first = crit.backward(a, t).copy()
    _close(crit.backward(a, t), first, "second backward")
    x = np.full((2, 3), np.nan, np.float32)
    assert np.isnan(crit.forward(x, np.array([0, 1])))
