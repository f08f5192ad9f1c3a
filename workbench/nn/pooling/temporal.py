"""Max pooling over time: ``TemporalMaxPooling`` (BigDL ``nn``).
"""
from __future__ import annotations

import numpy as np

from ..module import Module
from .spatial import PoolingND

__all__ = ["TemporalMaxPooling"]


class TemporalMaxPooling(PoolingND):
    """Max pooling over windows of ``k_w`` frames, each feature separately.

    Args:
        k_w: frames per window (> 0).
        d_w: step between windows (> 0); default (None or -1, as BigDL) ``k_w``.

    Input shape: ``(N, T, F)`` or ``(T, F)``.
    Output shape: ``(N, T_out, F)`` (or without ``N``), ``T_out = (T - k_w) // d_w + 1``.

    Backward sends each output gradient to the first maximum of its window.
    """

    _axes = ("t",)
    _ceil_arg = None

    def __init__(self, k_w, d_w=None):
        super().__init__()
        self._setup((k_w,), (None if d_w in (None, -1) else d_w,), (0,), False,
                    {"kernel": ("k_w",), "stride": ("d_w",), "pad": ("pad_w",)})

    def get_config(self):
        return Module.get_config(self)

    def _expected(self, sizes=False):
        return f"(N, T>={self.kernel[0]}, F)" if sizes else "(N, T, F)"

    def _internal(self, x):
        x = x if x.ndim == 3 else x[None]
        return np.moveaxis(x, 2, 1)  # (N, F, T) view

    def _external(self, key, result, input):
        out = self._buffer(key + "_ntf", (result.shape[0], result.shape[2], result.shape[1]),
                           result.dtype)
        np.copyto(out, np.moveaxis(result, 1, 2))
        return out if np.ndim(input) == 3 else out[0]

    def extra_repr(self):
        return f"{self.kernel[0]}, {self.stride[0]}"
