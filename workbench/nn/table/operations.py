"""The rest of BigDL's Python layers, part 1: an entropy penalty, table products, splits and
operations, expansion, and the dense/sparse bridges (the Transformer, the connection-table and
3-D convolutions and the detection layers are in ``transformer``, ``conv_map`` and
``detection``).

BigDL's class names, argument order and keywords; semantics from BigDL's Scala sources.
"""
from __future__ import annotations


import numpy as np

from .._checks import check_int, finite_real
from .. import _config
from .containers import Container
from .dropout import _Penalty
from .embedding import _issparse
from .module import DEFAULT_DTYPE, LayerError, Module, build_module, check_grad_output, shape_of
from .shape import keep
from .table import _table, _unbroadcast, check_grad

__all__ = ["NegativeEntropyPenalty", "CrossProduct", "ExpandSize", "TableOperation",
           "BifurcateSplitTable", "DenseToSparse", "SparseJoinTable"]


# ---------------------------------------------------------------------- penalty
class NegativeEntropyPenalty(_Penalty):
    """Passes the input (a distribution) through and penalizes its negative entropy:
    ``loss = beta * sum(x * log x)``; the backward adds ``beta * (log x + 1)`` to
    ``grad_output``, pushing the distribution towards higher entropy (BigDL
    ``NegativeEntropyPenalty``, e.g. after a ``SoftMax`` in policy-gradient training).

    Args:
        beta: penalty weight (default 0.01).

    Input shape: any, elements > 0 (probabilities).  Output shape: same as input.
    """

    def __init__(self, beta=0.01):
        super().__init__()
        self.beta = finite_real("NegativeEntropyPenalty", "beta", beta)
        self.loss = 0.0

    def _penalty(self, x):
        if x.size and not np.all(x > 0):
            raise LayerError(f"{self.label()}: expected input of values > 0 (probabilities), "
                             f"got a {shape_of(x)} tensor with min {float(x.min()):g}")
        return self.beta * float(np.sum(x * np.log(x)))

    def _penalty_grad(self, x, gi):
        np.log(x, out=gi)
        gi += 1
        gi *= self.beta

    def extra_repr(self):
        return f"beta={self.beta:g}"


# ---------------------------------------------------------------------- table products
class CrossProduct(Module):
    """Dot products of every pair of a table of embeddings (BigDL ``CrossProduct``, the
    pairwise interaction of factorization machines / DeepFM).

    For ``K`` inputs ``x_1 .. x_K`` the output has ``K(K-1)/2`` columns, ``<x_i, x_j>`` for
    ``i < j`` in the order (1,2), (1,3), ..., (1,K), (2,3), ....

    Args:
        numTensor: the number of tensors K, checked if > 0 (default 0: any K >= 2).
        embeddingSize: the embedding size E, checked if > 0 (default 0: any E).

    Input shape: a table of K tensors ``(N, E)`` (or ``(E,)``), or one tensor ``(N, K, E)``.
    Output shape: ``(N, K(K-1)/2)``, 2-D whatever the input (``(1, K(K-1)/2)`` for vectors, as
    BigDL).
    """

    def __init__(self, numTensor=0, embeddingSize=0):
        super().__init__()
        self.num_tensor = check_int("CrossProduct", "numTensor", numTensor, minimum=0)
        self.embedding_size = check_int("CrossProduct", "embeddingSize", embeddingSize, minimum=0)

    def _expected(self):
        k = self.num_tensor or "K"
        e = self.embedding_size or "E"
        return f"a table of {k} tensors (N, {e}) or a tensor (N, {k}, {e})"

    def _stack(self, input):
        if isinstance(input, np.ndarray):
            x = self._as_array(input, (2, 3), self._expected())
            self._table_in = False
            stacked = x if x.ndim == 3 else x[None]
        else:
            if not isinstance(input, (list, tuple)) or not input or \
                    not all(isinstance(t, np.ndarray) for t in input):
                self._fail(self._expected(), input)
            xs = _table(self, input, self._expected())
            if xs[0].ndim not in (1, 2) or any(t.shape != xs[0].shape for t in xs):
                self._fail(self._expected(), input)
            self._table_in = True
            stacked = np.stack(xs, axis=-2)
            if stacked.ndim == 2:
                stacked = stacked[None]
        n_batch = input.ndim == 3 if isinstance(input, np.ndarray) else input[0].ndim == 2
        self._batched = n_batch
        k, e = stacked.shape[1:]
        if k < 2 or (self.num_tensor and k != self.num_tensor) or \
                (self.embedding_size and e != self.embedding_size):
            self._fail(self._expected(), input)
        return stacked

    def update_output(self, input):
        x = self._stack(input)
        i, j = np.triu_indices(x.shape[1], k=1)
        keep(self, x=x, pairs=(i, j))
        return np.einsum("npe,npe->np", x[:, i], x[:, j])

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = self._scratch["x"]
        i, j = self._scratch["pairs"]
        g = np.asarray(grad_output, dtype=x.dtype)
        gx = np.zeros_like(x)
        np.add.at(gx, (slice(None), i), g[:, :, None] * x[:, j])
        np.add.at(gx, (slice(None), j), g[:, :, None] * x[:, i])
        if not self._batched:
            gx = gx[0]
            return [gx[k] for k in range(gx.shape[0])] if self._table_in else gx
        return [gx[:, k] for k in range(gx.shape[1])] if self._table_in else gx

    def extra_repr(self):
        return f"numTensor={self.num_tensor}, embeddingSize={self.embedding_size}"


# ---------------------------------------------------------------------- expansion
class ExpandSize(Module):
    """Expands size-1 dimensions of the input to ``target_sizes`` (BigDL ``ExpandSize``,
    Torch ``expand``); the backward sums the gradient over the expanded dimensions.

    Args:
        target_sizes: the output size per dimension; -1 keeps the input's size there.

    Input shape: a tensor with ``len(target_sizes)`` dimensions, each equal to the target or 1.
    Output shape: ``target_sizes`` (with -1 entries taken from the input).
    """

    def __init__(self, target_sizes):
        super().__init__()
        if not isinstance(target_sizes, (list, tuple)) or not target_sizes or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                and (s > 0 or s == -1) for s in target_sizes):
            raise ValueError(f"ExpandSize: target_sizes must be a non-empty list of positive "
                             f"ints or -1, got {target_sizes!r}")
        self.target_sizes = tuple(int(s) for s in target_sizes)

    def update_output(self, input):
        expected = "(" + ", ".join("*" if s == -1 else f"{s} or 1"
                                   for s in self.target_sizes) + ")"
        x = self._as_array(input, (len(self.target_sizes),), expected)
        shape = tuple(d if t == -1 else t for d, t in zip(x.shape, self.target_sizes))
        if any(d != t and d != 1 for d, t in zip(x.shape, shape)):
            self._fail(expected, x)
        out = self._buffer("output", shape, x.dtype)
        out[...] = x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output)
        axes = tuple(a for a, (d, t) in enumerate(zip(input.shape, g.shape)) if d != t)
        return g.sum(axis=axes, keepdims=True) if axes else np.array(g, copy=True)

    def extra_repr(self):
        return ", ".join(map(str, self.target_sizes))


class TableOperation(Container):
    """Applies a two-input table layer (e.g. ``CMulTable``, ``CAddTable``) to tensors of
    different sizes by first expanding the smaller one to the larger one's size (BigDL
    ``TableOperation``; numpy broadcasting rules).  The backward sums the smaller input's
    gradient back to its shape.

    Args:
        operation_layer: the table layer to apply (its config is kept in ``modules``).

    In BigDL the smaller tensor must be the second input; here either may be.

    Input shape: a table of two tensors that broadcast to the larger one's shape.
    Output shape: the operation layer's output for two tensors of the larger shape.
    """

    def __init__(self, operation_layer):
        super().__init__()
        if not isinstance(operation_layer, Module):
            raise ValueError(f"TableOperation: operation_layer must be a Module, got "
                             f"{operation_layer!r}")
        self.add(operation_layer)

    def add(self, module):
        if self._children:
            raise ValueError(f"{self.label()}: holds a single operation layer; it already has "
                             f"{self._children[0]!r}")
        return super().add(module)

    def get_config(self):
        config = super().get_config()
        config["args"] = {k: v for k, v in config["args"].items() if k != "operation_layer"}
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        children = config.get("modules", [])
        if not isinstance(children, list) or len(children) != 1:
            raise _config.ConfigError("TableOperation: 'modules' must hold one module")
        return cls(build_module(children[0]), *positional, **args)

    def update_output(self, input):
        expected = "a table of two tensors, one broadcastable to the other's shape"
        if not isinstance(input, (list, tuple)) or len(input) != 2 or \
                not all(isinstance(t, np.ndarray) for t in input):
            self._fail(expected, input)
        a, b = input
        big = a.shape if a.size >= b.size else b.shape
        try:
            if np.broadcast_shapes(a.shape, b.shape) != big:
                raise ValueError
        except ValueError:
            self._fail(expected, input)
        expanded = [np.broadcast_to(t, big) if t.shape != big else t for t in (a, b)]
        keep(self, expanded=expanded)
        return self._children[0].forward(expanded)

    def update_grad_input(self, input, grad_output):
        grads = self._children[0].backward(self._scratch["expanded"], grad_output)
        return [_unbroadcast(np.asarray(g), t.shape) if g.shape != t.shape else g
                for g, t in zip(grads, input)]

    def __repr__(self):
        inner = repr(self._children[0]).replace("\n", "\n  ")
        return f"nn.TableOperation {{\n  {inner}\n}}"


class BifurcateSplitTable(Module):
    """Splits a tensor in two along ``dimension`` (BigDL ``BifurcateSplitTable``): the first
    ``floor(size / 2)`` slices, then the remaining ``ceil(size / 2)``.

    Args:
        dimension: the dimension to split, 1-based; negative counts from the end.

    Input shape: a tensor whose ``dimension`` has size >= 1.
    Output shape: a table of two tensors, the halves (views of the input).
    """

    def __init__(self, dimension):
        super().__init__()
        if not isinstance(dimension, (int, np.integer)) or isinstance(dimension, bool) or \
                dimension == 0:
            raise ValueError(f"BifurcateSplitTable: dimension is 1-based (or negative from the "
                             f"end), got {dimension!r}")
        self.dimension = int(dimension)

    def _axis(self, ndim):
        return self.dimension - 1 if self.dimension > 0 else self.dimension + ndim

    def update_output(self, input):
        expected = f"a tensor with a dimension {self.dimension} of size >= 1"
        if not isinstance(input, np.ndarray) or not 0 <= self._axis(input.ndim) < input.ndim \
                or input.shape[self._axis(input.ndim)] < 1:
            self._fail(expected, input)
        axis = self._axis(input.ndim)
        left = input.shape[axis] // 2
        lead = (slice(None),) * axis
        return [input[lead + (slice(0, left),)], input[lead + (slice(left, None),)]]

    def update_grad_input(self, input, grad_output):
        check_grad(self, grad_output)
        axis = self._axis(input.ndim)
        dtype = input.dtype if input.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)
        gi = self._buffer("grad_input", input.shape, dtype)
        left = input.shape[axis] // 2
        lead = (slice(None),) * axis
        gi[lead + (slice(0, left),)] = grad_output[0]
        gi[lead + (slice(left, None),)] = grad_output[1]
        return gi

    def extra_repr(self):
        return str(self.dimension)

# ---------------------------------------------------------------------- sparse
def _scipy_sparse():
    import scipy.sparse
    return scipy.sparse


class DenseToSparse(Module):
    """Converts a dense batch to a sparse one (BigDL ``DenseToSparse``), e.g. to feed
    ``SparseLinear`` or ``SparseJoinTable`` from a dense layer.  Sparse tensors are
    ``scipy.sparse`` CSR matrices (as in ``workbench.nn``'s sparse layers).

    Args:
        propagate_back: if True (default) the backward passes the (densified) gradient through;
            if False the input gets a zero gradient.

    Input shape: ``(N, D)`` dense.
    Output shape: ``(N, D)`` ``scipy.sparse.csr_matrix`` holding the non-zero entries.
    """

    def __init__(self, propagate_back=True):
        super().__init__()
        self.propagate_back = bool(propagate_back)

    def update_output(self, input):
        x = self._as_array(input, (2,), "(N, D) dense")
        return _scipy_sparse().csr_matrix(x)

    def update_grad_input(self, input, grad_output):
        if self.output is None:
            raise LayerError(f"{self.label()}: backward called before forward")
        g = grad_output.toarray() if _issparse(grad_output) else np.asarray(grad_output)
        if g.shape != self.output.shape:
            raise LayerError(f"{self.label()}: expected gradOutput of the output's shape "
                             f"{self.output.shape}, got {shape_of(grad_output)}")
        g = g.astype(self.output.dtype, copy=False)
        return np.array(g, copy=True) if self.propagate_back else np.zeros_like(g)

    def extra_repr(self):
        return "" if self.propagate_back else "propagate_back=False"


class SparseJoinTable(Module):
    """Concatenates a table of sparse matrices along ``dimension`` (BigDL
    ``SparseJoinTable``); typically the columns of a batch (``dimension=2``), e.g. to join
    one-hot features before ``SparseLinear``.

    Args:
        dimension: the dimension to join along, 1-based: 1 rows, 2 columns.

    Input shape: a table of ``scipy.sparse`` (or dense) ``(N, D_i)`` matrices.
    Output shape: ``(N, sum D_i)`` ``scipy.sparse.csr_matrix`` (for ``dimension=2``).
    The backward gives each input its dense slice of the (dense or sparse) gradient (BigDL
    hands the whole gradient to every input, which only suits layers that ignore it, such as
    ``SparseLinear``; the slices are the true gradient and suit those too).
    """

    def __init__(self, dimension):
        super().__init__()
        if not isinstance(dimension, (int, np.integer)) or isinstance(dimension, bool) or \
                dimension not in (1, 2):
            raise ValueError(f"SparseJoinTable: dimension must be 1 or 2 (1-based), got "
                             f"{dimension!r}")
        self.dimension = int(dimension)

    def update_output(self, input):
        axis = self.dimension - 1
        other = 1 - axis
        expected = (f"a table of 2-D sparse matrices that agree in dimension {other + 1}")
        if not isinstance(input, (list, tuple)) or not input or not all(
                (_issparse(t) or isinstance(t, np.ndarray)) and len(t.shape) == 2
                for t in input) or len({t.shape[other] for t in input}) != 1:
            self._fail(expected, input)
        sp = _scipy_sparse()
        parts = [sp.csr_matrix(t) for t in input]
        dtype = np.result_type(*[p.dtype for p in parts])
        if dtype.kind != "f":
            dtype = np.dtype(DEFAULT_DTYPE)
        stack = sp.hstack if axis == 1 else sp.vstack
        self._sizes = [p.shape[axis] for p in parts]
        return stack(parts, format="csr", dtype=dtype)

    def update_grad_input(self, input, grad_output):
        if self.output is None:
            raise LayerError(f"{self.label()}: backward called before forward")
        g = grad_output.toarray() if _issparse(grad_output) else np.asarray(grad_output)
        if g.shape != self.output.shape:
            raise LayerError(f"{self.label()}: expected gradOutput of the output's shape "
                             f"{self.output.shape}, got {shape_of(grad_output)}")
        bounds = np.cumsum([0] + self._sizes)
        axis = self.dimension - 1
        return [np.array(g[:, a:b] if axis == 1 else g[a:b], dtype=self.output.dtype)
                for a, b in zip(bounds[:-1], bounds[1:])]

    def extra_repr(self):
        return str(self.dimension)
