"""Activations: ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax (Torch7 / BigDL ``nn``)."""
from __future__ import annotations

import numpy as np

from .module import Module, check_grad_output

__all__ = ["ReLU", "Tanh", "Sigmoid", "SoftMax", "LogSoftMax"]

ANY_NDIM = range(0, 65)


class _Elementwise(Module):
    """An activation applied element by element to a tensor of any shape."""

    def _input(self, input):
        return self._as_array(input, ANY_NDIM, "a tensor")

    def _grad_like(self, input, grad_output):
        check_grad_output(self, grad_output)
        return self._buffer("grad_input", self.output.shape, self.output.dtype)


class ReLU(_Elementwise):
    """Rectified linear unit: ``y = max(0, x)``; the gradient at 0 is 0 (as Torch).

    Args:
        ip: BigDL's in-place flag.  Accepted for compatibility and ignored: the output always
            goes to the layer's own buffer, because overwriting the input would corrupt the
            previous layer's output, which Tanh, Sigmoid and shared graph branches still need
            during backward.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, ip=False):
        super().__init__()
        self.ip = bool(ip)

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer("output", x.shape, x.dtype)
        np.maximum(x, 0, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        np.multiply(grad_output, self.output > 0, out=gi)
        return gi


class Tanh(_Elementwise):
    """Hyperbolic tangent, element-wise.

    Input shape: any.  Output shape: same as input.
    """

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer("output", x.shape, x.dtype)
        np.tanh(x, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        y = self.output
        np.multiply(y, y, out=gi)
        np.subtract(1, gi, out=gi)
        gi *= grad_output
        return gi


class Sigmoid(_Elementwise):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, element-wise (no overflow for large ``|x|``).

    Input shape: any.  Output shape: same as input.
    """

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer("output", x.shape, x.dtype)
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        np.divide(np.where(x >= 0, 1, e), 1 + e, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        y = self.output
        np.subtract(1, y, out=gi)
        gi *= y
        gi *= grad_output
        return gi


def class_axis(ndim):
    """The axis SoftMax works on: the last of ``(C,)`` / ``(N, C)``, the channels of
    ``(C, H, W)`` / ``(N, C, H, W)`` (as BigDL / Torch7)."""
    return {1: 0, 2: 1, 3: 0, 4: 1}[ndim]


def log_softmax(x, axis, out=None):
    """Numerically stable ``log(softmax(x))`` along ``axis``."""
    out = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out)
    out -= np.log(np.sum(np.exp(out), axis=axis, keepdims=True))
    return out


def softmax(x, axis, out=None):
    """Numerically stable ``softmax(x)`` along ``axis``."""
    out = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


class _Normalizing(_Elementwise):
    _EXPECTED = "(N, C), (C,), (C, H, W) or (N, C, H, W)"

    def _input(self, input):
        return self._as_array(input, (1, 2, 3, 4), self._EXPECTED)


class SoftMax(_Normalizing):
    """Softmax over the classes: ``y_i = exp(x_i) / sum_j exp(x_j)`` (numerically stable).

    The class axis is the last one for ``(C,)`` and ``(N, C)`` input, and the channel axis for
    ``(C, H, W)`` and ``(N, C, H, W)`` input (a per-pixel softmax, as BigDL).

    Input shape: ``(N, C)``, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``.
    Output shape: same as input.
    """

    def update_output(self, input):
        x = self._input(input)
        return softmax(x, class_axis(x.ndim), out=self._buffer("output", x.shape, x.dtype))

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        y = self.output
        np.multiply(grad_output, y, out=gi)
        dot = np.sum(gi, axis=class_axis(y.ndim), keepdims=True)
        gi -= y * dot
        return gi


class LogSoftMax(_Normalizing):
    """``log(softmax(x))`` over the classes, computed stably as ``x - max - log(sum(exp))``.

    The class axis is chosen as in :class:`SoftMax`.  Pair it with ``ClassNLLCriterion``.

    Input shape: ``(N, C)``, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``.
    Output shape: same as input.
    """

    def update_output(self, input):
        x = self._input(input)
        return log_softmax(x, class_axis(x.ndim), out=self._buffer("output", x.shape, x.dtype))

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        y = self.output
        total = np.sum(grad_output, axis=class_axis(y.ndim), keepdims=True)
        np.exp(y, out=gi)
        gi *= -total
        gi += grad_output
        return gi
