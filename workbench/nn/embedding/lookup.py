"""Embeddings and sparse inputs: LookupTable, LookupTableSparse, SparseLinear (BigDL).

Indices are zero-based by default, like class labels elsewhere in workbench; pass
``zero_based_index=False`` for BigDL's 1-based indices.

Sparse inputs are ``scipy.sparse`` matrices (scipy comes with scikit-learn, a dependency), or,
for ``LookupTableSparse``, dense ``(N, K)`` id arrays padded with ids below the first index
(e.g. -1 for zero-based ids).
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

from .. import backend
from ..initializers import RandomNormal
from ..core.linear import Linear
from ..module import LayerError, Module, check_grad_output
from ..recurrent.rnn import DropsActivations

__all__ = ["LookupTable", "LookupTableSparse", "SparseLinear"]

DOUBLEMAX = sys.float_info.max


def issparse(x):
    if "scipy.sparse" not in sys.modules and not hasattr(x, "tocsr"):
        return False
    import scipy.sparse
    return scipy.sparse.issparse(x)


def _check_count(cls, arg, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{cls}: {arg} must be a positive int, got {value!r}")
    return int(value)


def _to_ids(layer, values, n_index, zero_based, where="index"):
    """Whole-number ``values`` as zero-based int64 row ids, else a LayerError naming the first
    bad one."""
    v = np.asarray(values)
    if v.dtype.kind == "f":
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            raise LayerError(f"{layer.label()}: {where}es must be whole numbers, got "
                             f"{v[bad].flat[0].item()!r}")
    elif v.dtype.kind not in "iub":
        raise LayerError(f"{layer.label()}: {where}es must be numbers, got dtype {v.dtype}")
    ids = v.astype(np.int64) - (0 if zero_based else 1)
    bad = (ids < 0) | (ids >= n_index)
    if bad.any():
        first = int(np.argmax(bad.ravel()))
        lo, hi = (0, n_index - 1) if zero_based else (1, n_index)
        hint = ""
        if zero_based and v.min() >= 1 and v.max() == n_index:
            hint = " (indices look 1-based: pass zero_based_index=False)"
        raise LayerError(f"{layer.label()}: {where} {v.ravel()[first].item()!r} at position "
                         f"{first} is out of range [{lo}, {hi}] for {n_index} rows{hint}")
    return ids


class _Table(DropsActivations, Module):
    """A layer whose parameter is a ``weight (n_index, n_output)`` table of rows, drawn from
    ``RandomNormal(0, 1)`` (BigDL's default)."""

    def _add_table(self, w_regularizer):
        """Add ``weight``, initialize it with :meth:`reset` and set its regularizer."""
        self.weight_init_method = RandomNormal(0.0, 1.0)
        self._add_parameter("weight", (self.n_index, self.n_output))
        self.reset()
        self._set_regularizer("weight", w_regularizer)

    def reset(self):
        self.weight_init_method.init(self.weight, self.n_index, self.n_output)
        return self


class LookupTable(_Table):
    """Embedding lookup (BigDL / Torch7 ``LookupTable``): each index selects a row of
    ``weight``.

    Args:
        n_index: number of rows (the vocabulary size, > 0).
        n_output: size of each embedding (> 0).
        padding_value: an index whose row gets no gradient (e.g. the padding id), counted like
            the inputs (zero-based by default).  None (default), or a value that is no index
            (such as BigDL's default 0 with 1-based indices), means no padding index.
        max_norm: if given, every row that is looked up is first rescaled in place to a
            ``norm_type`` norm of at most ``max_norm`` (as BigDL and ``torch.nn.Embedding``);
            None or BigDL's ``DOUBLEMAX`` means never.
        norm_type: the p of the norm used by ``max_norm`` (> 0, default 2).
        should_scale_grad_by_freq: divide each row's gradient by how often its index occurs in
            the mini-batch.
        wRegularizer: optional regularizer of ``weight``.
        zero_based_index: True (default): indices are ``0 .. n_index-1``; False: BigDL's
            ``1 .. n_index``.

    ``weight (n_index, n_output)`` starts from ``RandomNormal(0, 1)`` (BigDL's default).
    Indices may be ints or whole floats; the input gets no gradient (zeros).

    Input shape: ``(N,)`` or ``(N, T)`` indices.
    Output shape: ``(N, n_output)`` or ``(N, T, n_output)``.
    """

    _TRANSIENT = ("_ids",)

    def __init__(self, n_index, n_output, padding_value=None, max_norm=None, norm_type=2.0,
                 should_scale_grad_by_freq=False, wRegularizer=None, zero_based_index=True):
        super().__init__()
        self.n_index = _check_count("LookupTable", "n_index", n_index)
        self.n_output = _check_count("LookupTable", "n_output", n_output)
        self.zero_based_index = bool(zero_based_index)
        if padding_value is not None and (not isinstance(padding_value, numbers.Real)
                                          or isinstance(padding_value, bool)):
            raise ValueError(f"LookupTable: padding_value must be a number or None, got "
                             f"{padding_value!r}")
        self.padding_value = padding_value
        pad = None  # a value that is no valid index (e.g. BigDL's default 0 with 1-based ids)
        if padding_value is not None and padding_value == round(padding_value):
            pad = int(padding_value) - (0 if zero_based_index else 1)
        self._pad_row = pad if pad is not None and 0 <= pad < self.n_index else None
        if max_norm is not None and (not isinstance(max_norm, numbers.Real) or max_norm <= 0):
            raise ValueError("LookupTable: max_norm must be a number > 0 or None, "
                             f"got {max_norm!r}")
        self.max_norm = None if max_norm is None or max_norm >= DOUBLEMAX else float(max_norm)
        if not isinstance(norm_type, numbers.Real) or norm_type <= 0:
            raise ValueError(f"LookupTable: norm_type must be a number > 0, got {norm_type!r}")
        self.norm_type = float(norm_type)
        self.should_scale_grad_by_freq = bool(should_scale_grad_by_freq)
        self._add_table(wRegularizer)

    def _renorm(self, ids):
        rows = np.unique(ids)
        w = self.weight[rows]
        norms = (np.abs(w) ** self.norm_type).sum(axis=1) ** (1.0 / self.norm_type)
        big = norms > self.max_norm
        if big.any():
            scale = self.max_norm / (norms[big] + 1e-7)
            self.weight[rows[big]] = w[big] * scale[:, None].astype(w.dtype)

    def update_output(self, input):
        if not isinstance(input, np.ndarray) or input.ndim not in (1, 2):
            self._fail("(N,) or (N, T) indices", input)
        ids = _to_ids(self, input, self.n_index, self.zero_based_index)
        if self.max_norm is not None:
            self._renorm(ids)
        self._ids = ids
        out = self._buffer("output", ids.shape + (self.n_output,), self.weight.dtype)
        nat = self._native()
        if nat is not None:
            nat.lookup_forward(self.weight, np.ascontiguousarray(ids).reshape(-1),
                               out.reshape(-1, self.n_output))
            return out
        np.take(self.weight, ids, axis=0, out=out)
        return out

    def _native(self):
        nat = backend.use_native(self.weight.dtype, "lookup_table")
        if nat is None or not (self.weight.flags.c_contiguous and
                               self.grad_weight.flags.c_contiguous):
            return None
        return nat

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", np.shape(input), self.weight.dtype)
        gi.fill(0)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        ids = self._ids.ravel()
        g = np.asarray(grad_output, dtype=self.weight.dtype).reshape(-1, self.n_output)
        nat = self._native()
        if nat is not None and not self.should_scale_grad_by_freq:
            nat.lookup_backward(np.ascontiguousarray(g), np.ascontiguousarray(ids),
                                self.grad_weight, -1 if self._pad_row is None else self._pad_row)
            return
        if self.should_scale_grad_by_freq:
            counts = np.bincount(ids, minlength=self.n_index)
            g = g / counts[ids][:, None].astype(g.dtype)
        if self._pad_row is not None:
            keep = ids != self._pad_row
            ids, g = ids[keep], g[keep]
        np.add.at(self.grad_weight, ids, g)

    def extra_repr(self):
        extra = "" if self.padding_value is None else f", padding {self.padding_value}"
        if self.max_norm is not None:
            extra += f", max_norm {self.max_norm}"
        return f"{self.n_index} -> {self.n_output}{extra}"


def _csr(x):
    csr = x.tocsr(copy=True)
    csr.sort_indices()
    return csr


class LookupTableSparse(_Table):
    """Combined embeddings of a variable number of ids per sample (BigDL
    ``LookupTableSparse``, TensorFlow's ``embedding_lookup_sparse``).

    Each sample ``n`` has ids ``k_1 .. k_m`` (and optional weights ``w_j``, default 1); its
    output combines the rows ``e_j = weight[k_j]``: ``"sum"``: ``Σ w_j e_j``; ``"mean"``:
    ``Σ w_j e_j / Σ w_j``; ``"sqrtn"``: ``Σ w_j e_j / sqrt(Σ w_j²)``.  A sample without ids
    gives zeros.

    Args:
        n_index: number of rows (> 0).
        n_output: size of each embedding (> 0).
        combiner: ``"sum"`` (default), ``"mean"`` or ``"sqrtn"``.
        max_norm: if > 0, each looked-up row is clipped to this L2 norm before combining
            (differentiably, as TensorFlow); -1 (default) means no clipping.
        wRegularizer: optional regularizer of ``weight``.
        zero_based_index: True (default): ids are ``0 .. n_index-1``; False: BigDL's
            ``1 .. n_index``.

    Input: the ids, either a ``scipy.sparse`` matrix ``(N, K)`` whose stored values are the
    ids (with zero-based ids, store id 0 explicitly: converting a dense matrix drops zeros),
    or a dense ``(N, K)`` array where ids below the first index (e.g. -1) are empty slots; or
    a table ``[ids, weights]`` of two such matrices with the same layout.  No gradient flows
    to the input (``backward`` returns None for sparse inputs, zeros for dense ones).

    Output shape: ``(N, n_output)``.
    """

    _COMBINERS = ("sum", "mean", "sqrtn")

    _TRANSIENT = ("_ctx",)

    def __init__(self, n_index, n_output, combiner="sum", max_norm=-1.0, wRegularizer=None,
                 zero_based_index=True):
        super().__init__()
        self.n_index = _check_count("LookupTableSparse", "n_index", n_index)
        self.n_output = _check_count("LookupTableSparse", "n_output", n_output)
        if combiner not in self._COMBINERS:
            raise ValueError(f"LookupTableSparse: combiner must be one of {self._COMBINERS}, "
                             f"got {combiner!r}")
        self.combiner = combiner
        if not isinstance(max_norm, numbers.Real) or isinstance(max_norm, bool) or \
                (max_norm <= 0 and max_norm != -1):
            raise ValueError(f"LookupTableSparse: max_norm must be a number > 0 or -1, got "
                             f"{max_norm!r}")
        self.max_norm = float(max_norm)
        self.zero_based_index = bool(zero_based_index)
        self._add_table(wRegularizer)

    def _entries(self, input):
        """``(n, rows, ids, weights or None)`` for the accepted input formats."""
        expected = "(N, K) ids (scipy.sparse or dense, padded with -1) or a table [ids, weights]"
        parts = list(input) if isinstance(input, (list, tuple)) else [input]
        if len(parts) not in (1, 2):
            self._fail(expected, input)
        first = 0 if self.zero_based_index else 1
        if all(issparse(p) for p in parts):
            mats = [_csr(p) for p in parts]
            if any(m.ndim != 2 for m in mats) or (len(mats) == 2 and (
                    mats[0].shape != mats[1].shape
                    or not np.array_equal(mats[0].indptr, mats[1].indptr)
                    or not np.array_equal(mats[0].indices, mats[1].indices))):
                self._fail("ids and weights with the same sparsity pattern", input)
            n = mats[0].shape[0]
            rows = np.repeat(np.arange(n), np.diff(mats[0].indptr))
            raw, weights = mats[0].data, (mats[1].data if len(mats) == 2 else None)
        elif all(isinstance(p, np.ndarray) and p.ndim == 2 for p in parts):
            if len(parts) == 2 and parts[0].shape != parts[1].shape:
                self._fail("ids and weights of one shape", input)
            n = parts[0].shape[0]
            present = parts[0] >= first
            rows = np.nonzero(present)[0]
            raw = parts[0][present]
            weights = parts[1][present] if len(parts) == 2 else None
        else:
            self._fail(expected, input)
        ids = _to_ids(self, raw, self.n_index, self.zero_based_index, where="id")
        if weights is not None:
            weights = np.asarray(weights, dtype=self.weight.dtype)
        return n, rows, ids, weights

    def update_output(self, input):
        n, rows, ids, w = self._entries(input)
        dtype = self.weight.dtype
        e = self.weight[ids]
        scale = None
        if self.max_norm > 0 and len(ids):
            norms = np.sqrt((e * e).sum(axis=1))
            scale = np.minimum(1.0, self.max_norm / np.maximum(norms, 1e-30)).astype(dtype)
            e = e * scale[:, None]
        coef = np.ones(len(ids), dtype=dtype) if w is None else w
        if self.combiner == "sum":
            denom = np.ones(n, dtype=dtype)
        else:
            sums = np.bincount(rows, coef if self.combiner == "mean" else coef * coef,
                               minlength=n).astype(dtype)
            denom = sums if self.combiner == "mean" else np.sqrt(sums)
            denom[denom == 0] = 1
        coef = coef / denom[rows]
        out = self._buffer("output", (n, self.n_output), dtype)
        out.fill(0)
        np.add.at(out, rows, e * coef[:, None])
        self._ctx = (rows, ids, coef, scale, e)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        parts = list(input) if isinstance(input, (list, tuple)) else [input]
        if any(issparse(p) for p in parts):
            return None
        grads = [np.zeros(p.shape, dtype=self.weight.dtype) for p in parts]
        return grads if isinstance(input, (list, tuple)) else grads[0]

    def acc_grad_parameters(self, input, grad_output):
        rows, ids, coef, scale, e = self._ctx
        g = np.asarray(grad_output, dtype=self.weight.dtype)[rows] * coef[:, None]
        if scale is not None:
            clipped = scale < 1
            if clipped.any():
                # d(m e / |e|) = (m / |e|) (I - ê êᵀ): drop the radial part, then scale
                u = e[clipped] / self.max_norm  # the clipped row's direction ê
                gc = g[clipped]
                g[clipped] = scale[clipped][:, None] * (gc - (gc * u).sum(axis=1)[:, None] * u)
        np.add.at(self.grad_weight, ids, g)

    def extra_repr(self):
        return f"{self.n_index} -> {self.n_output}, {self.combiner}"


class SparseLinear(DropsActivations, Linear):
    """``y = x W^T + b`` for a sparse input ``x`` (BigDL ``SparseLinear``).

    As in BigDL, no gradient goes back to the (usually huge) input unless asked for with
    ``backwardStart`` / ``backwardLength``: then ``backward`` returns the gradient of the
    input columns ``backwardStart .. backwardStart + backwardLength - 1`` (1-based), as a dense
    ``(N, backwardLength)`` array (e.g. the dense half of a Wide & Deep input); otherwise None.

    Args:
        input_size: number of input columns (> 0).
        output_size: size of each output row (> 0).
        with_bias: learn an additive bias (default True).
        backwardStart: first input column (1-based) that gets a gradient, -1 (default) for none.
        backwardLength: number of those columns, -1 (default) for none.
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.
        init_weight, init_bias: optional arrays to start from; otherwise ``RandomUniform()``.
        init_grad_weight, init_grad_bias: accepted for BigDL compatibility and ignored
            (gradients start at zero).

    Input shape: ``(N, input_size)``, a ``scipy.sparse`` matrix (or a dense array).
    Output shape: ``(N, output_size)``.
    """

    _TRANSIENT = ("_x",)

    def __init__(self, input_size, output_size, with_bias=True, backwardStart=-1,
                 backwardLength=-1, wRegularizer=None, bRegularizer=None, init_weight=None,
                 init_bias=None, init_grad_weight=None, init_grad_bias=None):
        Linear.__init__(self, input_size, output_size, with_bias, wRegularizer, bRegularizer,
                        init_weight, init_bias)
        for arg, value in (("backwardStart", backwardStart), ("backwardLength", backwardLength)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or \
                    (value < 1 and value != -1):
                raise ValueError(f"SparseLinear: {arg} must be a positive int or -1, got {value!r}")
        if backwardStart > 0 and backwardLength > 0 and \
                backwardStart + backwardLength - 1 > self.input_size:
            raise ValueError(f"SparseLinear: columns {backwardStart} .. "
                             f"{backwardStart + backwardLength - 1} exceed input_size "
                             f"{self.input_size}")
        self.backward_start, self.backward_length = int(backwardStart), int(backwardLength)

    def _input(self, input):
        expected = f"(N, {self.input_size}) sparse"
        if issparse(input):
            x = input.tocsr()
            if x.ndim != 2 or x.shape[1] != self.input_size:
                self._fail(expected, input)
            return x.astype(self.weight.dtype) if x.dtype != self.weight.dtype else x
        if not isinstance(input, np.ndarray) or input.ndim != 2 or \
                input.shape[1] != self.input_size:
            self._fail(expected, input)
        return input.astype(self.weight.dtype, copy=False)

    def update_output(self, input):
        x = self._input(input)
        self._x = x
        out = self._buffer("output", (x.shape[0], self.output_size), self.weight.dtype)
        out[...] = x @ self.weight.T
        if self.with_bias:
            out += self.bias
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        if self.backward_start < 1 or self.backward_length < 1:
            return None
        s = self.backward_start - 1
        return np.asarray(grad_output) @ self.weight[:, s: s + self.backward_length]

    def acc_grad_parameters(self, input, grad_output):
        g = np.asarray(grad_output, dtype=self.weight.dtype)
        self.grad_weight += np.asarray(self._x.T @ g).T
        if self.with_bias:
            self.grad_bias += g.sum(axis=0)

    def extra_repr(self):
        return (f"{self.input_size} -> {self.output_size}"
                + ("" if self.with_bias else ", without bias"))
