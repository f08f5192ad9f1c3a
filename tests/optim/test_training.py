"""The local training loop: events, triggers, validation, checkpoints, resume, failures."""
import io as _io
import os

import numpy as np
import pytest

from workbench import models
from workbench.data import Sample, load_digits
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential, Tanh, random
from workbench.optim import (SGD, Adam, EveryEpoch, Listener, Loss, MaxEpoch, MaxIteration,
                             Optimizer, SeveralIteration, Top1Accuracy, TrainingError,
                             ConsoleProgress)


def small_problem(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + 2 * (X[:, 2] > 0)
    return X, y


def mlp():
    return Sequential().add(Linear(8, 16)).add(Tanh()).add(Linear(16, 4)).add(LogSoftMax())


class Recorder(Listener):
    def __init__(self):
        self.events = []

    def on_start(self, optimizer):
        self.events.append(("start", None))

    def on_iteration(self, e):
        self.events.append(("iteration", e))

    def on_validation(self, e):
        self.events.append(("validation", e))

    def on_checkpoint(self, e):
        self.events.append(("checkpoint", e))

    def on_finished(self, e):
        self.events.append(("finished", e))


def test_lenet5_reaches_97_percent_on_digits():
    random.set_seed(7)
    (X, y), (Xt, yt) = load_digits(size=28)
    model = models.LeNet5(10)
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), MaxEpoch(12), 32,
                    SGD(learningrate=0.05, momentum=0.9, dampening=0.0, weightdecay=5e-4), seed=3,
                    progress=False)
    opt.set_validation(256, (Xt, yt), EveryEpoch(), [Top1Accuracy()])
    trained = opt.optimize()
    accuracy = trained.evaluate((Xt, yt), 128, [Top1Accuracy()])[0].value
    assert accuracy >= 0.97, accuracy
    assert opt.state.epoch == 12 and opt.state.epoch_finished


def test_events_counters_and_epoch_boundaries():
    X, y = small_problem(n=100)
    rec = Recorder()
    opt = Optimizer(mlp(), (X, y), ClassNLLCriterion(), MaxEpoch(2), 32, SGD(0.1), seed=1,
                    progress=False)
    opt.add_listener(rec)
    opt.set_validation(50, (X, y), EveryEpoch(), [Top1Accuracy(), Loss()])
    opt.optimize()
    kinds = [k for k, _ in rec.events]
    assert kinds[0] == "start" and kinds[-1] == "finished"
    its = [e for k, e in rec.events if k == "iteration"]
    # 100 records in batches of 32: 4 iterations per epoch (32, 32, 32, 4)
    assert [e.iteration for e in its] == list(range(1, 9))
    assert [e.batch_size for e in its[:4]] == [32, 32, 32, 4]
    assert [e.epoch for e in its] == [1] * 4 + [2] * 4
    vals = [e for k, e in rec.events if k == "validation"]
    assert [v.iteration for v in vals] == [4, 8]
    assert set(vals[0].scores) == {"Top1Accuracy", "Loss"}
    assert all(e.throughput > 0 and e.lr == pytest.approx(0.1) for e in its)


def test_samples_as_training_set_and_max_iteration():
    X, y = small_problem(n=40)
    samples = [Sample.from_ndarray(x, t) for x, t in zip(X, y)]
    opt = Optimizer(mlp(), samples, ClassNLLCriterion(), MaxIteration(7), 8, SGD(0.1),
                    progress=False)
    opt.optimize()
    assert opt.state.iteration == 7


def test_training_reduces_loss_and_trains_in_place():
    X, y = small_problem()
    model = mlp()
    crit = ClassNLLCriterion()
    before = crit.forward(model.forward(X), y)
    trained = Optimizer(model, (X, y), crit, MaxEpoch(30), 16, Adam(0.01),
                        progress=False).optimize()
    assert trained is model
    assert crit.forward(model.forward(X), y) < 0.5 * before


def test_stop_request_is_honoured_between_iterations():
    X, y = small_problem()
    opt = Optimizer(mlp(), (X, y), ClassNLLCriterion(), MaxEpoch(100), 8, SGD(0.1), progress=False)

    class StopAt(Listener):
        def on_iteration(self, e):
            if e.iteration == 5:
                opt.stop()

    rec = Recorder()
    opt.add_listener(StopAt()).add_listener(rec)
    model = opt.optimize()
    assert opt.state.iteration == 5
    finished = rec.events[-1][1]
    assert finished.stopped and finished.error is None and finished.model is model


def test_nan_loss_stops_with_last_good_weights():
    X, y = small_problem()
    X = X.copy()
    model = mlp()
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), MaxEpoch(5), 16, SGD(0.1), seed=0,
                    progress=False)
    order = opt.epoch_permutation(1, len(X))
    X[order[40]] = np.nan  # lands in the third mini-batch of the first epoch
    snapshots = []

    class Snap(Listener):
        def on_iteration(self, e):
            snapshots.append(model.get_parameters()[0].copy())

    opt.add_listener(Snap())
    with pytest.raises(TrainingError, match=r"iteration 3 \(epoch 1\).*loss is nan"):
        opt.optimize()
    weights = model.get_parameters()[0]
    assert len(snapshots) == 2
    assert np.all(np.isfinite(weights))
    np.testing.assert_array_equal(weights, snapshots[-1])


def test_checkpoint_resume_equals_uninterrupted_run(tmp_path):
    X, y = small_problem(n=90)

    def make(end, seed_model=11):
        random.set_seed(seed_model)
        model = Sequential().add(Linear(8, 16)).add(Tanh()).add(Linear(16, 4)).add(LogSoftMax())
        return model, Optimizer(model, (X, y), ClassNLLCriterion(), end, 16,
                                SGD(0.05, momentum=0.9), seed=5, progress=False)

    full_model, full = make(MaxIteration(25))
    full.optimize()

    part_model, part = make(MaxIteration(13))
    part.set_checkpoint(SeveralIteration(13), str(tmp_path), is_overwrite=True)
    part.optimize()
    files = os.listdir(tmp_path)
    assert files == ["checkpoint-00000013.bigdl"]

    resumed_model, resumed = make(MaxIteration(25), seed_model=99)  # different init on purpose
    resumed.optimize(resume_from=str(tmp_path))
    assert resumed.state.iteration == 25
    np.testing.assert_array_equal(resumed_model.get_parameters()[0], full_model.get_parameters()[0])


def test_bad_training_input_is_reported_clearly():
    X, y = small_problem()
    with pytest.raises(ValueError, match="96 feature rows but 95 labels"):
        Optimizer(mlp(), (X, y[:-1]), ClassNLLCriterion(), progress=False)
    with pytest.raises(TypeError, match="training_set must be"):
        Optimizer(mlp(), "data.csv", ClassNLLCriterion(), progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        Optimizer(mlp(), (X, y), ClassNLLCriterion(), None, 0, progress=False)
    opt = Optimizer(mlp(), (X, y + 10), ClassNLLCriterion(), progress=False)
    with pytest.raises(ValueError, match="ClassNLLCriterion: label"):
        opt.optimize()


def test_console_progress_prints_epochs():
    X, y = small_problem(n=64)
    out = _io.StringIO()
    opt = Optimizer(mlp(), (X, y), ClassNLLCriterion(), MaxEpoch(2), 32, SGD(0.1), progress=False)
    opt.add_listener(ConsoleProgress(stream=out))
    opt.set_validation(64, (X, y), EveryEpoch(), [Top1Accuracy()])
    opt.optimize()
    text = out.getvalue()
    assert "epoch 1 [" in text and "epoch 2 [" in text and "64/64" in text
    assert "validation after iteration 4: Top1Accuracy" in text


# ---------------------------------------------------------------------- the reported objective
def test_reported_loss_includes_activity_penalties_and_weight_regularizers():
    from penalized import WeightsRecorder, objective, penalized_mlp
    from workbench.optim.optimizer import epoch_permutation
    X, y = small_problem()
    model = penalized_mlp()
    rec = WeightsRecorder()
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), MaxIteration(5), 20, SGD(0.1), seed=7,
                    progress=False)
    opt.add_listener(rec).optimize()
    order = epoch_permutation(7, 1, len(X))
    for i, reported in enumerate(rec.losses):
        idx = order[20 * i:20 * (i + 1)]
        criterion_loss, full = objective(rec.before[i], X[idx], y[idx])
        assert full - criterion_loss > 0.05  # the penalties are not negligible here
        assert reported == pytest.approx(full, rel=1e-5)


def test_reported_loss_is_the_function_whose_gradient_the_update_follows():
    """Central differences of the reported objective (numpy, float64) against the gradient
    plain SGD applied: ``(w_before - w_after) / lr``."""
    from penalized import WeightsRecorder, objective, penalized_mlp
    from workbench.optim.optimizer import epoch_permutation
    X, y = small_problem()
    model = penalized_mlp()
    rec = WeightsRecorder()
    Optimizer(model, (X, y), ClassNLLCriterion(), MaxIteration(1), 24, SGD(1.0), seed=2,
              progress=False).add_listener(rec).optimize()
    idx = epoch_permutation(2, 1, len(X))[:24]
    w0 = rec.before[0].astype(np.float64)
    applied = (w0 - rec.before[1].astype(np.float64)) / 1.0
    def central_differences(term, eps=1e-6):
        grad = np.empty_like(w0)
        for j in range(w0.size):
            up, down = w0.copy(), w0.copy()
            up[j] += eps
            down[j] -= eps
            grad[j] = (objective(up, X[idx], y[idx])[term] -
                       objective(down, X[idx], y[idx])[term]) / (2 * eps)
        return grad

    numeric = central_differences(1)
    assert rec.losses[0] == pytest.approx(objective(w0, X[idx], y[idx])[1], rel=1e-5)
    np.testing.assert_allclose(applied, numeric, atol=2e-6 + 1e-4 * np.abs(numeric).max())
    # the penalties' gradient is a visible part of it
    criterion_only = central_differences(0)
    assert np.abs(applied - criterion_only).max() > 100 * (2e-6 + 1e-4 * np.abs(numeric).max())
