"""Training events and the listener protocol.

The training loops (local and Spark) emit the same events; listeners (console progress,
TensorBoard summaries, the notebook dashboard, the run registry) consume them and never steer
the math.  The one way back is ``Optimizer.stop()``, honoured between iterations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainingState", "IterationEvent", "ValidationEvent", "CheckpointEvent",
           "FinishedEvent", "LayerProfileEvent", "TaskStats", "ClusterEvent", "Listener"]


@dataclass
class TrainingState:
    """What triggers and listeners see of a run after each iteration.

    Attributes:
        epoch: the 1-based epoch the last iteration belonged to.
        iteration: iterations completed so far (1 after the first).
        epoch_finished: the last iteration completed its epoch.
        loss: training loss of the last iteration (None before the first).
        score: the first validation method's last value (None before any validation).
        records: records processed in total.
        records_in_epoch: records processed in the current epoch.
        records_per_epoch: size of the training set.
    """
    epoch: int = 1
    iteration: int = 0
    epoch_finished: bool = False
    loss: float | None = None
    score: float | None = None
    records: int = 0
    records_in_epoch: int = 0
    records_per_epoch: int = 0

    # The one epoch bookkeeping: the local loop, each Spark task and the Spark driver count
    # iterations with these two calls, so their counters agree by construction.
    def start_iteration(self):
        """Roll over into the next epoch if the last iteration completed one; returns True
        when a new epoch begins (its record order must then be drawn)."""
        if not self.epoch_finished:
            return False
        self.epoch += 1
        self.records_in_epoch = 0
        self.epoch_finished = False
        return True

    def finish_iteration(self, records, loss):
        """Count an iteration that trained on ``records`` records (the nominal size of its
        global batch) with training loss ``loss``."""
        self.iteration += 1
        self.records += int(records)
        self.records_in_epoch += int(records)
        self.epoch_finished = self.records_in_epoch >= self.records_per_epoch
        self.loss = loss


@dataclass
class IterationEvent:
    """One training iteration finished: ``loss`` of its mini-batch, ``throughput`` in records/s."""
    epoch: int
    iteration: int
    loss: float
    throughput: float
    lr: float
    batch_size: int
    wall_time: float
    state: TrainingState


@dataclass
class ValidationEvent:
    """A validation finished; ``scores`` maps method name (e.g. ``"Top1Accuracy"``) to value."""
    epoch: int
    iteration: int
    scores: dict
    wall_time: float
    state: TrainingState


@dataclass
class CheckpointEvent:
    epoch: int
    iteration: int
    path: str
    wall_time: float


@dataclass
class FinishedEvent:
    """Training ended: normally, by ``stop()`` (``stopped``), or with an ``error`` message."""
    epoch: int
    iteration: int
    model: Any
    stopped: bool = False
    error: str | None = None
    state: TrainingState = field(default_factory=TrainingState)


@dataclass
class LayerProfileEvent:
    """A sampled per-layer profile: the seconds each module spent in one iteration's forward
    and backward (``Optimizer.set_profile(every)``; on Spark, task 0's share of the batch).

    Attributes:
        epoch, iteration: the profiled iteration.
        layers: ``workbench.nn.introspect.LayerTime`` per module, depth first (a container's
            time includes its children's; the leaves add up to the pass).
        wall_time: when it was taken.
        source: ``"local"`` or ``"task 0"``.
    """
    epoch: int
    iteration: int
    layers: list
    wall_time: float
    source: str = "local"

    def slowest(self):
        """The leaf layer with the largest forward + backward time (None if none ran)."""
        leaves = [t for t in self.layers if t.leaf and t.total > 0]
        return max(leaves, key=lambda t: t.total) if leaves else None

    def to_dict(self):
        return {"epoch": self.epoch, "iteration": self.iteration, "wall_time": self.wall_time,
                "source": self.source,
                "layers": [{"path": t.path, "depth": t.depth, "name": t.name, "kind": t.kind,
                            "forward": t.forward, "backward": t.backward, "leaf": t.leaf}
                           for t in self.layers]}


@dataclass
class TaskStats:
    """What one Spark training task reports about its last stretch of iterations.

    Attributes:
        rank: the task's place in the ring (0 ... tasks-1).
        executor: the Spark executor id ("driver" in local mode).
        host: the executor's host.
        attempt: Spark's attempt number of the task (> 0 after a retry).
        iterations: iterations covered by these numbers (since the last report).
        records: records of the task's shares of those batches.
        compute: seconds in forward + backward of its share of the batches.
        allreduce: seconds in the gradient reduce-scatter, the update of its slice of the
            weights and their all-gather.
        waiting: seconds waiting on its peers and the driver (the header exchange, the
            driver's decision): a fast task waits for a straggler here.
        seconds: wall seconds those iterations took.
    """
    rank: int
    executor: str
    host: str
    attempt: int
    iterations: int
    records: int
    compute: float
    allreduce: float
    waiting: float
    seconds: float

    @property
    def records_per_second(self):
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ClusterEvent:
    """The Spark tasks' latest :class:`TaskStats` (one per rank), every ``report_every``
    iterations of the Spark trainer (an option; default 10), and when a stretch fails.

    Attributes:
        epoch, iteration: the iteration the tasks reported at.
        tasks: one :class:`TaskStats` per rank.
        wall_time: when the last report came.
        stretches: barrier stages started so far (one per stretch, restarts included).
        restarts: stretches that failed and were restarted from the last snapshot.
        last_error: the last failure's message (None if none).
    """
    epoch: int
    iteration: int
    tasks: list
    wall_time: float
    stretches: int = 1
    restarts: int = 0
    last_error: str | None = None

    def straggler(self):
        """The rank of the slowest task if it is markedly slower than the others (compute
        seconds per iteration above 1.5x the median of the other tasks'), else None."""
        if len(self.tasks) < 2:
            return None
        per_iter = {t.rank: t.compute / max(t.iterations, 1) for t in self.tasks}
        slow = max(per_iter, key=per_iter.get)
        others = sorted(v for r, v in per_iter.items() if r != slow)
        mid = len(others) // 2
        median = others[mid] if len(others) % 2 else 0.5 * (others[mid - 1] + others[mid])
        return slow if per_iter[slow] > 1.5 * median else None

    def to_dict(self):
        straggler = self.straggler()
        return {"epoch": self.epoch, "iteration": self.iteration, "wall_time": self.wall_time,
                "stretches": self.stretches, "restarts": self.restarts,
                "last_error": self.last_error, "straggler": straggler,
                "tasks": [{**vars(t), "records_per_second": t.records_per_second}
                          for t in self.tasks]}


class Listener:
    """Base class for training listeners; override the events you need.

    Attributes:
        needs_parameters: True if ``on_iteration`` reads the model's gradients through
            ``optimizer.sync_parameters()`` (the Spark tasks then keep each update's gradient
            to send it on request; the weights come in any case).
    """

    needs_parameters = False

    def on_start(self, optimizer):
        """Training is about to start (``optimizer.model`` is the model being trained)."""

    def on_iteration(self, event: IterationEvent):
        pass

    def on_validation(self, event: ValidationEvent):
        pass

    def on_checkpoint(self, event: CheckpointEvent):
        pass

    def on_profile(self, event: LayerProfileEvent):
        """A sampled per-layer profile (only when the optimizer profiles)."""

    def on_cluster(self, event: ClusterEvent):
        """The Spark tasks' statistics (Spark training only)."""

    def on_finished(self, event: FinishedEvent):
        pass
