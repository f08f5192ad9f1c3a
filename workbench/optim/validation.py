"""Validation methods (Top1Accuracy, Top5Accuracy, Loss, MAE, HitRatio, NDCG, AUC,
MeanAveragePrecision, MeanAveragePrecisionObjectDetection, TreeNNAccuracy) and ``evaluate``.

A validation method turns one batch of model outputs and targets into a ``ValidationResult``
that holds sums, not averages (or histograms, for AUC and MeanAveragePrecision), so results add
up across batches and across Spark tasks::

    r = Top1Accuracy().batch(output, target) + Top1Accuracy().batch(output2, target2)
    r.result()   # (value, count), as BigDL
    r            # Top1Accuracy: 0.9722 (count 360)

``evaluate(model, data, batch_size, val_methods)`` runs a model over ``(X, y)`` arrays or a list
of ``Sample`` in inference mode; ``model.evaluate(data, batch_size, methods)`` calls it.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._checks import check_int
from .._config import Configurable
from ..distributed import engine_for
from ..nn import batch as batches
from ..nn.criteria.criterion import Criterion, class_labels
from ..nn.module import Module, auto_batch_size, shape_of

__all__ = ["ValidationMethod", "ValidationResult", "Top1Accuracy", "Top5Accuracy", "Loss", "MAE",
           "HitRatio", "NDCG", "AUC", "MeanAveragePrecision",
           "MeanAveragePrecisionObjectDetection", "TreeNNAccuracy", "evaluate"]


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

    def renamed(self, name):
        """This result under another method's name."""
        self.name = str(name)
        return self

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
        criterion: the loss (default ``ClassNLLCriterion()``); BigDL's keyword ``cri`` also
            works (``Loss(cri=MSECriterion())``).
    """

    def __init__(self, criterion=None, *, cri=None):
        if cri is not None:
            if criterion is not None:
                raise TypeError("Loss: give the criterion once (criterion or BigDL's cri)")
            criterion = cri
            self._init_args["criterion"] = cri
        self._init_args.pop("cri", None)
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


class TreeNNAccuracy(_Accuracy):
    """Accuracy of a tree (recursive) network at the root of each tree (BigDL's
    ``TreeNNAccuracy``): the prediction for node 0 of each record against its label.

    Args:
        zero_based_label: True (default): labels are ``0 .. C-1``; False: BigDL's ``1 .. C``.

    Output: ``(N, T, C)`` scores per node (or ``(T, C)`` for one record).  Target: ``(N, T)``
    node labels (or ``(T,)``); only node 0's label is used.
    """

    def __init__(self, zero_based_label=True):
        super().__init__(zero_based_label)

    def batch(self, output, target):
        if not isinstance(output, np.ndarray) or output.ndim not in (2, 3) or output.size == 0:
            raise ValueError(f"TreeNNAccuracy: expected output scores (N, T, C) or (T, C), got "
                             f"{shape_of(output)}")
        t = np.asarray(target)
        if output.ndim == 2:
            output, t = output[None], t.reshape(1, -1)
        if t.ndim == 3 and t.shape[2] == 1:
            t = t[:, :, 0]
        if t.ndim != 2 or t.shape[0] != output.shape[0] or t.shape[1] < 1:
            raise ValueError(f"TreeNNAccuracy: expected node labels ({output.shape[0]}, T), got "
                             f"{shape_of(t)}")
        return Top1Accuracy(self.zero_based_label).batch(output[:, 0, :], t[:, 0]).renamed(
            self.name)


class _RankingMethod(ValidationMethod):
    """Records of ``neg_num + 1`` candidate items, exactly one of them positive (target 1)."""

    def __init__(self, k=10, neg_num=100):
        self.k = check_int(self.name, "k", k)
        self.neg_num = check_int(self.name, "neg_num", neg_num, minimum=0)

    def _ranks(self, output, target):
        """1-based rank of each record's positive item (1 + items scored strictly higher)."""
        n = self.neg_num + 1
        o = np.asarray(output)
        if o.size == 0 or o.size % n or o.dtype.kind not in "fiu":
            raise ValueError(f"{self.name}: expected scores of records of neg_num + 1 = {n} "
                             f"items, e.g. ({n},) or (N, {n}), got {shape_of(output)}")
        t = np.asarray(target)
        if t.size != o.size:
            raise ValueError(f"{self.name}: expected a 0/1 target of the output's size "
                             f"{o.size}, got {shape_of(target)}")
        o, t = o.reshape(-1, n), t.reshape(-1, n)
        positives = np.count_nonzero(t == 1, axis=1)
        bad = np.flatnonzero(positives != 1)
        if bad.size:
            raise ValueError(f"{self.name}: each record needs exactly one positive item "
                             f"(target 1), record {bad[0]} has {positives[bad[0]]}")
        score = o[np.arange(len(o)), np.argmax(t == 1, axis=1)]
        return 1 + np.count_nonzero(o > score[:, None], axis=1)


class HitRatio(_RankingMethod):
    """Hit ratio for recommendation (BigDL's ``HitRatio``): the fraction of records whose
    positive item is among the ``k`` highest-scored of its ``neg_num + 1`` candidates.

    Args:
        k: the length of the top list (a positive int).
        neg_num: negative items per record (the record has ``neg_num + 1`` items).

    Output: scores ``(neg_num + 1,)`` for one record or ``(N, neg_num + 1)`` (any shape with
    a multiple of ``neg_num + 1`` values, record after record).  Target: 0/1 of the same size,
    one 1 per record.
    """

    def __init__(self, k=10, neg_num=100):
        super().__init__(k, neg_num)

    def batch(self, output, target):
        ranks = self._ranks(output, target)
        return ValidationResult(self.name, int(np.count_nonzero(ranks <= self.k)), len(ranks))


class NDCG(_RankingMethod):
    """Normalized discounted cumulative gain at ``k`` (BigDL's ``NDCG``): per record
    ``1 / log2(rank + 1)`` if the positive item's rank is at most ``k``, else 0; averaged.

    Args:
        k: the length of the top list (a positive int).
        neg_num: negative items per record (the record has ``neg_num + 1`` items).

    Output and target: as for ``HitRatio``.
    """

    def __init__(self, k=10, neg_num=100):
        super().__init__(k, neg_num)

    def batch(self, output, target):
        ranks = self._ranks(output, target)
        gains = np.where(ranks <= self.k, np.log(2.0) / np.log(ranks + 1.0), 0.0)
        return ValidationResult(self.name, float(gains.sum()), len(ranks), fmt=".6g")


class AUCResult(ValidationResult):
    """AUC's mergeable result: per threshold and label column, the positives and negatives
    scored at or above the threshold (a histogram; ``+`` adds the counts)."""

    def __init__(self, name, tp, fp, pos, neg, count):
        super().__init__(name, 0.0, count)
        self.tp, self.fp, self.pos, self.neg = tp, fp, pos, neg

    def scores(self):
        """The AUC of each label column (nan for a column without positives or negatives)."""
        out = np.full(self.pos.shape, np.nan)
        ok = (self.pos > 0) & (self.neg > 0)
        tpr = self.tp[:, ok] / self.pos[ok]
        fpr = self.fp[:, ok] / self.neg[ok]
        # thresholds ascend, so the ROC points go from (1, 1) down to (0, 0)
        out[ok] = ((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2).sum(axis=0)
        return out

    @property
    def value(self):
        s = self.scores()
        s = s[~np.isnan(s)]
        return float(s.mean()) if s.size else float("nan")

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self
        if not isinstance(other, AUCResult) or other.tp.shape != self.tp.shape:
            raise TypeError(f"cannot add {other!r} to a {self.name} result of the same "
                            f"thresholds and labels")
        return AUCResult(self.name, self.tp + other.tp, self.fp + other.fp,
                         self.pos + other.pos, self.neg + other.neg, self.count + other.count)

    __radd__ = __add__


class AUC(ValidationMethod):
    """Area under the ROC curve for binary (0/1) targets, one or several labels (BigDL's
    ``AUC``), from counts at ``threshold_num`` thresholds evenly spread over [0, 1], so
    results merge across batches and tasks; several labels are averaged.

    Args:
        threshold_num: the number of thresholds (>= 2); more is a finer approximation.

    Output: probabilities in [0, 1], ``(N,)``, ``(N, 1)`` or ``(N, L)`` for ``L`` labels.
    Target: 0/1 of the same shape.
    """

    def __init__(self, threshold_num=200):
        self.threshold_num = check_int("AUC", "threshold_num", threshold_num, minimum=2)
        eps = 1e-7
        n = self.threshold_num
        thresholds = np.arange(n, dtype=np.float64) / (n - 1)
        thresholds[0], thresholds[-1] = -eps, 1 + eps
        self._thresholds = thresholds

    def batch(self, output, target):
        o = np.asarray(output)
        t = np.asarray(target)
        if o.ndim not in (1, 2) or o.size == 0 or o.dtype.kind not in "fiu":
            raise ValueError(f"AUC: expected probabilities (N,) or (N, L), got {shape_of(output)}")
        o = o.reshape(len(o), -1)
        if t.size != o.size:
            raise ValueError(f"AUC: expected a 0/1 target of the output's shape "
                             f"{shape_of(output)}, got {shape_of(target)}")
        t = t.reshape(o.shape)
        if not np.isin(t, (0, 1)).all():
            bad = t[~np.isin(t, (0, 1))][0].item()
            raise ValueError(f"AUC: targets must be 0 or 1, got {bad!r}")
        n, cols = self.threshold_num, o.shape[1]
        # above[i] = how many thresholds are <= score i, i.e. the score counts at thresholds
        # 0 .. above[i] - 1
        above = np.searchsorted(self._thresholds, o.astype(np.float64), side="right")
        tp, fp = np.zeros((n, cols)), np.zeros((n, cols))
        for c in range(cols):
            pos = t[:, c] == 1
            hist_p = np.bincount(above[pos, c], minlength=n + 1)
            hist_n = np.bincount(above[~pos, c], minlength=n + 1)
            tp[:, c] = np.cumsum(hist_p[::-1])[::-1][1:]
            fp[:, c] = np.cumsum(hist_n[::-1])[::-1][1:]
        positives = (t == 1).sum(axis=0).astype(np.float64)
        return AUCResult(self.name, tp, fp, positives, len(t) - positives, len(t))


class MAPResult(ValidationResult):
    """MeanAveragePrecision's mergeable result: per class, the ``k`` most confident
    ``(score, is_that_class)`` predictions and the number of records of the class."""

    def __init__(self, name, k, top, positives, count):
        super().__init__(name, 0.0, count)
        self.k, self.top, self.positives = k, top, positives

    def average_precisions(self):
        """The AP of each class (VOC 2010 style; 0 for a class without records)."""
        aps = np.zeros(len(self.top))
        for c, (scores, hits) in enumerate(self.top):
            p = int(self.positives[c])
            if p == 0:
                continue
            order = np.argsort(-scores, kind="stable")
            hit = hits[order]
            if self.k > 0:
                hit = hit[:self.k]
            rank = np.flatnonzero(hit) + 1                        # 1-based ranks of the hits
            precision = np.arange(1, len(rank) + 1) / rank        # at each hit: recall r/p
            best = np.maximum.accumulate(precision[::-1])[::-1]   # max precision at recall >= r/p
            aps[c] = best.sum() / p
        return aps

    @property
    def value(self):
        return float(self.average_precisions().mean())

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self
        if not isinstance(other, MAPResult) or len(other.top) != len(self.top):
            raise TypeError(f"cannot add {other!r} to a {self.name} result of the same classes")
        top = []
        for (s1, h1), (s2, h2) in zip(self.top, other.top):
            s, h = np.concatenate([s1, s2]), np.concatenate([h1, h2])
            if self.k > 0 and len(s) > self.k:
                keep = np.sort(np.argsort(-s, kind="stable")[:self.k])
                s, h = s[keep], h[keep]
            top.append((s, h))
        return MAPResult(self.name, self.k, top, self.positives + other.positives,
                         self.count + other.count)

    __radd__ = __add__


class MeanAveragePrecision(ValidationMethod):
    """Mean average precision of a classifier over its classes (BigDL's
    ``MeanAveragePrecision``, the VOC 2010 algorithm): for each class, rank all records by that
    class's score, keep the ``k`` most confident, and average over the class's records the best
    precision reached at each recall level; then average over the classes.

    Args:
        k: the most confident predictions per class taken into account (-1: all).
        classes: the number of classes.

    Output: scores ``(N, classes)`` (or ``(classes,)``).  Target: zero-based class ids ``(N,)``.
    """

    def __init__(self, k, classes):
        if k != -1:
            check_int("MeanAveragePrecision", "k", k)
        self.k = int(k)
        self.classes = check_int("MeanAveragePrecision", "classes", classes)

    def batch(self, output, target):
        scores = self._scores(output)
        if scores.shape[1] != self.classes:
            raise ValueError(f"MeanAveragePrecision: expected scores (N, {self.classes}), got "
                             f"{shape_of(output)}")
        ids = class_labels(self, scores, target, self.classes, True)
        top = []
        for c in range(self.classes):
            s, h = scores[:, c].astype(np.float64), ids == c
            if self.k > 0 and len(s) > self.k:
                keep = np.sort(np.argsort(-s, kind="stable")[:self.k])
                s, h = s[keep], h[keep]
            top.append((s, h))
        positives = np.bincount(ids, minlength=self.classes)
        return MAPResult(self.name, self.k, top, positives, len(ids))


class DetectionMAPResult(ValidationResult):
    """MeanAveragePrecisionObjectDetection's mergeable result: per class, the ``(score,
    true positive)`` of every detection that counts (matched to a difficult box: left out), and
    the number of ground-truth boxes that are not difficult.  ``+`` concatenates, so the AP of
    the merged result is the AP of all the images together.

    ``value`` is the mean of the per-class APs over the classes that have ground truth.
    """

    def __init__(self, name, scores, hits, positives, count, use_voc2007, skip_class):
        super().__init__(name, 0.0, count)
        self.scores, self.hits, self.positives = scores, hits, positives
        self.use_voc2007, self.skip_class = use_voc2007, skip_class

    def average_precisions(self):
        """The AP of each class (nan for the skipped class and classes without ground truth)."""
        aps = np.full(len(self.scores), np.nan)
        for c, (scores, hits) in enumerate(zip(self.scores, self.hits)):
            if c == self.skip_class or self.positives[c] == 0:
                continue
            aps[c] = average_precision(scores, hits, int(self.positives[c]), self.use_voc2007)
        return aps

    @property
    def value(self):
        aps = self.average_precisions()
        aps = aps[~np.isnan(aps)]
        return float(aps.mean()) if aps.size else float("nan")

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self
        if not isinstance(other, DetectionMAPResult) or len(other.scores) != len(self.scores) \
                or (other.use_voc2007, other.skip_class) != (self.use_voc2007, self.skip_class):
            raise TypeError(f"cannot add {other!r} to a {self.name} result of the same classes")
        return DetectionMAPResult(
            self.name, [np.concatenate(p) for p in zip(self.scores, other.scores)],
            [np.concatenate(p) for p in zip(self.hits, other.hits)],
            self.positives + other.positives, self.count + other.count, self.use_voc2007,
            self.skip_class)

    __radd__ = __add__

    def __repr__(self):
        aps = ", ".join(f"{c}: {a:.4f}" for c, a in enumerate(self.average_precisions())
                        if not np.isnan(a))
        return f"{self.name}: {self.value:.4f} (count {self.count}; AP per class {{{aps}}})"


def average_precision(scores, hits, positives, use_voc2007=False):
    """Pascal VOC average precision of one class from its detections.

    Args:
        scores: ``(D,)`` detection scores; ranked high to low (ties keep their order).
        hits: ``(D,)`` True for a true positive.
        positives: the number of ground-truth boxes (> 0).
        use_voc2007: the 11-point interpolation of VOC 2007 (the mean of the best precision at
            recall >= 0, 0.1, ..., 1); else the area under the interpolated precision-recall
            curve (VOC 2010 and later).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hit = np.asarray(hits, dtype=bool)[order]
    tp = np.cumsum(hit)
    recall = tp / positives
    precision = tp / np.arange(1, len(hit) + 1)
    if use_voc2007:
        # k / 10 is exact where np.arange(0, 1.1, 0.1) is not (0.30000000000000004)
        return float(np.mean([precision[recall >= k / 10].max(initial=0.0)
                              for k in range(11)]))
    # the best precision at any recall >= r, summed over the steps where recall grows
    best = np.maximum.accumulate(precision[::-1])[::-1] if len(hit) else precision
    return float(best[hit].sum() / positives)


def box_iou(box, boxes):
    """Jaccard overlap of one ``(x1, y1, x2, y2)`` box with each row of ``boxes`` (continuous
    coordinates: a box's area is ``(x2 - x1) * (y2 - y1)``; empty boxes overlap nothing)."""
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = ((box[2] - box[0]) * (box[3] - box[1])
             + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class MeanAveragePrecisionObjectDetection(ValidationMethod):
    """Pascal VOC mean average precision of an object detector (BigDL's
    ``MeanAveragePrecisionObjectDetection``).

    Per image and class, the detections are taken best score first; each is matched to the
    ground-truth box of its class it overlaps most.  At IoU >= ``iou`` it is a true positive if
    that box is not matched yet, a false positive if it is (a duplicate), and left out if the
    box is *difficult*; below ``iou`` it is a false positive.  Difficult boxes do not count as
    positives.  A class's AP ranks its detections of all images by score (see
    ``average_precision``); the mAP is the mean AP over the classes that have ground truth
    (BigDL divides by all classes but the skipped one, so a class without ground truth counts
    as 0 there).  Results add up across batches and Spark tasks.

    Args:
        classes: the number of classes, background included (the labels are ``0 ..
            classes - 1``, as ``DetectionOutputSSD`` gives them).
        iou: the overlap a detection needs to match a box (default 0.5).
        use_voc2007: VOC 2007's 11-point AP (default False: the area, VOC 2010 and later).
        skip_class: a class left out of the mean, e.g. the background 0 (-1: none).

    Output: ``DetectionOutputSSD``'s ``(N, 1 + D * 6)``: per image the number of detections,
    then ``(label, score, x1, y1, x2, y2)`` per detection.
    Target: ``(N, G, 6)`` ground-truth boxes per image, rows ``(label, difficult, x1, y1, x2,
    y2)`` in the output's coordinates; rows with a negative label are padding (so images with
    different numbers of boxes stack into one batch).  ``difficult`` is 0 or 1.
    """

    def __init__(self, classes, iou=0.5, use_voc2007=False, skip_class=-1):
        cls = "MeanAveragePrecisionObjectDetection"
        self.classes = check_int(cls, "classes", classes)
        if isinstance(iou, bool) or not isinstance(iou, numbers.Real) or not 0 < iou <= 1:
            raise ValueError(f"{cls}: iou must be a number in (0, 1], got {iou!r}")
        self.iou = float(iou)
        self.use_voc2007 = bool(use_voc2007)
        if isinstance(skip_class, bool) or not isinstance(skip_class, numbers.Integral) or \
                not -1 <= skip_class < self.classes:
            raise ValueError(f"{cls}: skip_class must be a class id in [0, {self.classes}) or "
                             f"-1 (none), got {skip_class!r}")
        self.skip_class = int(skip_class)

    def _parse(self, output, target):
        o = np.asarray(output)
        if o.ndim == 1:
            o = o[None]
        if o.ndim != 2 or o.shape[1] < 1 or (o.shape[1] - 1) % 6 or o.dtype.kind not in "fiu":
            raise ValueError(f"{self.name}: expected detections (N, 1 + D * 6) as "
                             f"DetectionOutputSSD gives, got {shape_of(output)}")
        t = np.asarray(target, dtype=np.float64)
        if t.ndim == 2 and len(o) == 1:
            t = t[None]
        if t.ndim != 3 or t.shape[0] != len(o) or t.shape[2] != 6:
            raise ValueError(f"{self.name}: expected ground truth ({len(o)}, G, 6) of rows "
                             f"(label, difficult, x1, y1, x2, y2), got {shape_of(target)}")
        counts = o[:, 0]
        if np.any(counts < 0) or np.any(counts != np.round(counts)) or \
                np.any(counts * 6 > o.shape[1] - 1):
            bad = int(np.argmax((counts < 0) | (counts * 6 > o.shape[1] - 1)
                                | (counts != np.round(counts))))
            raise ValueError(f"{self.name}: image {bad} claims {counts[bad]:g} detections, "
                             f"its row holds {(o.shape[1] - 1) // 6}")
        return o.astype(np.float64), t

    def _labels(self, labels, what):
        if np.any(labels != np.round(labels)) or np.any(labels >= self.classes):
            bad = labels[(labels != np.round(labels)) | (labels >= self.classes)][0].item()
            raise ValueError(f"{self.name}: {what} label {bad!r} is not a class id in "
                             f"[0, {self.classes})")
        return labels.astype(np.int64)

    def batch(self, output, target):
        o, t = self._parse(output, target)
        scores = [[] for _ in range(self.classes)]
        hits = [[] for _ in range(self.classes)]
        positives = np.zeros(self.classes, dtype=np.int64)
        for i in range(len(o)):
            dets = o[i, 1:1 + 6 * int(o[i, 0])].reshape(-1, 6)
            gt = t[i][t[i, :, 0] >= 0]
            gt_labels = self._labels(gt[:, 0], "ground-truth")
            if not np.isin(gt[:, 1], (0, 1)).all():
                raise ValueError(f"{self.name}: difficult flags must be 0 or 1, got "
                                 f"{gt[~np.isin(gt[:, 1], (0, 1)), 1][0].item()!r}")
            difficult = gt[:, 1] == 1
            det_labels = self._labels(dets[:, 0], "detection")
            if np.any(det_labels < 0):
                raise ValueError(f"{self.name}: detection label {det_labels.min()} is not a "
                                 f"class id in [0, {self.classes})")
            positives += np.bincount(gt_labels[~difficult], minlength=self.classes)
            for c in np.unique(det_labels):
                mine = dets[det_labels == c]
                mine = mine[np.argsort(-mine[:, 1], kind="stable")]
                boxes, hard = gt[gt_labels == c, 2:], difficult[gt_labels == c]
                taken = np.zeros(len(boxes), dtype=bool)
                for d in mine:
                    if len(boxes):
                        overlaps = box_iou(d[2:], boxes)
                        j = int(np.argmax(overlaps))
                        if overlaps[j] >= self.iou:
                            if hard[j]:
                                continue          # neither right nor wrong
                            hit = not taken[j]
                            taken[j] = True
                            scores[c].append(d[1])
                            hits[c].append(hit)
                            continue
                    scores[c].append(d[1])
                    hits[c].append(False)
        return DetectionMAPResult(self.name, [np.asarray(s, dtype=np.float64) for s in scores],
                                  [np.asarray(h, dtype=bool) for h in hits], positives, len(o),
                                  self.use_voc2007, self.skip_class)


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
def _as_xy(data):
    if isinstance(data, (list, tuple)) and data and hasattr(data[0], "features"):
        return (batches.stack_records([s.features for s in data],
                                      "evaluate: the Samples' features"),
                batches.stack_records([s.labels for s in data], "evaluate: the Samples' labels"))
    if isinstance(data, (list, tuple)) and len(data) == 2:
        return (batches.as_batch(data[0], "evaluate: the features"),
                batches.as_batch(data[1], "evaluate: the labels"))
    raise TypeError("evaluate: data must be (X, y) arrays, a list of Samples, an RDD of "
                    f"Samples or a DataFrame, got {type(data).__name__}")


def evaluate(model, data, batch_size=256, val_methods=None):
    """Evaluate ``model`` on ``data`` with the validation methods; returns one merged
    ``ValidationResult`` per method.

    Args:
        model: a ``Module``; it runs in inference mode and gets its previous mode back.
        data: ``(X, y)`` arrays (``X`` may be a list of arrays for multi-input models) or a list
            of ``Sample``; ``workbench.spark`` adds RDDs and DataFrames.
        batch_size: records per forward pass; None or non-positive (BigDL's ``-1``): chosen
            for you (``workbench.nn.module.auto_batch_size``).
        val_methods: a list of ``ValidationMethod`` (default ``[Top1Accuracy()]``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"evaluate: model must be a workbench Module, got {type(model).__name__}")
    auto_batch_size(batch_size, owner="evaluate")  # an int or None
    methods = [Top1Accuracy()] if val_methods is None else val_methods
    methods = list(methods) if isinstance(methods, (list, tuple)) else [methods]
    bad = [m for m in methods if not isinstance(m, ValidationMethod)]
    if not methods or bad:
        raise TypeError("evaluate: val_methods must be validation methods (e.g. Top1Accuracy()), "
                        f"got {bad[0] if bad else methods!r}")
    engine = engine_for(data)
    if engine is not None:
        return engine.evaluate(model, data, batch_size, methods)

    X, y = _as_xy(data)
    n = batches.num_rows(X, "evaluate: the features")
    first = X[0] if isinstance(X, list) else X
    batch_size = auto_batch_size(batch_size, int(np.prod(np.shape(first)[1:])), "evaluate")
    if n == 0:
        raise ValueError("evaluate: the data set is empty")
    if batches.num_rows(y, "evaluate: the labels") != n:
        raise ValueError(f"evaluate: {n} feature rows but {batches.num_rows(y)} labels")
    dtype = model.dtype
    X = batches.apply(X, lambda a: a.astype(dtype) if a.dtype.kind == "f" and a.dtype != dtype
                    else a)
    was_training = model.is_training()
    model.evaluate()
    try:
        totals = [None] * len(methods)
        for i in range(0, n, batch_size):
            output = model.forward(batches.take(X, slice(i, i + batch_size)))
            target = batches.take(y, slice(i, i + batch_size))
            for k, m in enumerate(methods):
                r = m.batch(output, target)
                totals[k] = r if totals[k] is None else totals[k] + r
    finally:
        if was_training:
            model.training()
    return totals
