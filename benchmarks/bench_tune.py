"""Hyperparameter search on Spark: workbench.tune vs Hyperopt's SparkTrials, side by side.

    .venv/bin/python benchmarks/bench_tune.py            # writes benchmarks/results/tune.json

The task (the tutorial's): LeNet-5 (``workbench.models.LeNet5``) on the digits at 28x28
(``workbench.data.load_digits(size=28)``), validation accuracy after every epoch.  Same search
space, same budget (``--trials`` trials of at most ``--epochs`` epochs), same training code
(``tune.SupervisedObjective``), same number of parallel trials (2) on the same ``local[2]``
session, the data broadcast once per study on both sides, TPE on both sides with the same
number of random start-up trials.

- workbench.tune: ``Study(algo="tpe", parallelism=2, pruner="median")`` (optuna TPE + median
  pruning through the driver link), and the same study without a pruner (how much of the
  speed comes from pruning, how much from the execution);
- Hyperopt 0.3 ``fmin(tpe.suggest, SparkTrials(parallelism=2))``: it has no early stopping,
  every trial trains all epochs.

Reported: best validation accuracy (goal ≥ the peer's) and trials per hour (goal ≥ 1.2× the
peer's), medians over ``--repeats`` runs (the runs alternate between the two so that load on
the shared machine hits both alike), and the ratios.  Never a test.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "tune.json")


def session():
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from workbench.spark import get_spark
    return get_spark("local[2]", app_name="bench-tune", conf={"spark.ui.enabled": "false"},
                     log_level="ERROR")


def build(params):
    from workbench.models import LeNet5
    return LeNet5(10)


def space():
    from workbench import tune
    return {"learningrate": tune.loguniform(1e-3, 0.5),
            "batch_size": tune.choice([32, 64, 128]),
            "optim": tune.choice(["SGD", "Adam"]),
            "momentum": tune.uniform(0.0, 0.95)}


def n_startup(n_trials):
    return min(10, max(3, n_trials // 3))  # what tune.Study uses for TPE


def run_tune(data, args, pruner, seed, log_dir):
    from workbench import tune
    study = tune.Study(tune.SupervisedObjective(build, epochs=args.epochs), space(), data=data,
                       algo="tpe", n_trials=args.trials, parallelism=2, pruner=pruner,
                       seed=seed, log_dir=log_dir, name=f"bench-{pruner}-{seed}",
                       backend="spark")
    t = time.perf_counter()
    result = study.run()
    wall = time.perf_counter() - t
    statuses = [r.status for r in result.trials]
    return {"wall_s": wall, "trials_per_hour": len(result.trials) / wall * 3600,
            "best_accuracy": result.best_value,
            "epochs_trained": sum(len(r.reports) for r in result.trials),
            "trial_time_s": sum(r.elapsed or 0.0 for r in result.trials),
            "completed": statuses.count("completed"), "pruned": statuses.count("pruned"),
            "failed": statuses.count("failed")}


def run_hyperopt(spark, bc, args, seed):
    import numpy as np
    from hyperopt import STATUS_OK, SparkTrials, fmin, hp, tpe
    from functools import partial

    from workbench import tune
    epochs = args.epochs

    class _NoPrune(tune.Trial):
        def __init__(self, params, data):
            super().__init__(0, params, data)
            self.reports = []

        def _send(self, epoch, value):
            self.reports.append(value)
            return "continue"

    def objective(params):
        t0 = time.perf_counter()
        data = bc.value
        params = dict(params)
        params["batch_size"] = int(params["batch_size"])
        trial = _NoPrune(params, data)
        tune.SupervisedObjective(build, epochs=epochs)(params, trial)
        return {"loss": -trial.reports[-1], "status": STATUS_OK, "epochs": len(trial.reports),
                "seconds": time.perf_counter() - t0}

    hspace = {"learningrate": hp.loguniform("learningrate", math.log(1e-3), math.log(0.5)),
              "batch_size": hp.choice("batch_size", [32, 64, 128]),
              "optim": hp.choice("optim", ["SGD", "Adam"]),
              "momentum": hp.uniform("momentum", 0.0, 0.95)}
    trials = SparkTrials(parallelism=2, spark_session=spark)
    t = time.perf_counter()
    fmin(objective, hspace, algo=partial(tpe.suggest, n_startup_jobs=n_startup(args.trials)),
         max_evals=args.trials, trials=trials, rstate=np.random.default_rng(seed),
         show_progressbar=False)
    wall = time.perf_counter() - t
    losses = [r["loss"] for r in trials.results if r.get("status") == STATUS_OK]
    return {"wall_s": wall, "trials_per_hour": len(trials.trials) / wall * 3600,
            "best_accuracy": -min(losses) if losses else None,
            "epochs_trained": sum(r.get("epochs", 0) for r in trials.results),
            "trial_time_s": sum(r.get("seconds", 0.0) for r in trials.results),
            "completed": len(losses), "failed": len(trials.trials) - len(losses)}


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    import tempfile

    import hyperopt

    from workbench.data import load_digits
    spark = session()
    sc = spark.sparkContext
    (X, y), (Xv, yv) = load_digits(size=28)
    data = {"train": (X, y), "val": (Xv, yv)}
    bc = sc.broadcast(data)
    log_dir = tempfile.mkdtemp(prefix="bench-tune-")
    runs = {"tune_median": [], "tune_nopruner": [], "hyperopt_sparktrials": []}
    # warm-up (not timed): Python workers started and imports done on both sides
    small = argparse.Namespace(trials=2, epochs=1)
    run_hyperopt(spark, bc, small, 0)
    run_tune(data, small, "median", 0, log_dir)
    for rep in range(args.repeats):
        seed = 100 + rep
        order = [("hyperopt_sparktrials", lambda seed=seed: run_hyperopt(spark, bc, args, seed)),
                 ("tune_median", lambda seed=seed: run_tune(data, args, "median", seed, log_dir)),
                 ("tune_nopruner", lambda seed=seed: run_tune(data, args, None, seed, log_dir))]
        if rep % 2:
            order.reverse()
        for name, fn in order:
            r = fn()
            r["seed"] = seed
            runs[name].append(r)
            print(f"rep {rep} {name}: {json.dumps(r)}", flush=True)
    summary = {name: {k: median_of(rs, k) for k in ("best_accuracy", "trials_per_hour",
                                                       "wall_s", "epochs_trained",
                                                       "trial_time_s")}
               for name, rs in runs.items()}
    peer = summary["hyperopt_sparktrials"]
    ratios = {}
    for name in ("tune_median", "tune_nopruner"):
        ours = summary[name]
        ratios[name] = {
            "trials_per_hour_vs_hyperopt": ours["trials_per_hour"] / peer["trials_per_hour"],
            "best_accuracy_minus_hyperopt": ours["best_accuracy"] - peer["best_accuracy"],
        }
    # per-repeat ratios (same seed, consecutive runs)
    paired = [a["trials_per_hour"] / b["trials_per_hour"]
              for a, b in zip(runs["tune_median"], runs["hyperopt_sparktrials"])]
    doc = {
        "benchmark": "bench_tune",
        "task": "LeNet-5 on load_digits(size=28) (1437 train / 360 val), Top1Accuracy per epoch",
        "budget": {"trials": args.trials, "max_epochs": args.epochs, "parallelism": 2,
                   "master": "local[2]", "tpe_startup_trials": n_startup(args.trials)},
        "versions": {"python": platform.python_version(), "hyperopt": hyperopt.__version__,
                     "optuna": __import__("optuna").__version__,
                     "pyspark": __import__("pyspark").__version__},
        "repeats": args.repeats,
        "medians": summary,
        "ratios": ratios,
        "paired_trials_per_hour_ratios_median_pruner": paired,
        "goals": {"best_accuracy": ">= hyperopt", "trials_per_hour": ">= 1.2x hyperopt"},
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
    print(json.dumps({"medians": summary, "ratios": ratios}, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
