"""Table layers: CAddTable, JoinTable (Torch7 / BigDL semantics).

A table is a Python list/tuple of tensors.
"""
from __future__ import annotations

import numpy as np

from .module import check_grad_output
from .module import DEFAULT_DTYPE, Module

__all__ = ["CAddTable", "JoinTable"]


def _table(module, input, expected):
    if not isinstance(input, (list, tuple)) or not input or \
            not all(isinstance(t, np.ndarray) for t in input):
        module._fail(expected, input)
    dtype = np.result_type(*input)
    if dtype.kind != "f":
        dtype = np.dtype(DEFAULT_DTYPE)
    return [t if t.dtype == dtype else t.astype(dtype) for t in input]


def _unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape`` (the inverse of numpy broadcasting)."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class CAddTable(Module):
    """Element-wise sum of the tensors of a table.

    Shapes must match, or broadcast as in numpy (e.g. adding a ``(1, C)`` row to ``(N, C)``);
    the gradient of a broadcast tensor is summed back to its shape.

    Args:
        inplace: BigDL's in-place flag; accepted and ignored (the sum goes to the layer's own
            buffer so that no input is overwritten).

    Input shape: a table of tensors.  Output shape: their (broadcast) common shape.
    """

    _EXPECTED = "a table of tensors of one shape"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def update_output(self, input):
        xs = _table(self, input, self._EXPECTED)
        try:
            shape = np.broadcast_shapes(*(x.shape for x in xs))
        except ValueError:
            shape = None
        if shape is None:
            self._fail(self._EXPECTED, input)
        out = self._buffer("output", shape, xs[0].dtype)
        np.copyto(out, xs[0])
        for x in xs[1:]:
            out += x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        grad_output, grads = np.asarray(grad_output), []
        for i, x in enumerate(input):
            g = self._buffer(f"grad_input{i}", np.shape(x), self.output.dtype)
            g[...] = _unbroadcast(grad_output, np.shape(x))
            grads.append(g)
        return grads


class JoinTable(Module):
    """Concatenates the tensors of a table along ``dimension``.

    Args:
        dimension: the dimension to join along, 1-based (negative counts from the end).
        n_input_dims: the number of dimensions of one sample; when the inputs have one more
            dimension, the first is the batch and ``dimension`` is shifted past it (BigDL), so
            ``JoinTable(1, 1)`` joins ``(D,)`` vectors and the rows of ``(N, D)`` batches alike.
            0 (default) means ``dimension`` counts the actual input dimensions.

    Input shape: a table of tensors equal in all dimensions except ``dimension``.
    Output shape: the same, with the joined dimension the sum of theirs.
    """

    def __init__(self, dimension, n_input_dims=0):
        super().__init__()
        if not isinstance(dimension, (int, np.integer)) or isinstance(dimension, bool) \
                or dimension == 0:
            raise ValueError(f"JoinTable: dimension is 1-based (or negative from the end), "
                             f"got {dimension!r}")
        if not isinstance(n_input_dims, (int, np.integer)) or n_input_dims < 0:
            raise ValueError(f"JoinTable: n_input_dims must be an int >= 0, got {n_input_dims!r}")
        self.dimension, self.n_input_dims = int(dimension), int(n_input_dims)

    def _axis(self, ndim):
        d = self.dimension
        if d < 0:
            d += ndim + 1
        if self.n_input_dims > 0 and ndim == self.n_input_dims + 1:
            d += 1
        return d - 1

    def update_output(self, input):
        xs = _table(self, input, "a table of tensors")
        ndim = xs[0].ndim
        axis = self._axis(ndim)
        expected = f"a table of tensors that agree except in dimension {axis + 1}"
        if not 0 <= axis < ndim or any(x.ndim != ndim for x in xs) or any(
                x.shape[:axis] + x.shape[axis + 1:] != xs[0].shape[:axis] + xs[0].shape[axis + 1:]
                for x in xs):
            if not 0 <= axis < ndim:
                expected = f"tensors with a dimension {self.dimension} (n_input_dims " \
                           f"{self.n_input_dims})"
            self._fail(expected, input)
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = self._buffer("output", tuple(shape), xs[0].dtype)
        np.concatenate(xs, axis=axis, out=out)
        self._axis_used = axis
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        grad_output = np.asarray(grad_output)
        axis, offset, grads = self._axis_used, 0, []
        for i, x in enumerate(input):
            size = x.shape[axis]
            g = self._buffer(f"grad_input{i}", x.shape, self.output.dtype)
            g[...] = grad_output[(slice(None),) * axis + (slice(offset, offset + size),)]
            offset += size
            grads.append(g)
        return grads

    def extra_repr(self):
        return f"{self.dimension}, {self.n_input_dims}"

