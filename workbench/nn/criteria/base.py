"""What the criteria share: ``WeightedCriterion`` (a criterion with optional class weights) and
the argument and input checks (``float_input``, ``weights_arg``, ``same_shape_target``,
``table_input``, ``untable``, ``sign_labels``, ``check_signs``, ``number_arg``).

BigDL's class names and argument order.  Class labels are zero-based by default;
``zero_based_label=False`` accepts BigDL's 1-based labels.
"""
from __future__ import annotations

import numpy as np

from .criterion import Criterion, LabelError
from ..module import DEFAULT_DTYPE, shape_of

__all__ = []


def float_input(criterion, input, ndims, expected):
    if not isinstance(input, np.ndarray) or (ndims is not None and input.ndim not in ndims):
        criterion._fail(f"expected input {expected}, got {shape_of(input)}")
    return input if input.dtype.kind == "f" else input.astype(DEFAULT_DTYPE)


def weights_arg(cls, weights):
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


class WeightedCriterion(Criterion, abstract=True):
    """Saves its ``weights`` array in the config as a list (the weights file holds no criteria)."""

    weights = None

    def get_config(self):
        config = super().get_config()
        if self.weights is not None:
            config["args"]["weights"] = self.weights.tolist()
        return config


def same_shape_target(criterion, x, target):
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


# ---------------------------------------------------------------------- helpers shared by the
# other criteria files (criteria_*.py)

def table_input(criterion, input, n, expected):
    """The ``n`` float tensors of a table input (a list / tuple), or a clear error."""
    if not isinstance(input, (list, tuple)) or len(input) != n or \
            not all(isinstance(t, np.ndarray) for t in input):
        criterion._fail(f"expected input a table {expected}, got {shape_of(input)}")
    return [t if t.dtype.kind == "f" else t.astype(DEFAULT_DTYPE) for t in input]


def untable(target):
    """A target given as a one-tensor table (as BigDL passes it) unwrapped to the tensor."""
    if isinstance(target, (list, tuple)) and len(target) == 1 and \
            isinstance(target[0], np.ndarray):
        return target[0]
    return target


def sign_labels(criterion, target, n, dtype):
    """``target`` as ``n`` labels of 1 or -1 (shape ``(n,)``, ``(n, 1)`` or a scalar for 1)."""
    target = untable(target)
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


def check_signs(criterion, t):
    """Raise a LabelError unless every value of ``t`` is 1 or -1."""
    bad = (t != 1) & (t != -1)
    if bad.any():
        raise LabelError(f"{criterion.label()}: labels must be 1 or -1, got "
                         f"{t[bad].ravel()[0].item()!r}")


def number_arg(cls, name, value, low=None):
    """``value`` as a float, or a ValueError quoting it unless it is a finite number."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and np.isfinite(value) and (low is None or value >= low)
    if not ok:
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{cls}: {name} must be a finite number{bound}, got {value!r}")
    return float(value)
