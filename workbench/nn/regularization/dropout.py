"""Dropout (BigDL ``nn``): Dropout, SpatialDropout1D / 2D / 3D, GaussianDropout.  (Noise is in
``noise``, the penalties and GradientReversal in ``penalty``.)"""
from __future__ import annotations

import numbers

import numpy as np

from ..._checks import probability
from .. import random
from ..activation.activations import ANY_NDIM
from ..module import check_grad_output
from ..module import Module

__all__ = ["Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout"]


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


class _FeatureDropout(Module):
    """Drops whole feature maps: one Bernoulli draw per (sample, channel), shared by every
    position of the map.  As BigDL, kept maps are not rescaled while training and inference
    multiplies by ``1 - p``."""

    _data_formats = ("NCHW", "NHWC")

    def __init__(self, init_p=0.5, data_format="NCHW"):
        super().__init__()
        cls = type(self).__name__
        self.p = probability(cls, "init_p", init_p)
        if not isinstance(data_format, str) or data_format.upper() not in self._data_formats:
            raise ValueError(f"{cls}: data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        self.data_format = data_format.upper()

    def _mask_shape(self, x):
        """The shape of the per-map mask for a checked input (1 along the map's positions)."""
        raise NotImplementedError

    def update_output(self, input):
        x = self._checked(input)
        out = self._buffer("output", x.shape, x.dtype)
        if self.train:
            mask = self._buffer("mask", self._mask_shape(x), x.dtype)
            np.greater_equal(random.rng().random(mask.shape), self.p, out=mask)
        else:
            mask = np.asarray(1 - self.p, dtype=x.dtype)
        self._mask = mask
        np.multiply(x, mask, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._mask, out=gi)
        return gi

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_mask", None)
        return state

    def extra_repr(self):
        return f"{self.p:g}"


class SpatialDropout1D(_FeatureDropout):
    """Dropout of whole 1-D feature maps (all time steps of a feature at once).

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).

    While training each feature of each sample is kept or zeroed for every time step (no
    rescaling); ``evaluate()`` mode multiplies by ``1 - init_p`` (as BigDL).  Masks come from
    ``workbench.nn.random.rng()``.

    Input shape: ``(N, T, C)`` or ``(T, C)``.  Output shape: same as input.
    """

    def __init__(self, init_p=0.5):
        super().__init__(init_p)

    def _checked(self, input):
        return self._as_array(input, (2, 3), "(N, T, C) or (T, C)")

    def _mask_shape(self, x):
        return (1, x.shape[1]) if x.ndim == 2 else (x.shape[0], 1, x.shape[2])


class SpatialDropout2D(_FeatureDropout):
    """Dropout of whole 2-D feature maps (every pixel of a channel at once).

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.

    Training keeps or zeroes each channel of each sample (no rescaling); ``evaluate()`` mode
    multiplies by ``1 - init_p`` (as BigDL).

    Input shape: ``(N, C, H, W)`` / ``(C, H, W)``, or ``(N, H, W, C)`` / ``(H, W, C)``.
    Output shape: same as input.
    """

    def _checked(self, input):
        return self._as_array(input, (3, 4), "(N, C, H, W) or (C, H, W)"
                              if self.data_format == "NCHW" else "(N, H, W, C) or (H, W, C)")

    def _mask_shape(self, x):
        return _map_mask(x, 2, self.data_format == "NCHW")


class SpatialDropout3D(_FeatureDropout):
    """Dropout of whole 3-D feature maps (every voxel of a channel at once).

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).
        data_format: ``"NCHW"`` (default, channels first) or ``"NHWC"`` (channels last).

    Training keeps or zeroes each channel of each sample (no rescaling); ``evaluate()`` mode
    multiplies by ``1 - init_p`` (as BigDL).

    Input shape: ``(N, C, D, H, W)`` / ``(C, D, H, W)``, or channels last.
    Output shape: same as input.
    """

    def _checked(self, input):
        return self._as_array(input, (4, 5), "(N, C, D, H, W) or (C, D, H, W)"
                              if self.data_format == "NCHW" else "(N, D, H, W, C) or (D, H, W, C)")

    def _mask_shape(self, x):
        return _map_mask(x, 3, self.data_format == "NCHW")


def _map_mask(x, spatial, channels_first):
    """Mask shape for ``spatial`` map dimensions, with or without a leading batch."""
    batched = x.ndim == spatial + 2
    shape = [1] * x.ndim
    channel = (1 if batched else 0) if channels_first else x.ndim - 1
    shape[channel] = x.shape[channel]
    if batched:
        shape[0] = x.shape[0]
    return tuple(shape)


class GaussianDropout(Module):
    """Multiplies each element by noise drawn from ``N(1, rate / (1 - rate))`` while training;
    the identity in ``evaluate()`` mode (Keras / BigDL ``GaussianDropout``).

    Args:
        rate: the equivalent drop probability, ``0 <= rate < 1``.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, rate):
        super().__init__()
        self.rate = probability("GaussianDropout", "rate", rate)

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        self._noisy = self.train and self.rate > 0
        if not self._noisy:
            return x
        noise = self._buffer("noise", x.shape, x.dtype)
        noise[...] = random.rng().normal(1.0, np.sqrt(self.rate / (1 - self.rate)), size=x.shape)
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, noise, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        if not self._noisy:
            return grad_output
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._scratch["noise"], out=gi)
        return gi

    def extra_repr(self):
        return f"{self.rate:g}"


