"""Linear and the first layers (Identity, ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax, Dropout, View,
Reshape, CAddTable, JoinTable) together: float64 and integer inputs, reused buffers, errors naming
the layer, config round trips and reprs; Linear's gradients, PyTorch parity and regularizers."""
import json

import numpy as np
import pytest
from oracle import torch

from helpers import check_module_gradients, normal
from workbench.nn import (CAddTable, Dropout, Identity, JoinTable, LayerError, Linear, LogSoftMax,
                          ReLU, Reshape, Sigmoid, SoftMax, Tanh, View)
from workbench.nn.module import build_module


def test_linear_gradients_float64():
    layer = Linear(5, 3).double()
    x = np.random.default_rng(0).standard_normal((4, 5))
    check_module_gradients(layer, x)


def test_linear_gradients_single_row():
    layer = Linear(5, 3).double()
    check_module_gradients(layer, np.random.default_rng(1).standard_normal(5))


@pytest.mark.oracle
def test_linear_matches_torch():
    layer = Linear(6, 4)
    ref = torch.nn.Linear(6, 4)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight))
        ref.bias.copy_(torch.from_numpy(layer.bias))
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    g = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = ref(tx)
    ty.backward(torch.from_numpy(g))
    y = layer.forward(x)
    gi = layer.backward(x, g)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.grad_weight, ref.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.grad_bias, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_linear_bad_shape_names_layer_and_shapes():
    layer = Linear(784, 10).set_name("fc1")
    with pytest.raises(LayerError,
                       match=r"Linear\[fc1\]: expected input \(N, 784\), got \(128, 100\)"):
        layer.forward(np.zeros((128, 100), np.float32))


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match="input_size must be a positive int, got -3"):
        Linear(-3, 4)


def test_l2_and_l1_regularizers_add_their_gradient():
    from workbench.nn import L1L2Regularizer
    x = np.random.default_rng(4).standard_normal((3, 5))
    g = np.random.default_rng(5).standard_normal((3, 2))
    plain = Linear(5, 2).double()
    reg = Linear(5, 2, True, L1L2Regularizer(0.1, 0.2), L1L2Regularizer(0.0, 0.5)).double()
    reg.set_weights(plain.get_weights())
    for m in (plain, reg):
        m.forward(x)
        m.backward(x, g)
    np.testing.assert_allclose(reg.grad_weight, plain.grad_weight + 0.1 * np.sign(plain.weight)
                               + 0.2 * plain.weight)
    np.testing.assert_allclose(reg.grad_bias, plain.grad_bias + 0.5 * plain.bias)
    expected = 0.1 * np.abs(plain.weight).sum() + 0.1 * (plain.weight ** 2).sum() \
        + 0.25 * (plain.bias ** 2).sum()
    assert reg.regularization_loss() == pytest.approx(expected)
    from workbench.nn import Module
    rebuilt = Module.from_config(reg.get_config())
    assert rebuilt._regularizers["weight"].l2 == 0.2


def test_identity_passes_tables():
    x = [normal((2, 3), seed=6), normal((4,), seed=7)]
    check_module_gradients(Identity(), x)


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

