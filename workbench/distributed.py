"""Which engine runs a data set: this process for arrays and Samples, Spark for a pyspark RDD or
DataFrame.

``Optimizer(model, data, ...)``, ``model.predict(data)`` and ``model.evaluate(data, ...)`` accept
both kinds.  They dispatch on the *type* of ``data``: an object whose class comes from pyspark is
handed to :func:`engine_for`'s answer, ``workbench.spark``, imported at that moment (and pyspark
with it).  Nothing registers anything at import time, so the order of imports never matters,
and ``nn``, ``data`` and ``optim`` never import Spark unless the user gives them a Spark object.

This is the one place where a lower layer reaches an upper one, and only by this protocol:
the module returned implements :class:`DistributedEngine`.
"""
from __future__ import annotations

from typing import Any, Protocol

__all__ = ["DistributedEngine", "engine_for", "is_distributed"]


class DistributedEngine(Protocol):
    """What an engine for distributed data provides (``workbench.spark`` does)."""

    def predict(self, model, data, batch_size, **options) -> Any:
        """The model's outputs in the kind of ``data``: an RDD of one output per record (in
        record order) for an RDD, the DataFrame plus a prediction column for a DataFrame
        (``options``: ``features_col``, ``prediction_col``, ``feature_shape``)."""

    def predict_class(self, model, data, batch_size, zero_based_label, **options) -> Any:
        """Predicted classes: an RDD of ints, or the DataFrame plus a DoubleType column."""

    def evaluate(self, model, data, batch_size, val_methods) -> list:
        """One merged ``ValidationResult`` per validation method."""

    def SparkTrainer(self, optimizer) -> Any:  # noqa: N802 - the runner's class
        """The runner ``Optimizer.optimize`` drives: ``run()``, ``evaluate(data,
        batch_size, methods)`` and ``sync_parameters()``."""


_CLASSES = ("RDD", "PipelinedRDD", "DataFrame")


def is_distributed(data):
    """True if ``data`` is a pyspark RDD or DataFrame (classic or Connect).  Decided from the
    class's module name, so pyspark is not imported to answer."""
    for cls in type(data).__mro__:  # pyspark.rdd, pyspark.core.rdd (4.x), pyspark.sql...
        module = getattr(cls, "__module__", "") or ""
        if module.split(".")[0] == "pyspark" and cls.__name__ in _CLASSES:
            return True
    return False


def engine_for(data):
    """The engine that runs ``data``: ``workbench.spark`` for an RDD or DataFrame (imported
    now), None for in-memory data, which the caller runs itself."""
    if not is_distributed(data):
        return None
    from . import spark  # the one upward reach (see the module docstring)
    return spark
