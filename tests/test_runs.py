"""The run registry: safe run paths, records written while training, runs read back."""
import json
import os

import numpy as np
import pytest

from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential
from workbench.optim import SGD, EveryEpoch, Listener, MaxEpoch, Optimizer, Top1Accuracy
from workbench import runs as registry
from workbench.summary import TrainSummary, ValidationSummary


def optimizer(end=None):
    end = MaxEpoch(2) if end is None else end
    rng = np.random.default_rng(0)
    X = rng.standard_normal((48, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = Sequential().add(Linear(4, 2)).add(LogSoftMax())
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), end, 8, SGD(learningrate=0.1),
                    progress=False, seed=0)
    opt.set_validation(48, (X, y), EveryEpoch(), [Top1Accuracy()])
    return opt


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "/etc", "a\\..", "", "x" * 300,
                                  "..hidden", "a..b", "\x00", ".git"])
def test_run_dir_refuses_anything_but_a_plain_name(tmp_path, name):
    with pytest.raises(registry.RunPathError):
        registry.run_dir(tmp_path, name)


def test_run_dir_refuses_symlinks_out_of_the_runs_dir(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "runs" / "evil")
    with pytest.raises(registry.RunPathError):
        registry.run_dir(tmp_path / "runs", "evil")
    assert registry.run_dir(tmp_path / "runs", "ok-1.v2") == str(tmp_path / "runs" / "ok-1.v2")


def test_recorder_writes_the_record_and_list_runs_reads_it(tmp_path):
    opt = optimizer()
    recorder = registry.RunRecorder(tmp_path, "r1", interval=3600, info={"note": "x"})
    opt.add_listener(recorder)
    opt.optimize()
    record = json.loads((tmp_path / "r1" / registry.RECORD_FILE).read_text())
    assert record["status"] == "finished" and record["iteration"] == 12 and record["epoch"] == 2
    assert record["note"] == "x" and record["pid"] == os.getpid()
    assert set(record["metrics"]) == {"Top1Accuracy"} and len(record["loss_series"]) == 12
    (run,) = registry.list_runs(tmp_path)
    assert run["name"] == "r1" and run["log_dir"] == "r1" and run["source"] == "registry"


def test_runs_from_event_files_alone(tmp_path):
    opt = optimizer()
    opt.set_train_summary(TrainSummary(tmp_path, "plain"))
    opt.set_val_summary(ValidationSummary(tmp_path, "plain"))
    opt.optimize()
    (tmp_path / "not-a-run").mkdir()
    (run,) = registry.list_runs(tmp_path)
    assert run["name"] == "plain" and run["source"] == "event files"
    assert run["iteration"] == 12 and run["loss"] is not None and len(run["loss_series"]) == 12
    assert set(run["metrics"]) == {"Top1Accuracy"}


def test_a_running_record_of_a_dead_process_is_interrupted(tmp_path):
    (tmp_path / "r").mkdir()
    record = {"name": "r", "status": "running", "pid": 2 ** 22 + 12345, "host": None}
    (tmp_path / "r" / registry.RECORD_FILE).write_text(json.dumps(record))
    assert registry.read_run(tmp_path, "r")["status"] == "interrupted"


def test_a_stop_request_stops_the_run(tmp_path):
    opt = optimizer(MaxEpoch(100))

    class RequestAt(Listener):
        def on_iteration(self, e):
            if e.iteration == 3:
                registry.request_stop(tmp_path, "s")

    recorder = registry.RunRecorder(tmp_path, "s", interval=0)
    opt.add_listener(RequestAt()).add_listener(recorder)
    opt.optimize()
    assert opt.state.iteration == 3  # seen at the record write of the same iteration
    assert registry.read_run(tmp_path, "s")["status"] == "stopped"
