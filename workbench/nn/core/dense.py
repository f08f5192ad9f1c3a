"""Dense layers beyond ``Linear``: ``Maxout`` and ``Highway`` (BigDL ``nn``).
"""
from __future__ import annotations

import numpy as np

from ..._checks import positive_int
from ..._config import registered
from ..attention.composite import Composite
from ..initializers import RandomUniform
from ..module import Module, check_grad_output
from ..shape.reshape import keep
from .linear import Linear

__all__ = ["Maxout", "Highway"]


class Maxout(Module):
    """Maxout: the element-wise maximum of ``maxout_number`` linear maps (BigDL ``Maxout``).

    ``z = x W^T + b`` has ``maxout_number * output_size`` columns, read as ``maxout_number``
    groups of ``output_size``; output ``j`` is the largest column ``j`` over the groups.

    Args:
        input_size, output_size: sizes of an input and an output row.
        maxout_number: number of linear pieces (> 0).
        with_bias: learn a bias (default True).
        w_regularizer, b_regularizer: optional regularizers of the weight and the bias.
        init_weight, init_bias: optional starting arrays, shapes ``(maxout_number *
            output_size, input_size)`` and ``(maxout_number * output_size,)``; otherwise
            uniform in ``±1/sqrt(input_size)``.

    Input shape: ``(N, input_size)`` or ``(input_size,)``.
    Output shape: ``(N, output_size)`` or ``(output_size,)``.
    """

    def __init__(self, input_size, output_size, maxout_number, with_bias=True,
                 w_regularizer=None, b_regularizer=None, init_weight=None, init_bias=None):
        super().__init__()
        self.input_size = positive_int("Maxout", "input_size", input_size)
        self.output_size = positive_int("Maxout", "output_size", output_size)
        self.maxout_number = positive_int("Maxout", "maxout_number", maxout_number)
        self.with_bias = bool(with_bias)
        rows = self.maxout_number * self.output_size
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (rows, self.input_size))
        if self.with_bias:
            self._add_parameter("bias", (rows,))
        self.reset()
        self._set_regularizer("weight", w_regularizer)
        if self.with_bias:
            self._set_regularizer("bias", b_regularizer)
        if init_weight is not None:
            self.weight[...] = init_weight
        if init_bias is not None and self.with_bias:
            self.bias[...] = init_bias

    def reset(self):
        rows = self.maxout_number * self.output_size
        self.weight_init_method.init(self.weight, self.input_size, rows)
        if self.with_bias:
            self.bias_init_method.init(self.bias, self.input_size, rows)
        return self

    def update_output(self, input):
        expected = f"(N, {self.input_size})"
        x = self._as_array(input, (1, 2), expected)
        if x.shape[-1] != self.input_size:
            self._fail(expected, x)
        x2 = x.reshape(-1, self.input_size)
        z = x2 @ self.weight.T
        if self.with_bias:
            z += self.bias
        z = z.reshape(len(x2), self.maxout_number, self.output_size)
        index = np.argmax(z, axis=1)[:, None, :]
        keep(self, index=index)
        out = self._buffer("output", x.shape[:-1] + (self.output_size,), x.dtype)
        out[...] = np.take_along_axis(z, index, axis=1).reshape(out.shape)
        return out

    def _grad_z(self, grad_output):
        g = np.reshape(grad_output, (-1, 1, self.output_size))
        gz = np.zeros((len(g), self.maxout_number, self.output_size), self.weight.dtype)
        np.put_along_axis(gz, self._scratch["index"], g, axis=1)
        return gz.reshape(len(g), -1)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", np.shape(input), self.weight.dtype)
        gi[...] = (self._grad_z(grad_output) @ self.weight).reshape(gi.shape)
        return gi

    def acc_grad_parameters(self, input, grad_output):
        gz = self._grad_z(grad_output)
        self.grad_weight += gz.T @ np.asarray(input, self.weight.dtype).reshape(-1, self.input_size)
        if self.with_bias:
            self.grad_bias += gz.sum(axis=0)

    def extra_repr(self):
        return f"{self.input_size} -> {self.output_size}, {self.maxout_number} pieces"


def _activation(value):
    """A Module, None, or the name of a layer without arguments (``"tanh"``, ``"relu"``,
    ``"hard_sigmoid"``; ``"linear"`` is None), as BigDL's ``get_activation_by_name``."""
    if value is None or isinstance(value, Module):
        return value
    if isinstance(value, str):
        key = value.replace("_", "").lower()
        if key == "linear":
            return None
        for name, cls in registered(Module).items():
            if name.lower() == key:
                try:
                    return cls()
                except TypeError:
                    break
    raise ValueError(f"Highway: activation must be a layer, a layer name such as 'tanh' or "
                     f"None, got {value!r}")


class Highway(Composite):
    """Highway layer: ``y = t * h + (1 - t) * x`` with the transform gate
    ``t = sigmoid(x W_t^T + b_t)`` and ``h = activation(x W_h^T + b_h)`` (BigDL ``Highway``).

    Args:
        size: size of an input (and output) row.
        with_bias: the two linear maps learn biases (default True).
        activation: a layer or a layer name (``"tanh"``, ``"relu"``...) applied to ``h``;
            None (default) for none.
        wRegularizer, bRegularizer: optional regularizers of both weights / both biases.

    Weights: child 0 is the gate ``Linear(size, size)``, child 1 the transform.

    Input shape: ``(N, size)`` or ``(size,)``.  Output shape: same.
    """

    def __init__(self, size, with_bias=True, activation=None, wRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        self.size = positive_int("Highway", "size", size)
        self.with_bias = bool(with_bias)
        self.activation = _activation(activation)
        self.gate = Linear(self.size, self.size, self.with_bias, wRegularizer, bRegularizer)
        self.transform = Linear(self.size, self.size, self.with_bias, wRegularizer, bRegularizer)
        self._own(self.gate, self.transform)
        if self.activation is not None:
            self._own(self.activation)

    def update_output(self, input):
        expected = f"(N, {self.size})"
        x = self._as_array(input, (1, 2), expected)
        if x.shape[-1] != self.size:
            self._fail(expected, x)
        z = self.gate.forward(x)
        t = 0.5 * (1 + np.tanh(0.5 * z))   # a sigmoid that never overflows
        h = self.transform.forward(x)
        if self.activation is not None:
            h = self.activation.forward(h)
        keep(self, gate=t, transformed=h)
        out = self._buffer("output", x.shape, x.dtype)
        np.subtract(h, x, out=out)
        out *= t
        out += x
        return out

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.output.dtype)
        g = np.asarray(grad_output)
        t, h = self._scratch["gate"], self._scratch["transformed"]
        gi = g * (1 - t)
        gi += self.gate.backward(x, g * (h - x) * t * (1 - t))
        g_h = g * t
        if self.activation is not None:
            g_h = self.activation.backward(self.transform.output, g_h)
        gi += self.transform.backward(x, g_h)
        self.grad_input = gi
        return gi

    def extra_repr(self):
        return str(self.size) + ("" if self.activation is None else f", {self.activation!r}")
