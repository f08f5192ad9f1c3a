"""The run records: one small JSON file per training run or study, next to its TensorBoard logs.

A run is a directory ``<runs_dir>/<name>/`` (the ``<log_dir>/<app_name>`` of
``TrainSummary``).  While a run trains, the :class:`RunRecorder` training listener (an
``optim.events.Listener``, attached by the notebook's ``%%bigdl_train`` magic) keeps
``<runs_dir>/<name>/workbench-run.json`` up to date (status, start time, progress, last loss and
validation scores, a short loss series for sparklines, the Spark UI address), and stops the
training when a stop request file appears (:func:`request_stop`).

The reading side (:func:`list_runs`, :func:`read_run`) is what the Jupyter server extension
serves to the JupyterLab runs panel.  It also lists runs written without a recorder (e.g. by
``workbench train``) from their event files alone (read with ``workbench.summary``; TensorBoard is
imported only then), and a hyperparameter study (``workbench.tune``) as a record of kind
``"study"``, from the ``<runs_dir>/<name>/study.json`` the study keeps up to date (its trials'
runs are inside its directory and are not listed on their own).

Layering: above ``optim`` and ``summary``, below ``notebook`` (the writer, in the kernel) and
``server`` (the reader); it imports neither, nor Jupyter.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time

from ._files import STOP_FILE, atomic_write_json, finite
from .optim.events import Listener

__all__ = ["RECORD_FILE", "STUDY_FILE", "RunRecorder", "RunPathError", "list_runs", "read_run",
           "run_dir", "valid_run_name", "default_runs_dir", "request_stop"]

RECORD_FILE = "workbench-run.json"
STUDY_FILE = "study.json"
STUDY_TRIAL_POINTS = 40
SERIES_POINTS = 120
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")


class RunPathError(ValueError):
    """A run name that is not a plain directory name inside the runs dir."""


def default_runs_dir():
    """``$WORKBENCH_RUNS_DIR`` (the server extension exports it to the kernels it starts),
    else ``runs`` in the current directory."""
    return os.environ.get("WORKBENCH_RUNS_DIR") or "runs"


def valid_run_name(name):
    """True for names that are one plain path component (no separators, no ``..``)."""
    return isinstance(name, str) and bool(_NAME.match(name)) and ".." not in name


def run_dir(runs_dir, name):
    """The real path of run ``name`` inside ``runs_dir``; :class:`RunPathError` for anything
    that is not a directory name strictly inside it (``..``, separators, symlinks out)."""
    if not valid_run_name(name):
        raise RunPathError(f"not a run name: {name!r}")
    root = os.path.realpath(runs_dir)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.dirname(path) != root:
        raise RunPathError(f"run {name!r} is not inside the runs directory")
    return path


def _downsample(points, limit):
    """Keep at most ``limit`` points, evenly spaced, always keeping the newest."""
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    out = [points[int(i * step)] for i in range(limit - 1)]
    out.append(points[-1])
    return out


def _plain(value):
    """A JSON-able value for the hyperparameter table (objects by their repr)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return finite(value)
    return repr(value)


def _hparams(optimizer):
    """The run's hyperparameters, flat (what the panel's comparison diffs): the optim method
    and its arguments, batch size, end trigger, seed, model class and parameter count, and
    the Spark trainer's options."""
    out = {"model": type(optimizer.model).__name__,
           "batch_size": getattr(optimizer, "batch_size", None),
           "end_trigger": repr(getattr(optimizer, "end_trigger", "")),
           "seed": getattr(optimizer, "seed", None)}
    try:
        out["parameters"] = int(optimizer.model.get_parameters()[0].size)
    except Exception:  # a model without flat parameters yet: the count is informative only
        pass
    method = getattr(optimizer, "optim_method", None)
    if method is not None:
        out["optim"] = type(method).__name__
        try:
            args = method.get_config().get("args", {})
        except Exception:
            args = {}
        for k, v in args.items():
            if v is not None and not k.startswith("leaning"):  # BigDL's misspelled alias
                out[f"optim.{k}"] = _plain(v)
    for k, v in (getattr(optimizer, "distributed_options", None) or {}).items():
        out[f"spark.{k}"] = _plain(v)
    if getattr(optimizer, "profile_every", 0):
        out["profile_every"] = optimizer.profile_every
    return out


class RunRecorder(Listener):
    """Keeps a run's registry record up to date while it trains (at most every ``interval``
    seconds, and at every validation and at the end).

    It also honours a stop request written by the server extension (the sidebar's Stop):
    the request file is looked for at most every ``interval`` seconds.
    """

    def __init__(self, runs_dir, name, *, interval=1.0, info=None):
        self.runs_dir = os.fspath(runs_dir)
        self.name = name
        self.dir = os.path.join(self.runs_dir, name)
        self.path = os.path.join(self.dir, RECORD_FILE)
        self.interval = float(interval)
        self.info = dict(info or {})
        self.record = {}
        self._series = []
        self._last_write = 0.0
        self._optimizer = None

    def on_start(self, optimizer):
        os.makedirs(self.dir, exist_ok=True)
        try:
            os.remove(os.path.join(self.dir, STOP_FILE))
        except FileNotFoundError:
            pass
        self._optimizer = optimizer
        self._series = []
        self.record = {
            "name": self.name, "status": "running", "start_time": time.time(), "end_time": None,
            "epoch": optimizer.state.epoch, "iteration": optimizer.state.iteration,
            "records": optimizer.state.records, "loss": None, "throughput": None, "lr": None,
            "metrics": {}, "loss_series": [], "pid": os.getpid(), "host": socket.gethostname(),
            "spark_ui": None, "error": None, "updated": time.time(),
            "end_trigger": repr(getattr(optimizer, "end_trigger", "")),
            "batch_size": getattr(optimizer, "batch_size", None),
            "model": type(optimizer.model).__name__,
            "hparams": _hparams(optimizer),
        }
        self.record.update(self.info)
        self._write(force=True)

    def on_iteration(self, e):
        r = self.record
        r.update(epoch=e.epoch, iteration=e.iteration, records=e.state.records,
                 loss=finite(e.loss), throughput=finite(e.throughput), lr=finite(e.lr))
        if r["loss"] is not None:
            self._series.append((e.iteration, r["loss"]))
            if len(self._series) > 8 * SERIES_POINTS:
                self._series = _downsample(self._series, 4 * SERIES_POINTS)
        self._write()

    def on_validation(self, e):
        self.record["metrics"] = {k: finite(v) for k, v in e.scores.items()}
        self.record["metrics_iteration"] = e.iteration
        self._write(force=True)

    def on_checkpoint(self, e):
        self.record["checkpoint"] = e.path

    def on_profile(self, e):
        # the last sampled profile: what the panel and a restarted kernel's views show
        self.record["profile"] = e.to_dict()
        self._write(force=True)

    def on_cluster(self, e):
        cluster = e.to_dict()
        # each task's records/s over time, for the panel's per-task curves
        series = self.record.get("cluster", {}).get("series", {})
        for t in cluster["tasks"]:
            points = series.setdefault(str(t["rank"]), [])
            points.append([e.iteration, finite(t["records_per_second"])])
            if len(points) > 2 * SERIES_POINTS:
                series[str(t["rank"])] = _downsample(points, SERIES_POINTS)
        cluster["series"] = series
        self.record["cluster"] = cluster
        self._write()

    def on_finished(self, e):
        status = "failed" if e.error is not None else "stopped" if e.stopped else "finished"
        error = (e.error or "interrupted") if e.error is not None else None
        self.record.update(status=status, end_time=time.time(), error=error,
                           epoch=e.epoch, iteration=e.iteration)
        self._write(force=True)

    def set(self, **fields):
        """Add fields to the record (e.g. ``spark_ui``) and write it."""
        self.record.update(fields)
        if self.record:
            self._write(force=True)

    def _write(self, force=False):
        now = time.time()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        self.record["updated"] = now
        self.record["loss_series"] = [[int(i), float(v)] for i, v in
                                      _downsample(self._series, SERIES_POINTS)]
        try:
            atomic_write_json(self.path, self.record)
        except OSError:
            pass  # the registry is informative: never let it break training
        if (self._optimizer is not None and self.record.get("status") == "running"
                and os.path.exists(os.path.join(self.dir, STOP_FILE))):
            self._optimizer.stop()


def request_stop(runs_dir, name):
    """Ask the run's recorder to stop training (within ``interval`` s and one iteration)."""
    path = run_dir(runs_dir, name)
    with open(os.path.join(path, STOP_FILE), "w") as f:
        f.write(str(time.time()))


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True
    return True


def _has_events(path):
    for sub in ("train", "validation", ""):
        d = os.path.join(path, sub)
        try:
            if any(f.startswith("events.out.tfevents") for f in os.listdir(d)):
                return True
        except OSError:
            continue
    return False


_event_cache = {}


def _summary_from_events(path):
    """Last loss, a loss series and last validation scores read from the event files (cached
    by the files' sizes and mtimes)."""
    files = []
    for sub in ("train", "validation"):
        d = os.path.join(path, sub)
        try:
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))
                      if f.startswith("events.out.tfevents")]
        except OSError:
            pass
    key = tuple((f, os.path.getsize(f), os.path.getmtime(f)) for f in files)
    cached = _event_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    out = {"loss": None, "loss_series": [], "metrics": {}, "iteration": None, "epoch": None}
    try:
        from .summary import read_scalar
        loss = read_scalar(os.path.join(path, "train"), "Loss")
        if len(loss):
            out["loss"] = finite(loss[-1, 1])
            out["iteration"] = int(loss[-1, 0])
            out["loss_series"] = [[int(s), float(v)] for s, v, _ in
                                  _downsample(loss.tolist(), SERIES_POINTS)]
            out["start_time"] = float(loss[0, 2])
            out["updated"] = float(loss[-1, 2])
        from tensorboard.backend.event_processing import event_accumulator as ea
        vdir = os.path.join(path, "validation")
        if os.path.isdir(vdir):
            acc = ea.EventAccumulator(vdir, size_guidance={ea.SCALARS: 0})
            acc.Reload()
            for tag in acc.Tags().get("scalars", []):
                events = acc.Scalars(tag)
                if events:
                    out["metrics"][tag] = finite(events[-1].value)
    except Exception:  # unreadable or partial files: list the run without numbers
        pass
    _event_cache[path] = (key, out)
    return out


def _study_record(name, doc):
    """The sidebar's record of a study from its ``study.json``: status, trials done / total,
    the best value and trial, and every trial's status, best value and reports (downsampled)."""
    trials = [t for t in (doc.get("trials") or []) if isinstance(t, dict)]
    best = doc.get("best")
    best_trial = next((t for t in trials if t.get("number") == best), None)
    best_value = None
    if best_trial is not None:
        # the study's best trial is the best by its final value (its model is the one the
        # study returns): that value, not the trial's peak, is the study's best value
        best_value = finite(best_trial.get("value"))
        if best_value is None:
            best_value = finite(best_trial.get("best_value"))
    starts = [t.get("start") for t in trials if isinstance(t.get("start"), (int, float))]
    record = {
        "kind": "study", "status": doc.get("status") or "running",
        "metric": doc.get("metric"), "mode": doc.get("mode"), "algo": doc.get("algo"),
        "pruner": doc.get("pruner"), "n_trials": doc.get("n_trials"),
        "parallelism": doc.get("parallelism"), "pid": doc.get("pid"), "host": doc.get("host"),
        "start_time": doc.get("started") or (min(starts) if starts else None),
        "updated": doc.get("updated"), "end_time": doc.get("ended"),
        "best": best, "best_value": best_value,
        "best_params": best_trial.get("params") if best_trial else None,
        "trials_done": sum(1 for t in trials if t.get("status") not in ("queued", "running")),
        "trials_running": sum(1 for t in trials if t.get("status") == "running"),
        "trials_pruned": sum(1 for t in trials if t.get("pruned")),
        "trials_failed": sum(1 for t in trials if t.get("status") == "failed"),
        "trials": [{"number": t.get("number"), "status": t.get("status"),
                    "best_value": finite(t.get("best_value")), "value": finite(t.get("value")),
                    "pruned": bool(t.get("pruned")),
                    "params": t.get("params") or {}, "elapsed": finite(t.get("elapsed")),
                    "error": t.get("error"),
                    "reports": [[finite(p[0]), finite(p[1])] for p in
                                _downsample(t.get("reports") or [], STUDY_TRIAL_POINTS)
                                if isinstance(p, (list, tuple)) and len(p) == 2
                                and finite(p[0]) is not None and finite(p[1]) is not None]}
                   for t in trials],
    }
    return record


def read_run(runs_dir, name):
    """The record of run ``name`` (a dict; ``kind`` "study" for a hyperparameter study), or
    None if it is not a run."""
    path = run_dir(runs_dir, name)
    if not os.path.isdir(path):
        return None
    record = None
    try:
        with open(os.path.join(path, STUDY_FILE)) as f:
            study = json.load(f)
    except (OSError, ValueError):
        study = None
    if isinstance(study, dict) and study.get("kind", "study") == "study":
        record = _study_record(name, study)
        record["source"] = "study"
        if record["status"] == "running" and not _pid_alive(record.get("pid")):
            if record.get("host") in (None, socket.gethostname()):
                record["status"] = "interrupted"
        record["name"] = name
        record["log_dir"] = name
        return record
    try:
        with open(os.path.join(path, RECORD_FILE)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        record = None
    if record is None:
        if not _has_events(path):
            return None
        record = {"name": name, "status": "finished", "source": "event files"}
        record.update(_summary_from_events(path))
    else:
        record["source"] = "registry"
        if record.get("status") == "running" and not _pid_alive(record.get("pid")):
            if record.get("host") in (None, socket.gethostname()):
                record["status"] = "interrupted"
    record["name"] = name
    record["log_dir"] = name  # relative to the runs dir: no server path is ever disclosed
    return record


def list_runs(runs_dir):
    """Every run in ``runs_dir``, the newest first."""
    try:
        names = os.listdir(runs_dir)
    except OSError:
        return []
    runs = []
    for name in names:
        if not valid_run_name(name):
            continue
        try:
            record = read_run(runs_dir, name)
        except RunPathError:
            continue
        if record is not None:
            runs.append(record)
    runs.sort(key=lambda r: -(r.get("start_time") or r.get("updated") or 0))
    return runs
