"""LR schedules against hand-computed values, triggers on hand-built states, validation methods
on hand-made outputs, and ``evaluate`` on a tiny model."""
import json

import numpy as np
import pytest

from workbench._config import from_config
from workbench.data import Sample
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, MSECriterion, Sequential
from workbench.nn.criteria.criterion import LabelError
from workbench.optim import (MAE, Default, EveryEpoch, Exponential, Loss, MaxEpoch, MaxIteration,
                             MaxScore, MinLoss, MultiStep, Plateau, Poly, SequentialSchedule,
                             SeveralIteration, Step, Top1Accuracy, Top5Accuracy, TrainingState,
                             TriggerAnd, TriggerOr, ValidationResult, Warmup, evaluate)


# ---------------------------------------------------------------------- schedules
def rates(schedule, lr, n, decay=0.0):
    return [schedule.rate(lr, decay, {"neval": i, "epoch": 1}) for i in range(n)]


def test_default_schedule():
    # 0.1 / (1 + n * 0.5)
    assert rates(Default(), 0.1, 4, decay=0.5) == pytest.approx([0.1, 0.1 / 1.5, 0.05, 0.04])
    assert rates(Default(), 0.1, 3) == pytest.approx([0.1] * 3)


def test_step_and_multistep():
    assert rates(Step(3, 0.5), 1.0, 8) == pytest.approx([1, 1, 1, .5, .5, .5, .25, .25])
    assert rates(MultiStep([2, 5], 0.1), 1.0, 7) == pytest.approx(
        [1, 1, .1, .1, .1, .01, .01])


def test_poly():
    # (1 - n/4)^2, zero from n = 4 on
    assert rates(Poly(2, 4), 1.0, 6) == pytest.approx([1, 0.5625, 0.25, 0.0625, 0, 0])


def test_exponential():
    assert rates(Exponential(2, 0.5), 1.0, 4) == pytest.approx(
        [1, 0.7071067811865476, 0.5, 0.3535533905932738])
    assert rates(Exponential(2, 0.5, stair_case=True), 1.0, 4) == pytest.approx([1, 1, .5, .5])


def test_warmup():
    assert rates(Warmup(0.1), 0.2, 4) == pytest.approx([0.2, 0.3, 0.4, 0.5])


def plateau_rates(plateau, values, monitor="score", lr=1.0):
    """The rate of the first update of each epoch; ``values[e-1]`` is set after epoch e."""
    state, out = {"neval": 0, "epoch": 1}, []
    for epoch, value in enumerate(values, start=1):
        state["epoch"] = epoch
        out.append(plateau.rate(lr, 0.0, state))
        assert plateau.rate(lr, 0.0, state) == out[-1]  # asking again changes nothing
        state[monitor] = value
    return out


def test_plateau_reduces_after_patience():
    # max mode; epoch 2 sees 0.5 (best), epoch 3 sees 0.6 (better), then no improvement:
    # non-improving epochs 4 and 5 are counted, epoch 6 reduces (patience 2, as BigDL), then
    # every second non-improving epoch reduces again.
    p = Plateau("score", factor=0.5, patience=2, mode="max")
    assert plateau_rates(p, [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]) == pytest.approx(
        [1, 1, 1, 1, 1, .5, .5, .25])


def test_plateau_cooldown_and_min_lr_on_loss():
    # min mode on the loss, patience 0: epoch 3 reduces to 0.1; cooldown 2 skips epoch 4;
    # epoch 5 would give 0.01 but min_lr holds it at 0.015, and it stays there.
    p = Plateau("Loss", factor=0.1, patience=0, cooldown=2, min_lr=0.015)
    assert plateau_rates(p, [1.0] * 7, monitor="loss") == pytest.approx(
        [1, 1, .1, .1, .015, .015, .015])


def test_plateau_epsilon_and_missing_monitor():
    p = Plateau("score", factor=0.5, patience=0, mode="min", epsilon=0.1)
    # 1.0 -> 0.95 is not an improvement of more than epsilon
    assert plateau_rates(p, [1.0, 0.95, 0.5]) == pytest.approx([1, 1, 0.5])
    with pytest.raises(ValueError, match=r"Plateau: the monitored 'score' is not available"):
        Plateau().rate(1.0, 0.0, {"neval": 9, "epoch": 2})


def test_sequential_schedule_switches():
    s = (SequentialSchedule(2).add(Warmup(0.1), 3).add(Step(2, 0.5), 4)
         .add(Poly(1, 20), 10))
    # Warmup gives iterations 0..3 (0.1 + 0.1 n); Step starts from 0.4 with its own count
    # (iteration 4 is its 1st); Poly starts from 0.1 and, as in BigDL, counts the whole run:
    # 0.1 * (1 - 8/20), 0.1 * (1 - 9/20).
    assert rates(s, 0.1, 10) == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.4, 0.2, 0.2, 0.1, 0.06, 0.055])
    # the last schedule goes on after its end
    assert s.rate(0.1, 0.0, {"neval": 30, "epoch": 16}) == 0.0
    # state and config round trip
    again = from_config(json.loads(json.dumps(s.get_config())))
    again.load_state(json.loads(json.dumps(s.get_state())))
    assert again.rate(0.1, 0.0, {"neval": 9, "epoch": 5}) == pytest.approx(0.055)


def test_sequential_schedule_gives_each_segment_its_epochs():
    # Plateau after 4 iterations (2 epochs of 2): its epoch 1 is the run's epoch 3.
    s = SequentialSchedule(2).add(Default(), 4).add(Plateau("score", factor=0.5, patience=0), 20)
    state = {"neval": 0, "epoch": 1}
    seen = []
    for n in range(12):
        state["neval"], state["epoch"] = n, 1 + n // 2
        seen.append(s.rate(1.0, 0.0, state))
        if n % 2 == 1:
            state["score"] = 1.0
    # Default 1.0 for 0..4; Plateau starts at 1.0, sees its first score (best) in its epoch 2
    # (n = 6, 7), reduces in its epoch 3 (n = 8, 9) and again in epoch 4.
    assert seen == pytest.approx([1] * 8 + [.5, .5, .25, .25])


@pytest.mark.parametrize("make,match", [
    (lambda: Step(0, 0.5), r"Step: step_size must be a positive int, got 0"),
    (lambda: Step(2, -1), r"Step: gamma .* got -1"),
    (lambda: MultiStep([5, 2], 0.1), r"strictly increasing, got \[5, 2\]"),
    (lambda: MultiStep([], 0.1), r"non-empty list"),
    (lambda: Poly(-1, 10), r"Poly: power .* got -1"),
    (lambda: Poly(1, 2.5), r"Poly: max_iteration must be a positive int, got 2\.5"),
    (lambda: Exponential(10, 0), r"Exponential: decay_rate .* got 0"),
    (lambda: Plateau("accuracy"), r"monitor must be 'score' or 'loss', got 'accuracy'"),
    (lambda: Plateau(factor=1.0), r"Plateau: factor .* got 1\.0"),
    (lambda: Plateau(mode="up"), r"mode must be 'min' or 'max', got 'up'"),
    (lambda: Plateau(patience=-1), r"patience must be an int >= 0, got -1"),
    (lambda: Warmup(float("inf")), r"Warmup: delta .* got inf"),
    (lambda: SequentialSchedule(0), r"iteration_per_epoch must be a positive int, got 0"),
    (lambda: SequentialSchedule(5).add(Default(), 0), r"max_iteration must be a positive int"),
    (lambda: SequentialSchedule(5).rate(1.0, 0.0, {"neval": 0}), r"add at least one schedule"),
])
def test_bad_schedule_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    with pytest.raises(TypeError, match="expected a learning rate schedule, got str"):
        SequentialSchedule(5).add("step", 10)


# ---------------------------------------------------------------------- triggers
def S(**kw):
    return TrainingState(**kw)


def test_triggers_on_hand_built_states():
    assert EveryEpoch()(S(epoch_finished=True)) and not EveryEpoch()(S(epoch_finished=False))
    several = SeveralIteration(3)
    assert [several(S(iteration=i)) for i in range(7)] == [False, False, False, True, False,
                                                          False, True]
    me = MaxEpoch(2)
    assert not me(S(epoch=1, epoch_finished=True))
    assert not me(S(epoch=2, epoch_finished=False))
    assert me(S(epoch=2, epoch_finished=True)) and me(S(epoch=3))
    assert not MaxIteration(5)(S(iteration=4)) and MaxIteration(5)(S(iteration=5))
    assert not MinLoss(0.1)(S()) and not MinLoss(0.1)(S(loss=0.2)) and MinLoss(0.1)(S(loss=0.05))
    assert not MaxScore(0.9)(S()) and not MaxScore(0.9)(S(score=0.9))
    assert MaxScore(0.9)(S(score=0.95))


def test_combined_triggers():
    both = TriggerAnd(MaxEpoch(1), MinLoss(0.5))
    either = TriggerOr(MaxIteration(100), MaxScore(0.9), MinLoss(0.01))
    done = S(epoch=1, epoch_finished=True, loss=0.4, iteration=10)
    assert both(done) and not both(S(epoch=1, epoch_finished=True, loss=0.6))
    assert either(S(iteration=100)) and either(S(score=0.95)) and not either(done)
    assert (MaxEpoch(1) & MinLoss(0.5))(done) and (MaxIteration(3) | MinLoss(0.01))(S(iteration=3))
    again = from_config(json.loads(json.dumps(either.get_config())))
    assert isinstance(again, TriggerOr) and len(again.triggers) == 3
    assert again(S(score=0.95)) and not again(done)


@pytest.mark.parametrize("make,error,match", [
    (lambda: SeveralIteration(0), ValueError,
     r"SeveralIteration: interval must be a positive int, got 0"),
    (lambda: MaxEpoch(1.5), ValueError, r"MaxEpoch: max_epoch .* got 1\.5"),
    (lambda: MaxIteration(True), ValueError, r"MaxIteration: max .* got True"),
    (lambda: MinLoss("low"), ValueError, r"MinLoss: min must be a number, got 'low'"),
    (lambda: MaxScore(float("nan")), ValueError, r"MaxScore: max must be a number, got nan"),
    (lambda: TriggerAnd(MaxEpoch(1), 5), TypeError, r"TriggerAnd: expected triggers .* int 5"),
    (lambda: TriggerOr(None), TypeError, r"TriggerOr: expected triggers"),
])
def test_bad_trigger_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------------- validation methods
SCORES = np.array([[0.1, 0.7, 0.2],     # predicts 1
                   [0.8, 0.1, 0.1],     # predicts 0
                   [0.3, 0.3, 0.4],     # predicts 2
                   [0.2, 0.5, 0.3]])    # predicts 1
LABELS = np.array([1, 0, 0, 2])         # 2 of 4 right


def test_top1_accuracy():
    r = Top1Accuracy().batch(SCORES, LABELS)
    assert r.result() == (0.5, 4) and r.value == 0.5 and r.name == "Top1Accuracy"
    assert repr(r) == "Top1Accuracy: 0.5000 (count 4)"
    # 1-based labels, (N, 1) targets, float labels
    one_based = Top1Accuracy(zero_based_label=False)
    labels = (LABELS + 1).reshape(4, 1).astype(np.float32)
    assert one_based.batch(SCORES, labels).result() == (0.5, 4)
    # a single record as (C,)
    assert Top1Accuracy()(SCORES[0], np.array([1])).result() == (1.0, 1)
    # one column: a probability thresholded at 0.5 against 0/1 labels
    probs = np.array([[0.2], [0.7], [0.5]])
    assert Top1Accuracy().batch(probs, np.array([0, 1, 0])).result() == (pytest.approx(2 / 3), 3)


def test_results_of_two_batches_merge_into_one():
    whole = Top1Accuracy().batch(SCORES, LABELS)
    merged = Top1Accuracy().batch(SCORES[:3], LABELS[:3]) + Top1Accuracy().batch(SCORES[3:],
                                                                                LABELS[3:])
    assert merged.result() == whole.result()
    assert sum([Top1Accuracy().batch(SCORES[i:i + 1], LABELS[i:i + 1]) for i in range(4)]
               ).result() == whole.result()
    with pytest.raises(TypeError, match="cannot add a Loss result to a Top1Accuracy result"):
        whole + Loss().batch(np.log(SCORES), LABELS)


def test_top5_accuracy():
    scores = np.array([[7, 6, 5, 4, 3, 2, 1.0],     # target 4 ranks 5th: hit
                       [7, 6, 5, 4, 3, 2, 1.0],     # target 5 ranks 6th: miss
                       [1, 2, 3, 4, 5, 6, 7.0]])    # target 6 ranks 1st: hit
    r = Top5Accuracy().batch(scores, np.array([4, 5, 6]))
    assert r.result() == (pytest.approx(2 / 3), 3) and r.name == "Top5Accuracy"
    assert Top5Accuracy(zero_based_label=False).batch(scores, np.array([5, 6, 7])).result() == \
        r.result()
    # with at most 5 classes every label is in the top 5
    assert Top5Accuracy().batch(SCORES, LABELS).value == 1.0


def test_bad_labels_name_the_method():
    with pytest.raises(LabelError, match=r"Top1Accuracy: label 3 at index 0 is out of range "
                                         r"\[0, 2\]"):
        Top1Accuracy().batch(SCORES, np.array([3, 0, 0, 2]))
    with pytest.raises(LabelError, match=r"Top5Accuracy: label 0 .* \[1, 3\]"):
        Top5Accuracy(zero_based_label=False).batch(SCORES, LABELS)
    with pytest.raises(LabelError, match=r"expected 4 class labels"):
        Top1Accuracy().batch(SCORES, LABELS[:3])
    with pytest.raises(ValueError, match=r"Top1Accuracy: expected output scores \(N, C\) or "
                                         r"\(C,\), got \(2, 2, 2\)"):
        Top1Accuracy().batch(np.zeros((2, 2, 2)), np.zeros(2))


def test_loss_is_a_mean_over_records_across_uneven_batches():
    logp = np.log(SCORES)
    # hand computation: -mean(log p[target])
    expected = -np.mean(np.log([0.7, 0.8, 0.3, 0.3]))
    whole = Loss().batch(logp, LABELS)
    assert whole.result() == (pytest.approx(expected), 4)
    merged = Loss().batch(logp[:3], LABELS[:3]) + Loss().batch(logp[3:], LABELS[3:])
    assert merged.value == pytest.approx(expected) and merged.count == 4
    summed = Loss(ClassNLLCriterion(size_average=False))
    merged = summed.batch(logp[:1], LABELS[:1]) + summed.batch(logp[1:], LABELS[1:])
    assert merged.value == pytest.approx(expected)
    mse = Loss(MSECriterion()).batch(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert mse.result() == (pytest.approx(4 / 3), 3)
    with pytest.raises(TypeError, match="Loss: criterion must be a Criterion"):
        Loss("nll")


def test_mae():
    r = MAE().batch(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.5, 2.0], [2.0, 4.0]]))
    assert r.result() == (pytest.approx(1.5 / 4), 2)
    merged = MAE().batch(np.array([[1.0], [2.0]]), np.array([1.0, 3.0])) + \
        MAE().batch(np.array([[0.0]]), np.array([2.0]))
    assert merged.result() == (pytest.approx(1.0), 3)
    with pytest.raises(ValueError, match=r"MAE: expected a target of the output's shape \(2, 2\)"):
        MAE().batch(np.zeros((2, 2)), np.zeros(3))


# ---------------------------------------------------------------------- evaluate
def tiny_model():
    lin = Linear(2, 3)
    model = Sequential().add(lin).add(LogSoftMax())
    lin.weight[...] = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    lin.bias[...] = 0.0
    return model


def tiny_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 2)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    return X, y


def test_evaluate_on_a_tiny_model():
    model = tiny_model()
    X, y = tiny_data()
    scores = np.stack([X[:, 0], X[:, 1], -X[:, 0] - X[:, 1]], axis=1)
    expected_acc = np.mean(np.argmax(scores, axis=1) == y)
    logp = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    expected_loss = -np.mean(logp[np.arange(7), y])
    top1, loss = evaluate(model, (X, y), 3, [Top1Accuracy(), Loss()])
    assert top1.result() == (pytest.approx(expected_acc), 7)
    assert loss.result() == (pytest.approx(expected_loss, rel=1e-5), 7)
    assert model.is_training()  # the previous mode is back
    samples = [Sample.from_ndarray(x, t) for x, t in zip(X, y)]
    (r,) = model.evaluate(samples, 2, [Top1Accuracy()])  # BigDL's model.evaluate(data, ...)
    assert r.result() == top1.result()
    model.evaluate()
    (r,) = evaluate(model, (X, y))  # default: Top1Accuracy, batch 256
    assert r.name == "Top1Accuracy" and r.value == pytest.approx(expected_acc)
    assert not model.is_training()


def test_evaluate_rejects_bad_input():
    model = tiny_model()
    X, y = tiny_data()
    with pytest.raises(ValueError, match="evaluate: batch_size must be an int, got 2.5"):
        evaluate(model, (X, y), 2.5)
    # 0 and -1 (BigDL's default) choose the batch size: every row is counted
    assert evaluate(model, (X, y), -1)[0].count == evaluate(model, (X, y), 0)[0].count == 7
    with pytest.raises(ValueError, match="7 feature rows but 6 labels"):
        evaluate(model, (X, y[:6]))
    with pytest.raises(TypeError, match="data must be"):
        evaluate(model, "data.csv")
    with pytest.raises(TypeError, match="val_methods must be validation methods"):
        evaluate(model, (X, y), 4, ["Top1Accuracy"])
    with pytest.raises(LabelError,
                       match=r"Top1Accuracy: label 3 at index 0 is out of range \[0, 2\]"):
        evaluate(model, (X, y + 3), 4)
    assert model.is_training()  # restored even after an error


def test_validation_result_aliases():
    r = ValidationResult("Top1Accuracy", 3, 4)
    assert (r.method, r.total_num, r.value) == ("Top1Accuracy", 4, 0.75)
