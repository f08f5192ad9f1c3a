"""Validation methods (Top1Accuracy, Top5Accuracy, Loss, MAE) and ``evaluate``.

A validation method turns one batch of model outputs and targets into a ``ValidationResult``
that holds sums, not averages, so results add up across batches and across Spark tasks::

    r = Top1Accuracy().batch(output, target) + Top1Accuracy().batch(output2, target2)
    r.result()   # (value, count), as BigDL
    r            # Top1Accuracy: 0.9722 (count 360)

``evaluate(model, data, batch_size, val_methods)`` runs a model over ``(X, y)`` arrays or a list
of ``Sample`` in inference mode; ``model.evaluate(data, batch_size, methods)`` calls it.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._config import Configurable
from ..nn.criterion import Criterion, class_labels
from ..nn.module import Module, _data_handlers, register_evaluator, shape_of

__all__ = ["ValidationMethod", "ValidationResult", "Top1Accuracy", "Top5Accuracy", "Loss", "MAE",
           "evaluate"]


class ValidationResult:
    """A mergeable partial result: ``total`` summed over ``count`` records.

    ``value = total / weight`` (``weight`` defaults to ``count``; ``MAE`` divides by the number of
    elements).  ``a + b`` merges two results of the same method.

    Attributes:
        name: the validation method (``"Top1Accuracy"``).
        total: the sum (correct predictions, summed loss, summed absolute error).
        count: records seen.
        weight: what ``total`` is divided by.
    """

    def __init__(self, name, total, count, weight=None, fmt=".4f"):
        self.name = str(name)
        self.total = total
        self.count = int(count)
        self.weight = self.count if weight is None else weight
        self.fmt = fmt

    @property
    def value(self) -> float:
        return float(self.total) / self.weight if self.weight else float("nan")

    def result(self):
        """``(value, count)`` as BigDL's ``ValidationResult.result()``."""
        return self.value, self.count

    # BigDL Python's EvaluatedResult names
    @property
    def method(self):
        return self.name

    @property
    def total_num(self):
        return self.count

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:  # so that sum(results) works
            return self
        if not isinstance(other, ValidationResult) or other.name != self.name:
            what = other.name if isinstance(other, ValidationResult) else type(other).__name__
            raise TypeError(f"cannot add a {what} result to a {self.name} result")
        return ValidationResult(self.name, self.total + other.total, self.count + other.count,
                                self.weight + other.weight, self.fmt)

    __radd__ = __add__

    def __repr__(self):
        return f"{self.name}: {self.value:{self.fmt}} (count {self.count})"


class ValidationMethod(Configurable):
    """Base class: ``batch(output, target) -> ValidationResult`` (also ``method(output, target)``).

    Subclasses implement ``batch``; ``name`` is the class name (the key of the scores in
    validation events and summaries).
    """

    @property
    def name(self):
        return type(self).__name__

    def label(self):
        return self.name

    def batch(self, output, target) -> ValidationResult:
        raise NotImplementedError(f"{self.name} does not implement batch")

    def __call__(self, output, target):
        return self.batch(output, target)

    def __repr__(self):
        return self.name

    def _scores(self, output):
        if not isinstance(output, np.ndarray) or output.ndim not in (1, 2) or output.size == 0:
            raise ValueError(f"{self.name}: expected output scores (N, C) or (C,), got "
                             f"{shape_of(output)}")
        return output.reshape(1, -1) if output.ndim == 1 else output


class _Accuracy(ValidationMethod):
    def __init__(self, zero_based_label=True):
        self.zero_based_label = bool(zero_based_label)

    def _labels(self, scores, target):
        """Zero-based class ids for the targets (validated: names this method and the value)."""
        n_classes = max(scores.shape[1], 2)  # one column: a binary 0/1 prediction
        zero_based = self.zero_based_label or scores.shape[1] == 1
        return class_labels(self, scores, target, n_classes, zero_based)


class Top1Accuracy(_Accuracy):
    """Fraction of records whose highest-scoring class is the target.

    An output with a single column is a probability: the prediction is 1 when it is >= 0.5,
    else 0, and the targets are 0/1 labels.

    Args:
        zero_based_label: True (default): targets are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Output: ``(N, C)`` scores (or ``(C,)`` for one record).  Target: ``(N,)`` or ``(N, 1)``.
    """

    def __init__(self, zero_based_label=True):
        super().__init__(zero_based_label)

    def batch(self, output, target):
        scores = self._scores(output)
        ids = self._labels(scores, target)
        if scores.shape[1] == 1:
            predicted = (scores[:, 0] >= 0.5).astype(np.int64)
        else:
            predicted = np.argmax(scores, axis=1)
        return ValidationResult(self.name, int(np.count_nonzero(predicted == ids)), len(ids))


class Top5Accuracy(_Accuracy):
    """Fraction of records whose target is among the five highest-scoring classes.

    Args:
        zero_based_label: True (default): targets are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Output: ``(N, C)`` scores (or ``(C,)``).  Target: ``(N,)`` or ``(N, 1)``.
    """

    K = 5

    def __init__(self, zero_based_label=True):
        super().__init__(zero_based_label)

    def batch(self, output, target):
        scores = self._scores(output)
        ids = self._labels(scores, target)
        k = min(self.K, scores.shape[1])
        if k == scores.shape[1]:
            hit = np.ones(len(ids), dtype=bool)
        else:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            hit = (top == ids[:, None]).any(axis=1)
        return ValidationResult(self.name, int(np.count_nonzero(hit)), len(ids))


class Loss(ValidationMethod):
    """The criterion's loss, averaged over records (a batch counts with its size, so uneven
    batches and partitions weigh correctly; BigDL averages per batch instead).

    Args:
        criterion: the loss (default ``ClassNLLCriterion()``).
    """

    def __init__(self, criterion=None):
        if criterion is None:
            from ..nn import ClassNLLCriterion
            criterion = ClassNLLCriterion()
        if not isinstance(criterion, Criterion):
            raise TypeError(f"Loss: criterion must be a Criterion (e.g. ClassNLLCriterion()), "
                            f"got {type(criterion).__name__}")
        self.criterion = criterion

    def batch(self, output, target):
        n = _records(output, target)
        loss = float(self.criterion.forward(output, target))
        # Size-averaged criteria give a batch mean: weigh it by the batch size.
        total = loss * n if getattr(self.criterion, "size_average", True) else loss
        return ValidationResult(self.name, total, n, fmt=".6g")


class MAE(ValidationMethod):
    """Mean absolute error ``mean(|output - target|)`` over all elements.

    Output: any shape.  Target: the output's shape (size-1 dimensions may differ).
    """

    def __init__(self):
        pass

    def batch(self, output, target):
        if not isinstance(output, np.ndarray):
            raise ValueError(f"MAE: expected an output array, got {shape_of(output)}")
        t = np.asarray(target)
        if t.shape != output.shape:
            if t.size != output.size or t.dtype.kind not in "fiub":
                raise ValueError(f"MAE: expected a target of the output's shape "
                                 f"{shape_of(output)}, got {shape_of(t)}")
            t = t.reshape(output.shape)
        total = float(np.abs(output.astype(np.float64) - t).sum())
        return ValidationResult(self.name, total, _records(output, t), output.size, fmt=".6g")


def _records(output, target):
    """Records in a batch: the length of the target (a scalar target is one record)."""
    t = target[0] if isinstance(target, (list, tuple)) and target else target
    t = np.asarray(t)
    if t.ndim >= 1:
        return t.shape[0]
    if isinstance(output, (list, tuple)):
        output = output[0]
    return output.shape[0] if getattr(output, "ndim", 0) >= 2 else 1


# ---------------------------------------------------------------------- evaluate
def _stack(parts):
    """One array from a list of per-record arrays, or a list of arrays for multi-tensor
    records (tables)."""
    first = parts[0]
    if isinstance(first, (list, tuple)):
        if len(first) == 1:
            return np.stack([np.asarray(p[0]) for p in parts])
        return [np.stack([np.asarray(p[i]) for p in parts]) for i in range(len(first))]
    return np.stack([np.asarray(p) for p in parts])


def _as_xy(data):
    if isinstance(data, (list, tuple)) and data and hasattr(data[0], "features"):
        return _stack([s.features for s in data]), _stack([s.labels for s in data])
    if isinstance(data, (list, tuple)) and len(data) == 2:
        X, y = data
        X = [np.asarray(x) for x in X] if isinstance(X, (list, tuple)) else np.asarray(X)
        return X, np.asarray(y) if not isinstance(y, (list, tuple)) else [np.asarray(t) for t in y]
    raise TypeError("evaluate: data must be (X, y) arrays or a list of Samples (import "
                    f"workbench.spark for RDDs and DataFrames), got {type(data).__name__}")


def _length(x):
    return len(x[0]) if isinstance(x, list) else len(x)


def _rows(x, i, j):
    return [t[i:j] for t in x] if isinstance(x, list) else x[i:j]


def evaluate(model, data, batch_size=256, val_methods=None):
    """Evaluate ``model`` on ``data`` with the validation methods; returns one merged
    ``ValidationResult`` per method.

    Args:
        model: a ``Module``; it runs in inference mode and gets its previous mode back.
        data: ``(X, y)`` arrays (``X`` may be a list of arrays for multi-input models) or a list
            of ``Sample``; ``workbench.spark`` adds RDDs and DataFrames.
        batch_size: records per forward pass.
        val_methods: a list of ``ValidationMethod`` (default ``[Top1Accuracy()]``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"evaluate: model must be a workbench Module, got {type(model).__name__}")
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) \
            or batch_size <= 0:
        raise ValueError(f"evaluate: batch_size must be a positive int, got {batch_size!r}")
    methods = [Top1Accuracy()] if val_methods is None else val_methods
    methods = list(methods) if isinstance(methods, (list, tuple)) else [methods]
    bad = [m for m in methods if not isinstance(m, ValidationMethod)]
    if not methods or bad:
        raise TypeError("evaluate: val_methods must be validation methods (e.g. Top1Accuracy()), "
                        f"got {bad[0] if bad else methods!r}")
    handler = _data_handlers.get("evaluate")
    if handler is not None and handler.accepts(data):
        return handler(model, data, int(batch_size), methods)

    X, y = _as_xy(data)
    n = _length(X)
    if n == 0:
        raise ValueError("evaluate: the data set is empty")
    if _length(y) != n:
        raise ValueError(f"evaluate: {n} feature rows but {_length(y)} labels")
    dtype = model.dtype
    if isinstance(X, np.ndarray) and X.dtype.kind == "f" and X.dtype != dtype:
        X = X.astype(dtype)
    was_training = model.is_training()
    model.evaluate()
    try:
        totals = [None] * len(methods)
        for i in range(0, n, batch_size):
            output = model.forward(_rows(X, i, i + batch_size))
            target = _rows(y, i, i + batch_size)
            for k, m in enumerate(methods):
                r = m.batch(output, target)
                totals[k] = r if totals[k] is None else totals[k] + r
    finally:
        if was_training:
            model.training()
    return totals


register_evaluator(evaluate)
