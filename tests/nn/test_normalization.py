"""Padding / resizing and normalization layers (batch normalization too): gradients (float64 finite
differences), PyTorch parity (forward, grad input, grad parameters), BigDL semantics, config
round trips and errors naming the layer."""
import math

import numpy as np
import pytest
from oracle import F, torch

from helpers import (away_from, check_module_gradients, config_round_trip, f32, normal, rand, RTOL,
                     run_both, torch_parity)
from workbench.nn import (BatchNormalization, Cropping2D, Cropping3D, L2Regularizer, LayerError,
                          LayerNormalization, Normalize, NormalizeScale, Padding, ResizeBilinear,
                          Sequential, SpatialBatchNormalization, SpatialContrastiveNormalization,
                          SpatialCrossMapLRN, SpatialDivisiveNormalization,
                          SpatialSubtractiveNormalization, SpatialWithinChannelLRN,
                          SpatialZeroPadding, UpSampling1D, UpSampling2D, UpSampling3D)

# ---------------------------------------------------------------------- padding and resizing

PADDING = [
    (SpatialZeroPadding(1, 2, 0, 1), (2, 2, 3, 3), lambda t: F.pad(t, (1, 2, 0, 1))),
    (SpatialZeroPadding(-1, 1, 2, -1), (2, 3, 4), lambda t: F.pad(t, (-1, 1, 2, -1))),
    (Padding(1, 2, 2), (3, 4),
     lambda t: torch.cat([t, torch.zeros(2, 4, dtype=t.dtype)], 0)),
    (Padding(1, -2, 1, 0.5), (3, 4),
     lambda t: torch.cat([torch.full((3, 2), 0.5, dtype=t.dtype), t], 1)),
    (Padding(2, 1, 2, -1.0, 2), (2, 3, 4),
     lambda t: torch.cat([t[:, :, :3], torch.full((2, 3, 1), -1.0, dtype=t.dtype), t[:, :, 3:]],
                         2)),
    (Padding(1, -3, 2, 0.0, 2), (2, 3),
     lambda t: torch.cat([t[:1], torch.zeros(3, 3, dtype=t.dtype), t[1:]], 0)),
    (Cropping2D([1, 0], [0, 2]), (2, 2, 4, 5), lambda t: t[:, :, 1:, :3]),
    (Cropping2D([1, 1], [2, 0], "NHWC"), (2, 4, 5, 3), lambda t: t[:, 1:3, 2:, :]),
    (Cropping3D([1, 1], [0, 1], [1, 0]), (1, 2, 3, 3, 3), lambda t: t[:, :, 1:2, :2, 1:]),
    (Cropping3D([0, 1], [1, 0], [1, 1], "channel_last"), (1, 3, 3, 4, 2),
     lambda t: t[:, :2, 1:, 1:3, :]),
    (UpSampling1D(2), (2, 3, 2), lambda t: t.repeat_interleave(2, dim=1)),
    (UpSampling2D([2, 3]), (1, 2, 2, 2),
     lambda t: F.interpolate(t, scale_factor=(2, 3), mode="nearest")),
    (UpSampling2D([3, 1], "NHWC"), (2, 2, 2, 3),
     lambda t: F.interpolate(t.permute(0, 3, 1, 2), scale_factor=(3, 1),
                             mode="nearest").permute(0, 2, 3, 1)),
    (UpSampling3D([1, 2, 2]), (1, 2, 2, 2, 2),
     lambda t: F.interpolate(t, scale_factor=(1, 2, 2), mode="nearest")),
    (ResizeBilinear(5, 7, True), (1, 2, 3, 4),
     lambda t: F.interpolate(t, size=(5, 7), mode="bilinear", align_corners=True)),
    (ResizeBilinear(2, 3, True), (2, 1, 5, 5),
     lambda t: F.interpolate(t, size=(2, 3), mode="bilinear", align_corners=True)),
    (ResizeBilinear(4, 3, True, "NHWC"), (1, 3, 2, 2),
     lambda t: F.interpolate(t.permute(0, 3, 1, 2), size=(4, 3), mode="bilinear",
                             align_corners=True).permute(0, 2, 3, 1)),
]


@pytest.mark.parametrize("layer, shape, fn", PADDING, ids=[repr(c[0]) for c in PADDING])
def test_padding_gradients(layer, shape, fn):
    check_module_gradients(layer.double(), normal(shape, seed=1))


@pytest.mark.oracle
@pytest.mark.parametrize("layer, shape, fn", PADDING, ids=[repr(c[0]) for c in PADDING])
def test_padding_matches_torch(layer, shape, fn):
    torch_parity(layer.float(), fn, f32(shape, seed=2))


@pytest.mark.parametrize("layer, shape", [
    (ResizeBilinear(5, 7), (1, 2, 3, 4)), (ResizeBilinear(2, 3), (2, 1, 5, 5)),
    (ResizeBilinear(3, 3, False, "NHWC"), (1, 4, 4, 2)),
    (ResizeBilinear(1, 1, True), (1, 1, 3, 3))])
def test_resize_bilinear_without_aligned_corners_gradients(layer, shape):
    check_module_gradients(layer.double(), normal(shape, seed=3))


def _tf1_resize(x, out_h, out_w, align):
    """Reference: TensorFlow 1 / BigDL bilinear resize of NCHW ``x``, pixel by pixel."""
    n, c, h, w = x.shape

    def scale(i, o):
        return (i - 1) / (o - 1) if align and o > 1 else i / o

    sy, sx = scale(h, out_h), scale(w, out_w)
    y = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        fy = i * sy
        y0 = int(math.floor(fy))
        y1, ly = min(y0 + 1, h - 1), fy - y0
        for j in range(out_w):
            fx = j * sx
            x0 = int(math.floor(fx))
            x1, lx = min(x0 + 1, w - 1), fx - x0
            top = x[:, :, y0, x0] + (x[:, :, y0, x1] - x[:, :, y0, x0]) * lx
            bottom = x[:, :, y1, x0] + (x[:, :, y1, x1] - x[:, :, y1, x0]) * lx
            y[:, :, i, j] = top + (bottom - top) * ly
    return y


@pytest.mark.parametrize("in_hw, out_hw, align", [((3, 4), (5, 7), False), ((5, 5), (2, 3), False),
                                                  ((4, 4), (8, 8), False), ((3, 4), (5, 7), True),
                                                  ((3, 3), (3, 3), False)])
def test_resize_bilinear_matches_the_tf1_formula(in_hw, out_hw, align):
    x = normal((2, 3) + in_hw, seed=4)
    layer = ResizeBilinear(*out_hw, align_corner=align).double()
    np.testing.assert_allclose(layer.forward(x), _tf1_resize(x, *out_hw, align), rtol=1e-12)


def test_same_size_resize_is_the_identity():
    x = normal((1, 2, 3, 4), seed=5)
    np.testing.assert_array_equal(ResizeBilinear(3, 4).double().forward(x), x)


def test_padding_counts_from_the_padded_side():
    x = np.arange(1.0, 5.0)
    assert list(Padding(1, 2, 1).forward(x)) == [1, 2, 3, 4, 0, 0]
    assert list(Padding(1, -2, 1).forward(x)) == [0, 0, 1, 2, 3, 4]
    assert list(Padding(1, 1, 1, 9.0, 2).forward(x)) == [1, 2, 3, 9, 4]
    assert list(Padding(1, -1, 1, 9.0, 2).forward(x)) == [1, 9, 2, 3, 4]
    assert Padding(1, 2, 1).forward(np.zeros((3, 4))).shape == (3, 6)  # batch of 3


def test_spatial_zero_padding_crops_with_negative_amounts():
    x = np.arange(16.0).reshape(1, 4, 4)
    np.testing.assert_array_equal(SpatialZeroPadding(-1, -1, -1, -1).forward(x),
                                  x[:, 1:3, 1:3])


# ---------------------------------------------------------------------- layer and Lp norms

def _randomized(layer, seed=10):
    rng = np.random.default_rng(seed)
    for _, m, n in layer.named_parameters():
        getattr(m, n)[...] = rng.uniform(0.5, 1.5, getattr(m, n).shape)
    return layer


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (4,)])
def test_layer_normalization_gradients(shape):
    check_module_gradients(_randomized(LayerNormalization(4).double()), normal(shape, seed=11))


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 6)])
def test_layer_normalization_matches_torch(shape):
    layer = _randomized(LayerNormalization(6))
    torch_parity(layer, lambda t, w, b: F.layer_norm(t, (6,), w, b, eps=1e-6),
                 f32(shape, seed=12, scale=2), params=["weight", "bias"], rtol=1e-4, atol=1e-5)


NORMS = [2, 1, 3, 1.5, math.inf]


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 3, 2, 2)])
def test_normalize_gradients(p, shape):
    x = away_from(normal(shape, seed=13), [0], gap=0.1)
    check_module_gradients(Normalize(p).double(), x)


@pytest.mark.oracle
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("shape, dim", [((4, 6), 1), ((6,), 0), ((2, 3, 2, 2), 1)])
def test_normalize_matches_torch(p, shape, dim):
    torch_parity(Normalize(p), lambda t: F.normalize(t, p, dim), f32(shape, seed=14),
                 rtol=1e-4, atol=1e-6)


def test_normalize_accepts_bigdl_s_doublemax_and_zero_rows():
    x = np.array([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(Normalize(1.7976931348623157e308).double().forward(x),
                               [[0.75, -1.0], [0.0, 0.0]])
    np.testing.assert_allclose(Normalize(2).double().forward(x), [[0.6, -0.8], [0, 0]])


@pytest.mark.parametrize("size, shape", [([1, 3, 1, 1], (2, 3, 2, 2)), ([4], (3, 4)),
                                         ([3, 1, 1], (2, 3, 2, 2))])
def test_normalize_scale_gradients(size, shape):
    layer = _randomized(NormalizeScale(2.0, 1.0, size).double())
    check_module_gradients(layer, normal(shape, seed=15))


@pytest.mark.oracle
def test_normalize_scale_matches_torch():
    layer = _randomized(NormalizeScale(2.0, 1.0, [1, 3, 1, 1]))
    torch_parity(layer, lambda t, w: F.normalize(t, 2, 1) * w, f32((2, 3, 4, 4), seed=16),
                 params=["weight"], rtol=1e-4, atol=1e-6)


def test_normalize_scale_starts_at_scale_and_takes_a_regularizer():
    layer = NormalizeScale(2.0, scale=20.0, size=[1, 5, 1, 1], w_regularizer=L2Regularizer(0.1))
    np.testing.assert_array_equal(layer.weight, 20.0)
    x = f32((1, 5, 2, 2), seed=17)
    np.testing.assert_allclose(np.linalg.norm(layer.forward(x), axis=1), 20.0, rtol=1e-5)
    assert layer.regularization_loss() > 0


# ---------------------------------------------------------------------- local response norms

@pytest.mark.parametrize("layer, shape", [
    (SpatialCrossMapLRN(3, 0.5, 0.75, 1.0), (2, 5, 2, 2)),
    (SpatialCrossMapLRN(5, 2.0, 0.6, 2.0), (1, 3, 2, 3)),
    (SpatialCrossMapLRN(3, 0.5, 0.75, 1.0, "NHWC"), (1, 2, 2, 4)),
    (SpatialWithinChannelLRN(3, 0.5, 0.75), (2, 2, 3, 3)),
    (SpatialWithinChannelLRN(5, 1.0, 0.6), (2, 4, 4)),
])
def test_lrn_gradients(layer, shape):
    check_module_gradients(layer.double(), normal(shape, seed=18, scale=1.5))


@pytest.mark.oracle
@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1.0, 0.75, 1.0), (3, 2e-2, 0.5, 2.0),
                                                  (7, 1.0, 0.75, 1.0)])
def test_cross_map_lrn_matches_torch(size, alpha, beta, k):
    x = f32((2, 6, 3, 3), seed=19, scale=2)
    def fn(t):
        return F.local_response_norm(t, size, alpha, beta, k)

    torch_parity(SpatialCrossMapLRN(size, alpha, beta, k), fn, x)
    torch_parity(SpatialCrossMapLRN(size, alpha, beta, k, "NHWC"),
                 lambda t: fn(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1),
                 np.ascontiguousarray(x.transpose(0, 2, 3, 1)))


@pytest.mark.oracle
@pytest.mark.parametrize("size, alpha, beta", [(5, 1.0, 0.75), (3, 0.3, 0.5)])
def test_within_channel_lrn_matches_torch_composition(size, alpha, beta):
    pad = (size - 1) // 2

    def fn(t):
        mean = F.avg_pool2d(t * t, size, 1, pad, count_include_pad=True)
        return t * (1 + alpha * mean) ** -beta

    torch_parity(SpatialWithinChannelLRN(size, alpha, beta), fn, f32((2, 3, 5, 6), seed=20,
                                                                     scale=2))


# ---------------------------------------------------------------------- local contrast norms

def _torch_estimator(t, kernel, n_plane, one_d_divisor):
    """BigDL's convolutional mean / std estimator, built as BigDL builds it: a 2-D kernel
    normalized to sum 1/n_plane per channel in one convolution over all channels, or a 1-D
    kernel divided by ``sum * one_d_divisor`` in a per-channel horizontal pass and a vertical
    pass summing the channels.  Returns ``(N, 1, H, W)``."""
    k = torch.tensor(kernel, dtype=t.dtype)
    if k.dim() == 2:
        kn = k / (k.sum() * n_plane)
        w = kn.expand(1, n_plane, *k.shape)
        return F.conv2d(t, w, padding=(k.shape[0] // 2, k.shape[1] // 2))
    kn = k / (k.sum() * one_d_divisor)
    pad = k.shape[0] // 2
    horizontal = F.conv2d(t, kn.view(1, 1, 1, -1).expand(n_plane, 1, 1, k.shape[0]),
                          padding=(0, pad), groups=n_plane)
    return F.conv2d(horizontal, kn.view(1, 1, -1, 1).expand(1, n_plane, k.shape[0], 1),
                    padding=(pad, 0))


def _torch_subtractive(kernel, n_plane):
    def fn(t):
        coef = _torch_estimator(torch.ones_like(t[:1]), kernel, n_plane, n_plane)
        return t - _torch_estimator(t, kernel, n_plane, n_plane) / coef
    return fn


def _torch_divisive(kernel, n_plane, threshold=1e-4, thresval=1e-4):
    def fn(t):
        divisor = math.sqrt(n_plane)
        coef = _torch_estimator(torch.ones_like(t[:1]), kernel, n_plane, divisor)
        std = torch.sqrt(_torch_estimator(t * t, kernel, n_plane, divisor))
        adjusted = std / coef
        return t / torch.where(adjusted > threshold, adjusted,
                               torch.full_like(adjusted, thresval))
    return fn


KERNELS = [None, np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]),
           np.array([1.0, 3.0, 1.0]), np.array([[1.0, 2.0, 3.0, 2.0, 1.0]])]


def _kernel_id(k):
    return "default" if k is None else "x".join(map(str, np.shape(k)))


@pytest.mark.parametrize("kernel", KERNELS, ids=_kernel_id)
@pytest.mark.parametrize("cls", [SpatialSubtractiveNormalization, SpatialDivisiveNormalization,
                                 SpatialContrastiveNormalization])
def test_local_contrast_gradients(cls, kernel):
    layer = cls(2, kernel).double()
    check_module_gradients(layer, normal((2, 2, 4, 5), seed=21))
    check_module_gradients(cls(1, kernel).double(), normal((1, 4, 4), seed=22))


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", KERNELS, ids=_kernel_id)
def test_local_contrast_matches_torch(kernel):
    k = np.ones((9, 9)) if kernel is None else kernel
    x = f32((2, 3, 6, 7), seed=23, scale=2)
    sub, div = _torch_subtractive(k, 3), _torch_divisive(k, 3)
    torch_parity(SpatialSubtractiveNormalization(3, kernel), sub, x, rtol=1e-4, atol=1e-5)
    torch_parity(SpatialDivisiveNormalization(3, kernel), div, x, rtol=1e-4, atol=1e-5)
    torch_parity(SpatialContrastiveNormalization(3, kernel), lambda t: div(sub(t)), x,
                 rtol=1e-4, atol=1e-5)


def test_divisive_threshold_replaces_flat_regions():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1e-7
    layer = SpatialDivisiveNormalization(1, np.ones((3, 3)), threshold=1e-3, thresval=0.5).double()
    np.testing.assert_allclose(layer.forward(x), x / 0.5)
    g = layer.backward(x, np.ones_like(x))
    assert np.all(np.isfinite(g))


def test_subtractive_normalization_removes_the_local_mean():
    x = np.full((2, 3, 6, 6), 4.0)
    np.testing.assert_allclose(SpatialSubtractiveNormalization(3).double().forward(x), 0,
                               atol=1e-12)


def test_kernel_argument_is_not_modified_and_travels_in_the_config():
    kernel = np.array([1.0, 2.0, 1.0])
    layer = SpatialContrastiveNormalization(2, kernel)
    np.testing.assert_array_equal(kernel, [1.0, 2.0, 1.0])
    assert layer.get_config()["args"]["kernel"] == [1.0, 2.0, 1.0]
    again = config_round_trip(layer, f32((1, 2, 4, 4), seed=24))
    np.testing.assert_array_equal(again.kernel, kernel)
    assert SpatialSubtractiveNormalization().get_config()["args"]["kernel"] is None


# ---------------------------------------------------------------------- config and errors

CONFIG_LAYERS = [
    (SpatialZeroPadding(1, 0, -1, 2), (2, 3, 4)), (Padding(2, -1, 2, 0.5, 2), (2, 3, 4)),
    (Cropping2D([1, 0], [0, 1], "NHWC"), (2, 3, 4, 2)),
    (Cropping3D([1, 0], [0, 1], [1, 1], "channel_last"), (1, 3, 3, 4, 2)),
    (UpSampling1D(3), (2, 3, 2)), (UpSampling2D([2, 1], "nhwc"), (1, 2, 2, 3)),
    (UpSampling3D([2, 1, 2]), (1, 2, 2, 2, 2)), (ResizeBilinear(3, 5, True, "NHWC"), (1, 2, 2, 3)),
    (LayerNormalization(4), (2, 4)), (Normalize(math.inf), (2, 4)), (Normalize(3, 1e-6), (2, 4)),
    (NormalizeScale(2, 5.0, [1, 4], L2Regularizer(0.1), 1e-8), (2, 4)),
    (SpatialCrossMapLRN(3, 0.1, 0.5, 2.0, "NHWC"), (1, 2, 2, 4)),
    (SpatialWithinChannelLRN(3, 0.2, 0.5), (1, 2, 3, 3)),
    (SpatialSubtractiveNormalization(2, np.ones((3, 3))), (1, 2, 4, 4)),
    (SpatialDivisiveNormalization(2, [1.0, 2.0, 1.0], 1e-3, 1e-2), (1, 2, 4, 4)),
    (SpatialContrastiveNormalization(), (1, 1, 4, 4)),
]


@pytest.mark.parametrize("layer, shape", CONFIG_LAYERS, ids=[repr(c[0]) for c in CONFIG_LAYERS])
def test_config_round_trip(layer, shape):
    config_round_trip(layer, f32(shape, seed=25))


def test_reprs():
    assert repr(SpatialZeroPadding(1, 0, -1, 2)) == "nn.SpatialZeroPadding(l=1, r=0, t=-1, b=2)"
    assert repr(Padding(2, -1, 2, 0.5, 2)) == "nn.Padding(2, -1, 2, 0.5, 2)"
    assert repr(ResizeBilinear(3, 5, True)) == "nn.ResizeBilinear(3x5, align corners)"
    assert repr(Normalize(math.inf)) == "nn.Normalize(inf, 1e-10)"
    assert repr(NormalizeScale(2, 20.0, [1, 5, 1, 1])) == "nn.NormalizeScale(2, 20, [1, 5, 1, 1])"
    assert repr(SpatialDivisiveNormalization(2, [1.0, 2.0, 1.0])) == \
        "nn.SpatialDivisiveNormalization(2, kernel 3, 0.0001, 0.0001)"
    assert repr(Sequential().add(UpSampling2D([2, 2]))).count("nn.UpSampling2D([2, 2])") == 1


def test_model_of_issue_6_layers_saves_and_loads(tmp_path):
    """The safe model format (JSON config + npz weights) carries every kind of state these
    layers have: parameters, a kernel in the config, a regularizer, a lambda set later."""
    from workbench import io
    from workbench.nn import (CMul, GradientReversal, PReLU, Reshape, SReLU, SpatialDropout2D,
                              UpSampling2D)
    model = (Sequential()
             .add(SpatialContrastiveNormalization(2, np.array([1.0, 2.0, 1.0])))
             .add(PReLU(2)).add(CMul([2, 1, 1])).add(SpatialDropout2D(0.3))
             .add(NormalizeScale(2, 3.0, [1, 2, 1, 1], L2Regularizer(0.1)))
             .add(UpSampling2D([1, 2])).add(Cropping2D([1, 0], [0, 1]))
             .add(Reshape([2 * 3 * 7])).add(SReLU([42]))
             .add(LayerNormalization(42)).add(GradientReversal(0.3).set_lambda(0.7)))
    x = f32((3, 2, 4, 4), seed=26)
    expected = np.array(model.evaluate().forward(x), copy=True)
    path = str(tmp_path / "model.bigdl")
    io.save_model(model, path)
    again = io.load_model(path)
    assert repr(again) == repr(model)
    np.testing.assert_array_equal(again.forward(x), expected)
    assert [m.the_lambda for m in again.modules() if isinstance(m, GradientReversal)] == [0.7]


@pytest.mark.parametrize("layer, bad, message", [
    (SpatialZeroPadding(1, 1, 1, 1), np.zeros((2, 3)),
     r"SpatialZeroPadding\[bad\]: expected input \(C, H, W\) or \(N, C, H, W\), got \(2, 3\)"),
    (SpatialZeroPadding(-2, -2, 0, 0), np.zeros((1, 3, 3)),
     r"SpatialZeroPadding\[bad\]: expected input .* large enough to keep something after "
     r"cropping, got \(1, 3, 3\)"),
    (Padding(3, 1, 2), np.zeros((2, 3)), r"Padding\[bad\]: expected input a tensor with "
                                          r"dimension 3 of 2 per sample .*, got \(2, 3\)"),
    (Cropping2D([1, 1], [0, 0]), np.zeros((2, 3, 4)),
     r"Cropping2D\[bad\]: expected input \(N, C, H, W\), got \(2, 3, 4\)"),
    (Cropping3D([1, 1], [0, 0], [0, 0]), np.zeros((1, 1, 2, 3, 3)),
     r"Cropping3D\[bad\]: expected input \(N, C, D1, D2, D3\) large enough .*, "
     r"got \(1, 1, 2, 3, 3\)"),
    (UpSampling1D(2), np.zeros((2, 3)), r"UpSampling1D\[bad\]: expected input \(N, T, F\), "
                                        r"got \(2, 3\)"),
    (UpSampling2D([2, 2], "NHWC"), np.zeros((2, 3, 4)),
     r"UpSampling2D\[bad\]: expected input \(N, H, W, C\), got \(2, 3, 4\)"),
    (UpSampling3D([2, 2, 2]), np.zeros((2, 3, 4, 4)),
     r"UpSampling3D\[bad\]: expected input \(N, C, D, H, W\), got \(2, 3, 4, 4\)"),
    (ResizeBilinear(4, 4), np.zeros((3, 4, 4)),
     r"ResizeBilinear\[bad\]: expected input \(N, C, H, W\), got \(3, 4, 4\)"),
    (LayerNormalization(4), np.zeros((2, 5)),
     r"LayerNormalization\[bad\]: expected input \(\.\.\., 4\), got \(2, 5\)"),
    (Normalize(2), np.zeros((2, 3, 4)),
     r"Normalize\[bad\]: expected input \(D,\), \(N, D\) or \(N, C, H, W\), got \(2, 3, 4\)"),
    (NormalizeScale(2, 1.0, [1, 3]), np.zeros((2, 4)),
     r"NormalizeScale\[bad\]: expected input a tensor that \(1, 3\) expands to .*, got \(2, 4\)"),
    (SpatialCrossMapLRN(), np.zeros((3, 4, 4)),
     r"SpatialCrossMapLRN\[bad\]: expected input \(N, C, H, W\), got \(3, 4, 4\)"),
    (SpatialWithinChannelLRN(), np.zeros((4, 4)),
     r"SpatialWithinChannelLRN\[bad\]: expected input \(C, H, W\) or \(N, C, H, W\), "
     r"got \(4, 4\)"),
    (SpatialSubtractiveNormalization(3), np.zeros((2, 2, 5, 5)),
     r"SpatialSubtractiveNormalization\[bad\]: expected input \(3, H, W\) or \(N, 3, H, W\), "
     r"got \(2, 2, 5, 5\)"),
    (SpatialDivisiveNormalization(2), [np.zeros((2, 5, 5))],
     r"SpatialDivisiveNormalization\[bad\]: expected input .*, got \[\(2, 5, 5\)\]"),
    (SpatialContrastiveNormalization(2), np.zeros((1, 3, 5, 5)),
     r"SpatialContrastiveNormalization\[bad\]: expected input \(2, H, W\) .*, "
     r"got \(1, 3, 5, 5\)"),
])
def test_bad_input_names_the_layer(layer, bad, message):
    layer.set_name("bad")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("layer, shape", [
    (SpatialZeroPadding(1, 1, 1, 1), (1, 2, 3, 3)), (UpSampling2D([2, 2]), (1, 2, 3, 3)),
    (ResizeBilinear(5, 5), (1, 2, 3, 3)), (LayerNormalization(3), (1, 2, 3, 3)),
    (SpatialCrossMapLRN(), (1, 2, 3, 3)), (SpatialSubtractiveNormalization(2), (1, 2, 3, 3))])
def test_bad_grad_output_is_reported(layer, shape):
    x = np.ones(shape, np.float32)
    y = layer.forward(x)
    with pytest.raises(LayerError, match=r"expected gradOutput of the output's shape"):
        layer.backward(x, np.ones(y.shape[:-1] + (y.shape[-1] + 1,), np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: SpatialZeroPadding(1, 1, 1, 1.5),
     r"SpatialZeroPadding: pad_bottom must be an int, got 1.5"),
    (lambda: Padding(0, 1, 1), r"Padding: dim must be a positive int, got 0"),
    (lambda: Padding(1, 1, 1, "x"), r"Padding: value must be a number, got 'x'"),
    (lambda: Cropping2D([1], [0, 0]), r"Cropping2D: heightCrop must be a list of 2 ints >= 0, "
                                      r"got \[1\]"),
    (lambda: Cropping2D([1, 0], [0, 0], "NCWH"),
     r"Cropping2D: data_format must be one of 'NCHW', 'NHWC', got 'NCWH'"),
    (lambda: Cropping3D([1, 0], [0, 0], [0, -1]),
     r"Cropping3D: dim3Crop must be a list of 2 ints >= 0, got \[0, -1\]"),
    (lambda: Cropping3D([1, 0], [0, 0], [0, 0], "NCDHW"),
     r"Cropping3D: data_format must be 'channel_first' or 'channel_last', got 'NCDHW'"),
    (lambda: UpSampling1D(0), r"UpSampling1D: length must be a positive int, got 0"),
    (lambda: UpSampling2D([2]), r"UpSampling2D: size must be a list of 2 positive ints, "
                                r"got \[2\]"),
    (lambda: UpSampling3D([1, 0, 1]), r"UpSampling3D: size must be a list of 3 positive ints, "
                                      r"got \[1, 0, 1\]"),
    (lambda: ResizeBilinear(0, 3), r"ResizeBilinear: output_height must be a positive int, "
                                   r"got 0"),
    (lambda: LayerNormalization(-1), r"LayerNormalization: hidden_size must be a positive int, "
                                     r"got -1"),
    (lambda: Normalize(0), r"Normalize: p must be > 0 \(an L_p norm\), got 0"),
    (lambda: Normalize(2, -1), r"Normalize: eps must be >= 0, got -1"),
    (lambda: NormalizeScale(2, "big", [1]), r"NormalizeScale: scale must be a number, got 'big'"),
    (lambda: SpatialCrossMapLRN(4), r"SpatialCrossMapLRN: size must be odd, got 4"),
    (lambda: SpatialCrossMapLRN(5, data_format="CHW"),
     r"SpatialCrossMapLRN: data_format must be 'NCHW' or 'NHWC', got 'CHW'"),
    (lambda: SpatialWithinChannelLRN(0), r"SpatialWithinChannelLRN: size must be a positive int, "
                                         r"got 0"),
    (lambda: SpatialSubtractiveNormalization(1, np.ones((4, 3))),
     r"SpatialSubtractiveNormalization: kernel must be a 1-D or 2-D array with odd sizes, "
     r"got shape \(4, 3\)"),
    (lambda: SpatialDivisiveNormalization(0), r"SpatialDivisiveNormalization: n_input_plane must "
                                              r"be a positive int, got 0"),
    (lambda: SpatialDivisiveNormalization(1, None, 1e-4, 0),
     r"SpatialDivisiveNormalization: thresval must not be 0 \(it divides\), got 0"),
    (lambda: SpatialContrastiveNormalization(1, np.zeros(3)),
     r"SpatialContrastiveNormalization: kernel must be finite with a non-zero sum"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("make, shape", [
    (lambda: BatchNormalization(3), (4, 3)),
    (lambda: BatchNormalization(3, affine=False), (5, 3)),
    (lambda: SpatialBatchNormalization(2), (3, 2, 2, 3)),
    (lambda: SpatialBatchNormalization(2, momentum=0.5, affine=False), (2, 2, 3, 2)),
    (lambda: SpatialBatchNormalization(2), (2, 3, 2)),  # unbatched
])
def test_batchnorm_gradients(make, shape, train):
    layer = make().double()
    rng = np.random.default_rng(7)
    layer.forward(rand(*shape, seed=3) * 2 + 1)  # non-trivial running statistics
    layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    if layer.affine:
        layer.weight[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
        layer.bias[...] = rng.standard_normal(layer.bias.shape)
    if not train:
        layer.evaluate()
    check_module_gradients(layer, rand(*shape, seed=4))


@pytest.mark.oracle
@pytest.mark.parametrize("make, torch_cls, shape", [
    (lambda: BatchNormalization(5), lambda n: torch.nn.BatchNorm1d(n), (8, 5)),
    (lambda: BatchNormalization(4, eps=1e-3, momentum=0.3), lambda n: torch.nn.BatchNorm1d(
        n, eps=1e-3, momentum=0.3), (6, 4)),
    (lambda: SpatialBatchNormalization(3), lambda n: torch.nn.BatchNorm2d(n), (4, 3, 5, 6)),
    (lambda: SpatialBatchNormalization(3, affine=False), lambda n: torch.nn.BatchNorm2d(
        n, affine=False), (4, 3, 2, 3)),
])
def test_batchnorm_matches_torch(make, torch_cls, shape):
    layer = make()
    ref = torch_cls(shape[1])
    rng = np.random.default_rng(5)
    if layer.affine:
        w = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
        b = rng.standard_normal(shape[1]).astype(np.float32)
        layer.weight[...], layer.bias[...] = w, b
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(w))
            ref.bias.copy_(torch.from_numpy(b))
    for step in range(3):  # training: batch statistics, running statistics move
        x = (rand(*shape, seed=step) * 3 + 2).astype(np.float32)
        run_both(layer, ref, x)
        if layer.affine:
            np.testing.assert_allclose(layer.grad_weight, ref.weight.grad.numpy(), rtol=RTOL,
                                       atol=1e-4)
            np.testing.assert_allclose(layer.grad_bias, ref.bias.grad.numpy(), rtol=RTOL,
                                       atol=1e-4)
            ref.zero_grad()
        np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5,
                                   atol=1e-6)
    layer.evaluate()
    ref.eval()
    x = rand(*shape, seed=9).astype(np.float32)
    run_both(layer, ref, x)
    if layer.affine:
        np.testing.assert_allclose(layer.grad_weight, ref.weight.grad.numpy(), rtol=RTOL,
                                   atol=1e-4)
    np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)


def test_batchnorm_frozen_still_propagates():
    layer = SpatialBatchNormalization(2).freeze()
    x = rand(3, 2, 2, 2).astype(np.float32)
    y = layer.forward(x)
    gi = layer.backward(x, np.ones_like(y))
    assert not layer.grad_weight.any()
    np.testing.assert_allclose(gi, 0, atol=1e-5)  # d/dx of sum(normalized x) is zero


def test_batchnorm_bad_input_names_layer_and_shapes():
    with pytest.raises(LayerError, match=r"^BatchNormalization\[bn\]: expected input "
                                         r"\(N, 10\), got \(4, 8\)$"):
        BatchNormalization(10).set_name("bn").forward(np.zeros((4, 8), np.float32))
    with pytest.raises(LayerError, match=r"^SpatialBatchNormalization\[bn2\]: expected input "
                                         r"\(N, 6, H, W\), got \(4, 3, 8, 8\)$"):
        SpatialBatchNormalization(6).set_name("bn2").forward(np.zeros((4, 3, 8, 8), np.float32))
    with pytest.raises(LayerError, match=r"more than 1 value per channel.*\(1, 10\)"):
        BatchNormalization(10).forward(np.zeros((1, 10), np.float32))

