"""workbench.spark.bagging: balanced samples drawn on Spark, an ensemble of MLPs trained one
member per Spark task, averaged probabilities, persistence in a Pipeline, clear errors on a bad
label; and workbench.optim.metrics' area under the PR curve against Spark's."""
import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from workbench.optim.metrics import area_under_pr, precision_recall_curve
from workbench.spark import SparkDataError
from workbench.spark.bagging import (BaggingClassificationModel, BaggingClassifier,
                                     UnderSampler, binary_label_counts)

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

FEATURES = ["a", "b", "c"]
AUC_PR_FLOOR = 0.5


@pytest.fixture(scope="module")
def rare(spark):
    """2,000 rows, ~4.5% positives: positive when a + b^2 is large (plus noise); an id per row.

    Returns the cached DataFrame, its number of positives and the rows as numpy (features,
    labels), so tests check Spark's output against them without another Spark job."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(2000, 3))
    y = (X[:, 0] + X[:, 1] ** 2 + 0.5 * rng.normal(size=2000) > 4.5).astype(float)
    rows = [(i, *map(float, x), float(t)) for i, (x, t) in enumerate(zip(X, y))]
    df = spark.createDataFrame(rows, ["id", *FEATURES, "label"]).repartition(2).cache()
    assert 30 <= y.sum() <= 100
    return df, int(y.sum()), X, y


@pytest.fixture(scope="module")
def vectors(rare):
    return VectorAssembler(inputCols=FEATURES, outputCol="features").transform(rare[0]).cache()


@pytest.fixture(scope="module")
def samples(rare):
    """Four balanced samples of ``rare``, collected once: ``[(sample, id, label, a)]``."""
    out = UnderSampler(numSamples=4, seed=3).transform(rare[0])
    return sorted(tuple(r) for r in out.select("sample", "id", "label", "a").collect())


# the ensemble every test below shares: 3 members, few epochs (a fit is one Spark job; its
# cost is mostly the job, not the epochs)
ENSEMBLE = dict(numModels=3, hiddenLayers=[8], maxEpoch=5, learningRate=0.02, seed=5)


@pytest.fixture(scope="module")
def fitted(vectors):
    return BaggingClassifier(**ENSEMBLE).fit(vectors)


@pytest.fixture(scope="module")
def pipeline_model(rare):
    """The same ensemble fitted again, inside a Pipeline, with its own output column and
    threshold (neither changes training)."""
    bagging = BaggingClassifier(**ENSEMBLE, probabilityCol="p_fraud", threshold=0.7)
    return Pipeline(stages=[VectorAssembler(inputCols=FEATURES, outputCol="features"),
                            bagging]).fit(rare[0])


# ---------------------------------------------------------------------- the sampler
def test_each_sample_holds_every_positive_and_as_many_random_negatives(rare, samples):
    _, positives, X, y = rare
    counts = {}
    for s, _, label, _ in samples:
        counts[s, label] = counts.get((s, label), 0) + 1
    assert counts == {(s, lab): positives for s in range(4) for lab in (0.0, 1.0)}
    all_positive_ids = set(np.flatnonzero(y == 1).tolist())
    negatives = {}
    for s in range(4):
        rows = [r for r in samples if r[0] == s]
        assert {i for _, i, label, _ in rows if label == 1} == all_positive_ids
        ids = [i for _, i, label, _ in rows if label == 0]
        assert len(set(ids)) == len(ids)  # drawn without replacement
        negatives[s] = set(ids)
    # independent draws: the samples share some negatives by chance, never all
    assert all(negatives[s] != negatives[0] for s in range(1, 4))
    # the rows are the input's rows, unchanged
    assert all(a == X[i, 0] and label == y[i] for _, i, label, a in samples)


def test_the_draw_is_seeded_and_takes_the_negative_ratio(rare, samples):
    df, positives, _, _ = rare

    def draw(seed, ratio=1.0, col="sample"):
        out = UnderSampler(numSamples=4, seed=seed, negativeRatio=ratio,
                           sampleCol=col).transform(df)
        return sorted(tuple(r) for r in out.select(col, "id", "label", "a").collect())
    assert draw(3) == samples
    assert draw(4) != samples
    bags = draw(3, ratio=2.5, col="bag")
    assert len(bags) == 4 * (positives + int(np.ceil(2.5 * positives)))


# ---------------------------------------------------------------------- the ensemble
def test_members_train_on_balanced_samples_and_differ(fitted, rare):
    positives = rare[1]
    assert isinstance(fitted, BaggingClassificationModel) and fitted.numModels == 3
    assert fitted.sample_sizes == [(positives, positives)] * 3
    weights = [m.get_parameters()[0].copy() for m in fitted.getMembers()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(weights[i], weights[j])


def test_probability_is_the_members_average_and_ranks_the_positives(fitted, vectors):
    scored = fitted.transform(vectors)
    assert {"rawPrediction", "probability", "prediction"} <= set(scored.columns)
    rows = scored.select("id", vector_to_array("features").alias("x"), "label",
                         vector_to_array("probability").alias("p"), "prediction") \
        .orderBy("id").collect()
    X = np.array([r.x for r in rows], dtype=np.float32)
    p = np.array([r.p for r in rows])
    expected = np.mean([np.exp(m.evaluate().forward(X)) for m in fitted.getMembers()], axis=0)
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert [r.prediction for r in rows] == [float(q > 0.5) for q in p[:, 1]]
    labels = np.array([r.label for r in rows])
    # balanced members overcall the rare class, yet they rank it well above chance (~0.03)
    assert area_under_pr(labels, p[:, 1]) > AUC_PR_FLOOR
    assert (p[labels == 1, 1] > 0.5).mean() > 0.8


def test_fit_is_reproducible(fitted, pipeline_model):
    again = pipeline_model.stages[-1]
    for a, b in zip(fitted.getMembers(), again.getMembers(), strict=True):
        np.testing.assert_array_equal(a.get_parameters()[0], b.get_parameters()[0])


def test_a_pipeline_with_the_ensemble_saves_and_loads(rare, pipeline_model, tmp_path):
    df = rare[0]
    bagging = BaggingClassifier(numModels=2, hiddenLayers=[6, 4], maxEpoch=2, seed=9,
                                probabilityCol="p_fraud", threshold=0.7)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=FEATURES, outputCol="features"),
                                bagging])
    pipeline.write().save(str(tmp_path / "estimator"))
    loaded_estimator = Pipeline.load(str(tmp_path / "estimator")).getStages()[-1]
    assert isinstance(loaded_estimator, BaggingClassifier)
    assert loaded_estimator.getHiddenLayers() == [6, 4] and loaded_estimator.getNumModels() == 2
    assert loaded_estimator.getThreshold() == 0.7 and loaded_estimator.getSeed() == 9

    pipeline_model.write().save(str(tmp_path / "model"))
    reloaded = PipelineModel.load(str(tmp_path / "model"))
    stage = reloaded.stages[-1]
    assert isinstance(stage, BaggingClassificationModel) and stage.numModels == 3
    assert stage.getProbabilityCol() == "p_fraud" and stage.getThreshold() == 0.7

    def probabilities(m):
        return [list(r.p_fraud) for r in m.transform(df).orderBy("id").select("p_fraud")
                .collect()]
    assert probabilities(reloaded) == probabilities(pipeline_model)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("label, message", [
    ("'fraud'", "has type string"),
    ("CASE WHEN id = 7 THEN 2.0 ELSE label END",
     "0 (negative) and 1 (positive) only; 1 rows hold other values, e.g. 2.0"),
    ("CASE WHEN id = 7 THEN NULL ELSE label END", "e.g. null"),
    ("0.0", "has 0 positive (1)"),
])
def test_a_label_that_is_not_binary_is_a_clear_error(vectors, label, message):
    bad = vectors.withColumn("label", F.expr(label))
    with pytest.raises(SparkDataError, match="label column 'label'") as e:
        BaggingClassifier(numModels=2, maxEpoch=1).fit(bad)
    assert message in str(e.value)
    with pytest.raises(SparkDataError, match="label column 'label'"):
        UnderSampler().transform(bad)


def test_missing_columns_are_named(vectors):
    with pytest.raises(SparkDataError, match="no label column 'is_fraud'"):
        BaggingClassifier(labelCol="is_fraud").fit(vectors)
    with pytest.raises(SparkDataError, match="no features column 'scaled'"):
        BaggingClassifier(featuresCol="scaled").fit(vectors)
    with pytest.raises(SparkDataError, match="features column 'id' has type bigint"):
        BaggingClassifier(featuresCol="id").fit(vectors)
    with pytest.raises(ValueError, match="numModels must be a positive int"):
        BaggingClassifier(numModels=0)


def test_binary_label_counts(rare):
    df, positives, _, _ = rare
    assert binary_label_counts(df, "label") == (positives, 2000 - positives)


# ---------------------------------------------------------------------- AUC-PR
def test_area_under_pr_matches_spark(spark):
    rng = np.random.default_rng(4)
    labels = (rng.random(3000) < 0.05).astype(float)
    # rounded scores: many ties, which both must treat as one threshold
    scores = np.round(np.clip(0.3 * labels + rng.normal(0.3, 0.2, 3000), 0, 1), 2)
    df = spark.createDataFrame([(float(s), float(t)) for s, t in zip(scores, labels)],
                               ["score", "label"])
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="score", metricName="areaUnderPR",
                                              numBins=0)
    ours = area_under_pr(labels, scores)
    assert abs(ours - evaluator.evaluate(df)) < 1e-9
    assert 0.1 < ours < 0.9
    recall, precision, thresholds = precision_recall_curve(labels, scores)
    assert len(recall) == len(precision) == len(thresholds) + 1 == len(np.unique(scores)) + 1
    assert recall[0] == 0 and recall[-1] == 1 and np.all(np.diff(recall) >= 0)
    assert precision[-1] == pytest.approx(labels.mean())
    # a perfect ranking
    assert area_under_pr([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        area_under_pr([0, 2], [0.1, 0.2])
