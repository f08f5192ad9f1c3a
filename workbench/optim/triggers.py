"""Triggers: predicates on the training state (BigDL's ``Trigger`` family).

A trigger is called after each iteration with the loop's ``TrainingState`` (see ``events.py``)
and says whether something should happen now: stop training (the end trigger), validate, save
a checkpoint, write parameter histograms.  ``a & b`` and ``a | b`` combine triggers (the same as
``TriggerAnd(a, b)`` / ``TriggerOr(a, b)``).
"""
from __future__ import annotations


from .._checks import positive_int, real
from .._config import Configurable

__all__ = ["Trigger", "EveryEpoch", "SeveralIteration", "MaxEpoch", "MaxIteration", "MinLoss",
           "MaxScore", "TriggerAnd", "TriggerOr"]


class Trigger(Configurable):
    """Base class: ``trigger(state) -> bool`` for a ``TrainingState``."""

    def __call__(self, state) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not implement __call__")

    def __and__(self, other):
        return TriggerAnd(self, other)

    def __or__(self, other):
        return TriggerOr(self, other)

    def __repr__(self):
        args = ", ".join(repr(v) if not isinstance(v, list) else ", ".join(map(repr, v))
                         for v in getattr(self, "_init_args", {}).values())
        return f"{type(self).__name__}({args})"


class EveryEpoch(Trigger):
    """Fires after the last iteration of every epoch."""

    def __init__(self):
        pass

    def __call__(self, state):
        return bool(state.epoch_finished)


class SeveralIteration(Trigger):
    """Fires every ``interval`` iterations (after iteration ``interval``, ``2 * interval`` ...).

    Args:
        interval: positive int.
    """

    def __init__(self, interval):
        self.interval = positive_int("SeveralIteration", "interval", interval)

    def __call__(self, state):
        return state.iteration > 0 and state.iteration % self.interval == 0


class MaxEpoch(Trigger):
    """Fires once epoch ``max_epoch`` has finished (as an end trigger: train ``max_epoch``
    epochs).

    Args:
        max_epoch: positive int.
    """

    def __init__(self, max_epoch):
        self.max_epoch = positive_int("MaxEpoch", "max_epoch", max_epoch)

    def __call__(self, state):
        return state.epoch > self.max_epoch or (state.epoch == self.max_epoch
                                                and bool(state.epoch_finished))


class MaxIteration(Trigger):
    """Fires once ``max`` iterations are done (as an end trigger: train ``max`` iterations).

    Args:
        max: positive int.
    """

    def __init__(self, max):
        self.max = positive_int("MaxIteration", "max", max)

    def __call__(self, state):
        return state.iteration >= self.max


class MinLoss(Trigger):
    """Fires when the last training loss is below ``min`` (e.g. stop once the loss is small).

    Args:
        min: a number.
    """

    def __init__(self, min):
        self.min = real("MinLoss", "min", min)

    def __call__(self, state):
        return state.loss is not None and state.loss < self.min


class MaxScore(Trigger):
    """Fires when the last validation score (the first validation method's value) is above
    ``max`` (e.g. stop once the accuracy is good enough).

    Args:
        max: a number.
    """

    def __init__(self, max):
        self.max = real("MaxScore", "max", max)

    def __call__(self, state):
        return state.score is not None and state.score > self.max


class _Combined(Trigger):
    def __init__(self, first, *others):
        triggers = (first,) + others
        for t in triggers:
            if not isinstance(t, Trigger):
                raise TypeError(f"{type(self).__name__}: expected triggers (e.g. MaxEpoch(5)), "
                                f"got {type(t).__name__} {t!r}")
        self.triggers = triggers


class TriggerAnd(_Combined):
    """Fires when all of its triggers fire, e.g. ``TriggerAnd(MinLoss(0.1), MaxEpoch(5))``."""

    def __init__(self, first, *others):
        super().__init__(first, *others)

    def __call__(self, state):
        return all(t(state) for t in self.triggers)


class TriggerOr(_Combined):
    """Fires when any of its triggers fires, e.g. ``TriggerOr(MaxEpoch(20), MaxScore(0.98))``."""

    def __init__(self, first, *others):
        super().__init__(first, *others)

    def __call__(self, state):
        return any(t(state) for t in self.triggers)
