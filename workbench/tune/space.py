"""Search spaces: the distributions a hyperparameter is drawn from, and grid enumeration.

    space = {
        "learningrate": tune.loguniform(1e-3, 0.3),
        "batch_size":   tune.choice([16, 32, 64]),
        "optim":        tune.choice(["SGD", "Adam"]),
        "hidden":       tune.randint(32, 256, step=32),
        "dropout":      tune.uniform(0.0, 0.5),
        "momentum":     tune.conditional("optim", {"SGD": tune.uniform(0.5, 0.99)}),
    }

Sampling goes through optuna's define-by-run trial (``Distribution.suggest``), so random search
(optuna's ``RandomSampler``) and TPE see the same parameters; a conditional parameter is
suggested only when its parent has a value with a branch, so it is absent otherwise.
Grid search enumerates the points itself (:func:`grid_points`).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Distribution", "uniform", "loguniform", "randint", "choice", "conditional",
           "space_to_dict", "space_from_dict", "grid_points", "sample_params", "check_space",
           "param_order", "DEFAULT_GRID_RESOLUTION"]

DEFAULT_GRID_RESOLUTION = 3
_CHOICE_TYPES = (str, int, float, bool, type(None))


def _number(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or \
            not math.isfinite(float(x)):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return x


class Distribution:
    """Base class of the search-space distributions."""

    kind = ""

    def to_dict(self):
        """A JSON-able description, e.g. ``{"type": "uniform", "low": 0.0, "high": 0.5}``."""
        raise NotImplementedError

    def suggest(self, otrial, name):
        """Draw a value through an ``optuna.trial.Trial`` (``name`` is optuna's parameter)."""
        raise NotImplementedError

    def grid_values(self, resolution):
        """The values grid search tries."""
        raise NotImplementedError

    def contains(self, value):
        """True if ``value`` can be drawn from this distribution."""
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(self.to_dict()))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"tune.{self.kind}({args})"


class Uniform(Distribution):
    """A float drawn uniformly from ``[low, high]``."""

    kind = "uniform"

    def __init__(self, low, high):
        self.low = float(_number(low, "uniform: low"))
        self.high = float(_number(high, "uniform: high"))
        if not self.low < self.high:
            raise ValueError(f"uniform: low must be < high, got {low!r}, {high!r}")

    def to_dict(self):
        return {"type": self.kind, "low": self.low, "high": self.high}

    def suggest(self, otrial, name):
        return float(otrial.suggest_float(name, self.low, self.high))

    def grid_values(self, resolution):
        return [float(v) for v in np.linspace(self.low, self.high, resolution)]

    def contains(self, value):
        return isinstance(value, float) and self.low <= value <= self.high


class LogUniform(Uniform):
    """A float whose logarithm is uniform on ``[log(low), log(high)]`` (``low > 0``)."""

    kind = "loguniform"

    def __init__(self, low, high):
        super().__init__(low, high)
        if self.low <= 0:
            raise ValueError(f"loguniform: low must be > 0, got {low!r}")

    def suggest(self, otrial, name):
        return float(otrial.suggest_float(name, self.low, self.high, log=True))

    def grid_values(self, resolution):
        return [float(v) for v in np.geomspace(self.low, self.high, resolution)]


class RandInt(Distribution):
    """An int from ``low, low + step, ...`` up to ``high`` (both ends inclusive)."""

    kind = "randint"

    def __init__(self, low, high, step=1):
        for v, w in ((low, "low"), (high, "high"), (step, "step")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"randint: {w} must be an int, got {v!r}")
        self.low, self.high, self.step = int(low), int(high), int(step)
        if self.step < 1:
            raise ValueError(f"randint: step must be >= 1, got {step!r}")
        if self.low > self.high:
            raise ValueError(f"randint: low must be <= high, got {low!r}, {high!r}")
        if (self.high - self.low) % self.step:
            raise ValueError(f"randint: high - low ({self.high - self.low}) must be a multiple "
                             f"of step ({self.step})")

    def to_dict(self):
        return {"type": self.kind, "low": self.low, "high": self.high, "step": self.step}

    def values(self):
        return list(range(self.low, self.high + 1, self.step))

    def suggest(self, otrial, name):
        return int(otrial.suggest_int(name, self.low, self.high, step=self.step))

    def grid_values(self, resolution):
        values = self.values()
        if len(values) <= resolution:
            return values
        picks = np.linspace(0, len(values) - 1, resolution)
        return sorted({values[int(round(i))] for i in picks})

    def contains(self, value):
        return isinstance(value, int) and not isinstance(value, bool) and \
            self.low <= value <= self.high and (value - self.low) % self.step == 0


class Choice(Distribution):
    """One of a list of options (str, int, float, bool or None)."""

    kind = "choice"

    def __init__(self, options):
        options = list(options) if isinstance(options, (list, tuple)) else options
        if not isinstance(options, list) or not options:
            raise ValueError(f"choice: options must be a non-empty list, got {options!r}")
        for o in options:
            if not isinstance(o, _CHOICE_TYPES):
                raise ValueError(f"choice: options must be str, int, float, bool or None, got "
                                 f"{o!r} ({type(o).__name__})")
        if len({(type(o), o) for o in options}) != len(options):
            raise ValueError(f"choice: options must be distinct, got {options!r}")
        self.options = options

    def to_dict(self):
        return {"type": self.kind, "options": list(self.options)}

    def suggest(self, otrial, name):
        return otrial.suggest_categorical(name, self.options)

    def grid_values(self, resolution):
        return list(self.options)

    def contains(self, value):
        return any(type(value) is type(o) and value == o for o in self.options)


class Conditional(Distribution):
    """A parameter that exists only when ``parent`` takes one of the keys of ``branches``;
    its distribution is that key's entry."""

    kind = "conditional"

    def __init__(self, parent, branches):
        if not isinstance(parent, str) or not parent:
            raise ValueError(f"conditional: parent must be a parameter name, got {parent!r}")
        if not isinstance(branches, dict) or not branches:
            raise ValueError("conditional: branches must be a non-empty dict {parent value: "
                             f"distribution}}, got {branches!r}")
        for key, dist in branches.items():
            if not isinstance(key, _CHOICE_TYPES):
                raise ValueError(f"conditional: branch keys must be str, int, float, bool or "
                                 f"None, got {key!r}")
            if not isinstance(dist, Distribution):
                raise ValueError(f"conditional: the branch for {key!r} must be a tune "
                                 f"distribution, got {dist!r}")
        self.parent, self.branches = parent, dict(branches)

    def to_dict(self):
        return {"type": self.kind, "parent": self.parent,
                "branches": [[key, dist.to_dict()] for key, dist in self.branches.items()]}

    def branch(self, parent_value):
        """The distribution for ``parent_value``, or None (then the parameter is absent)."""
        for key, dist in self.branches.items():
            if type(key) is type(parent_value) and key == parent_value:
                return dist
        return None

    def optuna_name(self, name, parent_value):
        # one optuna parameter per branch, so each keeps one distribution across trials
        if len(self.branches) == 1:
            return name
        return f"{name}[{self.parent}={parent_value!r}]"

    def suggest(self, otrial, name, parent_value=None):
        dist = self.branch(parent_value)
        return None if dist is None else dist.suggest(otrial,
                                                      self.optuna_name(name, parent_value))

    def grid_values(self, resolution):
        raise TypeError("conditional parameters are enumerated by grid_points")

    def contains(self, value):
        return any(d.contains(value) for d in self.branches.values())


def uniform(low, high):
    """A float drawn uniformly from ``[low, high]``.

    Args:
        low: lower bound.
        high: upper bound (> low).
    """
    return Uniform(low, high)


def loguniform(low, high):
    """A float drawn log-uniformly from ``[low, high]`` (good for learning rates).

    Args:
        low: lower bound (> 0).
        high: upper bound (> low).
    """
    return LogUniform(low, high)


def randint(low, high, step=1):
    """An int in ``low, low + step, ..., high`` (both ends inclusive).

    Args:
        low: smallest value.
        high: largest value (``high - low`` a multiple of ``step``).
        step: spacing (default 1).
    """
    return RandInt(low, high, step)


def choice(options):
    """One of ``options``.

    Args:
        options: a non-empty list of distinct str / int / float / bool / None values.
    """
    return Choice(options)


def conditional(parent, branches):
    """A parameter sampled only when another parameter has a given value.

    Args:
        parent: the name of the parameter it depends on (usually a ``choice``).
        branches: ``{parent value: distribution}``; when the parent's value has no entry the
            parameter is absent from the trial's params.

    Example: ``conditional("optim", {"SGD": uniform(0.5, 0.99)})``.
    """
    return Conditional(parent, branches)


_KINDS = {"uniform": Uniform, "loguniform": LogUniform, "randint": RandInt, "choice": Choice,
          "conditional": Conditional}


def _dist_from_dict(d, where):
    if isinstance(d, Distribution):
        return d
    if not isinstance(d, dict) or d.get("type") not in _KINDS:
        raise ValueError(f"{where}: expected a distribution dict with a type in "
                         f"{sorted(_KINDS)}, got {d!r}")
    kind = d["type"]
    try:
        if kind in ("uniform", "loguniform"):
            return _KINDS[kind](d["low"], d["high"])
        if kind == "randint":
            return RandInt(d["low"], d["high"], d.get("step", 1))
        if kind == "choice":
            return Choice(d["options"])
        branches = d["branches"]
        pairs = branches.items() if isinstance(branches, dict) else branches
        return Conditional(d["parent"], {key: _dist_from_dict(v, f"{where} branch {key!r}")
                                         for key, v in pairs})
    except KeyError as e:
        raise ValueError(f"{where}: a {kind} distribution needs {e.args[0]!r}") from None


def space_to_dict(space):
    """``{name: distribution.to_dict()}``: a JSON-able copy of a search space."""
    check_space(space)
    return {name: dist.to_dict() for name, dist in space.items()}


def space_from_dict(d):
    """The search space described by :func:`space_to_dict` (or a dict mixing dicts and
    distributions); validates it."""
    if not isinstance(d, dict):
        raise ValueError(f"space_from_dict: expected a dict, got {type(d).__name__}")
    space = {name: _dist_from_dict(v, f"parameter {name!r}") for name, v in d.items()}
    check_space(space)
    return space


def param_order(space):
    """Parameter names with every conditional after its parent (raises on a missing parent
    or a cycle)."""
    order, placed = [], set()
    pending = list(space)
    while pending:
        progress = False
        for name in list(pending):
            dist = space[name]
            if isinstance(dist, Conditional):
                if dist.parent not in space:
                    raise ValueError(f"search space: {name!r} depends on {dist.parent!r}, "
                                     "which is not in the space")
                if dist.parent not in placed:
                    continue
            order.append(name)
            placed.add(name)
            pending.remove(name)
            progress = True
        if not progress:
            raise ValueError(f"search space: conditional parameters form a cycle: {pending}")
    return order


def check_space(space):
    """Raise ``ValueError`` unless ``space`` is a non-empty ``{str: Distribution}``."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"search space must be a non-empty dict {{name: distribution}}, got "
                         f"{space!r}")
    for name, dist in space.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"search space: parameter names must be strings, got {name!r}")
        if not isinstance(dist, Distribution):
            raise ValueError(f"search space: {name!r} must be a tune distribution (tune.uniform, "
                             f"tune.choice, ...), got {dist!r}")
    param_order(space)
    return space


def sample_params(space, otrial):
    """The params of one trial, drawn through the optuna trial ``otrial`` (define-by-run)."""
    params = {}
    for name in param_order(space):
        dist = space[name]
        if isinstance(dist, Conditional):
            if dist.parent in params:
                value = dist.suggest(otrial, name, params[dist.parent])
                if value is not None or dist.branch(params[dist.parent]) is not None:
                    params[name] = value
        else:
            params[name] = dist.suggest(otrial, name)
    return {name: params[name] for name in space if name in params}


def grid_points(space, resolution=DEFAULT_GRID_RESOLUTION):
    """Every point of the grid over ``space`` (a list of params dicts, in a fixed order).

    Choices and conditionals enumerate their options; a randint its values when there are at
    most ``resolution`` of them (else ``resolution`` evenly spaced ones); uniform and
    loguniform ``resolution`` points (log-spaced for loguniform).
    """
    check_space(space)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"grid_resolution must be a positive int, got {resolution!r}")
    points = [{}]
    for name in param_order(space):
        dist = space[name]
        out = []
        for p in points:
            if isinstance(dist, Conditional):
                branch = dist.branch(p[dist.parent]) if dist.parent in p else None
                if branch is None:
                    out.append(p)
                    continue
                values = branch.grid_values(resolution)
            else:
                values = dist.grid_values(resolution)
            out.extend({**p, name: v} for v in values)
        points = out
    return [{name: p[name] for name in space if name in p} for p in points]


def optuna_params(space, params):
    """``params`` keyed by optuna's parameter names (for ``enqueue_trial``)."""
    out = {}
    for name, value in params.items():
        dist = space[name]
        if isinstance(dist, Conditional):
            out[dist.optuna_name(name, params[dist.parent])] = value
        else:
            out[name] = value
    return out

