"""Optimizer.set_profile: the sampled per-layer profile is emitted through the listeners, written
to the run's record and TensorBoard files, and changes no bit of the training."""
import numpy as np
import pytest

from workbench import nn
from workbench.models import LeNet5
from workbench.optim import SGD, MaxIteration, Optimizer
from workbench.optim.events import LayerProfileEvent, Listener
from workbench.runs import RunRecorder, read_run
from workbench.summary import TrainSummary, read_scalar


class Heard(Listener):
    def __init__(self):
        self.profiles, self.iterations = [], []

    def on_profile(self, e):
        self.profiles.append(e)

    def on_iteration(self, e):
        self.iterations.append(e.iteration)


def _data():
    rng = np.random.default_rng(3)
    return (rng.standard_normal((96, 1, 28, 28)).astype(np.float32),
            rng.integers(0, 10, 96).astype(np.float32))


def _train(profile_every, *listeners):
    nn.random.set_seed(11)
    model = LeNet5()
    X, y = _data()
    opt = Optimizer(model, (X, y), nn.ClassNLLCriterion(zero_based_label=True),
                    MaxIteration(6), batch_size=16, optim_method=SGD(0.05, momentum=0.9),
                    seed=4, progress=False)
    if profile_every:
        opt.set_profile(profile_every)
    for listener in listeners:
        opt.add_listener(listener)
    opt.optimize()
    return model


def test_profiling_changes_no_bit_and_samples_every_n(tmp_path):
    plain = _train(0).get_parameters()[0].copy()
    heard = Heard()
    recorder = RunRecorder(tmp_path, "prof", interval=3600)
    summary = TrainSummary(str(tmp_path), "prof")
    profiled = _train(2, heard, recorder, summary).get_parameters()[0]
    summary.close()
    assert np.array_equal(plain, profiled)
    assert [e.iteration for e in heard.profiles] == [2, 4, 6]
    e = heard.profiles[-1]
    assert isinstance(e, LayerProfileEvent) and e.source == "local"
    names = [t.name for t in e.layers if t.leaf]
    assert "conv1_5x5" in names and "fc2" in names
    slow = e.slowest()
    assert slow.leaf and slow.total == max(t.total for t in e.layers if t.leaf)
    # the run record keeps the last profile (what a restarted kernel and the panel read)
    record = read_run(tmp_path, "prof")
    assert record["profile"]["iteration"] == 6
    by_name = {r["name"]: r for r in record["profile"]["layers"]}
    assert by_name["fc1"]["forward"] == pytest.approx(
        next(t.forward for t in e.layers if t.name == "fc1"))
    # and TensorBoard has each leaf's milliseconds at the profiled steps
    fw = read_scalar(str(tmp_path / "prof" / "train"), "Profile/conv1_5x5/forward_ms")
    assert fw[:, 0].tolist() == [2, 4, 6]
    assert fw[-1, 1] == pytest.approx(1e3 * next(t.forward for t in e.layers
                                                 if t.name == "conv1_5x5"), rel=1e-5)


def test_set_profile_rejects_bad_values():
    X, y = _data()
    opt = Optimizer(LeNet5(), (X, y), nn.ClassNLLCriterion(), progress=False)
    with pytest.raises(ValueError, match="set_profile: every must be an int >= 0"):
        opt.set_profile(-1)
    assert opt.set_profile(0).profile_every == 0
