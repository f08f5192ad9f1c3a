"""The 3-D convolutional LSTM cell ``ConvLSTMPeephole3D`` (BigDL ``nn``).
"""
from __future__ import annotations

import numpy as np

from ..convolution.conv_map import conv_backward, conv_forward
from .conv_lstm import ConvLSTMPeephole, out_size

__all__ = ["ConvLSTMPeephole3D"]


class ConvLSTMPeephole3D(ConvLSTMPeephole):
    """Convolutional LSTM with peepholes over volumes (BigDL ``ConvLSTMPeephole3D``; run it with
    ``Recurrent``): ``ConvLSTMPeephole`` with 3-D convolutions.

    Args:
        input_size: input channels (> 0).
        output_size: channels of the hidden and cell states (> 0).
        kernel_i: kernel size (cubic) of the input-to-gates convolution (> 0).
        kernel_c: kernel size of the state-to-gates convolution (> 0; "SAME" padding).
        stride: stride of the input convolution (> 0, default 1).
        padding: padding of the input convolution, -1 (default) for "SAME".
        wRegularizer, uRegularizer, bRegularizer, cRegularizer: regularizers of the input
            kernels, the recurrent kernels, the bias and the peepholes.
        with_peephole: use the peepholes (default True).

    Parameters: ``weight (4*O, C, k_i, k_i, k_i)``, ``recurrent_weight (4*O, O, k_c, k_c,
    k_c)``, ``bias (4*O,)``, ``peephole (3, O)``; gates stacked as input, forget, cell, output.

    Input shape (in ``Recurrent``): ``(N, T, input_size, D, H, W)``.
    Output shape: ``(N, T, output_size, D', H', W')`` (``D' = ceil(D / stride)`` with "SAME").
    """

    _dims = 3

    def __init__(self, input_size, output_size, kernel_i, kernel_c, stride=1, padding=-1,
                 wRegularizer=None, uRegularizer=None, bRegularizer=None, cRegularizer=None,
                 with_peephole=True):
        super().__init__(input_size, output_size, kernel_i, kernel_c, stride, padding, None,
                         None, wRegularizer, uRegularizer, bRegularizer, cRegularizer,
                         with_peephole)

    def _pads(self, sizes, kernel, stride, pad):
        return [out_size(s, kernel, stride, pad)[1] for s in sizes]

    # ------------------------------------------------------------ shapes
    def probe_shape(self):
        return (self.input_size, 4, 4, 4)

    def feature_shape_ok(self, shape):
        if len(shape) != 4 or shape[0] != self.input_size:
            return False
        return all(out_size(s, self.kernel_i, self.stride, self.padding)[0] > 0
                   for s in shape[1:])

    def expected_features(self):
        return f"{self.input_size}, D, H, W"

    def output_shape(self, step_shape):
        return (self.output_size,) + tuple(
            out_size(s, self.kernel_i, self.stride, self.padding)[0] for s in step_shape[1:])

    # ------------------------------------------------------------ products
    def project(self, x):
        lead = x.shape[:-4]
        x5 = x.reshape((-1,) + x.shape[-4:])
        mask = self._dropout_mask(x5.shape, x5.dtype)
        xd = x5 if mask is None else x5 * mask
        pads = self._pads(x5.shape[2:], self.kernel_i, self.stride, self.padding)
        out, ctx = conv_forward(xd, self.weight, (self.stride,) * 3, pads)
        out += self.bias[:, None, None, None]
        return out.reshape(lead + out.shape[1:]), (ctx, mask, x.shape)

    def project_backward(self, cache, grad_pre):
        ctx, mask, x_shape = cache
        g5 = np.ascontiguousarray(grad_pre.reshape((-1,) + grad_pre.shape[-4:]))
        gx, gw = conv_backward(g5, self.weight, ctx)
        self._acc("weight", gw)
        self._acc("bias", g5.sum(axis=(0, 2, 3, 4)))
        if mask is not None:
            gx = gx * mask
        return gx.reshape(x_shape)

    def _recur(self, hd):
        pads = self._pads(hd.shape[2:], self.kernel_c, 1, -1)
        return conv_forward(hd, self.recurrent_weight, (1, 1, 1), pads)

    def _recur_backward(self, dz, ctx):
        gh, gw = conv_backward(dz, self.recurrent_weight, ctx)
        self._acc("recurrent_weight", gw)
        return gh

    def _peepholes(self):
        return self.peephole[:, :, None, None, None] if self.with_peephole else None

    def extra_repr(self):
        k, c = self.kernel_i, self.kernel_c
        return (f"{self.input_size} -> {self.output_size}, kernel {k}x{k}x{k}/{c}x{c}x{c}"
                + ("" if self.with_peephole else ", no peephole"))
