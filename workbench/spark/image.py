"""``workbench.spark.image``: image files as a DataFrame, and image preprocessing as Spark ML
stages (BigDL's ``NNImageReader`` and ``ImageResize`` / ``ImageChannelNormalize`` /
``ImageMatToTensor``)::

    from pyspark.ml import Pipeline
    from workbench.spark.image import (NNImageReader, ImageResize, ImageChannelNormalize,
                                       ImageMatToTensor)
    from workbench.spark.ml import NNClassifier

    images = NNImageReader.readImages("/data/digits", sc)     # one column "image", recursive
    pipeline = Pipeline(stages=[
        ImageResize(28, 28),                                  # image -> image (floats)
        ImageChannelNormalize(33.0, std_r=70.0),              # (x - mean) / std per channel
        ImageMatToTensor(shape=[1, 28, 28]),                  # image -> "features" (C, H, W)
        NNClassifier(LeNet5(10), ClassNLLCriterion(), [1, 28, 28])])

The ``image`` column is Spark's image schema (``spark.read.format("image")``, the same struct
BigDL's reader made): ``struct<origin: string, height: int, width: int, nChannels: int,
mode: int, data: binary>`` with the pixels row by row, channels in OpenCV's order (B, G, R; one
channel for gray).  The resize and normalise stages also take, and always give, the *float*
form of that struct, whose ``data`` is an ``array<float>`` in the same order and whose ``mode``
is OpenCV's ``CV_32FC<n>`` (BigDL's ``DLImageSchema.floatSchema``).  Pixel values stay in the
file's units (0 .. 255) until a stage changes them.

Every stage is a pyspark.ml ``Transformer`` with ``Param``s (``inputCol``, ``outputCol`` and
its own), so it sits in a ``Pipeline`` and is saved and loaded with it.  The schema is checked
on the driver (a missing column, or one that is not an image: a ``SparkDataError`` naming it,
before any job); each image is checked where it is transformed (channels, sizes, a broken
struct: a ``ValueError`` naming the stage, the column and the file, inside Spark's exception).
A null image stays null.
"""
from __future__ import annotations

import functools

import numpy as np
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from .data import SparkDataError
from .params import positive_int

__all__ = ["NNImageReader", "DLImageReader", "ImageResize", "ImageChannelNormalize",
           "ImageMatToTensor", "ImageToTensor", "image_to_array", "IMAGE_FIELDS"]

#: the fields of Spark's (and BigDL's) image struct, in order
IMAGE_FIELDS = ("origin", "height", "width", "nChannels", "mode", "data")

# OpenCV's type codes: depth + (channels - 1) * 8, depth CV_8U = 0, CV_32F = 5
_CV_8U, _CV_32F = 0, 5
# OpenCV's interpolation codes BigDL passes as resize_mode
INTER_NEAREST, INTER_LINEAR = 0, 1


def _cv_mode(depth, channels):
    return depth + (channels - 1) * 8


# ---------------------------------------------------------------------- executor side: numpy
def image_to_array(image, column="image", owner="image"):
    """``(origin, pixels)`` of one image struct (a Row or tuple of :data:`IMAGE_FIELDS`):
    ``pixels`` is a float32 array of shape ``(height, width, nChannels)``, channels in the
    struct's order (B, G, R for colour).  Raises a ``ValueError`` naming ``owner``, ``column``
    and the file when the struct does not hold that many pixels."""
    origin, height, width, channels, _, data = image
    if height is None or width is None or channels is None or data is None or \
            height < 1 or width < 1 or channels < 1:
        raise ValueError(f"{owner}: column {column!r} holds an invalid image ({origin}: height "
                         f"{height}, width {width}, nChannels {channels}); read with "
                         "dropInvalid (NNImageReader does) or filter such rows out")
    if isinstance(data, (bytes, bytearray, memoryview)):
        pixels = np.frombuffer(data, dtype=np.uint8).astype(np.float32)
    else:
        pixels = np.asarray(data, dtype=np.float32)
    if pixels.size != height * width * channels:
        raise ValueError(f"{owner}: column {column!r}: {origin} holds {pixels.size} values, "
                         f"not height x width x nChannels = {height} x {width} x {channels}")
    return origin, pixels.reshape(height, width, channels)


def _float_image(origin, pixels):
    h, w, c = pixels.shape
    return (origin, h, w, c, _cv_mode(_CV_32F, c), pixels.reshape(-1).tolist())


def _byte_image(origin, pixels):
    h, w, c = pixels.shape
    data = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).tobytes()
    return (origin, h, w, c, _cv_mode(_CV_8U, c), bytearray(data))


def _interpolation(n_in, n_out, mode):
    """The ``(n_out, n_in)`` matrix resampling one axis: OpenCV's INTER_LINEAR (pixel centres
    aligned, edges clamped) or INTER_NEAREST."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    if mode == INTER_NEAREST:
        m[rows, np.minimum((rows * scale).astype(int), n_in - 1)] = 1.0
        return m
    src = np.clip((rows + 0.5) * scale - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def resize_pixels(pixels, height, width, mode=INTER_LINEAR):
    """``pixels`` (H, W, C) resampled to ``(height, width, C)`` (separable: rows, then
    columns)."""
    h, w, _ = pixels.shape
    if (h, w) == (height, width):
        return pixels
    rh, rw = _interpolation(h, height, mode), _interpolation(w, width, mode)
    return np.einsum("ih,hwc,jw->ijc", rh, pixels, rw, optimize=True).astype(np.float32)


def _recode(pixels, codec):
    """BigDL's ``image_codec``: 0 gray (OpenCV's weights), > 0 three channels (alpha dropped)."""
    c = pixels.shape[2]
    if codec == 0 and c >= 3:
        b, g, r = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        return (0.114 * b + 0.587 * g + 0.299 * r)[..., None]
    if codec > 0 and c == 1:
        return np.repeat(pixels, 3, axis=2)
    if codec > 0 and c == 4:
        return pixels[..., :3]
    return pixels


def _read_row(spec, image):
    """The reader's decode step (only when it resizes or recodes): image struct -> bytes."""
    column, resize_h, resize_w, codec = spec
    if image is None:
        return None
    origin, pixels = image_to_array(image, column, "NNImageReader.readImages")
    pixels = _recode(pixels, codec)
    if resize_h > 0 and resize_w > 0:
        pixels = resize_pixels(pixels, resize_h, resize_w)
    return _byte_image(origin, pixels)


def _resize_row(spec, image):
    column, height, width, mode = spec
    if image is None:
        return None
    origin, pixels = image_to_array(image, column, "ImageResize")
    return _float_image(origin, resize_pixels(pixels, height, width, mode))


def _normalize_row(spec, image):
    column, means, stds = spec
    if image is None:
        return None
    origin, pixels = image_to_array(image, column, "ImageChannelNormalize")
    c = pixels.shape[2]
    for name, values in (("means", means), ("stds", stds)):
        if len(values) not in (1, c):
            raise ValueError(f"ImageChannelNormalize: column {column!r}: {origin} has {c} "
                             f"channel{'s' if c != 1 else ''}, but {len(values)} {name} are "
                             f"given (one per channel, or one for all)")
    mean = np.asarray(means, np.float32)
    std = np.asarray(stds, np.float32)
    return _float_image(origin, (pixels - mean) / std)


def _tensor_row(spec, image):
    column, to_rgb, layout, shape = spec
    if image is None:
        return None
    origin, pixels = image_to_array(image, column, "ImageMatToTensor")
    if to_rgb and pixels.shape[2] >= 3:
        pixels = np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)
    tensor = pixels.transpose(2, 0, 1) if layout == "NCHW" else pixels
    if shape is not None and tuple(tensor.shape) != shape:
        axes = "channels x height x width" if layout == "NCHW" else "height x width x channels"
        raise ValueError(f"ImageMatToTensor: column {column!r}: {origin} is "
                         f"{'x'.join(map(str, tensor.shape))} ({axes}), expected "
                         f"{'x'.join(map(str, shape))}; resize it (ImageResize) or read it "
                         "with image_codec=0 (gray) / 1 (colour)")
    return np.ascontiguousarray(tensor).reshape(-1).tolist()


# ---------------------------------------------------------------------- driver side: schema
def _image_type(data_type):
    from pyspark.sql.types import (ArrayType, BinaryType, FloatType, IntegerType, StringType,
                                   StructField, StructType)
    return StructType([StructField("origin", StringType(), True),
                       StructField("height", IntegerType(), True),
                       StructField("width", IntegerType(), True),
                       StructField("nChannels", IntegerType(), True),
                       StructField("mode", IntegerType(), True),
                       StructField("data", BinaryType() if data_type == "binary"
                                   else ArrayType(FloatType(), False), True)])


def _check_image_column(df, column, owner):
    """A ``SparkDataError`` unless ``column`` is an image struct (bytes or floats)."""
    from pyspark.sql.types import ArrayType, BinaryType, NumericType, StructType
    fields = {f.name: f.dataType for f in df.schema.fields}
    if column not in fields:
        raise SparkDataError(f"{owner}: no image column {column!r} (columns: {list(fields)}); "
                             "set inputCol")
    t = fields[column]
    names = [f.name for f in t.fields] if isinstance(t, StructType) else []
    data = t["data"].dataType if "data" in names else None
    if names != list(IMAGE_FIELDS) or not (
            isinstance(data, BinaryType) or
            (isinstance(data, ArrayType) and isinstance(data.elementType, NumericType))):
        raise SparkDataError(f"{owner}: column {column!r} is not an image: its type is "
                             f"{t.simpleString()}; expected Spark's image struct "
                             f"<{', '.join(IMAGE_FIELDS)}> (NNImageReader.readImages, or "
                             "spark.read.format('image'))")


def _check_output_column(df, stage):
    """Spark ML's rule: a stage never overwrites another column (its own input it may)."""
    out, given = stage.getOutputCol(), stage.getInputCol()
    if out != given and out in df.columns:
        raise SparkDataError(f"{type(stage).__name__}: the output column {out!r} already exists "
                             f"(columns: {df.columns}); set outputCol")


# ---------------------------------------------------------------------- the reader
class NNImageReader:
    """BigDL's DataFrame image reader: files under a folder as one column ``image``."""

    @staticmethod
    def readImages(path, sc=None, minPartitions=1, resizeH=-1, resizeW=-1, image_codec=-1,
                   bigdl_type="float"):
        """Read every image file under ``path`` (recursively) with Spark's ``image`` source.

        Args:
            path: a folder or file (any Hadoop path); several separated by commas.
            sc: the SparkContext (default: the active session's).
            minPartitions: at least this many partitions (default: as Spark splits the files).
            resizeH, resizeW: resize every image to this size (bilinear); -1 keeps the sizes.
            image_codec: as OpenCV's ``imread`` flag: -1 keeps the channels of each file, 0
                makes every image gray (1 channel), > 0 colour (3 channels, B, G, R).
            bigdl_type: accepted for BigDL.

        Returns:
            A DataFrame with one column ``image`` (Spark's image struct, ``data`` as bytes).
            Files that are not images are skipped (the source's ``dropInvalid``); a path that
            does not exist or holds no image raises a ``SparkDataError`` naming it.
        """
        from pyspark.errors import AnalysisException
        from pyspark.sql import SparkSession
        from pyspark.sql.functions import col, udf

        owner = "NNImageReader.readImages"
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"{owner}: path must be a folder or file name, got {path!r}")
        for name, value in (("minPartitions", minPartitions), ("resizeH", resizeH),
                            ("resizeW", resizeW), ("image_codec", image_codec)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
        if (resizeH > 0) != (resizeW > 0):
            raise ValueError(f"{owner}: give both resizeH and resizeW (or neither), got "
                             f"{resizeH} and {resizeW}")
        spark = SparkSession.builder.getOrCreate() if sc is None else \
            SparkSession.builder.config(conf=sc.getConf()).getOrCreate()
        paths = [p.strip() for p in path.split(",") if p.strip()]
        try:
            df = (spark.read.format("image").option("dropInvalid", True)
                  .option("recursiveFileLookup", True).load(paths))
        except AnalysisException as e:
            raise SparkDataError(f"{owner}: cannot read images from {path!r}: "
                                 f"{str(e).splitlines()[0]}") from None
        if not df.limit(1).count():
            raise SparkDataError(f"{owner}: no image files under {path!r}")
        if df.rdd.getNumPartitions() < minPartitions:
            df = df.repartition(int(minPartitions))
        if resizeH > 0 or image_codec >= 0:
            spec = ("image", int(resizeH), int(resizeW), int(image_codec))
            decode = udf(functools.partial(_read_row, spec), _image_type("binary"))
            df = df.select(decode(col("image")).alias("image"))
        return df


DLImageReader = NNImageReader


# ---------------------------------------------------------------------- the stages
def _to_floats(name, positive=False):
    def convert(value):
        values = TypeConverters.toListFloat(value) if isinstance(value, (list, tuple)) \
            else [TypeConverters.toFloat(value)]
        if not values or not all(np.isfinite(values)) or (positive and min(values) <= 0):
            raise ValueError(f"{name} must be one or more finite numbers"
                             f"{' > 0' if positive else ''}, got {value!r}")
        return values
    return convert


class _ImageStage(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable,
                  DefaultParamsWritable):
    """A row-wise image transformer: checks the schema, then one Python UDF per stage."""

    _keywords = ("inputCol", "outputCol")

    def _init_columns(self, output, params):
        self._setDefault(inputCol="image", outputCol=output)
        unknown = sorted(set(params) - set(self._keywords))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments {unknown} "
                            f"(params: {list(self._keywords)})")
        self._set(**params)

    def setInputCol(self, value):
        """Sets :py:attr:`inputCol` (the image column)."""
        return self._set(inputCol=value)

    def setOutputCol(self, value):
        """Sets :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    def setParams(self, **params):
        """Set params by name."""
        unknown = sorted(set(params) - set(self._keywords))
        if unknown:
            raise TypeError(f"{type(self).__name__}.setParams: unexpected keyword arguments "
                            f"{unknown}")
        return self._set(**params)

    def _require(self, *params):
        for p in params:
            if not self.isDefined(p):
                raise ValueError(f"{type(self).__name__}: param {p.name} is not set")

    def _transform(self, dataset):
        from pyspark.sql.functions import col, udf
        owner = f"{type(self).__name__}.transform"
        column = self.getInputCol()
        _check_image_column(dataset, column, owner)
        _check_output_column(dataset, self)
        function, return_type = self._row_function(column)
        return dataset.withColumn(self.getOutputCol(), udf(function, return_type)(col(column)))

    def _row_function(self, column):
        """``(function of one image struct, its Spark return type)``: a module-level function
        with its settings bound, so the executors import it rather than unpickle code."""
        raise NotImplementedError


class ImageResize(_ImageStage):
    """Resize every image (BigDL's ``ImageResize``).

    Args:
        resize_h, resize_w: the height and width after resizing.
        resize_mode: OpenCV's interpolation: 1 bilinear (``INTER_LINEAR``, default) or 0
            nearest (``INTER_NEAREST``).
        use_scale_factor: accepted for BigDL (a detail of OpenCV's call; no effect here).
        **params: ``inputCol`` (default ``"image"``), ``outputCol`` (default ``"image"``: the
            column is replaced).

    Input: an image column (bytes or floats). Output: the float image struct,
    ``resize_h`` x ``resize_w``, same channels.
    """

    _keywords = ("inputCol", "outputCol", "resizeH", "resizeW", "resizeMode")
    resizeH = Param(Params._dummy(), "resizeH", "height after resizing",
                    typeConverter=positive_int("resizeH"))
    resizeW = Param(Params._dummy(), "resizeW", "width after resizing",
                    typeConverter=positive_int("resizeW"))
    resizeMode = Param(Params._dummy(), "resizeMode", "OpenCV interpolation: 1 bilinear, "
                       "0 nearest", typeConverter=TypeConverters.toInt)

    def __init__(self, resize_h=None, resize_w=None, resize_mode=INTER_LINEAR,
                 use_scale_factor=True, bigdl_type="float", **params):
        super().__init__()
        if resize_mode not in (INTER_NEAREST, INTER_LINEAR):
            raise ValueError(f"ImageResize: resize_mode must be 1 (bilinear) or 0 (nearest), "
                             f"got {resize_mode!r}")
        self._setDefault(resizeMode=INTER_LINEAR)
        if resize_h is not None:
            self._set(resizeH=resize_h)
        if resize_w is not None:
            self._set(resizeW=resize_w)
        self._set(resizeMode=resize_mode)
        self._init_columns("image", params)

    def getResizeH(self):
        return self.getOrDefault(self.resizeH)

    def getResizeW(self):
        return self.getOrDefault(self.resizeW)

    def _row_function(self, column):
        self._require(self.resizeH, self.resizeW)
        spec = (column, self.getResizeH(), self.getResizeW(), self.getOrDefault(self.resizeMode))
        return functools.partial(_resize_row, spec), _image_type("float")


class ImageChannelNormalize(_ImageStage):
    """``(pixel - mean) / std`` per channel (BigDL's ``ImageChannelNormalize``).

    Args:
        mean_r, mean_g, mean_b: the channel means in BigDL's order (R, G, B); give only
            ``mean_r`` for one mean for every channel (a gray image).
        std_r, std_g, std_b: the standard deviations likewise (default 1).
        means, stds: instead, lists in the image's channel order (one value: every channel).
        **params: ``inputCol`` (default ``"image"``), ``outputCol`` (default ``"image"``).

    Input: an image column (bytes or floats), pixels in the file's units (0 .. 255).
    Output: the float image struct.  An image whose channels do not match the number of
    means / stds given raises a ``ValueError`` naming the column and the file.
    """

    _keywords = ("inputCol", "outputCol", "means", "stds")
    means = Param(Params._dummy(), "means", "channel means in the image's channel order (one "
                  "value: every channel)", typeConverter=_to_floats("means"))
    stds = Param(Params._dummy(), "stds", "channel standard deviations in the image's channel "
                 "order (one value: every channel)", typeConverter=_to_floats("stds", True))

    def __init__(self, mean_r=None, mean_g=None, mean_b=None, std_r=1.0, std_g=None,
                 std_b=None, bigdl_type="float", **params):
        super().__init__()
        self._setDefault(stds=[1.0])
        if mean_r is not None:
            self._set(means=self._bgr("means", mean_r, mean_g, mean_b))
            self._set(stds=self._bgr("stds", std_r, std_g, std_b))
        self._init_columns("image", params)

    @staticmethod
    def _bgr(name, r, g, b):
        """BigDL's (R, G, B) arguments in the image's order (B, G, R); one value for all."""
        if g is None and b is None:
            return [r]
        if g is None or b is None:
            raise ValueError(f"ImageChannelNormalize: give all three {name} (R, G, B) or one "
                             f"for every channel, got {r!r}, {g!r}, {b!r}")
        return [b, g, r]

    def getMeans(self):
        return self.getOrDefault(self.means)

    def getStds(self):
        return self.getOrDefault(self.stds)

    def _row_function(self, column):
        self._require(self.means)
        spec = (column, tuple(self.getMeans()), tuple(self.getStds()))
        return functools.partial(_normalize_row, spec), _image_type("float")


class ImageMatToTensor(_ImageStage):
    """An image as a flat float tensor for a model (BigDL's ``ImageMatToTensor``).

    Args:
        to_RGB: reorder colour channels B, G, R → R, G, B (default False, as BigDL).
        format: ``"NCHW"`` (channels first, default) or ``"NHWC"``.
        shape: the shape every tensor must have, e.g. ``[1, 28, 28]`` (our addition: an image
            of another size or channel count raises a ``ValueError`` naming the column and
            the file, rather than a shape error inside the model).
        **params: ``inputCol`` (default ``"image"``), ``outputCol`` (default ``"features"``).

    Input: an image column. Output: ``array<float>`` of ``C * H * W`` values per row, in the
    ``format``'s order (give the classifier ``feature_size = [C, H, W]``).
    """

    _keywords = ("inputCol", "outputCol", "toRGB", "format", "shape")
    toRGB = Param(Params._dummy(), "toRGB", "reorder B, G, R to R, G, B",
                  typeConverter=TypeConverters.toBoolean)
    format = Param(Params._dummy(), "format", "tensor layout: NCHW or NHWC",
                   typeConverter=TypeConverters.toString)
    shape = Param(Params._dummy(), "shape", "the shape every tensor must have (3 ints)",
                  typeConverter=TypeConverters.toListInt)

    def __init__(self, to_RGB=False, tensor_key=None, share_buffer=True, format="NCHW",
                 shape=None, bigdl_type="float", **params):  # noqa: A002 - BigDL's name
        super().__init__()
        if format not in ("NCHW", "NHWC"):
            raise ValueError(f"ImageMatToTensor: format must be 'NCHW' or 'NHWC', got "
                             f"{format!r}")
        self._setDefault(toRGB=False, format="NCHW")
        self._set(toRGB=to_RGB, format=format)
        if shape is not None:
            shape = TypeConverters.toListInt(shape)
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(f"ImageMatToTensor: shape must be 3 positive ints such as "
                                 f"[1, 28, 28], got {shape!r}")
            self._set(shape=shape)
        self._init_columns("features", params)

    def getShape(self):
        return self.getOrDefault(self.shape) if self.isDefined(self.shape) else None

    def _row_function(self, column):
        from pyspark.sql.types import ArrayType, FloatType
        shape = self.getShape()
        spec = (column, self.getOrDefault(self.toRGB), self.getOrDefault(self.format),
                None if shape is None else tuple(shape))
        return functools.partial(_tensor_row, spec), ArrayType(FloatType(), False)


ImageToTensor = ImageMatToTensor
