"""The native layout work: batch norm on the native kernel (training and inference, forward and
backward), batch norm + ReLU and convolution + ReLU fused inside ``Sequential``, both convolution
gradients in one native call, and the gradient buffers pooled across a backward pass.

Property-based over random shapes (hypothesis), against the numpy reference and PyTorch; bad
shapes must fail in Python (layer name and both shapes) before native code; the new native
entry points are fuzzed in a child process.  No timing here: speed is in
benchmarks/bench_native.py.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from oracle import F, torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import _close, _never_called
from workbench.nn import (BatchNormalization, CAddTable, ConcatTable, Identity, LayerError,
                          ReLU, Sequential, SpatialBatchNormalization, SpatialConvolution,
                          Tanh, backend)
from workbench.nn.module import GradPool

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _native_backend():
    assert backend.native() is not None, backend.native_error()
    previous = backend.set_backend("native")
    kernels = backend.kernels()
    yield
    backend.set_backend(previous)
    for name, on in kernels.items():
        backend.set_kernel(name, on)


def _both_backends(model, x, gout, train):
    """[output, grad_input, grad params...] with the numpy and the native backend."""
    results = {}
    for name in ("numpy", "native"):
        backend.set_backend(name)
        for m in model.modules():
            for buf in ("running_mean", "running_var"):
                if hasattr(m, buf):
                    getattr(m, buf)[...] = m._start[buf]
        model.training() if train else model.evaluate()
        model.zero_grad_parameters()
        y = model.forward(x).copy()
        gi = model.backward(x, gout).copy()
        results[name] = [y, gi] + [g.copy() for g in model.parameter_arrays()[1]] + [
            getattr(m, b).copy() for m in model.modules()
            for b in ("running_mean", "running_var") if hasattr(m, b)]
    return results


def _fused(model):
    """Names of the layers whose last forward fused the ReLU after them."""
    return [type(m).__name__ for m in model.modules()
            if m.__dict__.get("_scratch", {}).get("fused_relu") is not None]


# ---------------------------------------------------------------------- batch norm (+ ReLU)
@pytest.mark.oracle
@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 5), st.integers(0, 5),
       st.booleans(), st.booleans(), st.booleans(), st.sampled_from([1e-5, 1e-3]),
       st.integers(0, 2**31 - 1))
def test_batch_norm_and_fused_relu_equal_numpy_and_torch(n, c, h, w, affine, train, relu, eps,
                                                         seed):
    spatial = h > 0 and w > 0
    shape = (n, c, h, w) if spatial else (n, c)
    assume(not train or n * (h * w if spatial else 1) >= 2)
    rng = np.random.default_rng(seed)
    bn = (SpatialBatchNormalization if spatial else BatchNormalization)(c, eps, 0.1, affine)
    if affine:
        bn.weight[...] = rng.standard_normal(c)
        bn.bias[...] = rng.standard_normal(c)
    bn._start = {"running_mean": rng.standard_normal(c).astype(np.float32),
                 "running_var": rng.uniform(0.5, 2, c).astype(np.float32)}
    model = Sequential().add(bn)
    if relu:
        model.add(ReLU())
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    gout = rng.standard_normal(shape).astype(np.float32)
    results = _both_backends(model, x, gout, train)
    assert _fused(model) == (["SpatialBatchNormalization" if spatial else "BatchNormalization"]
                             if relu else [])
    for a, b in zip(results["numpy"], results["native"]):
        _close(b, a, "native vs numpy batch-norm", scale=np.abs(a).max(initial=0))
    # PyTorch
    tx = torch.from_numpy(x.copy()).requires_grad_()
    rm, rv = (torch.from_numpy(bn._start[k].copy()) for k in ("running_mean", "running_var"))
    tw = torch.from_numpy(bn.weight.copy()).requires_grad_() if affine else None
    tb = torch.from_numpy(bn.bias.copy()).requires_grad_() if affine else None
    ty = F.batch_norm(tx, rm, rv, tw, tb, train, 0.1, eps)
    if relu:
        ty = torch.relu(ty)
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), tx.grad.numpy()] + (
        [tw.grad.numpy(), tb.grad.numpy()] if affine else []) + [rm.numpy(), rv.numpy()]
    for a, b in zip(oracle, results["native"]):
        _close(b, a, "native vs torch batch-norm", scale=np.abs(a).max(initial=0))


def test_batch_norm_native_keeps_no_normalized_copy():
    bn = SpatialBatchNormalization(4)
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    bn.forward(x)
    bn.backward(x, np.ones_like(x))
    assert "xhat" not in bn.__dict__.get("_scratch", {})
    backend.set_kernel("batch_norm", False)
    bn.forward(x)
    assert "xhat" in bn.__dict__["_scratch"]  # the numpy reference keeps it


def test_fusion_needs_a_plain_relu_and_the_native_kernel():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for model, fused in (
            (Sequential().add(SpatialBatchNormalization(3)).add(Tanh()), []),
            (Sequential().add(SpatialBatchNormalization(3)).add(ReLU()),
             ["SpatialBatchNormalization"]),
            (Sequential().add(SpatialConvolution(3, 2, 3, 3)).add(ReLU()),
             ["SpatialConvolution"]),
            (Sequential().add(SpatialConvolution(3, 2, 3, 3, data_format="NHWC")).add(ReLU()),
             [])):
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if "NHWC" in repr(model) else x
        model.forward(xin)
        assert _fused(model) == fused, repr(model)
    model = Sequential().add(SpatialBatchNormalization(3)).add(ReLU())
    backend.set_kernel("batch_norm", False)
    model.forward(x)
    assert _fused(model) == []
    model.double()
    backend.set_kernel("batch_norm", True)
    model.forward(x.astype(np.float64))
    assert _fused(model) == []  # float64 stays in numpy


# ---------------------------------------------------------------------- convolution + ReLU
@st.composite
def conv_cases(draw):
    g = draw(st.integers(1, 2))
    c, o = g * draw(st.integers(1, 4)), g * draw(st.integers(1, 4))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    h, w = draw(st.integers(k, 10)), draw(st.integers(k, 10))
    n = draw(st.integers(1, 3))
    return n, c, o, g, k, s, p, h, w, draw(st.booleans()), draw(st.booleans())


@pytest.mark.oracle
@SETTINGS
@given(conv_cases(), st.integers(0, 2**31 - 1))
def test_conv_fused_relu_equals_numpy_and_torch(case, seed):
    n, c, o, g, k, s, p, h, w, bias, batched = case
    rng = np.random.default_rng(seed)
    conv = SpatialConvolution(c, o, k, k, s, s, p, p, n_group=g, with_bias=bias)
    model = Sequential().add(conv).add(ReLU())
    for m in model.modules():
        m._start = {}
    shape = (n, c, h, w) if batched else (c, h, w)
    x = rng.standard_normal(shape).astype(np.float32)
    y_shape = model.forward(x).shape
    gout = rng.standard_normal(y_shape).astype(np.float32)
    results = _both_backends(model, x, gout, True)
    assert _fused(model) == ["SpatialConvolution"]
    for a, b in zip(results["numpy"], results["native"]):
        _close(b, a, "native vs numpy conv+relu", scale=np.abs(a).max(initial=0))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(conv.weight.copy()).requires_grad_()
    tb = torch.from_numpy(conv.bias.copy()).requires_grad_() if bias else None
    ty = torch.relu(F.conv2d(tx, tw, tb, s, p, 1, g))
    ty.backward(torch.from_numpy(gout))
    oracle = [ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()] + (
        [tb.grad.numpy()] if bias else [])
    for a, b in zip(oracle, results["native"]):
        _close(b, a, "native vs torch conv+relu", scale=np.abs(a).max(initial=0))


@pytest.fixture
def chunk_bytes():
    native = backend.native()
    previous = native.get_conv_chunk_bytes()
    yield native.set_conv_chunk_bytes
    native.set_conv_chunk_bytes(previous)


@SETTINGS
@given(conv_cases(), st.integers(1, 3), st.booleans(), st.integers(0, 2**31 - 1))
def test_conv_in_batch_chunks_equals_numpy(chunk_bytes, case, images, relu, seed):
    """The batch cut into chunks of ``images`` images (a shorter one last): forward, both
    gradients (accumulated over the chunks) and the separate native entry points."""
    n, c, o, g, k, s, p, h, w, bias, _ = case
    n += 2
    conv = SpatialConvolution(c, o, k, k, s, s, p, p, n_group=g, with_bias=bias)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    chunk_bytes(images * 4 * (c * h * w + o * oh * ow))
    model = Sequential().add(conv)
    if relu:
        model.add(ReLU())
    for m in model.modules():
        m._start = {}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    gout = rng.standard_normal((n, o, oh, ow)).astype(np.float32)
    results = _both_backends(model, x, gout, True)
    for a, b in zip(results["numpy"], results["native"]):
        _close(b, a, "chunked native vs numpy conv", scale=np.abs(a).max(initial=0))
    # backward data and backward weights on their own (outside Module.backward)
    conv.zero_grad_parameters()
    conv.forward(x)
    gi = conv.update_grad_input(x, gout).copy()
    conv.acc_grad_parameters(x, gout)
    backend.set_backend("numpy")
    _close(gi, conv.update_grad_input(x, gout), "chunked backward data", np.abs(gi).max())
    gw = conv.grad_weight.copy()
    conv.zero_grad_parameters()
    conv.acc_grad_parameters(x, gout)
    _close(gw, conv.grad_weight, "chunked backward weights", np.abs(gw).max())


def test_conv_gradients_accumulate_through_the_combined_native_backward():
    conv = SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((2, 4, 5, 5)).astype(np.float32)
    conv.forward(x)
    conv.backward(x, g)
    once = conv.grad_weight.copy(), conv.grad_bias.copy()
    conv.backward(x, g)
    _close(conv.grad_weight, 2 * once[0], "grad_weight accumulates", np.abs(once[0]).max())
    _close(conv.grad_bias, 2 * once[1], "grad_bias accumulates", np.abs(once[1]).max())
    conv.freeze()  # frozen: grad_input only, the parameter gradients stay put
    conv.backward(x, g)
    _close(conv.grad_weight, 2 * once[0], "frozen", np.abs(once[0]).max())


# ---------------------------------------------------------------------- a ResNet block
def _resnet_block(c):
    body = (Sequential().add(SpatialConvolution(c, c, 3, 3, 1, 1, 1, 1, with_bias=False))
            .add(SpatialBatchNormalization(c)).add(ReLU())
            .add(SpatialConvolution(c, c, 3, 3, 1, 1, 1, 1, with_bias=False))
            .add(SpatialBatchNormalization(c)))
    block = Sequential().add(ConcatTable().add(body).add(Identity())).add(CAddTable()).add(ReLU())
    return (Sequential().add(SpatialConvolution(3, c, 3, 3, 1, 1, 1, 1)).add(ReLU())
            .add(block).add(_copy_block(block)))


def _copy_block(block):
    from workbench.nn.module import build_module
    return build_module(block.get_config())


def _torch_resnet(model, x, gout):
    """The same network in PyTorch, with the model's weights; (output, grad_input, grads)."""
    stem, relu, *blocks = model._children
    tx = torch.from_numpy(x.copy()).requires_grad_()
    params = []

    def t(a):
        p = torch.from_numpy(a.copy()).requires_grad_()
        params.append(p)
        return p

    y = torch.relu(F.conv2d(tx, t(stem.weight), t(stem.bias), 1, 1))
    for block in blocks:
        body = block._children[0]._children[0]
        c1, bn1, _, c2, bn2 = body._children
        z = F.conv2d(y, t(c1.weight), None, 1, 1)
        z = torch.relu(F.batch_norm(z, None, None, t(bn1.weight), t(bn1.bias), True, 0.1,
                                    bn1.eps))
        z = F.conv2d(z, t(c2.weight), None, 1, 1)
        z = F.batch_norm(z, None, None, t(bn2.weight), t(bn2.bias), True, 0.1, bn2.eps)
        y = torch.relu(z + y)
    y.backward(torch.from_numpy(gout))
    return [y.detach().numpy(), tx.grad.numpy()] + [p.grad.numpy() for p in params]


@pytest.mark.oracle
@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(3, 9), st.integers(0, 2**31 - 1))
def test_resnet_blocks_with_pooled_gradients_equal_numpy_and_torch(n, c4, size, seed):
    rng = np.random.default_rng(seed)
    model = _resnet_block(4 * c4)
    for m in model.modules():
        m._start = {"running_mean": np.zeros(4 * c4, np.float32),
                    "running_var": np.ones(4 * c4, np.float32)}
    model.get_parameters()
    w, _ = model.get_parameters()
    w[...] = rng.uniform(-0.5, 0.5, w.shape)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    gout = rng.standard_normal((n, 4 * c4, size, size)).astype(np.float32)
    results = _both_backends(model, x, gout, True)
    assert _fused(model).count("SpatialBatchNormalization") == 2
    for a, b in zip(results["numpy"], results["native"]):
        _close(b, a, "native vs numpy resnet", scale=np.abs(a).max(initial=0))
    oracle = _torch_resnet(model, x, gout)
    for a, b in zip(oracle, results["native"]):
        _close(b, a, "native vs torch resnet", scale=np.abs(a).max(initial=0))


def test_pooled_backward_recycles_gradients_but_keeps_the_returned_one():
    layers = 12
    model = Sequential()
    for _ in range(layers):
        model.add(Tanh())
    x = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float32)
    model.forward(x)
    g1 = model.backward(x, np.ones_like(x))
    kept = g1.copy()
    # only the container's own gradient outlives the pass; the layers' buffers are shared
    assert model.grad_input is g1
    assert all(m.grad_input is None for m in model._children[1:])
    pool = model.__dict__["_scratch"]["grad_pool"]
    assert sum(len(v) for v in pool._arrays.values()) <= 3
    model.forward(x * 2)
    g2 = model.backward(x, np.full_like(x, 3.0))
    np.testing.assert_array_equal(g1, kept)  # a gradient the caller holds is never reused
    assert g2 is not g1 and not np.array_equal(g1, g2)
    # the pool, like every scratch buffer, stays out of a pickled model
    import pickle
    assert b"GradPool" not in pickle.dumps(model)
    # shapes no longer used in a pass are dropped at its end, but for buffers still held
    small = x[:2]
    model.forward(small)
    model.backward(small, np.ones_like(small))
    assert len(pool._arrays.get(((4, 50), "<f4"), [])) <= 2  # g1 and g2, held here


def test_grad_pool_hands_out_only_unreferenced_buffers():
    pool = GradPool()
    with pool.active():
        a = pool.take((3, 4), np.float32)
        b = pool.take((3, 4), np.float32)
        assert a is not b
        view = b.reshape(12)
        del b
        c = pool.take((3, 4), np.float32)
        assert c is not a and c.base is None and view.base is not c  # the view keeps b taken
        del view, c
        d = pool.take((3, 4), np.float32)
        assert d is not a
        assert pool.take((3, 4), np.float64).dtype == np.float64


# ---------------------------------------------------------------------- bad shapes
@pytest.fixture
def no_native(monkeypatch):
    native = backend.native()
    for fn in ("conv_forward", "conv_backward", "conv_backward_data", "conv_backward_weights",
               "bn_forward", "bn_backward"):
        monkeypatch.setattr(native, fn, _never_called)


@pytest.mark.usefixtures("no_native")
@pytest.mark.parametrize("first, x, expected", [
    (SpatialBatchNormalization(3).set_name("bn1"), np.zeros((4, 2, 5, 5), np.float32),
     "expected input (N, 3, H, W), got (4, 2, 5, 5)"),
    (SpatialBatchNormalization(3).set_name("bn1"), np.zeros((4, 3, 5), np.float32),
     "expected input (N, 3, H, W), got (4, 3, 5)"),
    (SpatialBatchNormalization(3).set_name("bn1"), np.zeros((1, 3, 1, 1), np.float32),
     "(1, 3, 1, 1)"),
    (BatchNormalization(3).set_name("bn1"), np.zeros((4, 5), np.float32),
     "expected input (N, 3), got (4, 5)"),
    (SpatialConvolution(3, 6, 5, 5).set_name("conv1"), np.zeros((8, 1, 28, 28), np.float32),
     "expected input (N, 3, H, W), got (8, 1, 28, 28)"),
    (SpatialConvolution(1, 6, 5, 5).set_name("conv1"), np.zeros((8, 1, 3, 28), np.float32),
     "expected input (N, 1, H>=5, W>=5), got (8, 1, 3, 28)"),
])
def test_bad_shapes_of_fused_pairs_fail_in_python(first, x, expected):
    model = Sequential().add(first).add(ReLU())
    with pytest.raises(LayerError) as err:
        model.forward(x)
    message = str(err.value)
    assert first.label() in message and expected in message, message


@pytest.mark.parametrize("first", [SpatialBatchNormalization(2).set_name("bn1"),
                                   SpatialConvolution(2, 2, 1, 1).set_name("conv1")])
def test_bad_grad_output_of_a_fused_pair_fails_in_python(monkeypatch, first):
    model = Sequential().add(first).add(ReLU())
    x = np.ones((2, 2, 4, 4), np.float32)
    model.forward(x)
    assert _fused(model)
    for fn in ("conv_backward", "conv_backward_data", "bn_backward"):
        monkeypatch.setattr(backend.native(), fn, _never_called)
    with pytest.raises(LayerError, match=r"(bn1|conv1).*\(2, 2, 4, 4\).*\(2, 2, 4, 5\)"):
        model.backward(x, np.zeros((2, 2, 4, 5), np.float32))


# ---------------------------------------------------------------------- fuzz
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
    "pad_right alg out_h out_w channels_last"
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
for i in range(300):
    v = [int(t) for t in rng.integers(-2, 7, size=20)]
    v[3:7] = [int(t) for t in rng.integers(-1, 3, size=4)]
    v[16:20] = [int(t) for t in rng.integers(0, 2, size=4)]
    shape = [int(t) for t in rng.integers(0, 7, size=4)]
    eps = float(rng.choice([1e-5, 0.0, -1.0, np.nan, np.inf]))
    ro = arr(shape[:3]); ro.flags.writeable = bool(rng.integers(0, 2))
    for fn, args in (
        (nat.conv_backward, (arr(shape), arr(shape), arr(shape), arr(shape), arr(shape), None,
                             conv(v))),
        (nat.conv_backward, (arr(shape), arr(shape), arr(shape), arr(shape), arr(shape),
                             arr(shape[:1]), conv(v))),
        (nat.conv_forward, (arr(shape), arr(shape), None, arr(shape), conv(v[:17] + [1, 0, 1]))),
        (nat.bn_forward, (arr(shape[:3]), ro, arr(shape[1:2]), arr(shape[1:2]),
                          None, None, bn(v[:7]), eps)),
        (nat.bn_forward, (arr(shape[:3]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                          arr(shape[1:2]), arr(shape[1:2]), bn(shape[:3] + [1, 1, 1, 0]), 1e-5)),
        (nat.bn_backward, (arr(shape[:3]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                           None, arr(shape[:3]), None, None, bn(v[:7]), 1e-5, None)),
        (nat.bn_backward, (arr(shape[:3]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                           arr(shape[1:2]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                           bn(shape[:3] + [1, 1, 1, 0]), 1e-5, arr(shape[1:2], np.float64))),
        (nat.bn_backward, (arr(shape[:3]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                           arr(shape[1:2]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                           bn(shape[:3] + [1, 1, 1, 0]), 1e-5, arr(shape[1:2]))),
        (nat.bn_backward, (arr(shape[:3]), arr(shape[:3]), arr(shape[1:2]), arr(shape[1:2]),
                           None, arr(shape[:3]), None, None, bn(shape[:3] + [1, 0, 1, 0]), 1e-5,
                           None)),
    ):
        calls += 1
        try:
            fn(*args)
        except (ValueError, TypeError):
            errors += 1
print(calls, errors)
"""


def test_new_native_entry_points_fuzz_raise_never_crash():
    """Random (mostly invalid) geometries and arrays straight into the new native functions, in
    a child process so that a crash is reported instead of killing the test run."""
    done = subprocess.run([sys.executable, "-c", FUZZ, "7"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    calls, errors = map(int, done.stdout.split())
    assert calls == 2700 and 0 < errors < calls
