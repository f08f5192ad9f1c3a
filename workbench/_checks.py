"""Argument checks shared by layers, criteria, schedules and triggers (numpy and stdlib only).

Each function takes the owner's name (a class name, for the message), the argument's name and
the value, and returns the value converted (``int`` / ``float`` / a tuple of ints) or raises a
``ValueError`` that quotes it: ``"Linear: input_size must be a positive int, got 0"``.  Bools are
never numbers here.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = ["env_choice", "is_int", "check_int", "positive_int", "int_arg", "int_list", "real",
           "non_negative", "finite_real", "probability"]


def is_int(value):
    """True for a Python or numpy integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(owner, arg, value, minimum=1, allow=()):
    """``value`` as an int >= ``minimum`` (any int if ``minimum`` is None) or one of ``allow``."""
    if not is_int(value) or (minimum is not None and value < minimum and value not in allow):
        what = "an int" if minimum is None else (
            "a positive int" if minimum == 1 else f"an int >= {minimum}")
        if allow:
            what += " or " + " or ".join(map(str, allow))
        raise ValueError(f"{owner}: {arg} must be {what}, got {value!r}")
    return int(value)


def positive_int(owner, arg, value):
    """``value`` as an int >= 1."""
    return check_int(owner, arg, value, 1)


def int_arg(owner, arg, value, ok=None, rule="an int"):
    """``value`` as an int, or a ValueError quoting it unless it is an int with ``ok(value)``;
    ``rule`` says what is wanted (``"a positive int"``)."""
    if not is_int(value) or (ok is not None and not ok(int(value))):
        raise ValueError(f"{owner}: {arg} must be {rule}, got {value!r}")
    return int(value)


def int_list(owner, arg, value, n=None, minimum=1):
    """``value`` (a list or tuple of ints >= ``minimum``; of length ``n``, else non-empty) as a
    tuple of ints."""
    ok = (isinstance(value, (list, tuple)) and (len(value) == n if n is not None else
                                                len(value) > 0)
          and all(is_int(v) and v >= minimum for v in value))
    if not ok:
        what = "positive ints" if minimum == 1 else f"ints >= {minimum}"
        size = "non-empty" if n is None else str(n)
        raise ValueError(f"{owner}: {arg} must be a {size} list of {what}, got {value!r}"
                         if n is None else
                         f"{owner}: {arg} must be a list of {size} {what}, got {value!r}")
    return tuple(int(v) for v in value)


def real(owner, arg, value):
    """``value`` as a float (any number but NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner}: {arg} must be a number, got {value!r}")
    return float(value)


def non_negative(owner, arg, value):
    """``value`` as a float >= 0."""
    v = real(owner, arg, value)
    if v < 0:
        raise ValueError(f"{owner}: {arg} must be >= 0, got {value!r}")
    return v


def finite_real(owner, arg, value, minimum=None, strict=False):
    """``value`` as a finite float, >= ``minimum`` (> if ``strict``) when one is given."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{owner}: {arg} must be a finite number{bound}, got {value!r}")
    return float(value)


def probability(owner, arg, value):
    """``value`` as a float in ``[0, 1)`` (a dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{owner}: {arg} must be a number in [0, 1), got {value!r}")
    return float(value)


def env_choice(variable, default, choices):
    """The setting in environment variable ``variable`` (lower-cased; ``default`` when unset or
    empty), or a ValueError naming the variable if it is not one of ``choices``."""
    value = os.environ.get(variable, default).strip().lower() or default
    if value not in choices:
        raise ValueError(f"{variable} must be one of {tuple(choices)}, got {value!r}")
    return value
