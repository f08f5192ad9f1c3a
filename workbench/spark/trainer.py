"""Synchronous data-parallel training on Spark (the runner behind ``Optimizer`` for RDDs and
DataFrames).

The algorithm (DESIGN.md, "Distributed training on Spark"):

- The training set becomes cached numpy blocks (``data.DataSet``); record ``i`` of the RDD has
  global index ``i``.  Every iteration takes the same global batch as the local loop,
  ``permutation(seed, epoch)[start:start + batch_size]``, and each task trains on the members
  of that batch it holds.  Shares are uneven; each task scales its mean gradient by
  ``share / batch``, so the sum over tasks is the gradient of the global batch.  (With
  ``balanced_batches=True`` each task instead takes its proportional share of every batch from
  its own records: no task waits on a larger share, but the batches are not the local loop's.)
- Training runs as one Spark barrier stage per *stretch* of iterations.  A stretch ends when
  validation or a checkpoint is due, when the end trigger fires, on ``stop()``, or after
  ``max_stretch_iterations`` / ``snapshot_interval`` seconds.  At its start the tasks register
  with a TCP listener on the driver (the rendezvous: milliseconds, where ``allGather`` costs a
  second) and connect in a ring (or, with ``allreduce="doubling"``, to their recursive-doubling
  partners: ``comm.Doubling`` offers the same collectives in log2(N) steps, for small
  gradients on many tasks; ``"auto"`` chooses by ``comm.choose_allreduce``).
- Per iteration, the iteration of ``optim.loop`` (``IterationStep``, ``TrainingState``'s epoch
  bookkeeping) with the all-reduce inside: local forward/backward on the task's share of the
  batch; a tiny all-reduce of an ``IterationHeader`` (loss, records, non-finite flags, the
  driver's stop decision); a reduce-scatter of the gradient; each task updates its 1/N
  slice of the weights with its own 1/N slice of the optimizer state (gradient clipping, and
  per-submodule methods via ``MultiOptimMethod.for_slice``, apply to the slice); an all-gather
  of the weights.  Task 0 sends the iteration's metrics to the driver, which emits the events
  (listeners run on the driver's main thread, as in the local loop), evaluates the triggers and
  answers "go on" or "stop" before the next iteration's update.  Before it answers, a listener
  may ask for the iteration's weights and gradient (``sync_parameters``: TensorBoard's
  parameter histograms): task 0 sends them, the gradient all-gathered from the tasks' slices.
  The plan and the messages are the typed records of ``spark.protocol``.
- At the end of a stretch the tasks return the weights and their optimizer-state slices: the
  driver puts them back together into ``optimizer.model`` / ``optimizer.optim_method``.  That is
  also the snapshot a failed stretch restarts from (up to ``max_retries`` times).  A stretch
  is planned on the slots the cluster has; if fewer remain while its stage waits for its tasks
  (an executor lost after the count), the driver gives up on the stage after ``SLOT_GRACE``
  seconds and the restart plans on the slots there are (``engine.SlotWatch``).
- Where a stretch ends (also after ``snapshot_interval`` seconds, a timing) never changes the
  numbers: each replica's random numbers (dropout) are seeded per iteration from
  ``(seed, iteration, rank)``, and each replica keeps its own buffers (batch-norm running
  statistics) from one stretch to the next; the driver's model gets their average.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import secrets
import selectors
import socket
import threading
import time
import traceback
import warnings
import zlib

import numpy as np

from .._checks import check_int
from ..nn import batch
from ..nn import random as nn_random
from ..nn.introspect import LayerProfile
from ..optim.events import ClusterEvent, IterationEvent, LayerProfileEvent, TrainingState
from ..optim.loop import Divergence, IterationStep, TrainingError, epoch_permutation
from ..optim.methods import ConstantClipping, L2NormClipping, MultiOptimMethod
from .comm import (ALLREDUCES, COMPRESSIONS, NODE_MTBF, CommError, Doubling, Ring,
                   choose_allreduce, connect, listen, recv_exact, send_all, slices,
                   snapshot_interval)
from .data import DataSet, is_spark_data
from .engine import (SlotWatch, explicit_task_threads, is_local, job_error_message,
                     task_slots, use_task_threads)
from .protocol import (Addresses, Decision, FaultInjection, Hello, Iteration, IterationHeader,
                       LayerTimes, Parameters, SendParameters, StretchEnd, StretchPlan,
                       TaskFailure, TaskReport, receive, send)

__all__ = ["SparkTrainer", "StretchFailed", "TRAINER_OPTIONS"]

TRAINER_OPTIONS = {
    "features_col": "DataFrame feature column; a list of numeric columns (one vector); or a "
                    "list of array/vector columns, one model input each (default 'features')",
    "label_col": "DataFrame label column (default 'label')",
    "feature_shape": "reshape every record's features to this shape",
    "gradient_compression": "None (default), 'bf16' (BigDL's 16-bit float) or 'fp16'",
    "allreduce": "the gradient's all-reduce: 'ring' (default; bandwidth-optimal), 'doubling' "
                 "(recursive doubling: log2(N) steps, for small gradients on many tasks; sums "
                 "in another order, so not the ring's bits) or 'auto' (doubling where the cost "
                 "model of docs/SCALING.md says it is faster: 4+ tasks, small gradients)",
    "max_retries": "stretches that may fail and be restarted from the snapshot (default 3)",
    "num_tasks": "at most this many tasks (default: the cluster's free slots)",
    "max_stretch_iterations": "iterations after which a stretch ends for a snapshot (1000)",
    "snapshot_interval": "seconds after which a stretch ends for a snapshot (default 300), or "
                         "'auto': Young's rule sqrt(2 x snapshot cost x node_mtbf / tasks), "
                         "the snapshot cost measured at every stretch boundary",
    "node_mtbf": "with snapshot_interval='auto': mean seconds between failures of one node "
                 "(default 30 days: one failure per node-month)",
    "comm_timeout": "seconds a task waits for a peer or the driver before failing (300)",
    "rendezvous_timeout": "seconds to wait for every task of a stretch to start (120)",
    "balanced_batches": "True: each task takes its proportional share of every batch from its "
                        "own records (no waiting on uneven shares; batches differ from the "
                        "local loop's); default False: exactly the local loop's batches",
    "fault_injection": "testing: {'iteration': k, 'rank': r, 'mode': 'raise' | 'exit' | "
                       "'hang' | 'slow', 'seconds': s, 'repeat': False}: task r fails before "
                       "update k ('slow': takes s seconds longer from update k on)",
    "report_every": "every task reports its records/s and compute / all-reduce / waiting "
                    "time every this many iterations (the cluster view; default 10, 0: off)",
}
# Seconds the cluster may have fewer slots than a stretch's stage needs before the driver gives
# up on the stage and re-plans on the slots there are (engine.SlotWatch): long enough that a
# replacement executor registering at once is no loss, short against Spark's own wait.
SLOT_GRACE = 2.0

_ALIASES = {"feature_cols": "features_col", "features_cols": "features_col",
            "feature_col": "features_col", "labelCol": "label_col", "featuresCol": "features_col"}


def _positive_seconds(value):
    """``value`` as a float of seconds > 0 (``inf``: never), or None if it is not one (a string,
    a bool, None, NaN, zero or less)."""
    if isinstance(value, (str, bool)):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


class StretchFailed(RuntimeError):
    """A stretch's barrier stage failed (a task died, a peer vanished, the stage timed out)."""

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


@dataclasses.dataclass
class Snapshot:
    """What a failed stretch restarts from: weights, model buffers, optim state, counters."""
    weights: np.ndarray
    buffers: dict
    optim: tuple
    state: TrainingState

    @classmethod
    def take(cls, optimizer):
        w, _ = optimizer.model.get_parameters()
        buffers = {p: np.array(getattr(m, n), copy=True)
                   for p, m, n in optimizer.model.named_buffers()}
        return cls(w.copy(), buffers, optimizer.optim_method.get_state(),
                   dataclasses.replace(optimizer.state))

    def restore(self, optimizer):
        w, _ = optimizer.model.get_parameters()
        w[...] = self.weights
        _set_buffers(optimizer.model, self.buffers)
        doc, arrays = self.optim
        optimizer.optim_method.load_state(doc, {k: v.copy() for k, v in arrays.items()})
        for f in dataclasses.fields(TrainingState):
            setattr(optimizer.state, f.name, getattr(self.state, f.name))


def _set_buffers(model, buffers):
    for p, m, n in model.named_buffers():
        if p in buffers:
            current = getattr(m, n)
            if isinstance(current, np.ndarray):
                current[...] = buffers[p]
            else:
                setattr(m, n, buffers[p])


# ====================================================================== executor side
@dataclasses.dataclass
class _TaskRecords:
    """The records one task holds, concatenated, and the global index ranges they cover.

    Attributes:
        X, Y: features and labels, one row per record (arrays, or tables of arrays:
            ``workbench.nn.batch``).
        starts, ends: the global index range ``[start, end)`` of each block.
        local: the row of ``X`` where each block begins.
    """
    X: np.ndarray | list
    Y: np.ndarray | list
    starts: np.ndarray
    ends: np.ndarray
    local: np.ndarray

    @classmethod
    def gather(cls, blocks, offsets, dtype, feature_shape):
        """From the task's ``(partition, start, X, y)`` blocks, in global order."""
        blocks = sorted(((p, s, X, y) for p, s, X, y in blocks), key=lambda b: (b[0], b[1]))
        xs, ys, starts, ends, local = [], [], [], [], []
        row = 0
        for part, start, X, y in blocks:
            g0 = int(offsets[part]) + int(start)
            rows = batch.num_rows(X)
            starts.append(g0)
            ends.append(g0 + rows)
            local.append(row)
            row += rows
            xs.append(X)
            ys.append(y)
        if xs:
            X, y = batch.concat(xs), batch.concat(ys)
        else:  # a task without records computes nothing: only the shapes matter
            X = batch.empty(feature_shape, dtype)
            y = np.empty((0,), dtype=np.int64)
        X = batch.apply(X, lambda a: a if a.dtype == dtype else a.astype(dtype))
        return cls(X, y, np.array(starts, np.int64), np.array(ends, np.int64),
                   np.array(local, np.int64))

    def __len__(self):
        return batch.num_rows(self.X)

    def rows(self, idx):
        """Rows of ``X`` that hold the global indices ``idx`` (in ``idx`` order)."""
        starts, ends, local = self.starts, self.ends, self.local
        if starts.size == 0:
            return idx[:0]
        j = np.searchsorted(starts, idx, side="right") - 1
        ok = j >= 0
        jj = np.where(ok, j, 0)
        ok &= idx < ends[jj]
        return (local[jj] + idx - starts[jj])[ok]


class _Batches:
    """Which of a task's rows each iteration trains on.

    Exact batches (the default): the local loop's global batch, ``permutation(seed, epoch)``
    positions ``[records_in_epoch, +batch_size)``; the task takes the members it holds.
    Balanced batches: every task takes its proportional share of those positions from its own
    records, in an order of its own (all tasks know everyone's share: the same total)."""

    def __init__(self, plan, rank, records):
        self.plan, self.rank, self.records = plan, rank, records
        self.counts = None
        if plan.balanced:
            self.counts = np.asarray(plan.task_counts, dtype=np.int64)
            if self.counts[rank] != len(records):
                raise RuntimeError(f"task {rank} holds {len(records)} records, the plan says "
                                   f"{self.counts[rank]}")
        self.order = None

    def draw(self, epoch):
        """The record order of ``epoch``."""
        plan = self.plan
        if self.counts is not None:
            self.order = np.random.default_rng(
                [plan.seed, epoch, self.rank, plan.tasks]).permutation(len(self.records))
        else:
            self.order = epoch_permutation(plan.seed, epoch, plan.records)

    def rows(self, records_in_epoch):
        """``(rows, b, nominal)``: this task's rows of the iteration starting at that position
        of the epoch, the records the tasks hold of it together, and its nominal size."""
        n = self.plan.records
        end = min(records_in_epoch + self.plan.batch_size, n)
        nominal = end - records_in_epoch
        if self.counts is None:
            return self.records.rows(self.order[records_in_epoch:end]), nominal, nominal
        lo, hi = (records_in_epoch * self.counts) // n, (end * self.counts) // n
        return self.order[lo[self.rank]:hi[self.rank]], int((hi - lo).sum()), nominal


# Errors that the same data and model would raise again: not worth a retry.
_DETERMINISTIC = (ValueError, TypeError, IndexError, KeyError, AttributeError,
                  NotImplementedError, ZeroDivisionError)


def _slice_method(method, lo, hi):
    """The optim method a task uses for ``[lo, hi)`` of the flat vector, with that part of the
    optimizer state (buffers are sliced; counters and schedules are shared)."""
    doc, arrays = method.get_state()
    if not isinstance(method, MultiOptimMethod):
        part = method.for_slice(lo, hi)  # per-parameter arrays (SGD learningrates) sliced too
        part.load_state(doc, {k: v[lo:hi] for k, v in arrays.items()})
        return part
    part = method.for_slice(lo, hi)
    sliced = {}
    for key, value in arrays.items():
        name, _, _ = key.rpartition("/")
        a, b = method.slices[name]
        start, stop = max(a, lo), min(b, hi)
        if start < stop:
            sliced[key] = value[start - a:stop - a]
    part.load_state(doc, sliced)
    return part


def _covered(method, lo, hi):
    """Names of the sub-methods of a MultiOptimMethod that update part of ``[lo, hi)``."""
    if not isinstance(method, MultiOptimMethod):
        return None
    return [n for n, (a, b) in method.slices.items() if max(a, lo) < min(b, hi)]


def _gather_state(method, results):
    """The full optim state ``(document, arrays)`` from the tasks' slices (in rank order)."""
    arrays = {}
    for r in results:
        for key, value in r.optim[1].items():
            arrays.setdefault(key, []).append(value)
    arrays = {k: np.concatenate(v) for k, v in arrays.items()}
    doc = results[0].optim[0]
    if isinstance(method, MultiOptimMethod):
        # each sub-method's counters and schedule from a task that actually ran it
        doc = dict(doc, methods=dict(doc["methods"]))
        for name in method.optim_methods:
            owner = next((r for r in results if name in r.covers), None)
            if owner is not None:
                doc["methods"][name] = owner.optim[0]["methods"][name]
    return doc, arrays


class _LearningRate:
    """The learning rate the local loop would report: for a MultiOptimMethod, the rate of
    the method of the first slice of the *whole* vector (task 0's part may not run it)."""

    def __init__(self, method, part):
        self.part = part
        self.full = None
        if isinstance(method, MultiOptimMethod):
            self.full = method
            self.full.clear_history()  # only the counters and schedules are needed here

    def __call__(self):
        if self.full is None:
            return self.part.get_learning_rate()
        for key in ("epoch", "loss", "score"):
            if key in self.part.state:
                self.full.state[key] = self.part.state[key]
        return self.full.get_learning_rate()

    def updated(self):
        if self.full is not None:
            for m in self.full.optim_methods.values():
                m.state["neval"] = int(m.state.get("neval", 0)) + 1


def _clip(gradclip, ring, g_slice):
    """The Optimizer's gradient clipping on this task's slice of the summed gradient."""
    for clip in gradclip:
        if isinstance(clip, L2NormClipping):
            total = ring.allreduce_small([L2NormClipping.squared_norm(g_slice)])[0]
            clip(g_slice, norm=float(np.sqrt(total)))
        else:
            clip(g_slice)


@dataclasses.dataclass
class _TaskResult:
    """What a task returns at the end of its stretch (collected by the driver)."""
    rank: int
    slice: tuple
    optim: tuple          # (document, arrays) of this task's slice of the optimizer state
    covers: list | None   # the sub-methods of a MultiOptimMethod this slice ran
    stats: dict           # seconds of compute / wait / straggle / sync, iterations, records,
    #                       bytes_sent on the ring, vector_values (the trainable vector's length),
    #                       weights_crc32 (the replica's weights at the end, for checks),
    #                       threads (of the native kernels), cpu (seconds of the task's process)
    buffers: dict         # this replica's buffers (batch-norm running statistics)
    pid: int
    weights: np.ndarray | None = None  # task 0 only


def _train_task(plan, payload, iterator):
    """One replica: runs inside a barrier task for one stretch (see the module docstring)."""
    from pyspark import BarrierTaskContext

    ctx = BarrierTaskContext.get()
    rank = ctx.partitionId()
    # the executor's address (host:port) identifies it in every deploy mode
    executor = ctx.getTaskInfos()[rank].address
    if plan.local:
        bind, host = "127.0.0.1", "127.0.0.1"
    else:
        bind, host = "0.0.0.0", executor.rsplit(":", 1)[0]
    # the native kernels run on the cores Spark granted this task (spark.task.cpus), not on
    # the executor's cores that Spark puts into OMP_NUM_THREADS
    threads = use_task_threads(plan.threads)
    server = listen(bind)
    driver = connect(plan.driver[0], plan.driver[1], plan.timeout)
    ring = None
    try:
        send(driver, Hello(plan.token, rank, host, server.getsockname()[1], os.getpid(),
                           ctx.attemptNumber()))
        model, criterion, method, gradclip = pickle.loads(payload.value)
        records = _TaskRecords.gather(iterator, plan.offsets, model.dtype, plan.feature_shape)
        reply = receive(driver, Addresses)
        collective = Doubling if plan.allreduce == "doubling" else Ring
        ring = collective.connect(rank, [tuple(a) for a in reply.addresses], server, plan.token,
                                  plan.timeout)
        replica = _Replica(plan, ring, driver, model, criterion, method, gradclip)
        replica.identity = (executor, socket.gethostname(), ctx.attemptNumber())
        replica.stats["threads"] = threads
        return [replica.train(records)]
    except BaseException as e:
        if not isinstance(e, CommError):  # the root cause: tell the driver before dying
            try:
                send(driver, TaskFailure(f"task {rank}: {type(e).__name__}: {e}",
                                         fatal=isinstance(e, _DETERMINISTIC)))
            except Exception:
                pass
        raise
    finally:
        if ring is not None:
            ring.close()
        server.close()
        driver.close()


class _Replica:
    """One task's model replica for a stretch: the iteration of ``optim.loop`` with the
    all-reduce between its gradient and its update (see the module docstring).

    Args:
        plan: the ``StretchPlan``.
        ring: this task's ``Ring`` or ``Doubling`` (its rank and the number of tasks; both
            offer the same collectives).
        driver: the connection to the driver (only task 0 talks on it during the loop).
        model, criterion, method, gradclip: the replica's copies (``method`` is the whole
            optim method; the replica updates its slice).
    """

    def __init__(self, plan, ring, driver, model, criterion, method, gradclip):
        self.plan, self.ring, self.driver = plan, ring, driver
        self.rank = ring.rank
        self.model, self.full_method, self.gradclip = model, method, gradclip
        if plan.replica_buffers is not None:  # this replica's own, from the last stretch
            _set_buffers(model, plan.replica_buffers[self.rank])
        self.step = IterationStep(model, criterion)
        w = self.step.weights
        self.lo, self.hi = slices(w.size, ring.size)[self.rank]
        self.method = _slice_method(method, self.lo, self.hi)
        self.learning_rate = _LearningRate(method, self.method) if self.rank == 0 else None
        # this task's slice of the gradient of the last update, kept when a driver listener
        # may ask for it
        self.applied = (np.zeros_like(self.step.grads[self.lo:self.hi])
                        if plan.keep_gradient else None)
        self.stats = dict(compute=0.0, sync=0.0, wait=0.0, straggle=0.0, iterations=0,
                          records=0, bytes_sent=0, vector_values=int(self.step.weights.size))
        self.identity = ("", "", 0)  # executor, host, attempt (set by the task)
        self._reported = dict(self.stats, time=time.perf_counter())

    def _report(self, iteration):
        """Send the driver where this task's time went since its last report."""
        stats, last, now = self.stats, self._reported, time.perf_counter()
        executor, host, attempt = self.identity
        send(self.driver, TaskReport(
            iteration, self.rank, executor, host, attempt,
            stats["iterations"] - last["iterations"], stats["records"] - last["records"],
            stats["compute"] - last["compute"], stats["sync"] - last["sync"],
            (stats["wait"] + stats["straggle"]) - (last["wait"] + last["straggle"]),
            now - last["time"]))
        self._reported = dict(stats, time=now)

    def train(self, records):
        """Iterate until the driver says stop or an iteration diverges; the task's result."""
        plan, rank, ring, step, stats = self.plan, self.rank, self.ring, self.step, self.stats
        cpu_start = time.process_time()
        model = self.model
        w, g = step.weights, step.grads
        w_slice, g_slice = w[self.lo:self.hi], g[self.lo:self.hi]
        clip = (lambda gs: _clip(self.gradclip, ring, gs)) if self.gradclip else None
        rate = self.learning_rate if rank == 0 else _no_rate
        state = dataclasses.replace(plan.start, records_per_epoch=plan.records)
        first = state.iteration
        batches = _Batches(plan, rank, records)
        batches.draw(state.epoch)
        model.training()
        # the buffers (batch-norm running statistics) before this iteration's forward: the
        # forward of an iteration that the driver then stops (or that diverges) must leave no
        # trace
        before = _BufferCopy(model)
        status, divergence = "stopped", None
        while True:
            if state.start_iteration():
                batches.draw(state.epoch)
            t0 = time.perf_counter()
            nn_random.set_seed(_iteration_seed(plan.seed, state.iteration, rank))
            before.save()
            rows, b, nominal = batches.rows(state.records_in_epoch)
            header = IterationHeader()
            profile = (LayerProfile(model) if rank == 0 and plan.profile_every
                       and (state.iteration + 1) % plan.profile_every == 0 else None)
            if len(rows):
                xb, yb = batch.take(records.X, rows), batch.take(records.Y, rows)
                share = len(rows) / max(b, 1)
                if profile is None:
                    header.loss = step.gradient(xb, yb, share=share)
                else:
                    with profile.watch():
                        header.loss = step.gradient(xb, yb, share=share)
                bad_loss, bad_gradient = step.non_finite(header.loss)
                header.records = len(rows)
                header.bad_loss, header.bad_gradient = float(bad_loss), float(bad_gradient)
            else:
                g.fill(0)
            fault = plan.fault
            if fault is not None and fault.mode == "slow" and fault.rank == rank and \
                    state.iteration + 1 >= fault.iteration:
                time.sleep(float(fault.seconds))  # a straggler: slower, the same numbers
            t1 = time.perf_counter()
            header, t2 = self._exchange(header, state.iteration, first)
            t_header = time.perf_counter()
            if header.stop > 0:
                before.restore()
                break
            if header.records != b:
                raise RuntimeError(f"task {rank}: the tasks hold {int(header.records)} of the "
                                   f"{b} records of iteration {state.iteration + 1}; the data "
                                   "changed under training")
            if header.bad_loss > 0 or header.bad_gradient > 0:
                status = "diverged"
                divergence = Divergence(state.iteration + 1, state.epoch, header.loss,
                                        "loss" if header.bad_loss > 0 else "gradient")
                before.restore()
                break
            ring.reduce_scatter(g, plan.compression)
            lr = step.update(self.method, w_slice, g_slice, state.epoch, header.loss,
                             clip=clip, learning_rate=rate)
            if self.applied is not None:  # as the local loop's model holds it after the update
                np.copyto(self.applied, g_slice)
            if rank == 0:
                self.learning_rate.updated()
            ring.all_gather(w)
            t3 = time.perf_counter()
            state.finish_iteration(nominal, header.loss)
            stats["compute"] += t1 - t0
            stats["wait"] += t2 - t1           # for the driver's go/stop (task 0)
            stats["straggle"] += t_header - t2  # the header exchange: waiting for slower tasks
            stats["sync"] += t3 - t_header      # reduce-scatter, slice update, all-gather
            stats["iterations"] += 1
            stats["records"] += len(rows)
            if plan.report_every and state.iteration % plan.report_every == 0:
                self._report(state.iteration)
            if profile is not None:
                send(self.driver, LayerTimes.of(state.iteration, profile.layers()))
            if rank == 0:
                send(self.driver, Iteration(state.iteration, state.epoch, header.loss, nominal,
                                            lr, t3 - t0))
        if rank == 0:
            send(self.driver, StretchEnd(status, divergence))
        stats["bytes_sent"] = int(ring.bytes_sent)  # this stretch's ring traffic from this task
        # the CPU time of this task's process (all its threads): on a shared machine the
        # figure to compare, where wall times measure the other processes too
        stats["cpu"] = time.process_time() - cpu_start
        # a fingerprint of this replica's weights: every replica must end with the same bits
        stats["weights_crc32"] = zlib.crc32(memoryview(w).cast("B"))
        return _TaskResult(
            rank=rank, slice=(self.lo, self.hi), optim=self.method.get_state(),
            covers=_covered(self.full_method, self.lo, self.hi), stats=stats,
            buffers={p: np.array(getattr(m, nm), copy=True)
                     for p, m, nm in model.named_buffers()},
            pid=os.getpid(), weights=w.copy() if rank == 0 else None)

    def _exchange(self, header, iteration, first):
        """Sum ``header`` over the tasks, with task 0's part of the driver's answer to the
        last iteration; returns the sum and when the driver's answer came.

        Task 0 waits for the driver's answer; meanwhile the driver's listeners may ask for
        that iteration's weights (and gradient): every task then takes part in sending them,
        and task 0 waits again."""
        plan, rank = self.plan, self.rank
        while True:
            header.stop = header.send_parameters = 0.0
            if rank == 0 and iteration > first:
                answer = receive(self.driver, Decision, SendParameters)
                if isinstance(answer, TaskFailure):  # pragma: no cover - the driver never sends one
                    raise CommError(answer.message)
                header.stop = float(isinstance(answer, Decision) and answer.stop)
                header.send_parameters = float(isinstance(answer, SendParameters))
            answered = time.perf_counter()
            fault = plan.fault
            if fault is not None and fault.mode != "slow" and fault.iteration == iteration + 1 \
                    and fault.rank == rank:
                _inject(fault, rank, iteration + 1)
            total = header.allreduce(self.ring)
            if total.send_parameters == 0:
                return total, answered
            self._send_parameters()

    def _send_parameters(self):
        """The weights (and the whole gradient of the last update, gathered from the tasks'
        slices) to the driver, which asked for them through task 0."""
        w = self.step.weights
        full = None
        if self.applied is not None:
            full = np.zeros_like(self.step.grads)
            full[self.lo:self.hi] = self.applied
            self.ring.all_gather(full)
        if self.rank == 0:
            send(self.driver, Parameters(int(w.nbytes), 0 if full is None else int(full.nbytes)))
            send_all(self.driver, memoryview(w).cast("B"))
            if full is not None:
                send_all(self.driver, memoryview(full).cast("B"))


def _no_rate():
    return None


class _BufferCopy:
    """A copy of a model's buffers, saved and restored in place (no allocation per save)."""

    def __init__(self, model):
        self.refs = list(model.named_buffers())
        self.saved = {p: np.array(getattr(m, n), copy=True) for p, m, n in self.refs}

    def save(self):
        for p, m, n in self.refs:
            value = getattr(m, n)
            if isinstance(value, np.ndarray) and value.shape == self.saved[p].shape:
                np.copyto(self.saved[p], value)
            else:
                self.saved[p] = np.array(value, copy=True)

    def restore(self):
        for p, m, n in self.refs:
            current = getattr(m, n)
            if isinstance(current, np.ndarray) and current.shape == self.saved[p].shape:
                current[...] = self.saved[p]
            else:
                setattr(m, n, self.saved[p].copy())


def _iteration_seed(seed, iteration, rank):
    """The seed of a replica's random numbers in an iteration: a function of the run's seed, the
    iteration and the rank only, so where a stretch begins changes nothing."""
    return int(np.random.SeedSequence([int(seed), int(iteration), int(rank)])
               .generate_state(1, np.uint64)[0])


def _inject(fault, rank, iteration):
    """The test hook of ``fault_injection``: fail this task the way the test asks."""
    if fault.mode == "exit":
        os._exit(3)
    if fault.mode == "hang":
        time.sleep(float(fault.seconds))
    raise RuntimeError(f"injected failure in task {rank} at iteration {iteration}")


# ====================================================================== driver side
@dataclasses.dataclass
class _Outcome:
    """How a stretch ended, and the tasks' results (``_TaskResult`` in rank order)."""
    reason: str              # "due" | "ended" | "limit" | "diverged"
    due: tuple = (False, False)
    divergence: Divergence | None = None
    results: list = dataclasses.field(default_factory=list)


class SparkTrainer:
    """The runner ``Optimizer`` uses for an RDD of Samples or a DataFrame (see the module
    docstring).  Options come from ``Optimizer(..., **options)``; see ``TRAINER_OPTIONS``."""

    def __init__(self, optimizer):
        self.opt = optimizer
        opts = {_ALIASES.get(k, k): v for k, v in optimizer.distributed_options.items()}
        unknown = sorted(set(opts) - set(TRAINER_OPTIONS))
        if unknown:
            raise TypeError(f"Optimizer: unexpected arguments {unknown} (Spark options: "
                            f"{sorted(TRAINER_OPTIONS)})")
        self.features_col = opts.get("features_col", "features")
        self.label_col = opts.get("label_col", "label")
        self.feature_shape = opts.get("feature_shape")
        self.compression = opts.get("gradient_compression")
        if self.compression is True:
            self.compression = "bf16"
        if self.compression is False:
            self.compression = None
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"Optimizer: gradient_compression must be one of {COMPRESSIONS}, "
                             f"got {self.compression!r}")
        self.allreduce = opts.get("allreduce", "ring")
        if not isinstance(self.allreduce, str) or self.allreduce not in ALLREDUCES:
            raise ValueError(f"Optimizer: allreduce must be one of {ALLREDUCES}, "
                             f"got {self.allreduce!r}")
        if self.allreduce == "doubling" and self.compression is not None:
            raise ValueError("Optimizer: gradient_compression is a ring option (it halves the "
                             "bytes of a bandwidth-bound all-reduce); use allreduce='ring' or "
                             "'auto' with it")
        self.allreduce_used = None  # what the last stretch ran ("auto" resolved)
        self.max_retries = check_int("Optimizer", "max_retries", opts.get("max_retries", 3),
                                     minimum=0)
        self.num_tasks = opts.get("num_tasks")
        if self.num_tasks is not None:
            self.num_tasks = check_int("Optimizer", "num_tasks", self.num_tasks)
        self.max_stretch = check_int("Optimizer", "max_stretch_iterations",
                                     opts.get("max_stretch_iterations", 1000))
        self.snapshot_interval = opts.get("snapshot_interval", 300.0)
        if self.snapshot_interval != "auto":
            seconds = _positive_seconds(self.snapshot_interval)
            if seconds is None:
                raise ValueError("Optimizer: snapshot_interval must be a positive number of "
                                 f"seconds or 'auto', got {self.snapshot_interval!r}")
            self.snapshot_interval = seconds
            if "node_mtbf" in opts:
                raise ValueError("Optimizer: node_mtbf sets the failure rate that "
                                 "snapshot_interval='auto' plans for; with a fixed "
                                 f"snapshot_interval={self.snapshot_interval:g} it has no use")
        self.node_mtbf = _positive_seconds(opts.get("node_mtbf", NODE_MTBF))
        if self.node_mtbf is None:
            raise ValueError(f"Optimizer: node_mtbf must be positive seconds, got "
                             f"{opts['node_mtbf']!r}")
        self.snapshot_costs = []   # measured seconds of each stretch boundary (end + start)
        self.snapshot_interval_used = None  # the interval the last stretch ran with
        self._entered = None  # when the running stretch began to be planned
        self.timeout = float(opts.get("comm_timeout", 300.0))
        self.rendezvous_timeout = float(opts.get("rendezvous_timeout", 120.0))
        self.fault = FaultInjection.from_option(opts.get("fault_injection"))
        self.balanced = bool(opts.get("balanced_batches", False))
        self.report_every = check_int("Optimizer", "report_every", opts.get("report_every", 10),
                                      minimum=0)
        self._reports = {}       # rank -> the last TaskReport (the cluster view)
        self._cluster = None     # the last ClusterEvent
        self._train = None
        self._val = {}
        self._link, self._synced = None, False  # task 0's connection while it waits
        self.retries = 0
        self.stretches = 0
        self.repeated_iterations = 0
        self.task_pids = {}
        self.stats = []
        self.last_error = None
        self.replica_buffers = None  # each task's buffers after the last stretch, by rank
        if not is_spark_data(optimizer.training_set):
            raise TypeError("SparkTrainer: the training set must be an RDD or a DataFrame")

    # ------------------------------------------------------------------ data
    def training_data(self):
        if self._train is None:
            self._train = DataSet(self.opt.training_set, "training set", self.features_col,
                                  self.label_col, self.feature_shape, self.opt.model.dtype)
        return self._train

    def _dataset(self, data, labeled=True):
        key = (id(data), labeled)
        cached = self._val.get(key)
        if cached is None or cached.source is not data:
            cached = self._val[key] = DataSet(data, "validation set", self.features_col,
                                              self.label_col, self.feature_shape,
                                              self.opt.model.dtype, labeled=labeled)
        return cached

    def evaluate(self, data, batch_size, methods):
        """Distributed evaluation for validation (``Optimizer.run_validation``)."""
        from .predict import evaluate_dataset
        if is_spark_data(data):
            return evaluate_dataset(self.opt.model, self._dataset(data), batch_size, methods)
        from ..optim.validation import evaluate
        return evaluate(self.opt.model, data, batch_size, methods)

    def close(self):
        """Drop the cached blocks of the training and validation sets."""
        for ds in [self._train, *self._val.values()]:
            if ds is not None:
                ds.unpersist()
        self._train, self._val = None, {}

    # ------------------------------------------------------------------ the driver loop
    def run(self):
        try:
            self._run()
        finally:
            self.close()  # the cached blocks live as long as one optimize() call

    def _run(self):
        opt, state = self.opt, self.opt.state
        if getattr(opt.optim_method, "needs_closure", False):
            raise TrainingError(
                f"{type(opt.optim_method).__name__} evaluates the objective several times per "
                "step and cannot run on Spark (one all-reduce per step); use SGD, Adam, ... or "
                "train it locally")
        for clip in getattr(opt, "gradclip", []):
            if not isinstance(clip, (ConstantClipping, L2NormClipping)):
                raise TrainingError(f"gradient clipping {clip!r} is not supported on Spark")
        data = self.training_data()
        state.records_per_epoch = data.n
        self.replica_buffers = None  # a new run starts every replica from the model's buffers
        snapshot = Snapshot.take(opt)
        if opt.end_trigger(state) or opt.stop_requested:
            return
        fault = self.fault
        while True:
            try:
                outcome = self._stretch(data, fault)
            except StretchFailed as e:
                if e.fatal:
                    snapshot.restore(opt)
                    raise TrainingError(
                        f"{e} (not retried: the same data and model would fail again; the "
                        f"model keeps the weights of iteration {snapshot.state.iteration})") \
                        from None
                self.retries += 1
                self.last_error = str(e)
                self.repeated_iterations += state.iteration - snapshot.state.iteration
                if self.retries > self.max_retries:
                    snapshot.restore(opt)
                    raise TrainingError(
                        f"distributed training failed {self.retries} times (retry budget "
                        f"max_retries={self.max_retries}); the model keeps the weights of "
                        f"iteration {snapshot.state.iteration}. Last error: {e}") from None
                warnings.warn(f"workbench: a training stretch failed ({_first_line(e)}); "
                              f"restarting from the snapshot of iteration "
                              f"{snapshot.state.iteration} (retry {self.retries} of "
                              f"{self.max_retries})", RuntimeWarning, stacklevel=2)
                snapshot.restore(opt)
                self._emit_cluster(error=str(e))  # the restart shows at once
                if fault is not None and not fault.repeat:
                    fault = None  # an injected fault fires once unless told to repeat
                continue
            if fault is not None and fault.mode != "slow" and state.iteration >= fault.iteration:
                fault = None
            self._apply(outcome.results)
            snapshot = Snapshot.take(opt)
            if outcome.reason == "diverged":
                raise outcome.divergence.error()
            if outcome.reason == "due":
                opt.after_iteration(*outcome.due)
                if opt.end_trigger(state) or opt.stop_requested:
                    return
            elif outcome.reason == "ended":
                return

    def _task_count(self, data):
        sc = data.sc
        slots = task_slots(sc, wait=self.rendezvous_timeout if not is_local(sc) else 0.0)
        if slots < 1:
            raise TrainingError("the Spark cluster has no executors to train on")
        n = min(slots, data.num_partitions)
        if self.num_tasks is not None:
            n = min(n, self.num_tasks)
        return n

    @staticmethod
    def _owners(data, n_tasks):
        """Which task holds each partition when there are more partitions than tasks."""
        counts = np.asarray(data.counts, dtype=np.float64)
        middle = (np.cumsum(counts) - counts / 2) / max(counts.sum(), 1)
        return np.minimum((middle * n_tasks).astype(int), n_tasks - 1).tolist()

    def _task_counts(self, data, n_tasks):
        if n_tasks == data.num_partitions:
            return list(data.counts)
        counts = [0] * n_tasks
        for part, owner in enumerate(self._owners(data, n_tasks)):
            counts[owner] += data.counts[part]
        return counts

    def _task_rdd(self, data, n_tasks):
        """The blocks laid out as ``n_tasks`` partitions.  A barrier stage cannot coalesce, so
        more partitions than tasks are regrouped once by a shuffle (contiguous runs of
        partitions of about equal record counts) and cached.  So are blocks whose lineage a
        barrier stage refuses (a ``coalesce`` or ``union`` in the user's DataFrame or RDD:
        Spark's ``BarrierJobUnsupportedRDDChainException``), one partition per task."""
        if n_tasks == data.num_partitions and barrier_safe(data.blocks):
            return data.blocks
        grouped = getattr(data, "_grouped", {})
        if n_tasks not in grouped:
            owner = (list(range(n_tasks)) if n_tasks == data.num_partitions
                     else self._owners(data, n_tasks))
            rdd = (data.blocks.map(lambda b, owner=owner: (owner[b[0]], b))
                   .partitionBy(n_tasks, lambda k: k).values().cache())
            rdd.setName(f"workbench {data.what} blocks for {n_tasks} tasks")
            for old in grouped.values():
                old.unpersist()
            grouped = {n_tasks: rdd}
            data._grouped = grouped
        return grouped[n_tasks]

    def _stretch(self, data, fault):
        """Run one barrier stage; return an ``_Outcome`` or raise ``StretchFailed``."""
        opt, state = self.opt, self.opt.state
        sc = data.sc
        self._entered = time.monotonic()
        self.snapshot_interval_used = None if self.snapshot_interval == "auto" \
            else self.snapshot_interval
        n_tasks = self._task_count(data)
        rdd = self._task_rdd(data, n_tasks)
        local = is_local(sc)
        server = listen("127.0.0.1" if local else "0.0.0.0")
        driver_host = "127.0.0.1" if local else sc.getConf().get("spark.driver.host")
        token = secrets.token_hex(16)
        w, _ = opt.model.get_parameters()
        self.allreduce_used = choose_allreduce(self.allreduce, n_tasks, w.nbytes,
                                               self.compression)
        payload = sc.broadcast(pickle.dumps(
            (opt.model, opt.criterion, opt.optim_method, list(getattr(opt, "gradclip", []))),
            protocol=pickle.HIGHEST_PROTOCOL))
        plan = StretchPlan(
            token=token, tasks=n_tasks, driver=(driver_host, server.getsockname()[1]),
            local=local, timeout=self.timeout, records=data.n, offsets=list(data.offsets),
            feature_shape=data.feature_shape, batch_size=opt.batch_size, seed=opt.seed,
            compression=self.compression, start=dataclasses.replace(state), fault=fault,
            replica_buffers=(self.replica_buffers if self.replica_buffers is not None
                             and len(self.replica_buffers) == n_tasks else None),
            keep_gradient=any(getattr(x, "needs_parameters", False) for x in opt.listeners),
            task_counts=self._task_counts(data, n_tasks) if self.balanced else None,
            report_every=self.report_every, profile_every=getattr(opt, "profile_every", 0),
            allreduce=self.allreduce_used,
            threads=explicit_task_threads(sc, getattr(opt, "cores", None)))
        group = f"workbench-train-{token}"
        job = _Job(sc, rdd, plan, payload, group)
        conns = {}
        self.stretches += 1
        try:
            conns = self._rendezvous(server, job, token, n_tasks)
            return self._follow(job, conns)
        except StretchFailed as e:
            raise _root_cause(conns, e) from None
        except (CommError, OSError) as e:
            job.cancel()
            raise _root_cause(conns, StretchFailed(f"lost the connection to the tasks: {e}")) \
                from None
        finally:
            for c in conns.values():
                c.close()
            server.close()
            job.cancel_if_running()
            try:
                payload.destroy()
            except Exception:  # pragma: no cover - the context may be gone
                pass

    def _rendezvous(self, server, job, token, n_tasks):
        deadline = time.monotonic() + self.rendezvous_timeout
        server.settimeout(0.2)
        conns, hellos = {}, {}
        slots = SlotWatch(job.sc, n_tasks, grace=SLOT_GRACE)
        while len(conns) < n_tasks:
            if job.done():
                raise StretchFailed(f"the stage ended before its tasks registered: {job.error}")
            if not conns and slots.short():
                # an executor left after the stage was planned: Spark would wait for its slot
                # (the slot check: interval x maxFailures; after it, for ever); a retry plans
                # on the slots there are
                job.abandon()
                raise StretchFailed(
                    f"the cluster has {slots.slots} task slots, fewer than the {n_tasks} this "
                    f"stretch was planned on, for {SLOT_GRACE:.0f}s (an executor was lost)")
            if time.monotonic() > deadline:
                job.cancel()
                raise TrainingError(
                    f"only {len(conns)} of {n_tasks} training tasks started within "
                    f"{self.rendezvous_timeout:.0f}s; the cluster may not have {n_tasks} free "
                    "task slots (pass num_tasks=... or rendezvous_timeout=...)")
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(self.timeout)
            try:
                hello = receive(conn, Hello, limit=4096)
            except (CommError, ValueError):
                conn.close()
                continue
            if not isinstance(hello, Hello) or hello.token != token or \
                    not 0 <= hello.rank < n_tasks:
                conn.close()
                continue
            if hello.rank in conns:
                conns[hello.rank].close()
            conns[hello.rank], hellos[hello.rank] = conn, hello
        self.task_pids = {r: h.pid for r, h in hellos.items()}
        addresses = [[hellos[r].host, hellos[r].port] for r in range(n_tasks)]
        for conn in conns.values():
            send(conn, Addresses(addresses))
        return conns

    def _follow(self, job, conns):
        """Receive task 0's metrics, emit events, decide go/stop; collect the stage result.
        The other tasks' connections carry only their ``TaskReport``s (and a failure)."""
        opt, state = self.opt, self.opt.state
        lead = conns[0]
        sel = selectors.DefaultSelector()
        for rank, conn in conns.items():
            sel.register(conn, selectors.EVENT_READ, rank)
        started, last = time.monotonic(), time.monotonic()
        iterations = 0
        outcome = None
        end_msg = None
        start_cost, decided = 0.0, None  # the snapshot cost's parts (snapshot_interval='auto')
        profile = None  # task 0's LayerTimes, emitted after its iteration's event
        self._reports = {}
        while end_msg is None:
            try:
                ready = sel.select(timeout=0.5)
            except KeyboardInterrupt:
                if opt.stop_requested:  # a second interrupt: give up on the stretch
                    raise
                opt.stop()  # the first: end after the current iteration, keep the weights
                continue
            if not ready:
                if job.done() and job.error is not None:
                    raise StretchFailed(job.error)
                if time.monotonic() - last > self.timeout + 30:
                    job.cancel()
                    raise StretchFailed(f"no progress from the tasks for {self.timeout + 30:.0f}s")
                continue
            others = [key for key, _ in ready if key.data != 0]
            for key in others:
                try:
                    report = receive(key.fileobj, TaskReport)
                except (CommError, OSError):
                    sel.unregister(key.fileobj)  # the task ended (or died: the job says)
                    continue
                if isinstance(report, TaskFailure):
                    job.join(self.timeout)
                    raise StretchFailed(report.message, report.fatal)
                self._on_report(report, len(conns))
            if len(others) == len(ready):
                continue
            try:
                msg = receive(lead, Iteration, StretchEnd, TaskReport, LayerTimes)
            except CommError as e:
                job.join(self.timeout)
                raise StretchFailed(job.error or f"task 0 went away: {e}") from None
            last = time.monotonic()
            if isinstance(msg, TaskFailure):
                job.join(self.timeout)
                raise StretchFailed(msg.message, msg.fatal)
            if isinstance(msg, TaskReport):
                self._on_report(msg, len(conns))
                continue
            if isinstance(msg, LayerTimes):
                profile = msg
                continue
            if isinstance(msg, StretchEnd):
                end_msg = msg
                continue
            iterations += 1
            if iterations == 1:  # the stretch's start, its first iteration's own time aside
                start_cost = max(time.monotonic() - self._entered - msg.seconds, 0.0)
                self._plan_interval(start_cost, len(conns))
            _advance(state, msg)
            self._link, self._synced = lead, False  # task 0 now waits: sync_parameters works
            try:
                opt.emit("on_iteration", IterationEvent(
                    state.epoch, state.iteration, state.loss,
                    msg.records / max(msg.seconds, 1e-9), msg.lr, msg.records, time.time(),
                    state))
            finally:
                self._link = None
            if profile is not None and profile.iteration == state.iteration:
                opt.emit("on_profile", LayerProfileEvent(state.epoch, state.iteration,
                                                         profile.times(), time.time(),
                                                         source="task 0"))
                profile = None
            if outcome is None:
                outcome = self._decide(iterations, started)
                send(lead, Decision(stop=outcome is not None))
                if outcome is not None:
                    decided = time.monotonic()
            else:  # pragma: no cover - tasks stop at the first "stop"
                send(lead, Decision(stop=True))
        sel.close()
        job.join(self.timeout + 30)
        if not job.done():
            job.cancel()
            raise StretchFailed("the training stage did not finish after its last iteration")
        if job.error is not None:
            raise StretchFailed(job.error)
        results = sorted(job.result, key=lambda r: r.rank)
        self.stats.append([r.stats for r in results])
        if decided is not None:  # this boundary's cost: the stretch's start + its end
            self.snapshot_costs.append(start_cost + time.monotonic() - decided)
        if end_msg.status == "diverged":
            return _Outcome("diverged", divergence=end_msg.divergence, results=results)
        if outcome is None:  # pragma: no cover - tasks stop only when told
            raise StretchFailed("the tasks stopped without being asked to")
        outcome.results = results
        return outcome

    def _on_report(self, report, n_tasks):
        """Keep a task's report; once every task reported the same iteration, emit the
        ``ClusterEvent``."""
        self._reports[report.rank] = report
        if len(self._reports) == n_tasks and \
                len({r.iteration for r in self._reports.values()}) == 1:
            self._emit_cluster()

    def _emit_cluster(self, error=None):
        """Emit the tasks' last reports as a ``ClusterEvent`` (again after a failure, with
        the restart counted; nothing before the first complete report)."""
        opt, reports = self.opt, self._reports
        if reports and len({r.iteration for r in reports.values()}) == 1:
            iteration = next(iter(reports.values())).iteration
            tasks = [reports[r].stats() for r in sorted(reports)]
            self._cluster = ClusterEvent(opt.state.epoch, iteration, tasks, time.time())
        if self._cluster is None:
            return
        self._cluster = dataclasses.replace(
            self._cluster, wall_time=time.time(), stretches=self.stretches,
            restarts=self.retries, last_error=error or self.last_error)
        opt.emit("on_cluster", self._cluster)

    def sync_parameters(self):
        """Bring the current weights into the driver's model while a stretch runs.

        Called from an ``on_iteration`` listener (``Optimizer.sync_parameters``): task 0 holds
        the weights that iteration produced and waits for the driver's answer, so the driver
        asks it for them and writes them into ``optimizer.model``.  The gradients come too
        (the summed, clipped gradient of that update) when a listener declared
        ``needs_parameters`` before the stretch started.  Elsewhere (between stretches, or
        twice for one iteration) the driver's model is already current and nothing is sent.

        Returns:
            True if weights were fetched.
        """
        link = getattr(self, "_link", None)
        if link is None or self._synced:
            return False
        send(link, SendParameters())
        head = receive(link, Parameters)
        if isinstance(head, TaskFailure):
            raise StretchFailed(head.message, head.fatal)
        w, g = self.opt.model.get_parameters()
        if head.weights != w.nbytes or head.gradient not in (0, g.nbytes):
            raise StretchFailed(f"task 0 sent {head} for weights of {w.nbytes} bytes")
        recv_exact(link, memoryview(w).cast("B"))
        if head.gradient:
            recv_exact(link, memoryview(g).cast("B"))
        self._synced = True
        return True

    def _plan_interval(self, start_cost, n_tasks):
        """With ``snapshot_interval='auto'``: the running stretch's interval by Young's rule from
        the median measured boundary cost (before the first boundary ends: twice this
        stretch's start, the end assumed to cost as much), the task count and ``node_mtbf``."""
        if self.snapshot_interval != "auto":
            return
        costs = self.snapshot_costs or [2.0 * start_cost]
        cost = max(float(np.median(costs)), 1e-3)  # a local stage may start in ~ms
        self.snapshot_interval_used = snapshot_interval(cost, n_tasks, self.node_mtbf)

    def _decide(self, iterations, started):
        """After an iteration: None to go on, else the ``_Outcome`` that ends the stretch
        (each trigger is evaluated once per iteration, in the local loop's order)."""
        opt, state = self.opt, self.opt.state
        validate = opt.validation is not None and bool(opt.validation["trigger"](state))
        checkpoint = opt.checkpoint is not None and bool(opt.checkpoint["trigger"](state))
        if validate or checkpoint:
            return _Outcome("due", due=(validate, checkpoint))
        if opt.end_trigger(state) or opt.stop_requested:
            return _Outcome("ended")
        if iterations >= self.max_stretch or (
                self.snapshot_interval_used is not None and
                time.monotonic() - started >= self.snapshot_interval_used):
            return _Outcome("limit")
        return None

    def _apply(self, results):
        """Put the stretch's weights, buffers and optim-state slices back into the driver's
        model and optim method; keep each replica's buffers for the next stretch."""
        opt = self.opt
        w, _ = opt.model.get_parameters()
        w[...] = results[0].weights
        self.replica_buffers = [r.buffers for r in results]
        buffers = {}
        for p, value in results[0].buffers.items():
            values = [r.buffers[p] for r in results]
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                # replicas keep their own running statistics: average them
                buffers[p] = np.mean(values, axis=0).astype(value.dtype)
            else:
                buffers[p] = value
        _set_buffers(opt.model, buffers)
        opt.optim_method.load_state(*_gather_state(opt.optim_method, results))


def _root_cause(conns, fallback):
    """A ``StretchFailed`` with the first error a task reported on its driver connection (a
    task that failed because a peer vanished reports nothing), else ``fallback``."""
    if fallback.fatal:
        return fallback
    for rank in sorted(conns):
        conn = conns[rank]
        try:
            conn.settimeout(0.2)
            while True:
                msg = receive(conn)
                if isinstance(msg, TaskFailure):
                    return StretchFailed(msg.message, msg.fatal)
        except (CommError, OSError, ValueError):
            continue
    return fallback


def _advance(state, msg):
    """Count on the driver the iteration that task 0 reported (``TrainingState``'s epoch
    bookkeeping, as the tasks count it)."""
    state.start_iteration()
    state.finish_iteration(msg.records, float(msg.loss))
    if state.iteration != msg.iteration or state.epoch != msg.epoch:
        raise StretchFailed(f"the tasks are at iteration {msg.iteration} (epoch {msg.epoch}) but "
                            f"the driver expected {state.iteration} (epoch {state.epoch})")


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def barrier_safe(rdd):
    """True if a barrier stage may run on ``rdd`` as it is: every RDD of its stage (up to the
    shuffles before it) has ``rdd``'s partition count and none prunes partitions, the rule
    Spark's scheduler enforces.  Read from the JVM lineage; if that cannot be read (not a
    classic JVM RDD), assume it is safe and let Spark say otherwise."""
    try:
        top = rdd._jrdd.rdd()
        n = top.getNumPartitions()
        stack, seen = [top], 0
        while stack and seen < 10_000:
            r = stack.pop()
            seen += 1
            if r.getNumPartitions() != n or r.getClass().getSimpleName() in (
                    "PartitionPruningRDD", "UnionRDD", "CoalescedRDD"):
                return False
            deps = r.dependencies().iterator()
            while deps.hasNext():
                dep = deps.next()
                if dep.getClass().getSimpleName() != "ShuffleDependency":
                    stack.append(dep.rdd())
        return True
    except Exception:  # pragma: no cover - no JVM lineage to read
        return True


class _Job:
    """The stretch's barrier job, collected on a background thread."""

    def __init__(self, sc, rdd, plan, payload, group):
        self.sc, self.group = sc, group
        self.result, self.error = None, None
        self.abandoned = False
        self._done = threading.Event()

        def task(it, plan=plan, payload=payload):
            return _train_task(plan, payload, it)

        def run():
            try:
                sc.setJobGroup(group, "workbench training stretch", interruptOnCancel=True)
                self.result = rdd.barrier().mapPartitions(task).collect()
            except BaseException as e:
                self.error = job_error_message(e)
                self.trace = traceback.format_exc()
            finally:
                self._done.set()

        self._thread = threading.Thread(target=run, name="workbench-stretch", daemon=True)
        self._thread.start()

    def done(self):
        return self._done.is_set()

    def join(self, timeout):
        self._done.wait(timeout)

    def cancel(self, wait=30.0):
        try:
            self.sc.cancelJobGroup(self.group)
        except Exception:  # pragma: no cover - the context may be gone
            pass
        self._done.wait(wait)

    def abandon(self):
        """Cancel without waiting long for the job to end.  A job still in Spark's barrier slot
        check is out of reach of a job-group cancel before Spark 4.0 (it is no active job yet):
        it ends when the check gives up (``maxConcurrentTasksCheck``; its tasks, if it ever
        launches them, find the stretch's listener closed and fail)."""
        self.abandoned = True
        self.cancel(wait=2.0)

    def cancel_if_running(self):
        if not self.done() and not self.abandoned:
            self.cancel()
