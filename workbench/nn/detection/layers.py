"""Object-detection layers of BigDL: region-of-interest pooling (Fast R-CNN), SSD prior boxes
and detection output, and region proposals (Faster R-CNN), with the non-maximum suppression they
share."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..activation.activations import softmax
from ..._checks import check_int, finite_real
from ..module import DEFAULT_DTYPE, LayerError, Module, check_grad_output, shape_of
from ..shape.reshape import keep
from ..table.tables import check_grad

__all__ = ["RoiPooling", "PriorBox", "DetectionOutputSSD", "Proposal"]


def _table(layer, input, n, expected):
    """``input`` checked as a table of ``n`` arrays (else the layer's LayerError saying what it
    ``expected``)."""
    if not isinstance(input, (list, tuple)) or len(input) != n or \
            not all(isinstance(t, np.ndarray) for t in input):
        layer._fail(expected, input)
    return input


def _round_half_up(v):
    """Java's ``Math.round`` (BigDL's): halves round up, also below zero."""
    return np.floor(v + 0.5)


class RoiPooling(Module):
    """Region-of-interest max pooling (Fast R-CNN; BigDL ``RoiPooling``): each region is split
    into a ``pooled_h x pooled_w`` grid and every cell is max-pooled, per channel.

    A region is a row ``(batch_index, x1, y1, x2, y2)`` of ``rois``: ``batch_index`` zero-based
    into the feature batch, corners in input-image coordinates, scaled by ``spatial_scale``
    and rounded (halves up) to feature-map cells, both corners inclusive.  Cell ``(ph, pw)``
    covers rows ``floor(ph * h / pooled_h) .. ceil((ph + 1) * h / pooled_h)`` of the region
    (clipped to the map); an empty cell outputs 0.  The gradient goes to each cell's maximum;
    ``rois`` get a zero gradient (BigDL's gradient table holds only the features' entry).

    Args:
        pooled_w, pooled_h: output grid width and height (> 0).
        spatial_scale: feature-map cells per input pixel (> 0), e.g. 1/16.

    Input shape: a table ``[features (N, C, H, W), rois (R, 5)]``.
    Output shape: ``(R, C, pooled_h, pooled_w)``.
    """

    def __init__(self, pooled_w, pooled_h, spatial_scale):
        super().__init__()
        self.pooled_w = check_int("RoiPooling", "pooled_w", pooled_w)
        self.pooled_h = check_int("RoiPooling", "pooled_h", pooled_h)
        self.spatial_scale = finite_real("RoiPooling", "spatial_scale", spatial_scale, 0,
                                         strict=True)

    def update_output(self, input):
        expected = "a table [features (N, C, H, W), rois (R, 5)]"
        _table(self, input, 2, expected)
        if input[0].ndim != 4 or input[1].ndim != 2 or input[1].shape[1] != 5:
            self._fail(expected, input)
        data = input[0] if input[0].dtype.kind == "f" else input[0].astype(DEFAULT_DTYPE)
        rois = np.asarray(input[1], dtype=np.float64)
        n, c, h, w = data.shape
        batch = np.round(rois[:, 0]).astype(np.int64)
        if len(rois) and (batch.min() < 0 or batch.max() >= n):
            raise LayerError(f"{self.label()}: expected roi batch indices in [0, {n}), got "
                             f"{rois[:, 0].tolist()}")
        corners = _round_half_up(rois[:, 1:] * self.spatial_scale).astype(np.int64)
        r = len(rois)
        out = np.zeros((r, c, self.pooled_h, self.pooled_w), dtype=data.dtype)
        argmax = np.full(out.shape, -1, dtype=np.int64)
        for k in range(r):
            x1, y1, x2, y2 = corners[k]
            bin_h = max(y2 - y1 + 1, 1) / self.pooled_h
            bin_w = max(x2 - x1 + 1, 1) / self.pooled_w
            plane = data[batch[k]].reshape(c, -1)
            for ph in range(self.pooled_h):
                hs = min(max(int(math.floor(ph * bin_h)) + y1, 0), h)
                he = min(max(int(math.ceil((ph + 1) * bin_h)) + y1, 0), h)
                for pw in range(self.pooled_w):
                    ws = min(max(int(math.floor(pw * bin_w)) + x1, 0), w)
                    we = min(max(int(math.ceil((pw + 1) * bin_w)) + x1, 0), w)
                    if he <= hs or we <= ws:
                        continue
                    idx = (np.arange(hs, he)[:, None] * w + np.arange(ws, we)[None]).ravel()
                    cell = plane[:, idx]
                    best = np.argmax(cell, axis=1)
                    out[k, :, ph, pw] = cell[np.arange(c), best]
                    argmax[k, :, ph, pw] = idx[best]
        keep(self, argmax=argmax, batch=batch)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        data = input[0]
        n, c, h, w = data.shape
        g = np.asarray(grad_output)
        gd = np.zeros((n, c, h * w), dtype=self.output.dtype)
        argmax, batch = self._scratch["argmax"], self._scratch["batch"]
        valid = argmax >= 0
        rr, cc, _, _ = np.nonzero(valid)
        np.add.at(gd, (batch[rr], cc, argmax[valid]), g[valid])
        return [gd.reshape(data.shape), np.zeros(np.shape(input[1]), dtype=self.output.dtype)]

    def extra_repr(self):
        return f"{self.pooled_w}, {self.pooled_h}, {self.spatial_scale:g}"


class PriorBox(Module):
    """SSD prior (default) boxes of a feature map (BigDL / Caffe-SSD ``PriorBox``).
    Inference-only: it has no gradient, and ``backward`` raises an error.

    For each feature-map cell ``(h, w)``, centred at ``((w + offset) * step_w, (h + offset) *
    step_h)`` in image pixels, and each ``min_sizes[k]``, the boxes are: a square of side
    ``min_size``; with ``max_sizes``, a square of side ``sqrt(min_size * max_sizes[k])``; then
    for every aspect ratio ``ar != 1`` a ``min_size * sqrt(ar)`` by ``min_size / sqrt(ar)`` box.
    Aspect ratios start from 1, skip duplicates, and with ``is_flip`` add ``1 / ar`` too.
    Boxes are ``(xmin, ymin, xmax, ymax)`` normalized by the image size (clipped to [0, 1] with
    ``is_clip``).

    Args:
        min_sizes: box sizes in pixels (> 0).
        max_sizes: optional sizes, one per min size, each > its min size.
        aspect_ratios: extra aspect ratios (> 0).
        is_flip: also add ``1 / ar`` (default True).
        is_clip: clip boxes to the image (default False).
        variances: 1 or 4 variances (default ``[0.1]``), written in the second channel.
        offset: cell-centre offset (default 0.5).
        img_h, img_w, img_size: image size (``img_size`` for both); 0 takes it from the second
            input of a table ``[features, image]``.
        step_h, step_w, step: cell size in pixels; 0 means image size / feature-map size.

    Input shape: ``(N, C, H, W)`` features, or a table ``[features, image (N, C, H_img,
    W_img)]``.
    Output shape: ``(1, 2, H * W * num_priors * 4)``: the boxes, then their variances.
    """

    def __init__(self, min_sizes, max_sizes=None, aspect_ratios=None, is_flip=True,
                 is_clip=False, variances=None, offset=0.5, img_h=0, img_w=0, img_size=0,
                 step_h=0.0, step_w=0.0, step=0.0):
        super().__init__()
        cls = "PriorBox"

        def floats(arg, values, allow_empty=True):
            if values is None:
                return []
            if isinstance(values, numbers.Real) and not isinstance(values, bool):
                values = [values]
            if not isinstance(values, (list, tuple)) or (not allow_empty and not values) or \
                    not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0
                            for v in values):
                raise ValueError(f"{cls}: {arg} must be a list of numbers > 0, got {values!r}")
            return [float(v) for v in values]

        self.min_sizes = floats("min_sizes", min_sizes, allow_empty=False)
        self.max_sizes = floats("max_sizes", max_sizes)
        if self.max_sizes and (len(self.max_sizes) != len(self.min_sizes) or any(
                mx <= mn for mn, mx in zip(self.min_sizes, self.max_sizes))):
            raise ValueError(f"{cls}: max_sizes must give one size > each min size "
                             f"{self.min_sizes}, got {max_sizes!r}")
        self.is_flip, self.is_clip = bool(is_flip), bool(is_clip)
        self.aspect_ratios = [1.0]
        for ar in floats("aspect_ratios", aspect_ratios):
            for r in ([ar, 1 / ar] if self.is_flip else [ar]):
                if all(abs(r - a) >= 1e-6 for a in self.aspect_ratios):
                    self.aspect_ratios.append(r)
        self.variances = floats("variances", variances) or [0.1]
        if len(self.variances) not in (1, 4):
            raise ValueError(f"{cls}: variances must hold 1 or 4 values, got {variances!r}")
        self.offset = finite_real(cls, "offset", offset)
        self.img_h = check_int(cls, "img_h", img_size or img_h, minimum=0)
        self.img_w = check_int(cls, "img_w", img_size or img_w, minimum=0)
        self.step_h = finite_real(cls, "step_h", step or step_h, minimum=0)
        self.step_w = finite_real(cls, "step_w", step or step_w, minimum=0)
        self.num_priors = len(self.aspect_ratios) * len(self.min_sizes) + len(self.max_sizes)

    def update_output(self, input):
        expected = "(N, C, H, W) features or a table [features, image (N, C, H, W)]"
        if isinstance(input, (list, tuple)):
            if len(input) != 2 or not all(isinstance(t, np.ndarray) and t.ndim == 4
                                          for t in input):
                self._fail(expected, input)
            feat, image = input
        else:
            if not isinstance(input, np.ndarray) or input.ndim != 4:
                self._fail(expected, input)
            feat, image = input, None
        img_h = self.img_h or (image.shape[2] if image is not None else 0)
        img_w = self.img_w or (image.shape[3] if image is not None else 0)
        if not img_h or not img_w:
            raise LayerError(f"{self.label()}: expected an image size (img_h/img_w/img_size) "
                             f"or input [features, image], got {shape_of(input)}")
        fh, fw = feat.shape[2:]
        step_h = self.step_h or img_h / fh
        step_w = self.step_w or img_w / fw
        sizes = []   # (box width, box height) per prior, in order
        for k, mn in enumerate(self.min_sizes):
            sizes.append((mn, mn))
            if self.max_sizes:
                s = math.sqrt(mn * self.max_sizes[k])
                sizes.append((s, s))
            for ar in self.aspect_ratios[1:]:
                sizes.append((mn * math.sqrt(ar), mn / math.sqrt(ar)))
        sizes = np.asarray(sizes)                                     # (P, 2)
        cy, cx = np.meshgrid((np.arange(fh) + self.offset) * step_h,
                             (np.arange(fw) + self.offset) * step_w, indexing="ij")
        centres = np.stack([cx, cy], axis=-1).reshape(-1, 1, 2)       # (HW, 1, 2)
        half = sizes[None] / 2
        scale = np.array([img_w, img_h], dtype=np.float64)
        boxes = np.concatenate([(centres - half) / scale, (centres + half) / scale], axis=-1)
        if self.is_clip:
            np.clip(boxes, 0, 1, out=boxes)
        dtype = feat.dtype if feat.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)
        out = np.empty((1, 2, boxes.size), dtype=dtype)
        out[0, 0] = boxes.ravel()
        out[0, 1] = np.tile(np.broadcast_to(self.variances, (4,)), boxes.size // 4)
        return out

    def update_grad_input(self, input, grad_output):
        raise LayerError(f"{self.label()}: PriorBox is inference-only (it has no gradient)")

    def extra_repr(self):
        return (f"min_sizes={self.min_sizes}, max_sizes={self.max_sizes}, "
                f"aspect_ratios={[round(a, 6) for a in self.aspect_ratios]}, "
                f"num_priors={self.num_priors}")


def _overlap(box, boxes, normalized):
    """Jaccard overlap of one ``(x1, y1, x2, y2)`` box with each row of ``boxes``, as BigDL's
    ``Nms``: pixel boxes (``normalized=False``) count both edges (``+1``); no overlap is 0."""
    one = 0.0 if normalized else 1.0
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + one
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + one
    inter = np.where((w >= 0) & (h >= 0), w * h, 0.0)
    area = (box[2] - box[0] + one) * (box[3] - box[1] + one)
    areas = (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area + areas - inter)


def greedy_nms(order, boxes, thresh, normalized):
    """Keeps, in ``order``, each box whose overlap with every box kept before is <= ``thresh``
    (a NaN overlap of empty boxes suppresses nothing)."""
    kept = []
    for i in order:
        if not kept or not np.any(_overlap(boxes[i], boxes[kept], normalized) > thresh):
            kept.append(int(i))
    return kept


def nms_fast(scores, boxes, nms_thresh, conf_thresh, top_k):
    """BigDL's ``Nms.nmsFast`` for normalized boxes: the candidates are the boxes scoring at
    least ``conf_thresh`` (all if it is <= 0), best first, at most ``top_k`` of them (all if
    ``top_k`` <= 0); then greedy suppression at ``nms_thresh``."""
    order = np.flatnonzero(scores >= conf_thresh) if conf_thresh > 0 else np.arange(len(scores))
    order = order[np.argsort(-scores[order], kind="stable")]
    if top_k > 0:
        order = order[:top_k]
    return greedy_nms(order, boxes, nms_thresh, normalized=True)


class DetectionOutputSSD(Module):
    """SSD post-processing (BigDL ``DetectionOutputSSD``, Caffe-SSD's ``DetectionOutput``):
    decodes the location predictions against the prior boxes, applies per-class non-maximum
    suppression and keeps the best ``keep_top_k`` detections of each image.
    Inference-only: as in BigDL, in training mode it passes its input table through (and the
    gradient back); in evaluation mode it has no gradient and ``backward`` raises an error.

    Decoding (centre-size with variances): for a prior of centre ``(pcx, pcy)`` and size
    ``(pw, ph)`` and predictions ``(l0..l3)``, the box has centre ``(v0 l0 pw + pcx, v1 l1 ph +
    pcy)`` and size ``(exp(v2 l2) pw, exp(v3 l3) ph)``; with ``variance_encoded_in_target`` the
    variances ``v`` are taken as 1.

    Args:
        n_classes: number of classes including the background (default 21).
        share_location: one box per prior for all classes (default True), else one per class.
        bg_label: the background class, never detected (default 0).
        nms_thresh: overlap above which a lower-scoring box is suppressed (default 0.45).
        nms_topk: candidates per class before suppression (default 400; -1 all).
        keep_top_k: detections kept per image over all classes (default 200; -1 all).
        conf_thresh: minimum score (inclusive) of a candidate (default 0.01).
        variance_encoded_in_target: see above (default False).
        conf_post_process: apply a softmax over the classes of each prior to the confidences
            (default True; False: the confidences are already probabilities).

    Input shape: a table ``[loc (N, P * L * 4), conf (N, P * n_classes), priors (1, 2, P * 4)]``
    with ``L = 1`` if ``share_location`` else ``n_classes``; ``priors`` as ``PriorBox`` gives.
    Output shape (evaluation): ``(N, 1 + D * 6)``: for each image the number of detections,
    then ``(label, score, x1, y1, x2, y2)`` per detection grouped by class, zero-padded to the
    largest count ``D`` of the batch.
    """

    def __init__(self, n_classes=21, share_location=True, bg_label=0, nms_thresh=0.45,
                 nms_topk=400, keep_top_k=200, conf_thresh=0.01,
                 variance_encoded_in_target=False, conf_post_process=True):
        super().__init__()
        cls = "DetectionOutputSSD"
        self.n_classes = check_int(cls, "n_classes", n_classes)
        self.share_location = bool(share_location)
        self.bg_label = check_int(cls, "bg_label", bg_label, minimum=-1)
        self.nms_thresh = finite_real(cls, "nms_thresh", nms_thresh, minimum=0)
        for arg, value in (("nms_topk", nms_topk), ("keep_top_k", keep_top_k)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or \
                    value < -1 or value == 0:
                raise ValueError(f"{cls}: {arg} must be a positive int or -1 (all), got "
                                 f"{value!r}")
        self.nms_topk, self.keep_top_k = int(nms_topk), int(keep_top_k)
        self.conf_thresh = finite_real(cls, "conf_thresh", conf_thresh)
        self.variance_encoded_in_target = bool(variance_encoded_in_target)
        self.conf_post_process = bool(conf_post_process)

    def _parse(self, input):
        n_loc = 1 if self.share_location else self.n_classes
        expected = (f"a table [loc (N, P*{n_loc * 4}), conf (N, P*{self.n_classes}), "
                    f"priors (1, 2, P*4)]")
        loc, conf, priors = _table(self, input, 3, expected)
        if priors.ndim != 3 or priors.shape[:2] != (1, 2) or priors.shape[2] % 4 or \
                loc.ndim != 2 or conf.ndim != 2 or loc.shape[0] != conf.shape[0]:
            self._fail(expected, input)
        p = priors.shape[2] // 4
        if loc.shape[1] != p * n_loc * 4 or conf.shape[1] != p * self.n_classes:
            self._fail(expected, input)
        return loc, conf, priors, p, n_loc

    def _decode(self, loc, priors):
        """``(P, 4)`` boxes from ``(P, 4)`` predictions."""
        boxes, var = priors[0, 0].reshape(-1, 4), priors[0, 1].reshape(-1, 4)
        if self.variance_encoded_in_target:
            var = np.ones_like(var)
        pw, ph = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        pcx, pcy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        cx = var[:, 0] * loc[:, 0] * pw + pcx
        cy = var[:, 1] * loc[:, 1] * ph + pcy
        w = np.exp(var[:, 2] * loc[:, 2]) * pw
        h = np.exp(var[:, 3] * loc[:, 3]) * ph
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)

    def update_output(self, input):
        loc, conf, priors, p, n_loc = self._parse(input)
        if self.train:
            return input
        loc = np.asarray(loc, dtype=np.float64).reshape(len(loc), p, n_loc, 4)
        scores = np.asarray(conf, dtype=np.float64).reshape(len(conf), p, self.n_classes)
        if self.conf_post_process:
            scores = softmax(scores, -1)
        priors = np.asarray(priors, dtype=np.float64)
        results = []
        for i in range(len(loc)):
            boxes = [self._decode(loc[i, :, k], priors) for k in range(n_loc)]
            kept = {}
            for c in range(self.n_classes):
                if c != self.bg_label:
                    kept[c] = nms_fast(scores[i, :, c], boxes[0 if self.share_location else c],
                                       self.nms_thresh, self.conf_thresh, self.nms_topk)
            total = sum(len(v) for v in kept.values())
            if -1 < self.keep_top_k < total:
                ranked = sorted(((scores[i, j, c], c, j) for c, js in kept.items() for j in js),
                                key=lambda t: -t[0])[:self.keep_top_k]
                kept = {c: [j for _, cc, j in ranked if cc == c] for c in kept}
            dets = [(c, scores[i, j, c], *boxes[0 if self.share_location else c][j])
                    for c in sorted(kept) for j in kept[c]]
            results.append(dets)
        width = max((len(d) for d in results), default=0)
        dtype = conf.dtype if conf.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)
        out = np.zeros((len(results), 1 + 6 * width), dtype=dtype)
        for i, dets in enumerate(results):
            out[i, 0] = len(dets)
            if dets:
                out[i, 1:1 + 6 * len(dets)] = np.asarray(dets).ravel()
        return out

    def update_grad_input(self, input, grad_output):
        if self.output is None:
            raise LayerError(f"{self.label()}: backward called before forward")
        if not self.train:
            raise LayerError(f"{self.label()}: DetectionOutputSSD is inference-only (no "
                             f"gradient in evaluation mode)")
        check_grad(self, grad_output)
        return grad_output

    def extra_repr(self):
        return (f"{self.n_classes} classes, nms {self.nms_thresh:g}, keep {self.keep_top_k}, "
                f"conf > {self.conf_thresh:g}")


class Proposal(Module):
    """Region proposals of a Faster R-CNN region proposal network (BigDL ``Proposal``).
    Inference-only: it has no gradient, and ``backward`` raises an error.

    For every feature-map cell ``(h, w)`` (stride 16 pixels) and every anchor (for each scale
    ``s`` and ratio ``r``, a box of area ``(16 s)^2`` and height/width ratio ``r`` centred on
    ``(16 w, 16 h)``), the predicted deltas ``(dx, dy, dw, dh)`` move the anchor's centre by
    ``(dx, dy)`` anchor sizes and scale its size by ``exp(dw), exp(dh)`` (pixel boxes: a size
    is ``x2 - x1 + 1``).  Boxes are clipped to the image; boxes narrower or lower than
    ``16 * im_scale`` pixels are dropped; the best ``pre_nms_topn`` by object score go through
    non-maximum suppression at overlap 0.7, and the best ``post_nms_topn`` are returned.  In
    training mode the ``rpn_*_train`` counts apply instead.

    Args:
        pre_nms_topn, post_nms_topn: proposals kept before and after suppression (inference;
            ``post_nms_topn`` <= 0 keeps all).
        ratios: anchor height/width ratios (> 0), e.g. ``[0.5, 1, 2]``.
        scales: anchor scales (> 0) in units of 16 pixels, e.g. ``[8, 16, 32]``.
        rpn_pre_nms_topn_train, rpn_post_nms_topn_train: the same in training mode (defaults
            12000 and 2000).

    Input shape: a table ``[scores (1, 2A, H, W), deltas (1, 4A, H, W), im_info (1, 4)]`` with
    ``A = len(ratios) * len(scales)``: background scores then object scores per anchor, and
    ``im_info = (height, width, scale_h, scale_w)`` of the image (a batch of one, as BigDL).
    Output shape: ``(R, 5)`` proposals ``(0, x1, y1, x2, y2)`` (batch index 0), best first.
    """

    FEAT_STRIDE = 16
    NMS_THRESH = 0.7

    def __init__(self, pre_nms_topn, post_nms_topn, ratios, scales,
                 rpn_pre_nms_topn_train=12000, rpn_post_nms_topn_train=2000):
        super().__init__()
        cls = "Proposal"
        self.pre_nms_topn = check_int(cls, "pre_nms_topn", pre_nms_topn)
        self.rpn_pre_nms_topn_train = check_int(cls, "rpn_pre_nms_topn_train",
                                                rpn_pre_nms_topn_train)
        for arg, value in (("post_nms_topn", post_nms_topn),
                           ("rpn_post_nms_topn_train", rpn_post_nms_topn_train)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{cls}: {arg} must be an int (<= 0: keep all), got {value!r}")
        self.post_nms_topn = int(post_nms_topn)
        self.rpn_post_nms_topn_train = int(rpn_post_nms_topn_train)

        def positives(arg, values):
            if not isinstance(values, (list, tuple)) or not values or not all(
                    isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0
                    for v in values):
                raise ValueError(f"{cls}: {arg} must be a non-empty list of numbers > 0, got "
                                 f"{values!r}")
            return [float(v) for v in values]

        self.ratios = positives("ratios", ratios)
        self.scales = positives("scales", scales)
        self.num_anchors = len(self.ratios) * len(self.scales)

    def base_anchors(self):
        """``(A, 4)`` anchors centred on 0, scales outer and ratios inner (BigDL's order)."""
        rows = []
        for s in self.scales:
            area = (s * self.FEAT_STRIDE) ** 2
            for r in self.ratios:
                w = math.sqrt(area / r)
                h = r * w
                rows.append((-w / 2, -h / 2, w / 2, h / 2))
        return np.asarray(rows)

    def update_output(self, input):
        a = self.num_anchors
        expected = (f"a table [scores (1, {2 * a}, H, W), deltas (1, {4 * a}, H, W), "
                    f"im_info (1, 4)]")
        scores, deltas, info = _table(self, input, 3, expected)
        if scores.ndim != 4 or scores.shape[:2] != (1, 2 * a) or \
                deltas.shape != (1, 4 * a) + scores.shape[2:] or info.ndim != 2 or \
                info.shape[0] != 1 or info.shape[1] < 4:
            self._fail(expected, input)
        h, w = scores.shape[2:]
        im_h, im_w, scale_h, scale_w = (float(v) for v in info[0, :4])
        # rows ordered by (h, w, anchor), as the anchors below
        d = np.asarray(deltas[0], np.float64).reshape(a, 4, h, w).transpose(2, 3, 0, 1)
        d = d.reshape(-1, 4)
        score = np.asarray(scores[0, a:], np.float64).transpose(1, 2, 0).reshape(-1).copy()
        sx = np.arange(w) * float(self.FEAT_STRIDE)
        sy = np.arange(h) * float(self.FEAT_STRIDE)
        shifts = np.stack(np.broadcast_arrays(sx[None, :], sy[:, None], sx[None, :],
                                              sy[:, None]), axis=-1)          # (h, w, 4)
        anchors = (shifts[:, :, None, :] + self.base_anchors()[None, None]).reshape(-1, 4)
        aw = anchors[:, 2] - anchors[:, 0] + 1
        ah = anchors[:, 3] - anchors[:, 1] + 1
        cx = d[:, 0] * aw + anchors[:, 0] + aw / 2
        cy = d[:, 1] * ah + anchors[:, 1] + ah / 2
        hw, hh = np.exp(d[:, 2]) * aw / 2, np.exp(d[:, 3]) * ah / 2
        boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, im_w - 1)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, im_h - 1)
        small = ((boxes[:, 2] - boxes[:, 0] + 1 < self.FEAT_STRIDE * scale_w)
                 | (boxes[:, 3] - boxes[:, 1] + 1 < self.FEAT_STRIDE * scale_h))
        score[small] = 0
        pre = self.rpn_pre_nms_topn_train if self.train else self.pre_nms_topn
        post = self.rpn_post_nms_topn_train if self.train else self.post_nms_topn
        top = np.argsort(-score, kind="stable")[:min(pre, int((~small).sum()))]
        kept = greedy_nms(range(len(top)), boxes[top], self.NMS_THRESH, normalized=False)
        if post > 0:
            kept = kept[:post]
        dtype = scores.dtype if scores.dtype.kind == "f" else np.dtype(DEFAULT_DTYPE)
        out = np.zeros((len(kept), 5), dtype=dtype)
        out[:, 1:] = boxes[top[kept]]
        return out

    def update_grad_input(self, input, grad_output):
        raise LayerError(f"{self.label()}: Proposal is inference-only (it has no gradient)")

    def extra_repr(self):
        return (f"{self.pre_nms_topn} -> {self.post_nms_topn}, ratios {self.ratios}, "
                f"scales {self.scales}")
