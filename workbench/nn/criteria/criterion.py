"""``Criterion``: the loss-function contract (Torch7 / BigDL)."""
from __future__ import annotations

import numpy as np

from ..._config import Configurable
from ..module import shape_of


class LabelError(ValueError):
    """Labels that do not fit the criterion (out of range, not integral, wrong count)."""


class Criterion(Configurable):
    """Base class of losses.

    ``forward(input, target)`` returns the loss (a Python float) and ``backward(input, target)``
    the gradient of the loss w.r.t. ``input``.  Subclasses implement ``update_output`` and
    ``update_grad_input``.
    """

    def __init__(self):
        self.output = 0.0
        self.grad_input = None

    def forward(self, input, target):
        self.output = float(self.update_output(input, target))
        return self.output

    def backward(self, input, target):
        self.grad_input = self.update_grad_input(input, target)
        return self.grad_input

    def update_output(self, input, target):
        raise NotImplementedError

    def update_grad_input(self, input, target):
        raise NotImplementedError

    def __call__(self, input, target):
        return self.forward(input, target)

    def label(self):
        return type(self).__name__

    def _fail(self, message):
        raise ValueError(f"{self.label()}: {message}")

    def _check_same_shape(self, input, target):
        if not hasattr(input, "shape") or not hasattr(target, "shape") or \
                np.shape(input) != np.shape(target):
            self._fail(f"expected target of the input's shape {shape_of(input)}, "
                       f"got {shape_of(target)}")

    def __repr__(self):
        return f"nn.{type(self).__name__}"


def class_labels(criterion, input, target, n_classes, zero_based):
    """Validate class-id targets for an ``(N, C)`` (or ``(C,)``) input; return zero-based int ids.

    Raises a ``LabelError`` naming the criterion and the first bad value.
    """
    t = np.asarray(target)
    n = 1 if input.ndim == 1 else input.shape[0]
    if t.ndim > 1 and t.shape[1:] == (1,) * (t.ndim - 1):
        t = t.reshape(len(t))
    t = t.reshape(-1) if t.ndim == 0 else t
    if t.ndim != 1 or t.shape[0] != n:
        raise LabelError(f"{criterion.label()}: expected {n} class labels for input "
                         f"{shape_of(input)}, got labels of shape {shape_of(t)}")
    if t.dtype.kind == "f":
        bad = ~np.isfinite(t) | (t != np.round(t))
        if bad.any():
            raise LabelError(f"{criterion.label()}: labels must be whole class ids, "
                             f"got {t[bad][0].item()!r}")
    elif t.dtype.kind not in "iub":
        raise LabelError(f"{criterion.label()}: labels must be numbers, got dtype {t.dtype}")
    ids = t.astype(np.int64) - (0 if zero_based else 1)
    bad = (ids < 0) | (ids >= n_classes)
    if bad.any():
        first = int(np.argmax(bad))
        lo, hi = (0, n_classes - 1) if zero_based else (1, n_classes)
        hint = "" if zero_based else ""
        if zero_based and t.min() >= 1 and t.max() == n_classes:
            hint = " (labels look 1-based: pass zero_based_label=False)"
        raise LabelError(f"{criterion.label()}: label {t[first].item()!r} at index {first} is "
                         f"out of range [{lo}, {hi}] for {n_classes} classes{hint}")
    return ids
