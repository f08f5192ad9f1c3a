"""The server extension application: configuration, handlers, shutdown."""
from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from ..summary import tensorboard
from .handlers import handlers

__all__ = ["WorkbenchApp"]


class WorkbenchApp(ExtensionApp):
    """BigDL Workbench's REST API for runs, TensorBoard and tutorials."""

    name = "workbench"
    load_other_extensions = True

    runs_dir = Unicode(
        "", config=True,
        help="Directory whose sub-directories are training runs (TensorBoard logs + run "
             "records).  Default: $WORKBENCH_RUNS_DIR, else <root_dir>/runs.  It is exported "
             "as WORKBENCH_RUNS_DIR to the kernels this server starts, so %%bigdl_train logs "
             "there by default.")
    tutorials_dir = Unicode(
        "notebooks", config=True,
        help="Directory of the tutorial notebooks, relative to the server's root_dir (the "
             "launcher card opens them).")
    spark_ui_url = Unicode(
        "", config=True,
        help="Address of a Spark UI to open when no run names its own (e.g. a cluster's "
             "history server).")

    def initialize_settings(self):
        root = os.path.realpath(os.path.expanduser(self.serverapp.root_dir))
        runs = self.runs_dir or os.environ.get("WORKBENCH_RUNS_DIR") or os.path.join(root, "runs")
        runs = os.path.realpath(os.path.join(root, os.path.expanduser(runs)))
        os.makedirs(runs, exist_ok=True)
        os.environ["WORKBENCH_RUNS_DIR"] = runs  # inherited by the kernels started from now on
        self.settings.update(workbench_paths={
            "runs_dir": runs, "root_dir": root, "tutorials_dir": self.tutorials_dir,
            "spark_ui_url": self.spark_ui_url or os.environ.get("SPARK_UI_URL", ""),
        })
        self.log.info("BigDL Workbench: runs in %s", runs)

    def initialize_handlers(self):
        self.handlers.extend(handlers)

    async def stop_extension(self):
        tensorboard.stop_all()
