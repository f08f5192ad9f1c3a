"""TensorBoard files of a study: the HParams dashboard and one scalar run per trial.

Written with TensorBoard's own hparams protos (``tensorboard.plugins.hparams``: no TensorFlow)
and the same event-file writer ``workbench.summary`` uses:

- ``<log_dir>/<name>/``: the experiment summary (each hyperparameter with its domain, and the
  metric ``val/<metric>``);
- ``<log_dir>/<name>/trial-NNN/``: the trial's session start (its hyperparameters), its
  validation metric per epoch as scalar ``val/<metric>`` (step = epoch), and its session end
  (status: success for completed and pruned, failure, unknown for stopped);
- ``<log_dir>/<name>/study.json``: the study as the JupyterLab sidebar reads it (atomic
  writes, refreshed while the study runs).

``tensorboard --logdir <log_dir>/<name>`` then shows the trials in the HParams tab and each
trial's curve in the Scalars tab.
"""
from __future__ import annotations

import os
import time

from .._files import STOP_FILE, atomic_write_json
from .space import Choice, Conditional, LogUniform, RandInt, Uniform

__all__ = ["StudyWriter", "trial_run_name", "hparam_value", "experiment_summary",
           "session_start_summary", "session_end_summary"]

JSON_INTERVAL = 0.5  # seconds between study.json rewrites while reports arrive
# the hparams plugin knows success / failure / running / unknown: a pruned trial ended
# normally (early), a stopped one is neither
_STATUS = {"completed": "STATUS_SUCCESS", "pruned": "STATUS_SUCCESS",
           "stopped": "STATUS_UNKNOWN", "failed": "STATUS_FAILURE"}


def trial_run_name(number):
    """The TensorBoard run (sub-directory) of trial ``number``: ``trial-007``."""
    return f"trial-{number:03d}"


def hparam_value(v):
    """A hyperparameter value as the hparams plugin takes it (bool, number or string)."""
    if v is None:
        return "None"
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def _domain(dist):
    from tensorboard.plugins.hparams import summary_v2 as hp
    if isinstance(dist, (Uniform, LogUniform)):
        return hp.RealInterval(float(dist.low), float(dist.high))
    if isinstance(dist, RandInt):
        return hp.IntInterval(dist.low, dist.high)
    if isinstance(dist, Choice):
        values = [hparam_value(o) for o in dist.options]
        kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else str
                 for v in values}
        if len(kinds) == 1:
            return hp.Discrete(values)
    if isinstance(dist, Conditional):
        return None
    return None


def experiment_summary(space, metric, time_created=None):
    """The HParams experiment summary proto (hyperparameter domains + the metric)."""
    from tensorboard.plugins.hparams import summary_v2 as hp
    hparams = [hp.HParam(name, _domain(dist)) for name, dist in space.items()]
    metrics = [hp.Metric(f"val/{metric}", display_name=metric)]
    return hp.hparams_config_pb(hparams, metrics, time_created_secs=time_created)


def session_start_summary(params, trial_id, start_time):
    """The HParams session-start summary proto of one trial."""
    from tensorboard.plugins.hparams import summary_v2 as hp
    return hp.hparams_pb({k: hparam_value(v) for k, v in params.items()},
                         trial_id=trial_id, start_time_secs=start_time)


def session_end_summary(status, end_time):
    """The HParams session-end summary proto (``status``: a trial status)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    info = plugin_data_pb2.SessionEndInfo(status=getattr(api_pb2, _STATUS.get(status,
                                                                             "STATUS_UNKNOWN")),
                                          end_time_secs=float(end_time))
    content = plugin_data_pb2.HParamsPluginData(session_end_info=info,
                                                version=metadata.PLUGIN_DATA_VERSION)
    meta = metadata.create_summary_metadata(content)
    return Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=meta,
                                        tensor=metadata.NULL_TENSOR)])


def _event(summary, step=0, wall_time=None):
    from tensorboard.compat.proto.event_pb2 import Event
    return Event(wall_time=time.time() if wall_time is None else wall_time, step=int(step),
                 summary=summary)


def _scalar(tag, value, step, wall_time=None):
    from tensorboard.compat.proto.summary_pb2 import Summary
    return _event(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step,
                  wall_time)


class StudyWriter:
    """Writes a study's TensorBoard files and study.json from the study's events, and sees the
    sidebar's stop requests (all calls on the thread that runs the study)."""

    def __init__(self, study):
        self.study = study
        self.dir = study.dir
        self.tag = f"val/{study.metric}"
        self._writers = {}
        self._last_json = 0.0
        self._dirty = False

    def _writer(self, path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        w = self._writers.get(path)
        if w is None:
            os.makedirs(path, exist_ok=True)
            w = self._writers[path] = EventFileWriter(path, max_queue_size=1024, flush_secs=2)
        return w

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        try:  # a request left from an earlier run of a study of this name
            os.remove(os.path.join(self.dir, STOP_FILE))
        except OSError:
            pass
        w = self._writer(self.dir)
        w.add_event(_event(experiment_summary(self.study.space, self.study.metric,
                                              time.time())))
        w.flush()
        self.write_json()

    def event(self, ev):
        kind, record = ev[0], ev[1]
        path = os.path.join(self.dir, trial_run_name(record.number))
        if kind == "start":
            self._writer(path).add_event(_event(session_start_summary(
                record.params, trial_run_name(record.number), record.start or time.time())))
            self.write_json()
        elif kind == "report":
            epoch, value = ev[2], ev[3]
            self._writer(path).add_event(_scalar(self.tag, value, epoch))
            self._dirty = True
            self.tick()
        elif kind == "end":
            w = self._writer(path)
            if not record.reports and record.value is not None:
                w.add_event(_scalar(self.tag, record.value, 1))
            w.add_event(_event(session_end_summary(record.status, record.end or time.time())))
            w.close()
            self._writers.pop(path, None)
            self.write_json()

    def stop_requested(self):
        """The sidebar's Stop was pressed for this study."""
        return os.path.exists(os.path.join(self.dir, STOP_FILE))

    def tick(self):
        if self._dirty and time.monotonic() - self._last_json >= JSON_INTERVAL:
            self.write_json()

    def write_json(self, status=None):
        from .study import STUDY_FILE
        atomic_write_json(os.path.join(self.dir, STUDY_FILE), self.study.to_json(status))
        self._last_json = time.monotonic()
        self._dirty = False

    def finish(self, result):
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        self.write_json("stopped" if result.stopped else "finished")
