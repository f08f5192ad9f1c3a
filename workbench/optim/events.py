"""Training events and the listener protocol.

The training loops (local and Spark) emit the same events; listeners (console progress,
TensorBoard summaries, the notebook dashboard, the run registry) consume them and never steer
the math.  The one way back is ``Optimizer.stop()``, honoured between iterations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainingState", "IterationEvent", "ValidationEvent", "CheckpointEvent",
           "FinishedEvent", "Listener"]


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

    def on_finished(self, event: FinishedEvent):
        pass
