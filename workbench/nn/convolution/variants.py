"""More 2-D convolutions (BigDL): SpatialDilatedConvolution, SpatialShareConvolution,
SpatialFullConvolution (transposed), SpatialSeparableConvolution (depthwise + pointwise) and
LocallyConnected2D (unshared weights).

Dilated and shared convolutions are ``SpatialConvolution``'s kernel with other arguments; the
others run their own arithmetic on the same window matrices (``convnd``).
"""
from __future__ import annotations

import math

import numpy as np

from .convnd import ConvolutionND, FullConvolutionND, check_ints
from ..._checks import check_int
from .spatial import SpatialConvolution, check_data_format, set_initial
from ..initializers import RandomUniform, Zeros
from ..module import Module

__all__ = ["SpatialDilatedConvolution", "SpatialShareConvolution", "SpatialFullConvolution",
           "SpatialSeparableConvolution", "LocallyConnected2D"]

_NAMES_2D = {"kernel": ("kernel_h", "kernel_w"), "stride": ("stride_h", "stride_w"),
             "pad": ("pad_h", "pad_w")}


class SpatialDilatedConvolution(SpatialConvolution):
    """2-D convolution whose kernel taps are ``dilation`` pixels apart ("atrous" convolution).

    Args:
        n_input_plane: input channels (> 0).
        n_output_plane: output channels (> 0).
        kw, kh: kernel width and height (> 0).
        dw, dh: step of the kernel (> 0, default 1).
        pad_w, pad_h: zeros added on each side (>= 0, default 0).
        dilation_w, dilation_h: distance between kernel taps (> 0, default 1 = ordinary
            convolution).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.

    The weight has shape ``(n_output_plane, n_input_plane, kh, kw)``; default initialization
    ``RandomUniform()`` (``±1/sqrt(n_input_plane * kw * kh)``).

    Input shape: ``(N, n_input_plane, H, W)`` or ``(n_input_plane, H, W)``.
    Output shape: ``(N, n_output_plane, H_out, W_out)`` (or without ``N``), where
        ``H_out = (H + 2*pad_h - dilation_h*(kh - 1) - 1) // dh + 1``, likewise ``W_out``.
    """

    def __init__(self, n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0,
                 dilation_w=1, dilation_h=1, wRegularizer=None, bRegularizer=None):
        Module.__init__(self)
        cls = type(self).__name__
        for arg, value in (("kw", kw), ("kh", kh), ("dw", dw), ("dh", dh)):
            check_int(cls, arg, value)
        for arg, value in (("pad_w", pad_w), ("pad_h", pad_h)):
            check_int(cls, arg, value, minimum=0)
        self._init_geometry(n_input_plane, n_output_plane, kw, kh, dw, dh, pad_w, pad_h, 1,
                            dilation_w, dilation_h)
        self.propagate_back = True
        self.with_bias = True
        self.data_format = "NCHW"
        self._init_parameters(wRegularizer, bRegularizer, None, None, None, None)

    def extra_repr(self):
        return (f"{self.n_input_plane} -> {self.n_output_plane}, {self.kernel_w}x{self.kernel_h}, "
                f"{self.stride_w},{self.stride_h}, {self.pad_w},{self.pad_h}, "
                f"{self.dilation_w},{self.dilation_h}")


class SpatialShareConvolution(SpatialConvolution):
    """``SpatialConvolution`` under the name BigDL gives its memory-sharing variant.

    BigDL shares the window-matrix buffers of several such layers to save memory; here every
    convolution already reuses its own buffers across batches, so this is the same layer.
    Arguments, shapes and weights are those of :class:`SpatialConvolution` (without
    ``data_format``).
    """

    def __init__(self, n_input_plane, n_output_plane, kernel_w, kernel_h, stride_w=1, stride_h=1,
                 pad_w=0, pad_h=0, n_group=1, propagate_back=True, wRegularizer=None,
                 bRegularizer=None, init_weight=None, init_bias=None, init_grad_weight=None,
                 init_grad_bias=None, with_bias=True):
        super().__init__(n_input_plane, n_output_plane, kernel_w, kernel_h, stride_w, stride_h,
                         pad_w, pad_h, n_group, propagate_back, wRegularizer, bRegularizer,
                         init_weight, init_bias, init_grad_weight, init_grad_bias, with_bias)


class SpatialFullConvolution(FullConvolutionND):
    """2-D transposed convolution ("deconvolution", "fractionally-strided convolution"): the
    gradient of a ``SpatialConvolution`` with respect to its input, used to upsample.

    Args:
        n_input_plane: input channels (> 0, divisible by ``n_group``).
        n_output_plane: output channels (> 0, divisible by ``n_group``).
        kw, kh: kernel width and height (> 0).
        dw, dh: step (> 0, default 1).
        pad_w, pad_h: zeros removed from each side of the output (>= 0, default 0).
        adj_w, adj_h: extra width / height added to the output (0 <= adj < stride, default 0).
        n_group: split the channels into this many groups (default 1).
        no_bias: no additive bias (default False).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.

    The weight has shape ``(n_input_plane, n_output_plane / n_group, kh, kw)`` (Torch's layout;
    BigDL's adds a leading group axis); default initialization
    ``±1/sqrt(n_input_plane * kw * kh)`` for weight and bias.

    Input shape: ``(N, n_input_plane, H, W)`` or ``(n_input_plane, H, W)``; or a table
        ``[input, size_tensor]`` whose last two sizes set the output size (instead of
        ``adj_w`` / ``adj_h``), as BigDL; the size tensor's gradient is zeros.
    Output shape: ``(N, n_output_plane, H_out, W_out)`` (or without ``N``), where
        ``W_out = (W - 1)*dw - 2*pad_w + kw + adj_w`` and likewise ``H_out``.
    """

    _axes = ("h", "w")

    def __init__(self, n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0,
                 adj_w=0, adj_h=0, n_group=1, no_bias=False, wRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        self._setup(n_input_plane, n_output_plane, (kh, kw), (dh, dw), (pad_h, pad_w),
                    (adj_h, adj_w), n_group, no_bias,
                    names={"kernel": ("kh", "kw"), "stride": ("dh", "dw"),
                           "pad": ("pad_h", "pad_w"), "adj": ("adj_h", "adj_w")})
        self._init_parameters(wRegularizer, bRegularizer)

    def extra_repr(self):
        (kh, kw), (dh, dw), (ph, pw) = self.kernel, self.stride, self.pads
        s = f"{self.n_input_plane} -> {self.n_output_plane}, {kw}x{kh}, {dw},{dh}, {pw},{ph}"
        if any(self.adj):
            s += f", adj {self.adj[1]},{self.adj[0]}"
        if self.n_group > 1:
            s += f", n_group={self.n_group}"
        return s + (", without bias" if self.no_bias else "")


class SpatialSeparableConvolution(ConvolutionND):
    """Depthwise separable convolution: each input channel is convolved with its own
    ``depth_multiplier`` filters (depthwise step), then a 1x1 convolution mixes the
    ``n_input_channel * depth_multiplier`` results into ``n_output_channel`` (pointwise step).

    Args:
        n_input_channel: input channels (> 0).
        n_output_channel: output channels (> 0).
        depth_multiplier: depthwise filters per input channel (> 0).
        kernel_w, kernel_h: depthwise kernel width and height (> 0).
        stride_w, stride_h: step of the depthwise kernel (> 0, default 1).
        pad_w, pad_h: zeros added on each side (>= 0, default 0); both -1 means "SAME".
        with_bias: learn an additive bias per output channel (default True).
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.
        w_regularizer, b_regularizer, p_regularizer: optional regularizers of the depthwise
            weight, the bias and the pointwise weight (BigDL's names).
        init_depth_weight, init_point_weight, init_bias: optional arrays to start from.

    Parameters: ``depth_weight`` ``(n_input_channel * depth_multiplier, 1, kernel_h, kernel_w)``
    (filter ``c * depth_multiplier + m`` reads input channel ``c``), ``point_weight``
    ``(n_output_channel, n_input_channel * depth_multiplier, 1, 1)`` and ``bias``
    ``(n_output_channel,)``.  Both weights are initialized by ``weight_init_method`` (default
    ``RandomUniform()``: ``±1/sqrt(fan_in)``, with fan-in ``kernel_w * kernel_h`` for the
    depthwise and ``n_input_channel * depth_multiplier`` for the pointwise weight; BigDL draws
    them from ``[0, 1)``), the bias by ``bias_init_method`` (default ``Zeros()``, as BigDL).

    Input shape: ``(N, n_input_channel, H, W)`` (``(N, H, W, n_input_channel)`` for NHWC), or
        without ``N``.
    Output shape: ``(N, n_output_channel, H_out, W_out)`` with the sizes of a
        ``SpatialConvolution`` of the same kernel, stride and padding.
    """

    _axes = ("h", "w")

    def __init__(self, n_input_channel, n_output_channel, depth_multiplier, kernel_w, kernel_h,
                 stride_w=1, stride_h=1, pad_w=0, pad_h=0, with_bias=True, data_format="NCHW",
                 w_regularizer=None, b_regularizer=None, p_regularizer=None,
                 init_depth_weight=None, init_point_weight=None, init_bias=None):
        super().__init__()
        cls = type(self).__name__
        self.n_input_channel = check_int(cls, "n_input_channel", n_input_channel)
        self.n_output_channel = check_int(cls, "n_output_channel", n_output_channel)
        self.depth_multiplier = check_int(cls, "depth_multiplier", depth_multiplier)
        self._setup(n_input_channel, n_output_channel, (kernel_h, kernel_w),
                    (stride_h, stride_w), (pad_h, pad_w), _NAMES_2D, with_bias=with_bias)
        self.data_format = check_data_format(cls, data_format)
        inner = self.n_input_channel * self.depth_multiplier
        self.weight_init_method = RandomUniform()
        self.bias_init_method = Zeros()
        self._add_parameter("depth_weight", (inner, 1) + self.kernel)
        self._add_parameter("point_weight", (self.n_output_channel, inner, 1, 1))
        if self.with_bias:
            self._add_parameter("bias", (self.n_output_channel,))
        self.reset()
        self._set_regularizer("depth_weight", w_regularizer)
        self._set_regularizer("point_weight", p_regularizer)
        if self.with_bias:
            self._set_regularizer("bias", b_regularizer)
        for name, value in (("depth_weight", init_depth_weight),
                            ("point_weight", init_point_weight), ("bias", init_bias)):
            if value is not None and hasattr(self, name):
                set_initial(self, name, value)

    def reset(self):
        inner = self.n_input_channel * self.depth_multiplier
        area = math.prod(self.kernel)
        self.weight_init_method.init(self.depth_weight, area, self.depth_multiplier * area)
        self.weight_init_method.init(self.point_weight, inner, self.n_output_channel)
        if self.with_bias:
            self.bias_init_method.init(self.bias, inner, self.n_output_channel)
        return self

    def _mid(self, n, l, dtype):
        return self._buffer("mid", (n, self.n_input_channel, self.depth_multiplier, l), dtype)

    def _apply(self, cols, y):
        n, c, m = y.shape[0], self.n_input_channel, self.depth_multiplier
        l = math.prod(y.shape[2:])
        k = math.prod(self.kernel)
        # depthwise: (C, M, K) @ (N, C, K, L) -> (N, C, M, L); pointwise: (O, C*M) @ (N, C*M, L)
        mid = self._mid(n, l, y.dtype)
        np.matmul(self.depth_weight.reshape(c, m, k), cols.reshape(n, c, k, l), out=mid)
        np.matmul(self.point_weight.reshape(self.n_output_channel, c * m),
                  mid.reshape(n, c * m, l), out=y.reshape(n, self.n_output_channel, l))
        if self.with_bias:
            y += self.bias.reshape(-1, 1, 1)

    def _mid_grad(self, gout):
        n, c, m = gout.shape[0], self.n_input_channel, self.depth_multiplier
        l = math.prod(gout.shape[2:])
        gmid = self._buffer("grad_mid", (n, c, m, l), gout.dtype)
        np.matmul(self.point_weight.reshape(self.n_output_channel, c * m).T,
                  gout.reshape(n, self.n_output_channel, l), out=gmid.reshape(n, c * m, l))
        return gmid

    def _window_grad(self, gout, dcols):
        n, c, m = gout.shape[0], self.n_input_channel, self.depth_multiplier
        l, k = math.prod(gout.shape[2:]), math.prod(self.kernel)
        np.matmul(self.depth_weight.reshape(c, m, k).transpose(0, 2, 1), self._mid_grad(gout),
                  out=dcols.reshape(n, c, k, l))

    def _param_grad(self, cols, gout):
        n, c, m = gout.shape[0], self.n_input_channel, self.depth_multiplier
        l, k, o = math.prod(gout.shape[2:]), math.prod(self.kernel), self.n_output_channel
        mid = self.__dict__.get("_scratch", {}).get("mid")
        if mid is None or mid.shape != (n, c, m, l) or mid.dtype != gout.dtype:
            self._apply(cols, self._buffer("output_again", (n, o) + gout.shape[2:], gout.dtype))
            mid = self._mid(n, l, gout.dtype)
        g2 = gout.reshape(n, o, l)
        self.grad_point_weight += np.matmul(g2, mid.reshape(n, c * m, l).transpose(0, 2, 1)).sum(
            axis=0).reshape(self.grad_point_weight.shape)
        gmid = self._mid_grad(gout)
        self.grad_depth_weight += np.matmul(gmid, cols.reshape(n, c, k, l).transpose(0, 1, 3, 2)
                                            ).sum(axis=0).reshape(self.grad_depth_weight.shape)
        if self.with_bias:
            self.grad_bias += g2.sum(axis=(0, 2))

    def extra_repr(self):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pads
        pad = "SAME" if self.same_padding else f"{pw},{ph}"
        s = (f"{self.n_input_channel} -> {self.n_output_channel}, depth x{self.depth_multiplier}, "
             f"{kw}x{kh}, {sw},{sh}, {pad}")
        if self.channels_last:
            s += ", NHWC"
        return s + ("" if self.with_bias else ", without bias")


class LocallyConnected2D(ConvolutionND):
    """Like ``SpatialConvolution``, but every output position has its own filters (weights are
    not shared across the plane), so the input size is fixed.

    Args:
        n_input_plane: input channels (> 0).
        input_width, input_height: the input plane's size (> 0).
        n_output_plane: output channels (> 0).
        kernel_w, kernel_h: kernel width and height (> 0).
        stride_w, stride_h: step of the kernel (> 0, default 1).
        pad_w, pad_h: zeros added on each side (>= 0, default 0); both -1 means "SAME".
        propagate_back: compute the gradient of the input (default True).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.
        init_weight, init_bias, init_grad_weight, init_grad_bias: optional arrays to start from.
        with_bias: learn an additive bias per output position and channel (default True).
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.

    Parameters (BigDL's layout): ``weight`` ``(H_out * W_out, n_output_plane,
    n_input_plane * kernel_h * kernel_w)`` (the last axis ordered channel, row, column) and
    ``bias`` ``(H_out * W_out, n_output_plane)``; default initialization ``RandomUniform()``
    (``±1/sqrt(n_input_plane * kernel_w * kernel_h)``).

    Input shape: ``(N, n_input_plane, input_height, input_width)`` (channels last for NHWC), or
        without ``N``.
    Output shape: ``(N, n_output_plane, H_out, W_out)`` with the sizes of the matching
        ``SpatialConvolution``.
    """

    _axes = ("h", "w")

    def __init__(self, n_input_plane, input_width, input_height, n_output_plane, kernel_w,
                 kernel_h, stride_w=1, stride_h=1, pad_w=0, pad_h=0, propagate_back=True,
                 wRegularizer=None, bRegularizer=None, init_weight=None, init_bias=None,
                 init_grad_weight=None, init_grad_bias=None, with_bias=True, data_format="NCHW"):
        super().__init__()
        cls = type(self).__name__
        self.input_height, self.input_width = check_ints(
            cls, ("input_height", "input_width"), (input_height, input_width))
        self._setup(n_input_plane, n_output_plane, (kernel_h, kernel_w), (stride_h, stride_w),
                    (pad_h, pad_w), _NAMES_2D, with_bias=with_bias, propagate_back=propagate_back)
        self.data_format = check_data_format(cls, data_format)
        self.out_size, _ = self._geometry((self.input_height, self.input_width))
        if min(self.out_size) < 1:
            raise ValueError(f"{cls}: a {kernel_w}x{kernel_h} kernel with padding "
                             f"{pad_w},{pad_h} does not fit a {input_width}x{input_height} input")
        l, k = math.prod(self.out_size), self.n_input_plane * math.prod(self.kernel)
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (l, self.n_output_plane, k))
        if self.with_bias:
            self._add_parameter("bias", (l, self.n_output_plane))
        self.reset()
        self._set_regularizer("weight", wRegularizer)
        if self.with_bias:
            self._set_regularizer("bias", bRegularizer)
        for name, value in (("weight", init_weight), ("bias", init_bias),
                            ("grad_weight", init_grad_weight), ("grad_bias", init_grad_bias)):
            if value is not None and hasattr(self, name):
                set_initial(self, name, value)

    def reset(self):
        k = self.n_input_plane * math.prod(self.kernel)
        self.weight_init_method.init(self.weight, k, self.n_output_plane)
        if self.with_bias:
            self.bias_init_method.init(self.bias, k, self.n_output_plane)
        return self

    def _expected(self, sizes=False):
        h, w, c = self.input_height, self.input_width, self.n_input_plane
        return f"(N, {h}, {w}, {c})" if self.channels_last else f"(N, {c}, {h}, {w})"

    def _check_size(self, size, input):
        if tuple(size) != (self.input_height, self.input_width):
            self._fail(self._expected(), input)

    def _apply(self, cols, y):
        n, o = y.shape[:2]
        l = math.prod(y.shape[2:])
        k = cols.size // (n * l)
        # per position: (L, N, K) @ (L, K, O) -> (L, N, O)
        per_pos = np.matmul(cols.reshape(n, k, l).transpose(2, 0, 1),
                            self.weight.transpose(0, 2, 1),
                            out=self._buffer("per_position", (l, n, o), y.dtype))
        if self.with_bias:
            per_pos += self.bias[:, None, :]
        y.reshape(n, o, l)[...] = per_pos.transpose(1, 2, 0)

    def _window_grad(self, gout, dcols):
        n, o = gout.shape[:2]
        l = math.prod(gout.shape[2:])
        k = dcols.size // (n * l)
        # (L, N, O) @ (L, O, K) -> (L, N, K)
        per_pos = np.matmul(gout.reshape(n, o, l).transpose(2, 0, 1), self.weight,
                            out=self._buffer("grad_per_position", (l, n, k), gout.dtype))
        dcols.reshape(n, k, l)[...] = per_pos.transpose(1, 2, 0)

    def _param_grad(self, cols, gout):
        n, o = gout.shape[:2]
        l = math.prod(gout.shape[2:])
        k = cols.size // (n * l)
        g = gout.reshape(n, o, l).transpose(2, 1, 0)  # (L, O, N)
        # (L, O, N) @ (L, N, K) -> (L, O, K)
        self.grad_weight += np.matmul(g, cols.reshape(n, k, l).transpose(2, 0, 1))
        if self.with_bias:
            self.grad_bias += g.sum(axis=2)

    def extra_repr(self):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pads
        pad = "SAME" if self.same_padding else f"{pw},{ph}"
        s = (f"{self.n_input_plane}x{self.input_width}x{self.input_height} -> "
             f"{self.n_output_plane}, {kw}x{kh}, {sw},{sh}, {pad}")
        if self.channels_last:
            s += ", NHWC"
        return s + ("" if self.with_bias else ", without bias")
