"""SpatialConvolution: 2-D convolution over ``(N, C, H, W)`` planes (Torch7 / BigDL).

The kernel is im2col + matmul: the input windows are copied once into a ``(N, C*kh*kw, L)``
matrix (``L`` output pixels) and every group is one batched matmul with its weights.  Backward
reuses that matrix for the weight gradient and scatters the input gradient back with one
vectorized add per kernel offset (``kh*kw`` adds, no loop over pixels or images).  The kernel
taps may be spaced (dilation, used by ``SpatialDilatedConvolution``); channels-last input
(``data_format="NHWC"``) is transposed at the layer's edges.

With the native backend (``workbench.nn.backend``) and float32 data the three verbs run oneDNN's
convolution primitives instead (``workbench._native``); the numpy code stays as the reference and
the fallback.  Shapes are checked here before any native call.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..._checks import check_int
from .. import backend, layout
from ..initializers import RandomUniform
from ..module import Module, check_grad_output

__all__ = ["SpatialConvolution"]

# Backward works on this many bytes of scratch at a time (about an L2 cache).
CHUNK_BYTES = 2 << 20


def same_padding(size, kernel, stride):
    """TensorFlow / BigDL "SAME": ``(out, pad_before, pad_after)`` for one spatial axis."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + kernel - size)
    return out, total // 2, total - total // 2


def window_views(xp, kh, kw, sh, sw, oh, ow, dh=1, dw=1):
    """``(N, C, oh, ow, kh, kw)`` view of the windows of a padded ``(N, C, Hp, Wp)`` array;
    ``dh`` / ``dw`` space the kernel taps (dilation)."""
    v = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return v[:, :, : (oh - 1) * sh + 1: sh, : (ow - 1) * sw + 1: sw, ::dh, ::dw]


def offset_view(xp, i, j, sh, sw, oh, ow):
    """``(N, C, oh, ow)`` view of ``xp`` at kernel offset ``(i, j)``: element ``(y, x)`` is
    ``xp[..., i + y*sh, j + x*sw]``."""
    return xp[:, :, i: i + (oh - 1) * sh + 1: sh, j: j + (ow - 1) * sw + 1: sw]


def fill_border(xp, top, bottom, left, right, value):
    """Set the padding frame of a padded ``(N, C, Hp, Wp)`` buffer (the interior is left alone)."""
    if top:
        xp[:, :, :top] = value
    if bottom:
        xp[:, :, xp.shape[2] - bottom:] = value
    if left:
        xp[:, :, :, :left] = value
    if right:
        xp[:, :, :, xp.shape[3] - right:] = value


def set_initial(module, name, value, n_group=1):
    """Copy ``value`` into parameter (or gradient) ``name``; BigDL's layout with a leading group
    axis (``(n_group, out / n_group, ...)``) is accepted too."""
    target = getattr(module, name)
    value = np.asarray(value)
    grouped = (n_group, target.shape[0] // n_group) + target.shape[1:]
    if value.shape not in (target.shape, grouped):
        raise ValueError(f"{type(module).__name__}: {name} must have shape {target.shape}, "
                         f"got {value.shape}")
    target[...] = value.reshape(target.shape)


def check_data_format(cls, value, allowed=("NCHW", "NHWC")):
    """``value`` as one of ``allowed`` (case-insensitive), else a ValueError quoting it."""
    if isinstance(value, str) and value.upper() in allowed:
        return value.upper()
    raise ValueError(f"{cls}: data_format must be one of {', '.join(map(repr, allowed))}, "
                     f"got {value!r}")


class SpatialConvolution(Module):
    """2-D convolution (cross-correlation, as Torch and BigDL) with stride, padding and groups.

    Args:
        n_input_plane: input channels (> 0, divisible by ``n_group``).
        n_output_plane: output channels (> 0, divisible by ``n_group``).
        kernel_w, kernel_h: kernel width and height (> 0).
        stride_w, stride_h: step of the kernel (> 0, default 1).
        pad_w, pad_h: zeros added on each side (>= 0, default 0); both -1 means "SAME" padding as
            in BigDL / TensorFlow: output size ``ceil(size / stride)``, the odd pixel of padding
            at the bottom / right.
        n_group: split the channels into this many groups, each convolved with its own
            ``n_output_plane / n_group`` filters (default 1).
        propagate_back: compute the gradient of the input (default True); with False,
            ``backward`` returns zeros (useful for a first layer fed with data).
        wRegularizer, bRegularizer: optional ``L1Regularizer`` / ``L2Regularizer`` /
            ``L1L2Regularizer`` for the weight and the bias.
        init_weight, init_bias: optional arrays to start from (shapes ``(n_output_plane,
            n_input_plane / n_group, kernel_h, kernel_w)`` and ``(n_output_plane,)``); otherwise
            ``weight_init_method`` / ``bias_init_method`` (default ``RandomUniform()``:
            ``±1/sqrt(fan_in)`` with ``fan_in = n_input_plane / n_group * kernel_w * kernel_h``).
        init_grad_weight, init_grad_bias: optional arrays to start the gradients from.
        with_bias: learn an additive bias per output channel (default True).
        data_format: ``"NCHW"`` (default) or ``"NHWC"`` (channels last, as TensorFlow).  The
            weight keeps the ``(out, in / n_group, kernel_h, kernel_w)`` layout either way.

    Input shape: ``(N, n_input_plane, H, W)`` or ``(n_input_plane, H, W)``
        (``(N, H, W, n_input_plane)`` / ``(H, W, n_input_plane)`` with ``"NHWC"``).
    Output shape: ``(N, n_output_plane, H_out, W_out)`` (or without ``N``; channels last with
        ``"NHWC"``), where ``H_out = (H + 2*pad_h - kernel_h) // stride_h + 1`` and likewise
        for ``W_out``.
    """

    def __init__(self, n_input_plane, n_output_plane, kernel_w, kernel_h, stride_w=1, stride_h=1,
                 pad_w=0, pad_h=0, n_group=1, propagate_back=True, wRegularizer=None,
                 bRegularizer=None, init_weight=None, init_bias=None, init_grad_weight=None,
                 init_grad_bias=None, with_bias=True, data_format="NCHW"):
        super().__init__()
        self._init_geometry(n_input_plane, n_output_plane, kernel_w, kernel_h, stride_w,
                            stride_h, pad_w, pad_h, n_group)
        self.propagate_back = bool(propagate_back)
        self.with_bias = bool(with_bias)
        self.data_format = check_data_format(type(self).__name__, data_format)
        self._init_parameters(wRegularizer, bRegularizer, init_weight, init_bias,
                              init_grad_weight, init_grad_bias)

    def _init_geometry(self, n_input_plane, n_output_plane, kernel_w, kernel_h, stride_w,
                       stride_h, pad_w, pad_h, n_group, dilation_w=1, dilation_h=1):
        cls = type(self).__name__
        self.n_input_plane = check_int(cls, "n_input_plane", n_input_plane)
        self.n_output_plane = check_int(cls, "n_output_plane", n_output_plane)
        self.kernel_w = check_int(cls, "kernel_w", kernel_w)
        self.kernel_h = check_int(cls, "kernel_h", kernel_h)
        self.stride_w = check_int(cls, "stride_w", stride_w)
        self.stride_h = check_int(cls, "stride_h", stride_h)
        self.pad_w = check_int(cls, "pad_w", pad_w, minimum=0, allow=(-1,))
        self.pad_h = check_int(cls, "pad_h", pad_h, minimum=0, allow=(-1,))
        if (self.pad_w == -1) != (self.pad_h == -1):
            raise ValueError(f"{cls}: SAME padding needs pad_w = pad_h = -1, "
                             f"got pad_w={pad_w!r}, pad_h={pad_h!r}")
        self.dilation_w = check_int(cls, "dilation_w", dilation_w)
        self.dilation_h = check_int(cls, "dilation_h", dilation_h)
        self.n_group = check_int(cls, "n_group", n_group)
        for arg, value in (("n_input_plane", n_input_plane), ("n_output_plane", n_output_plane)):
            if value % self.n_group:
                raise ValueError(f"{cls}: {arg} ({value!r}) must be divisible by "
                                 f"n_group ({n_group!r})")

    def _init_parameters(self, w_regularizer, b_regularizer, init_weight, init_bias,
                         init_grad_weight, init_grad_bias):
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (self.n_output_plane, self.n_input_plane // self.n_group,
                                       self.kernel_h, self.kernel_w))
        if self.with_bias:
            self._add_parameter("bias", (self.n_output_plane,))
        self.reset()
        self._set_regularizer("weight", w_regularizer)
        if self.with_bias:
            self._set_regularizer("bias", b_regularizer)
        for name, value in (("weight", init_weight), ("bias", init_bias),
                            ("grad_weight", init_grad_weight), ("grad_bias", init_grad_bias)):
            if value is not None and hasattr(self, name):
                self._set_initial(name, value)

    def _set_initial(self, name, value):
        set_initial(self, name, value, self.n_group)

    def reset(self):
        area = self.kernel_w * self.kernel_h
        fan_in = self.n_input_plane // self.n_group * area
        fan_out = self.n_output_plane // self.n_group * area
        self.weight_init_method.init(self.weight, fan_in, fan_out)
        if self.with_bias:
            self.bias_init_method.init(self.bias, fan_in, fan_out)
        return self

    # ------------------------------------------------------------------ geometry
    @property
    def same_padding(self):
        return self.pad_w == -1

    @property
    def _span(self):
        """The kernel's extent ``(h, w)`` on the input, dilation included."""
        return ((self.kernel_h - 1) * self.dilation_h + 1,
                (self.kernel_w - 1) * self.dilation_w + 1)

    def _geometry(self, h, w):
        """``(out_h, out_w, (top, bottom, left, right))`` for an ``h x w`` input."""
        span_h, span_w = self._span
        if self.same_padding:
            oh, top, bottom = same_padding(h, span_h, self.stride_h)
            ow, left, right = same_padding(w, span_w, self.stride_w)
        else:
            top = bottom = self.pad_h
            left = right = self.pad_w
            oh = (h + 2 * self.pad_h - span_h) // self.stride_h + 1
            ow = (w + 2 * self.pad_w - span_w) // self.stride_w + 1
        return oh, ow, (top, bottom, left, right)

    @property
    def channels_last(self):
        return self.data_format == "NHWC"

    def _expected(self, sizes=False):
        c = self.n_input_plane
        h, w = "H", "W"
        if sizes and not self.same_padding:
            span_h, span_w = self._span
            h = f"H>={max(1, span_h - 2 * self.pad_h)}"
            w = f"W>={max(1, span_w - 2 * self.pad_w)}"
        return f"(N, {h}, {w}, {c})" if self.channels_last else f"(N, {c}, {h}, {w})"

    def _input(self, input):
        """The input as a batched ``(N, C, H, W)`` array (a view for NHWC), checked."""
        x = self._as_array(input, (3, 4), self._expected())
        if self.channels_last:
            x = np.moveaxis(x, -1, -3)
        if x.shape[-3] != self.n_input_plane:
            self._fail(self._expected(), input)
        oh, ow, _ = self._geometry(x.shape[-2], x.shape[-1])
        if oh < 1 or ow < 1:
            self._fail(self._expected(sizes=True), input)
        return x if x.ndim == 4 else x[None]

    def _emit(self, key, result, input):
        """``result`` (batched NCHW) in the caller's layout: channels moved last for NHWC, the
        batch axis dropped for an unbatched input."""
        if self.channels_last and layout.is_channels_last(result):
            result = result.transpose(0, 2, 3, 1)  # already NHWC memory: no copy
        elif self.channels_last:
            shape = (result.shape[0],) + result.shape[2:] + (result.shape[1],)
            out = self._buffer(key + "_nhwc", shape, result.dtype)
            np.copyto(out, np.moveaxis(result, 1, -1))
            result = out
        return result if np.ndim(input) == 4 else result[0]

    # ------------------------------------------------------------------ the three verbs
    def _im2col(self, x):
        """Fill and return the ``(N, C*kh*kw, L)`` window matrix of batched input ``x``."""
        n, c, h, w = x.shape
        kh, kw, sh, sw = self.kernel_h, self.kernel_w, self.stride_h, self.stride_w
        oh, ow, (top, bottom, left, right) = self._geometry(h, w)
        if kh == kw == sh == sw == 1 and not (top or bottom or left or right):
            return np.ascontiguousarray(x).reshape(n, c, h * w)  # 1x1: the input is the matrix
        if top or bottom or left or right:
            xp = self._buffer("padded", (n, c, top + h + bottom, left + w + right), x.dtype)
            fill_border(xp, top, bottom, left, right, 0)
            xp[:, :, top:top + h, left:left + w] = x
        else:
            xp = x
        cols = self._buffer("cols", (n, c, kh, kw, oh, ow), x.dtype)
        np.copyto(cols, window_views(xp, kh, kw, sh, sw, oh, ow, self.dilation_h,
                                     self.dilation_w).transpose(0, 1, 4, 5, 2, 3))
        return cols.reshape(n, c * kh * kw, oh * ow)

    def _forward_cols(self, x):
        """The window matrix that forward built for ``x`` (rebuilt if it is gone)."""
        n, c, h, w = x.shape
        oh, ow, pads = self._geometry(h, w)
        cached = self.__dict__.get("_scratch", {}).get("cols")
        kh, kw = self.kernel_h, self.kernel_w
        if (kh == kw == self.stride_h == self.stride_w == 1 and not any(pads)) or cached is None \
                or cached.shape != (n, c, kh, kw, oh, ow) or cached.dtype != x.dtype:
            return self._im2col(x)
        return cached.reshape(n, c * kh * kw, oh * ow)

    def _native_geometry(self, x, relu=False, src_cl=False, dst_cl=False):
        """The ``workbench._native.ConvGeometry`` of batched input ``x``; ``src_cl`` / ``dst_cl``:
        the input / output (or grad_output) arrays are channels-last (see ``layout``)."""
        n, c, h, w = x.shape
        _, _, (top, bottom, left, right) = self._geometry(h, w)
        return backend.native().ConvGeometry(
            n=n, c_in=c, h=h, w=w, c_out=self.n_output_plane, kernel_h=self.kernel_h,
            kernel_w=self.kernel_w, stride_h=self.stride_h, stride_w=self.stride_w,
            dilation_h=self.dilation_h, dilation_w=self.dilation_w, pad_top=top,
            pad_bottom=bottom, pad_left=left, pad_right=right, groups=self.n_group,
            bias=self.with_bias, relu=relu, src_channels_last=src_cl, dst_channels_last=dst_cl)

    def _native_output_cl(self, x):
        """Whether the native forward writes channels-last: always, unless the channels_last
        kernel is off (see ``layout``: the layout oneDNN's convolutions and JIT pooling run on;
        LeNet-5 measured 2.2x faster training, 2x inference than with its 6- and 12-channel
        convolutions writing plain NCHW)."""
        return backend.use_native(None, "channels_last") is not None

    def _native_forward(self, x, relu=False):
        """Native forward of batched ``x`` into the output buffer (ReLU fused if asked)."""
        oh, ow, _ = self._geometry(x.shape[2], x.shape[3])
        src_cl, dst_cl = layout.is_channels_last(x), self._native_output_cl(x)
        out = self._buffer("output", (x.shape[0], self.n_output_plane, oh, ow), x.dtype,
                           channels_last=dst_cl)
        backend.native().conv_forward(layout.native_array(x, src_cl), self.weight,
                                      self.bias if self.with_bias else None,
                                      layout.native_array(out, dst_cl),
                                      self._native_geometry(x, relu, src_cl, dst_cl))
        return out

    def update_output(self, input):
        self.__dict__.setdefault("_scratch", {})["fused_relu"] = None
        x = self._input(input)
        n, g = x.shape[0], self.n_group
        oh, ow, _ = self._geometry(x.shape[2], x.shape[3])
        native = backend.use_native(x.dtype, "convolution") if x.size else None
        if native is not None:
            return self._emit("output", self._native_forward(x), input)
        cols = self._im2col(x)
        out = self._buffer("output", (n, self.n_output_plane, oh, ow), x.dtype)
        # (G, Og, K) @ (N, G, K, L) -> (N, G, Og, L), which is (N, O, oh, ow) in memory.
        k = cols.shape[1] // g
        np.matmul(self.weight.reshape(g, self.n_output_plane // g, k),
                  cols.reshape(n, g, k, oh * ow),
                  out=out.reshape(n, g, self.n_output_plane // g, oh * ow))
        if self.with_bias:
            out += self.bias[:, None, None]
        return self._emit("output", out, input)

    def _grad_output(self, input, grad_output):
        check_grad_output(self, grad_output)
        gout = np.asarray(grad_output, dtype=self.weight.dtype)
        if self.channels_last:
            gout = np.moveaxis(gout, -1, -3)  # channels-last memory, if NHWC was contiguous
        return gout if gout.ndim == 4 else gout[None]

    def fused_forward(self, input, successor):
        """Forward of this layer and of ``successor`` in one native call when ``successor`` is
        a ``ReLU`` (oneDNN's ReLU post-op; ``Sequential`` asks); returns the ReLU's output, or
        None when the pair does not fuse (then the container runs both layers on their own).
        After a fused forward both layers' ``output`` is the ReLU's, and backward masks the
        gradient here while the ReLU passes it through."""
        from ..activation.activations import ReLU
        if type(successor) is not ReLU or self.channels_last or \
                type(self).update_output is not SpatialConvolution.update_output or \
                not isinstance(input, np.ndarray) or input.dtype != np.float32 or \
                input.ndim not in (3, 4) or not input.size or \
                backend.use_native(input.dtype, "convolution") is None:
            return None
        out = self._native_forward(self._input(input), relu=True)
        out = out if input.ndim == 4 else out[0]
        self.__dict__["_scratch"]["fused_relu"] = successor
        self.output = successor.output = out
        return out

    def _masked(self, grad_output):
        """grad_output through the fused ReLU (masked where the output is 0), if one is."""
        if self.__dict__.get("_scratch", {}).get("fused_relu") is not None:
            check_grad_output(self, grad_output)  # then apply the fused ReLU's gradient
            gm = self._grad_buffer("grad_output_masked", self.output.shape, self.output.dtype,
                                   channels_last=layout.is_channels_last(self.output))
            np.multiply(grad_output, self.output > 0, out=gm)
            grad_output = gm
        return grad_output

    def _input_grad_optional(self):
        cls = SpatialConvolution
        return type(self).update_grad_input is cls.update_grad_input and \
            type(self).acc_grad_parameters is cls.acc_grad_parameters and \
            type(self).backward is cls.backward

    def backward_params(self, input, grad_output):
        if not self._input_grad_optional():
            return self.backward(input, grad_output)
        return super().backward_params(input, self._masked(grad_output))

    def backward(self, input, grad_output):
        grad_output = self._masked(grad_output)
        # Inside backward the native path computes both gradients in one call (grad_output is
        # reordered to the primitive's layout once); acc_grad_parameters then has nothing to do.
        self.__dict__["_in_backward"] = True
        try:
            return super().backward(input, grad_output)
        finally:
            self.__dict__["_in_backward"] = False
            self.__dict__["_params_done"] = False

    def _native_grads_ok(self):
        return (self.grad_weight.flags.c_contiguous
                and (not self.with_bias or self.grad_bias.flags.c_contiguous))

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        gout = self._grad_output(input, grad_output)
        src_cl, go_cl = layout.is_channels_last(x), layout.is_channels_last(gout)
        gi = self._grad_buffer("grad_input", x.shape, x.dtype, channels_last=src_cl)
        native = backend.use_native(x.dtype, "convolution") if x.size else None
        if not self.propagate_back:
            gi.fill(0)
        elif native is not None and self.__dict__.get("_in_backward") and not self._frozen \
                and self._native_grads_ok():
            native.conv_backward(layout.native_array(x, src_cl),
                                 layout.native_array(gout, go_cl), self.weight,
                                 layout.native_array(gi, src_cl), self.grad_weight,
                                 self.grad_bias if self.with_bias else None,
                                 self._native_geometry(x, False, src_cl, go_cl))
            self.__dict__["_params_done"] = True
        elif native is not None:
            native.conv_backward_data(layout.native_array(gout, go_cl), self.weight,
                                      layout.native_array(gi, src_cl),
                                      self._native_geometry(x, False, src_cl, go_cl))
        elif self.stride_h == self.stride_w == 1 and self.kernel_h * self.kernel_w > 1:
            self._grad_input_stride1(x, gout, gi)
        else:
            self._grad_input_strided(x, gout, gi)
        return self._emit("grad_input", gi, input)

    def _grad_input_strided(self, x, gout, gi):
        """Any stride: the window-matrix gradient, scattered back with one strided add per
        kernel offset."""
        n, c, h, w = x.shape
        g, kh, kw, sh, sw = self.n_group, self.kernel_h, self.kernel_w, self.stride_h, self.stride_w
        dh, dw = self.dilation_h, self.dilation_w
        oh, ow, (top, bottom, left, right) = self._geometry(h, w)
        og = self.n_output_plane // g
        # (G, Kg, Og) @ (N, G, Og, L) -> (N, G, Kg, L): the gradient of every window matrix entry.
        dcols = self._buffer("dcols", (n, c, kh, kw, oh, ow), x.dtype)
        k = c // g * kh * kw
        np.matmul(self.weight.reshape(g, og, k).transpose(0, 2, 1),
                  gout.reshape(n, g, og, oh * ow),
                  out=dcols.reshape(n, g, k, oh * ow))
        padded = bool(top or bottom or left or right)
        if not padded and kh == kw == sh == sw == 1:
            gi[...] = dcols.reshape(n, c, h, w)
            return
        gp = self._buffer("grad_padded", (n, c, top + h + bottom, left + w + right),
                          x.dtype) if padded else gi
        gp.fill(0)
        for i in range(kh):
            for j in range(kw):
                offset_view(gp, i * dh, j * dw, sh, sw, oh, ow)[...] += dcols[:, :, i, j]
        if padded:
            gi[...] = gp[:, :, top:top + h, left:left + w]

    def _grad_input_stride1(self, x, gout, gi):
        """Stride 1: the same scatter with long contiguous rows instead of short strided ones.

        The output gradient is laid on the whole padded plane (zeros where no window starts), so
        the window-matrix gradient of kernel offset ``(i, j)`` is the padded input gradient
        shifted by ``i*dh * Wp + j*dw`` in each image's flat ``(C, Hp, Wp)`` block (``dh``, ``dw``
        the dilation): one add of long rows per offset.  The zeros make the extra columns
        harmless; they cost ``Hp*Wp / (H_out*W_out)`` more matmul work.  Images go in chunks
        whose scratch fits in cache, which matters more than the extra Python calls.
        """
        n, c, h, w = x.shape
        g, kh, kw = self.n_group, self.kernel_h, self.kernel_w
        dh, dw = self.dilation_h, self.dilation_w
        oh, ow, (top, bottom, left, right) = self._geometry(h, w)
        hp, wp = top + h + bottom, left + w + right
        plane = hp * wp
        o, og, cg = self.n_output_plane, self.n_output_plane // g, c // g
        chunk = max(1, min(n, CHUNK_BYTES // (kh * kw * c * plane * x.itemsize)))
        # rows ordered (group, i, j, channel-in-group) so that each offset is one block per group
        wt = self.weight.reshape(g, og, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(
            g, kh * kw * cg, og)
        gwide = self._buffer("grad_output_wide", (chunk, o, hp, wp), x.dtype)
        fill_border(gwide, 0, hp - oh, 0, wp - ow, 0)
        dcols = self._buffer("dcols_wide", (chunk, g, kh, kw, cg * plane), x.dtype)
        shift_max = (kh - 1) * dh * wp + (kw - 1) * dw
        gp = self._buffer("grad_padded_flat", (chunk, c * plane + shift_max), x.dtype)
        with np.errstate():
            # numpy's ufunc buffering would otherwise copy these long rows through small buffers
            np.setbufsize(128)
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                gwide[:m, :, :oh, :ow] = gout[start:start + m]
                np.matmul(wt, gwide[:m].reshape(m, g, og, plane),
                          out=dcols[:m].reshape(m, g, kh * kw * cg, plane))
                gp[:m].fill(0)
                for i in range(kh):
                    for j in range(kw):
                        shift = i * dh * wp + j * dw
                        gp[:m, shift:shift + c * plane].reshape(m, g, cg * plane)[...] += \
                            dcols[:m, :, i, j]
                gi[start:start + m] = gp[:m, :c * plane].reshape(m, c, hp, wp)[
                    :, :, top:top + h, left:left + w]

    def acc_grad_parameters(self, input, grad_output):
        if self.__dict__.get("_params_done"):
            self.__dict__["_params_done"] = False  # update_grad_input did it (native backward)
            return
        x = self._input(input)
        gout = self._grad_output(input, grad_output)
        n, g = x.shape[0], self.n_group
        native = backend.use_native(x.dtype, "convolution") if x.size else None
        if native is not None and self._native_grads_ok():
            src_cl, go_cl = layout.is_channels_last(x), layout.is_channels_last(gout)
            native.conv_backward_weights(layout.native_array(x, src_cl),
                                         layout.native_array(gout, go_cl), self.grad_weight,
                                         self.grad_bias if self.with_bias else None,
                                         self._native_geometry(x, False, src_cl, go_cl))
            return
        og = self.n_output_plane // g
        cols = self._forward_cols(x)
        k, l = cols.shape[1] // g, cols.shape[-1]
        # (N, G, Kg, L) @ (N, G, L, Og) -> (N, G, Kg, Og), summed over the batch.
        per_image = self._buffer("grad_weight_per_image", (n, g, k, og), x.dtype)
        np.matmul(cols.reshape(n, g, k, l), gout.reshape(n, g, og, l).transpose(0, 1, 3, 2),
                  out=per_image)
        self.grad_weight += per_image.sum(axis=0).transpose(0, 2, 1).reshape(
            self.grad_weight.shape)
        if self.with_bias:
            self.grad_bias += gout.reshape(n, self.n_output_plane, l).sum(axis=(0, 2))

    def extra_repr(self):
        pad = "SAME" if self.same_padding else f"{self.pad_w},{self.pad_h}"
        s = (f"{self.n_input_plane} -> {self.n_output_plane}, {self.kernel_w}x{self.kernel_h}, "
             f"{self.stride_w},{self.stride_h}, {pad}")
        if self.dilation_w > 1 or self.dilation_h > 1:
            s += f", dilation {self.dilation_w},{self.dilation_h}"
        if self.n_group > 1:
            s += f", n_group={self.n_group}"
        if self.channels_last:
            s += ", NHWC"
        return s + ("" if self.with_bias else ", without bias")
