"""Multi-input and multi-output models in the local loop: ``([X1, X2], y)`` arrays and Samples
with several tensors train, validate, evaluate and predict; ``predict`` returns what the model
outputs (a list of arrays for several outputs)."""
import numpy as np
import pytest

from helpers import two_input_graph, two_input_problem, two_output_graph
from workbench.data import Sample
from workbench.nn import ClassNLLCriterion, MSECriterion, ParallelCriterion
from workbench.optim import (SGD, Adam, EveryEpoch, Listener, Loss, MaxEpoch, MaxIteration,
                             Optimizer, Top1Accuracy)


class Scores(Listener):
    def __init__(self):
        self.scores = []

    def on_validation(self, e):
        self.scores.append(e.scores)


def weights(model):
    return model.get_parameters()[0].copy()


def test_arrays_and_samples_with_two_feature_tensors_train_the_same_graph():
    (X1, X2), y = two_input_problem()
    by_arrays = two_input_graph()
    Optimizer(by_arrays, ([X1, X2], y), ClassNLLCriterion(), MaxIteration(12), 32, Adam(0.01),
              seed=3, progress=False).optimize()
    by_samples = two_input_graph()
    samples = [Sample.from_ndarray([a, b], t) for a, b, t in zip(X1, X2, y)]
    Optimizer(by_samples, samples, ClassNLLCriterion(), MaxIteration(12), 32, Adam(0.01),
              seed=3, progress=False).optimize()
    np.testing.assert_array_equal(weights(by_arrays), weights(by_samples))
    assert not np.array_equal(weights(by_arrays), weights(two_input_graph()))


def test_a_two_input_graph_learns_validates_evaluates_and_predicts():
    (X1, X2), y = two_input_problem(n=240)
    model = two_input_graph()
    scores = Scores()
    opt = Optimizer(model, ([X1, X2], y), ClassNLLCriterion(), MaxEpoch(15), 16, Adam(0.02),
                    seed=1, progress=False)
    opt.set_validation(50, [Sample.from_ndarray([a, b], t) for a, b, t in zip(X1, X2, y)],
                       EveryEpoch(), [Top1Accuracy(), Loss()])
    opt.add_listener(scores).optimize()
    assert len(scores.scores) == 15
    assert scores.scores[-1]["Top1Accuracy"] > max(0.85, scores.scores[0]["Top1Accuracy"])
    acc, loss = model.evaluate(([X1, X2], y), 64, [Top1Accuracy(), Loss()])
    assert acc.value == pytest.approx(scores.scores[-1]["Top1Accuracy"])
    assert loss.value == pytest.approx(scores.scores[-1]["Loss"], rel=1e-5)
    out = model.predict([X1, X2], batch_size=7)  # 35 batches, the last one partial
    model.evaluate()
    np.testing.assert_allclose(out, model.forward([X1, X2]), rtol=1e-5, atol=1e-6)
    samples = [Sample.from_ndarray([a, b], 0) for a, b in zip(X1[:9], X2[:9])]
    np.testing.assert_allclose(model.predict(samples), out[:9], rtol=1e-5, atol=1e-6)
    assert model.predict_class([X1, X2]).tolist() == np.argmax(out, 1).tolist()


def test_a_two_output_graph_trains_with_parallel_criterion_and_predicts_a_list():
    (X1, _), y = two_input_problem(n=96)
    t = (X1[:, 2:3] * 0.5).astype(np.float32)
    criterion = ParallelCriterion().add(ClassNLLCriterion()).add(MSECriterion(), 0.5)
    by_arrays = two_output_graph()
    Optimizer(by_arrays, (X1, [y, t]), criterion, MaxIteration(10), 20, SGD(0.1), seed=2,
              progress=False).optimize()
    by_samples = two_output_graph()
    samples = [Sample.from_ndarray(x, [c, r]) for x, c, r in zip(X1, y, t)]
    Optimizer(by_samples, samples, criterion, MaxIteration(10), 20, SGD(0.1), seed=2,
              progress=False).optimize()
    np.testing.assert_array_equal(weights(by_arrays), weights(by_samples))
    out = by_arrays.predict(X1, batch_size=25)
    assert isinstance(out, list) and [o.shape for o in out] == [(96, 4), (96, 1)]
    by_arrays.evaluate()
    for got, want in zip(out, by_arrays.forward(X1)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    (loss,) = by_arrays.evaluate((X1, [y, t]), 32, [Loss(criterion)])
    assert loss.count == 96 and loss.value == pytest.approx(
        float(criterion.forward(by_arrays.forward(X1), [y, t])), rel=1e-5)


def test_inputs_whose_record_counts_disagree_are_errors():
    (X1, X2), y = two_input_problem(n=20)
    model = two_input_graph()
    with pytest.raises(ValueError, match=r"training_set features: the arrays of a table need "
                                         r"the same number of rows .* got \[19, 20\]"):
        Optimizer(model, ([X1[:19], X2], y), ClassNLLCriterion(), progress=False)
    with pytest.raises(ValueError, match="training_set: 20 feature rows but 18 labels"):
        Optimizer(model, ([X1, X2], y[:18]), ClassNLLCriterion(), progress=False)
    mixed = [Sample.from_ndarray([a, b], t) for a, b, t in zip(X1, X2, y)]
    mixed[5] = Sample.from_ndarray(X1[5], y[5])
    with pytest.raises(ValueError, match=r"record 5 has 1 tensor\(s\) but record 0 has 2"):
        Optimizer(model, mixed, ClassNLLCriterion(), progress=False)
    with pytest.raises(ValueError, match=r"predict: the features: .* got \[3, 20\]"):
        model.predict([X1[:3], X2])
