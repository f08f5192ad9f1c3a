"""ConvLSTMPeephole: an LSTM cell whose products are 2-D convolutions (BigDL
``ConvLSTMPeephole``), run over ``(N, T, C, H, W)`` sequences by ``Recurrent``.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..initializers import RandomUniform
from ..._checks import positive_int
from .rnn import LSTMCore, activation_name

__all__ = ["ConvLSTMPeephole"]


def out_size(size, kernel, stride, pad):
    """Output length and ``(before, after)`` padding; ``pad=-1`` is BigDL's "SAME"."""
    if pad == -1:
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + kernel - size)
        return out, (total // 2, total - total // 2)
    return (size + 2 * pad - kernel) // stride + 1, (pad, pad)


def conv2d(x, w, stride, pad):
    """Cross-correlation of ``x (N, C, H, W)`` with ``w (O, C, k, k)``; returns the output
    ``(N, O, oh, ow)`` and the context for :func:`conv2d_backward`."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    oh, ph = out_size(h, k, stride, pad)
    ow, pw = out_size(wd, k, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), ph, pw)) if any(ph + pw) else x
    win = sliding_window_view(xp, (k, k), axis=(2, 3))
    win = win[:, :, : (oh - 1) * stride + 1: stride, : (ow - 1) * stride + 1: stride]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)
    out = (cols @ w.reshape(o, -1).T).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out), (cols, x.shape, xp.shape, ph, pw, stride)


def conv2d_backward(grad_out, w, ctx):
    """``(grad_x, grad_w)`` of :func:`conv2d` for ``grad_out (N, O, oh, ow)``."""
    cols, x_shape, xp_shape, ph, pw, stride = ctx
    n, o, oh, ow = grad_out.shape
    k = w.shape[2]
    g2 = grad_out.transpose(0, 2, 3, 1).reshape(-1, o)
    grad_w = (g2.T @ cols).reshape(w.shape)
    gcols = (g2 @ w.reshape(o, -1)).reshape(n, oh, ow, x_shape[1], k, k)
    gxp = np.zeros(xp_shape, dtype=grad_out.dtype)
    for i in range(k):
        for j in range(k):
            gxp[:, :, i: i + (oh - 1) * stride + 1: stride, j: j + (ow - 1) * stride + 1: stride] \
                += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    h, wd = x_shape[2], x_shape[3]
    return gxp[:, :, ph[0]: ph[0] + h, pw[0]: pw[0] + wd], grad_w


class ConvLSTMPeephole(LSTMCore):
    """Convolutional LSTM with peepholes (BigDL ``ConvLSTMPeephole``; run it with
    ``Recurrent``): the LSTM of ``LSTMPeephole`` where ``W x`` and ``U h`` are convolutions and
    the peepholes are one weight per output channel.

    Args:
        input_size: input channels (> 0).
        output_size: channels of the hidden and cell states (> 0).
        kernel_i: kernel size of the input-to-gates convolution (> 0).
        kernel_c: kernel size of the state-to-gates convolution (> 0; "SAME" padding).
        stride: stride of the input convolution (> 0, default 1).
        padding: padding of the input convolution, -1 (default) for "SAME".
        activation: cell/output activation (default ``"tanh"``).
        inner_activation: gate activation (default ``"sigmoid"``).
        wRegularizer, uRegularizer, bRegularizer, cRegularizer: regularizers of the input
            kernels, the recurrent kernels, the bias and the peepholes.
        with_peephole: use the peepholes (default True).

    Parameters: ``weight (4*O, C, k_i, k_i)``, ``recurrent_weight (4*O, O, k_c, k_c)``,
    ``bias (4*O,)``, ``peephole (3, O)``; gates stacked as input, forget, cell, output.

    Input shape (in ``Recurrent``): ``(N, T, input_size, H, W)``.
    Output shape: ``(N, T, output_size, H', W')`` (``H' = ceil(H / stride)`` with "SAME").
    """

    _dims = 2  # spatial dimensions of the convolutions

    def __init__(self, input_size, output_size, kernel_i, kernel_c, stride=1, padding=-1,
                 activation=None, inner_activation=None, wRegularizer=None, uRegularizer=None,
                 bRegularizer=None, cRegularizer=None, with_peephole=True):
        super().__init__()
        cls = type(self).__name__
        self.input_size = positive_int(cls, "input_size", input_size)
        self.hidden_size = self.output_size = positive_int(cls, "output_size", output_size)
        self.kernel_i = positive_int(cls, "kernel_i", kernel_i)
        self.kernel_c = positive_int(cls, "kernel_c", kernel_c)
        self.stride = positive_int(cls, "stride", stride)
        if not isinstance(padding, (int, np.integer)) or isinstance(padding, bool) or padding < -1:
            raise ValueError(f"{cls}: padding must be an int >= 0 or -1 (SAME), got {padding!r}")
        self.padding = int(padding)
        self.activation = activation_name(cls, "activation", activation, "tanh")
        self.inner_activation = activation_name(cls, "inner_activation", inner_activation,
                                                "sigmoid")
        self.with_peephole = bool(with_peephole)
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        O, C, d = self.output_size, self.input_size, self._dims
        self._add_parameter("weight", (4 * O, C) + (self.kernel_i,) * d)
        self._add_parameter("recurrent_weight", (4 * O, O) + (self.kernel_c,) * d)
        self._add_parameter("bias", (4 * O,))
        if self.with_peephole:
            self._add_parameter("peephole", (3, O))
        self.reset()
        self._set_regularizer("weight", wRegularizer)
        self._set_regularizer("recurrent_weight", uRegularizer)
        self._set_regularizer("bias", bRegularizer)
        if self.with_peephole:
            self._set_regularizer("peephole", cRegularizer)

    def reset(self):
        fan_i = self.input_size * self.kernel_i ** self._dims
        fan_c = self.output_size * self.kernel_c ** self._dims
        self.weight_init_method.init(self.weight, fan_i, self.weight.shape[0])
        self.weight_init_method.init(self.recurrent_weight, fan_c, self.weight.shape[0])
        self.bias_init_method.init(self.bias, fan_i, self.weight.shape[0])
        if self.with_peephole:
            self.weight_init_method.init(self.peephole, fan_c, self.output_size)
        return self

    # ------------------------------------------------------------ shapes
    def probe_shape(self):
        return (self.input_size, 8, 8)

    def feature_shape_ok(self, shape):
        if len(shape) != 3 or shape[0] != self.input_size:
            return False
        return all(out_size(s, self.kernel_i, self.stride, self.padding)[0] > 0 for s in shape[1:])

    def expected_features(self):
        return f"{self.input_size}, H, W"

    def output_shape(self, step_shape):
        oh = out_size(step_shape[1], self.kernel_i, self.stride, self.padding)[0]
        ow = out_size(step_shape[2], self.kernel_i, self.stride, self.padding)[0]
        return (self.output_size, oh, ow)

    def state_shapes(self, step_shape):
        return [self.output_shape(step_shape)] * 2

    # ------------------------------------------------------------ products
    def project(self, x):
        lead = x.shape[:-3]
        x4 = x.reshape((-1,) + x.shape[-3:])
        mask = self._dropout_mask(x4.shape, x4.dtype)
        xd = x4 if mask is None else x4 * mask
        out, ctx = conv2d(xd, self.weight, self.stride, self.padding)
        out += self.bias[:, None, None]
        return out.reshape(lead + out.shape[1:]), (ctx, mask, x.shape)

    def project_backward(self, cache, grad_pre):
        ctx, mask, x_shape = cache
        g4 = grad_pre.reshape((-1,) + grad_pre.shape[-3:])
        gx, gw = conv2d_backward(np.ascontiguousarray(g4), self.weight, ctx)
        self._acc("weight", gw)
        self._acc("bias", g4.sum(axis=(0, 2, 3)))
        if mask is not None:
            gx = gx * mask
        return gx.reshape(x_shape)

    def _recur(self, hd):
        return conv2d(hd, self.recurrent_weight, 1, -1)

    def _recur_backward(self, dz, ctx):
        gh, gw = conv2d_backward(dz, self.recurrent_weight, ctx)
        self._acc("recurrent_weight", gw)
        return gh

    def _peepholes(self):
        return self.peephole[:, :, None, None] if self.with_peephole else None

    def _peephole_grad(self, grads, axes):
        self._acc("peephole", np.stack(grads))

    def extra_repr(self):
        return (f"{self.input_size} -> {self.output_size}, kernel {self.kernel_i}x{self.kernel_i}"
                f"/{self.kernel_c}x{self.kernel_c}"
                + ("" if self.with_peephole else ", no peephole"))
