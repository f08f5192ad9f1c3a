"""Learning-rate schedules (BigDL's ``SGD.LearningRateSchedule`` family).

A schedule turns an optim method's base learning rate into the rate of the next update::

    schedule.rate(lr, decay, state) -> float

``lr`` and ``decay`` are the method's ``learningrate`` / ``learningrate_decay``; ``state`` is the
method's state dict: ``"neval"`` (updates done so far, 0 before the first), ``"epoch"`` (1-based,
set by the training loop) and, once the loop has set them, ``"loss"`` (last training loss) and
``"score"`` (last validation score).  ``rate`` must be idempotent: asking twice for the same
state gives the same rate and leaves the schedule as it was (the loop asks once for the summary
and once more inside ``update``).  Schedules that keep state of their own (``Plateau``,
``SequentialSchedule``) change it only when the state they watch moves on (a new epoch, a new
segment) and save it with ``get_state()`` / ``load_state()`` so a checkpoint resumes exactly.

Formulas follow BigDL (``n`` is ``state["neval"]``):

==================  ====================================================================
``Default()``       ``lr / (1 + n * decay)``
``Step(s, g)``      ``lr * g ** (n // s)``
``MultiStep(ss, g)`` ``lr * g ** (number of sizes in ss that are <= n)``
``Poly(p, m)``      ``lr * (1 - n / m) ** p``, and 0 once ``n > m``
``Exponential``     ``lr * r ** (n / s)`` (``n // s`` with ``stair_case``)
``Warmup(d)``       ``lr + d * n``
``Plateau``         ``lr`` times ``factor`` each time the monitored value stops improving
``SequentialSchedule`` chains schedules, each for a number of iterations
==================  ====================================================================
"""
from __future__ import annotations

import math
import numbers

from .. import _checks
from .._config import Configurable, from_config

__all__ = ["LearningRateSchedule", "Default", "Step", "MultiStep", "Poly", "Exponential",
           "Plateau", "Warmup", "SequentialSchedule"]


# ---------------------------------------------------------------------- argument checks
def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_number(owner, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float, or a ValueError quoting it if it is not a finite number in range."""
    ok = _is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        where = ""
        if low is not None or high is not None:
            lo = "(" if low_open else "["
            hi = ")" if high_open else "]"
            where = (f" in {lo}{'-inf' if low is None else low}, "
                     f"{'inf' if high is None else high}{hi}")
        raise ValueError(f"{owner}: {name} must be a finite number{where}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------- the protocol
class LearningRateSchedule(Configurable):
    """Base class: ``rate(lr, decay, state)`` gives the learning rate of the next update."""

    def rate(self, lr, decay, state) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not implement rate")

    def get_state(self) -> dict:
        """JSON-able state of the schedule itself (empty for stateless schedules)."""
        return {}

    def load_state(self, state: dict):
        """Restore what :meth:`get_state` returned."""
        if state:
            raise ValueError(f"{type(self).__name__}: has no state to load, got {state!r}")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "_init_args", {}).items())
        return f"{type(self).__name__}({args})"


def _neval(state):
    return int(state.get("neval", 0))


class Default(LearningRateSchedule):
    """BigDL's default: ``lr / (1 + neval * learningrate_decay)``."""

    def __init__(self):
        pass

    def rate(self, lr, decay, state):
        return lr / (1.0 + _neval(state) * decay)


class Step(LearningRateSchedule):
    """``lr * gamma ** (neval // step_size)``: multiply by ``gamma`` every ``step_size`` iterations.

    Args:
        step_size: iterations between two decays (positive int).
        gamma: the factor applied at each step (> 0).
    """

    def __init__(self, step_size, gamma):
        self.step_size = _checks.check_int("Step", "step_size", step_size)
        self.gamma = check_number("Step", "gamma", gamma, low=0, low_open=True)

    def rate(self, lr, decay, state):
        return lr * self.gamma ** (_neval(state) // self.step_size)


class MultiStep(LearningRateSchedule):
    """Like ``Step`` at the given iterations: ``lr * gamma ** k`` where ``k`` is how many of
    ``step_sizes`` are ``<= neval``.

    Args:
        step_sizes: increasing positive iteration numbers, e.g. ``[1000, 3000]``.
        gamma: the factor applied at each of them (> 0).
    """

    def __init__(self, step_sizes, gamma):
        if not isinstance(step_sizes, (list, tuple)) or not step_sizes:
            raise ValueError(f"MultiStep: step_sizes must be a non-empty list of increasing "
                             f"positive ints, got {step_sizes!r}")
        sizes = [_checks.check_int("MultiStep", "each of step_sizes", s) for s in step_sizes]
        if any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise ValueError("MultiStep: step_sizes must be strictly increasing, "
                             f"got {step_sizes!r}")
        self.step_sizes = sizes
        self.gamma = check_number("MultiStep", "gamma", gamma, low=0, low_open=True)

    def rate(self, lr, decay, state):
        n = _neval(state)
        return lr * self.gamma ** sum(1 for s in self.step_sizes if n >= s)


class Poly(LearningRateSchedule):
    """Polynomial decay to zero at ``max_iteration``: ``lr * (1 - neval / max_iteration) ** power``,
    and 0 after it.

    As in BigDL, inside a ``SequentialSchedule`` Poly counts the iterations of the whole run, not
    of its segment, so ``Warmup`` followed by ``Poly(p, total_iterations)`` reaches zero at the
    end of training.

    Args:
        power: the exponent (>= 0).
        max_iteration: the iteration at which the rate reaches zero (positive int).
    """

    def __init__(self, power, max_iteration):
        self.power = check_number("Poly", "power", power, low=0)
        self.max_iteration = _checks.check_int("Poly", "max_iteration", max_iteration)

    def rate(self, lr, decay, state):
        n = int(state.get("global_neval", _neval(state)))
        if n > self.max_iteration:
            return 0.0
        return lr * (1.0 - n / self.max_iteration) ** self.power


class Exponential(LearningRateSchedule):
    """``lr * decay_rate ** (neval / decay_step)``; with ``stair_case`` the exponent is
    ``neval // decay_step`` (a staircase).

    Args:
        decay_step: iterations over which the rate is multiplied by ``decay_rate`` (positive int).
        decay_rate: the decay factor (> 0).
        stair_case: decay in steps instead of continuously.
    """

    def __init__(self, decay_step, decay_rate, stair_case=False):
        self.decay_step = _checks.check_int("Exponential", "decay_step", decay_step)
        self.decay_rate = check_number("Exponential", "decay_rate", decay_rate, low=0,
                                       low_open=True)
        self.stair_case = bool(stair_case)

    def rate(self, lr, decay, state):
        n = _neval(state)
        p = n // self.decay_step if self.stair_case else n / self.decay_step
        return lr * self.decay_rate ** p


class Warmup(LearningRateSchedule):
    """Linear warm-up: ``lr + delta * neval`` (usually the first segment of a
    ``SequentialSchedule``).

    Args:
        delta: the increase per iteration.
    """

    def __init__(self, delta):
        self.delta = check_number("Warmup", "delta", delta)

    def rate(self, lr, decay, state):
        return lr + self.delta * _neval(state)


class Plateau(LearningRateSchedule):
    """Reduce the rate when a monitored quantity has stopped improving (BigDL's ``Plateau``).

    The quantity is read from the optim method's state once per epoch, at the first update of
    the next epoch: ``"score"`` (the first validation method's value, set by the loop after each
    validation) or ``"loss"`` (the last training loss).  The rate starts at ``lr``.  Epochs that
    improve on the best value by more than ``epsilon`` reset the wait; otherwise, as in BigDL, the
    rate becomes ``max(rate * factor, min_lr)`` when ``patience`` non-improving epochs had already
    been counted (so the first reduction comes at the ``patience + 1``-th epoch without
    improvement), followed by ``cooldown`` epochs in which nothing is counted.

    Args:
        monitor: ``"score"`` or ``"loss"`` (BigDL's ``"Loss"`` also works).
        factor: the reduction factor, in (0, 1).
        patience: non-improving epochs tolerated before a reduction (int >= 0).
        mode: ``"min"`` (the quantity should decrease, e.g. a loss) or ``"max"`` (e.g. accuracy).
        epsilon: the least change that counts as an improvement (>= 0).
        cooldown: epochs to wait after a reduction before counting again (int >= 0).
        min_lr: the rate never goes below this (>= 0).
    """

    def __init__(self, monitor="score", factor=0.1, patience=10, mode="min", epsilon=1e-4,
                 cooldown=0, min_lr=0.0):
        if not isinstance(monitor, str) or monitor.lower() not in ("score", "loss"):
            raise ValueError(f"Plateau: monitor must be 'score' or 'loss', got {monitor!r}")
        self.monitor = monitor.lower()
        self.factor = check_number("Plateau", "factor", factor, low=0, high=1, low_open=True,
                                   high_open=True)
        self.patience = _checks.check_int("Plateau", "patience", patience, minimum=0)
        if mode not in ("min", "max"):
            raise ValueError(f"Plateau: mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.epsilon = check_number("Plateau", "epsilon", epsilon, low=0)
        self.cooldown = _checks.check_int("Plateau", "cooldown", cooldown, minimum=0)
        self.min_lr = check_number("Plateau", "min_lr", min_lr, low=0)
        self.load_state({})

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.epsilon
        return value > self.best + self.epsilon

    def rate(self, lr, decay, state):
        epoch = int(state.get("epoch", 1))
        if epoch <= 1 or self.current_rate is None:
            self.current_rate = float(lr)
        if epoch == self.last_epoch:
            return self.current_rate
        self.last_epoch = epoch
        value = state.get(self.monitor)
        if value is None:
            raise ValueError(f"Plateau: the monitored {self.monitor!r} is not available in the "
                             "optim method's state" + (
                                 " (set a validation with Optimizer.set_validation)"
                                 if self.monitor == "score" else ""))
        value = float(value)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter <= 0:
            if self.wait >= self.patience and self.current_rate > self.min_lr * (1 + 1e-4):
                self.current_rate = max(self.current_rate * self.factor, self.min_lr)
                self.cooldown_counter = self.cooldown
                self.wait = 0
            self.wait += 1
        return self.current_rate

    def get_state(self):
        return {"current_rate": self.current_rate, "best": self.best, "wait": self.wait,
                "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch}

    def load_state(self, state):
        self.current_rate = state.get("current_rate")
        self.best = state.get("best")
        self.wait = int(state.get("wait", 0))
        self.cooldown_counter = int(state.get("cooldown_counter", 0))
        self.last_epoch = int(state.get("last_epoch", 1))


class SequentialSchedule(LearningRateSchedule):
    """Several schedules one after another (BigDL's ``SequentialSchedule``)::

        SequentialSchedule(iteration_per_epoch).add(Warmup(0.01), 100).add(Poly(0.5, 1000), 900)

    Each added schedule runs for ``max_iteration`` iterations and starts from the rate the
    previous one reached; it sees its own iteration count (``neval`` minus the iterations of the
    schedules before it) and its own epoch count (``epoch`` minus
    ``those iterations // iteration_per_epoch``).  As in BigDL, the hand-over happens after
    the iteration numbered like the segment's end (the first schedule also gives the rate of
    iteration ``max_iteration``); the last schedule continues after its end.

    Args:
        iteration_per_epoch: iterations in one epoch (positive int), to count epochs per segment.
    """

    def __init__(self, iteration_per_epoch):
        self.iteration_per_epoch = _checks.check_int("SequentialSchedule", "iteration_per_epoch",
                                             iteration_per_epoch)
        self.schedules: list[tuple[LearningRateSchedule, int]] = []
        self._cur = 0
        self._bases: list[float] = []

    def add(self, schedule, max_iteration):
        """Append ``schedule`` for ``max_iteration`` iterations; returns ``self``."""
        if not isinstance(schedule, LearningRateSchedule) or schedule is self:
            raise TypeError(f"SequentialSchedule.add: expected a learning rate schedule, got "
                            f"{type(schedule).__name__}")
        max_iteration = _checks.check_int("SequentialSchedule.add", "max_iteration", max_iteration)
        self.schedules.append((schedule, max_iteration))
        return self

    def _bounds(self, i):
        """(first neval, last neval) of segment ``i`` in iterations of the whole run."""
        start = sum(m for _, m in self.schedules[:i])
        return start, start + self.schedules[i][1]

    def _child_state(self, i, state, neval=None):
        start, _ = self._bounds(i)
        n = _neval(state) if neval is None else neval
        child = dict(state)
        child["neval"] = n - start
        child["epoch"] = int(state.get("epoch", 1)) - start // self.iteration_per_epoch
        child.setdefault("global_neval", n)
        return child

    def rate(self, lr, decay, state):
        if not self.schedules:
            raise ValueError("SequentialSchedule: add at least one schedule with "
                             ".add(schedule, max_iteration)")
        n = _neval(state)
        while self._cur < len(self.schedules) - 1 and n > self._bounds(self._cur)[1]:
            i = self._cur
            base = lr if i == 0 else self._bases[i - 1]
            end = self._bounds(i)[1]
            handover = self.schedules[i][0].rate(base, decay, self._child_state(i, state, end))
            self._bases.append(float(handover))
            self._cur += 1
        i = self._cur
        base = lr if i == 0 else self._bases[i - 1]
        return self.schedules[i][0].rate(base, decay, self._child_state(i, state))

    def get_state(self):
        return {"cur": self._cur, "bases": list(self._bases),
                "children": [s.get_state() for s, _ in self.schedules]}

    def load_state(self, state):
        children = state.get("children", [])
        if children and len(children) != len(self.schedules):
            raise ValueError(f"SequentialSchedule: state holds {len(children)} schedules, "
                             f"this one has {len(self.schedules)}")
        self._cur = int(state.get("cur", 0))
        self._bases = [float(b) for b in state.get("bases", [])]
        for (s, _), child in zip(self.schedules, children):
            s.load_state(child)

    # ``add`` is not a constructor argument: the chain travels in the config explicitly.
    def get_config(self):
        config = super().get_config()
        config["schedules"] = [[s.get_config(), m] for s, m in self.schedules]
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        obj = cls(*positional, **args)
        for item in config.get("schedules", []):
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise ValueError(f"SequentialSchedule: bad schedule entry {item!r} in config")
            obj.add(from_config(item[0], LearningRateSchedule), item[1])
        return obj

    def __repr__(self):
        inner = ", ".join(f"{s!r} x {m}" for s, m in self.schedules)
        return f"SequentialSchedule({self.iteration_per_epoch}; {inner})"
