"""The live dashboard as a training listener: throttled updates, charts, ETA, Stop (button
message, thread, SIGINT), the summary; and the History DataFrame."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from workbench.nn import Linear, LogSoftMax, ClassNLLCriterion, Sequential
from workbench.notebook import Dashboard, History
from workbench.notebook.dashboard import _limits, _Series
from workbench.optim import (SGD, ConsoleProgress, EveryEpoch, Listener, MaxEpoch, MaxIteration,
                             MinLoss, Optimizer, Top1Accuracy, TriggerOr)


def make_optimizer(end_trigger, n=64, batch=8, validate=False):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = Sequential().add(Linear(6, 2)).add(LogSoftMax())
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), end_trigger, batch,
                    SGD(learningrate=0.1), seed=1)
    if validate:
        opt.set_validation(32, (X, y), EveryEpoch(), [Top1Accuracy()])
    return opt


class At(Listener):
    """Calls ``action(event)`` after iteration ``k``."""

    def __init__(self, k, action):
        self.k, self.action = k, action

    def on_iteration(self, e):
        if e.iteration == self.k:
            self.action(e)


def test_attaches_replaces_console_and_finishes():
    opt = make_optimizer(MaxEpoch(3), validate=True)
    assert any(isinstance(x, ConsoleProgress) for x in opt.listeners)
    dash = Dashboard(opt, run="r", interval=3600)
    assert not any(isinstance(x, ConsoleProgress) for x in opt.listeners) and dash in opt.listeners
    opt.optimize()
    assert dash.status == "finished" and dash.iteration == 24 and dash.epoch == 3
    assert dash.points == 24 and len(dash.loss) == 24 and dash.loss[-1][0] == 24
    assert list(dash.metrics) == ["Top1Accuracy"] and len(dash.metrics["Top1Accuracy"]) == 3
    assert dash.progress == pytest.approx(1.0) and dash.eta == 0.0
    assert 0 < dash.lr <= 0.1 and dash.throughput > 0
    rows = dict(dash.summary)
    assert rows["status"] == "finished" and rows["iterations"] == "24"
    assert rows["validation Top1Accuracy"].startswith(f"{dash.metrics['Top1Accuracy'][-1][1]:.4f}")
    assert repr(dash) == "Dashboard(run='r', status='finished')"


def test_updates_are_throttled_and_the_first_point_is_immediate():
    opt = make_optimizer(MaxIteration(200), n=400)
    dash = Dashboard(opt, interval=3600)
    seen = []
    opt.add_listener(At(1, lambda e: seen.append((dash.points, dash.first_point_time))))
    opt.optimize()
    assert seen[0][0] == 1 and seen[0][1] is not None  # sent at the first iteration
    assert dash.updates_sent == 2  # the first iteration and the end, nothing in between
    assert dash.points == 200


def test_progress_and_eta_while_training():
    opt = make_optimizer(MaxEpoch(2))
    dash = Dashboard(opt, interval=0)
    samples = []
    opt.add_listener(At(3, lambda e: samples.append((dash.progress, dash.eta, dash.max_epoch))))
    opt.add_listener(At(12, lambda e: samples.append((dash.progress, dash.eta, dash.max_epoch))))
    opt.optimize()
    (p1, eta1, me), (p2, eta2, _) = samples
    assert me == 2 and p1 == pytest.approx(3 / 16) and p2 == pytest.approx(12 / 16)
    assert eta1 >= 0 and eta2 >= 0


def test_limits_of_end_triggers():
    assert _limits(MaxEpoch(4)) == (4, None)
    assert _limits(MaxIteration(9)) == (None, 9)
    assert _limits(TriggerOr(MaxEpoch(4), MaxIteration(9), MinLoss(0.1))) == (4, 9)
    assert _limits(MinLoss(0.1)) == (None, None)


def test_stop_button_message_stops_after_the_current_iteration():
    opt = make_optimizer(MaxEpoch(50))
    dash = Dashboard(opt)
    sent = []
    dash.send = sent.append
    opt.add_listener(At(7, lambda e: dash._on_frontend_msg(dash, {"type": "stop"}, [])))
    model = opt.optimize()
    assert opt.state.iteration == 7 and dash.stop_requested_at == 7 and dash.stopped_at == 7
    assert dash.status == "stopped" and model is opt.model
    assert sent == [{"type": "stopping"}]
    assert dict(dash.summary)["stop"] == ("requested by the Stop button after iteration 7, "
                                          "stopped after iteration 7")


def test_stop_from_another_thread_ends_within_one_iteration():
    opt = make_optimizer(MaxEpoch(100000), n=256, batch=4)
    dash = Dashboard(opt)
    slow = At(0, None)
    slow.on_iteration = lambda e: time.sleep(0.002)  # lets the other thread take the GIL
    opt.add_listener(slow)
    # the other thread presses Stop once training is under way (an event, not a delay: on a
    # busy machine a fixed 0.3 s could pass before the first iteration)
    training = threading.Event()
    opt.add_listener(At(3, lambda e: training.set()))

    def press_stop():
        training.wait(600)  # if training never got there, stop anyway and fail below
        dash._on_frontend_msg(dash, {"type": "stop"}, [])

    stopper = threading.Thread(target=press_stop, daemon=True)
    stopper.start()
    opt.optimize()
    stopper.join(60)
    assert training.is_set() and not stopper.is_alive()
    assert dash.status == "stopped"
    assert dash.stop_requested_at is not None and dash.stop_requested_at >= 3
    assert 0 <= dash.stopped_at - dash.stop_requested_at <= 1


def test_kernel_interrupt_is_a_graceful_stop_and_a_second_one_breaks():
    before = signal.getsignal(signal.SIGINT)
    opt = make_optimizer(MaxEpoch(50))
    dash = Dashboard(opt)
    opt.add_listener(At(5, lambda e: os.kill(os.getpid(), signal.SIGINT)))
    opt.optimize()  # no KeyboardInterrupt
    assert dash.status == "stopped" and opt.state.iteration in (5, 6)
    assert dash.stop_via == "a kernel interrupt"
    assert signal.getsignal(signal.SIGINT) is before
    opt = make_optimizer(MaxEpoch(50))
    dash = Dashboard(opt)

    def twice(e):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    opt.add_listener(At(5, twice))
    with pytest.raises(KeyboardInterrupt):
        opt.optimize()
    assert dash.status == "failed" and signal.getsignal(signal.SIGINT) is before


def test_series_downsampling_keeps_the_newest_point_and_the_mean():
    s = _Series(100)
    for i in range(1, 10001):
        s.add(i, float(i))
    points = s.snapshot()
    assert len(points) <= 101 and points[-1][0] == 10000
    assert np.mean([p[1] for p in points]) == pytest.approx(5000.5, rel=0.02)


def test_history_frame():
    opt = make_optimizer(MaxEpoch(2), validate=True)
    opt.listeners.clear()
    history = History()
    opt.add_listener(history)
    opt.optimize()
    frame = history.to_frame()
    assert list(frame.columns) == ["epoch", "loss", "throughput", "lr", "wall_time",
                                   "val_Top1Accuracy"]
    assert frame.index.name == "iteration" and list(frame.index) == list(range(1, 17))
    assert frame["val_Top1Accuracy"].notna().sum() == 2
    assert list(frame.dropna(subset=["val_Top1Accuracy"]).index) == [8, 16]
    assert frame["epoch"].dtype == np.int64 and history.status == "finished"


def test_layer_profile_reaches_the_dashboard():
    opt = make_optimizer(MaxIteration(6)).set_profile(3)
    dash = Dashboard(opt, interval=3600)
    opt.optimize()
    assert dash.profile_iteration == 6
    names = [r["name"] for r in dash.layers]
    assert names == [m.name() for m in opt.model.modules() if m is not opt.model]
    slowest = [r for r in dash.layers if r["slowest"]]
    assert len(slowest) == 1
    assert slowest[0]["forward_ms"] + slowest[0]["backward_ms"] == max(
        r["forward_ms"] + r["backward_ms"] for r in dash.layers)
