"""Sparse tensors (``scipy.sparse`` CSR matrices): ``DenseToSparse`` and
``SparseJoinTable`` (BigDL ``nn``).
"""
from __future__ import annotations

import numpy as np

from ..embedding.lookup import issparse
from ..module import DEFAULT_DTYPE, LayerError, Module, shape_of

__all__ = ["DenseToSparse", "SparseJoinTable"]


def _scipy_sparse():
    import scipy.sparse
    return scipy.sparse


def _dense_grad(layer, grad_output):
    """``grad_output`` (dense or sparse) as a dense array, checked against the layer's sparse
    output (a LayerError before forward or for another shape)."""
    if layer.output is None:
        raise LayerError(f"{layer.label()}: backward called before forward")
    g = grad_output.toarray() if issparse(grad_output) else np.asarray(grad_output)
    if g.shape != layer.output.shape:
        raise LayerError(f"{layer.label()}: expected gradOutput of the output's shape "
                         f"{layer.output.shape}, got {shape_of(grad_output)}")
    return g


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
        g = _dense_grad(self, grad_output).astype(self.output.dtype, copy=False)
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
                (issparse(t) or isinstance(t, np.ndarray)) and len(t.shape) == 2
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
        g = _dense_grad(self, grad_output)
        bounds = np.cumsum([0] + self._sizes)
        axis = self.dimension - 1
        return [np.array(g[:, a:b] if axis == 1 else g[a:b], dtype=self.output.dtype)
                for a, b in zip(bounds[:-1], bounds[1:])]

    def extra_repr(self):
        return str(self.dimension)
