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
  second) and connect in a ring.
- Per iteration: local forward/backward; a tiny all-reduce of (loss, records, non-finite flags,
  the driver's stop decision); a reduce-scatter of the gradient; each task updates its 1/N
  slice of the weights with its own 1/N slice of the optimizer state (gradient clipping, and
  per-submodule methods via ``MultiOptimMethod.for_slice``, apply to the slice); an all-gather
  of the weights.  Task 0 sends the iteration's metrics to the driver, which emits the events
  (listeners run on the driver's main thread, as in the local loop), evaluates the triggers and
  answers "go on" or "stop" before the next iteration's update.  Before it answers, a listener
  may ask for the iteration's weights and gradient (``sync_parameters``: TensorBoard's
  parameter histograms): task 0 sends them, the gradient all-gathered from the tasks' slices.
- At the end of a stretch the tasks return the weights and their optimizer-state slices: the
  driver puts them back together into ``optimizer.model`` / ``optimizer.optim_method``.  That is
  also the snapshot a failed stretch restarts from (up to ``max_retries`` times).
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
import threading
import time
import traceback
import warnings

import numpy as np

from ..nn import random as nn_random
from ..nn.module import batch_share, input_grad_unused
from ..optim.events import IterationEvent, TrainingState
from ..optim.methods import ConstantClipping, L2NormClipping, MultiOptimMethod
from ..optim.optimizer import TrainingError, epoch_permutation, objective
from .comm import (COMPRESSIONS, CommError, Ring, connect, listen, recv_exact, recv_msg,
                   send_all, send_msg, slices)
from .data import DataSet, is_spark_data
from .engine import is_local, task_slots

__all__ = ["SparkTrainer", "StretchFailed", "TRAINER_OPTIONS"]

TRAINER_OPTIONS = {
    "features_col": "DataFrame feature column, or a list of numeric columns (default 'features')",
    "label_col": "DataFrame label column (default 'label')",
    "feature_shape": "reshape every record's features to this shape",
    "gradient_compression": "None (default), 'bf16' (BigDL's 16-bit float) or 'fp16'",
    "max_retries": "stretches that may fail and be restarted from the snapshot (default 3)",
    "num_tasks": "at most this many tasks (default: the cluster's free slots)",
    "max_stretch_iterations": "iterations after which a stretch ends for a snapshot (1000)",
    "snapshot_interval": "seconds after which a stretch ends for a snapshot (default 300)",
    "comm_timeout": "seconds a task waits for a peer or the driver before failing (300)",
    "rendezvous_timeout": "seconds to wait for every task of a stretch to start (120)",
    "balanced_batches": "True: each task takes its proportional share of every batch from its "
                        "own records (no waiting on uneven shares; batches differ from the "
                        "local loop's); default False: exactly the local loop's batches",
    "fault_injection": "testing: {'iteration': k, 'rank': r, 'mode': 'raise' | 'exit' | "
                       "'hang', 'repeat': False}: task r fails before update k",
}
_ALIASES = {"feature_cols": "features_col", "features_cols": "features_col",
            "feature_col": "features_col", "labelCol": "label_col", "featuresCol": "features_col"}


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
def _task_data(blocks, offsets, dtype, feature_shape):
    """Concatenate a task's blocks; return ``(X, y, starts, ends, local_starts)``: the global
    index ranges this task holds and where each begins in ``X``."""
    blocks = sorted(((p, s, X, y) for p, s, X, y in blocks), key=lambda b: (b[0], b[1]))
    xs, ys, starts, ends, local = [], [], [], [], []
    row = 0
    for part, start, X, y in blocks:
        g0 = int(offsets[part]) + int(start)
        starts.append(g0)
        ends.append(g0 + len(X))
        local.append(row)
        row += len(X)
        xs.append(X)
        ys.append(y)
    if xs:
        X = xs[0] if len(xs) == 1 else np.concatenate(xs)
        y = ys[0] if len(ys) == 1 else np.concatenate(ys)
    else:
        X = np.empty((0,) + tuple(feature_shape), dtype=dtype)
        y = np.empty((0,), dtype=np.int64)
    if X.dtype != dtype:
        X = X.astype(dtype)
    return X, y, np.array(starts, np.int64), np.array(ends, np.int64), np.array(local, np.int64)


def _members(idx, starts, ends, local):
    """Rows of this task's ``X`` that hold the global indices ``idx`` (in ``idx`` order)."""
    if starts.size == 0:
        return idx[:0]
    j = np.searchsorted(starts, idx, side="right") - 1
    ok = j >= 0
    jj = np.where(ok, j, 0)
    ok &= idx < ends[jj]
    return (local[jj] + idx - starts[jj])[ok]


# Errors that the same data and model would raise again: not worth a retry.
_DETERMINISTIC = (ValueError, TypeError, IndexError, KeyError, AttributeError,
                  NotImplementedError, ZeroDivisionError)


def _slice_method(method, lo, hi):
    """The optim method a task uses for ``[lo, hi)`` of the flat vector, with that part of the
    optimizer state (buffers are sliced; counters and schedules are shared)."""
    doc, arrays = method.get_state()
    if not isinstance(method, MultiOptimMethod):
        method.load_state(doc, {k: v[lo:hi] for k, v in arrays.items()})
        return method
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
        for key, value in r["optim"][1].items():
            arrays.setdefault(key, []).append(value)
    arrays = {k: np.concatenate(v) for k, v in arrays.items()}
    doc = results[0]["optim"][0]
    if isinstance(method, MultiOptimMethod):
        # each sub-method's counters and schedule from a task that actually ran it
        doc = dict(doc, methods=dict(doc["methods"]))
        for name in method.optim_methods:
            owner = next((r for r in results if name in r["covers"]), None)
            if owner is not None:
                doc["methods"][name] = owner["optim"][0]["methods"][name]
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


def _train_task(plan, payload, iterator):
    """One replica: runs inside a barrier task for one stretch (see the module docstring)."""
    from pyspark import BarrierTaskContext

    ctx = BarrierTaskContext.get()
    rank, n_tasks = ctx.partitionId(), plan["tasks"]
    timeout = plan["timeout"]
    if plan["local"]:
        bind, host = "127.0.0.1", "127.0.0.1"
    else:
        bind, host = "0.0.0.0", ctx.getTaskInfos()[rank].address.rsplit(":", 1)[0]
    server = listen(bind)
    driver = connect(plan["driver"][0], plan["driver"][1], timeout)
    ring = None
    try:
        send_msg(driver, {"token": plan["token"], "rank": rank, "host": host,
                          "port": server.getsockname()[1], "pid": os.getpid(),
                          "attempt": ctx.attemptNumber()})
        model, criterion, method, gradclip = pickle.loads(payload.value)
        X, Y, starts, ends, local = _task_data(iterator, plan["offsets"], model.dtype,
                                               plan["feature_shape"])
        reply = recv_msg(driver)
        ring = Ring.connect(rank, [tuple(a) for a in reply["addresses"]], server,
                            plan["token"], timeout)
        return [_train_loop(plan, rank, n_tasks, ring, driver, model, criterion, method,
                            gradclip, X, Y, starts, ends, local)]
    except BaseException as e:
        if not isinstance(e, CommError):  # the root cause: tell the driver before dying
            try:
                send_msg(driver, {"error": f"task {rank}: {type(e).__name__}: {e}",
                                  "fatal": isinstance(e, _DETERMINISTIC)})
            except Exception:
                pass
        raise
    finally:
        if ring is not None:
            ring.close()
        server.close()
        driver.close()


def _train_loop(plan, rank, n_tasks, ring, driver, model, criterion, full_method, gradclip, X,
                Y, starts, ends, local):
    n, batch_size, seed = plan["n"], plan["batch_size"], plan["seed"]
    if plan.get("replica_buffers") is not None:  # this replica's own, from the last stretch
        _set_buffers(model, plan["replica_buffers"][rank])
    w, g = model.get_parameters()
    lo, hi = slices(w.size, n_tasks)[rank]
    method = _slice_method(full_method, lo, hi)
    learning_rate = _LearningRate(full_method, method) if rank == 0 else None
    w_slice, g_slice = w[lo:hi], g[lo:hi]
    average = getattr(criterion, "size_average", True)
    compression = plan["compression"]
    fault = plan.get("fault")
    # this task's slice of the gradient of the last update, kept when a driver listener may ask
    applied = np.zeros_like(g_slice) if plan.get("keep_gradient") else None
    model.training()

    epoch, rie, finished = plan["epoch"], plan["records_in_epoch"], plan["epoch_finished"]
    iteration = first = plan["iteration"]
    balanced = plan.get("task_counts") is not None
    if balanced:
        counts = np.asarray(plan["task_counts"], dtype=np.int64)
        if counts[rank] != len(X):
            raise RuntimeError(f"task {rank} holds {len(X)} records, the plan says "
                               f"{counts[rank]}")

    def permutation(epoch):
        if balanced:  # this task's own records, in an order of its own
            return np.random.default_rng([seed, epoch, rank, n_tasks]).permutation(len(X))
        return epoch_permutation(seed, epoch, n)

    order = permutation(epoch)
    # the buffers (batch-norm running statistics) before this iteration's forward: the forward
    # of an iteration that the driver then stops (or that diverges) must leave no trace
    before = _BufferCopy(model)
    stats = dict(compute=0.0, sync=0.0, wait=0.0, straggle=0.0, iterations=0, records=0)
    status, diverged = "stopped", None
    while True:
        if finished:
            epoch, rie, finished = epoch + 1, 0, False
            order = permutation(epoch)
        t0 = time.perf_counter()
        nn_random.set_seed(_iteration_seed(seed, iteration, rank))
        before.save()
        end = min(rie + batch_size, n)
        nominal = end - rie
        if balanced:
            # every task takes its proportional share of positions [rie, end) of the epoch
            # from its own records (all tasks compute everyone's share: the same b)
            lo_t, hi_t = (rie * counts) // n, (end * counts) // n
            b = int((hi_t - lo_t).sum())
            rows = order[lo_t[rank]:hi_t[rank]]
        else:
            idx = order[rie:end]
            b = nominal
            rows = _members(idx, starts, ends, local)
        k = len(rows)
        g.fill(0)
        loss_part = 0.0
        if k:
            xb, yb = X[rows], Y[rows]
            # This task's share of the batch: the criterion's mean is weighted by it (a sum
            # criterion adds up as it is), per-record penalties add up as they are, and
            # whole-batch terms (weight regularizers, averaged penalties) are weighted by the
            # share inside the passes, so the sum over tasks is the local loop's objective.
            share = k / max(b, 1)
            scale = share if average else 1.0
            with batch_share(share):
                output = model.forward(xb)
                loss = criterion.forward(output, yb)
                grad_output = criterion.backward(output, yb)
                if scale != 1.0:
                    grad_output = _scaled(grad_output, scale)
                with input_grad_unused():  # nothing reads the data's gradient
                    model.backward(xb, grad_output)
                loss_part = objective(model, float(loss) * scale, share)
        bad_loss = 0.0 if np.isfinite(loss_part) else 1.0
        bad_grad = 0.0 if np.isfinite(g.sum()) else 1.0
        t1 = time.perf_counter()
        stop = 0.0
        while True:
            # Task 0 waits for the driver's answer to the last iteration; meanwhile the
            # driver's listeners may ask for that iteration's weights (and gradient): every
            # task then takes part in sending them, and task 0 waits again.
            wanted = 0.0
            if rank == 0 and iteration > first:
                decision = recv_msg(driver)
                stop = 1.0 if decision.get("stop") else 0.0
                wanted = 1.0 if decision.get("parameters") else 0.0
            t2 = time.perf_counter()
            if fault and fault.get("iteration") == iteration + 1 and fault.get("rank", 0) == rank:
                _inject(fault, rank, iteration + 1)
            header = ring.allreduce_small([loss_part, k, bad_loss, bad_grad, stop, wanted])
            if header[5] == 0:
                break
            if applied is not None:  # the whole gradient of the last update, from the slices
                full = np.zeros_like(g)
                full[lo:hi] = applied
                ring.all_gather(full)
            if rank == 0:
                send_msg(driver, {"parameters": int(w.nbytes),
                                  "gradient": 0 if applied is None else int(full.nbytes)})
                send_all(driver, memoryview(w).cast("B"))
                if applied is not None:
                    send_all(driver, memoryview(full).cast("B"))
        t_header = time.perf_counter()
        if header[4] > 0:
            before.restore()
            break
        if header[1] != b:
            raise RuntimeError(f"task {rank}: the tasks hold {int(header[1])} of the {b} records "
                               f"of iteration {iteration + 1}; the data changed under training")
        global_loss = float(header[0])
        if header[2] > 0 or header[3] > 0:
            status = "diverged"
            diverged = dict(iteration=iteration + 1, epoch=epoch, loss=global_loss,
                            what="loss" if header[2] > 0 else "gradient")
            before.restore()
            break
        method.state["epoch"] = epoch
        lr = learning_rate() if rank == 0 else None
        ring.reduce_scatter(g, compression)
        if gradclip:
            _clip(gradclip, ring, g_slice)
        method.update(w_slice, g_slice)
        if applied is not None:  # as the local loop's model holds it after the update
            np.copyto(applied, g_slice)
        method.state["loss"] = global_loss
        if rank == 0:
            learning_rate.updated()
        ring.all_gather(w)
        t3 = time.perf_counter()
        iteration += 1
        rie += nominal
        finished = rie >= n
        stats["compute"] += t1 - t0
        stats["wait"] += t2 - t1           # for the driver's go/stop (task 0)
        stats["straggle"] += t_header - t2  # the header exchange: waiting for slower tasks
        stats["sync"] += t3 - t_header      # reduce-scatter, slice update, all-gather
        stats["iterations"] += 1
        stats["records"] += k
        if rank == 0:
            send_msg(driver, {"i": iteration, "e": epoch, "loss": global_loss, "b": nominal,
                              "lr": lr, "dt": t3 - t0})
    if rank == 0:
        send_msg(driver, {"end": status, "diverged": diverged})
    doc, arrays = method.get_state()
    result = {"rank": rank, "slice": (lo, hi), "optim": (doc, arrays), "status": status,
              "covers": _covered(full_method, lo, hi),
              "diverged": diverged, "stats": stats, "pid": os.getpid(),
              "buffers": {p: np.array(getattr(m, nm), copy=True)
                          for p, m, nm in model.named_buffers()}}
    if rank == 0:
        result["weights"] = w.copy()
    return result


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


def _scaled(grad, scale):
    """``grad`` (an array or a table of arrays) times ``scale``, in new arrays."""
    if isinstance(grad, (list, tuple)):
        return type(grad)(_scaled(a, scale) for a in grad)
    return grad * grad.dtype.type(scale)


def _inject(fault, rank, iteration):
    """The test hook of ``fault_injection``: fail this task the way the test asks."""
    mode = fault.get("mode", "raise")
    if mode == "exit":
        os._exit(3)
    if mode == "hang":
        time.sleep(float(fault.get("seconds", 3600)))
    raise RuntimeError(f"injected failure in task {rank} at iteration {iteration}")


# ====================================================================== driver side
@dataclasses.dataclass
class _Outcome:
    reason: str              # "due" | "ended" | "limit" | "diverged"
    due: tuple = (False, False)
    diverged: dict | None = None
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
        self.max_retries = _int_option(opts, "max_retries", 3, low=0)
        self.num_tasks = opts.get("num_tasks")
        if self.num_tasks is not None:
            self.num_tasks = _int_option(opts, "num_tasks", None, low=1)
        self.max_stretch = _int_option(opts, "max_stretch_iterations", 1000, low=1)
        self.snapshot_interval = float(opts.get("snapshot_interval", 300.0))
        self.timeout = float(opts.get("comm_timeout", 300.0))
        self.rendezvous_timeout = float(opts.get("rendezvous_timeout", 120.0))
        self.fault = opts.get("fault_injection")
        self.balanced = bool(opts.get("balanced_batches", False))
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
                if fault and not fault.get("repeat"):
                    fault = None  # an injected fault fires once unless told to repeat
                continue
            if fault and state.iteration >= fault.get("iteration", 0):
                fault = None
            self._apply(outcome.results)
            snapshot = Snapshot.take(opt)
            if outcome.reason == "diverged":
                d = outcome.diverged
                what = (f"loss is {d['loss']}" if d["what"] == "loss"
                        else "a gradient is not finite")
                raise TrainingError(
                    f"training diverged at iteration {d['iteration']} (epoch {d['epoch']}): "
                    f"{what}; the model keeps the weights of iteration {d['iteration'] - 1} — "
                    "lower the learning rate or check the data")
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
        partitions of about equal record counts) and cached."""
        if n_tasks == data.num_partitions:
            return data.blocks
        grouped = getattr(data, "_grouped", {})
        if n_tasks not in grouped:
            owner = self._owners(data, n_tasks)
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
        n_tasks = self._task_count(data)
        rdd = self._task_rdd(data, n_tasks)
        local = is_local(sc)
        server = listen("127.0.0.1" if local else "0.0.0.0")
        driver_host = "127.0.0.1" if local else sc.getConf().get("spark.driver.host")
        token = secrets.token_hex(16)
        payload = sc.broadcast(pickle.dumps(
            (opt.model, opt.criterion, opt.optim_method, list(getattr(opt, "gradclip", []))),
            protocol=pickle.HIGHEST_PROTOCOL))
        plan = dict(token=token, tasks=n_tasks, driver=(driver_host, server.getsockname()[1]),
                    local=local, timeout=self.timeout, n=data.n, offsets=data.offsets,
                    feature_shape=data.feature_shape, batch_size=opt.batch_size,
                    seed=opt.seed, compression=self.compression, iteration=state.iteration,
                    epoch=state.epoch, records_in_epoch=state.records_in_epoch,
                    epoch_finished=state.epoch_finished, fault=fault,
                    replica_buffers=(self.replica_buffers if self.replica_buffers is not None
                                     and len(self.replica_buffers) == n_tasks else None),
                    keep_gradient=any(getattr(x, "needs_parameters", False)
                                      for x in opt.listeners),
                    task_counts=self._task_counts(data, n_tasks) if self.balanced else None)
        group = f"workbench-train-{token}"
        job = _Job(sc, rdd, plan, payload, group)
        conns = {}
        self.stretches += 1
        try:
            conns = self._rendezvous(server, job, token, n_tasks)
            return self._follow(job, conns, n_tasks)
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
        while len(conns) < n_tasks:
            if job.done():
                raise StretchFailed(f"the stage ended before its tasks registered: {job.error}")
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
                hello = recv_msg(conn, limit=4096)
            except (CommError, ValueError):
                conn.close()
                continue
            if hello.get("token") != token or not 0 <= hello.get("rank", -1) < n_tasks:
                conn.close()
                continue
            rank = hello["rank"]
            if rank in conns:
                conns[rank].close()
            conns[rank], hellos[rank] = conn, hello
        self.task_pids = {r: h["pid"] for r, h in hellos.items()}
        addresses = [[hellos[r]["host"], hellos[r]["port"]] for r in range(n_tasks)]
        for conn in conns.values():
            send_msg(conn, {"addresses": addresses})
        return conns

    def _follow(self, job, conns, n_tasks):
        """Receive task 0's metrics, emit events, decide go/stop; collect the stage result."""
        opt, state = self.opt, self.opt.state
        n = state.records_per_epoch
        lead = conns[0]
        sel = selectors.DefaultSelector()
        # Only task 0 talks; the others' connections stay open until the stage ends.
        sel.register(lead, selectors.EVENT_READ)
        started, last = time.monotonic(), time.monotonic()
        iterations = 0
        outcome = None
        end_msg = None
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
            try:
                msg = recv_msg(lead)
            except CommError as e:
                job.join(self.timeout)
                raise StretchFailed(job.error or f"task 0 went away: {e}") from None
            last = time.monotonic()
            if "error" in msg:
                job.join(self.timeout)
                raise StretchFailed(msg["error"], msg.get("fatal", False))
            if "end" in msg:
                end_msg = msg
                continue
            iterations += 1
            _advance(state, msg, n)
            self._link, self._synced = lead, False  # task 0 now waits: sync_parameters works
            try:
                opt.emit("on_iteration", IterationEvent(
                    state.epoch, state.iteration, state.loss, msg["b"] / max(msg["dt"], 1e-9),
                    msg["lr"], msg["b"], time.time(), state))
            finally:
                self._link = None
            if outcome is None:
                outcome = self._decide(iterations, started)
                send_msg(lead, {"stop": outcome is not None})
            else:  # pragma: no cover - tasks stop at the first "stop"
                send_msg(lead, {"stop": True})
        sel.close()
        job.join(self.timeout + 30)
        if not job.done():
            job.cancel()
            raise StretchFailed("the training stage did not finish after its last iteration")
        if job.error is not None:
            raise StretchFailed(job.error)
        results = sorted(job.result, key=lambda r: r["rank"])
        self.stats.append([r["stats"] for r in results])
        if end_msg["end"] == "diverged":
            return _Outcome("diverged", diverged=end_msg["diverged"], results=results)
        if outcome is None:  # pragma: no cover - tasks stop only when told
            raise StretchFailed("the tasks stopped without being asked to")
        outcome.results = results
        return outcome

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
        send_msg(link, {"parameters": True})
        head = recv_msg(link)
        if "error" in head:
            raise StretchFailed(head["error"], head.get("fatal", False))
        w, g = self.opt.model.get_parameters()
        if head.get("parameters") != w.nbytes or head.get("gradient") not in (0, g.nbytes):
            raise StretchFailed(f"task 0 sent {head} for weights of {w.nbytes} bytes")
        recv_exact(link, memoryview(w).cast("B"))
        if head["gradient"]:
            recv_exact(link, memoryview(g).cast("B"))
        self._synced = True
        return True

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
        if iterations >= self.max_stretch or \
                time.monotonic() - started >= self.snapshot_interval:
            return _Outcome("limit")
        return None

    def _apply(self, results):
        """Put the stretch's weights, buffers and optim-state slices back into the driver's
        model and optim method; keep each replica's buffers for the next stretch."""
        opt = self.opt
        w, _ = opt.model.get_parameters()
        w[...] = results[0]["weights"]
        self.replica_buffers = [r["buffers"] for r in results]
        buffers = {}
        for p, value in results[0]["buffers"].items():
            values = [r["buffers"][p] for r in results]
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
                msg = recv_msg(conn)
                if "error" in msg:
                    return StretchFailed(msg["error"], msg.get("fatal", False))
        except (CommError, OSError, ValueError):
            continue
    return fallback


def _advance(state, msg, n):
    """Mirror the local loop's counters for an iteration that task 0 reported."""
    if state.epoch_finished:
        state.epoch += 1
        state.records_in_epoch = 0
        state.epoch_finished = False
    b = int(msg["b"])
    state.iteration += 1
    state.records += b
    state.records_in_epoch += b
    state.epoch_finished = state.records_in_epoch >= n
    state.loss = float(msg["loss"])
    if state.iteration != msg["i"] or state.epoch != msg["e"]:
        raise StretchFailed(f"the tasks are at iteration {msg['i']} (epoch {msg['e']}) but the "
                            f"driver expected {state.iteration} (epoch {state.epoch})")


def _int_option(opts, name, default, low=0):
    value = opts.get(name, default)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"Optimizer: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _spark_error(e):
    """The useful part of a Spark job failure: the Python exception of the task, if any."""
    text = str(e)
    for marker in ("RuntimeError: injected", "CommError:", "SparkDataError:", "TrainingError:"):
        i = text.find(marker)
        if i >= 0:
            return text[i:].splitlines()[0]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "Error" in ln or "Exception" in ln:
            return ln.strip()[:500]
    return lines[0][:500] if lines else type(e).__name__


class _Job:
    """The stretch's barrier job, collected on a background thread."""

    def __init__(self, sc, rdd, plan, payload, group):
        self.sc, self.group = sc, group
        self.result, self.error = None, None
        self._done = threading.Event()

        def task(it, plan=plan, payload=payload):
            return _train_task(plan, payload, it)

        def run():
            try:
                sc.setJobGroup(group, "workbench training stretch", interruptOnCancel=True)
                self.result = rdd.barrier().mapPartitions(task).collect()
            except BaseException as e:
                self.error = _spark_error(e)
                self.trace = traceback.format_exc()
            finally:
                self._done.set()

        self._thread = threading.Thread(target=run, name="workbench-stretch", daemon=True)
        self._thread.start()

    def done(self):
        return self._done.is_set()

    def join(self, timeout):
        self._done.wait(timeout)

    def cancel(self):
        try:
            self.sc.cancelJobGroup(self.group)
        except Exception:  # pragma: no cover - the context may be gone
            pass
        self._done.wait(30)

    def cancel_if_running(self):
        if not self.done():
            self.cancel()
