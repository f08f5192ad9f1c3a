"""Similarity and ranking criteria: CosineEmbeddingCriterion, CosineDistanceCriterion,
CosineProximityCriterion, HingeEmbeddingCriterion, L1HingeEmbeddingCriterion,
MarginRankingCriterion, DotProductCriterion.

BigDL's class names, argument order and formulas.  Tables (pairs of inputs) are lists.
"""
from __future__ import annotations

import numpy as np

from .base import check_signs, float_input, number_arg, same_shape_target, sign_labels, table_input
from .criterion import Criterion
from ..module import shape_of

__all__ = ["CosineEmbeddingCriterion", "CosineDistanceCriterion", "CosineProximityCriterion",
           "HingeEmbeddingCriterion", "L1HingeEmbeddingCriterion", "MarginRankingCriterion",
           "DotProductCriterion"]

_COS_EPS = 1e-12   # added to the squared norms, as Torch7 / BigDL / torch


def _rows(criterion, x):
    """A ``(D,)`` or ``(N, D)`` tensor as ``(N, D)``."""
    if x.ndim not in (1, 2):
        criterion._fail(f"expected (N, D) or (D,) tensors, got {shape_of(x)}")
    return x.reshape(1, -1) if x.ndim == 1 else x


def _cosine(a, b):
    """Row-wise ``cos(a, b)`` and its gradients w.r.t. ``a`` and ``b``."""
    dot = np.sum(a * b, axis=1, keepdims=True)
    na = np.sum(a * a, axis=1, keepdims=True) + _COS_EPS
    nb = np.sum(b * b, axis=1, keepdims=True) + _COS_EPS
    w = 1 / np.sqrt(na * nb)
    cos = dot * w
    return cos[:, 0], (b - dot / na * a) * w, (a - dot / nb * b) * w


def _pair(criterion, input, expected):
    x1, x2 = table_input(criterion, input, 2, expected)
    if x1.shape != x2.shape:
        criterion._fail(f"expected two tensors of the same shape, got {shape_of(input)}")
    return x1, x2


class CosineEmbeddingCriterion(Criterion):
    """Cosine embedding loss on a pair ``[x1, x2]`` with labels ``y`` of 1 (similar) or -1:
    ``1 - cos(x1, x2)`` for ``y = 1``, ``max(0, cos(x1, x2) - margin)`` for ``y = -1``; averaged
    over the batch when ``size_average`` (default).

    Args:
        margin: a number in [-1, 1]; 0 to 0.5 is suggested.
        size_average: mean over the batch instead of the sum.

    Input: a table ``[x1, x2]`` of two ``(N, D)`` (or ``(D,)``) tensors.
    Target: ``(N,)`` labels of 1 or -1 (or a one-tensor table ``[y]``, as BigDL).
    """

    def __init__(self, margin=0.0, size_average=True):
        super().__init__()
        self.margin = number_arg("CosineEmbeddingCriterion", "margin", margin)
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x1, x2 = _pair(self, input, "[x1, x2] of (N, D) or (D,) tensors")
        a, b = _rows(self, x1), _rows(self, x2)
        y = sign_labels(self, target, len(a), a.dtype)
        cos, ga, gb = _cosine(a, b)
        return x1, y, cos, ga, gb, (len(a) if self.size_average else 1)

    def update_output(self, input, target):
        _, y, cos, _, _, scale = self._prepare(input, target)
        loss = np.where(y == 1, 1 - cos, np.maximum(cos - self.margin, 0))
        return float(loss.sum()) / scale

    def update_grad_input(self, input, target):
        x1, y, cos, ga, gb, scale = self._prepare(input, target)
        factor = np.where(y == 1, -1.0, (cos > self.margin).astype(float))[:, None] / scale
        return [(ga * factor).astype(x1.dtype).reshape(x1.shape),
                (gb * factor).astype(x1.dtype).reshape(x1.shape)]


class CosineDistanceCriterion(Criterion):
    """Cosine distance between input and target rows: ``1 - cos(x, y)``, averaged over the batch
    when ``size_average`` (default).

    Input shape: ``(N, D)`` or ``(D,)``.  Target: the input's shape.
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, (1, 2), "(N, D) or (D,)")
        t = same_shape_target(self, x, target)
        cos, ga, _ = _cosine(_rows(self, x), _rows(self, t))
        return x, cos, ga, (len(cos) if self.size_average else 1)

    def update_output(self, input, target):
        _, cos, _, scale = self._prepare(input, target)
        return float(np.sum(1 - cos)) / scale

    def update_grad_input(self, input, target):
        x, _, ga, scale = self._prepare(input, target)
        return (-ga / scale).astype(x.dtype).reshape(x.shape)


class CosineProximityCriterion(Criterion):
    """Negative mean cosine proximity, as Keras' ``cosine_proximity`` / BigDL: both tensors are
    L2-normalized along the last axis (``x / sqrt(max(sum(x^2), 1e-12))``) and
    ``loss = -sum(x' * y') / n`` with ``n`` the number of elements (BigDL's ``mean``).

    Input shape: ``(..., D)``.  Target: the input's shape.
    """

    _FLOOR = 1e-12

    def __init__(self):
        super().__init__()

    def _prepare(self, input, target):
        x = float_input(self, input, range(1, 33), "a tensor (..., D)")
        t = same_shape_target(self, x, target)
        sx = np.sum(x * x, axis=-1, keepdims=True)
        rx = 1 / np.sqrt(np.maximum(sx, self._FLOOR))
        ty = t / np.sqrt(np.maximum(np.sum(t * t, axis=-1, keepdims=True), self._FLOOR))
        return x, sx, rx, ty

    def update_output(self, input, target):
        x, _, rx, ty = self._prepare(input, target)
        return -float(np.sum(x * rx * ty)) / max(x.size, 1)

    def update_grad_input(self, input, target):
        x, sx, rx, ty = self._prepare(input, target)
        along = np.sum(x * ty, axis=-1, keepdims=True)
        grad = ty * rx - np.where(sx > self._FLOOR, along * rx ** 3, 0) * x
        return (-grad / max(x.size, 1)).astype(x.dtype)


class HingeEmbeddingCriterion(Criterion):
    """Hinge embedding loss on distances ``x`` with labels ``y`` of 1 or -1: ``x`` for
    ``y = 1``, ``max(0, margin - x)`` for ``y = -1``; summed, divided by the number of
    elements when ``size_average`` (default).  Typically ``x`` is an L1 pairwise distance.

    Args:
        margin: the margin (default 1).
        size_average: mean over the elements instead of the sum.

    Input shape: any.  Target: the input's shape, values 1 or -1.
    """

    def __init__(self, margin=1.0, size_average=True):
        super().__init__()
        self.margin = number_arg("HingeEmbeddingCriterion", "margin", margin)
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, None, "a tensor")
        t = same_shape_target(self, x, target)
        check_signs(self, t)
        return x, t, (max(x.size, 1) if self.size_average else 1)

    def update_output(self, input, target):
        x, t, scale = self._prepare(input, target)
        loss = np.where(t == 1, x, np.maximum(self.margin - x, 0))
        return float(loss.sum()) / scale

    def update_grad_input(self, input, target):
        x, t, scale = self._prepare(input, target)
        grad = np.where(t == 1, 1.0, -(self.margin - x > 0).astype(x.dtype))
        return (grad / scale).astype(x.dtype)


class L1HingeEmbeddingCriterion(Criterion):
    """Hinge embedding loss on the L1 distance ``d = ||x1 - x2||_1`` of a pair: ``d`` for
    ``y = 1``, ``max(0, margin - d)`` for ``y = -1``.  A batch of pairs sums the losses.

    Args:
        margin: the margin (default 1).

    Input: a table ``[x1, x2]`` of two ``(D,)`` tensors (or ``(N, D)`` for N pairs).
    Target: one label of 1 or -1, shape ``(1,)`` (``(N,)`` for N pairs).
    """

    def __init__(self, margin=1.0):
        super().__init__()
        self.margin = number_arg("L1HingeEmbeddingCriterion", "margin", margin)

    def _prepare(self, input, target):
        x1, x2 = _pair(self, input, "[x1, x2] of (D,) or (N, D) tensors")
        a, b = _rows(self, x1), _rows(self, x2)
        y = sign_labels(self, target, len(a), a.dtype)
        return x1, a - b, np.abs(a - b).sum(axis=1), y

    def update_output(self, input, target):
        _, _, d, y = self._prepare(input, target)
        return float(np.where(y == 1, d, np.maximum(self.margin - d, 0)).sum())

    def update_grad_input(self, input, target):
        x1, diff, d, y = self._prepare(input, target)
        factor = np.where(y == 1, 1.0, -(self.margin - d > 0).astype(float))[:, None]
        g = (np.sign(diff) * factor).astype(x1.dtype).reshape(x1.shape)
        return [g, -g]


class MarginRankingCriterion(Criterion):
    """Ranking hinge loss on a pair of scores: ``max(0, -y * (x1 - x2) + margin)``, where
    ``y = 1`` means ``x1`` should rank higher and ``y = -1`` the opposite; averaged over the
    batch when ``size_average`` (default).

    Args:
        margin: the margin (default 1).
        size_average: mean over the batch instead of the sum.

    Input: a table ``[x1, x2]`` of two ``(N,)`` (or ``(N, 1)``) score tensors.
    Target: ``(N,)`` labels of 1 or -1 (or a one-tensor table ``[y]``, as BigDL).
    """

    def __init__(self, margin=1.0, size_average=True):
        super().__init__()
        self.margin = number_arg("MarginRankingCriterion", "margin", margin)
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x1, x2 = _pair(self, input, "[x1, x2] of (N,) score tensors")
        if x1.ndim > 2 or (x1.ndim == 2 and x1.shape[1] != 1):
            self._fail(f"expected (N,) or (N, 1) scores, got {shape_of(input)}")
        a, b = x1.reshape(-1), x2.reshape(-1)
        y = sign_labels(self, target, len(a), a.dtype)
        z = -y * (a - b) + self.margin
        return x1, y, z, (len(a) if self.size_average else 1)

    def update_output(self, input, target):
        _, _, z, scale = self._prepare(input, target)
        return float(np.maximum(z, 0).sum()) / scale

    def update_grad_input(self, input, target):
        x1, y, z, scale = self._prepare(input, target)
        g = (-y * (z > 0) / scale).astype(x1.dtype).reshape(x1.shape)
        return [g, -g]


class DotProductCriterion(Criterion):
    """The dot product of input and target, ``sum(x * y)``; divided by the batch size ``N``
    for ``(N, D)`` input when ``size_average``.  Its gradient is the target.

    Args:
        size_average: divide by the batch size (default False).

    Input shape: ``(N, D)`` or ``(D,)``.  Target: the input's shape.
    """

    def __init__(self, size_average=False):
        super().__init__()
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, (1, 2), "(N, D) or (D,)")
        t = same_shape_target(self, x, target)
        return x, t, (x.shape[0] if self.size_average and x.ndim == 2 else 1)

    def update_output(self, input, target):
        x, t, scale = self._prepare(input, target)
        return float(np.sum(x * t)) / scale

    def update_grad_input(self, input, target):
        x, t, scale = self._prepare(input, target)
        return (t / scale).astype(x.dtype)
