"""BigDL's other 33 criteria: finite-difference gradients (float64), PyTorch parity (or the
formula computed independently with torch autograd), config round trips, bad targets / labels."""
import json
import math

import numpy as np
import pytest
from oracle import F, torch

from helpers import check_criterion_gradients, normal
import workbench.nn as nn
from workbench.nn import (
    AbsCriterion, CategoricalCrossEntropy, ClassNLLCriterion, ClassSimplexCriterion,
    CosineDistanceCriterion, CosineEmbeddingCriterion, CosineProximityCriterion, Criterion,
    DiceCoefficientCriterion, DistKLDivCriterion, DotProductCriterion, GaussianCriterion,
    HingeEmbeddingCriterion, KLDCriterion, KullbackLeiblerDivergenceCriterion, L1Cost,
    L1HingeEmbeddingCriterion, LabelError, MarginCriterion, MarginRankingCriterion,
    MeanAbsolutePercentageCriterion, MeanSquaredLogarithmicCriterion, MSECriterion,
    MultiCriterion, MultiLabelMarginCriterion, MultiLabelSoftMarginCriterion,
    MultiMarginCriterion, ParallelCriterion, PGCriterion, PoissonCriterion, SmoothL1Criterion,
    SmoothL1CriterionWithWeights, SoftMarginCriterion, SoftmaxWithCriterion, Tanh,
    TimeDistributedCriterion, TimeDistributedMaskCriterion, TransformerCriterion)
from workbench._config import ConfigError


def rng(seed):
    return np.random.default_rng(seed)


def uniform(shape, seed=0, low=0.05, high=0.95):
    return rng(seed).uniform(low, high, shape)


def signs(n, seed=0):
    return np.where(rng(seed).random(n) > 0.5, 1.0, -1.0)


def simplex_rows(shape, seed=0):
    p = uniform(shape, seed, 0.1, 1.0)
    return p / p.sum(axis=-1, keepdims=True)


def log_probs(shape, seed=0):
    return np.log(simplex_rows(shape, seed))


def one_hot(ids, c):
    return np.eye(c)[ids]


def labels(n, c, seed=0):
    return rng(seed).integers(0, c, n)


MLM_TARGET = np.array([[3, 0, -1, 1, 2], [4, -1, 0, 0, 0], [-1, 2, 2, 2, 2],
                       [0, 1, 2, 3, -1]])

# name -> (criterion factory, input, target); everything float64.  Used for the gradient
# checks and config round trips.  Inputs are regenerated per test (the checks perturb them).
CASES = {
    "CategoricalCrossEntropy": lambda: (
        CategoricalCrossEntropy(), uniform((4, 5), 1), one_hot(labels(4, 5, 2), 5)),
    "CategoricalCrossEntropy-soft": lambda: (
        CategoricalCrossEntropy(), simplex_rows((4, 5), 3), simplex_rows((4, 5), 4)),
    "MultiLabelSoftMargin": lambda: (
        MultiLabelSoftMarginCriterion(), normal((4, 5), 5), (uniform((4, 5), 6) > 0.5) * 1.0),
    "MultiLabelSoftMargin-weights-sum": lambda: (
        MultiLabelSoftMarginCriterion([0.5, 1, 2, 1, 3], False), 2 * normal((4, 5), 7),
        (uniform((4, 5), 8) > 0.5) * 1.0),
    "MultiMargin": lambda: (MultiMarginCriterion(), normal((5, 4), 9), labels(5, 4, 10)),
    "MultiMargin-p2-weights": lambda: (
        MultiMarginCriterion(2, [1.0, 2.0, 0.5, 1.5], 0.7, False), normal((5, 4), 11),
        labels(5, 4, 12)),
    "MultiMargin-single": lambda: (MultiMarginCriterion(), normal((4,), 13), np.array(2)),
    "MultiLabelMargin": lambda: (MultiLabelMarginCriterion(), normal((4, 5), 14), MLM_TARGET),
    "MultiLabelMargin-1based-sum": lambda: (
        MultiLabelMarginCriterion(False, False), normal((4, 5), 15), MLM_TARGET + 1),
    "SoftMargin": lambda: (SoftMarginCriterion(), normal((4, 3), 16), signs(12, 17).reshape(4, 3)),
    "Margin": lambda: (MarginCriterion(), normal((6,), 18), signs(6, 19)),
    "Margin-squared-sum": lambda: (MarginCriterion(0.5, False, True), normal((3, 4), 20),
                                   signs(12, 21).reshape(3, 4)),
    "ClassSimplex": lambda: (ClassSimplexCriterion(5), normal((4, 5), 22), labels(4, 5, 23)),
    "SoftmaxWith": lambda: (SoftmaxWithCriterion(), normal((2, 4, 3, 2), 24),
                            labels(12, 4, 25).reshape(2, 1, 3, 2)),
    "SoftmaxWith-ignore-full": lambda: (
        SoftmaxWithCriterion(2, "FULL"), normal((2, 4, 3), 26), labels(6, 4, 27).reshape(2, 3)),
    "Abs": lambda: (AbsCriterion(), normal((4, 3), 28), normal((4, 3), 29)),
    "Abs-sum": lambda: (AbsCriterion(False), normal((5,), 30), normal((5,), 31)),
    "SmoothL1": lambda: (SmoothL1Criterion(), 2 * normal((4, 3), 32), normal((4, 3), 33)),
    "SmoothL1WithWeights": lambda: (
        SmoothL1CriterionWithWeights(2.0), normal((3, 4), 34),
        [normal((3, 4), 35), uniform((3, 4), 36), uniform((3, 4), 37)]),
    "SmoothL1WithWeights-num": lambda: (
        SmoothL1CriterionWithWeights(0.8, 5), 2 * normal((3, 4), 38), [normal((3, 4), 39)]),
    "MeanAbsolutePercentage": lambda: (
        MeanAbsolutePercentageCriterion(), normal((4, 3), 40), normal((4, 3), 41)),
    "MeanSquaredLogarithmic": lambda: (
        MeanSquaredLogarithmicCriterion(), uniform((4, 3), 42, 0.1, 3), uniform((4, 3), 43, 0, 3)),
    "Poisson": lambda: (PoissonCriterion(), uniform((4, 3), 44, 0.2, 3),
                        rng(45).integers(0, 5, (4, 3)) * 1.0),
    "L1Cost": lambda: (L1Cost(), normal((3, 4), 46), None),
    "CosineEmbedding": lambda: (
        CosineEmbeddingCriterion(0.1), [normal((6, 4), 47), normal((6, 4), 48)],
        np.array([1, -1, -1, 1, -1, -1.0])),
    "CosineEmbedding-single-sum": lambda: (
        CosineEmbeddingCriterion(-0.5, False), [normal((4,), 49), normal((4,), 50)],
        [np.array([-1.0])]),
    "CosineDistance": lambda: (CosineDistanceCriterion(), normal((3, 4), 51), normal((3, 4), 52)),
    "CosineDistance-single": lambda: (
        CosineDistanceCriterion(False), normal((5,), 53), normal((5,), 54)),
    "CosineProximity": lambda: (CosineProximityCriterion(), normal((3, 4), 55), normal((3, 4), 56)),
    "HingeEmbedding": lambda: (HingeEmbeddingCriterion(), uniform((4, 3), 57, 0, 2),
                               signs(12, 58).reshape(4, 3)),
    "HingeEmbedding-sum": lambda: (HingeEmbeddingCriterion(1.5, False), uniform((5,), 59, 0, 2),
                                   signs(5, 60)),
    "L1HingeEmbedding": lambda: (
        L1HingeEmbeddingCriterion(), [normal((4,), 61), normal((4,), 62)], np.array([1.0])),
    "L1HingeEmbedding-batch": lambda: (
        L1HingeEmbeddingCriterion(4.0), [normal((3, 4), 63), normal((3, 4), 64)],
        np.array([-1.0, 1.0, -1.0])),
    "MarginRanking": lambda: (
        MarginRankingCriterion(), [normal((6,), 65), normal((6,), 66)], signs(6, 67)),
    "MarginRanking-sum": lambda: (
        MarginRankingCriterion(0.3, False), [normal((5, 1), 68), normal((5, 1), 69)],
        [signs(5, 70)]),
    "DotProduct": lambda: (DotProductCriterion(), normal((3, 4), 71), normal((3, 4), 72)),
    "DotProduct-average": lambda: (DotProductCriterion(True), normal((3, 4), 73),
                                   normal((3, 4), 74)),
    "DistKLDiv": lambda: (DistKLDivCriterion(), log_probs((3, 4), 75), simplex_rows((3, 4), 76)),
    "DistKLDiv-sum": lambda: (DistKLDivCriterion(False), log_probs((3, 4), 77),
                              simplex_rows((3, 4), 78) * (uniform((3, 4), 79) > 0.3)),
    "KullbackLeiblerDivergence": lambda: (
        KullbackLeiblerDivergenceCriterion(), simplex_rows((3, 4), 80), simplex_rows((3, 4), 81)),
    "KLD": lambda: (KLDCriterion(), [normal((3, 4), 82), normal((3, 4), 83)], None),
    "KLD-sum": lambda: (KLDCriterion(False), [normal((3, 4), 84), normal((3, 4), 85)], None),
    "Gaussian": lambda: (GaussianCriterion(), [normal((3, 4), 86), normal((3, 4), 87)],
                         normal((3, 4), 88)),
    "DiceCoefficient": lambda: (DiceCoefficientCriterion(), uniform((3, 2, 3), 89),
                                (uniform((3, 2, 3), 90) > 0.5) * 1.0),
    "DiceCoefficient-single-sum": lambda: (
        DiceCoefficientCriterion(False, 0.5), uniform((6,), 91), (uniform((6,), 92) > 0.5) * 1.0),
    "PG": lambda: (PGCriterion(), simplex_rows((3, 4), 93),
                   one_hot(labels(3, 4, 94), 4) * normal((3, 1), 95)),
    "PG-average": lambda: (PGCriterion(True), simplex_rows((3, 4), 96),
                           one_hot(labels(3, 4, 97), 4) * normal((3, 1), 98)),
    "Multi": lambda: (MultiCriterion().add(MSECriterion()).add(AbsCriterion(), 0.5),
                      normal((3, 4), 99), normal((3, 4), 100)),
    "Parallel": lambda: (ParallelCriterion().add(MSECriterion(), 0.5).add(ClassNLLCriterion(), 2),
                         [normal((3, 4), 101), log_probs((3, 5), 102)],
                         [normal((3, 4), 103), labels(3, 5, 104)]),
    "Parallel-repeat": lambda: (ParallelCriterion(True).add(MSECriterion()).add(AbsCriterion(), 3),
                                [normal((3, 4), 105), normal((3, 4), 106)], normal((3, 4), 107)),
    "TimeDistributed": lambda: (TimeDistributedCriterion(ClassNLLCriterion()),
                                log_probs((3, 4, 5), 108), labels(12, 5, 109).reshape(3, 4)),
    "TimeDistributed-average-dim3": lambda: (
        TimeDistributedCriterion(MSECriterion(), True, 3), normal((2, 3, 4), 110),
        normal((2, 3, 4), 111)),
    "TimeDistributedMask": lambda: (
        TimeDistributedMaskCriterion(ClassNLLCriterion()), log_probs((3, 4, 5), 112),
        np.array([[2, 0, -1, -1], [4, 4, 1, -1], [-1, 3, 3, 0]])),
    "Transformer": lambda: (TransformerCriterion(MSECriterion(), Tanh(), Tanh()),
                            normal((3, 4), 113), normal((3, 4), 114)),
    "Transformer-input-only": lambda: (TransformerCriterion(AbsCriterion(), Tanh()),
                                       normal((3, 4), 115), uniform((3, 4), 116, -0.9, 0.9)),
}

CLASSES = {name.split("-")[0] for name in CASES}


def test_every_bigdl_criterion_is_exported_and_covered():
    bigdl = """ClassNLLCriterion CrossEntropyCriterion MSECriterion BCECriterion
        CategoricalCrossEntropy MultiLabelSoftMarginCriterion MultiMarginCriterion
        MultiLabelMarginCriterion SoftMarginCriterion MarginCriterion ClassSimplexCriterion
        SoftmaxWithCriterion AbsCriterion SmoothL1Criterion SmoothL1CriterionWithWeights
        MeanAbsolutePercentageCriterion MeanSquaredLogarithmicCriterion PoissonCriterion L1Cost
        CosineEmbeddingCriterion CosineDistanceCriterion CosineProximityCriterion
        HingeEmbeddingCriterion L1HingeEmbeddingCriterion MarginRankingCriterion
        DotProductCriterion DistKLDivCriterion KullbackLeiblerDivergenceCriterion KLDCriterion
        GaussianCriterion DiceCoefficientCriterion PGCriterion MultiCriterion ParallelCriterion
        TimeDistributedCriterion TimeDistributedMaskCriterion TransformerCriterion""".split()
    assert len(bigdl) == 37
    for name in bigdl:
        assert issubclass(getattr(nn, name), Criterion), name
    covered = {type(CASES[k]()[0]).__name__ for k in CASES}
    assert covered == set(bigdl[4:])


# ---------------------------------------------------------------------- gradient checks (float64)

@pytest.mark.parametrize("case", list(CASES))
def test_gradients(case):
    crit, x, t = CASES[case]()
    check_criterion_gradients(crit, x, t)


@pytest.mark.parametrize("case", list(CASES))
def test_backward_keeps_float32(case):
    crit, x, t = CASES[case]()
    x32 = [a.astype(np.float32) for a in x] if isinstance(x, list) else x.astype(np.float32)
    loss = crit.forward(x32, t)
    grad = crit.backward(x32, t)
    assert isinstance(loss, float) and math.isfinite(loss)
    for g, a in zip(grad if isinstance(grad, list) else [grad],
                    x32 if isinstance(x32, list) else [x32]):
        assert g.shape == a.shape and g.dtype == np.float32


# ---------------------------------------------------------------------- PyTorch parity (float32)

def _torch(x):
    if isinstance(x, list):
        return [_torch(a) for a in x]
    return torch.from_numpy(np.array(x, np.float32)).requires_grad_()


def _f32(x):
    return [_f32(a) for a in x] if isinstance(x, list) else np.array(x, np.float32)


def _grads(t):
    return [_grads(a) for a in t] if isinstance(t, list) else t.grad.numpy()


def assert_parity(crit, x, target, torch_loss, rtol=1e-5, atol=1e-6):
    """``crit`` on float32 ``x`` matches ``torch_loss(torch tensors of x)`` and its autograd."""
    x = _f32(x)
    tx = _torch(x)
    ref = torch_loss(tx)
    ref.backward()
    loss = crit.forward(x, target)
    gi = crit.backward(x, target)
    np.testing.assert_allclose(loss, ref.item(), rtol=rtol, atol=atol)
    for g, r in zip(gi if isinstance(gi, list) else [gi], _grads(tx) if isinstance(tx, list)
                    else [_grads(tx)]):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol)


def T(a, dtype=None):
    return torch.as_tensor(np.asarray(a), dtype=torch.float32 if dtype is None else dtype)


def red(size_average):
    return "mean" if size_average else "sum"


@pytest.mark.oracle
def test_categorical_cross_entropy_matches_torch():
    p, y = simplex_rows((8, 5), 200), one_hot(labels(8, 5, 201), 5)
    assert_parity(CategoricalCrossEntropy(), p, y,
                  lambda t: F.cross_entropy(torch.log(t), T(y)))


def test_categorical_cross_entropy_equals_bigdl_cross_entropy_of_log_for_one_hot():
    # BigDL: CrossEntropyCriterion(log(p), argmax(t)); also for unnormalized p
    p, ids = uniform((6, 4), 202), labels(6, 4, 203)
    ce = nn.CrossEntropyCriterion()
    cce = CategoricalCrossEntropy()
    assert np.isclose(cce.forward(p, one_hot(ids, 4)), ce.forward(np.log(p), ids))
    np.testing.assert_allclose(cce.backward(p, one_hot(ids, 4)),
                               ce.backward(np.log(p), ids) / p, rtol=1e-10)


@pytest.mark.oracle
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0, 1.0, 3.0]])
@pytest.mark.parametrize("size_average", [True, False])
def test_multilabel_soft_margin_matches_torch(weights, size_average):
    x, y = 3 * normal((6, 5), 204), (uniform((6, 5), 205) > 0.5) * 1.0
    w = None if weights is None else T(weights)
    # torch averages each sample over its C classes first; BigDL's sum is over all elements
    c = 1 if size_average else 5
    assert_parity(MultiLabelSoftMarginCriterion(weights, size_average), x, y,
                  lambda t: c * F.multilabel_soft_margin_loss(t, T(y), weight=w,
                                                              reduction=red(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 1.5]])
@pytest.mark.parametrize("size_average", [True, False])
def test_multi_margin_matches_torch(p, weights, size_average):
    x, y = normal((8, 4), 206), labels(8, 4, 207)
    w = None if weights is None else T(weights)
    assert_parity(MultiMarginCriterion(p, weights, 0.8, size_average), x, y,
                  lambda t: F.multi_margin_loss(t, T(y, torch.long), p, 0.8, w,
                                                reduction=red(size_average)))


def test_multi_margin_one_based_labels():
    x, y = normal((6, 4), 290), labels(6, 4, 291)
    zero = MultiMarginCriterion(2, [1.0, 2.0, 0.5, 1.5])
    one = MultiMarginCriterion(2, [1.0, 2.0, 0.5, 1.5], zero_based_label=False)
    assert zero.forward(x, y) == one.forward(x, y + 1)
    np.testing.assert_array_equal(zero.backward(x, y), one.backward(x, y + 1))
    with pytest.raises(LabelError, match=r"label 0.0 at index 0 is out of range \[1, 4\]"):
        one.forward(x, np.zeros(6))


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [True, False])
def test_multilabel_margin_matches_torch(size_average):
    x = normal((4, 5), 208)
    assert_parity(MultiLabelMarginCriterion(size_average), x, MLM_TARGET,
                  lambda t: F.multilabel_margin_loss(t, T(MLM_TARGET, torch.long),
                                                     reduction=red(size_average)))


def test_multilabel_margin_one_based_labels_end_at_zero():
    x = normal((4, 5), 209)
    zero, one = MultiLabelMarginCriterion(), MultiLabelMarginCriterion(zero_based_label=False)
    assert zero.forward(x, MLM_TARGET) == one.forward(x, MLM_TARGET + 1)
    np.testing.assert_array_equal(zero.backward(x, MLM_TARGET), one.backward(x, MLM_TARGET + 1))


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [True, False])
def test_soft_margin_matches_torch(size_average):
    x, y = 3 * normal((5, 3), 210), signs(15, 211).reshape(5, 3)
    assert_parity(SoftMarginCriterion(size_average), x, y,
                  lambda t: F.soft_margin_loss(t, T(y), reduction=red(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("margin, size_average, squared", [(1.0, True, False),
                                                           (0.5, False, True)])
def test_margin_matches_formula(margin, size_average, squared):
    x, y = normal((5, 3), 212), signs(15, 213).reshape(5, 3)

    def ref(t):
        h = torch.relu(margin - t * T(y))
        h = h * h if squared else h
        return h.mean() if size_average else h.sum()
    assert_parity(MarginCriterion(margin, size_average, squared), x, y, ref)


@pytest.mark.oracle
def test_class_simplex_is_a_regular_simplex_and_mse_to_its_vertex():
    c = 5
    crit = ClassSimplexCriterion(c)
    s = crit.simplex
    assert s.shape == (c, c) and np.allclose(s[:, -1], 0)
    expected = np.full((c, c), -1 / (c - 1))
    np.fill_diagonal(expected, 1)
    np.testing.assert_allclose(s @ s.T, expected, atol=1e-12)   # unit vectors, equal angles
    x, y = normal((6, c), 214), labels(6, c, 215)
    assert_parity(crit, x, y, lambda t: F.mse_loss(t, T(s[y])))
    one = ClassSimplexCriterion(c, zero_based_label=False)
    assert one.forward(x, y + 1) == crit.forward(x, y)
    assert repr(crit) == "nn.ClassSimplexCriterion(5)"


@pytest.mark.oracle
@pytest.mark.parametrize("ignore, mode", [(None, "VALID"), (1, "VALID"), (1, "FULL"),
                                          (0, "BATCH_SIZE"), (None, "NONE")])
def test_softmax_with_matches_torch(ignore, mode):
    x, y = normal((2, 4, 3, 2), 216), labels(12, 4, 217).reshape(2, 1, 3, 2)
    valid = 12 if ignore is None else int((y != ignore).sum())
    norm = {"VALID": valid, "FULL": 12, "BATCH_SIZE": 2, "NONE": 1}[mode]
    ti = -100 if ignore is None else ignore
    assert_parity(SoftmaxWithCriterion(ignore, mode), x, y,
                  lambda t: F.cross_entropy(t, T(y[:, 0], torch.long), ignore_index=ti,
                                            reduction="sum") / norm)


def test_softmax_with_one_based_labels_and_plain_batches():
    x, y = normal((6, 4), 218), labels(6, 4, 219)
    zero = SoftmaxWithCriterion()
    assert np.isclose(zero.forward(x, y), nn.CrossEntropyCriterion().forward(x, y))
    one = SoftmaxWithCriterion(ignore_label=0, zero_based_label=False)
    y1 = (y + 1) * (np.arange(6) % 3 != 0)          # label 0 = ignored, as a 1-based user would
    keep = y1 != 0
    assert np.isclose(one.forward(x, y1), nn.CrossEntropyCriterion().forward(x[keep], y[keep]))


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [True, False])
def test_abs_matches_torch(size_average):
    x, y = normal((5, 3), 220), normal((5, 3), 221)
    assert_parity(AbsCriterion(size_average), x, y,
                  lambda t: F.l1_loss(t, T(y), reduction=red(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [True, False])
def test_smooth_l1_matches_torch(size_average):
    x, y = 2 * normal((5, 3), 222), normal((5, 3), 223)
    assert_parity(SmoothL1Criterion(size_average), x, y,
                  lambda t: F.smooth_l1_loss(t, T(y), reduction=red(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("sigma, num", [(1.0, 0), (2.0, 0), (0.7, 6)])
def test_smooth_l1_with_weights_matches_torch(sigma, num):
    x, gt = 2 * normal((4, 3), 224), normal((4, 3), 225)
    w_in, w_out = uniform((4, 3), 226), uniform((4, 3), 227)
    norm = num or 4

    def ref(t):
        d = (t - T(gt)) * T(w_in)
        per = F.smooth_l1_loss(d, torch.zeros_like(d), beta=1 / sigma ** 2, reduction="none")
        return (per * T(w_out)).sum() / norm
    assert_parity(SmoothL1CriterionWithWeights(sigma, num), x, [gt, w_in, w_out], ref)
    # no weights: a bare gt (or [gt]) is plain smooth L1 summed over the batch size
    crit = SmoothL1CriterionWithWeights(1.0)
    assert np.isclose(crit.forward(x, gt), SmoothL1Criterion(False).forward(x, gt) / 4)


@pytest.mark.oracle
def test_mean_absolute_percentage_matches_keras_formula():
    x, y = normal((5, 3), 228), normal((5, 3), 229)
    y[0, 0] = 0.0            # clipped to 1e-7
    assert_parity(MeanAbsolutePercentageCriterion(), x, y,
                  lambda t: 100 * torch.mean(torch.abs(T(y) - t)
                                             / torch.clamp(torch.abs(T(y)), min=1e-7)),
                  rtol=1e-5, atol=1e-2)


@pytest.mark.oracle
def test_mean_squared_logarithmic_matches_keras_formula():
    x, y = uniform((5, 3), 230, -0.5, 3), uniform((5, 3), 231, 0, 3)
    assert (x < 1e-7).any()    # clipped inputs get a zero gradient, as in keras
    assert_parity(MeanSquaredLogarithmicCriterion(), x, y,
                  lambda t: torch.mean((torch.log(torch.clamp(T(y), min=1e-7) + 1)
                                        - torch.log(torch.clamp(t, min=1e-7) + 1)) ** 2))


@pytest.mark.oracle
def test_poisson_matches_torch():
    x, y = uniform((5, 3), 232, 0.1, 4), rng(233).integers(0, 6, (5, 3)) * 1.0
    assert_parity(PoissonCriterion(), x, y,
                  lambda t: F.poisson_nll_loss(t, T(y), log_input=False, eps=1e-7))


@pytest.mark.oracle
def test_l1_cost_matches_formula_and_ignores_target():
    x = normal((4, 3), 234)
    assert_parity(L1Cost(), x, None, lambda t: t.abs().sum())
    assert L1Cost().forward(x, np.zeros(7)) == L1Cost().forward(x, None)


@pytest.mark.oracle
@pytest.mark.parametrize("margin, size_average", [(0.0, True), (0.3, False), (-0.4, True)])
def test_cosine_embedding_matches_torch(margin, size_average):
    x1, x2, y = normal((8, 5), 235), normal((8, 5), 236), signs(8, 237)
    assert_parity(CosineEmbeddingCriterion(margin, size_average), [x1, x2], y,
                  lambda t: F.cosine_embedding_loss(t[0], t[1], T(y), margin,
                                                    reduction=red(size_average)))


@pytest.mark.oracle
def test_cosine_distance_matches_torch():
    x, y = normal((6, 5), 238), normal((6, 5), 239)
    assert_parity(CosineDistanceCriterion(), x, y,
                  lambda t: F.cosine_embedding_loss(t, T(y), torch.ones(6)))
    # BigDL's doc example
    loss = CosineDistanceCriterion().forward(np.array([1.0, 2, 3, 4, 5]),
                                             np.array([5.0, 4, 3, 2, 1]))
    assert np.isclose(loss, 1 - 35 / 55)


@pytest.mark.oracle
def test_cosine_proximity_matches_formula():
    x, y = normal((4, 5), 240), normal((4, 5), 241)
    x[1] = 0.0             # a zero row: the norm is floored at 1e-12 (as Keras / BigDL)
    assert_parity(CosineProximityCriterion(), x, y,
                  lambda t: -torch.mean(F.normalize(t, dim=-1, eps=1e-6)
                                        * F.normalize(T(y), dim=-1, eps=1e-6)))


@pytest.mark.oracle
@pytest.mark.parametrize("margin, size_average", [(1.0, True), (1.5, False)])
def test_hinge_embedding_matches_torch(margin, size_average):
    x, y = uniform((5, 3), 242, 0, 2.5), signs(15, 243).reshape(5, 3)
    assert_parity(HingeEmbeddingCriterion(margin, size_average), x, y,
                  lambda t: F.hinge_embedding_loss(t, T(y), margin, reduction=red(size_average)))


@pytest.mark.oracle
def test_l1_hinge_embedding_matches_formula_and_bigdl_example():
    x1, x2, y = normal((4, 3), 244), normal((4, 3), 245), np.array([1.0, -1, -1, 1])

    def ref(t):
        d = (t[0] - t[1]).abs().sum(dim=1)
        return torch.where(T(y) == 1, d, torch.relu(5.0 - d)).sum()
    assert_parity(L1HingeEmbeddingCriterion(5.0), [x1, x2], y, ref)
    loss = L1HingeEmbeddingCriterion().forward([np.array([2.1, -2.2]), np.array([-0.55, 0.298])],
                                               np.array([1.0]))
    assert np.isclose(loss, 5.148)


@pytest.mark.oracle
@pytest.mark.parametrize("margin, size_average", [(1.0, True), (0.2, False)])
def test_margin_ranking_matches_torch(margin, size_average):
    x1, x2, y = normal((7,), 246), normal((7,), 247), signs(7, 248)
    assert_parity(MarginRankingCriterion(margin, size_average), [x1, x2], [y],
                  lambda t: F.margin_ranking_loss(t[0], t[1], T(y), margin,
                                                  reduction=red(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [False, True])
def test_dot_product_matches_formula(size_average):
    x, y = normal((4, 3), 249), normal((4, 3), 250)
    assert_parity(DotProductCriterion(size_average), x, y,
                  lambda t: (t * T(y)).sum() / (4 if size_average else 1))


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("size_average", [True, False])
def test_dist_kl_div_matches_torch(size_average):
    x, y = log_probs((4, 5), 251), simplex_rows((4, 5), 252)
    y[0, 1] = 0.0
    assert_parity(DistKLDivCriterion(size_average), x, y,
                  lambda t: F.kl_div(t, T(y), reduction=red(size_average)))


@pytest.mark.oracle
def test_kullback_leibler_divergence_matches_keras_formula():
    x, y = simplex_rows((4, 5), 253), simplex_rows((4, 5), 254)
    assert_parity(KullbackLeiblerDivergenceCriterion(), x, y,
                  lambda t: torch.sum(T(y) * torch.log(torch.clamp(T(y), 1e-8, 1)
                                                       / torch.clamp(t, 1e-8, 1))) / 4)


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [True, False])
def test_kld_matches_formula(size_average):
    mean, log_var = normal((4, 3), 255), normal((4, 3), 256)
    assert_parity(KLDCriterion(size_average), [mean, log_var], None,
                  lambda t: -0.5 * torch.sum(1 + t[1] - t[0] ** 2 - t[1].exp())
                  / (4 if size_average else 1))


@pytest.mark.oracle
def test_gaussian_matches_torch_gaussian_nll():
    mean, log_var, x = normal((4, 3), 257), normal((4, 3), 258), normal((4, 3), 259)
    assert_parity(GaussianCriterion(), [mean, log_var], x,
                  lambda t: F.gaussian_nll_loss(t[0], T(x), t[1].exp(), full=True,
                                                eps=1e-30, reduction="sum"), rtol=1e-5,
                  atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("size_average, eps", [(True, 1.0), (False, 0.1)])
def test_dice_coefficient_matches_formula(size_average, eps):
    x, y = uniform((3, 2, 4), 260), (uniform((3, 2, 4), 261) > 0.5) * 1.0

    def ref(t):
        a, b = t.reshape(3, -1), T(y).reshape(3, -1)
        loss = 1 - (2 * (a * b).sum(1) + eps) / (a.sum(1) + b.sum(1) + eps)
        return loss.sum() / (3 if size_average else 1)
    assert_parity(DiceCoefficientCriterion(size_average, eps), x, y, ref)


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [False, True])
def test_pg_matches_formula(size_average):
    p = simplex_rows((4, 5), 262)
    r = one_hot(labels(4, 5, 263), 5) * normal((4, 1), 264)
    p[r == 0] *= 0.0 if size_average else 1.0     # zero probability off the taken actions is fine
    assert_parity(PGCriterion(size_average), p, r,
                  lambda t: -(T(r) * torch.log(torch.where(T(r) != 0, t, torch.ones_like(t))))
                  .sum() / (4 if size_average else 1))
    assert PGCriterion(size_average=True).size_average
    assert PGCriterion(sizeAverage=True).size_average


@pytest.mark.oracle
def test_multi_and_parallel_match_torch():
    x, y = normal((4, 3), 265), normal((4, 3), 266)
    assert_parity(MultiCriterion().add(MSECriterion()).add(AbsCriterion(), 0.5), x, y,
                  lambda t: F.mse_loss(t, T(y)) + 0.5 * F.l1_loss(t, T(y)))
    lp, ids = log_probs((4, 5), 267), labels(4, 5, 268)
    assert_parity(ParallelCriterion().add(MSECriterion(), 0.5).add(ClassNLLCriterion(), 2.0),
                  [x, lp], [y, ids],
                  lambda t: 0.5 * F.mse_loss(t[0], T(y)) + 2 * F.nll_loss(t[1], T(ids, torch.long)))


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [False, True])
def test_time_distributed_matches_torch(size_average):
    x, y = log_probs((3, 4, 5), 269), labels(12, 5, 270).reshape(3, 4)
    assert_parity(TimeDistributedCriterion(ClassNLLCriterion(), size_average), x, y,
                  lambda t: F.nll_loss(t.permute(0, 2, 1), T(y, torch.long), reduction="none")
                  .mean(0).sum() / (4 if size_average else 1))


@pytest.mark.oracle
def test_time_distributed_mask_matches_torch_ignore_index():
    x = log_probs((3, 4, 5), 271)
    y = np.array([[2, 0, -1, -1], [4, 4, 1, -1], [-1, 3, 3, 0]])
    assert_parity(TimeDistributedMaskCriterion(ClassNLLCriterion()), x, y,
                  lambda t: F.nll_loss(t.reshape(-1, 5), T(y.reshape(-1), torch.long),
                                       ignore_index=-1))
    # BigDL's default padding 0 with its 1-based labels: the same loss
    bigdl = TimeDistributedMaskCriterion(ClassNLLCriterion(zero_based_label=False))
    assert np.isclose(bigdl.forward(x, y + 1),
                      TimeDistributedMaskCriterion(ClassNLLCriterion()).forward(x, y))
    y4 = np.array([[2, 0, 4, 4], [1, 1, 1, 4], [4, 3, 3, 0]])
    assert_parity(TimeDistributedMaskCriterion(ClassNLLCriterion(), padding_value=4), x, y4,
                  lambda t: F.nll_loss(t.reshape(-1, 5), T(y4.reshape(-1), torch.long),
                                       ignore_index=4))
    all_padded = np.full((3, 4), -1)
    assert TimeDistributedMaskCriterion(ClassNLLCriterion()).forward(x, all_padded) == 0.0
    assert not TimeDistributedMaskCriterion(ClassNLLCriterion()).backward(x, all_padded).any()


@pytest.mark.oracle
def test_transformer_matches_torch_and_leaves_transformer_params_alone():
    x, y = normal((4, 3), 272), normal((4, 3), 273)
    assert_parity(TransformerCriterion(MSECriterion(), Tanh(), Tanh()), x, y,
                  lambda t: F.mse_loss(torch.tanh(t), torch.tanh(T(y))))
    lin = nn.Linear(3, 2)
    lin.zero_grad_parameters()
    crit = TransformerCriterion(MSECriterion(), lin, lin)
    g = crit.backward(x, y)
    assert g.shape == x.shape and not lin.grad_weight.any()


# ---------------------------------------------------------------------- labels and bad targets

BAD = [
    (CategoricalCrossEntropy(), uniform((3, 4)), labels(3, 4), ValueError,
     r"CategoricalCrossEntropy: expected a target of the input's shape \(3, 4\), got \(3\)"),
    (CategoricalCrossEntropy(), uniform((3, 4)) - 2, one_hot([0, 1, 2], 4), ValueError,
     r"CategoricalCrossEntropy: expected non-negative probabilities, got -1\.\d+"),
    (MultiLabelSoftMarginCriterion(), normal((3, 4)), np.full((3, 4), 2.0), LabelError,
     r"MultiLabelSoftMarginCriterion: targets must be in \[0, 1\], got 2\.0"),
    (MultiLabelSoftMarginCriterion([1.0, 2.0]), normal((3, 4)), np.ones((3, 4)), ValueError,
     r"MultiLabelSoftMarginCriterion: weights of shape \(2,\) do not broadcast to the input "
     r"\(3, 4\)"),
    (MultiMarginCriterion(), normal((3, 4)), [0, 4, 1], LabelError,
     r"MultiMarginCriterion: label 4 at index 1 is out of range \[0, 3\] for 4 classes"),
    (MultiMarginCriterion(weights=[1.0, 2.0]), normal((3, 4)), [0, 1, 1], ValueError,
     r"MultiMarginCriterion: weights of shape \(2,\) do not match the 4 classes"),
    (MultiLabelMarginCriterion(), normal((3, 4)), [0, 1, 2], ValueError,
     r"MultiLabelMarginCriterion: expected a target of class ids of the input's shape "
     r"\(3, 4\), got \(3\)"),
    (MultiLabelMarginCriterion(), normal((2, 4)), [[0, 5, -1, 0], [1, -1, 0, 0]], LabelError,
     r"MultiLabelMarginCriterion: label 5 at \[0, 1\] is out of range \[0, 3\] for 4 classes"),
    (SoftMarginCriterion(), normal((2, 3)), np.ones((2, 2)), ValueError,
     r"SoftMarginCriterion: expected a target of the input's shape \(2, 3\), got \(2, 2\)"),
    (SoftMarginCriterion(), normal((4,)), np.array([1, 0, 1, -1]), LabelError,
     r"SoftMarginCriterion: labels must be 1 or -1, got 0"),
    (MarginCriterion(), normal((4,)), np.array([1.0, 0.0, 1.0, -1.0]), LabelError,
     r"MarginCriterion: labels must be 1 or -1, got 0\.0"),
    (ClassSimplexCriterion(3), normal((2, 4)), [0, 1], ValueError,
     r"ClassSimplexCriterion: expected input \(N, 3\) or \(3,\), got \(2, 4\)"),
    (ClassSimplexCriterion(3), normal((2, 3)), [1, 3], LabelError,
     r"ClassSimplexCriterion: label 3 at index 1 is out of range \[0, 2\] .*1-based"),
    (SoftmaxWithCriterion(), normal((2, 3, 2)), np.zeros((2, 3)), ValueError,
     r"SoftmaxWithCriterion: expected a target of 4 class ids, shape \(2, 1, 2\), got \(2, 3\)"),
    (SoftmaxWithCriterion(), normal((2, 3, 2)), np.array([[0, 3], [1, 1]]), LabelError,
     r"SoftmaxWithCriterion: label 3 at index 1 is out of range \[0, 2\]"),
    (AbsCriterion(), normal((2, 3)), np.ones(5), ValueError,
     r"AbsCriterion: expected a target of the input's shape \(2, 3\), got \(5\)"),
    (SmoothL1Criterion(), normal((2, 3)), "y", ValueError,
     r"SmoothL1Criterion: expected a target of the input's shape \(2, 3\), got str"),
    (SmoothL1CriterionWithWeights(1.0), normal((2, 3)), [np.ones(6), np.ones(6)], ValueError,
     r"SmoothL1CriterionWithWeights: expected target \[gt\] or \[gt, w_in, w_out\], got a "
     r"table of 2"),
    (SmoothL1CriterionWithWeights(1.0), normal((2, 3)), [np.ones(5)], ValueError,
     r"SmoothL1CriterionWithWeights: expected target tensors of the input's size 6"),
    (MeanAbsolutePercentageCriterion(), normal((2, 3)), np.ones((3, 2)), ValueError,
     r"MeanAbsolutePercentageCriterion: expected a target of the input's shape"),
    (MeanSquaredLogarithmicCriterion(), normal((2, 3)), np.ones(2), ValueError,
     r"MeanSquaredLogarithmicCriterion: expected a target of the input's shape"),
    (PoissonCriterion(), uniform((2, 3)), np.ones((2, 2)), ValueError,
     r"PoissonCriterion: expected a target of the input's shape"),
    (PoissonCriterion(), -uniform((2, 3)), np.ones((2, 3)), ValueError,
     r"PoissonCriterion: expected non-negative rates, got -0\.\d+"),
    (L1Cost(), [normal(3)], None, ValueError, r"L1Cost: expected input a tensor, got \[\(3\)\]"),
    (CosineEmbeddingCriterion(), [normal((3, 4)), normal((3, 4))], np.ones(2), ValueError,
     r"CosineEmbeddingCriterion: expected 3 labels of 1 or -1, got \(2\)"),
    (CosineEmbeddingCriterion(), [normal((3, 4)), normal((3, 4))], np.array([1, 0, -1]),
     LabelError, r"CosineEmbeddingCriterion: labels must be 1 or -1, got 0 at index 1"),
    (CosineEmbeddingCriterion(), normal((3, 4)), np.ones(3), ValueError,
     r"CosineEmbeddingCriterion: expected input a table \[x1, x2\] of \(N, D\) or \(D,\) "
     r"tensors, got \(3, 4\)"),
    (CosineDistanceCriterion(), normal((3, 4)), normal((3, 5)), ValueError,
     r"CosineDistanceCriterion: expected a target of the input's shape \(3, 4\)"),
    (CosineProximityCriterion(), normal((3, 4)), normal((4, 3)), ValueError,
     r"CosineProximityCriterion: expected a target of the input's shape \(3, 4\)"),
    (HingeEmbeddingCriterion(), normal((3,)), np.array([1.0, 2.0, -1.0]), LabelError,
     r"HingeEmbeddingCriterion: labels must be 1 or -1, got 2\.0"),
    (HingeEmbeddingCriterion(), normal((3,)), np.ones(4), ValueError,
     r"HingeEmbeddingCriterion: expected a target of the input's shape \(3\), got \(4\)"),
    (L1HingeEmbeddingCriterion(), [normal(3), normal(4)], np.ones(1), ValueError,
     r"L1HingeEmbeddingCriterion: expected two tensors of the same shape, got \[\(3\), \(4\)\]"),
    (L1HingeEmbeddingCriterion(), [normal(3), normal(3)], np.ones(2), ValueError,
     r"L1HingeEmbeddingCriterion: expected 1 labels of 1 or -1, got \(2\)"),
    (MarginRankingCriterion(), [normal(4), normal(4)], np.array([1, -1, 1, 0.5]), LabelError,
     r"MarginRankingCriterion: labels must be 1 or -1, got 0\.5 at index 3"),
    (MarginRankingCriterion(), [normal((4, 2)), normal((4, 2))], np.ones(4), ValueError,
     r"MarginRankingCriterion: expected \(N,\) or \(N, 1\) scores, got \[\(4, 2\), \(4, 2\)\]"),
    (DotProductCriterion(), normal((2, 3, 4)), normal((2, 3, 4)), ValueError,
     r"DotProductCriterion: expected input \(N, D\) or \(D,\), got \(2, 3, 4\)"),
    (DistKLDivCriterion(), log_probs((2, 3)), -simplex_rows((2, 3)), ValueError,
     r"DistKLDivCriterion: expected target probabilities >= 0, got -0\.\d+"),
    (KullbackLeiblerDivergenceCriterion(), simplex_rows((2, 3)), np.ones(3), ValueError,
     r"KullbackLeiblerDivergenceCriterion: expected a target of the input's shape \(2, 3\)"),
    (KLDCriterion(), [normal((2, 3)), normal((2, 4))], None, ValueError,
     r"KLDCriterion: expected mean and log_var of the same shape \(N, D\), got "
     r"\[\(2, 3\), \(2, 4\)\]"),
    (GaussianCriterion(), [normal((2, 3)), normal((2, 3))], normal((3, 2)), ValueError,
     r"GaussianCriterion: expected a target of the input's shape \(2, 3\), got \(3, 2\)"),
    (DiceCoefficientCriterion(), uniform((2, 3)), np.ones((2, 4)), ValueError,
     r"DiceCoefficientCriterion: expected a target of the input's shape \(2, 3\)"),
    (PGCriterion(), simplex_rows((2, 3)), np.ones((2, 2)), ValueError,
     r"PGCriterion: expected a target of the input's shape \(2, 3\)"),
    (PGCriterion(), np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]), ValueError,
     r"PGCriterion: expected a positive probability at every rewarded action, got 0\.0"),
    (MultiCriterion(), normal(3), normal(3), ValueError,
     r"MultiCriterion: no criteria added \(use add\(criterion, weight\)\)"),
    (MultiCriterion().add(MSECriterion()), normal(3), normal(4), ValueError,
     r"MSECriterion: expected a target of the input's shape \(3\), got \(4\)"),
    (ParallelCriterion().add(MSECriterion()).add(MSECriterion()), [normal(3)], [normal(3)],
     ValueError, r"ParallelCriterion: expected an input table of 2 entries \(one per "
                 r"criterion\), got \[\(3\)\]"),
    (ParallelCriterion().add(MSECriterion()), [normal(3)], normal(3), ValueError,
     r"ParallelCriterion: expected a target table of 1 entries \(or repeat_target=True\), "
     r"got \(3\)"),
    (TimeDistributedCriterion(ClassNLLCriterion()), log_probs((2, 3, 4)), np.zeros((2, 4)),
     ValueError, r"TimeDistributedCriterion: expected a target with 3 steps along dimension 2 "
                 r"like the input \(2, 3, 4\), got \(2, 4\)"),
    (TimeDistributedCriterion(ClassNLLCriterion()), log_probs((2, 3, 4)),
     np.array([[0, 1, 4], [0, 0, 0]]), LabelError,
     r"ClassNLLCriterion: label 4 at index 0 is out of range \[0, 3\]"),
    (TimeDistributedMaskCriterion(ClassNLLCriterion()), log_probs((2, 3, 4)), np.zeros((2, 2)),
     ValueError, r"TimeDistributedMaskCriterion: expected a target \(2, 3\) of class ids with "
                 r"padding, got \(2, 2\)"),
    (TransformerCriterion(MSECriterion(), Tanh()), normal((2, 3)), normal((3, 2)), ValueError,
     r"MSECriterion: expected a target of the input's shape \(2, 3\), got \(3, 2\)"),
]


@pytest.mark.parametrize("crit, x, target, error, message", BAD,
                         ids=[f"{type(b[0]).__name__}-{i}" for i, b in enumerate(BAD)])
def test_bad_targets_and_labels_name_the_criterion(crit, x, target, error, message):
    with pytest.raises(error, match=message):
        crit.forward(x, target)
    with pytest.raises(error, match=message):
        crit.backward(x, target)


@pytest.mark.parametrize("make, message", [
    (lambda: MultiMarginCriterion(p=3), r"MultiMarginCriterion: p must be 1 or 2, got 3"),
    (lambda: MultiMarginCriterion(margin="1"),
     r"MultiMarginCriterion: margin must be a finite number, got '1'"),
    (lambda: MarginCriterion(float("nan")), r"MarginCriterion: margin must be a finite number"),
    (lambda: ClassSimplexCriterion(1), r"ClassSimplexCriterion: n_classes must be an integer > 1, "
                                       r"got 1"),
    (lambda: SoftmaxWithCriterion(normalize_mode="ALL"),
     r"SoftmaxWithCriterion: normalize_mode must be one of FULL, VALID, BATCH_SIZE, NONE, "
     r"got 'ALL'"),
    (lambda: SoftmaxWithCriterion(ignore_label=0.5),
     r"SoftmaxWithCriterion: ignore_label must be an integer or None, got 0.5"),
    (lambda: SmoothL1CriterionWithWeights(0), r"SmoothL1CriterionWithWeights: sigma must be a "
                                              r"positive number, got 0"),
    (lambda: SmoothL1CriterionWithWeights(1.0, -1),
     r"SmoothL1CriterionWithWeights: num must be an integer >= 0, got -1"),
    (lambda: DiceCoefficientCriterion(epsilon=None),
     r"DiceCoefficientCriterion: epsilon must be a finite number, got None"),
    (lambda: TimeDistributedCriterion(ClassNLLCriterion(), dimension=0),
     r"TimeDistributedCriterion: dimension must be a 1-based integer >= 1, got 0"),
    (lambda: TimeDistributedCriterion(Tanh()),
     r"TimeDistributedCriterion: criterion must be a Criterion, got nn.Tanh"),
    (lambda: TransformerCriterion(MSECriterion(), MSECriterion()),
     r"TransformerCriterion: input_transformer must be a Module or None, got nn.MSECriterion"),
    (lambda: MultiCriterion().add(MSECriterion(), float("inf")),
     r"MultiCriterion: weight must be a finite number, got inf"),
    (lambda: ParallelCriterion().add("mse"),
     r"ParallelCriterion: criterion must be a Criterion, got 'mse'"),
])
def test_bad_arguments_are_reported(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# ---------------------------------------------------------------------- config

def _same(a, b):
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", list(CASES))
def test_config_round_trip(case):
    crit, x, t = CASES[case]()
    config = json.loads(json.dumps(crit.get_config()))
    again = Criterion.from_config(config)
    assert type(again) is type(crit) and repr(again) == repr(crit)
    assert again.get_config() == crit.get_config()
    assert again.forward(x, t) == crit.forward(x, t)
    _same(again.backward(x, t), crit.backward(x, t))


def test_composite_configs_nest_and_reject_malformed_lists():
    inner = MultiCriterion().add(MSECriterion(), 0.5).add(AbsCriterion(False), 2.0)
    outer = ParallelCriterion(True).add(inner, 3.0).add(TimeDistributedCriterion(inner, True))
    config = json.loads(json.dumps(outer.get_config()))
    again = Criterion.from_config(config)
    assert again.get_config() == outer.get_config()
    assert repr(again) == ("nn.ParallelCriterion(3 * nn.MultiCriterion(0.5 * nn.MSECriterion, "
                           "2 * nn.AbsCriterion), 1 * nn.TimeDistributedCriterion)")
    config["criteria"] = config["criteria"][:1]
    with pytest.raises(ConfigError, match=r"ParallelCriterion: 'criteria' and 'weights' must be "
                                          r"lists of the same length"):
        Criterion.from_config(config)


def test_transformer_config_keeps_the_transformer_modules():
    seq = nn.Sequential().add(nn.Linear(3, 2)).add(Tanh())
    seq.set_name("features")
    crit = TransformerCriterion(MSECriterion(), seq)
    again = Criterion.from_config(json.loads(json.dumps(crit.get_config())))
    assert again.input_transformer.name() == "features"
    assert repr(again.input_transformer) == repr(seq)
    assert again.target_transformer is None
