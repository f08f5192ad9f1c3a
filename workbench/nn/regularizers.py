"""Weight regularizers (BigDL's ``L1Regularizer`` / ``L2Regularizer`` / ``L1L2Regularizer``).

A layer takes them as ``wRegularizer`` / ``bRegularizer`` (BigDL's keywords) and calls
``self._set_regularizer("weight", reg)``; ``Module.backward`` then adds the penalty's gradient
to the parameter's gradient after ``acc_grad_parameters``, so every layer gets them the same way.
"""
from __future__ import annotations

import numpy as np

from .._config import Configurable

__all__ = ["Regularizer", "L1Regularizer", "L2Regularizer", "L1L2Regularizer"]


class Regularizer(Configurable):
    """Adds ``l1 * sign(w) + l2 * w`` to the gradient of ``w`` (penalty ``l1|w| + l2/2 w²``)."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not isinstance(value, (int, float, np.floating)) or value < 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a number >= 0, "
                                 f"got {value!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def penalty(self, weight):
        """The value added to the loss by this parameter."""
        return (self.l1 * float(np.abs(weight).sum())
                + 0.5 * self.l2 * float((weight * weight).sum()))

    def accumulate(self, weight, grad, scale=1.0):
        """Add the penalty's gradient (times ``scale``) to ``grad`` in place."""
        if self.l1:
            grad += (scale * self.l1) * np.sign(weight)
        if self.l2:
            grad += (scale * self.l2) * weight

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1Regularizer(Regularizer):
    """L1 penalty ``l1 * sum|w|``: adds ``l1 * sign(w)`` to the gradient (BigDL's
    ``L1Regularizer``)."""

    def __init__(self, l1):
        super().__init__(l1=l1)


class L2Regularizer(Regularizer):
    """L2 penalty ``l2 / 2 * sum(w^2)``: adds ``l2 * w`` to the gradient, like weight decay on
    this parameter only (BigDL's ``L2Regularizer``)."""

    def __init__(self, l2):
        super().__init__(l2=l2)


class L1L2Regularizer(Regularizer):
    """Both penalties: adds ``l1 * sign(w) + l2 * w`` to the gradient (BigDL's
    ``L1L2Regularizer``)."""

    def __init__(self, l1, l2):
        super().__init__(l1=l1, l2=l2)
