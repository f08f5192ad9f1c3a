"""The contracts between the Spark driver and its training tasks, as typed records.

A stretch of training (``spark.trainer``) is one barrier stage.  What the driver tells every
task before it starts is a :class:`StretchPlan` (pickled into the task's closure).  While it
runs, the tasks and the driver exchange the messages below over a TCP connection, each one
JSON frame (``comm.send_msg``) carrying its ``type``:

=======================  =============  =====================================================
message                  direction      when
=======================  =============  =====================================================
:class:`Hello`           task→driver    the task is up; its ring address
:class:`Addresses`       driver→task    every task registered: the ring, in rank order
:class:`Iteration`       task 0→driver  an iteration was applied (the driver emits the event)
:class:`Decision`        driver→task 0  go on or stop, answering the last ``Iteration``
:class:`SendParameters`  driver→task 0  a listener wants the iteration's weights, gradient
:class:`Parameters`      task 0→driver  their byte counts; the raw bytes follow the frame
:class:`StretchEnd`      task 0→driver  the loop ended: ``"stopped"`` or ``"diverged"``
:class:`TaskFailure`     task→driver    the task failed; ``fatal``: the same data fails again
:class:`TaskReport`      task→driver    every ``report_every`` iterations: where the task's
                                        time went (the cockpit's cluster view)
:class:`LayerTimes`      task 0→driver  a sampled per-layer profile (``profile_every``)
=======================  =============  =====================================================

Every iteration the tasks also sum an :class:`IterationHeader` (a vector of six floats) over
the ring.  A frame of an unknown type or with unknown fields is a ``CommError``: both ends run
the same code, so a mismatch means a stray connection, not a version to negotiate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..nn.introspect import LayerTime
from ..optim.events import TaskStats, TrainingState
from ..optim.loop import Divergence
from .comm import CommError, recv_msg, send_msg

__all__ = ["StretchPlan", "FaultInjection", "IterationHeader", "Hello", "Addresses",
           "Iteration", "Decision", "SendParameters", "Parameters", "StretchEnd",
           "TaskFailure", "TaskReport", "LayerTimes", "send", "receive"]


@dataclass(frozen=True)
class FaultInjection:
    """The testing option ``fault_injection``: task ``rank`` fails before applying update
    ``iteration``, by raising (``"raise"``), exiting its process (``"exit"``) or hanging for
    ``seconds`` (``"hang"``); once, unless ``repeat``.  ``"slow"`` fails nothing: from update
    ``iteration`` on, task ``rank`` spends ``seconds`` more in every iteration's compute (a
    straggler, for the cluster view; the results are unchanged)."""
    iteration: int
    rank: int = 0
    mode: str = "raise"
    seconds: float = 3600.0
    repeat: bool = False

    @classmethod
    def from_option(cls, option):
        """From the ``fault_injection={...}`` dict (None stays None)."""
        if option is None or isinstance(option, cls):
            return option
        if not isinstance(option, dict):
            raise TypeError(f"Optimizer: fault_injection must be a dict, got {option!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(option) - names)
        if unknown:
            raise TypeError(f"Optimizer: fault_injection has unknown keys {unknown} "
                            f"(known: {sorted(names)})")
        if option.get("mode", "raise") not in ("raise", "exit", "hang", "slow"):
            raise ValueError(f"Optimizer: fault_injection mode must be 'raise', 'exit', "
                             f"'hang' or 'slow', got {option['mode']!r}")
        return cls(**{"iteration": 0, **option})


@dataclass
class StretchPlan:
    """Everything a task needs to run one stretch (besides the model, which is broadcast).

    Attributes:
        token: the stretch's secret; connections without it are dropped.
        tasks: the number of tasks (ring size).
        driver: ``(host, port)`` of the driver's listener.
        local: the cluster is ``local[*]`` (everything on 127.0.0.1).
        timeout: seconds a task waits for a peer or the driver.
        records: records in the training set (``n``).
        offsets: global index of each partition's first record.
        feature_shape: one record's feature shape (for a task that holds no records); a list
            of shapes for several feature tensors.
        batch_size: the global mini-batch size.
        seed: the run's seed (epoch orders, per-iteration dropout seeds).
        compression: gradient compression of the reduce-scatter (None, "bf16", "fp16").
        start: the training counters when the stretch begins.
        fault: the testing option ``fault_injection``, if still armed.
        replica_buffers: each rank's buffers (batch-norm running statistics) from the last
            stretch, or None to start every replica from the model's.
        keep_gradient: keep each update's gradient slice (a listener may ask for it).
        task_counts: records held per task with ``balanced_batches``, else None.
        report_every: each task sends a :class:`TaskReport` every this many iterations
            (0: never).
        profile_every: task 0 sends :class:`LayerTimes` of every this many iterations
            (0: never).
        allreduce: the collective of the stretch, ``"ring"`` (``comm.Ring``) or
            ``"doubling"`` (``comm.Doubling``); the driver has resolved ``"auto"``.
        threads: the native threads of every task as the user chose them
            (``engine.explicit_task_threads``), or None: each task runs its
            ``spark.task.cpus``.
    """
    token: str
    tasks: int
    driver: tuple
    local: bool
    timeout: float
    records: int
    offsets: list
    feature_shape: tuple | list
    batch_size: int
    seed: int
    compression: str | None
    start: TrainingState
    fault: FaultInjection | None = None
    replica_buffers: list | None = None
    keep_gradient: bool = False
    task_counts: list | None = None
    report_every: int = 0
    profile_every: int = 0
    allreduce: str = "ring"
    threads: int | None = None

    @property
    def balanced(self):
        return self.task_counts is not None


@dataclass
class IterationHeader:
    """The small all-reduce of every iteration, summed over the tasks.

    Attributes:
        loss: the tasks' objective parts (their sum is the global batch's loss).
        records: records of the global batch the tasks hold (must be the batch size).
        bad_loss, bad_gradient: tasks whose loss / gradient was not finite.
        stop: the driver's answer to the last iteration (task 0 contributes it).
        send_parameters: a listener asked for the weights (task 0 contributes it): the tasks
            send them and exchange the header again.
    """
    loss: float = 0.0
    records: float = 0.0
    bad_loss: float = 0.0
    bad_gradient: float = 0.0
    stop: float = 0.0
    send_parameters: float = 0.0

    def allreduce(self, ring):
        """The sum of every task's header."""
        names = [f.name for f in dataclasses.fields(self)]
        total = ring.allreduce_small([getattr(self, n) for n in names])
        return IterationHeader(*(float(v) for v in total))


# ---------------------------------------------------------------------- messages
@dataclass
class Hello:
    token: str
    rank: int
    host: str
    port: int
    pid: int
    attempt: int


@dataclass
class Addresses:
    addresses: list  # [[host, port], ...] in rank order


@dataclass
class Iteration:
    """An applied iteration, as task 0 saw it (``records``: the nominal batch size)."""
    iteration: int
    epoch: int
    loss: float
    records: int
    lr: float | None
    seconds: float


@dataclass
class Decision:
    stop: bool


@dataclass
class SendParameters:
    pass


@dataclass
class Parameters:
    """Byte counts of the raw weights (and gradient, 0 if not kept) that follow the frame."""
    weights: int
    gradient: int


@dataclass
class StretchEnd:
    status: str  # "stopped" | "diverged"
    divergence: Divergence | None = None


@dataclass
class TaskFailure:
    """A task failed: ``message`` names the task and the exception; ``fatal`` when the same
    data and model would fail again (not worth a retry)."""
    message: str
    fatal: bool = False


@dataclass
class TaskReport:
    """Where a task's time went since its last report, sent at ``iteration`` (a multiple of
    ``report_every``): the fields of ``optim.events.TaskStats`` (see there)."""
    iteration: int
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

    def stats(self):
        """The ``TaskStats`` listeners see."""
        return TaskStats(**{f.name: getattr(self, f.name)
                            for f in dataclasses.fields(TaskStats)})


@dataclass
class LayerTimes:
    """Task 0's per-layer profile of ``iteration``: ``layers`` holds, per module depth first,
    ``[path, depth, name, kind, forward seconds, backward seconds, leaf]``."""
    iteration: int
    layers: list

    @classmethod
    def of(cls, iteration, times):
        return cls(iteration, [[t.path, t.depth, t.name, t.kind, t.forward, t.backward, t.leaf]
                               for t in times])

    def times(self):
        """The ``LayerTime`` records."""
        return [LayerTime(str(p), int(d), str(n), str(k), float(f), float(b), bool(leaf))
                for p, d, n, k, f, b, leaf in self.layers]


_TYPES = {cls.__name__: cls for cls in (Hello, Addresses, Iteration, Decision, SendParameters,
                                         Parameters, StretchEnd, TaskFailure, TaskReport,
                                         LayerTimes)}


def _encode(record):
    body = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if isinstance(body.get("divergence"), Divergence):
        body["divergence"] = body["divergence"].to_dict()
    return {"type": type(record).__name__, **body}


def _decode(frame):
    if not isinstance(frame, dict) or frame.get("type") not in _TYPES:
        raise CommError(f"not a training message: {str(frame)[:200]}")
    body = dict(frame)
    cls = _TYPES[body.pop("type")]
    try:
        if cls is StretchEnd and body.get("divergence") is not None:
            body["divergence"] = Divergence.from_dict(body["divergence"])
        return cls(**body)
    except (TypeError, KeyError, ValueError) as e:
        raise CommError(f"a malformed {cls.__name__} message: {e}") from None


def send(sock, record):
    """Send one message record as a frame."""
    send_msg(sock, _encode(record))


def receive(sock, *expected, limit=1 << 24):
    """Receive one message record; with ``expected`` types, a ``TaskFailure`` or one of them
    (anything else is a ``CommError``)."""
    record = _decode(recv_msg(sock, limit=limit))
    if expected and not isinstance(record, (TaskFailure, *expected)):
        raise CommError(f"expected {' or '.join(t.__name__ for t in expected)}, got "
                        f"{type(record).__name__}")
    return record

