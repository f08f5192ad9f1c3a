"""Classification criteria: CategoricalCrossEntropy, MultiLabelSoftMarginCriterion,
MultiMarginCriterion, MultiLabelMarginCriterion, SoftMarginCriterion, MarginCriterion,
ClassSimplexCriterion, SoftmaxWithCriterion.

BigDL's class names, argument order and formulas.  Class ids are zero-based by default;
``zero_based_label=False`` accepts BigDL's 1-based ids.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..activation.activations import log_softmax, softmax
from .criterion import Criterion, LabelError, class_labels
from ..module import shape_of
from .base import (check_signs, float_input, number_arg, same_shape_target, weights_arg,
                   WeightedCriterion)
from .regression import MSECriterion

__all__ = ["CategoricalCrossEntropy", "MultiLabelSoftMarginCriterion", "MultiMarginCriterion",
           "MultiLabelMarginCriterion", "SoftMarginCriterion", "MarginCriterion",
           "ClassSimplexCriterion", "SoftmaxWithCriterion", "ClassNLLCriterion",
           "CrossEntropyCriterion", "BCECriterion"]

_CLASSES = "(N, C) or (C,)"


def _softplus(z):
    return np.logaddexp(0, z)


def _sigmoid(z):
    return np.exp(-np.logaddexp(0, -z))


def _scale(criterion, x):
    return max(x.size, 1) if criterion.size_average else 1


def _class_scores(criterion, input):
    """``(x, c, rows)``: the checked ``(N, C)`` or ``(C,)`` scores, the number of classes and
    the scores as ``(N, C)`` rows."""
    x = float_input(criterion, input, (1, 2), _CLASSES)
    c = x.shape[-1]
    return x, c, x.reshape(-1, c)


def _broadcast_weights(criterion, x):
    if criterion.weights is None:
        return None
    try:
        ok = np.broadcast_shapes(criterion.weights.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        criterion._fail(f"weights of shape {criterion.weights.shape} do not broadcast to the "
                        f"input {shape_of(x)}")
    return criterion.weights.astype(x.dtype)


def _class_weights(criterion, n_classes, x):
    if criterion.weights is None:
        return None
    if criterion.weights.ndim != 1 or len(criterion.weights) != n_classes:
        criterion._fail(f"weights of shape {criterion.weights.shape} do not match the "
                        f"{n_classes} classes of the input {shape_of(x)}")
    return criterion.weights.astype(x.dtype)


class CategoricalCrossEntropy(Criterion):
    """Cross-entropy of class probabilities against one-hot targets (Keras'
    ``categorical_crossentropy``; BigDL's ``CategoricalCrossEntropy``).

    ``loss = -1/N sum_n sum_c t[n, c] * log(p[n, c] / sum_c p[n, c])``: BigDL computes
    ``CrossEntropyCriterion(log(p), argmax(t))``, which is the same for one-hot targets (a soft
    target is used as a distribution, as Keras).  Probabilities are clipped at 1e-8 before the
    log.

    Input shape: ``(N, C)`` or ``(C,)`` probabilities (e.g. from ``SoftMax``).
    Target: one-hot rows of the input's shape.
    """

    _EPS = 1e-8

    def __init__(self):
        super().__init__()

    def _prepare(self, input, target):
        x = float_input(self, input, (1, 2), f"{_CLASSES} probabilities")
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0):
            bad = x[~(x >= 0)].ravel()[0].item()
            self._fail(f"expected non-negative probabilities, got {bad!r}")
        t = same_shape_target(self, x, target)
        if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
            raise LabelError(f"{self.label()}: one-hot targets must be non-negative, got "
                             f"{t[~(t >= 0)].ravel()[0].item()!r}")
        c = x.shape[-1]
        x2, t2 = x.reshape(-1, c), t.reshape(-1, c)
        total = np.maximum(x2.sum(axis=1, keepdims=True), self._EPS)
        return x, x2, t2, np.maximum(x2, self._EPS), total

    def update_output(self, input, target):
        _, x2, t2, q, total = self._prepare(input, target)
        return -float(np.sum(t2 * (np.log(q) - np.log(total)))) / len(x2)

    def update_grad_input(self, input, target):
        x, x2, t2, q, total = self._prepare(input, target)
        grad = np.where(x2 > self._EPS, -t2 / q, 0) + t2.sum(axis=1, keepdims=True) / total
        return (grad / len(x2)).astype(x.dtype).reshape(x.shape)


class MultiLabelSoftMarginCriterion(WeightedCriterion):
    """Multi-label loss on logits through a sigmoid (BigDL / torch ``MultiLabelSoftMargin``).

    ``loss = -sum w * (t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x)))``, divided by the number
    of elements when ``size_average`` (default), computed stably from the logits.

    Args:
        weights: optional weights broadcast against the input (e.g. one per class, ``(C,)``).
        size_average: mean over all elements (default) instead of the sum.

    Input shape: ``(N, C)`` or ``(C,)`` logits.
    Target: the input's shape, values in ``[0, 1]`` (1 marks a present label).
    """

    def __init__(self, weights=None, size_average=True):
        super().__init__()
        self.weights = weights_arg("MultiLabelSoftMarginCriterion", weights)
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, (1, 2), f"{_CLASSES} logits")
        t = same_shape_target(self, x, target)
        if t.size and not (np.all(t >= 0) and np.all(t <= 1)):
            raise LabelError(f"{self.label()}: targets must be in [0, 1], got "
                             f"{t[~((t >= 0) & (t <= 1))].ravel()[0].item()!r}")
        return x, t, _broadcast_weights(self, x)

    def update_output(self, input, target):
        x, t, w = self._prepare(input, target)
        loss = t * _softplus(-x) + (1 - t) * _softplus(x)
        if w is not None:
            loss = loss * w
        return float(loss.sum()) / _scale(self, x)

    def update_grad_input(self, input, target):
        x, t, w = self._prepare(input, target)
        grad = _sigmoid(x) - t
        if w is not None:
            grad = grad * w
        return (grad / _scale(self, x)).astype(x.dtype)


class MultiMarginCriterion(WeightedCriterion):
    """Multi-class hinge loss (Torch7 / BigDL ``MultiMarginCriterion``).

    For a sample with class ``y``:
    ``loss = sum_{i != y} w[y] * max(0, margin - x[y] + x[i])^p / C``, averaged over the batch
    when ``size_average`` (default), summed otherwise.

    Args:
        p: 1 (hinge) or 2 (squared hinge).
        weights: optional per-class weights, shape ``(C,)``.
        margin: the margin (default 1).
        size_average: mean over the batch instead of the sum.
        zero_based_label: True (default): labels are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Input shape: ``(N, C)`` or ``(C,)`` scores.
    Target: class ids, shape ``(N,)`` or ``(N, 1)``; a scalar for ``(C,)``.
    """

    def __init__(self, p=1, weights=None, margin=1.0, size_average=True, zero_based_label=True):
        super().__init__()
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"MultiMarginCriterion: p must be 1 or 2, got {p!r}")
        self.p = int(p)
        self.weights = weights_arg("MultiMarginCriterion", weights)
        self.margin = number_arg("MultiMarginCriterion", "margin", margin)
        self.size_average = bool(size_average)
        self.zero_based_label = bool(zero_based_label)

    def _hinge(self, input, target):
        x, c, x2 = _class_scores(self, input)
        w = _class_weights(self, c, x)
        ids = class_labels(self, x, target, c, self.zero_based_label)
        rows = np.arange(len(ids))
        z = self.margin - x2[rows, ids][:, None] + x2
        z[rows, ids] = 0
        np.maximum(z, 0, out=z)
        wy = np.ones((len(ids), 1), x.dtype) if w is None else w[ids][:, None]
        scale = c * (len(ids) if self.size_average else 1)
        return x, rows, ids, z, wy, scale

    def update_output(self, input, target):
        _, _, _, z, wy, scale = self._hinge(input, target)
        return float(np.sum(wy * z ** self.p)) / scale

    def update_grad_input(self, input, target):
        x, rows, ids, z, wy, scale = self._hinge(input, target)
        grad = wy * (z > 0) * (1 if self.p == 1 else 2 * z)
        grad[rows, ids] = -grad.sum(axis=1)
        return (grad / scale).astype(x.dtype).reshape(x.shape)


class MultiLabelMarginCriterion(Criterion):
    """Multi-class multi-label hinge loss (Torch7 / BigDL ``MultiLabelMarginCriterion``).

    The target row lists the sample's classes, ended by the first negative id (zero-based;
    with ``zero_based_label=False`` the ids are 1-based and end at the first 0, as BigDL).
    ``loss = sum_{j in targets} sum_{i not in targets} max(0, 1 - (x[j] - x[i])) / C``, averaged
    over the batch when ``size_average`` (default).

    Input shape: ``(N, C)`` or ``(C,)`` scores.
    Target: class ids of the input's shape, e.g. ``[3, 0, -1, 1]`` means classes 3 and 0.
    """

    def __init__(self, size_average=True, zero_based_label=True):
        super().__init__()
        self.size_average = bool(size_average)
        self.zero_based_label = bool(zero_based_label)

    def _hinge(self, input, target):
        x, c, x2 = _class_scores(self, input)
        t = np.asarray(target) if isinstance(target, (np.ndarray, list, tuple)) else None
        if t is None or t.shape != x.shape or t.dtype.kind not in "fiub":
            self._fail(f"expected a target of class ids of the input's shape {shape_of(x)}, "
                       f"got {shape_of(target) if t is None else shape_of(t)}")
        if t.dtype.kind == "f" and not np.all(t == np.round(t)):
            raise LabelError(f"{self.label()}: labels must be whole class ids, got "
                             f"{t[t != np.round(t)].ravel()[0].item()!r}")
        ids = t.reshape(-1, c).astype(np.int64) - (0 if self.zero_based_label else 1)
        valid = ~np.logical_or.accumulate(ids < 0, axis=1)
        bad = valid & (ids >= c)
        if bad.any():
            n, k = np.argwhere(bad)[0]
            hi = c - 1 if self.zero_based_label else c
            raise LabelError(f"{self.label()}: label {t.reshape(-1, c)[n, k].item()!r} at "
                             f"[{n}, {k}] is out of range [{0 if self.zero_based_label else 1}, "
                             f"{hi}] for {c} classes")
        count = np.zeros(x2.shape, x.dtype)   # how often each class is listed
        rows = np.repeat(np.arange(len(ids)), valid.sum(axis=1))
        np.add.at(count, (rows, ids[valid]), 1)
        pairs = count[:, :, None] * (count == 0)[:, None, :]        # (N, j, i)
        z = 1 - x2[:, :, None] + x2[:, None, :]
        active = pairs * (z > 0)
        scale = c * (len(x2) if self.size_average else 1)
        return x, z, active, scale

    def update_output(self, input, target):
        _, z, active, scale = self._hinge(input, target)
        return float(np.sum(active * z)) / scale

    def update_grad_input(self, input, target):
        x, _, active, scale = self._hinge(input, target)
        grad = active.sum(axis=1) - active.sum(axis=2)
        return (grad / scale).astype(x.dtype).reshape(x.shape)


class SoftMarginCriterion(Criterion):
    """Two-class logistic loss: ``sum log(1 + exp(-y * x))``, divided by the number of elements
    when ``size_average`` (default).

    Input shape: any.  Target: the input's shape, values 1 or -1.
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, None, "a tensor")
        t = same_shape_target(self, x, target)
        check_signs(self, t)
        return x, t

    def update_output(self, input, target):
        x, t = self._prepare(input, target)
        return float(_softplus(-t * x).sum()) / _scale(self, x)

    def update_grad_input(self, input, target):
        x, t = self._prepare(input, target)
        return (-t * _sigmoid(-t * x) / _scale(self, x)).astype(x.dtype)


class MarginCriterion(Criterion):
    """Two-class hinge loss: ``sum max(0, margin - x * y)`` (squared when ``squared``), divided by
    the number of elements when ``size_average`` (default).  With margin 1 it is Keras'
    ``hinge`` (``squared_hinge`` when squared).

    Args:
        margin: the margin (default 1).
        size_average: mean over the elements instead of the sum.
        squared: square each hinge term.

    Input shape: any.  Target: the input's shape, values 1 or -1.
    """

    def __init__(self, margin=1.0, size_average=True, squared=False):
        super().__init__()
        self.margin = number_arg("MarginCriterion", "margin", margin)
        self.size_average = bool(size_average)
        self.squared = bool(squared)

    def _hinge(self, input, target):
        x = float_input(self, input, None, "a tensor")
        t = same_shape_target(self, x, target)
        check_signs(self, t)
        return x, t, np.maximum(self.margin - x * t, 0)

    def update_output(self, input, target):
        x, _, h = self._hinge(input, target)
        return float(np.sum(h * h if self.squared else h)) / _scale(self, x)

    def update_grad_input(self, input, target):
        x, t, h = self._hinge(input, target)
        grad = -t * (2 * h if self.squared else (h > 0))
        return (grad / _scale(self, x)).astype(x.dtype)


def _regular_simplex(n_classes):
    """``n_classes`` unit vectors in ``n_classes - 1`` dimensions with equal pairwise angles
    (padded with a zero column to ``n_classes``), as Torch7's ``regsplex``."""
    n = n_classes - 1
    a = np.zeros((n + 1, n))
    for k in range(n):
        a[k, k] = 1.0 if k == 0 else np.sqrt(1 - np.dot(a[k, :k], a[k, :k]))
        a[k + 1:, k] = (a[k, k] ** 2 - 1 - 1 / n) / a[k, k]
    simplex = np.zeros((n_classes, n_classes))
    simplex[:, :n] = a
    return simplex


class ClassSimplexCriterion(MSECriterion):
    """Mean squared distance between the input and its class's vertex of a regular simplex
    (Torch7 / BigDL ``ClassSimplexCriterion``): each class is embedded as a unit vector, all at
    equal angles, and ``loss = mean((input - simplex[target])^2)``.

    Args:
        n_classes: the number of classes (> 1).
        zero_based_label: True (default): labels are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Input shape: ``(N, n_classes)`` or ``(n_classes,)``.
    Target: class ids, shape ``(N,)`` or ``(N, 1)``.
    """

    def __init__(self, n_classes, zero_based_label=True):
        super().__init__(size_average=True)
        if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) \
                or n_classes < 2:
            raise ValueError(f"ClassSimplexCriterion: n_classes must be an integer > 1, "
                             f"got {n_classes!r}")
        self.n_classes = int(n_classes)
        self.zero_based_label = bool(zero_based_label)
        self.simplex = _regular_simplex(self.n_classes)

    def _diff(self, input, target):
        x = float_input(self, input, (1, 2), f"(N, {self.n_classes}) or ({self.n_classes},)")
        if x.shape[-1] != self.n_classes:
            self._fail(f"expected input (N, {self.n_classes}) or ({self.n_classes},), "
                       f"got {shape_of(x)}")
        ids = class_labels(self, x, target, self.n_classes, self.zero_based_label)
        return x, x - self.simplex[ids].astype(x.dtype).reshape(x.shape)

    def __repr__(self):
        return f"nn.ClassSimplexCriterion({self.n_classes})"


class SoftmaxWithCriterion(Criterion):
    """Softmax + multinomial logistic loss over the class axis 1, Caffe-style (BigDL
    ``SoftmaxWithCriterion``), for per-pixel classification as well as plain batches.

    ``loss = -sum log softmax(x)[target]`` over the non-ignored positions, divided by the
    normalizer of ``normalize_mode``: ``"FULL"`` all positions, ``"VALID"`` (default) the
    non-ignored ones, ``"BATCH_SIZE"`` N, ``"NONE"`` 1 (at least 1).

    Args:
        ignore_label: a label value (in the labels' own numbering) whose positions are skipped.
        normalize_mode: ``"FULL"``, ``"VALID"``, ``"BATCH_SIZE"`` or ``"NONE"``.
        zero_based_label: True (default): labels are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Input shape: ``(N, C, d1, ...)`` scores (``(N, C)`` too).
    Target: class ids, ``(N, 1, d1, ...)`` or ``(N, d1, ...)``.
    """

    MODES = ("FULL", "VALID", "BATCH_SIZE", "NONE")

    def __init__(self, ignore_label=None, normalize_mode="VALID", zero_based_label=True):
        super().__init__()
        if ignore_label is not None and (not isinstance(ignore_label, (int, np.integer))
                                         or isinstance(ignore_label, bool)):
            raise ValueError(f"SoftmaxWithCriterion: ignore_label must be an integer or None, "
                             f"got {ignore_label!r}")
        if normalize_mode not in self.MODES:
            raise ValueError(f"SoftmaxWithCriterion: normalize_mode must be one of "
                             f"{', '.join(self.MODES)}, got {normalize_mode!r}")
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        self.normalize_mode = normalize_mode
        self.zero_based_label = bool(zero_based_label)

    def _prepare(self, input, target):
        x = float_input(self, input, range(2, 33), "(N, C, d1, ...) or (N, C)")
        n, c = x.shape[:2]
        inner = int(np.prod(x.shape[2:], dtype=np.int64))
        t = np.asarray(target) if isinstance(target, (np.ndarray, list, tuple)) else None
        if t is None or t.size != n * inner or (t.ndim and t.shape[0] != n):
            want = (n, 1) + x.shape[2:]
            self._fail(f"expected a target of {n * inner} class ids, shape "
                       f"({', '.join(map(str, want))}), got "
                       f"{shape_of(target) if t is None else shape_of(t)}")
        t = t.reshape(-1)
        valid = np.ones(t.shape, bool) if self.ignore_label is None else t != self.ignore_label
        first = 0 if self.zero_based_label else 1
        scores = np.moveaxis(x.reshape(n, c, inner), 1, 2).reshape(-1, c)
        ids = class_labels(self, scores, np.where(valid, t, first), c, self.zero_based_label)
        count = int(valid.sum())
        norm = {"FULL": n * inner, "VALID": count, "BATCH_SIZE": n,
                "NONE": 1}[self.normalize_mode]
        return x, scores, ids, valid, max(1, norm)

    def update_output(self, input, target):
        _, scores, ids, valid, norm = self._prepare(input, target)
        picked = log_softmax(scores, axis=1)[np.arange(len(ids)), ids]
        return -float(picked[valid].sum()) / norm

    def update_grad_input(self, input, target):
        x, scores, ids, valid, norm = self._prepare(input, target)
        grad = softmax(scores, axis=1)
        grad[np.arange(len(ids)), ids] -= 1
        grad[~valid] = 0
        grad /= norm
        n, c = x.shape[:2]
        return np.moveaxis(grad.reshape(n, -1, c), 2, 1).reshape(x.shape).astype(x.dtype)


class _ClassCriterion(WeightedCriterion):
    """Negative log-likelihood of class ids given (log-)probabilities of ``(N, C)`` / ``(C,)``."""

    _EXPECTED = "(N, C) or (C,)"

    def _setup(self, weights, size_average, zero_based_label):
        self.weights = weights_arg(type(self).__name__, weights)
        if self.weights is not None and self.weights.ndim != 1:
            raise ValueError(f"{type(self).__name__}: weights must be 1-D (one per class), "
                             f"got shape {self.weights.shape}")
        self.size_average = bool(size_average)
        self.zero_based_label = bool(zero_based_label)

    def _labels(self, x, target):
        n_classes = x.shape[-1]
        if self.weights is not None and len(self.weights) != n_classes:
            self._fail(f"weights has {len(self.weights)} entries but the input {shape_of(x)} "
                       f"has {n_classes} classes")
        ids = class_labels(self, x, target, n_classes, self.zero_based_label)
        w = (np.ones(len(ids), dtype=x.dtype) if self.weights is None
             else self.weights[ids].astype(x.dtype))
        scale = w.sum() if self.size_average else 1.0
        return ids, w, scale

    def _nll(self, logp, target):
        """Loss of log-probabilities ``logp`` (any of the accepted shapes)."""
        ids, w, scale = self._labels(logp, target)
        picked = logp.reshape(-1, logp.shape[-1])[np.arange(len(ids)), ids]
        return -float(np.dot(w, picked)) / scale

    def _nll_grad(self, logp, target):
        """Gradient of :meth:`_nll` w.r.t. ``logp`` (zero except at the target classes)."""
        ids, w, scale = self._labels(logp, target)
        grad = np.zeros(logp.shape, dtype=logp.dtype)
        grad.reshape(-1, logp.shape[-1])[np.arange(len(ids)), ids] = -w / scale
        return grad


class ClassNLLCriterion(_ClassCriterion):
    """Negative log-likelihood of the target classes (Torch7 / BigDL ``ClassNLLCriterion``).

    ``loss = -sum_i w[t_i] * input[i, t_i]``, divided by ``sum_i w[t_i]`` when ``size_average``
    (the number of samples without class weights).

    Args:
        weights: optional per-class weights, shape ``(C,)``.
        size_average: average over the batch (weighted mean) instead of summing.
        logProbAsInput: True (default): the input holds log-probabilities (e.g. from
            ``LogSoftMax``); False: it holds probabilities, clipped to ``[1e-8, 1 - 1e-8]``
            before the log (as BigDL; the gradient is ``-w / clipped p``).
        zero_based_label: True (default): labels are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Input shape: ``(N, C)`` or ``(C,)``.
    Target: class ids, shape ``(N,)`` or ``(N, 1)`` (ints or whole floats); a scalar for ``(C,)``.
    """

    _EPS = 1e-8

    def __init__(self, weights=None, size_average=True, logProbAsInput=True,
                 zero_based_label=True):
        super().__init__()
        self._setup(weights, size_average, zero_based_label)
        self.log_prob_as_input = bool(logProbAsInput)

    def _clipped(self, x):
        return np.clip(x, self._EPS, 1 - self._EPS)

    def update_output(self, input, target):
        x = float_input(self, input, (1, 2), self._EXPECTED)
        return self._nll(x if self.log_prob_as_input else np.log(self._clipped(x)), target)

    def update_grad_input(self, input, target):
        x = float_input(self, input, (1, 2), self._EXPECTED)
        if self.log_prob_as_input:
            return self._nll_grad(x, target)
        return self._nll_grad(x, target) / self._clipped(x)


class CrossEntropyCriterion(_ClassCriterion):
    """``LogSoftMax`` followed by ``ClassNLLCriterion``, computed stably in one step.

    Args:
        weights: optional per-class weights, shape ``(C,)``.
        size_average: weighted mean over the batch (default) instead of the sum.
        zero_based_label: True (default): labels are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Input shape: ``(N, C)`` or ``(C,)`` unnormalized scores.
    Target: class ids, shape ``(N,)`` or ``(N, 1)``.
    """

    def __init__(self, weights=None, size_average=True, zero_based_label=True):
        super().__init__()
        self._setup(weights, size_average, zero_based_label)

    # Rows per chunk: a chunk of scores stays in the cache through the passes over it (a
    # language model's (N*T, vocab) scores are tens of MB).
    _ROWS = 64

    @staticmethod
    def _key(x2):
        """Identifies the scores array a cached softmax belongs to (memory, shape, strides)."""
        return (x2.__array_interface__["data"][0], x2.shape, x2.strides, x2.dtype.str)

    def update_output(self, input, target):
        x = float_input(self, input, (1, 2), self._EXPECTED)
        ids, w, scale = self._labels(x, target)
        x2 = x.reshape(-1, x.shape[-1])
        self.__dict__.pop("_probs", None)
        nat = backend.use_native(x2.dtype, "softmax") if x2.size else None
        if nat is not None:
            # oneDNN's softmax, one parallel pass; kept for backward (as Torch7's
            # CrossEntropyCriterion keeps its LogSoftMax output): the gradient is p - onehot
            p = self._native_softmax(nat, x2)
            picked = p[np.arange(len(ids)), ids]
            with np.errstate(divide="ignore", invalid="ignore"):
                logp = np.log(picked)
            bad = ~np.isfinite(logp)  # a probability below float32's range (or NaN scores)
            if bad.any():
                rows = x2[bad]
                m = np.max(rows, axis=1, keepdims=True)
                lse = np.log(np.sum(np.exp(rows - m), axis=1)) + m[:, 0]
                logp[bad] = rows[np.arange(len(rows)), ids[bad]] - lse
            self._probs = (self._key(x2), p)
            return -float(np.dot(w, logp)) / scale
        lse = np.empty(len(x2), dtype=x.dtype)
        for i in range(0, len(x2), self._ROWS):
            xi = x2[i:i + self._ROWS]
            m = np.max(xi, axis=1, keepdims=True)
            lse[i:i + self._ROWS] = np.log(np.sum(np.exp(xi - m), axis=1)) + m[:, 0]
        picked = x2[np.arange(len(ids)), ids] - lse  # log-probabilities of the targets
        return -float(np.dot(w, picked)) / scale

    @staticmethod
    def _native_softmax(nat, x2):
        rows, classes = x2.shape
        p = np.empty((rows, classes), x2.dtype)
        nat.softmax_forward(np.ascontiguousarray(x2).reshape(rows, classes, 1),
                            p.reshape(rows, classes, 1), [rows, classes, 1, 0])
        return p

    def update_grad_input(self, input, target):
        x = float_input(self, input, (1, 2), self._EXPECTED)
        ids, w, scale = self._labels(x, target)
        x2 = x.reshape(-1, x.shape[-1])
        # d/dx of -sum_i c_i log softmax(x_i)[t_i], c = w / scale: c_i (softmax(x_i) - onehot)
        cached = self.__dict__.pop("_probs", None)
        nat = backend.use_native(x2.dtype, "softmax") if x2.size else None
        if cached is not None and cached[0] == self._key(x2):
            grad = cached[1]  # forward's softmax of these scores
        elif nat is not None:
            grad = self._native_softmax(nat, x2)
        else:
            grad = np.empty_like(x2)
            for i in range(0, len(x2), self._ROWS):
                softmax(x2[i:i + self._ROWS], axis=1, out=grad[i:i + self._ROWS])
        c = (w / scale).astype(x.dtype)
        grad *= c[:, None]
        grad[np.arange(len(ids)), ids] -= c
        return grad.reshape(x.shape)


class BCECriterion(WeightedCriterion):
    """Binary cross-entropy of probabilities: ``-w * (t log(x) + (1 - t) log(1 - x))``.

    Each log is clamped at -100 (as torch), so probabilities of exactly 0 or 1 give a finite
    loss; the gradient's denominator ``x (1 - x)`` is clamped at 1e-12.

    Args:
        weights: optional weights broadcast against the input (e.g. one per column, ``(D,)``).
        size_average: divide by the number of elements (default) instead of summing.

    Input shape: any, values in ``[0, 1]`` (e.g. from ``Sigmoid``).
    Target: the input's shape (size-1 dimensions may differ), values in ``[0, 1]``.
    """

    def __init__(self, weights=None, size_average=True):
        super().__init__()
        self.weights = weights_arg("BCECriterion", weights)
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, None, "a tensor of probabilities")
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
            bad = x[~((x >= 0) & (x <= 1))].ravel()[0].item()
            self._fail(f"expected input probabilities in [0, 1], got {bad!r}")
        t = same_shape_target(self, x, target)
        return x, t, _broadcast_weights(self, x), _scale(self, x)

    def update_output(self, input, target):
        x, t, w, scale = self._prepare(input, target)
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log(1 - x), -100)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if w is not None:
            loss *= w
        return float(loss.sum()) / scale

    def update_grad_input(self, input, target):
        x, t, w, scale = self._prepare(input, target)
        grad = (x - t) / np.maximum(x * (1 - x), 1e-12)
        if w is not None:
            grad *= w
        grad /= scale
        return grad
