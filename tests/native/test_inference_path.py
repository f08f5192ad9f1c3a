"""The inference path of the native pooling: in ``evaluate()`` mode a pooling runs oneDNN's
``forward_inference`` (no argmax workspace written or kept), with the same values as the
training forward, the numpy reference and PyTorch; a backward after such a forward (gradients
of an evaluated model, e.g. a saliency map) pools again keeping the argmax, and equals the numpy
reference.  LeNet-5 (whose convolutions write channels-last for the JIT pooling, see
``workbench.nn.layout``) evaluated natively equals the numpy backend.  No timing here
(benchmarks/bench_native.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from oracle import F, torch

from workbench import models
from workbench.nn import (SpatialAveragePooling, SpatialMaxPooling, backend, layout,
                          random)

pytestmark = pytest.mark.skipif(backend.native() is None,
                                reason=f"native module not built: {backend.native_error()}")

POOLS = [lambda: SpatialMaxPooling(2, 2, 2, 2), lambda: SpatialMaxPooling(3, 3, 2, 2, 1, 1),
         lambda: SpatialAveragePooling(2, 2, 2, 2), lambda: SpatialMaxPooling(3, 3, 2, 2).ceil()]


def on(be, fn):
    previous = backend.set_backend(be)
    try:
        return fn()
    finally:
        backend.set_backend(previous)


@pytest.mark.parametrize("make", POOLS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluate_pooling_keeps_no_workspace_and_equals_training_and_numpy(make, channels_last):
    rng = np.random.default_rng(5)
    x = layout.like(rng.standard_normal((3, 6, 9, 9)).astype(np.float32), channels_last)
    train, infer, ref = make(), make(), make()
    infer.evaluate()
    y_train = on("native", lambda: train.forward(x).copy())
    y_infer = on("native", lambda: infer.forward(x).copy())
    y_ref = on("numpy", lambda: ref.forward(x).copy())
    np.testing.assert_array_equal(y_infer, y_train)
    np.testing.assert_array_equal(y_infer, y_ref)
    assert layout.is_channels_last(infer.output) == (channels_last and infer.output.shape[2] > 1)
    assert "workspace" not in infer.__dict__.get("_scratch", {})
    if isinstance(train, SpatialMaxPooling):
        assert "workspace" in train.__dict__["_scratch"]


@pytest.mark.parametrize("make", POOLS)
def test_backward_after_an_inference_forward_equals_numpy(make):
    rng = np.random.default_rng(6)
    x = layout.like(rng.standard_normal((2, 5, 8, 8)).astype(np.float32), True)
    native, ref = make(), make()
    native.evaluate()
    ref.evaluate()
    y = on("native", lambda: native.forward(x))
    g = rng.standard_normal(y.shape).astype(np.float32)
    gi = on("native", lambda: native.backward(x, g).copy())
    on("numpy", lambda: ref.forward(x))
    gi_ref = on("numpy", lambda: ref.backward(x, g).copy())
    np.testing.assert_allclose(gi, gi_ref, rtol=1e-6, atol=1e-6)
    # the forward output is still the pooled values
    np.testing.assert_array_equal(native.output, ref.output)


def test_native_pool_backward_refuses_an_inference_geometry():
    nat = backend.native()
    geom = nat.PoolGeometry(n=1, c=2, h=4, w=4, kernel_h=2, kernel_w=2, stride_h=2, stride_w=2,
                            out_h=2, out_w=2, train=False)
    assert nat.pool_workspace_size(geom) == 0
    with pytest.raises(ValueError, match="train=False"):
        nat.pool_backward(np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 4, 4), np.float32),
                          None, geom)


def test_lenet5_evaluate_native_equals_numpy():
    x = np.random.default_rng(7).standard_normal((16, 1, 28, 28)).astype(np.float32)
    random.set_seed(3)
    model = models.LeNet5(10)
    model.evaluate()
    y_native = on("native", lambda: model.forward(x).copy())
    y_numpy = on("numpy", lambda: model.forward(x).copy())
    np.testing.assert_allclose(y_native, y_numpy, rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluate_max_pooling_equals_torch(channels_last):
    x = np.random.default_rng(8).standard_normal((4, 6, 24, 24)).astype(np.float32)
    layer = SpatialMaxPooling(2, 2, 2, 2)
    layer.evaluate()
    y = on("native", lambda: layer.forward(layout.like(x, channels_last)))
    want = F.max_pool2d(torch.from_numpy(x), 2, 2).numpy()
    np.testing.assert_array_equal(y, want)
