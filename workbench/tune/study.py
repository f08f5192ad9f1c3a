"""``Study``: hyperparameter search with parallel trials, early stopping and live events.

The sampler and the pruner are optuna's (ask-and-tell on an in-memory study held by the
driver): ``TPESampler(constant_liar=True)`` for ``algo="tpe"``, ``RandomSampler`` for
``"random"``, and for ``"grid"`` our own enumeration (``space.grid_points``, which handles
conditional parameters) fed to optuna with ``enqueue_trial`` so the pruner sees grid trials too.
``pruner="median"`` is optuna's ``MedianPruner``, ``"asha"`` its ``SuccessiveHalvingPruner``.

``parallelism`` driver threads each loop: ask a trial, run it (a Spark job of one task, or the
objective in this process for the local backend), tell the result.  Per-epoch reports come back
as they happen; the driver records them, asks the pruner, and answers continue / prune / stop.
Listeners (and the TensorBoard / study.json writers) run on the thread that called ``run()``,
which drains an event queue filled by the worker threads.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import queue
import socket
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

from .._files import finite
from .space import check_space, grid_points, optuna_params, sample_params, space_to_dict

__all__ = ["Study", "Trial", "TrialRecord", "StudyResult", "TuneListener", "TrialPruned",
           "TrialStopped"]

ALGOS = ("grid", "random", "tpe")
PRUNERS = ("median", "asha", None)
BACKENDS = ("auto", "spark", "local")
STUDY_FILE = "study.json"
KEEP_MODEL_FLOATS = 50_000_000  # models of non-best trials are kept while they fit in ~200 MB


class TrialPruned(Exception):
    """Raised by ``trial.report`` when the pruner stops the trial (the objective may let it
    propagate, or catch it and return what it has)."""


class TrialStopped(TrialPruned):
    """Raised by ``trial.report`` when the study was stopped (``study.stop()``)."""


# ---------------------------------------------------------------------- records
@dataclass
class TrialRecord:
    """One trial as the study sees it (live: updated while the trial runs).

    Attributes:
        number: 0-based trial number.
        params: the hyperparameters (conditional ones absent when their parent excludes them).
        status: "queued", "running", "completed", "pruned", "failed" or "stopped".
        reports: ``[(epoch, value)]`` reported so far.
        best_value: best reported value (by the study's mode), or None.
        value: the final value (returned by the objective, else the last report), or None.
        error: "ExceptionType: message" for a failed trial.
        start, end: wall-clock times (``time.time()``) the trial ran between.
        elapsed: seconds it ran.
        pruned: True if the pruner stopped it.
        model: the trained model (a ``Module``), kept for the best trial at least.
        worker: "host:pid" of the process that ran it.
    """
    number: int
    params: dict
    status: str = "queued"
    reports: list = field(default_factory=list)
    best_value: float | None = None
    value: float | None = None
    error: str | None = None
    start: float | None = None
    end: float | None = None
    elapsed: float | None = None
    pruned: bool = False
    model: Any = None
    worker: str | None = None

    def snapshot(self):
        """A copy of the record as it is now (what listeners get for start and report
        events, so they see the state of that moment; ``on_trial_end`` gets the record)."""
        return dataclasses.replace(self, params=dict(self.params), reports=list(self.reports))

    def to_dict(self):
        """The JSON-able fields (no model), as written to study.json."""
        return {"number": self.number, "params": self.params, "status": self.status,
                "best_value": finite(self.best_value), "value": finite(self.value),
                "reports": [[e, finite(v)] for e, v in list(self.reports)],
                "elapsed": self.elapsed, "error": self.error, "pruned": self.pruned,
                "start": self.start, "end": self.end, "worker": self.worker}


class TuneListener:
    """Base class for study listeners; override what you need.  Calls are made on the thread
    that called ``study.run()``, one at a time, in the order things happened."""

    def on_study_start(self, study):
        pass

    def on_trial_start(self, record):
        pass

    def on_trial_report(self, record, epoch, value):
        pass

    def on_trial_end(self, record):
        pass

    def on_study_end(self, result):
        pass


class StudyResult:
    """What ``study.run()`` returns.

    Attributes:
        trials: every ``TrialRecord``.
        best_trial: the best completed trial (pruned ones count only if none completed).
        best_params, best_value, best_model: the best trial's params, value and model.
        stopped: True if ``study.stop()`` ended the study.
        name, log_dir: where the study wrote its files (``<log_dir>/<name>``).
    """

    def __init__(self, trials, mode, stopped, name, log_dir):
        self.trials = list(trials)
        self.mode, self.stopped, self.name, self.log_dir = mode, stopped, name, log_dir
        self.best_trial = best_trial(self.trials, mode)

    @property
    def best_params(self):
        return None if self.best_trial is None else dict(self.best_trial.params)

    @property
    def best_value(self):
        return None if self.best_trial is None else self.best_trial.value

    @property
    def best_model(self):
        return None if self.best_trial is None else self.best_trial.model

    def to_frame(self):
        """A pandas DataFrame, one row per trial: trial, status, pruned, value, best_value,
        epochs, elapsed, start, end, error, and ``param_<name>`` per hyperparameter."""
        import pandas as pd
        names = []
        for t in self.trials:
            names.extend(n for n in t.params if n not in names)
        rows = []
        for t in self.trials:
            row = {"trial": t.number, "status": t.status, "pruned": t.pruned, "value": t.value,
                   "best_value": t.best_value, "epochs": len(t.reports), "elapsed": t.elapsed,
                   "start": t.start, "end": t.end, "error": t.error}
            row.update({f"param_{n}": t.params.get(n) for n in names})
            rows.append(row)
        return pd.DataFrame(rows, columns=["trial", "status", "pruned", "value", "best_value",
                                           "epochs", "elapsed", "start", "end", "error"]
                            + [f"param_{n}" for n in names])

    def __repr__(self):
        counts = {}
        for t in self.trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        return (f"StudyResult({self.name!r}, trials={len(self.trials)} {counts}, "
                f"best_value={self.best_value!r}, best_params={self.best_params!r})")


def _better(a, b, mode):
    return a > b if mode == "max" else a < b


def best_trial(trials, mode):
    """The best completed trial by value (pruned ones only if none completed), or None."""
    for statuses in (("completed",), ("pruned",)):
        pool = [t for t in trials if t.status in statuses and finite(t.value) is not None]
        if pool:
            best = pool[0]
            for t in pool[1:]:
                if _better(t.value, best.value, mode):
                    best = t
            return best
    return None


# ---------------------------------------------------------------------- the objective's trial
class Trial:
    """What the objective receives next to its params.

    Attributes:
        number: the trial number.
        params: the trial's hyperparameters.
        data: the data given to ``Study(data=...)`` (on Spark: broadcast once per executor).
        seed: a per-trial seed (the study's seed + number, or the number).
        distributed: True when the study runs each trial as a distributed Spark training run.
    """

    def __init__(self, number, params, data=None, seed=None, distributed=False):
        self.number, self.params, self.data = number, dict(params), data
        self.seed, self.distributed = seed, distributed
        self.action = "continue"

    def _send(self, epoch, value):  # pragma: no cover - provided by the backends
        raise NotImplementedError

    def report(self, value, epoch):
        """Report the validation metric after ``epoch`` (1-based int).

        Raises ``TrialPruned`` when the pruner stops this trial, ``TrialStopped`` (a
        ``TrialPruned``) when the study was stopped."""
        value = float(value)
        epoch = int(epoch)
        self.action = self._send(epoch, value)
        if self.action == "prune":
            raise TrialPruned(f"trial {self.number} pruned at epoch {epoch}")
        if self.action == "stop":
            raise TrialStopped(f"trial {self.number}: the study was stopped")

    @property
    def should_stop(self):
        """True once a report was answered with prune or stop."""
        return self.action in ("prune", "stop")

    def listener(self, metric="Top1Accuracy"):
        """A ``workbench.optim`` training listener that reports each validation's ``metric``
        (per epoch) and stops the Optimizer when the trial is pruned or the study stopped."""
        from ..optim.events import Listener
        trial = self

        class _Report(Listener):
            def __init__(self):
                self.optimizer = None
                self.epoch = 0

            def on_start(self, optimizer):
                self.optimizer = optimizer

            def on_iteration(self, event):
                if trial._stop_now() and self.optimizer is not None:
                    self.optimizer.stop()

            def on_validation(self, event):
                if metric not in event.scores:
                    raise KeyError(f"trial.listener: no validation score {metric!r}; the "
                                   f"validation methods give {sorted(event.scores)}")
                self.epoch += 1
                try:
                    trial.report(event.scores[metric], self.epoch)
                except TrialPruned:
                    if self.optimizer is not None:
                        self.optimizer.stop()

        return _Report()

    def _stop_now(self):
        return False


# ---------------------------------------------------------------------- model transport
def model_to_bytes(model):
    """A model as the bytes of a workbench model file (no pickle)."""
    from ..io import save_model
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.bigdl")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data):
    """The model in bytes made by :func:`model_to_bytes`."""
    from ..io import load_model
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.bigdl")
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path)


def parse_return(out):
    """``(model, value)`` from what an objective returned (a Module, a number, or both)."""
    from ..nn.module import Module
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Module):
        return out[0], _value(out[1])
    if isinstance(out, Module):
        return out, None
    if out is None:
        return None, None
    return None, _value(out)


def _value(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"the objective must return a Module, a number or (Module, number), "
                        f"got {type(x).__name__}") from None


def error_text(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:500]}" if text else type(e).__name__


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------- the driver side of a trial
class _Running:
    """A trial in flight, seen from the driver."""

    def __init__(self, study, record, otrial):
        self.study, self.record, self.otrial = study, record, otrial
        self.decision = None  # None | "prune" | "stop"

    def report(self, epoch, value):
        """Record a report, ask the pruner; returns "continue", "prune" or "stop"."""
        study, record = self.study, self.record
        with study._lock:
            record.reports.append((int(epoch), float(value)))
            if finite(value) is not None and (record.best_value is None or
                                              _better(value, record.best_value, study.mode)):
                record.best_value = float(value)
            if self.decision is not None:  # the task went on after being told: repeat it
                action = self.decision
            elif study._stop.is_set():
                action = self.decision = "stop"
            else:
                try:
                    self.otrial.report(float(value), int(epoch))
                    prune = study._pruner is not None and self.otrial.should_prune()
                except Exception as e:  # noqa: BLE001 - a bad value must not kill the study
                    warnings.warn(f"tune: trial {record.number}: could not report "
                                  f"{value!r} at epoch {epoch}: {e}", stacklevel=1)
                    prune = False
                action = "prune" if prune else "continue"
                if prune:
                    self.decision = "prune"
            snapshot = record.snapshot()
        study._events.put(("report", snapshot, int(epoch), float(value)))
        study._drain_here()
        return action


class _LocalTrial(Trial):
    def __init__(self, running, data, seed, distributed=False):
        super().__init__(running.record.number, running.record.params, data, seed, distributed)
        self._running = running

    def _send(self, epoch, value):
        return self._running.report(epoch, value)

    def _stop_now(self):
        return self._running.study._stop.is_set()


class LocalExecutor:
    """Trials in this process, one per study thread (also the distributed=True executor:
    then the objective itself trains on Spark, one trial at a time).

    The native oneDNN kernels are thread-safe but run one call at a time (one lock, each call
    already using every core the process was given), so trial threads would only take turns:
    while the native backend is active the local backend runs ONE trial at a time whatever
    ``parallelism`` says (``max_parallel``); use the Spark backend for parallel trials (each
    trial in its own worker process).  With the numpy backend, trials run in ``parallelism``
    threads with BLAS limited to one thread each."""

    def __init__(self, study, distributed=False):
        self.study, self.distributed = study, distributed
        self._limits = None
        self.max_parallel = 1 if distributed or _native_active() else study.parallelism
        self.inline = True

    def open(self):
        study = self.study
        self.data = study.data
        if self.distributed:
            self.data = _distributed_data(study.data)
        if self.max_parallel > 1:
            try:  # BLAS threads are process-wide: one per trial thread
                from threadpoolctl import threadpool_limits
                self._limits = threadpool_limits(limits=1, user_api="blas")
            except Exception:  # noqa: BLE001 - threadpoolctl missing
                self._limits = None

    def run_trial(self, running):
        study = self.study
        record = running.record
        trial = _LocalTrial(running, self.data, study._trial_seed(record.number),
                            self.distributed)
        out = {"worker": worker_name(), "start": time.time()}
        try:
            model, value = parse_return(study.objective(dict(record.params), trial))
            out.update(model=model, value=value)
        except TrialPruned:
            out["pruned"] = True
        except KeyboardInterrupt:  # Ctrl-C while a trial runs on the study's thread
            study.stop()
            out["stopped"] = True
        except Exception as e:  # noqa: BLE001 - recorded as the trial's error
            out["error"] = error_text(e)
            out["trace"] = traceback.format_exc()
        out["end"] = time.time()
        return out

    def cancel_all(self):
        pass

    def close(self):
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None


def _native_active():
    from ..nn import backend
    return backend.get_backend() == "native" and backend.native() is not None


def _distributed_data(data):
    """For distributed trials: ``(X, y)`` arrays in ``data`` become cached RDDs of Samples."""
    from pyspark import SparkContext
    from ..data.sample import Sample
    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("Study(distributed=True) needs an active SparkContext "
                           "(workbench.spark.get_spark())")

    def convert(v):
        if isinstance(v, tuple) and len(v) == 2 and all(hasattr(a, "shape") for a in v):
            X, y = v
            return sc.parallelize([Sample.from_ndarray(x, t) for x, t in zip(X, y)],
                                  sc.defaultParallelism).cache()
        return v
    if isinstance(data, dict):
        return {k: convert(v) for k, v in data.items()}
    return convert(data)


# ---------------------------------------------------------------------- the study
def _default_name():
    return "study-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


class Study:
    """A hyperparameter search.

    Args:
        objective: ``objective(params, trial)`` trains one model and returns it (a ``Module``),
            a final metric (a number), or ``(model, metric)``; it reports the per-epoch
            validation metric with ``trial.report(value, epoch)`` (or ``trial.listener()`` on
            an Optimizer) so bad trials can be pruned.  ``tune.SupervisedObjective`` covers the
            usual case.  On Spark it is pickled (cloudpickle) and sent once per study.
        space: ``{name: distribution}`` (``tune.uniform``, ``tune.choice`` ...).
        data: anything the objective needs (``trial.data``); on Spark broadcast once, so each
            executor receives it once per study rather than once per trial.
        metric: the name of the reported metric (TensorBoard tag ``val/<metric>``).
        mode: "max" or "min".
        algo: "tpe" (optuna's TPESampler, constant liar for parallel trials), "random" or
            "grid".
        n_trials: how many trials (default 20; for "grid" default the whole grid, and never
            more than the grid).
        parallelism: trials running at once (default 2).
        pruner: "median" (optuna's MedianPruner), "asha" (SuccessiveHalvingPruner), None, or
            an optuna pruner instance.
        seed: seed of the sampler (the same seed gives the same sequence of trial params for
            "random" and "grid", and for "tpe" with parallelism 1).
        name: the study's name (default "study-<date>-<time>").
        log_dir: where ``<name>/`` (TensorBoard HParams, trial runs, study.json) goes; default
            ``$WORKBENCH_RUNS_DIR`` else ``./runs``.  False writes nothing.
        backend: "spark" (each trial one Spark task), "local" (threads in this process) or
            "auto" (spark if a SparkContext is active).
        distributed: True: each trial is itself a distributed Spark training run (the
            objective trains on RDDs/DataFrames; arrays in ``data`` are turned into cached RDDs
            of Samples); trials run one after another.
        grid_resolution: points per float range (and large int range) in grid search.
    """

    def __init__(self, objective, space, *, data=None, metric="Top1Accuracy", mode="max",
                 algo="tpe", n_trials=None, parallelism=2, pruner="median", seed=None,
                 name=None, log_dir=None, backend="auto", distributed=False, grid_resolution=3):
        if not callable(objective):
            raise TypeError(f"Study: objective must be callable, got {type(objective).__name__}")
        self.space = check_space(space)
        if mode not in ("max", "min"):
            raise ValueError(f"Study: mode must be 'max' or 'min', got {mode!r}")
        if algo not in ALGOS:
            raise ValueError(f"Study: algo must be one of {ALGOS}, got {algo!r}")
        if backend not in BACKENDS:
            raise ValueError(f"Study: backend must be one of {BACKENDS}, got {backend!r}")
        if pruner not in PRUNERS and not hasattr(pruner, "prune"):
            raise ValueError(f"Study: pruner must be 'median', 'asha', None or an optuna "
                             f"pruner, got {pruner!r}")
        for what, v in (("n_trials", n_trials), ("parallelism", parallelism)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"Study: {what} must be a positive int, got {v!r}")
        if parallelism is None:
            raise ValueError("Study: parallelism must be a positive int, got None")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Study: seed must be an int or None, got {seed!r}")
        self.objective, self.data, self.metric, self.mode = objective, data, str(metric), mode
        self.algo, self.pruner_name, self.seed = algo, pruner, seed
        self.distributed = bool(distributed)
        self.parallelism = 1 if self.distributed else int(parallelism)
        self.grid_resolution = grid_resolution
        self.grid = grid_points(space, grid_resolution) if algo == "grid" else None
        if algo == "grid":
            self.n_trials = len(self.grid) if n_trials is None else min(n_trials, len(self.grid))
        else:
            self.n_trials = 20 if n_trials is None else n_trials
        self.name = name or _default_name()
        if log_dir is None:
            log_dir = os.environ.get("WORKBENCH_RUNS_DIR") or "runs"
        self.log_dir = None if log_dir is False else os.fspath(log_dir)
        self.backend = backend
        self.listeners = []
        self.trials: list[TrialRecord] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._events = queue.Queue()
        self._executor = None
        self._running = False
        self._started = None
        self.result = None

    # ------------------------------------------------------------------ public
    @property
    def dir(self):
        """``<log_dir>/<name>`` (None when nothing is written)."""
        return None if self.log_dir is None else os.path.join(self.log_dir, self.name)

    def add_listener(self, listener):
        """Register a ``TuneListener`` (any object with some of its methods works)."""
        if listener not in self.listeners:
            self.listeners.append(listener)
        return self

    def remove_listener(self, listener):
        if listener in self.listeners:
            self.listeners.remove(listener)
        return self

    def stop(self, now=False):
        """End the study (thread-safe): no new trial starts; running trials end at their next
        report with status "stopped" (``now=True`` also cancels their Spark jobs).  Finished
        trials are kept."""
        self._stop.set()
        if now and self._executor is not None:
            self._executor.cancel_all()

    @property
    def stopped(self):
        return self._stop.is_set()

    def run(self):
        """Run the trials; blocks until all are done or the study is stopped.

        Returns:
            a ``StudyResult``.
        """
        if self._running:
            raise RuntimeError("Study.run: the study is already running")
        self._running = True
        self._started = time.time()
        self._stop.clear()
        self.trials = []
        self._events = queue.Queue()
        try:
            return self._run()
        finally:
            self._running = False

    # ------------------------------------------------------------------ internals
    def _trial_seed(self, number):
        return (self.seed or 0) + number

    def _make_optuna(self):
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if self.algo == "tpe":
            n_startup = min(10, max(3, self.n_trials // 3))
            sampler = optuna.samplers.TPESampler(seed=self.seed, constant_liar=True,
                                                 n_startup_trials=n_startup)
        else:
            sampler = optuna.samplers.RandomSampler(seed=self.seed)
        if self.pruner_name == "median":
            pruner = optuna.pruners.MedianPruner(n_startup_trials=max(2, self.parallelism),
                                                 n_warmup_steps=1)
        elif self.pruner_name == "asha":
            pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        elif self.pruner_name is None:
            pruner = None
        else:
            pruner = self.pruner_name
        self._pruner = pruner
        direction = "maximize" if self.mode == "max" else "minimize"
        ostudy = optuna.create_study(direction=direction, sampler=sampler,
                                     pruner=pruner or optuna.pruners.NopPruner(),
                                     study_name=self.name)
        if self.grid is not None:
            for p in self.grid[:self.n_trials]:
                ostudy.enqueue_trial(optuna_params(self.space, p), skip_if_exists=False)
        return ostudy

    def _make_executor(self):
        backend = self.backend
        if self.distributed:
            return LocalExecutor(self, distributed=True)
        if backend == "auto":
            import sys
            backend = "local"
            if "pyspark" in sys.modules:
                from pyspark import SparkContext
                if SparkContext._active_spark_context is not None:
                    backend = "spark"
        if backend == "spark":
            from .spark import SparkExecutor
            return SparkExecutor(self)
        return LocalExecutor(self)

    def _ask(self):
        otrial = self._ostudy.ask()
        params = sample_params(self.space, otrial)
        record = TrialRecord(otrial.number, params, status="running", start=time.time())
        self.trials.append(record)
        return _Running(self, record, otrial)

    def _worker(self):
        try:
            while True:
                with self._lock:
                    if self._stop.is_set() or self._asked >= self.n_trials:
                        return
                    self._asked += 1
                    running = self._ask()
                self._events.put(("start", running.record.snapshot()))
                self._drain_here()
                try:
                    out = self._executor.run_trial(running)
                except Exception as e:  # noqa: BLE001 - the executor failed, not the study
                    out = {"error": error_text(e), "trace": traceback.format_exc()}
                self._finish(running, out)
        except BaseException as e:  # pragma: no cover - a bug: end the study visibly
            self._events.put(("crash", e, traceback.format_exc()))

    def _finish(self, running, out):
        import optuna
        record = running.record
        TS = optuna.trial.TrialState
        model = out.get("model")
        if model is None and out.get("model_bytes") is not None:
            try:
                model = model_from_bytes(out["model_bytes"])
            except Exception as e:  # noqa: BLE001
                out.setdefault("error", f"cannot read the trial's model: {error_text(e)}")
        with self._lock:
            if out.get("start") is not None:
                record.start = out["start"]
            record.end = out.get("end") or time.time()
            record.elapsed = record.end - record.start
            record.worker = out.get("worker") or record.worker
            last = record.reports[-1][1] if record.reports else None
            value = out.get("value")
            record.value = value if value is not None else last
            if out.get("error"):
                record.status, record.error = "failed", out["error"]
                state = TS.FAIL
            elif running.decision == "prune" or (out.get("pruned") and
                                                 running.decision != "stop"):
                record.status, record.pruned = "pruned", True
                state = TS.PRUNED
            elif running.decision == "stop" or out.get("stopped"):
                record.status = "stopped"
                state = TS.FAIL
            else:
                record.status = "completed"
                state = TS.COMPLETE if finite(record.value) is not None else TS.FAIL
            if record.status != "failed":
                record.model = model
            try:
                if state == TS.COMPLETE:
                    self._ostudy.tell(running.otrial, float(record.value))
                else:
                    self._ostudy.tell(running.otrial, state=state)
            except Exception as e:  # noqa: BLE001 - never lose the study over bookkeeping
                warnings.warn(f"tune: optuna could not record trial {record.number}: {e}",
                              stacklevel=1)
            self._trim_models()
        self._events.put(("end", record))
        self._drain_here()

    def _drain_here(self):
        if threading.get_ident() == getattr(self, "_run_thread", None):
            self._drain()

    def _trim_models(self):
        best = best_trial(self.trials, self.mode)
        kept = 0
        for t in sorted(self.trials, key=lambda t: t is not best):
            if t.model is None:
                continue
            try:
                size = int(t.model.get_parameters()[0].size)
            except Exception:  # noqa: BLE001
                size = 0
            if t is not best and kept + size > KEEP_MODEL_FLOATS:
                t.model = None
            else:
                kept += size

    def _run(self):
        from .hparams import StudyWriter
        self._ostudy = self._make_optuna()
        self._asked = 0
        self._executor = self._make_executor()
        self._writer = StudyWriter(self) if self.dir is not None else None
        self._crash = None
        self._run_thread = threading.get_ident()
        threads = []
        try:
            self._executor.open()
            self._threads = min(self.parallelism,
                                getattr(self._executor, "max_parallel", self.parallelism))
            if self._writer is not None:
                self._writer.start()
            self._call("on_study_start", self)
            if self._threads == 1 and getattr(self._executor, "inline", False):
                # one local trial at a time: run it on this thread (native kernels and the
                # user's objective see the thread they would see without the study); events
                # are dispatched as they happen (``_Running.report`` drains the queue)
                self._worker()
                self._drain()
            else:
                threads = [threading.Thread(target=self._worker, name=f"tune-trials-{i}",
                                            daemon=True) for i in range(self._threads)]
                for t in threads:
                    t.start()
                interrupts = 0
                while True:
                    try:
                        try:
                            ev = self._events.get(timeout=0.2)
                        except queue.Empty:
                            if not any(t.is_alive() for t in threads) and self._events.empty():
                                break
                            if self._writer is not None:
                                self._writer.tick()
                                self._stop_if_requested()
                            continue
                        self._dispatch(ev)
                    except KeyboardInterrupt:
                        interrupts += 1
                        self.stop(now=interrupts > 1)
        finally:
            self._stop_threads(threads)
            self._executor.close()
            self._run_thread = None
        if self._crash is not None:
            raise self._crash
        self.result = StudyResult(self.trials, self.mode, self._stop.is_set(), self.name,
                                  self.log_dir)
        if self._writer is not None:
            self._writer.finish(self.result)
        self._call("on_study_end", self.result)
        return self.result

    def _stop_if_requested(self):
        """The JupyterLab sidebar's Stop (a request file in the study's directory) ends the
        study like ``stop()``."""
        if not self._stop.is_set() and self._writer.stop_requested():
            self.stop()

    def _drain(self):
        """Dispatch every queued event (on the thread that runs the study)."""
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                return
            self._dispatch(ev)

    def _dispatch(self, ev):
        kind = ev[0]
        if kind == "crash":
            self._crash = ev[1]
            self.stop(now=True)
            return
        if self._writer is not None:
            try:
                self._writer.event(ev)
            except Exception:  # noqa: BLE001 - a full disk must not end the study
                warnings.warn("tune: could not write the study's files:\n"
                              + traceback.format_exc(), stacklevel=1)
            self._stop_if_requested()
        if kind == "start":
            self._call("on_trial_start", ev[1])
        elif kind == "report":
            self._call("on_trial_report", ev[1], ev[2], ev[3])
        elif kind == "end":
            self._call("on_trial_end", ev[1])

    def _stop_threads(self, threads):
        if any(t.is_alive() for t in threads):
            self.stop(now=True)
            for t in threads:
                t.join(60)

    def _call(self, name, *args):
        for listener in list(self.listeners):
            fn = getattr(listener, name, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a listener must not end the study
                warnings.warn(f"tune: listener {type(listener).__name__}.{name} failed:\n"
                              + traceback.format_exc(), stacklevel=1)

    def to_json(self, status=None):
        """The study.json document the JupyterLab sidebar reads (see the README)."""
        with self._lock:
            trials = [t.to_dict() for t in self.trials]
            best = best_trial(self.trials, self.mode)
        if status is None:
            status = "running" if self._running else ("stopped" if self._stop.is_set()
                                                       else "finished")
        return {"name": self.name, "kind": "study", "metric": self.metric, "mode": self.mode,
                "algo": self.algo, "pruner": self.pruner_name if isinstance(
                    self.pruner_name, (str, type(None))) else type(self.pruner_name).__name__,
                "n_trials": self.n_trials, "parallelism": self.parallelism,
                "backend": self.backend, "distributed": self.distributed,
                "status": status, "pid": os.getpid(), "started": getattr(self, "_started", None),
                "updated": time.time(), "space": space_to_dict(self.space), "trials": trials,
                "best": None if best is None else best.number}

    def __repr__(self):
        return (f"Study({self.name!r}, algo={self.algo!r}, n_trials={self.n_trials}, "
                f"parallelism={self.parallelism}, pruner={self.pruner_name!r})")

