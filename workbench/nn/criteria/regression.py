"""Regression criteria: AbsCriterion, SmoothL1Criterion, SmoothL1CriterionWithWeights,
MeanAbsolutePercentageCriterion, MeanSquaredLogarithmicCriterion, PoissonCriterion, L1Cost.

BigDL's class names, argument order and formulas (the Keras-style ones as Keras defines them).
"""
from __future__ import annotations

import numpy as np

from .criterion import Criterion
from ..module import shape_of
from .base import float_input, same_shape_target

__all__ = ["AbsCriterion", "SmoothL1Criterion", "SmoothL1CriterionWithWeights",
           "MeanAbsolutePercentageCriterion", "MeanSquaredLogarithmicCriterion", "PoissonCriterion",
           "L1Cost", "MSECriterion"]

_KERAS_EPS = 1e-7


class _ElementwiseCriterion(Criterion):
    """A loss summed over the elements of ``input`` and a same-shape ``target``."""

    size_average = True

    def _pair(self, input, target):
        x = float_input(self, input, None, "a tensor")
        return x, same_shape_target(self, x, target)

    def _scale(self, x):
        return max(x.size, 1) if self.size_average else 1


class _DifferenceCriterion(_ElementwiseCriterion):
    """``sum f(x - y)``, divided by the number of elements when ``size_average`` (default);
    subclasses give ``f`` in ``_f(d)`` and its derivative in ``_df(d)``."""

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _f(self, d):
        raise NotImplementedError

    def _df(self, d):
        raise NotImplementedError

    def update_output(self, input, target):
        x, t = self._pair(input, target)
        return float(self._f(x - t).sum()) / self._scale(x)

    def update_grad_input(self, input, target):
        x, t = self._pair(input, target)
        return (self._df(x - t) / self._scale(x)).astype(x.dtype)


class AbsCriterion(_DifferenceCriterion):
    """Mean absolute error: ``sum |x - y|``, divided by the number of elements when
    ``size_average`` (default).  The gradient at ``x == y`` is 0.

    Input shape: any.  Target: the input's shape (size-1 dimensions may differ).
    """

    def _f(self, d):
        return np.abs(d)

    def _df(self, d):
        return np.sign(d)


def _smooth_l1(d, sigma2):
    """Elementwise smooth L1 of ``d`` and its derivative: ``0.5 * sigma2 * d^2`` below
    ``|d| < 1 / sigma2``, ``|d| - 0.5 / sigma2`` above."""
    small = np.abs(d) < 1 / sigma2
    value = np.where(small, 0.5 * sigma2 * d * d, np.abs(d) - 0.5 / sigma2)
    return value, np.where(small, sigma2 * d, np.sign(d))


class SmoothL1Criterion(_DifferenceCriterion):
    """Smooth L1 (Huber with threshold 1): ``0.5 (x - y)^2`` where ``|x - y| < 1``, else
    ``|x - y| - 0.5``; summed, divided by the number of elements when ``size_average``.

    Input shape: any.  Target: the input's shape (size-1 dimensions may differ).
    """

    def _f(self, d):
        return _smooth_l1(d, 1.0)[0]

    def _df(self, d):
        return _smooth_l1(d, 1.0)[1]


class SmoothL1CriterionWithWeights(Criterion):
    """Smooth L1 with inside / outside weights, as Fast R-CNN's bounding-box loss (BigDL
    ``SmoothL1CriterionWithWeights``).

    With ``d = (x - gt) * w_in``: ``loss = sum w_out * f(d) / norm``, where
    ``f(d) = 0.5 (sigma d)^2`` if ``|d| < 1 / sigma^2`` else ``|d| - 0.5 / sigma^2``, and ``norm``
    is ``num`` when ``num > 0``, else the batch size ``N``.

    Args:
        sigma: the smoothing scale (> 0).
        num: the normalizer (0: the batch size).

    Input shape: ``(N, ...)``.
    Target: a table ``[gt]`` or ``[gt, w_in, w_out]``, each of the input's size (a bare
    ``gt`` tensor is accepted too).
    """

    def __init__(self, sigma, num=0):
        super().__init__()
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer,
                                                             np.floating)) or not sigma > 0 \
                or not np.isfinite(sigma):
            raise ValueError(f"SmoothL1CriterionWithWeights: sigma must be a positive number, "
                             f"got {sigma!r}")
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
            raise ValueError(f"SmoothL1CriterionWithWeights: num must be an integer >= 0, "
                             f"got {num!r}")
        self.sigma = float(sigma)
        self.num = int(num)

    def _parts(self, input, target):
        x = float_input(self, input, range(1, 33), "(N, ...)")
        parts = list(target) if isinstance(target, (list, tuple)) else [target]
        if len(parts) not in (1, 3):
            self._fail(f"expected target [gt] or [gt, w_in, w_out], got a table of "
                       f"{len(parts)}: {shape_of(target)}")
        arrays = []
        for p in parts:
            a = np.asarray(p) if isinstance(p, (np.ndarray, list, tuple)) else None
            if a is None or a.dtype.kind not in "fiub" or a.size != x.size:
                self._fail(f"expected target tensors of the input's size {x.size} "
                           f"{shape_of(x)}, got {shape_of(target)}")
            arrays.append(a.reshape(x.shape).astype(x.dtype, copy=False))
        w_in, w_out = (arrays[1], arrays[2]) if len(arrays) == 3 else (1, 1)
        d = (x - arrays[0]) * w_in
        norm = self.num if self.num > 0 else x.shape[0]
        return x, d, w_in, w_out, norm

    def update_output(self, input, target):
        x, d, _, w_out, norm = self._parts(input, target)
        return float(np.sum(_smooth_l1(d, self.sigma ** 2)[0] * w_out)) / norm

    def update_grad_input(self, input, target):
        x, d, w_in, w_out, norm = self._parts(input, target)
        grad = _smooth_l1(d, self.sigma ** 2)[1] * w_in * w_out / norm
        return np.asarray(grad, dtype=x.dtype)


class MeanAbsolutePercentageCriterion(_ElementwiseCriterion):
    """Mean absolute percentage error, as Keras' ``mean_absolute_percentage_error``:
    ``100 * mean(|y - x| / clip(|y|, 1e-7))`` with ``x`` the input (prediction) and ``y`` the
    target.

    Input shape: any.  Target: the input's shape (size-1 dimensions may differ).
    """

    def __init__(self):
        super().__init__()

    def update_output(self, input, target):
        x, t = self._pair(input, target)
        return 100.0 * float(np.sum(np.abs(x - t) / np.maximum(np.abs(t), _KERAS_EPS))) \
            / self._scale(x)

    def update_grad_input(self, input, target):
        x, t = self._pair(input, target)
        grad = 100.0 * np.sign(x - t) / np.maximum(np.abs(t), _KERAS_EPS) / self._scale(x)
        return grad.astype(x.dtype)


class MeanSquaredLogarithmicCriterion(_ElementwiseCriterion):
    """Mean squared logarithmic error, as Keras' ``mean_squared_logarithmic_error``:
    ``mean((log(clip(y, 1e-7) + 1) - log(clip(x, 1e-7) + 1))^2)``.  The gradient is 0 where the
    input is clipped (below 1e-7).

    Input shape: any.  Target: the input's shape (size-1 dimensions may differ).
    """

    def __init__(self):
        super().__init__()

    def _logs(self, input, target):
        x, t = self._pair(input, target)
        xc = np.maximum(x, _KERAS_EPS)
        return x, xc, np.log1p(np.maximum(t, _KERAS_EPS)) - np.log1p(xc)

    def update_output(self, input, target):
        x, _, d = self._logs(input, target)
        return float(np.sum(d * d)) / self._scale(x)

    def update_grad_input(self, input, target):
        x, xc, d = self._logs(input, target)
        grad = np.where(x >= _KERAS_EPS, -2 * d / (xc + 1), 0) / self._scale(x)
        return grad.astype(x.dtype)


class PoissonCriterion(_ElementwiseCriterion):
    """Poisson negative log-likelihood of rates, as Keras' ``poisson``:
    ``mean(x - y * log(x + 1e-7))`` with ``x`` the predicted rate (>= 0).

    Input shape: any, non-negative.  Target: the input's shape (counts).
    """

    def __init__(self):
        super().__init__()

    def _checked(self, input, target):
        x, t = self._pair(input, target)
        if x.size and not np.all(x >= 0):
            self._fail(f"expected non-negative rates, got {x[~(x >= 0)].ravel()[0].item()!r}")
        return x, t

    def update_output(self, input, target):
        x, t = self._checked(input, target)
        return float(np.sum(x - t * np.log(x + _KERAS_EPS))) / self._scale(x)

    def update_grad_input(self, input, target):
        x, t = self._checked(input, target)
        return ((1 - t / (x + _KERAS_EPS)) / self._scale(x)).astype(x.dtype)


class L1Cost(Criterion):
    """The L1 norm of the input, ``sum |x|`` (the target is ignored); the gradient is
    ``sign(x)``.  Used as a sparsity penalty.

    Input shape: any.  Target: anything (ignored).
    """

    def __init__(self):
        super().__init__()

    def update_output(self, input, target=None):
        return float(np.abs(float_input(self, input, None, "a tensor")).sum())

    def update_grad_input(self, input, target=None):
        x = float_input(self, input, None, "a tensor")
        return np.sign(x)


class MSECriterion(Criterion):
    """Mean squared error: ``sum((input - target)^2)``, divided by the number of elements when
    ``size_average`` (default).

    Input shape: any.  Target: the input's shape (size-1 dimensions may differ).
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _diff(self, input, target):
        x = float_input(self, input, None, "a tensor")
        return x, x - same_shape_target(self, x, target)

    def update_output(self, input, target):
        x, d = self._diff(input, target)
        total = float(np.dot(d.ravel(), d.ravel()))
        return total / max(x.size, 1) if self.size_average else total

    def update_grad_input(self, input, target):
        x, d = self._diff(input, target)
        d *= 2 / max(x.size, 1) if self.size_average else 2
        return d
