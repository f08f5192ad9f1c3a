"""Table operations (BigDL ``nn``): the pairwise products CrossProduct, TableOperation (a
layer applied to a table and broadcast) and BifurcateSplitTable.

BigDL's class names, argument order and keywords; semantics from BigDL's Scala sources.
"""
from __future__ import annotations


import numpy as np

from ..._checks import check_int
from ... import _config
from ..containers import Container
from ..module import DEFAULT_DTYPE, Module, build_module, check_grad_output
from ..shape.reshape import keep
from .tables import as_table, unbroadcast, check_grad

__all__ = ["CrossProduct", "TableOperation", "BifurcateSplitTable"]


# ---------------------------------------------------------------------- penalty
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
            xs = as_table(self, input, self._expected())
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
        return [unbroadcast(np.asarray(g), t.shape) if g.shape != t.shape else g
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
