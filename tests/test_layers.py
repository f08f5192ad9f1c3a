"""Activation, dropout, shape and table layers: gradients, PyTorch parity, semantics, errors."""
import json
import warnings

import numpy as np
import pytest
from oracle import torch

from helpers import assert_torch_parity, check_module_gradients, f32, normal, Reseeded as _Reseeded
from workbench.nn import (CAddTable, Dropout, Identity, JoinTable, LayerError, LogSoftMax, ReLU,
                          Reshape, Sigmoid, SoftMax, Tanh, View, random)
from workbench.nn.module import build_module


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


@pytest.mark.parametrize("p, scale", [(0.3, True), (0.5, False), (0.0, True)])
def test_dropout_gradients_with_fixed_mask(p, scale):
    x = normal((6, 7), seed=3)
    check_module_gradients(_Reseeded(Dropout(p, scale=scale), seed=11), x)


@pytest.mark.parametrize("scale", [True, False])
def test_dropout_gradients_in_evaluate_mode(scale):
    check_module_gradients(Dropout(0.4, scale=scale).evaluate(), normal((3, 4), seed=4))


@pytest.mark.parametrize("layer, shape", [
    (View([12]), (5, 3, 4)),
    (View([-1, 6]), (2, 3, 4)),
    (View([4, 3], num_input_dims=2), (2, 3, 4)),
    (Reshape([2, 6]), (5, 12)),
    (Reshape([3, 4]), (12,)),
    (Identity(), (3, 4)),
])
def test_shape_layer_gradients(layer, shape):
    check_module_gradients(layer, normal(shape, seed=5))


def test_identity_passes_tables():
    x = [normal((2, 3), seed=6), normal((4,), seed=7)]
    check_module_gradients(Identity(), x)


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (3, 4), (3, 4)],
                                    [(3, 4), (1, 4)], [(2, 3, 4), (4,)]])
def test_caddtable_gradients(shapes):
    xs = [normal(s, seed=i) for i, s in enumerate(shapes)]
    check_module_gradients(CAddTable(), xs)


@pytest.mark.parametrize("layer, shapes", [
    (JoinTable(2, 0), [(3, 2), (3, 4), (3, 1)]),
    (JoinTable(1, 0), [(2, 3), (4, 3)]),
    (JoinTable(1, 1), [(3, 2), (3, 5)]),      # batch: joins the feature dimension
    (JoinTable(1, 3), [(2, 3, 4, 5), (2, 1, 4, 5)]),   # channels of (N, C, H, W)
    (JoinTable(-1, 0), [(2, 3), (2, 2)]),
])
def test_jointable_gradients(layer, shapes):
    xs = [normal(s, seed=i + 10) for i, s in enumerate(shapes)]
    check_module_gradients(layer, xs)


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


@pytest.mark.oracle
def test_shape_layers_match_torch():
    x = f32((4, 3, 2, 2), seed=4)
    assert_torch_parity(View([12]), lambda t: t.view(4, 12), x)
    assert_torch_parity(View([-1, 3]), lambda t: t.reshape(-1, 3), x)
    assert_torch_parity(Reshape([12]), lambda t: t.reshape(4, 12), x)
    assert_torch_parity(Reshape([2, 24]), lambda t: t.reshape(2, 24), x.reshape(48),)
    assert_torch_parity(Identity(), lambda t: t * 1, x)


@pytest.mark.oracle
def test_table_layers_match_torch():
    xs = [f32((3, 4), seed=i) for i in range(3)]
    assert_torch_parity(CAddTable(), lambda a, b, c: a + b + c, xs)
    ys = [f32((3, 4), seed=5), f32((1, 4), seed=6)]
    assert_torch_parity(CAddTable(), lambda a, b: a + b, ys)
    zs = [f32((2, 3, 4), seed=7), f32((2, 5, 4), seed=8)]
    assert_torch_parity(JoinTable(2, 0), lambda a, b: torch.cat([a, b], 1), zs)
    assert_torch_parity(JoinTable(1, 2), lambda a, b: torch.cat([a, b], 1), zs)
    assert_torch_parity(JoinTable(-1, 0), lambda a, b: torch.cat([a, b], -1),
                        [f32((2, 3), seed=9), f32((2, 1), seed=10)])


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


# ---------------------------------------------------------------------- shape semantics (BigDL)

def test_view_batch_inference_as_torch():
    assert View([12]).forward(np.zeros((5, 3, 4))).shape == (5, 12)
    assert View([12]).forward(np.zeros((3, 4))).shape == (12,)
    assert View([-1]).forward(np.zeros((5, 3, 4))).shape == (60,)
    assert View([3, 4]).forward(np.zeros(12)).shape == (3, 4)
    # num_input_dims: the leading dims beyond it are the batch, even with a -1 or a batch of 1
    assert View([-1], num_input_dims=3).forward(np.zeros((2, 3, 4, 5))).shape == (2, 60)
    assert View([60], num_input_dims=3).forward(np.zeros((1, 3, 4, 5))).shape == (1, 60)
    assert View([60], num_input_dims=3).forward(np.zeros((3, 4, 5))).shape == (60,)
    assert View(12).forward(np.zeros((2, 12))).shape == (2, 12)


def test_view_shares_memory_with_input():
    x = np.zeros((4, 6), np.float32)
    assert np.shares_memory(View([2, 3]).forward(x), x)


def test_reshape_batch_mode_rules():
    x = np.arange(24, dtype=np.float32)
    assert Reshape([2, 12]).forward(x).shape == (2, 12)                  # no batch
    assert Reshape([1, 2, 2]).forward(x.reshape(6, 4)).shape == (6, 1, 2, 2)   # batch inferred
    assert Reshape([4]).forward(x[:4].reshape(1, 4)).shape == (1, 4)     # first dim 1: a batch
    assert Reshape([2, 2]).forward(x[:4].reshape(1, 4)).shape == (1, 2, 2)
    assert Reshape([4], batch_mode=False).forward(x[:4].reshape(1, 4)).shape == (4,)
    assert Reshape([2, 12], batch_mode=True).forward(x.reshape(1, 24)).shape == (1, 2, 12)
    lenet_in = Reshape([1, 28, 28])
    for shape in [(3, 784), (3, 28, 28), (3, 1, 28, 28), (1, 784)]:
        assert lenet_in.forward(np.zeros(shape, np.float32)).shape[1:] == (1, 28, 28)


def test_jointable_batch_shift():
    a, b = np.zeros((3, 2), np.float32), np.ones((3, 5), np.float32)
    assert JoinTable(1, 1).forward([a, b]).shape == (3, 7)       # batch of vectors
    assert JoinTable(1, 1).forward([a[0], b[0]]).shape == (7,)   # single vectors
    assert JoinTable(1, 0).forward([a, a]).shape == (6, 2)


def test_caddtable_does_not_modify_inputs_and_gives_separate_grads():
    a, b = np.ones((2, 2), np.float32), np.full((2, 2), 2, np.float32)
    layer = CAddTable(inplace=True)
    np.testing.assert_array_equal(layer.forward([a, b]), 3)
    np.testing.assert_array_equal(a, 1)
    ga, gb = layer.backward([a, b], np.ones((2, 2), np.float32))
    assert ga is not gb


def test_layers_keep_float64_and_promote_ints():
    assert ReLU().forward(np.ones(3)).dtype == np.float64
    assert Tanh().forward(np.ones(3, dtype=np.int64)).dtype == np.float32


def test_layers_reuse_their_buffers():
    layer = Tanh()
    x = normal((4, 5), dtype=np.float32)
    assert layer.forward(x) is layer.forward(2 * x)


# ---------------------------------------------------------------------- bad input

@pytest.mark.parametrize("layer, bad, message", [
    (ReLU(), [np.zeros((2, 3))], r"ReLU\[act\]: expected input a tensor, got \[\(2, 3\)\]"),
    (SoftMax(), np.zeros((1, 2, 3, 4, 5)),
     r"SoftMax\[act\]: expected input \(N, C\), \(C,\), \(C, H, W\) or \(N, C, H, W\), "
     r"got \(1, 2, 3, 4, 5\)"),
    (LogSoftMax(), np.float32(3), r"LogSoftMax\[act\]: expected input .*, got \(\)"),
    (View([5]), np.zeros((3, 4)),
     r"View\[act\]: expected input with a multiple of 5 elements per sample "
     r"\(to view as \(5\)\), got \(3, 4\)"),
    (Reshape([1, 28, 28]), np.zeros((128, 100)),
     r"Reshape\[act\]: expected input \(N, \.\.\.\) with 784 elements per sample "
     r"\(to reshape to \(N, 1, 28, 28\)\), got \(128, 100\)"),
    (Reshape([4], batch_mode=False), np.zeros((2, 4)),
     r"Reshape\[act\]: expected input of 4 elements \(to reshape to \(4\)\), got \(2, 4\)"),
    (CAddTable(), [np.zeros((2, 3)), np.zeros((2, 4))],
     r"CAddTable\[act\]: expected input a table of tensors of one shape, "
     r"got \[\(2, 3\), \(2, 4\)\]"),
    (CAddTable(), np.zeros((2, 3)), r"CAddTable\[act\]: .* got \(2, 3\)"),
    (JoinTable(2, 0), [np.zeros((2, 3)), np.zeros((3, 3))],
     r"JoinTable\[act\]: expected input a table of tensors that agree except in dimension 2, "
     r"got \[\(2, 3\), \(3, 3\)\]"),
    (JoinTable(3, 0), [np.zeros((2, 3)), np.zeros((2, 3))],
     r"JoinTable\[act\]: expected input tensors with a dimension 3 .*, got \[\(2, 3\), \(2, 3\)\]"),
    (Dropout(), "text", r"Dropout\[act\]: expected input a tensor, got str"),
])
def test_bad_input_names_layer_and_shapes(layer, bad, message):
    layer.set_name("act")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("layer", [ReLU(), Tanh(), Sigmoid(), SoftMax(), LogSoftMax(),
                                   Dropout(0.5), View([6]), Reshape([6])])
def test_bad_grad_output_shape_is_reported(layer):
    x = np.ones((2, 6), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"expected gradOutput of the output's shape \(2, 6\), "
                                         r"got \(2, 5\)"):
        layer.backward(x, np.ones((2, 5), np.float32))


def test_table_layers_check_grad_output_and_call_order():
    xs = [np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)]
    with pytest.raises(LayerError, match=r"JoinTable: backward called before forward"):
        JoinTable(2, 0).backward(xs, np.ones((2, 5), np.float32))
    join = JoinTable(2, 0)
    join.forward(xs)
    with pytest.raises(LayerError, match=r"JoinTable: expected gradOutput of the output's shape "
                                         r"\(2, 5\), got \(2, 4\)"):
        join.backward(xs, np.ones((2, 4), np.float32))
    add = CAddTable()
    add.forward([xs[0], xs[0]])
    with pytest.raises(LayerError, match=r"CAddTable: expected gradOutput .* got \(3, 2\)"):
        add.backward([xs[0], xs[0]], np.ones((3, 2), np.float32))
    with pytest.raises(LayerError, match=r"Tanh: backward called before forward"):
        Tanh().backward(xs[0], xs[0])


@pytest.mark.parametrize("make, message", [
    (lambda: View([3, -1, -1]), r"View: sizes must be a non-empty list .* got \[3, -1, -1\]"),
    (lambda: View([]), r"View: sizes must be a non-empty list"),
    (lambda: Reshape([2, -1]), r"Reshape: size must be a non-empty list of positive ints, "
                               r"got \[2, -1\]"),
    (lambda: Reshape([2], batch_mode="yes"), r"Reshape: batch_mode must be None, True or False"),
    (lambda: JoinTable(0, 0), r"JoinTable: dimension is 1-based .* got 0"),
    (lambda: JoinTable(1, -2), r"JoinTable: n_input_dims must be an int >= 0, got -2"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------- config and repr

ALL_LAYERS = [ReLU(), ReLU(True), Tanh(), Sigmoid(), SoftMax(), LogSoftMax(), Dropout(0.3),
              Dropout(0.2, False, False), View([2, -1], 1), Reshape([3, 4], True), Identity(),
              CAddTable(), JoinTable(2, 1)]


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda m: repr(m))
def test_config_round_trip(layer):
    layer.set_name("mine")
    config = json.loads(json.dumps(layer.get_config()))
    again = build_module(config)
    assert type(again) is type(layer)
    assert repr(again) == repr(layer)
    assert again.name() == "mine"
    assert again.get_config() == layer.get_config()


def test_reprs():
    assert [repr(m) for m in ALL_LAYERS] == [
        "nn.ReLU", "nn.ReLU", "nn.Tanh", "nn.Sigmoid", "nn.SoftMax", "nn.LogSoftMax",
        "nn.Dropout(0.3)", "nn.Dropout(0.2)", "nn.View(2, -1)", "nn.Reshape(3x4)", "nn.Identity",
        "nn.CAddTable", "nn.JoinTable(2, 1)"]
