"""Issue-6 element-wise and affine layers: gradients (float64 finite differences), PyTorch
parity (forward, grad input, grad parameters), BigDL expansion rules, regularizers, config
round trips and errors naming the layer."""
import numpy as np
import pytest
from oracle import torch

from helpers import away_from, check_module_gradients, config_round_trip, f32, normal, torch_parity
from workbench.nn import (Abs, Add, AddConstant, CAdd, CMul, Exp, L2Regularizer, LayerError, Log,
                          Mul, MulConstant, Negative, Ones, Power, Scale, Sequential, Sqrt, Square,
                          Zeros, random)


def positive(shape, seed=0, low=0.5, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


# (layer factory, input maker) for the parameter-free layers
POINTWISE = [
    (lambda: Abs(), lambda s: away_from(normal(s, 1), [0])),
    (lambda: Exp(), lambda s: normal(s, 2)),
    (lambda: Log(), lambda s: positive(s, 3)),
    (lambda: Sqrt(), lambda s: positive(s, 4)),
    (lambda: Square(), lambda s: normal(s, 5)),
    (lambda: Power(3), lambda s: normal(s, 6)),
    (lambda: Power(2, 0.5, 1.0), lambda s: normal(s, 7)),
    (lambda: Power(-1.5, 2.0, 3.0), lambda s: positive(s, 8)),
    (lambda: Power(0.5, 2.0, 1.0), lambda s: positive(s, 9)),
    (lambda: Negative(), lambda s: normal(s, 10)),
    (lambda: AddConstant(2.5), lambda s: normal(s, 11)),
    (lambda: MulConstant(-1.5), lambda s: normal(s, 12)),
]

TORCH_POINTWISE = {
    "nn.Abs": lambda t: torch.abs(t), "nn.Exp": lambda t: torch.exp(t),
    "nn.Log": lambda t: torch.log(t), "nn.Sqrt": lambda t: torch.sqrt(t),
    "nn.Square": lambda t: torch.square(t), "nn.Power(3, 1, 0)": lambda t: t ** 3,
    "nn.Power(2, 0.5, 1)": lambda t: (1.0 + 0.5 * t) ** 2,
    "nn.Power(-1.5, 2, 3)": lambda t: (3.0 + 2.0 * t) ** -1.5,
    "nn.Power(0.5, 2, 1)": lambda t: (1.0 + 2.0 * t) ** 0.5,
    "nn.Negative": lambda t: -t, "nn.AddConstant(2.5)": lambda t: t + 2.5,
    "nn.MulConstant(-1.5)": lambda t: t * -1.5,
}


@pytest.mark.parametrize("case", POINTWISE, ids=lambda c: repr(c[0]()))
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2)])
def test_pointwise_gradients(case, shape):
    make, data = case
    check_module_gradients(make().double(), data(shape))


@pytest.mark.oracle
@pytest.mark.parametrize("case", POINTWISE, ids=lambda c: repr(c[0]()))
def test_pointwise_match_torch(case):
    make, data = case
    layer = make()
    fn = TORCH_POINTWISE[repr(layer)]
    torch_parity(layer, fn, data((5, 6)).astype(np.float32))
    torch_parity(layer, fn, data((2, 3, 2, 2)).astype(np.float32))


# ---------------------------------------------------------------------- learned layers

def _randomized(layer, seed=20):
    """Give every parameter distinct non-trivial values (the inits can be constant)."""
    rng = np.random.default_rng(seed)
    for _, m, n in layer.named_parameters():
        getattr(m, n)[...] = rng.uniform(0.5, 1.5, getattr(m, n).shape) * rng.choice([-1, 1])
    return layer


LEARNED = [
    (lambda: Add(5), (5,)), (lambda: Add(5), (3, 5)), (lambda: Add(6), (2, 3, 2)),
    (lambda: CAdd([3, 1]), (2, 3, 4)), (lambda: CAdd([1, 4]), (3, 4)), (lambda: CAdd([4]), (3, 4)),
    (lambda: CAdd([3, 1, 1]), (2, 3, 2, 2)), (lambda: CAdd([2, 3]), (3, 2)),
    (lambda: CMul([3, 1]), (2, 3, 4)), (lambda: CMul([1, 4]), (3, 4)), (lambda: CMul(4), (3, 4)),
    (lambda: CMul([3, 1, 1]), (2, 3, 2, 2)), (lambda: CMul([2, 3]), (2, 3)),
    (lambda: Scale([3, 1, 1]), (2, 3, 2, 2)), (lambda: Scale([4]), (3, 4)),
    (lambda: Mul(), (3, 4)), (lambda: Mul(), (5,)),
]


@pytest.mark.parametrize("make, shape", LEARNED, ids=lambda v: repr(v()) if callable(v) else
                         str(v))
def test_learned_gradients(make, shape):
    layer = _randomized(make().double())
    check_module_gradients(layer, normal(shape, seed=21))


def _torch_expand(t, p):
    return p.reshape(t.shape) if p.numel() == t.numel() else p


TORCH_LEARNED = {
    Add: (lambda t, b: (t.reshape(-1, b.numel()) + b).reshape(t.shape), ["bias"]),
    CAdd: (lambda t, b: t + _torch_expand(t, b), ["bias"]),
    CMul: (lambda t, w: t * _torch_expand(t, w), ["weight"]),
    Scale: (lambda t, w, b: t * _torch_expand(t, w) + _torch_expand(t, b), ["weight", "bias"]),
    Mul: (lambda t, w: t * w, ["weight"]),
}


@pytest.mark.oracle
@pytest.mark.parametrize("make, shape", LEARNED, ids=lambda v: repr(v()) if callable(v) else
                         str(v))
def test_learned_match_torch(make, shape):
    layer = _randomized(make())
    fn, params = TORCH_LEARNED[type(layer)]
    torch_parity(layer, fn, f32(shape, seed=22), params=params)


# ---------------------------------------------------------------------- semantics

def test_cadd_and_cmul_expansion_rules():
    bias = CAdd([3, 1]).double()
    bias.bias[...] = [[1.0], [2.0], [3.0]]
    x = np.zeros((2, 3, 4))
    np.testing.assert_array_equal(bias.forward(x)[1, :, 0], [1, 2, 3])   # batch dimension added
    np.testing.assert_array_equal(bias.forward(x[0])[:, 3], [1, 2, 3])   # same dims
    np.testing.assert_array_equal(bias.forward(np.zeros(3)), [1, 2, 3])  # same element count
    with pytest.raises(LayerError, match=r"CAdd: expected input a tensor that \(3, 1\) expands "
                                         r"to \(same dims, or one more for the batch\), "
                                         r"got \(2, 4, 4\)"):
        bias.forward(np.zeros((2, 4, 4)))
    with pytest.raises(LayerError, match=r"CMul: .* got \(2, 2, 3, 4\)"):
        CMul([3, 1]).forward(np.zeros((2, 2, 3, 4)))


def test_add_adds_to_every_sample():
    layer = Add(3).double()
    layer.bias[...] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(layer.forward(np.zeros((2, 3))), [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(layer.forward(np.zeros((2, 3, 1)))[1, :, 0], [1, 2, 3])
    layer.zero_grad_parameters()
    layer.forward(np.zeros((4, 3)))
    layer.backward(np.zeros((4, 3)), np.ones((4, 3)))
    np.testing.assert_array_equal(layer.grad_bias, [4, 4, 4])


def test_initializations_follow_bigdl():
    random.set_seed(1)
    cmul = CMul([4, 4])
    assert np.all(np.abs(cmul.weight) <= 1 / 4) and cmul.weight.std() > 0
    assert np.all(np.abs(CAdd([9]).bias) <= 1 / 3)
    assert np.all(np.abs(Add(16).bias) <= 1 / 4)
    assert np.all(np.abs(Mul().weight) <= 1)
    scale = Scale([2]).set_init_method(Ones(), Zeros())
    np.testing.assert_array_equal(scale.weight, 1)
    np.testing.assert_array_equal(scale.bias, 0)
    np.testing.assert_array_equal(scale.forward(np.arange(4.0).reshape(2, 2)),
                                  np.arange(4.0).reshape(2, 2))


def test_regularizers_add_their_gradient():
    x = normal((2, 3), seed=23)
    g = normal((2, 3), seed=24)
    for layer, name in [(CAdd([3], bRegularizer=L2Regularizer(0.5)), "bias"),
                        (CMul([3], wRegularizer=L2Regularizer(0.5)), "weight")]:
        layer = layer.double()
        plain = type(layer)([3]).double()
        getattr(plain, name)[...] = getattr(layer, name)
        for m in (layer, plain):
            m.zero_grad_parameters()
            m.forward(x)
            m.backward(x, g)
        np.testing.assert_allclose(getattr(layer, "grad_" + name),
                                   getattr(plain, "grad_" + name) + 0.5 * getattr(layer, name))
        assert layer.regularization_loss() > 0


def test_flat_parameters_cover_the_learned_layers():
    model = Sequential().add(CMul([1, 3])).add(CAdd([3])).add(Scale([3])).add(Mul()).add(Add(3))
    w, g = model.get_parameters()
    assert w.size == 3 + 3 + 6 + 1 + 3
    x = f32((2, 3), seed=25)
    model.forward(x)
    model.backward(x, np.ones((2, 3), np.float32))
    assert np.all(g != 0)


def test_power_of_negative_base_is_nan_as_bigdl():
    with np.errstate(invalid="ignore"):
        assert np.isnan(Power(0.5).forward(np.array([-1.0]))[0])


# ---------------------------------------------------------------------- config and errors

CONFIG_LAYERS = [Abs(), Exp(), Log(), Sqrt(), Square(), Power(2.5, 0.5, 1.0), Negative(True),
                 AddConstant(1.5, True), MulConstant(-2.0), Add(3), CAdd([1, 3]),
                 CAdd([3], L2Regularizer(0.1)), CMul([1, 3], L2Regularizer(0.2)), Scale([3]),
                 Mul()]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=repr)
def test_config_round_trip(layer):
    again = config_round_trip(layer, positive((2, 3), seed=26).astype(np.float32))
    assert again.__dict__.get("_regularizers", {}).keys() == \
        layer.__dict__.get("_regularizers", {}).keys()


def test_reprs():
    assert repr(Power(2.5, 0.5, 1.0)) == "nn.Power(2.5, 0.5, 1)"
    assert repr(Sqrt()) == "nn.Sqrt"
    assert repr(AddConstant(1.5)) == "nn.AddConstant(1.5)"
    assert repr(CAdd([1, 3])) == "nn.CAdd([1, 3])"
    assert repr(Scale([3, 1, 1])) == "nn.Scale([3, 1, 1])"
    assert repr(Add(3)) == "nn.Add(3)"
    assert repr(Mul()) == "nn.Mul"


@pytest.mark.parametrize("layer, bad, message", [
    (Abs(), [np.zeros((2, 3))], r"Abs\[bad\]: expected input a tensor, got \[\(2, 3\)\]"),
    (Power(2), "x", r"Power\[bad\]: expected input a tensor, got str"),
    (Mul(), None, r"Mul\[bad\]: expected input a tensor, got NoneType"),
    (Add(5), np.zeros((3, 4)),
     r"Add\[bad\]: expected input \(5,\) or \(N, \.\.\.\) with 5 values per sample, got \(3, 4\)"),
    (CAdd([3, 1]), np.zeros((2, 4, 5)),
     r"CAdd\[bad\]: expected input a tensor that \(3, 1\) expands to .*, got \(2, 4, 5\)"),
    (CMul([2, 2]), np.zeros(3), r"CMul\[bad\]: expected input .*, got \(3\)"),
    (Scale([3]), np.zeros((2, 4)), r"Scale\[bad\]: expected input .*, got \(2, 4\)"),
])
def test_bad_input_names_the_layer(layer, bad, message):
    layer.set_name("bad")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("layer", [Abs(), Power(3), Add(6), CAdd([6]), CMul([6]), Scale([6]),
                                   Mul()])
def test_bad_grad_output_is_reported(layer):
    x = np.ones((2, 6), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"expected gradOutput of the output's shape \(2, 6\), "
                                         r"got \(2, 5\)"):
        layer.backward(x, np.ones((2, 5), np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: Power("a"), r"Power: power must be a number, got 'a'"),
    (lambda: Power(2, None), r"Power: scale must be a number, got None"),
    (lambda: AddConstant(True), r"AddConstant: constant_scalar must be a number, got True"),
    (lambda: MulConstant([2]), r"MulConstant: scalar must be a number, got \[2\]"),
    (lambda: Add(0), r"Add: input_size must be a positive int, got 0"),
    (lambda: CAdd([]), r"CAdd: size must be a non-empty list of positive ints, got \[\]"),
    (lambda: CMul([2, -1]), r"CMul: size must be a non-empty list of positive ints, "
                            r"got \[2, -1\]"),
    (lambda: Scale("3"), r"Scale: size must be a non-empty list of positive ints, got '3'"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()
