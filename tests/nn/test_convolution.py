"""SpatialConvolution: gradients, PyTorch parity, bad input; configs, reprs and default
initialization of the 2-D layers (convolution, pooling, batch normalization)."""
import numpy as np
import pytest
from oracle import F, torch

from helpers import check_module_gradients, rand, RTOL, run_both
from workbench.nn import (BatchNormalization, LayerError, Module, SpatialAveragePooling,
                          SpatialBatchNormalization, SpatialConvolution, SpatialMaxPooling)

def same_pads(size, k, s):
    out = -(-size // s)
    total = max(0, (out - 1) * s + k - size)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------- gradient checks (float64)
CONV_CASES = {
    "plain": (dict(n_input_plane=2, n_output_plane=3, kernel_w=3, kernel_h=3), (2, 2, 5, 5)),
    "stride_pad_rect": (dict(n_input_plane=2, n_output_plane=3, kernel_w=3, kernel_h=2,
                             stride_w=2, stride_h=1, pad_w=1, pad_h=2), (2, 2, 5, 6)),
    "groups": (dict(n_input_plane=4, n_output_plane=6, kernel_w=2, kernel_h=2, n_group=2),
               (2, 4, 4, 4)),
    "same_stride1": (dict(n_input_plane=2, n_output_plane=2, kernel_w=2, kernel_h=3,
                          pad_w=-1, pad_h=-1), (2, 2, 4, 3)),
    "same_stride2": (dict(n_input_plane=2, n_output_plane=2, kernel_w=3, kernel_h=2,
                          stride_w=2, stride_h=2, pad_w=-1, pad_h=-1), (2, 2, 5, 6)),
    "pointwise": (dict(n_input_plane=3, n_output_plane=2, kernel_w=1, kernel_h=1), (2, 3, 3, 4)),
    "no_bias_stride_trunc": (dict(n_input_plane=1, n_output_plane=2, kernel_w=2, kernel_h=2,
                                  stride_w=3, stride_h=3, with_bias=False), (2, 1, 7, 6)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_gradients(case):
    kwargs, shape = CONV_CASES[case]
    check_module_gradients(SpatialConvolution(**kwargs).double(), rand(*shape))


def test_conv_gradients_unbatched():
    layer = SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1).double()
    x = rand(2, 4, 5)
    assert layer.forward(x).shape == (3, 4, 5)
    check_module_gradients(layer, x)


# ---------------------------------------------------------------------- parity with PyTorch
CONV_PARITY = [
    # (cin, cout, kw, kh, sw, sh, pw, ph, groups, input shape)
    (1, 6, 5, 5, 1, 1, 0, 0, 1, (8, 1, 28, 28)),
    (6, 12, 5, 5, 1, 1, 0, 0, 1, (8, 6, 12, 12)),
    (3, 4, 3, 2, 2, 1, 1, 2, 1, (3, 3, 9, 8)),
    (4, 6, 3, 3, 1, 2, 1, 1, 2, (2, 4, 7, 7)),
    (6, 6, 3, 3, 1, 1, 1, 1, 6, (2, 6, 5, 5)),  # depthwise
    (3, 5, 4, 3, 2, 2, -1, -1, 1, (2, 3, 7, 9)),  # SAME
    (2, 4, 4, 2, 1, 1, -1, -1, 2, (2, 2, 5, 6)),  # SAME, stride 1, uneven padding
    (4, 8, 1, 1, 1, 1, 0, 0, 2, (2, 4, 5, 3)),
    (3, 2, 1, 1, 1, 1, 1, 1, 1, (2, 3, 4, 3)),  # 1x1 with padding
    (2, 3, 3, 3, 3, 2, 2, 1, 1, (2, 2, 7, 8)),  # stride > kernel
]


@pytest.mark.oracle
@pytest.mark.parametrize("cin, cout, kw, kh, sw, sh, pw, ph, groups, shape", CONV_PARITY)
def test_conv_matches_torch(cin, cout, kw, kh, sw, sh, pw, ph, groups, shape):
    layer = SpatialConvolution(cin, cout, kw, kh, sw, sh, pw, ph, groups)
    tw = torch.from_numpy(layer.weight.copy()).requires_grad_()
    tb = torch.from_numpy(layer.bias.copy()).requires_grad_()
    if pw == -1:
        top, bottom = same_pads(shape[2], kh, sh)
        left, right = same_pads(shape[3], kw, sw)

        def fn(tx, w, b):
            return F.conv2d(F.pad(tx, (left, right, top, bottom)), w, b, (sh, sw), 0, 1, groups)
    else:
        def fn(tx, w, b):
            return F.conv2d(tx, w, b, (sh, sw), (ph, pw), 1, groups)
    run_both(layer, fn, rand(*shape).astype(np.float32), (tw, tb))
    np.testing.assert_allclose(layer.grad_weight, tw.grad.numpy(), rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(layer.grad_bias, tb.grad.numpy(), rtol=RTOL, atol=1e-4)


@pytest.mark.oracle
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_backward_in_chunks_matches_torch(monkeypatch, stride):
    import workbench.nn.convolution.spatial as convolution
    monkeypatch.setattr(convolution, "CHUNK_BYTES", 1)  # one image per chunk
    layer = SpatialConvolution(4, 6, 3, 2, stride, stride, 1, 1, n_group=2)
    tw = torch.from_numpy(layer.weight.copy()).requires_grad_()
    tb = torch.from_numpy(layer.bias.copy()).requires_grad_()
    run_both(layer, lambda tx, w, b: F.conv2d(tx, w, b, stride, 1, 1, 2),
             rand(5, 4, 6, 7).astype(np.float32), (tw, tb))
    np.testing.assert_allclose(layer.grad_weight, tw.grad.numpy(), rtol=RTOL, atol=1e-4)


def test_conv_unbatched_matches_batched_and_accumulates():
    layer = SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)
    x = rand(2, 5, 4).astype(np.float32)
    g = rand(3, 5, 4, seed=1).astype(np.float32)
    y1 = layer.forward(x).copy()
    layer.zero_grad_parameters()
    gi1 = layer.backward(x, g).copy()
    gw1 = layer.grad_weight.copy()
    layer.backward(x, g)  # accumulates
    np.testing.assert_allclose(layer.grad_weight, 2 * gw1, rtol=1e-6)
    np.testing.assert_allclose(layer.forward(x[None])[0], y1, rtol=1e-6)
    np.testing.assert_allclose(layer.backward(x[None], g[None])[0], gi1, rtol=1e-6)


def test_conv_follows_flat_parameters():
    layer = SpatialConvolution(1, 2, 3, 3)
    x = rand(2, 1, 5, 5).astype(np.float32)
    weights, grads = layer.get_parameters()
    weights[:] = 0
    weights[-2:] = [1.5, -2.0]  # the bias comes last
    np.testing.assert_array_equal(layer.forward(x)[:, 0], 1.5)
    np.testing.assert_array_equal(layer.forward(x)[:, 1], -2.0)
    layer.backward(x, np.ones((2, 2, 3, 3), np.float32))
    assert grads[-2:].tolist() == [18.0, 18.0]


def test_conv_propagate_back_false_returns_zeros():
    layer = SpatialConvolution(1, 2, 3, 3, propagate_back=False)
    x = rand(2, 1, 5, 5).astype(np.float32)
    y = layer.forward(x)
    gi = layer.backward(x, np.ones_like(y))
    assert gi.shape == x.shape and not gi.any()
    assert layer.grad_weight.any()


# ---------------------------------------------------------------------- bad input
def test_conv_wrong_channels_names_layer_and_shapes():
    layer = SpatialConvolution(3, 6, 5, 5).set_name("conv1")
    with pytest.raises(LayerError, match=r"^SpatialConvolution\[conv1\]: expected input "
                                         r"\(N, 3, H, W\), got \(128, 1, 28, 28\)$"):
        layer.forward(np.zeros((128, 1, 28, 28), np.float32))
    with pytest.raises(LayerError, match=r"expected input \(N, 3, H, W\), got \(128, 784\)"):
        layer.forward(np.zeros((128, 784), np.float32))


def test_conv_too_small_names_layer_and_shapes():
    layer = SpatialConvolution(1, 6, 5, 5, pad_w=1, pad_h=1).set_name("conv1")
    with pytest.raises(LayerError, match=r"^SpatialConvolution\[conv1\]: expected input "
                                         r"\(N, 1, H>=3, W>=3\), got \(4, 1, 2, 9\)$"):
        layer.forward(np.zeros((4, 1, 2, 9), np.float32))


def test_grad_output_shape_checked():
    layer = SpatialConvolution(1, 2, 3, 3).set_name("c")
    x = np.zeros((2, 1, 5, 5), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"c\]: expected gradOutput .*\(2, 2, 3, 3\), "
                                         r"got \(2, 2, 4, 4\)"):
        layer.backward(x, np.zeros((2, 2, 4, 4), np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: SpatialConvolution(0, 6, 5, 5), "n_input_plane must be a positive int, got 0"),
    (lambda: SpatialConvolution(3, 6, 5, 5, n_group=2), r"n_input_plane \(3\) must be divisible"),
    (lambda: SpatialConvolution(2, 6, 5, 5, stride_w=0), "stride_w must be a positive int"),
    (lambda: SpatialConvolution(2, 6, 5, 5, pad_w=-1), "SAME padding needs pad_w = pad_h = -1"),
    (lambda: SpatialConvolution(2, 6, 2.5, 5), "kernel_w must be a positive int, got 2.5"),
    (lambda: SpatialMaxPooling(2, 2, 2, 2, 2, 0), "pad_w must be at most half the kernel"),
    (lambda: SpatialMaxPooling(-2, 2), "kw must be a positive int, got -2"),
    (lambda: SpatialAveragePooling(2, 2, pad_h=-3), "pad_h must be an int >= 0 or -1, got -3"),
    (lambda: BatchNormalization(0), "n_output must be a positive int, got 0"),
    (lambda: BatchNormalization(4, eps=0), "eps must be > 0, got 0"),
    (lambda: SpatialBatchNormalization(4, momentum=2), r"momentum must be in \[0, 1\], got 2"),
])
def test_constructor_arguments_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------- config round trip
@pytest.mark.parametrize("make, shape", [
    (lambda: SpatialConvolution(4, 6, 3, 2, 2, 1, 1, 0, 2, with_bias=False), (2, 4, 6, 6)),
    (lambda: SpatialConvolution(3, 4, 3, 3, 2, 2, -1, -1).set_name("c"), (2, 3, 5, 5)),
    (lambda: SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(), (2, 3, 8, 8)),
    (lambda: SpatialAveragePooling(3, 3, 2, 2, 1, 1, ceil_mode=True).set_count_exclude_pad(),
     (2, 3, 8, 8)),
    (lambda: SpatialAveragePooling(1, 1, global_pooling=True, divide=False), (2, 3, 4, 4)),
    (lambda: BatchNormalization(5, eps=1e-3, momentum=0.2), (4, 5)),
    (lambda: SpatialBatchNormalization(3, affine=False), (2, 3, 4, 4)),
])
def test_config_round_trip(make, shape):
    layer = make()
    x = rand(*shape).astype(np.float32)
    layer.forward(x)  # moves batch-norm running statistics away from their initial values
    layer.evaluate()
    rebuilt = Module.from_config(layer.get_config())
    assert repr(rebuilt) == repr(layer)
    rebuilt.load_state_dict(layer.state_dict())
    rebuilt.evaluate()
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


def test_reprs():
    assert repr(SpatialConvolution(1, 6, 5, 5)) == "nn.SpatialConvolution(1 -> 6, 5x5, 1,1, 0,0)"
    assert repr(SpatialConvolution(4, 8, 3, 3, 2, 2, -1, -1, 2, with_bias=False)) == (
        "nn.SpatialConvolution(4 -> 8, 3x3, 2,2, SAME, n_group=2, without bias)")
    assert repr(SpatialMaxPooling(2, 2, 2, 2)) == "nn.SpatialMaxPooling(2x2, 2,2)"
    assert (repr(SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil())
            == "nn.SpatialMaxPooling(3x3, 2,2, 1,1, ceil)")
    assert repr(SpatialAveragePooling(2, 2)) == "nn.SpatialAveragePooling(2x2, 1,1)"
    assert repr(BatchNormalization(10)) == "nn.BatchNormalization(10)"
    assert repr(SpatialBatchNormalization(3, affine=False)) == (
        "nn.SpatialBatchNormalization(3, affine=False)")


def test_default_initialization():
    conv = SpatialConvolution(4, 6, 3, 3, n_group=2)
    bound = 1 / np.sqrt(2 * 3 * 3)
    assert conv.weight.shape == (6, 2, 3, 3) and conv.bias.shape == (6,)
    assert np.abs(conv.weight).max() <= bound and np.abs(conv.bias).max() <= bound
    assert np.abs(conv.weight).max() > bound / 2
    bn = SpatialBatchNormalization(3)
    assert bn.weight.tolist() == [1, 1, 1] and bn.bias.tolist() == [0, 0, 0]
    assert bn.running_mean.tolist() == [0, 0, 0] and bn.running_var.tolist() == [1, 1, 1]
    init = np.arange(6 * 2 * 9, dtype=np.float32).reshape(6, 2, 3, 3)
    conv = SpatialConvolution(4, 6, 3, 3, n_group=2, init_weight=init, init_bias=np.ones(6))
    np.testing.assert_array_equal(conv.weight, init)
    np.testing.assert_array_equal(conv.bias, 1)

