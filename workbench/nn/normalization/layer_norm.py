"""Layer normalization: ``LayerNormalization`` (BigDL ``nn``).
"""
from __future__ import annotations

import numpy as np

from ..._checks import positive_int
from ..initializers import Ones, Zeros
from ..module import Module, check_grad_output

__all__ = ["LayerNormalization"]


class LayerNormalization(Module):
    """Normalizes the last dimension of each sample to zero mean and unit variance, then scales
    and shifts it by a learned ``weight`` (starts at ones) and ``bias`` (zeros).

    ``y = (x - mean) / sqrt(var + 1e-6) * weight + bias``, the mean and the (biased) variance
    taken over the last dimension, as BigDL's ``LayerNormalization`` (the Transformer's).

    Args:
        hidden_size: the size of the last dimension (> 0).

    Input shape: ``(..., hidden_size)``.  Output shape: same as input.
    """

    EPS = 1e-6

    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = positive_int("LayerNormalization", "hidden_size", hidden_size)
        self.weight_init_method, self.bias_init_method = Ones(), Zeros()
        self._add_parameter("weight", (self.hidden_size,))
        self._add_parameter("bias", (self.hidden_size,))
        self.reset()

    def reset(self):
        n = self.hidden_size
        self.weight_init_method.init(self.weight, n, n)
        self.bias_init_method.init(self.bias, n, n)
        return self

    def update_output(self, input):
        expected = f"(..., {self.hidden_size})"
        x = self._as_array(input, range(1, 65), expected)
        if x.shape[-1] != self.hidden_size:
            self._fail(expected, x)
        centered = x - x.mean(axis=-1, keepdims=True)
        inv_std = 1 / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + self.EPS)
        xhat = self._buffer("xhat", x.shape, x.dtype)
        np.multiply(centered, inv_std, out=xhat)
        self._inv_std = inv_std
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(xhat, self.weight, out=out)
        out += self.bias
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        xhat = self._scratch["xhat"]
        gx = grad_output * self.weight
        gi = self._buffer("grad_input", xhat.shape, xhat.dtype)
        np.subtract(gx, gx.mean(axis=-1, keepdims=True), out=gi)
        gi -= xhat * np.mean(gx * xhat, axis=-1, keepdims=True)
        gi *= self._inv_std
        return gi

    def acc_grad_parameters(self, input, grad_output):
        g = np.asarray(grad_output, dtype=self.weight.dtype).reshape(-1, self.hidden_size)
        self.grad_weight += np.sum(g * self._scratch["xhat"].reshape(g.shape), axis=0)
        self.grad_bias += g.sum(axis=0)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_inv_std", None)
        return state

    def extra_repr(self):
        return str(self.hidden_size)
