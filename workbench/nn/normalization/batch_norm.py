"""Batch normalization: BatchNormalization for ``(N, C)`` and SpatialBatchNormalization for
``(N, C, H, W)`` (Torch7 / BigDL semantics, as ``torch.nn.BatchNorm1d`` / ``BatchNorm2d``).

With the native backend (``workbench.nn.backend``) and float32 data, forward (training and
inference) and the training-mode backward run the native kernel (``workbench._native``, plain
loops over the NCHW planes, or over the rows of a channels-last input (see
:mod:`workbench.nn.layout`), whose output and input gradient are then channels-last too: no
normalized copy of the input is kept); the numpy code stays as the reference and the fallback."""
from __future__ import annotations

import numpy as np

from .. import backend, layout
from ..._checks import check_int
from ..module import check_grad_output
from ..initializers import Ones, Zeros
from ..module import LayerError, Module, shape_of

__all__ = ["BatchNormalization", "SpatialBatchNormalization"]


class _BatchNorm(Module):
    """Normalizes each channel with the batch statistics (training) or the running ones
    (``evaluate()``), then scales and shifts it by ``weight`` / ``bias`` when ``affine``."""

    _cls = "BatchNorm"

    def __init__(self, n_output, eps=1e-5, momentum=0.1, affine=True, init_weight=None,
                 init_bias=None, init_grad_weight=None, init_grad_bias=None):
        super().__init__()
        cls = self._cls
        self.n_output = check_int(cls, "n_output", n_output)
        for arg, value in (("eps", eps), ("momentum", momentum)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"{cls}: {arg} must be a number, got {value!r}")
        if not eps > 0:
            raise ValueError(f"{cls}: eps must be > 0, got {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{cls}: momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        self.affine = bool(affine)
        self._add_buffer("running_mean", np.zeros(self.n_output, np.float32))
        self._add_buffer("running_var", np.ones(self.n_output, np.float32))
        if self.affine:
            self.weight_init_method = Ones()
            self.bias_init_method = Zeros()
            self._add_parameter("weight", (self.n_output,))
            self._add_parameter("bias", (self.n_output,))
        self.reset()
        if init_weight is not None and self.affine:
            self.weight[...] = init_weight
        if init_bias is not None and self.affine:
            self.bias[...] = init_bias
        if init_grad_weight is not None and self.affine:
            self.grad_weight[...] = init_grad_weight
        if init_grad_bias is not None and self.affine:
            self.grad_bias[...] = init_grad_bias

    def _parameter_table(self):
        # BigDL's BatchNormalization table also holds the running statistics
        entry = super()._parameter_table() or {}
        entry.update(runningMean=self.running_mean, runningVar=self.running_var)
        return entry

    def reset(self):
        if self.affine:
            self.weight_init_method.init(self.weight, self.n_output, self.n_output)
            self.bias_init_method.init(self.bias, self.n_output, self.n_output)
        self.running_mean.fill(0)
        self.running_var.fill(1)
        return self

    # ------------------------------------------------------------------ shapes
    def _expected(self):
        raise NotImplementedError

    def _as_3d(self, x):
        """``(N, C, L)`` view of a checked input (``L`` = 1 for ``(N, C)``; a copy when the
        input is channels-last)."""
        raise NotImplementedError

    def _ncl(self, shape):
        """The ``(N, C, L)`` shape ``_as_3d`` gives an input of ``shape``."""
        raise NotImplementedError

    @staticmethod
    def _native_array(a, n, c, l, channels_last):
        """The C-contiguous array the native kernel reads for ``a``: ``(N, L, C)`` memory of a
        channels-last ``a``, else ``(N, C, L)`` (a copy only if ``a`` is neither)."""
        if channels_last:
            return layout.physical(a).reshape(n, l, c)
        return np.ascontiguousarray(a.reshape(n, c, l))

    def _input(self, input):
        x = self._as_array(input, self._ndims, self._expected())
        if x.shape[self._channel_axis] != self.n_output:
            self._fail(self._expected(), x)
        if x.dtype != self.running_mean.dtype:
            x = x.astype(self.running_mean.dtype)
        return x

    def _per_channel(self, v):
        return v[None, :, None]

    # ------------------------------------------------------------------ the three verbs
    def _native_forward(self, x, input, relu=False):
        """Forward with the native kernel (output, or None to take the numpy path); ``relu``
        applies ``max(0, .)`` to the output in the same pass.  A channels-last input gets a
        channels-last output."""
        n, c, l = self._ncl(x.shape)
        native = backend.use_native(x.dtype, "batch_norm") if x.size else None
        scratch = self.__dict__.setdefault("_scratch", {})
        scratch["native_bn"] = None
        scratch["fused_relu"] = None
        if native is None:
            return None
        if self.train and n * l < 2:
            return None  # the numpy path raises the error
        channels_last = layout.is_channels_last(x)
        x3 = self._native_array(x, n, c, l, channels_last)
        if channels_last:
            out = self._buffer("output", x.shape, x.dtype, channels_last=True)
            out3 = layout.physical(out).reshape(n, l, c)
        else:
            out = out3 = self._buffer("output", (n, c, l), x.dtype)
        geometry = native.BatchNormGeometry(n=n, c=c, l=l, train=self.train, affine=self.affine,
                                            relu=relu, channels_last=channels_last)
        w, b = (self.weight, self.bias) if self.affine else (None, None)
        if self.train:
            mean = self._buffer("batch_mean", (c,), x.dtype)
            var = self._buffer("batch_var", (c,), x.dtype)
            native.bn_forward(x3, out3, mean, var, w, b, geometry, self.eps)
            m, mom = n * l, self.momentum
            self.running_mean *= 1 - mom
            self.running_mean += mom * mean
            self.running_var *= 1 - mom
            self.running_var += mom * var * (m / (m - 1))  # unbiased, as Torch
        else:
            native.bn_forward(x3, out3, np.ascontiguousarray(self.running_mean, x.dtype),
                              np.ascontiguousarray(self.running_var, x.dtype), w, b, geometry,
                              self.eps)
            self._invstd = (1.0 / np.sqrt(self.running_var + self.eps)).astype(x.dtype)
        self._pending_sums = None
        scratch["native_bn"] = geometry
        return out if channels_last else out.reshape(x.shape)

    def fused_forward(self, input, successor):
        """Forward of this layer and of ``successor`` in one native pass when ``successor`` is a
        ``ReLU`` (``Sequential`` asks); returns the ReLU's output, or None when the pair does
        not fuse (then the container runs both layers on their own).  After a fused forward
        both layers' ``output`` is the ReLU's, and backward masks the gradient here while the
        ReLU passes it through."""
        from ..activation.activations import ReLU
        if type(successor) is not ReLU or not isinstance(input, np.ndarray) \
                or input.dtype != np.float32 or input.ndim not in self._ndims \
                or backend.use_native(input.dtype, "batch_norm") is None:
            return None
        x = self._input(input)
        out = self._native_forward(x, input, relu=True)
        if out is None:
            return None
        self.__dict__["_scratch"]["fused_relu"] = successor
        self.output = successor.output = out
        return out

    def backward(self, input, grad_output):
        scratch = self.__dict__.get("_scratch", {})
        geometry = scratch.get("native_bn")
        if scratch.get("fused_relu") is not None and not (self.train and geometry is not None):
            # the numpy paths below see the fused ReLU's gradient
            check_grad_output(self, grad_output)
            grad_output = np.multiply(grad_output, self.output > 0, dtype=self.output.dtype)
        return super().backward(input, grad_output)

    def update_output(self, input):
        x = self._input(input)
        out = self._native_forward(x, input)
        if out is not None:
            return out
        x3 = self._as_3d(x)
        n, c, l = x3.shape
        xhat = self._buffer("xhat", x3.shape, x.dtype)
        if self.train:
            m = n * l
            if m < 2:
                raise LayerError(f"{self.label()}: expected more than 1 value per channel in "
                                 f"training mode, got input {shape_of(input)}")
            mean = x3.sum(axis=(0, 2)) / m
            np.subtract(x3, self._per_channel(mean), out=xhat)
            var = np.einsum("ncl,ncl->c", xhat, xhat) / m
            invstd = 1.0 / np.sqrt(var + self.eps)
            mom = self.momentum
            self.running_mean *= 1 - mom
            self.running_mean += mom * mean
            self.running_var *= 1 - mom
            self.running_var += mom * var * (m / (m - 1))  # unbiased, as Torch
        else:
            invstd = 1.0 / np.sqrt(self.running_var + self.eps)
            np.subtract(x3, self._per_channel(self.running_mean), out=xhat)
        invstd = invstd.astype(x.dtype)
        xhat *= self._per_channel(invstd)
        self._invstd = invstd
        self._pending_sums = None
        out = self._buffer("output", x3.shape, x.dtype)
        if self.affine:
            np.multiply(xhat, self._per_channel(self.weight), out=out)
            out += self._per_channel(self.bias)
        else:
            out[...] = xhat
        return out.reshape(x.shape)

    def _fill_xhat(self, x):
        """Recompute the normalized input after a native (inference-mode) forward."""
        x3 = self._as_3d(x)
        xhat = self._buffer("xhat", x3.shape, x.dtype)
        np.subtract(x3, self._per_channel(self.running_mean.astype(x.dtype)), out=xhat)
        xhat *= self._per_channel(self._invstd)
        self.__dict__["_scratch"]["native_bn"] = None

    def _xhat(self, shape):
        """The normalized input of the last forward (same shape as its output)."""
        return self._buffer("xhat", shape, self.running_mean.dtype)

    def _grad_sums(self, g3):
        """``(sum(g), sum(g * xhat))`` per channel of an ``(N, C, L)`` gradient."""
        return g3.sum(axis=(0, 2)), np.einsum("ncl,ncl->c", g3, self._xhat(g3.shape))

    def update_grad_input(self, input, grad_output):
        x = self._input(input)
        check_grad_output(self, grad_output)
        grad_output = np.asarray(grad_output, dtype=x.dtype)
        n, c, l = self._ncl(x.shape)
        geometry = self.__dict__.get("_scratch", {}).get("native_bn")
        if geometry is not None and self.train and geometry.train and \
                (geometry.n, geometry.c, geometry.l, geometry.affine) == (n, c, l, self.affine):
            # in the input's memory format (the batch statistics do not depend on it)
            channels_last = layout.is_channels_last(x)
            geometry = backend.native().BatchNormGeometry(
                n=n, c=c, l=l, train=True, affine=self.affine, relu=geometry.relu,
                channels_last=channels_last)
            if channels_last:
                g = layout.like(grad_output, True, None if layout.is_channels_last(grad_output)
                                else self._buffer("grad_output_cl", x.shape, x.dtype, True))
                gi = self._grad_buffer("grad_input", x.shape, x.dtype, channels_last=True)
                gi3 = layout.physical(gi).reshape(n, l, c)
            else:
                g = grad_output
                gi = gi3 = self._grad_buffer("grad_input", (n, c, l), x.dtype)
            sums = (self._buffer("native_sum_g", (c,), x.dtype),
                    self._buffer("native_sum_gx", (c,), x.dtype)) if self.affine else (None, None)
            backend.native().bn_backward(
                self._native_array(x, n, c, l, channels_last),
                self._native_array(g, n, c, l, channels_last),
                self._buffer("batch_mean", (c,), x.dtype), self._buffer("batch_var", (c,), x.dtype),
                self.weight if self.affine else None, gi3, sums[1], sums[0], geometry, self.eps,
                self.bias if self.affine else None)
            self._pending_sums = sums if self.affine else None
            return gi if channels_last else gi.reshape(x.shape)
        g3 = self._as_3d(grad_output)
        if geometry is not None and not self.train:
            self._fill_xhat(x)  # the numpy eval-mode gradients read it
        scale = self._invstd * self.weight if self.affine else self._invstd
        gi = self._grad_buffer("grad_input", g3.shape, x.dtype)
        if self.train:
            # the batch mean and variance depend on x too: subtract their two terms
            m = n * l
            sum_g, sum_gx = self._pending_sums = self._grad_sums(g3)
            np.multiply(self._xhat(g3.shape), self._per_channel(sum_gx / m), out=gi)
            np.subtract(g3, gi, out=gi)
            gi -= self._per_channel(sum_g / m)
            gi *= self._per_channel(scale)
        else:
            np.multiply(g3, self._per_channel(scale), out=gi)
        return gi.reshape(x.shape)

    def acc_grad_parameters(self, input, grad_output):
        sums, self._pending_sums = getattr(self, "_pending_sums", None), None
        if sums is None:  # evaluation mode, or called on its own
            check_grad_output(self, grad_output)
            if self.__dict__.get("_scratch", {}).get("native_bn") is not None:
                self._fill_xhat(self._input(input))
            sums = self._grad_sums(self._as_3d(np.asarray(grad_output,
                                                          dtype=self.running_mean.dtype)))
        sum_g, sum_gx = sums
        self.grad_weight += sum_gx
        self.grad_bias += sum_g

    def extra_repr(self):
        s = f"{self.n_output}"
        if self.eps != 1e-5:
            s += f", eps={self.eps:g}"
        if self.momentum != 0.1:
            s += f", momentum={self.momentum:g}"
        if not self.affine:
            s += ", affine=False"
        if getattr(self, "data_format", "NCHW") == "NHWC":
            s += ", NHWC"
        return s


class BatchNormalization(_BatchNorm):
    """Batch normalization of the features of ``(N, n_output)`` rows (``BatchNorm1d``).

    In training mode each feature is normalized with the mean and (biased) variance of the
    batch, and ``running_mean`` / ``running_var`` move towards them by ``momentum`` (the
    variance unbiased, as Torch).  After ``evaluate()`` the running statistics are used.

    Args:
        n_output: number of features (> 0).
        eps: added to the variance for stability (> 0, default 1e-5).
        momentum: weight of the new batch in the running statistics (in [0, 1], default 0.1).
        affine: learn a per-feature scale ``weight`` (init ones) and shift ``bias`` (init zeros).
        init_weight, init_bias: optional arrays of shape ``(n_output,)`` to start from.
        init_grad_weight, init_grad_bias: BigDL's optional initial gradients, same shape.

    Input shape: ``(N, n_output)``.
    Output shape: same as input.
    """

    _cls = "BatchNormalization"
    _ndims = (2,)
    _channel_axis = -1

    def _expected(self):
        return f"(N, {self.n_output})"

    def _as_3d(self, x):
        return x.reshape(x.shape[0], x.shape[1], 1)

    def _ncl(self, shape):
        return shape[0], shape[1], 1


class SpatialBatchNormalization(layout.DataFormat, _BatchNorm):
    """Batch normalization of each channel of ``(N, C, H, W)`` images (``BatchNorm2d``).

    Statistics are taken over the batch and the spatial positions of each channel; otherwise as
    :class:`BatchNormalization`.  Inside a ``Sequential``, with the native backend and float32
    data, a batch norm directly followed by a ``ReLU`` runs both in one pass (``fused_forward``):
    then both layers' ``output`` is the ReLU's and the batch norm's backward applies the ReLU's
    gradient.

    Args:
        n_output: number of channels (> 0).
        eps: added to the variance for stability (> 0, default 1e-5).
        momentum: weight of the new batch in the running statistics (in [0, 1], default 0.1).
        affine: learn a per-channel scale ``weight`` (init ones) and shift ``bias`` (init zeros).
        init_weight, init_bias: optional arrays of shape ``(n_output,)`` to start from.
        init_grad_weight, init_grad_bias: BigDL's optional initial gradients, same shape.
        data_format: BigDL's data format of the input and output, ``"NCHW"`` (default) or
            ``"NHWC"`` (channels last: ``(N, H, W, n_output)``).

    Input shape: ``(N, n_output, H, W)`` or ``(n_output, H, W)``; with ``data_format="NHWC"``
        ``(N, H, W, n_output)`` or ``(H, W, n_output)``.
    Output shape: same as input.
    """

    _cls = "SpatialBatchNormalization"
    _ndims = (3, 4)
    _channel_axis = -3

    def __init__(self, n_output, eps=1e-5, momentum=0.1, affine=True, init_weight=None,
                 init_bias=None, init_grad_weight=None, init_grad_bias=None,
                 data_format="NCHW"):
        super().__init__(n_output, eps, momentum, affine, init_weight, init_bias,
                         init_grad_weight, init_grad_bias)
        self.data_format = layout.check_data_format(self._cls, "data_format", data_format)

    def _expected(self):
        if self.data_format == "NHWC":
            return f"(N, H, W, {self.n_output})"
        return f"(N, {self.n_output}, H, W)"

    def _as_3d(self, x):
        if x.ndim == 3:
            return x.reshape(1, x.shape[0], x.shape[1] * x.shape[2])
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])

    def _ncl(self, shape):
        if len(shape) == 3:
            return 1, shape[0], shape[1] * shape[2]
        return shape[0], shape[1], shape[2] * shape[3]
