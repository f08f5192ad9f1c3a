"""``workbench.notebook``: the workbench inside Jupyter.

``%load_ext workbench`` registers the magics ``%%bigdl_train`` (train a model of the notebook
with a live dashboard; results back in the namespace) and ``%bigdl_tensorboard`` (TensorBoard
for a run, in the notebook).  Without the magic::

    from workbench.notebook import Dashboard
    Dashboard(optimizer)          # display it; then optimizer.optimize()
"""
from .dashboard import Dashboard
from .history import History

__all__ = ["Dashboard", "History", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython):
    from .magics import WorkbenchMagics
    ipython.register_magics(WorkbenchMagics)


def unload_ipython_extension(ipython):
    from . import tensorboard
    tensorboard.stop()
