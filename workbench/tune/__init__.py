"""``workbench.tune``: hyperparameter search on Spark — parallel trials, early stopping of bad
trials, live events for a leaderboard, TensorBoard HParams.

    from workbench import tune
    space = {"learningrate": tune.loguniform(1e-3, 0.3),
             "optim": tune.choice(["SGD", "Adam"]),
             "momentum": tune.conditional("optim", {"SGD": tune.uniform(0.5, 0.99)})}
    objective = tune.SupervisedObjective(build)          # build(params) -> Module
    study = tune.Study(objective, space, data={"train": (X, y), "val": (Xv, yv)},
                       algo="tpe", n_trials=20, parallelism=2, pruner="median", seed=0)
    result = study.run()
    result.best_params, result.best_value, result.best_model, result.to_frame()

The sampler and pruner are optuna's (TPE / random / our grid; median or successive halving);
trials run as one-task Spark jobs when a SparkContext is active, else as threads here.
Importing this package imports neither pyspark nor IPython.
"""
from .objective import SupervisedObjective, make_optim_method
from .space import (Distribution, choice, conditional, grid_points, loguniform, randint,
                    space_from_dict, space_to_dict, uniform)
from .study import (Study, StudyResult, Trial, TrialPruned, TrialRecord, TrialStopped,
                    TuneListener)

__all__ = ["uniform", "loguniform", "randint", "choice", "conditional", "Distribution",
           "space_to_dict", "space_from_dict", "grid_points", "Study", "StudyResult", "Trial",
           "TrialRecord", "TrialPruned", "TrialStopped", "TuneListener", "SupervisedObjective",
           "make_optim_method"]
