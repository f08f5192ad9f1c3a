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
