"""Criteria: gradients, PyTorch parity (losses incl. class weights and sums), labels, errors."""
import json

import numpy as np
import pytest
from oracle import F, torch

from helpers import check_criterion_gradients, normal
from workbench.nn import (BCECriterion, ClassNLLCriterion, Criterion, CrossEntropyCriterion,
                          LabelError, MSECriterion)


def log_probs(shape, seed=0, dtype=np.float64):
    x = normal(shape, seed)
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(dtype)


def labels(n, c, seed=0):
    return np.random.default_rng(seed).integers(0, c, n)


def probs(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape).astype(dtype)


WEIGHTS = [0.5, 2.0, 1.0, 3.0, 0.25]


# ---------------------------------------------------------------------- gradient checks (float64)

@pytest.mark.parametrize("weights", [None, WEIGHTS])
@pytest.mark.parametrize("size_average", [True, False])
def test_classnll_gradients(weights, size_average):
    crit = ClassNLLCriterion(weights, size_average)
    check_criterion_gradients(crit, log_probs((6, 5), seed=1), labels(6, 5, seed=2))


@pytest.mark.parametrize("weights", [None, WEIGHTS])
def test_classnll_probability_input_gradients(weights):
    crit = ClassNLLCriterion(weights, logProbAsInput=False)
    x = probs((6, 5), seed=3)
    check_criterion_gradients(crit, x, labels(6, 5, seed=4))


def test_classnll_single_sample_gradients():
    check_criterion_gradients(ClassNLLCriterion(), log_probs((5,), seed=5), np.array(3))


@pytest.mark.parametrize("weights", [None, WEIGHTS])
@pytest.mark.parametrize("size_average", [True, False])
def test_cross_entropy_gradients(weights, size_average):
    crit = CrossEntropyCriterion(weights, size_average)
    check_criterion_gradients(crit, 3 * normal((7, 5), seed=6), labels(7, 5, seed=7))


def test_cross_entropy_single_sample_gradients():
    check_criterion_gradients(CrossEntropyCriterion(), normal((5,), seed=8), np.array([1]))


@pytest.mark.parametrize("size_average", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (5,), (2, 3, 2)])
def test_mse_gradients(size_average, shape):
    check_criterion_gradients(MSECriterion(size_average), normal(shape, 9), normal(shape, 10))


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5]])
@pytest.mark.parametrize("size_average", [True, False])
def test_bce_gradients(weights, size_average):
    x, t = probs((4, 3), seed=11), probs((4, 3), seed=12)  # soft targets too
    check_criterion_gradients(BCECriterion(weights, size_average), x, t)


# ---------------------------------------------------------------------- PyTorch parity (float32)

def assert_parity(crit, x, target, torch_loss, rtol=1e-5, atol=1e-6):
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ref = torch_loss(tx)
    ref.backward()
    loss = crit.forward(x, target)
    gi = crit.backward(x, target)
    assert isinstance(loss, float)
    assert gi.shape == x.shape and gi.dtype == np.float32
    np.testing.assert_allclose(loss, ref.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=rtol, atol=atol)


def reduction(size_average):
    return "mean" if size_average else "sum"


@pytest.mark.oracle
@pytest.mark.parametrize("weights", [None, WEIGHTS])
@pytest.mark.parametrize("size_average", [True, False])
def test_classnll_matches_torch(weights, size_average):
    x, y = log_probs((16, 5), seed=13, dtype=np.float32), labels(16, 5, seed=14)
    tw = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    assert_parity(ClassNLLCriterion(weights, size_average), x, y,
                  lambda t: F.nll_loss(t, torch.from_numpy(y), weight=tw,
                                       reduction=reduction(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("weights", [None, WEIGHTS])
def test_classnll_on_probabilities_matches_torch_log(weights):
    x, y = probs((16, 5), seed=15, dtype=np.float32), labels(16, 5, seed=16)
    tw = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    assert_parity(ClassNLLCriterion(weights, logProbAsInput=False), x, y,
                  lambda t: F.nll_loss(torch.log(t), torch.from_numpy(y), weight=tw))


@pytest.mark.oracle
@pytest.mark.parametrize("weights", [None, WEIGHTS])
@pytest.mark.parametrize("size_average", [True, False])
def test_cross_entropy_matches_torch(weights, size_average):
    x, y = 4 * normal((16, 5), seed=17, dtype=np.float32), labels(16, 5, seed=18)
    tw = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    assert_parity(CrossEntropyCriterion(weights, size_average), x, y,
                  lambda t: F.cross_entropy(t, torch.from_numpy(y), weight=tw,
                                            reduction=reduction(size_average)))


@pytest.mark.oracle
def test_cross_entropy_is_stable_for_large_scores():
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 5e4, 0.0]], np.float32)
    y = np.array([2, 0])
    assert_parity(CrossEntropyCriterion(), x, y,
                  lambda t: F.cross_entropy(t, torch.from_numpy(y)), rtol=1e-5, atol=1e-3)


@pytest.mark.oracle
@pytest.mark.parametrize("size_average", [True, False])
def test_mse_matches_torch(size_average):
    x, t = normal((8, 3), seed=19, dtype=np.float32), normal((8, 3), seed=20, dtype=np.float32)
    assert_parity(MSECriterion(size_average), x, t,
                  lambda tx: F.mse_loss(tx, torch.from_numpy(t), reduction=reduction(size_average)))


@pytest.mark.oracle
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5]])
@pytest.mark.parametrize("size_average", [True, False])
def test_bce_matches_torch(weights, size_average):
    x = probs((8, 3), seed=21, dtype=np.float32)
    t = (np.random.default_rng(22).random((8, 3)) > 0.5).astype(np.float32)
    tw = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    assert_parity(BCECriterion(weights, size_average), x, t,
                  lambda tx: F.binary_cross_entropy(tx, torch.from_numpy(t), weight=tw,
                                                    reduction=reduction(size_average)))


@pytest.mark.oracle
def test_bce_clamps_log_like_torch_at_zero_and_one():
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5], np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0], np.float32)
    assert_parity(BCECriterion(), x, t,
                  lambda tx: F.binary_cross_entropy(tx, torch.from_numpy(t)), rtol=1e-5, atol=1e-3)
    assert np.isclose(BCECriterion(size_average=False).forward(x, t), 200 + np.log(2), rtol=1e-6)


# ---------------------------------------------------------------------- labels

def test_one_based_labels_give_the_same_loss_and_gradient():
    x, y = log_probs((10, 4), seed=23), labels(10, 4, seed=24)
    zero = ClassNLLCriterion()
    one = ClassNLLCriterion(zero_based_label=False)
    assert zero.forward(x, y) == one.forward(x, y + 1)
    np.testing.assert_array_equal(zero.backward(x, y), one.backward(x, y + 1))
    ce0, ce1 = CrossEntropyCriterion(WEIGHTS[:4]), CrossEntropyCriterion(WEIGHTS[:4], True, False)
    assert ce0.forward(x, y) == ce1.forward(x, (y + 1).astype(np.float32))


@pytest.mark.parametrize("target", [
    lambda y: y, lambda y: y.astype(np.float32), lambda y: y.reshape(-1, 1).astype(np.float64),
    lambda y: y.astype(np.int32).reshape(-1, 1), lambda y: list(y)])
def test_label_formats(target):
    x, y = log_probs((6, 3), seed=25), labels(6, 3, seed=26)
    expected = -np.mean(x[np.arange(6), y])
    assert np.isclose(ClassNLLCriterion().forward(x, target(y)), expected)


@pytest.mark.parametrize("crit, target, message", [
    (ClassNLLCriterion(), [0, 5, 1], r"ClassNLLCriterion: label 5 at index 1 is out of range "
                                     r"\[0, 2\] for 3 classes"),
    (ClassNLLCriterion(), [0, -1, 1], r"ClassNLLCriterion: label -1 at index 1"),
    (ClassNLLCriterion(zero_based_label=False), [1, 0, 3],
     r"ClassNLLCriterion: label 0 at index 1 is out of range \[1, 3\]"),
    (CrossEntropyCriterion(), np.array([0.0, 7.0, 1.0]), r"CrossEntropyCriterion: label 7.0"),
    (CrossEntropyCriterion(), [1, 2, 3],
     r"CrossEntropyCriterion: label 3 .* \(labels look 1-based: pass zero_based_label=False\)"),
    (ClassNLLCriterion(), [0.5, 1, 2], r"ClassNLLCriterion: labels must be whole class ids, "
                                       r"got 0.5"),
    (ClassNLLCriterion(), [0, 1], r"ClassNLLCriterion: expected 3 class labels for input "
                                  r"\(3, 3\), got labels of shape \(2\)"),
])
def test_bad_labels_name_criterion_and_value(crit, target, message):
    x = log_probs((3, 3), seed=27)
    with pytest.raises(LabelError, match=message):
        crit.forward(x, target)
    with pytest.raises(LabelError, match=message):
        crit.backward(x, target)


# ---------------------------------------------------------------------- other bad input

@pytest.mark.parametrize("crit", [MSECriterion(), BCECriterion()])
def test_wrong_target_shape_is_reported(crit):
    x = probs((4, 3), seed=28)
    with pytest.raises(ValueError, match=rf"{type(crit).__name__}: expected a target of the "
                                         r"input's shape \(4, 3\), got \(4, 2\)"):
        crit.forward(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"got str"):
        crit.forward(x, "labels")


@pytest.mark.parametrize("crit", [MSECriterion(), BCECriterion()])
def test_column_target_for_column_output_is_accepted(crit):
    x = probs((5, 1), seed=29)
    t = (np.arange(5) % 2).astype(np.float64)
    assert crit.forward(x, t) == crit.forward(x, t.reshape(5, 1))
    assert crit.backward(x, t).shape == (5, 1)


def test_bce_rejects_values_outside_zero_one():
    with pytest.raises(ValueError, match=r"BCECriterion: expected input probabilities in "
                                         r"\[0, 1\], got 1.5"):
        BCECriterion().forward(np.array([0.2, 1.5]), np.array([0.0, 1.0]))


def test_bce_weights_must_broadcast():
    with pytest.raises(ValueError, match=r"BCECriterion: weights of shape \(2,\) do not "
                                         r"broadcast to the input \(4, 3\)"):
        BCECriterion([1.0, 2.0]).forward(probs((4, 3)), probs((4, 3)))


@pytest.mark.parametrize("crit", [ClassNLLCriterion(), CrossEntropyCriterion()])
def test_class_criteria_reject_bad_input_shapes(crit):
    with pytest.raises(ValueError, match=rf"{type(crit).__name__}: expected input \(N, C\) or "
                                         r"\(C,\), got \(2, 3, 4\)"):
        crit.forward(np.zeros((2, 3, 4)), [0, 1])


def test_class_weights_must_match_classes():
    with pytest.raises(ValueError, match=r"ClassNLLCriterion: weights has 5 entries but the "
                                         r"input \(3, 4\) has 4 classes"):
        ClassNLLCriterion(WEIGHTS).forward(log_probs((3, 4)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"CrossEntropyCriterion: weights must be 1-D"):
        CrossEntropyCriterion([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"ClassNLLCriterion: weights must be a non-empty array "
                                         r"of finite numbers, got \[1.0, nan\]"):
        ClassNLLCriterion([1.0, float("nan")])


# ---------------------------------------------------------------------- config

ALL_CRITERIA = [ClassNLLCriterion(), ClassNLLCriterion(np.array(WEIGHTS, np.float32), False, False,
                                                       False),
                CrossEntropyCriterion(), CrossEntropyCriterion(WEIGHTS, False, False),
                MSECriterion(), MSECriterion(False), BCECriterion(),
                BCECriterion(np.array([1.0, 2.0, 0.5]), False)]


@pytest.mark.parametrize("crit", ALL_CRITERIA, ids=lambda c: repr(c))
def test_criterion_config_round_trip(crit):
    config = json.loads(json.dumps(crit.get_config()))
    again = Criterion.from_config(config)
    assert type(again) is type(crit) and repr(again) == repr(crit)
    assert again.get_config() == crit.get_config()
    if isinstance(crit, (MSECriterion, BCECriterion)):
        x, t = probs((4, 3), seed=30), probs((4, 3), seed=31)
    else:
        x, t = probs((4, 5), seed=30), labels(4, 5, seed=31) + (0 if crit.zero_based_label else 1)
    assert again.forward(x, t) == crit.forward(x, t)
    np.testing.assert_array_equal(again.backward(x, t), crit.backward(x, t))


def test_repr():
    assert repr(ClassNLLCriterion()) == "nn.ClassNLLCriterion"
    assert repr(CrossEntropyCriterion()) == "nn.CrossEntropyCriterion"
