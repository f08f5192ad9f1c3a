"""Spatial pooling: SpatialMaxPooling and SpatialAveragePooling (Torch7 / BigDL).

Both work on a padded copy of the input with one vectorized pass per kernel offset (``kh*kw``
passes over the output, none over pixels or images).  Output sizes follow Torch: in ceil mode a
last window that would start in the right / bottom padding is dropped.
"""
from __future__ import annotations

import numpy as np

from .convolution import check_int, fill_border, offset_view, same_padding
from .module import check_grad_output
from .module import Module

__all__ = ["SpatialMaxPooling", "SpatialAveragePooling"]


def pooled_size(size, kernel, stride, pad, ceil_mode):
    """Torch's ``pooling_output_shape`` for one axis (symmetric padding ``pad``)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Pooling(Module):
    """Shared geometry, input checks and padded buffers of the two pooling layers."""

    _cls = "Pooling"

    def _init_geometry(self, kw, kh, dw, dh, pad_w, pad_h, check_pad=True):
        cls = self._cls
        self.kw = check_int(cls, "kw", kw)
        self.kh = check_int(cls, "kh", kh)
        self.dw = check_int(cls, "dw", dw)
        self.dh = check_int(cls, "dh", dh)
        self.pad_w = check_int(cls, "pad_w", pad_w, minimum=0, allow=(-1,))
        self.pad_h = check_int(cls, "pad_h", pad_h, minimum=0, allow=(-1,))
        if (self.pad_w == -1) != (self.pad_h == -1):
            raise ValueError(f"{cls}: SAME padding needs pad_w = pad_h = -1, "
                             f"got pad_w={pad_w!r}, pad_h={pad_h!r}")
        if check_pad and not self.same_padding:
            for arg, pad, k in (("pad_w", self.pad_w, self.kw), ("pad_h", self.pad_h, self.kh)):
                if pad > k // 2:
                    raise ValueError(f"{cls}: {arg} must be at most half the kernel size "
                                     f"({k // 2}), got {pad!r}")

    @property
    def same_padding(self):
        return self.pad_w == -1

    def ceil(self):
        """Use ceil instead of floor to compute the output size (BigDL / Torch); returns self."""
        self.ceil_mode = True
        return self

    def floor(self):
        """Use floor to compute the output size (the default); returns self."""
        self.ceil_mode = False
        return self

    def _kernel(self, h, w):
        return self.kh, self.kw

    def _geometry(self, h, w):
        """``(kh, kw, oh, ow, (top, bottom, left, right))`` for an ``h x w`` input.

        ``bottom`` / ``right`` are the nominal paddings; the padded buffer may be taller / wider
        when a ceil-mode window runs past them.
        """
        kh, kw = self._kernel(h, w)
        if self.same_padding:
            oh, top, bottom = same_padding(h, kh, self.dh)
            ow, left, right = same_padding(w, kw, self.dw)
        else:
            top = bottom = self.pad_h
            left = right = self.pad_w
            oh = pooled_size(h, kh, self.dh, self.pad_h, self.ceil_mode)
            ow = pooled_size(w, kw, self.dw, self.pad_w, self.ceil_mode)
        return kh, kw, oh, ow, (top, bottom, left, right)

    def _expected(self, sizes=None):
        if sizes is None:
            return "(N, C, H, W)"
        return f"(N, C, H>={sizes[0]}, W>={sizes[1]})"

    def _input(self, input):
        """The input as a batched ``(N, C, H, W)`` float array, checked against the kernel."""
        x = self._as_array(input, (3, 4), self._expected())
        h, w = x.shape[-2:]
        kh, kw, oh, ow, _ = self._geometry(h, w)
        if oh < 1 or ow < 1 or h < 1 or w < 1:
            min_h = 1 if self.same_padding else max(1, kh - 2 * self.pad_h)
            min_w = 1 if self.same_padding else max(1, kw - 2 * self.pad_w)
            self._fail(self._expected((min_h, min_w)), x)
        return x if x.ndim == 4 else x[None]

    def _padded(self, key, x, geometry, fill):
        """``x`` in a buffer padded with ``fill`` to cover every window (``x`` if no padding)."""
        n, c, h, w = x.shape
        kh, kw, oh, ow, (top, _, left, _) = geometry
        hp = max(top + h, (oh - 1) * self.dh + kh)
        wp = max(left + w, (ow - 1) * self.dw + kw)
        if (top, left, hp, wp) == (0, 0, h, w):
            return x
        xp = self._buffer(key, (n, c, hp, wp), x.dtype)
        fill_border(xp, top, hp - top - h, left, wp - left - w, fill)
        xp[:, :, top:top + h, left:left + w] = x
        return xp

    def _grad_padded(self, x, geometry):
        """A zeroed buffer shaped like the padded input, for scattering gradients."""
        n, c, h, w = x.shape
        kh, kw, oh, ow, (top, _, left, _) = geometry
        hp = max(top + h, (oh - 1) * self.dh + kh)
        wp = max(left + w, (ow - 1) * self.dw + kw)
        gp = self._buffer("grad_padded", (n, c, hp, wp), x.dtype)
        gp.fill(0)
        return gp, (slice(top, top + h), slice(left, left + w))

    def _grad_output(self, input, grad_output, dtype):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=dtype)
        return g if g.ndim == 4 else g[None]

    def _pads_repr(self):
        if self.same_padding:
            return ", SAME"
        return f", {self.pad_w},{self.pad_h}" if (self.pad_w or self.pad_h) else ""

    def get_config(self):
        config = super().get_config()
        config["args"][self._ceil_arg] = self.ceil_mode  # ceil() / floor() change it later
        return config


class SpatialMaxPooling(_Pooling):
    """Max pooling over ``kh x kw`` windows.

    Args:
        kw, kh: window width and height (> 0).
        dw, dh: step (> 0); default the window size (non-overlapping windows).
        pad_w, pad_h: implicit ``-inf`` padding on each side (>= 0, at most half the window, as
            Torch); both -1 means "SAME" padding as in BigDL / TensorFlow.
        to_ceil: compute the output size with ceil instead of floor (also ``ceil()`` /
            ``floor()``).  As in Torch, a last window starting in the padding is dropped.

    Input shape: ``(N, C, H, W)`` or ``(C, H, W)``.
    Output shape: ``(N, C, H_out, W_out)`` (or without ``N``), where ``H_out =
        (H + 2*pad_h - kh) // dh + 1`` (floor) or the ceil of the division (ceil mode).

    Backward sends each output gradient to the first maximum of its window.
    """

    _cls = "SpatialMaxPooling"
    _ceil_arg = "to_ceil"

    def __init__(self, kw, kh, dw=None, dh=None, pad_w=0, pad_h=0, to_ceil=False):
        super().__init__()
        self._init_geometry(kw, kh, kw if dw is None else dw, kh if dh is None else dh,
                            pad_w, pad_h)
        self.ceil_mode = bool(to_ceil)

    def update_output(self, input):
        x = self._input(input)
        geometry = self._geometry(x.shape[2], x.shape[3])
        kh, kw, oh, ow, _ = geometry
        xp = self._padded("padded", x, geometry, -np.inf)
        n, c = x.shape[:2]
        out = self._buffer("output", (n, c, oh, ow), x.dtype)
        index_dtype = np.uint8 if kh * kw <= 256 else np.int32
        index = self._buffer("argmax", (n, c, oh, ow), index_dtype)
        better = self._buffer("better", (n, c, oh, ow), np.bool_)
        out[...] = offset_view(xp, 0, 0, self.dh, self.dw, oh, ow)
        index.fill(0)
        for t in range(1, kh * kw):
            v = offset_view(xp, t // kw, t % kw, self.dh, self.dw, oh, ow)
            np.greater(v, out, out=better)  # strict: ties keep the first maximum, as Torch
            np.copyto(index, t, where=better)
            np.maximum(out, v, out=out)  # also propagates NaN
        return out if np.ndim(input) == 4 else out[0]

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        geometry = self._geometry(x.shape[2], x.shape[3])
        kh, kw, oh, ow, _ = geometry
        g = self._grad_output(input, grad_output, x.dtype)
        index = self._buffer("argmax", (x.shape[0], x.shape[1], oh, ow),
                             np.uint8 if kh * kw <= 256 else np.int32)
        gp, interior = self._grad_padded(x, geometry)
        hit = self._buffer("better", index.shape, np.bool_)
        routed = self._buffer("routed", index.shape, x.dtype)
        for t in range(kh * kw):
            np.equal(index, t, out=hit)
            np.multiply(g, hit, out=routed)
            offset_view(gp, t // kw, t % kw, self.dh, self.dw, oh, ow)[...] += routed
        if gp.shape == x.shape:
            gi = gp
        else:
            gi = self._buffer("grad_input", x.shape, x.dtype)
            gi[...] = gp[(slice(None), slice(None)) + interior]
        return gi if np.ndim(input) == 4 else gi[0]

    def extra_repr(self):
        return (f"{self.kw}x{self.kh}, {self.dw},{self.dh}" + self._pads_repr()
                + (", ceil" if self.ceil_mode else ""))


class SpatialAveragePooling(_Pooling):
    """Average pooling over ``kh x kw`` windows.

    Args:
        kw, kh: window width and height (> 0; ignored with ``global_pooling``).
        dw, dh: step (> 0, default 1).
        pad_w, pad_h: implicit zero padding on each side (>= 0, at most half the window, as
            Torch); both -1 means "SAME" padding as in BigDL / TensorFlow.
        global_pooling: pool each whole plane (the window is the input's ``H x W``).
        ceil_mode: compute the output size with ceil instead of floor (also ``ceil()`` /
            ``floor()``).  As in Torch, a last window starting in the padding is dropped.
        count_include_pad: divide by the window size including the zero padding (default True)
            instead of by the number of input pixels in the window.  Either way, the part of a
            ceil-mode window beyond the padding is not counted (as Torch and BigDL).
        divide: False gives window sums instead of means.

    Input shape: ``(N, C, H, W)`` or ``(C, H, W)``.
    Output shape: ``(N, C, H_out, W_out)`` (or without ``N``), sizes as in
        :class:`SpatialMaxPooling`; ``(N, C, 1, 1)`` with ``global_pooling`` and no padding.
    """

    _cls = "SpatialAveragePooling"
    _ceil_arg = "ceil_mode"

    def __init__(self, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, global_pooling=False,
                 ceil_mode=False, count_include_pad=True, divide=True):
        super().__init__()
        self.global_pooling = bool(global_pooling)
        self._init_geometry(kw, kh, dw, dh, pad_w, pad_h, check_pad=not self.global_pooling)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divide = bool(divide)

    def set_count_include_pad(self):
        """BigDL: divide by the window size including padding; returns self."""
        self.count_include_pad = True
        return self

    def set_count_exclude_pad(self):
        """BigDL: divide by the number of input pixels in the window; returns self."""
        self.count_include_pad = False
        return self

    def get_config(self):
        config = super().get_config()
        config["args"]["count_include_pad"] = self.count_include_pad
        return config

    def _kernel(self, h, w):
        return (h, w) if self.global_pooling else (self.kh, self.kw)

    def _input(self, input):
        x = super()._input(input)
        if self.global_pooling and not self.same_padding:
            h, w = x.shape[2:]
            if self.pad_h > h // 2 or self.pad_w > w // 2:
                self._fail(f"(N, C, H>={2 * self.pad_h}, W>={2 * self.pad_w}) for global "
                           f"pooling with padding {self.pad_w},{self.pad_h}", x)
        return x

    def _scale(self, x, geometry):
        """``1 / divisor`` per output pixel as an ``(oh, ow)`` array (or a float)."""
        if not self.divide:
            return 1.0
        h, w = x.shape[2:]
        kh, kw, oh, ow, (top, bottom, left, right) = geometry
        key = ("scale", h, w, geometry, self.count_include_pad, x.dtype.str)
        cached = self.__dict__.get("_scale_cache")
        if cached is not None and cached[0] == key:
            return cached[1]

        def counts(out, size, k, stride, before, after):
            start = np.arange(out) * stride - before
            end = np.minimum(start + k, size + after)
            if self.count_include_pad:
                return end - start
            return np.minimum(end, size) - np.maximum(start, 0)

        ch = counts(oh, h, kh, self.dh, top, bottom)
        cw = counts(ow, w, kw, self.dw, left, right)
        scale = (1.0 / np.outer(ch, cw)).astype(x.dtype)
        self.__dict__["_scale_cache"] = (key, scale)
        return scale

    def update_output(self, input):
        x = self._input(input)
        geometry = self._geometry(x.shape[2], x.shape[3])
        kh, kw, oh, ow, _ = geometry
        xp = self._padded("padded", x, geometry, 0)
        out = self._buffer("output", x.shape[:2] + (oh, ow), x.dtype)
        out[...] = offset_view(xp, 0, 0, self.dh, self.dw, oh, ow)
        for t in range(1, kh * kw):
            out += offset_view(xp, t // kw, t % kw, self.dh, self.dw, oh, ow)
        out *= self._scale(x, geometry)
        return out if np.ndim(input) == 4 else out[0]

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        geometry = self._geometry(x.shape[2], x.shape[3])
        kh, kw, oh, ow, _ = geometry
        g = self._grad_output(input, grad_output, x.dtype)
        scaled = self._buffer("scaled", g.shape, x.dtype)
        np.multiply(g, self._scale(x, geometry), out=scaled)
        gp, interior = self._grad_padded(x, geometry)
        for t in range(kh * kw):
            offset_view(gp, t // kw, t % kw, self.dh, self.dw, oh, ow)[...] += scaled
        if gp.shape == x.shape:
            gi = gp
        else:
            gi = self._buffer("grad_input", x.shape, x.dtype)
            gi[...] = gp[(slice(None), slice(None)) + interior]
        return gi if np.ndim(input) == 4 else gi[0]

    def extra_repr(self):
        s = "global" if self.global_pooling else f"{self.kw}x{self.kh}"
        s += f", {self.dw},{self.dh}" + self._pads_repr()
        if self.ceil_mode:
            s += ", ceil"
        if not self.count_include_pad:
            s += ", exclude pad"
        if not self.divide:
            s += ", sum"
        return s
