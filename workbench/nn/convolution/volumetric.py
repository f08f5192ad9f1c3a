"""Volumetric (3-D) layers over ``(N, C, T, H, W)`` volumes (Torch7 / BigDL):
VolumetricConvolution and VolumetricFullConvolution (the volumetric pooling layers are in
``workbench.nn.pooling.volumetric``).

The arithmetic is the N-d machinery of ``convnd`` and ``pooling``: BigDL's argument order puts
``t, w, h`` while the arrays are ``t, h, w``, so each constructor reorders once.
"""
from __future__ import annotations

from .convnd import ConvolutionND, FullConvolutionND

__all__ = ["VolumetricConvolution", "VolumetricFullConvolution"]


class VolumetricConvolution(ConvolutionND):
    """3-D convolution (cross-correlation) over volumes or videos.

    Args:
        n_input_plane: input channels (> 0).
        n_output_plane: output channels (> 0).
        k_t, k_w, k_h: kernel depth (time), width and height (> 0).
        d_t, d_w, d_h: step of the kernel (> 0, default 1).
        pad_t, pad_w, pad_h: zeros added on each side (>= 0, default 0); all three -1 means
            "SAME" padding as in BigDL / TensorFlow (output size ``ceil(size / stride)``).
        with_bias: learn an additive bias per output channel (default True).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.

    The weight has shape ``(n_output_plane, n_input_plane, k_t, k_h, k_w)``; default
    initialization ``RandomUniform()`` (``±1/sqrt(n_input_plane * k_t * k_h * k_w)``).

    Input shape: ``(N, n_input_plane, T, H, W)`` or ``(n_input_plane, T, H, W)``.
    Output shape: ``(N, n_output_plane, T_out, H_out, W_out)`` (or without ``N``), where
        ``T_out = (T + 2*pad_t - k_t) // d_t + 1`` and likewise for ``H_out``, ``W_out``.
    """

    def __init__(self, n_input_plane, n_output_plane, k_t, k_w, k_h, d_t=1, d_w=1, d_h=1,
                 pad_t=0, pad_w=0, pad_h=0, with_bias=True, wRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        self._setup(n_input_plane, n_output_plane, (k_t, k_h, k_w), (d_t, d_h, d_w),
                    (pad_t, pad_h, pad_w), VOLUME_ARG_NAMES, with_bias=with_bias)
        self._init_parameters(wRegularizer, bRegularizer)

    def extra_repr(self):
        (kt, kh, kw), (dt, dh, dw), (pt, ph, pw) = self.kernel, self.stride, self.pads
        pad = "SAME" if self.same_padding else f"{pt},{pw},{ph}"
        return (f"{self.n_input_plane} -> {self.n_output_plane}, {kt}x{kw}x{kh}, "
                f"{dt},{dw},{dh}, {pad}" + ("" if self.with_bias else ", without bias"))


class VolumetricFullConvolution(FullConvolutionND):
    """3-D transposed convolution ("deconvolution"): the gradient of a
    ``VolumetricConvolution`` with respect to its input, used to upsample.

    Args:
        n_input_plane: input channels (> 0, divisible by ``n_group``).
        n_output_plane: output channels (> 0, divisible by ``n_group``).
        kt, kw, kh: kernel depth, width and height (> 0).
        dt, dw, dh: step (> 0, default 1).
        pad_t, pad_w, pad_h: zeros removed from each side of the output (>= 0, default 0).
        adj_t, adj_w, adj_h: extra depth / width / height added to the output (0 <= adj <
            stride, default 0).
        n_group: split the channels into this many groups (default 1).
        no_bias: no additive bias (default False).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.

    The weight has shape ``(n_input_plane, n_output_plane / n_group, kt, kh, kw)`` (Torch's
    layout); default initialization ``±1/sqrt(n_input_plane * kt * kh * kw)``.

    Input shape: ``(N, n_input_plane, T, H, W)`` or without ``N``; or a table ``[input,
        size_tensor]`` whose last three sizes set the output size (instead of ``adj``), as
        BigDL; its gradient is zeros.
    Output shape: ``(N, n_output_plane, T_out, H_out, W_out)``, where
        ``T_out = (T - 1)*dt - 2*pad_t + kt + adj_t`` and likewise for ``H_out``, ``W_out``.
    """

    def __init__(self, n_input_plane, n_output_plane, kt, kw, kh, dt=1, dw=1, dh=1, pad_t=0,
                 pad_w=0, pad_h=0, adj_t=0, adj_w=0, adj_h=0, n_group=1, no_bias=False,
                 wRegularizer=None, bRegularizer=None):
        super().__init__()
        self._setup(n_input_plane, n_output_plane, (kt, kh, kw), (dt, dh, dw),
                    (pad_t, pad_h, pad_w), (adj_t, adj_h, adj_w), n_group, no_bias,
                    names={"kernel": ("kt", "kh", "kw"), "stride": ("dt", "dh", "dw"),
                           "pad": ("pad_t", "pad_h", "pad_w"), "adj": ("adj_t", "adj_h", "adj_w")})
        self._init_parameters(wRegularizer, bRegularizer)

    def extra_repr(self):
        (kt, kh, kw), (dt, dh, dw), (pt, ph, pw) = self.kernel, self.stride, self.pads
        s = (f"{self.n_input_plane} -> {self.n_output_plane}, {kt}x{kw}x{kh}, {dt},{dw},{dh}, "
             f"{pt},{pw},{ph}")
        if any(self.adj):
            s += ", adj {},{},{}".format(self.adj[0], self.adj[2], self.adj[1])
        if self.n_group > 1:
            s += f", n_group={self.n_group}"
        return s + (", without bias" if self.no_bias else "")


VOLUME_ARG_NAMES = {"kernel": ("k_t", "k_h", "k_w"), "stride": ("d_t", "d_h", "d_w"),
               "pad": ("pad_t", "pad_h", "pad_w")}


