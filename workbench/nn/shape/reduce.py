"""Reductions over one dimension: Max, Min, Sum, Mean (BigDL semantics).

The dimension is 1-based (negative from the end); when the number of dimensions of one sample is
given and the input has one more, a positive dimension is shifted past the batch, so the same
layer reduces a sample and a batch of samples alike.
"""
from __future__ import annotations

import numpy as np

from ..module import Module, check_grad_output
from ..._checks import int_arg
from .reshape import INTMIN, batch_axis, keep

__all__ = ["Max", "Min", "Sum", "Mean"]


class _Reduce(Module):
    def _axis(self, x, dim, n_input_dims):
        axis = batch_axis(dim, x.ndim, n_input_dims)
        if not 0 <= axis < x.ndim:
            self._fail(f"a tensor with a dimension {dim} (n_input_dims {n_input_dims})", x)
        return axis


class _Extremum(_Reduce):
    _pick = None

    def __init__(self, dim=1, num_input_dims=INTMIN):
        super().__init__()
        cls = type(self).__name__
        self.dim = int_arg(cls, "dim", dim, lambda d: d != 0, "1-based (or negative from the end)")
        self.num_input_dims = int_arg(cls, "num_input_dims", num_input_dims)

    def update_output(self, input):
        x = self._as_array(input, range(1, 65), "a tensor with at least one dimension")
        axis = self._axis(x, self.dim, self.num_input_dims)
        index = np.expand_dims(type(self)._pick(x, axis=axis), axis)
        keep(self, index=index)
        values = np.take_along_axis(x, index, axis=axis)
        return values.reshape(values.shape[:axis] + values.shape[axis + 1:]) if x.ndim > 1 \
            else values

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        axis = self._axis(input, self.dim, self.num_input_dims)
        gi = self._buffer("grad_input", input.shape, self.output.dtype)
        gi.fill(0)
        index = self._scratch["index"]
        np.put_along_axis(gi, index, np.reshape(grad_output, index.shape), axis=axis)
        return gi

    def extra_repr(self):
        return str(self.dim)


def _extremum_doc(extremum, extremal):
    """The docstring of Max / Min: ``extremum`` is "maximum", ``extremal`` "maximal"."""
    return (f"The {extremum} over dimension ``dim``; the gradient goes to the (first) "
            f"{extremal} element." + """

    Args:
        dim: the dimension to reduce, 1-based (negative from the end); default 1.
        num_input_dims: the number of dimensions of one sample; when the input has one more, the
            first is the batch and a positive ``dim`` is shifted past it.

    Input shape: any with that dimension.  Output shape: the input's without it (``(1,)`` for a
    vector, as BigDL).
    """)


class Max(_Extremum):
    __doc__ = _extremum_doc("maximum", "maximal")
    _pick = staticmethod(np.argmax)


class Min(_Extremum):
    __doc__ = _extremum_doc("minimum", "minimal")
    _pick = staticmethod(np.argmin)


class Sum(_Reduce):
    """The sum (or mean) over one dimension (BigDL ``Sum``).

    Args:
        dimension: the dimension to reduce, 1-based (negative from the end); default 1.
        n_input_dims: the number of dimensions of one sample; when the input has one more, the
            first is the batch and a positive ``dimension`` is shifted past it.  -1: no batch.
        size_average: divide by the size of the dimension (a mean).
        squeeze: drop the reduced dimension (default); False keeps it with size 1.  A vector
            always gives ``(1,)``, as BigDL.

    Input shape: any with that dimension.  Output shape: the input's without (or with size 1 in)
    that dimension.
    """

    def __init__(self, dimension=1, n_input_dims=-1, size_average=False, squeeze=True):
        super().__init__()
        cls = type(self).__name__
        self.dimension = int_arg(cls, "dimension", dimension, lambda d: d != 0,
                                 "1-based (or negative from the end)")
        self.n_input_dims = int_arg(cls, "n_input_dims", n_input_dims)
        self.size_average = bool(size_average)
        self.squeeze = bool(squeeze)

    def update_output(self, input):
        x = self._as_array(input, range(1, 65), "a tensor with at least one dimension")
        axis = self._axis(x, self.dimension, self.n_input_dims)
        total = np.sum(x, axis=axis, keepdims=True)
        if self.size_average:
            total /= x.shape[axis]
        if self.squeeze and x.ndim > 1:
            total = total.reshape(total.shape[:axis] + total.shape[axis + 1:])
        out = self._buffer("output", total.shape, total.dtype)
        out[...] = total
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        axis = self._axis(input, self.dimension, self.n_input_dims)
        kept = input.shape[:axis] + (1,) + input.shape[axis + 1:]
        gi = self._buffer("grad_input", input.shape, self.output.dtype)
        gi[...] = np.reshape(grad_output, kept)
        if self.size_average:
            gi /= input.shape[axis]
        return gi

    def extra_repr(self):
        return str(self.dimension)


class Mean(Sum):
    """The mean over one dimension (BigDL ``Mean``: a ``Sum`` with ``size_average``).

    Args:
        dimension: the dimension to reduce, 1-based (negative from the end); default 1.
        n_input_dims: the number of dimensions of one sample; when the input has one more, the
            first is the batch and a positive ``dimension`` is shifted past it.  -1: no batch.
        squeeze: drop the reduced dimension (default); False keeps it with size 1.

    Input shape: any with that dimension.  Output shape: the input's without (or with size 1 in)
    that dimension.
    """

    def __init__(self, dimension=1, n_input_dims=-1, squeeze=True):
        super().__init__(dimension, n_input_dims, True, squeeze)
