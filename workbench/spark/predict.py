"""Distributed ``predict`` / ``predict_class`` / ``evaluate`` over RDDs and DataFrames.

``model.predict(rdd_or_df)``, ``model.predict_class(...)``
and ``model.evaluate(df, batch_size, [Top1Accuracy()])`` run as Spark jobs: the model is
broadcast, every partition runs it batch by batch in inference mode, and

- ``predict`` returns the outputs as one numpy array in the order of the records,
- ``evaluate`` merges the per-partition ``ValidationResult`` sums (so uneven partitions weigh
  correctly) and returns one result per validation method, as the local ``evaluate`` does.

The functions below take the DataFrame column names; the ``model.*`` methods use the defaults
(``features`` / ``label``).
"""
from __future__ import annotations

import pickle

import numpy as np

from .._checks import check_int
from ..nn import batch
from ..nn.module import Module
from .data import DataSet

__all__ = ["predict", "predict_class", "evaluate", "predict_dataset", "evaluate_dataset"]


def _run_model(payload, batch_size):
    model = pickle.loads(payload.value)
    model.evaluate()
    return model


def _predict_partition(payload, batch_size, it):
    model = None
    for part, start, X, _ in it:
        if model is None:
            model = _run_model(payload, batch_size)
        outs = [batch.copy(model.forward(batch.take(X, slice(i, i + batch_size))))
                for i in range(0, batch.num_rows(X), batch_size)]
        yield part, start, batch.concat(outs)


def _evaluate_partition(payload, batch_size, methods, it):
    model, totals = None, [None] * len(methods)
    for _, _, X, y in it:
        if model is None:
            model = _run_model(payload, batch_size)
        for i in range(0, batch.num_rows(X), batch_size):
            rows = slice(i, i + batch_size)
            output = model.forward(batch.take(X, rows))
            target = batch.take(y, rows)
            for k, m in enumerate(methods):
                r = m.batch(output, target)
                totals[k] = r if totals[k] is None else totals[k] + r
    yield totals


def _broadcast_model(sc, model):
    return sc.broadcast(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def predict_dataset(model, dataset, batch_size=256):
    """Outputs of ``model`` for every record of a ``DataSet``, in record order."""
    payload = _broadcast_model(dataset.sc, model)
    try:
        parts = dataset.blocks.mapPartitions(
            lambda it: _predict_partition(payload, batch_size, it)).collect()
    finally:
        payload.destroy()
    parts.sort(key=lambda p: (p[0], p[1]))
    return batch.concat([p[2] for p in parts])  # a list of arrays for a multi-output model


def evaluate_dataset(model, dataset, batch_size, methods):
    """One merged ``ValidationResult`` per method over a labeled ``DataSet``."""
    payload = _broadcast_model(dataset.sc, model)
    try:
        partials = dataset.blocks.mapPartitions(
            lambda it: _evaluate_partition(payload, batch_size, methods, it)).collect()
    finally:
        payload.destroy()
    merged = [None] * len(methods)
    for totals in partials:
        for k, r in enumerate(totals):
            if r is not None:
                merged[k] = r if merged[k] is None else merged[k] + r
    if any(r is None for r in merged):  # pragma: no cover - the DataSet is never empty
        raise ValueError("evaluate: the data set is empty")
    return merged


def _check(model, batch_size, what):
    if not isinstance(model, Module):
        raise TypeError(f"{what}: model must be a workbench Module, got {type(model).__name__}")
    check_int(what, "batch_size", batch_size)


def predict(model, data, batch_size=256, features_col="features", feature_shape=None):
    """Outputs of ``model`` for every record of an RDD (of Samples or feature arrays) or a
    DataFrame (``features_col``: one array/vector column or a list of numeric columns), as
    one numpy array in record order."""
    _check(model, batch_size, "predict")
    ds = DataSet(data, "prediction data", features_col, None, feature_shape, model.dtype,
                 labeled=False)
    try:
        return predict_dataset(model, ds, int(batch_size))
    finally:
        ds.unpersist()


def predict_class(model, data, batch_size=256, zero_based_label=True, **kwargs):
    """Predicted class ids (argmax of the outputs) for an RDD or DataFrame."""
    out = predict(model, data, batch_size, **kwargs)
    cls = np.argmax(out.reshape(len(out), -1), axis=1)
    return cls if zero_based_label else cls + 1


def evaluate(model, data, batch_size=256, val_methods=None, features_col="features",
             label_col="label", feature_shape=None):
    """Evaluate ``model`` on a labeled RDD of Samples or DataFrame; one merged
    ``ValidationResult`` per validation method (default ``[Top1Accuracy()]``)."""
    from ..optim.validation import Top1Accuracy, ValidationMethod
    _check(model, batch_size, "evaluate")
    methods = [Top1Accuracy()] if val_methods is None else val_methods
    methods = list(methods) if isinstance(methods, (list, tuple)) else [methods]
    if not methods or any(not isinstance(m, ValidationMethod) for m in methods):
        raise TypeError(f"evaluate: val_methods must be validation methods, got {methods!r}")
    ds = DataSet(data, "evaluation data", features_col, label_col, feature_shape, model.dtype)
    try:
        return evaluate_dataset(model, ds, int(batch_size), methods)
    finally:
        ds.unpersist()

