"""Distribution criteria: DistKLDivCriterion, KullbackLeiblerDivergenceCriterion, KLDCriterion,
GaussianCriterion, DiceCoefficientCriterion, PGCriterion.

BigDL's class names, argument order and formulas.
"""
from __future__ import annotations

import math

import numpy as np

from .base import float_input, number_arg, same_shape_target, table_input
from .criterion import Criterion
from ..module import shape_of

__all__ = ["DistKLDivCriterion", "KullbackLeiblerDivergenceCriterion", "KLDCriterion",
           "GaussianCriterion", "DiceCoefficientCriterion", "PGCriterion"]


class DistKLDivCriterion(Criterion):
    """Kullback-Leibler divergence of the target distribution from log-probabilities
    (Torch7 / BigDL ``DistKLDivCriterion``, torch ``kl_div``):
    ``loss = sum_{y > 0} y * (log(y) - x)``, divided by the number of elements when
    ``size_average`` (default).

    Input shape: any, log-probabilities (e.g. from ``LogSoftMax``).
    Target: the input's shape, probabilities.
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, None, "a tensor of log-probabilities")
        t = same_shape_target(self, x, target)
        if t.size and not np.all(t >= 0):
            self._fail(f"expected target probabilities >= 0, got "
                       f"{t[~(t >= 0)].ravel()[0].item()!r}")
        return x, t, (max(x.size, 1) if self.size_average else 1)

    def update_output(self, input, target):
        x, t, scale = self._prepare(input, target)
        pos = t > 0
        return float(np.sum(t[pos] * (np.log(t[pos]) - x[pos]))) / scale

    def update_grad_input(self, input, target):
        x, t, scale = self._prepare(input, target)
        return (-t / scale).astype(x.dtype)


class KullbackLeiblerDivergenceCriterion(Criterion):
    """Kullback-Leibler divergence of probabilities, as Keras' ``kullback_leibler_divergence``:
    ``loss = sum(y * log(clip(y) / clip(x))) / N`` with both clipped to ``[1e-8, 1]``, ``x`` the
    predicted distribution (input) and ``y`` the true one (target); ``N`` is the batch size
    (1 for a ``(C,)`` input).  The gradient is 0 where the input is clipped.

    Input shape: ``(N, C)`` or ``(C,)`` probabilities.  Target: the input's shape.
    """

    _EPS = 1e-8

    def __init__(self):
        super().__init__()

    def _prepare(self, input, target):
        x = float_input(self, input, range(1, 33), "(N, C) or (C,) probabilities")
        t = same_shape_target(self, x, target)
        n = 1 if x.ndim == 1 else x.shape[0]
        return x, t, np.clip(x, self._EPS, 1), n

    def update_output(self, input, target):
        x, t, xc, n = self._prepare(input, target)
        return float(np.sum(t * np.log(np.clip(t, self._EPS, 1) / xc))) / n

    def update_grad_input(self, input, target):
        x, t, xc, n = self._prepare(input, target)
        inside = (x >= self._EPS) & (x <= 1)
        return (np.where(inside, -t / xc, 0) / n).astype(x.dtype)


class KLDCriterion(Criterion):
    """KL divergence of a diagonal Gaussian ``N(mean, exp(log_var))`` from the standard normal,
    as in a variational auto-encoder (BigDL ``KLDCriterion``):
    ``loss = -0.5 * sum(1 + log_var - mean^2 - exp(log_var))``, divided by the batch size when
    ``size_average`` (default).  The target is ignored.

    Input: a table ``[mean, log_var]`` of two ``(N, D)`` tensors.
    Target: anything (ignored).
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def _prepare(self, input):
        mean, log_var = table_input(self, input, 2, "[mean, log_var] of (N, D) tensors")
        if mean.shape != log_var.shape or mean.ndim < 1:
            self._fail(f"expected mean and log_var of the same shape (N, D), got "
                       f"{shape_of(input)}")
        return mean, log_var, (mean.shape[0] if self.size_average else 1)

    def update_output(self, input, target=None):
        mean, log_var, scale = self._prepare(input)
        return -0.5 * float(np.sum(1 + log_var - mean * mean - np.exp(log_var))) / scale

    def update_grad_input(self, input, target=None):
        mean, log_var, scale = self._prepare(input)
        return [(mean / scale).astype(mean.dtype),
                (0.5 * (np.exp(log_var) - 1) / scale).astype(log_var.dtype)]


class GaussianCriterion(Criterion):
    """Negative log-likelihood of the target under a diagonal Gaussian (BigDL
    ``GaussianCriterion``): ``loss = sum(0.5 log(2 pi) + 0.5 log_var + 0.5 (x - mean)^2 /
    exp(log_var))``, summed over all elements.

    Input: a table ``[mean, log_var]`` of two tensors of the target's shape.
    Target: the sample ``x``.
    """

    _HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

    def __init__(self):
        super().__init__()

    def _prepare(self, input, target):
        mean, log_var = table_input(self, input, 2, "[mean, log_var] of tensors")
        if mean.shape != log_var.shape:
            self._fail(f"expected mean and log_var of the same shape, got {shape_of(input)}")
        x = same_shape_target(self, mean, target)
        return mean, log_var, x - mean, np.exp(-log_var)

    def update_output(self, input, target):
        _, log_var, d, inv_var = self._prepare(input, target)
        return float(np.sum(self._HALF_LOG_2PI + 0.5 * log_var + 0.5 * d * d * inv_var))

    def update_grad_input(self, input, target):
        mean, log_var, d, inv_var = self._prepare(input, target)
        return [(-d * inv_var).astype(mean.dtype),
                (0.5 - 0.5 * d * d * inv_var).astype(log_var.dtype)]


class DiceCoefficientCriterion(Criterion):
    """Dice loss for segmentation (BigDL ``DiceCoefficientCriterion``): per sample
    ``1 - (2 sum(x * y) + eps) / (sum(x) + sum(y) + eps)``, summed over the batch and divided by
    the batch size when ``size_average`` (default).

    Args:
        size_average: mean over the batch instead of the sum.
        epsilon: the smoothing term (default 1).

    Input shape: ``(N, ...)`` (each sample flattened) or ``(D,)`` for one sample.
    Target: the input's shape (e.g. a binary mask).
    """

    def __init__(self, size_average=True, epsilon=1.0):
        super().__init__()
        self.size_average = bool(size_average)
        self.epsilon = number_arg("DiceCoefficientCriterion", "epsilon", epsilon)

    def _prepare(self, input, target):
        x = float_input(self, input, range(1, 33), "(N, ...) or (D,)")
        t = same_shape_target(self, x, target)
        n = 1 if x.ndim == 1 else x.shape[0]
        a, b = x.reshape(n, -1), t.reshape(n, -1)
        w1 = 2 * np.sum(a * b, axis=1, keepdims=True) + self.epsilon
        w2 = np.sum(a, axis=1, keepdims=True) + np.sum(b, axis=1, keepdims=True) + self.epsilon
        return x, b, w1, w2, (n if self.size_average else 1)

    def update_output(self, input, target):
        _, _, w1, w2, scale = self._prepare(input, target)
        return float(np.sum(1 - w1 / w2)) / scale

    def update_grad_input(self, input, target):
        x, b, w1, w2, scale = self._prepare(input, target)
        grad = (-2 * b / w2 + w1 / (w2 * w2)) / scale
        return grad.astype(x.dtype).reshape(x.shape)


class PGCriterion(Criterion):
    """Negative policy gradient (REINFORCE) for a multinomial policy (BigDL ``PGCriterion``):
    ``loss = -sum(R * log(P))``, divided by the batch size when ``sizeAverage``, where ``P`` is
    the input distribution and the target ``R`` holds, at each sampled action, its reward (zero
    elsewhere).  Entries with ``R == 0`` contribute nothing, even where ``P == 0``.

    Args:
        sizeAverage: divide by the batch size (default False); ``size_average=`` works too.

    Input shape: ``(N, A)`` or ``(A,)`` probabilities.  Target: the input's shape.
    """

    def __init__(self, sizeAverage=False, size_average=None):
        super().__init__()
        self.size_average = bool(sizeAverage if size_average is None else size_average)

    def _prepare(self, input, target):
        x = float_input(self, input, (1, 2), "(N, A) or (A,) probabilities")
        r = same_shape_target(self, x, target)
        taken = r != 0
        if np.any(x[taken] <= 0):
            self._fail(f"expected a positive probability at every rewarded action, got "
                       f"{x[taken][x[taken] <= 0][0].item()!r}")
        return x, r, taken, (x.shape[0] if self.size_average and x.ndim == 2 else 1)

    def update_output(self, input, target):
        x, r, taken, scale = self._prepare(input, target)
        return -float(np.sum(r[taken] * np.log(x[taken]))) / scale

    def update_grad_input(self, input, target):
        x, r, taken, scale = self._prepare(input, target)
        grad = np.zeros_like(x)
        grad[taken] = -r[taken] / x[taken] / scale
        return grad
