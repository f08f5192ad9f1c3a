"""Layers that pass their input through and add a penalty or change the gradient:
``L1Penalty``, ``ActivityRegularization``, ``NegativeEntropyPenalty``,
``GradientReversal`` (BigDL ``nn``).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..._checks import finite_real
from ..activation.activations import ANY_NDIM
from ..module import check_grad_output, current_batch_share, Module, LayerError, shape_of

__all__ = ["L1Penalty", "ActivityRegularization", "GradientReversal", "NegativeEntropyPenalty"]


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


class NegativeEntropyPenalty(_Penalty):
    """Passes the input (a distribution) through and penalizes its negative entropy:
    ``loss = beta * sum(x * log x)``; the backward adds ``beta * (log x + 1)`` to
    ``grad_output``, pushing the distribution towards higher entropy (BigDL
    ``NegativeEntropyPenalty``, e.g. after a ``SoftMax`` in policy-gradient training).

    Args:
        beta: penalty weight (default 0.01).

    Input shape: any, elements > 0 (probabilities).  Output shape: same as input.
    """

    def __init__(self, beta=0.01):
        super().__init__()
        self.beta = finite_real("NegativeEntropyPenalty", "beta", beta)
        self.loss = 0.0

    def _penalty(self, x):
        if x.size and not np.all(x > 0):
            raise LayerError(f"{self.label()}: expected input of values > 0 (probabilities), "
                             f"got a {shape_of(x)} tensor with min {float(x.min()):g}")
        return self.beta * float(np.sum(x * np.log(x)))

    def _penalty_grad(self, x, gi):
        np.log(x, out=gi)
        gi += 1
        gi *= self.beta

    def extra_repr(self):
        return f"beta={self.beta:g}"
