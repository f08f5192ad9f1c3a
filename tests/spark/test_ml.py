"""workbench.spark.ml: BigDL's NNEstimator / NNClassifier as real pyspark.ml stages (Pipeline,
CrossValidator, TrainValidationSplit, persistence) and their errors on bad input."""
import os

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.linalg import Vectors
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit

from helpers import raises_from_spark
from workbench.data import load_digits
from workbench.nn import (ClassNLLCriterion, Linear, LogSoftMax, MSECriterion, ReLU, Sequential,
                          random)
from workbench.optim import SGD, Adam, EveryEpoch, MaxIteration, Top1Accuracy
from workbench.spark import SparkDataError
from workbench.spark import ml
from workbench.spark.ml import (DLClassifier, DLClassifierModel, DLEstimator, DLModel,
                                NNClassifier, NNClassifierModel, NNEstimator, NNModel)
from workbench.summary import TrainSummary, ValidationSummary

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

PIXELS = [f"p{i}" for i in range(64)]


def mlp(hidden=32, seed=3):
    random.set_seed(seed)
    return Sequential().add(Linear(64, hidden)).add(ReLU()).add(Linear(hidden, 10)) \
        .add(LogSoftMax())


def classifier(model=None, **params):
    params = {"batchSize": 32, "maxEpoch": 2, "showProgress": False, **params}
    est = NNClassifier(model or mlp(), ClassNLLCriterion(), [64], **params)
    return est if "learningRate" in params else est.setLearningRate(0.1)


@pytest.fixture(scope="module")
def digits(spark):
    """The digits (8x8) as DataFrames of 64 pixel columns + a double label + an id."""
    (X_train, y_train), (X_test, y_test) = load_digits(size=8, normalize=False)

    def frame(X, y):
        rows = [(i, *map(float, x.ravel()), float(t)) for i, (x, t) in enumerate(zip(X, y))]
        return spark.createDataFrame(rows, ["id", *PIXELS, "label"]).repartition(2).cache()
    return frame(X_train, y_train), frame(X_test, y_test)


@pytest.fixture(scope="module")
def vectors(digits):
    """The same rows with an ml Vector ``features`` column (scaled pixels)."""
    def as_vectors(df):
        va = VectorAssembler(inputCols=PIXELS, outputCol="features")
        return va.transform(df).select("id", "features", "label").cache()
    return tuple(as_vectors(df) for df in digits)


@pytest.fixture(scope="module")
def fitted(digits):
    train, _ = digits
    pipeline = Pipeline(stages=[
        VectorAssembler(inputCols=PIXELS, outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=True),
        # the optim method's own rate applies: no learningRate param is set
        NNClassifier(mlp(hidden=64), ClassNLLCriterion(), [64], batchSize=64, maxEpoch=3,
                     showProgress=False).setOptimMethod(Adam(0.01))])
    return pipeline.fit(train)


# ---------------------------------------------------------------------- pipelines
def test_pipeline_reaches_93_percent_on_the_digits(digits, fitted):
    _, test = digits
    scored = fitted.transform(test)
    assert dict(scored.dtypes)["prediction"] == "double"
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored)
    assert accuracy >= 0.93
    assert isinstance(fitted.stages[-1], NNClassifierModel)
    assert fitted.stages[-1].getFeatureSize() == [64]
    assert not fitted.stages[-1].hasParam("learningRate")


def test_a_reloaded_pipeline_model_predicts_the_same(digits, fitted, tmp_path):
    _, test = digits
    path = str(tmp_path / "pipeline")
    fitted.write().overwrite().save(path)
    assert os.path.isdir(os.path.join(path, "stages"))
    loaded = PipelineModel.load(path)
    stage = loaded.stages[-1]
    assert isinstance(stage, NNClassifierModel) and stage.uid == fitted.stages[-1].uid
    assert stage.getBatchSize() == 64 and stage.getFeatureSize() == [64]

    def predictions(model):
        return [r.prediction for r in model.transform(test).orderBy("id").collect()]
    assert predictions(loaded) == predictions(fitted)
    # an unfitted Pipeline holding the estimator saves and loads too
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=PIXELS, outputCol="features"),
                                classifier()])
    pipeline.write().overwrite().save(str(tmp_path / "unfitted"))
    again = Pipeline.load(str(tmp_path / "unfitted")).getStages()[-1]
    assert isinstance(again, NNClassifier) and again.getLearningRate() == 0.1


def test_cross_validator_picks_the_better_learning_rate(vectors):
    train, _ = vectors
    est = classifier(maxEpoch=1)
    train = train.limit(400).cache()
    grid = ParamGridBuilder().addGrid(est.learningRate, [1e-5, 0.1]).build()
    cv = CrossValidator(estimator=est, estimatorParamMaps=grid, numFolds=2, seed=7,
                        evaluator=MulticlassClassificationEvaluator(metricName="accuracy"))
    model = cv.fit(train)
    assert len(model.avgMetrics) == 2
    assert model.avgMetrics[1] > model.avgMetrics[0]
    assert isinstance(model.bestModel, NNClassifierModel)
    # the estimator kept its own model: every fit trained a copy
    assert np.array_equal(est.getModel().get_parameters()[0], mlp().get_parameters()[0])


def test_train_validation_split_over_max_epoch_and_batch_size(vectors):
    train, _ = vectors
    small = train.limit(300).cache()
    est = classifier()
    grid = ParamGridBuilder().addGrid(est.maxEpoch, [1]).addGrid(est.batchSize, [16, 64]) \
        .build()
    assert [(m[est.maxEpoch], m[est.batchSize]) for m in grid] == [(1, 16), (1, 64)]
    tvs = TrainValidationSplit(estimator=est, estimatorParamMaps=grid, trainRatio=0.75, seed=3,
                               evaluator=MulticlassClassificationEvaluator())
    model = tvs.fit(small)
    assert len(model.validationMetrics) == 2
    assert model.bestModel.getBatchSize() in (16, 64)
    fitted = est.fit(small, {est.batchSize: 64, est.maxEpoch: 1})
    assert fitted.getBatchSize() == 64 and est.getBatchSize() == 32


# ---------------------------------------------------------------------- params and names
def test_every_param_has_a_setter_and_a_getter():
    values = {"featuresCol": "f", "labelCol": "y", "predictionCol": "p", "batchSize": 7,
              "maxEpoch": 3, "learningRate": 0.25, "learningRateDecay": 0.01,
              "cachingSample": False, "featureSize": [1, 8, 8], "labelSize": [1], "seed": 11,
              "showProgress": False}
    for obj in (NNEstimator(mlp(), MSECriterion()), NNClassifier(mlp(), ClassNLLCriterion()),
                NNModel(mlp()), NNClassifierModel(mlp())):
        names = [p.name for p in obj.params]
        assert names, obj
        for name in names:
            cap = name[0].upper() + name[1:]
            getter = getattr(obj, "get" + cap, None) or getattr(obj, "is" + cap)
            assert getattr(obj, "set" + cap)(values[name]) is obj
            assert getter() == values[name], name
    assert set(values) == {p.name for p in NNEstimator().params}


def test_constructor_keywords_and_bad_values():
    est = NNClassifier(mlp(), ClassNLLCriterion(), [64], featuresCol=["a", "b"], batchSize=8,
                       maxEpoch=3, learningRate=0.5, labelCol="y")
    assert est.getFeaturesCol() == ["a", "b"] and est.getBatchSize() == 8
    assert est.getMaxEpoch() == 3 and est.getLearningRate() == 0.5 and est.getLabelCol() == "y"
    est.setParams(predictionCol="cls")
    assert est.getPredictionCol() == "cls"
    with pytest.raises(TypeError, match="batchsize"):
        NNClassifier(mlp(), ClassNLLCriterion(), batchsize=8)
    with pytest.raises(ValueError, match="batchSize must be a positive int"):
        est.setBatchSize(0)
    with pytest.raises(TypeError, match="Module"):
        NNClassifier("not a model", ClassNLLCriterion())
    with pytest.raises(TypeError, match="criterion"):
        NNEstimator(mlp(), SGD())
    with pytest.raises(TypeError, match="OptimMethod"):
        est.setOptimMethod("sgd")


def test_bigdl_positional_order_and_dl_aliases():
    model, crit = mlp(), MSECriterion()
    est = NNEstimator(model, crit, [1, 8, 8], [10])
    assert est.getModel() is model and est.getCriterion() is crit
    assert est.getFeatureSize() == [1, 8, 8] and est.getLabelSize() == [10]
    assert NNClassifier(model, ClassNLLCriterion(), [64]).getFeatureSize() == [64]
    assert NNModel(model, [64]).getFeatureSize() == [64] and NNModel(model).getModel() is model
    assert NNClassifierModel(model, [1, 64]).getFeatureSize() == [1, 64]
    assert NNEstimator(model, crit, feature_preprocessing=[64]).getFeatureSize() == [64]
    assert (DLEstimator, DLClassifier, DLModel, DLClassifierModel) == \
        (NNEstimator, NNClassifier, NNModel, NNClassifierModel)
    assert DLClassifier(model, ClassNLLCriterion(), [64], bigdl_type="float").getFeatureSize() \
        == [64]
    with pytest.raises(TypeError, match="feature_size"):
        NNClassifier(model, ClassNLLCriterion(), "64")


# ---------------------------------------------------------------------- fit, transform
def test_an_estimator_fits_twice_alike_and_keeps_its_model(vectors):
    train, _ = vectors
    small = train.limit(200)
    est = classifier(maxEpoch=1)
    before = est.getModel().get_parameters()[0].copy()
    a, b = est.fit(small), est.fit(small)
    assert np.array_equal(a.getModel().get_parameters()[0], b.getModel().get_parameters()[0])
    assert not np.array_equal(a.getModel().get_parameters()[0], before)
    assert np.array_equal(est.getModel().get_parameters()[0], before)


def test_nn_estimator_regression_on_numeric_columns(spark):
    # NNEstimator: array labels, several numeric feature columns; NNModel: raw outputs
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    Y = X @ np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    df = spark.createDataFrame([(*map(float, x), [float(v) for v in y]) for x, y in zip(X, Y)],
                               ["a", "b", "c", "target"])
    random.set_seed(2)
    est = NNEstimator(Linear(3, 2), MSECriterion(), [3], [2], featuresCol=["a", "b", "c"],
                      labelCol="target", batchSize=16, maxEpoch=30, showProgress=False)
    est.setOptimMethod(Adam(0.05))
    model = est.fit(df)
    assert isinstance(model, NNModel) and not isinstance(model, NNClassifierModel)
    rows = model.transform(df).select("prediction", "target").collect()
    pred = np.array([r.prediction for r in rows])
    assert pred.shape == (64, 2)
    assert np.mean((pred - np.array([r.target for r in rows])) ** 2) < 0.1


def test_validation_summaries_and_checkpoints_apply(vectors, tmp_path):
    train, test = vectors
    est = classifier(maxEpoch=2)
    train_summary = TrainSummary(str(tmp_path / "logs"), "ml")
    val_summary = ValidationSummary(str(tmp_path / "logs"), "ml")
    est.setValidation(EveryEpoch(), test, [Top1Accuracy()], 128) \
        .setTrainSummary(train_summary).setValidationSummary(val_summary) \
        .setCheckpoint(str(tmp_path / "ckpt"), EveryEpoch())
    assert est.getValidation()[3] == 128 and est.getCheckpoint()[2] is True
    est.fit(train)
    assert len(train_summary.read_scalar("Loss")) == 2 * int(np.ceil(1437 / 32))
    accuracy = val_summary.read_scalar("Top1Accuracy")
    assert len(accuracy) == 2 and accuracy[-1, 1] > 0.5
    assert any(f.startswith("checkpoint-") for f in os.listdir(tmp_path / "ckpt"))


def test_end_when_replaces_max_epoch(vectors):
    train, _ = vectors
    est = classifier(maxEpoch=50).setEndWhen(MaxIteration(3))
    summary = []
    est.addListener(type("Count", (), {
        "on_start": lambda self, o: None, "on_iteration": lambda self, e: summary.append(1),
        "on_validation": lambda self, e: None, "on_checkpoint": lambda self, e: None,
        "on_finished": lambda self, e: None})())
    est.fit(train.limit(200))
    assert len(summary) == 3


# ---------------------------------------------------------------------- persistence
def test_the_estimator_alone_saves_and_loads(tmp_path):
    weights = np.linspace(0.5, 1.5, 10)
    est = NNClassifier(mlp(), ClassNLLCriterion(weights=weights), [64], batchSize=16,
                       maxEpoch=4, featuresCol=["x", "y"])
    est.setOptimMethod(SGD(0.3, momentum=0.9)).setEndWhen(MaxIteration(5))
    path = str(tmp_path / "est")
    est.save(path)
    again = NNClassifier.load(path)
    assert type(again) is NNClassifier and again.uid == est.uid
    assert again.getBatchSize() == 16 and again.getMaxEpoch() == 4
    assert again.getFeaturesCol() == ["x", "y"] and again.getFeatureSize() == [64]
    assert np.array_equal(again.getModel().get_parameters()[0],
                          est.getModel().get_parameters()[0])
    assert again.getOptimMethod().get_config() == est.getOptimMethod().get_config()
    assert again.getEndWhen().get_config() == est.getEndWhen().get_config()
    assert np.allclose(again.getCriterion()._init_args["weights"], weights)
    assert "pickle" not in "".join(os.listdir(path))
    with pytest.raises(Exception, match="not a NNClassifierModel"):
        NNClassifierModel.load(path)
    # the saved model is the project's archive: JSON + npz, read without unpickling
    assert isinstance(NNEstimator.load(path), NNClassifier)


def test_a_model_alone_saves_and_loads(vectors, tmp_path):
    _, test = vectors
    model = NNClassifierModel(mlp(), [64], batchSize=50)
    model.write().overwrite().save(str(tmp_path / "m"))
    again = DLClassifierModel.load(str(tmp_path / "m"))
    assert again.getBatchSize() == 50
    a = [r.prediction for r in model.transform(test).orderBy("id").collect()]
    b = [r.prediction for r in again.transform(test).orderBy("id").collect()]
    assert a == b


# ---------------------------------------------------------------------- bad input
def test_missing_and_mistyped_columns(spark, vectors):
    train, _ = vectors
    with pytest.raises(SparkDataError, match="no column 'pixels' for featuresCol"):
        classifier(featuresCol="pixels").fit(train)
    with pytest.raises(SparkDataError, match="no column 'y' for labelCol"):
        classifier(labelCol="y").fit(train)
    words = spark.createDataFrame([("a b", 1.0)], ["features", "label"])
    with pytest.raises(SparkDataError, match="'features' has type string"):
        classifier().fit(words)
    with pytest.raises(SparkDataError, match="no features column 'pixels'"):
        NNClassifierModel(mlp(), featuresCol="pixels").transform(train)


def test_wrong_feature_size(spark, vectors):
    train, _ = vectors
    with pytest.raises(SparkDataError, match="65 .*featuresCol|featuresCol.*65|fit feature_shape"):
        classifier().setFeatureSize([65]).fit(train)
    short = spark.createDataFrame([(Vectors.dense(np.zeros(30)), 1.0)] * 4,
                                  ["features", "label"])
    with pytest.raises(SparkDataError, match="model cannot take the records of featuresCol "
                                             "'features' \\(shape \\(30,\\)"):
        NNClassifier(mlp(), ClassNLLCriterion(), showProgress=False).fit(short)
    with raises_from_spark("features"):
        NNClassifierModel(mlp()).transform(short).collect()


@pytest.mark.parametrize("label, message", [
    (10.0, "holds 10.0 \\(row 2 of partition 0\\); the model outputs 10 classes"),
    (-1.0, "holds -1.0 \\(row 2 of partition 0\\)"),
    (1.5, "holds 1.5 \\(row 2 of partition 0\\)")])
def test_labels_out_of_range_or_not_whole(spark, label, message):
    rows = [(Vectors.dense(np.full(64, i / 10)), float(i)) for i in range(5)]
    rows[2] = (rows[2][0], label)
    df = spark.createDataFrame(rows, ["features", "label"]).repartition(1)
    with pytest.raises(SparkDataError, match="the label column 'label' " + message):
        classifier().fit(df)


def test_a_string_label_column_or_a_null_row(spark):
    rows = [(Vectors.dense(np.zeros(64)), "cat")] * 3
    with pytest.raises(SparkDataError, match="label"):
        classifier().fit(spark.createDataFrame(rows, ["features", "label"]))
    rows = [([0.0] * 64, 1.0), (None, 1.0), ([0.0] * 64, 2.0)]
    df = spark.createDataFrame(rows, "features array<double>, label double").repartition(1)
    with pytest.raises(SparkDataError, match="featuresCol='features'.*row 1 .*null"):
        classifier().fit(df)
    with raises_from_spark("null in row 1"):
        NNClassifierModel(mlp()).transform(df).collect()


def test_the_module_exports_bigdl_names():
    assert set(ml.__all__) == {"NNEstimator", "NNModel", "NNClassifier", "NNClassifierModel",
                               "DLEstimator", "DLModel", "DLClassifier", "DLClassifierModel"}
