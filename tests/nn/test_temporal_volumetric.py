"""Temporal (1-D) and volumetric (3-D) convolution and pooling, LocallyConnected1D and global
pooling: float64 gradient checks, PyTorch parity, configs, bad input."""
import json

import numpy as np
import pytest
from oracle import F, torch

from helpers import ATOL, check_module_gradients, distinct, rand, RTOL
from workbench.nn import (GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D,
                          GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D,
                          L2Regularizer, LayerError, LocallyConnected1D, Module,
                          TemporalConvolution, TemporalMaxPooling, VolumetricAveragePooling,
                          VolumetricConvolution, VolumetricFullConvolution, VolumetricMaxPooling)

def parity(layer, torch_fn, x, names=("weight", "bias")):
    """forward / backward of ``layer`` against ``torch_fn(tx, *params)``: output, input gradient
    and the gradient of every parameter in ``names``."""
    names = [n for n in names if hasattr(layer, n)]
    params = [torch.from_numpy(getattr(layer, n).copy()).requires_grad_() for n in names]
    y = layer.forward(x)
    g = rand(*y.shape, seed=11).astype(np.float32)
    layer.zero_grad_parameters()
    gi = layer.backward(x, g)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch_fn(tx, *params)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="output")
    np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="grad input")
    for n, p in zip(names, params):
        np.testing.assert_allclose(getattr(layer, "grad_" + n), p.grad.numpy(), rtol=RTOL,
                                   atol=1e-4, err_msg="grad " + n)


# ---------------------------------------------------------------------- gradient checks (float64)
GRAD_CASES = {
    "temporal_conv": (lambda: TemporalConvolution(3, 2, 2, 2), rand, (2, 6, 3)),
    "temporal_conv_unbatched": (lambda: TemporalConvolution(2, 3, 3), rand, (5, 2)),
    "locally_connected_1d": (lambda: LocallyConnected1D(6, 3, 2, 3, 2), rand, (2, 6, 3)),
    "locally_connected_1d_unbatched": (lambda: LocallyConnected1D(4, 2, 2, 2), rand, (4, 2)),
    "temporal_max": (lambda: TemporalMaxPooling(2), distinct, (2, 6, 3)),
    "temporal_max_overlap_unbatched": (lambda: TemporalMaxPooling(3, 1), distinct, (5, 2)),
    "volumetric_conv": (lambda: VolumetricConvolution(2, 2, 2, 2, 2, 1, 2, 1, 1, 0, 1),
                        rand, (2, 2, 3, 3, 4)),
    "volumetric_conv_same": (lambda: VolumetricConvolution(2, 2, 2, 3, 2, 1, 2, 1, -1, -1, -1),
                             rand, (1, 2, 3, 3, 4)),
    "volumetric_conv_unbatched": (lambda: VolumetricConvolution(1, 2, 2, 2, 2, with_bias=False),
                                  rand, (1, 3, 3, 3)),
    "volumetric_full": (lambda: VolumetricFullConvolution(2, 2, 2, 2, 2, 2, 1, 2, 1, 0, 0, 1,
                                                          0, 1), rand, (1, 2, 2, 3, 2)),
    "volumetric_full_groups": (lambda: VolumetricFullConvolution(2, 2, 2, 2, 2, n_group=2,
                                                                 no_bias=True), rand, (2, 2, 2, 2)),
    "volumetric_max": (lambda: VolumetricMaxPooling(2, 2, 2, 2, 2, 2), distinct, (1, 2, 4, 4, 4)),
    "volumetric_max_pad_ceil": (lambda: VolumetricMaxPooling(2, 3, 2, 2, 2, 1, 1, 1, 0).ceil(),
                                distinct, (1, 2, 3, 4, 5)),
    "volumetric_avg": (lambda: VolumetricAveragePooling(2, 2, 2, 1, 1, 1), rand, (1, 2, 3, 3, 3)),
    "volumetric_avg_exclude_pad_ceil": (lambda: VolumetricAveragePooling(
        3, 2, 2, 2, 1, 2, 1, 1, 1, count_include_pad=False, ceil_mode=True), rand, (1, 1, 4, 4, 3)),
    "global_avg_1d": (lambda: GlobalAveragePooling1D(), rand, (2, 4, 3)),
    "global_max_1d": (lambda: GlobalMaxPooling1D(), distinct, (2, 4, 3)),
    "global_avg_2d": (lambda: GlobalAveragePooling2D(), rand, (2, 3, 2, 3)),
    "global_max_2d_tf": (lambda: GlobalMaxPooling2D("tf"), distinct, (2, 2, 3, 3)),
    "global_avg_3d_tf": (lambda: GlobalAveragePooling3D("tf"), rand, (2, 2, 2, 3, 2)),
    "global_max_3d": (lambda: GlobalMaxPooling3D(), distinct, (2, 2, 2, 3, 2)),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradients(case):
    make, data, shape = GRAD_CASES[case]
    check_module_gradients(make().double(), data(*shape))


# ---------------------------------------------------------------------- parity with PyTorch
@pytest.mark.oracle
@pytest.mark.parametrize("kernel, stride", [(3, 1), (3, 2), (1, 1)])
def test_temporal_conv_matches_torch(kernel, stride):
    layer = TemporalConvolution(4, 5, kernel, stride)

    def conv(tx, w, b):  # Torch lays a window out frame after frame: weight (out, k * in)
        weight = w.reshape(5, kernel, 4).transpose(1, 2)
        return F.conv1d(tx.transpose(1, 2), weight, b, stride).transpose(1, 2)

    parity(layer, conv, rand(3, 9, 4).astype(np.float32))


@pytest.mark.oracle
def test_locally_connected_1d_matches_torch():
    layer = LocallyConnected1D(9, 3, 4, 3, 2)

    def local(tx, w, b):  # one matmul per output frame over the window of kernel_w frames
        windows = tx.unfold(1, 3, 2).transpose(2, 3).reshape(tx.shape[0], 4, 9)  # (N, T_out, k*F)
        return torch.einsum("ntk,tok->nto", windows, w) + b

    parity(layer, local, rand(2, 9, 3).astype(np.float32))
    assert layer.weight.shape == (4, 4, 9) and layer.bias.shape == (4, 4)


@pytest.mark.oracle
@pytest.mark.parametrize("k, d", [(2, 2), (3, 2), (3, 1)])
def test_temporal_max_pooling_matches_torch(k, d):
    x = distinct(2, 9, 4).astype(np.float32)
    parity(TemporalMaxPooling(k, d),
           lambda tx: F.max_pool1d(tx.transpose(1, 2), k, d).transpose(1, 2), x)


@pytest.mark.oracle
@pytest.mark.parametrize("args, stride, pad", [
    ((3, 2, 2), (2, 1, 1), (1, 0, 1)),     # (k_t, k_w, k_h) -> torch (t, h, w)
    ((1, 3, 2), (1, 2, 1), (0, 1, 1)),
])
def test_volumetric_conv_matches_torch(args, stride, pad):
    kt, kw, kh = args
    (dt, dw, dh), (pt, pw, ph) = stride, pad
    layer = VolumetricConvolution(2, 4, kt, kw, kh, dt, dw, dh, pt, pw, ph)
    parity(layer, lambda tx, w, b: F.conv3d(tx, w, b, (dt, dh, dw), (pt, ph, pw)),
           rand(2, 2, 5, 4, 6).astype(np.float32))


@pytest.mark.oracle
def test_volumetric_conv_same_padding_matches_torch():
    # k (t, h, w) = (3, 3, 2), stride 2 on (5, 7, 6): outputs (3, 4, 3), padding (1, 1), (1, 1),
    # (0, 0); on (4, 6, 5) one pixel of padding on each axis, and it goes after
    layer = VolumetricConvolution(2, 3, 3, 2, 3, 2, 2, 2, -1, -1, -1)
    parity(layer, lambda tx, w, b: F.conv3d(F.pad(tx, (0, 0, 1, 1, 1, 1)), w, b, 2),
           rand(1, 2, 5, 7, 6).astype(np.float32))
    assert layer.output.shape == (1, 3, 3, 4, 3)
    parity(layer, lambda tx, w, b: F.conv3d(F.pad(tx, (0, 1, 0, 1, 0, 1)), w, b, 2),
           rand(1, 2, 4, 6, 5).astype(np.float32))


@pytest.mark.oracle
@pytest.mark.parametrize("groups, adj", [(1, (0, 0, 0)), (2, (1, 0, 1))])
def test_volumetric_full_matches_torch(groups, adj):
    at, aw, ah = adj
    layer = VolumetricFullConvolution(4, 6, 3, 2, 3, 2, 1, 2, 1, 0, 1, at, aw, ah, groups)
    parity(layer, lambda tx, w, b: F.conv_transpose3d(tx, w, b, (2, 2, 1), (1, 1, 0),
                                                      (at, ah, aw), groups),
           rand(2, 4, 3, 4, 3).astype(np.float32))


@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn", [
    (lambda: VolumetricMaxPooling(2, 2, 2, 2, 2, 2),
     lambda tx: F.max_pool3d(tx, 2)),
    (lambda: VolumetricMaxPooling(2, 3, 2, 2, 2, 1, 1, 1, 0).ceil(),
     lambda tx: F.max_pool3d(tx, (2, 2, 3), (2, 1, 2), (1, 0, 1), ceil_mode=True)),
    (lambda: VolumetricAveragePooling(3, 2, 2, 2, 1, 2, 1, 1, 1, ceil_mode=True),
     lambda tx: F.avg_pool3d(tx, (3, 2, 2), (2, 2, 1), (1, 1, 1), ceil_mode=True)),
    (lambda: VolumetricAveragePooling(3, 2, 2, 2, 1, 2, 1, 1, 1, False, True),
     lambda tx: F.avg_pool3d(tx, (3, 2, 2), (2, 2, 1), (1, 1, 1), ceil_mode=True,
                             count_include_pad=False)),
])
def test_volumetric_pooling_matches_torch(layer, fn):
    parity(layer(), fn, distinct(2, 3, 5, 6, 7).astype(np.float32))


@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn, shape", [
    (GlobalAveragePooling1D, lambda tx: tx.mean(1), (2, 5, 3)),
    (GlobalMaxPooling1D, lambda tx: tx.amax(1), (2, 5, 3)),
    (GlobalAveragePooling2D, lambda tx: tx.mean((2, 3)), (2, 3, 4, 5)),
    (lambda: GlobalMaxPooling2D("tf"), lambda tx: tx.amax((1, 2)), (2, 4, 5, 3)),
    (lambda: GlobalAveragePooling3D("tf"), lambda tx: tx.mean((1, 2, 3)), (2, 2, 3, 2, 3)),
    (GlobalMaxPooling3D, lambda tx: tx.amax((2, 3, 4)), (2, 3, 2, 3, 2)),
])
def test_global_pooling_matches_torch(layer, fn, shape):
    parity(layer(), fn, distinct(*shape).astype(np.float32))


def test_global_max_ties_go_to_the_first_maximum():
    x = np.zeros((1, 1, 2, 2), np.float32)
    layer = GlobalMaxPooling2D()
    layer.forward(x)
    gi = layer.backward(x, np.ones((1, 1), np.float32))
    np.testing.assert_array_equal(gi, [[[[1, 0], [0, 0]]]])


# ---------------------------------------------------------------------- configs and reprs
CONFIG_CASES = [
    (lambda: TemporalConvolution(3, 4, 2, 2, weight_regularizer=L2Regularizer(0.1)), (2, 7, 3)),
    (lambda: LocallyConnected1D(6, 3, 2, 3, 1).set_name("lc"), (2, 6, 3)),
    (lambda: TemporalMaxPooling(2), (2, 6, 3)),
    (lambda: VolumetricConvolution(2, 3, 2, 2, 2, 1, 2, 1, 1, 0, 1, False), (1, 2, 3, 4, 4)),
    (lambda: VolumetricFullConvolution(2, 4, 2, 3, 2, 2, 2, 1, 0, 1, 0, 1, 1, 0, 2),
     (1, 2, 2, 3, 3)),
    (lambda: VolumetricMaxPooling(2, 2, 2, 1, 2, 2, 1, 1, 1).ceil(), (1, 2, 3, 5, 5)),
    (lambda: VolumetricAveragePooling(2, 2, 2, 1, 1, 1, 1, 1, 0, False).ceil(), (1, 2, 3, 3, 3)),
    (lambda: GlobalMaxPooling2D("tf", input_shape=(3, 4, 2)), (2, 3, 4, 2)),
    (lambda: GlobalAveragePooling1D(), (2, 3, 4)),
]


@pytest.mark.parametrize("make, shape", CONFIG_CASES)
def test_config_round_trip(make, shape):
    layer = make()
    x = rand(*shape).astype(np.float32)
    rebuilt = Module.from_config(json.loads(json.dumps(layer.get_config())))
    assert repr(rebuilt) == repr(layer) and rebuilt.label() == layer.label()
    rebuilt.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


def test_reprs():
    assert repr(TemporalConvolution(3, 4, 2, 2)) == "nn.TemporalConvolution(3 -> 4, 2, 2)"
    assert repr(LocallyConnected1D(6, 3, 2, 3)) == "nn.LocallyConnected1D(6x3 -> 4x2, 3, 1)"
    assert repr(TemporalMaxPooling(3)) == "nn.TemporalMaxPooling(3, 3)"
    assert repr(VolumetricConvolution(2, 3, 2, 3, 4, 1, 2, 2, 0, 1, 1)) == (
        "nn.VolumetricConvolution(2 -> 3, 2x3x4, 1,2,2, 0,1,1)")
    assert repr(VolumetricFullConvolution(2, 4, 2, 3, 2, 2, 2, 1, adj_t=1)) == (
        "nn.VolumetricFullConvolution(2 -> 4, 2x3x2, 2,2,1, 0,0,0, adj 1,0,0)")
    assert repr(VolumetricMaxPooling(2, 2, 2)) == "nn.VolumetricMaxPooling(2x2x2, 2,2,2)"
    assert repr(VolumetricAveragePooling(3, 2, 2, 1, 1, 1, 1, 1, 1).ceil()) == (
        "nn.VolumetricAveragePooling(3x2x2, 1,1,1, 1,1,1, ceil)")
    assert repr(GlobalMaxPooling2D("tf")) == "nn.GlobalMaxPooling2D(channels last)"
    assert repr(GlobalAveragePooling1D()) == "nn.GlobalAveragePooling1D"


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, bad, message", [
    (lambda: TemporalConvolution(4, 2, 3), (2, 10, 5),
     r"TemporalConvolution\[l\]: expected input \(N, T, 4\), got \(2, 10, 5\)"),
    (lambda: TemporalConvolution(4, 2, 3), (2, 2, 4),
     r"TemporalConvolution\[l\]: expected input \(N, T>=3, 4\), got \(2, 2, 4\)"),
    (lambda: LocallyConnected1D(6, 4, 2, 3), (2, 7, 4),
     r"LocallyConnected1D\[l\]: expected input \(N, 6, 4\), got \(2, 7, 4\)"),
    (lambda: TemporalMaxPooling(3), (2, 2, 4),
     r"TemporalMaxPooling\[l\]: expected input \(N, T>=3, F\), got \(2, 2, 4\)"),
    (lambda: TemporalMaxPooling(3), (16,),
     r"TemporalMaxPooling\[l\]: expected input \(N, T, F\), got \(16\)"),
    (lambda: VolumetricConvolution(3, 2, 2, 2, 2), (2, 1, 4, 4, 4),
     r"VolumetricConvolution\[l\]: expected input \(N, 3, T, H, W\), got \(2, 1, 4, 4, 4\)"),
    (lambda: VolumetricConvolution(3, 2, 3, 2, 2), (2, 3, 2, 4, 4),
     r"VolumetricConvolution\[l\]: expected input \(N, 3, T>=3, H>=2, W>=2\), "
     r"got \(2, 3, 2, 4, 4\)"),
    (lambda: VolumetricFullConvolution(3, 2, 2, 2, 2), (2, 3, 4, 4),
     r"VolumetricFullConvolution\[l\]: expected input \(N, 3, T, H, W\), got \(2, 3, 4, 4\)"),
    (lambda: VolumetricMaxPooling(2, 2, 2), (2, 3, 1, 4, 4),
     r"VolumetricMaxPooling\[l\]: expected input \(N, C, T>=2, H>=2, W>=2\), "
     r"got \(2, 3, 1, 4, 4\)"),
    (lambda: VolumetricAveragePooling(2, 2, 2), (3, 4, 4),
     r"VolumetricAveragePooling\[l\]: expected input \(N, C, T, H, W\), got \(3, 4, 4\)"),
    (lambda: GlobalAveragePooling2D(), (2, 3, 4),
     r"GlobalAveragePooling2D\[l\]: expected input \(N, C, D1, D2\), got \(2, 3, 4\)"),
    (lambda: GlobalMaxPooling3D("tf", (2, 2, 2, 3)), (2, 2, 2, 2, 4),
     r"GlobalMaxPooling3D\[l\]: expected input \(N, 2, 2, 2, 3\), got \(2, 2, 2, 2, 4\)"),
    (lambda: GlobalMaxPooling1D(), (2, 0, 4),
     r"GlobalMaxPooling1D\[l\]: expected input \(N, D1, C\), got \(2, 0, 4\)"),
])
def test_bad_input_names_layer_and_shapes(make, bad, message):
    layer = make().set_name("l")
    with pytest.raises(LayerError, match="^" + message + "$"):
        layer.forward(np.zeros(bad, np.float32))


def test_grad_output_shape_checked():
    layer = VolumetricConvolution(1, 2, 2, 2, 2).set_name("v")
    x = np.zeros((1, 1, 3, 3, 3), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"v\]: expected gradOutput .*\(1, 2, 2, 2, 2\), "
                                         r"got \(1, 2, 3, 3, 3\)"):
        layer.backward(x, np.zeros((1, 2, 3, 3, 3), np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: TemporalConvolution(0, 2, 3), "input_frame_size must be a positive int, got 0"),
    (lambda: TemporalConvolution(2, 2, 3, stride_w=0), "stride_w must be a positive int, got 0"),
    (lambda: LocallyConnected1D(2, 3, 2, 3), r"kernel_w \(3\) must not exceed n_input_frame \(2\)"),
    (lambda: TemporalMaxPooling(0), "k_w must be a positive int, got 0"),
    (lambda: VolumetricConvolution(2, 2, 2, 2, 2, pad_t=-1), "SAME padding needs pad_t = pad_h"),
    (lambda: VolumetricConvolution(2, 2, 2, 2.0, 2), "k_w must be a positive int, got 2.0"),
    (lambda: VolumetricFullConvolution(2, 2, 2, 2, 2, adj_h=1), r"adj_h must be smaller than"),
    (lambda: VolumetricMaxPooling(2, 2, 2, pad_t=2), "pad_t must be at most half the kernel"),
    (lambda: VolumetricAveragePooling(2, 2, 2, d_h=0), "d_h must be a positive int, got 0"),
    (lambda: GlobalMaxPooling2D("channels_first"), "dim_ordering must be 'th'"),
    (lambda: GlobalAveragePooling2D(input_shape=(3, 4)), "input_shape must be 3 positive ints"),
])
def test_constructor_arguments_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()
