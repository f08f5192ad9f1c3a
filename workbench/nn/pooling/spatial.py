"""Pooling: SpatialMaxPooling and SpatialAveragePooling (Torch7 / BigDL), the N-d pooling
behind the temporal and volumetric layers, and global pooling (BigDL's Keras-style
GlobalAveragePooling1D/2D/3D and GlobalMaxPooling1D/2D/3D).

Windowed pooling works on a padded copy of the input with one vectorized pass per kernel offset
(``prod(kernel)`` passes over the output, none over pixels or images).  Output sizes follow
Torch: in ceil mode a last window that would start in the right / bottom padding is dropped.

With the native backend (``workbench.nn.backend``) and float32 data the two spatial layers run
oneDNN's pooling primitives; the numpy code stays as the reference and the fallback.
"""
from __future__ import annotations

import numpy as np

import math

from .. import backend, layout
from ..convolution.convnd import interior, offset_index, pad_into
from ..._checks import check_int
from ..convolution.spatial import fill_border, offset_view, same_padding
from ..module import check_grad_output
from ..module import Module

__all__ = ["SpatialMaxPooling", "SpatialAveragePooling", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "GlobalMaxPooling3D"]


def pooled_size(size, kernel, stride, pad, ceil_mode):
    """Torch's ``pooling_output_shape`` for one axis (symmetric padding ``pad``)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Pooling(layout.DataFormat, Module):
    """Shared geometry, input checks and padded buffers of the two pooling layers (NCHW code;
    ``format="NHWC"`` through :class:`workbench.nn.layout.DataFormat`)."""

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
        h, w = ("H", "W") if sizes is None else (f"H>={sizes[0]}", f"W>={sizes[1]}")
        return f"(N, {h}, {w}, C)" if self.data_format == "NHWC" else f"(N, C, {h}, {w})"

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

    def _native_geometry(self, x, geometry, alg, train=True):
        """The ``workbench._native.PoolGeometry`` of ``x`` (bottom / right padding extended to
        cover a ceil-mode window), or None when oneDNN's rule for the divisor would differ.
        ``train`` False: oneDNN's inference forward (max pooling keeps no argmax workspace)."""
        n, c, h, w = x.shape
        kh, kw, oh, ow, (top, bottom, left, right) = geometry
        bottom_eff = max(bottom, (oh - 1) * self.dh + kh - h - top)
        right_eff = max(right, (ow - 1) * self.dw + kw - w - left)
        if alg == 1 and (bottom_eff, right_eff) != (bottom, right):
            return None  # include-pad average: oneDNN would count the extension too
        if top >= kh or left >= kw:
            return None
        return backend.native().PoolGeometry(
            n=n, c=c, h=h, w=w, kernel_h=kh, kernel_w=kw, stride_h=self.dh, stride_w=self.dw,
            pad_top=top, pad_bottom=bottom_eff, pad_left=left, pad_right=right_eff, alg=alg,
            out_h=oh, out_w=ow, channels_last=layout.is_channels_last(x), train=train)

    def _native_pool(self, x, geometry, alg, train=None):
        """Pool ``x`` natively into the output buffer; None if this case stays in numpy.  In
        ``evaluate()`` mode (``train`` None: the module's mode) the inference forward runs: no
        argmax workspace written or kept."""
        native = backend.use_native(x.dtype, "pooling") if x.size else None
        if native is None:
            return None
        geom = self._native_geometry(x, geometry, alg, self.train if train is None else train)
        if geom is None or (alg == 0 and not np.isfinite(np.add.reduce(x, axis=None))):
            return None  # oneDNN's max drops NaN; numpy propagates it, as Torch does
        cl = geom.channels_last  # channels-last in, channels-last out
        out = self._buffer("output", x.shape[:2] + (geom.out_h, geom.out_w), x.dtype,
                           channels_last=cl)
        ws = None
        if alg == 0 and geom.train:
            ws = self._buffer("workspace", (native.pool_workspace_size(geom),), np.uint8)
        native.pool_forward(layout.native_array(x, cl), layout.native_array(out, cl), ws, geom)
        self.__dict__.setdefault("_scratch", {})["native_pooled"] = geom
        return out

    def _native_unpool(self, x, g, geometry, alg):
        """The input gradient computed natively, or None (numpy path)."""
        native = backend.use_native(x.dtype, "pooling") if x.size else None
        geom = self._native_geometry(x, geometry, alg) if native is not None else None
        pooled = self.__dict__.get("_scratch", {}).get("native_pooled")
        if geom is not None and pooled is not None and not pooled.train and \
                pooled == self._native_geometry(x, geometry, alg, False):
            # the forward ran for inference and kept no argmax: pool again, keeping it (the
            # output is rewritten with the same values)
            self._native_pool(x, geometry, alg, train=True)
            pooled = geom
        if geom is None or pooled != geom:
            return None  # max pooling needs the workspace of a native forward of this shape
        cl = geom.channels_last
        gi = self._buffer("grad_input", x.shape, x.dtype, channels_last=cl)
        ws = self._buffer("workspace", (native.pool_workspace_size(geom),), np.uint8) \
            if alg == 0 else None
        native.pool_backward(layout.native_like(g, cl), layout.native_array(gi, cl), ws, geom)
        return gi

    def _grad_output(self, input, grad_output, dtype):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=dtype)
        return g if g.ndim == 4 else g[None]

    def _pads_repr(self):
        """The padding (and a non-default data format) for ``extra_repr``."""
        fmt = ", NHWC" if self.data_format == "NHWC" else ""
        if self.same_padding:
            return ", SAME" + fmt
        return (f", {self.pad_w},{self.pad_h}" if (self.pad_w or self.pad_h) else "") + fmt

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
        format: BigDL's data format of the input and output, ``"NCHW"`` (default) or
            ``"NHWC"`` (channels last: ``(N, H, W, C)``).

    Input shape: ``(N, C, H, W)`` or ``(C, H, W)``; with ``format="NHWC"`` ``(N, H, W, C)`` or
        ``(H, W, C)``.
    Output shape: ``(N, C, H_out, W_out)`` (or without ``N``; NHWC: ``(N, H_out, W_out, C)``),
        where ``H_out = (H + 2*pad_h - kh) // dh + 1`` (floor) or the ceil of the division
        (ceil mode).

    Backward sends each output gradient to the first maximum of its window.
    """

    _cls = "SpatialMaxPooling"
    _ceil_arg = "to_ceil"

    def __init__(self, kw, kh, dw=None, dh=None, pad_w=0, pad_h=0, to_ceil=False,
                 format="NCHW"):
        super().__init__()
        self.data_format = layout.check_data_format(self._cls, "format", format)
        self._init_geometry(kw, kh, kw if dw is None else dw, kh if dh is None else dh,
                            pad_w, pad_h)
        self.ceil_mode = bool(to_ceil)

    def update_output(self, input):
        x = self._input(input)
        geometry = self._geometry(x.shape[2], x.shape[3])
        kh, kw, oh, ow, _ = geometry
        out = self._native_pool(x, geometry, 0)
        if out is not None:
            return out if np.ndim(input) == 4 else out[0]
        self.__dict__.setdefault("_scratch", {})["native_pooled"] = None
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
        gi = self._native_unpool(x, g, geometry, 0)
        if gi is not None:
            return gi if np.ndim(input) == 4 else gi[0]
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
        format: BigDL's data format of the input and output, ``"NCHW"`` (default) or
            ``"NHWC"`` (channels last: ``(N, H, W, C)``).

    Input shape: ``(N, C, H, W)`` or ``(C, H, W)``; with ``format="NHWC"`` ``(N, H, W, C)`` or
        ``(H, W, C)``.
    Output shape: ``(N, C, H_out, W_out)`` (or without ``N``; NHWC: ``(N, H_out, W_out, C)``),
        sizes as in :class:`SpatialMaxPooling`; ``(N, C, 1, 1)`` with ``global_pooling`` and no
        padding.
    """

    _cls = "SpatialAveragePooling"
    _ceil_arg = "ceil_mode"

    def __init__(self, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, global_pooling=False,
                 ceil_mode=False, count_include_pad=True, divide=True, format="NCHW"):
        super().__init__()
        self.data_format = layout.check_data_format(self._cls, "format", format)
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

    def _native_alg(self):
        return 1 if self.count_include_pad else 2

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
        out = self._native_pool(x, geometry, self._native_alg()) if self.divide else None
        if out is not None:
            return out if np.ndim(input) == 4 else out[0]
        self.__dict__.setdefault("_scratch", {})["native_pooled"] = None
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
        gi = self._native_unpool(x, g, geometry, self._native_alg()) if self.divide else None
        if gi is not None:
            return gi if np.ndim(input) == 4 else gi[0]
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


# ---------------------------------------------------------------------- N-d windowed pooling
class PoolingND(Module, abstract=True):
    """Max or average pooling over the last ``d`` axes of ``(N, C, *size)``.

    Subclasses set ``_axes`` (names of the spatial axes, for messages), call ``_setup`` with
    the sizes in axis order, and may override ``_internal`` / ``_external`` to pool another
    layout (e.g. ``(N, T, F)``)."""

    _axes = ("t", "h", "w")
    _max = True

    def _setup(self, kernel, stride, pads, ceil_mode, names):
        cls = type(self).__name__
        self.kernel = tuple(check_int(cls, n, k) for n, k in zip(names["kernel"], kernel))
        stride = [k if s is None else s for k, s in zip(kernel, stride)]
        self.stride = tuple(check_int(cls, n, s) for n, s in zip(names["stride"], stride))
        self.pads = tuple(check_int(cls, n, p, minimum=0) for n, p in zip(names["pad"], pads))
        for n, p, k in zip(names["pad"], self.pads, self.kernel):
            if p > k // 2:
                raise ValueError(f"{cls}: {n} must be at most half the kernel size ({k // 2}), "
                                 f"got {p!r}")
        self.ceil_mode = bool(ceil_mode)

    def ceil(self):
        """Use ceil instead of floor to compute the output size; returns self."""
        self.ceil_mode = True
        return self

    def floor(self):
        """Use floor to compute the output size (the default); returns self."""
        self.ceil_mode = False
        return self

    def get_config(self):
        config = super().get_config()
        config["args"][self._ceil_arg] = self.ceil_mode  # ceil() / floor() change it later
        return config

    # ------------------------------------------------------------------ layout and geometry
    def _expected(self, sizes=False):
        dims = [a.upper() for a in self._axes]
        if sizes:
            dims = [f"{a}>={max(1, k - 2 * p)}" for a, k, p in zip(dims, self.kernel, self.pads)]
        return f"(N, C, {', '.join(dims)})"

    def _internal(self, x):
        """The checked array as batched ``(N, C, *size)`` (a view)."""
        return x if x.ndim == len(self.kernel) + 2 else x[None]

    def _external(self, key, result, input):
        return result if np.ndim(input) == len(self.kernel) + 2 else result[0]

    def _geometry(self, size):
        """``(out, pads, padded)``: output size, ``[(before, after)]`` and the padded buffer
        size (it may run past the padding when a ceil-mode window does)."""
        out = tuple(pooled_size(n, k, s, p, self.ceil_mode)
                    for n, k, s, p in zip(size, self.kernel, self.stride, self.pads))
        padded = tuple(max(p + n, (o - 1) * s + k)
                       for n, k, s, p, o in zip(size, self.kernel, self.stride, self.pads, out))
        pads = [(p, q - p - n) for p, q, n in zip(self.pads, padded, size)]
        return out, pads, padded

    def _input(self, input):
        d = len(self.kernel)
        x = self._as_array(input, (d + 1, d + 2), self._expected())
        x = self._internal(x)
        out, _, _ = self._geometry(x.shape[2:])
        if min(out) < 1 or min(x.shape[2:]) < 1:
            self._fail(self._expected(sizes=True), input)
        return x

    def _grad_output(self, grad_output, dtype):
        check_grad_output(self, grad_output)
        return self._internal(np.asarray(grad_output, dtype=dtype))

    def _padded(self, x, fill):
        out, pads, padded = self._geometry(x.shape[2:])
        if padded == x.shape[2:]:
            return x
        return pad_into(self._buffer("padded", x.shape[:2] + padded, x.dtype), x, pads, fill)

    def _windows(self, out):
        """``(t, view index)`` for every kernel offset."""
        for t, offset in enumerate(np.ndindex(*self.kernel)):
            yield t, offset_index(offset, self.stride, (1,) * len(out), out)

    def _scatter(self, x, routed):
        """Input gradient from ``routed(t)``, the gradient reaching kernel offset ``t``."""
        out, pads, padded = self._geometry(x.shape[2:])
        gp = self._buffer("grad_padded", x.shape[:2] + padded, x.dtype)
        gp.fill(0)
        for t, index in self._windows(out):
            gp[index] += routed(t)
        if padded == x.shape[2:]:
            return gp
        gi = self._buffer("grad_input", x.shape, x.dtype)
        gi[...] = gp[interior(pads, x.shape[2:])]
        return gi

    # ------------------------------------------------------------------ max / average
    def update_output(self, input):
        x = self._input(input)
        out, pads, _ = self._geometry(x.shape[2:])
        xp = self._padded(x, -np.inf if self._max else 0)
        y = self._buffer("output", x.shape[:2] + out, x.dtype)
        if self._max:
            index = self._buffer("argmax", y.shape, np.int32)
            better = self._buffer("better", y.shape, np.bool_)
            index.fill(0)
            for t, window in self._windows(out):
                v = xp[window]
                if t == 0:
                    y[...] = v
                    continue
                np.greater(v, y, out=better)  # strict: ties keep the first maximum, as Torch
                np.copyto(index, t, where=better)
                np.maximum(y, v, out=y)  # also propagates NaN
        else:
            y.fill(0)
            for _, window in self._windows(out):
                y += xp[window]
            y *= self._scale(x.shape[2:], out, pads)
        return self._external("output", y, input)

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        g = self._grad_output(grad_output, x.dtype)
        out, pads, _ = self._geometry(x.shape[2:])
        if self._max:
            index = self._buffer("argmax", g.shape, np.int32)
            routed = self._buffer("routed", g.shape, x.dtype)

            def route(t):
                return np.multiply(g, index == t, out=routed)
        else:
            scaled = np.multiply(g, self._scale(x.shape[2:], out, pads),
                                 out=self._buffer("routed", g.shape, x.dtype))

            def route(t):
                return scaled
        return self._external("grad_input", self._scatter(x, route), input)

    def _scale(self, size, out, pads):
        """``1 / divisor`` per output position (average pooling)."""
        if not getattr(self, "divide", True):
            return 1.0
        factors = []
        for n, o, k, s, (before, _) in zip(size, out, self.kernel, self.stride, pads):
            start = np.arange(o) * s - before
            end = np.minimum(start + k, n + before)  # windows never count past the padding
            if self.count_include_pad:
                count = end - start
            else:
                count = np.minimum(end, n) - np.maximum(start, 0)
            factors.append(count)
        counts = factors[0]
        for f in factors[1:]:
            counts = np.multiply.outer(counts, f)
        return 1.0 / counts

    def _shape_repr(self):
        s = "x".join(map(str, self.kernel)) + ", " + ",".join(map(str, self.stride))
        if any(self.pads):
            s += ", " + ",".join(map(str, self.pads))
        return s + (", ceil" if self.ceil_mode else "")


# ---------------------------------------------------------------------- global pooling
class _GlobalPooling(Module):
    """Pool each channel over all its positions: ``(N, C, *size)`` -> ``(N, C)``."""

    _d = 2
    _max = False

    def __init__(self, dim_ordering="th", input_shape=None):
        super().__init__()
        self._setup(dim_ordering, input_shape)

    def _setup(self, dim_ordering, input_shape):
        cls = type(self).__name__
        if dim_ordering not in ("th", "tf"):
            raise ValueError(f"{cls}: dim_ordering must be 'th' (channels first) or 'tf' "
                             f"(channels last), got {dim_ordering!r}")
        self.dim_ordering = dim_ordering
        if input_shape is not None:
            shape = tuple(input_shape)
            if len(shape) != self._d + 1 or not all(
                    isinstance(v, (int, np.integer)) and v > 0 for v in shape):
                raise ValueError(f"{cls}: input_shape must be {self._d + 1} positive ints "
                                 f"(no batch axis), got {input_shape!r}")
            input_shape = [int(v) for v in shape]
        self.input_shape = input_shape

    def _expected(self):
        if self.input_shape is not None:
            return "(N, " + ", ".join(map(str, self.input_shape)) + ")"
        dims = ["D1", "D2", "D3"][:self._d]
        return "(N, " + ", ".join(dims + ["C"] if self.dim_ordering == "tf" else ["C"] + dims) + ")"

    def _axes(self):
        return tuple(range(1, self._d + 1)) if self.dim_ordering == "tf" else \
            tuple(range(2, self._d + 2))

    def _input(self, input):
        x = self._as_array(input, (self._d + 2,), self._expected())
        if self.input_shape is not None and list(x.shape[1:]) != self.input_shape:
            self._fail(self._expected(), x)
        if 0 in x.shape[1:]:
            self._fail(self._expected(), x)
        return x

    def update_output(self, input):
        x = self._input(input)
        if self._max:
            # pool over the flattened positions; backward routes to the first maximum
            flat = self._positions(x)
            index = np.argmax(flat, axis=-1)
            self.__dict__.setdefault("_scratch", {})["argmax"] = index
            return np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
        return x.mean(axis=self._axes())

    def _positions(self, x):
        """``(N, C, positions)`` view (or copy for channels last)."""
        if self.dim_ordering == "tf":
            x = np.moveaxis(x, -1, 1)
        return x.reshape(x.shape[0], x.shape[1], -1)

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=x.dtype)
        if not self._max:
            positions = math.prod(x.shape[a] for a in self._axes())
            shape = list(x.shape)
            for a in self._axes():
                shape[a] = 1
            return np.broadcast_to((g / positions).reshape(shape), x.shape).copy()
        index = self.__dict__.get("_scratch", {}).get("argmax")
        if index is None or index.shape != g.shape:
            index = np.argmax(self._positions(x), axis=-1)
        flat = np.zeros((x.shape[0], g.shape[1], math.prod(x.shape[a] for a in self._axes())),
                        x.dtype)
        np.put_along_axis(flat, index[..., None], g[..., None], axis=-1)
        if self.dim_ordering == "tf":
            flat = flat.reshape((x.shape[0], x.shape[-1]) + x.shape[1:-1])
            return np.moveaxis(flat, 1, -1).copy()
        return flat.reshape(x.shape)

    def extra_repr(self):
        return "channels last" if self.dim_ordering == "tf" else ""


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps of a sequence (BigDL's Keras-style layer).

    Args:
        input_shape: optional ``(steps, features)`` to check inputs against.

    Input shape: ``(N, steps, features)``.
    Output shape: ``(N, features)``.
    """

    _d = 1

    def __init__(self, input_shape=None):
        super().__init__()
        self._setup("tf", input_shape)

    def extra_repr(self):
        return ""


class GlobalMaxPooling1D(GlobalAveragePooling1D):
    """Maximum over the steps of a sequence (BigDL's Keras-style layer); backward sends each
    gradient to the first maximum.

    Args:
        input_shape: optional ``(steps, features)`` to check inputs against.

    Input shape: ``(N, steps, features)``.
    Output shape: ``(N, features)``.
    """

    _max = True


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean of each channel over its plane (BigDL's Keras-style layer; also
    ``SpatialAveragePooling(global_pooling=True)``, which keeps the ``1 x 1`` axes).

    Args:
        dim_ordering: ``"th"`` (channels first, default) or ``"tf"`` (channels last).
        input_shape: optional shape without the batch axis to check inputs against.

    Input shape: ``(N, C, H, W)`` (``"th"``) or ``(N, H, W, C)`` (``"tf"``).
    Output shape: ``(N, C)``.
    """

    _d = 2


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    """Maximum of each channel over its plane (BigDL's Keras-style layer); backward sends each
    gradient to the first maximum.

    Args:
        dim_ordering: ``"th"`` (channels first, default) or ``"tf"`` (channels last).
        input_shape: optional shape without the batch axis to check inputs against.

    Input shape: ``(N, C, H, W)`` (``"th"``) or ``(N, H, W, C)`` (``"tf"``).
    Output shape: ``(N, C)``.
    """

    _max = True


class GlobalAveragePooling3D(_GlobalPooling):
    """Mean of each channel over its volume (BigDL's Keras-style layer).

    Args:
        dim_ordering: ``"th"`` (channels first, default) or ``"tf"`` (channels last).
        input_shape: optional shape without the batch axis to check inputs against.

    Input shape: ``(N, C, D1, D2, D3)`` (``"th"``) or ``(N, D1, D2, D3, C)`` (``"tf"``).
    Output shape: ``(N, C)``.
    """

    _d = 3


class GlobalMaxPooling3D(GlobalAveragePooling3D):
    """Maximum of each channel over its volume (BigDL's Keras-style layer); backward sends each
    gradient to the first maximum.

    Args:
        dim_ordering: ``"th"`` (channels first, default) or ``"tf"`` (channels last).
        input_shape: optional shape without the batch axis to check inputs against.

    Input shape: ``(N, C, D1, D2, D3)`` (``"th"``) or ``(N, D1, D2, D3, C)`` (``"tf"``).
    Output shape: ``(N, C)``.
    """

    _max = True
