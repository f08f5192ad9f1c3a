"""Table layers (Torch7 / BigDL semantics).

Element-wise ops over a table (CAddTable, CAveTable, CSubTable, CMulTable, CDivTable, CMaxTable,
CMinTable), joining and splitting (JoinTable, SplitTable, Pack), picking (SelectTable,
NarrowTable, FlattenTable, MaskedSelect), mixing (MixtureTable) and the containers that apply a
module to a table (MapTable) or to a higher-dimensional input (Bottle).

A table is a Python list/tuple of tensors (or of tables).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..._config import ConfigError
from .. import backend, layout
from ..containers import Container, indent
from ..module import (DEFAULT_DTYPE, LayerError, Module, active_grad_pool, build_module,
                      check_grad_output, shape_of)
from ..._checks import int_arg
from ..shape.reshape import INTMAX, keep

__all__ = ["CAddTable", "JoinTable", "CAveTable", "CSubTable", "CMulTable", "CDivTable",
           "CMaxTable", "CMinTable", "SplitTable", "Pack", "SelectTable", "NarrowTable",
           "FlattenTable", "MixtureTable", "MaskedSelect", "MapTable", "Bottle"]


def as_table(module, input, expected):
    if not isinstance(input, (list, tuple)) or not input or \
            not all(isinstance(t, np.ndarray) for t in input):
        module._fail(expected, input)
    dtype = np.result_type(*input)
    if dtype.kind != "f":
        dtype = np.dtype(DEFAULT_DTYPE)
    return [t if t.dtype == dtype else t.astype(dtype) for t in input]


def unbroadcast(grad, shape):
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
        self.__dict__.setdefault("_scratch", {})["fused_relu"] = None
        xs = as_table(self, input, self._EXPECTED)
        try:
            shape = np.broadcast_shapes(*(x.shape for x in xs))
        except ValueError:
            shape = None
        if shape is None:
            self._fail(self._EXPECTED, input)
        # the first tensor's memory format (channels-last activations stay so, see nn.layout)
        out = self._buffer("output", shape, xs[0].dtype, channels_last=shape == xs[0].shape
                           and layout.is_channels_last(xs[0]))
        if len(xs) > 1 and xs[0].shape == shape:
            np.add(xs[0], xs[1], out=out)
            rest = xs[2:]
        else:
            np.copyto(out, xs[0])
            rest = xs[1:]
        for x in rest:
            out += x
        return out

    def fused_forward(self, input, successor):
        """The sum of two same-shape float32 tensors and the ``ReLU`` after it (a residual
        block's end) in one native pass (``Sequential`` asks); None when they do not fuse.
        Backward then masks the gradient once, here, and the ReLU passes it through."""
        from ..activation.activations import ReLU
        if type(successor) is not ReLU or type(self).update_output is not \
                CAddTable.update_output or not isinstance(input, (list, tuple)) or \
                len(input) != 2:
            return None
        a, b = input
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or \
                a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape or \
                not a.size:
            return None
        nat = backend.use_native(a.dtype, "eltwise")
        pa, pb = layout.physical(a), layout.physical(b)
        if nat is None or pa is None or pb is None or pa.shape != pb.shape:
            return None  # another memory format on each side: the numpy path
        out = self._buffer_like("output", a)
        nat.add_relu(pa.reshape(-1), pb.reshape(-1), layout.physical(out).reshape(-1))
        self.__dict__["_scratch"]["fused_relu"] = successor
        self.output = successor.output = out
        return out

    def backward(self, input, grad_output):
        if self.__dict__.get("_scratch", {}).get("fused_relu") is None:
            return super().backward(input, grad_output)
        check_grad_output(self, grad_output)
        out = self.output
        cl = layout.is_channels_last(out)
        gm = self._grad_buffer("grad_masked", out.shape, out.dtype, channels_last=cl)
        flat = [layout.native_like(a, cl).reshape(-1)
                for a in (out, np.asarray(grad_output, out.dtype), gm)]
        backend.native().eltwise_backward(flat[0], flat[0], flat[1], flat[2], 0, 0.0)
        if active_grad_pool() is not None:
            # inside a container's pooled backward both inputs get the one masked gradient
            # (nothing writes into a grad_output): no copies
            self.grad_input = [gm, gm]
            return self.grad_input
        self.grad_input = self.update_grad_input(input, gm)
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        grad_output, grads = np.asarray(grad_output), []
        cl = layout.is_channels_last(grad_output)
        for i, x in enumerate(input):
            g = self._grad_buffer(f"grad_input{i}", np.shape(x), self.output.dtype,
                                  channels_last=cl and np.shape(x) == grad_output.shape)
            g[...] = unbroadcast(grad_output, np.shape(x))
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
        xs = as_table(self, input, "a table of tensors")
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


# ---------------------------------------------------------------------- shared helpers

def _float_dtype(x):
    return x.dtype if x.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)


def _same_structure(a, b):
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            _same_structure(x, y) for x, y in zip(a, b))
    return not isinstance(b, (list, tuple)) and np.shape(b) == np.shape(a)


def check_grad(module, grad_output):
    """``check_grad_output`` for layers whose output may be a table (nested list of tensors)."""
    if not isinstance(module.output, (list, tuple)):
        return check_grad_output(module, grad_output)
    if not _same_structure(module.output, grad_output):
        raise LayerError(f"{module.label()}: expected gradOutput of the output's shape "
                         f"{shape_of(module.output)}, got {shape_of(grad_output)}")


def _zero_grads(module, x, key):
    """Zeros shaped like the tensor or (nested) table ``x``, in the layer's reused buffers."""
    if isinstance(x, (list, tuple)):
        return [_zero_grads(module, t, f"{key}.{i}") for i, t in enumerate(x)]
    buf = module._buffer(key, np.shape(x), _float_dtype(np.asarray(x)))
    buf.fill(0)
    return buf


def _any_table(module, input, expected):
    if not isinstance(input, (list, tuple)) or not input:
        module._fail(expected, input)
    return input


# ---------------------------------------------------------------------- element-wise over a table

class _CTable(Module):
    """Element-wise op over the tensors of a table; shapes broadcast as in numpy and the
    gradient of a broadcast tensor is summed back to its shape (as in ``CAddTable``)."""

    _ARITY = None  # None: any number of tensors

    def _expected(self):
        count = f"{self._ARITY} tensors" if self._ARITY else "tensors"
        return f"a table of {count} of one (broadcastable) shape"

    def _inputs(self, input):
        xs = as_table(self, input, self._expected())
        if self._ARITY and len(xs) != self._ARITY:
            self._fail(self._expected(), input)
        try:
            shape = np.broadcast_shapes(*(x.shape for x in xs))
        except ValueError:
            self._fail(self._expected(), input)
        return xs, shape

    def update_output(self, input):
        xs, shape = self._inputs(input)
        out = self._buffer("output", shape, xs[0].dtype)
        self._compute(xs, out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        xs, _ = self._inputs(input)
        g = np.asarray(grad_output, dtype=self.output.dtype)
        grads = []
        for i, (x, full) in enumerate(zip(xs, self._full_grads(xs, g))):
            buf = self._buffer(f"grad_input{i}", x.shape, self.output.dtype)
            buf[...] = unbroadcast(np.broadcast_to(full, g.shape), x.shape)
            grads.append(buf)
        return grads


class CAveTable(_CTable):
    """Element-wise mean of the tensors of a table.

    Args:
        inplace: BigDL's in-place flag; accepted and ignored (no input is overwritten).

    Input shape: a table of tensors of one (broadcastable) shape.
    Output shape: their common shape.
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def _compute(self, xs, out):
        np.copyto(out, xs[0])
        for x in xs[1:]:
            out += x
        out /= len(xs)

    def _full_grads(self, xs, g):
        return [g / len(xs)] * len(xs)


class CSubTable(_CTable):
    """``a - b`` for a table ``[a, b]``.

    Input shape: a table of two tensors of one (broadcastable) shape.
    Output shape: their common shape.
    """

    _ARITY = 2

    def _compute(self, xs, out):
        np.subtract(xs[0], xs[1], out=out)

    def _full_grads(self, xs, g):
        return [g, -g]


class CDivTable(_CTable):
    """``a / b`` for a table ``[a, b]``.

    Input shape: a table of two tensors of one (broadcastable) shape.
    Output shape: their common shape.
    """

    _ARITY = 2

    def _compute(self, xs, out):
        np.divide(xs[0], xs[1], out=out)

    def _full_grads(self, xs, g):
        a, b = xs
        return [g / b, -g * a / (b * b)]


class CMulTable(_CTable):
    """Element-wise product of the tensors of a table.

    The gradient of each tensor is the product of the others (computed from prefix and suffix
    products, so zeros in the input are fine).

    Input shape: a table of tensors of one (broadcastable) shape.
    Output shape: their common shape.
    """

    def _compute(self, xs, out):
        np.copyto(out, xs[0])
        for x in xs[1:]:
            out *= x

    def _full_grads(self, xs, g):
        n = len(xs)
        prefix = [None] * n   # prefix[i] = x_0 * ... * x_{i-1}
        suffix = [None] * n   # suffix[i] = x_{i+1} * ... * x_{n-1}
        for i in range(1, n):
            prefix[i] = xs[i - 1] if prefix[i - 1] is None else prefix[i - 1] * xs[i - 1]
        for i in range(n - 2, -1, -1):
            suffix[i] = xs[i + 1] if suffix[i + 1] is None else suffix[i + 1] * xs[i + 1]
        grads = []
        for p, s in zip(prefix, suffix):
            others = p if s is None else s if p is None else p * s
            grads.append(g if others is None else g * others)
        return grads


class _CExtremumTable(_CTable):
    _pick = None  # np.argmax / np.argmin

    def _winner(self, xs, shape):
        stacked = np.stack([np.broadcast_to(x, shape) for x in xs])
        return stacked, type(self)._pick(stacked, axis=0)

    def _compute(self, xs, out):
        stacked, idx = self._winner(xs, out.shape)
        out[...] = np.take_along_axis(stacked, idx[None], axis=0)[0]

    def _full_grads(self, xs, g):
        _, idx = self._winner(xs, g.shape)
        return [g * (idx == i) for i in range(len(xs))]


class CMaxTable(_CExtremumTable):
    """Element-wise maximum of the tensors of a table; the gradient goes to the tensor that
    holds the maximum (the first one on ties, as Torch).

    Input shape: a table of tensors of one (broadcastable) shape.
    Output shape: their common shape.
    """

    _pick = staticmethod(np.argmax)


class CMinTable(_CExtremumTable):
    """Element-wise minimum of the tensors of a table; the gradient goes to the tensor that
    holds the minimum (the first one on ties).

    Input shape: a table of tensors of one (broadcastable) shape.
    Output shape: their common shape.
    """

    _pick = staticmethod(np.argmin)


# ---------------------------------------------------------------------- splitting and stacking

class SplitTable(Module):
    """Splits a tensor along ``dimension`` into a table of its slices (BigDL ``SplitTable``).

    Args:
        dimension: the dimension to split, 1-based; negative counts from the end.
        n_input_dims: the number of dimensions of one sample; when the input has one more, the
            first is the batch and a positive ``dimension`` is shifted past it, so
            ``SplitTable(1, 2)`` splits ``(T, D)`` and ``(N, T, D)`` inputs into their ``T``
            steps alike.  -1 (default): ``dimension`` counts the actual input dimensions.

    Input shape: a tensor.  Output shape: a table of ``size(dimension)`` tensors, each the input
    without that dimension (views of the input, as BigDL's ``select``).
    """

    def __init__(self, dimension, n_input_dims=-1):
        super().__init__()
        self.dimension = int_arg("SplitTable", "dimension", dimension, lambda d: d != 0,
                                 "1-based (or negative from the end)")
        self.n_input_dims = int_arg("SplitTable", "n_input_dims", n_input_dims)

    def _axis(self, ndim):
        d = self.dimension
        if d < 0:
            d += ndim + 1
        elif self.n_input_dims > 0 and ndim == self.n_input_dims + 1:
            d += 1
        return d - 1

    def update_output(self, input):
        if not isinstance(input, np.ndarray) or not 0 <= self._axis(input.ndim) < input.ndim:
            self._fail(f"a tensor with a dimension {self.dimension} (n_input_dims "
                       f"{self.n_input_dims})", input)
        axis = self._axis(input.ndim)
        return [input[(slice(None),) * axis + (i,)] for i in range(input.shape[axis])]

    def update_grad_input(self, input, grad_output):
        check_grad(self, grad_output)
        axis = self._axis(input.ndim)
        gi = self._buffer("grad_input", input.shape, _float_dtype(input))
        for i, g in enumerate(grad_output):
            gi[(slice(None),) * axis + (i,)] = g
        return gi

    def extra_repr(self):
        return f"{self.dimension}, {self.n_input_dims}"


class Pack(Module):
    """Stacks the tensors of a table into one tensor with a new dimension (BigDL ``Pack``).

    Args:
        dimension: where the new dimension goes, 1-based (``Pack(1)`` stacks ``n`` tensors of
            shape ``(A, B)`` into ``(n, A, B)``); negative: ``ndim + dimension + 1``, as BigDL.

    Input shape: a table of tensors of one shape (a single tensor is a table of one).
    Output shape: that shape with ``n`` inserted at ``dimension``.
    """

    def __init__(self, dimension):
        super().__init__()
        self.dimension = int_arg("Pack", "dimension", dimension, lambda d: d != 0,
                                 "1-based (or negative)")

    def _axis(self, ndim):
        d = self.dimension + ndim + 1 if self.dimension < 0 else self.dimension
        return d - 1

    def update_output(self, input):
        xs = [input] if isinstance(input, np.ndarray) else as_table(self, input,
                                                                    "a table of tensors")
        expected = "a table of tensors of one shape"
        if any(x.shape != xs[0].shape for x in xs):
            self._fail(expected, input)
        axis = self._axis(xs[0].ndim)
        if not 0 <= axis <= xs[0].ndim:
            self._fail(f"tensors with at least {self.dimension - 1} dimensions", input)
        dtype = np.result_type(*xs)
        dtype = dtype if dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)
        shape = xs[0].shape[:axis] + (len(xs),) + xs[0].shape[axis:]
        out = self._buffer("output", shape, dtype)
        np.stack(xs, axis=axis, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output)
        axis = self._axis(self.output.ndim - 1)
        parts = [g[(slice(None),) * axis + (i,)] for i in range(g.shape[axis])]
        if isinstance(input, np.ndarray):
            return parts[0]
        grads = []
        for i, part in enumerate(parts):
            buf = self._buffer(f"grad_input{i}", part.shape, self.output.dtype)
            buf[...] = part
            grads.append(buf)
        return grads

    def extra_repr(self):
        return str(self.dimension)


# ---------------------------------------------------------------------- picking from a table

class SelectTable(Module):
    """Outputs element ``index`` of the input table (a tensor or a table).

    Args:
        index: 1-based position; negative counts from the end (-1 is the last element).

    The gradient of the other elements is zeros of their shape (recursively for tables).

    Input shape: a table.  Output shape: its selected element.
    """

    def __init__(self, index):
        super().__init__()
        self.index = int_arg("SelectTable", "index", index, lambda i: i != 0,
                             "1-based (or negative from the end)")

    def _position(self, input):
        table = _any_table(self, input, f"a table with an element {self.index}")
        pos = self.index - 1 if self.index > 0 else len(table) + self.index
        if not 0 <= pos < len(table):
            self._fail(f"a table with an element {self.index}", input)
        return pos

    def update_output(self, input):
        return input[self._position(input)]

    def update_grad_input(self, input, grad_output):
        check_grad(self, grad_output)
        pos = self._position(input)
        return [grad_output if i == pos else _zero_grads(self, x, f"zeros{i}")
                for i, x in enumerate(input)]

    def extra_repr(self):
        return str(self.index)


class NarrowTable(Module):
    """Outputs the sub-table of ``length`` elements starting at ``offset``.

    Args:
        offset: 1-based position of the first element.
        length: number of elements (default 1); negative: up to ``|length|``-th element from the
            end (-1 is "through the last").

    Input shape: a table.  Output shape: a table of ``length`` of its elements; the other
    elements get zero gradients.
    """

    def __init__(self, offset, length=1):
        super().__init__()
        self.offset = int_arg("NarrowTable", "offset", offset, lambda o: o >= 1, "1-based (>= 1)")
        self.length = int_arg("NarrowTable", "length", length, lambda n: n != 0,
                              "a non-zero int")

    def _range(self, input):
        table = _any_table(self, input, "a table")
        n = len(table)
        length = self.length if self.length > 0 else n - self.offset + 2 + self.length
        start = self.offset - 1
        if length < 1 or start + length > n:
            self._fail(f"a table with elements {self.offset} .. "
                       + (f"{self.offset + self.length - 1}" if self.length > 0
                          else f"{-self.length} from the end"), input)
        return start, start + length

    def update_output(self, input):
        start, stop = self._range(input)
        return list(input[start:stop])

    def update_grad_input(self, input, grad_output):
        check_grad(self, grad_output)
        start, stop = self._range(input)
        return [grad_output[i - start] if start <= i < stop else
                _zero_grads(self, x, f"zeros{i}") for i, x in enumerate(input)]

    def extra_repr(self):
        return f"{self.offset}, {self.length}"


def _flatten(x, out):
    if isinstance(x, (list, tuple)):
        for t in x:
            _flatten(t, out)
    else:
        out.append(x)
    return out


class FlattenTable(Module):
    """Flattens a nested table of tensors into a flat table (depth first, in order).

    Input shape: a (nested) table of tensors.  Output shape: a table of the same tensors.
    """

    def update_output(self, input):
        flat = _flatten(_any_table(self, input, "a (nested) table of tensors"), [])
        if not all(isinstance(t, np.ndarray) for t in flat):
            self._fail("a (nested) table of tensors", input)
        return flat

    def update_grad_input(self, input, grad_output):
        check_grad(self, grad_output)
        grads = iter(grad_output)

        def rebuild(x):
            return [rebuild(t) for t in x] if isinstance(x, (list, tuple)) else next(grads)
        return rebuild(input)


class MaskedSelect(Module):
    """``x[mask != 0]`` for a table ``[x, mask]``: the selected elements as a vector, in row-major
    order (``torch.masked_select``).

    Input shape: a table of a tensor and a mask of the same shape.
    Output shape: ``(number of non-zero mask elements,)``.  The mask gets a zero gradient.
    """

    _EXPECTED = "a table [tensor, mask] of one shape"

    def update_output(self, input):
        if not isinstance(input, (list, tuple)) or len(input) != 2 or not all(
                isinstance(t, np.ndarray) for t in input) or input[0].shape != input[1].shape:
            self._fail(self._EXPECTED, input)
        x = input[0]
        x = x if x.dtype.kind == "f" else x.astype(DEFAULT_DTYPE)
        keep(self, mask=input[1] != 0)
        return x[self._scratch["mask"]]

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x, mask = input
        gx = self._buffer("grad_input", x.shape, self.output.dtype)
        gx.fill(0)
        gx[self._scratch["mask"]] = grad_output
        return [gx, _zero_grads(self, mask, "grad_mask")]


class MixtureTable(Module):
    """Mixture of experts: ``sum_i gater[:, i] * expert_i`` for a table ``[gater, experts]``.

    Args:
        dim: only for experts given as one tensor: the dimension (1-based, counting the batch)
            that holds the experts; the default is 2 with a batch (``(N, E, ...)``) and 1
            without one (``(E, ...)``).  BigDL's default ``INTMAX`` means "not given".

    Input shape: ``[gater, experts]``: ``gater`` is ``(N, E)`` (or ``(E,)`` for one example);
    ``experts`` is a table of ``E`` tensors ``(N, ...)`` (or ``(...)``), or one tensor with the
    experts along ``dim``.
    Output shape: the shape of one expert.
    """

    def __init__(self, dim=INTMAX):
        super().__init__()
        self.dim = int_arg("MixtureTable", "dim", dim, lambda d: d >= 1, "1-based (>= 1)")

    def _parse(self, input):
        expected = "[gater (N, E) or (E,), a table of E experts or an expert tensor]"
        if not isinstance(input, (list, tuple)) or len(input) != 2 or \
                not isinstance(input[0], np.ndarray) or input[0].ndim not in (1, 2):
            self._fail(expected, input)
        gater, experts = input
        batch = gater.ndim == 2
        n_exp = gater.shape[-1]
        if isinstance(experts, (list, tuple)):
            xs = as_table(self, [gater] + list(experts), expected)
            gater, xs = xs[0], xs[1:]
            if len(xs) != n_exp or any(x.shape != xs[0].shape for x in xs) or (
                    batch and (xs[0].ndim < 1 or xs[0].shape[0] != gater.shape[0])):
                self._fail(f"{n_exp} experts of one shape" + (
                    f" with {gater.shape[0]} rows" if batch else ""), input)
            return gater, xs, None
        if not isinstance(experts, np.ndarray):
            self._fail(expected, input)
        gater, experts = as_table(self, [gater, experts], expected)
        axis = (self.dim if self.dim != INTMAX else (2 if batch else 1)) - 1
        if not (1 if batch else 0) <= axis < experts.ndim or experts.shape[axis] != n_exp or (
                batch and experts.shape[0] != gater.shape[0]):
            self._fail(f"experts with {n_exp} entries along dimension {axis + 1}" + (
                f" and {gater.shape[0]} rows" if batch else ""), input)
        view = [1] * experts.ndim
        if batch:
            view[0] = gater.shape[0]
        view[axis] = n_exp
        return gater.reshape(view), experts, axis

    @staticmethod
    def _weight(gater, i, ndim):
        """Column ``i`` of the gater shaped to broadcast against one expert."""
        w = gater[..., i] if gater.ndim == 2 else gater[i]
        return np.reshape(w, np.shape(w) + (1,) * (ndim - np.ndim(w)))

    def update_output(self, input):
        gater, experts, axis = self._parse(input)
        if axis is None:
            out = self._buffer("output", experts[0].shape, experts[0].dtype)
            out.fill(0)
            for i, x in enumerate(experts):
                out += self._weight(gater, i, x.ndim) * x
            return out
        mixed = np.sum(gater * experts, axis=axis)
        out = self._buffer("output", mixed.shape, mixed.dtype)
        out[...] = mixed
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gater, experts, axis = self._parse(input)
        g = np.asarray(grad_output, dtype=self.output.dtype)
        batch = input[0].ndim == 2
        g_gater = self._buffer("grad_gater", input[0].shape, self.output.dtype)
        if axis is None:
            grads = []
            for i, x in enumerate(experts):
                prod = (g * x).reshape((x.shape[0], -1) if batch else (-1,))
                g_gater[..., i] = prod.sum(axis=-1)
                buf = self._buffer(f"grad_expert{i}", x.shape, self.output.dtype)
                np.multiply(self._weight(gater, i, x.ndim), g, out=buf)
                grads.append(buf)
            return [g_gater, grads]
        g_exp = np.expand_dims(g, axis)
        reduce = tuple(a for a in range(experts.ndim) if a != axis and not (batch and a == 0))
        g_gater[...] = np.sum(g_exp * experts, axis=reduce).reshape(g_gater.shape)
        buf = self._buffer("grad_experts", experts.shape, self.output.dtype)
        np.multiply(gater, g_exp, out=buf)
        return [g_gater, buf]

    def extra_repr(self):
        return "" if self.dim == INTMAX else str(self.dim)


# ---------------------------------------------------------------------- containers over tables

class _SingleModule(Container):
    """A container of exactly one module, given to the constructor as ``module``; its config
    keeps the module in ``modules`` (so its name and mode are restored), not in ``args``."""

    def add(self, module):
        if self._children:
            raise ValueError(f"{self.label()}: holds a single module; it already has "
                             f"{self._children[0]!r}")
        return super().add(module)

    def get_config(self):
        config = super().get_config()
        config["args"] = {k: v for k, v in config["args"].items() if k != "module"}
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        children = config.get("modules", [])
        if not isinstance(children, list) or len(children) > 1:
            raise ConfigError(f"{cls.__name__}: 'modules' must be a list of at most one module")
        return cls(build_module(children[0]) if children else None, *positional, **args)

    def _module(self):
        if not self._children:
            raise LayerError(f"{self.label()}: has no module (add one first)")
        return self._children[0]

    def __repr__(self):
        inner = indent(repr(self._children[0])) if self._children else ""
        extra = self.extra_repr()
        return f"nn.{type(self).__name__}" + (f"({extra})" if extra else "") + \
            f" {{\n  {inner}\n}}"


class MapTable(_SingleModule):
    """Applies one module to every element of the input table (BigDL ``MapTable``).

    As in BigDL, the module is replicated as needed and every replica shares the module's
    parameters, so the gradients of all elements accumulate into the module's gradients (the
    replicas hold references to the module's arrays, refreshed on every forward, never copies).
    A regularizer of the module is applied once per backward, not once per element.

    Args:
        module: the module to apply (may also be given later with ``add``).

    Input shape: a table.  Output shape: the table of the module's outputs.
    """

    def __init__(self, module=None):
        super().__init__()
        if module is not None:
            self.add(module)

    def _replica(self, i):
        module = self._module()
        if i == 0:
            return module
        replicas = self.__dict__.setdefault("_scratch", {}).setdefault("replicas", [])
        while len(replicas) < i:
            replicas.append(copy.deepcopy(module))
        replica = replicas[i - 1]
        for src, dst in zip(module.modules(), replica.modules()):
            for n in src._param_names:
                setattr(dst, n, getattr(src, n))
                setattr(dst, "grad_" + n, getattr(src, "grad_" + n))
            for n in src._buffer_names:
                setattr(dst, n, getattr(src, n))
            dst.train, dst._frozen, dst._flat = src.train, src._frozen, None
            dst.__dict__["_regularizers"] = {}
        return replica

    def update_output(self, input):
        table = _any_table(self, input, "a table")
        return [self._replica(i).forward(x) for i, x in enumerate(table)]

    def backward(self, input, grad_output):
        check_grad(self, grad_output)
        self.grad_input = [self._replica(i).backward(x, g)
                           for i, (x, g) in enumerate(zip(input, grad_output))]
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)


class Bottle(_SingleModule):
    """Applies a module made for ``n_input_dim``-dimensional input to an input with more
    dimensions, by folding the extra leading dimensions into the module's batch dimension.

    Example: ``Bottle(Linear(10, 2))`` maps ``(A, B, 10)`` to ``(A, B, 2)``.

    Args:
        module: the module to apply.
        n_input_dim: the number of input dimensions the module takes (default 2).
        n_output_dim1: the number of output dimensions the module gives; BigDL's default
            ``INTMAX`` means ``n_input_dim``.

    Input shape: ``(d1, ..., dk, *module_input)``.  Output shape: ``(d1, ..., dk,
    *module_output)``; with no extra dimensions the module is applied as is.
    """

    def __init__(self, module, n_input_dim=2, n_output_dim1=INTMAX):
        super().__init__()
        self.n_input_dim = int_arg("Bottle", "n_input_dim", n_input_dim, lambda d: d >= 1,
                                   "a positive int")
        self.n_output_dim1 = int_arg("Bottle", "n_output_dim1", n_output_dim1,
                                     lambda d: d >= 1, "a positive int")
        self.n_output_dim = self.n_input_dim if self.n_output_dim1 == INTMAX \
            else self.n_output_dim1
        if module is not None:
            self.add(module)

    def _fold(self, x):
        """``(lead, folded shape)`` or None when the input has no extra dimensions."""
        batch_dims = x.ndim - self.n_input_dim + 1
        if batch_dims <= 1:
            return None
        return x.shape[:batch_dims - 1], (math.prod(x.shape[:batch_dims]),) + x.shape[batch_dims:]

    def update_output(self, input):
        if not isinstance(input, np.ndarray) or input.ndim < self.n_input_dim:
            self._fail(f"a tensor with at least {self.n_input_dim} dimensions", input)
        module, fold = self._module(), self._fold(input)
        if fold is None:
            return module.forward(input)
        lead, shape = fold
        out = module.forward(input.reshape(shape))
        if not isinstance(out, np.ndarray) or out.ndim != self.n_output_dim:
            raise LayerError(f"{self.label()}: expected the module to output "
                             f"{self.n_output_dim} dimensions, got {shape_of(out)}")
        return out.reshape(lead + (out.shape[0] // math.prod(lead),) + out.shape[1:])

    def backward(self, input, grad_output):
        check_grad(self, grad_output)
        module, fold = self._module(), self._fold(input)
        if fold is None:
            self.grad_input = module.backward(input, grad_output)
            return self.grad_input
        gi = module.backward(input.reshape(fold[1]),
                             np.reshape(grad_output, module.output.shape))
        self.grad_input = np.reshape(gi, input.shape)
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def extra_repr(self):
        return f"{self.n_input_dim}, {self.n_output_dim}"
