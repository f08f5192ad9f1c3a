"""2-D convolutions beyond SpatialConvolution (dilated, shared, transposed, separable, locally
connected) and SpatialConvolution's BigDL arguments (regularizers, NHWC, BigDL-shaped initial
weights): float64 gradient checks, PyTorch parity, configs, bad input."""
import json

import numpy as np
import pytest
from oracle import F, torch

from helpers import (ATOL, check_module_gradients, config_round_trip, f32, normal, rand, RTOL,
                     torch_parity)
from workbench.nn import (L1L2Regularizer, L2Regularizer, LayerError, LocallyConnected2D, Module,
                          Sequential, SpatialConvolution, SpatialConvolutionMap,
                          SpatialDilatedConvolution, SpatialFullConvolution,
                          SpatialSeparableConvolution, SpatialShareConvolution)

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


# ---------------------------------------------------------------------- SpatialConvolution
def test_conv_takes_bigdl_positional_arguments():
    w = rand(1, 4, 3, 2, 2).astype(np.float32)  # BigDL's layout has a leading group axis
    b, gw, gb = rand(4).astype(np.float32), np.ones((1, 4, 3, 2, 2)), np.full(4, 2.0)
    layer = SpatialConvolution(3, 4, 2, 2, 1, 1, 0, 0, 1, True, L2Regularizer(0.5), None, w, b,
                               gw, gb, True, "NCHW")
    np.testing.assert_array_equal(layer.weight, w[0])
    np.testing.assert_array_equal(layer.bias, b)
    assert layer.grad_weight.min() == 1 and layer.grad_bias.max() == 2
    assert layer._regularizers["weight"].l2 == 0.5 and "bias" not in layer._regularizers
    weights = SpatialConvolution(3, 4, 2, 2, with_bias=False).parameter_arrays()[0]
    assert weights[0].shape == (4, 3, 2, 2)


def test_conv_regularizers_add_their_gradient():
    x, g = rand(2, 2, 4, 4), rand(2, 3, 3, 3, seed=1)
    plain = SpatialConvolution(2, 3, 2, 2).double()
    reg = SpatialConvolution(2, 3, 2, 2, wRegularizer=L1L2Regularizer(0.1, 0.2),
                             bRegularizer=L2Regularizer(0.3)).double()
    reg.set_weights(plain.get_weights())
    for m in (plain, reg):
        m.forward(x)
        m.backward(x, g)
    np.testing.assert_allclose(reg.grad_weight, plain.grad_weight + 0.1 * np.sign(plain.weight)
                               + 0.2 * plain.weight)
    np.testing.assert_allclose(reg.grad_bias, plain.grad_bias + 0.3 * plain.bias)
    rebuilt = Module.from_config(json.loads(json.dumps(reg.get_config())))
    assert rebuilt._regularizers["weight"].l1 == 0.1 and rebuilt._regularizers["bias"].l2 == 0.3


@pytest.mark.oracle
@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0), (2, -1)])
def test_conv_nhwc_matches_torch(stride, pad):
    layer = SpatialConvolution(3, 4, 3, 2, stride, stride, pad, pad, data_format="NHWC")
    x = rand(2, 7, 6, 3).astype(np.float32)
    if pad == -1:  # SAME, stride 2: 7 -> 4 rows (padding 0 top, 1 bottom), 6 -> 3 columns (0, 1)
        def conv(tx, w, b):
            return F.conv2d(F.pad(tx.permute(0, 3, 1, 2), (0, 1, 0, 1)), w, b, stride)
    else:
        def conv(tx, w, b):
            return F.conv2d(tx.permute(0, 3, 1, 2), w, b, stride, pad)
    parity(layer, lambda tx, w, b: conv(tx, w, b).permute(0, 2, 3, 1), x)
    assert layer.output.shape[-1] == 4


def test_conv_nhwc_gradients_unbatched_and_config():
    layer = SpatialConvolution(2, 3, 2, 2, 1, 1, 1, 1, data_format="nhwc").double()
    x = rand(4, 3, 2)
    assert layer.forward(x).shape == (5, 4, 3)
    check_module_gradients(layer, x)
    rebuilt = Module.from_config(layer.get_config()).double()
    rebuilt.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))
    with pytest.raises(LayerError, match=r"^SpatialConvolution\[c\]: expected input "
                                         r"\(N, H, W, 2\), got \(1, 2, 4, 4\)$"):
        layer.set_name("c").forward(np.zeros((1, 2, 4, 4)))


@pytest.mark.oracle
def test_conv_pointwise_strided_matches_torch():
    layer = SpatialConvolution(3, 2, 1, 1, 2, 2)  # 1x1, stride 2: no padding, no overlap
    parity(layer, lambda tx, w, b: F.conv2d(tx, w, b, 2), rand(2, 3, 5, 6).astype(np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: SpatialConvolution(2, 4, 3, 3, data_format="NCDHW"),
     "data_format must be one of 'NCHW', 'NHWC', got 'NCDHW'"),
    (lambda: SpatialConvolution(2, 4, 3, 3, init_weight=np.zeros((4, 2, 2, 3))),
     r"weight must have shape \(4, 2, 3, 3\), got \(4, 2, 2, 3\)"),
    (lambda: SpatialConvolution(2, 4, 3, 3, wRegularizer="l2"), "a regularizer must be"),
])
def test_conv_bad_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# ---------------------------------------------------------------------- gradient checks (float64)
GRAD_CASES = {
    "dilated": (lambda: SpatialDilatedConvolution(2, 3, 2, 3, 1, 1, 1, 0, 2, 2), (2, 2, 5, 6)),
    "dilated_strided": (lambda: SpatialDilatedConvolution(2, 2, 3, 2, 2, 1, 0, 1, 2, 1),
                        (2, 2, 4, 7)),
    "share": (lambda: SpatialShareConvolution(4, 2, 2, 2, 1, 2, 1, 0, 2), (2, 4, 3, 4)),
    "full": (lambda: SpatialFullConvolution(2, 3, 3, 2, 2, 1, 1, 0, 1, 0), (2, 2, 2, 3)),
    "full_groups_no_bias": (lambda: SpatialFullConvolution(4, 2, 2, 2, 2, 2, n_group=2,
                                                           no_bias=True), (1, 4, 2, 2)),
    "separable": (lambda: SpatialSeparableConvolution(2, 3, 2, 2, 2, 1, 1, 1, 0), (2, 2, 4, 3)),
    "separable_same_nhwc": (lambda: SpatialSeparableConvolution(
        2, 3, 1, 2, 2, 1, 1, -1, -1, data_format="NHWC"), (2, 4, 3, 2)),
    "locally_connected": (lambda: LocallyConnected2D(2, 4, 3, 2, 2, 2, 1, 2, 1, 0), (2, 2, 3, 4)),
    "locally_connected_nhwc": (lambda: LocallyConnected2D(
        2, 3, 3, 2, 2, 2, pad_w=-1, pad_h=-1, with_bias=False, data_format="NHWC"), (2, 3, 3, 2)),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradients(case):
    make, shape = GRAD_CASES[case]
    check_module_gradients(make().double(), rand(*shape))


@pytest.mark.parametrize("make, shape", [
    (lambda: SpatialDilatedConvolution(2, 2, 2, 2, 1, 1, 0, 0, 2, 2), (2, 5, 5)),
    (lambda: SpatialFullConvolution(2, 2, 2, 2, 2, 2), (2, 2, 3)),
    (lambda: SpatialSeparableConvolution(2, 2, 2, 2, 2), (2, 3, 3)),
    (lambda: LocallyConnected2D(2, 3, 3, 2, 2, 2), (2, 3, 3)),
])
def test_gradients_unbatched(make, shape):
    layer = make().double()
    x = rand(*shape)
    assert layer.forward(x).ndim == 3
    check_module_gradients(layer, x)


# ---------------------------------------------------------------------- parity with PyTorch
@pytest.mark.oracle
@pytest.mark.parametrize("kw, kh, dw, dh, pw, ph, dil_w, dil_h", [
    (3, 3, 1, 1, 2, 2, 2, 2),
    (3, 2, 2, 1, 1, 2, 2, 3),
    (2, 3, 1, 2, 0, 1, 3, 1),
])
def test_dilated_matches_torch(kw, kh, dw, dh, pw, ph, dil_w, dil_h):
    layer = SpatialDilatedConvolution(3, 4, kw, kh, dw, dh, pw, ph, dil_w, dil_h)
    parity(layer, lambda tx, w, b: F.conv2d(tx, w, b, (dh, dw), (ph, pw), (dil_h, dil_w)),
           rand(2, 3, 9, 10).astype(np.float32))


def test_dilated_bigdl_example():
    # the example of BigDL's documentation: a 2x2 kernel of ones, dilation 2, on a 4x4 image
    layer = SpatialDilatedConvolution(1, 1, 2, 2, 1, 1, 0, 0, 2, 2)
    layer.set_weights([np.ones((1, 1, 2, 2)), np.zeros(1)])
    x = np.array([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 2, 3], [4, 5, 6, 7]]], np.float32)
    np.testing.assert_array_equal(layer.forward(x), [[[15, 10], [22, 26]]])
    gi = layer.backward(x, np.array([[[0.1, 0.2], [0.3, 0.4]]], np.float32))
    np.testing.assert_allclose(gi[0], np.tile([[0.1, 0.2], [0.3, 0.4]], (2, 2)))


@pytest.mark.oracle
def test_share_matches_torch():
    layer = SpatialShareConvolution(4, 6, 3, 2, 2, 1, 1, 1, 2)
    parity(layer, lambda tx, w, b: F.conv2d(tx, w, b, (1, 2), (1, 1), 1, 2),
           rand(2, 4, 6, 7).astype(np.float32))


@pytest.mark.oracle
@pytest.mark.parametrize("cin, cout, kw, kh, dw, dh, pw, ph, aw, ah, groups", [
    (2, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1),
    (4, 6, 3, 2, 2, 3, 1, 0, 1, 2, 2),
    (3, 2, 3, 3, 2, 2, 1, 1, 1, 0, 1),
])
def test_full_matches_torch(cin, cout, kw, kh, dw, dh, pw, ph, aw, ah, groups):
    layer = SpatialFullConvolution(cin, cout, kw, kh, dw, dh, pw, ph, aw, ah, groups)
    parity(layer, lambda tx, w, b: F.conv_transpose2d(tx, w, b, (dh, dw), (ph, pw), (ah, aw),
                                                      groups),
           rand(2, cin, 3, 4).astype(np.float32))


@pytest.mark.oracle
def test_full_size_tensor_sets_output_size():
    layer = SpatialFullConvolution(2, 3, 3, 3, 2, 2, 1, 1)
    x = rand(2, 2, 4, 4).astype(np.float32)
    assert layer.forward(x).shape == (2, 3, 7, 7)
    y = layer.forward([x, np.zeros((5, 8, 7))])  # the last two sizes of the size tensor
    assert y.shape == (2, 3, 8, 7)
    ref = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(layer.weight),
                             torch.from_numpy(layer.bias), 2, 1, (1, 0))
    np.testing.assert_allclose(y, ref.numpy(), rtol=RTOL, atol=ATOL)
    gi = layer.backward([x, np.zeros((5, 8, 7))], np.ones_like(y))
    assert gi[0].shape == x.shape and gi[1].shape == (5, 8, 7) and not gi[1].any()
    with pytest.raises(ValueError, match=r"asks for an output of \(9, 7\)"):
        layer.forward([x, np.zeros((9, 7))])


@pytest.mark.oracle
def test_separable_matches_torch():
    layer = SpatialSeparableConvolution(3, 5, 2, 3, 2, 2, 1, 1, 0)

    def separable(tx, depth, point, bias):
        return F.conv2d(F.conv2d(tx, depth, None, (1, 2), (0, 1), 1, 3), point, bias)

    layer.bias[...] = rand(5, seed=3)  # the default zero bias would hide a bias bug
    parity(layer, separable, rand(2, 3, 6, 7).astype(np.float32),
           ("depth_weight", "point_weight", "bias"))


@pytest.mark.oracle
def test_separable_nhwc_matches_torch():
    layer = SpatialSeparableConvolution(2, 3, 1, 3, 3, 1, 1, 1, 1, False, "NHWC")

    def separable(tx, depth, point):
        mid = F.conv2d(tx.permute(0, 3, 1, 2), depth, None, 1, 1, 1, 2)
        return F.conv2d(mid, point).permute(0, 2, 3, 1)

    parity(layer, separable, rand(2, 5, 4, 2).astype(np.float32),
           ("depth_weight", "point_weight"))


def _locally_connected_2d(layer):
    """Reference in torch: unfold the windows, one matmul per output position."""
    kh, kw = layer.kernel
    (sh, sw), (ph, pw) = layer.stride, layer.pads

    def fn(tx, w, b):
        cols = F.unfold(tx, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (N, C*kh*kw, L)
        y = torch.einsum("nkl,lok->nol", cols, w) + b.T
        oh, ow = layer.out_size
        return y.reshape(tx.shape[0], -1, oh, ow)

    return fn


@pytest.mark.oracle
@pytest.mark.parametrize("kw, kh, sw, sh, pw, ph", [(3, 2, 2, 1, 1, 0), (2, 2, 1, 1, 0, 0)])
def test_locally_connected_2d_matches_torch(kw, kh, sw, sh, pw, ph):
    layer = LocallyConnected2D(3, 6, 5, 4, kw, kh, sw, sh, pw, ph)
    parity(layer, _locally_connected_2d(layer), rand(2, 3, 5, 6).astype(np.float32))
    assert layer.weight.shape == (np.prod(layer.out_size), 4, 3 * kh * kw)


def test_locally_connected_2d_is_not_shared():
    layer = LocallyConnected2D(1, 3, 1, 1, 1, 1, with_bias=False)  # three positions, 1x1 kernel
    layer.weight[...] = np.array([1, 2, 3], np.float32).reshape(3, 1, 1)
    np.testing.assert_array_equal(layer.forward(np.ones((1, 1, 1, 3), np.float32)),
                                  [[[[1, 2, 3]]]])


# ---------------------------------------------------------------------- flat parameters
def test_new_layers_follow_flat_parameters():
    model = Sequential().add(SpatialSeparableConvolution(2, 4, 2, 3, 3, 1, 1, 1, 1)) \
        .add(SpatialDilatedConvolution(4, 3, 3, 3, 1, 1, 2, 2, 2, 2)) \
        .add(SpatialFullConvolution(3, 2, 2, 2, 2, 2)) \
        .add(LocallyConnected2D(2, 10, 10, 1, 3, 3, 3, 3))
    x = rand(2, 2, 5, 5).astype(np.float32)
    weights, grads = model.get_parameters()
    y = model.forward(x).copy()
    model.zero_grad_parameters()
    model.backward(x, np.ones_like(y))
    assert np.count_nonzero(grads) > 0.9 * grads.size
    weights *= 0  # every layer reads its weights from the flat vector
    assert not model.forward(x).any()


# ---------------------------------------------------------------------- configs and reprs
CONFIG_CASES = [
    (lambda: SpatialDilatedConvolution(2, 3, 3, 2, 2, 1, 1, 0, 2, 3,
                                       wRegularizer=L2Regularizer(0.1)), (2, 2, 7, 8)),
    (lambda: SpatialShareConvolution(2, 4, 3, 3, 1, 1, -1, -1, with_bias=False), (2, 2, 4, 5)),
    (lambda: SpatialFullConvolution(4, 2, 3, 2, 2, 2, 1, 0, 1, 1, 2, True).set_name("up"),
     (2, 4, 3, 3)),
    (lambda: SpatialSeparableConvolution(2, 4, 2, 3, 3, 1, 1, 1, 1, data_format="NHWC",
                                         p_regularizer=L2Regularizer(0.2)), (2, 5, 5, 2)),
    (lambda: LocallyConnected2D(2, 5, 4, 3, 3, 3, 2, 1, 1, 1), (2, 2, 4, 5)),
    (lambda: SpatialConvolution(2, 3, 3, 3, 2, 2, 1, 1, data_format="NHWC"), (2, 5, 5, 2)),
]


@pytest.mark.parametrize("make, shape", CONFIG_CASES)
def test_config_round_trip(make, shape):
    layer = make()
    x = rand(*shape).astype(np.float32)
    rebuilt = Module.from_config(json.loads(json.dumps(layer.get_config())))
    assert repr(rebuilt) == repr(layer) and rebuilt.label() == layer.label()
    assert rebuilt.__dict__.get("_regularizers", {}).keys() == \
        layer.__dict__.get("_regularizers", {}).keys()
    rebuilt.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


def test_reprs():
    assert repr(SpatialDilatedConvolution(1, 2, 3, 3, 1, 1, 2, 2, 2, 2)) == (
        "nn.SpatialDilatedConvolution(1 -> 2, 3x3, 1,1, 2,2, 2,2)")
    assert repr(SpatialShareConvolution(1, 2, 5, 5)) == (
        "nn.SpatialShareConvolution(1 -> 2, 5x5, 1,1, 0,0)")
    assert repr(SpatialFullConvolution(4, 2, 3, 2, 2, 2, 1, 0, 1, 1, 2, True)) == (
        "nn.SpatialFullConvolution(4 -> 2, 3x2, 2,2, 1,0, adj 1,1, n_group=2, without bias)")
    assert repr(SpatialSeparableConvolution(2, 4, 2, 3, 3)) == (
        "nn.SpatialSeparableConvolution(2 -> 4, depth x2, 3x3, 1,1, 0,0)")
    assert repr(LocallyConnected2D(2, 5, 4, 3, 3, 3)) == (
        "nn.LocallyConnected2D(2x5x4 -> 3, 3x3, 1,1, 0,0)")


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, bad, message", [
    (lambda: SpatialDilatedConvolution(3, 2, 3, 3, 1, 1, 0, 0, 2, 2), (2, 3, 4, 9),
     r"SpatialDilatedConvolution\[l\]: expected input \(N, 3, H>=5, W>=5\), got \(2, 3, 4, 9\)"),
    (lambda: SpatialShareConvolution(3, 2, 3, 3), (2, 1, 8, 8),
     r"SpatialShareConvolution\[l\]: expected input \(N, 3, H, W\), got \(2, 1, 8, 8\)"),
    (lambda: SpatialFullConvolution(3, 2, 3, 3), (2, 2, 8, 8),
     r"SpatialFullConvolution\[l\]: expected input \(N, 3, H, W\), got \(2, 2, 8, 8\)"),
    (lambda: SpatialSeparableConvolution(3, 2, 1, 3, 3), (2, 8, 8, 3),
     r"SpatialSeparableConvolution\[l\]: expected input \(N, 3, H, W\), got \(2, 8, 8, 3\)"),
    (lambda: SpatialSeparableConvolution(3, 2, 1, 3, 3), (2, 3, 8),
     r"SpatialSeparableConvolution\[l\]: expected input \(N, 3, H, W\), got \(2, 3, 8\)"),
    (lambda: LocallyConnected2D(3, 6, 5, 2, 3, 3), (2, 3, 6, 5),
     r"LocallyConnected2D\[l\]: expected input \(N, 3, 5, 6\), got \(2, 3, 6, 5\)"),
])
def test_bad_input_names_layer_and_shapes(make, bad, message):
    layer = make().set_name("l")
    with pytest.raises(LayerError, match="^" + message + "$"):
        layer.forward(np.zeros(bad, np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: SpatialDilatedConvolution(2, 2, 3, 3, dilation_w=0),
     "dilation_w must be a positive int, got 0"),
    (lambda: SpatialDilatedConvolution(2, 2, 3, 3, pad_h=-1), "pad_h must be an int >= 0, got -1"),
    (lambda: SpatialFullConvolution(2, 2, 3, 3, 2, 2, adj_w=2),
     r"adj_w must be smaller than the stride \(2\), got 2"),
    (lambda: SpatialFullConvolution(3, 2, 3, 3, n_group=2),
     r"n_input_plane \(3\) must be divisible"),
    (lambda: SpatialFullConvolution(2, 2, 0, 3), "kw must be a positive int, got 0"),
    (lambda: SpatialSeparableConvolution(2, 2, 0, 3, 3), "depth_multiplier must be a positive int"),
    (lambda: SpatialSeparableConvolution(2, 2, 1, 3, 3, data_format="CHW"), "data_format must be"),
    (lambda: LocallyConnected2D(2, 2, 2, 2, 3, 3), "does not fit a 2x2 input"),
    (lambda: LocallyConnected2D(2, 5, 5, 2, 3, 3, stride_h=1.5), "stride_h must be a positive int"),
])
def test_constructor_arguments_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------- SpatialConvolutionMap
@pytest.mark.oracle
def test_spatial_convolution_map_matches_torch_masked_conv():
    table = [[1, 1], [2, 1], [2, 2], [3, 2], [1, 3]]
    layer = SpatialConvolutionMap(table, 3, 2, 2, 1, 1, 0)
    conn = np.array(table) - 1

    def conv(x, w, b):
        dense = torch.zeros(3, 3, 2, 3, dtype=w.dtype)
        for k, (i, o) in enumerate(conn):
            dense[o, i] = dense[o, i] + w[k]
        return F.conv2d(x, dense, b, stride=(1, 2), padding=(0, 1))

    torch_parity(layer, conv, f32((2, 3, 5, 6), seed=14), params=("weight", "bias"))
    y3 = layer.forward(f32((3, 5, 6), seed=15))
    assert y3.shape == (3, 4, 3)
    check_module_gradients(SpatialConvolutionMap(table, 2, 2, 1, 1, 1, 1).double(),
                           normal((2, 3, 3, 4), seed=16))


def test_spatial_convolution_map_tables_errors_and_config():
    assert SpatialConvolutionMap.full(2, 3) == [[1, 1], [2, 1], [1, 2], [2, 2], [1, 3], [2, 3]]
    one = SpatialConvolutionMap(SpatialConvolutionMap.one_to_one(2), 1, 1)
    one.weight[...] = [[[2.0]], [[3.0]]]
    one.bias[...] = 0
    np.testing.assert_allclose(one.forward(np.ones((1, 2, 2, 2), np.float32))[0, :, 0, 0],
                               [2.0, 3.0])
    with pytest.raises(LayerError, match=r"SpatialConvolutionMap\[scm\]: expected input "
                                         r"\(N, 2, H, W\), got \(1, 3, 4, 4\)"):
        one.set_name("scm").forward(np.ones((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"conn_table must be .* got \[\[0, 1\]\]"):
        SpatialConvolutionMap([[0, 1]], 3, 3)
    config_round_trip(SpatialConvolutionMap(np.array([[1, 1], [1, 2]]), 2, 2),
                      f32((1, 1, 3, 3), seed=2))

