"""TensorBoard summaries of a training run (BigDL's ``TrainSummary`` / ``ValidationSummary``).

Both are training listeners writing TensorBoard event files with the ``tensorboard`` package
alone (no TensorFlow): ``<log_dir>/<app_name>/train`` gets Loss, Throughput and LearningRate at
every iteration (and parameter histograms on a trigger), ``<log_dir>/<app_name>/validation``
gets every validation score.  ``read_scalar(tag)`` reads a tag back with TensorBoard's own
reader, as ``(step, value, wall_time)`` rows.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import weakref

import numpy as np

from ..optim.events import Listener
from .reader import read_histogram, read_scalar

__all__ = ["TrainSummary", "ValidationSummary"]

FLUSH_SECS = 2.0
_open = weakref.WeakSet()


@atexit.register
def _close_all():
    for summary in list(_open):
        summary.close()


def _scalar_event(tag, value, step, wall_time):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    return Event(wall_time=wall_time, step=int(step),
                 summary=Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]))


def _histogram_event(values, step, wall_time):
    """One event with a histogram per ``(tag, array)`` in ``values``."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
    entries = []
    for tag, array in values:
        a = np.asarray(array, dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        if a.size == 0:
            continue
        counts, edges = np.histogram(a, bins=30)
        proto = HistogramProto(min=float(a.min()), max=float(a.max()), num=float(a.size),
                               sum=float(a.sum()), sum_squares=float(np.dot(a, a)),
                               bucket_limit=edges[1:].tolist(), bucket=counts.tolist())
        entries.append(Summary.Value(tag=tag, histo=proto))
    return Event(wall_time=wall_time, step=int(step), summary=Summary(value=entries))


class _Summary(Listener):
    """An event-file writer under ``<log_dir>/<app_name>/<folder>``, opened on first use."""

    folder = ""

    def __init__(self, log_dir, app_name, *, flush_secs=FLUSH_SECS):
        if not app_name or not isinstance(app_name, str):
            raise ValueError(f"{type(self).__name__}: app_name must be a non-empty string, "
                             f"got {app_name!r}")
        self.log_dir, self.app_name = os.fspath(log_dir), app_name
        self.flush_secs = float(flush_secs)
        self.dir = os.path.join(self.log_dir, app_name, self.folder)
        os.makedirs(self.dir, exist_ok=True)
        self._writer = None
        self._lock = threading.Lock()

    def get_summary_dir(self):
        """The directory holding this summary's event files."""
        return self.dir

    def _write(self, event):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        with self._lock:
            if self._writer is None:
                self._writer = EventFileWriter(self.dir, max_queue_size=1024,
                                               flush_secs=self.flush_secs)
                _open.add(self)
            self._writer.add_event(event)

    def add_scalar(self, tag, value, step, wall_time=None):
        """Write one scalar (also for tags of your own)."""
        self._write(_scalar_event(tag, value, step, time.time() if wall_time is None
                                  else wall_time))

    def add_histogram(self, tag, values, step, wall_time=None):
        """Write the histogram of an array."""
        self._write(_histogram_event([(tag, values)], step,
                                     time.time() if wall_time is None else wall_time))

    def flush(self):
        """Make everything written so far visible to readers (TensorBoard, ``read_scalar``)."""
        with self._lock:
            if self._writer is not None:
                self._writer.flush()

    def close(self):
        """Flush and close the event file; writing again later starts a new file."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                _open.discard(self)

    def read_scalar(self, tag):
        """``(n, 3)`` array of ``(step, value, wall_time)`` rows for ``tag``, ordered by step
        (empty if the tag was never written)."""
        self.flush()
        return read_scalar(self.dir, tag)

    def read_histogram(self, tag):
        """The histograms written for ``tag`` (see ``workbench.summary.read_histogram``)."""
        self.flush()
        return read_histogram(self.dir, tag)

    def on_finished(self, event):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.log_dir!r}, {self.app_name!r})"


class TrainSummary(_Summary):
    """Training curves for TensorBoard (BigDL's ``TrainSummary(log_dir, app_name)``).

    Every iteration writes ``Loss``, ``Throughput`` (records/s) and ``LearningRate`` at
    step = iteration.  ``set_summary_trigger("Parameters", trigger)`` also writes a histogram of
    every parameter (``Parameters/<layer name>/<param>``) and of its gradient
    (``.../grad_<param>``) whenever ``trigger(state)`` is true: the weights that iteration
    produced and the gradient its update applied, also on Spark (where they are fetched from
    the tasks through ``Optimizer.sync_parameters``).  Pass it to
    ``Optimizer.set_train_summary``.

    Args:
        log_dir: the root of the logs; events go to ``<log_dir>/<app_name>/train``.
        app_name: the run's name.
        flush_secs: how often the event file is flushed (seconds).
    """

    folder = "train"
    SCALARS = ("Loss", "Throughput", "LearningRate")

    def __init__(self, log_dir, app_name, *, flush_secs=FLUSH_SECS):
        super().__init__(log_dir, app_name, flush_secs=flush_secs)
        self._triggers = dict.fromkeys(self.SCALARS + ("Parameters",))
        self.model = None

    def set_summary_trigger(self, name, trigger):
        """When to write ``name`` ("Loss", "Throughput", "LearningRate" or "Parameters"):
        ``trigger`` is any callable on the training state, e.g. ``SeveralIteration(50)``.
        ``None`` restores the default: scalars every iteration, "Parameters" off."""
        if name not in self._triggers:
            raise ValueError(f"TrainSummary: no summary named {name!r}; choose from "
                             f"{sorted(self._triggers)}")
        if trigger is not None and not callable(trigger):
            raise TypeError(f"TrainSummary: trigger must be callable on the training state, "
                            f"got {type(trigger).__name__}")
        self._triggers[name] = trigger
        return self

    @property
    def needs_parameters(self):
        """Whether the "Parameters" histograms are on (see ``Listener.needs_parameters``)."""
        return self._triggers["Parameters"] is not None

    def get_summary_trigger(self, name):
        return self._triggers.get(name)

    def _fires(self, name, state):
        trigger = self._triggers[name]
        if trigger is None:
            return name != "Parameters"
        return bool(trigger(state))

    def on_start(self, optimizer):
        self.model = getattr(optimizer, "model", self.model)
        self._sync = getattr(optimizer, "sync_parameters", None)

    def on_iteration(self, event):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        state = event.state
        values = {"Loss": event.loss, "Throughput": event.throughput, "LearningRate": event.lr}
        entries = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()
                   if v is not None and self._fires(tag, state)]
        if entries:
            self._write(Event(wall_time=event.wall_time, step=int(event.iteration),
                              summary=Summary(value=entries)))
        if self.model is not None and self._fires("Parameters", state):
            if getattr(self, "_sync", None) is not None:
                self._sync()  # on Spark the weights of this iteration are on the tasks
            self._write(_histogram_event(self._parameters(), event.iteration, event.wall_time))

    def on_profile(self, event):
        """Each leaf layer's forward and backward milliseconds of a profiled iteration
        (``Profile/<layer>/forward_ms``, ``.../backward_ms``; see ``Optimizer.set_profile``)."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        entries, seen = [], set()
        for t in event.layers:
            if not t.leaf:
                continue
            layer = t.name if t.name not in seen else f"{t.name}@{t.path.rstrip('.') or 'root'}"
            seen.add(t.name)
            entries.append(Summary.Value(tag=f"Profile/{layer}/forward_ms",
                                         simple_value=1e3 * t.forward))
            entries.append(Summary.Value(tag=f"Profile/{layer}/backward_ms",
                                         simple_value=1e3 * t.backward))
        if entries:
            self._write(Event(wall_time=event.wall_time, step=int(event.iteration),
                              summary=Summary(value=entries)))

    def on_cluster(self, event):
        """Per Spark task: ``Cluster/task<rank>/records_per_s``, ``compute_s``,
        ``allreduce_s``, ``waiting_s`` (per iteration) at the reporting iteration."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        entries = []
        for t in event.tasks:
            n = max(t.iterations, 1)
            for tag, v in (("records_per_s", t.records_per_second), ("compute_s", t.compute / n),
                           ("allreduce_s", t.allreduce / n), ("waiting_s", t.waiting / n)):
                entries.append(Summary.Value(tag=f"Cluster/task{t.rank}/{tag}",
                                             simple_value=float(v)))
        if entries:
            self._write(Event(wall_time=event.wall_time, step=int(event.iteration),
                              summary=Summary(value=entries)))

    def _parameters(self):
        seen = set()
        for path, module, name in self.model.named_parameters():
            layer = module.name()
            if (layer, name) in seen:  # two layers given the same name: keep tags apart
                layer = f"{layer}@{path.rstrip('.') or 'root'}"
            seen.add((layer, name))
            yield f"Parameters/{layer}/{name}", getattr(module, name)
            yield f"Parameters/{layer}/grad_{name}", getattr(module, "grad_" + name)


class ValidationSummary(_Summary):
    """Validation scores for TensorBoard (BigDL's ``ValidationSummary(log_dir, app_name)``):
    each score (e.g. ``Top1Accuracy``, ``Loss``) at step = iteration.  Pass it to
    ``Optimizer.set_val_summary``."""

    folder = "validation"

    def on_validation(self, event):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        entries = [Summary.Value(tag=str(tag), simple_value=float(v))
                   for tag, v in event.scores.items()]
        if entries:
            self._write(Event(wall_time=event.wall_time, step=int(event.iteration),
                              summary=Summary(value=entries)))
        self.flush()
