"""Convolution over any number of spatial axes: the machinery behind the volumetric (3-D) and the
transposed ("full") convolutions.

The same im2col + matmul as ``SpatialConvolution``, written once for ``d`` spatial axes: the
windows of a padded ``(N, C, *size)`` input are copied into a ``(N, C, *kernel, *out)`` window
matrix, every group is one batched matmul, and the input gradient goes back with one vectorized
strided add per kernel offset (``prod(kernel)`` adds, no loop over pixels or images).
A transposed convolution is the same two steps in the other order: its forward is the
scatter, its input gradient the window matrix.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..._checks import check_int
from .spatial import same_padding, set_initial
from ..initializers import RandomUniform
from ..module import Module, check_grad_output

__all__: list[str] = []


# ---------------------------------------------------------------------- window matrices
def window_view(xp, kernel, stride, dilation, out):
    """``(N, C, *out, *kernel)`` view of the windows of a padded ``(N, C, *size)`` array."""
    d = len(kernel)
    span = tuple((k - 1) * r + 1 for k, r in zip(kernel, dilation))
    v = sliding_window_view(xp, span, axis=tuple(range(2, 2 + d)))
    index = ((slice(None), slice(None))
             + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
             + tuple(slice(None, None, r) for r in dilation))
    return v[index]


def im2col(xp, kernel, stride, dilation, out, cols):
    """Fill ``cols`` (``(N, C, *kernel, *out)``) with the windows of padded ``xp``."""
    d = len(kernel)
    order = (0, 1) + tuple(range(2 + d, 2 + 2 * d)) + tuple(range(2, 2 + d))
    np.copyto(cols, window_view(xp, kernel, stride, dilation, out).transpose(order))
    return cols


def offset_index(offset, stride, dilation, out):
    """Index of the ``(N, C, *out)`` strided view of a padded array at kernel ``offset``."""
    return (slice(None), slice(None)) + tuple(
        slice(i * r, i * r + (o - 1) * s + 1, s)
        for i, s, r, o in zip(offset, stride, dilation, out))


def col2im_add(dcols, gp, kernel, stride, dilation, out):
    """Add a window-matrix gradient ``dcols`` (``(N, C, *kernel, *out)``) into the padded
    ``gp`` (``(N, C, *size)``): one strided add per kernel offset."""
    for offset in np.ndindex(*kernel):
        gp[offset_index(offset, stride, dilation, out)] += dcols[(slice(None), slice(None))
                                                                + offset]


def pad_into(buf, x, pads, fill):
    """Copy ``x`` (``(N, C, *size)``) into ``buf`` padded by ``pads`` = ``[(before, after)]``
    per spatial axis; the frame gets ``fill`` (``buf`` may extend past ``after``)."""
    interior = [slice(None), slice(None)]
    for axis, ((before, _), size) in enumerate(zip(pads, x.shape[2:])):
        ax = 2 + axis
        edge = [slice(None)] * buf.ndim
        if before:
            edge[ax] = slice(0, before)
            buf[tuple(edge)] = fill
        if buf.shape[ax] > before + size:
            edge[ax] = slice(before + size, None)
            buf[tuple(edge)] = fill
        interior.append(slice(before, before + size))
    buf[tuple(interior)] = x
    return buf


def interior(pads, size):
    """Index of the unpadded ``size`` region inside a buffer padded by ``pads``."""
    return (slice(None), slice(None)) + tuple(slice(b, b + s) for (b, _), s in zip(pads, size))


def check_ints(cls, names, values, minimum=1, allow=()):
    """Each of ``values`` checked by ``check_int`` under its argument name."""
    values = tuple(values)
    if len(names) != len(values):
        raise TypeError(f"{cls}: expected {len(names)} values for {', '.join(names)}, "
                        f"got {values!r}")
    return tuple(check_int(cls, n, v, minimum=minimum, allow=allow) for n, v in zip(names, values))


# ---------------------------------------------------------------------- forward convolution
class ConvolutionND(Module, abstract=True):
    """Convolution over ``d`` spatial axes.  Subclasses call ``_setup`` with the sizes in axis
    order (e.g. ``(t, h, w)``) and the argument names used in messages."""

    _axes = ("t", "h", "w")

    def _setup(self, n_input_plane, n_output_plane, kernel, stride, pads, names, dilation=None,
               n_group=1, with_bias=True, propagate_back=True):
        cls = type(self).__name__
        d = len(kernel)
        self.n_input_plane = check_int(cls, "n_input_plane", n_input_plane)
        self.n_output_plane = check_int(cls, "n_output_plane", n_output_plane)
        self.kernel = check_ints(cls, names["kernel"], kernel)
        self.stride = check_ints(cls, names["stride"], stride)
        self.pads = check_ints(cls, names["pad"], pads, minimum=0, allow=(-1,))
        self.dilation = check_ints(cls, names.get("dilation", ("dilation",) * d),
                                   dilation or (1,) * d)
        if -1 in self.pads and set(self.pads) != {-1}:
            raise ValueError(f"{cls}: SAME padding needs {' = '.join(names['pad'])} = -1, "
                             f"got {', '.join(f'{n}={p!r}' for n, p in zip(names['pad'], pads))}")
        self.n_group = check_int(cls, "n_group", n_group)
        for arg, value in (("n_input_plane", n_input_plane), ("n_output_plane", n_output_plane)):
            if value % self.n_group:
                raise ValueError(f"{cls}: {arg} ({value!r}) must be divisible by "
                                 f"n_group ({n_group!r})")
        self.with_bias = bool(with_bias)
        self.propagate_back = bool(propagate_back)

    def _init_parameters(self, w_regularizer, b_regularizer, initial=()):
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (self.n_output_plane, self.n_input_plane // self.n_group)
                            + self.kernel)
        if self.with_bias:
            self._add_parameter("bias", (self.n_output_plane,))
        self.reset()
        self._set_regularizer("weight", w_regularizer)
        if self.with_bias:
            self._set_regularizer("bias", b_regularizer)
        for name, value in initial:
            if value is not None and hasattr(self, name):
                set_initial(self, name, value, self.n_group)

    def reset(self):
        area = math.prod(self.kernel)
        fan_in = self.n_input_plane // self.n_group * area
        fan_out = self.n_output_plane // self.n_group * area
        self.weight_init_method.init(self.weight, fan_in, fan_out)
        if self.with_bias:
            self.bias_init_method.init(self.bias, fan_in, fan_out)
        return self

    @property
    def same_padding(self):
        return self.pads[0] == -1

    def _geometry(self, size):
        """``(out, [(before, after)])`` for a spatial ``size``."""
        out, pads = [], []
        for n, k, s, p, r in zip(size, self.kernel, self.stride, self.pads, self.dilation):
            span = (k - 1) * r + 1
            if p == -1:
                o, before, after = same_padding(n, span, s)
            else:
                o, before, after = (n + 2 * p - span) // s + 1, p, p
            out.append(o)
            pads.append((before, after))
        return tuple(out), pads

    data_format = "NCHW"

    @property
    def channels_last(self):
        return self.data_format == "NHWC"

    def _expected(self, sizes=False):
        dims = []
        for axis, k, p, r in zip(self._axes, self.kernel, self.pads, self.dilation):
            name = axis.upper()
            if sizes and p != -1:
                name += f">={max(1, (k - 1) * r + 1 - 2 * p)}"
            dims.append(name)
        c = str(self.n_input_plane)
        return "(N, " + ", ".join(dims + [c] if self.channels_last else [c] + dims) + ")"

    def _input(self, input):
        """The input as a batched channels-first array (a view for NHWC), checked."""
        d = len(self.kernel)
        x = self._as_array(input, (d + 1, d + 2), self._expected())
        if self.channels_last:
            x = np.moveaxis(x, -1, -d - 1)
        if x.shape[-d - 1] != self.n_input_plane:
            self._fail(self._expected(), input)
        self._check_size(x.shape[-d:], input)
        return x if x.ndim == d + 2 else x[None]

    def _check_size(self, size, input):
        out, _ = self._geometry(size)
        if min(out) < 1:
            self._fail(self._expected(sizes=True), input)

    def _emit(self, key, result, input):
        """Batched channels-first ``result`` in the caller's layout (channels last for NHWC,
        no batch axis for an unbatched input)."""
        if self.channels_last:
            out = self._buffer(key + "_nhwc", (result.shape[0],) + result.shape[2:]
                               + (result.shape[1],), result.dtype)
            np.copyto(out, np.moveaxis(result, 1, -1))
            result = out
        return result if np.ndim(input) == len(self.kernel) + 2 else result[0]

    def _grad_output(self, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=self.dtype)
        if self.channels_last:
            g = np.ascontiguousarray(np.moveaxis(g, -1, -len(self.kernel) - 1))
        return g if g.ndim == len(self.kernel) + 2 else g[None]

    def _cols(self, x):
        """The ``(N, C, *kernel, *out)`` window matrix of batched ``x``."""
        n, c = x.shape[:2]
        size = x.shape[2:]
        out, pads = self._geometry(size)
        if any(b or a for b, a in pads):
            padded = tuple(s + b + a for s, (b, a) in zip(size, pads))
            xp = pad_into(self._buffer("padded", (n, c) + padded, x.dtype), x, pads, 0)
        else:
            xp = x
        cols = self._buffer("cols", (n, c) + self.kernel + out, x.dtype)
        return im2col(xp, self.kernel, self.stride, self.dilation, out, cols)

    def _forward_cols(self, x):
        """The window matrix forward built for ``x`` (rebuilt if it is gone)."""
        out, _ = self._geometry(x.shape[2:])
        cols = self.__dict__.get("_scratch", {}).get("cols")
        if cols is None or cols.shape != x.shape[:2] + self.kernel + out or cols.dtype != x.dtype:
            cols = self._cols(x)
        return cols

    def _scatter(self, dcols, x, gi):
        """``gi`` = the window-matrix gradient ``dcols`` added back onto the input positions."""
        n, c = x.shape[:2]
        size = x.shape[2:]
        out, pads = self._geometry(size)
        padded = tuple(s + b + a for s, (b, a) in zip(size, pads))
        gp = self._buffer("grad_padded", (n, c) + padded, x.dtype) if padded != size else gi
        gp.fill(0)
        col2im_add(dcols, gp, self.kernel, self.stride, self.dilation, out)
        if gp is not gi:
            gi[...] = gp[interior(pads, size)]

    def update_output(self, input):
        x = self._input(input)
        out, _ = self._geometry(x.shape[2:])
        y = self._buffer("output", (x.shape[0], self.n_output_plane) + out, x.dtype)
        self._apply(self._cols(x), y)
        return self._emit("output", y, input)

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        gout = self._grad_output(grad_output)
        gi = self._buffer("grad_input", x.shape, x.dtype)
        if not self.propagate_back:
            gi.fill(0)
        else:
            out, _ = self._geometry(x.shape[2:])
            dcols = self._buffer("dcols", x.shape[:2] + self.kernel + out, x.dtype)
            self._window_grad(gout, dcols)
            self._scatter(dcols, x, gi)
        return self._emit("grad_input", gi, input)

    def acc_grad_parameters(self, input, grad_output):
        x = self._input(input)
        self._param_grad(self._forward_cols(x), self._grad_output(grad_output))

    # the layer's own arithmetic on the window matrix (here: a grouped convolution)
    def _apply(self, cols, y):
        """``y`` (``(N, O, *out)``) from the window matrix ``cols``."""
        n, g, og = y.shape[0], self.n_group, self.n_output_plane // self.n_group
        l = math.prod(y.shape[2:])
        k = cols.size // (n * g * l)
        # (G, Og, Kg) @ (N, G, Kg, L) -> (N, G, Og, L), which is (N, O, *out) in memory
        np.matmul(self.weight.reshape(g, og, k), cols.reshape(n, g, k, l),
                  out=y.reshape(n, g, og, l))
        if self.with_bias:
            y += self.bias.reshape((-1,) + (1,) * (y.ndim - 2))

    def _window_grad(self, gout, dcols):
        """``dcols`` = the gradient of every window-matrix entry."""
        n, g, og = gout.shape[0], self.n_group, self.n_output_plane // self.n_group
        l = math.prod(gout.shape[2:])
        k = dcols.size // (n * g * l)
        # (G, Kg, Og) @ (N, G, Og, L) -> (N, G, Kg, L)
        np.matmul(self.weight.reshape(g, og, k).transpose(0, 2, 1), gout.reshape(n, g, og, l),
                  out=dcols.reshape(n, g, k, l))

    def _param_grad(self, cols, gout):
        n, g, og = gout.shape[0], self.n_group, self.n_output_plane // self.n_group
        l = math.prod(gout.shape[2:])
        k = cols.size // (n * g * l)
        # (N, G, Og, L) @ (N, G, L, Kg) -> (N, G, Og, Kg), summed over the batch
        per_image = self._buffer("grad_weight_per_image", (n, g, og, k), gout.dtype)
        np.matmul(gout.reshape(n, g, og, l), cols.reshape(n, g, k, l).transpose(0, 1, 3, 2),
                  out=per_image)
        self.grad_weight += per_image.sum(axis=0).reshape(self.grad_weight.shape)
        if self.with_bias:
            self.grad_bias += gout.reshape(n, self.n_output_plane, l).sum(axis=(0, 2))


# ---------------------------------------------------------------------- transposed convolution
class FullConvolutionND(Module, abstract=True):
    """Transposed convolution over ``d`` spatial axes (the gradient of a convolution with
    respect to its input), with groups and output adjustment.  Weight layout ``(in,
    out / n_group, *kernel)`` as Torch's ``SpatialFullConvolution``."""

    _axes = ("t", "h", "w")

    def _setup(self, n_input_plane, n_output_plane, kernel, stride, pads, adj, n_group,
               no_bias, names):
        cls = type(self).__name__
        self.n_input_plane = check_int(cls, "n_input_plane", n_input_plane)
        self.n_output_plane = check_int(cls, "n_output_plane", n_output_plane)
        self.kernel = check_ints(cls, names["kernel"], kernel)
        self.stride = check_ints(cls, names["stride"], stride)
        self.pads = check_ints(cls, names["pad"], pads, minimum=0)
        self.adj = check_ints(cls, names["adj"], adj, minimum=0)
        for name, a, s in zip(names["adj"], self.adj, self.stride):
            if a >= s:
                raise ValueError(f"{cls}: {name} must be smaller than the stride ({s}), got {a!r}")
        self.n_group = check_int(cls, "n_group", n_group)
        for arg, value in (("n_input_plane", n_input_plane), ("n_output_plane", n_output_plane)):
            if value % self.n_group:
                raise ValueError(f"{cls}: {arg} ({value!r}) must be divisible by "
                                 f"n_group ({n_group!r})")
        self.no_bias = bool(no_bias)
        self.with_bias = not self.no_bias

    def _init_parameters(self, w_regularizer, b_regularizer):
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (self.n_input_plane, self.n_output_plane // self.n_group)
                            + self.kernel)
        if self.with_bias:
            self._add_parameter("bias", (self.n_output_plane,))
        self.reset()
        self._set_regularizer("weight", w_regularizer)
        if self.with_bias:
            self._set_regularizer("bias", b_regularizer)

    def reset(self):
        # Torch / BigDL: ±1/sqrt(n_input_plane * prod(kernel)) for both weight and bias
        area = math.prod(self.kernel)
        fan_in = self.n_input_plane * area
        fan_out = self.n_output_plane // self.n_group * area
        self.weight_init_method.init(self.weight, fan_in, fan_out)
        if self.with_bias:
            self.bias_init_method.init(self.bias, fan_in, fan_out)
        return self

    def _out_size(self, size, adj=None):
        adj = self.adj if adj is None else adj
        return tuple((n - 1) * s - 2 * p + k + a
                     for n, s, p, k, a in zip(size, self.stride, self.pads, self.kernel, adj))

    def _expected(self):
        return f"(N, {self.n_input_plane}, {', '.join(a.upper() for a in self._axes)})"

    def _split(self, input):
        """``(x, adj)``: the tensor input, and the adjustment for this call (from the size
        tensor of a ``[input, size_tensor]`` table, as BigDL, else the constructor's)."""
        d = len(self.kernel)
        if isinstance(input, (list, tuple)):
            if len(input) != 2 or not hasattr(input[1], "shape") or np.ndim(input[1]) < d:
                self._fail(f"{self._expected()} or [input, size tensor]", input)
            x = self._check(input[0], input)
            target = np.shape(input[1])[-d:]
            base = self._out_size(x.shape[2:], (0,) * d)
            adj = tuple(t - b for t, b in zip(target, base))
            if any(a < 0 or a >= s for a, s in zip(adj, self.stride)):
                raise ValueError(f"{self.label()}: the size tensor asks for an output of "
                                 f"{tuple(target)}, reachable sizes are {base} + (0 .. stride-1)")
            return x, adj
        return self._check(input, input), self.adj

    def _check(self, x, input):
        d = len(self.kernel)
        x = self._as_array(x, (d + 1, d + 2), self._expected())
        if x.shape[-d - 1] != self.n_input_plane:
            self._fail(self._expected(), input)
        if min(self._out_size(x.shape[-d:])) < 1:
            self._fail(self._expected() + " large enough for a positive output size", input)
        return x

    @staticmethod
    def _batched(x, d):
        return x if x.ndim == d + 2 else x[None]

    def update_output(self, input):
        x0, adj = self._split(input)
        d = len(self.kernel)
        x = self._batched(x0, d)
        n, size = x.shape[0], x.shape[2:]
        out = self._out_size(size, adj)
        g = self.n_group
        cg, og = self.n_input_plane // g, self.n_output_plane // g
        l, k = math.prod(size), og * math.prod(self.kernel)
        # (G, Og*K, Cg) @ (N, G, Cg, L) -> (N, G, Og*K, L) = (N, out, *kernel, *size)
        dcols = self._buffer("dcols", (n, self.n_output_plane) + self.kernel + size, x.dtype)
        np.matmul(self.weight.reshape(g, cg, k).transpose(0, 2, 1), x.reshape(n, g, cg, l),
                  out=dcols.reshape(n, g, k, l))
        full = tuple(o + 2 * p for o, p in zip(out, self.pads))
        buf = self._buffer("full", (n, self.n_output_plane) + full, x.dtype)
        buf.fill(0)
        col2im_add(dcols, buf, self.kernel, self.stride, (1,) * d, size)
        y = self._buffer("output", (n, self.n_output_plane) + out, x.dtype)
        y[...] = buf[interior([(p, p) for p in self.pads], out)]
        if self.with_bias:
            y += self.bias.reshape((-1,) + (1,) * d)
        return y if x0.ndim == d + 2 else y[0]

    def _grad_cols(self, grad_output, x):
        """The ``(N, out, *kernel, *size)`` window matrix of the padded output gradient."""
        d = len(self.kernel)
        check_grad_output(self, grad_output)
        g = self._batched(np.asarray(grad_output, dtype=x.dtype), d)
        n, size = x.shape[0], x.shape[2:]
        pads = [(p, p) for p in self.pads]
        if any(self.pads):
            padded = tuple(s + 2 * p for s, p in zip(g.shape[2:], self.pads))
            gp = pad_into(self._buffer("grad_padded", g.shape[:2] + padded, x.dtype), g, pads, 0)
        else:
            gp = g
        cols = self._buffer("grad_cols", (n, self.n_output_plane) + self.kernel + size, x.dtype)
        im2col(gp, self.kernel, self.stride, (1,) * d, size, cols)
        self.__dict__["_scratch"]["grad_cols_of"] = grad_output  # reused by acc_grad_parameters
        return cols

    def update_grad_input(self, input, grad_output):
        x0, _ = self._split(input)
        d = len(self.kernel)
        x = self._batched(x0, d)
        n, size = x.shape[0], x.shape[2:]
        cols = self._grad_cols(grad_output, x)
        g, cg = self.n_group, self.n_input_plane // self.n_group
        l, k = math.prod(size), self.n_output_plane // g * math.prod(self.kernel)
        gi = self._buffer("grad_input", x.shape, x.dtype)
        # (G, Cg, Og*K) @ (N, G, Og*K, L) -> (N, G, Cg, L)
        np.matmul(self.weight.reshape(g, cg, k), cols.reshape(n, g, k, l),
                  out=gi.reshape(n, g, cg, l))
        gi = gi if x0.ndim == d + 2 else gi[0]
        if isinstance(input, (list, tuple)):
            return [gi, np.zeros(np.shape(input[1]), dtype=x.dtype)]
        return gi

    def acc_grad_parameters(self, input, grad_output):
        x0, _ = self._split(input)
        d = len(self.kernel)
        x = self._batched(x0, d)
        n, size = x.shape[0], x.shape[2:]
        scratch = self.__dict__.get("_scratch", {})
        cols = scratch.get("grad_cols")
        if scratch.get("grad_cols_of") is not grad_output or cols is None \
                or cols.shape[0] != n or cols.shape[-d:] != size:
            cols = self._grad_cols(grad_output, x)
        g, cg = self.n_group, self.n_input_plane // self.n_group
        l, k = math.prod(size), self.n_output_plane // g * math.prod(self.kernel)
        # (N, G, Cg, L) @ (N, G, L, Og*K) -> (N, G, Cg, Og*K), summed over the batch
        per_image = self._buffer("grad_weight_per_image", (n, g, cg, k), x.dtype)
        np.matmul(x.reshape(n, g, cg, l), cols.reshape(n, g, k, l).transpose(0, 1, 3, 2),
                  out=per_image)
        self.grad_weight += per_image.sum(axis=0).reshape(self.grad_weight.shape)
        if self.with_bias:
            gout = self._batched(np.asarray(grad_output, dtype=x.dtype), d)
            self.grad_bias += gout.reshape(n, self.n_output_plane, -1).sum(axis=(0, 2))
