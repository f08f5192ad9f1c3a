"""MultiBoxLoss (the SSD loss) against a loop-by-loop numpy reference of Caffe-SSD's definition,
its gradient by finite differences, the prior matching worked by hand, the box encoding as the
inverse of DetectionOutputSSD's decoding; and the TinySSD builder's shapes and training."""
import json

import numpy as np
import pytest

from workbench.models import TinySSD
from workbench._config import from_config
from workbench.nn import DetectionOutputSSD, LabelError, MultiBoxLoss, MultiBoxLossParam, PriorBox
from workbench.nn.criteria.detection import encode_boxes, match_priors
from workbench.optim import Adam, MaxIteration, Optimizer

VAR = [0.1, 0.1, 0.2, 0.2]


def priors_table(fh=4, fw=4, img=32):
    """PriorBox output for a small feature map: 4 priors per cell, (1, 2, fh*fw*4*4)."""
    layer = PriorBox([8.0], [14.0], aspect_ratios=[2], variances=VAR, img_size=img)
    return layer.forward(np.zeros((1, 1, fh, fw))).astype(np.float64)


def ground_truth(seed, n, classes=3, max_boxes=3):
    rng = np.random.default_rng(seed)
    t = np.full((n, max_boxes, 6), -1.0)
    for i in range(n):
        for j in range(rng.integers(1, max_boxes + 1)):
            x, y = rng.uniform(0.05, 0.6, 2)
            w, h = rng.uniform(0.15, 0.4, 2)
            t[i, j] = (rng.integers(1, classes), 0, x, y, x + w, y + h)
    return t


def problem(seed=0, n=3, classes=3):
    priors = priors_table()
    p = priors.shape[2] // 4
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 0.5, (n, p * 4))
    conf = rng.normal(0, 1.0, (n, p * classes))
    return [loc, conf, priors], ground_truth(seed, n, classes)


# ---------------------------------------------------------------------- the reference
def reference_loss(loc, conf, priors, target, classes, thresh=0.5, ratio=3.0, neg_overlap=0.5,
                   loc_weight=1.0, bg=0):
    """Caffe-SSD's MultiBoxLoss, prior by prior and box by box."""
    p = priors.shape[2] // 4
    pb, pv = priors[0, 0].reshape(p, 4), priors[0, 1].reshape(p, 4)

    def iou(a, b):
        iw = min(a[2], b[2]) - max(a[0], b[0])
        ih = min(a[3], b[3]) - max(a[1], b[1])
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    total_loc, total_conf, matches = 0.0, 0.0, 0
    for i in range(len(loc)):
        boxes = [row for row in target[i] if row[0] >= 0]
        ov = [[iou(b[2:], pb[j]) for j in range(p)] for b in boxes]
        match = [-1] * p
        best = [max((ov[g][j] for g in range(len(boxes))), default=0.0) for j in range(p)]
        free_g, free_p = set(range(len(boxes))), set(range(p))
        while free_g:
            pair = max(((ov[g][j], g, j) for g in free_g for j in free_p), default=None)
            if pair is None or pair[0] <= 0:
                break
            _, g, j = pair
            match[j] = g
            free_g.discard(g)
            free_p.discard(j)
        for j in range(p):
            if match[j] < 0 and best[j] >= thresh:
                match[j] = int(np.argmax([ov[g][j] for g in range(len(boxes))]))
        logits = conf[i].reshape(p, classes)
        logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                                                                 keepdims=True)) \
            - logits.max(1, keepdims=True)
        pos = [j for j in range(p) if match[j] >= 0]
        for j in pos:
            b = boxes[match[j]][2:]
            pw, ph = pb[j, 2] - pb[j, 0], pb[j, 3] - pb[j, 1]
            t = [((b[0] + b[2]) / 2 - (pb[j, 0] + pb[j, 2]) / 2) / pw / pv[j, 0],
                 ((b[1] + b[3]) / 2 - (pb[j, 1] + pb[j, 3]) / 2) / ph / pv[j, 1],
                 np.log((b[2] - b[0]) / pw) / pv[j, 2], np.log((b[3] - b[1]) / ph) / pv[j, 3]]
            for k in range(4):
                d = abs(loc[i, 4 * j + k] - t[k])
                total_loc += 0.5 * d * d if d < 1 else d - 0.5
            total_conf -= logp[j, int(boxes[match[j]][0])]
        negs = sorted((-logp[j, bg], j) for j in range(p)
                      if match[j] < 0 and best[j] < neg_overlap)[::-1]
        for loss, _ in negs[:min(int(len(pos) * ratio), len(negs))]:
            total_conf += loss
        matches += len(pos)
    return (loc_weight * total_loc + total_conf) / matches if matches else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_the_reference(seed):
    (loc, conf, priors), t = problem(seed)
    got = MultiBoxLoss(n_classes=3).forward([loc, conf, priors], t)
    assert got == pytest.approx(reference_loss(loc, conf, priors, t, 3), rel=1e-12)
    heavy = MultiBoxLoss(MultiBoxLossParam(loc_weight=2.0, n_classes=3, neg_pos_ratio=1.0,
                                           overlap_threshold=0.3))
    assert heavy.forward([loc, conf, priors], t) == pytest.approx(
        reference_loss(loc, conf, priors, t, 3, thresh=0.3, ratio=1.0, loc_weight=2.0),
        rel=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_gradient_by_finite_differences(seed):
    (loc, conf, priors), t = problem(seed, n=2)
    crit = MultiBoxLoss(n_classes=3)
    crit.forward([loc, conf, priors], t)
    g_loc, g_conf, g_priors = crit.backward([loc, conf, priors], t)
    assert not g_priors.any() and g_priors.shape == priors.shape
    eps = 1e-6
    for x, analytic in ((loc, g_loc), (conf, g_conf)):
        flat, numeric = x.reshape(-1), np.zeros(x.size)
        for k in range(x.size):
            old = flat[k]
            flat[k] = old + eps
            up = crit.forward([loc, conf, priors], t)
            flat[k] = old - eps
            down = crit.forward([loc, conf, priors], t)
            flat[k] = old
            numeric[k] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic.reshape(-1), numeric, rtol=1e-5, atol=1e-8)
    # the mined negatives have a gradient, the others none
    assert 0 < np.count_nonzero(np.abs(g_conf).reshape(2, -1, 3).sum(-1)) < g_conf.size // 3


def test_float32_input_gives_float32_gradients():
    (loc, conf, priors), t = problem(4)
    g = MultiBoxLoss(n_classes=3).backward([loc.astype(np.float32), conf.astype(np.float32),
                                            priors.astype(np.float32)], t)
    assert [a.dtype for a in g] == [np.float32] * 3


def test_no_boxes_no_loss():
    (loc, conf, priors), _ = problem(0, n=2)
    empty = np.full((2, 3, 6), -1.0)
    crit = MultiBoxLoss(n_classes=3)
    assert crit.forward([loc, conf, priors], empty) == 0.0
    assert not any(g.any() for g in crit.backward([loc, conf, priors], empty))


def test_difficult_boxes_are_ignored_when_asked():
    (loc, conf, priors), t = problem(5, n=1)
    t[0, 0, 1] = 1                                       # the first box is difficult
    with_hard = MultiBoxLoss(n_classes=3).forward([loc, conf, priors], t)
    without = MultiBoxLoss(n_classes=3, use_difficult_gt=False).forward([loc, conf, priors], t)
    dropped = t.copy()
    dropped[0, 0] = -1
    assert without == pytest.approx(MultiBoxLoss(n_classes=3).forward([loc, conf, priors],
                                                                      dropped))
    assert without != pytest.approx(with_hard)


# ---------------------------------------------------------------------- matching, encoding
def test_matching_by_hand():
    priors = np.array([[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.4, .4, .6, .6]])
    boxes = np.array([[0, 0, .5, .4],          # IoU .8 with prior 0
                      [.45, .45, .55, .55]])   # small: IoU .25 with prior 3, below 0.5
    match, overlap = match_priors(priors, boxes, 0.5)
    # bipartite: box 0 takes prior 0, box 1 its best prior 3 although 0.25 < 0.5
    assert match.tolist() == [0, -1, -1, 1]
    corner = .05 * .05 / (.25 + .01 - .05 * .05)          # box 1's corner in priors 1, 2
    np.testing.assert_allclose(overlap, [0.8, corner, corner, 0.25])
    # a closer prior (IoU .89) takes box 0 in the bipartite step; prior 0 (IoU .8 >= .5)
    # still matches it after
    priors2 = np.vstack([priors, [[0, 0, .5, .45]]])
    assert match_priors(priors2, boxes, 0.5)[0].tolist() == [0, -1, -1, 1, 0]
    assert match_priors(priors2, boxes, 0.85)[0].tolist() == [-1, -1, -1, 1, 0]
    assert match_priors(priors, np.zeros((0, 4)))[0].tolist() == [-1] * 4


def test_encoding_inverts_detection_output_decoding():
    priors = priors_table()
    p = priors.shape[2] // 4
    pb, pv = priors[0, 0].reshape(p, 4), priors[0, 1].reshape(p, 4)
    box = np.array([[0.2, 0.3, 0.55, 0.5]])
    j = 37
    loc = np.zeros((1, p * 4))
    loc[0, 4 * j:4 * j + 4] = encode_boxes(box, pb[j:j + 1], pv[j:j + 1])[0]
    conf = np.full((1, p, 2), [5.0, -5.0])
    conf[0, j] = [-5.0, 5.0]                     # only prior j says "object"
    det = DetectionOutputSSD(2, conf_thresh=0.5).evaluate().forward(
        [loc, conf.reshape(1, -1), priors])
    assert det[0, 0] == 1 and det[0, 1] == 1
    np.testing.assert_allclose(det[0, 3:7], box[0], atol=1e-12)


# ---------------------------------------------------------------------- arguments, input
def test_param_config_and_bad_arguments():
    crit = MultiBoxLoss(MultiBoxLossParam(n_classes=3, neg_pos_ratio=2.0))
    again = from_config(json.loads(json.dumps(crit.get_config())))
    assert again.param.n_classes == 3 and again.param.neg_pos_ratio == 2.0
    keywords = from_config(json.loads(json.dumps(MultiBoxLoss(n_classes=4).get_config())))
    assert isinstance(keywords, MultiBoxLoss) and keywords.param.n_classes == 4
    with pytest.raises(TypeError, match="not both"):
        MultiBoxLoss(MultiBoxLossParam(), n_classes=3)
    with pytest.raises(ValueError, match="only share_location=True"):
        MultiBoxLossParam(share_location=False)
    with pytest.raises(ValueError, match="bg_label_ind must be a class id"):
        MultiBoxLossParam(n_classes=3, bg_label_ind=3)
    with pytest.raises(ValueError, match="overlap_threshold must be a number in"):
        MultiBoxLossParam(overlap_threshold=0)


def test_bad_input_and_target_name_what_they_expected():
    (loc, conf, priors), t = problem(0, n=2)
    crit = MultiBoxLoss(n_classes=3)
    with pytest.raises(ValueError, match=r"MultiBoxLoss: expected input a table \[loc"):
        crit.forward([loc, conf], t)
    with pytest.raises(ValueError, match=r"expected input .* got"):
        crit.forward([loc, conf[:, :-1], priors], t)
    with pytest.raises(ValueError, match=r"expected target \(2, G, 6\)"):
        crit.forward([loc, conf, priors], t[..., :5])
    bad = t.copy()
    bad[0, 0, 0] = 0
    with pytest.raises(LabelError, match="box label 0.0 is not an object class"):
        crit.forward([loc, conf, priors], bad)


# ---------------------------------------------------------------------- TinySSD
def test_tiny_ssd_shapes_in_training_and_evaluation():
    model = TinySSD(3, resolution=32, width=4)
    x = np.random.default_rng(0).random((2, 1, 32, 32)).astype(np.float32)
    p = 4 * (8 * 8 + 4 * 4)
    loc, conf, priors = model.forward(x)
    assert loc.shape == (2, p * 4) and conf.shape == (2, p * 3) and priors.shape == (1, 2, p * 4)
    # the priors sit in the cells' centres, in the order the heads flatten (cell, then prior)
    first = priors[0, 0, :16].reshape(4, 4)
    np.testing.assert_allclose((first[:, 0] + first[:, 2]) / 2, 2 / 32, atol=1e-6)
    model.evaluate()
    det = model.forward(x)
    assert det.ndim == 2 and det.shape[0] == 2 and (det.shape[1] - 1) % 6 == 0
    assert det[:, 0].max() <= 50
    with pytest.raises(ValueError, match="resolution must be a multiple of 8"):
        TinySSD(3, resolution=36)
    with pytest.raises(ValueError, match="class_num must be an int >= 2"):
        TinySSD(1)


def test_tiny_ssd_heads_flatten_in_the_priors_order():
    # heads that output their channel index everywhere: prior a of any cell must read the
    # channels a*4 .. a*4+3 (loc) and a*C .. a*C+C-1 (conf), as PriorBox orders cell, prior
    model = TinySSD(3, resolution=16, width=2)
    for name in ("loc1", "loc2", "conf1", "conf2"):
        head = next(m for m in model.modules() if m.name() == name)
        head.weight[...] = 0
        head.bias[...] = np.arange(head.bias.size) + (100 if name.endswith("2") else 0)
    loc, conf, priors = model.forward(np.zeros((1, 1, 16, 16), np.float32))
    cells = [(16 // 4) ** 2, (16 // 8) ** 2]
    for out, k in ((loc, 4), (conf, 3)):
        per_prior = out.reshape(-1, 4, k)                     # (cell, prior, value)
        first, second = per_prior[:cells[0]], per_prior[cells[0]:]
        want = np.arange(4 * k).reshape(4, k)
        np.testing.assert_array_equal(first, np.broadcast_to(want, first.shape))
        np.testing.assert_array_equal(second, np.broadcast_to(want + 100, second.shape))
    assert priors.shape[2] // 4 == 4 * sum(cells)


def test_tiny_ssd_learns_a_batch():
    model = TinySSD(3, resolution=32, width=8)
    rng = np.random.default_rng(1)
    x = rng.random((8, 1, 32, 32)).astype(np.float32) * 0.1
    t = np.full((8, 1, 6), -1.0)
    for i in range(8):                       # a bright square: class 1 where it is
        r, c = rng.integers(2, 20, 2)
        x[i, 0, r:r + 10, c:c + 10] = 1
        t[i, 0] = (1, 0, c / 32, r / 32, (c + 10) / 32, (r + 10) / 32)
    crit = MultiBoxLoss(n_classes=3)
    before = crit.forward(model.forward(x), t)
    Optimizer(model, (x, t), crit, MaxIteration(60), 8, Adam(0.01), progress=False).optimize()
    model.training()
    after = crit.forward(model.forward(x), t)
    assert after < 0.5 * before
