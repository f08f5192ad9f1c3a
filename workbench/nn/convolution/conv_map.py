"""A connection-table 2-D convolution (BigDL ``SpatialConvolutionMap``), and the dense N-d
convolution ``conv_forward`` / ``conv_backward`` that it and ``ConvLSTMPeephole3D`` use."""
from __future__ import annotations

import numpy as np

from ..._checks import check_int
from .convnd import col2im_add, window_view
from ..initializers import RandomUniform
from ..module import Module, check_grad_output
from ..shape.reshape import keep

__all__ = ["SpatialConvolutionMap"]


def conv_forward(x, w, stride, pads):
    """Cross-correlation over ``d`` spatial axes: ``x (N, C, *size)``, ``w (O, C, *kernel)``,
    ``pads`` = ``[(before, after)]``.  Returns ``(N, O, *out)`` and a context for backward."""
    d = w.ndim - 2
    kernel = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads)) if any(p for pr in pads for p in pr) else x
    out = tuple((xp.shape[2 + a] - kernel[a]) // stride[a] + 1 for a in range(d))
    win = window_view(xp, kernel, stride, (1,) * d, out)        # (N, C, *out, *kernel)
    n, c = x.shape[:2]
    order = (0,) + tuple(range(2, 2 + d)) + (1,) + tuple(range(2 + d, 2 + 2 * d))
    cols = win.transpose(order).reshape(n * int(np.prod(out)), -1)
    y = cols @ w.reshape(w.shape[0], -1).T
    y = y.reshape((n,) + out + (w.shape[0],))
    y = np.ascontiguousarray(np.moveaxis(y, -1, 1))
    return y, (cols, x.shape, xp.shape, pads, stride, out)


def conv_backward(grad_out, w, ctx):
    """``(grad_x, grad_w)`` of :func:`conv_forward`."""
    cols, x_shape, xp_shape, pads, stride, out = ctx
    d = w.ndim - 2
    kernel = w.shape[2:]
    o = w.shape[0]
    n, c = x_shape[:2]
    g2 = np.moveaxis(grad_out, 1, -1).reshape(-1, o)
    grad_w = (g2.T @ cols).reshape(w.shape)
    dcols = (g2 @ w.reshape(o, -1)).reshape((n,) + out + (c,) + kernel)
    order = (0, 1 + d) + tuple(range(2 + d, 2 + 2 * d)) + tuple(range(1, 1 + d))
    gp = np.zeros(xp_shape, dtype=grad_out.dtype)
    col2im_add(dcols.transpose(order), gp, kernel, stride, (1,) * d, out)
    inner = (slice(None), slice(None)) + tuple(slice(b, b + s)
                                               for (b, _), s in zip(pads, x_shape[2:]))
    return gp[inner], grad_w


class SpatialConvolutionMap(Module):
    """2-D convolution whose input-to-output plane connections are given by a table (Torch /
    BigDL ``SpatialConvolutionMap``): output plane ``o`` is its bias plus the sum, over the
    rows ``(i, o)`` of ``conn_table``, of input plane ``i`` correlated with that row's kernel.

    Args:
        conn_table: ``(n_connections, 2)`` array or list of 1-based ``(input plane, output
            plane)`` pairs; the plane counts are the largest indices.  ``full(nin, nout)`` and
            ``one_to_one(n)`` build the usual tables.
        kw, kh: kernel width and height (> 0).
        dw, dh: strides (> 0, default 1).
        pad_w, pad_h: zero padding (>= 0, default 0).
        wRegularizer, bRegularizer: optional regularizers of the weight and the bias.

    Parameters: ``weight (n_connections, kh, kw)``, ``bias (n_output_plane,)``.

    Input shape: ``(N, n_input_plane, H, W)`` or ``(n_input_plane, H, W)``.
    Output shape: ``(N, n_output_plane, H', W')`` with ``H' = (H + 2 pad_h - kh) // dh + 1``.
    """

    def __init__(self, conn_table, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, wRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        cls = "SpatialConvolutionMap"
        try:
            table = np.asarray(conn_table)
            ok = table.ndim == 2 and table.shape[1] == 2 and table.shape[0] > 0 and \
                np.all(table == np.round(table)) and np.all(table >= 1)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{cls}: conn_table must be an (n, 2) table of 1-based plane "
                             f"indices, got {conn_table!r}")
        self.conn_table = table.astype(np.int64)
        self._init_args["conn_table"] = self.conn_table.tolist()  # a list survives the config
        self.n_input_plane = int(self.conn_table[:, 0].max())
        self.n_output_plane = int(self.conn_table[:, 1].max())
        self.kw, self.kh = check_int(cls, "kw", kw), check_int(cls, "kh", kh)
        self.dw, self.dh = check_int(cls, "dw", dw), check_int(cls, "dh", dh)
        self.pad_w = check_int(cls, "pad_w", pad_w, minimum=0)
        self.pad_h = check_int(cls, "pad_h", pad_h, minimum=0)
        k = len(self.conn_table)
        self._in_onehot = np.eye(self.n_input_plane)[self.conn_table[:, 0] - 1]    # (K, C)
        self._out_onehot = np.eye(self.n_output_plane)[self.conn_table[:, 1] - 1]  # (K, O)
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (k, self.kh, self.kw))
        self._add_parameter("bias", (self.n_output_plane,))
        self.reset()
        self._set_regularizer("weight", wRegularizer)
        self._set_regularizer("bias", bRegularizer)

    @staticmethod
    def full(nin, nout):
        """Every input plane connected to every output plane (1-based table)."""
        return [[i, o] for o in range(1, nout + 1) for i in range(1, nin + 1)]

    @staticmethod
    def one_to_one(nfeat):
        """Input plane ``i`` connected to output plane ``i`` only (1-based table)."""
        return [[i, i] for i in range(1, nfeat + 1)]

    def reset(self):
        fan_in = self.kw * self.kh * max(1, int(self._out_onehot.sum(axis=0).max()))
        self.weight_init_method.init(self.weight, fan_in, self.n_output_plane)
        self.bias_init_method.init(self.bias, fan_in, self.n_output_plane)
        return self

    def _dense_weight(self):
        """The equivalent ``(O, C, kh, kw)`` weight of an ordinary convolution."""
        return np.einsum("ko,kc,kab->ocab", self._out_onehot, self._in_onehot, self.weight)

    def update_output(self, input):
        expected = f"(N, {self.n_input_plane}, H, W)"
        x = self._as_array(input, (3, 4), expected)
        x4 = x if x.ndim == 4 else x[None]
        if x4.shape[1] != self.n_input_plane or \
                x4.shape[2] + 2 * self.pad_h < self.kh or x4.shape[3] + 2 * self.pad_w < self.kw:
            self._fail(expected, x)
        pads = [(self.pad_h, self.pad_h), (self.pad_w, self.pad_w)]
        out, ctx = conv_forward(x4, self._dense_weight().astype(x.dtype),
                                       (self.dh, self.dw), pads)
        keep(self, ctx=ctx)
        out += self.bias[:, None, None]
        return out if x.ndim == 4 else out[0]

    def _grads(self, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=self.weight.dtype)
        g4 = g if g.ndim == 4 else g[None]
        return g4, conv_backward(g4, self._dense_weight(), self._scratch["ctx"])

    def update_grad_input(self, input, grad_output):
        _, (gx, _) = self._grads(grad_output)
        return gx if np.ndim(input) == 4 else gx[0]

    def acc_grad_parameters(self, input, grad_output):
        g4, (_, gw) = self._grads(grad_output)
        self.grad_weight += np.einsum("ko,kc,ocab->kab", self._out_onehot, self._in_onehot, gw)
        self.grad_bias += g4.sum(axis=(0, 2, 3))

    def extra_repr(self):
        return (f"{self.n_input_plane} -> {self.n_output_plane}, {len(self.conn_table)} "
                f"connections, {self.kw}x{self.kh}, {self.dw},{self.dh}, "
                f"{self.pad_w},{self.pad_h}")


