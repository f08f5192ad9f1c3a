"""Distributed ``predict`` / ``predict_class`` / ``evaluate`` over RDDs and DataFrames.

``model.predict(data)`` and ``model.predict_class(data)`` return the kind they are given, as
BigDL's did: an RDD in -> an RDD out (one output per record, in record order), a DataFrame in
-> the DataFrame plus a prediction column (scored by :mod:`workbench.spark.scoring`).  Both
are lazy.  ``model.evaluate(df, batch_size, [Top1Accuracy()])`` runs a Spark job: the model is
broadcast, every partition runs it batch by batch in inference mode, and

- ``evaluate`` merges the per-partition ``ValidationResult`` sums (so uneven partitions weigh
  correctly) and returns one result per validation method, as the local ``evaluate`` does.

The functions below take the DataFrame column names; the ``model.*`` methods pass them on
(``model.predict(df, 256, features_col="x", prediction_col="scores")``).
"""
from __future__ import annotations

import pickle

import numpy as np

from ..nn import batch
from ..nn.module import Module, auto_batch_size
from . import scoring
from .data import DataSet
from .engine import explicit_task_threads, use_task_threads

__all__ = ["predict", "predict_class", "evaluate", "predict_dataset", "evaluate_dataset"]


def _run_model(payload, batch_size, threads=None):
    use_task_threads(threads)  # the task's spark.task.cpus (or the user's choice)
    model = pickle.loads(payload.value)
    model.evaluate()
    return model


def _predict_partition(payload, batch_size, threads, it):
    model = None
    for part, start, X, _ in it:
        if model is None:
            model = _run_model(payload, batch_size, threads)
        outs = [batch.copy(model.forward(batch.take(X, slice(i, i + batch_size))))
                for i in range(0, batch.num_rows(X), batch_size)]
        yield part, start, batch.concat(outs)


def _evaluate_partition(payload, batch_size, methods, threads, it):
    model, totals = None, [None] * len(methods)
    for _, _, X, y in it:
        if model is None:
            model = _run_model(payload, batch_size, threads)
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
    threads = explicit_task_threads(dataset.sc)
    try:
        parts = dataset.blocks.mapPartitions(
            lambda it: _predict_partition(payload, batch_size, threads, it)).collect()
    finally:
        payload.destroy()
    parts.sort(key=lambda p: (p[0], p[1]))
    return batch.concat([p[2] for p in parts])  # a list of arrays for a multi-output model


def evaluate_dataset(model, dataset, batch_size, methods):
    """One merged ``ValidationResult`` per method over a labeled ``DataSet``."""
    payload = _broadcast_model(dataset.sc, model)
    threads = explicit_task_threads(dataset.sc)
    try:
        partials = dataset.blocks.mapPartitions(
            lambda it: _evaluate_partition(payload, batch_size, methods, threads, it)).collect()
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
    auto_batch_size(batch_size, owner=what)  # an int or None; non-positive: "choose for me"


# ---------------------------------------------------------------------- RDD in, RDD out
def _record_inputs(record, dtype):
    """The feature tensors of one RDD record (a Sample, or the features themselves)."""
    f = record.features if hasattr(record, "features") else record
    if hasattr(f, "toArray"):  # an ml / mllib vector
        f = f.toArray()
    if isinstance(f, (list, tuple)) and f and all(hasattr(t, "shape") for t in f):
        return [np.asarray(t, dtype=dtype) for t in f]
    return [np.asarray(f, dtype=dtype)]


def _predict_records(spec, part, records):
    """Score one RDD partition: one output per record, in order, batch by batch."""
    token, payload, batch_size, shapes, dtype, output, threads = spec
    model, pending, row = None, [], -1

    def flush():
        inputs = []
        for k in range(len(pending[0])):
            try:
                inputs.append(np.stack([b[k] for b in pending]))
            except ValueError:
                raise ValueError(f"predict: partition {part}, records {row + 1 - len(pending)}.."
                                 f"{row}: feature tensor {k} differs in shape between records "
                                 f"({sorted({b[k].shape for b in pending})})") from None
        x = inputs[0] if len(inputs) == 1 else inputs
        try:
            y = model.forward(x)
        except Exception as e:
            raise ValueError(f"predict: partition {part}, records {row + 1 - len(pending)}..{row}: "
                             f"the model rejected them: {type(e).__name__}: {e}") from e
        n = len(pending)
        if isinstance(y, (list, tuple)):  # several outputs: a list per record
            ys = [np.array(t, copy=True) for t in y]
            out = [[t[i] for t in ys] for i in range(n)]
        else:
            out = list(np.array(y, copy=True))
        if output == "class":
            flat = np.asarray(y).reshape(n, -1)
            out = [int(c) for c in np.argmax(flat, axis=1)]
        pending.clear()
        return out

    rows = None
    for row, record in enumerate(records):
        if record is None:
            raise ValueError(f"predict: record {row} of partition {part} is null")
        try:
            inputs = _record_inputs(record, dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"predict: record {row} of partition {part} has no numeric "
                             f"features ({type(record).__name__}: {e})") from None
        if shapes is not None:
            if len(shapes) != len(inputs):
                raise ValueError(f"predict: feature_shape gives {len(shapes)} shape(s) for "
                                 f"{len(inputs)} feature tensor(s)")
            for k, shape in enumerate(shapes):
                if inputs[k].size != int(np.prod(shape)):
                    raise ValueError(f"predict: record {row} of partition {part} has "
                                     f"{inputs[k].size} feature values, which do not fit "
                                     f"feature_shape {shape}")
                inputs[k] = inputs[k].reshape(shape)
        if model is None:
            use_task_threads(threads)
            model = scoring._worker_model(token, payload)
            rows = auto_batch_size(batch_size, inputs[0].size)
        pending.append(inputs)
        if len(pending) == rows:
            yield from flush()
    if pending:
        yield from flush()


def _predict_rdd(model, rdd, batch_size, feature_shape, output):
    shapes = scoring._shapes(feature_shape, "predict")
    token, payload = scoring._ship(model)
    spec = (token, payload, batch_size, shapes, np.dtype(model.dtype), output,
            explicit_task_threads(rdd.context))
    return rdd.mapPartitionsWithIndex(lambda part, it: _predict_records(spec, part, it),
                                      preservesPartitioning=True)


def _is_rdd(data):
    from pyspark import RDD
    return isinstance(data, RDD)


def predict(model, data, batch_size=-1, features_col="features", prediction_col="prediction",
            feature_shape=None):
    """The model's outputs, in the kind of data given (BigDL's shapes):

    - an RDD of ``Sample`` (or of feature arrays / vectors) -> an RDD with one numpy output
      per record, in record order (a list of arrays for a model with several outputs);
    - a DataFrame -> the DataFrame plus ``prediction_col`` (``array<float>`` per row), scored
      from ``features_col`` (see :func:`workbench.spark.scoring.transform`).

    Nothing runs until the result is used (no Spark action here).  ``batch_size`` None or
    non-positive (BigDL's ``-1``) means "choose for me".  ``feature_shape`` reshapes each
    record (e.g. ``(1, 28, 28)``).
    """
    _check(model, batch_size, "predict")
    if _is_rdd(data):
        return _predict_rdd(model, data, batch_size, feature_shape, "outputs")
    return scoring.transform(data, model, features_col, prediction_col, output="outputs",
                             batch_size=batch_size, feature_shape=feature_shape)


def predict_class(model, data, batch_size=-1, zero_based_label=True, features_col="features",
                  prediction_col="prediction", feature_shape=None):
    """Predicted classes (argmax of the outputs): an RDD of ints for an RDD, the DataFrame plus
    a DoubleType ``prediction_col`` for a DataFrame (Spark ML's convention).  0-based unless
    ``zero_based_label=False`` (BigDL's 1-based classes)."""
    _check(model, batch_size, "predict_class")
    if _is_rdd(data):
        out = _predict_rdd(model, data, batch_size, feature_shape, "class")
        return out if zero_based_label else out.map(lambda c: c + 1)
    scored = scoring.transform(data, model, features_col, prediction_col, output="class",
                               batch_size=batch_size, feature_shape=feature_shape)
    if not zero_based_label:
        from pyspark.sql import functions as F
        scored = scored.withColumn(prediction_col, F.col(prediction_col) + F.lit(1.0))
    return scored


def evaluate(model, data, batch_size=-1, val_methods=None, features_col="features",
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
        rows = auto_batch_size(batch_size, int(np.prod(ds.feature_shape)))
        return evaluate_dataset(model, ds, rows, methods)
    finally:
        ds.unpersist()

