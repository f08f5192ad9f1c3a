"""``TuningBoard``: the hyperparameter-tuning widget (an anywidget, like the Dashboard).

    board = TuningBoard(build, data=(X, y), val=(X_val, y_val), epochs=4)
    board                     # shows the controls; press Run (or board.run())

The board holds the search space as controls: a log-scale range for the learning rate, choices
for the batch size and the optim method, integer ranges for layer sizes, float ranges for
dropout...; each row can be switched off (then the parameter is not tuned).  It also sets the
number of trials, the parallelism, the search algorithm (grid / random / tpe) and the pruner.
**Run** starts a :class:`workbench.tune.Study` in a background thread (the kernel stays free);
the leaderboard (trial, parameters, status, the metric it is ranked by — a completed trial's
final value, which is what makes the study's best trial, else the best so far —, the peak
over its epochs, epochs, elapsed, pruned) and a chart of the validation metric per epoch for
every trial fill in while it runs; **Stop** ends
the study (running trials stop at their next report, finished ones are kept).  At the end the
best trial is highlighted and the notebook gets ``best_model`` (its trained model) and
``trials`` (a pandas DataFrame of every trial); the names are ``out=`` and ``trials_out=``.

``%%bigdl_tune`` shows the same board and runs it in the cell (see ``%bigdl_tune?``).
"""
from __future__ import annotations

import inspect
import math
import os
import threading
import time

import anywidget
import traitlets as t

from .._files import finite
from ..runs import STOP_FILE, default_runs_dir, valid_run_name
from .dashboard import STATIC, StopControls, current_kernel_id, widget_esm

__all__ = ["TuningBoard", "DEFAULT_SPACE", "controls_for"]

#: The space a board starts with when none is given (the rows hidden and dropout are there,
#: switched off: turn them on when ``build`` reads ``params["hidden"]`` / ``params["dropout"]``).
DEFAULT_SPACE = {
    "learningrate": {"type": "loguniform", "low": 1e-3, "high": 0.3},
    "batch_size": {"type": "choice", "options": [16, 32, 64]},
    "optim": {"type": "choice", "options": ["SGD", "Adam"]},
    "hidden": {"type": "randint", "low": 32, "high": 256, "step": 32},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
}
_DEFAULT_OFF = ("hidden", "dropout")

#: Options offered by the choice controls of well-known parameters (besides the space's own).
KNOWN_OPTIONS = {
    "batch_size": [8, 16, 32, 64, 128, 256],
    "optim": ["SGD", "Adam", "Adagrad", "RMSprop", "Adadelta", "Adamax"],
}
ALGOS = ("tpe", "random", "grid")
PRUNERS = ("median", "asha", "none")
_LOWER_IS_BETTER = ("loss", "mae", "mse", "error")


def default_mode(metric):
    """``"min"`` for loss-like metrics (Loss, MAE, ...), else ``"max"``."""
    return "min" if any(k in str(metric).lower() for k in _LOWER_IS_BETTER) else "max"


def _nice_log_bounds(low, high):
    lo = 10.0 ** (math.floor(math.log10(low)) - 1)
    hi = 10.0 ** (math.ceil(math.log10(high)) + 1)
    return lo, hi


def controls_for(space, off=()):
    """The board's controls for a search space (dict of distributions or of their dicts).

    Each control is ``{"kind", "on", "dist", ...}``: ``kind`` is ``log`` (a loguniform range,
    with ``min``/``max`` bounds of the slider), ``float`` (uniform), ``int`` (randint, with
    ``step``), ``choice`` (``options``: what can be chosen; ``dist["options"]``: what is) or
    ``fixed`` (a conditional, shown as is).
    """
    from ..tune import space_to_dict, space_from_dict
    as_dicts = space_to_dict(space_from_dict(dict(space)))
    controls = {}
    for name, dist in as_dicts.items():
        kind = dist["type"]
        c = {"on": name not in off, "dist": dist}
        if kind == "loguniform":
            c["kind"] = "log"
            c["min"], c["max"] = _nice_log_bounds(dist["low"], dist["high"])
        elif kind == "uniform":
            span = dist["high"] - dist["low"]
            c["kind"] = "float"
            c["min"] = 0.0 if dist["low"] >= 0 else dist["low"] - span
            c["max"] = 1.0 if 0 <= dist["low"] and dist["high"] <= 1 else dist["high"] + span
        elif kind == "randint":
            span, step = dist["high"] - dist["low"], dist.get("step", 1)
            c["kind"] = "int"
            c["step"] = step
            c["min"] = max(step, dist["low"] - span) if dist["low"] > 0 else dist["low"] - span
            c["max"] = dist["high"] + span
        elif kind == "choice":
            c["kind"] = "choice"
            known = list(KNOWN_OPTIONS.get(name, []))
            c["options"] = known + [o for o in dist["options"] if o not in known]
        else:
            c["kind"] = "fixed"
        controls[name] = c
    return controls


def _required_positionals(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.default is p.empty and p.kind in
               (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _jsonable(value):
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return finite(value)
    try:  # numpy scalars
        return _jsonable(value.item())
    except Exception:
        return str(value)


class TuningBoard(StopControls, anywidget.AnyWidget):
    """The hyperparameter-tuning widget (see the module docstring).

    Args:
        objective_or_build: ``build(params) -> Module`` (or ``(Module, optim_method)``),
            trained by :class:`workbench.tune.SupervisedObjective`; or an objective
            ``objective(params, trial)``; or a ``SupervisedObjective``.
        data: the training data ``(X, y)`` (with ``val=``), or the study's data dict
            (``{"train": (X, y), "val": (X_val, y_val)}``), shipped once to the Spark
            executors.
        val: the validation data ``(X_val, y_val)`` when ``data`` is ``(X, y)``.
        space: the search space (distributions or their dicts); it replaces the default
            controls (learning rate, batch size, optim method; hidden and dropout switched off).
        metric: the validation method whose score is tuned (default Top1Accuracy).
        mode: ``"max"`` or ``"min"``; default by the metric's name (min for Loss, MAE...).
        n_trials, parallelism, algo, pruner: the study's settings (also controls).
        epochs: training epochs per trial (a control; with a ``build`` function only).
        batch_size: the batch size when the space has no ``batch_size``.
        criterion: the loss of ``SupervisedObjective`` (default ClassNLLCriterion).
        seed: the sampler's seed.  name: the study's name (default ``tune-<date-time>``).
        log_dir: where the study writes ``<name>/study.json`` and TensorBoard logs (default
            $WORKBENCH_RUNS_DIR, else ./runs): the JupyterLab sidebar lists it.
        backend: ``"spark"``, ``"local"`` or ``"auto"`` (Spark when a SparkContext is active).
        distributed: each trial is a distributed Spark training run (trials one at a time).
        out, trials_out: the notebook variables that get the best model and the trials
            DataFrame at the end (None: not set).
        namespace: the namespace they go into (default: the running IPython's).
        interval: the least time in seconds between two updates sent to the browser.
    """

    _esm = widget_esm("tuning")
    _css = (STATIC / "dashboard.css").read_text() + "\n" + (STATIC / "tuning.css").read_text()

    title = t.Unicode("").tag(sync=True)
    controls = t.Dict({}).tag(sync=True)
    n_trials = t.Int(12).tag(sync=True)
    parallelism = t.Int(2).tag(sync=True)
    algo = t.Unicode("tpe").tag(sync=True)
    pruner = t.Unicode("median").tag(sync=True)
    epochs = t.Int(0).tag(sync=True)
    metric = t.Unicode("Top1Accuracy").tag(sync=True)
    mode = t.Unicode("max").tag(sync=True)
    status = t.Unicode("ready").tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    study_name = t.Unicode("").tag(sync=True)
    trials = t.List([]).tag(sync=True)
    leader = t.Int(-1).tag(sync=True)
    best = t.Int(-1).tag(sync=True)
    best_value = t.Float(None, allow_none=True).tag(sync=True)
    elapsed = t.Float(0.0).tag(sync=True)
    summary = t.List([]).tag(sync=True)
    kernel_id = t.Unicode("").tag(sync=True)

    def __init__(self, objective_or_build, data=None, *, val=None, space=None,
                 metric="Top1Accuracy", mode=None, n_trials=12, parallelism=2, algo="tpe",
                 pruner="median", epochs=5, batch_size=32, criterion=None, seed=None, name=None,
                 log_dir=None, backend="auto", distributed=False, out="best_model",
                 trials_out="trials", namespace=None, interval=0.5, **kwargs):
        if not callable(objective_or_build):
            raise TypeError("TuningBoard: the first argument must be build(params) or an "
                            f"objective(params, trial), got {type(objective_or_build).__name__}")
        if algo not in ALGOS:
            raise ValueError(f"TuningBoard: algo must be one of {', '.join(ALGOS)}, got {algo!r}")
        pruner = "none" if pruner is None else str(pruner)
        if pruner not in PRUNERS:
            raise ValueError(f"TuningBoard: pruner must be one of median, asha, None; got "
                             f"{pruner!r}")
        if mode is None:
            mode = default_mode(metric)
        if mode not in ("max", "min"):
            raise ValueError(f"TuningBoard: mode must be 'max' or 'min', got {mode!r}")
        if name is not None and not valid_run_name(name):
            raise ValueError(f"TuningBoard: {name!r} is not a valid study name (letters, digits "
                             "and _ . - = + only)")
        self._fn = objective_or_build
        self._is_build = self._looks_like_build(objective_or_build)
        controls = (controls_for(space) if space is not None
                    else controls_for(DEFAULT_SPACE, off=_DEFAULT_OFF))
        super().__init__(controls=controls, n_trials=int(n_trials),
                         parallelism=int(parallelism), algo=algo, pruner=pruner,
                         epochs=int(epochs) if self._is_build else 0, metric=str(metric),
                         mode=mode, kernel_id=current_kernel_id(), **kwargs)
        if isinstance(data, tuple) and val is not None:
            data = {"train": data, "val": val}
        elif isinstance(data, tuple) and len(data) == 2 and self._is_build:
            data = {"train": data}
        self.data = data
        self.batch_size = int(batch_size)
        self.criterion = criterion
        self.seed = seed
        self.name = name
        self.log_dir = os.fspath(log_dir) if log_dir is not None else None
        self.backend = backend
        self.distributed = bool(distributed)
        self.out, self.trials_out = out, trials_out
        self._namespace = namespace
        self.interval = float(interval)
        self.study = None
        self.result = None
        self.error = None
        self.stop_via = None
        self.updates_sent = 0
        self._thread = None
        self._lock = threading.RLock()
        self._rows = {}
        self._timer = None
        self._last_flush = 0.0
        self._start = None
        self._runs = 0
        self._previous_sigint = None
        self._interrupts = 0
        self.on_msg(self._on_frontend_msg)
        self._route_clicks_to_the_frontends_subshell()

    # ------------------------------------------------------------------ the space
    @staticmethod
    def _looks_like_build(fn):
        from ..tune import SupervisedObjective
        if isinstance(fn, SupervisedObjective):
            return False
        return _required_positionals(fn) < 2

    @property
    def space(self):
        """The search space the controls define now (distributions; rows switched on)."""
        from ..tune import space_from_dict
        chosen = {k: c["dist"] for k, c in self.controls.items() if c.get("on")}
        if not chosen:
            raise ValueError("the search space is empty: switch at least one parameter on")
        return space_from_dict(chosen)

    def _set_dist(self, name, dist, on=True):
        if name not in self.controls:
            raise KeyError(f"TuningBoard: no control {name!r}; controls: "
                           f"{', '.join(self.controls)}")
        from ..tune import space_from_dict, space_to_dict
        d = space_to_dict(space_from_dict({name: dist}))[name]  # validates
        controls = {k: dict(v) for k, v in self.controls.items()}
        controls[name].update(dist=d, on=bool(on))
        self.controls = controls

    def set_range(self, name, low, high):
        """Set the range of a log / float / int control (and switch it on)."""
        c = self.controls.get(name)
        if c is None or c["kind"] not in ("log", "float", "int"):
            raise KeyError(f"TuningBoard: {name!r} is not a range control")
        dist = dict(c["dist"], low=low, high=high)
        self._set_dist(name, dist)

    def set_choices(self, name, options):
        """Set the chosen options of a choice control (and switch it on)."""
        c = self.controls.get(name)
        if c is None or c["kind"] != "choice":
            raise KeyError(f"TuningBoard: {name!r} is not a choice control")
        self._set_dist(name, {"type": "choice", "options": list(options)})

    def switch(self, name, on):
        """Tune parameter ``name`` (on) or leave it out of the space (off)."""
        if name not in self.controls:
            raise KeyError(f"TuningBoard: no control {name!r}")
        controls = {k: dict(v) for k, v in self.controls.items()}
        controls[name]["on"] = bool(on)
        self.controls = controls

    # ------------------------------------------------------------------ running
    @property
    def running(self):
        return self.status in ("running", "stopping")

    def _objective(self):
        from ..tune import SupervisedObjective
        if not self._is_build:
            return self._fn
        kwargs = dict(epochs=max(1, int(self.epochs)), metric=self.metric,
                      batch_size=self.batch_size)
        if self.criterion is not None:
            kwargs["criterion"] = self.criterion
        if self.seed is not None:
            kwargs["seed"] = int(self.seed)
        return SupervisedObjective(self._fn, **kwargs)

    def _study_name(self):
        log_dir = self.log_dir or default_runs_dir()
        base = self.name or time.strftime("tune-%Y%m%d-%H%M%S")
        name, k = base, 1
        if self._runs or self.name is None:
            while os.path.exists(os.path.join(log_dir, name)):
                k += 1
                name = f"{base}-{k}"
        return name

    def make_study(self):
        """A new :class:`workbench.tune.Study` with the board's settings, listened to by the
        board (raises ValueError for a space or setting that cannot run)."""
        from .. import tune
        if self.n_trials < 1:
            raise ValueError(f"number of trials must be >= 1, got {self.n_trials}")
        if self.parallelism < 1:
            raise ValueError(f"parallelism must be >= 1, got {self.parallelism}")
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        space = self.space
        log_dir = self.log_dir or default_runs_dir()
        study = tune.Study(self._objective(), space, data=self.data, metric=self.metric,
                           mode=self.mode, algo=self.algo, n_trials=int(self.n_trials),
                           parallelism=int(self.parallelism),
                           pruner=None if self.pruner == "none" else self.pruner,
                           seed=self.seed, name=self._study_name(), log_dir=log_dir,
                           backend=self.backend, distributed=self.distributed)
        study.add_listener(_bridge(self))
        return study

    def run(self, block=False):
        """Run a study with the controls' settings.

        With ``block=False`` (what the Run button does) the study runs in a background thread
        and this returns the thread; with ``block=True`` it returns the ``StudyResult`` when
        the study ends (the Stop button and a kernel interrupt stop it).
        """
        with self._lock:
            if self.running:
                raise RuntimeError("TuningBoard: a study is already running")
            self.error = None
            try:
                study = self.make_study()
            except (ValueError, TypeError) as e:
                self.message = f"cannot run: {e}"
                self.status = "failed" if block else "ready"
                raise
            self.study = study
            self.result = None
            self._runs += 1
            self.stop_via = None
            self._rows = {}
            self.status = "running"
        if not block:
            self._thread = threading.Thread(target=self._run_study, args=(study, False),
                                            name="workbench-tune", daemon=True)
            self._thread.start()
            return self._thread
        self._install_sigint()
        try:
            return self._run_study(study, True)
        finally:
            self._restore_sigint()

    def wait(self, timeout=None):
        """Wait for a study started with ``run()`` (the Run button) to end; its result."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.result

    def _run_study(self, study, raise_errors):
        try:
            result = study.run()
        except BaseException as e:  # noqa: BLE001 - shown in the widget, re-raised if blocking
            self.error = e
            self._cancel_timer()
            with self.hold_sync():
                self.status = "failed"
                self.message = f"{type(e).__name__}: {e}".splitlines()[0]
                self._flush(force=True)
            if raise_errors:
                raise
            return None
        return result

    def stop(self, via="stop()"):
        """What the Stop button does: no new trials; running ones end at their next report."""
        study = self.study
        if study is None or not self.running:
            return False
        if self.stop_via is None:
            self.stop_via = via
        study.stop()
        self.status = "stopping"
        return True

    # ------------------------------------------------------------------ front end
    def _on_frontend_msg(self, _widget, content, _buffers):
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "stop":
            self.stop(via="the Stop button")
            self.send({"type": "stopping"})
        elif kind == "run":
            try:
                self.run(block=False)
            except (ValueError, TypeError, RuntimeError):
                pass  # the message says it

    def _running(self):
        return self.study is not None

    # ------------------------------------------------------------------ study events
    def _row(self, record):
        row = self._rows.setdefault(record.number, {"number": int(record.number)})
        row.update(params={k: _jsonable(v) for k, v in (record.params or {}).items()},
                   status=record.status, best_value=finite(record.best_value),
                   value=finite(record.value), pruned=bool(record.pruned),
                   reports=[[int(e), finite(v)] for e, v in record.reports
                            if finite(v) is not None],
                   error=record.error, start=record.start, end=record.end,
                   elapsed=finite(record.elapsed) or 0.0,
                   worker=getattr(record, "worker", None))
        return row

    def _check_stop_file(self):
        study = self.study
        if study is None or self.status != "running":
            return
        path = os.path.join(self.log_dir or default_runs_dir(), self.study_name, STOP_FILE)
        if self.study_name and os.path.exists(path):
            self.stop(via="the Workbench sidebar")

    def on_study_start(self, study):
        self._start = time.time()
        with self.hold_sync():
            self.study_name = str(getattr(study, "name", "") or "")
            self.title = self.study_name
            self.status = "running"
            self.message, self.summary = "", []
            self.trials, self.leader, self.best, self.best_value = [], -1, -1, None
            self.elapsed = 0.0
        try:
            os.remove(os.path.join(self.log_dir or default_runs_dir(), self.study_name,
                                   STOP_FILE))
        except OSError:
            pass
        self._flush(force=True)

    def on_trial_start(self, record):
        with self._lock:
            self._row(record)
        self._flush(force=True)

    def on_trial_report(self, record, epoch, value):
        with self._lock:
            self._row(record)
        self._check_stop_file()
        self._flush()

    def on_trial_end(self, record):
        with self._lock:
            self._row(record)
        self._check_stop_file()
        self._flush(force=True)

    def on_study_end(self, result):
        self._cancel_timer()
        with self._lock:
            for record in result.trials:
                self._row(record)
        self.result = result
        best = result.best_trial
        namespace = self._target_namespace()
        if namespace is not None:
            if self.out:
                namespace[self.out] = result.best_model
            if self.trials_out:
                namespace[self.trials_out] = result.to_frame()
        stopped = bool(getattr(result, "stopped", False))
        with self.hold_sync():
            self._flush(force=True)
            self.best = int(best.number) if best is not None else -1
            self.best_value = finite(result.best_value) if best is not None else None
            self.summary = self._summary(result, namespace is not None)
            self.status = "stopped" if stopped else "finished"

    def _target_namespace(self):
        if self._namespace is not None:
            return self._namespace
        try:
            from IPython import get_ipython
            shell = get_ipython()
        except ImportError:
            return None
        return shell.user_ns if shell is not None else None

    def _summary(self, result, in_namespace):
        counts = {}
        for r in result.trials:
            counts[r.status] = counts.get(r.status, 0) + 1
        rows = [["status", (f"stopped by {self.stop_via}" if self.stop_via else "stopped")
                 if getattr(result, "stopped", False) else "finished"],
                ["trials", ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))],
                ["wall time", f"{time.time() - (self._start or time.time()):.1f} s"]]
        best = result.best_trial
        if best is not None:
            rows.append(["best trial", f"{best.number}: {self.metric} "
                                       f"{finite(result.best_value):.4f}"])
            rows.append(["best params", ", ".join(f"{k}={_short(v)}"
                                                  for k, v in result.best_params.items())])
        if in_namespace:
            if self.out and result.best_model is not None:
                rows.append(["model", f"{self.out}"])
            if self.trials_out:
                rows.append(["trials", f"{self.trials_out} (DataFrame)"])
        rows.append(["logs", os.path.join(self.log_dir or default_runs_dir(), self.study_name)])
        return rows

    # ------------------------------------------------------------------ state → widget
    def _cancel_timer(self):
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _flush(self, force=False):
        with self._lock:
            now = time.time()
            if not force and now - self._last_flush < self.interval:
                if self._timer is None:  # a trailing update, so the last report shows
                    self._timer = threading.Timer(self.interval - (now - self._last_flush),
                                                  self._flush, kwargs={"force": True})
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._cancel_timer()
            self._last_flush = now
            rows = []
            for number in sorted(self._rows):
                row = dict(self._rows[number])
                if row["status"] == "running" and row.get("start"):
                    row["elapsed"] = max(0.0, now - row["start"])
                rows.append(row)
            leader = self._leader(rows)
            with self.hold_sync():
                self.trials = rows
                self.leader = leader
                if self._start is not None:
                    self.elapsed = now - self._start
                if self.status == "running" and self.stop_via is not None:
                    self.status = "stopping"
            self.updates_sent += 1

    def _leader(self, rows):
        """The trial that leads now: the best completed one by its final value (what the
        study will call best), else the best by its best value so far."""
        pick = max if self.mode == "max" else min
        completed = [r for r in rows if r["status"] == "completed" and r["value"] is not None]
        if completed:
            return pick(completed, key=lambda r: r["value"])["number"]
        scored = [r for r in rows if r["best_value"] is not None]
        return pick(scored, key=lambda r: r["best_value"])["number"] if scored else -1

    def __repr__(self):
        return (f"TuningBoard(study={self.study_name or None!r}, status={self.status!r}, "
                f"trials={len(self.trials)})")


def _short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _bridge(board):
    """A ``tune.TuneListener`` that forwards the study's events to ``board``."""
    from ..tune import TuneListener

    class _Bridge(TuneListener):
        def on_study_start(self, study):
            board.on_study_start(study)

        def on_trial_start(self, record):
            board.on_trial_start(record)

        def on_trial_report(self, record, epoch, value):
            board.on_trial_report(record, epoch, value)

        def on_trial_end(self, record):
            board.on_trial_end(record)

        def on_study_end(self, result):
            board.on_study_end(result)

    return _Bridge()
