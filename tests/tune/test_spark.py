"""workbench.tune on Spark (local[2]): concurrent one-task trials, data shipped once per
worker, failures, stop, pruning through the driver link, and the tutorial task's quality."""
import os

import pytest

from workbench import tune
from workbench.data import load_digits

pytestmark = pytest.mark.spark


def test_trials_two_at_a_time_in_worker_processes_data_loaded_once_per_worker(sc, tmp_path):
    arrived = tmp_path / "arrived"
    arrived.mkdir()

    def objective(params, trial):
        import os as _os
        import time as _time

        import workbench.tune.spark as ts
        if trial.number < 2:
            # the first two trials wait for each other (a barrier, not a delay that a slow
            # worker start could outlast): they can only both get past it by running at once
            (arrived / str(trial.number)).touch()
            deadline = _time.monotonic() + 300
            while len(_os.listdir(arrived)) < 2 and _time.monotonic() < deadline:
                _time.sleep(0.05)
        else:
            _time.sleep(0.3)  # the others overlap too, so a third one at once would show
        trial.report(1.0, 1)
        # the value: how many times this worker process loaded a study payload so far
        return float(ts._LOADS)

    study = tune.Study(objective, {"x": tune.uniform(0, 1)}, data={"blob": b"x" * 1000},
                       algo="random", n_trials=8, parallelism=2, pruner=None, seed=0,
                       log_dir=tmp_path, name="conc", backend="spark")
    result = study.run()
    trials = result.trials
    assert [t.status for t in trials] == ["completed"] * 8
    intervals = sorted((t.start, t.end) for t in trials)
    # concurrency: at every trial's start, how many trials are running
    running = [sum(1 for s, e in intervals if s <= s0 < e) for s0, _ in intervals]
    assert sorted(os.listdir(arrived)) == ["0", "1"]
    assert max(running) == 2          # two at a time (parallelism 2) ...
    assert any(r == 2 for r in running[:2])  # ... from the start: the first two overlap
    workers = {t.worker for t in trials}
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)  # not in the driver
    # Spark hands each task any idle Python worker (earlier tests may have left several), so
    # how many workers take part varies; but a worker loads the payload (objective + data)
    # once, not once per trial: all the trials of one worker see the same load count, and
    # with 8 trials on local[2] some worker always runs several
    by_worker = {}
    for t in trials:
        by_worker.setdefault(t.worker, set()).add(t.value)
    assert all(len(v) == 1 for v in by_worker.values()), by_worker
    assert max(sum(1 for t in trials if t.worker == w) for w in workers) >= 2, workers


def test_failed_trial_stop_and_pruning_on_spark(sc, tmp_path):
    (X, y), (Xv, yv) = load_digits(size=8)

    def build(params):
        from workbench.nn import Linear, LogSoftMax, ReLU, Reshape, Sequential
        if params["learningrate"] == 10.0:
            raise RuntimeError("cannot build this one")
        return (Sequential().add(Reshape([64])).add(Linear(64, 32)).add(ReLU())
                .add(Linear(32, 10)).add(LogSoftMax()))

    space = {"learningrate": tune.choice([0.1, 10.0, 0.0001, 0.05, 0.00001, 0.2, 0.00003,
                                          0.3])}
    reports = []

    class Count(tune.TuneListener):
        def on_trial_report(self, record, epoch, value):
            reports.append((record.number, epoch))

    study = tune.Study(tune.SupervisedObjective(build, epochs=5, batch_size=64), space,
                       data={"train": (X, y), "val": (Xv, yv)}, algo="grid", parallelism=2,
                       pruner="median", seed=0, log_dir=False, backend="spark")
    study.add_listener(Count())
    result = study.run()
    by_lr = {t.params["learningrate"]: t for t in result.trials}
    assert by_lr[10.0].status == "failed"
    assert by_lr[10.0].error == "RuntimeError: cannot build this one"
    others = [t for t in result.trials if t.params["learningrate"] != 10.0]
    assert all(t.status in ("completed", "pruned") for t in others)
    # the tiny learning rates are hopeless: the median pruner stops some of them early
    pruned = [t for t in others if t.status == "pruned"]
    assert len(pruned) >= 1 and all(len(t.reports) < 5 for t in pruned)
    assert sorted(reports) == sorted((t.number, e) for t in others for e, _ in t.reports)
    assert result.best_params["learningrate"] in (0.1, 0.05, 0.2, 0.3)
    from workbench.optim import Top1Accuracy
    acc = result.best_model.evaluate((Xv, yv), 256, [Top1Accuracy()])[0].value
    assert acc == pytest.approx(result.best_value)

    # stop: from a listener, during the second wave.  Trial 0 is quick, the others slow; trial
    # 0 starts its epochs only once trial 1 has reported (a file it leaves), so trial 1 is
    # surely running when trial 0 ends, however late a busy machine started its worker
    marker = tmp_path / "trial1-reported"
    epochs = 400

    def slow(params, trial):
        import os as _os
        import time as _time
        if trial.number == 0:
            deadline = _time.monotonic() + 300
            while not _os.path.exists(marker) and _time.monotonic() < deadline:
                _time.sleep(0.05)
        for epoch in range(1, 40 if trial.number == 0 else epochs):
            _time.sleep(0.02 if trial.number == 0 else 0.2)
            trial.report(params["x"], epoch)
            if trial.number == 1:
                open(marker, "w").close()
        return params["x"]

    study = tune.Study(slow, {"x": tune.uniform(0, 1)}, algo="random", n_trials=8,
                       parallelism=2, pruner=None, seed=0, log_dir=False, backend="spark")

    class StopAfterFirst(tune.TuneListener):
        def on_trial_end(self, record):
            study.stop()

    study.add_listener(StopAfterFirst())
    result = study.run()
    assert result.stopped
    by_number = {t.number: t for t in result.trials}
    assert by_number[0].status == "completed" and len(by_number[0].reports) == 39
    assert by_number[1].status == "stopped"
    assert len(result.trials) < 8
    # the running trials end at their next report, long before their last epoch
    assert all(len(t.reports) < epochs - 1 for t in result.trials if t.status == "stopped"), \
        [(t.number, t.status, len(t.reports), t.start, t.end) for t in result.trials]


def test_pruning_keeps_the_best_on_the_tutorial_task(sc):
    """LeNet-5 on the 28x28 digits: the same random trials (same seed) with and without the
    median pruner.  The pruner stops trials early, and the pruned study's best trial is within
    1% of the best unpruned one."""
    from workbench.models import LeNet5
    (X, y), (Xv, yv) = load_digits(size=28)
    space = {"learningrate": tune.loguniform(1e-3, 0.5), "optim": tune.choice(["SGD", "Adam"]),
             "momentum": tune.conditional("optim", {"SGD": tune.uniform(0.0, 0.9)})}

    def run(pruner):
        return tune.Study(tune.SupervisedObjective(lambda p: LeNet5(10), epochs=4,
                                                   batch_size=64),
                          space, data={"train": (X, y), "val": (Xv, yv)}, algo="random",
                          n_trials=10, parallelism=2, pruner=pruner, seed=11, log_dir=False,
                          backend="spark").run()

    full, pruned = run(None), run("median")
    assert [t.params for t in full.trials] == [t.params for t in pruned.trials]
    assert all(t.status == "completed" for t in full.trials)
    n_pruned = sum(t.status == "pruned" for t in pruned.trials)
    assert n_pruned >= 2
    epochs_full = sum(len(t.reports) for t in full.trials)
    epochs_pruned = sum(len(t.reports) for t in pruned.trials)
    assert epochs_pruned < epochs_full
    assert pruned.best_value >= full.best_value - 0.01


def test_distributed_trials_run_one_after_another(sc):
    """distributed=True: each trial is a data-parallel Spark training run (arrays in data
    become cached RDDs of Samples); pruning and reports go through trial.listener."""
    (X, y), (Xv, yv) = load_digits(size=8)

    def build(params):
        from workbench.nn import Linear, LogSoftMax, Reshape, Sequential
        return Sequential().add(Reshape([64])).add(Linear(64, 10)).add(LogSoftMax())

    result = tune.Study(tune.SupervisedObjective(build, epochs=2, batch_size=128),
                        {"learningrate": tune.choice([0.05, 0.2])},
                        data={"train": (X, y), "val": (Xv, yv)}, algo="grid", pruner=None,
                        distributed=True, log_dir=False).run()
    trials = result.trials
    assert [t.status for t in trials] == ["completed", "completed"]
    assert all([e for e, _ in t.reports] == [1, 2] for t in trials)
    assert trials[0].end <= trials[1].start  # one after another
    assert result.best_value > 0.5
