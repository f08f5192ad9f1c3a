"""The user's files as DataFrames: Parquet, CSV, or a folder of images with one subfolder per
class, read with Spark's own data sources (so any Hadoop path works: ``hdfs://``, ``s3a://``,
``gs://``, ``abfss://`` ...).

    from workbench.spark.files import read_data
    df, shape = read_data(spark, "data/train.parquet")      # the format from the path
    df, shape = read_data(spark, "photos/", "image")         # path, label, features
    # photos/cat/1.png, photos/dog/2.png ...  ->  label "cat" / "dog",
    # features: array<float> of C*H*W values in [0, 1], RGB, channels first; shape (C, H, W)

``shape`` is the per-record shape the files imply (the image size) or None (tables: the
columns decide).  Every problem a person can fix (no such path, a format that cannot be told, a
folder without images, images of several sizes) is a ``SparkDataError`` naming the path.
"""

import os
from urllib.parse import urlparse

import numpy as np

from .data import SparkDataError

__all__ = ["FORMATS", "IMAGE_SUFFIXES", "infer_format", "local_path", "read_data", "read_images"]

FORMATS = ("parquet", "csv", "image")
# what Spark's image source (javax ImageIO) decodes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_TABLE_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv", ".tsv": "csv"}


def local_path(path):
    """The local file system path of ``path``, or None for another file system's URL."""
    url = urlparse(path)
    if url.scheme == "file":
        return url.path
    # a one-letter scheme is a Windows drive letter
    return path if len(url.scheme) <= 1 else None


def _suffix_format(name):
    name = name.lower().rstrip("/")
    for suffix, fmt in _TABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def _visible(name):
    # Spark skips these too (_SUCCESS, .crc files, _temporary/)
    return not name.startswith((".", "_"))


def infer_format(path):
    """``"parquet"``, ``"csv"`` or ``"image"`` for ``path``, from its suffix or (a local
    folder) from the files in it: ``.parquet`` files, ``.csv`` files, or subfolders of images.

    Raises:
        SparkDataError: a local path that does not exist, or one whose format cannot be told
            (then pass the format explicitly).
    """
    fmt = _suffix_format(path)
    local = local_path(path)
    if local is not None and not os.path.exists(local):
        raise SparkDataError(f"no such file or directory: {path}")
    if fmt is not None:
        return fmt
    if local is None:
        raise SparkDataError(f"cannot tell the format of {path} from its name; pass the "
                             f"format ({', '.join(FORMATS)})")
    if os.path.isfile(local):
        raise SparkDataError(f"cannot tell the format of the file {path}; name it .parquet or "
                             f".csv, or pass the format ({', '.join(FORMATS)})")
    found = set()
    for root, dirs, files in os.walk(local):
        dirs[:] = [d for d in dirs if _visible(d)]
        for f in filter(_visible, files):
            low = f.lower()
            if low.endswith(".parquet"):
                found.add("parquet")
            elif _suffix_format(low) == "csv":
                found.add("csv")
            elif low.endswith(IMAGE_SUFFIXES) and root != local:
                found.add("image")
    if len(found) == 1:
        return found.pop()
    if not found:
        raise SparkDataError(f"{path} holds no .parquet or .csv files and no subfolders of "
                             f"images; pass the format ({', '.join(FORMATS)})")
    raise SparkDataError(f"{path} holds {' and '.join(sorted(found))} files; pass the format "
                         f"({', '.join(FORMATS)})")


def _analysis_error():
    try:
        from pyspark.errors import AnalysisException
    except ImportError:  # pragma: no cover - pyspark < 3.4
        from pyspark.sql.utils import AnalysisException
    return AnalysisException


def _first_line(e):
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def read_data(spark, path, fmt=None):
    """``(DataFrame, record shape or None)`` of the files at ``path``.

    Args:
        spark: the ``SparkSession``.
        path: a file or folder (any Hadoop path).
        fmt: ``"parquet"``, ``"csv"`` (a header row; column types inferred) or ``"image"``
            (see :func:`read_images`); None: :func:`infer_format`.

    Raises:
        SparkDataError: naming the path, for anything Spark cannot read.
    """
    fmt = infer_format(path) if fmt is None else fmt
    if fmt not in FORMATS:
        raise SparkDataError(f"unknown data format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "image":
        return read_images(spark, path)
    try:
        if fmt == "parquet":
            df = spark.read.parquet(path)
        else:
            df = spark.read.option("header", True).option("inferSchema", True).csv(path)
    except _analysis_error() as e:
        raise SparkDataError(f"cannot read {path} as {fmt}: {_first_line(e)}") from None
    if not df.columns:
        raise SparkDataError(f"{path} holds no columns as {fmt}")
    return df, None


def read_images(spark, path):
    """The images under ``path``, one subfolder per class, as ``(DataFrame, (C, H, W))``.

    Columns: ``path`` (the file's URL), ``label`` (the name of its folder, a string) and
    ``features`` (``array<float>``: the pixels as ``C x H x W`` values in [0, 1], channels
    first, RGB order; an alpha channel is dropped).  Files Spark cannot decode are skipped.
    All images must have one size (resize them before; the error names two that differ).
    """
    from pyspark.sql import functions as F
    try:
        raw = (spark.read.format("image").option("dropInvalid", True)
               .option("recursiveFileLookup", True).load(path))
    except _analysis_error() as e:
        raise SparkDataError(f"cannot read images from {path}: {_first_line(e)}") from None
    raw = raw.select(F.col("image.origin").alias("path"),
                     F.element_at(F.split(F.col("image.origin"), "/"), -2).alias("label"),
                     F.col("image.height").alias("h"), F.col("image.width").alias("w"),
                     F.least(F.col("image.nChannels"), F.lit(3)).alias("c"),
                     F.col("image.nChannels").alias("stored"), F.col("image.data").alias("data"))
    sizes = raw.groupBy("c", "h", "w").agg(F.min("path").alias("example")).limit(3).collect()
    if not sizes:
        raise SparkDataError(f"no images under {path} (Spark reads "
                             f"{', '.join(IMAGE_SUFFIXES)}; one subfolder per class)")
    if len(sizes) > 1:
        shown = ", ".join(f"{r.c}x{r.h}x{r.w} ({r.example})" for r in sizes[:2])
        raise SparkDataError(f"the images under {path} have different sizes: {shown}; resize "
                             "them to one size first")
    shape = (int(sizes[0].c), int(sizes[0].h), int(sizes[0].w))
    decode = _decoder()
    frame = raw.select("path", "label", decode(F.struct("h", "w", "stored", "data"))
                       .alias("features"))
    return frame, shape


def _decoder():
    """The pandas UDF decoding Spark's image rows (BGR(A) bytes, height x width x channels)."""
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def decode(image: pd.DataFrame) -> pd.Series:
        out = []
        for h, w, c, data in zip(image["h"], image["w"], image["stored"], image["data"]):
            pixels = np.frombuffer(data, dtype=np.uint8).reshape(h, w, c)
            if c >= 3:  # OpenCV's order (BGR / BGRA) to RGB
                pixels = pixels[..., 2::-1]
            out.append((pixels.transpose(2, 0, 1).astype(np.float32) / 255.0).ravel())
        return pd.Series(out)

    return decode
