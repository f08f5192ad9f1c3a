"""Dropout, noise and penalty layers: Dropout, SpatialDropout1D/2D/3D, GaussianDropout,
GaussianNoise, GaussianSampler, L1Penalty, ActivityRegularization, NegativeEntropyPenalty,
GradientReversal — gradients (with the random draws fixed), PyTorch parity where the operation
is deterministic given its noise, BigDL semantics, config round trips and errors naming the
layer."""
import numpy as np
import pytest
from oracle import torch

from helpers import (assert_torch_parity, check_module_gradients, check_penalty_gradients, param_id,
                     config_round_trip, f32, normal, Reseeded, Reseeded as _Reseeded, t64)
from workbench.nn import (ActivityRegularization, Dropout, GaussianDropout, GaussianNoise,
                          GaussianSampler, GradientReversal, L1Penalty, LayerError, Linear,
                          NegativeEntropyPenalty, random, Sequential, SpatialDropout1D,
                          SpatialDropout2D, SpatialDropout3D)

# ---------------------------------------------------------------------- spatial dropout

SPATIAL = [
    (SpatialDropout1D(0.4), (3, 5, 4), (1,)),            # (N, T, C): whole features over time
    (SpatialDropout1D(0.4), (5, 4), (0,)),               # (T, C)
    (SpatialDropout2D(0.4), (3, 4, 2, 3), (2, 3)),       # NCHW: whole channels
    (SpatialDropout2D(0.4), (4, 2, 3), (1, 2)),          # CHW
    (SpatialDropout2D(0.4, "NHWC"), (3, 2, 3, 4), (1, 2)),
    (SpatialDropout3D(0.4), (2, 4, 2, 2, 3), (2, 3, 4)),
    (SpatialDropout3D(0.4, "NHWC"), (2, 2, 2, 3, 4), (1, 2, 3)),
]


@pytest.mark.parametrize("layer, shape, map_axes", SPATIAL, ids=[repr(c[0]) + str(c[1])
                                                                  for c in SPATIAL])
def test_spatial_dropout_drops_whole_maps_without_rescaling(layer, shape, map_axes):
    random.set_seed(2)
    x = np.abs(f32(shape, seed=1)) + 1
    y = layer.forward(x)
    ratio = y / x
    assert set(np.unique(ratio)) <= {0.0, 1.0}
    # the same decision for every position of a map
    assert np.all(ratio.min(axis=map_axes) == ratio.max(axis=map_axes))
    g = f32(shape, seed=2)
    np.testing.assert_array_equal(layer.backward(x, g), g * ratio)
    layer.evaluate()
    np.testing.assert_allclose(layer.forward(x), 0.6 * x, rtol=1e-6)
    np.testing.assert_allclose(layer.backward(x, g), 0.6 * g, rtol=1e-6)


def test_spatial_dropout_rate_and_reproducibility():
    x = np.ones((400, 50, 3), np.float32)
    random.set_seed(5)
    a = np.array(SpatialDropout1D(0.3).forward(x), copy=True)
    assert abs((a[:, 0, :] == 0).mean() - 0.3) < 0.03
    random.set_seed(5)
    np.testing.assert_array_equal(SpatialDropout1D(0.3).forward(x), a)


@pytest.mark.parametrize("layer, shape, map_axes", SPATIAL[:1] + SPATIAL[2:3] + SPATIAL[5:6])
def test_spatial_dropout_gradients_with_a_fixed_mask(layer, shape, map_axes):
    check_module_gradients(Reseeded(layer.double()), normal(shape, seed=3))
    check_module_gradients(layer.double().evaluate(), normal(shape, seed=4))


# ---------------------------------------------------------------------- gaussian noise

def test_gaussian_dropout_noise_statistics_and_backward():
    random.set_seed(6)
    x = np.ones((300, 200), np.float32)
    layer = GaussianDropout(0.2)
    y = np.array(layer.forward(x), copy=True)
    assert abs(y.mean() - 1) < 0.01
    assert abs(y.std() - np.sqrt(0.2 / 0.8)) < 0.01
    g = f32((300, 200), seed=5)
    np.testing.assert_allclose(layer.backward(x, g), g * y, rtol=1e-6)
    layer.evaluate()
    assert layer.forward(x) is x
    assert layer.backward(x, g) is g


def test_gaussian_noise_statistics_and_backward():
    random.set_seed(7)
    x = np.zeros((300, 200), np.float32)
    layer = GaussianNoise(0.5)
    y = layer.forward(x)
    assert abs(y.mean()) < 0.01 and abs(y.std() - 0.5) < 0.01
    g = f32((300, 200), seed=6)
    assert layer.backward(x, g) is g
    layer.evaluate()
    assert layer.forward(x) is x


@pytest.mark.parametrize("layer", [GaussianDropout(0.3), GaussianNoise(0.7)], ids=repr)
def test_gaussian_layers_gradients_with_fixed_noise(layer):
    check_module_gradients(Reseeded(layer.double()), normal((3, 4), seed=8))


def test_gaussian_sampler_reparameterization():
    random.set_seed(8)
    mean = np.full((400, 300), 2.0)
    log_var = np.full((400, 300), np.log(0.25))
    sampler = GaussianSampler().double()
    y = sampler.forward([mean, log_var])
    assert abs(y.mean() - 2) < 0.01 and abs(y.std() - 0.5) < 0.01


def test_gaussian_sampler_gradients_with_fixed_noise():
    check_module_gradients(Reseeded(GaussianSampler().double()),
                           [normal((3, 4), seed=9), normal((3, 4), seed=10)])


@pytest.mark.oracle
def test_gaussian_sampler_matches_torch_given_its_noise():
    mean, log_var = f32((4, 5), seed=11), f32((4, 5), seed=12)
    sampler = GaussianSampler()
    y = sampler.forward([mean, log_var])
    eps = torch.from_numpy(sampler._scratch["eps"].copy())
    tm = torch.from_numpy(mean.copy()).requires_grad_()
    tv = torch.from_numpy(log_var.copy()).requires_grad_()
    ty = tm + torch.exp(0.5 * tv) * eps
    g = f32((4, 5), seed=13)
    ty.backward(torch.from_numpy(g))
    gm, gv = sampler.backward([mean, log_var], g)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(gm, tm.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gv, tv.grad.numpy(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------- penalties and reversal

def _torch_penalized(layer, torch_penalty, x, g):
    """(loss, grad input) of ``sum(y * g) + penalty(x)`` by PyTorch, against the layer's."""
    t = torch.from_numpy(x.copy()).requires_grad_()
    penalty = torch_penalty(t)
    ((t * torch.from_numpy(g)).sum() + penalty).backward()
    y = layer.forward(x)
    assert y is x
    np.testing.assert_allclose(layer.loss, penalty.item(), rtol=1e-5)
    np.testing.assert_allclose(layer.backward(x, g), t.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.oracle
@pytest.mark.parametrize("layer, penalty", [
    (L1Penalty(2), lambda t: 2 * t.abs().sum()),
    (L1Penalty(3, size_average=True), lambda t: 3 * t.abs().mean()),
    (ActivityRegularization(0.1, 0.02), lambda t: 0.1 * t.abs().sum() + 0.02 * (t * t).sum()),
    (ActivityRegularization(l2=0.5), lambda t: 0.5 * (t * t).sum()),
], ids=param_id)
def test_penalties_match_torch(layer, penalty):
    _torch_penalized(layer, penalty, f32((4, 6), seed=14), f32((4, 6), seed=15))


@pytest.mark.parametrize("layer", [L1Penalty(2), L1Penalty(1.5, True),
                                   ActivityRegularization(0.3, 0.2)], ids=repr)
def test_penalty_gradients(layer):
    x = normal((3, 4), seed=16)
    x[np.abs(x) < 0.05] = 0.1  # |x| has a kink at 0
    check_penalty_gradients(layer.double(), x)


def test_l1_penalty_without_output_gradient_ends_a_branch():
    layer = L1Penalty(2, provide_output=False).double()
    x = np.array([[-1.0, 0.0, 3.0]])
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(x, np.full_like(x, 100.0)), [[-2, 0, 2]])


def test_gradient_reversal():
    x, g = f32((3, 4), seed=17), f32((3, 4), seed=18)
    layer = GradientReversal(0.5)
    assert layer.forward(x) is x
    np.testing.assert_allclose(layer.backward(x, g), -0.5 * g)
    layer.set_lambda(2.0)
    np.testing.assert_allclose(layer.backward(x, g), -2.0 * g)
    assert config_round_trip(layer).the_lambda == 2.0
    check_module_gradients(GradientReversal(-1.0).double(), normal((2, 3), seed=19))


def test_gradient_reversal_flips_the_gradient_below_it_only():
    random.set_seed(0)
    linear = Linear(3, 2)
    plain = Sequential().add(linear)
    reversed_ = Sequential().add(GradientReversal()).add(Linear(3, 2))
    reversed_.set_weights(plain.get_weights())
    x, g = f32((4, 3), seed=20), np.ones((4, 2), np.float32)
    plain.forward(x)
    plain_gi = np.array(plain.backward(x, g), copy=True)
    reversed_.forward(x)
    np.testing.assert_allclose(reversed_.backward(x, g), -plain_gi)
    # the layers above the reversal get their ordinary gradient
    np.testing.assert_allclose(reversed_.get_parameters()[1], plain.get_parameters()[1])


# ---------------------------------------------------------------------- config and errors

CONFIG_LAYERS = [SpatialDropout1D(0.2), SpatialDropout2D(0.3, "NHWC"), SpatialDropout3D(0.1),
                 GaussianDropout(0.25), GaussianNoise(0.1), GaussianSampler(), L1Penalty(2),
                 L1Penalty(1, True, False), ActivityRegularization(0.1, 0.2), GradientReversal(3)]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=repr)
def test_config_round_trip(layer):
    config_round_trip(layer)


def test_config_keeps_evaluate_mode():
    again = config_round_trip(SpatialDropout2D(0.3).evaluate())
    assert not again.is_training()


@pytest.mark.parametrize("layer, bad, message", [
    (SpatialDropout1D(), np.zeros((2, 3, 4, 5)),
     r"SpatialDropout1D\[bad\]: expected input \(N, T, C\) or \(T, C\), got \(2, 3, 4, 5\)"),
    (SpatialDropout2D(), np.zeros((2, 3)),
     r"SpatialDropout2D\[bad\]: expected input \(N, C, H, W\) or \(C, H, W\), got \(2, 3\)"),
    (SpatialDropout3D(0.5, "NHWC"), np.zeros((2, 3, 4)),
     r"SpatialDropout3D\[bad\]: expected input \(N, D, H, W, C\) or \(D, H, W, C\), "
     r"got \(2, 3, 4\)"),
    (GaussianDropout(0.5), [np.zeros(2)], r"GaussianDropout\[bad\]: expected input a tensor"),
    (GaussianNoise(0.5), "x", r"GaussianNoise\[bad\]: expected input a tensor, got str"),
    (GaussianSampler(), [np.zeros((2, 3)), np.zeros((2, 4))],
     r"GaussianSampler\[bad\]: expected input a table \[mean, log_variance\] of two tensors of "
     r"one shape, got \[\(2, 3\), \(2, 4\)\]"),
    (GaussianSampler(), np.zeros((2, 3)), r"GaussianSampler\[bad\]: .* got \(2, 3\)"),
    (L1Penalty(1), None, r"L1Penalty\[bad\]: expected input a tensor, got NoneType"),
    (ActivityRegularization(), [1, 2], r"ActivityRegularization\[bad\]: expected input a tensor"),
    (GradientReversal(), (np.zeros(2),), r"GradientReversal\[bad\]: expected input a tensor"),
])
def test_bad_input_names_the_layer(layer, bad, message):
    layer.set_name("bad")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("layer", [SpatialDropout1D(), GaussianDropout(0.3), GaussianNoise(1.0),
                                   L1Penalty(1), GradientReversal()], ids=repr)
def test_bad_grad_output_is_reported(layer):
    x = np.ones((2, 6, 3), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"expected gradOutput of the output's shape \(2, 6, 3\)"):
        layer.backward(x, np.ones((2, 5, 3), np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: SpatialDropout1D(1.0), r"SpatialDropout1D: init_p must be a number in \[0, 1\), "
                                    r"got 1.0"),
    (lambda: SpatialDropout2D(0.5, "CHW"), r"SpatialDropout2D: data_format must be 'NCHW' or "
                                           r"'NHWC', got 'CHW'"),
    (lambda: SpatialDropout3D("0.5"), r"SpatialDropout3D: init_p must be a number in \[0, 1\), "
                                      r"got '0.5'"),
    (lambda: GaussianDropout(-0.1), r"GaussianDropout: rate must be a number in \[0, 1\), "
                                    r"got -0.1"),
    (lambda: GaussianNoise(-1), r"GaussianNoise: stddev must be a number >= 0, got -1"),
    (lambda: L1Penalty("a"), r"L1Penalty: l1weight must be a number, got 'a'"),
    (lambda: ActivityRegularization(-0.1), r"ActivityRegularization: l1 must be a number >= 0, "
                                           r"got -0.1"),
    (lambda: GradientReversal(None), r"GradientReversal: the_lambda must be a number, got None"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("p, scale", [(0.3, True), (0.5, False), (0.0, True)])
def test_dropout_gradients_with_fixed_mask(p, scale):
    x = normal((6, 7), seed=3)
    check_module_gradients(_Reseeded(Dropout(p, scale=scale), seed=11), x)


@pytest.mark.parametrize("scale", [True, False])
def test_dropout_gradients_in_evaluate_mode(scale):
    check_module_gradients(Dropout(0.4, scale=scale).evaluate(), normal((3, 4), seed=4))


@pytest.mark.oracle
def test_dropout_evaluate_matches_torch_eval():
    x = f32((5, 6), seed=11)
    drop = torch.nn.Dropout(0.4).eval()
    assert_torch_parity(Dropout(0.4).evaluate(), drop, x)


@pytest.mark.oracle
def test_dropout_training_matches_torch_formula():
    """torch: kept units are ``x / (1 - p)``, dropped ones 0, each dropped with probability p."""
    p = 0.3
    x = f32((200, 100), seed=12) + 5  # no zeros in the input
    layer = Dropout(p)
    y = layer.forward(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    tmask = torch.nn.functional.dropout(torch.from_numpy(x), p, training=True) != 0
    assert abs((~kept).mean() - p) < 0.01
    assert abs((~tmask.numpy()).mean() - (~kept).mean()) < 0.015


# ---------------------------------------------------------------------- dropout semantics

def test_dropout_backward_uses_the_forward_mask():
    random.set_seed(42)
    x = normal((20, 30), seed=13) + 10
    layer = Dropout(0.5).double()
    y = np.array(layer.forward(x), copy=True)
    mask = y / x
    assert set(np.unique(np.round(mask, 12))) == {0.0, 2.0}
    g = normal((20, 30), seed=14)
    np.testing.assert_allclose(layer.backward(x, g), g * mask)
    # another backward without a new forward still uses the same mask
    np.testing.assert_allclose(layer.backward(x, 2 * g), 2 * g * mask)


def test_dropout_is_reproducible_with_set_seed():
    x = np.ones((10, 10), np.float32)
    random.set_seed(5)
    a = np.array(Dropout(0.5).forward(x), copy=True)
    random.set_seed(5)
    b = np.array(Dropout(0.5).forward(x), copy=True)
    c = np.array(Dropout(0.5).forward(x), copy=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_dropout_modes_and_scale_false():
    x = np.ones((50, 40), np.float32)
    layer = Dropout(0.25, scale=False)
    y = layer.forward(x)
    assert set(np.unique(y)) == {0.0, 1.0}
    layer.evaluate()
    np.testing.assert_allclose(layer.forward(x), 0.75 * x)
    np.testing.assert_allclose(layer.backward(x, x), 0.75 * x)
    scaled = Dropout(0.25).evaluate()
    np.testing.assert_array_equal(scaled.forward(x), x)
    np.testing.assert_array_equal(scaled.backward(x, x), x)


@pytest.mark.parametrize("p", [1.0, -0.1, "0.5", True])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"Dropout: init_p must be a number in \[0, 1\), got"):
        Dropout(p)


# ---------------------------------------------------------------------- NegativeEntropyPenalty
@pytest.mark.oracle
def test_negative_entropy_penalty_gradient_and_torch_loss():
    layer = NegativeEntropyPenalty(0.3)
    p = torch.softmax(torch.from_numpy(f32((3, 5), seed=1)), dim=1).numpy()
    y = layer.forward(p)
    np.testing.assert_array_equal(y, p)
    tp = torch.from_numpy(p.astype(np.float64)).requires_grad_()
    loss = 0.3 * (tp * tp.log()).sum()
    g = f32((3, 5), seed=2)
    (loss + (tp * t64(g)).sum()).backward()
    np.testing.assert_allclose(layer.loss, loss.item(), rtol=1e-5)
    np.testing.assert_allclose(layer.backward(p, g), tp.grad.numpy(), rtol=1e-5, atol=1e-6)
    x = np.abs(normal((2, 4), seed=3)) + 0.2
    check_penalty_gradients(NegativeEntropyPenalty(0.5).double(), x)


def test_negative_entropy_penalty_errors_and_config():
    with pytest.raises(LayerError, match=r"NegativeEntropyPenalty\[neg\]: expected input of "
                                         r"values > 0"):
        NegativeEntropyPenalty().set_name("neg").forward(np.array([[0.5, 0.0]]))
    with pytest.raises(ValueError, match="beta must be a finite number, got 'x'"):
        NegativeEntropyPenalty("x")
    config_round_trip(NegativeEntropyPenalty(0.2), np.full((2, 3), 0.3, dtype=np.float32))

