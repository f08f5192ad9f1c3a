"""The IPython magics: ``%%bigdl_train`` and ``%bigdl_tensorboard``."""
from __future__ import annotations

import os
import sys

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .. import optim
from ..nn import LayerError, LabelError
from ..server.registry import RunRecorder, default_runs_dir, valid_run_name
from . import options
from .options import OptionError

__all__ = ["WorkbenchMagics", "run_training"]

#: Errors that come from what the user gave (shapes, labels, values, divergence) and are
#: shown as one line; anything else is a bug of ours and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, LayerError, LabelError, optim.TrainingError,
               FileNotFoundError)


def _spark_ui_url():
    """The Spark UI of the active SparkContext, if pyspark is in use."""
    pyspark = sys.modules.get("pyspark")
    if pyspark is None:
        return None
    try:
        sc = pyspark.SparkContext._active_spark_context
        return sc.uiWebUrl if sc is not None else None
    except Exception:
        return None


def start_spark(master):
    """Create (or get the active) Spark session through ``workbench.spark``."""
    if not options.spark_available():
        raise OptionError("bigdl_train: --master: Spark training (workbench.spark) is not "
                          "available in this installation; train on arrays without --master")
    from ..spark import get_spark
    try:
        return get_spark(master)
    except USER_ERRORS as e:
        raise OptionError(f"bigdl_train: --master {master}: {e}") from None


def run_training(plan, user_ns, *, display_fn=display, out=None):
    """Train according to ``plan``; the model and history go into ``user_ns``.

    Returns ``(optimizer, history, dashboard)``.  Raises :class:`OptionError` (one line) when
    the user's model or data makes training fail; the model and history are in the namespace
    all the same.
    """
    from .dashboard import Dashboard
    from .history import History
    from ..summary import TrainSummary, ValidationSummary
    out = out or sys.stdout
    if plan.master is not None:
        start_spark(plan.master)
    try:
        optimizer = optim.Optimizer(plan.model, plan.training_set, plan.criterion,
                                    plan.end_trigger, plan.batch_size, plan.optim_method,
                                    seed=plan.seed, progress=not plan.dashboard,
                                    **plan.spark_options)
        if plan.validation:
            v = plan.validation
            optimizer.set_validation(v["batch_size"], v["data"], v["trigger"], v["methods"])
        if plan.checkpoint:
            optimizer.set_checkpoint(plan.checkpoint["trigger"], plan.checkpoint["path"])
    except USER_ERRORS as e:
        raise OptionError(f"bigdl_train: {e}") from None
    try:
        optimizer.set_train_summary(TrainSummary(plan.log_dir, plan.run))
        if plan.validation:
            optimizer.set_val_summary(ValidationSummary(plan.log_dir, plan.run))
    except OSError as e:
        raise OptionError(f"bigdl_train: --log-dir {plan.log_dir}: {e}") from None
    recorder = RunRecorder(plan.log_dir, plan.run,
                           info={"model_variable": plan.model_name,
                                 "optim_method": type(plan.optim_method).__name__})
    history = History()
    optimizer.add_listener(recorder).add_listener(history)
    dashboard = None
    if plan.dashboard:
        dashboard = Dashboard(optimizer, run=plan.run)
        dashboard.extra_summary = [["model", f"{plan.out_name} ({type(plan.model).__name__})"],
                                   ["history", f"{plan.history_name} (DataFrame)"],
                                   ["logs", os.path.join(plan.log_dir, plan.run)]]
        display_fn(dashboard)
    resume = None
    if plan.resume:
        resume = plan.checkpoint["path"]
    failure = None
    try:
        spark_ui = _spark_ui_url()
        if spark_ui:
            recorder.info["spark_ui"] = spark_ui
        optimizer.optimize(resume_from=resume)
    except USER_ERRORS as e:
        failure = e
    finally:
        user_ns[plan.out_name] = optimizer.model
        user_ns[plan.history_name] = history.to_frame()
    state = optimizer.state
    if failure is not None:
        raise OptionError(f"bigdl_train: training failed at iteration {state.iteration + 1}: "
                          f"{failure}\n(the model keeps the weights of iteration "
                          f"{state.iteration}; it is in {plan.out_name!r}, the history in "
                          f"{plan.history_name!r})") from None
    what = (f"stopped by request after iteration {state.iteration}" if history.status == "stopped"
            else f"finished: {state.iteration} iterations, {state.epoch} epoch(s)")
    print(f"bigdl_train: {what}; model in {plan.out_name!r}, history in "
          f"{plan.history_name!r}, logs in {os.path.join(plan.log_dir, plan.run)}", file=out)
    return optimizer, history, dashboard


@magics_class
class WorkbenchMagics(Magics):
    """``%%bigdl_train`` and ``%bigdl_tensorboard``."""

    def __init__(self, shell):
        super().__init__(shell)
        self.last_run = None  # (log_dir, run) of the latest %%bigdl_train
        self.last = None      # (optimizer, history, dashboard) of the latest %%bigdl_train

    @line_cell_magic
    def bigdl_train(self, line, cell=None):
        args, code = options.parse(line, cell or "")
        if args.master is not None:  # first, so that the cell's code can use the session
            start_spark(args.master)
        if code.strip():
            result = self.shell.run_cell(code, store_history=False)
            if not result.success:
                return None  # the user's own traceback has been shown
        plan = options.resolve(args, self.shell.user_ns)
        self.last_run = (plan.log_dir, plan.run)
        self.last = run_training(plan, self.shell.user_ns)
        return None

    bigdl_train.__doc__ = options.bigdl_train.__doc__

    @magic_arguments()
    @argument("run", nargs="?",
              help="A run's name in the log dir. Default: the latest %%bigdl_train run of "
                   "this kernel, else the whole log dir.")
    @argument("--log-dir", metavar="DIR",
              help="The runs directory. Default: $WORKBENCH_RUNS_DIR, else ./runs.")
    @argument("--all", action="store_true", help="Show every run of the log dir.")
    @argument("--height", type=int, default=640, metavar="PX", help="Height of the pane.")
    @argument("--stop", action="store_true",
              help="Stop the TensorBoard of this run (or of the log dir) instead.")
    @argument("--stop-all", action="store_true",
              help="Stop every TensorBoard this kernel started.")
    @line_magic
    def bigdl_tensorboard(self, line):
        """Show TensorBoard for a training run inside the notebook.

        %bigdl_tensorboard              the latest %%bigdl_train run of this kernel
        %bigdl_tensorboard lenet        the run 'lenet' of the log dir
        %bigdl_tensorboard --all        every run of the log dir
        %bigdl_tensorboard --stop       stop it (every TensorBoard stops when the kernel exits)

        TensorBoard runs on 127.0.0.1 and the pane reaches it through jupyter-server-proxy
        (<base_url>proxy/<port>/), so it works behind a remote JupyterLab too.
        """
        from . import tensorboard as pane
        try:
            args = parse_argstring(self.bigdl_tensorboard, line)
        except OptionError:
            raise
        except Exception as e:
            raise OptionError(f"bigdl_tensorboard: {e}") from None
        if args.stop_all:
            n = pane.stop()
            print(f"bigdl_tensorboard: stopped {n} TensorBoard(s)")
            return None
        log_dir = args.log_dir or (self.last_run[0] if self.last_run else default_runs_dir())
        if args.all:
            target, title = log_dir, f"all runs in {log_dir}"
        elif args.run:
            if not valid_run_name(args.run):
                raise OptionError(f"bigdl_tensorboard: {args.run!r} is not a run name")
            target, title = os.path.join(log_dir, args.run), args.run
        elif self.last_run and not args.log_dir:
            target, title = os.path.join(*self.last_run), self.last_run[1]
        else:
            target, title = log_dir, f"all runs in {log_dir}"
        if args.stop:
            n = pane.stop(target)
            print(f"bigdl_tensorboard: {'stopped' if n else 'no TensorBoard running for'} "
                  f"{title}")
            return None
        if not os.path.isdir(target):
            raise OptionError(f"bigdl_tensorboard: no run directory {target}")
        try:
            widget = pane.show(target, title, height=args.height)
        except RuntimeError as e:
            raise OptionError(f"bigdl_tensorboard: {e}") from None
        display(widget)
        return None
