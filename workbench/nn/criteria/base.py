"""Criteria: ClassNLLCriterion, CrossEntropyCriterion, MSECriterion, BCECriterion.

BigDL's class names and argument order.  Class labels are zero-based by default;
``zero_based_label=False`` accepts BigDL's 1-based labels.  The other criteria live in
``criteria_*.py`` and share the private helpers at the end of this file.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .activation import softmax
from .criterion import Criterion, LabelError, class_labels
from .module import DEFAULT_DTYPE, shape_of

__all__ = ["ClassNLLCriterion", "CrossEntropyCriterion", "MSECriterion", "BCECriterion"]


def _float_input(criterion, input, ndims, expected):
    if not isinstance(input, np.ndarray) or (ndims is not None and input.ndim not in ndims):
        criterion._fail(f"expected input {expected}, got {shape_of(input)}")
    return input if input.dtype.kind == "f" else input.astype(DEFAULT_DTYPE)


def _weights(cls, weights):
    if weights is None:
        return None
    try:
        w = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError):
        w = np.array([np.nan])
    if w.ndim == 0 or w.size == 0 or not np.all(np.isfinite(w)):
        raise ValueError(f"{cls}: weights must be a non-empty array of finite numbers, "
                         f"got {weights!r}")
    return w


class _WeightedCriterion(Criterion):
    """Saves its ``weights`` array in the config as a list (the weights file holds no criteria)."""

    weights = None

    def get_config(self):
        config = super().get_config()
        if self.weights is not None:
            config["args"]["weights"] = self.weights.tolist()
        return config


class _ClassCriterion(_WeightedCriterion):
    """Negative log-likelihood of class ids given (log-)probabilities of ``(N, C)`` / ``(C,)``."""

    _EXPECTED = "(N, C) or (C,)"

    def _setup(self, weights, size_average, zero_based_label):
        self.weights = _weights(type(self).__name__, weights)
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
        x = _float_input(self, input, (1, 2), self._EXPECTED)
        return self._nll(x if self.log_prob_as_input else np.log(self._clipped(x)), target)

    def update_grad_input(self, input, target):
        x = _float_input(self, input, (1, 2), self._EXPECTED)
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
        x = _float_input(self, input, (1, 2), self._EXPECTED)
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
        x = _float_input(self, input, (1, 2), self._EXPECTED)
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


def _same_shape_target(criterion, x, target):
    """``target`` as an array of ``x``'s shape and dtype.  Shapes must match, except that
    size-1 dimensions may differ (a ``(N,)`` target for an ``(N, 1)`` input)."""
    arraylike = (np.ndarray, np.generic, list, tuple, int, float)
    t = np.asarray(target) if isinstance(target, arraylike) else None
    if t is None or t.dtype.kind not in "fiub" or (
            t.shape != x.shape
            and tuple(d for d in t.shape if d != 1) != tuple(d for d in x.shape if d != 1)):
        criterion._fail(f"expected a target of the input's shape {shape_of(x)}, "
                        f"got {shape_of(target) if t is None else shape_of(t)}")
    return t.reshape(x.shape).astype(x.dtype, copy=False)


class MSECriterion(Criterion):
    """Mean squared error: ``sum((input - target)^2)``, divided by the number of elements when
    ``size_average`` (default).

    Input shape: any.  Target: the input's shape (size-1 dimensions may differ).
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _diff(self, input, target):
        x = _float_input(self, input, None, "a tensor")
        return x, x - _same_shape_target(self, x, target)

    def update_output(self, input, target):
        x, d = self._diff(input, target)
        total = float(np.dot(d.ravel(), d.ravel()))
        return total / max(x.size, 1) if self.size_average else total

    def update_grad_input(self, input, target):
        x, d = self._diff(input, target)
        d *= 2 / max(x.size, 1) if self.size_average else 2
        return d


class BCECriterion(_WeightedCriterion):
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
        self.weights = _weights("BCECriterion", weights)
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = _float_input(self, input, None, "a tensor of probabilities")
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
            bad = x[~((x >= 0) & (x <= 1))].ravel()[0].item()
            self._fail(f"expected input probabilities in [0, 1], got {bad!r}")
        t = _same_shape_target(self, x, target)
        w = None
        if self.weights is not None:
            try:
                ok = np.broadcast_shapes(self.weights.shape, x.shape) == x.shape
            except ValueError:
                ok = False
            if not ok:
                self._fail(f"weights of shape {self.weights.shape} do not broadcast to the "
                           f"input {shape_of(x)}")
            w = self.weights.astype(x.dtype)
        return x, t, w, (max(x.size, 1) if self.size_average else 1)

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


# ---------------------------------------------------------------------- helpers shared by the
# other criteria files (criteria_*.py)

def _table_input(criterion, input, n, expected):
    """The ``n`` float tensors of a table input (a list / tuple), or a clear error."""
    if not isinstance(input, (list, tuple)) or len(input) != n or \
            not all(isinstance(t, np.ndarray) for t in input):
        criterion._fail(f"expected input a table {expected}, got {shape_of(input)}")
    return [t if t.dtype.kind == "f" else t.astype(DEFAULT_DTYPE) for t in input]


def _untable(target):
    """A target given as a one-tensor table (as BigDL passes it) unwrapped to the tensor."""
    if isinstance(target, (list, tuple)) and len(target) == 1 and \
            isinstance(target[0], np.ndarray):
        return target[0]
    return target


def _sign_labels(criterion, target, n, dtype):
    """``target`` as ``n`` labels of 1 or -1 (shape ``(n,)``, ``(n, 1)`` or a scalar for 1)."""
    target = _untable(target)
    arraylike = (np.ndarray, np.generic, list, tuple, int, float)
    t = np.asarray(target) if isinstance(target, arraylike) else None
    if t is None or t.dtype.kind not in "fiub" or t.size != n or (t.ndim > 1 and t.shape[0] != n):
        criterion._fail(f"expected {n} labels of 1 or -1, got "
                        f"{shape_of(target) if t is None else shape_of(t)}")
    t = t.reshape(n)
    bad = (t != 1) & (t != -1)
    if bad.any():
        first = int(np.argmax(bad))
        raise LabelError(f"{criterion.label()}: labels must be 1 or -1, got {t[first].item()!r} "
                         f"at index {first}")
    return t.astype(dtype)


def _check_signs(criterion, t):
    """Raise a LabelError unless every value of ``t`` is 1 or -1."""
    bad = (t != 1) & (t != -1)
    if bad.any():
        raise LabelError(f"{criterion.label()}: labels must be 1 or -1, got "
                         f"{t[bad].ravel()[0].item()!r}")


def _number(cls, name, value, low=None):
    """``value`` as a float, or a ValueError quoting it unless it is a finite number."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and np.isfinite(value) and (low is None or value >= low)
    if not ok:
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{cls}: {name} must be a finite number{bound}, got {value!r}")
    return float(value)
