"""Distances, similarities and products (BigDL ``nn``).

Layers with weights: Bilinear, Cosine, Euclidean.  Table layers without weights:
CosineDistance, PairwiseDistance, DotProduct, MM, MV.  (Maxout and Highway are in
``workbench.nn.core.dense``.)
"""
from __future__ import annotations

import numbers

import numpy as np

from ..._checks import positive_int
from ..initializers import RandomUniform
from ..module import Module, check_grad_output

__all__ = ["Bilinear", "Cosine", "Euclidean", "CosineDistance", "PairwiseDistance", "DotProduct",
           "MM", "MV"]

_TINY = 1e-300  # guards divisions by a norm that is exactly 0 (whose gradient is taken as 0)


def _pair(module, input, expected, ndims=(1, 2)):
    """``[a, b]``: two tensors of one shape with ``ndims`` dimensions, in one float dtype."""
    if not isinstance(input, (list, tuple)) or len(input) != 2 or not all(
            isinstance(t, np.ndarray) and t.ndim in ndims for t in input) or \
            input[0].shape != input[1].shape:
        module._fail(expected, input)
    dtype = np.result_type(*input)
    dtype = dtype if dtype.kind == "f" else np.dtype(np.float32)
    return [t.astype(dtype, copy=False) for t in input]


# ---------------------------------------------------------------------- layers with weights

class Bilinear(Module):
    """Bilinear form of two inputs: ``y_k = x1 W_k x2^T + b_k`` (as ``torch.nn.Bilinear``).

    Args:
        input_size1, input_size2: sizes of the rows of ``x1`` and ``x2``.
        output_size: number of outputs ``k``.
        bias_res: learn a bias (default True).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.

    Weight ``(output_size, input_size1, input_size2)``, bias ``(output_size,)``, initialized
    uniform in ``±1/sqrt(input_size1)`` (``weight_init_method`` / ``bias_init_method``).

    Input shape: a table ``[x1 (N, input_size1), x2 (N, input_size2)]``.
    Output shape: ``(N, output_size)``.
    """

    def __init__(self, input_size1, input_size2, output_size, bias_res=True, wRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        self.input_size1 = positive_int("Bilinear", "input_size1", input_size1)
        self.input_size2 = positive_int("Bilinear", "input_size2", input_size2)
        self.output_size = positive_int("Bilinear", "output_size", output_size)
        self.bias_res = bool(bias_res)
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (self.output_size, self.input_size1, self.input_size2))
        if self.bias_res:
            self._add_parameter("bias", (self.output_size,))
        self.reset()
        self._set_regularizer("weight", wRegularizer)
        if self.bias_res:
            self._set_regularizer("bias", bRegularizer)

    def reset(self):
        self.weight_init_method.init(self.weight, self.input_size1, self.output_size)
        if self.bias_res:
            self.bias_init_method.init(self.bias, self.input_size1, self.output_size)
        return self

    def _inputs(self, input):
        expected = f"[(N, {self.input_size1}), (N, {self.input_size2})]"
        if not isinstance(input, (list, tuple)) or len(input) != 2:
            self._fail(expected, input)
        a = self._as_array(input[0], (2,), expected) if isinstance(input[0], np.ndarray) else None
        b = self._as_array(input[1], (2,), expected) if isinstance(input[1], np.ndarray) else None
        if a is None or b is None or a.shape[1] != self.input_size1 or \
                b.shape[1] != self.input_size2 or len(a) != len(b):
            self._fail(expected, input)
        return a, b

    def update_output(self, input):
        a, b = self._inputs(input)
        out = self._buffer("output", (len(a), self.output_size), self.weight.dtype)
        out[...] = np.einsum("ni,kij,nj->nk", a, self.weight, b, optimize=True)
        if self.bias_res:
            out += self.bias
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        a, b = self._inputs(input)
        ga = self._buffer("grad_input1", a.shape, a.dtype)
        gb = self._buffer("grad_input2", b.shape, b.dtype)
        ga[...] = np.einsum("nk,kij,nj->ni", grad_output, self.weight, b, optimize=True)
        gb[...] = np.einsum("nk,kij,ni->nj", grad_output, self.weight, a, optimize=True)
        return [ga, gb]

    def acc_grad_parameters(self, input, grad_output):
        a, b = self._inputs(input)
        self.grad_weight += np.einsum("nk,ni,nj->kij", grad_output, a, b, optimize=True)
        if self.bias_res:
            self.grad_bias += np.sum(grad_output, axis=0)

    def extra_repr(self):
        return f"{self.input_size1}, {self.input_size2} -> {self.output_size}" + \
            ("" if self.bias_res else ", without bias")


class Cosine(Module):
    """Cosine similarity of each input row to ``output_size`` learned centres:
    ``y_j = <x, w_j> / (|x| |w_j|)`` (BigDL / Torch ``Cosine``; norms get ``+1e-12``).

    Args:
        input_size: size of an input row.
        output_size: number of centres (rows of the weight).

    Weight ``(output_size, input_size)``, uniform in ``±1/sqrt(output_size)`` as BigDL.

    Input shape: ``(N, input_size)`` or ``(input_size,)``.
    Output shape: ``(N, output_size)`` or ``(output_size,)``.
    """

    EPS = 1e-12

    def __init__(self, input_size, output_size):
        super().__init__()
        self.input_size = positive_int("Cosine", "input_size", input_size)
        self.output_size = positive_int("Cosine", "output_size", output_size)
        self.weight_init_method = RandomUniform()
        self._add_parameter("weight", (self.output_size, self.input_size))
        self.reset()

    def reset(self):
        self.weight_init_method.init(self.weight, self.output_size, self.input_size)
        return self

    def _parts(self, input):
        expected = f"(N, {self.input_size})"
        x = self._as_array(input, (1, 2), expected)
        if x.shape[-1] != self.input_size:
            self._fail(expected, x)
        x2 = x.reshape(-1, self.input_size)
        xn = np.sqrt(np.sum(x2 * x2, axis=1, keepdims=True))       # (N, 1)
        wn = np.sqrt(np.sum(self.weight ** 2, axis=1))[None, :]    # (1, K)
        dots = x2 @ self.weight.T                                  # (N, K)
        return x, x2, xn, wn, dots

    def update_output(self, input):
        x, _, xn, wn, dots = self._parts(input)
        out = self._buffer("output", x.shape[:-1] + (self.output_size,), x.dtype)
        out[...] = (dots / ((xn + self.EPS) * (wn + self.EPS))).reshape(out.shape)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x, x2, xn, wn, dots = self._parts(input)
        g = np.reshape(grad_output, dots.shape)
        a, b = xn + self.EPS, wn + self.EPS
        gi = (g / (a * b)) @ self.weight
        gi -= np.sum(g * dots / (a * a * b), axis=1, keepdims=True) * x2 / np.maximum(xn, _TINY)
        out = self._buffer("grad_input", x.shape, x.dtype)
        out[...] = gi.reshape(x.shape)
        return out

    def acc_grad_parameters(self, input, grad_output):
        x, x2, xn, wn, dots = self._parts(input)
        g = np.reshape(grad_output, dots.shape)
        a, b = xn + self.EPS, wn + self.EPS
        gw = (g / (a * b)).T @ x2
        gw -= (np.sum(g * dots / (a * b * b), axis=0) / np.maximum(wn[0], _TINY))[:, None] \
            * self.weight
        self.grad_weight += gw

    def extra_repr(self):
        return f"{self.input_size} -> {self.output_size}"


class Euclidean(Module):
    """Euclidean distance of each input row to ``output_size`` learned centres:
    ``y_j = |x - w_j|`` with ``w_j`` column ``j`` of the weight (BigDL / Torch ``Euclidean``).

    Args:
        input_size: size of an input row.
        output_size: number of centres.
        fast_backward: BigDL's flag for reusing forward buffers; accepted and ignored (the
            backward pass always reuses them here).

    Weight ``(input_size, output_size)``, uniform in ``±1/sqrt(input_size)``.  Where a distance
    is 0 its gradient is taken as 0.

    Input shape: ``(N, input_size)`` or ``(input_size,)``.
    Output shape: ``(N, output_size)`` or ``(output_size,)``.
    """

    def __init__(self, input_size, output_size, fast_backward=True):
        super().__init__()
        self.input_size = positive_int("Euclidean", "input_size", input_size)
        self.output_size = positive_int("Euclidean", "output_size", output_size)
        self.fast_backward = bool(fast_backward)
        self.weight_init_method = RandomUniform()
        self._add_parameter("weight", (self.input_size, self.output_size))
        self.reset()

    def reset(self):
        self.weight_init_method.init(self.weight, self.input_size, self.output_size)
        return self

    def _diff(self, input):
        expected = f"(N, {self.input_size})"
        x = self._as_array(input, (1, 2), expected)
        if x.shape[-1] != self.input_size:
            self._fail(expected, x)
        return x, x.reshape(-1, self.input_size, 1) - self.weight[None]   # (N, D, K)

    def update_output(self, input):
        x, diff = self._diff(input)
        dist = np.sqrt(np.sum(diff * diff, axis=1))
        out = self._buffer("output", x.shape[:-1] + (self.output_size,), x.dtype)
        out[...] = dist.reshape(out.shape)
        return out

    def _scaled(self, input, grad_output):
        x, diff = self._diff(input)
        dist = self.output.reshape(-1, 1, self.output_size)
        g = np.reshape(grad_output, dist.shape)
        return x, diff * np.where(dist > 0, g / np.maximum(dist, _TINY), 0)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x, scaled = self._scaled(input, grad_output)
        gi = self._buffer("grad_input", x.shape, x.dtype)
        gi[...] = scaled.sum(axis=2).reshape(x.shape)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        _, scaled = self._scaled(input, grad_output)
        self.grad_weight -= scaled.sum(axis=0)

    def extra_repr(self):
        return f"{self.input_size} -> {self.output_size}"


# ---------------------------------------------------------------------- table layers

class _RowPair(Module):
    """A per-row function of ``[a, b]`` (vectors or batches of rows); ``(D,)`` gives ``(1,)``."""

    _EXPECTED = "a table [a, b] of two (N, D) or (D,) tensors of one shape"

    def _rows(self, input):
        a, b = _pair(self, input, self._EXPECTED)
        return (a.reshape(1, -1), b.reshape(1, -1)) if a.ndim == 1 else (a, b)

    def update_output(self, input):
        a, b = self._rows(input)
        out = self._buffer("output", (len(a),), a.dtype)
        out[...] = self._forward(a, b)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        a, b = self._rows(input)
        ga, gb = self._backward(a, b, np.asarray(grad_output, a.dtype)[:, None])
        grads = []
        for i, (x, g) in enumerate(zip(input, (ga, gb))):
            buf = self._buffer(f"grad_input{i}", x.shape, a.dtype)
            buf[...] = g.reshape(x.shape)
            grads.append(buf)
        return grads


class DotProduct(_RowPair):
    """Dot product of each pair of rows: ``y_n = <a_n, b_n>``.

    Input shape: a table ``[a, b]`` of two ``(N, D)`` (or ``(D,)``) tensors.
    Output shape: ``(N,)`` (``(1,)`` for vectors, as BigDL).
    """

    def _forward(self, a, b):
        return np.sum(a * b, axis=1)

    def _backward(self, a, b, g):
        return g * b, g * a


class CosineDistance(_RowPair):
    """Cosine similarity of each pair of rows: ``y_n = <a_n, b_n> / (|a_n| |b_n|)`` (BigDL /
    Torch ``CosineDistance``; the squared norms get ``+1e-12``).

    Input shape: a table ``[a, b]`` of two ``(N, D)`` (or ``(D,)``) tensors.
    Output shape: ``(N,)`` (``(1,)`` for vectors).
    """

    EPS = 1e-12

    def _norms(self, a, b):
        w1 = np.sum(a * a, axis=1, keepdims=True) + self.EPS
        w2 = np.sum(b * b, axis=1, keepdims=True) + self.EPS
        return w1, w2, np.sqrt(w1 * w2)

    def _forward(self, a, b):
        _, _, w = self._norms(a, b)
        return np.sum(a * b, axis=1) / w[:, 0]

    def _backward(self, a, b, g):
        w1, w2, w = self._norms(a, b)
        y = np.sum(a * b, axis=1, keepdims=True) / w
        return g * (b / w - y * a / w1), g * (a / w - y * b / w2)


class PairwiseDistance(_RowPair):
    """The ``L_norm`` distance of each pair of rows: ``y_n = |a_n - b_n|_p``.

    Args:
        norm: the ``p`` of the norm (default 2), >= 1.

    Where a distance is 0 its gradient is taken as 0.

    Input shape: a table ``[a, b]`` of two ``(N, D)`` (or ``(D,)``) tensors.
    Output shape: ``(N,)`` (``(1,)`` for vectors).
    """

    def __init__(self, norm=2):
        super().__init__()
        if isinstance(norm, bool) or not isinstance(norm, numbers.Real) or not norm >= 1:
            raise ValueError(f"PairwiseDistance: norm must be a number >= 1, got {norm!r}")
        self.norm = norm

    def _forward(self, a, b):
        d = np.abs(a - b)
        return np.sum(d ** self.norm, axis=1) ** (1.0 / self.norm)

    def _backward(self, a, b, g):
        d = a - b
        dist = self._forward(a, b)[:, None]
        if self.norm == 1:
            gd = np.sign(d)
        else:
            gd = np.sign(d) * np.abs(d) ** (self.norm - 1) / np.maximum(dist, _TINY) ** (
                self.norm - 1)
        gd = g * np.where(dist > 0, gd, 0)
        return gd, -gd

    def extra_repr(self):
        return f"{self.norm:g}"


class MM(Module):
    """Matrix product of a table ``[A, B]``: ``op(A) @ op(B)``, batched over a leading dimension
    (BigDL ``MM``).

    Args:
        trans_a, trans_b: transpose the (last two dimensions of) ``A`` / ``B`` first.

    Input shape: ``[A (m, k), B (k, p)]`` or ``[A (N, m, k), B (N, k, p)]`` (before the
    transposes).  Output shape: ``(m, p)`` or ``(N, m, p)``.
    """

    def __init__(self, trans_a=False, trans_b=False):
        super().__init__()
        self.trans_a, self.trans_b = bool(trans_a), bool(trans_b)

    def _ops(self, input):
        expected = "a table [A, B] of two matrices or two batches of matrices" + (
            "" if not (self.trans_a or self.trans_b) else
            f" (transposed: A {self.trans_a}, B {self.trans_b})")
        if not isinstance(input, (list, tuple)) or len(input) != 2 or not all(
                isinstance(t, np.ndarray) for t in input):
            self._fail(expected, input)
        a, b = input
        a = np.swapaxes(a, -1, -2) if self.trans_a and a.ndim >= 2 else a
        b = np.swapaxes(b, -1, -2) if self.trans_b and b.ndim >= 2 else b
        if a.ndim != b.ndim or a.ndim not in (2, 3) or a.shape[-1] != b.shape[-2] or (
                a.ndim == 3 and a.shape[0] != b.shape[0]):
            self._fail(expected, input)
        dtype = np.result_type(a, b)
        dtype = dtype if dtype.kind == "f" else np.dtype(np.float32)
        return a.astype(dtype, copy=False), b.astype(dtype, copy=False)

    def update_output(self, input):
        a, b = self._ops(input)
        out = self._buffer("output", a.shape[:-1] + b.shape[-1:], a.dtype)
        np.matmul(a, b, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        a, b = self._ops(input)
        g = np.asarray(grad_output, a.dtype)
        ga = g @ np.swapaxes(b, -1, -2)
        gb = np.swapaxes(a, -1, -2) @ g
        grads = []
        for i, (grad, trans) in enumerate(((ga, self.trans_a), (gb, self.trans_b))):
            buf = self._buffer(f"grad_input{i}", input[i].shape, a.dtype)
            buf[...] = np.swapaxes(grad, -1, -2) if trans else grad
            grads.append(buf)
        return grads

    def extra_repr(self):
        return f"{self.trans_a}, {self.trans_b}"


class MV(Module):
    """Matrix-vector product of a table ``[M, v]``: ``op(M) @ v``, batched over a leading
    dimension (BigDL ``MV``).

    Args:
        trans: transpose (the last two dimensions of) ``M`` first.

    Input shape: ``[M (m, n), v (n,)]`` or ``[M (N, m, n), v (N, n)]`` (before the transpose).
    Output shape: ``(m,)`` or ``(N, m)``.
    """

    def __init__(self, trans=False):
        super().__init__()
        self.trans = bool(trans)

    def _ops(self, input):
        expected = "a table [M, v] of a matrix and a vector or batches of them" + (
            " (M transposed)" if self.trans else "")
        if not isinstance(input, (list, tuple)) or len(input) != 2 or not all(
                isinstance(t, np.ndarray) for t in input):
            self._fail(expected, input)
        m, v = input
        m = np.swapaxes(m, -1, -2) if self.trans and m.ndim >= 2 else m
        if m.ndim not in (2, 3) or v.ndim != m.ndim - 1 or m.shape[-1] != v.shape[-1] or (
                m.ndim == 3 and m.shape[0] != v.shape[0]):
            self._fail(expected, input)
        dtype = np.result_type(m, v)
        dtype = dtype if dtype.kind == "f" else np.dtype(np.float32)
        return m.astype(dtype, copy=False), v.astype(dtype, copy=False)

    def update_output(self, input):
        m, v = self._ops(input)
        out = self._buffer("output", m.shape[:-1], m.dtype)
        out[...] = np.matmul(m, v[..., None])[..., 0]
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        m, v = self._ops(input)
        g = np.asarray(grad_output, m.dtype)
        gm = g[..., :, None] * v[..., None, :]
        gv = np.matmul(np.swapaxes(m, -1, -2), g[..., None])[..., 0]
        bm = self._buffer("grad_input0", input[0].shape, m.dtype)
        bm[...] = np.swapaxes(gm, -1, -2) if self.trans else gm
        bv = self._buffer("grad_input1", input[1].shape, m.dtype)
        bv[...] = gv
        return [bm, bv]

    def extra_repr(self):
        return str(self.trans)
