"""Additive and sampled Gaussian noise: ``GaussianNoise``, ``GaussianSampler`` (BigDL ``nn``).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import random
from ..activation.activations import ANY_NDIM
from ..module import check_grad_output, Module

__all__ = ["GaussianNoise", "GaussianSampler"]


class GaussianNoise(Module):
    """Adds noise drawn from ``N(0, stddev^2)`` while training; the identity in
    ``evaluate()`` mode (Keras / BigDL ``GaussianNoise``).

    Args:
        stddev: standard deviation of the noise, >= 0.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, stddev):
        super().__init__()
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or not stddev >= 0:
            raise ValueError(f"GaussianNoise: stddev must be a number >= 0, got {stddev!r}")
        self.stddev = float(stddev)

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        if not (self.train and self.stddev > 0):
            return x
        out = self._buffer("output", x.shape, x.dtype)
        out[...] = random.rng().normal(0.0, self.stddev, size=x.shape)
        out += x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return grad_output

    def extra_repr(self):
        return f"{self.stddev:g}"


class GaussianSampler(Module):
    """Samples ``mean + exp(log_variance / 2) * eps`` with ``eps ~ N(0, 1)`` (the
    reparameterization of a variational autoencoder), in training and inference alike.

    The backward pass reuses the ``eps`` of the last forward pass.

    Input: a table ``[mean, log_variance]`` of two tensors of one shape.
    Output shape: that shape.
    """

    def update_output(self, input):
        expected = "a table [mean, log_variance] of two tensors of one shape"
        if (not isinstance(input, (list, tuple)) or len(input) != 2
                or not all(isinstance(t, np.ndarray) for t in input)
                or input[0].shape != input[1].shape):
            self._fail(expected, input)
        mean, log_var = input
        dtype = np.result_type(mean.dtype, log_var.dtype)
        dtype = dtype if dtype.kind == "f" else np.dtype(np.float32)
        eps = self._buffer("eps", mean.shape, dtype)
        eps[...] = random.rng().standard_normal(mean.shape)
        out = self._buffer("output", mean.shape, dtype)
        np.multiply(np.exp(0.5 * log_var), eps, out=out)
        out += mean
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        dtype = self.output.dtype
        g_mean = self._buffer("grad_mean", self.output.shape, dtype)
        np.copyto(g_mean, grad_output)
        g_log_var = self._buffer("grad_log_var", self.output.shape, dtype)
        np.multiply(0.5 * np.exp(0.5 * np.asarray(input[1], dtype=dtype)),
                    self._scratch["eps"], out=g_log_var)
        g_log_var *= grad_output
        return [g_mean, g_log_var]
