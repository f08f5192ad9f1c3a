"""3-D pooling: ``VolumetricMaxPooling`` and ``VolumetricAveragePooling``
(BigDL ``nn``).
"""
from __future__ import annotations

from ..convolution.volumetric import VOLUME_ARG_NAMES
from .spatial import PoolingND

__all__ = ["VolumetricMaxPooling", "VolumetricAveragePooling"]


class VolumetricMaxPooling(PoolingND):
    """Max pooling over ``k_t x k_h x k_w`` windows of volumes.

    Args:
        k_t, k_w, k_h: window depth, width and height (> 0).
        d_t, d_w, d_h: step (> 0); default the window size.
        pad_t, pad_w, pad_h: implicit ``-inf`` padding on each side (>= 0, at most half the
            window).
        to_ceil: compute the output size with ceil instead of floor (also ``ceil()`` /
            ``floor()``); a last window starting in the padding is dropped, as Torch.

    Input shape: ``(N, C, T, H, W)`` or ``(C, T, H, W)``.
    Output shape: ``(N, C, T_out, H_out, W_out)`` (or without ``N``), ``T_out =
        (T + 2*pad_t - k_t) // d_t + 1`` (floor mode) and likewise for ``H_out``, ``W_out``.

    Backward sends each output gradient to the first maximum of its window.
    """

    _ceil_arg = "to_ceil"

    def __init__(self, k_t, k_w, k_h, d_t=None, d_w=None, d_h=None, pad_t=0, pad_w=0, pad_h=0,
                 to_ceil=False):
        super().__init__()
        self._setup((k_t, k_h, k_w), (d_t, d_h, d_w), (pad_t, pad_h, pad_w), to_ceil,
                    VOLUME_ARG_NAMES)

    def extra_repr(self):
        return _volume_repr(self)


class VolumetricAveragePooling(PoolingND):
    """Average pooling over ``k_t x k_h x k_w`` windows of volumes.

    Args:
        k_t, k_w, k_h: window depth, width and height (> 0).
        d_t, d_w, d_h: step (> 0); default the window size.
        pad_t, pad_w, pad_h: implicit zero padding on each side (>= 0, at most half the
            window).
        count_include_pad: divide by the window size including the padding (default True)
            instead of by the number of input values in the window.
        ceil_mode: compute the output size with ceil instead of floor (also ``ceil()`` /
            ``floor()``).

    Input shape: ``(N, C, T, H, W)`` or ``(C, T, H, W)``.
    Output shape: ``(N, C, T_out, H_out, W_out)``, sizes as in :class:`VolumetricMaxPooling`.
    """

    _max = False
    _ceil_arg = "ceil_mode"

    def __init__(self, k_t, k_w, k_h, d_t=None, d_w=None, d_h=None, pad_t=0, pad_w=0, pad_h=0,
                 count_include_pad=True, ceil_mode=False):
        super().__init__()
        self._setup((k_t, k_h, k_w), (d_t, d_h, d_w), (pad_t, pad_h, pad_w), ceil_mode,
                    VOLUME_ARG_NAMES)
        self.count_include_pad = bool(count_include_pad)

    def extra_repr(self):
        return _volume_repr(self) + ("" if self.count_include_pad else ", exclude pad")


def _volume_repr(layer):
    """``t x w x h, dt,dw,dh[, pads][, ceil]`` in BigDL's t, w, h order."""
    (kt, kh, kw), (dt, dh, dw), (pt, ph, pw) = layer.kernel, layer.stride, layer.pads
    s = f"{kt}x{kw}x{kh}, {dt},{dw},{dh}"
    if pt or ph or pw:
        s += f", {pt},{pw},{ph}"
    return s + (", ceil" if layer.ceil_mode else "")
