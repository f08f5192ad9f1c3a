"""The options of ``%%bigdl_tune``: parsing (the line and ``--`` lines of the cell) and
resolving them against the notebook's namespace into a :class:`TunePlan` (the search space,
the objective, the data and the study's settings).

Every mistake in the user's input becomes one :class:`OptionError` (a one-line UsageError).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, argument_group, magic_arguments

from ..runs import valid_run_name
from . import options
from .options import OptionError

__all__ = ["TunePlan", "parse", "resolve", "bigdl_tune", "parse_range", "parse_choices"]


@magic_arguments()
@argument_group("What to tune")
@argument("--build", metavar="NAME",
          help="The model builder: a function build(params) -> Module (or (Module, "
               "optim_method)), trained on --data by tune.SupervisedObjective. Default: the "
               "variable 'build' (the cell body may define it).")
@argument("--objective", metavar="NAME",
          help="Instead of --build: an objective(params, trial) function (see workbench.tune).")
@argument("--data", metavar="NAME", nargs="+",
          help="Training data: two variables 'X y', or one holding an (X, y) tuple.")
@argument("--val", metavar="NAME", nargs="+",
          help="Validation data (scored after every epoch), in the same forms as --data.")
@argument("--metric", metavar="NAME", default="Top1Accuracy",
          help="The validation method tuned for (Top1Accuracy, Loss, MAE...). "
               "Default: Top1Accuracy.")
@argument("--mode", choices=("max", "min"),
          help="Maximize or minimize the metric. Default: min for Loss/MAE, else max.")
@argument("--epochs", type=int, default=5, metavar="N",
          help="Training epochs of each trial (with --build). Default: 5.")
@argument("--criterion", metavar="EXPR",
          help="The loss (with --build), as in %%bigdl_train. Default: ClassNLLCriterion.")
@argument_group("The search space")
@argument("--lr", metavar="LOW:HIGH",
          help="Learning rate: a log-uniform range ('1e-3:0.3'), a list ('0.01,0.1') or one "
               "value (param 'learningrate').")
@argument("--batch-size", metavar="N,N,...",
          help="Batch sizes to choose from ('16,32,64'), or one (param 'batch_size').")
@argument("--optim", metavar="NAME,NAME,...",
          help="Optim methods of workbench.optim to choose from ('SGD,Adam') (param 'optim').")
@argument("--momentum", metavar="LOW:HIGH",
          help="SGD momentum: a uniform range or a list (param 'momentum').")
@argument("--hidden", metavar="LOW:HIGH[:STEP]",
          help="A layer size: an integer range, both ends included ('32:256:32') or a list "
               "(param 'hidden').")
@argument("--dropout", metavar="LOW:HIGH",
          help="Dropout probability: a uniform range ('0:0.5') or a list (param 'dropout').")
@argument("--param", metavar="NAME=SPEC", action="append", default=[],
          help="Any other parameter: NAME=LOW:HIGH (uniform; integers: randint), "
               "NAME=log:LOW:HIGH, NAME=A,B,C (choice) or NAME=EXPR with tune's "
               "distributions (e.g. 'weight_decay=loguniform(1e-5, 1e-3)'). Repeatable.")
@argument("--space", metavar="NAME",
          help="A variable holding a search space (dict of tune distributions or of their "
               "dicts); the options above add to it or override its entries. Without "
               "--space and range options, a 'space' the cell body assigns is used.")
@argument_group("The study")
@argument("--trials", type=int, default=12, metavar="N", help="Number of trials. Default: 12.")
@argument("--parallelism", type=int, default=2, metavar="N",
          help="Trials running at once (Spark tasks). Default: 2.")
@argument("--algo", choices=("tpe", "random", "grid"), default="tpe",
          help="Search algorithm. Default: tpe.")
@argument("--pruner", choices=("median", "asha", "none"), default="median",
          help="Early stopping of bad trials. Default: median.")
@argument("--seed", type=int, metavar="N", help="Seed of the sampler and of the training.")
@argument("--name", metavar="NAME", help="The study's name. Default: tune-<date-time>.")
@argument("--log-dir", metavar="DIR",
          help="study.json and TensorBoard logs go to DIR/NAME. Default: $WORKBENCH_RUNS_DIR, "
               "else ./runs.")
@argument("--master", metavar="URL",
          help="Spark master (local[2], spark://host:7077, ...): the session is created (or the "
               "active one reused) before the cell's code runs; trials run as Spark tasks.")
@argument("--local", action="store_true",
          help="Run the trials in this process (threads) even if Spark is active.")
@argument("--distributed", action="store_true",
          help="Each trial is a distributed Spark training run; trials one after another.")
@argument("--out", metavar="NAME", default="best_model",
          help="Put the best trial's model in this variable. Default: best_model.")
@argument("--trials-out", metavar="NAME", default="trials",
          help="Put the trials DataFrame (one row per trial) in this variable. Default: trials.")
@argument("--board", metavar="NAME", default="tuning_board",
          help="Put the TuningBoard in this variable. Default: tuning_board.")
def bigdl_tune(line, cell=None):
    """Tune hyperparameters on Spark, with a live leaderboard.

    %%bigdl_tune --data X_train y_train --val X_test y_test --trials 12 --parallelism 2
    --lr 1e-3:0.3 --batch-size 16,32,64 --optim SGD,Adam --hidden 32:256:32 --dropout 0:0.5
    --epochs 4 --pruner median --master local[2]
    def build(params):
        return Sequential()...Linear(64, params["hidden"])...Dropout(params["dropout"])...

    Options go on the magic's line or on lines of the cell starting with "--"; the rest of the
    cell is Python, run first (it defines build(params), or a space). Every trial trains
    build(params) on --data for --epochs with params' optim / learningrate / batch_size and is
    scored on --val after each epoch; the pruner stops trials that fall behind. The board shows
    the leaderboard and the metric per epoch of every trial while the cell runs; its Stop button
    (or interrupting the kernel) ends the study, keeping the finished trials. Afterwards the
    best model is in --out, the trials DataFrame in --trials-out, the study in the Workbench
    sidebar and in TensorBoard (HParams). A mistake gives one line saying what is wrong.
    """


def parse(line, cell=""):
    """Parse the magic's options; returns ``(args, code)``."""
    return options.parse_magic(bigdl_tune, line, cell)


def _fail(option, message):
    raise OptionError(f"bigdl_tune: {option}: {message}")


def _borrow(fn, *args, **kwargs):
    """Call a helper of %%bigdl_train's options, its one-line errors renamed to bigdl_tune."""
    try:
        return fn(*args, **kwargs)
    except UsageError as e:
        text = str(e)
        if text.startswith("bigdl_train:"):
            text = "bigdl_tune:" + text[len("bigdl_train:"):]
        raise OptionError(text) from None


def _number(text, option, kind=float):
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        _fail(option, f"{text.strip()!r} is not a number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(option, f"{text.strip()!r} is not a number")
    if kind is int:
        if not isinstance(value, int):
            _fail(option, f"{text.strip()!r} is not an integer")
        return value
    return float(value)


def _literal(text):
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: a string option (SGD, relu...)


def parse_choices(text, option, kind=None):
    """``"16,32,64"`` -> a choice dict (values as Python literals, bare words as strings)."""
    items = [x for x in (p.strip() for p in text.split(",")) if x]
    if not items:
        _fail(option, f"no values in {text!r}")
    values = [_number(x, option, kind) if kind else _literal(x) for x in items]
    return {"type": "choice", "options": values}


def parse_range(text, option, kind="uniform"):
    """A range spec -> a distribution dict.

    ``kind`` is the range's default: ``"log"`` (``LOW:HIGH`` is log-uniform), ``"uniform"``
    (``LOW:HIGH`` uniform; two integers: randint) or ``"int"`` (``LOW:HIGH[:STEP]`` randint).
    ``log:LOW:HIGH`` forces log-uniform; ``A,B,C`` is a choice; one value is a one-option
    choice.
    """
    text = text.strip()
    if ":" not in text:
        return parse_choices(text, option, int if kind == "int" else float)
    parts = text.split(":")
    if parts[0].strip().lower() == "log":
        kind, parts = "log", parts[1:]
    if kind == "int":
        if len(parts) not in (2, 3):
            _fail(option, f"expected LOW:HIGH or LOW:HIGH:STEP, got {text!r}")
        low, high = (_number(p, option, int) for p in parts[:2])
        step = _number(parts[2], option, int) if len(parts) == 3 else 1
        if step < 1:
            _fail(option, f"the step must be >= 1, got {step}")
        if low > high:
            _fail(option, f"LOW must be <= HIGH, got {low}:{high}")
        if (high - low) % step:
            _fail(option, f"HIGH - LOW ({high - low}) must be a multiple of the step ({step})")
        return {"type": "randint", "low": low, "high": high, "step": step}
    if len(parts) != 2:
        _fail(option, f"expected LOW:HIGH, got {text!r}")
    if kind == "uniform" and all(_is_int(p) for p in parts):
        return parse_range(text, option, "int")
    low, high = (_number(p, option) for p in parts)
    if not low < high:
        _fail(option, f"LOW must be < HIGH, got {low:g}:{high:g}")
    if kind == "log":
        if low <= 0:
            _fail(option, f"a log range needs LOW > 0, got {low:g}")
        return {"type": "loguniform", "low": low, "high": high}
    return {"type": "uniform", "low": low, "high": high}


def _is_int(text):
    try:
        return isinstance(ast.literal_eval(text.strip()), int)
    except (ValueError, SyntaxError):
        return False


def _eval_distribution(text, option):
    from .. import tune
    scope = {k: getattr(tune, k) for k in ("uniform", "loguniform", "randint", "choice",
                                           "conditional")}
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        _fail(option, f"cannot read {text!r}: {e.msg}")
    try:
        value = eval(compile(tree, f"<{option}>", "eval"), {"__builtins__": {}}, scope)
    except Exception as e:  # the distribution's own message says what is wrong
        _fail(option, f"{text}: {e}")
    if not isinstance(value, tune.Distribution):
        _fail(option, f"{text} is a {type(value).__name__}, not a tune distribution")
    return value.to_dict()


def _param_spec(name, spec, option):
    spec = spec.strip()
    if "(" in spec:
        return _eval_distribution(spec, option)
    if ":" in spec:
        return parse_range(spec, option, "uniform")
    return parse_choices(spec, option)


def _space_from_flags(args):
    space = {}
    if args.lr is not None:
        space["learningrate"] = parse_range(args.lr, "--lr", "log")
    if args.batch_size is not None:
        space["batch_size"] = parse_choices(args.batch_size, "--batch-size", int)
        if any(b < 1 for b in space["batch_size"]["options"]):
            _fail("--batch-size", "batch sizes must be >= 1")
    if args.optim is not None:
        space["optim"] = parse_choices(args.optim, "--optim")
        _check_optim_names(space["optim"]["options"])
    if args.momentum is not None:
        space["momentum"] = parse_range(args.momentum, "--momentum", "float")
    if args.hidden is not None:
        space["hidden"] = parse_range(args.hidden, "--hidden", "int")
    if args.dropout is not None:
        space["dropout"] = parse_range(args.dropout, "--dropout", "float")
        d = space["dropout"]
        values = d.get("options") or [d["low"], d["high"]]
        if any(not 0 <= v < 1 for v in values):
            _fail("--dropout", f"dropout must be in [0, 1), got {args.dropout}")
    for item in args.param:
        key, sep, spec = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier() or not spec.strip():
            _fail("--param", f"expected NAME=SPEC, got {item!r}")
        if key in space:
            _fail("--param", f"{key} is given twice")
        space[key] = _param_spec(key, spec, f"--param {key}")
    return space


def _check_optim_names(names):
    from .. import optim
    known = sorted(k for k in dir(optim) if isinstance(getattr(optim, k), type)
                   and issubclass(getattr(optim, k), optim.OptimMethod)
                   and getattr(optim, k) is not optim.OptimMethod)
    for name in names:
        if name not in known:
            import difflib
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            _fail("--optim", f"unknown optim method {name!r}; {hint}choose from "
                             f"{', '.join(known)}")


@dataclass
class TunePlan:
    """Everything ``%%bigdl_tune`` needs, resolved from the options."""
    fn: Any
    space: dict
    data: Any
    metric: str = "Top1Accuracy"
    mode: str | None = None
    epochs: int = 5
    criterion: Any = None
    n_trials: int = 12
    parallelism: int = 2
    algo: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    name: str | None = None
    log_dir: str | None = None
    master: str | None = None
    backend: str = "auto"
    distributed: bool = False
    out: str = "best_model"
    trials_out: str = "trials"
    board: str = "tuning_board"
    extra: dict = field(default_factory=dict)


def resolve(args, user_ns, *, body_space=None):
    """Turn parsed options into a :class:`TunePlan`, checking every name and value.

    ``body_space``: a ``space`` the cell's body assigned (used when no other space is given).
    """
    from .. import tune
    for attr, option in (("trials", "--trials"), ("parallelism", "--parallelism"),
                         ("epochs", "--epochs")):
        _borrow(options._positive, args, attr, option)
    if args.build and args.objective:
        _fail("--build/--objective", "give one of them")
    if args.objective:
        fn = _borrow(options.lookup, user_ns, args.objective, "--objective")
        if not callable(fn):
            _fail("--objective", f"{args.objective} is a {type(fn).__name__}, not a function")
    else:
        name = args.build or "build"
        if args.build is None and "build" not in user_ns:
            _fail("--build", "no function 'build' in the notebook: define build(params) in the "
                             "cell (or name it with --build, or give --objective)")
        fn = _borrow(options.lookup, user_ns, name, "--build")
        if not callable(fn):
            _fail("--build", f"{name} is a {type(fn).__name__}, not a function build(params)")

    space = {}
    if args.space:
        value = _borrow(options.lookup, user_ns, args.space, "--space")
        if not isinstance(value, dict):
            _fail("--space", f"{args.space} is a {type(value).__name__}, not a dict of "
                             "distributions")
        space.update(value)
    flags = _space_from_flags(args)
    space.update(flags)
    if not args.space and not flags and isinstance(body_space, dict):
        space.update(body_space)
    if not space:
        _fail("--lr/--batch-size/--optim/--hidden/--dropout/--param/--space",
              "no search space: give ranges (e.g. --lr 1e-3:0.3 --batch-size 16,32) or --space")
    try:
        space = tune.space_to_dict(tune.space_from_dict(space))
    except ValueError as e:
        _fail("--space", str(e))

    if args.data is None:
        if not args.objective:
            _fail("--data", "give the training data (--data X y)")
        data = None
    else:
        data = {"train": _arrays(args.data, "--data", user_ns)}
        if args.val:
            data["val"] = _arrays(args.val, "--val", user_ns)
    if args.val and args.data is None:
        _fail("--val", "needs --data")
    if args.build is not None or not args.objective:
        if data is not None and "val" not in data:
            _fail("--val", "give validation data (--val X_val y_val): trials are scored on it")

    criterion = None
    if args.criterion:
        criterion = _borrow(options.make, args.criterion, "--criterion", "criterion", user_ns)
    if args.name is not None and not valid_run_name(args.name):
        _fail("--name", f"{args.name!r} is not a valid study name (letters, digits and "
                        "_ . - = + only)")
    names = {}
    for option, value in (("--out", args.out), ("--trials-out", args.trials_out),
                          ("--board", args.board)):
        _borrow(options._variable_name, value, option)
        if value in names:
            _fail(option, f"{names[value]} already puts something into {value!r}")
        names[value] = option
    if args.master is not None and not options.spark_available():
        _fail("--master", "Spark (workbench.spark) is not available in this installation")
    if args.local and (args.master or args.distributed):
        _fail("--local", "cannot go with --master/--distributed")
    backend = "local" if args.local else "spark" if args.distributed else "auto"
    return TunePlan(fn=fn, space=space, data=data, metric=args.metric, mode=args.mode,
                    epochs=args.epochs, criterion=criterion, n_trials=args.trials,
                    parallelism=args.parallelism, algo=args.algo, pruner=args.pruner,
                    seed=args.seed, name=args.name, log_dir=args.log_dir, master=args.master,
                    backend=backend, distributed=args.distributed, out=args.out,
                    trials_out=args.trials_out, board=args.board)


def _arrays(names, option, user_ns):
    value = _borrow(options.data, names, option, user_ns)
    if not isinstance(value, tuple):
        _fail(option, "tuning takes arrays: two variables 'X y' or an (X, y) tuple")
    return value
