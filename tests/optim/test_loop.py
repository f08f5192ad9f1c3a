"""The one training iteration (workbench.optim.loop) and the epoch bookkeeping of TrainingState."""
import numpy as np
import pytest

from helpers import normal
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, MSECriterion, Sequential, random
from workbench.optim import SGD, L2NormClipping
from workbench.optim.events import TrainingState
from workbench.optim.loop import Divergence, IterationStep, TrainingError, objective


def test_epoch_bookkeeping_rolls_over_after_the_last_partial_batch():
    state = TrainingState(records_per_epoch=10)
    seen = []
    for _ in range(5):
        new_epoch = state.start_iteration()
        batch = min(4, 10 - state.records_in_epoch)
        state.finish_iteration(batch, loss=0.1)
        seen.append((new_epoch, state.epoch, state.iteration, state.records_in_epoch,
                     state.epoch_finished))
    assert seen == [(False, 1, 1, 4, False), (False, 1, 2, 8, False), (False, 1, 3, 10, True),
                    (True, 2, 4, 4, False), (False, 2, 5, 8, False)]
    assert state.records == 18 and state.loss == 0.1


def classifier(seed=0):
    random.set_seed(seed)
    return Sequential().add(Linear(5, 3)).add(LogSoftMax())


def test_gradients_of_batch_shares_add_up_to_the_whole_batch():
    """What two Spark tasks compute on their shares sums to the local loop's iteration."""
    X = normal((12, 5), seed=1).astype(np.float32)
    y = np.arange(12) % 3
    model = classifier()
    step = IterationStep(model, ClassNLLCriterion())
    whole = step.gradient(X, y)
    whole_grad = step.grads.copy()
    parts, grad_sum = 0.0, np.zeros_like(whole_grad, dtype=np.float64)
    for rows in (slice(0, 4), slice(4, 12)):
        parts += step.gradient(X[rows], y[rows], share=len(range(12)[rows]) / 12)
        grad_sum += step.grads
    assert parts == pytest.approx(whole, rel=1e-6)
    np.testing.assert_allclose(grad_sum, whole_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size_average", [True, False])
def test_shares_of_a_two_output_batch_add_up_with_parallel_criterion(size_average):
    """A ParallelCriterion of means (or of sums) is split between tasks like its parts."""
    from helpers import two_output_graph
    from workbench.nn import ParallelCriterion
    X = normal((12, 6), seed=1).astype(np.float32)
    y, t = np.arange(12) % 4, normal((12, 1), seed=2).astype(np.float32)
    criterion = ParallelCriterion().add(ClassNLLCriterion(size_average=size_average)) \
        .add(MSECriterion(size_average=size_average), 0.5)
    step = IterationStep(two_output_graph(), criterion)
    whole = step.gradient(X, [y, t])
    whole_grad = step.grads.copy()
    parts, grad_sum = 0.0, np.zeros_like(whole_grad, dtype=np.float64)
    for rows in (slice(0, 5), slice(5, 12)):
        parts += step.gradient(X[rows], [y[rows], t[rows]], share=len(range(12)[rows]) / 12)
        grad_sum += step.grads
    assert parts == pytest.approx(whole, rel=1e-6)
    np.testing.assert_allclose(grad_sum, whole_grad, rtol=1e-5, atol=1e-6)


def test_a_parallel_criterion_mixing_means_and_sums_cannot_be_split():
    from helpers import two_output_graph
    from workbench.nn import ParallelCriterion
    criterion = ParallelCriterion().add(ClassNLLCriterion()) \
        .add(MSECriterion(size_average=False))
    step = IterationStep(two_output_graph(), criterion)
    X, target = np.zeros((4, 6), np.float32), [np.zeros(4, np.int64), np.zeros((4, 1))]
    assert np.isfinite(step.gradient(X, target))  # the whole batch (the local loop) is fine
    with pytest.raises(ValueError, match="ParallelCriterion mixes criteria that average over "
                                         "the batch and criteria that sum"):
        step.gradient(X, target, share=0.5)


def test_gradient_zeroes_the_previous_gradient_and_reports_the_objective():
    X = normal((6, 5), seed=2).astype(np.float32)
    y = normal((6, 3), seed=3).astype(np.float32)
    model = Sequential().add(Linear(5, 3))
    criterion = MSECriterion()
    step = IterationStep(model, criterion)
    first = step.gradient(X, y)
    g1 = step.grads.copy()
    second = step.gradient(X, y)
    assert first == second
    assert np.array_equal(step.grads, g1)  # not accumulated twice
    assert first == pytest.approx(objective(model, criterion.forward(model.forward(X), y)))
    assert step.non_finite(first) == (False, False)
    step.grads[0] = np.nan
    assert step.non_finite(np.inf) == (True, True)


def test_update_sets_the_epoch_clips_then_steps_and_records_the_loss():
    w = np.ones(4, dtype=np.float32)
    g = np.full(4, 2.0, dtype=np.float32)   # norm 4, clipped to norm 1: each 0.5
    method = SGD(learningrate=0.1)
    lr = IterationStep.update(method, w, g, epoch=3, loss=0.25, clip=L2NormClipping(1.0))
    np.testing.assert_allclose(g, 0.5)
    np.testing.assert_allclose(w, 1 - 0.1 * 0.5)
    assert method.state["epoch"] == 3 and method.state["loss"] == 0.25
    assert lr == pytest.approx(0.1)


def test_a_divergence_names_the_iteration_and_what_went_wrong():
    err = Divergence(7, 2, float("nan"), "loss").error()
    assert isinstance(err, TrainingError)
    assert str(err).startswith("training diverged at iteration 7 (epoch 2): loss is nan; "
                               "the model keeps the weights of iteration 6")
    assert "a gradient is not finite" in str(Divergence(3, 1, 0.5, "gradient").error())
    assert Divergence.from_dict(Divergence(3, 1, 0.5, "gradient").to_dict()) == \
        Divergence(3, 1, 0.5, "gradient")
