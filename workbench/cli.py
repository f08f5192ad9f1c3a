"""The ``workbench`` command line: train, predict and evaluate on your own data with Spark.

    workbench train lenet5 --data train.parquet --features pixels --label digit \\
        --input-shape 1,28,28 --validation-split 0.1 --epochs 5 --output lenet.bigdl
    workbench predict lenet.bigdl --data new.parquet --output scored.parquet
    workbench evaluate lenet.bigdl --data test.parquet --output metrics.parquet

``--data`` is Parquet, CSV (a header row) or a folder of images with one subfolder per class,
read by Spark's own readers (any Hadoop path); the format comes from the path unless
``--format`` says it.  MODEL is a zoo model (``workbench.models``; constructor arguments with
``--classes`` and ``--option NAME=VALUE``) or a model file to fine-tune: ``.bigdl`` (ours),
``.onnx``, a Caffe ``.prototxt`` with ``--weights x.caffemodel``, Torch7 ``.t7``, Keras
``.h5`` / ``.keras``; a zoo model takes PyTorch weights with ``--weights x.safetensors``.
Training is ``workbench.spark.ml.NNClassifier`` (the distributed ``Optimizer``); predict and
evaluate are ``workbench.spark.scoring`` and the distributed evaluation.  Next to the trained
model, ``<model>.data.json`` records the columns, input shape and class names, so predict and
evaluate need only the data.

The master: ``--master URL`` (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://...``), or
the one ``spark-submit`` sets (this file runs as the application: see docs/DEPLOY.md)::

    spark-submit --master yarn "$(python -c 'import workbench.cli as c; print(c.__file__)')" \\
        train resnet20 --data hdfs:///data/cifar --epochs 10 --output resnet20.bigdl

Without ``--data``, ``train lenet5 --dataset digits`` is the demo: LeNet-5 on the bundled
digits, locally or on Spark with ``--master``, with validation every epoch, TensorBoard logs
under ``<log-dir>/<app-name>``, a checkpoint per epoch, then the test accuracy.

Mistakes a person can fix (no such path, a missing or mistyped column, an unknown model, a model
that does not take the features) print one line ``workbench <command>: error: ...`` and exit 2.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a file (spark-submit .../workbench/cli.py): this package's folder is sys.path[0],
    # where workbench/io would shadow the standard library's io.  Import the package instead.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    try:
        import workbench  # noqa: F401 - installed, or on PYTHONPATH
    except ImportError:
        sys.path.insert(0, os.path.dirname(_here))
    __package__ = "workbench"

import argparse  # noqa: E402
import ast  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

EXIT_USAGE = 2   # what argparse exits with for a bad command line; also for bad data / models

# criteria whose labels are class indices (the rest: the label is the target as it is)
CLASS_CRITERIA = ("ClassNLLCriterion", "CrossEntropyCriterion", "MultiMarginCriterion",
                  "SoftmaxWithCriterion", "ClassSimplexCriterion")
# model files by suffix (what reads them is in _load_model_file)
MODEL_SUFFIXES = (".bigdl", ".model", ".onnx", ".prototxt", ".t7", ".h5", ".keras", ".json")


class CliError(Exception):
    """A mistake in the command, the data or the model: one line for the person, exit 2."""


# ---------------------------------------------------------------------- the zoo and model files
def zoo():
    """``{name: builder}`` of the model zoo (``workbench.models``), e.g. ``"LeNet5"``."""
    from . import models
    return {name: obj for name, obj in vars(models).items()
            if name[:1].isupper() and inspect.isfunction(obj)
            and obj.__module__.startswith("workbench.models.")}


def _zoo_builder(name):
    """The zoo builder called ``name`` (any case), or None."""
    return {k.lower(): v for k, v in zoo().items()}.get(name.lower())


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: a string


def _options(pairs):
    out = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise CliError(f"--option takes NAME=VALUE (e.g. --option vocab_size=5000), got "
                           f"{pair!r}")
        out[name] = _literal(value)
    return out


def build_zoo_model(builder, classes, options):
    """``builder(**arguments)``: ``classes`` goes to its class-count parameter, ``options`` by
    name; a missing or unknown argument is a ``CliError`` naming the parameters."""
    params = inspect.signature(builder).parameters
    kwargs = dict(options)
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise CliError(f"{builder.__name__} has no parameter {', '.join(unknown)} (parameters: "
                       f"{', '.join(params)})")
    count = next((p for p in ("class_num", "num_classes") if p in params), None)
    if classes is not None and count is not None:
        kwargs.setdefault(count, classes)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and n not in kwargs]
    if missing:
        raise CliError(f"{builder.__name__} needs {', '.join(missing)}: pass "
                       + " ".join(f"--option {n}=..." for n in missing))
    try:
        return builder(**kwargs)
    except (TypeError, ValueError) as e:
        raise CliError(f"{builder.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
                       f": {e}") from None


def _load_model_file(path, weights=None):
    """A model from a file, by its suffix: ours, ONNX, Caffe, Torch7 or Keras."""
    from . import io
    low = path.lower()
    if not os.path.exists(path):
        raise CliError(f"no such model file: {path}")
    if low.endswith(".onnx"):
        return io.load_onnx(path)
    if low.endswith(".prototxt"):
        if weights is None:
            raise CliError(f"a Caffe definition ({path}) needs its weights: pass --weights "
                           "FILE.caffemodel")
        return io.load_caffe_model(path, weights)
    if low.endswith(".t7"):
        return io.load_torch(path)
    if low.endswith((".h5", ".keras")):
        return io.load_keras(hdf5_path=path)
    if low.endswith(".json"):
        return io.load_keras(json_path=path, hdf5_path=weights)
    return io.load_model(path)


def model_kind(name):
    """``"zoo"`` or ``"file"`` for MODEL; a ``CliError`` for a missing file or an unknown name
    (listing the zoo)."""
    if _zoo_builder(name) is not None:
        return "zoo"
    if os.path.exists(name):
        return "file"
    if name.lower().endswith(MODEL_SUFFIXES):
        raise CliError(f"no such model file: {name}")
    raise CliError(f"unknown model {name!r}: not a model file and not in the zoo "
                   f"({', '.join(sorted(zoo(), key=str.lower))})")


def resolve_model(name, classes=None, options=None, weights=None):
    """``(model, description)`` for MODEL: a zoo name or a model file."""
    if model_kind(name) == "zoo":
        builder = _zoo_builder(name)
        model = build_zoo_model(builder, classes, options or {})
        if weights is not None:
            from .io import load_pytorch_weights
            if not os.path.exists(weights):
                raise CliError(f"no such weights file: {weights}")
            load_pytorch_weights(model, weights)
        return model, builder.__name__
    if options:
        raise CliError(f"--option configures a zoo model; {name} is a model file")
    return _load_model_file(name, weights), os.path.basename(name)


# ---------------------------------------------------------------------- the data card
def card_path(model_path):
    """Where the columns, input shape and classes of a model trained here are recorded."""
    return os.path.splitext(model_path)[0] + ".data.json"


def _read_card(model_path):
    path = card_path(model_path)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------- data and columns
def _session(args, app_name):
    """The SparkSession of ``--master`` (None / ``submit``: spark-submit's, else local[*]);
    ``owned`` when this call started it (then the command stops it)."""
    from pyspark.sql import SparkSession
    from .spark import get_spark
    owned = SparkSession.getActiveSession() is None
    master = None if args.master in (None, "submit") else args.master
    # ERROR: Spark's WARN lines (e.g. task-size hints) would break up the progress bar
    return get_spark(master, app_name=app_name, log_level="ERROR"), owned


def _precheck(args, *paths):
    """What can be checked before Spark starts (seconds, not a JVM): the model's name or file and
    the local data paths."""
    from .spark.files import local_path
    if model_kind(args.model) == "zoo" and args.command != "train":
        raise CliError(f"{args.model} is a zoo model name; {args.command} takes a trained "
                       "model file")
    for option, path in paths:
        if path is None:
            raise CliError(f"{option} is required")
        local = local_path(path)
        if local is not None and not os.path.exists(local):
            raise CliError(f"{option}: no such file or directory: {path}")


def _read(spark, path, fmt, what="--data"):
    from .spark.files import read_data
    if path is None:
        raise CliError(f"{what} is required")
    return read_data(spark, path, fmt)


def _kind(data_type):
    """``number`` / ``array`` / ``vector`` / ``string`` / None (anything else)."""
    from pyspark.sql.types import ArrayType, NumericType, StringType
    from pyspark.ml.linalg import VectorUDT
    if isinstance(data_type, NumericType):
        return "number"
    if isinstance(data_type, ArrayType):
        inner = data_type.elementType
        while isinstance(inner, ArrayType):
            inner = inner.elementType
        return "array" if isinstance(inner, NumericType) else None
    if isinstance(data_type, VectorUDT):
        return "vector"
    if isinstance(data_type, StringType):
        return "string"
    return None


def _column(df, name, option, source):
    fields = {f.name: f.dataType for f in df.schema.fields}
    if name not in fields:
        raise CliError(f"{source} has no column {name!r} ({option}); its columns: "
                       f"{', '.join(df.columns)}")
    return fields[name]


def check_features(df, features, source):
    """The features columns exist and are numbers, arrays of numbers or vectors (one array /
    vector column, or several numeric columns)."""
    kinds = []
    for name in features:
        data_type = _column(df, name, "--features", source)
        kind = _kind(data_type)
        if kind not in ("number", "array", "vector"):
            raise CliError(f"the features column {name!r} of {source} has type "
                           f"{data_type.simpleString()}; features must be numbers, arrays of "
                           "numbers or vectors")
        kinds.append(kind)
    if len(features) > 1 and "number" in kinds and set(kinds) != {"number"}:
        raise CliError("--features: several columns must all be numeric (one vector per row), "
                       "got " + ", ".join(f"{n} ({k})" for n, k in zip(features, kinds)))


def _first_record(df, features, source):
    """One record's features as a numpy array (several numeric columns: one vector)."""
    import numpy as np
    rows = df.select(*features).limit(1).collect()
    if not rows:
        raise CliError(f"{source} holds no rows")
    values = [rows[0][n] for n in features]
    if any(v is None for v in values):
        raise CliError(f"the first row of {source} has a null in {', '.join(features)}")
    values = [v.toArray() if hasattr(v, "toArray") else v for v in values]
    return np.asarray(values if len(values) > 1 else values[0], dtype=np.float32)


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def check_input(model, model_name, record, input_shape, features):
    """Run ``model`` on one record (reshaped to ``input_shape``); its output for that record.
    A model that cannot take it is a ``CliError`` naming the shapes."""
    import numpy as np
    cols = ", ".join(features)
    x = record
    if input_shape is not None:
        if int(np.prod(input_shape)) != record.size:
            raise CliError(f"--input-shape {','.join(map(str, input_shape))} holds "
                           f"{int(np.prod(input_shape))} values but each row of {cols} has "
                           f"{record.size}")
        x = record.reshape(input_shape)
    x = x.astype(model.dtype)[None]
    try:
        model.evaluate()
        out = np.asarray(model.forward(x))
    except Exception as e:  # whatever the layers raise: the shapes do not fit
        hint = "" if input_shape is not None else "; pass --input-shape (e.g. 1,28,28)"
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CliError(f"{model_name} does not take records of shape {_shape_text(x.shape[1:])}"
                       f" from {cols}{hint} ({type(e).__name__}: {detail})") from None
    finally:
        model.training()
    return out.reshape(len(out), -1)[0]


def _parse_shape(text):
    if text is None:
        return None
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise CliError(f"--input-shape takes positive sizes such as 1,28,28, got {text!r}")
    return shape


def _features_of(args, card, df, image_shape):
    features = args.features.split(",") if args.features else card.get("features", ["features"])
    features = [f.strip() for f in features if f.strip()]
    if args.input_shape is not None:
        shape = _parse_shape(args.input_shape)
    elif card.get("input_shape"):
        shape = tuple(card["input_shape"])
    else:
        shape = image_shape
    return features, shape


def index_labels(df, label, source, classes=None):
    """``(df with the label as 0-based class indices in "label_index", class names or None)``.

    Numbers are used as they are (Spark ML's 0-based indices); strings are indexed by their
    sorted distinct values, or by ``classes`` (the names a model was trained with)."""
    from pyspark.sql import functions as F
    data_type = _column(df, label, "--label", source)
    kind = _kind(data_type)
    if kind == "number":
        return df.withColumn("label_index", F.col(label).cast("double")), classes
    if kind != "string":
        raise CliError(f"the label column {label!r} of {source} has type "
                       f"{data_type.simpleString()}; labels must be numbers (0-based classes) or "
                       "strings (class names)")
    if classes is None:
        classes = sorted(r[0] for r in df.select(label).distinct().collect() if r[0] is not None)
    else:
        unknown = [r[0] for r in df.select(label).distinct().collect() if r[0] not in classes]
        if unknown:
            raise CliError(f"the label column {label!r} of {source} holds {unknown[0]!r}, not "
                           f"one of the model's classes ({', '.join(classes)})")
    mapping = F.create_map(*[x for i, c in enumerate(classes) for x in (F.lit(c), F.lit(float(i)))])
    return df.withColumn("label_index", mapping[F.col(label)]), classes


# ---------------------------------------------------------------------- train
def _criterion(name, scores):
    """The criterion called ``name`` (``classnll``, ``CrossEntropyCriterion``, ``mse`` ...); by
    default ClassNLL for a model that outputs log-probabilities, else CrossEntropy."""
    import numpy as np
    from . import nn
    if name is None:
        log_probs = bool(np.all(scores <= 1e-6)) and abs(np.log(np.exp(scores).sum())) < 1e-3
        name = "ClassNLLCriterion" if log_probs else "CrossEntropyCriterion"
    known = {n.lower(): n for n in dir(nn) if n.endswith("Criterion") and n != "Criterion"}
    key = name.lower()
    found = known.get(key) or known.get(key + "criterion")
    if found is None:
        raise CliError(f"unknown criterion {name!r} (criteria: "
                       f"{', '.join(sorted(known.values()))})")
    try:
        return getattr(nn, found)()
    except TypeError as e:
        raise CliError(f"{found} needs arguments the command line cannot give ({e})") from None


def _optim_method(args):
    from . import optim
    from .optim import SGD, OptimMethod
    known = {n.lower(): getattr(optim, n) for n in dir(optim)
             if inspect.isclass(getattr(optim, n)) and issubclass(getattr(optim, n), OptimMethod)
             and getattr(optim, n) is not OptimMethod and not n.startswith("_")}
    cls = known.get(args.optimizer.lower())
    if cls is None:
        raise CliError(f"unknown optimizer {args.optimizer!r} (optimizers: "
                       f"{', '.join(sorted(c.__name__ for c in known.values()))})")
    if cls is SGD:
        return SGD(learningrate=args.learning_rate, momentum=args.momentum,
                   dampening=0.0 if args.momentum else None, weightdecay=args.weight_decay)
    params = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in (("learningrate", args.learning_rate),
                                ("weightdecay", args.weight_decay)) if k in params}
    return cls(**kwargs)


def _train_on_data(args):
    from . import io
    from .optim import EveryEpoch, Loss, MAE, Top1Accuracy
    from .spark.ml import NNClassifier, NNEstimator
    from .summary import TrainSummary, ValidationSummary

    if args.validation_data is not None and args.validation_split is not None:
        raise CliError("pass --validation-data or --validation-split, not both")
    if args.validation_split is not None and not 0 < args.validation_split < 1:
        raise CliError(f"--validation-split must be between 0 and 1, got {args.validation_split}")
    _precheck(args, ("--data", args.data), *([("--validation-data", args.validation_data)]
                                             if args.validation_data else []))
    from .nn import random
    random.set_seed(args.seed)
    app = args.app_name or time.strftime(f"{_stem(args.model)}-%Y%m%d-%H%M%S")
    spark, owned = _session(args, f"workbench-train-{_stem(args.model)}")
    try:
        df, image_shape = _read(spark, args.data, args.format)
        features, input_shape = _features_of(args, {}, df, image_shape)
        check_features(df, features, args.data)
        val_df = None
        if args.validation_data is not None:
            val_df, _ = _read(spark, args.validation_data, args.format, "--validation-data")
            check_features(val_df, features, args.validation_data)
        regression = args.criterion is not None and not _is_class_criterion(args.criterion)
        label = args.label
        classes = None
        if regression:
            _column(df, label, "--label", args.data)
            train_df, label_col = df, label
        else:
            train_df, classes = index_labels(df, label, args.data)
            label_col = "label_index"
        n_classes = args.classes
        if n_classes is None and not regression:
            if classes is not None:
                n_classes = len(classes)
            else:
                top = train_df.agg({label_col: "max"}).collect()[0][0]
                n_classes = int(top) + 1 if top is not None else None
        model, model_name = resolve_model(args.model, n_classes, _options(args.option),
                                          args.weights)
        record = _first_record(df, features, args.data)
        scores = check_input(model, model_name, record, input_shape, features)
        criterion = _criterion(args.criterion, scores)
        if not regression and n_classes is not None and scores.size < n_classes:
            raise CliError(f"{model_name} outputs {scores.size} classes but the label column "
                           f"{label!r} has {n_classes}; pass --classes {n_classes} (zoo models)"
                           " or a model with as many outputs")
        if val_df is not None:
            if regression:
                _column(val_df, label, "--label", args.validation_data)
            else:
                val_df, _ = index_labels(val_df, label, args.validation_data, classes)
        elif args.validation_split is not None:
            train_df, val_df = train_df.randomSplit([1 - args.validation_split,
                                                     args.validation_split], seed=args.seed)
        cls = NNEstimator if regression else NNClassifier
        estimator = cls(model, criterion, list(input_shape) if input_shape else None)
        estimator.setFeaturesCol(features[0] if len(features) == 1 else features) \
            .setLabelCol(label_col).setBatchSize(args.batch_size).setMaxEpoch(args.epochs) \
            .setOptimMethod(_optim_method(args)).setSeed(args.seed)
        estimator.setTrainSummary(TrainSummary(args.log_dir, app))
        estimator.setCheckpoint(os.path.join(args.log_dir, app, "checkpoints"), EveryEpoch())
        methods = [MAE(), Loss(criterion)] if regression else [Top1Accuracy(), Loss(criterion)]
        if val_df is not None:
            estimator.setValidation(EveryEpoch(), val_df, methods, args.batch_size)
            estimator.setValidationSummary(ValidationSummary(args.log_dir, app))
        sc = spark.sparkContext
        print(f"{model_name} on {args.data}: features {', '.join(features)}"
              f"{' reshaped to ' + _shape_text(input_shape) if input_shape else ''}, label "
              f"{label}{f' ({n_classes} classes)' if n_classes else ''}, "
              f"{type(criterion).__name__}; Spark {sc.master}; logs in "
              f"{os.path.join(args.log_dir, app)}")
        start = time.time()
        fitted = estimator.fit(train_df)
        took = time.time() - start
        trained = fitted.getModel()
        output = args.output or os.path.join(args.log_dir, app, f"{_stem(args.model)}.bigdl")
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        io.save_model(trained, output, over_write=True)
        card = {"model": model_name, "features": features, "label": label,
                "input_shape": list(input_shape) if input_shape else None,
                "classes": classes, "task": "regression" if regression else "classification",
                "criterion": type(criterion).__name__, "format": args.format}
        with open(card_path(output), "w") as f:
            json.dump(card, f, indent=1)
        print(f"trained in {took:.1f}s; model saved to {output} (columns and classes in "
              f"{card_path(output)})")
        print(f"see the curves with: tensorboard --logdir {args.log_dir}")
        if val_df is not None:
            from .spark.predict import evaluate
            results = evaluate(trained, val_df, args.batch_size, methods, features_col=features,
                               label_col=label_col, feature_shape=input_shape)
            for r in results:
                print(f"validation {r.name}: {r.value:.4f}")
            if not regression and results[0].value < args.min_accuracy:
                print(f"error: validation accuracy {results[0].value:.4f} is below "
                      f"{args.min_accuracy}", file=sys.stderr)
                return 1
        return 0
    finally:
        if owned:
            spark.stop()


def _is_class_criterion(name):
    key = name.lower()
    return any(key in (c.lower(), c.lower()[:-len("criterion")]) for c in CLASS_CRITERIA)


def _stem(model):
    return os.path.splitext(os.path.basename(model))[0].lower() or "model"


# ---------------------------------------------------------------------- predict / evaluate
class _Scoring:
    """What predict and evaluate share: the model, its data card, the data with the model's
    outputs as ``scores``, the columns."""

    def __init__(self, args, spark, require_label):
        from .spark.scoring import transform
        self.card = _read_card(args.model)
        self.model, name = resolve_model(args.model, weights=args.weights)
        df, image_shape = _read(spark, args.data, args.format or self.card.get("format"))
        self.images = image_shape is not None
        self.features, self.input_shape = _features_of(args, self.card, df, image_shape)
        check_features(df, self.features, args.data)
        self.label = None
        if require_label:
            self.label = args.label or self.card.get("label") or "label"
            _column(df, self.label, "--label", args.data)
        record = _first_record(df, self.features, args.data)
        check_input(self.model, name, record, self.input_shape, self.features)
        self.regression = self.card.get("task") == "regression"
        self.frame = transform(df, self.model, self._features_col(), "scores", output="outputs",
                               batch_size=args.batch_size, feature_shape=self.input_shape)

    def _features_col(self):
        return self.features if len(self.features) > 1 else self.features[0]

    def evaluate(self, frame, label_col, methods, batch_size):
        from .spark.predict import evaluate
        return evaluate(self.model, frame, batch_size, methods,
                        features_col=self._features_col(), label_col=label_col,
                        feature_shape=self.input_shape)


def _argmax(column):
    """0-based index of the largest value of an array column, as a double (Spark ML's class)."""
    from pyspark.sql import functions as F
    # SQL, not F.array_position: pyspark 3.5's takes a literal value only, not a column
    quoted = "`" + column.replace("`", "``") + "`"
    return (F.expr(f"array_position({quoted}, array_max({quoted}))") - 1).cast("double")


def _write(df, path, overwrite):
    from .spark.files import local_path
    local = local_path(path)
    if local is not None and os.path.exists(local) and not overwrite:
        raise CliError(f"{path} exists; pass --overwrite to replace it")
    df.write.mode("overwrite" if overwrite else "errorifexists").parquet(path)


def _predict(args):
    _precheck(args, ("--data", args.data))
    spark, owned = _session(args, "workbench-predict")
    try:
        from pyspark.sql import functions as F
        scoring = _Scoring(args, spark, require_label=False)
        scored = scoring.frame
        if not (scoring.regression or args.scores_only):
            scored = scored.withColumn("prediction", _argmax("scores"))
            classes = scoring.card.get("classes")
            if classes:
                names = F.array(*[F.lit(c) for c in classes])
                scored = scored.withColumn(
                    "predicted_label", F.element_at(names, F.col("prediction").cast("int") + 1))
            if not args.scores:
                scored = scored.drop("scores")
        if scoring.images:
            scored = scored.drop("features")  # the decoded pixels: the files are the data
        _write(scored, args.output, args.overwrite)
        written = spark.read.parquet(args.output)
        print(f"{written.count()} predictions written to {args.output} (columns: "
              f"{', '.join(written.columns)})")
        return 0
    finally:
        if owned:
            spark.stop()


def _evaluate(args):
    import numpy as np
    from .optim import MAE, Loss, Top1Accuracy, Top5Accuracy
    _precheck(args, ("--data", args.data))
    spark, owned = _session(args, "workbench-evaluate")
    try:
        scoring = _Scoring(args, spark, require_label=True)
        rows = []  # (metric, class or None, value, records)
        if scoring.regression:
            criterion = _criterion(args.criterion or scoring.card.get("criterion") or "mse",
                                   None)
            results = scoring.evaluate(scoring.frame.drop("scores"), scoring.label,
                                       [MAE(), Loss(criterion)], args.batch_size)
            rows += [(r.name, None, r.value, r.count) for r in results]
        else:
            frame, classes = index_labels(scoring.frame, scoring.label, args.data,
                                          scoring.card.get("classes"))
            frame = frame.withColumn("prediction", _argmax("scores")).cache()
            first = np.asarray(frame.select("scores").first()[0])
            criterion = _criterion(args.criterion or scoring.card.get("criterion"), first)
            methods = [Top1Accuracy(), Loss(criterion)] + \
                ([Top5Accuracy()] if first.size > 5 else [])
            results = scoring.evaluate(frame.drop("scores", "prediction"), "label_index",
                                       methods, args.batch_size)
            rows += [(r.name, None, r.value, r.count) for r in results]
            counts = frame.groupBy("label_index", "prediction").count().collect()
            rows += _class_metrics(counts, first.size, classes)
            frame.unpersist()
        schema = "metric string, class string, value double, records long"
        metrics = spark.createDataFrame([(m, c, float(v), int(n)) for m, c, v, n in rows],
                                        schema).coalesce(1)
        _write(metrics, args.output, args.overwrite)
        for m, c, v, n in rows:
            if c is None:
                print(f"{m}: {v:.4f} ({n} records)")
        print(f"{len(rows)} metrics written to {args.output} (columns: metric, class, value, "
              "records)")
        return 0
    finally:
        if owned:
            spark.stop()


def _class_metrics(counts, width, classes):
    """Precision, recall and F1 per class and their macro averages, from the confusion counts
    ``[(label, prediction, count)]``."""
    import numpy as np
    k = max([width] + [int(r[0]) + 1 for r in counts if r[0] is not None])
    confusion = np.zeros((k, k), dtype=np.int64)
    for true, pred, n in counts:
        if true is not None and pred is not None:
            confusion[int(true), int(pred)] += n
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = int(support.sum())
    rows = [(f"macro_{name}", None, float(values[present].mean()), total)
            for name, values in (("precision", precision), ("recall", recall), ("f1", f1))]
    for i in np.flatnonzero(present):
        name = classes[i] if classes and i < len(classes) else str(i)
        rows += [(metric, name, float(values[i]), int(support[i]))
                 for metric, values in (("precision", precision), ("recall", recall),
                                        ("f1", f1))]
    return rows


# ---------------------------------------------------------------------- the bundled demo
def _train_bundled(args):
    from . import io, models
    from .data import load_digits
    from .nn import ClassNLLCriterion, random
    from .optim import SGD, EveryEpoch, MaxEpoch, Optimizer, Top1Accuracy, Loss
    from .summary import TrainSummary, ValidationSummary

    random.set_seed(args.seed)
    (X, y), (Xt, yt) = load_digits(size=28)
    model = models.LeNet5(10)
    app = args.app_name or time.strftime("lenet5-%Y%m%d-%H%M%S")
    print(f"LeNet-5 on the handwritten digits: {len(X)} training and {len(Xt)} test images "
          f"(28x28); logs in {os.path.join(args.log_dir, app)}")
    train_set, test_set, options = (X, y), (Xt, yt), {}
    if args.master:
        train_set, test_set, options = _spark_data(args, X, y, Xt, yt)
    optimizer = Optimizer(model, train_set, ClassNLLCriterion(), MaxEpoch(args.epochs),
                          args.batch_size,
                          SGD(learningrate=args.learning_rate, momentum=0.9, dampening=0.0,
                              weightdecay=5e-4),
                          seed=args.seed, **options)
    optimizer.set_validation(256, test_set, EveryEpoch(), [Top1Accuracy(), Loss()])
    optimizer.set_train_summary(TrainSummary(args.log_dir, app))
    optimizer.set_val_summary(ValidationSummary(args.log_dir, app))
    optimizer.set_checkpoint(EveryEpoch(), os.path.join(args.log_dir, app, "checkpoints"))
    start = time.time()
    trained = optimizer.optimize()
    took = time.time() - start
    accuracy = trained.evaluate(test_set, 256, [Top1Accuracy()])[0].value
    path = os.path.join(args.log_dir, app, "lenet5.bigdl")
    io.save_model(trained, path, over_write=True)
    print(f"trained in {took:.1f}s; model saved to {path}")
    print(f"see the curves with: tensorboard --logdir {args.log_dir}")
    print(f"final test accuracy: {accuracy:.4f}")
    if accuracy < args.min_accuracy:
        print(f"error: test accuracy {accuracy:.4f} is below {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


def _spark_data(args, X, y, Xt, yt):
    """The digits as Spark DataFrames (``features`` array<float>, ``label``) on the session of
    ``--master``."""
    from .spark import get_spark, task_slots
    # ERROR: Spark's WARN lines (e.g. task-size hints) would break up the progress bar.
    spark = get_spark(None if args.master == "submit" else args.master,
                      app_name="workbench-lenet5", log_level="ERROR")
    sc = spark.sparkContext
    parts = max(2, sc.defaultParallelism)

    def frame(features, labels):
        rows = [(x.ravel().tolist(), int(t)) for x, t in zip(features, labels)]
        return spark.createDataFrame(sc.parallelize(rows, parts),
                                     "features array<float>, label long").cache()

    train, test = frame(X, y), frame(Xt, yt)
    print(f"training on Spark {sc.master} ({task_slots(sc)} task slots, {parts} partitions)")
    return train, test, {}


# ---------------------------------------------------------------------- the command line
def _common(p, model_help):
    p.add_argument("model", help=model_help)
    p.add_argument("--data", default=None,
                   help="Parquet, CSV (with a header row) or a folder of images with one "
                        "subfolder per class; any Hadoop path")
    p.add_argument("--format", choices=["parquet", "csv", "image"], default=None,
                   help="the format of --data (default: from the path)")
    p.add_argument("--features", default=None,
                   help="features column(s): one array/vector column or several numeric "
                        "columns, comma-separated (default: 'features', or as trained)")
    p.add_argument("--input-shape", default=None,
                   help="reshape each record's features to this shape, e.g. 1,28,28 (images: "
                        "their C,H,W)")
    p.add_argument("--weights", default=None,
                   help="weights for MODEL: a .caffemodel for a .prototxt, an .h5 for a Keras "
                        ".json, PyTorch .safetensors / .pt for a zoo model")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--master", default=None,
                   help="a Spark master URL (local[*], spark://host:7077, yarn, k8s://...); "
                        "default or 'submit': the one spark-submit sets, else local[*]")


def _parser():
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a zoo model or fine-tune a model file")
    _common(train, "a zoo model (lenet5, resnet20, vgg16 ...) or a model file to fine-tune "
                   "(.bigdl, .onnx, .prototxt, .t7, .h5, .keras)")
    train.add_argument("--label", default="label", help="the label column (default: label)")
    train.add_argument("--classes", type=int, default=None,
                       help="classes of a zoo model (default: from the labels)")
    train.add_argument("--option", action="append", metavar="NAME=VALUE",
                       help="a zoo model's constructor argument (repeatable)")
    train.add_argument("--validation-data", default=None, help="validate on these files")
    train.add_argument("--validation-split", type=float, default=None,
                       help="validate on this fraction of --data (e.g. 0.1)")
    train.add_argument("--criterion", default=None,
                       help="loss by name (classnll, crossentropy, mse ...; default: classnll "
                            "for a model ending in LogSoftMax, else crossentropy)")
    train.add_argument("--optimizer", default="sgd",
                       help="optim method by name (sgd, adam, adamw, adagrad, rmsprop ...)")
    train.add_argument("--learning-rate", type=float, default=0.05)
    train.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--output", default=None,
                       help="the trained model file (default: <log-dir>/<app-name>/<model>.bigdl)")
    train.add_argument("--dataset", choices=["digits"], default=None,
                       help="without --data: the bundled data set of the demo")
    train.add_argument("--log-dir", default="runs", help="TensorBoard logs and checkpoints")
    train.add_argument("--app-name", default=None)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--min-accuracy", type=float, default=0.0,
                       help="exit with status 1 if the test (validation) accuracy ends below this")
    for name, helptext in (("predict", "score files with a trained model, written as Parquet"),
                           ("evaluate", "metrics of a trained model on labelled files, written "
                                        "as Parquet")):
        p = sub.add_parser(name, help=helptext)
        _common(p, "the trained model file (.bigdl, or any importable model file)")
        p.add_argument("--output", required=True, help="the Parquet output")
        p.add_argument("--overwrite", action="store_true", help="replace --output")
        if name == "predict":
            p.add_argument("--scores", action="store_true",
                           help="keep the model's outputs as an array column 'scores' too")
            p.add_argument("--scores-only", action="store_true",
                           help="no class: only 'scores' (a regression model or an embedding)")
        else:
            p.add_argument("--label", default=None, help="the label column (default: as trained)")
            p.add_argument("--criterion", default=None, help="the loss reported (default: as "
                                                             "trained)")
    return parser


def _error_types():
    """The exceptions that mean 'fix your input': one line and exit 2."""
    from .io import ModelFileError, OnnxError
    from .spark.data import SparkDataError
    return (CliError, SparkDataError, ModelFileError, OnnxError, FileNotFoundError)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "train" and args.data is None:
        if args.model != "lenet5":
            print(f"workbench train: error: without --data, only lenet5 trains on the bundled "
                  f"digits (got {args.model!r}); pass --data PATH", file=sys.stderr)
            return EXIT_USAGE
        return _train_bundled(args)
    if args.command == "train" and args.dataset is not None:
        print("workbench train: error: pass --data or --dataset, not both", file=sys.stderr)
        return EXIT_USAGE
    command = {"train": _train_on_data, "predict": _predict, "evaluate": _evaluate}[args.command]
    try:
        return command(args)
    except _error_types() as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
