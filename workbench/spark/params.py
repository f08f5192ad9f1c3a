"""Type converters for pyspark.ml ``Param``s that check a value when it is set.

Spark's own ``TypeConverters`` only convert; these also reject values no stage could use, with
a message that names the Param and quotes the value, so a bad grid in a ``ParamGridBuilder``
fails where it is written rather than in the middle of a fit.
"""
import math

from pyspark.ml.param import TypeConverters

__all__ = ["positive_int", "positive_float", "non_negative_float"]


def positive_int(name):
    """A converter to an int >= 1 for the Param ``name``."""
    def convert(value):
        v = TypeConverters.toInt(value)
        if v < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
        return v
    return convert


def positive_float(name):
    """A converter to a finite float > 0 for the Param ``name``."""
    def convert(value):
        v = TypeConverters.toFloat(value)
        if not v > 0 or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        return v
    return convert


def non_negative_float(name):
    """A converter to a float >= 0 for the Param ``name``."""
    def convert(value):
        v = TypeConverters.toFloat(value)
        if not v >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        return v
    return convert
