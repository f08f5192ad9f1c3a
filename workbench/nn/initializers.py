"""Weight initialization methods (BigDL's ``InitializationMethod`` family).

Each method fills an array in place given the layer's fan-in and fan-out; layers take them
through ``set_init_method(weight_init_method, bias_init_method)``.
"""
from __future__ import annotations

import math

from .._config import Configurable
from . import random

__all__ = ["InitializationMethod", "Xavier", "MsraFiller", "RandomUniform", "RandomNormal",
           "Zeros", "Ones", "ConstInitMethod", "BilinearFiller"]


class InitializationMethod(Configurable):
    """Base class: ``init(array, fan_in, fan_out)`` fills ``array`` in place."""

    def init(self, array, fan_in, fan_out):
        raise NotImplementedError

    def __repr__(self):
        return type(self).__name__


class RandomUniform(InitializationMethod):
    """Uniform in ``[lower, upper]``; with no bounds, ``±1/sqrt(fan_in)`` (Torch's default)."""

    def __init__(self, lower=None, upper=None):
        if (lower is None) != (upper is None):
            raise ValueError("RandomUniform: give both bounds or neither, "
                             f"got {lower!r}, {upper!r}")
        if lower is not None and float(lower) > float(upper):
            raise ValueError(f"RandomUniform: lower {lower!r} > upper {upper!r}")
        self.lower, self.upper = lower, upper

    def init(self, array, fan_in, fan_out):
        if self.lower is None:
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            lo, hi = -bound, bound
        else:
            lo, hi = float(self.lower), float(self.upper)
        array[...] = random.rng().uniform(lo, hi, size=array.shape)


class RandomNormal(InitializationMethod):
    """Normal with the given mean and standard deviation."""

    def __init__(self, mean=0.0, stdv=1.0):
        if float(stdv) < 0:
            raise ValueError(f"RandomNormal: stdv must be >= 0, got {stdv!r}")
        self.mean, self.stdv = float(mean), float(stdv)

    def init(self, array, fan_in, fan_out):
        array[...] = random.rng().normal(self.mean, self.stdv, size=array.shape)


class Xavier(InitializationMethod):
    """Glorot uniform: ``±sqrt(6 / (fan_in + fan_out))``."""

    def init(self, array, fan_in, fan_out):
        bound = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        array[...] = random.rng().uniform(-bound, bound, size=array.shape)


class MsraFiller(InitializationMethod):
    """He / MSRA normal: ``N(0, 2 / n)`` with ``n`` the average of fan-in and fan-out
    (``variance_norm_average=True``, BigDL's default) or the fan-out."""

    def __init__(self, variance_norm_average=True):
        self.variance_norm_average = bool(variance_norm_average)

    def init(self, array, fan_in, fan_out):
        n = (fan_in + fan_out) / 2.0 if self.variance_norm_average else fan_out
        array[...] = random.rng().normal(0.0, math.sqrt(2.0 / max(n, 1)), size=array.shape)


class Zeros(InitializationMethod):
    """All zeros."""

    def init(self, array, fan_in, fan_out):
        array.fill(0)


class Ones(InitializationMethod):
    """All ones."""

    def init(self, array, fan_in, fan_out):
        array.fill(1)


class ConstInitMethod(InitializationMethod):
    """Every element set to ``value``."""

    def __init__(self, value):
        self.value = float(value)

    def init(self, array, fan_in, fan_out):
        array.fill(self.value)


class BilinearFiller(InitializationMethod):
    """Bilinear up-sampling kernel for ``(out, in, kh, kw)`` deconvolution weights."""

    def init(self, array, fan_in, fan_out):
        kh, kw = array.shape[-2:]
        import numpy as np
        f = math.ceil(kw / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        ys, xs = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
        kernel = (1 - np.abs(xs / f - c)) * (1 - np.abs(ys / f - c))
        array[...] = kernel
