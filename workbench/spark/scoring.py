"""A model as a column of a DataFrame: batch and streaming scoring, column and SQL functions.

    from workbench.spark.scoring import transform, column, register
    scored = transform(df, model, "features")                    # df + "prediction" (array<float>)
    classify = register(spark, "classify", model)                # SQL + column function
    spark.sql("SELECT classify(features) AS cls FROM digits")
    df.withColumn("cls", classify("features")).filter("cls = 3")

Rows reach the model in Arrow batches (an iterator ``arrow_udf`` on pyspark >= 4.1, an iterator
``pandas_udf`` before): whole columns become numpy arrays without a Python object per row.
The model is pickled once on the driver and broadcast; each Python worker unpickles it once per
model (a cache keyed by the hash of the pickled bytes, kept while Spark reuses the worker) and
runs it batch by batch in inference mode.  Nothing here runs a Spark action, so the same calls
work on streaming DataFrames.

Features: one column of arrays (nested arrays too), ml or mllib vectors, or numbers; or several
columns: all numeric (stacked into one vector per row, as ``VectorAssembler`` does) or all
arrays/vectors (one tensor each, fed to a multi-input model as a list).

Broadcasts: a DataFrame scored now may be computed much later, so its broadcast must outlive the
call.  Shipping the same model again reuses its broadcast (same bytes, same hash); at most
``KEEP_BROADCASTS`` are kept cached on executors, older ones are unpersisted (executors fetch
them again if a frame that uses them runs later; nothing breaks).  :func:`release` destroys them
all, after which frames scored before must not be computed again.
"""
from __future__ import annotations

import hashlib
import pickle
import threading
import warnings
from collections import OrderedDict

import numpy as np

from ..nn.module import Module, auto_batch_size
from .data import SparkDataError
from .engine import explicit_task_threads, use_task_threads

__all__ = ["transform", "column", "register", "release", "OUTPUTS", "KEEP_BROADCASTS"]

OUTPUTS = ("outputs", "class")
KEEP_BROADCASTS = 8   # models kept broadcast per SparkContext (older: unpersisted)
_KEEP_MODELS = 4      # models kept unpickled per Python worker

# ---------------------------------------------------------------------- executor side
_models: OrderedDict = OrderedDict()   # token -> Module in inference mode (this worker)


def _worker_model(token, payload):
    """The model shipped as ``token``, unpickled once per Python worker process."""
    model = _models.get(token)
    if model is None:
        model = pickle.loads(payload.value)
        model.evaluate()
        _models[token] = model
        while len(_models) > _KEEP_MODELS:
            _models.popitem(last=False)
    else:
        _models.move_to_end(token)
    return model


def _first_null(arr):
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    return int(np.flatnonzero(mask)[0])


_VECTOR_FIELDS = ("type", "size", "indices", "values")


def _rows(arr, name, dtype):
    """One argument of a batch (a pyarrow Array) as a numpy array ``(n, ...)`` of ``dtype``."""
    import pyarrow as pa
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if arr.null_count:
        raise ValueError(f"{name} is null in row {_first_null(arr)} of a batch of {len(arr)} "
                         "rows; drop or fill the null rows before scoring")
    if pa.types.is_struct(t) and tuple(f.name for f in t) == _VECTOR_FIELDS:
        return _vectors(arr, name, dtype)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lengths = arr.value_lengths().to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            i = int(np.flatnonzero(lengths != lengths[0])[0])
            raise ValueError(f"{name} has {lengths[i]} values in row {i} of a batch but "
                             f"{lengths[0]} in row 0; every row needs the same number")
        inner = arr.flatten()
        if inner.null_count:
            raise ValueError(f"{name} holds a null element (an array with a null in it)")
        values = _rows(inner, name, dtype)
        return values.reshape((len(arr), int(lengths[0]) if len(arr) else 0) + values.shape[1:])
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)
    raise ValueError(f"{name} has type {t}; expected numbers, arrays of numbers or vectors")


def _vectors(arr, name, dtype):
    """A batch of ml/mllib vectors (Spark's struct of type, size, indices, values)."""
    kind, size, indices, values = arr.flatten()
    kind = kind.to_numpy(zero_copy_only=False)
    if (kind == 1).all():  # all dense: the values lists are the rows
        return _rows(values, name, dtype)
    n = len(arr)
    widths = np.where(kind == 1, values.value_lengths().fill_null(0).to_numpy(
        zero_copy_only=False), size.fill_null(0).to_numpy(zero_copy_only=False))
    if (widths != widths[0]).any():
        i = int(np.flatnonzero(widths != widths[0])[0])
        raise ValueError(f"{name} has a vector of size {widths[i]} in row {i} of a batch but "
                         f"{widths[0]} in row 0; every row needs the same size")
    out = np.zeros((n, int(widths[0])), dtype=dtype)
    for i in range(n):  # sparse rows are rare in scoring: a plain loop
        v = values[i].values.to_numpy(zero_copy_only=False)
        if kind[i] == 1:
            out[i] = v
        else:
            out[i, indices[i].values.to_numpy(zero_copy_only=False)] = v
    return out


def _inputs(args, names, dtype, shapes):
    """The model's input for one batch: an array, or a list of arrays for several inputs."""
    xs = [_rows(a, n, dtype) for a, n in zip(args, names)]
    scalar = [x.ndim == 1 for x in xs]
    if all(scalar):      # numbers: one vector per row (also a single numeric column)
        xs = [np.stack(xs, axis=1)]
    elif any(scalar):
        raise ValueError("several feature columns must be all numbers (stacked into one "
                         "vector) or all arrays/vectors (one model input each), got "
                         + ", ".join(f"{n}: {'number' if s else 'array'}"
                                     for n, s in zip(names, scalar)))
    if shapes is not None:
        if len(shapes) != len(xs):
            raise ValueError(f"feature_shape gives {len(shapes)} shape(s) for {len(xs)} model "
                             f"input(s) ({', '.join(names)})")
        for k, (x, shape) in enumerate(zip(xs, shapes)):
            row = int(np.prod(x.shape[1:]))
            if row != int(np.prod(shape)):
                what = names[k] if len(xs) == len(names) else ", ".join(names)
                raise ValueError(f"{what}: each row has {row} values, which do not fit "
                                 f"feature_shape {tuple(shape)}")
            xs[k] = x.reshape((len(x),) + tuple(shape))
    return xs[0] if len(xs) == 1 else xs


def _score(spec, args):
    """Score one Arrow batch (a tuple of argument arrays): numpy outputs, one row per row."""
    token, payload, output, batch_size, shapes, dtype, names, out_dtype = spec
    x = _inputs(args, names, np.dtype(dtype), shapes)
    first = x[0] if isinstance(x, list) else x
    n = len(first)
    model = _worker_model(token, payload)
    rows = auto_batch_size(batch_size, int(np.prod(first.shape[1:])))
    outs = []
    for i in range(0, n, rows):
        xb = [t[i:i + rows] for t in x] if isinstance(x, list) else x[i:i + rows]
        try:
            y = model.forward(xb)
        except Exception as e:
            got = [t.shape for t in xb] if isinstance(xb, list) else xb.shape
            raise ValueError(f"scoring {', '.join(names)}: the model rejected a batch of shape "
                             f"{got}: {type(e).__name__}: {e}") from e
        if isinstance(y, (list, tuple)):
            raise ValueError(f"scoring {', '.join(names)}: the model has {len(y)} outputs; "
                             "score one output (a model ending in one layer)")
        y = np.asarray(y).reshape(len(first[i:i + rows]), -1)
        if output == "class":
            outs.append(np.argmax(y, axis=1).astype(np.float64))
        else:
            outs.append(np.array(y, dtype=out_dtype, copy=True))
    if not outs:
        return np.empty((0,) if output == "class" else (0, 0), dtype=out_dtype)
    return np.concatenate(outs)


def _to_arrow(y, output):
    import pyarrow as pa
    if output == "class":
        return pa.array(y, pa.float64())
    n, width = y.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * np.int32(width))
    return pa.ListArray.from_arrays(offsets, pa.array(y.reshape(-1)))


def _arrow_args(item):
    return item if isinstance(item, tuple) else (item,)


def _pandas_args(item):
    """pandas arguments (pyspark < 4.1) as pyarrow arrays: a struct (vector) column arrives as a
    pandas DataFrame."""
    import pandas as pd
    import pyarrow as pa
    item = item if isinstance(item, tuple) else (item,)
    out = []
    for a in item:
        if isinstance(a, pd.DataFrame):
            out.append(pa.StructArray.from_arrays(
                [pa.Array.from_pandas(a[c]) for c in a.columns], list(a.columns)))
        else:
            out.append(pa.Array.from_pandas(a))
    return tuple(out)


# ---------------------------------------------------------------------- driver side
_lock = threading.Lock()
_shipped: OrderedDict = OrderedDict()   # (application id, token) -> Broadcast


def _context():
    from pyspark import SparkContext
    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("scoring needs an active SparkContext (workbench.spark.get_spark())")
    return sc


def _ship(model):
    """``(token, broadcast)`` of ``model`` pickled now (later changes to it are not seen)."""
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    token = hashlib.sha256(payload).hexdigest()[:32]
    sc = _context()
    key = (sc.applicationId, token)
    with _lock:
        for k in [k for k in _shipped if k[0] != sc.applicationId]:
            del _shipped[k]  # a stopped context's broadcasts are gone with it
        bc = _shipped.get(key)
        if bc is None:
            bc = _shipped[key] = sc.broadcast(payload)
        _shipped.move_to_end(key)
        while len(_shipped) > KEEP_BROADCASTS:
            _, old = _shipped.popitem(last=False)
            old.unpersist(blocking=False)  # executors re-fetch it if an old frame runs again
    return token, bc


def release():
    """Destroy every broadcast model this module shipped.  DataFrames scored before must not be
    computed afterwards."""
    with _lock:
        while _shipped:
            _, bc = _shipped.popitem()
            try:
                bc.destroy()
            except Exception:  # a stopped context: nothing left to free
                pass


def _check_model(model, output, what):
    if not isinstance(model, Module):
        raise TypeError(f"{what}: model must be a workbench Module, got {type(model).__name__}")
    if output not in OUTPUTS:
        raise ValueError(f"{what}: output must be one of {OUTPUTS}, got {output!r}")


def _shapes(feature_shape, what):
    if feature_shape is None:
        return None
    shape = list(feature_shape)
    if shape and all(isinstance(s, (tuple, list)) for s in shape):
        return [tuple(int(d) for d in s) for s in shape]
    if not shape or any(isinstance(s, (tuple, list)) for s in shape):
        raise ValueError(f"{what}: feature_shape must be a shape like (1, 28, 28) or a list of "
                         f"shapes (one per input), got {feature_shape!r}")
    return [tuple(int(d) for d in shape)]


def _return_type(model, output):
    from pyspark.sql.types import ArrayType, DoubleType, FloatType
    if output == "class":
        return DoubleType(), np.float64
    if np.dtype(model.dtype) == np.float32:
        return ArrayType(FloatType()), np.float32
    return ArrayType(DoubleType()), np.float64


def _has_arrow_udf():
    try:
        from pyspark.sql.pandas.functions import arrow_udf  # noqa: F401  (pyspark >= 4.1)
        return True
    except ImportError:
        return False


def _make_udf(shipped, model, output, batch_size, shapes, names, engine=None):
    """The Arrow-batch UDF scoring ``names`` (used in messages) with the shipped model."""
    token, payload = shipped
    rtype, out_dtype = _return_type(model, output)
    spec = (token, payload, output, batch_size, shapes, np.dtype(model.dtype).str,
            tuple(names), out_dtype)
    engine = engine or ("arrow" if _has_arrow_udf() else "pandas")
    threads = explicit_task_threads(_context())
    if engine == "arrow":
        from pyspark.sql.pandas.functions import arrow_udf
        from pyspark.util import PythonEvalType

        def score(batches):
            use_task_threads(threads)  # once per task: its spark.task.cpus (or the user's)
            for item in batches:
                yield _to_arrow(_score(spec, _arrow_args(item)), output)
        with warnings.catch_warnings():  # "prefer type hints": ours takes any number of columns
            warnings.simplefilter("ignore", UserWarning)
            return arrow_udf(score, rtype, PythonEvalType.SQL_SCALAR_ARROW_ITER_UDF)

    import pandas as pd
    from pyspark.sql.functions import PandasUDFType, pandas_udf

    def score_pandas(batches):
        use_task_threads(threads)
        for item in batches:
            y = _score(spec, _pandas_args(item))
            yield pd.Series(y if output == "class" else list(y))
    return pandas_udf(score_pandas, rtype, PandasUDFType.SCALAR_ITER)


def _column_name(c):
    return repr(c) if isinstance(c, str) else str(c)


def column(model, output="outputs", batch_size=None, feature_shape=None):
    """A column function scoring ``model``: ``f(*cols) -> Column``.

    Args:
        model: a workbench ``Module`` (pickled and broadcast now; later changes are not seen).
        output: ``"outputs"`` (the model's output per row, flattened, as ``array<float>`` for a
            float32 model, ``array<double>`` for float64) or ``"class"`` (the 0-based argmax as
            a double, Spark ML's convention for a prediction).
        batch_size: rows per forward pass; None or non-positive: chosen from the row size.
        feature_shape: reshape each row (e.g. ``(1, 28, 28)``); a list of shapes for a model
            with several inputs.

    Input shape: each column holds arrays, vectors or numbers (see the module docstring).
    Output shape: one value (class) or one flat array (outputs) per row.

    ``f("features")``, ``f(df.features)``, ``f("x1", "x2")`` (a 2-input model, or two numeric
    columns stacked); works in ``select``, ``withColumn``, ``filter`` and on streams.
    """
    _check_model(model, output, "column")
    shapes = _shapes(feature_shape, "column")
    auto_batch_size(batch_size, owner="column")  # checks the type now, on the driver
    shipped = _ship(model)

    def score(*cols):
        if not cols:
            raise TypeError("the scoring column function needs at least one column")
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        names = [f"column {_column_name(c)}" for c in cols]
        return _make_udf(shipped, model, output, batch_size, shapes, names)(*cols)
    score.__name__ = f"score_{type(model).__name__}"
    return score


def register(spark, name, model, output="class", batch_size=None, feature_shape=None):
    """Register ``model`` as the SQL function ``name`` (``SELECT classify(features) FROM t``)
    and return the column function (:func:`column`) too.  ``output`` defaults to ``"class"``;
    the other arguments are those of :func:`column`."""
    _check_model(model, output, "register")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register: name must be an identifier, got {name!r}")
    shapes = _shapes(feature_shape, "register")
    auto_batch_size(batch_size, owner="register")
    shipped = _ship(model)
    udf = _make_udf(shipped, model, output, batch_size, shapes,
                    [f"the argument of SQL function {name}()"])
    spark.udf.register(name, udf)
    return column(model, output, batch_size, feature_shape)


# ---------------------------------------------------------------------- transform
def _check_frame(df, features, prediction_col, what):
    """Driver-side checks of the schema (no Spark job): clear errors before anything runs."""
    from pyspark.sql.types import ArrayType, NumericType
    vector_types = ()
    try:
        from pyspark.ml.linalg import VectorUDT
        from pyspark.mllib.linalg import VectorUDT as OldVectorUDT
        vector_types = (VectorUDT, OldVectorUDT)
    except ImportError:  # pragma: no cover - pyspark.ml is part of pyspark
        pass
    fields = {f.name: f.dataType for f in df.schema.fields}

    def numeric_array(t):
        while isinstance(t, ArrayType):
            t = t.elementType
        return isinstance(t, NumericType)

    kinds = []
    for c in features:
        if not isinstance(c, str):
            raise TypeError(f"{what}: features_col must be column names, got {c!r}")
        if c not in fields:
            raise SparkDataError(f"{what}: no features column {c!r} (columns: "
                                 f"{list(fields)}); pass features_col=...")
        t = fields[c]
        if isinstance(t, NumericType):
            kinds.append("number")
        elif isinstance(t, ArrayType) and numeric_array(t):
            kinds.append("array")
        elif vector_types and isinstance(t, vector_types):
            kinds.append("vector")
        else:
            raise SparkDataError(f"{what}: the features column {c!r} has type "
                                 f"{t.simpleString()}; expected numbers, an array of numbers or "
                                 f"a vector (columns: {list(fields)})")
    if len(features) > 1 and "number" in kinds and len(set(kinds)) > 1:
        raise SparkDataError(f"{what}: several features columns must be all numeric (stacked "
                             "into one vector) or all arrays/vectors (one model input each), "
                             "got " + ", ".join(f"{c}: {fields[c].simpleString()}"
                                                for c in features))
    if prediction_col in fields:
        raise SparkDataError(f"{what}: the output column {prediction_col!r} already exists "
                             f"(columns: {list(fields)}); pass prediction_col=...")
    return kinds


def transform(df, model, features_col="features", prediction_col="prediction", *,
              output="outputs", batch_size=None, feature_shape=None):
    """``df`` plus the column ``prediction_col`` scored by ``model``; batch or streaming.

    Args:
        df: a DataFrame (batch or streaming).
        model: a workbench ``Module`` (snapshotted now).
        features_col: one column of arrays / ml vectors / mllib vectors / numbers, or a list of
            columns: all numeric (stacked into one vector per row) or all arrays/vectors (one
            tensor each, for a multi-input model such as a ``Graph`` with several ``Input``).
        prediction_col: name of the new column (must not exist yet).
        output: ``"outputs"`` (``array<float>`` per row) or ``"class"`` (0-based argmax as
            a double).
        batch_size: rows per forward pass; None or non-positive: chosen for you.
        feature_shape: reshape each row (e.g. ``(1, 28, 28)``); a list with one shape per input.

    The schema is checked here (missing or mistyped columns raise ``SparkDataError`` naming the
    column and listing the columns); rows are checked on the executors (a null row, a wrong
    size: a ``ValueError`` naming the column, inside Spark's exception).  No Spark action runs.
    """
    what = "transform"
    _check_model(model, output, what)
    features = [features_col] if isinstance(features_col, str) else list(features_col)
    if not features:
        raise SparkDataError(f"{what}: features_col names no column")
    if not isinstance(prediction_col, str) or not prediction_col:
        raise ValueError(f"{what}: prediction_col must be a column name, got {prediction_col!r}")
    auto_batch_size(batch_size, owner=what)
    _check_frame(df, features, prediction_col, what)
    score = column(model, output, batch_size, feature_shape)
    return df.withColumn(prediction_col, score(*features))
