"""DataFrame scoring (``workbench.spark.scoring``): transform, column and SQL functions, streams.

Scores are compared with the in-process ``predict`` on the same arrays with ``allclose`` at
1e-6, not bitwise: Spark runs the model per Arrow batch in single-threaded workers
(``OMP_NUM_THREADS=1``), so the GEMM sees other row counts and another blocking than the local
run; the sums agree to float32 rounding only.  Classes are compared exactly where the argmax is
decided beyond that rounding (``assert_same_classes``).
"""
import numpy as np
import pytest

from helpers import assert_same_classes, raises_from_spark
from workbench.data import load_digits
from workbench.nn import (CAddTable, ClassNLLCriterion, Graph, Input, Linear, LogSoftMax, ReLU,
                          Reshape, Sequential, SpatialConvolution, random)
from workbench.optim import SGD, MaxEpoch, Optimizer
from workbench.spark import scoring
from workbench.spark.scoring import column, register, transform

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

RTOL = ATOL = 1e-6


@pytest.fixture(scope="module")
def digits():
    (X, y), (Xt, yt) = load_digits(size=8)
    return X.reshape(len(X), -1), y, Xt.reshape(len(Xt), -1), yt


@pytest.fixture(scope="module")
def classifier(digits):
    """A softmax regression on the 8x8 digits, trained a little (so every class occurs)."""
    X, y, _, _ = digits
    random.set_seed(7)
    model = Sequential().add(Linear(64, 10)).add(LogSoftMax())
    Optimizer(model, (X, y), ClassNLLCriterion(), MaxEpoch(3), 64, SGD(0.1), seed=1,
              progress=False).optimize()
    return model


@pytest.fixture(scope="module")
def digits_df(spark, digits):
    from pyspark.ml.linalg import Vectors
    _, _, Xt, yt = digits
    rows = [(i, x.tolist(), Vectors.dense(x.tolist()), float(t))
            for i, (x, t) in enumerate(zip(Xt, yt))]
    df = spark.createDataFrame(rows, ["id", "features", "vec", "label"]).repartition(2).cache()
    yield df
    df.unpersist()


def collected(df, col="prediction"):
    return np.array([r[col] for r in df.orderBy("id").collect()])


def test_transform_equals_in_process_predict_on_arrays_and_vectors(digits, classifier, digits_df):
    _, _, Xt, _ = digits
    expected = classifier.predict(Xt)
    out = transform(digits_df, classifier, "features")
    assert out.columns == ["id", "features", "vec", "label", "prediction"]
    assert dict(out.dtypes)["prediction"] == "array<float>"  # a float32 model
    np.testing.assert_allclose(collected(out), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(collected(transform(digits_df, classifier, "vec", "p"), "p"),
                               expected, rtol=RTOL, atol=ATOL)
    classes = transform(digits_df, classifier, "vec", output="class")
    assert dict(classes.dtypes)["prediction"] == "double"
    assert_same_classes(collected(classes), expected)


def test_batch_sizes_do_not_change_the_result(digits, classifier, digits_df):
    _, _, Xt, _ = digits
    expected = classifier.predict(Xt)
    for batch_size in (1, -1, None):
        got = collected(transform(digits_df, classifier, batch_size=batch_size))
        assert got.shape == expected.shape  # never empty, every row once
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_mllib_and_sparse_vectors(spark):
    from pyspark.ml.linalg import Vectors
    from pyspark.mllib.linalg import Vectors as OldVectors
    random.set_seed(3)
    model = Sequential().add(Linear(4, 2))
    X = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0.5, -1, 3, 0]], np.float32)
    df = spark.createDataFrame(
        [(0, Vectors.sparse(4, [0, 3], [1.0, 2.0]), OldVectors.dense(X[0].tolist())),
         (1, Vectors.sparse(4, [], []), OldVectors.sparse(4, [], [])),
         (2, Vectors.dense(X[2].tolist()), OldVectors.dense(X[2].tolist()))], ["id", "ml", "old"])
    expected = model.predict(X)
    for col in ("ml", "old"):
        np.testing.assert_allclose(collected(transform(df, model, col)), expected, rtol=RTOL,
                                   atol=ATOL)


def test_several_numeric_columns_are_stacked_like_vector_assembler(spark):
    random.set_seed(4)
    model = Sequential().add(Linear(3, 2))
    rows = [(i, float(i), i * 2, -0.5 * i) for i in range(20)]
    df = spark.createDataFrame(rows, ["id", "a", "b", "c"])  # double, long, double
    X = np.array([r[1:] for r in rows], np.float32)
    got = collected(transform(df, model, ["a", "b", "c"]))
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-6, atol=1e-5)
    # one numeric column is one feature per row
    one = Sequential().add(Linear(1, 2))
    np.testing.assert_allclose(collected(transform(df, one, "a")), one.predict(X[:, :1]),
                               rtol=1e-6, atol=1e-5)


def test_two_array_columns_feed_a_two_input_graph(spark):
    random.set_seed(5)
    a, b = Input(), Input()
    graph = Graph([a, b], CAddTable()(Linear(4, 3)(a), ReLU()(Linear(2, 3)(b))))
    rng = np.random.default_rng(1)
    X1 = rng.standard_normal((30, 4)).astype(np.float32)
    X2 = rng.standard_normal((30, 2)).astype(np.float32)
    df = spark.createDataFrame([(i, X1[i].tolist(), X2[i].tolist()) for i in range(30)],
                               ["id", "x1", "x2"]).repartition(3)
    graph.evaluate()
    expected = np.array(graph.forward([X1, X2]), copy=True)
    np.testing.assert_allclose(collected(transform(df, graph, ["x1", "x2"])), expected,
                               rtol=RTOL, atol=ATOL)
    # swapped columns are a different input: the scores change
    swapped = transform(df.withColumnRenamed("x1", "t").withColumnRenamed("x2", "x1")
                        .withColumnRenamed("t", "x2"), graph, ["x2", "x1"])
    np.testing.assert_allclose(collected(swapped), expected, rtol=RTOL, atol=ATOL)


def test_feature_shape_reshapes_each_row(digits, digits_df):
    _, _, Xt, _ = digits
    random.set_seed(6)
    conv = (Sequential().add(SpatialConvolution(1, 2, 3, 3)).add(Reshape([2 * 6 * 6]))
            .add(Linear(72, 10)))
    expected = conv.predict(Xt.reshape(-1, 1, 8, 8))
    got = collected(transform(digits_df, conv, "vec", feature_shape=(1, 8, 8)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    with raises_from_spark(r"64 values, which do not fit feature_shape \(1, 7, 7\)"):
        transform(digits_df, conv, "vec", feature_shape=(1, 7, 7)).collect()


def test_sql_function_and_the_filter_shape(spark, digits, classifier, digits_df):
    _, _, Xt, _ = digits
    expected = classifier.predict(Xt)
    classify = register(spark, "classify", classifier)
    digits_df.createOrReplaceTempView("digits")
    rows = spark.sql("SELECT id, classify(features) AS cls FROM digits ORDER BY id").collect()
    assert_same_classes([r.cls for r in rows], expected)
    # BigDL's seed: df.withColumn("image_type", ImgClassifier("image")).filter(...)
    threes = digits_df.withColumn("cls", classify("features")).filter("cls = 3")
    ids = sorted(r.id for r in threes.select("id").collect())
    local = np.flatnonzero(expected.argmax(1) == 3).tolist()
    assert len(local) > 20 and ids == local
    # a column function over a Column object, in a select
    scores = column(classifier)(digits_df.vec)
    got = np.array([r.s for r in digits_df.select("id", scores.alias("s")).orderBy("id")
                    .collect()])
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_a_stream_from_parquet_files_scores_as_the_batch_does(spark, classifier, digits_df,
                                                               tmp_path):
    source = str(tmp_path / "in")
    digits_df.select("id", "features").write.parquet(source)
    stream = spark.readStream.schema("id long, features array<double>") \
        .option("maxFilesPerTrigger", 1).parquet(source)
    assert stream.isStreaming
    query = (transform(stream, classifier, output="class").writeStream.format("memory")
             .queryName("scored_digits").option("checkpointLocation", str(tmp_path / "ck"))
             .trigger(availableNow=True).start())
    try:
        assert query.awaitTermination(180)
        assert query.exception() is None
    finally:
        query.stop()
    streamed = spark.table("scored_digits")
    batch = transform(digits_df, classifier, output="class")
    assert streamed.count() == digits_df.count()
    np.testing.assert_array_equal(collected(streamed), collected(batch))


def test_a_lazy_frame_keeps_the_model_it_was_scored_with(spark, classifier, digits_df):
    random.set_seed(9)
    model = Sequential().add(Linear(64, 3))
    scored = transform(digits_df, model)
    before = collected(scored)
    shipped = len(scoring._shipped)
    transform(digits_df, model)  # the same model again: the same broadcast
    assert len(scoring._shipped) == shipped
    model.get_parameters()[0][:] = 0.0  # later changes do not reach frames scored before
    # more models than KEEP_BROADCASTS: the first broadcast is unpersisted, not destroyed
    for k in range(scoring.KEEP_BROADCASTS + 1):
        transform(digits_df, Sequential().add(Linear(64, k + 1)))
    assert len(scoring._shipped) == scoring.KEEP_BROADCASTS
    assert np.abs(before).sum() > 0
    np.testing.assert_array_equal(collected(scored), before)
    assert np.all(collected(transform(digits_df, model)) == 0)


def test_release_frees_every_broadcast_and_scoring_goes_on(spark, classifier, digits_df):
    transform(digits_df, classifier)
    shipped = list(scoring._shipped.values())
    assert shipped and all(bc._jbroadcast.isValid() for bc in shipped)
    scoring.release()
    assert not scoring._shipped
    assert not any(bc._jbroadcast.isValid() for bc in shipped)  # destroyed in the JVM
    # a new transform ships the model again and scores as before
    np.testing.assert_array_equal(collected(transform(digits_df, classifier)),
                                  collected(transform(digits_df, classifier)))
    assert len(scoring._shipped) == 1


# ---------------------------------------------------------------------- bad input
def test_schema_errors_are_raised_on_the_driver_naming_the_column(spark, classifier, digits_df):
    with pytest.raises(ValueError, match=r"no features column 'pixels' \(columns: \['id', "
                                         r"'features', 'vec', 'label'\]\)"):
        transform(digits_df, classifier, "pixels")
    named = digits_df.withColumn("name", digits_df.id.cast("string"))
    with pytest.raises(ValueError, match=r"features column 'name' has type string"):
        transform(named, classifier, "name")
    with pytest.raises(ValueError, match=r"all numeric .* got features: array<double>, "
                                         r"label: double"):
        transform(digits_df, classifier, ["features", "label"])
    with pytest.raises(ValueError, match="output column 'label' already exists"):
        transform(digits_df, classifier, prediction_col="label")
    with pytest.raises(ValueError, match="output must be one of"):
        transform(digits_df, classifier, output="probabilities")
    with pytest.raises(TypeError, match="must be a workbench Module"):
        transform(digits_df, "model.bin")
    with pytest.raises(ValueError, match="batch_size must be an int"):
        transform(digits_df, classifier, batch_size="big")


def test_row_errors_reach_the_user_with_the_column_named(spark, classifier):
    """Executors raise ValueError naming the column; the text survives inside Spark's error."""
    rows = [(0, [0.5] * 64), (1, None), (2, [1.0] * 64)]
    df = spark.createDataFrame(rows, "id long, features array<double>").coalesce(1)
    with raises_from_spark(r"column 'features' is null in row 1 of a batch"):
        transform(df, classifier).collect()
    short = spark.createDataFrame([(0, [0.5] * 5)], "id long, features array<double>").coalesce(1)
    with raises_from_spark(r"scoring column 'features': the model rejected a batch "
                           r"of shape \(1, 5\): LayerError: Linear"):
        transform(short, classifier).collect()
    ragged = spark.createDataFrame([(0, [0.5] * 64), (1, [0.5] * 63)],
                                   "id long, features array<double>").coalesce(1)
    with raises_from_spark(r"column 'features' has 63 values in row 1"):
        transform(ragged, classifier).collect()
    # through SQL the column type is only known on the executor: still readable
    register(spark, "classify_bad", classifier)
    spark.createDataFrame([("a",)], ["s"]).coalesce(1).createOrReplaceTempView("strings")
    with raises_from_spark(r"SQL function classify_bad\(\) has type string"):
        spark.sql("SELECT classify_bad(s) FROM strings").collect()


def test_an_empty_frame_scores_to_an_empty_frame(spark, classifier):
    empty = spark.createDataFrame([], "id long, features array<double>")
    out = transform(empty, classifier, output="class")
    assert out.columns == ["id", "features", "prediction"] and out.count() == 0
