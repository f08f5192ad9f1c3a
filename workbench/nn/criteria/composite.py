"""Criteria made of other criteria: MultiCriterion, ParallelCriterion, TimeDistributedCriterion,
TimeDistributedMaskCriterion, TransformerCriterion.

BigDL's class names, argument order and ``add(criterion, weight)``.  Their configs hold the
inner criteria (and transformer modules) as nested configs.
"""
from __future__ import annotations

import numpy as np

from ..._config import ConfigError
from .classification import ClassNLLCriterion, CrossEntropyCriterion
from .base import number_arg
from .criterion import Criterion, LabelError
from ..module import Module, build_module, shape_of

__all__ = ["MultiCriterion", "ParallelCriterion", "TimeDistributedCriterion",
           "TimeDistributedMaskCriterion", "TransformerCriterion"]


def _scaled(grad, weight):
    """``weight * grad`` for a tensor or a (nested) table, as new arrays."""
    if isinstance(grad, (list, tuple)):
        return [_scaled(g, weight) for g in grad]
    return grad * np.asarray(weight, dtype=grad.dtype)


def _accumulate(total, grad, weight):
    if total is None:
        return _scaled(grad, weight)
    if isinstance(total, list):
        return [_accumulate(t, g, weight) for t, g in zip(total, grad)]
    total += grad * np.asarray(weight, dtype=total.dtype)
    return total


def _copy(activity):
    if isinstance(activity, (list, tuple)):
        return [_copy(a) for a in activity]
    return np.array(activity, copy=True)


def _inner(owner, criterion, what="criterion"):
    if not isinstance(criterion, Criterion):
        raise TypeError(f"{owner}: {what} must be a Criterion, got {criterion!r}")
    return criterion


class _Weighted(Criterion):
    """Holds ``(criterion, weight)`` pairs added with ``add``; they live in the config."""

    def _setup(self):
        self.criteria = []
        self.weights = []

    def add(self, criterion, weight=1.0):
        """Add ``criterion`` with a scalar ``weight`` (default 1); returns ``self``."""
        name = type(self).__name__
        self.criteria.append(_inner(name, criterion))
        self.weights.append(number_arg(name, "weight", weight))
        return self

    def _check_added(self):
        if not self.criteria:
            self._fail("no criteria added (use add(criterion, weight))")

    def get_config(self):
        config = super().get_config()
        config["criteria"] = [c.get_config() for c in self.criteria]
        config["weights"] = list(self.weights)
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        obj = cls(*positional, **args)
        criteria, weights = config.get("criteria", []), config.get("weights", [])
        if not isinstance(criteria, list) or not isinstance(weights, list) \
                or len(criteria) != len(weights):
            raise ConfigError(f"{cls.__name__}: 'criteria' and 'weights' must be lists of the "
                              f"same length")
        for c, w in zip(criteria, weights):
            obj.add(Criterion.from_config(c), w)
        return obj

    def __repr__(self):
        inner = ", ".join(f"{w:g} * {c!r}" for c, w in zip(self.criteria, self.weights))
        return f"nn.{type(self).__name__}({inner})"


class MultiCriterion(_Weighted):
    """A weighted sum of criteria, each applied to the same input and target:
    ``loss = sum_i w_i * criterion_i(input, target)``.

    Use ``add(criterion, weight=1.0)`` (chainable) to add the criteria.

    Input / target: whatever the added criteria take (all the same).
    """

    def __init__(self):
        super().__init__()
        self._setup()

    def update_output(self, input, target):
        self._check_added()
        return sum(w * c.forward(input, target) for c, w in zip(self.criteria, self.weights))

    def update_grad_input(self, input, target):
        self._check_added()
        total = None
        for c, w in zip(self.criteria, self.weights):
            total = _accumulate(total, c.backward(input, target), w)
        return total


class ParallelCriterion(_Weighted):
    """A weighted sum of criteria, the i-th applied to the i-th input of a table (and the i-th
    target, or the same target for all when ``repeat_target``):
    ``loss = sum_i w_i * criterion_i(input[i], target[i])``.

    Args:
        repeat_target: give every criterion the whole target (default False).

    Input: a table with one entry per added criterion.
    Target: a table of the same length, or any target when ``repeat_target``.
    """

    def __init__(self, repeat_target=False):
        super().__init__()
        self._setup()
        self.repeat_target = bool(repeat_target)

    def _pairs(self, input, target):
        self._check_added()
        n = len(self.criteria)
        if not isinstance(input, (list, tuple)) or len(input) != n:
            self._fail(f"expected an input table of {n} entries (one per criterion), "
                       f"got {shape_of(input)}")
        if not self.repeat_target and (not isinstance(target, (list, tuple))
                                       or len(target) != n):
            self._fail(f"expected a target table of {n} entries (or repeat_target=True), "
                       f"got {shape_of(target)}")
        targets = [target] * n if self.repeat_target else list(target)
        return zip(self.criteria, self.weights, input, targets)

    def update_output(self, input, target):
        return sum(w * c.forward(x, t) for c, w, x, t in self._pairs(input, target))

    def update_grad_input(self, input, target):
        return [_scaled(c.backward(x, t), w) for c, w, x, t in self._pairs(input, target)]


def _dimension(owner, dimension):
    if isinstance(dimension, bool) or not isinstance(dimension, (int, np.integer)) \
            or dimension < 1:
        raise ValueError(f"{owner}: dimension must be a 1-based integer >= 1, got {dimension!r}")
    return int(dimension)


class TimeDistributedCriterion(Criterion):
    """Applies a criterion to every slice of the input and target along ``dimension`` (the time
    axis) and sums the losses; divided by the number of steps when ``size_average``.

    Args:
        criterion: the criterion applied to each time step, e.g. ``ClassNLLCriterion()``.
        size_average: divide by the sequence length (default False).
        dimension: the time dimension, 1-based as in BigDL (default 2: ``(N, T, ...)``).

    Input shape: ``(N, T, ...)`` (for ``dimension=2``).
    Target: a tensor with the same length along ``dimension``, e.g. ``(N, T)`` class ids.
    """

    def __init__(self, criterion, size_average=False, dimension=2):
        super().__init__()
        self.criterion = _inner("TimeDistributedCriterion", criterion)
        self.size_average = bool(size_average)
        self.dimension = _dimension("TimeDistributedCriterion", dimension)

    def _steps(self, input, target):
        axis = self.dimension - 1
        t = np.asarray(target) if isinstance(target, (np.ndarray, list)) else None
        if not isinstance(input, np.ndarray) or input.ndim <= axis:
            self._fail(f"expected an input with a time dimension {self.dimension}, got "
                       f"{shape_of(input)}")
        if t is None or t.ndim <= axis or t.shape[axis] != input.shape[axis]:
            self._fail(f"expected a target with {input.shape[axis]} steps along dimension "
                       f"{self.dimension} like the input {shape_of(input)}, got "
                       f"{shape_of(target) if t is None else shape_of(t)}")
        steps = input.shape[axis]
        return axis, steps, ((np.take(input, i, axis=axis), np.take(t, i, axis=axis))
                             for i in range(steps))

    def _all_steps(self, input, target):
        """``(scores (N*T, C), ids (N*T,), factor)`` when a class criterion over all steps at
        once equals the per-step sum times ``factor`` (no class weights or no averaging: each
        step has the same N samples, so the sum of the steps' means is T times the mean over
        all N*T), else None.  One call instead of T on the language models' (N, T, vocab)."""
        c = self.criterion
        if type(c) not in (ClassNLLCriterion, CrossEntropyCriterion) or self.dimension != 2 or \
                not isinstance(input, np.ndarray) or input.ndim != 3 or input.size == 0 or \
                (c.weights is not None and c.size_average):
            return None
        t = np.asarray(target) if isinstance(target, (np.ndarray, list)) else None
        if t is None or t.shape != input.shape[:2]:
            return None
        steps = input.shape[1]
        factor = (steps if c.size_average else 1) / (steps if self.size_average else 1)
        return input.reshape(-1, input.shape[2]), t.reshape(-1), factor

    def update_output(self, input, target):
        batched = self._all_steps(input, target)
        if batched is not None:
            x, t, factor = batched
            try:
                return self.criterion.forward(x, t) * factor
            except LabelError:
                pass  # step by step, for the error message of the step
        _, steps, pairs = self._steps(input, target)
        loss = sum(self.criterion.forward(x, t) for x, t in pairs)
        return loss / steps if self.size_average and steps else loss

    def update_grad_input(self, input, target):
        batched = self._all_steps(input, target)
        if batched is not None:
            x, t, factor = batched  # (their backward needs no forward first)
            try:
                grad = np.array(self.criterion.backward(x, t), copy=True).reshape(input.shape)
                if factor != 1:
                    grad *= factor
                return grad.astype(input.dtype, copy=False)
            except LabelError:
                pass  # step by step, for the error message of the step
        axis, steps, pairs = self._steps(input, target)
        grads = []
        for x, t in pairs:
            self.criterion.forward(x, t)
            grads.append(np.array(self.criterion.backward(x, t), copy=True))
        if not grads:
            return np.zeros_like(input)
        grad = np.stack(grads, axis=axis)
        if self.size_average:
            grad /= steps
        return grad.astype(input.dtype, copy=False)


class TimeDistributedMaskCriterion(Criterion):
    """Like ``TimeDistributedCriterion`` over ``(N, T, ...)`` sequences, but skips padded steps:
    positions whose target equals ``padding_value`` contribute nothing, and the criterion sees
    the other positions as one batch.  With ``ClassNLLCriterion()`` (averaging) the loss is the
    mean over the non-padded positions, as BigDL.

    Args:
        criterion: the per-position criterion, e.g. ``ClassNLLCriterion()``.
        padding_value: the target value that marks padding.  None (default) means the value
            just below the first class: -1 for zero-based labels, 0 (BigDL's default) when the
            criterion has ``zero_based_label=False``.

    Input shape: ``(N, T, ...)``.
    Target: ``(N, T)`` (or ``(N, T, 1)``) class ids with padding.
    """

    def __init__(self, criterion, padding_value=None):
        super().__init__()
        self.criterion = _inner("TimeDistributedMaskCriterion", criterion)
        if padding_value is not None:
            number_arg("TimeDistributedMaskCriterion", "padding_value", padding_value)
        self.padding_value = padding_value

    def _pad(self):
        if self.padding_value is not None:
            return self.padding_value
        return -1 if getattr(self.criterion, "zero_based_label", True) else 0

    def _positions(self, input, target):
        if not isinstance(input, np.ndarray) or input.ndim < 2:
            self._fail(f"expected input (N, T, ...), got {shape_of(input)}")
        n, steps = input.shape[:2]
        t = np.asarray(target) if isinstance(target, (np.ndarray, list)) else None
        if t is None or t.size != n * steps or t.shape[:2] != (n, steps):
            self._fail(f"expected a target ({n}, {steps}) of class ids with padding, got "
                       f"{shape_of(target) if t is None else shape_of(t)}")
        t = t.reshape(n, steps)
        keep = t != self._pad()
        return input[keep], t[keep], keep

    def update_output(self, input, target):
        x, t, keep = self._positions(input, target)
        return self.criterion.forward(x, t) if keep.any() else 0.0

    def update_grad_input(self, input, target):
        x, t, keep = self._positions(input, target)
        grad = np.zeros_like(input)
        if keep.any():
            self.criterion.forward(x, t)
            grad[keep] = self.criterion.backward(x, t)
        return grad


class TransformerCriterion(Criterion):
    """Transforms the input and / or the target with modules, then applies a criterion:
    ``loss = criterion(input_transformer(input), target_transformer(target))`` (a missing
    transformer is the identity).  Gradients flow back through ``input_transformer`` (its
    parameter gradients are not accumulated: the transformers are fixed, e.g. a pre-trained
    network computing a perceptual / style loss).

    Args:
        criterion: the criterion on the transformed pair.
        input_transformer: a Module applied to the input, or None.
        target_transformer: a Module applied to the target, or None.

    The config holds the transformers' architecture only; their weights are not saved with it.

    Input / target: whatever the transformers take.
    """

    def __init__(self, criterion, input_transformer=None, target_transformer=None):
        super().__init__()
        self.criterion = _inner("TransformerCriterion", criterion)
        for name, module in (("input_transformer", input_transformer),
                             ("target_transformer", target_transformer)):
            if module is not None and not isinstance(module, Module):
                raise TypeError(f"TransformerCriterion: {name} must be a Module or None, "
                                f"got {module!r}")
        self.input_transformer = input_transformer
        self.target_transformer = target_transformer

    def _transformed(self, input, target):
        # Copies: a module reuses its output buffer, and the same module may transform both.
        x = _copy(self.input_transformer.forward(input)) if self.input_transformer else input
        t = _copy(self.target_transformer.forward(target)) if self.target_transformer else target
        return x, t

    def update_output(self, input, target):
        return self.criterion.forward(*self._transformed(input, target))

    def update_grad_input(self, input, target):
        x, t = self._transformed(input, target)
        self.criterion.forward(x, t)
        grad = self.criterion.backward(x, t)
        if self.input_transformer is None:
            return grad
        self.input_transformer.forward(input)
        return self.input_transformer.update_grad_input(input, grad)

    def get_config(self):
        config = super().get_config()
        for name in ("input_transformer", "target_transformer"):
            module = getattr(self, name)
            config["args"][name] = None
            if module is not None:
                config[name] = module.get_config()
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        for name in ("input_transformer", "target_transformer"):
            if config.get(name) is not None:
                args[name] = build_module(config[name])
        return cls(*positional, **args)
