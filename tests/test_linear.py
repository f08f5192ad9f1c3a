import numpy as np
import pytest
from oracle import torch

from helpers import check_module_gradients
from workbench.nn import LayerError, Linear


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
