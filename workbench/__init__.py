"""BigDL Workbench."""


def load_ipython_extension(ipython):
    """``%load_ext workbench``: registers ``%%bigdl_train`` and ``%bigdl_tensorboard``."""
    from .notebook import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython):
    from .notebook import unload_ipython_extension as unload
    unload(ipython)
