"""Channels-last activations (workbench.nn.layout) through the native layers.

A native convolution writes its output channels-last; pooling, element-wise activations,
CAddTable and the gradient pool keep that memory format.  Values must be exactly what the
plain-NCHW numpy reference computes, in every mix of input / grad_output formats.  No timing
here (benchmarks/bench_native.py).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench.nn import (CAddTable, ConcatTable, Identity, ReLU, Sequential, Sigmoid,
                          SpatialAveragePooling, SpatialBatchNormalization, SpatialConvolution,
                          SpatialMaxPooling, Tanh, backend, layout)
from workbench.nn.module import GradPool

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(autouse=True)
def _native_backend():
    previous = backend.set_backend("native")
    switch = backend.set_kernel("channels_last", True)
    yield
    backend.set_backend(previous)
    backend.set_kernel("channels_last", switch)


def cl(a):
    """A channels-last copy of NCHW ``a``."""
    out = layout.empty(a.shape, a.dtype, channels_last=True)
    out[...] = a
    assert layout.is_channels_last(out) or a.shape[1] == 1 or a.shape[2] * a.shape[3] == 1
    return out


def _close(a, b, what):
    scale = max(1.0, float(np.abs(b).max(initial=0)))
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * scale, err_msg=what)


def _numpy(layer, x, g):
    backend.set_backend("numpy")
    try:
        layer.zero_grad_parameters()
        y = layer.forward(np.ascontiguousarray(x)).copy()
        gi = layer.backward(np.ascontiguousarray(x), np.ascontiguousarray(g)).copy()
        grads = [p.copy() for p in layer.parameter_arrays()[1]]
    finally:
        backend.set_backend("native")
    return y, gi, grads


# ---------------------------------------------------------------------- layout helpers
def test_layout_helpers():
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    b = cl(a)
    assert layout.is_channels_last(b) and not layout.is_channels_last(a)
    assert layout.physical(b).shape == (2, 4, 5, 3) and layout.physical(b).flags.c_contiguous
    assert layout.physical(a) is a and layout.physical(a[:, :, ::2]) is None
    assert np.array_equal(b, a) and np.array_equal(layout.like(b, False), a)
    assert layout.like(b, True) is b and layout.match(a, b) is not a
    assert layout.is_channels_last(layout.match(a, b))
    # C == 1 or H == W == 1: both formats are the same bytes, counted as plain
    assert not layout.is_channels_last(cl(a[:, :1])) and not layout.is_channels_last(
        cl(a[:, :, :1, :1]))


def test_gradient_pool_keeps_a_buffer_a_view_still_uses():
    pool = GradPool()
    with pool.active():
        first = pool.take((2, 16, 3, 3), np.float32, True)
        assert layout.is_channels_last(first)
        view = first.transpose(0, 2, 3, 1)  # numpy points this view at the owner, not `first`
        del first
        second = pool.take((2, 16, 3, 3), np.float32, True)
        assert second.base is not view.base
        plain = pool.take((2, 16, 3, 3), np.float32, False)
        assert plain.flags.c_contiguous
        del second, view
        again = pool.take((2, 16, 3, 3), np.float32, True)
        assert layout.is_channels_last(again)


# ---------------------------------------------------------------------- convolution
@st.composite
def conv_cases(draw):
    g = draw(st.sampled_from([1, 1, 2]))
    c = draw(st.sampled_from([3, 8, 16, 32]))
    o = draw(st.sampled_from([16, 32, 6]))
    assume(c % g == 0 and o % g == 0)
    k = draw(st.sampled_from([1, 3]))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    assume((h + 2 * p - k) // s + 1 >= 1 and (w + 2 * p - k) // s + 1 >= 1)
    return (draw(st.integers(1, 3)), c, o, g, k, s, p, h, w, draw(st.booleans()),
            draw(st.booleans()), draw(st.booleans()))


@SETTINGS
@given(conv_cases(), st.integers(0, 2**31 - 1))
def test_conv_in_every_layout_equals_numpy(case, seed):
    n, c, o, g, k, s, p, h, w, x_cl, g_cl, bias = case
    layer = SpatialConvolution(c, o, k, k, s, s, p, p, g, with_bias=bias)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    gout = rng.standard_normal((n, o, oh, ow)).astype(np.float32)
    y0, gi0, grads0 = _numpy(layer, x, gout)

    xin = cl(x) if x_cl else x
    layer.zero_grad_parameters()
    y = layer.forward(xin)
    _close(y, y0, f"output {case}")
    assert layout.is_channels_last(y) == (oh * ow > 1 and not (o == 1)), case
    gin = layer.backward(xin, cl(gout) if g_cl else gout)
    _close(gin, gi0, f"grad_input {case}")
    assert layout.is_channels_last(gin) == layout.is_channels_last(xin), case
    for a, b in zip(layer.parameter_arrays()[1], grads0):
        _close(a, b, f"parameter gradient {case}")


def test_conv_switch_off_keeps_plain_nchw():
    layer = SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert layout.is_channels_last(layer.forward(x))
    backend.set_kernel("channels_last", False)
    y = layer.forward(x)
    assert y.flags.c_contiguous
    # a channels-last input still works (read in place by the kernel), output plain NCHW
    layer2 = SpatialConvolution(16, 8, 3, 3, 1, 1, 1, 1)
    backend.set_kernel("channels_last", True)
    z = layer.forward(x)
    backend.set_kernel("channels_last", False)
    out = layer2.forward(z)
    assert out.flags.c_contiguous
    backend.set_backend("numpy")
    ref = layer2.forward(np.ascontiguousarray(z))
    _close(out, ref, "channels-last input, switch off")


def test_nhwc_data_format_reads_and_writes_without_copies():
    rng = np.random.default_rng(1)
    layer = SpatialConvolution(16, 32, 3, 3, 1, 1, 1, 1, data_format="NHWC")
    x = rng.standard_normal((2, 6, 6, 16)).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (2, 6, 6, 32) and y.flags.c_contiguous
    g = rng.standard_normal(y.shape).astype(np.float32)
    gi = layer.backward(x, g).copy()
    ref_y, ref_gi, _ = (lambda r: r)(_nhwc_numpy(layer, x, g))
    _close(y, ref_y, "NHWC output")
    _close(gi, ref_gi, "NHWC grad_input")


def _nhwc_numpy(layer, x, g):
    backend.set_backend("numpy")
    try:
        return layer.forward(x).copy(), layer.backward(x, g).copy(), None
    finally:
        backend.set_backend("native")


# ---------------------------------------------------------------------- pooling, element-wise
@SETTINGS
@given(st.sampled_from(["max", "avg"]), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 9), st.sampled_from([1, 16, 32]), st.booleans(), st.integers(0, 2**31 - 1))
def test_pooling_on_channels_last_equals_numpy(kind, k, s, size, c, g_cl, seed):
    assume(k <= size)
    layer = SpatialMaxPooling(k, k, s, s) if kind == "max" else SpatialAveragePooling(k, k, s, s)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, size, size)).astype(np.float32)
    backend.set_backend("numpy")
    y0 = layer.forward(x).copy()
    g = rng.standard_normal(y0.shape).astype(np.float32)
    gi0 = layer.backward(x, g).copy()
    backend.set_backend("native")
    xc = cl(x)
    y = layer.forward(xc)
    _close(y, y0, "pool output")
    assert layout.is_channels_last(y) or (y.shape[1] == 1 or y.shape[2] * y.shape[3] == 1)
    gi = layer.backward(xc, cl(g) if g_cl else g)
    _close(gi, gi0, "pool grad_input")


@pytest.mark.parametrize("cls", [ReLU, Tanh, Sigmoid])
@pytest.mark.parametrize("g_cl", [True, False])
def test_elementwise_keeps_channels_last(cls, g_cl):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 16, 5, 4)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    layer = cls()
    backend.set_backend("numpy")
    y0, gi0 = layer.forward(x).copy(), layer.backward(x, g).copy()
    backend.set_backend("native")
    y = layer.forward(cl(x))
    assert layout.is_channels_last(y)
    _close(y, y0, cls.__name__)
    gi = layer.backward(cl(x), cl(g) if g_cl else g)
    assert layout.is_channels_last(gi)
    _close(gi, gi0, cls.__name__ + " grad")


def test_residual_block_stays_channels_last_and_matches_numpy():
    """conv -> BN -> ReLU -> conv -> BN, plus the shortcut, CAddTable, ReLU: every activation
    and gradient of the block channels-last, values as the numpy reference."""
    def block():
        body = (Sequential().add(SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1, with_bias=False))
                .add(SpatialBatchNormalization(16)).add(ReLU())
                .add(SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1, with_bias=False))
                .add(SpatialBatchNormalization(16)))
        return Sequential().add(ConcatTable().add(body).add(Identity())).add(
            CAddTable()).add(ReLU())
    model = Sequential().add(SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1)).add(block()).add(
        block())
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    g = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    model.training()
    y0, gi0, grads0 = _numpy(model, x, g)
    model.zero_grad_parameters()
    y = model.forward(x)
    assert layout.is_channels_last(y)
    for m in model.modules() if hasattr(model, "modules") else []:
        out = getattr(m, "output", None)
        if isinstance(out, np.ndarray) and out.ndim == 4 and m is not model:
            assert layout.is_channels_last(out), m
    _close(y, y0, "block output")
    gi = model.backward(x, g)
    _close(gi, gi0, "block grad_input")
    for a, b in zip(model.parameter_arrays()[1], grads0):
        _close(a, b, "block parameter gradients")


def test_module_buffer_follows_the_asked_format():
    layer = ReLU()
    a = layer._buffer("t", (2, 16, 3, 3), np.float32, channels_last=True)
    assert layout.is_channels_last(a)
    assert layer._buffer("t", (2, 16, 3, 3), np.float32, channels_last=True) is a
    b = layer._buffer("t", (2, 16, 3, 3), np.float32)
    assert b.flags.c_contiguous and b is not a
    one = layer._buffer("u", (2, 16, 1, 1), np.float32, channels_last=True)
    assert layer._buffer("u", (2, 16, 1, 1), np.float32, channels_last=True) is one
    assert sys.getrefcount(a) >= 2


# (c_in, c_out, k, stride, size): ResNet-20's convolutions, LeNet's, a grouped and a 1x1 one
TYPICAL_CONVS = [(3, 16, 3, 1, 32), (16, 16, 3, 1, 32), (16, 32, 3, 2, 32), (16, 32, 1, 2, 32),
                 (32, 32, 3, 1, 16), (32, 64, 3, 2, 16), (64, 64, 3, 1, 8), (1, 6, 5, 1, 28),
                 (6, 12, 5, 1, 12), (16, 16, 1, 1, 8)]


@pytest.mark.parametrize("c_in, c_out, k, stride, size", TYPICAL_CONVS)
def test_no_reference_kernel_in_any_layout_mix(c_in, c_out, k, stride, size):
    """oneDNN's reference convolutions are plain C++ loops (a mix of a plain NCHW gradient
    and a channels-last grad_output once picked one: 75x slower).  Every layout mix the layers
    can ask for must run a real (JIT) implementation in all three directions."""
    nat = backend.native()
    pad = k // 2
    for src_cl in (0, 1):
        for dst_cl in (0, 1):
            geom = nat.ConvGeometry(n=8, c_in=c_in, h=size, w=size, c_out=c_out, kernel_h=k,
                                    kernel_w=k, stride_h=stride, stride_w=stride, pad_top=pad,
                                    pad_bottom=pad, pad_left=pad, pad_right=pad,
                                    src_channels_last=src_cl, dst_channels_last=dst_cl)
            impls = nat.conv_impls(geom)
            assert len(impls) == 3 and not any(i.startswith("ref") for i in impls), (geom, impls)
