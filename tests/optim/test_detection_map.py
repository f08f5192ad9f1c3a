"""MeanAveragePrecisionObjectDetection: Pascal VOC mAP of detections, checked on cases worked
by hand, against an implementation of the VOC devkit's published algorithm (written here from
its description, independent of ours), merged across batches and computed on Spark."""
import numpy as np
import pytest

from workbench.data import Sample
from workbench.nn import Identity
from workbench.optim import MeanAveragePrecisionObjectDetection as MAP
from workbench.optim.validation import average_precision


def detections(per_image):
    """DetectionOutputSSD's layout from per-image lists of (label, score, x1, y1, x2, y2)."""
    width = max(len(d) for d in per_image)
    out = np.zeros((len(per_image), 1 + 6 * width), dtype=np.float32)
    for i, dets in enumerate(per_image):
        out[i, 0] = len(dets)
        if dets:
            out[i, 1:1 + 6 * len(dets)] = np.asarray(dets, dtype=np.float32).ravel()
    return out


def truth(per_image, rows=None):
    """(N, G, 6) ground truth from per-image lists of (label, difficult, x1, y1, x2, y2)."""
    g = rows or max(1, max(len(t) for t in per_image))
    out = np.full((len(per_image), g, 6), -1.0, dtype=np.float32)
    for i, boxes in enumerate(per_image):
        if boxes:
            out[i, :len(boxes)] = boxes
    return out


A, B, C = (0, 0, 10, 10), (20, 20, 30, 30), (40, 0, 50, 10)
NEAR_A = (1, 0, 11, 10)          # IoU with A: 90 / 110 = 0.818
HALF_A = (5, 0, 15, 10)          # IoU with A: 50 / 150 = 0.333


# ---------------------------------------------------------------------- by hand
def one_class_case():
    # 3 boxes of class 1; detections ranked: hit, miss, hit, miss -> precision 1, 1/2, 2/3, 1/2
    # at recall 1/3, 1/3, 2/3, 2/3
    out = detections([[(1, .9, *A), (1, .8, *HALF_A), (1, .7, *B), (1, .6, 60, 60, 70, 70)]])
    gt = truth([[(1, 0, *A), (1, 0, *B), (1, 0, *C)]])
    return out, gt


def test_area_ap_worked_by_hand():
    r = MAP(2, skip_class=0).batch(*one_class_case())
    # area: recall steps of 1/3 at the best precision reached beyond them: (1 + 2/3) / 3
    assert r.value == pytest.approx((1 + 2 / 3) / 3)
    assert np.isnan(r.average_precisions()[0]) and r.count == 1


def test_voc2007_eleven_points_worked_by_hand():
    r = MAP(2, use_voc2007=True, skip_class=0).batch(*one_class_case())
    # recall >= 0, .1, .2, .3: precision 1; >= .4, .5, .6: 2/3; >= .7 .. 1: nothing -> 0
    assert r.value == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)


def test_a_duplicate_is_a_false_positive():
    gt = truth([[(1, 0, *A)]])
    once = MAP(2).batch(detections([[(1, .9, *A)]]), gt)
    twice = MAP(2).batch(detections([[(1, .8, *NEAR_A), (1, .9, *A)]]), gt)
    assert once.value == 1.0
    # the best-scoring one takes the box; the second (IoU 0.82 with it) is a false positive
    assert twice.hits[1].tolist() == [True, False] and twice.scores[1].tolist() == \
        pytest.approx([.9, .8])
    assert twice.value == 1.0      # ranked after the hit, it costs no precision at recall 1
    late = MAP(2).batch(detections([[(1, .95, *NEAR_A), (1, .9, 100, 100, 110, 110)]]),
                        truth([[(1, 0, *A), (1, 0, *B)]]))
    assert late.value == pytest.approx(0.5)


def test_below_the_iou_threshold_is_a_miss_and_the_threshold_is_inclusive():
    gt = truth([[(1, 0, *A)]])
    assert MAP(2).batch(detections([[(1, .9, *HALF_A)]]), gt).value == 0.0
    assert MAP(2, iou=1 / 3).batch(detections([[(1, .9, *HALF_A)]]), gt).value == 1.0


def test_difficult_boxes_are_neither_hits_nor_misses():
    gt = truth([[(1, 0, *A), (1, 1, *B)]])
    r = MAP(2).batch(detections([[(1, .9, *B), (1, .8, *A)]]), gt)
    # the detection on the difficult box B is left out; B is not a positive either
    assert r.positives.tolist() == [0, 1] and r.hits[1].tolist() == [True]
    assert r.value == 1.0
    # an image whose only box is difficult: its class has no positives
    only = MAP(3).batch(detections([[(2, .9, *A)]]), truth([[(2, 1, *A)]]))
    assert only.positives.tolist() == [0, 0, 0] and np.isnan(only.value)


def test_a_class_without_ground_truth_is_left_out_of_the_mean():
    out = detections([[(1, .9, *A), (2, .8, *B), (3, .7, *C)]])
    gt = truth([[(1, 0, *A), (3, 0, *B)]])
    r = MAP(4, skip_class=0).batch(out, gt)
    aps = r.average_precisions()
    assert aps[1] == 1.0 and np.isnan(aps[2]) and aps[3] == 0.0
    assert r.value == pytest.approx(0.5)
    assert "1: 1.0000" in repr(r) and "2:" not in repr(r)


def test_labels_must_match_the_class_not_only_the_box():
    r = MAP(3).batch(detections([[(2, .9, *A)]]), truth([[(1, 0, *A)]]))
    assert r.average_precisions()[1] == 0.0 and r.hits[2].tolist() == [False]


def test_an_image_without_boxes_makes_its_detections_false_positives():
    out = detections([[(1, .95, *B)], [(1, .9, *A)]])
    gt = truth([[], [(1, 0, *A)]])
    assert MAP(2).batch(out, gt).value == pytest.approx(0.5)


# ---------------------------------------------------------------------- merging
def random_problem(seed, images=12, classes=4, difficult=0.15):
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for _ in range(images):
        boxes = []
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(8, 20, 2)
            boxes.append((int(rng.integers(1, classes)), int(rng.random() < difficult),
                          x, y, x + w, y + h))
        found = []
        for b in boxes:                            # a jittered copy or two, a wrong label
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 3, 4)
                label = b[0] if rng.random() < .85 else int(rng.integers(1, classes))
                found.append((label, rng.random(), *(np.asarray(b[2:]) + j)))
        for _ in range(rng.integers(0, 3)):         # clutter
            x, y = rng.uniform(0, 80, 2)
            found.append((int(rng.integers(1, classes)), rng.random(), x, y, x + 10, y + 12))
        dets.append(found)
        gts.append(boxes)
    return dets, gts


def test_partial_results_merge_to_the_whole():
    dets, gts = random_problem(3, images=20)
    out, gt = detections(dets), truth(gts)
    for voc07 in (False, True):
        m = MAP(4, use_voc2007=voc07, skip_class=0)
        whole = m.batch(out, gt)
        parts = [m.batch(out[i:i + 6], gt[i:i + 6]) for i in range(0, 20, 6)]
        merged = sum(parts)
        assert merged.count == 20
        np.testing.assert_allclose(merged.average_precisions(), whole.average_precisions())
        assert merged.value == pytest.approx(whole.value) and 0 < whole.value < 1


# ---------------------------------------------------------------------- the devkit's way
def devkit_map(dets, gts, classes, iou, use_07):
    """Pascal VOC devkit (VOCevaldet / voc_eval): per class, all detections of all images
    sorted by confidence; each takes the most overlapping box of its class in its image;
    difficult: ignored; already detected: false positive; AP from cumulative tp / fp."""
    aps = {}
    for c in range(1, classes):
        recs = {i: [b for b in g if b[0] == c] for i, g in enumerate(gts)}
        npos = sum(1 for g in recs.values() for b in g if not b[1])
        if npos == 0:
            continue
        found = {i: [False] * len(g) for i, g in recs.items()}
        cand = [(d[1], i, d[2:]) for i, ds in enumerate(dets) for d in ds if d[0] == c]
        order = sorted(range(len(cand)), key=lambda k: -cand[k][0])
        tp, fp = np.zeros(len(cand)), np.zeros(len(cand))
        for rank, k in enumerate(order):
            _, i, bb = cand[k]
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(recs[i]):
                bbgt = g[2:]
                iw = min(bb[2], bbgt[2]) - max(bb[0], bbgt[0])
                ih = min(bb[3], bbgt[3]) - max(bb[1], bbgt[1])
                if iw > 0 and ih > 0:
                    ua = ((bb[2] - bb[0]) * (bb[3] - bb[1])
                          + (bbgt[2] - bbgt[0]) * (bbgt[3] - bbgt[1]) - iw * ih)
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            if ovmax >= iou:
                if not recs[i][jmax][1]:
                    if not found[i][jmax]:
                        tp[rank], found[i][jmax] = 1, True
                    else:
                        fp[rank] = 1
            else:
                fp[rank] = 1
        # difficult matches are neither tp nor fp: they drop out of the cumulative counts
        keep = (tp + fp) > 0
        tp, fp = np.cumsum(tp[keep]), np.cumsum(fp[keep])
        rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07:
            ap = 0.0
            for t in [k / 10 for k in range(11)]:
                p = prec[rec >= t].max() if np.any(rec >= t) else 0.0
                ap += p / 11
        else:
            mrec = np.concatenate([[0.0], rec, [1.0]])
            mpre = np.concatenate([[0.0], prec, [0.0]])
            for k in range(len(mpre) - 1, 0, -1):
                mpre[k - 1] = max(mpre[k - 1], mpre[k])
            idx = np.where(mrec[1:] != mrec[:-1])[0]
            ap = np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])
        aps[c] = ap
    return aps


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
@pytest.mark.parametrize("voc07", [False, True])
def test_agrees_with_the_voc_devkit_algorithm(seed, voc07):
    dets, gts = random_problem(seed, images=25, classes=5)
    # float32 as the layer's output, so both see the same coordinates
    dets = [[tuple(np.float32(v).item() for v in d) for d in ds] for ds in dets]
    gts = [[tuple(np.float32(v).item() for v in b) for b in bs] for bs in gts]
    want = devkit_map(dets, gts, 5, 0.5, voc07)
    r = MAP(5, 0.5, voc07, 0).batch(detections(dets), truth(gts))
    got = r.average_precisions()
    assert sorted(want) == [c for c in range(5) if not np.isnan(got[c])]
    for c, ap in want.items():
        assert got[c] == pytest.approx(ap, abs=1e-12), c
    assert r.value == pytest.approx(np.mean(list(want.values())), abs=1e-12)


def test_average_precision_of_a_perfect_and_an_empty_ranking():
    assert average_precision(np.array([.9, .5]), np.array([True, True]), 2) == 1.0
    assert average_precision(np.array([]), np.array([], dtype=bool), 3) == 0.0
    assert average_precision(np.array([]), np.array([], dtype=bool), 3, True) == 0.0


# ---------------------------------------------------------------------- arguments and input
def test_bigdl_signature_and_bad_arguments():
    m = MAP(21, 0.5, True, 0)
    assert (m.classes, m.iou, m.use_voc2007, m.skip_class) == (21, 0.5, True, 0)
    m = MAP(classes=3, iou=0.7, use_voc2007=False, skip_class=-1)
    assert m.get_config()["args"]["iou"] == 0.7
    with pytest.raises(ValueError, match="iou must be a number in"):
        MAP(3, iou=0)
    with pytest.raises(ValueError, match="skip_class must be a class id in"):
        MAP(3, skip_class=3)


def test_bad_output_and_target_name_what_they_expected():
    m = MAP(3)
    with pytest.raises(ValueError, match=r"expected detections \(N, 1 \+ D \* 6\)"):
        m.batch(np.zeros((2, 5)), truth([[], []]))
    with pytest.raises(ValueError, match=r"expected ground truth \(2, G, 6\)"):
        m.batch(detections([[], []]), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="image 0 claims 2 detections"):
        m.batch(np.array([[2, 1, .5, 0, 0, 1, 1]]), truth([[]]))
    with pytest.raises(ValueError, match="detection label 5.0 is not a class id"):
        m.batch(detections([[(5, .9, *A)]]), truth([[(1, 0, *A)]]))
    with pytest.raises(ValueError, match="difficult flags must be 0 or 1"):
        m.batch(detections([[(1, .9, *A)]]), truth([[(1, 2, *A)]]))


# ---------------------------------------------------------------------- on Spark
@pytest.mark.spark
def test_distributed_evaluation_equals_the_local_one(sc):
    # the "model" passes detections through, so the records are the detections themselves
    dets, gts = random_problem(7, images=30)
    out, gt = detections(dets), truth(gts, rows=5)
    local = MAP(4, skip_class=0).batch(out, gt)
    rdd = sc.parallelize([Sample.from_ndarray(o, g) for o, g in zip(out, gt)], 3)
    (dist,) = Identity().evaluate(rdd, 7, [MAP(4, skip_class=0)])
    assert dist.count == 30
    np.testing.assert_allclose(dist.average_precisions(), local.average_precisions())
    (arrays,) = Identity().evaluate((out, gt), 8, [MAP(4, skip_class=0)])
    assert arrays.value == pytest.approx(local.value)
