"""Dropout and noise (BigDL ``nn``): Dropout, SpatialDropout1D / 2D / 3D, GaussianDropout,
GaussianNoise, GaussianSampler, and the pass-through layers that shape gradients: L1Penalty,
ActivityRegularization, GradientReversal."""
from __future__ import annotations

import numbers

import numpy as np

from .._checks import probability
from . import random
from .activation import ANY_NDIM
from .module import check_grad_output, current_batch_share
from .module import Module

__all__ = ["Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
           "GaussianDropout", "GaussianNoise", "GaussianSampler", "L1Penalty",
           "ActivityRegularization", "GradientReversal"]


class Dropout(Module):
    """Zeroes each element with probability ``init_p`` while training.

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).
        inplace: BigDL's in-place flag; accepted and ignored (the output has its own buffer, so
            the previous layer's output stays intact for its backward).
        scale: if True (default, "inverted dropout") kept elements are scaled by
            ``1 / (1 - init_p)`` while training and inference is the identity; if False, training
            keeps the elements unscaled and inference multiplies by ``1 - init_p`` (as BigDL).

    The mask is drawn from ``workbench.nn.random.rng()`` (reproducible with ``set_seed``) and
    the backward pass reuses the mask of the last forward pass.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, init_p=0.5, inplace=False, scale=True):
        super().__init__()
        if not isinstance(init_p, numbers.Real) or isinstance(init_p, bool) or not 0 <= init_p < 1:
            raise ValueError(f"Dropout: init_p must be a number in [0, 1), got {init_p!r}")
        self.p = float(init_p)
        self.inplace = bool(inplace)
        self.scale = bool(scale)
        self._masked = False

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        self._masked = self.train and self.p > 0
        if not self._masked:
            if self.train or self.scale or self.p == 0:
                return x
            out = self._buffer("output", x.shape, x.dtype)
            np.multiply(x, 1 - self.p, out=out)
            return out
        mask = self._buffer("mask", x.shape, x.dtype)
        np.greater_equal(random.rng().random(x.shape, dtype=np.float32), self.p, out=mask)
        if self.scale:
            mask *= 1 / (1 - self.p)
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, mask, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        if not self._masked and (self.scale or self.p == 0):
            return grad_output
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._scratch["mask"] if self._masked else 1 - self.p, out=gi)
        return gi

    def extra_repr(self):
        return f"{self.p:g}"


class _FeatureDropout(Module):
    """Drops whole feature maps: one Bernoulli draw per (sample, channel), shared by every
    position of the map.  As BigDL, kept maps are not rescaled while training and inference
    multiplies by ``1 - p``."""

    _data_formats = ("NCHW", "NHWC")

    def __init__(self, init_p=0.5, data_format="NCHW"):
        super().__init__()
        cls = type(self).__name__
        self.p = probability(cls, "init_p", init_p)
        if not isinstance(data_format, str) or data_format.upper() not in self._data_formats:
            raise ValueError(f"{cls}: data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        self.data_format = data_format.upper()

    def _mask_shape(self, x):
        """The shape of the per-map mask for a checked input (1 along the map's positions)."""
        raise NotImplementedError

    def update_output(self, input):
        x = self._checked(input)
        out = self._buffer("output", x.shape, x.dtype)
        if self.train:
            mask = self._buffer("mask", self._mask_shape(x), x.dtype)
            np.greater_equal(random.rng().random(mask.shape), self.p, out=mask)
        else:
            mask = np.asarray(1 - self.p, dtype=x.dtype)
        self._mask = mask
        np.multiply(x, mask, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._mask, out=gi)
        return gi

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_mask", None)
        return state

    def extra_repr(self):
        return f"{self.p:g}"


class SpatialDropout1D(_FeatureDropout):
    """Dropout of whole 1-D feature maps (all time steps of a feature at once).

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).

    While training each feature of each sample is kept or zeroed for every time step (no
    rescaling); ``evaluate()`` mode multiplies by ``1 - init_p`` (as BigDL).  Masks come from
    ``workbench.nn.random.rng()``.

    Input shape: ``(N, T, C)`` or ``(T, C)``.  Output shape: same as input.
    """

    def __init__(self, init_p=0.5):
        super().__init__(init_p)

    def _checked(self, input):
        return self._as_array(input, (2, 3), "(N, T, C) or (T, C)")

    def _mask_shape(self, x):
        return (1, x.shape[1]) if x.ndim == 2 else (x.shape[0], 1, x.shape[2])


class SpatialDropout2D(_FeatureDropout):
    """Dropout of whole 2-D feature maps (every pixel of a channel at once).

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.

    Training keeps or zeroes each channel of each sample (no rescaling); ``evaluate()`` mode
    multiplies by ``1 - init_p`` (as BigDL).

    Input shape: ``(N, C, H, W)`` / ``(C, H, W)``, or ``(N, H, W, C)`` / ``(H, W, C)``.
    Output shape: same as input.
    """

    def _checked(self, input):
        return self._as_array(input, (3, 4), "(N, C, H, W) or (C, H, W)"
                              if self.data_format == "NCHW" else "(N, H, W, C) or (H, W, C)")

    def _mask_shape(self, x):
        return _map_mask(x, 2, self.data_format == "NCHW")


class SpatialDropout3D(_FeatureDropout):
    """Dropout of whole 3-D feature maps (every voxel of a channel at once).

    Args:
        init_p: drop probability, ``0 <= init_p < 1`` (default 0.5).
        data_format: ``"NCHW"`` (default, channels first) or ``"NHWC"`` (channels last).

    Training keeps or zeroes each channel of each sample (no rescaling); ``evaluate()`` mode
    multiplies by ``1 - init_p`` (as BigDL).

    Input shape: ``(N, C, D, H, W)`` / ``(C, D, H, W)``, or channels last.
    Output shape: same as input.
    """

    def _checked(self, input):
        return self._as_array(input, (4, 5), "(N, C, D, H, W) or (C, D, H, W)"
                              if self.data_format == "NCHW" else "(N, D, H, W, C) or (D, H, W, C)")

    def _mask_shape(self, x):
        return _map_mask(x, 3, self.data_format == "NCHW")


def _map_mask(x, spatial, channels_first):
    """Mask shape for ``spatial`` map dimensions, with or without a leading batch."""
    batched = x.ndim == spatial + 2
    shape = [1] * x.ndim
    channel = (1 if batched else 0) if channels_first else x.ndim - 1
    shape[channel] = x.shape[channel]
    if batched:
        shape[0] = x.shape[0]
    return tuple(shape)


class GaussianDropout(Module):
    """Multiplies each element by noise drawn from ``N(1, rate / (1 - rate))`` while training;
    the identity in ``evaluate()`` mode (Keras / BigDL ``GaussianDropout``).

    Args:
        rate: the equivalent drop probability, ``0 <= rate < 1``.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, rate):
        super().__init__()
        self.rate = probability("GaussianDropout", "rate", rate)

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        self._noisy = self.train and self.rate > 0
        if not self._noisy:
            return x
        noise = self._buffer("noise", x.shape, x.dtype)
        noise[...] = random.rng().normal(1.0, np.sqrt(self.rate / (1 - self.rate)), size=x.shape)
        out = self._buffer("output", x.shape, x.dtype)
        np.multiply(x, noise, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        if not self._noisy:
            return grad_output
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, self._scratch["noise"], out=gi)
        return gi

    def extra_repr(self):
        return f"{self.rate:g}"


class GaussianNoise(Module):
    """Adds noise drawn from ``N(0, stddev^2)`` while training; the identity in
    ``evaluate()`` mode (Keras / BigDL ``GaussianNoise``).

    Args:
        stddev: standard deviation of the noise, >= 0.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, stddev):
        super().__init__()
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or not stddev >= 0:
            raise ValueError(f"GaussianNoise: stddev must be a number >= 0, got {stddev!r}")
        self.stddev = float(stddev)

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        if not (self.train and self.stddev > 0):
            return x
        out = self._buffer("output", x.shape, x.dtype)
        out[...] = random.rng().normal(0.0, self.stddev, size=x.shape)
        out += x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return grad_output

    def extra_repr(self):
        return f"{self.stddev:g}"


class GaussianSampler(Module):
    """Samples ``mean + exp(log_variance / 2) * eps`` with ``eps ~ N(0, 1)`` (the
    reparameterization of a variational autoencoder), in training and inference alike.

    The backward pass reuses the ``eps`` of the last forward pass.

    Input: a table ``[mean, log_variance]`` of two tensors of one shape.
    Output shape: that shape.
    """

    def update_output(self, input):
        expected = "a table [mean, log_variance] of two tensors of one shape"
        if (not isinstance(input, (list, tuple)) or len(input) != 2
                or not all(isinstance(t, np.ndarray) for t in input)
                or input[0].shape != input[1].shape):
            self._fail(expected, input)
        mean, log_var = input
        dtype = np.result_type(mean.dtype, log_var.dtype)
        dtype = dtype if dtype.kind == "f" else np.dtype(np.float32)
        eps = self._buffer("eps", mean.shape, dtype)
        eps[...] = random.rng().standard_normal(mean.shape)
        out = self._buffer("output", mean.shape, dtype)
        np.multiply(np.exp(0.5 * log_var), eps, out=out)
        out += mean
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        dtype = self.output.dtype
        g_mean = self._buffer("grad_mean", self.output.shape, dtype)
        np.copyto(g_mean, grad_output)
        g_log_var = self._buffer("grad_log_var", self.output.shape, dtype)
        np.multiply(0.5 * np.exp(0.5 * np.asarray(input[1], dtype=dtype)),
                    self._scratch["eps"], out=g_log_var)
        g_log_var *= grad_output
        return [g_mean, g_log_var]


class _Penalty(Module):
    """The identity forward, plus a penalty of the activations: ``self.loss`` holds its value
    after each forward (``Module.penalty_loss`` sums them, and the Optimizer reports the
    criterion's loss plus that sum) and the backward adds its gradient to ``grad_output``."""

    adds_penalty = True

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        self.loss = self._penalty(x)
        return x

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = self.output
        gi = self._buffer("grad_input", x.shape, x.dtype)
        self._penalty_grad(x, gi)
        if self._adds_grad_output():
            gi += grad_output
        return gi

    def _adds_grad_output(self):
        return True


class L1Penalty(_Penalty):
    """Passes the input through and penalizes its L1 norm (for sparse activations):
    ``loss = l1weight * sum |x|`` (divided by the number of elements with ``size_average``).

    Args:
        l1weight: the penalty weight.
        size_average: average instead of sum (default False).
        provide_output: if True (default) the gradient is ``grad_output`` plus the penalty's;
            if False only the penalty's (the layer then ends a branch).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, l1weight, size_average=False, provide_output=True):
        super().__init__()
        if isinstance(l1weight, bool) or not isinstance(l1weight, numbers.Real):
            raise ValueError(f"L1Penalty: l1weight must be a number, got {l1weight!r}")
        self.l1weight = float(l1weight)
        self.size_average = bool(size_average)
        self.provide_output = bool(provide_output)
        self.loss = 0.0

    def _m(self, x):
        if not self.size_average or not x.size:
            return self.l1weight
        # averaged over the elements of the whole batch: a pass over part of the batch (a
        # Spark task's share) weighs its mean by that share, so the tasks' sum is the mean
        return self.l1weight / x.size * current_batch_share()

    def _penalty(self, x):
        return self._m(x) * float(np.abs(x).sum())

    def _penalty_grad(self, x, gi):
        np.sign(x, out=gi)
        gi *= self._m(x)

    def _adds_grad_output(self):
        return self.provide_output

    def extra_repr(self):
        return f"{self.l1weight:g}, {self.size_average}, {self.provide_output}"


class ActivityRegularization(_Penalty):
    """Passes the input through and penalizes it: ``loss = l1 * sum |x| + l2 * sum x^2``
    (Keras / BigDL ``ActivityRegularization``); the backward adds the penalty's gradient.

    Args:
        l1: L1 factor, >= 0 (default 0).
        l2: L2 factor, >= 0 (default 0).

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, l1=0.0, l2=0.0):
        super().__init__()
        for arg, value in (("l1", l1), ("l2", l2)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise ValueError(f"ActivityRegularization: {arg} must be a number >= 0, "
                                 f"got {value!r}")
        self.l1, self.l2 = float(l1), float(l2)
        self.loss = 0.0

    def _penalty(self, x):
        return self.l1 * float(np.abs(x).sum()) + self.l2 * float((x * x).sum())

    def _penalty_grad(self, x, gi):
        np.sign(x, out=gi)
        gi *= self.l1
        gi += (2 * self.l2) * x

    def extra_repr(self):
        return f"l1={self.l1:g}, l2={self.l2:g}"


class GradientReversal(Module):
    """The identity forward; the backward multiplies the gradient by ``-lambda`` (domain-
    adversarial training, https://arxiv.org/abs/1505.07818).

    Args:
        the_lambda: the factor (default 1); ``set_lambda`` changes it during training.

    Input shape: any.  Output shape: same as input.
    """

    def __init__(self, the_lambda=1.0):
        super().__init__()
        self.set_lambda(the_lambda)

    def set_lambda(self, the_lambda):
        """BigDL: change lambda (e.g. on a schedule); saved with the model."""
        if isinstance(the_lambda, bool) or not isinstance(the_lambda, numbers.Real):
            raise ValueError(f"GradientReversal: the_lambda must be a number, got {the_lambda!r}")
        self.the_lambda = float(the_lambda)
        return self

    def get_config(self):
        config = super().get_config()
        config["args"]["the_lambda"] = self.the_lambda
        return config

    def update_output(self, input):
        return self._as_array(input, ANY_NDIM, "a tensor")

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.multiply(grad_output, -self.the_lambda, out=gi)
        return gi

    def extra_repr(self):
        return f"{self.the_lambda:g}"
