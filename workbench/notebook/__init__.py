"""``workbench.notebook``: the workbench inside Jupyter.

``%load_ext workbench`` registers the magics ``%%bigdl_train`` (train a model of the notebook
with a live dashboard; results back in the namespace), ``%%bigdl_tune`` (hyperparameter search
on Spark with a live leaderboard; the best model back in the namespace) and
``%bigdl_tensorboard`` (TensorBoard for a run, in the notebook).  Without the magics::

    from workbench.notebook import Dashboard, TuningBoard
    Dashboard(optimizer)          # display it; then optimizer.optimize()
    TuningBoard(build, data=(X, y), val=(X_val, y_val))   # set the space, press Run
"""
from .dashboard import Dashboard
from .history import History

__all__ = ["Dashboard", "History", "TuningBoard", "load_ipython_extension",
           "unload_ipython_extension"]


def __getattr__(name):  # TuningBoard imports workbench.tune only when asked for
    if name == "TuningBoard":
        from .tuning import TuningBoard
        return TuningBoard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython):
    from .magics import WorkbenchMagics
    ipython.register_magics(WorkbenchMagics)


def unload_ipython_extension(ipython):
    from . import tensorboard
    tensorboard.stop()
