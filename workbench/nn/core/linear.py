"""Linear: ``y = x W^T + b`` (Torch7 ``nn.Linear``)."""
from __future__ import annotations

import numpy as np

from ..._checks import positive_int
from .. import backend
from ..gemm import prepare
from ..initializers import RandomUniform
from ..module import Module, check_grad_output

__all__ = ["Linear"]


class Linear(Module):
    """Fully connected layer.

    Args:
        input_size: size of each input row (> 0).
        output_size: size of each output row (> 0).
        with_bias: learn an additive bias (default True).
        wRegularizer, bRegularizer: optional ``L1Regularizer`` / ``L2Regularizer`` /
            ``L1L2Regularizer`` for the weight and the bias.
        init_weight, init_bias: optional arrays to start from (shapes ``(output_size,
            input_size)`` and ``(output_size,)``); otherwise ``weight_init_method`` /
            ``bias_init_method`` (default ``RandomUniform()``: ``±1/sqrt(input_size)``).

    Input shape: ``(N, input_size)`` or ``(input_size,)``.
    Output shape: ``(N, output_size)`` or ``(output_size,)``.

    With the native backend, a ``ReLU`` after it in a ``Sequential`` runs in the same kernel
    (``fused_forward``), and backward computes the ReLU's mask, the input gradient and the
    parameter gradients in one call.
    """

    def __init__(self, input_size, output_size, with_bias=True, wRegularizer=None,
                 bRegularizer=None, init_weight=None, init_bias=None):
        super().__init__()
        cls = type(self).__name__
        self.input_size = positive_int(cls, "input_size", input_size)
        self.output_size = positive_int(cls, "output_size", output_size)
        self.with_bias = bool(with_bias)
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()
        self._add_parameter("weight", (self.output_size, self.input_size))
        if self.with_bias:
            self._add_parameter("bias", (self.output_size,))
        self.reset()
        self._set_regularizer("weight", wRegularizer)
        if self.with_bias:
            self._set_regularizer("bias", bRegularizer)
        if init_weight is not None:
            self.weight[...] = init_weight
        if init_bias is not None and self.with_bias:
            self.bias[...] = init_bias

    def reset(self):
        self.weight_init_method.init(self.weight, self.input_size, self.output_size)
        if self.with_bias:
            self.bias_init_method.init(self.bias, self.input_size, self.output_size)
        return self

    def _expected(self):
        return f"(N, {self.input_size})"

    def _native(self, x):
        """The native module when x (float32) and the parameters suit the oneDNN kernels."""
        nat = backend.use_native(x.dtype, "linear")
        if nat is None or not self.weight.flags.c_contiguous:
            return None
        prepare(nat)
        return nat

    def update_output(self, input):
        self.__dict__.setdefault("_scratch", {})["fused_relu"] = None
        x = self._as_array(input, (1, 2), self._expected())
        if x.shape[-1] != self.input_size:
            self._fail(self._expected(), x)
        out = self._buffer("output", x.shape[:-1] + (self.output_size,), x.dtype)
        nat = self._native(x)
        if nat is not None:
            x2 = np.ascontiguousarray(x).reshape(-1, self.input_size)
            nat.linear_forward(x2, self.weight, self.bias if self.with_bias else None,
                               out.reshape(-1, self.output_size))
            return out
        np.matmul(x, self.weight.T, out=out)
        if self.with_bias:
            out += self.bias
        return out

    def fused_forward(self, input, successor):
        """Forward of this layer and of ``successor`` in one native call when ``successor`` is
        a ``ReLU`` (``Sequential`` asks): the ReLU is applied in the pass that adds the bias.
        Returns the ReLU's output, or None when the pair does not fuse (then the container runs
        both layers on their own).  After a fused forward both layers' ``output`` is the ReLU's,
        and backward masks the gradient here while the ReLU passes it through."""
        from ..activation.activations import ReLU
        if type(successor) is not ReLU or type(self).update_output is not Linear.update_output \
                or not isinstance(input, np.ndarray) or input.ndim not in (1, 2) \
                or not input.size or input.shape[-1] != self.input_size:
            return None
        nat = self._native(input)
        if nat is None:
            return None
        out = self._buffer("output", input.shape[:-1] + (self.output_size,), input.dtype)
        nat.linear_forward(np.ascontiguousarray(input).reshape(-1, self.input_size), self.weight,
                           self.bias if self.with_bias else None,
                           out.reshape(-1, self.output_size), True)
        self.__dict__["_scratch"]["fused_relu"] = successor
        self.output = successor.output = out
        return out

    def _fused(self):
        return self.__dict__.get("_scratch", {}).get("fused_relu") is not None

    def _masked(self, grad_output):
        """grad_output through the fused ReLU (0 where the output is 0), if one is."""
        if not self._fused():
            return grad_output
        check_grad_output(self, grad_output)
        gm = self._buffer("grad_output_masked", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self.output > 0, out=gm)
        return gm

    def backward(self, input, grad_output):
        if self._native_backward(input, grad_output, True):
            return self.grad_input
        return super().backward(input, self._masked(grad_output))

    def backward_params(self, input, grad_output):
        if not self._input_grad_optional():
            return self.backward(input, grad_output)
        if self._native_backward(input, grad_output, False):
            return None
        return super().backward_params(input, self._masked(grad_output))

    def _native_backward(self, input, grad_output, need_input):
        """The input gradient (if ``need_input``) and the parameter gradients in one native
        call, the fused ReLU's mask included; False when the layer or its arrays do not suit
        the kernel (then the numpy-level path runs)."""
        if not self._input_grad_optional() or not isinstance(input, np.ndarray) or \
                input.dtype != np.float32 or input.ndim not in (1, 2) or not input.size:
            return False
        nat = self._native(input)
        train = bool(self._param_names) and not self._frozen
        if nat is None or (train and not (self.grad_weight.flags.c_contiguous and (
                not self.with_bias or self.grad_bias.flags.c_contiguous))):
            return False
        check_grad_output(self, grad_output)
        n_out, n_in = self.output_size, self.input_size
        g = np.ascontiguousarray(grad_output, dtype=np.float32).reshape(-1, n_out)
        fused = self._fused()
        relu = self.output.reshape(-1, n_out) if fused else None
        masked = self._buffer("grad_output_masked", g.shape, np.float32) if fused else None
        gi = self._buffer("grad_input", input.shape, np.float32) if need_input else None
        nat.linear_backward(np.ascontiguousarray(input).reshape(-1, n_in), g, self.weight, relu,
                            masked, None if gi is None else gi.reshape(-1, n_in),
                            self.grad_weight if train else None,
                            self.grad_bias if train and self.with_bias else None)
        if train:
            self._regularize()
        self.grad_input = gi
        return True

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", np.shape(input), self.weight.dtype)
        nat = self._native(gi)
        if nat is not None:
            g = np.ascontiguousarray(grad_output, dtype=gi.dtype)
            nat.linear_backward_data(g.reshape(-1, self.output_size), self.weight,
                                     gi.reshape(-1, self.input_size))
            return gi
        np.matmul(grad_output, self.weight, out=gi)
        return gi

    def _input_grad_optional(self):
        return type(self).update_grad_input is Linear.update_grad_input and \
            type(self).acc_grad_parameters is Linear.acc_grad_parameters

    def acc_grad_parameters(self, input, grad_output):
        x = np.asarray(input, dtype=self.weight.dtype)
        nat = self._native(x)
        if nat is not None and self.grad_weight.flags.c_contiguous and (
                not self.with_bias or self.grad_bias.flags.c_contiguous):
            g = np.ascontiguousarray(grad_output, dtype=x.dtype)
            nat.linear_backward_weights(np.ascontiguousarray(x).reshape(-1, self.input_size),
                                        g.reshape(-1, self.output_size), self.grad_weight,
                                        self.grad_bias if self.with_bias else None)
            return
        if x.ndim == 1:
            self.grad_weight += np.outer(grad_output, x)
            if self.with_bias:
                self.grad_bias += grad_output
        else:
            self.grad_weight += grad_output.T @ x
            if self.with_bias:
                self.grad_bias += grad_output.sum(axis=0)

    def extra_repr(self):
        return (f"{self.input_size} -> {self.output_size}"
                + ("" if self.with_bias else ", without bias"))
