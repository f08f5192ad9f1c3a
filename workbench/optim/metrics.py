"""Ranking metrics of a binary classifier on numpy arrays: the precision-recall curve and the area
under it, computed as Spark's ``BinaryClassificationMetrics`` computes them (so a number here
and ``BinaryClassificationEvaluator(metricName="areaUnderPR", numBins=0)`` agree)."""
from __future__ import annotations

import numpy as np

__all__ = ["precision_recall_curve", "area_under_pr"]


def precision_recall_curve(labels, scores):
    """The precision-recall curve, one point per distinct score (highest score first).

    Args:
        labels: 0/1 labels, shape ``(N,)`` (any numbers; 1 is the positive class).
        scores: the classifier's score of the positive class, shape ``(N,)``; higher means
            more likely positive.

    Returns ``(recall, precision, thresholds)``: at ``thresholds[i]`` every row scoring at
    least it is called positive.  As Spark's curve, it starts with the point
    ``(recall 0, precision of the first threshold)``, so ``recall`` and ``precision`` have one
    point more than ``thresholds``.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"precision_recall_curve: labels and scores must have one value per row, "
                         f"got shapes {labels.shape} and {scores.shape}")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"precision_recall_curve: labels must be 0 or 1, got "
                         f"{np.unique(labels[~np.isin(labels, (0.0, 1.0))])[:5]}")
    positives = labels.sum()
    if positives == 0:
        raise ValueError("precision_recall_curve: no positive label; recall is undefined")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # the last row of each run of equal scores: rows with one score are called together
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
    true_pos = np.cumsum(labels)[last]
    called = last + 1.0
    precision = true_pos / called
    recall = true_pos / positives
    return np.r_[0.0, recall], np.r_[precision[0], precision], scores[last]


def area_under_pr(labels, scores):
    """The area under the precision-recall curve (trapezoids between its points, as Spark's
    ``areaUnderPR``).  Args as :func:`precision_recall_curve`; a float in [0, 1]."""
    recall, precision, _ = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))
