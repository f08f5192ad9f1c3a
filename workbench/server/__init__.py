"""``workbench.server``: the Jupyter server extension of the workbench.

A token-authenticated REST API under ``<base_url>workbench/api/``: the runs in the runs
directory (their registry records, see :mod:`workbench.runs`), TensorBoard for a run
(reached through jupyter-server-proxy at ``<base_url>proxy/<port>/``), a stop request for a
training run, and the tutorial notebooks.  Nothing outside the configured runs directory is
ever served.  ``pip install`` enables it (``etc/jupyter/jupyter_server_config.d``).

Configuration (``jupyter_server_config.py`` or the command line)::

    c.WorkbenchApp.runs_dir = "/data/runs"       # default: $WORKBENCH_RUNS_DIR or <root_dir>/runs
    c.WorkbenchApp.tutorials_dir = "notebooks"   # relative to the server's root_dir

Importing this package does not import Jupyter: the kernel side uses ``tensorboard`` from here
(the run records are :mod:`workbench.runs`, below both the notebook and this package).
"""


def _jupyter_server_extension_points():
    from .app import WorkbenchApp
    return [{"module": "workbench.server", "app": WorkbenchApp}]
