"""Activations (Torch7 / BigDL ``nn``): ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax, the ReLU
family (ReLU6, LeakyReLU, PReLU, RReLU, SReLU, ELU), the hard / soft shrinkage and saturating
functions, thresholds, and GELU / SiLU (beyond BigDL)."""
from __future__ import annotations

import math

import numpy as np

from ..._checks import int_list, non_negative, real
from .. import backend, layout, random
from ..initializers import ConstInitMethod, Ones, Xavier, Zeros
from ..module import Module, check_grad_output

__all__ = ["ReLU", "Tanh", "Sigmoid", "SoftMax", "LogSoftMax",
           "ReLU6", "HardSigmoid", "LogSigmoid", "SoftMin", "SoftPlus", "SoftSign", "SoftShrink",
           "HardShrink", "TanhShrink", "HardTanh", "ELU", "LeakyReLU", "PReLU", "RReLU", "SReLU",
           "Threshold", "BinaryThreshold", "Clamp", "GELU", "SiLU"]

ANY_NDIM = range(0, 65)


class _Elementwise(Module):
    """An activation applied element by element to a tensor of any shape."""

    # the oneDNN eltwise kind of kernels_native/dense.cpp (0 relu, 1 tanh, 2 sigmoid, 3 elu,
    # 4 silu, 5 gelu, 6 gelu-tanh, 7 softplus), None: numpy only
    _NATIVE_KIND = None
    _NATIVE_FORWARD = True  # False: forward in numpy, backward native

    def _input(self, input):
        return self._as_array(input, ANY_NDIM, "a tensor")

    def _native_args(self):
        """``(kind, alpha)`` for the native kernel, or None."""
        return None if self._NATIVE_KIND is None else (self._NATIVE_KIND, 0.0)

    def _native_forward(self, x, out):
        """Run the native forward into ``out``; False when this input stays in numpy."""
        args = self._native_args()
        if args is None or not self._NATIVE_FORWARD or x.size == 0:
            return False
        px, po = layout.physical(x), layout.physical(out)
        if px is None or po is None or px.shape != po.shape:
            return False  # strided input, or output in another memory format: numpy
        nat = backend.use_native(x.dtype, "eltwise")
        if nat is None:
            return False
        nat.eltwise_forward(px.reshape(-1), po.reshape(-1), *args)
        return True

    def _native_backward(self, input, grad_output, gi):
        args = self._native_args()
        if args is None or gi.size == 0:
            return False
        nat = backend.use_native(gi.dtype, "eltwise")
        if nat is None:
            return False
        cl = layout.is_channels_last(gi)  # the output's memory format (see _grad_like)

        def flat(a):
            a = np.asarray(a, dtype=gi.dtype)
            return layout.native_like(a, cl).reshape(-1)
        nat.eltwise_backward(flat(input), flat(self.output), flat(grad_output), flat(gi), *args)
        return True

    def _grad_like(self, input, grad_output):
        check_grad_output(self, grad_output)
        return self._grad_buffer("grad_input", self.output.shape, self.output.dtype,
                                 channels_last=layout.is_channels_last(self.output))


class ReLU(_Elementwise):
    """Rectified linear unit: ``y = max(0, x)``; the gradient at 0 is 0 (as Torch).

    Args:
        ip: BigDL's in-place flag.  Accepted for compatibility and ignored: the output always
            goes to the layer's own buffer, because overwriting the input would corrupt the
            previous layer's output, which Tanh, Sigmoid and shared graph branches still need
            during backward.

    Input shape: any.  Output shape: same as input.
    """

    _NATIVE_KIND = 0

    def __init__(self, ip=False):
        super().__init__()
        self.ip = bool(ip)

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        if not self._native_forward(x, out):
            np.maximum(x, 0, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        if not self._native_backward(input, grad_output, gi):
            np.multiply(grad_output, self.output > 0, out=gi)
        return gi


class Tanh(_Elementwise):
    """Hyperbolic tangent, element-wise.

    Input shape: any.  Output shape: same as input.
    """

    _NATIVE_KIND = 1
    # numpy's SIMD tanh beat oneDNN 3.2's (162 vs 217 us on 442k floats, one core); the
    # backward is one native pass instead of three numpy ones
    _NATIVE_FORWARD = False

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        if not self._native_forward(x, out):
            np.tanh(x, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        if self._native_backward(input, grad_output, gi):
            return gi
        y = self.output
        np.multiply(y, y, out=gi)
        np.subtract(1, gi, out=gi)
        gi *= grad_output
        return gi


class Sigmoid(_Elementwise):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, element-wise (no overflow for large ``|x|``).

    Input shape: any.  Output shape: same as input.
    """

    _NATIVE_KIND = 2

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        if self._native_forward(x, out):
            return out
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        np.divide(np.where(x >= 0, 1, e), 1 + e, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        if self._native_backward(input, grad_output, gi):
            return gi
        y = self.output
        np.subtract(1, y, out=gi)
        gi *= y
        gi *= grad_output
        return gi


def class_axis(ndim):
    """The axis SoftMax works on: the last of ``(C,)`` / ``(N, C)``, the channels of
    ``(C, H, W)`` / ``(N, C, H, W)`` (as BigDL / Torch7)."""
    return {1: 0, 2: 1, 3: 0, 4: 1}[ndim]


def log_softmax(x, axis, out=None):
    """Numerically stable ``log(softmax(x))`` along ``axis``."""
    out = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out)
    out -= np.log(np.sum(np.exp(out), axis=axis, keepdims=True))
    return out


def softmax(x, axis, out=None):
    """Numerically stable ``softmax(x)`` along ``axis``."""
    out = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


class _Normalizing(_Elementwise):
    _EXPECTED = "(N, C), (C,), (C, H, W) or (N, C, H, W)"
    _LOG = None  # native softmax: False SoftMax, True LogSoftMax, None numpy only

    def _input(self, input):
        return self._as_array(input, (1, 2, 3, 4), self._EXPECTED)

    def _softmax_native(self, x):
        """``(native module, (outer, C, inner, log))`` for the oneDNN softmax, or None."""
        if self._LOG is None or x.size == 0:
            return None
        nat = backend.use_native(x.dtype, "softmax")
        if nat is None:
            return None
        shape = (1,) * (x.ndim % 2) + x.shape  # (C,) -> (1, C); (C, H, W) -> (1, C, H, W)
        return nat, (shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64)), int(self._LOG))

    def _softmax_forward(self, x, out):
        if x.size == 0:
            return True  # nothing to normalize (numpy's max has no identity)
        if self._LOG:
            # oneDNN 3.2's log-softmax is off by up to ~1.5e-6 absolute (its fast exp / log):
            # the numpy forward is exact to float32; the backward is native
            return False
        found = self._softmax_native(x)
        if found is None or not x.flags.c_contiguous:
            return False
        nat, geom = found
        nat.softmax_forward(x.reshape(geom[:3]), out.reshape(geom[:3]), geom)
        return True

    def _softmax_backward(self, grad_output, gi):
        found = self._softmax_native(gi)
        if found is None:
            return False
        nat, geom = found
        g = np.ascontiguousarray(grad_output, dtype=gi.dtype)
        nat.softmax_backward(self.output.reshape(geom[:3]), g.reshape(geom[:3]),
                             gi.reshape(geom[:3]), geom)
        return True


class SoftMax(_Normalizing):
    """Softmax over the classes: ``y_i = exp(x_i) / sum_j exp(x_j)`` (numerically stable).

    The class axis is the last one for ``(C,)`` and ``(N, C)`` input, and the channel axis for
    ``(C, H, W)`` and ``(N, C, H, W)`` input (a per-pixel softmax, as BigDL).

    Input shape: ``(N, C)``, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``.
    Output shape: same as input.
    """

    _LOG = False

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        if self._softmax_forward(x, out):
            return out
        return softmax(x, class_axis(x.ndim), out=out)

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        if self._softmax_backward(grad_output, gi):
            return gi
        y = self.output
        np.multiply(grad_output, y, out=gi)
        dot = np.sum(gi, axis=class_axis(y.ndim), keepdims=True)
        gi -= y * dot
        return gi


class LogSoftMax(_Normalizing):
    """``log(softmax(x))`` over the classes, computed stably as ``x - max - log(sum(exp))``.

    The class axis is chosen as in :class:`SoftMax`.  Pair it with ``ClassNLLCriterion``.

    Input shape: ``(N, C)``, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``.
    Output shape: same as input.
    """

    _LOG = True

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        if self._softmax_forward(x, out):
            return out
        return log_softmax(x, class_axis(x.ndim), out=out)

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        if self._softmax_backward(grad_output, gi):
            return gi
        y = self.output
        total = np.sum(grad_output, axis=class_axis(y.ndim), keepdims=True)
        np.exp(y, out=gi)
        gi *= -total
        gi += grad_output
        return gi


# ---------------------------------------------------------------------- argument checks

def repr_number(x):
    """A number for ``repr``: ``0.5``, ``-1``, ``1e-06``."""
    return f"{x:g}"


class Pointwise(_Elementwise, abstract=True):
    """``y = f(x)`` element by element; subclasses fill ``out`` in ``_forward(x, out)`` and
    ``gi`` in ``_backward(x, y, grad_output, gi)``."""

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        if not self._native_forward(x, out):
            self._forward(x, out)
        return out

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        if self._native_backward(input, grad_output, gi):
            return gi
        x = np.asarray(input, dtype=gi.dtype)
        self._backward(x, self.output, grad_output, gi)
        return gi

    def _forward(self, x, out):
        raise NotImplementedError

    def _backward(self, x, y, g, gi):
        raise NotImplementedError


def _stable_sigmoid(x, out):
    """``1 / (1 + exp(-x))`` into ``out`` without overflow."""
    e = np.exp(-np.abs(x))
    np.divide(np.where(x >= 0, 1, e), 1 + e, out=out)
    return out


# ---------------------------------------------------------------------- saturating / piecewise

class HardTanh(Pointwise):
    """``y = max_value`` above ``max_value``, ``min_value`` below ``min_value``, else ``x``.

    Args:
        min_value, max_value: the bounds, ``min_value < max_value`` (default -1, 1).
        inplace: BigDL's in-place flag; accepted and ignored (see :class:`ReLU`).

    The gradient is 1 strictly inside the bounds and 0 outside and on them (as Torch).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, min_value=-1.0, max_value=1.0, inplace=False):
        super().__init__()
        cls = type(self).__name__
        self.min_value = real(cls, "min_value", min_value)
        self.max_value = real(cls, "max_value", max_value)
        if not self.min_value < self.max_value:
            raise ValueError(f"{cls}: min_value must be < max_value, got {min_value!r} and "
                             f"{max_value!r}")
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        np.clip(x, self.min_value, self.max_value, out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, (x > self.min_value) & (x < self.max_value), out=gi)

    def extra_repr(self):
        return f"{repr_number(self.min_value)}, {repr_number(self.max_value)}"


class Clamp(HardTanh):
    """Clamps every element into ``[min, max]`` (BigDL ``Clamp``: a :class:`HardTanh`).

    Args:
        min, max: the bounds, ``min < max``.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, min, max):  # noqa: A002 - BigDL's keywords
        super().__init__(min, max)


class ReLU6(HardTanh):
    """``y = min(max(0, x), 6)``: a ReLU that saturates at 6.

    Args:
        inplace: BigDL's in-place flag; accepted and ignored (see :class:`ReLU`).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return ""


class HardSigmoid(Pointwise):
    """BigDL's hard sigmoid: ``0`` below -2.5, ``1`` above 2.5, ``0.2 x + 0.5`` between.

    (PyTorch's ``hardsigmoid`` uses a slope of 1/6 instead; this is Keras' and BigDL's.)

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.multiply(x, 0.2, out=out)
        out += 0.5
        np.clip(out, 0, 1, out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, 0.2 * ((x > -2.5) & (x < 2.5)), out=gi)


class LogSigmoid(Pointwise):
    """``y = log(1 / (1 + exp(-x)))``, computed without overflow.

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.logaddexp(0, -x, out=out)
        np.negative(out, out=out)

    def _backward(self, x, y, g, gi):
        _stable_sigmoid(-x, gi)  # d/dx log(sigmoid(x)) = sigmoid(-x)
        gi *= g


class SoftPlus(Pointwise):
    """``y = log(1 + exp(beta * x)) / beta``, computed without overflow.

    Args:
        beta: sharpness, > 0 (default 1).

    Input shape: any.  Output shape: same as input.
    """

    def _native_args(self):
        return 7, self.beta

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = real("SoftPlus", "beta", beta)
        if self.beta <= 0:
            raise ValueError(f"SoftPlus: beta must be > 0, got {beta!r}")

    def _forward(self, x, out):
        np.multiply(x, self.beta, out=out)
        np.logaddexp(0, out, out=out)
        out /= self.beta

    def _backward(self, x, y, g, gi):
        _stable_sigmoid(self.beta * x, gi)
        gi *= g

    def extra_repr(self):
        return repr_number(self.beta)


class SoftSign(Pointwise):
    """``y = x / (1 + |x|)``.

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.abs(x, out=out)
        out += 1
        np.divide(x, out, out=out)

    def _backward(self, x, y, g, gi):
        np.abs(x, out=gi)
        gi += 1
        np.square(gi, out=gi)
        np.divide(g, gi, out=gi)


class SoftShrink(Pointwise):
    """``y = x - lambda`` above ``lambda``, ``x + lambda`` below ``-lambda``, else 0.

    Args:
        the_lambda: the threshold, >= 0 (default 0.5).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, the_lambda=0.5):
        super().__init__()
        self.the_lambda = non_negative(type(self).__name__, "the_lambda", the_lambda)

    def _forward(self, x, out):
        lam = self.the_lambda
        np.subtract(x, np.clip(x, -lam, lam), out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, np.abs(x) > self.the_lambda, out=gi)

    def extra_repr(self):
        return repr_number(self.the_lambda)


class HardShrink(SoftShrink):
    """``y = x`` where ``|x| > lambda``, else 0.

    Args:
        the_lambda: the threshold, >= 0 (default 0.5).

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.multiply(x, np.abs(x) > self.the_lambda, out=out)


class TanhShrink(Pointwise):
    """``y = x - tanh(x)``.

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.tanh(x, out=out)
        np.subtract(x, out, out=out)

    def _backward(self, x, y, g, gi):
        np.tanh(x, out=gi)
        np.square(gi, out=gi)
        gi *= g


class Threshold(Pointwise):
    """``y = x`` where ``x > th``, else ``v``.

    Args:
        th: the threshold (default 1e-6).
        v: the value given to elements at or below the threshold (default 0).
        ip: BigDL's in-place flag; accepted and ignored (see :class:`ReLU`).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, th=1e-6, v=0.0, ip=False):
        super().__init__()
        self.th = real("Threshold", "th", th)
        self.v = real("Threshold", "v", v)
        self.ip = bool(ip)

    def _forward(self, x, out):
        np.copyto(out, np.where(x > self.th, x, self.v))

    def _backward(self, x, y, g, gi):
        np.multiply(g, x > self.th, out=gi)

    def extra_repr(self):
        return f"{repr_number(self.th)}, {repr_number(self.v)}"


class BinaryThreshold(Pointwise):
    """``y = 1`` where ``x > th``, else 0.  Its gradient is 0 everywhere (a step function).

    Args:
        th: the threshold (default 1e-6).
        ip: BigDL's in-place flag; accepted and ignored.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, th=1e-6, ip=False):
        super().__init__()
        self.th = real("BinaryThreshold", "th", th)
        self.ip = bool(ip)

    def _forward(self, x, out):
        np.greater(x, self.th, out=out)

    def _backward(self, x, y, g, gi):
        gi.fill(0)

    def extra_repr(self):
        return repr_number(self.th)


# ---------------------------------------------------------------------- the ReLU family

class LeakyReLU(Pointwise):
    """``y = x`` for ``x > 0``, else ``negval * x``.

    Args:
        negval: slope of the negative part (default 0.01).
        inplace: BigDL's in-place flag; accepted and ignored (see :class:`ReLU`).

    Input shape: any.  Output shape: same as input.
    """

    def _native_args(self):
        return 0, self.negval

    def __init__(self, negval=0.01, inplace=False):
        super().__init__()
        self.negval = real("LeakyReLU", "negval", negval)
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        np.multiply(x, np.where(x > 0, 1, self.negval), out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, np.where(x > 0, 1, self.negval), out=gi)

    def extra_repr(self):
        return repr_number(self.negval)


class ELU(Pointwise):
    """Exponential linear unit: ``y = x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Args:
        alpha: scale of the negative part (default 1).
        inplace: BigDL's in-place flag; accepted and ignored (see :class:`ReLU`).

    Input shape: any.  Output shape: same as input.
    """

    def _native_args(self):
        return 3, self.alpha

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = real("ELU", "alpha", alpha)
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        np.expm1(np.minimum(x, 0), out=out)
        out *= self.alpha
        np.copyto(out, x, where=x > 0)

    def _backward(self, x, y, g, gi):
        np.multiply(g, np.where(x > 0, 1, y + self.alpha), out=gi)

    def extra_repr(self):
        return repr_number(self.alpha)


class PReLU(Module):
    """Parametric ReLU: ``y = x`` for ``x > 0``, else ``a * x`` with a learned slope ``a``.

    Args:
        n_output_plane: 0 (default) for one slope shared by every element, or the number of
            channels for one slope per channel.  The channel axis is the last of ``(C,)`` /
            ``(N, C)`` and the first non-batch one of ``(C, H, W)`` / ``(N, C, H, W)``.

    The slopes start at 0.25 (``weight_init_method``, BigDL's ``ConstInitMethod(0.25)``).
    As BigDL warns, do not put weight decay on them.

    Input shape: any with a shared slope; ``(C,)``, ``(N, C)``, ``(C, H, W)`` or
    ``(N, C, H, W)`` with per-channel slopes.  Output shape: same as input.
    """

    def __init__(self, n_output_plane=0):
        super().__init__()
        if (isinstance(n_output_plane, bool) or not isinstance(n_output_plane, (int, np.integer))
                or n_output_plane < 0):
            raise ValueError(f"PReLU: n_output_plane must be an int >= 0, got {n_output_plane!r}")
        self.n_output_plane = int(n_output_plane)
        self.weight_init_method = ConstInitMethod(0.25)
        self._add_parameter("weight", (max(self.n_output_plane, 1),))
        self.reset()

    def reset(self):
        n = self.weight.size
        self.weight_init_method.init(self.weight, n, n)
        return self

    def _slopes(self, x):
        """The weight shaped to broadcast against ``x``."""
        if self.n_output_plane == 0:
            return self.weight.reshape(())
        shape = [1] * x.ndim
        shape[class_axis(x.ndim)] = self.n_output_plane
        return self.weight.reshape(shape)

    def update_output(self, input):
        if self.n_output_plane == 0:
            x = self._as_array(input, ANY_NDIM, "a tensor")
        else:
            expected = (f"({self.n_output_plane},), (N, {self.n_output_plane}), "
                        f"({self.n_output_plane}, H, W) or (N, {self.n_output_plane}, H, W)")
            x = self._as_array(input, (1, 2, 3, 4), expected)
            if x.shape[class_axis(x.ndim)] != self.n_output_plane:
                self._fail(expected, x)
        out = self._buffer_like("output", x)
        np.multiply(x, np.where(x > 0, 1, self._slopes(x)), out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.weight.dtype)
        gi = self._buffer("grad_input", x.shape, x.dtype)
        np.multiply(grad_output, np.where(x > 0, 1, self._slopes(x)), out=gi)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        x = np.asarray(input, dtype=self.weight.dtype)
        contrib = np.where(x < 0, x * grad_output, 0)
        if self.n_output_plane == 0:
            self.grad_weight += contrib.sum()
        else:
            axis = class_axis(x.ndim)
            others = tuple(a for a in range(x.ndim) if a != axis)
            self.grad_weight += contrib.sum(axis=others)

    def extra_repr(self):
        return str(self.n_output_plane)


class RReLU(Pointwise):
    """Randomized leaky ReLU: ``y = x`` for ``x >= 0``, else ``a * x``.

    While training each negative element gets its own slope ``a ~ U(lower, upper)`` (drawn
    from ``workbench.nn.random.rng()``, reused by the backward pass); in ``evaluate()`` mode
    ``a = (lower + upper) / 2`` as a plain LeakyReLU.

    Args:
        lower, upper: bounds of the slope, ``0 <= lower <= upper`` (default 1/8 and 1/3).
        inplace: BigDL's in-place flag; accepted and ignored (see :class:`ReLU`).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        super().__init__()
        self.lower = non_negative("RReLU", "lower", lower)
        self.upper = real("RReLU", "upper", upper)
        if self.upper < self.lower:
            raise ValueError(f"RReLU: upper must be >= lower, got lower={lower!r}, "
                             f"upper={upper!r}")
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        slope = self._buffer("slope", x.shape, x.dtype)
        if self.train:
            slope[...] = random.rng().uniform(self.lower, self.upper, size=x.shape)
        else:
            slope.fill((self.lower + self.upper) / 2)
        slope[x >= 0] = 1
        np.multiply(x, slope, out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, self._scratch["slope"], out=gi)

    def extra_repr(self):
        return f"{repr_number(self.lower)}, {repr_number(self.upper)}"


def _fans(shape):
    """BigDL's fan-in / fan-out of a parameter of ``shape`` (its ``VariableFormat``s)."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) in (4, 5):
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    n = math.prod(shape)
    return n, n


class SReLU(Module):
    """S-shaped ReLU: three linear pieces with learned thresholds and slopes.

    ``y = t_r + a_r (x - t_r)`` for ``x >= t_r``, ``y = t_l + a_l (x - t_l)`` for ``x <= t_l``,
    else ``y = x``, each of ``t_l, a_l, t_r, a_r`` learned per element of a sample (BigDL and
    Keras' ``SReLU``, https://arxiv.org/abs/1512.07030).

    Args:
        input_shape: the shape of one sample (the input without its batch dimension).
        share_axes: optional 1-based axes of ``input_shape`` along which the parameters are
            shared (their size is 1 there), e.g. ``[2, 3]`` for one set per channel of a
            ``(C, H, W)`` sample.

    Parameters ``t_left``, ``a_left``, ``t_right``, ``a_right`` start as BigDL's: zeros, Xavier,
    Xavier and ones, then ``t_right = |t_right| + t_left`` so the right threshold is right of
    the left one.  ``set_init_method(tLeftInit, aLeftInit, tRightInit, aRightInit)`` changes
    them.  Unlike BigDL, the forward pass does not rewrite ``t_right`` in place on every call
    (that would change the weights outside the optimizer and break the gradient); it uses the
    thresholds as they are.

    Input shape: ``(N, *input_shape)``; along shared axes any size.
    Output shape: same as input.
    """

    _PARAMS = ("t_left", "a_left", "t_right", "a_right")

    def __init__(self, input_shape, share_axes=None):
        super().__init__()
        self.input_shape = int_list("SReLU", "input_shape", input_shape)
        shared = () if share_axes is None else share_axes
        if isinstance(shared, (int, np.integer)):
            shared = (shared,)
        if (not isinstance(shared, (list, tuple)) or not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                and 1 <= a <= len(self.input_shape) for a in shared)):
            raise ValueError(f"SReLU: share_axes must be None or a list of axes between 1 and "
                             f"{len(self.input_shape)}, got {share_axes!r}")
        self.share_axes = tuple(sorted({int(a) for a in shared}))
        self.param_shape = tuple(1 if i + 1 in self.share_axes else d
                                 for i, d in enumerate(self.input_shape))
        self.init_methods = [Zeros(), Xavier(), Xavier(), Ones()]
        for name in self._PARAMS:
            self._add_parameter(name, self.param_shape)
        self.reset()

    def set_init_method(self, tLeftInit=None, aLeftInit=None, tRightInit=None,  # noqa: N803
                        aRightInit=None):
        """BigDL: the init methods of the four parameters (None keeps one), and re-initialize."""
        for i, method in enumerate((tLeftInit, aLeftInit, tRightInit, aRightInit)):
            if method is not None:
                self.init_methods[i] = method
        return self.reset()

    def reset(self):
        fan_in, fan_out = _fans(self.param_shape)
        for name, method in zip(self._PARAMS, self.init_methods):
            method.init(getattr(self, name), fan_in, fan_out)
        np.abs(self.t_right, out=self.t_right)
        self.t_right += self.t_left
        return self

    def _expected(self):
        dims = ", ".join("*" if i + 1 in self.share_axes else str(d)
                         for i, d in enumerate(self.input_shape))
        return f"(N, {dims})"

    def update_output(self, input):
        x = self._as_array(input, (len(self.input_shape) + 1,), self._expected())
        if any(x.shape[i + 1] != d for i, d in enumerate(self.param_shape)
               if i + 1 not in self.share_axes):
            self._fail(self._expected(), x)
        right = x >= self.t_right
        left = ~right & (x <= self.t_left)
        out = self._buffer_like("output", x)
        np.copyto(out, x)
        np.copyto(out, self.t_right + self.a_right * (x - self.t_right), where=right)
        np.copyto(out, self.t_left + self.a_left * (x - self.t_left), where=left)
        self._regions = (right, left)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        right, left = self._regions
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        slope = np.where(right, self.a_right, np.where(left, self.a_left, 1))
        np.multiply(grad_output, slope, out=gi)
        return gi

    def _reduce(self, v):
        """Sum ``v`` (shaped like the input) down to the parameter shape."""
        axes = (0,) + tuple(a for a in self.share_axes)
        return v.sum(axis=axes, keepdims=True)[0]

    def acc_grad_parameters(self, input, grad_output):
        x = np.asarray(input, dtype=self.t_left.dtype)
        right, left = self._regions
        self.grad_t_right += self._reduce(np.where(right, (1 - self.a_right) * grad_output, 0))
        self.grad_a_right += self._reduce(np.where(right, (x - self.t_right) * grad_output, 0))
        self.grad_t_left += self._reduce(np.where(left, (1 - self.a_left) * grad_output, 0))
        self.grad_a_left += self._reduce(np.where(left, (x - self.t_left) * grad_output, 0))

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_regions", None)
        return state

    def extra_repr(self):
        shape = "x".join(map(str, self.input_shape))
        shared = f", shared {list(self.share_axes)}" if self.share_axes else ""
        return f"{shape}{shared}"


# ---------------------------------------------------------------------- beyond BigDL

def _series_erf(a):
    """erf(a) for 0 <= a <= 1.5 from the all-positive series (no cancellation)."""
    a2 = a * a
    term = a.copy()
    total = a.copy()
    for n in range(1, 60):
        term = term * (2 * a2 / (2 * n + 1))
        total += term
    return total * (2 / math.sqrt(math.pi)) * np.exp(-a2)


def _cf_erfc(a):
    """erfc(a) for a >= 1.5 from Laplace's continued fraction, evaluated bottom-up."""
    t = a.copy()
    for k in range(80, 0, -1):
        t = a + (k / 2) / t
    return np.exp(-a * a) / (math.sqrt(math.pi) * t)


def normal_cdf(x):
    """The standard normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` to double precision.

    (numpy has no ``erf``; this keeps ``workbench.nn`` free of scipy.)  The tail is computed
    from ``erfc``, so ``Phi`` keeps its relative precision far into the negative side."""
    z = np.abs(np.asarray(x, dtype=np.float64)) / math.sqrt(2)
    small = z <= 1.5
    erfc = np.empty_like(z)
    if small.any():
        erfc[small] = 1 - _series_erf(z[small])
    if (~small).any():
        erfc[~small] = _cf_erfc(z[~small])
    upper = 1 - erfc / 2  # Phi(|x|)
    return np.where(np.asarray(x) >= 0, upper, erfc / 2)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class GELU(Pointwise):
    """Gaussian error linear unit: ``y = x * Phi(x)`` with ``Phi`` the standard normal CDF
    (beyond BigDL; as ``torch.nn.GELU``).

    Args:
        approximate: ``"none"`` (default, exact) or ``"tanh"`` for
            ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Input shape: any.  Output shape: same as input.
    """

    def _native_args(self):
        return (6 if self.approximate == "tanh" else 5), 0.0

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _half_tanh(self, x):
        """``(1 + tanh(u)) / 2 = sigmoid(2u)`` and ``du/dx`` for the tanh approximation;
        written with the sigmoid so the far negative side keeps its precision."""
        two_u = 2 * _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
        s = _stable_sigmoid(two_u, np.empty_like(two_u))
        return s, _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)

    def _forward(self, x, out):
        if self.approximate == "tanh":
            np.multiply(x, self._half_tanh(x)[0], out=out)
        else:
            np.multiply(x, normal_cdf(x), out=out)

    def _backward(self, x, y, g, gi):
        if self.approximate == "tanh":
            s, du = self._half_tanh(x)
            # d/dx [x * sigmoid(2u)] = sigmoid(2u) + 2 x sigmoid(2u) sigmoid(-2u) du
            d = s + 2 * x * s * (1 - s) * du
        else:
            d = normal_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        np.multiply(g, d, out=gi)

    def extra_repr(self):
        return "tanh" if self.approximate == "tanh" else ""


class SiLU(Pointwise):
    """Sigmoid-weighted linear unit (swish): ``y = x * sigmoid(x)`` (beyond BigDL).

    Input shape: any.  Output shape: same as input.
    """

    _NATIVE_KIND = 4

    def _forward(self, x, out):
        _stable_sigmoid(x, out)
        out *= x

    def _backward(self, x, y, g, gi):
        s = _stable_sigmoid(x, np.empty_like(gi))
        np.multiply(g, s * (1 + x * (1 - s)), out=gi)


# ---------------------------------------------------------------------- normalizing

class SoftMin(_Normalizing):
    """``softmax(-x)`` over the classes (numerically stable); the class axis is chosen as in
    :class:`SoftMax`.

    Input shape: ``(N, C)``, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``.
    Output shape: same as input.
    """

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer_like("output", x)
        np.negative(x, out=out)
        return softmax(out, class_axis(x.ndim), out=out)

    def update_grad_input(self, input, grad_output):
        gi = self._grad_like(input, grad_output)
        y = self.output
        np.multiply(grad_output, y, out=gi)
        dot = np.sum(gi, axis=class_axis(y.ndim), keepdims=True)
        gi -= y * dot
        np.negative(gi, out=gi)
        return gi
