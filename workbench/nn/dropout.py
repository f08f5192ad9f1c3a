"""Dropout (BigDL ``Dropout(init_p, inplace, scale)``)."""
from __future__ import annotations

import numbers

import numpy as np

from . import random
from .activation import ANY_NDIM
from .module import check_grad_output
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability ``init_p`` while training.

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).
        inplace: BigDL's in-place flag; accepted and ignored (the output has its own buffer, so
            the previous layer's output stays intact for its backward).
        scale: if True (default, "inverted dropout") kept elements are scaled by
            ``1 / (1 - init_p)`` while training and inference is the identity; if False, training
            keeps the elements unscaled and inference multiplies by ``1 - init_p`` (as BigDL).

    The mask is drawn from ``workbench.nn.random.rng()`` (reproducible with ``set_seed``) and
    the backward pass reuses the mask of the last forward pass.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, init_p=0.5, inplace=False, scale=True):
        super().__init__()
        if not isinstance(init_p, numbers.Real) or isinstance(init_p, bool) or not 0 <= init_p < 1:
            raise ValueError(f"Dropout: init_p must be a number in [0, 1), got {init_p!r}")
        self.p = float(init_p)
        self.inplace = bool(inplace)
        self.scale = bool(scale)
        self._masked = False

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        self._masked = self.train and self.p > 0
        if not self._masked:
            if self.train or self.scale or self.p == 0:
                return x
            out = self._buffer("output", x.shape, x.dtype)
            np.multiply(x, 1 - self.p, out=out)
            return out
        mask = self._buffer("mask", x.shape, x.dtype)
        np.greater_equal(random.rng().random(x.shape, dtype=np.float32), self.p, out=mask)
        if self.scale:
            mask *= 1 / (1 - self.p)
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, mask, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        if not self._masked and (self.scale or self.p == 0):
            return grad_output
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._scratch["mask"] if self._masked else 1 - self.p, out=gi)
        return gi

    def extra_repr(self):
        return f"{self.p:g}"
