"""Native batch normalization on channels-last activations (``nhwc`` geometry flag).

A channels-last input (see ``workbench.nn.layout``) runs the native channels-last loops; its
output and input gradient stay channels-last, and every result (output, running statistics,
grad_input, grad_weight, grad_bias) equals the native NCHW loops and the numpy reference, with
and without the fused ReLU, affine or not, training or inference.  Also: a channels-last input
with a plain NCHW gradient, a channel with a large mean, and bad geometries straight into the
native functions (ValueError, never a crash).  No timing here: speed is in
benchmarks/bench_bn_layout.py.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.nn import ReLU, Sequential, SpatialBatchNormalization, backend, layout

needs_native = pytest.mark.skipif(backend.native() is None,
                                  reason=f"native module not built: {backend.native_error()}")
pytestmark = needs_native

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def native_backend():
    previous = backend.get_backend()
    backend.set_backend("native")
    yield
    backend.set_backend(previous)


def run(be, x, g, *, train, affine, relu, weight, bias, steps=2):
    """Forward + backward ``steps`` times on backend ``be``; the results of the last step."""
    previous = backend.set_backend(be)
    try:
        bn = SpatialBatchNormalization(x.shape[1], affine=affine, momentum=0.3)
        if affine:
            bn.weight[...] = weight
            bn.bias[...] = bias
        bn.running_mean[...] = 0.5
        bn.running_var[...] = 2.0
        model = Sequential().add(bn)
        if relu:
            model.add(ReLU())
        if not train:
            model.evaluate()
        for _ in range(steps):
            model.zero_grad_parameters()
            y = model.forward(x)
            gi = model.backward(x, g)
        return {"output": y, "grad_input": gi, "running_mean": bn.running_mean.copy(),
                "running_var": bn.running_var.copy(),
                "grad_weight": bn.grad_weight.copy() if affine else None,
                "grad_bias": bn.grad_bias.copy() if affine else None}
    finally:
        backend.set_backend(previous)


def assert_close(got, want, what):
    for key, value in want.items():
        if value is None:
            continue
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(got[key], value, rtol=2e-4, atol=2e-4 * scale,
                                   err_msg=f"{what}: {key}")


sizes = st.tuples(st.integers(1, 5), st.sampled_from([1, 2, 3, 15, 16, 17, 33, 64]),
                  st.integers(1, 6), st.integers(1, 6))


@SETTINGS
@given(sizes, st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_channels_last_matches_nchw_and_numpy(shape, train, affine, relu, seed):
    n, c, h, w = shape
    if train and n * h * w < 2:
        n = 2
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, h, w)) * rng.uniform(0.5, 3, (1, c, 1, 1))
         + rng.uniform(-2, 2, (1, c, 1, 1))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    kw = dict(train=train, affine=affine, relu=relu,
              weight=rng.uniform(0.5, 1.5, c).astype(np.float32),
              bias=rng.uniform(-0.5, 0.5, c).astype(np.float32))
    xc, gc = layout.like(x, True), layout.like(g, True)
    cl = run("native", xc, gc, **kw)
    plain = run("native", x, g, **kw)
    ref = run("numpy", xc, gc, **kw)
    assert_close(cl, plain, "channels-last vs NCHW native")
    assert_close(cl, ref, "channels-last native vs numpy")
    if layout.is_channels_last(xc):  # (c == 1 or h == w == 1: both layouts are one)
        assert layout.is_channels_last(cl["output"])
        if train:  # the native backward (inference backward is the numpy code)
            assert layout.is_channels_last(cl["grad_input"])
    assert not layout.is_channels_last(plain["output"])
    assert not layout.is_channels_last(plain["grad_input"])


@pytest.mark.parametrize("relu", [False, True])
def test_channels_last_input_with_nchw_grad_output(relu):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 16, 5, 7)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    kw = dict(train=True, affine=True, relu=relu, weight=np.linspace(0.5, 1.5, 16),
              bias=np.linspace(-0.3, 0.3, 16))
    mixed = run("native", layout.like(x, True), g, **kw)
    assert layout.is_channels_last(mixed["grad_input"])
    assert_close(mixed, run("native", x, g, **kw), "mixed vs NCHW")
    # and the other way round: NCHW input, channels-last gradient
    assert_close(run("native", x, layout.like(g, True), **kw), run("numpy", x, g, **kw),
                 "NCHW input, channels-last gradient vs numpy")


def test_large_mean_keeps_precision():
    rng = np.random.default_rng(5)
    n, c, h, w = 32, 17, 9, 9
    x = rng.standard_normal((n, c, h, w))
    x[:, 3] += 1e3
    x = x.astype(np.float32)
    nat = backend.native()
    out = np.empty((n, h * w, c), np.float32)
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    phys = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(n, h * w, c)
    nat.bn_forward(phys, out, mean, var, None, None, _bn(n, c, h * w, 1, 0, 0, 1), 1e-5)
    x64 = x.astype(np.float64)
    want_mean = x64.mean(axis=(0, 2, 3))
    want_var = x64.var(axis=(0, 2, 3))
    # float32 rounding of the mean itself (a one-pass float sum would be far off at 1e3)
    assert np.all(np.abs(mean - want_mean) <= 2e-7 * np.maximum(np.abs(want_mean), 1.0))
    np.testing.assert_allclose(var, want_var, rtol=1e-4)
    want = (x64 - want_mean[None, :, None, None]) / np.sqrt(want_var + 1e-5)[None, :, None, None]
    np.testing.assert_allclose(out.reshape(n, h, w, c).transpose(0, 3, 1, 2), want,
                               atol=2e-3)


def test_grad_input_may_alias_grad_output():
    rng = np.random.default_rng(9)
    n, c, l = 3, 20, 11
    x = rng.standard_normal((n, l, c)).astype(np.float32)
    g = rng.standard_normal((n, l, c)).astype(np.float32)
    nat = backend.native()
    geometry = _bn(n, c, l, 1, 1, 1, 1)
    w, b = np.linspace(0.5, 1.5, c, dtype=np.float32), np.linspace(-1, 1, c, dtype=np.float32)
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    nat.bn_forward(x, np.empty_like(x), mean, var, w, b, geometry, 1e-5)
    sums = [np.empty(c, np.float32) for _ in range(4)]
    gi = np.empty_like(g)
    nat.bn_backward(x, g, mean, var, w, gi, sums[0], sums[1], geometry, 1e-5, b)
    g2 = g.copy()
    nat.bn_backward(x, g2, mean, var, w, g2, sums[2], sums[3], geometry, 1e-5, b)
    np.testing.assert_array_equal(g2, gi)
    np.testing.assert_array_equal(sums[0], sums[2])
    with pytest.raises(ValueError, match="alias"):
        nat.bn_backward(x, g, mean, var, w, x, sums[0], sums[1], geometry, 1e-5, b)


def _arr(shape):
    return np.zeros(shape, np.float32)


def _bn(n, c, l, train, affine, relu, channels_last):
    return backend.native().BatchNormGeometry(n=n, c=c, l=l, train=train, affine=affine,
                                              relu=relu, channels_last=channels_last)


def test_geometry_is_built_by_name():
    nat = backend.native()
    g = _bn(2, 3, 4, 1, 0, 0, 1)
    assert (g.n, g.c, g.l, g.train, g.affine, g.relu, g.channels_last) == (2, 3, 4, True, False,
                                                                          False, True)
    assert g == _bn(2, 3, 4, 1, 0, 0, 1) and hash(g) == hash(_bn(2, 3, 4, 1, 0, 0, 1))
    assert g != _bn(2, 3, 4, 1, 0, 0, 0) and g != [2, 3, 4, 1, 0, 0, 1]
    assert pickle.loads(pickle.dumps(g)) == g and copy.deepcopy(g) == g
    assert repr(g).startswith("BatchNormGeometry(n=2, c=3, l=4, train=True")
    with pytest.raises(TypeError, match="nhwc"):
        nat.BatchNormGeometry(n=2, c=3, l=4, nhwc=True)  # not a field
    with pytest.raises(TypeError):
        nat.bn_forward(_arr((2, 3, 4)), _arr((2, 3, 4)), _arr(3), _arr(3), None, None,
                       [2, 3, 4, 1, 0, 0, 0], 1e-5)  # the old positional list


@pytest.mark.parametrize("geometry, shape", [
    ((2, 3, 0, 1, 0, 0, 1), (2, 0, 3)),        # an empty size
    ((2, -3, 4, 1, 0, 0, 1), (2, 4, 3)),       # a negative size
    ((2, 3, 4, 1, 0, 0, 1), (2, 3, 4)),        # channels-last with the (n, c, l) shape
    ((2, 3, 4, 1, 0, 0, 0), (2, 4, 3)),        # nchw with the (n, l, c) shape
    ((2**40, 2**40, 2**40, 1, 0, 0, 1), (2, 4, 3)),  # overflowing sizes
    ((1, 3, 1, 1, 0, 0, 1), (1, 1, 3)),        # training on one value per channel
])
def test_bad_geometry_raises_value_error(geometry, shape):
    nat = backend.native()
    c = geometry[1] if 0 < geometry[1] < 100 else 3
    geometry = _bn(*geometry)
    with pytest.raises(ValueError):
        nat.bn_forward(_arr(shape), _arr(shape), _arr(c), _arr(c), None, None, geometry, 1e-5)
    with pytest.raises(ValueError):
        nat.bn_backward(_arr(shape), _arr(shape), _arr(c), _arr(c), None, _arr(shape), None,
                        None, geometry, 1e-5)


def test_good_geometry_of_the_bad_cases_runs():
    """The valid twin of the cases above runs (the errors are not from the arrays)."""
    nat = backend.native()
    out = _arr((2, 4, 3))
    nat.bn_forward(np.ones((2, 4, 3), np.float32), out, _arr(3), _arr(3), None, None,
                   _bn(2, 3, 4, 1, 0, 0, 1), 1e-5)
    np.testing.assert_array_equal(out, 0)
