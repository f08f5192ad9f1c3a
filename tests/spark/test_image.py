"""workbench.spark.image: image folders read with Spark's ``image`` source (BigDL's
``NNImageReader``) and the image stages (``ImageResize``, ``ImageChannelNormalize``,
``ImageMatToTensor``) as real pyspark.ml stages, on real PNG files."""
import os

import numpy as np
import pytest
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StringIndexer
from pyspark.sql import functions as F

from helpers import raises_from_spark
from workbench.data import load_digits
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, ReLU, Sequential, random
from workbench.spark import SparkDataError
from workbench.spark.image import (DLImageReader, ImageChannelNormalize, ImageMatToTensor,
                                   ImageResize, ImageToTensor, NNImageReader, resize_pixels)
from workbench.spark.ml import NNClassifier

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

PER_CLASS = 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Digits 0, 1, 2 as 8x8 gray PNGs, one sub-folder per class (class 2 one level deeper),
    plus a text file the reader must skip.  Returns ``(root, {file name: (pixels, label)})``."""
    root = tmp_path_factory.mktemp("digits-png")
    (X, y), _ = load_digits(size=8, normalize=False)
    written = {}
    for label in (0, 1, 2):
        where = root / str(label) if label < 2 else root / "more" / str(label)
        where.mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(y == label)[:PER_CLASS]):
            pixels = np.rint(X[i, 0] * 255).astype(np.uint8)
            name = f"{label}_{k:02d}.png"
            Image.fromarray(pixels, "L").save(where / name)
            written[name] = (pixels, label)
    (root / "README.txt").write_text("not an image")
    return str(root), written


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """One 5x7 RGB PNG with known pixels; returns ``(path, rgb array)``."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("colour") / "rgb.png"
    Image.fromarray(rgb, "RGB").save(path)
    return str(path), rgb


def by_name(rows, column="image"):
    return {os.path.basename(r[column].origin): r for r in rows}


def test_read_images_recursive_skips_other_files(spark, folder):
    root, written = folder
    df = NNImageReader.readImages(root, spark.sparkContext)
    assert df.columns == ["image"]
    rows = by_name(df.collect())
    assert set(rows) == set(written)  # class 2 one folder deeper; README.txt skipped
    for name, (pixels, _) in written.items():
        image = rows[name].image
        assert (image.height, image.width, image.nChannels, image.mode) == (8, 8, 1, 0)
        assert np.array_equal(np.frombuffer(image.data, np.uint8).reshape(8, 8), pixels)
    assert DLImageReader is NNImageReader


def test_read_images_resizes_and_recodes(spark, colour):
    path, rgb = colour
    [row] = NNImageReader.readImages(path, image_codec=0).collect()
    image = row.image
    assert (image.height, image.width, image.nChannels, image.mode) == (5, 7, 1, 0)
    gray = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    got = np.frombuffer(image.data, np.uint8).reshape(5, 7)
    assert np.abs(got - gray).max() <= 0.5 + 1e-3
    [row] = NNImageReader.readImages(path, resizeH=10, resizeW=14).collect()
    assert (row.image.height, row.image.width, row.image.nChannels) == (10, 14, 3)


def test_bad_paths_are_named(spark, tmp_path):
    missing = str(tmp_path / "no-such-folder")
    with pytest.raises(SparkDataError, match="no-such-folder"):
        NNImageReader.readImages(missing)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(SparkDataError, match="no image files under .*empty"):
        NNImageReader.readImages(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="resizeH and resizeW"):
        NNImageReader.readImages(missing, resizeH=28)


def test_resize_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for shape, size in (((8, 8, 1), (28, 28)), ((13, 9, 3), (5, 17)), ((6, 6, 3), (6, 6))):
        pixels = rng.uniform(0, 255, shape).astype(np.float32)
        want = cv2.resize(pixels, size[::-1], interpolation=cv2.INTER_LINEAR).reshape(
            size + (shape[2],))
        np.testing.assert_allclose(resize_pixels(pixels, *size), want, rtol=0, atol=1e-3)
        want = cv2.resize(pixels, size[::-1], interpolation=cv2.INTER_NEAREST).reshape(
            size + (shape[2],))
        np.testing.assert_allclose(resize_pixels(pixels, *size, mode=0), want, rtol=0, atol=0)


def test_stages_compute_what_they_say(spark, folder, colour):
    root, written = folder
    images = NNImageReader.readImages(root)
    resized = ImageResize(28, 28, outputCol="big").transform(images)
    normalized = ImageChannelNormalize(30.0, std_r=60.0, inputCol="big",
                                       outputCol="norm").transform(resized)
    tensors = ImageMatToTensor(inputCol="norm", shape=[1, 28, 28]).transform(normalized)
    rows = by_name(tensors.collect(), "big")
    name = sorted(written)[0]
    pixels = written[name][0].astype(np.float32)[:, :, None]
    big = resize_pixels(pixels, 28, 28)
    row = rows[name]
    assert (row.big.height, row.big.width, row.big.mode) == (28, 28, 5)  # CV_32FC1
    np.testing.assert_allclose(np.reshape(row.big.data, (28, 28, 1)), big, atol=1e-4)
    np.testing.assert_allclose(np.reshape(row.features, (1, 28, 28)),
                               ((big - 30) / 60).transpose(2, 0, 1), atol=1e-5)

    path, rgb = colour  # channels: the struct holds B, G, R; BigDL's arguments are R, G, B
    df = NNImageReader.readImages(path)
    norm = ImageChannelNormalize(10.0, 20.0, 30.0, 1.0, 2.0, 4.0).transform(df)
    nchw = ImageToTensor(to_RGB=True).transform(norm).head().features
    nhwc = ImageMatToTensor(format="NHWC", outputCol="hwc").transform(norm).head().hwc
    want_rgb = (rgb - np.array([10.0, 20.0, 30.0])) / np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(np.reshape(nchw, (3, 5, 7)), want_rgb.transpose(2, 0, 1),
                               atol=1e-4)
    np.testing.assert_allclose(np.reshape(nhwc, (5, 7, 3)), want_rgb[..., ::-1], atol=1e-4)


def test_pipeline_fits_saves_and_loads(spark, folder, tmp_path):
    root, written = folder
    images = NNImageReader.readImages(root, minPartitions=2)
    labelled = images.withColumn("digit", F.element_at(F.split("image.origin", "/"), -2))
    random.set_seed(5)
    model = Sequential().add(Linear(100, 32)).add(ReLU()).add(Linear(32, 3)).add(LogSoftMax())
    pipeline = Pipeline(stages=[
        StringIndexer(inputCol="digit", outputCol="label", stringOrderType="alphabetAsc"),
        ImageResize(10, 10), ImageChannelNormalize(40.0, std_r=70.0),
        ImageMatToTensor(shape=[1, 10, 10]),
        NNClassifier(model, ClassNLLCriterion(), [100], batchSize=12, maxEpoch=8,
                     learningRate=0.2, showProgress=False)])
    fitted = pipeline.fit(labelled)
    scored = fitted.transform(labelled).select("image.origin", "label", "prediction")
    before = {r.origin: r.prediction for r in scored.collect()}
    labels = {r.origin: r.label for r in scored.collect()}
    accuracy = np.mean([before[o] == labels[o] for o in before])
    assert accuracy >= 0.9, accuracy  # 36 easy images of 0, 1, 2

    path = str(tmp_path / "image-pipeline")
    fitted.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    resize, normalize, tensor = loaded.stages[1:4]
    assert (type(resize), resize.getResizeH(), resize.getResizeW()) == (ImageResize, 10, 10)
    assert (normalize.getMeans(), normalize.getStds()) == ([40.0], [70.0])
    assert (type(tensor), tensor.getShape()) == (ImageMatToTensor, [1, 10, 10])
    after = {r.origin: r.prediction for r in
             loaded.transform(labelled).select("image.origin", "prediction").collect()}
    assert after == before


def test_schema_errors_name_the_column(spark, folder):
    root, _ = folder
    images = NNImageReader.readImages(root)
    with pytest.raises(SparkDataError, match="no image column 'picture'"):
        ImageResize(28, 28, inputCol="picture").transform(images)
    tensors = ImageMatToTensor().transform(images)
    with pytest.raises(SparkDataError, match="column 'features' is not an image.*array<float>"):
        ImageResize(28, 28, inputCol="features", outputCol="x").transform(tensors)
    with pytest.raises(SparkDataError, match="output column 'features' already exists"):
        ImageMatToTensor().transform(tensors)
    with pytest.raises(ValueError, match="param resizeH is not set"):
        ImageResize().transform(images)
    with pytest.raises(ValueError, match="resize_mode"):
        ImageResize(28, 28, resize_mode=2)
    with pytest.raises(ValueError, match="shape must be 3 positive ints"):
        ImageMatToTensor(shape=[28, 28])
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['outputcol'\\]"):
        ImageResize(28, 28, outputcol="x")


def test_wrong_channels_or_size_name_the_column_and_file(spark, folder, colour):
    root, _ = folder
    path, _ = colour
    mixed = NNImageReader.readImages(f"{root},{path}")  # 36 gray images and one colour
    normalize = ImageChannelNormalize(10.0, 20.0, 30.0, outputCol="norm")
    with raises_from_spark(r"ImageChannelNormalize: column 'image': .*_\d\d\.png has "
                           "1 channel, but 3 means are given"):
        normalize.transform(mixed).collect()
    tensor = ImageMatToTensor(shape=[1, 8, 8])
    with raises_from_spark("ImageMatToTensor: column 'image': .*rgb.png is 3x5x7 "
                           r"\(channels x height x width\), expected 1x8x8"):
        tensor.transform(mixed).collect()
    # read as gray and resized, the same files all fit
    fixed = NNImageReader.readImages(f"{root},{path}", resizeH=8, resizeW=8, image_codec=0)
    assert tensor.transform(fixed).count() == 37
