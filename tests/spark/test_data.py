"""Bad and awkward input on Spark: clear errors before any barrier stage, nothing hangs;
empty and small partitions train correctly."""
import numpy as np
import pytest

from workbench.data import Sample
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential, Tanh, random
from workbench.optim import SGD, Adam, MaxIteration, Optimizer, Top1Accuracy, TrainingError
from workbench.spark import DataSet, SparkDataError

pytestmark = [pytest.mark.spark, pytest.mark.timeout(120)]


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + 2 * (X[:, 2] > 0)
    return X, y


def mlp():
    random.set_seed(5)
    return Sequential().add(Linear(8, 16)).add(Tanh()).add(Linear(16, 4)).add(LogSoftMax())


def train(data, iterations=10, batch=32, **kwargs):
    model = mlp()
    Optimizer(model, data, ClassNLLCriterion(), MaxIteration(iterations), batch, Adam(0.01),
              seed=2, progress=False, **kwargs).optimize()
    return model.get_parameters()[0].copy()


def local_weights(X, y, iterations=10, batch=32):
    return train((X, y), iterations, batch)


def partitioned(sc, X, y, sizes):
    """An RDD whose partitions hold exactly ``sizes`` records (in order)."""
    samples = [Sample.from_ndarray(a, b) for a, b in zip(X, y)]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    chunks = [samples[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    return sc.parallelize(range(len(sizes)), len(sizes)).mapPartitionsWithIndex(
        lambda i, _: iter(chunks[i]))


@pytest.mark.parametrize("sizes", [[0, 60, 40], [3, 97], [50, 0], [1, 1, 98]])
def test_empty_and_small_partitions_train_like_local(sc, sizes):
    # An empty partition, or one smaller than its share of the batch, simply contributes
    # fewer (or no) records to each global batch: the result is still the local one.
    X, y = problem(sum(sizes))
    got = train(partitioned(sc, X, y, sizes))
    want = local_weights(X, y)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5


def test_an_empty_training_set_is_an_error(sc):
    X, y = problem(10)
    with pytest.raises(SparkDataError, match="training set is empty"):
        train(partitioned(sc, X, y, [0, 0]))


def test_mismatched_feature_shapes_in_a_partition(sc):
    samples = [Sample.from_ndarray(np.zeros(8, np.float32), 1)] * 5
    samples.insert(3, Sample.from_ndarray(np.zeros(7, np.float32), 1))
    with pytest.raises(SparkDataError, match=r"row 3 of partition 0 has features of shape "
                                             r"\(7,\) but the rows before it have \(8,\)"):
        train(sc.parallelize(samples, 1))


def test_mismatched_feature_shapes_across_partitions(sc):
    samples = [Sample.from_ndarray(np.zeros(8, np.float32), 1)] * 4 + \
              [Sample.from_ndarray(np.zeros((2, 4), np.float32), 1)] * 4
    with pytest.raises(SparkDataError, match=r"partition 1 has features of shape \(2, 4\) but "
                                             r"partition 0 has \(8,\)"):
        train(sc.parallelize(samples, 2))


def test_not_samples(sc):
    with pytest.raises(SparkDataError, match="expected Sample records, got str"):
        train(sc.parallelize(["a", "b"], 1))


def test_label_column_of_the_wrong_type(spark):
    X, y = problem(20)
    df = spark.createDataFrame([(x.tolist(), str(t)) for x, t in zip(X, y)],
                               ["features", "label"])
    with pytest.raises(SparkDataError, match="label column 'label' has type string"):
        train(df)


def test_feature_column_of_the_wrong_type_and_missing_columns(spark):
    df = spark.createDataFrame([("abc", 1), ("def", 0)], ["features", "label"])
    with pytest.raises(SparkDataError, match="features column 'features' has type string"):
        train(df)
    good = df.sparkSession.createDataFrame([([1.0] * 8, 1)], ["features", "label"])
    with pytest.raises(SparkDataError, match="no label column 'target'"):
        train(good, label_col="target")


def test_ragged_array_column(spark):
    rows = [([0.0] * 8, 1)] * 5 + [([0.0] * 9, 1)]
    df = spark.createDataFrame(rows, ["features", "label"]).coalesce(1)
    with pytest.raises(SparkDataError, match=r"row 5 of partition 0 has features of shape "
                                             r"\(9,\)"):
        train(df)


def test_null_label(spark):
    rows = [([0.0] * 8, 1)] * 3 + [([0.0] * 8, None)]
    df = spark.createDataFrame(rows, "features array<double>, label int").coalesce(1)
    with pytest.raises(SparkDataError, match="row 3 of partition 0: a label is null"):
        train(df)


def test_labels_out_of_range_fail_once_with_the_criterion_message(sc):
    X, y = problem(40)
    y[7] = 9  # 4 classes
    rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2)
    model = mlp()
    opt = Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(10), 8, SGD(0.1), seed=2,
                    progress=False)
    with pytest.raises(TrainingError, match=r"LabelError: ClassNLLCriterion: label 9 .* out of "
                                            r"range.*not retried"):
        opt.optimize()
    assert opt._runner.retries == 0


def test_feature_shape_option_and_dataset_summary(spark):
    X, y = problem(12)
    df = spark.createDataFrame([(x.tolist(), int(t)) for x, t in zip(X, y)],
                               ["features", "label"])
    ds = DataSet(df, "training set", feature_shape=(2, 4))
    assert ds.n == 12 and ds.feature_shape == (2, 4) and sum(ds.counts) == 12
    assert "12 records of (2, 4)" in repr(ds)
    ds.unpersist()
    with pytest.raises(SparkDataError, match="do not fit feature_shape"):
        DataSet(df, "training set", feature_shape=(3, 3))


def test_validation_on_an_rdd_uses_distributed_evaluate(sc):
    X, y = problem(100)
    model = mlp()
    opt = Optimizer(model, sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2),
                    ClassNLLCriterion(), MaxIteration(4), 25, SGD(0.1), progress=False)
    opt.set_validation(16, sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 3),
                       MaxIteration(2), [Top1Accuracy()])
    opt.optimize()
    assert 0 <= opt.state.score <= 1


# ---------------------------------------------------------------------- several tensors
def two_inputs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 6)).astype(np.float32),
            rng.standard_normal((n, 3)).astype(np.float32), np.arange(n) % 4)


def blocks_of(ds):
    return sorted(ds.blocks.collect(), key=lambda b: (b[0], b[1]))


def test_samples_with_two_feature_tensors_become_table_blocks(sc):
    X1, X2, y = two_inputs()
    rdd = sc.parallelize([Sample.from_ndarray([a, b], t) for a, b, t in zip(X1, X2, y)], 2)
    ds = DataSet(rdd, "training set")
    try:
        assert ds.n == 12 and ds.feature_shape == [(6,), (3,)]
        blocks = blocks_of(ds)
        X = [np.concatenate([b[2][k] for b in blocks]) for k in range(2)]
        np.testing.assert_array_equal(X[0], X1)
        np.testing.assert_array_equal(X[1], X2)
        assert np.concatenate([b[3] for b in blocks]).tolist() == y.tolist()
    finally:
        ds.unpersist()
    reshaped = DataSet(rdd, "training set", feature_shape=[(2, 3), None])
    assert reshaped.feature_shape == [(2, 3), (3,)]
    reshaped.unpersist()


def test_samples_with_different_numbers_of_tensors_name_the_row(sc):
    X1, X2, y = two_inputs()
    samples = [Sample.from_ndarray([a, b], t) for a, b, t in zip(X1, X2, y)]
    samples[4] = Sample.from_ndarray(X1[4], y[4])
    with pytest.raises(SparkDataError, match=r"training set: row 4 of partition 0 has 1 "
                                             r"features tensor\(s\) but the rows before it have "
                                             "2"):
        DataSet(sc.parallelize(samples, 1), "training set")


@pytest.mark.parametrize("nested", [False, True])
def test_array_and_vector_columns_become_one_tensor_each(spark, nested):
    from pyspark.ml.linalg import Vectors
    X1, X2, y = two_inputs()
    if nested:  # an array of arrays goes row by row, not through Arrow
        rows = [(a.reshape(2, 3).tolist(), Vectors.dense(b.tolist()), int(t))
                for a, b, t in zip(X1, X2, y)]
    else:
        rows = [(a.tolist(), Vectors.dense(b.tolist()), int(t)) for a, b, t in zip(X1, X2, y)]
    df = spark.createDataFrame(rows, ["a", "b", "label"]).coalesce(1)
    ds = DataSet(df, "training set", features_col=["a", "b"])
    try:
        assert ds.feature_shape == ([(2, 3), (3,)] if nested else [(6,), (3,)])
        (_, _, X, labels), = blocks_of(ds)
        np.testing.assert_allclose(X[0].reshape(12, 6), X1, rtol=1e-6)
        np.testing.assert_allclose(X[1], X2, rtol=1e-6)
        assert labels.tolist() == y.tolist()
    finally:
        ds.unpersist()


@pytest.mark.parametrize("nested", [False, True])
def test_a_null_in_one_input_column_names_the_column_and_row(spark, nested):
    value = [[0.0, 1.0]] if nested else [0.0, 1.0]
    kind = "array<array<double>>" if nested else "array<double>"
    rows = [(value, [1.0, 2.0, 3.0], 1)] * 4 + [(value, None, 0)]
    df = spark.createDataFrame(rows, f"a {kind}, b array<double>, label int").coalesce(1)
    with pytest.raises(SparkDataError, match=r"training set: row 4 of partition 0: the features "
                                             r"column 'b' is null"):
        DataSet(df, "training set", features_col=["a", "b"])


def test_numeric_and_array_columns_do_not_mix(spark):
    df = spark.createDataFrame([(1.0, [1.0, 2.0], 1)], ["x", "a", "label"])
    with pytest.raises(SparkDataError, match=r"several feature columns must be all numeric "
                                             r"columns .* got x: double, a: array<double>"):
        DataSet(df, "training set", features_col=["x", "a"])
