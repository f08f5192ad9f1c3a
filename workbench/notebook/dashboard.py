"""``Dashboard``: the live training widget (an anywidget: its JavaScript needs no build step).

    dashboard = Dashboard(optimizer)      # attaches itself as a listener
    dashboard                             # show it (or display(dashboard))
    trained = optimizer.optimize()

It shows epoch / iteration progress with records/s and an ETA, the learning rate, live charts
of the training loss and of every validation score, a Stop button, and a summary table at the
end.  It works from the optimizer's events alone, so local and Spark training look the same.

It never slows training down: an event only appends to a list, and the widget is sent to the
browser at most every ``interval`` seconds (the first iteration at once), with the loss chart
downsampled to at most ``max_points`` points.  The Stop button calls ``optimizer.stop()``:
training ends after the current iteration and the model keeps its weights.  While the
dashboard's training runs, an interrupt of the kernel (Jupyter's ■ button, or SIGINT) is also a
graceful stop; a second interrupt breaks off at once.
"""
from __future__ import annotations

import os
import pathlib
import signal
import threading
import time

import anywidget
import traitlets as t

from .._files import finite
from ..optim.events import Listener
from ..optim.progress import ConsoleProgress
from ..optim.triggers import MaxEpoch, MaxIteration, TriggerOr

__all__ = ["Dashboard"]

STATIC = pathlib.Path(__file__).parent / "static"


def widget_esm(name):
    """The ESM of widget ``name``: ``static/common.js`` (DOM helpers, the chart, the Stop
    button's interrupt fallback) followed by ``static/<name>.js``."""
    return (STATIC / "common.js").read_text() + "\n" + (STATIC / f"{name}.js").read_text()


def _limits(trigger):
    """``(max_epoch, max_iteration)`` implied by an end trigger (None where unknown)."""
    if isinstance(trigger, MaxEpoch):
        return trigger.max_epoch, None
    if isinstance(trigger, MaxIteration):
        return None, trigger.max
    if isinstance(trigger, TriggerOr):
        epochs, iterations = zip(*(_limits(x) for x in trigger.triggers))
        known_e = [e for e in epochs if e]
        known_i = [i for i in iterations if i]
        return (min(known_e) if known_e else None), (min(known_i) if known_i else None)
    return None, None


def profile_rows(event):
    """The dashboard's layer chart rows of a ``LayerProfileEvent``: the leaf layers in model
    order, milliseconds forward and backward, the slowest one flagged."""
    slowest = event.slowest()
    return [{"name": t.name, "kind": t.kind, "path": t.path,
             "forward_ms": 1e3 * t.forward, "backward_ms": 1e3 * t.backward,
             "slowest": t is slowest}
            for t in event.layers if t.leaf]


def current_kernel_id():
    """The id of the Jupyter kernel this runs in (from its connection file), or "" outside one
    (the sidebar matches widgets to kernels by it)."""
    try:
        from ipykernel.connect import get_connection_file
        name = os.path.basename(get_connection_file())
    except Exception:
        return ""
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-"):-len(".json")]
    return ""


class _Series:
    """A chart series kept to at most ``limit`` points by averaging neighbours (bucketing)."""

    def __init__(self, limit):
        self.limit, self.bucket = int(limit), 1
        self.points, self._pending = [], []

    def add(self, x, y):
        self._pending.append((x, y))
        if len(self._pending) >= self.bucket:
            xs, ys = zip(*self._pending)
            self.points.append([xs[-1], sum(ys) / len(ys)])
            self._pending = []
            if len(self.points) > self.limit:
                merged = [[b[0], (a[1] + b[1]) / 2] for a, b in
                          zip(self.points[0::2], self.points[1::2])]
                if len(self.points) % 2:
                    merged.append(self.points[-1])
                self.points = merged
                self.bucket *= 2

    def snapshot(self):
        out = list(self.points)
        if self._pending:
            xs, ys = zip(*self._pending)
            out.append([xs[-1], sum(ys) / len(ys)])
        return out


class StopControls:
    """What the dashboard and the tuning board share to stop a run from the front end: the
    Stop click routed to the kernel subshell it came from, and a kernel interrupt (SIGINT)
    turned into ``self.stop(via=...)`` while ``self._running()`` (a second interrupt raises
    KeyboardInterrupt as usual)."""

    _previous_sigint = None
    _interrupts = 0

    def _running(self):
        raise NotImplementedError

    def _route_clicks_to_the_frontends_subshell(self):
        """Let the Stop click reach the kernel while the training cell runs.

        JupyterLab >= 4.4 sends widget messages on a kernel subshell, which runs while the main
        shell is busy.  ipykernel 7.3 (the newest on Python 3.10) delivers them there; from 7.4
        ipykernel routes a comm's incoming messages to the subshell of the last message the
        kernel *published* on it (so that a cell awaiting a widget's reply gets it), which for
        the dashboard is the busy training cell.  Nothing in the kernel awaits replies from this
        widget, so where that routing exists (the private ``_reply_subshell_for``) its messages
        go where the front end sent them.  Without subshells (other front ends) the button falls
        back to interrupting the kernel, which the dashboard also turns into a graceful stop.
        ``tests/notebook/test_kernel.py`` runs both paths against a real kernel.
        """
        comm = getattr(self, "comm", None)
        if comm is not None and hasattr(comm, "_reply_subshell_for"):
            comm._reply_subshell_for = lambda data, frontend_subshell: frontend_subshell

    def _on_sigint(self, signum, frame):
        self._interrupts += 1
        if self._interrupts > 1 or not self._running():
            previous = self._previous_sigint
            if callable(previous):
                return previous(signum, frame)
            raise KeyboardInterrupt
        self.stop(via="a kernel interrupt")

    def _install_sigint(self):
        self._interrupts = 0
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
        except (ValueError, OSError):
            self._previous_sigint = None

    def _restore_sigint(self):
        if self._previous_sigint is None:
            return
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) == self._on_sigint:
                    signal.signal(signal.SIGINT, self._previous_sigint)
            except (ValueError, OSError):
                pass
        self._previous_sigint = None

class Dashboard(StopControls, anywidget.AnyWidget, Listener):
    """The live training dashboard (see the module docstring).

    Args:
        optimizer: an ``Optimizer`` to attach to now (or call ``attach`` later).
        run: the run's name, shown in the title.
        interval: the least time in seconds between two updates sent to the browser.
        max_points: the most points the loss chart keeps (older ones are averaged).
        replace_console: remove the optimizer's ``ConsoleProgress`` listeners (the dashboard
            replaces the console progress bar in a notebook).
    """

    _esm = widget_esm("dashboard")
    _css = STATIC / "dashboard.css"

    run = t.Unicode("").tag(sync=True)
    status = t.Unicode("waiting").tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    epoch = t.Int(0).tag(sync=True)
    max_epoch = t.Int(0).tag(sync=True)
    iteration = t.Int(0).tag(sync=True)
    max_iteration = t.Int(0).tag(sync=True)
    epoch_progress = t.Float(0.0).tag(sync=True)
    progress = t.Float(-1.0).tag(sync=True)
    throughput = t.Float(0.0).tag(sync=True)
    eta = t.Float(-1.0).tag(sync=True)
    elapsed = t.Float(0.0).tag(sync=True)
    lr = t.Float(0.0).tag(sync=True)
    last_loss = t.Float(0.0).tag(sync=True)
    loss = t.List([]).tag(sync=True)
    points = t.Int(0).tag(sync=True)
    metrics = t.Dict({}).tag(sync=True)
    summary = t.List([]).tag(sync=True)
    kernel_id = t.Unicode("").tag(sync=True)
    # the cockpit: the last sampled per-layer profile and the Spark tasks' statistics
    layers = t.List([]).tag(sync=True)
    profile_iteration = t.Int(0).tag(sync=True)
    tasks = t.List([]).tag(sync=True)
    cluster = t.Dict({}).tag(sync=True)

    def __init__(self, optimizer=None, *, run="", interval=1.0, max_points=600,
                 replace_console=True, **kwargs):
        super().__init__(run=run, kernel_id=current_kernel_id(), **kwargs)
        self.interval = float(interval)
        self.max_points = int(max_points)
        self.replace_console = bool(replace_console)
        self.optimizer = None
        self.extra_summary = []
        self.updates_sent = 0
        self.first_point_time = None
        self.stop_requested_at = None
        self.stopped_at = None
        self.stop_via = None
        self._reset()
        self.on_msg(self._on_frontend_msg)
        self._route_clicks_to_the_frontends_subshell()
        if optimizer is not None:
            self.attach(optimizer)

    def _reset(self):
        self._loss = _Series(self.max_points)
        self._metrics = {}
        self._start = None
        self._last_flush = 0.0
        self._dirty = False
        self._rate = None
        self._f0 = None
        self._first_iteration_time = None
        self._previous_sigint = None
        self._interrupts = 0
        self._last_event = None
        self._stop_requested = False
        self._count = 0
        self._records0 = 0
        self._profile = None
        self._cluster = None

    # ------------------------------------------------------------------ wiring
    def attach(self, optimizer):
        """Listen to ``optimizer`` (and drop its console progress bar if asked)."""
        if self.replace_console:
            for listener in list(optimizer.listeners):
                if isinstance(listener, ConsoleProgress):
                    optimizer.remove_listener(listener)
        optimizer.add_listener(self)
        self.optimizer = optimizer
        return self

    def stop(self, via="stop()"):
        """What the Stop button does: ask the optimizer to stop after this iteration."""
        if self.optimizer is not None:
            first = self.stop_requested_at is None
            # the flag first, then the count: read the other way round, the training thread
            # could finish more iterations in between (a busy machine, the GIL) than the one
            # in progress, and "stopped within one iteration" would not hold
            self.optimizer.stop()
            if first:
                self.stop_via = via
                # iterations completed when the request took effect: training ends after at
                # most the one in progress
                self.stop_requested_at = self.optimizer.state.iteration
        self._stop_requested = True

    def _on_frontend_msg(self, _widget, content, _buffers):
        # Runs on a kernel subshell thread while the main thread trains (ipykernel >= 7 with
        # JupyterLab >= 4.4); only thread-safe calls here.
        if isinstance(content, dict) and content.get("type") == "stop":
            self.stop(via="the Stop button")
            self.send({"type": "stopping"})

    def _running(self):
        return self.optimizer is not None

    # ------------------------------------------------------------------ events
    def on_start(self, optimizer):
        self._reset()
        self.stop_requested_at = self.stopped_at = self.stop_via = None
        self.optimizer = optimizer
        self._start = time.time()
        max_epoch, max_iteration = _limits(optimizer.end_trigger)
        state = optimizer.state
        with self.hold_sync():
            self.status = "running"
            self.message = ""
            self.summary = []
            self.loss, self.metrics, self.points = [], {}, 0
            self.max_epoch, self.max_iteration = max_epoch or 0, max_iteration or 0
            self.epoch, self.iteration = state.epoch, state.iteration
            self.progress, self.eta, self.elapsed = -1.0, -1.0, 0.0
        self._f0 = self._fraction(state)
        self._records0 = state.records
        self._install_sigint()

    def on_iteration(self, e):
        self._last_event = e
        self._count += 1
        if self._f0 is None:  # the data set's size is known from the first iteration on
            self._f0 = self._fraction(e.state, back=e)
        self._loss.add(e.iteration, finite(e.loss, 0.0))
        self._rate = e.throughput if self._rate is None else 0.9 * self._rate + 0.1 * e.throughput
        self._dirty = True
        now = time.time()
        if self._first_iteration_time is None:
            self._first_iteration_time = now
            self._flush(now)
        elif now - self._last_flush >= self.interval:
            self._flush(now)

    def on_validation(self, e):
        for name, value in e.scores.items():
            self._metrics.setdefault(name, []).append([e.iteration, finite(value, 0.0)])
        self._dirty = True
        self._flush(time.time())

    def on_profile(self, e):
        self._profile = e
        self._dirty = True

    def on_cluster(self, e):
        self._cluster = e
        self._dirty = True

    def on_finished(self, e):
        self._restore_sigint()
        if e.stopped:
            self._stop_requested = True
            self.stopped_at = e.iteration
        self._dirty = True
        self._flush(time.time(), final=e)

    # ------------------------------------------------------------------ state → widget
    def _fraction(self, state, back=None):
        """How much of the training is done (None if the end trigger does not say); with
        ``back`` (an iteration event), as it was before that iteration."""
        max_epoch, max_iteration = self.max_epoch, self.max_iteration
        fractions = []
        if max_epoch and state.records_per_epoch:
            done = (state.epoch - 1) * state.records_per_epoch + state.records_in_epoch
            done -= back.batch_size if back is not None else 0
            fractions.append(done / (max_epoch * state.records_per_epoch))
        if max_iteration:
            fractions.append((state.iteration - (1 if back is not None else 0)) / max_iteration)
        return max(0.0, min(1.0, max(fractions))) if fractions else None

    def _flush(self, now, final=None):
        if not self._dirty:
            return
        self._dirty = False
        self._last_flush = now
        e = self._last_event
        elapsed = now - (self._start or now)
        with self.hold_sync():
            if e is not None:
                state = e.state
                self.epoch, self.iteration = e.epoch, e.iteration
                self.epoch_progress = (min(1.0, state.records_in_epoch / state.records_per_epoch)
                                       if state.records_per_epoch else 0.0)
                fraction = self._fraction(state)
                self.progress = -1.0 if fraction is None else fraction
                if fraction is not None and self._f0 is not None and fraction > self._f0:
                    self.eta = elapsed * (1.0 - fraction) / (fraction - self._f0)
                else:
                    self.eta = -1.0
                self.throughput = finite(self._rate, 0.0)
                self.lr = finite(e.lr, 0.0)
                self.last_loss = finite(e.loss, 0.0)
                self.loss = self._loss.snapshot()
                self.points = self._count
            self.elapsed = elapsed
            self.metrics = {k: list(v) for k, v in self._metrics.items()}
            if self._profile is not None and self._profile.iteration != self.profile_iteration:
                self.layers = profile_rows(self._profile)
                self.profile_iteration = self._profile.iteration
            if self._cluster is not None:
                self.tasks = self._cluster.to_dict()["tasks"]
                self.cluster = {k: v for k, v in self._cluster.to_dict().items() if k != "tasks"}
            if self._stop_requested and final is None:
                self.status = "stopping"
            if final is not None:
                self.status = ("failed" if final.error is not None else
                               "stopped" if final.stopped else "finished")
                self.message = (final.error or "interrupted") if final.error is not None else ""
                self.summary = self._summary(final, elapsed)
                self.eta = 0.0 if final.error is None else -1.0
        self.updates_sent += 1
        if self.first_point_time is None and e is not None:
            self.first_point_time = now

    def _summary(self, final, elapsed):
        state = final.state
        records = state.records
        rows = [["status", ("failed: " + (final.error or "interrupted"))
                 if final.error is not None else
                 (f"stopped by request after iteration {final.iteration}" if final.stopped
                  else "finished")],
                ["epochs", str(final.epoch)],
                ["iterations", str(final.iteration)],
                ["records", f"{records:,}"],
                ["wall time", f"{elapsed:.1f} s"]]
        if self._last_event is not None:
            if elapsed > 0:
                rows.append(["records/s (overall)", f"{(records - self._records0) / elapsed:,.0f}"])
            rows.append(["final training loss", f"{finite(self._last_event.loss, 0.0):.4f}"])
            rows.append(["learning rate (last)", f"{finite(self._last_event.lr, 0.0):.4g}"])
        for name, values in self._metrics.items():
            best = max(v for _, v in values) if "accuracy" in name.lower() else \
                min(v for _, v in values)
            rows.append([f"validation {name}", f"{values[-1][1]:.4f} (best {best:.4f})"])
        if final.stopped and self.stop_requested_at is not None:
            rows.insert(1, ["stop", f"requested by {self.stop_via} after iteration "
                                    f"{self.stop_requested_at}, stopped after iteration "
                                    f"{final.iteration}"])
        rows.extend([list(map(str, r)) for r in self.extra_summary])
        return rows

    def __repr__(self):
        return f"Dashboard(run={self.run!r}, status={self.status!r})"
