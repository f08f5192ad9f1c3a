"""Element-wise maths and learned affine maps (Torch7 / BigDL ``nn``): Abs, Exp, Log, Sqrt,
Square, Power, Negative, AddConstant, MulConstant, and the learned Add, CAdd, Mul, CMul, Scale."""
from __future__ import annotations

import math

import numpy as np

from ..._checks import int_list, positive_int, real
from ..activation.activations import ANY_NDIM, repr_number, Pointwise
from ..initializers import RandomUniform
from ..module import Module, check_grad_output

__all__ = ["Abs", "Exp", "Log", "Sqrt", "Square", "Power", "Negative", "AddConstant",
           "MulConstant", "Add", "CAdd", "Mul", "CMul", "Scale"]


class Abs(Pointwise):
    """``y = |x|``; the gradient at 0 is 0.

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.abs(x, out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, np.sign(x), out=gi)


class Exp(Pointwise):
    """``y = exp(x)``.

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.exp(x, out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, y, out=gi)


class Log(Pointwise):
    """``y = log(x)`` (NaN for negative input, ``-inf`` at 0, as Torch).

    Input shape: any.  Output shape: same as input.
    """

    def _forward(self, x, out):
        np.log(x, out=out)

    def _backward(self, x, y, g, gi):
        np.divide(g, x, out=gi)


class Power(Pointwise):
    """``y = (shift + scale * x) ^ power``.

    Args:
        power: the exponent.
        scale: multiplies the input first (default 1).
        shift: added after scaling (default 0).

    A non-integer power of a negative base is NaN, as in BigDL.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, power, scale=1.0, shift=0.0):
        super().__init__()
        cls = type(self).__name__
        self.power = real(cls, "power", power)
        self.scale = real(cls, "scale", scale)
        self.shift = real(cls, "shift", shift)

    def _base(self, x):
        if self.scale == 1 and self.shift == 0:
            return x
        return self.shift + self.scale * x

    def _forward(self, x, out):
        np.power(self._base(x), self.power, out=out)

    def _backward(self, x, y, g, gi):
        if self.power == 2:
            d = 2 * self.scale * self._base(x)
        else:
            d = (self.power * self.scale) * np.power(self._base(x), self.power - 1)
        np.multiply(g, d, out=gi)

    def extra_repr(self):
        return f"{repr_number(self.power)}, {repr_number(self.scale)}, {repr_number(self.shift)}"


class Sqrt(Power):
    """``y = sqrt(x)`` (BigDL: ``Power(0.5)``).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self):
        super().__init__(0.5)

    def _forward(self, x, out):
        np.sqrt(x, out=out)

    def _backward(self, x, y, g, gi):
        np.divide(g, 2 * y, out=gi)

    def extra_repr(self):
        return ""


class Square(Power):
    """``y = x ^ 2`` (BigDL: ``Power(2)``).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self):
        super().__init__(2.0)

    def _forward(self, x, out):
        np.square(x, out=out)

    def extra_repr(self):
        return ""


class Negative(Pointwise):
    """``y = -x``.

    Args:
        inplace: BigDL's in-place flag; accepted and ignored (the output has its own buffer).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        np.negative(x, out=out)

    def _backward(self, x, y, g, gi):
        np.negative(g, out=gi)


class AddConstant(Pointwise):
    """``y = x + constant_scalar`` (not learned).

    Args:
        constant_scalar: the constant.
        inplace: BigDL's in-place flag; accepted and ignored.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, constant_scalar, inplace=False):
        super().__init__()
        self.constant_scalar = real("AddConstant", "constant_scalar", constant_scalar)
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        np.add(x, self.constant_scalar, out=out)

    def _backward(self, x, y, g, gi):
        np.copyto(gi, g)

    def extra_repr(self):
        return repr_number(self.constant_scalar)


class MulConstant(Pointwise):
    """``y = scalar * x`` (not learned).

    Args:
        scalar: the constant.
        inplace: BigDL's in-place flag; accepted and ignored.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, scalar, inplace=False):
        super().__init__()
        self.scalar = real("MulConstant", "scalar", scalar)
        self.inplace = bool(inplace)

    def _forward(self, x, out):
        np.multiply(x, self.scalar, out=out)

    def _backward(self, x, y, g, gi):
        np.multiply(g, self.scalar, out=gi)

    def extra_repr(self):
        return repr_number(self.scalar)


# ---------------------------------------------------------------------- learned

class Add(Module):
    """Adds a learned bias of ``input_size`` values to every sample.

    Args:
        input_size: the number of values in one sample (> 0).

    The bias starts uniform in ``±1/sqrt(input_size)`` (``bias_init_method``).

    Input shape: ``(input_size,)``, or ``(N, ...)`` with ``input_size`` values per sample.
    Output shape: same as input.
    """

    def __init__(self, input_size):
        super().__init__()
        self.input_size = positive_int("Add", "input_size", input_size)
        self.bias_init_method = RandomUniform()
        self._add_parameter("bias", (self.input_size,))
        self.reset()

    def reset(self):
        self.bias_init_method.init(self.bias, self.input_size, self.input_size)
        return self

    def _rows(self, x):
        """``x`` as ``(rows, input_size)``."""
        if x.shape == self.bias.shape:
            return x.reshape(1, -1)
        if x.ndim < 2 or math.prod(x.shape[1:]) != self.input_size:
            self._fail(f"({self.input_size},) or (N, ...) with {self.input_size} values per "
                       "sample", x)
        return x.reshape(x.shape[0], -1)

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, f"({self.input_size},) or (N, ...)")
        rows = self._rows(x)
        out = self._buffer("output", x.shape, x.dtype)
        np.add(rows, self.bias, out=out.reshape(rows.shape))
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.copyto(gi, grad_output)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        g = np.asarray(grad_output, dtype=self.bias.dtype)
        self.grad_bias += g.reshape(-1, self.input_size).sum(axis=0)

    def extra_repr(self):
        return str(self.input_size)


class Expanding(Module, abstract=True):
    """Shared rules of CAdd / CMul / Scale: how a parameter of ``size`` meets the input.

    As BigDL: a parameter with as many elements as the input is used element by element;
    otherwise it is expanded along its singleton dimensions to the input's shape, with one
    extra leading (batch) dimension when the input has one more dimension than it.
    """

    def _init_size(self, size):
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            size = [size]
        self.size = int_list(type(self).__name__, "size", size)

    def _init_uniform(self, size, names):
        """Check ``size``, then add the parameters ``names`` (each of shape ``size``, each with
        a ``RandomUniform`` ``<name>_init_method``) and initialize them with :meth:`reset`."""
        self._init_size(size)
        for name in names:
            setattr(self, f"{name}_init_method", RandomUniform())
        for name in names:
            self._add_parameter(name, self.size)
        self.reset()

    def reset(self):
        """Each parameter uniform in ``±1/sqrt(its elements)``, in the order it was added."""
        for name in self._param_names:
            param = getattr(self, name)
            getattr(self, f"{name}_init_method").init(param, param.size, param.size)
        return self

    def _expected(self):
        shape = ", ".join(map(str, self.size))
        return f"a tensor that ({shape}) expands to (same dims, or one more for the batch)"

    def _view(self, param, x):
        """``param`` reshaped so that it broadcasts against ``x`` (or a LayerError)."""
        if param.size == x.size:
            return param.reshape(x.shape)
        shape = param.shape
        if len(shape) == x.ndim - 1:
            shape = (1,) + shape
        if len(shape) != x.ndim or any(p != 1 and p != d for p, d in zip(shape, x.shape)):
            self._fail(self._expected(), x)
        return param.reshape(shape)

    def _input(self, input):
        x = self._as_array(input, ANY_NDIM, self._expected())
        self._view(getattr(self, self._param_names[0]), x)  # fail early on a bad shape
        return x

    @staticmethod
    def _reduce(v, view_shape, param_shape):
        """Sum ``v`` over the axes a parameter viewed as ``view_shape`` was expanded along."""
        axes = tuple(i for i, (p, d) in enumerate(zip(view_shape, v.shape)) if p == 1 and d != 1)
        return (v.sum(axis=axes, keepdims=True) if axes else v).reshape(param_shape)

    def extra_repr(self):
        return str(list(self.size))


class CAdd(Expanding):
    """Adds a learned bias tensor of shape ``size``, expanded to the input as BigDL does.

    Args:
        size: the bias shape, e.g. ``[C, 1, 1]`` for one bias per channel of ``(N, C, H, W)``.
        bRegularizer: optional regularizer of the bias.

    The bias starts uniform in ``±1/sqrt(bias elements)`` (``bias_init_method``).

    Input shape: the bias shape, or a shape the bias expands to (see :class:`Expanding`).
    Output shape: same as input.
    """

    def __init__(self, size, bRegularizer=None):  # noqa: N803 - BigDL's keyword
        super().__init__()
        self._init_uniform(size, ["bias"])
        self._set_regularizer("bias", bRegularizer)

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer("output", x.shape, x.dtype)
        np.add(x, self._view(self.bias, x), out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.copyto(gi, grad_output)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        g = np.asarray(grad_output, dtype=self.bias.dtype)
        view = self._view(self.bias, g)
        self.grad_bias += self._reduce(g, view.shape, self.size)


class CMul(Expanding):
    """Multiplies by a learned weight tensor of shape ``size``, expanded to the input as
    BigDL does (see :class:`CAdd`).

    Args:
        size: the weight shape.
        wRegularizer: optional regularizer of the weight.

    The weight starts uniform in ``±1/sqrt(weight elements)`` (``weight_init_method``).

    Input shape: the weight shape, or a shape the weight expands to.
    Output shape: same as input.
    """

    def __init__(self, size, wRegularizer=None):  # noqa: N803 - BigDL's keyword
        super().__init__()
        self._init_uniform(size, ["weight"])
        self._set_regularizer("weight", wRegularizer)

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, self._view(self.weight, x), out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._view(self.weight, gi), out=gi)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        x = np.asarray(input, dtype=self.weight.dtype)
        view = self._view(self.weight, x)
        self.grad_weight += self._reduce(x * grad_output, view.shape, self.size)


class Scale(Expanding):
    """``y = x * weight + bias`` with a learned weight and bias of shape ``size`` (BigDL's
    ``Scale``: a :class:`CMul` followed by a :class:`CAdd`, with their initializations).

    Args:
        size: the shape of the weight and the bias.

    Input shape: the parameter shape, or a shape it expands to.
    Output shape: same as input.
    """

    def __init__(self, size):
        super().__init__()
        self._init_uniform(size, ["weight", "bias"])

    def update_output(self, input):
        x = self._input(input)
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, self._view(self.weight, x), out=out)
        out += self._view(self.bias, x)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._view(self.weight, gi), out=gi)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        x = np.asarray(input, dtype=self.weight.dtype)
        g = np.asarray(grad_output, dtype=self.weight.dtype)
        view = self._view(self.weight, x).shape
        self.grad_weight += self._reduce(x * g, view, self.size)
        self.grad_bias += self._reduce(g, view, self.size)


class Mul(Module):
    """Multiplies the input by one learned scalar.

    The scalar starts uniform in ``±1`` (``weight_init_method``).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self):
        super().__init__()
        self.weight_init_method = RandomUniform()
        self._add_parameter("weight", (1,))
        self.reset()

    def reset(self):
        self.weight_init_method.init(self.weight, 1, 1)
        return self

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, self.weight[0], out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self.weight[0], out=gi)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        x = np.asarray(input, dtype=self.weight.dtype)
        self.grad_weight += np.sum(x * grad_output)

