"""TensorBoard summaries: written through the Listener protocol, read back with TensorBoard's own
reader (EventAccumulator / EventMultiplexer) and with read_scalar."""
import glob
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_multiplexer as em
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

from workbench.nn import Linear, Sequential
from workbench.optim.events import FinishedEvent, IterationEvent, TrainingState, ValidationEvent
from workbench.summary import Histogram, TrainSummary, ValidationSummary, read_scalar

KEEP_ALL = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0}


def accumulate(directory):
    acc = ea.EventAccumulator(str(directory), size_guidance=KEEP_ALL)
    acc.Reload()
    return acc


def iteration(i, epoch=1, loss=None, t0=1_700_000_000.0):
    state = TrainingState(epoch=epoch, iteration=i, loss=loss, records=32 * i)
    return IterationEvent(epoch=epoch, iteration=i, loss=1.0 / i if loss is None else loss,
                          throughput=1000.0 + i, lr=0.1 / i, batch_size=32,
                          wall_time=t0 + i, state=state)


def model():
    return (Sequential().add(Linear(3, 4).set_name("fc1"))
            .add(Linear(4, 2).set_name("fc2")))


def run_iterations(summary, n, net=None):
    summary.on_start(SimpleNamespace(model=net if net is not None else model()))
    for i in range(1, n + 1):
        summary.on_iteration(iteration(i))
    summary.on_finished(FinishedEvent(1, n, None))


def test_train_scalars_read_back_with_event_accumulator(tmp_path):
    summary = TrainSummary(str(tmp_path), "app")
    run_iterations(summary, 25)
    train_dir = tmp_path / "app" / "train"
    assert glob.glob(str(train_dir / "events.out.tfevents.*"))
    acc = accumulate(train_dir)
    assert set(acc.Tags()["scalars"]) == {"Loss", "Throughput", "LearningRate"}
    assert acc.Tags()["histograms"] == []  # Parameters are off by default
    loss = acc.Scalars("Loss")
    assert [e.step for e in loss] == list(range(1, 26))
    np.testing.assert_allclose([e.value for e in loss], [1.0 / i for i in range(1, 26)],
                               rtol=1e-6)
    np.testing.assert_allclose([e.wall_time for e in loss],
                               [1_700_000_000.0 + i for i in range(1, 26)])
    np.testing.assert_allclose([e.value for e in acc.Scalars("Throughput")],
                               [1000.0 + i for i in range(1, 26)])
    np.testing.assert_allclose([e.value for e in acc.Scalars("LearningRate")],
                               [0.1 / i for i in range(1, 26)], rtol=1e-6)


def test_read_scalar_shape_and_order(tmp_path):
    summary = TrainSummary(str(tmp_path), "app")
    run_iterations(summary, 12)
    rows = summary.read_scalar("Loss")
    assert rows.shape == (12, 3)
    np.testing.assert_array_equal(rows[:, 0], np.arange(1, 13))
    np.testing.assert_allclose(rows[:, 1], 1.0 / np.arange(1, 13), rtol=1e-6)
    np.testing.assert_allclose(rows[:, 2], 1_700_000_000.0 + np.arange(1, 13))
    assert summary.read_scalar("NoSuchTag").shape == (0, 3)
    # the module-level reader works on any directory
    np.testing.assert_array_equal(read_scalar(str(tmp_path / "app" / "train"), "Loss"), rows)
    assert read_scalar(str(tmp_path / "missing"), "Loss").shape == (0, 3)


def test_parameters_histograms_on_trigger_iterations_only(tmp_path):
    net = model()
    summary = TrainSummary(str(tmp_path), "app")
    summary.set_summary_trigger("Parameters", lambda state: state.iteration % 3 == 0)
    run_iterations(summary, 10, net)
    acc = accumulate(tmp_path / "app" / "train")
    tags = set(acc.Tags()["histograms"])
    expected = {f"Parameters/{layer}/{p}" for layer in ("fc1", "fc2")
                for p in ("weight", "bias", "grad_weight", "grad_bias")}
    assert tags == expected
    for tag in expected:
        assert [e.step for e in acc.Histograms(tag)] == [3, 6, 9], tag
    h = acc.Histograms("Parameters/fc1/weight")[0].histogram_value
    w = net[0].weight
    assert h.num == w.size
    assert h.min == pytest.approx(float(w.min())) and h.max == pytest.approx(float(w.max()))
    assert sum(h.bucket) == w.size
    # our reader agrees
    plugins = pem.EventMultiplexer(size_guidance=KEEP_ALL)
    plugins.AddRunsFromDirectory(str(tmp_path))
    plugins.Reload()
    assert set(plugins.PluginRunToTagToContent("histograms")[os.path.join("app", "train")]) \
        == expected
    hs = summary.read_histogram("Parameters/fc2/bias")
    assert [x.step for x in hs] == [3, 6, 9] and isinstance(hs[0], Histogram)
    assert hs[0].num == 2 and hs[0].bucket.sum() == 2
    # scalars still every iteration
    assert summary.read_scalar("Loss").shape == (10, 3)


def test_scalar_triggers_and_bad_names(tmp_path):
    summary = TrainSummary(str(tmp_path), "app")
    assert summary.set_summary_trigger("Loss", lambda s: s.iteration % 2 == 0) is summary
    run_iterations(summary, 8)
    np.testing.assert_array_equal(summary.read_scalar("Loss")[:, 0], [2, 4, 6, 8])
    assert summary.read_scalar("Throughput").shape == (8, 3)
    with pytest.raises(ValueError, match="Gradients"):
        summary.set_summary_trigger("Gradients", lambda s: True)
    with pytest.raises(TypeError, match="callable"):
        summary.set_summary_trigger("Loss", 5)
    summary.set_summary_trigger("Loss", None)  # back to every iteration
    summary.on_iteration(iteration(9))
    np.testing.assert_array_equal(summary.read_scalar("Loss")[:, 0], [2, 4, 6, 8, 9])
    summary.close()


def test_validation_summary_and_multiplexer(tmp_path):
    train = TrainSummary(str(tmp_path), "run1")
    val = ValidationSummary(str(tmp_path), "run1")
    run_iterations(train, 6)
    for i, acc in ((2, 0.5), (4, 0.75), (6, 0.9)):
        val.on_validation(ValidationEvent(epoch=1, iteration=i,
                                          scores={"Top1Accuracy": acc, "Loss": 1 - acc},
                                          wall_time=1_700_000_100.0 + i,
                                          state=TrainingState(iteration=i)))
    # on_validation flushes: readable without closing
    rows = val.read_scalar("Top1Accuracy")
    np.testing.assert_array_equal(rows[:, 0], [2, 4, 6])
    np.testing.assert_allclose(rows[:, 1], [0.5, 0.75, 0.9], rtol=1e-6)
    np.testing.assert_allclose(val.read_scalar("Loss")[:, 1], [0.5, 0.25, 0.1], rtol=1e-6)
    val.on_finished(FinishedEvent(1, 6, None))

    train_run, val_run = os.path.join("run1", "train"), os.path.join("run1", "validation")
    mux = em.EventMultiplexer(size_guidance=KEEP_ALL)
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    runs = mux.Runs()
    assert set(runs) == {train_run, val_run}
    assert set(runs[val_run]["scalars"]) == {"Top1Accuracy", "Loss"}
    assert [e.step for e in mux.Scalars(train_run, "Loss")] == list(range(1, 7))

    # what the TensorBoard server itself sees: the scalars plugin owns our tags
    plugins = pem.EventMultiplexer(size_guidance=KEEP_ALL)
    plugins.AddRunsFromDirectory(str(tmp_path))
    plugins.Reload()
    scalars = plugins.PluginRunToTagToContent("scalars")
    assert set(scalars[val_run]) == {"Top1Accuracy", "Loss"}
    assert set(scalars[train_run]) == {"Loss", "Throughput", "LearningRate"}
    assert [e.step for e in plugins.Tensors(val_run, "Top1Accuracy")] == [2, 4, 6]


def test_live_flush_without_close(tmp_path):
    """A live TensorBoard sees progress while training still runs (the writer flushes every
    ``flush_secs`` without being closed)."""
    summary = TrainSummary(str(tmp_path), "live", flush_secs=0.2)
    summary.on_start(SimpleNamespace(model=model()))
    for i in range(1, 6):
        summary.on_iteration(iteration(i))
    # the flush is periodic (0.2 s) but a loaded machine may delay the writer thread: a
    # generous deadline; the claim is that the events arrive without close()
    deadline = time.time() + 120
    while True:
        acc = accumulate(tmp_path / "live" / "train")
        steps = [e.step for e in acc.Scalars("Loss")] if "Loss" in acc.Tags()["scalars"] else []
        if steps == [1, 2, 3, 4, 5] or time.time() > deadline:
            break
        time.sleep(0.1)
    assert steps == [1, 2, 3, 4, 5]
    summary.close()


def test_reuse_after_finished_writes_a_new_file(tmp_path):
    summary = TrainSummary(str(tmp_path), "app")
    run_iterations(summary, 3)
    summary.on_iteration(iteration(4))  # a second optimize() with the same summary
    summary.on_iteration(iteration(5))
    summary.close()
    summary.close()  # idempotent
    assert len(glob.glob(str(tmp_path / "app" / "train" / "events.out.tfevents.*"))) == 2
    np.testing.assert_array_equal(summary.read_scalar("Loss")[:, 0], [1, 2, 3, 4, 5])


def test_no_files_before_first_event_and_bad_app_name(tmp_path):
    summary = ValidationSummary(str(tmp_path), "app")
    assert os.path.isdir(summary.get_summary_dir())
    assert os.listdir(summary.get_summary_dir()) == []
    assert summary.read_scalar("Top1Accuracy").shape == (0, 3)
    with pytest.raises(ValueError, match="app_name"):
        TrainSummary(str(tmp_path), "")


def test_with_the_training_loop(tmp_path):
    from workbench import optim
    from workbench.nn import ClassNLLCriterion, LogSoftMax
    from workbench.optim import Optimizer
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    net = Sequential().add(Linear(3, 2).set_name("fc")).add(LogSoftMax())
    opt = Optimizer(net, (X, y), ClassNLLCriterion(), optim.MaxIteration(8), 16,
                          optim.SGD(learningrate=0.1), progress=False)
    train = TrainSummary(str(tmp_path), "loop")
    train.set_summary_trigger("Parameters", optim.SeveralIteration(4))
    val = ValidationSummary(str(tmp_path), "loop")
    opt.set_validation(32, (X, y), optim.SeveralIteration(4), [optim.Top1Accuracy(), optim.Loss()])
    opt.set_train_summary(train).set_val_summary(val)
    opt.optimize()
    np.testing.assert_array_equal(train.read_scalar("Loss")[:, 0], np.arange(1, 9))
    assert [h.step for h in train.read_histogram("Parameters/fc/weight")] == [4, 8]
    np.testing.assert_array_equal(val.read_scalar("Top1Accuracy")[:, 0], [4, 8])
