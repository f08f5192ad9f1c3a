"""Shape and index layers (Torch7 / BigDL semantics).

Reshaping: View, Reshape, InferReshape, Squeeze, Unsqueeze, Transpose, Contiguous; indexing:
Select, Narrow, Index; repeating and reversing: Replicate, Tile, Reverse; and Masking, which
zeroes masked time steps (Identity and Echo are in ``workbench.nn.core.basic``).

Dimension arguments are 1-based as in BigDL; negative ones count from the end.
"""
from __future__ import annotations

import math

import numpy as np

from ..._checks import int_arg
from ..module import DEFAULT_DTYPE, LayerError, Module, check_grad_output

__all__ = ["View", "Reshape", "InferReshape", "Squeeze", "Unsqueeze", "Transpose", "Contiguous",
           "Select", "Narrow", "Index", "Replicate", "Tile", "Reverse", "Masking"]

INTMAX = 2 ** 31 - 1   # BigDL's "not given" defaults (Scala Int.MaxValue / Int.MinValue)
INTMIN = -2 ** 31


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


class _Reshaping(Module):
    """A layer whose output is its input in another shape, ``_out_shape(x)`` (a view where
    numpy can make one); the gradient is the output gradient reshaped back to the input's."""

    def _out_shape(self, x):
        raise NotImplementedError

    def update_output(self, input):
        x = _tensor(self, input)
        return x.reshape(self._out_shape(x))

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return np.reshape(grad_output, np.shape(input))


class View(_Reshaping):
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

    def extra_repr(self):
        return ", ".join(str(s) for s in self.sizes)


class Reshape(_Reshaping):
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

    def extra_repr(self):
        return "x".join(str(s) for s in self.size)


# ---------------------------------------------------------------------- helpers

def batch_axis(dim, ndim, n_input_dims=0):
    """The 0-based axis of BigDL's 1-based ``dim`` for an input of ``ndim`` dimensions.

    Negative ``dim`` counts from the end; a positive one is shifted past the batch dimension
    when ``n_input_dims > 0`` and the input has ``n_input_dims + 1`` dimensions."""
    if dim < 0:
        return ndim + dim
    if n_input_dims > 0 and ndim == n_input_dims + 1:
        dim += 1
    return dim - 1


def keep(module, **values):
    """Store forward-pass state for backward in the layer's scratch space, which is neither
    pickled (e.g. to Spark executors) nor kept across ``float()`` / ``double()``."""
    module.__dict__.setdefault("_scratch", {}).update(values)


def _float_dtype(x):
    return x.dtype if x.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)


def _at(axis, index):
    """An index tuple selecting ``index`` (an int or slice) along ``axis``."""
    return (slice(None),) * axis + (index,)


def _dims_arg(cls, name, value):
    dims = [value] if isinstance(value, (int, np.integer)) else value
    if not isinstance(dims, (list, tuple)) or not dims or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d != 0 for d in dims):
        raise ValueError(f"{cls}: {name} must be a non-zero int (1-based, negative from the end) "
                         f"or a list of them, got {value!r}")
    return [int(d) for d in dims]


# ---------------------------------------------------------------------- reshaping

class InferReshape(_Reshaping):
    """Reshape with size inference (BigDL ``InferReshape``).

    Args:
        size: the new sizes; ``0`` keeps the input's size in that position and ``-1`` (at most
            once) is inferred from the number of elements.  E.g. ``(4, 5, 6, 7)`` through
            ``InferReshape([4, 0, 3, -1])`` becomes ``(4, 5, 3, 14)``.
        batch_mode: if True the first input dimension is the batch: it is kept and ``size``
            describes one sample.

    Input shape: any with a matching number of elements.  Output shape: ``size`` (inferred),
    after the batch in batch mode.  The output is a view of the input where numpy can make one.
    """

    def __init__(self, size, batch_mode=False):
        super().__init__()
        sizes = [size] if isinstance(size, (int, np.integer)) else size
        if not isinstance(sizes, (list, tuple)) or not sizes or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= -1
                for s in sizes) or sum(1 for s in sizes if s == -1) > 1:
            raise ValueError(f"InferReshape: size must be a non-empty list of ints >= 0 or -1 "
                             f"(-1 at most once), got {size!r}")
        self.size = tuple(int(s) for s in sizes)
        self.batch_mode = bool(batch_mode)

    def _out_shape(self, x):
        if self.batch_mode and x.ndim == 0:
            self._fail("a tensor with a batch dimension", x)
        start = 1 if self.batch_mode else 0
        expected = f"a tensor that reshapes to {_fmt(self.size)}" + \
            (" after the batch" if self.batch_mode else "")
        if x.ndim < start + max((i + 1 for i, s in enumerate(self.size) if s == 0), default=0):
            self._fail(expected, x)
        shape = [x.shape[i + start] if s == 0 else s for i, s in enumerate(self.size)]
        per_sample = x.size // x.shape[0] if self.batch_mode and x.shape[0] else x.size
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if known == 0 or per_sample % known:
                self._fail(expected, x)
            shape[shape.index(-1)] = per_sample // known
        elif known != per_sample:
            self._fail(expected, x)
        return ((x.shape[0],) if self.batch_mode else ()) + tuple(shape)

    def extra_repr(self):
        return "x".join(str(s) for s in self.size)


class Squeeze(_Reshaping):
    """Removes dimensions of size 1 (BigDL ``Squeeze``).

    Args:
        dim: the dimension to remove (1-based, negative from the end), or a list of them; a
            listed dimension whose size is not 1 is kept (as Torch).  None (or BigDL's
            ``INTMIN``, the default): every dimension of size 1.
        num_input_dims: the number of dimensions of one sample; when the input has one more, the
            first is the batch: positive ``dim`` are shifted past it and it is never removed.

    Input shape: any.  Output shape: the input's without the removed dimensions (a view).
    """

    def __init__(self, dim=None, num_input_dims=INTMIN):
        super().__init__()
        self.dim = None if dim is None or dim == INTMIN else _dims_arg("Squeeze", "dim", dim)
        self.num_input_dims = int_arg("Squeeze", "num_input_dims", num_input_dims)

    def _out_shape(self, x):
        batch = self.num_input_dims > 0 and x.ndim == self.num_input_dims + 1
        if self.dim is None:
            axes = {a for a in range(1 if batch else 0, x.ndim) if x.shape[a] == 1}
        else:
            axes = {batch_axis(d, x.ndim, self.num_input_dims) for d in self.dim}
            if not all(0 <= a < x.ndim for a in axes):
                self._fail(f"a tensor with dimensions {self.dim}", x)
            axes = {a for a in axes if x.shape[a] == 1}
        return tuple(s for a, s in enumerate(x.shape) if a not in axes)

    def extra_repr(self):
        return "" if self.dim is None else ", ".join(map(str, self.dim))


class Unsqueeze(_Reshaping):
    """Inserts a dimension of size 1 at position ``pos`` (BigDL ``Unsqueeze``).

    Args:
        pos: 1-based position of the new dimension in the output (1 .. ndim + 1).
        num_input_dims: the number of dimensions of one sample; the input's extra leading
            dimensions are batch dimensions and ``pos`` is shifted past them (as BigDL).

    Input shape: any.  Output shape: the input's with a 1 inserted (a view).
    """

    def __init__(self, pos, num_input_dims=INTMIN):
        super().__init__()
        self.pos = int_arg("Unsqueeze", "pos", pos, lambda p: p >= 1, "1-based (>= 1)")
        self.num_input_dims = int_arg("Unsqueeze", "num_input_dims", num_input_dims)

    def update_output(self, input):
        x = _tensor(self, input)
        batch_dims = x.ndim - self.num_input_dims if self.num_input_dims != INTMIN else 0
        if batch_dims < 0:
            self._fail(f"a tensor with at least {self.num_input_dims} dimensions", x)
        axis = self.pos - 1 + batch_dims
        if axis > x.ndim:
            self._fail(f"a tensor with at least {axis} dimensions", x)
        return np.expand_dims(x, axis)

    def extra_repr(self):
        return str(self.pos)


class Transpose(Module):
    """Swaps pairs of dimensions, in order (BigDL ``Transpose``).

    Args:
        permutations: a list of ``(dim_a, dim_b)`` pairs, 1-based (negative from the end), e.g.
            ``[(1, 2)]`` swaps the first two dimensions.

    Input shape: any with those dimensions.  Output shape: the swapped shape (a view).
    """

    def __init__(self, permutations):
        super().__init__()
        ok = isinstance(permutations, (list, tuple)) and len(permutations) > 0 and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d != 0
                for d in p) for p in permutations)
        if not ok:
            raise ValueError(f"Transpose: permutations must be a non-empty list of (dim, dim) "
                             f"pairs of 1-based dimensions, got {permutations!r}")
        self.permutations = [(int(a), int(b)) for a, b in permutations]

    def _pairs(self, x):
        pairs = [(batch_axis(a, x.ndim), batch_axis(b, x.ndim)) for a, b in self.permutations]
        if not all(0 <= a < x.ndim and 0 <= b < x.ndim for a, b in pairs):
            self._fail(f"a tensor with dimensions {self.permutations}", x)
        return pairs

    def update_output(self, input):
        x = _tensor(self, input)
        for a, b in self._pairs(x):
            x = np.swapaxes(x, a, b)
        return x

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output)
        for a, b in reversed(self._pairs(input)):
            g = np.swapaxes(g, a, b)
        return g

    def extra_repr(self):
        return ", ".join(f"{a} <-> {b}" for a, b in self.permutations)


class Contiguous(Module):
    """Copies the input (and the gradient) into C-contiguous memory (BigDL ``Contiguous``).

    Input shape: any.  Output shape: same.
    """

    def update_output(self, input):
        x = _tensor(self, input)
        out = self._buffer("output", x.shape, x.dtype)
        np.copyto(out, x)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, _float_dtype(self.output))
        np.copyto(gi, grad_output)
        return gi


# ---------------------------------------------------------------------- indexing

class _AxisPick(Module):
    """A layer whose output is the part ``_region(x)`` of its input along one axis; the
    gradient is zero outside that part."""

    def _region(self, x):
        """``(axis, index or slice)`` of the picked part of a checked input ``x``."""
        raise NotImplementedError

    def _axis(self, dim, x):
        """The 0-based axis of BigDL's ``dim`` (counting every input dimension) in ``x``."""
        axis = batch_axis(dim, x.ndim)
        if not 0 <= axis < x.ndim:
            self._fail(f"a tensor with a dimension {dim}", x)
        return axis

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        axis, where = self._region(input)
        gi = self._buffer("grad_input", input.shape, _float_dtype(self.output))
        gi.fill(0)
        gi[_at(axis, where)] = grad_output
        return gi


class Select(_AxisPick):
    """Selects one index of one dimension, removing that dimension (BigDL ``Select``).

    Args:
        dim: the dimension, 1-based (negative from the end); it counts the actual input
            dimensions, batch included, as BigDL.
        index: the index in that dimension, 1-based (negative from the end: -1 is the last).

    Input shape: any with that dimension.  Output shape: the input's without it (a view).
    """

    def __init__(self, dim, index):
        super().__init__()
        self.dim = int_arg("Select", "dim", dim, lambda d: d != 0,
                           "1-based (or negative from the end)")
        self.index = int_arg("Select", "index", index, lambda i: i != 0,
                             "1-based (or negative from the end)")

    def _region(self, x):
        axis = self._axis(self.dim, x)
        index = self.index - 1 if self.index > 0 else x.shape[axis] + self.index
        if not 0 <= index < x.shape[axis]:
            self._fail(f"a tensor with an index {self.index} in dimension {self.dim}", x)
        return axis, index

    def update_output(self, input):
        x = _tensor(self, input)
        axis, index = self._region(x)
        return x[_at(axis, slice(index, index + 1))].reshape(x.shape[:axis] + x.shape[axis + 1:])

    def extra_repr(self):
        return f"{self.dim}, {self.index}"


class Narrow(_AxisPick):
    """A slice of ``length`` indices of one dimension, from ``offset`` (BigDL ``Narrow``).

    Args:
        dimension: the dimension, 1-based (negative from the end).
        offset: first index, 1-based (negative from the end: -1 is the last).
        length: number of indices (default 1); negative: through the ``|length|``-th index from
            the end (-1 is "through the last"), for inputs of varying size.

    Input shape: any with that dimension.  Output shape: the input's with ``length`` in that
    dimension (a view).
    """

    def __init__(self, dimension, offset, length=1):
        super().__init__()
        nonzero = ("1-based (or negative from the end)")
        self.dimension = int_arg("Narrow", "dimension", dimension, lambda d: d != 0, nonzero)
        self.offset = int_arg("Narrow", "offset", offset, lambda o: o != 0, nonzero)
        self.length = int_arg("Narrow", "length", length, lambda n: n != 0, "a non-zero int")

    def _region(self, x):
        axis = self._axis(self.dimension, x)
        size = x.shape[axis]
        start = self.offset - 1 if self.offset > 0 else size + self.offset
        length = self.length if self.length > 0 else size - start + self.length + 1
        if start < 0 or length < 1 or start + length > size:
            self._fail(f"a tensor with indices {self.offset} .. offset + length - 1 (length "
                       f"{self.length}) in dimension {self.dimension}", x)
        return axis, slice(start, start + length)

    def update_output(self, input):
        x = _tensor(self, input)
        axis, where = self._region(x)
        return x[_at(axis, where)]

    def extra_repr(self):
        return f"{self.dimension}, {self.offset}, {self.length}"


class Index(Module):
    """Picks indices along one dimension: ``[t, indices]`` gives ``t.index_select(dim, indices)``
    (BigDL ``Index``).

    Args:
        dimension: the dimension to index, 1-based (negative from the end).
        zero_based_index: indices count from 0 (default, as labels elsewhere in the library);
            pass False for BigDL's 1-based indices.

    Input shape: a table ``[t, indices]`` with ``indices`` a vector of integer values.
    Output shape: ``t``'s with ``len(indices)`` in that dimension.  The gradient of ``t`` sums
    over repeated indices; ``indices`` get a zero gradient.
    """

    def __init__(self, dimension, zero_based_index=True):
        super().__init__()
        self.dimension = int_arg("Index", "dimension", dimension, lambda d: d != 0,
                                 "1-based (or negative from the end)")
        self.zero_based_index = bool(zero_based_index)

    def _parse(self, input):
        expected = "a table [tensor, index vector]"
        if not isinstance(input, (list, tuple)) or len(input) != 2 or not all(
                isinstance(t, np.ndarray) for t in input) or input[1].ndim != 1:
            self._fail(expected, input)
        t, idx = input
        axis = batch_axis(self.dimension, t.ndim)
        if not 0 <= axis < t.ndim:
            self._fail(f"a tensor with a dimension {self.dimension} and an index vector", input)
        ints = np.asarray(idx).astype(np.int64)
        if not np.array_equal(ints, idx):
            self._fail("integer index values", input)
        ints = ints if self.zero_based_index else ints - 1
        if ints.size and (ints.min() < 0 or ints.max() >= t.shape[axis]):
            first = 0 if self.zero_based_index else 1
            raise LayerError(f"{self.label()}: expected indices in {first} .. "
                             f"{t.shape[axis] - 1 + first}, got {np.asarray(idx).tolist()}")
        return t, ints, axis

    def update_output(self, input):
        t, idx, axis = self._parse(input)
        t = t if t.dtype.kind == "f" else t.astype(DEFAULT_DTYPE)
        shape = t.shape[:axis] + (len(idx),) + t.shape[axis + 1:]
        out = self._buffer("output", shape, t.dtype)
        np.take(t, idx, axis=axis, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        t, idx, axis = self._parse(input)
        gt = self._buffer("grad_input", t.shape, self.output.dtype)
        gt.fill(0)
        np.add.at(np.moveaxis(gt, axis, 0), idx, np.moveaxis(np.asarray(grad_output), axis, 0))
        gi = self._buffer("grad_index", input[1].shape, _float_dtype(input[1]))
        gi.fill(0)
        return [gt, gi]

    def extra_repr(self):
        return str(self.dimension)


# ---------------------------------------------------------------------- repeating, reversing

class Replicate(Module):
    """Repeats the input ``n_features`` times along a new dimension (BigDL ``Replicate``); the
    output is a read-only view with stride 0 (no copy, as BigDL).

    Args:
        n_features: how many copies (> 0).
        dim: 1-based position of the new dimension (default 1).
        n_dim: the number of dimensions of one sample; when the input has more, the first is the
            batch and ``dim`` is shifted past it.  BigDL's default ``INTMAX`` means no batch.

    Input shape: any.  Output shape: the input's with ``n_features`` inserted at ``dim``.
    """

    def __init__(self, n_features, dim=1, n_dim=INTMAX):
        super().__init__()
        self.n_features = int_arg("Replicate", "n_features", n_features, lambda n: n > 0,
                                  "a positive int")
        self.dim = int_arg("Replicate", "dim", dim, lambda d: d >= 1, "1-based (>= 1)")
        self.n_dim = int_arg("Replicate", "n_dim", n_dim, lambda d: d >= 0, "an int >= 0")

    def _axis(self, x):
        return self.dim - 1 + (1 if x.ndim > self.n_dim else 0)

    def update_output(self, input):
        x = _tensor(self, input)
        axis = self._axis(x)
        if axis > x.ndim:
            self._fail(f"a tensor with at least {axis} dimensions", x)
        shape = x.shape[:axis] + (self.n_features,) + x.shape[axis:]
        return np.broadcast_to(np.expand_dims(x, axis), shape)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", input.shape, _float_dtype(self.output))
        np.sum(grad_output, axis=self._axis(input), out=gi)
        return gi

    def extra_repr(self):
        return f"{self.n_features}, {self.dim}"


class Tile(Module):
    """Repeats the input ``copies`` times along dimension ``dim`` (BigDL ``Tile``), e.g. ``(2, 3)``
    through ``Tile(1, 3)`` becomes ``(6, 3)``: the input, then the input again, ...

    Args:
        dim: the dimension to tile, 1-based (default 1).
        copies: number of copies (default 2).

    Input shape: any with that dimension.  Output shape: that dimension ``copies`` times longer.
    """

    def __init__(self, dim=1, copies=2):
        super().__init__()
        self.dim = int_arg("Tile", "dim", dim, lambda d: d >= 1, "1-based (>= 1)")
        self.copies = int_arg("Tile", "copies", copies, lambda c: c > 0, "a positive int")

    def update_output(self, input):
        x = _tensor(self, input)
        if x.ndim < self.dim:
            self._fail(f"a tensor with a dimension {self.dim}", x)
        reps = [1] * x.ndim
        reps[self.dim - 1] = self.copies
        return np.tile(x, reps)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        axis, shape = self.dim - 1, input.shape
        g = np.reshape(grad_output, shape[:axis] + (self.copies,) + shape[axis:])
        gi = self._buffer("grad_input", shape, _float_dtype(self.output))
        np.sum(g, axis=axis, out=gi)
        return gi

    def extra_repr(self):
        return f"{self.dim}, {self.copies}"


class Reverse(Module):
    """Reverses the order of the indices along one dimension (BigDL ``Reverse``).

    Args:
        dimension: the dimension, 1-based (negative from the end); default 1.
        is_inplace: BigDL's in-place flag; accepted and ignored (the output is a view).

    Input shape: any.  Output shape: same.
    """

    def __init__(self, dimension=1, is_inplace=False):
        super().__init__()
        self.dimension = int_arg("Reverse", "dimension", dimension, lambda d: d != 0,
                                 "1-based (or negative from the end)")
        self.is_inplace = bool(is_inplace)

    def _axis(self, x):
        axis = batch_axis(self.dimension, x.ndim)
        if not 0 <= axis < x.ndim:
            self._fail(f"a tensor with a dimension {self.dimension}", x)
        return axis

    def update_output(self, input):
        x = _tensor(self, input)
        return np.flip(x, self._axis(x))

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return np.flip(grad_output, self._axis(input))

    def extra_repr(self):
        return str(self.dimension)


# ---------------------------------------------------------------------- pass-through layers

class Masking(Module):
    """Zeroes the time steps whose values all equal ``mask_value`` (BigDL / Keras ``Masking``).

    For input ``(N, T, ...)``, step ``t`` of sample ``n`` is masked when every value of
    ``x[n, t]`` equals ``mask_value``; its output and gradient are 0, the others pass unchanged.

    Args:
        mask_value: the padding value (default 0.0).

    Input shape: ``(N, T, ...)``.  Output shape: same.
    """

    def __init__(self, mask_value=0.0):
        super().__init__()
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.number)):
            raise ValueError(f"Masking: mask_value must be a number, got {mask_value!r}")
        self.mask_value = float(mask_value)

    def _keep(self, x):
        differs = x != self.mask_value
        keep = differs.reshape(x.shape[:2] + (-1,)).any(axis=2) if x.ndim > 2 else differs
        return keep.reshape(x.shape[:2] + (1,) * (x.ndim - 2))

    def update_output(self, input):
        x = self._as_array(input, range(2, 65), "(N, T, ...)")
        keep(self, mask=self._keep(x))
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, self._scratch["mask"], out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._scratch["mask"], out=gi)
        return gi

    def extra_repr(self):
        return f"{self.mask_value:g}"


