"""Activations (ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax and the later ones): gradients (float64
finite differences), PyTorch parity (forward, grad input, grad parameters), BigDL semantics,
config round trips and errors naming the layer."""
import math
import warnings

import numpy as np
import pytest
from oracle import F, torch

from helpers import (assert_torch_parity, away_from, check_module_gradients, config_round_trip, f32,
                     normal, Reseeded, torch_parity)
from workbench.nn import (BinaryThreshold, Clamp, ELU, GELU, HardShrink, HardSigmoid, HardTanh,
                          LayerError, LeakyReLU, Linear, LogSigmoid, LogSoftMax, PReLU, random,
                          ReLU, ReLU6, RReLU, Sequential, Sigmoid, SiLU, SoftMax, SoftMin, SoftPlus,
                          SoftShrink, SoftSign, SReLU, Tanh, TanhShrink, Threshold, Xavier, Zeros)
from workbench.nn.activation.activations import normal_cdf

# (layer factory, kinks to keep finite differences away from, input scale)
POINTWISE = [
    (lambda: ReLU6(), [0, 6], 4),
    (lambda: HardSigmoid(), [-2.5, 2.5], 2),
    (lambda: LogSigmoid(), [], 3),
    (lambda: SoftPlus(), [], 3),
    (lambda: SoftPlus(2.5), [], 3),
    (lambda: SoftSign(), [], 2),
    (lambda: SoftShrink(), [-0.5, 0.5], 1),
    (lambda: SoftShrink(0.2), [-0.2, 0.2], 1),
    (lambda: HardShrink(), [-0.5, 0.5], 1),
    (lambda: TanhShrink(), [], 2),
    (lambda: HardTanh(), [-1, 1], 2),
    (lambda: HardTanh(-0.5, 2.0), [-0.5, 2], 2),
    (lambda: Clamp(-0.7, 0.4), [-0.7, 0.4], 1),
    (lambda: ELU(), [0], 2),
    (lambda: ELU(0.5), [0], 2),
    (lambda: LeakyReLU(), [0], 1),
    (lambda: LeakyReLU(0.2), [0], 1),
    (lambda: Threshold(0.1, 2.0), [0.1], 1),
    (lambda: BinaryThreshold(0.2), [0.2], 1),
    (lambda: RReLU().evaluate(), [0], 1),
    (lambda: GELU(), [], 3),
    (lambda: GELU("tanh"), [], 3),
    (lambda: SiLU(), [], 3),
]


def _id(case):
    return repr(case[0]())


# ---------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("case", POINTWISE, ids=_id)
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 2, 2)])
def test_pointwise_gradients(case, shape):
    make, kinks, scale = case
    x = away_from(normal(shape, seed=1, scale=scale), kinks)
    check_module_gradients(make().double(), x)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (3, 2, 2), (2, 3, 2, 2)])
def test_softmin_gradients(shape):
    check_module_gradients(SoftMin(), normal(shape, seed=2, scale=2))


@pytest.mark.parametrize("n, shape", [(0, (4, 3)), (0, (2, 3, 2, 2)), (3, (4, 3)), (3, (3,)),
                                      (3, (3, 2, 2)), (3, (2, 3, 2, 2))])
def test_prelu_gradients(n, shape):
    layer = PReLU(n).double()
    layer.weight[...] = np.linspace(-0.3, 0.6, layer.weight.size)
    check_module_gradients(layer, away_from(normal(shape, seed=3), [0]))


def test_rrelu_training_gradients_with_fixed_slopes():
    x = away_from(normal((4, 5), seed=4), [0])
    check_module_gradients(Reseeded(RReLU(0.1, 0.4).double()), x)


def _srelu(shape, share_axes=None, seed=5):
    layer = SReLU(shape, share_axes).double()
    rng = np.random.default_rng(seed)
    layer.t_left[...] = -0.4 + 0.2 * rng.standard_normal(layer.param_shape)
    layer.t_right[...] = 0.5 + 0.2 * rng.standard_normal(layer.param_shape)
    layer.a_left[...] = 0.2 + 0.1 * rng.standard_normal(layer.param_shape)
    layer.a_right[...] = 1.5 + 0.3 * rng.standard_normal(layer.param_shape)
    return layer


@pytest.mark.parametrize("shape, share_axes, input_shape", [
    ((3, 4), None, (2, 3, 4)),
    ((5,), None, (3, 5)),
    ((2, 3, 3), [2, 3], (2, 2, 3, 3)),
    ((2, 3, 3), [1], (2, 2, 3, 3)),
])
def test_srelu_gradients(shape, share_axes, input_shape):
    layer = _srelu(shape, share_axes)
    x = away_from(normal(input_shape, seed=6), [layer.t_left, layer.t_right], gap=0.02)
    check_module_gradients(layer, x)


# ---------------------------------------------------------------------- PyTorch parity

TORCH = [
    (ReLU6(), lambda t: F.relu6(t)),
    (HardSigmoid(), lambda t: torch.clamp(0.2 * t + 0.5, 0, 1)),
    (LogSigmoid(), lambda t: F.logsigmoid(t)),
    (SoftPlus(), lambda t: F.softplus(t)),
    (SoftPlus(2.5), lambda t: F.softplus(t, beta=2.5)),
    (SoftSign(), lambda t: F.softsign(t)),
    (SoftShrink(0.3), lambda t: F.softshrink(t, 0.3)),
    (HardShrink(0.3), lambda t: F.hardshrink(t, 0.3)),
    (TanhShrink(), lambda t: F.tanhshrink(t)),
    (HardTanh(-0.5, 2.0), lambda t: F.hardtanh(t, -0.5, 2.0)),
    (Clamp(-0.7, 0.4), lambda t: torch.clamp(t, -0.7, 0.4)),
    (ELU(0.7), lambda t: F.elu(t, 0.7)),
    (LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
    (Threshold(0.1, 2.0), lambda t: F.threshold(t, 0.1, 2.0)),
    (BinaryThreshold(0.2), lambda t: (t > 0.2).to(t.dtype) + 0 * t),
    (RReLU(0.1, 0.3).evaluate(), lambda t: F.rrelu(t, 0.1, 0.3, training=False)),
    (GELU(), lambda t: F.gelu(t)),
    (GELU("tanh"), lambda t: F.gelu(t, approximate="tanh")),
    (SiLU(), lambda t: F.silu(t)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn", TORCH, ids=[repr(m) for m, _ in TORCH])
def test_pointwise_match_torch(layer, fn):
    torch_parity(layer, fn, f32((6, 7), seed=7, scale=3))
    torch_parity(layer, fn, f32((2, 3, 4, 5), seed=8, scale=3))


@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn", TORCH, ids=[repr(m) for m, _ in TORCH])
def test_pointwise_float32_is_as_accurate_as_torch_float64(layer, fn):
    torch_parity(layer, fn, f32((4, 50), seed=17, scale=4), reference64=True)


@pytest.mark.oracle
def test_extremes_are_finite_and_match_torch():
    x = np.array([-100, -30, -10, -1e-3, 0.5, 10, 30, 100], np.float32)
    for layer, fn in [(LogSigmoid(), F.logsigmoid), (SoftPlus(), F.softplus),
                      (SiLU(), F.silu), (GELU(), F.gelu), (ELU(), F.elu)]:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            torch_parity(layer, fn, x)


@pytest.mark.oracle
@pytest.mark.parametrize("shape, dim", [((6, 10), 1), ((10,), 0), ((3, 4, 5), 0),
                                        ((2, 3, 4, 5), 1)])
def test_softmin_matches_torch(shape, dim):
    torch_parity(SoftMin(), lambda t: F.softmin(t, dim), f32(shape, seed=9, scale=4))


@pytest.mark.oracle
@pytest.mark.parametrize("n, shape", [(0, (5, 4)), (0, (2, 3, 4, 4)), (4, (5, 4)),
                                      (4, (2, 4, 3, 3))])
def test_prelu_matches_torch(n, shape):
    layer = PReLU(n)
    layer.weight[...] = np.linspace(-0.5, 0.8, layer.weight.size)
    torch_parity(layer, F.prelu, f32(shape, seed=10), params=["weight"])


def _torch_srelu(t, tl, al, tr, ar):
    return torch.where(t >= tr, tr + ar * (t - tr), torch.where(t <= tl, tl + al * (t - tl), t))


@pytest.mark.oracle
@pytest.mark.parametrize("shape, share_axes, input_shape", [
    ((3, 4), None, (5, 3, 4)), ((2, 3, 3), [2, 3], (4, 2, 3, 3))])
def test_srelu_matches_torch(shape, share_axes, input_shape):
    layer = _srelu(shape, share_axes).float()
    torch_parity(layer, _torch_srelu, f32(input_shape, seed=11),
                 params=["t_left", "a_left", "t_right", "a_right"])


# ---------------------------------------------------------------------- semantics

def test_rrelu_draws_slopes_in_training_and_uses_the_mean_in_evaluation():
    random.set_seed(3)
    x = -np.abs(f32((50, 40), seed=12)) - 0.1
    layer = RReLU(0.1, 0.3)
    slopes = layer.forward(x) / x
    assert slopes.min() >= 0.1 - 1e-6 and slopes.max() <= 0.3 + 1e-6
    assert slopes.std() > 0.03  # one draw per element
    g = f32((50, 40), seed=13)
    np.testing.assert_allclose(layer.backward(x, g), g * slopes, rtol=1e-5)
    positive = np.abs(x)
    np.testing.assert_array_equal(layer.forward(positive), positive)
    layer.evaluate()
    np.testing.assert_allclose(layer.forward(x), 0.2 * x, rtol=1e-6)


def test_rrelu_is_reproducible_with_set_seed():
    x = -np.ones((4, 4), np.float32)
    random.set_seed(9)
    a = np.array(RReLU().forward(x), copy=True)
    random.set_seed(9)
    np.testing.assert_array_equal(RReLU().forward(x), a)


def test_prelu_shared_slope_starts_at_a_quarter():
    layer = PReLU()
    assert layer.weight.shape == (1,)
    np.testing.assert_array_equal(layer.weight, 0.25)
    x = np.array([-4.0, 2.0], np.float32)
    np.testing.assert_allclose(layer.forward(x), [-1.0, 2.0])
    assert PReLU(7).weight.shape == (7,)


def test_srelu_initialization_and_shared_axes():
    random.set_seed(4)
    layer = SReLU([2, 5, 5], share_axes=[2, 3])
    assert layer.param_shape == (2, 1, 1)
    assert [tuple(w.shape) for w in layer.parameter_arrays()[0]] == [(2, 1, 1)] * 4
    np.testing.assert_array_equal(layer.t_left, 0)
    np.testing.assert_array_equal(layer.a_right, 1)
    assert np.all(layer.t_right >= layer.t_left)
    # shared axes take any size; the others must match
    assert layer.forward(np.zeros((3, 2, 7, 1), np.float32)).shape == (3, 2, 7, 1)
    layer.set_init_method(tLeftInit=Zeros(), aLeftInit=Zeros(), tRightInit=Xavier())
    np.testing.assert_array_equal(layer.a_left, 0)
    w, g = Sequential().add(layer).get_parameters()
    assert w.size == 8 and g.size == 8


def test_srelu_pieces():
    layer = SReLU([1]).double()
    layer.t_left[...], layer.a_left[...] = -1.0, 0.5
    layer.t_right[...], layer.a_right[...] = 2.0, 3.0
    x = np.array([[-3.0], [-1.0], [0.5], [2.0], [4.0]])
    expected = [-1 + 0.5 * -2, -1.0, 0.5, 2.0, 2 + 3 * 2]
    np.testing.assert_allclose(layer.forward(x).ravel(), expected)


def test_threshold_and_binary_threshold_values():
    x = np.array([-1.0, 0.0, 1e-7, 0.5, 2.0], np.float32)
    np.testing.assert_array_equal(Threshold().forward(x), [0, 0, 0, 0.5, 2.0])
    np.testing.assert_array_equal(BinaryThreshold(0.4).forward(x), [0, 0, 0, 1, 1])
    layer = BinaryThreshold()
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(x, np.ones_like(x)), 0)


def test_hard_sigmoid_is_bigdl_s_not_torch_s():
    x = np.array([-3.0, -2.5, 0.0, 1.0, 2.5, 3.0], np.float32)
    np.testing.assert_allclose(HardSigmoid().forward(x), [0, 0, 0.5, 0.7, 1, 1], atol=1e-7)


def test_normal_cdf_is_accurate_to_double_precision():
    xs = np.concatenate([np.linspace(-37, 37, 3001), [-2.12, 2.12, 0.0, -1e-9, 1e-9]])
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xs])
    np.testing.assert_allclose(normal_cdf(xs), exact, rtol=1e-12, atol=0)


def test_activations_keep_float64_and_reuse_buffers():
    for layer in [ReLU6(), GELU(), SoftMin(), ELU()]:
        assert layer.forward(np.ones((2, 3))).dtype == np.float64
        x = f32((2, 3), seed=14)
        assert layer.forward(x) is layer.forward(2 * x)
    assert PReLU().forward(np.ones(3, dtype=np.int64)).dtype == np.float32


def test_prelu_in_a_model_gets_its_slope_gradient_in_the_flat_vector():
    random.set_seed(0)
    model = Sequential().add(Linear(3, 4)).add(PReLU(4))
    w, g = model.get_parameters()
    assert w.size == 3 * 4 + 4 + 4
    x = f32((20, 3), seed=15, scale=3)
    model.forward(x)
    model.backward(x, np.ones((20, 4), np.float32))
    assert np.all(g[-4:] != 0)


# ---------------------------------------------------------------------- config and errors

CONFIG_LAYERS = [ReLU6(True), HardSigmoid(), LogSigmoid(), SoftMin(), SoftPlus(2.0), SoftSign(),
                 SoftShrink(0.2), HardShrink(0.1), TanhShrink(), HardTanh(-2, 3, True),
                 Clamp(-1.5, 0.5), ELU(0.3, True), LeakyReLU(0.05), PReLU(), PReLU(3),
                 RReLU(0.05, 0.2), SReLU([3, 2, 2], [2, 3]), SReLU([3]), Threshold(0.5, -1.0),
                 BinaryThreshold(0.3), GELU(), GELU("tanh"), SiLU()]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=repr)
def test_config_round_trip(layer):
    probe = f32((2, 3, 2, 2) if isinstance(layer, SReLU) and len(layer.input_shape) == 3 else
                (2, 3), seed=16)
    config_round_trip(layer, probe)


def test_reprs():
    assert repr(ReLU6()) == "nn.ReLU6"
    assert repr(HardTanh(-2, 3)) == "nn.HardTanh(-2, 3)"
    assert repr(Clamp(-1, 1)) == "nn.Clamp(-1, 1)"
    assert repr(PReLU(3)) == "nn.PReLU(3)"
    assert repr(SReLU([3, 2, 2], [2, 3])) == "nn.SReLU(3x2x2, shared [2, 3])"
    assert repr(SReLU([32])) == "nn.SReLU(32)"
    assert repr(RReLU()) == "nn.RReLU(0.125, 0.333333)"
    assert repr(GELU("tanh")) == "nn.GELU(tanh)"


@pytest.mark.parametrize("layer, bad, message", [
    (ReLU6(), [np.zeros((2, 3))], r"ReLU6\[bad\]: expected input a tensor, got \[\(2, 3\)\]"),
    (GELU(), "text", r"GELU\[bad\]: expected input a tensor, got str"),
    (SoftMin(), np.zeros((1, 2, 3, 4, 5)),
     r"SoftMin\[bad\]: expected input \(N, C\), \(C,\), \(C, H, W\) or \(N, C, H, W\), "
     r"got \(1, 2, 3, 4, 5\)"),
    (PReLU(3), np.zeros((2, 4)),
     r"PReLU\[bad\]: expected input \(3,\), \(N, 3\), \(3, H, W\) or \(N, 3, H, W\), "
     r"got \(2, 4\)"),
    (PReLU(3), np.zeros((2, 3, 4, 4, 1)), r"PReLU\[bad\]: expected input .* got \(2, 3, 4, 4, 1\)"),
    (SReLU([3, 4]), np.zeros((2, 3, 5)),
     r"SReLU\[bad\]: expected input \(N, 3, 4\), got \(2, 3, 5\)"),
    (SReLU([3, 4], [2]), np.zeros((3, 4)),
     r"SReLU\[bad\]: expected input \(N, 3, \*\), got \(3, 4\)"),
])
def test_bad_input_names_the_layer(layer, bad, message):
    layer.set_name("bad")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("layer", [ReLU6(), SoftMin(), PReLU(), SReLU([6]), GELU(), RReLU()])
def test_bad_grad_output_is_reported(layer):
    x = np.ones((2, 6), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"expected gradOutput of the output's shape \(2, 6\), "
                                         r"got \(2, 5\)"):
        layer.backward(x, np.ones((2, 5), np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: HardTanh(1, -1), r"HardTanh: min_value must be < max_value, got 1 and -1"),
    (lambda: Clamp(2, 2), r"Clamp: min_value must be < max_value, got 2 and 2"),
    (lambda: HardTanh("a"), r"HardTanh: min_value must be a number, got 'a'"),
    (lambda: SoftPlus(0), r"SoftPlus: beta must be > 0, got 0"),
    (lambda: SoftShrink(-1), r"SoftShrink: the_lambda must be >= 0, got -1"),
    (lambda: HardShrink(True), r"HardShrink: the_lambda must be a number, got True"),
    (lambda: RReLU(0.5, 0.1), r"RReLU: upper must be >= lower, got lower=0.5, upper=0.1"),
    (lambda: RReLU(-0.1), r"RReLU: lower must be >= 0, got -0.1"),
    (lambda: PReLU(-1), r"PReLU: n_output_plane must be an int >= 0, got -1"),
    (lambda: SReLU([]), r"SReLU: input_shape must be a non-empty list of positive ints, got \[\]"),
    (lambda: SReLU([3, 4], [3]), r"SReLU: share_axes must be None or a list of axes between 1 "
                                 r"and 2, got \[3\]"),
    (lambda: GELU("fast"), r"GELU: approximate must be 'none' or 'tanh', got 'fast'"),
    (lambda: Threshold(float("nan")), r"Threshold: th must be a number, got nan"),
    (lambda: ELU("1"), r"ELU: alpha must be a number, got '1'"),
    (lambda: LeakyReLU(None), r"LeakyReLU: negval must be a number, got None"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def away_from_zero(shape, seed=0):
    """Inputs at least 0.1 away from ReLU's kink."""
    x = normal(shape, seed)
    return np.sign(x) * (0.1 + np.abs(x))


# ---------------------------------------------------------------------- gradient checks (float64)

@pytest.mark.parametrize("shape", [(4, 5), (7,), (2, 3, 2, 2)])
def test_relu_gradients(shape):
    check_module_gradients(ReLU(), away_from_zero(shape))


@pytest.mark.parametrize("layer", [Tanh, Sigmoid])
@pytest.mark.parametrize("shape", [(4, 5), (6,), (2, 3, 2)])
def test_smooth_activation_gradients(layer, shape):
    check_module_gradients(layer(), 2 * normal(shape, seed=1))


@pytest.mark.parametrize("layer", [SoftMax, LogSoftMax])
@pytest.mark.parametrize("shape", [(5,), (3, 5), (4, 2, 3), (2, 4, 2, 3)])
def test_softmax_gradients(layer, shape):
    check_module_gradients(layer(), 3 * normal(shape, seed=2))


# ---------------------------------------------------------------------- PyTorch parity (float32)

@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn", [
    (ReLU(), lambda t: torch.relu(t)), (Tanh(), lambda t: torch.tanh(t)),
    (Sigmoid(), lambda t: torch.sigmoid(t)),
])
def test_activations_match_torch(layer, fn):
    assert_torch_parity(layer, fn, f32((8, 9), seed=1, scale=3))
    assert_torch_parity(layer, fn, f32((2, 3, 4, 5), seed=2, scale=3))


@pytest.mark.oracle
def test_sigmoid_matches_torch_at_extremes():
    x = np.array([-100, -30, -10, 0, 10, 30, 100], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow
        assert_torch_parity(Sigmoid(), torch.sigmoid, x)


@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn", [
    (SoftMax(), lambda t, dim: torch.softmax(t, dim)),
    (LogSoftMax(), lambda t, dim: torch.log_softmax(t, dim))])
@pytest.mark.parametrize("shape, dim", [((6, 10), 1), ((10,), 0), ((3, 4, 5), 0),
                                        ((2, 3, 4, 5), 1)])
def test_softmax_match_torch(layer, fn, shape, dim):
    assert_torch_parity(layer, lambda t: fn(t, dim), f32(shape, seed=3, scale=4))


@pytest.mark.oracle
def test_softmax_is_stable_for_large_inputs():
    x = np.array([[1000.0, 0.0, -1000.0], [-5e4, -5e4, -5e4]], np.float32)
    assert_torch_parity(SoftMax(), lambda t: torch.softmax(t, 1), x)
    assert_torch_parity(LogSoftMax(), lambda t: torch.log_softmax(t, 1), x)
    assert np.all(np.isfinite(LogSoftMax().forward(x)))

