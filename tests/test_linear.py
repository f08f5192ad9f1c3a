import numpy as np
import pytest
import torch

from helpers import check_module_gradients
from workbench.nn import LayerError, Linear


def test_linear_gradients_float64():
    layer = Linear(5, 3).double()
    x = np.random.default_rng(0).standard_normal((4, 5))
    check_module_gradients(layer, x)


def test_linear_gradients_single_row():
    layer = Linear(5, 3).double()
    check_module_gradients(layer, np.random.default_rng(1).standard_normal(5))


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
    with pytest.raises(LayerError, match=r"Linear\[fc1\]: expected input \(N, 784\), got \(128, 100\)"):
        layer.forward(np.zeros((128, 100), np.float32))


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match="input_size must be a positive int, got -3"):
        Linear(-3, 4)
