"""Temporal (1-D) layers over ``(N, T, F)`` sequences of frames (Torch7 / BigDL):
TemporalConvolution and LocallyConnected1D (TemporalMaxPooling is in
``workbench.nn.pooling.temporal``).

A window of ``kernel_w`` frames is read as one row of ``kernel_w * F`` values (frame after
frame, as Torch lays out the weights), so the convolutions are one matmul over a window matrix
built with a single strided copy, and the input gradient goes back with one add per kernel tap.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..._checks import check_int
from .spatial import set_initial
from ..initializers import RandomUniform
from ..module import Module, check_grad_output

__all__ = ["TemporalConvolution", "LocallyConnected1D"]


class _TemporalWindows(Module):
    """Window matrices and their gradients for ``(N, T, F)`` inputs; subclasses supply the
    arithmetic (``_apply``, ``_window_grad``, ``_param_grad``)."""

    def _setup(self, input_frame_size, output_frame_size, kernel_w, stride_w, propagate_back):
        cls = type(self).__name__
        self.input_frame_size = check_int(cls, "input_frame_size", input_frame_size)
        self.output_frame_size = check_int(cls, "output_frame_size", output_frame_size)
        self.kernel_w = check_int(cls, "kernel_w", kernel_w)
        self.stride_w = check_int(cls, "stride_w", stride_w)
        self.propagate_back = bool(propagate_back)

    def _init_parameters(self, weight_shape, bias_shape, regularizers, initial):
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", weight_shape)
        self._add_parameter("bias", bias_shape)
        self.reset()
        self._set_regularizer("weight", regularizers[0])
        self._set_regularizer("bias", regularizers[1])
        for name, value in zip(("weight", "bias", "grad_weight", "grad_bias"), initial):
            if value is not None:
                set_initial(self, name, value)

    def reset(self):
        fan_in = self.kernel_w * self.input_frame_size  # Torch: ±1/sqrt(kW * inputFrameSize)
        self.weight_init_method.init(self.weight, fan_in, self.output_frame_size)
        self.bias_init_method.init(self.bias, fan_in, self.output_frame_size)
        return self

    def _frames(self, t):
        return (t - self.kernel_w) // self.stride_w + 1

    def _expected(self, sizes=False):
        t = f"T>={self.kernel_w}" if sizes else "T"
        return f"(N, {t}, {self.input_frame_size})"

    def _input(self, input):
        x = self._as_array(input, (2, 3), self._expected())
        if x.shape[-1] != self.input_frame_size:
            self._fail(self._expected(), input)
        if self._frames(x.shape[-2]) < 1:
            self._fail(self._expected(sizes=True), input)
        return x if x.ndim == 3 else x[None]

    def _cols(self, x):
        """``(N, T_out, kernel_w, F)`` window matrix of batched ``x``."""
        n, t, f = x.shape
        to, k, s = self._frames(t), self.kernel_w, self.stride_w
        cols = self._buffer("cols", (n, to, k, f), x.dtype)
        v = sliding_window_view(x, k, axis=1)[:, : (to - 1) * s + 1: s]  # (N, T_out, F, k)
        np.copyto(cols, v.transpose(0, 1, 3, 2))
        return cols

    def _grad_output(self, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=self.weight.dtype)
        return g if g.ndim == 3 else g[None]

    def update_output(self, input):
        x = self._input(input)
        y = self._buffer("output", (x.shape[0], self._frames(x.shape[1]), self.output_frame_size),
                         x.dtype)
        self._apply(self._cols(x), y)
        return y if np.ndim(input) == 3 else y[0]

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        g = self._grad_output(grad_output)
        gi = self._buffer("grad_input", x.shape, x.dtype)
        gi.fill(0)
        if self.propagate_back:
            n, to = g.shape[:2]
            dcols = self._buffer("dcols", (n, to, self.kernel_w, self.input_frame_size), x.dtype)
            self._window_grad(g, dcols)
            s = self.stride_w
            for j in range(self.kernel_w):
                gi[:, j: j + (to - 1) * s + 1: s] += dcols[:, :, j]
        return gi if np.ndim(input) == 3 else gi[0]

    def acc_grad_parameters(self, input, grad_output):
        x = self._input(input)
        cols = self.__dict__.get("_scratch", {}).get("cols")
        to = self._frames(x.shape[1])
        if cols is None or cols.shape != (x.shape[0], to, self.kernel_w, x.shape[2]) \
                or cols.dtype != x.dtype:
            cols = self._cols(x)  # forward's window matrix is gone: rebuild it
        self._param_grad(cols, self._grad_output(grad_output))


class TemporalConvolution(_TemporalWindows):
    """1-D convolution over a sequence of frames.

    Args:
        input_frame_size: values per input frame (> 0).
        output_frame_size: values per output frame (> 0).
        kernel_w: frames per window (> 0).
        stride_w: step between windows (> 0, default 1).
        propagate_back: compute the gradient of the input (default True).
        weight_regularizer, bias_regularizer: optional regularizers (BigDL's names).
        init_weight, init_bias, init_grad_weight, init_grad_bias: optional arrays to start from.

    Parameters (Torch / BigDL layout): ``weight`` ``(output_frame_size, kernel_w *
    input_frame_size)``, a window read frame after frame, and ``bias``
    ``(output_frame_size,)``; default initialization ``RandomUniform()``
    (``±1/sqrt(kernel_w * input_frame_size)``).

    Input shape: ``(N, T, input_frame_size)`` or ``(T, input_frame_size)``.
    Output shape: ``(N, T_out, output_frame_size)`` (or without ``N``), where
        ``T_out = (T - kernel_w) // stride_w + 1``.
    """

    def __init__(self, input_frame_size, output_frame_size, kernel_w, stride_w=1,
                 propagate_back=True, weight_regularizer=None, bias_regularizer=None,
                 init_weight=None, init_bias=None, init_grad_weight=None, init_grad_bias=None):
        super().__init__()
        self._setup(input_frame_size, output_frame_size, kernel_w, stride_w, propagate_back)
        self._init_parameters((self.output_frame_size, self.kernel_w * self.input_frame_size),
                              (self.output_frame_size,), (weight_regularizer, bias_regularizer),
                              (init_weight, init_bias, init_grad_weight, init_grad_bias))

    def _apply(self, cols, y):
        n, to, o = y.shape
        np.matmul(cols.reshape(n * to, -1), self.weight.T, out=y.reshape(n * to, o))
        y += self.bias

    def _window_grad(self, g, dcols):
        n, to, o = g.shape
        np.matmul(g.reshape(n * to, o), self.weight, out=dcols.reshape(n * to, -1))

    def _param_grad(self, cols, g):
        n, to, o = g.shape
        self.grad_weight += g.reshape(n * to, o).T @ cols.reshape(n * to, -1)
        self.grad_bias += g.sum(axis=(0, 1))

    def extra_repr(self):
        return (f"{self.input_frame_size} -> {self.output_frame_size}, {self.kernel_w}, "
                f"{self.stride_w}")


class LocallyConnected1D(_TemporalWindows):
    """Like ``TemporalConvolution``, but every output frame has its own filters (weights are not
    shared along the sequence), so the sequence length is fixed.

    Args:
        n_input_frame: frames per input sequence (>= kernel_w).
        input_frame_size: values per input frame (> 0).
        output_frame_size: values per output frame (> 0).
        kernel_w: frames per window (> 0).
        stride_w: step between windows (> 0, default 1).
        propagate_back: compute the gradient of the input (default True).
        weight_regularizer, bias_regularizer: optional regularizers (BigDL's names).
        init_weight, init_bias, init_grad_weight, init_grad_bias: optional arrays to start from.

    Parameters (BigDL layout): ``weight`` ``(T_out, output_frame_size, kernel_w *
    input_frame_size)`` and ``bias`` ``(T_out, output_frame_size)``; default initialization
    ``RandomUniform()`` (``±1/sqrt(kernel_w * input_frame_size)``).

    Input shape: ``(N, n_input_frame, input_frame_size)`` or without ``N``.
    Output shape: ``(N, T_out, output_frame_size)``, ``T_out = (n_input_frame - kernel_w) //
        stride_w + 1``.
    """

    def __init__(self, n_input_frame, input_frame_size, output_frame_size, kernel_w, stride_w=1,
                 propagate_back=True, weight_regularizer=None, bias_regularizer=None,
                 init_weight=None, init_bias=None, init_grad_weight=None, init_grad_bias=None):
        super().__init__()
        cls = type(self).__name__
        self.n_input_frame = check_int(cls, "n_input_frame", n_input_frame)
        self._setup(input_frame_size, output_frame_size, kernel_w, stride_w, propagate_back)
        self.n_output_frame = self._frames(self.n_input_frame)
        if self.n_output_frame < 1:
            raise ValueError(f"{cls}: kernel_w ({kernel_w!r}) must not exceed n_input_frame "
                             f"({n_input_frame!r})")
        o, k = self.output_frame_size, self.kernel_w * self.input_frame_size
        self._init_parameters((self.n_output_frame, o, k), (self.n_output_frame, o),
                              (weight_regularizer, bias_regularizer),
                              (init_weight, init_bias, init_grad_weight, init_grad_bias))

    def _expected(self, sizes=False):
        return f"(N, {self.n_input_frame}, {self.input_frame_size})"

    def _input(self, input):
        x = super()._input(input)
        if x.shape[1] != self.n_input_frame:
            self._fail(self._expected(), input)
        return x

    def _apply(self, cols, y):
        n, to, o = y.shape
        # per output frame: (T_out, N, K) @ (T_out, K, O) -> (T_out, N, O)
        per_frame = np.matmul(cols.reshape(n, to, -1).transpose(1, 0, 2),
                              self.weight.transpose(0, 2, 1),
                              out=self._buffer("per_frame", (to, n, o), y.dtype))
        per_frame += self.bias[:, None, :]
        y[...] = per_frame.transpose(1, 0, 2)

    def _window_grad(self, g, dcols):
        n, to, o = g.shape
        # (T_out, N, O) @ (T_out, O, K) -> (T_out, N, K)
        dcols.reshape(n, to, -1)[...] = np.matmul(g.transpose(1, 0, 2),
                                                  self.weight).transpose(1, 0, 2)

    def _param_grad(self, cols, g):
        n, to, o = g.shape
        # (T_out, O, N) @ (T_out, N, K) -> (T_out, O, K)
        self.grad_weight += np.matmul(g.transpose(1, 2, 0),
                                      cols.reshape(n, to, -1).transpose(1, 0, 2))
        self.grad_bias += g.sum(axis=0)

    def extra_repr(self):
        return (f"{self.n_input_frame}x{self.input_frame_size} -> "
                f"{self.n_output_frame}x{self.output_frame_size}, {self.kernel_w}, {self.stride_w}")


