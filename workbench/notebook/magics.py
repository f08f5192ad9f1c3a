"""The IPython magics: ``%%bigdl_train``, ``%%bigdl_tune`` and ``%bigdl_tensorboard``."""
from __future__ import annotations

import os
import sys

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .. import optim
from ..nn import LayerError, LabelError
from ..runs import RunRecorder, default_runs_dir, valid_run_name
from . import options
from .options import OptionError

__all__ = ["WorkbenchMagics", "run_training", "run_tuning"]

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


def start_spark(master, magic="bigdl_train"):
    """Create (or get the active) Spark session through ``workbench.spark``."""
    if not options.spark_available():
        raise OptionError(f"{magic}: --master: Spark training (workbench.spark) is not "
                          "available in this installation; train on arrays without --master")
    from ..spark import get_spark
    try:
        return get_spark(master)
    except USER_ERRORS as e:
        raise OptionError(f"{magic}: --master {master}: {e}") from None


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
        if plan.profile_every:
            optimizer.set_profile(plan.profile_every)
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


def run_tuning(plan, user_ns, *, display_fn=display, out=None):
    """Run the study of ``plan`` (a ``tune_options.TunePlan``) with a TuningBoard, blocking
    until it ends; the best model and the trials DataFrame go into ``user_ns``.  Returns the
    board (its ``result`` is the ``StudyResult``)."""
    from .tuning import TuningBoard
    out = out or sys.stdout
    if plan.master is not None:
        start_spark(plan.master, "bigdl_tune")
    try:
        board = TuningBoard(plan.fn, data=plan.data, space=plan.space, metric=plan.metric,
                            mode=plan.mode, n_trials=plan.n_trials, parallelism=plan.parallelism,
                            algo=plan.algo, pruner=plan.pruner, epochs=plan.epochs,
                            criterion=plan.criterion, seed=plan.seed, name=plan.name,
                            log_dir=plan.log_dir, backend=plan.backend,
                            distributed=plan.distributed, out=plan.out,
                            trials_out=plan.trials_out, namespace=user_ns)
    except USER_ERRORS as e:
        raise OptionError(f"bigdl_tune: {e}") from None
    user_ns[plan.board] = board
    display_fn(board)
    try:
        result = board.run(block=True)
    except USER_ERRORS as e:
        raise OptionError(f"bigdl_tune: {e}".splitlines()[0]) from None
    counts = {}
    for r in result.trials:
        counts[r.status] = counts.get(r.status, 0) + 1
    done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    logs = os.path.join(board.log_dir or default_runs_dir(), board.study_name)
    what = "stopped by request" if result.stopped else "finished"
    if result.best_trial is None:
        failed = [r for r in result.trials if r.error]
        if result.stopped and not failed:
            print(f"bigdl_tune: {what} before any trial completed ({done or 'no trials'}); "
                  f"trials in {plan.trials_out!r}, logs in {logs}", file=out)
            return board
        hint = f"; the first error: {failed[0].error}" if failed else ""
        raise OptionError(f"bigdl_tune: {what} with no successful trial ({done}){hint}")
    print(f"bigdl_tune: {what}: {done}; best trial {result.best_trial.number}: {plan.metric} "
          f"{result.best_value:.4f}; model in {plan.out!r}, trials in {plan.trials_out!r}, "
          f"logs in {logs}", file=out)
    return board


_MISSING = object()


@magics_class
class WorkbenchMagics(Magics):
    """``%%bigdl_train``, ``%%bigdl_tune`` and ``%bigdl_tensorboard``."""

    def __init__(self, shell):
        super().__init__(shell)
        self.last_run = None  # (log_dir, run) of the latest %%bigdl_train
        self.last = None      # (optimizer, history, dashboard) of the latest %%bigdl_train
        self.last_tune = None  # the TuningBoard of the latest %%bigdl_tune

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

    @line_cell_magic
    def bigdl_tune(self, line, cell=None):
        from . import tune_options
        args, code = tune_options.parse(line, cell or "")
        if args.master is not None:  # first, so that the cell's code can use the session
            start_spark(args.master, "bigdl_tune")
        before = self.shell.user_ns.get("space", _MISSING)
        if code.strip():
            result = self.shell.run_cell(code, store_history=False)
            if not result.success:
                return None  # the user's own traceback has been shown
        after = self.shell.user_ns.get("space", _MISSING)
        body_space = after if after is not before and after is not _MISSING else None
        plan = tune_options.resolve(args, self.shell.user_ns, body_space=body_space)
        plan.master = None  # started above
        self.last_tune = run_tuning(plan, self.shell.user_ns)
        if plan.log_dir or self.last_tune.study_name:
            self.last_run = (self.last_tune.log_dir or default_runs_dir(),
                             self.last_tune.study_name)
        return None

    from .tune_options import bigdl_tune as _tune_doc
    bigdl_tune.__doc__ = _tune_doc.__doc__
    del _tune_doc

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
