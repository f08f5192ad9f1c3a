"""Spark data → cached numpy blocks.

The trainer, ``predict`` and ``evaluate`` work on a ``DataSet``: the RDD / DataFrame turned into
numpy blocks once (``(partition, first_row, X, y)`` with at most ``BLOCK_ROWS`` rows each; ``X``
and ``y`` are arrays, or tables of arrays (``workbench.nn.batch``) for several tensors),
cached in the executors, plus per-partition counts collected by one small job.  Every record
gets a global index: ``offset[partition] + row``, the order of the records in the RDD, so that
a distributed run can pick exactly the records the local loop would pick.

Bad input is found here, before any barrier stage starts: rows whose feature shapes differ,
labels that are not numbers, columns of the wrong type, an empty data set.  Errors are
``SparkDataError`` (a ``ValueError``) with the partition and row where it happened.
"""
from __future__ import annotations

import numpy as np

from ..nn import batch

__all__ = ["SparkDataError", "DataSet", "is_spark_data", "BLOCK_ROWS"]

BLOCK_ROWS = 4096


class SparkDataError(ValueError):
    """The RDD / DataFrame cannot be used as given (the message says where and why)."""


def _rdd_class():
    from pyspark import RDD
    return RDD


def _df_class():
    from pyspark.sql import DataFrame
    return DataFrame


def is_spark_data(data):
    """True for a pyspark RDD or DataFrame (classic or Connect)."""
    try:
        if isinstance(data, (_rdd_class(), _df_class())):
            return True
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return False
    try:
        from pyspark.sql.connect.dataframe import DataFrame as ConnectDF
        return isinstance(data, ConnectDF)
    except Exception:
        return False


def _is_df(data):
    return not isinstance(data, _rdd_class())


# ---------------------------------------------------------------------- executor side
def _array(value, dtype):
    if hasattr(value, "toArray"):  # pyspark.ml / mllib vectors
        value = value.toArray()
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"not numbers ({arr.dtype})")
    return arr.astype(dtype, copy=False) if dtype is not None else arr


class Tensors(list):
    """A record's several tensors (a table: one per model input or output), as the record
    readers yield them; a plain list is one tensor's values."""


def _shape_text(shape):
    return str(tuple(shape)) if not isinstance(shape, list) else \
        "[" + ", ".join(str(tuple(s)) for s in shape) + "]"


def _tensor(value, dtype, shape, role, row, part, what):
    """One tensor of a record as an array (reshaped to ``shape`` when given)."""
    try:
        x = _array(value, dtype)
    except (TypeError, ValueError) as e:
        if role.startswith("label"):
            raise SparkDataError(f"{what}: the {role} of row {row} of partition {part} is {e}; "
                                 "labels must be numbers or arrays of numbers") from None
        raise SparkDataError(f"{what}: the {role} of row {row} of partition {part} are "
                             f"{e}") from None
    if shape is not None:
        if x.size != int(np.prod(shape)):
            raise SparkDataError(
                f"{what}: row {row} of partition {part} has {x.size} values in its {role}, "
                f"which do not fit feature_shape {tuple(shape)}")
        x = x.reshape(shape)
    return x


def _record(value, dtype, shape, role, row, part, what):
    """A record's features (or label): an array, or a list of arrays for ``Tensors``."""
    if not isinstance(value, Tensors):
        if isinstance(shape, list):
            raise SparkDataError(f"{what}: row {row} of partition {part} has one {role} tensor "
                                 f"but feature_shape gives {len(shape)} shapes")
        return _tensor(value, dtype, shape, role, row, part, what)
    shapes = shape if isinstance(shape, list) else [None] * len(value)
    if len(shapes) != len(value):
        raise SparkDataError(f"{what}: row {row} of partition {part} has {len(value)} {role} "
                             f"tensors but feature_shape gives {len(shapes)} shapes")
    return [_tensor(v, dtype, s, f"{role} (tensor {k})", row, part, what)
            for k, (v, s) in enumerate(zip(value, shapes))]


def _same_shape(x, before, role, row, part, what):
    """The shape of a record's tensor(s), checked against the rows before it."""
    shape = [t.shape for t in x] if isinstance(x, list) else x.shape
    if before is None or shape == before:
        return shape
    if isinstance(shape, list) != isinstance(before, list) or \
            (isinstance(shape, list) and len(shape) != len(before)):
        count = len(shape) if isinstance(shape, list) else 1
        was = len(before) if isinstance(before, list) else 1
        raise SparkDataError(f"{what}: row {row} of partition {part} has {count} {role} "
                             f"tensor(s) but the rows before it have {was}; every record needs "
                             "the same number")
    raise SparkDataError(f"{what}: row {row} of partition {part} has {role} of shape "
                         f"{_shape_text(shape)} but the rows before it have "
                         f"{_shape_text(before)}; every record needs the same shape")


def _blocks_of(part, records, dtype, feature_shape, what):
    """Yield ``(part, start, X, y)`` blocks, or one ``(part, -1, message, None)`` on bad input.

    ``records`` yields ``(features, label)``; ``label`` is ``None`` for unlabeled data.  A
    record's features (label) given as ``Tensors`` make ``X`` (``y``) a table: a list of
    arrays, one per tensor."""
    feats, labels, start, row = [], [], 0, -1
    fshape = lshape = None
    try:
        for f, lab in records:
            row += 1
            x = _record(f, dtype, feature_shape, "features", row, part, what)
            fshape = _same_shape(x, fshape, "features", row, part, what)
            if lab is not None:
                y = _record(lab, None, None, "label", row, part, what)
                lshape = _same_shape(y, lshape, "a label", row, part, what)
                labels.append(y)
            feats.append(x)
            if len(feats) == BLOCK_ROWS:
                yield part, start, batch.stack_records(feats), \
                    batch.stack_records(labels) if labels else None
                start += len(feats)
                feats, labels = [], []
        if feats:
            yield part, start, batch.stack_records(feats), \
                batch.stack_records(labels) if labels else None
    except SparkDataError as e:
        msg = str(e)
        if not msg.startswith(what):
            msg = f"{what}: row {row + 1} of partition {part}: {msg}"
        yield part, -1, msg, None
    except Exception as e:  # anything else the rows throw at us: report it, don't retry
        yield part, -1, f"{what}: partition {part} failed at row {row}: " \
                        f"{type(e).__name__}: {e}", None


def _meta(part, blocks):
    count, fshape, lshape, ldtype, fdtype = 0, None, None, None, None
    for _, start, X, y in blocks:
        if start < 0:
            return [(part, -1, X, None, None, None, None)]
        count += batch.num_rows(X)
        fshape, fdtype = batch.record_shape(X), batch.apply(X, lambda a: str(a.dtype))
        if y is not None:
            lshape, ldtype = batch.record_shape(y), batch.apply(y, lambda a: str(a.dtype))
    return [(part, count, None, fshape, fdtype, lshape, ldtype)]


def _tensors(value):
    """A Sample's features or labels: one tensor as it is, several as ``Tensors``."""
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "shape"):
        return value[0] if len(value) == 1 else Tensors(value)
    return value


def _sample_records(it, labeled):
    for s in it:
        if hasattr(s, "features"):
            f, lab = s.features, s.labels
        elif isinstance(s, (tuple, list)) and len(s) == 2 and labeled:
            f, lab = s
        elif not labeled:
            f, lab = s, None
        else:
            raise SparkDataError(f"expected Sample records, got {type(s).__name__}")
        yield _tensors(f), (_tensors(lab) if labeled else None)


def _row_records(it, features, tensors, labeled):
    """``(features, label)`` of DataFrame rows: one column's value; several numeric columns'
    values (one vector); or with ``tensors`` one tensor per column (``Tensors``)."""
    n = len(features)
    for row in it:
        values = [row[i] for i in range(n)]
        for c, v in zip(features, values):
            if v is None:
                raise SparkDataError(f"the features column {c!r} is null")
        f = values[0] if n == 1 else Tensors(values) if tensors else values
        lab = row[n] if labeled else None
        if labeled and lab is None:
            raise SparkDataError("a label is null")
        yield f, lab


# ---------------------------------------------------------------------- DataFrames via Arrow
def _arrow_available():
    import importlib.util
    return importlib.util.find_spec("pyarrow") is not None


def _arrow_values(column, name, dtype, start, part, what):
    """A flat numeric Arrow column or a list column as a numpy array ``(n,)`` / ``(n, k)``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if column.null_count:
        row = start + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise SparkDataError(f"{what}: row {row} of partition {part}: {name} is null")
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            i = int(np.flatnonzero(lengths != lengths[0])[0])
            raise SparkDataError(
                f"{what}: row {start + i} of partition {part} has features of shape "
                f"({lengths[i]},) but the rows before it have ({lengths[0]},); every record "
                "needs the same shape")
        values = column.flatten()
        if values.null_count:
            raise SparkDataError(f"{what}: partition {part}: {name} holds null values")
        width = int(lengths[0]) if len(lengths) else 0
        out = values.to_numpy(zero_copy_only=False).reshape(len(column), width)
    else:
        out = column.to_numpy(zero_copy_only=False)
    if dtype is not None:
        out = out.astype(dtype, copy=False)
    elif out.dtype.kind in "iub":
        out = out.astype(np.int64, copy=False)
    return out


def _reshaped(X, shape, role, start, part, what):
    """A column block ``X`` with each record reshaped to ``shape`` (None: as it is)."""
    if shape is None:
        return X
    if X[0].size != int(np.prod(shape)):
        raise SparkDataError(
            f"{what}: row {start} of partition {part} has {X[0].size} {role} values, which do "
            f"not fit feature_shape {tuple(shape)}")
    return X.reshape((len(X),) + tuple(shape))


def _arrow_partition(batches, features, tensors, label, dtype, feature_shape, what):
    import pickle

    import pyarrow as pa
    from pyspark import TaskContext
    part = TaskContext.get().partitionId()
    schema = pa.schema([("part", pa.int32()), ("start", pa.int64()), ("X", pa.binary()),
                        ("y", pa.binary()), ("error", pa.string())])
    start = 0
    for frame in batches:
        n = frame.num_rows
        if n == 0:
            continue
        try:
            columns = [_arrow_values(frame.column(i), f"the features column {c!r}", dtype,
                                     start, part, what) for i, c in enumerate(features)]
            if not tensors:  # one column, or several numeric columns: one vector
                X = _reshaped(columns[0] if len(columns) == 1 else np.stack(columns, axis=1),
                              feature_shape, "feature", start, part, what)
            else:  # one tensor per column
                shapes = feature_shape if isinstance(feature_shape, list) else \
                    [None] * len(columns)
                X = [_reshaped(c, s, f"column {name!r}", start, part, what)
                     for c, s, name in zip(columns, shapes, features)]
            y = None
            if label is not None:
                y = _arrow_values(frame.column(len(features)), "a label", None, start, part,
                                  what)
            row = (pickle.dumps(X, protocol=5), pickle.dumps(y, protocol=5), None)
        except SparkDataError as e:
            row = (b"", b"", str(e))
        yield pa.RecordBatch.from_arrays(
            [pa.array([part], pa.int32()), pa.array([start], pa.int64()),
             pa.array([row[0]], pa.binary()), pa.array([row[1]], pa.binary()),
             pa.array([row[2]], pa.string())], schema=schema)
        if row[2] is not None:
            return
        start += n


def _unpack(row):
    import pickle
    if row.error is not None:
        return row.part, -1, row.error, None
    return row.part, row.start, pickle.loads(row.X), pickle.loads(row.y)


def _arrow_blocks(df, features, kinds, label, dtype, feature_shape, what):
    """A DataFrame as blocks through Arrow (``mapInArrow``): whole column batches become numpy
    arrays, no Python object per row.  Vector columns are turned into arrays first."""
    tensors = len(features) > 1 and "number" not in kinds
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    cols = [vector_to_array(F.col(c)).alias(c) if k == "vector" else F.col(c)
            for c, k in zip(features, kinds)]
    if label is not None:
        cols.append(F.col(label))
    frame = df.select(*cols)
    schema = "part int, start long, X binary, y binary, error string"
    packed = frame.mapInArrow(
        lambda batches: _arrow_partition(batches, features, tensors, label, dtype,
                                         feature_shape, what), schema)
    return packed.rdd.map(_unpack)


# ---------------------------------------------------------------------- driver side
def _check_columns(df, features, label, what):
    from pyspark.sql.types import ArrayType, NumericType
    try:
        from pyspark.ml.linalg import VectorUDT
        vector_types = (VectorUDT,)
        from pyspark.mllib.linalg import VectorUDT as OldVectorUDT
        vector_types = (VectorUDT, OldVectorUDT)
    except ImportError:  # pragma: no cover
        vector_types = ()
    fields = {f.name: f.dataType for f in df.schema.fields}

    def kind(name, role):
        if name not in fields:
            raise SparkDataError(f"{what}: no {role} column {name!r} (columns: "
                                 f"{sorted(fields)}); pass {role}_col=...")
        t = fields[name]
        if isinstance(t, NumericType):
            return "number"
        if isinstance(t, ArrayType) and isinstance(t.elementType, (NumericType, ArrayType)):
            return "array"
        if vector_types and isinstance(t, vector_types):
            return "vector"
        raise SparkDataError(f"{what}: the {role} column {name!r} has type "
                             f"{t.simpleString()}; expected a number, an array of numbers or a "
                             "vector")

    kinds = [kind(c, "features") for c in features]
    if len(features) > 1 and "number" in kinds and len(set(kinds)) > 1:
        raise SparkDataError(
            f"{what}: several feature columns must be all numeric columns (one vector) or all "
            "array/vector columns (one model input each), got "
            + ", ".join(f"{c}: {fields[c].simpleString()}" for c in features))
    label_kind = kind(label, "label") if label is not None else None
    nested = any(isinstance(fields[c], ArrayType) and isinstance(fields[c].elementType, ArrayType)
                 for c in features + ([label] if label is not None else []))
    return kinds, label_kind, nested


def _feature_shape(shape, what):
    """``feature_shape`` as a tuple of ints, or for several tensors a list with a tuple (or
    None: keep the tensor's shape) per tensor."""
    if not shape:
        return None
    if any(d is None or isinstance(d, (list, tuple)) for d in shape):
        return [None if d is None else tuple(int(k) for k in d) for d in shape]
    return tuple(int(d) for d in shape)


class DataSet:
    """An RDD of Samples or a DataFrame as cached numpy blocks with a global record order.

    Args:
        data: an RDD of ``Sample`` (or of ``(features, label)`` pairs; of feature arrays when
            unlabeled) or a DataFrame.
        what: how to name the data in messages (``"training set"``).
        features_col: DataFrame feature column(s) (default ``"features"``): one
            array/vector column; a list of numeric columns (stacked into one vector); or a list
            of array/vector columns, one tensor each (``X`` is then a table, for a multi-input
            model).  An RDD's Samples with several feature (label) tensors make tables too.
        label_col: DataFrame label column (default ``"label"``); None for unlabeled data.
        feature_shape: reshape each record's features (e.g. ``(1, 28, 28)``); for several
            tensors a list with one shape (or None) per tensor.
        dtype: float dtype of the feature blocks (the model's).
    """

    def __init__(self, data, what="data set", features_col="features", label_col="label",
                 feature_shape=None, dtype=np.float32, labeled=True):
        self.what = what
        self.source = data
        dtype = np.dtype(dtype)
        feature_shape = _feature_shape(feature_shape, what)
        if _is_df(data):
            features = [features_col] if isinstance(features_col, str) else list(features_col)
            if not features:
                raise SparkDataError(f"{what}: features_col names no column")
            label = label_col if labeled else None
            kinds, _, nested = _check_columns(data, features, label, what)
            self.sc = data.sparkSession.sparkContext
            if not nested and _arrow_available():
                self.blocks = _arrow_blocks(data, features, kinds, label, dtype, feature_shape,
                                            what).cache()
            else:  # nested arrays (or no pyarrow): row by row
                cols = features + ([label] if label is not None else [])
                tensors = len(features) > 1 and "number" not in kinds
                self.blocks = data.select(*cols).rdd.mapPartitionsWithIndex(
                    lambda part, it: _blocks_of(part, _row_records(it, features, tensors,
                                                                   label is not None),
                                                dtype, feature_shape, what)).cache()
        else:
            self.sc = data.context
            self.blocks = data.mapPartitionsWithIndex(
                lambda part, it: _blocks_of(part, _sample_records(it, labeled), dtype,
                                            feature_shape, what)).cache()
        self.blocks.setName(f"workbench {what} blocks")
        try:
            meta = sorted(self.blocks.mapPartitionsWithIndex(_meta).collect())
        except Exception:
            self.blocks.unpersist()
            raise
        errors = [m[2] for m in meta if m[1] < 0]
        if errors:
            self.blocks.unpersist()
            raise SparkDataError(errors[0])
        self.num_partitions = len(meta)
        self.counts = [m[1] for m in meta]
        self.offsets = list(np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(int)) \
            if meta else []
        self.n = int(sum(self.counts))
        if self.n == 0:
            self.blocks.unpersist()
            raise SparkDataError(f"{what} is empty")
        filled = [m for m in meta if m[1] > 0]
        first = filled[0]
        for m in filled[1:]:
            if m[3] != first[3]:
                self.blocks.unpersist()
                raise SparkDataError(f"{what}: partition {m[0]} has features of shape "
                                     f"{tuple(m[3])} but partition {first[0]} has "
                                     f"{tuple(first[3])}; every record needs the same shape")
            if labeled and m[5] != first[5]:
                self.blocks.unpersist()
                raise SparkDataError(f"{what}: partition {m[0]} has labels of shape "
                                     f"{tuple(m[5])} but partition {first[0]} has "
                                     f"{tuple(first[5])}")
        self.feature_shape, self.label_shape = first[3], first[5]
        self.label_dtype = first[6]
        self.empty_partitions = [m[0] for m in meta if m[1] == 0]

    def unpersist(self):
        self.blocks.unpersist()
        for rdd in getattr(self, "_grouped", {}).values():
            rdd.unpersist()
        self._grouped = {}

    def __repr__(self):
        return (f"DataSet({self.what}: {self.n} records of {self.feature_shape} in "
                f"{self.num_partitions} partitions)")
