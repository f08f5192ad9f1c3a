"""The SSD detector's loss (Analytics Zoo's ``MultiBoxLoss``, Caffe-SSD's ``MultiBoxLoss``):
prior boxes matched to the ground truth, a smooth-L1 loss on the matched priors' encoded
offsets and a softmax cross-entropy on their classes and on the hardest background priors."""
from __future__ import annotations

import numbers

import numpy as np

from ..activation.activations import log_softmax
from ..module import shape_of
from .criterion import Criterion, LabelError
from ..._checks import check_int
from ..._config import Configurable

__all__ = ["MultiBoxLossParam", "MultiBoxLoss", "match_priors", "match_prior_batch",
           "encode_boxes"]


def pairwise_iou(a, b):
    """``(len(a), len(b))`` Jaccard overlaps of ``(x1, y1, x2, y2)`` boxes (continuous
    coordinates; an empty union overlaps nothing)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_priors(priors, boxes, overlap_threshold=0.5):
    """Caffe-SSD's matching of prior boxes to ground-truth boxes.

    First each box takes the prior it overlaps most (bipartite: the largest overlap of the
    boxes and priors still free, again and again), so every box has a prior even when no
    prior reaches the threshold; then every other prior takes the box it overlaps most if
    that overlap is at least ``overlap_threshold``.

    Args:
        priors: ``(P, 4)`` prior boxes ``(x1, y1, x2, y2)``.
        boxes: ``(G, 4)`` ground-truth boxes in the same coordinates.
        overlap_threshold: the overlap a prior needs to match a box outside the bipartite step.

    Returns:
        ``(match, overlap)``: ``(P,)`` the index of each prior's box (-1: unmatched) and
        ``(P,)`` each prior's largest overlap with any box.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    match, overlap = match_prior_batch(priors, boxes[None], np.ones((1, len(boxes)), bool),
                                       overlap_threshold)
    return match[0], overlap[0]


def match_prior_batch(priors, boxes, valid, overlap_threshold=0.5):
    """``match_priors`` for a batch at once: ``boxes (N, G, 4)`` of which ``valid (N, G)``
    are real; returns ``match (N, P)`` (box index or -1) and ``overlap (N, P)``."""
    n, g = valid.shape
    p = len(priors)
    iou = pairwise_iou(np.asarray(boxes, np.float64).reshape(-1, 4),
                       np.asarray(priors, np.float64)).reshape(n, g, p)
    iou[~valid] = -1
    overlap = np.maximum(iou.max(axis=1, initial=-1), 0) if g else np.zeros((n, p))
    match = np.full((n, p), -1, dtype=np.int64)
    free = iou.copy()
    images = np.arange(n)
    for _ in range(g):
        flat = free.reshape(n, -1).argmax(axis=1)
        gi, pj = np.divmod(flat, p)
        ok = free[images, gi, pj] > 0
        if not ok.any():
            break
        im, gi, pj = images[ok], gi[ok], pj[ok]
        match[im, pj] = gi
        free[im, gi, :] = -1
        free[im, :, pj] = -1
    if g:
        rest = (match < 0) & (overlap >= overlap_threshold) & (overlap > 0)
        match[rest] = iou.argmax(axis=1)[rest]
    return match, overlap


def encode_boxes(boxes, priors, variances):
    """Centre-size offsets of ``boxes`` from ``priors`` divided by the ``variances`` (the
    inverse of ``DetectionOutputSSD``'s decoding): ``((cx - pcx) / pw / v0, (cy - pcy) / ph / v1,
    log(w / pw) / v2, log(h / ph) / v3)``.  All three are ``(K, 4)``."""
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = (priors[:, 0] + priors[:, 2]) / 2, (priors[:, 1] + priors[:, 3]) / 2
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([(cx - pcx) / pw / variances[:, 0], (cy - pcy) / ph / variances[:, 1],
                     np.log(w / pw) / variances[:, 2], np.log(h / ph) / variances[:, 3]],
                    axis=1)


class MultiBoxLossParam(Configurable):
    """The settings of ``MultiBoxLoss`` (Analytics Zoo's ``MultiBoxLossParam``).

    Args:
        loc_weight: weight of the localization loss against the confidence loss (>= 0).
        n_classes: classes, the background included (>= 2).
        share_location: one box per prior for all classes (only True is supported).
        overlap_threshold: overlap a prior needs to match a ground-truth box (0, 1].
        bg_label_ind: the background class.
        use_difficult_gt: whether difficult boxes are matched (else they are ignored).
        neg_pos_ratio: background priors trained per matched prior (>= 0), the hardest ones.
        neg_overlap: a background prior overlapping a box this much or more is never mined.
    """

    def __init__(self, loc_weight=1.0, n_classes=21, share_location=True, overlap_threshold=0.5,
                 bg_label_ind=0, use_difficult_gt=True, neg_pos_ratio=3.0, neg_overlap=0.5):
        cls = "MultiBoxLossParam"

        def real(arg, value, lo, hi=np.inf, lo_open=False):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not (lo < value if lo_open else lo <= value) or not value <= hi:
                raise ValueError(f"{cls}: {arg} must be a number in "
                                 f"{'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
            return float(value)

        self.loc_weight = real("loc_weight", loc_weight, 0)
        self.n_classes = check_int(cls, "n_classes", n_classes, minimum=2)
        if share_location is not True:
            raise ValueError(f"{cls}: only share_location=True (one box per prior) is "
                             f"supported, got {share_location!r}")
        self.share_location = True
        self.overlap_threshold = real("overlap_threshold", overlap_threshold, 0, 1, True)
        self.bg_label_ind = check_int(cls, "bg_label_ind", bg_label_ind, minimum=0)
        if self.bg_label_ind >= self.n_classes:
            raise ValueError(f"{cls}: bg_label_ind must be a class id in [0, "
                             f"{self.n_classes}), got {bg_label_ind!r}")
        self.use_difficult_gt = bool(use_difficult_gt)
        self.neg_pos_ratio = real("neg_pos_ratio", neg_pos_ratio, 0)
        self.neg_overlap = real("neg_overlap", neg_overlap, 0, 1)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config()["args"].items())
        return f"MultiBoxLossParam({args})"


class MultiBoxLoss(Criterion):
    """The SSD loss (Analytics Zoo's ``MultiBoxLoss``, Caffe-SSD's ``MultiBoxLoss``).

    For each image the prior boxes are matched to its ground-truth boxes (``match_priors``).
    A matched prior learns its box's offsets, encoded with the priors' variances as
    ``DetectionOutputSSD`` decodes them (smooth L1), and its box's class (softmax
    cross-entropy).  Of the unmatched priors that overlap no box by ``neg_overlap`` or more,
    the ``neg_pos_ratio`` times as many as there are matches with the largest background loss
    learn the background class (hard-negative mining).  The loss is
    ``(loc_weight * L_loc + L_conf) / matches``, summed over the batch (0 without matches).
    The matching depends only on the priors and the boxes; the mining picks by the current
    confidences, and no gradient flows through the picking.

    Args:
        param: a ``MultiBoxLossParam`` (Analytics Zoo's form, ``MultiBoxLoss(
            MultiBoxLossParam(n_classes=3))``), or give its arguments as keywords instead
            (``MultiBoxLoss(n_classes=3)``).

    Input shape: the table SSD's heads give, ``[loc (N, P * 4), conf (N, P * n_classes),
    priors (1, 2, P * 4)]`` (``DetectionOutputSSD`` passes it through in training mode).
    Target: ``(N, G, 6)`` ground-truth boxes per image, rows ``(label, difficult, x1, y1, x2,
    y2)`` in the priors' (normalized) coordinates, rows with a negative label are padding:
    the target of ``MeanAveragePrecisionObjectDetection``, so one data set serves training and
    evaluation.
    """

    def __init__(self, param=None, **kwargs):
        super().__init__()
        if param is None:
            param = MultiBoxLossParam(**kwargs)
        elif kwargs:
            raise TypeError("MultiBoxLoss: give a MultiBoxLossParam or its arguments as "
                            f"keywords, not both (got {sorted(kwargs)})")
        if not isinstance(param, MultiBoxLossParam):
            raise TypeError(f"MultiBoxLoss: param must be a MultiBoxLossParam, got "
                            f"{type(param).__name__}")
        self.param = param
        self._last = None

    def _parse(self, input, target):
        c = self.param.n_classes
        expected = f"a table [loc (N, P*4), conf (N, P*{c}), priors (1, 2, P*4)]"
        if not isinstance(input, (list, tuple)) or len(input) != 3 or \
                not all(isinstance(t, np.ndarray) for t in input):
            self._fail(f"expected input {expected}, got {shape_of(input)}")
        loc, conf, priors = input
        if priors.ndim != 3 or priors.shape[:2] != (1, 2) or priors.shape[2] % 4 or \
                loc.ndim != 2 or conf.ndim != 2 or len(loc) != len(conf) or \
                loc.shape[1] != priors.shape[2] or conf.shape[1] != priors.shape[2] // 4 * c:
            self._fail(f"expected input {expected}, got {shape_of(input)}")
        n, p = len(loc), priors.shape[2] // 4
        t = np.asarray(target, dtype=np.float64)
        if t.ndim == 2 and n == 1:
            t = t[None]
        if t.ndim != 3 or len(t) != n or t.shape[2] != 6:
            self._fail(f"expected target ({n}, G, 6) of rows (label, difficult, x1, y1, x2, "
                       f"y2), got {shape_of(target)}")
        return loc, conf, priors, n, p, t

    def _boxes_of(self, rows):
        labels = rows[:, 0]
        bad = (labels != np.round(labels)) | (labels >= self.param.n_classes) | \
            (labels == self.param.bg_label_ind)
        if bad.any():
            raise LabelError(f"{self.label()}: box label {labels[bad][0].item()!r} is not an "
                             f"object class (0 .. {self.param.n_classes - 1} but the "
                             f"background {self.param.bg_label_ind})")
        return rows[:, 0].astype(np.int64), rows[:, 2:]

    def _assign(self, input, target, reuse=False):
        """Per prior: its class target, whether it counts (matched or mined), and for the
        matched ones the encoded offsets.  With ``reuse``, the last forward's assignment if it
        was made for the same arrays (the backward that follows a forward)."""
        key = (tuple(id(a) for a in input) if isinstance(input, (list, tuple)) else
               (id(input),)) + (id(target),)
        if reuse and self._last is not None and self._last[0] == key:
            return self._last[1]
        loc, conf, priors, n, p, t = self._parse(input, target)
        prm = self.param
        boxes = np.asarray(priors[0, 0], np.float64).reshape(p, 4)
        variances = np.asarray(priors[0, 1], np.float64).reshape(p, 4)
        logp = log_softmax(np.asarray(conf, np.float64).reshape(n, p, prm.n_classes), -1)
        valid = t[:, :, 0] >= 0
        if valid.any():
            self._boxes_of(t[valid])  # checks the labels
        if not prm.use_difficult_gt:
            valid &= t[:, :, 1] == 0
        match, overlap = match_prior_batch(boxes, t[:, :, 2:], valid, prm.overlap_threshold)
        positive = match >= 0
        safe = np.maximum(match, 0)
        labels = np.where(positive, np.take_along_axis(t[:, :, 0], safe, 1).astype(np.int64),
                          prm.bg_label_ind)
        loc_target = np.zeros((n, p, 4))
        rows, cols = np.nonzero(positive)
        loc_target[rows, cols] = encode_boxes(t[rows, match[rows, cols], 2:], boxes[cols],
                                              variances[cols])
        # hard negatives: of the unmatched priors overlapping no box by neg_overlap, the ones
        # least confident that they are background, neg_pos_ratio per match of the image
        candidate = ~positive & (overlap < prm.neg_overlap)
        bg_logp = np.where(candidate, logp[:, :, prm.bg_label_ind], np.inf)
        wanted = np.minimum((positive.sum(1) * prm.neg_pos_ratio).astype(np.int64),
                            candidate.sum(1))
        rank = np.empty((n, p), dtype=np.int64)
        np.put_along_axis(rank, np.argsort(bg_logp, axis=1, kind="stable"),
                          np.arange(p)[None].repeat(n, 0), 1)
        counted = positive | (candidate & (rank < wanted[:, None]))
        result = (loc, conf, logp, labels, positive, counted, loc_target)
        self._last = (key, result)
        return result

    def update_output(self, input, target):
        loc, _, logp, labels, positive, counted, loc_target = self._assign(input, target)
        matches = int(positive.sum())
        if matches == 0:
            return 0.0
        d = np.asarray(loc, np.float64).reshape(loc_target.shape)[positive] - \
            loc_target[positive]
        a = np.abs(d)
        loc_loss = np.where(a < 1, 0.5 * d * d, a - 0.5).sum()
        conf_loss = -np.take_along_axis(logp, labels[..., None], -1)[..., 0][counted].sum()
        return (self.param.loc_weight * loc_loss + conf_loss) / matches

    def update_grad_input(self, input, target):
        loc, conf, logp, labels, positive, counted, loc_target = self._assign(input, target,
                                                                              reuse=True)
        matches = int(positive.sum())
        grad_loc = np.zeros(loc_target.shape)
        grad_conf = np.zeros(logp.shape)
        if matches:
            d = np.asarray(loc, np.float64).reshape(loc_target.shape) - loc_target
            grad_loc[positive] = np.clip(d[positive], -1, 1) * (self.param.loc_weight / matches)
            g = np.exp(logp)
            np.put_along_axis(g, labels[..., None],
                              np.take_along_axis(g, labels[..., None], -1) - 1, -1)
            grad_conf[counted] = g[counted] / matches
        priors = input[2]
        return [grad_loc.reshape(loc.shape).astype(loc.dtype, copy=False),
                grad_conf.reshape(conf.shape).astype(conf.dtype, copy=False),
                np.zeros_like(priors)]

    def __repr__(self):
        return f"nn.MultiBoxLoss({self.param.n_classes} classes)"
