"""workbench.tune.Study on the local backend: events, failures, stop, seeds, pruning quality."""
import json
import os
import threading

import numpy as np
import pytest

from workbench import tune
from workbench.data import load_digits
from workbench.nn import Linear, LogSoftMax, ReLU, Reshape, Sequential

DIGITS8 = load_digits(size=8)


def mlp(params):
    hidden = params.get("hidden", 32)
    return (Sequential().add(Reshape([64])).add(Linear(64, hidden)).add(ReLU())
            .add(Linear(hidden, 10)).add(LogSoftMax()))


def digits8():
    (X, y), (Xv, yv) = DIGITS8
    return {"train": (X, y), "val": (Xv, yv)}


def quadratic(params, trial):
    """A deterministic objective with per-epoch reports (best near x=0.3, y=-0.2)."""
    score = -((params["x"] - 0.3) ** 2) - (params["y"] + 0.2) ** 2
    for epoch in (1, 2, 3):
        trial.report(score * (4 - epoch), epoch)
    return score


def test_events_in_order_on_the_calling_thread(tmp_path):
    calls, threads = [], set()

    class Recorder(tune.TuneListener):
        def on_study_start(self, study):
            calls.append(("study_start",))
            threads.add(threading.get_ident())

        def on_trial_start(self, record):
            calls.append(("start", record.number, record.status))
            threads.add(threading.get_ident())

        def on_trial_report(self, record, epoch, value):
            calls.append(("report", record.number, epoch))
            threads.add(threading.get_ident())

        def on_trial_end(self, record):
            calls.append(("end", record.number, record.status))
            threads.add(threading.get_ident())

        def on_study_end(self, result):
            calls.append(("study_end", len(result.trials)))

    space = {"x": tune.uniform(-1, 1), "y": tune.uniform(-1, 1)}
    study = tune.Study(quadratic, space, metric="score", algo="random", n_trials=6,
                       parallelism=2, pruner=None, seed=0, log_dir=tmp_path, name="ev",
                       backend="local")
    study.add_listener(Recorder())
    result = study.run()
    assert threads == {threading.get_ident()}
    assert calls[0] == ("study_start",) and calls[-1] == ("study_end", 6)
    for n in range(6):
        mine = [c for c in calls if len(c) > 1 and c[1] == n and c[0] != "study_end"]
        assert mine[0] == ("start", n, "running")
        assert [c[2] for c in mine[1:-1]] == [1, 2, 3]
        assert mine[-1] == ("end", n, "completed")
    assert all(t.status == "completed" for t in result.trials)
    best = max(result.trials, key=lambda t: t.value)
    assert result.best_trial is best and result.best_value == best.value
    frame = result.to_frame()
    assert list(frame["trial"]) == list(range(6))
    assert {"param_x", "param_y", "status", "elapsed", "epochs"} <= set(frame.columns)
    assert (frame["epochs"] == 3).all()
    doc = json.load(open(os.path.join(tmp_path, "ev", "study.json")))
    assert doc["kind"] == "study" and doc["status"] == "finished" and doc["best"] == best.number
    assert [t["number"] for t in doc["trials"]] == list(range(6))
    assert doc["trials"][0]["reports"] == [[e, v] for e, v in result.trials[0].reports]
    assert doc["space"]["x"] == {"type": "uniform", "low": -1.0, "high": 1.0}


def test_failed_trial_is_recorded_and_the_study_goes_on():
    def objective(params, trial):
        if params["a"] == 2:
            raise ValueError(f"bad value {params['a']}")
        trial.report(params["a"], 1)
        return float(params["a"])

    result = tune.Study(objective, {"a": tune.choice([1, 2, 3, 4])}, algo="grid",
                        parallelism=2, pruner=None, log_dir=False, backend="local").run()
    by_a = {t.params["a"]: t for t in result.trials}
    assert by_a[2].status == "failed"
    assert by_a[2].error == "ValueError: bad value 2"
    assert all(by_a[a].status == "completed" and by_a[a].error is None for a in (1, 3, 4))
    assert result.best_params == {"a": 4}


def test_stop_keeps_finished_trials_and_starts_no_more():
    started = []

    def objective(params, trial):
        started.append(trial.number)
        for epoch in range(1, 6):
            trial.report(params["x"], epoch)
        return params["x"]

    study = tune.Study(objective, {"x": tune.uniform(0, 1)}, algo="random", n_trials=10,
                       parallelism=1, pruner=None, seed=1, log_dir=False, backend="local")

    class StopDuringSecond(tune.TuneListener):
        def on_trial_report(self, record, epoch, value):
            if record.number == 1 and epoch == 3:
                study.stop()

    study.add_listener(StopDuringSecond())
    result = study.run()
    assert result.stopped
    assert [t.status for t in result.trials] == ["completed", "stopped"]
    assert started == [0, 1]
    assert [e for e, _ in result.trials[1].reports] == [1, 2, 3, 4]  # told "stop" at 4
    assert result.best_trial is result.trials[0]


def test_the_sidebars_stop_request_ends_a_study(tmp_path):
    from workbench.runs import request_stop

    def objective(params, trial):
        for epoch in range(1, 6):
            trial.report(params["x"], epoch)
        return params["x"]

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "workbench-stop-request").write_text("left from an earlier run")
    study = tune.Study(objective, {"x": tune.uniform(0, 1)}, algo="random", n_trials=10,
                       parallelism=1, pruner=None, seed=1, log_dir=tmp_path, name="s",
                       backend="local")

    class PressStop(tune.TuneListener):
        def on_trial_report(self, record, epoch, value):
            if record.number == 1 and epoch == 2:
                request_stop(tmp_path, "s")   # what the server's stop handler calls

    study.add_listener(PressStop())
    result = study.run()
    assert result.stopped       # the stale request did not stop it at the start; this one did
    assert [t.status for t in result.trials] == ["completed", "stopped"]
    assert json.loads((tmp_path / "s" / "study.json").read_text())["status"] == "stopped"


@pytest.mark.parametrize("algo, parallelism", [("random", 2), ("grid", 2), ("tpe", 1)])
def test_same_seed_same_trials(algo, parallelism):
    space = {"x": tune.uniform(-1, 1), "y": tune.uniform(-1, 1),
             "k": tune.choice(["a", "b"]),
             "z": tune.conditional("k", {"a": tune.randint(1, 9)})}

    def run(seed):
        result = tune.Study(quadratic, space, algo=algo, n_trials=14, parallelism=parallelism,
                            pruner="median", seed=seed, log_dir=False, backend="local").run()
        return [t.params for t in sorted(result.trials, key=lambda t: t.number)]

    first = run(5)
    assert len(first) == 14
    assert run(5) == first
    if algo != "grid":
        assert run(6) != first


def test_tpe_concentrates_near_the_optimum():
    space = {"x": tune.uniform(-1, 1), "y": tune.uniform(-1, 1)}
    result = tune.Study(quadratic, space, algo="tpe", n_trials=30, parallelism=1, pruner=None,
                        seed=0, log_dir=False, backend="local").run()
    values = [t.value for t in result.trials]
    # after the random start-up trials, TPE's picks are better than the random ones on average
    assert np.mean(values[-10:]) > np.mean(values[:10])
    assert result.best_value > -0.05


def test_supervised_objective_returns_the_best_model_and_reports_each_epoch():
    (X, y), (Xv, yv) = DIGITS8
    space = {"learningrate": tune.loguniform(0.01, 0.3), "hidden": tune.choice([16, 32])}
    result = tune.Study(tune.SupervisedObjective(mlp, epochs=3), space, data=digits8(),
                        algo="random", n_trials=4, parallelism=2, pruner=None, seed=0,
                        log_dir=False, backend="local").run()
    best = result.best_trial
    assert [e for e, _ in best.reports] == [1, 2, 3]
    assert best.value == best.reports[-1][1]
    from workbench.optim import Top1Accuracy
    acc = result.best_model.evaluate((Xv, yv), 256, [Top1Accuracy()])[0].value
    assert acc == pytest.approx(best.value)
    assert best.worker.endswith(f":{os.getpid()}")


def test_study_on_a_background_thread_after_training_on_the_main_thread():
    """The tuning widget runs a study in a background thread, usually after the user trained
    on the main thread: conv backward primitives cached by one thread crash another
    (workbench._native), so the local backend starts and ends with an empty primitive cache."""
    from workbench.models import LeNet5
    from workbench.nn import ClassNLLCriterion
    from workbench.optim import SGD, MaxEpoch, Optimizer
    (X, y), (Xv, yv) = load_digits(size=28)
    X, y = X[:128], y[:128]

    def train():
        Optimizer(LeNet5(10), (X, y), ClassNLLCriterion(), MaxEpoch(1), 64, SGD(0.05),
                  progress=False).optimize()

    train()
    results = []
    study = tune.Study(tune.SupervisedObjective(lambda p: LeNet5(10), epochs=1, batch_size=64),
                       {"learningrate": tune.loguniform(0.01, 0.1)},
                       data={"train": (X, y), "val": (Xv[:64], yv[:64])}, n_trials=2,
                       log_dir=False, backend="local", seed=0)
    worker = threading.Thread(target=lambda: results.append(study.run()))
    worker.start()
    worker.join(600)  # bounds a hang only (a crash ends the thread at once)
    assert not worker.is_alive() and results, "the study did not finish"
    assert [t.status for t in results[0].trials] == ["completed", "completed"]
    train()  # and the main thread trains again afterwards


def test_asha_prunes_and_never_the_best():
    def objective(params, trial):
        for epoch in range(1, 10):
            trial.report(params["x"] * epoch, epoch)
        return params["x"] * 9

    result = tune.Study(objective, {"x": tune.uniform(0, 1)}, algo="random", n_trials=12,
                        parallelism=1, pruner="asha", seed=4, log_dir=False,
                        backend="local").run()
    statuses = [t.status for t in result.trials]
    assert statuses.count("pruned") >= 4
    top = max(result.trials, key=lambda t: t.params["x"])
    assert top.status == "completed" and result.best_trial is top
    assert all(len(t.reports) < 9 for t in result.trials if t.status == "pruned")


def test_importing_tune_imports_neither_spark_nor_ipython_nor_optuna():
    import subprocess
    import sys
    code = ("import sys, workbench.tune; "
            "print([m for m in ('pyspark', 'IPython', 'optuna') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
