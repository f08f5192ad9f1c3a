"""Detection layers: RoiPooling, PriorBox, DetectionOutputSSD, Proposal against the Fast/Faster
R-CNN and SSD definitions; and pickling the later BigDL layers for the executors."""
import math
import pickle

import numpy as np
import pytest

from helpers import check_module_gradients, config_round_trip, f32, normal, t64
from workbench.nn import (CMulTable, CrossProduct, DetectionOutputSSD, FeedForwardNetwork,
                          LayerError, PriorBox, Proposal, RoiPooling, SpatialConvolutionMap,
                          TableOperation, Transformer)


# ---------------------------------------------------------------------- RoiPooling
def roi_cells(rois, pw, ph, scale, h, w):
    """Fast R-CNN's pooling cells, one by one: ``(roi, batch, i, j, rows, cols)``."""
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        x1, y1, x2, y2 = (int(math.floor(v * scale + 0.5)) for v in (x1, y1, x2, y2))
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(y1 + math.floor(i * rh / ph), 0), h)
                he = min(max(y1 + math.ceil((i + 1) * rh / ph), 0), h)
                ws = min(max(x1 + math.floor(j * rw / pw), 0), w)
                we = min(max(x1 + math.ceil((j + 1) * rw / pw), 0), w)
                yield k, int(b), i, j, slice(hs, he), slice(ws, we)


def roi_pool_reference(data, rois, pw, ph, scale):
    out = np.zeros((len(rois), data.shape[1], ph, pw))
    for k, b, i, j, rows, cols in roi_cells(rois, pw, ph, scale, *data.shape[2:]):
        if data[b, :, rows, cols].size:
            out[k, :, i, j] = data[b, :, rows, cols].max(axis=(1, 2))
    return out


ROIS = np.array([[0, 0, 0, 7, 5], [1, 6, 2, 7, 5], [1, 3, 1, 6, 4], [0, 3, 3, 3, 3],
                 [1, -2, -2, 20, 3], [1, -3, -1, 3, 5], [0, -9, -9, -5, -5]], dtype=np.float64)
# (with spatial_scale 0.5, x1 = -1.5 rounds up to -1 as Java's Math.round does)


@pytest.mark.oracle
def test_roi_pooling_matches_the_fast_rcnn_formula():
    data = f32((2, 3, 6, 8), seed=23)
    for pw, ph, scale in ((2, 3, 1.0), (3, 2, 0.5), (4, 4, 1.0)):
        layer = RoiPooling(pw, ph, scale)
        y = layer.forward([data, ROIS.astype(np.float32)])
        np.testing.assert_allclose(y, roi_pool_reference(data, ROIS, pw, ph, scale))
    assert not y[-1].any()  # a region outside the map pools nothing
    # the gradient of sum(y * g) w.r.t. the features, by torch autograd over the same cells
    g = f32((len(ROIS), 3, 3, 2), seed=24)
    td = t64(data).requires_grad_()
    total = 0
    for k, b, i, j, rows, cols in roi_cells(ROIS, 2, 3, 0.5, 6, 8):
        if data[b, :, rows, cols].size:
            total = total + (td[b, :, rows, cols].amax(dim=(1, 2)) * t64(g[k, :, i, j])).sum()
    total.backward()
    layer = RoiPooling(2, 3, 0.5)
    layer.forward([data, ROIS])
    gd, grois = layer.backward([data, ROIS], g)
    np.testing.assert_allclose(gd, td.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert grois.shape == ROIS.shape and not grois.any()
    check_module_gradients(RoiPooling(2, 2, 1.0).double(),
                           [normal((2, 2, 5, 6), seed=25), ROIS[:4].copy()])


def test_roi_pooling_errors_and_config():
    with pytest.raises(LayerError, match=r"RoiPooling\[roi\]: expected input a table "
                                         r"\[features \(N, C, H, W\), rois \(R, 5\)\], "
                                         r"got \[\(1, 2, 4, 4\), \(3, 4\)\]"):
        RoiPooling(2, 2, 1.0).set_name("roi").forward([np.ones((1, 2, 4, 4)), np.ones((3, 4))])
    with pytest.raises(LayerError, match=r"RoiPooling: expected roi batch indices in \[0, 1\)"):
        RoiPooling(2, 2, 1.0).forward([np.ones((1, 2, 4, 4)), np.array([[1.0, 0, 0, 2, 2]])])
    with pytest.raises(ValueError, match="spatial_scale must be a finite number > 0, got 0"):
        RoiPooling(2, 2, 0)
    config_round_trip(RoiPooling(2, 3, 0.5), [f32((2, 3, 6, 8), seed=1), ROIS[:3]])


# ---------------------------------------------------------------------- PriorBox
def prior_box_reference(fh, fw, img_h, img_w, min_sizes, max_sizes, ars, flip, clip, var,
                        offset=0.5):
    """Caffe-SSD's prior boxes, box by box."""
    ratios = [1.0]
    for a in ars:
        for r in ([a, 1 / a] if flip else [a]):
            if all(abs(r - q) >= 1e-6 for q in ratios):
                ratios.append(r)
    out, step_h, step_w = [], img_h / fh, img_w / fw
    for i in range(fh):
        for j in range(fw):
            cx, cy = (j + offset) * step_w, (i + offset) * step_h
            for k, m in enumerate(min_sizes):
                shapes = [(m, m)]
                if max_sizes:
                    shapes.append((math.sqrt(m * max_sizes[k]),) * 2)
                shapes += [(m * math.sqrt(r), m / math.sqrt(r)) for r in ratios if r != 1.0]
                for bw, bh in shapes:
                    box = [(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                           (cx + bw / 2) / img_w, (cy + bh / 2) / img_h]
                    out.extend(min(max(v, 0.0), 1.0) if clip else v for v in box)
    variances = (var * 4 if len(var) == 1 else var) * (len(out) // 4)
    return np.array([[out, variances]])


def test_prior_box_matches_the_ssd_definition():
    feat = np.zeros((2, 8, 3, 4), np.float32)
    layer = PriorBox([30.0], [60.0], [2.0, 3.0], is_flip=True, is_clip=False, img_size=100)
    assert layer.num_priors == 6
    y = layer.forward(feat)
    assert y.shape == (1, 2, 3 * 4 * 6 * 4)
    np.testing.assert_allclose(y, prior_box_reference(3, 4, 100, 100, [30.0], [60.0],
                                                      [2.0, 3.0], True, False, [0.1]),
                               rtol=1e-6, atol=1e-7)
    clip = PriorBox([20.0, 40.0], aspect_ratios=[2.0], is_flip=False, is_clip=True,
                    variances=[0.1, 0.1, 0.2, 0.2])
    y = clip.forward([feat, np.zeros((1, 3, 60, 80), np.float32)])
    np.testing.assert_allclose(y, prior_box_reference(3, 4, 60, 80, [20.0, 40.0], [], [2.0],
                                                      False, True, [0.1, 0.1, 0.2, 0.2]),
                               rtol=1e-6, atol=1e-7)
    # a 1x1 map on a 10-pixel image: one box of side 4 centred at 5
    np.testing.assert_allclose(PriorBox([4.0], img_size=10).forward(np.zeros((1, 1, 1, 1)))[0, 0],
                               [0.3, 0.3, 0.7, 0.7])


def test_prior_box_is_inference_only_and_validates():
    layer = PriorBox([30.0], img_size=100).set_name("pb")
    x = np.zeros((1, 2, 2, 2), np.float32)
    y = layer.forward(x)
    with pytest.raises(LayerError, match=r"PriorBox\[pb\]: PriorBox is inference-only"):
        layer.backward(x, np.ones_like(y))
    with pytest.raises(LayerError, match=r"PriorBox\[pb\]: expected input \(N, C, H, W\)"):
        layer.forward(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(LayerError, match=r"PriorBox: expected an image size"):
        PriorBox([30.0]).forward(x)
    with pytest.raises(ValueError, match=r"max_sizes must give one size > each min size .* "
                                         r"got \[20\.0\]"):
        PriorBox([30.0], [20.0])
    config_round_trip(PriorBox([30.0], [60.0], [2.0], img_h=50, img_w=60), x)


# ---------------------------------------------------------------------- shipping to executors
def test_new_layers_pickle_without_their_activations():
    layers = [(CrossProduct(), [f32((2, 3), seed=1), f32((2, 3), seed=2)]),
              (FeedForwardNetwork(3, 4, 0.2), f32((2, 3), seed=3)),
              (SpatialConvolutionMap([[1, 1]], 2, 2), f32((1, 1, 3, 3), seed=4)),
              (RoiPooling(2, 2, 1.0), [f32((1, 2, 4, 4), seed=5), ROIS[3:4]]),
              (TableOperation(CMulTable()), [f32((2, 3), seed=6), f32((1, 3), seed=7)]),
              (Transformer(5, 4, 2, 5, 1, 0.1, 0.1, 0.1), np.array([[1, 2]]))]
    for layer, x in layers:
        layer.evaluate()
        y = np.array(layer.forward(x), copy=True)
        again = pickle.loads(pickle.dumps(layer))
        assert "_scratch" not in again.__dict__ and again.output is None
        np.testing.assert_array_equal(again.forward(x), y)


# ---------------------------------------------------------------------- DetectionOutputSSD
BOXES = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.12, 0.32, 0.32], [0.6, 0.6, 0.9, 0.9]])


def ssd_priors(boxes, variances=(0.1, 0.1, 0.2, 0.2)):
    return np.stack([boxes.ravel(), np.tile(variances, len(boxes))])[None].astype(np.float32)


def test_detection_output_ssd_suppresses_thresholds_and_keeps_top_k():
    priors = ssd_priors(BOXES)
    scores = np.array([[0.09, 0.9, 0.01], [0.18, 0.8, 0.02], [0.25, 0.05, 0.7]])  # (P, classes)
    conf = scores.reshape(1, -1).astype(np.float32)
    loc = np.zeros((1, 12), np.float32)               # zero offsets: the priors themselves
    layer = DetectionOutputSSD(3, conf_post_process=False).evaluate()
    y = layer.forward([loc, conf, priors])
    # class 1: prior 1 overlaps prior 0 (IoU 0.68 > 0.45) and goes; class 2: 0.01 is not > 0.01
    expected = [4, 1, 0.9, *BOXES[0], 1, 0.05, *BOXES[2], 2, 0.7, *BOXES[2], 2, 0.02, *BOXES[1]]
    np.testing.assert_allclose(y, [expected], rtol=1e-6)
    top2 = DetectionOutputSSD(3, keep_top_k=2, conf_post_process=False).evaluate()
    np.testing.assert_allclose(top2.forward([loc, conf, priors]),
                               [[2, 1, 0.9, *BOXES[0], 2, 0.7, *BOXES[2]]], rtol=1e-6)
    # softmax post-processing of logits gives the same detections as the probabilities
    logits = np.log(scores).reshape(1, -1).astype(np.float32)
    np.testing.assert_allclose(DetectionOutputSSD(3).evaluate().forward([loc, logits, priors]),
                               y, rtol=1e-5)
    # a batch pads the image with fewer detections with zeros
    batch = DetectionOutputSSD(3, conf_post_process=False, conf_thresh=0.5).evaluate()
    yb = batch.forward([np.zeros((2, 12), np.float32), np.concatenate([conf, conf * 0]),
                        priors])
    assert yb.shape == (2, 1 + 6 * 2) and yb[1].tolist() == [0.0] * 13
    np.testing.assert_allclose(yb[0], [2, 1, 0.9, *BOXES[0], 2, 0.7, *BOXES[2]], rtol=1e-6)


def test_detection_output_ssd_decodes_centre_size_with_variances():
    prior = np.array([[0.2, 0.2, 0.6, 0.4]])
    loc = np.array([[1.0, -1.0, math.log(2) / 0.2, 0.0]], np.float32)
    conf = np.array([[0.0, 1.0]], np.float32)
    layer = DetectionOutputSSD(2, conf_post_process=False).evaluate()
    # centre (0.4 + 0.1*1*0.4, 0.3 - 0.1*0.2), size (0.4 * 2, 0.2)
    np.testing.assert_allclose(layer.forward([loc, conf, ssd_priors(prior)]),
                               [[1, 1, 1.0, 0.04, 0.18, 0.84, 0.38]], rtol=1e-5, atol=1e-6)
    raw = DetectionOutputSSD(2, conf_post_process=False,
                             variance_encoded_in_target=True).evaluate()
    loc2 = np.array([[0.1, -0.1, math.log(2), 0.0]], np.float32)
    np.testing.assert_allclose(raw.forward([loc2, conf, ssd_priors(prior)]),
                               [[1, 1, 1.0, 0.04, 0.18, 0.84, 0.38]], rtol=1e-5, atol=1e-6)
    # one box per class: class 2 uses its own offsets
    per_class = DetectionOutputSSD(3, share_location=False, conf_post_process=False).evaluate()
    loc3 = np.concatenate([np.zeros(8), [1.0, -1.0, math.log(2) / 0.2, 0.0]])[None]
    y = per_class.forward([loc3.astype(np.float32), np.array([[0.0, 0.0, 1.0]], np.float32),
                           ssd_priors(prior)])
    np.testing.assert_allclose(y, [[1, 2, 1.0, 0.04, 0.18, 0.84, 0.38]], rtol=1e-5, atol=1e-6)


def test_detection_output_ssd_training_passes_through_and_validates():
    layer = DetectionOutputSSD(3).set_name("det")
    x = [np.zeros((1, 12), np.float32), np.zeros((1, 9), np.float32), ssd_priors(BOXES)]
    assert layer.forward(x) is x                       # BigDL: identity while training
    g = [np.ones_like(t) for t in x]
    assert layer.backward(x, g) is g
    layer.evaluate().forward(x)
    with pytest.raises(LayerError, match=r"DetectionOutputSSD\[det\]: DetectionOutputSSD is "
                                         r"inference-only"):
        layer.backward(x, np.zeros_like(layer.output))
    with pytest.raises(LayerError, match=r"DetectionOutputSSD\[det\]: expected input a table "
                                         r"\[loc \(N, P\*4\), conf \(N, P\*3\), priors"):
        layer.forward([x[0], np.zeros((1, 8), np.float32), x[2]])
    with pytest.raises(ValueError, match="keep_top_k must be a positive int or -1 .* got 0"):
        DetectionOutputSSD(keep_top_k=0)
    config_round_trip(DetectionOutputSSD(3, nms_thresh=0.3), x)


# ---------------------------------------------------------------------- Proposal
def proposal_reference(scores, deltas, info, ratios, scales, pre, post):
    """Faster R-CNN's proposal layer, anchor by anchor, with BigDL's anchors and overlaps."""
    a = len(ratios) * len(scales)
    h, w = scores.shape[2:]
    cands = []
    for i in range(h):
        for j in range(w):
            k = 0
            for s in scales:
                for r in ratios:
                    bw = math.sqrt((16 * s) ** 2 / r)
                    bh = r * bw
                    x1, y1 = 16 * j - bw / 2, 16 * i - bh / 2
                    x2, y2 = 16 * j + bw / 2, 16 * i + bh / 2
                    aw, ah = x2 - x1 + 1, y2 - y1 + 1
                    dx, dy, dw, dh = deltas[0, 4 * k:4 * k + 4, i, j]
                    cx, cy = dx * aw + x1 + aw / 2, dy * ah + y1 + ah / 2
                    pw, ph = math.exp(dw) * aw, math.exp(dh) * ah
                    box = [min(max(v, 0), info[1 - c % 2] - 1) for c, v in enumerate(
                        (cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2))]
                    if box[2] - box[0] + 1 >= 16 * info[3] and box[3] - box[1] + 1 >= 16 * info[2]:
                        cands.append((float(scores[0, a + k, i, j]), box))
                    k += 1
    cands = sorted(cands, key=lambda c: -c[0])[:pre]

    def iou(p, q):
        iw = min(p[2], q[2]) - max(p[0], q[0]) + 1
        ih = min(p[3], q[3]) - max(p[1], q[1]) + 1
        if iw < 0 or ih < 0:
            return 0.0
        area = (p[2] - p[0] + 1) * (p[3] - p[1] + 1) + (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
        return iw * ih / (area - iw * ih)

    kept = []
    for _, box in cands:
        if all(iou(box, k) <= 0.7 for k in kept):
            kept.append(box)
    return np.array([[0, *b] for b in kept[:post]]).reshape(-1, 5)


def test_proposal_matches_the_faster_rcnn_reference():
    ratios, scales = [0.5, 1.0, 2.0], [1.0, 2.0]
    rng = np.random.default_rng(60)
    scores = rng.random((1, 12, 3, 4)).astype(np.float32)
    deltas = (0.3 * rng.standard_normal((1, 24, 3, 4))).astype(np.float32)
    info = np.array([[40.0, 56.0, 0.6, 0.5]], np.float32)
    layer = Proposal(20, 8, ratios, scales, 30, 12).evaluate()
    y = layer.forward([scores, deltas, info])
    ref = proposal_reference(scores, deltas, info[0], ratios, scales, 20, 8)
    assert y.shape == ref.shape and 0 < len(y) <= 8
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)
    layer.training()   # the training counts apply
    np.testing.assert_allclose(layer.forward([scores, deltas, info]),
                               proposal_reference(scores, deltas, info[0], ratios, scales, 30, 12),
                               rtol=1e-5, atol=1e-4)
    # one square anchor on a 1x2 map, zero deltas: anchors (-8, -8, 8, 8) and (8, -8, 24, 8)
    # become (-8, -8, 9, 9) and (8, -8, 25, 9), clipped to the 32x32 image
    tiny = Proposal(10, 10, [1.0], [1.0]).evaluate()
    out = tiny.forward([np.array([[[[0, 0]], [[0.3, 0.9]]]], np.float32),
                        np.zeros((1, 4, 1, 2), np.float32),
                        np.array([[32, 32, 0.5, 0.5]], np.float32)])
    np.testing.assert_allclose(out, [[0, 8, 0, 25, 9], [0, 0, 0, 9, 9]])
    # a minimum size of 16 * 1.0 = 16 pixels drops the 10-pixel-high boxes
    assert tiny.forward([np.array([[[[0, 0]], [[0.3, 0.9]]]], np.float32),
                         np.zeros((1, 4, 1, 2), np.float32),
                         np.array([[32, 32, 1.0, 1.0]], np.float32)]).shape == (0, 5)


def test_proposal_is_inference_only_and_validates():
    layer = Proposal(10, 5, [1.0], [1.0, 2.0]).set_name("rpn").evaluate()
    x = [np.ones((1, 4, 2, 2), np.float32), np.zeros((1, 8, 2, 2), np.float32),
         np.array([[32, 32, 0.1, 0.1]], np.float32)]
    y = layer.forward(x)
    with pytest.raises(LayerError, match=r"Proposal\[rpn\]: Proposal is inference-only"):
        layer.backward(x, np.ones_like(y))
    with pytest.raises(LayerError, match=r"Proposal\[rpn\]: expected input a table \[scores "
                                         r"\(1, 4, H, W\), deltas \(1, 8, H, W\)"):
        layer.forward([x[0], np.zeros((1, 4, 2, 2), np.float32), x[2]])
    with pytest.raises(ValueError, match=r"scales must be a non-empty list of numbers > 0, "
                                         r"got \[\]"):
        Proposal(10, 5, [1.0], [])
    config_round_trip(Proposal(10, 5, [0.5, 1.0], [1.0]), x[:1] + [np.zeros((1, 8, 2, 2),
                                                                             np.float32), x[2]])

