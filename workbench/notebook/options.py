"""The options of ``%%bigdl_train``: parsing (the line and ``--`` lines of the cell) and
resolving names and expressions against the notebook's namespace into a :class:`TrainPlan`.

Every mistake in the user's input becomes one :class:`OptionError` (an IPython ``UsageError``,
shown as a single line, without a traceback through this package).
"""
from __future__ import annotations

import ast
import builtins
import difflib
import inspect
import keyword
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, argument_group, magic_arguments

from .. import nn, optim
from ..runs import default_runs_dir, valid_run_name

__all__ = ["OptionError", "TrainPlan", "parse", "resolve", "bigdl_train",
           "split_cell"]


#: A mistake in ``%%bigdl_train``'s options or in the data/model they name.  It is IPython's
#: own ``UsageError`` (IPython shows exactly that class as one line, without a traceback).
OptionError = UsageError


@magic_arguments()
@argument_group("What to train")
@argument("--model", metavar="NAME", required=True,
          help="The model: a variable holding a workbench Module (e.g. LeNet5(10)); the cell "
               "body may define it.")
@argument("--data", metavar="NAME", nargs="+", required=True,
          help="Training data: two variables 'X y' (feature and label arrays), or one "
               "variable holding an (X, y) tuple, a list of Samples, or (Spark training) an "
               "RDD of Samples or a DataFrame.")
@argument_group("How to train")
@argument("--criterion", metavar="EXPR", default="ClassNLLCriterion",
          help="The loss: a class of workbench.nn (ClassNLLCriterion), a call "
               "('ClassNLLCriterion(zero_based_label=False)') or a variable. "
               "Default: ClassNLLCriterion.")
@argument("--optim", metavar="EXPR", default="SGD",
          help="The optim method: a class of workbench.optim (SGD, Adam, Adagrad, RMSprop, "
               "Adadelta, Adamax), a call ('Adam(learningrate=1e-3)') or a variable. "
               "Default: SGD.")
@argument("--lr", type=float, metavar="FLOAT",
          help="Learning rate (the method's learningrate=).")
@argument("--momentum", type=float, metavar="FLOAT", help="Momentum (SGD's momentum=).")
@argument("--weight-decay", type=float, metavar="FLOAT",
          help="Weight decay (the method's weightdecay=).")
@argument("--lr-decay", type=float, metavar="FLOAT",
          help="Learning-rate decay (the method's learningrate_decay=).")
@argument("--param", metavar="KEY=VALUE", action="append", default=[],
          help="Any other hyperparameter of the optim method, by its BigDL name; repeat it "
               "for several (e.g. --param beta1=0.95 --param "
               "'learningrate_schedule=Step(100, 0.5)').")
@argument("--batch-size", type=int, default=32, metavar="N",
          help="Global mini-batch size. Default: 32.")
@argument("--epochs", type=int, metavar="N", help="Train N epochs (MaxEpoch(N)).")
@argument("--iterations", type=int, metavar="N",
          help="Train N iterations (MaxIteration(N)).")
@argument("--end-trigger", metavar="EXPR",
          help="Any end trigger, e.g. 'MaxEpoch(20) | MaxScore(0.98)' or 'MinLoss(0.05)'. "
               "Give one of --epochs, --iterations, --end-trigger; default: 1 epoch.")
@argument("--seed", type=int, metavar="N", help="Seed of the per-epoch shuffling.")
@argument_group("Validation and checkpoints")
@argument("--val", metavar="NAME", nargs="+",
          help="Validation data, in the same forms as --data; validated after every epoch "
               "(or every --val-every iterations).")
@argument("--metrics", metavar="EXPR", nargs="+",
          help="Validation methods: Top1Accuracy, Top5Accuracy, Loss (with the training "
               "criterion), MAE, or calls/variables. Default: Top1Accuracy.")
@argument("--val-batch-size", type=int, metavar="N",
          help="Batch size of validation. Default: --batch-size.")
@argument("--val-every", type=int, metavar="N",
          help="Validate every N iterations instead of every epoch.")
@argument("--checkpoint-dir", metavar="DIR",
          help="Write checkpoints (weights, optim state, counters) into DIR after every "
               "epoch (or every --checkpoint-every iterations), keeping the newest.")
@argument("--checkpoint-every", type=int, metavar="N",
          help="Checkpoint every N iterations instead of every epoch.")
@argument("--resume", action="store_true",
          help="Continue from the newest checkpoint in --checkpoint-dir.")
@argument_group("Logs, Spark and results")
@argument("--log-dir", metavar="DIR",
          help="TensorBoard logs and the run's record go to DIR/RUN. Default: "
               "$WORKBENCH_RUNS_DIR (set by the Jupyter server extension), else ./runs.")
@argument("--run", metavar="NAME",
          help="The run's name (letters, digits, _ . - = +). Default: <model>-<date-time>.")
@argument("--master", metavar="URL",
          help="Spark master (local[2], spark://host:7077, yarn, k8s://...): the Spark "
               "session is created (or the active one reused) through workbench.spark before "
               "the cell's code runs, so the code can build DataFrames on it.")
@argument("--features-col", metavar="COL", nargs="+",
          help="Spark DataFrame: the feature column (an array/vector column), or several "
               "numeric columns. Default: features.")
@argument("--label-col", metavar="COL", help="Spark DataFrame: the label column. Default: label.")
@argument("--spark-param", metavar="KEY=VALUE", action="append", default=[],
          help="Any other option of the Spark trainer (see workbench.spark.TRAINER_OPTIONS), "
               "e.g. --spark-param num_tasks=2.")
@argument("--out", metavar="NAME",
          help="Put the trained model in this variable (the same object, trained in place). "
               "Default: the --model variable.")
@argument("--history", metavar="NAME", default="history",
          help="Put the history (a pandas DataFrame: one row per iteration with epoch, loss, "
               "throughput, lr, wall_time, and val_<method> columns on validation rows) in "
               "this variable. Default: history.")
@argument("--profile-every", type=int, metavar="N",
          help="Time every layer's forward and backward every N iterations (the dashboard's "
               "layer chart, the run's record, TensorBoard's Profile/ scalars). Default: off.")
@argument("--no-dashboard", action="store_true",
          help="Print a console progress bar instead of the live dashboard.")
def bigdl_train(line, cell=None):
    """Train a model from the notebook's namespace, with a live dashboard.

    %%bigdl_train --model model --data X_train y_train --epochs 15 --lr 0.05 --momentum 0.9
    --val X_test y_test --metrics Top1Accuracy Loss --run lenet

    Options may go on the magic's line or on lines of the cell that start with "--"; every
    other line of the cell is Python, run first in the notebook's namespace (e.g. to define
    the model). Names refer to the notebook's variables; classes and calls (criterion, optim
    method, triggers, metrics) may also use every name of workbench.nn and workbench.optim.

    Afterwards the trained model and its history DataFrame are in the namespace (--out,
    --history), TensorBoard logs are in --log-dir/--run (see %bigdl_tensorboard), and the run
    shows in JupyterLab's Workbench sidebar. The dashboard's Stop button (or interrupting the
    kernel) ends training after the current iteration; the model keeps its weights. A mistake
    in the options or data gives one line saying what is wrong.
    """


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def split_cell(cell):
    """``(option_text, code)``: the cell's lines that start with ``--`` are options, the rest
    is Python."""
    options, code = [], []
    for text in (cell or "").splitlines():
        (options if text.lstrip().startswith("--") else code).append(text)
    return " ".join(o.strip() for o in options), "\n".join(code)


def parse_magic(magic, line, cell):
    """Parse the options of ``magic`` (a function declared with ``@magic_arguments``) from its
    line and the cell's ``--`` lines; returns ``(args, code)``."""
    name = magic.__name__
    extra, code = split_cell(cell)
    try:  # shell-like quoting: --optim "Adam(learningrate=1e-3)" arrives without its quotes
        argv = shlex.split(f"{line or ''} {extra}")
    except ValueError as e:
        raise OptionError(f"{name}: cannot read the options: {e}") from None
    try:
        args = magic.parser.parse_args(argv)
    except UsageError as e:
        raise OptionError(f"{name}: {e} (see %{name}?)") from None
    return args, code


def parse(line, cell=""):
    """Parse the magic's options; returns ``(args, code)``."""
    return parse_magic(bigdl_train, line, cell)


@dataclass
class TrainPlan:
    """Everything ``%%bigdl_train`` needs, resolved from the options."""
    model: Any
    model_name: str
    training_set: Any
    criterion: Any
    end_trigger: Any
    batch_size: int
    optim_method: Any
    seed: int | None = None
    validation: dict | None = None
    checkpoint: dict | None = None
    resume: bool = False
    log_dir: str = "runs"
    run: str = ""
    master: str | None = None
    spark_options: dict = field(default_factory=dict)
    out_name: str = ""
    history_name: str = "history"
    dashboard: bool = True
    profile_every: int = 0
    notes: list = field(default_factory=list)


def _fail(option, message):
    raise OptionError(f"bigdl_train: {option}: {message}")


def _namespace_names(user_ns):
    return [k for k in user_ns if not k.startswith("_")]


def lookup(user_ns, name, option):
    """The value of variable ``name`` (dotted attributes allowed) in ``user_ns``."""
    if not _IDENT.match(name or ""):
        _fail(option, f"{name!r} is not a variable name")
    head, *rest = name.split(".")
    if head not in user_ns:
        close = difflib.get_close_matches(head, _namespace_names(user_ns), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(option, f"no variable named {head!r} in the notebook{hint}")
    value = user_ns[head]
    for i, attr in enumerate(rest):
        if not hasattr(value, attr):
            _fail(option, f"{'.'.join([head] + rest[:i])} has no attribute {attr!r}")
        value = getattr(value, attr)
    return value


def _library(module):
    return {k: getattr(module, k) for k in getattr(module, "__all__", dir(module))
            if not k.startswith("_")}


_NN, _OPTIM = None, None


def _libraries():
    global _NN, _OPTIM
    if _NN is None:
        _NN, _OPTIM = {}, {}
        for sub in ("containers", "graph", "initializers", "regularizers", *nn.DOMAINS):
            _NN.update(_library(getattr(nn, sub)))
        _NN.update(Criterion=nn.Criterion, Module=nn.Module)
        for sub in ("methods", "schedules", "triggers", "validation"):
            _OPTIM.update(_library(getattr(optim, sub)))
    return _NN, _OPTIM


def _eval(text, option, user_ns):
    nn_names, optim_names = _libraries()
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        _fail(option, f"cannot read {text!r}: {e.msg}")
    scope = {"__builtins__": builtins, "np": np, **nn_names, **optim_names}
    try:
        return eval(compile(tree, f"<{option}>", "eval"), scope, user_ns)  # the user's kernel
    except NameError as e:
        name = getattr(e, "name", None) or str(e)
        close = difflib.get_close_matches(str(name), list(scope) + _namespace_names(user_ns), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(option, f"{text}: unknown name {name!r}{hint}")
    except Exception as e:  # the constructor's own message says what is wrong
        _fail(option, f"{text}: {e}")


def _kinds():
    nn_names, optim_names = _libraries()
    return {
        "criterion": (nn.Criterion, {k: v for k, v in nn_names.items()
                                     if isinstance(v, type) and issubclass(v, nn.Criterion)
                                     and v is not nn.Criterion}),
        "optim method": (optim.OptimMethod, {k: v for k, v in optim_names.items()
                                             if isinstance(v, type)
                                             and issubclass(v, optim.OptimMethod)
                                             and v is not optim.OptimMethod}),
        "trigger": (optim.Trigger, {k: v for k, v in optim_names.items()
                                    if isinstance(v, type) and issubclass(v, optim.Trigger)
                                    and v is not optim.Trigger}),
        "validation method": (optim.ValidationMethod,
                              {k: v for k, v in optim_names.items() if isinstance(v, type)
                               and issubclass(v, optim.ValidationMethod)
                               and v is not optim.ValidationMethod}),
    }


def make(text, option, kind, user_ns, kwargs=None, default_args=()):
    """An object of ``kind`` ("criterion", "optim method", "trigger", "validation method")
    from a class name (instantiated with ``kwargs``), a call, or a variable."""
    base, classes = _kinds()[kind]
    text = (text or "").strip()
    if _IDENT.match(text):
        value = None
        if text.split(".")[0] in user_ns:
            value = lookup(user_ns, text, option)
        elif text in classes:
            value = classes[text]
        else:
            close = difflib.get_close_matches(text, list(classes), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            _fail(option, f"unknown {kind} {text!r}; {hint}choose from {', '.join(sorted(classes))}"
                          f", or name a variable")
        if isinstance(value, type) and issubclass(value, base):
            return _construct(value, option, kwargs or {}, default_args)
        obj = value
    else:
        obj = _eval(text, option, user_ns)
    if not isinstance(obj, base):
        _fail(option, f"{text} is a {type(obj).__name__}, not a {kind}")
    if kwargs:
        given = ", ".join(_FLAGS.get(k, f"--param {k}") for k in kwargs)
        _fail(option, f"{text} is already constructed, so {given} cannot apply; name the class "
                      f"instead (e.g. --optim {type(obj).__name__} --lr 0.1)")
    return obj


def _construct(cls, option, kwargs, default_args=()):
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self" and params[p].kind in
                (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        _fail(option, f"{cls.__name__} has no hyperparameter {unknown[0]!r}; it takes "
                      f"{', '.join(accepted) or 'none'}")
    try:
        return cls(*default_args, **kwargs)
    except Exception as e:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        _fail(option, f"{cls.__name__}({args}): {e}")


def _param_value(text, option, user_ns):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _eval(text, option, user_ns)


_FLAGS = {"learningrate": "--lr", "momentum": "--momentum", "weightdecay": "--weight-decay",
          "learningrate_decay": "--lr-decay"}


def _optim_kwargs(args, user_ns):
    kwargs = {}
    for name, flag in _FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            kwargs[name] = value
    for item in args.param:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            _fail("--param", f"expected KEY=VALUE, got {item!r}")
        if key in kwargs:
            _fail("--param", f"{key} is given twice")
        kwargs[key] = _param_value(value.strip(), f"--param {key}", user_ns)
    return kwargs


def _is_spark(value):
    module = type(value).__module__ or ""
    return module.startswith("pyspark")


def spark_available():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def _arrays(x, y, option, names):
    try:
        X = np.asarray(x)
        Y = np.asarray(y)
    except Exception as e:
        _fail(option, f"{names} cannot be read as arrays: {e}")
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        _fail(option, f"the features {names.split()[0]} must be a numeric array, got dtype "
                      f"{X.dtype}")
    if X.ndim == 0 or Y.ndim == 0:
        _fail(option, f"{names}: features and labels must be arrays with one row per record")
    if len(X) != len(Y):
        _fail(option, f"{names}: {len(X)} feature rows but {len(Y)} labels")
    if len(X) == 0:
        _fail(option, f"{names}: no records")
    return X, Y


def data(names, option, user_ns):
    """The data set named by ``--data``/``--val``: ``(X, y)``, a list of Samples, or a Spark
    RDD / DataFrame."""
    if len(names) == 2:
        return _arrays(lookup(user_ns, names[0], option), lookup(user_ns, names[1], option),
                       option, " ".join(names))
    if len(names) != 1:
        _fail(option, f"give two variables (features labels) or one, got {len(names)}: "
                      f"{' '.join(names)}")
    name = names[0]
    value = lookup(user_ns, name, option)
    if isinstance(value, tuple) and len(value) == 2:
        return _arrays(value[0], value[1], option, f"{name}[0] {name}[1]")
    if isinstance(value, list) and value and hasattr(value[0], "features"):
        return value
    if _is_spark(value):
        if not spark_available():
            _fail(option, f"{name} is a Spark {type(value).__name__}, but Spark training "
                          "(workbench.spark) is not available in this installation")
        return value
    if isinstance(value, np.ndarray):
        _fail(option, f"{name} is one array: give the labels too (--data {name} LABELS) or an "
                      "(X, y) tuple")
    _fail(option, f"{name} is a {type(value).__name__}; expected two arrays (X y), an (X, y) "
                  "tuple, a list of Samples, an RDD or a DataFrame")


def _spark_options(args, user_ns):
    options = {}
    if args.features_col:
        options["features_col"] = (args.features_col[0] if len(args.features_col) == 1
                                   else list(args.features_col))
    if args.label_col:
        options["label_col"] = args.label_col
    if args.spark_param:
        if not spark_available():
            _fail("--spark-param", "Spark training (workbench.spark) is not available")
        from ..spark import TRAINER_OPTIONS
        for item in args.spark_param:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in TRAINER_OPTIONS:
                _fail("--spark-param", f"expected KEY=VALUE with KEY one of "
                                       f"{', '.join(sorted(TRAINER_OPTIONS))}; got {item!r}")
            options[key] = _param_value(value.strip(), f"--spark-param {key}", user_ns)
    return options


def _positive(args, attr, option):
    value = getattr(args, attr)
    if value is not None and value <= 0:
        _fail(option, f"must be a positive number, got {value}")
    return value


def _variable_name(name, option):
    if not name.isidentifier() or keyword.iskeyword(name):
        _fail(option, f"{name!r} is not a valid variable name")
    return name


def resolve(args, user_ns, *, now=None):
    """Turn parsed options into a :class:`TrainPlan`, checking every name and value."""
    model = lookup(user_ns, args.model, "--model")
    if not isinstance(model, nn.Module):
        _fail("--model", f"{args.model} is a {type(model).__name__}, not a workbench Module "
                         "(e.g. Sequential(), LeNet5(10))")
    training_set = data(args.data, "--data", user_ns)
    for attr, option in (("batch_size", "--batch-size"), ("epochs", "--epochs"),
                         ("iterations", "--iterations"), ("val_batch_size", "--val-batch-size"),
                         ("val_every", "--val-every"),
                         ("checkpoint_every", "--checkpoint-every"),
                         ("profile_every", "--profile-every")):
        _positive(args, attr, option)
    criterion = make(args.criterion, "--criterion", "criterion", user_ns)
    optim_method = make(args.optim, "--optim", "optim method", user_ns,
                        kwargs=_optim_kwargs(args, user_ns))
    given = [o for o, v in (("--epochs", args.epochs), ("--iterations", args.iterations),
                            ("--end-trigger", args.end_trigger)) if v is not None]
    if len(given) > 1:
        _fail(" ".join(given), "give only one of --epochs, --iterations, --end-trigger")
    if args.epochs is not None:
        end_trigger = optim.MaxEpoch(args.epochs)
    elif args.iterations is not None:
        end_trigger = optim.MaxIteration(args.iterations)
    elif args.end_trigger is not None:
        end_trigger = make(args.end_trigger, "--end-trigger", "trigger", user_ns)
    else:
        end_trigger = optim.MaxEpoch(1)

    validation = None
    if args.val:
        val_set = data(args.val, "--val", user_ns)
        metrics = []
        for text in (args.metrics or ["Top1Accuracy"]):
            default_args = (criterion,) if text.strip() == "Loss" else ()
            metrics.append(make(text, "--metrics", "validation method", user_ns,
                                default_args=default_args))
        trigger = (optim.SeveralIteration(args.val_every) if args.val_every
                   else optim.EveryEpoch())
        validation = dict(batch_size=args.val_batch_size or args.batch_size, data=val_set,
                          trigger=trigger, methods=metrics)
    elif args.metrics or args.val_every or args.val_batch_size:
        _fail("--metrics/--val-every/--val-batch-size", "need validation data: add --val")

    checkpoint = None
    if args.checkpoint_dir:
        trigger = (optim.SeveralIteration(args.checkpoint_every) if args.checkpoint_every
                   else optim.EveryEpoch())
        checkpoint = dict(trigger=trigger, path=args.checkpoint_dir)
    elif args.checkpoint_every or args.resume:
        _fail("--checkpoint-every/--resume", "need --checkpoint-dir")

    run = args.run or f"{args.model.split('.')[-1]}-" + time.strftime(
        "%Y%m%d-%H%M%S", time.localtime(now))
    if not valid_run_name(run):
        _fail("--run", f"{run!r} is not a valid run name (letters, digits and _ . - = + only)")
    if args.out:
        out_name = _variable_name(args.out, "--out")
    else:  # the model's own variable, or a new one when the model is an attribute
        out_name = args.model if "." not in args.model else "trained_model"
    history_name = _variable_name(args.history, "--history")
    if out_name == history_name:
        _fail("--history", f"the model and the history cannot both go into {out_name!r}")
    if args.master is not None and not spark_available():
        _fail("--master", "Spark training (workbench.spark) is not available in this "
                          "installation; train on arrays without --master")
    spark_options = _spark_options(args, user_ns)
    if spark_options and not _is_spark(training_set):
        _fail("--features-col/--label-col/--spark-param",
              f"apply to Spark data only; {' '.join(args.data)} is not an RDD or DataFrame")
    return TrainPlan(model=model, model_name=args.model, training_set=training_set,
                     criterion=criterion, end_trigger=end_trigger, batch_size=args.batch_size,
                     optim_method=optim_method, seed=args.seed, validation=validation,
                     checkpoint=checkpoint, resume=args.resume,
                     log_dir=args.log_dir or default_runs_dir(), run=run, master=args.master,
                     spark_options=spark_options,
                     out_name=out_name, history_name=history_name,
                     dashboard=not args.no_dashboard, profile_every=args.profile_every or 0)
