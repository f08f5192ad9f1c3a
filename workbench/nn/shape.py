"""Shape layers: View, Reshape, Identity (Torch7 / BigDL semantics)."""
from __future__ import annotations

import math

import numpy as np

from .module import check_grad_output
from .module import Module

__all__ = ["View", "Reshape", "Identity"]


def _sizes(cls, arg, value, allow_minus_one):
    sizes = [value] if isinstance(value, (int, np.integer)) else value
    ok = isinstance(sizes, (list, tuple)) and len(sizes) > 0 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool)
        and (s > 0 or (allow_minus_one and s == -1)) for s in sizes)
    if ok and allow_minus_one and sum(1 for s in sizes if s == -1) > 1:
        ok = False
    if not ok:
        what = "positive ints (one of them may be -1)" if allow_minus_one else "positive ints"
        raise ValueError(f"{cls}: {arg} must be a non-empty list of {what}, got {value!r}")
    return tuple(int(s) for s in sizes)


def _tensor(module, input):
    if not isinstance(input, np.ndarray):
        module._fail("a tensor", input)
    return input


def _fmt(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


class View(Module):
    """A view of the input with new sizes (Torch7 / BigDL ``View``); no data is copied.

    Args:
        sizes: the sizes of one sample, e.g. ``[12 * 4 * 4]``; one of them may be -1 (inferred).
        num_input_dims: how many trailing input dimensions make one sample; the leading ones are
            the batch.  With 0 (default) the batch size is inferred as ``n_elements /
            prod(sizes)`` and left out when it is 1 (or when a size is -1).

    Input shape: any with a multiple of ``prod(sizes)`` elements.
    Output shape: ``(B, *sizes)`` with a batch, else ``sizes``.
    """

    def __init__(self, sizes, num_input_dims=0):
        super().__init__()
        self.sizes = _sizes("View", "sizes", sizes, allow_minus_one=True)
        if not isinstance(num_input_dims, (int, np.integer)) or num_input_dims < 0:
            raise ValueError(f"View: num_input_dims must be an int >= 0, got {num_input_dims!r}")
        self.num_input_dims = int(num_input_dims)
        self.num_elements = math.prod(s for s in self.sizes if s != -1)

    def _out_shape(self, x):
        ndim = x.ndim
        sample_dims = min(self.num_input_dims or ndim, ndim)
        per_sample = math.prod(x.shape[ndim - sample_dims:])
        if per_sample % self.num_elements:
            self._fail(f"with a multiple of {self.num_elements} elements per sample "
                       f"(to view as {_fmt(self.sizes)})", x)
        batch = 1 if -1 in self.sizes else per_sample // self.num_elements
        batch *= math.prod(x.shape[:ndim - sample_dims])
        if batch == 1 and (self.num_input_dims == 0 or ndim <= self.num_input_dims):
            return self.sizes
        return (batch,) + self.sizes

    def update_output(self, input):
        x = _tensor(self, input)
        return x.reshape(self._out_shape(x))

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return np.reshape(grad_output, np.shape(input))

    def extra_repr(self):
        return ", ".join(str(s) for s in self.sizes)


class Reshape(Module):
    """Reshape each sample to ``size`` (BigDL ``Reshape``).

    Args:
        size: the sizes of one sample, e.g. ``[1, 28, 28]``.
        batch_mode: True: the first input dimension is the batch and is kept; False: the whole
            input is reshaped to ``size``; None (default, BigDL's rule): no batch if the input
            has exactly ``prod(size)`` elements and its first dimension is not 1, else the first
            dimension is the batch.

    Input shape: ``(N, ...)`` with ``prod(size)`` elements per sample, or ``prod(size)`` elements.
    Output shape: ``(N, *size)`` or ``size``.
    """

    def __init__(self, size, batch_mode=None):
        super().__init__()
        self.size = _sizes("Reshape", "size", size, allow_minus_one=False)
        if batch_mode not in (None, True, False):
            raise ValueError(f"Reshape: batch_mode must be None, True or False, got {batch_mode!r}")
        self.batch_mode = batch_mode
        self.num_elements = math.prod(self.size)

    def update_output(self, input):
        x = _tensor(self, input)
        n = self.num_elements
        if self.batch_mode is False or (
                self.batch_mode is None and x.size == n and x.ndim > 0 and x.shape[0] != 1):
            if x.size != n:
                self._fail(f"of {n} elements (to reshape to {_fmt(self.size)})", x)
            return x.reshape(self.size)
        if x.ndim == 0 or x.size != x.shape[0] * n:
            self._fail(f"(N, ...) with {n} elements per sample (to reshape to "
                       f"(N, {', '.join(map(str, self.size))}))", x)
        return x.reshape((x.shape[0],) + self.size)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return np.reshape(grad_output, np.shape(input))

    def extra_repr(self):
        return "x".join(str(s) for s in self.size)


class Identity(Module):
    """Passes the input (a tensor or a table) through unchanged.

    Input shape: any.  Output shape: the input.
    """

    def update_output(self, input):
        return input

    def update_grad_input(self, input, grad_output):
        return grad_output

