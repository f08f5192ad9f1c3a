"""``workbench.spark.bagging``: under-sampling + bagging for a heavily unbalanced binary label.

BigDL's fraud-detection use case (``org.apache.spark.ml.ensemble.Bagging`` with
``setNumModels``, after a ``StratifiedSampler``): when 1 row in 200 is a positive, a model
trained on the raw rows learns mostly the negatives.  Instead, train ``numModels`` small models,
each on a *balanced* sample (every positive + an equal number of negatives drawn at random),
and average their probabilities.  Every negative gets a chance to be seen by some member, and
the average of members that saw different negatives is steadier than any one of them::

    from pyspark.ml import Pipeline
    from workbench.spark.bagging import BaggingClassifier

    bagging = BaggingClassifier(featuresCol="features", labelCol="label", numModels=10,
                                hiddenLayers=[16], learningRate=0.01, maxEpoch=20, seed=7)
    model = Pipeline(stages=[assembler, scaler, bagging]).fit(train_df)
    model.transform(test_df)          # + rawPrediction, probability (vectors [p0, p1]), prediction
    BinaryClassificationEvaluator(metricName="areaUnderPR").evaluate(model.transform(test_df))

- ``UnderSampler``: a Transformer; ``transform(df)`` gives ``numSamples`` balanced samples of
  ``df`` as rows tagged with a ``sample`` column (0 .. numSamples - 1), drawn on Spark.
- ``BaggingClassifier`` → ``BaggingClassificationModel``: the ensemble of MLPs
  (``hiddenLayers`` with ReLU, two LogSoftMax outputs), trained one member per Spark task.

Labels are 0 (negative) and 1 (positive) as doubles or ints, as ``StringIndexer`` makes them;
anything else (another value, a null, a string column) is an error naming the column and the
values found, before any training.

Saved instances are pyspark's layout: ``metadata/`` (``DefaultParamsWriter``) and, for the
model, ``data/``: a parquet table of ``(member, content)``, each member in the project's safe
model format (``workbench.io``; nothing is pickled).
"""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator, Model, Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (HasFeaturesCol, HasLabelCol, HasPredictionCol,
                                     HasProbabilityCol, HasRawPredictionCol, HasSeed,
                                     HasThreshold)
from pyspark.ml.util import (DefaultParamsReadable, DefaultParamsReader, DefaultParamsWritable,
                             DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from .. import io
from .data import SparkDataError
from .params import positive_float, positive_int

__all__ = ["UnderSampler", "BaggingClassifier", "BaggingClassificationModel", "member_mlp",
           "binary_label_counts"]

FORMAT = "workbench-bagging"
FORMAT_VERSION = 1
# negatives drawn per sample before the exact cut: the expected count stays this many standard
# deviations (plus a constant) above what is needed, so a sample falls short essentially never
_OVERDRAW_SIGMAS = 6.0


# ---------------------------------------------------------------------- checks


def _hidden_layers(value):
    sizes = TypeConverters.toListInt(value)
    if any(s < 1 for s in sizes):
        raise ValueError(f"hiddenLayers must be positive ints (sizes of the hidden layers), got "
                         f"{value!r}")
    return sizes


def binary_label_counts(df, label_col, owner="BaggingClassifier"):
    """``(positives, negatives)`` in ``df[label_col]``, checked to be a binary 0/1 label.

    One Spark job.  Raises ``SparkDataError`` naming the column when it is missing, not
    numeric, holds nulls or values other than 0 and 1 (the message lists some of them), or has
    no positive or no negative row.
    """
    from pyspark.sql.types import NumericType
    fields = {f.name: f.dataType for f in df.schema.fields}
    if label_col not in fields:
        raise SparkDataError(f"{owner}: no label column {label_col!r} (columns: {list(fields)}); "
                             "pass labelCol=...")
    if not isinstance(fields[label_col], NumericType):
        raise SparkDataError(f"{owner}: the label column {label_col!r} has type "
                             f"{fields[label_col].simpleString()}; expected numbers 0 and 1 "
                             "(index a string label with StringIndexer)")
    label = F.col(label_col)
    odd = label.isNull() | ~label.isin(0, 1)
    row = df.agg(F.sum(F.when(label == 1, 1).otherwise(0)).alias("pos"),
                 F.sum(F.when(label == 0, 1).otherwise(0)).alias("neg"),
                 F.sum(F.when(odd, 1).otherwise(0)).alias("odd"),
                 F.collect_set(F.when(odd, F.coalesce(label.cast("string"), F.lit("null"))))
                 .alias("odd_values")).first()
    pos, neg, n_odd = int(row.pos or 0), int(row.neg or 0), int(row.odd or 0)
    if n_odd:
        values = sorted(row.odd_values)[:5]
        raise SparkDataError(f"{owner}: the label column {label_col!r} must hold 0 (negative) "
                             f"and 1 (positive) only; {n_odd} rows hold other values, e.g. "
                             f"{', '.join(values)}")
    if pos == 0 or neg == 0:
        raise SparkDataError(f"{owner}: the label column {label_col!r} has {pos} positive (1) "
                             f"and {neg} negative (0) rows; both classes are needed")
    return pos, neg


def _check_features(df, features_col, owner):
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, NumericType
    fields = {f.name: f.dataType for f in df.schema.fields}
    if features_col not in fields:
        raise SparkDataError(f"{owner}: no features column {features_col!r} (columns: "
                             f"{list(fields)}); pass featuresCol=...")
    t = fields[features_col]
    if isinstance(t, VectorUDT):
        return "vector"
    if isinstance(t, ArrayType) and isinstance(t.elementType, NumericType):
        return "array"
    raise SparkDataError(f"{owner}: the features column {features_col!r} has type "
                         f"{t.simpleString()}; expected a vector (VectorAssembler) or an array "
                         "of numbers")


# ---------------------------------------------------------------------- the sampler
class _SamplerParams(HasLabelCol, HasSeed):
    negativeRatio = Param(Params._dummy(), "negativeRatio", "negatives per positive in each "
                          "sample (1.0: balanced)",
                          typeConverter=positive_float("negativeRatio"))

    def getNegativeRatio(self):
        return self.getOrDefault(self.negativeRatio)


class UnderSampler(Transformer, _SamplerParams, DefaultParamsReadable, DefaultParamsWritable):
    """Draws ``numSamples`` balanced samples of a DataFrame with a 0/1 label.

    Each sample holds every positive row and ``ceil(negativeRatio * positives)`` negative rows
    drawn without replacement, independently of the other samples (a negative may be in several
    samples, or in none).  The draw runs on Spark: each negative is offered to each sample with
    a probability a little above what is needed, then exactly the needed number is kept per
    sample (a window over a random key), so only about ``numSamples x 2 x positives`` rows are
    ever materialized, whatever the number of negatives.  Seeded: the same data in the same
    partitions gives the same samples.

    Args (keyword params):
        labelCol: the 0/1 label column (default "label").
        numSamples: how many samples (default 10).
        negativeRatio: negatives per positive (default 1.0).
        sampleCol: the output column holding the sample id (default "sample").
        seed: the seed of the draw (default 7).

    Output: the rows of every sample (a row repeated once per sample it is in) with the int
    column ``sampleCol``.  Raises ``SparkDataError`` for a missing or non-binary label column.
    """

    numSamples = Param(Params._dummy(), "numSamples", "how many balanced samples to draw "
                       "(one per ensemble member)", typeConverter=positive_int("numSamples"))
    sampleCol = Param(Params._dummy(), "sampleCol", "the output column: which sample a row "
                      "belongs to (0 .. numSamples - 1)", typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, labelCol="label", numSamples=10, negativeRatio=1.0,
                 sampleCol="sample", seed=7):
        super().__init__()
        self._setDefault(labelCol="label", numSamples=10, negativeRatio=1.0,
                         sampleCol="sample", seed=7)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labelCol="label", numSamples=10, negativeRatio=1.0,
                  sampleCol="sample", seed=7):
        return self._set(**self._input_kwargs)

    def getNumSamples(self):
        return self.getOrDefault(self.numSamples)

    def setNumSamples(self, value):
        return self._set(numSamples=value)

    def setNegativeRatio(self, value):
        return self._set(negativeRatio=value)

    def setLabelCol(self, value):
        return self._set(labelCol=value)

    def setSampleCol(self, value):
        return self._set(sampleCol=value)

    def getSampleCol(self):
        return self.getOrDefault(self.sampleCol)

    def setSeed(self, value):
        return self._set(seed=value)

    def _transform(self, dataset):
        owner = "UnderSampler"
        label_col, sample_col = self.getLabelCol(), self.getSampleCol()
        if sample_col in dataset.columns:
            raise SparkDataError(f"{owner}: the output column {sample_col!r} already exists "
                                 f"(columns: {dataset.columns}); pass sampleCol=...")
        return self._draw(dataset, *binary_label_counts(dataset, label_col, owner))

    def _draw(self, dataset, positives, negatives):
        """The samples of ``dataset``, whose label was already counted (``fit`` counts it
        once for its own check and passes the counts on, saving a Spark job)."""
        from pyspark.sql import Window
        label_col, sample_col = self.getLabelCol(), self.getSampleCol()
        k, seed = self.getNumSamples(), int(self.getSeed()) % (2 ** 31)
        need = min(negatives, math.ceil(self.getNegativeRatio() * positives))
        offer = min(1.0, (need + _OVERDRAW_SIGMAS * math.sqrt(need) + 10) / negatives)
        spark = dataset.sparkSession
        samples = spark.range(k).select(F.col("id").cast("int").alias(sample_col))
        label = F.col(label_col)
        pos = dataset.where(label == 1).crossJoin(samples)
        neg = dataset.where(label == 0).crossJoin(F.broadcast(samples)) \
            .withColumn("__key", F.rand(seed)).where(F.col("__key") < offer)
        # the kept ones: the `need` smallest keys of each sample (uniform among the offered)
        rank = F.row_number().over(Window.partitionBy(sample_col).orderBy("__key"))
        neg = neg.withColumn("__rank", rank).where(F.col("__rank") <= need) \
            .drop("__key", "__rank")
        return pos.unionByName(neg)


# ---------------------------------------------------------------------- the members
def member_mlp(input_size, hidden_layers):
    """One ensemble member: ``Linear -> ReLU`` per hidden layer, then ``Linear(., 2) ->
    LogSoftMax`` (train with ``ClassNLLCriterion``).

    Args:
        input_size: features per row.
        hidden_layers: sizes of the hidden layers (``[]``: logistic regression).

    Input shape: ``(N, input_size)``.  Output shape: ``(N, 2)`` log-probabilities.
    """
    from ..nn import Linear, LogSoftMax, ReLU, Sequential
    model = Sequential()
    size = int(input_size)
    for hidden in hidden_layers:
        model.add(Linear(size, int(hidden))).add(ReLU())
        size = int(hidden)
    return model.add(Linear(size, 2)).add(LogSoftMax())


def _module_bytes(module):
    with tempfile.TemporaryDirectory(prefix="workbench-bagging-") as tmp:
        path = os.path.join(tmp, "member.bigdl")
        io.save_model(module, path)
        with open(path, "rb") as f:
            return f.read()


def _module_from_bytes(data):
    with tempfile.TemporaryDirectory(prefix="workbench-bagging-") as tmp:
        path = os.path.join(tmp, "member.bigdl")
        with open(path, "wb") as f:
            f.write(data)
        return io.load_model(path)


def _member_seed(seed, member):
    return (int(seed) + 7919 * int(member)) % (2 ** 31)


def _train_member(spec, member, rows):
    """The body of member ``member``'s Spark task: train its MLP on its balanced sample.

    ``rows``: ``(features list, label)`` pairs.  They are sorted first: the order a shuffle
    delivers them in varies between runs, and the members must not."""
    from ..nn import ClassNLLCriterion
    from ..nn import random as nn_random
    from ..optim import Adam, MaxEpoch, Optimizer
    rows = sorted(rows, key=lambda r: (r[1], r[0]))
    X = np.asarray([r[0] for r in rows], dtype=np.float32)
    y = np.asarray([r[1] for r in rows], dtype=np.float32)
    seed = _member_seed(spec["seed"], member)
    nn_random.set_seed(seed)
    model = member_mlp(X.shape[1], spec["hidden"])
    Optimizer(model, (X, y), ClassNLLCriterion(), MaxEpoch(spec["epochs"]),
              min(spec["batch"], len(X)), Adam(spec["lr"]), seed=seed,
              progress=False).optimize()
    return member, _module_bytes(model), int((y == 1).sum()), int((y == 0).sum())


# ---------------------------------------------------------------------- the estimator
class _BaggingParams(HasFeaturesCol, HasPredictionCol, HasProbabilityCol, HasRawPredictionCol,
                     HasThreshold):
    """Params shared by the estimator and its model."""

    def _init_output_params(self):
        self._setDefault(featuresCol="features", predictionCol="prediction",
                         probabilityCol="probability", rawPredictionCol="rawPrediction",
                         threshold=0.5)

    def setFeaturesCol(self, value):
        return self._set(featuresCol=value)

    def setPredictionCol(self, value):
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value):
        return self._set(probabilityCol=value)

    def setRawPredictionCol(self, value):
        return self._set(rawPredictionCol=value)

    def setThreshold(self, value):
        return self._set(threshold=value)


class BaggingClassifier(Estimator, _BaggingParams, _SamplerParams, DefaultParamsReadable,
                        DefaultParamsWritable):
    """Under-sampling + bagging: ``numModels`` MLPs, each trained on a balanced sample.

    ``fit`` draws the samples with ``UnderSampler`` on Spark, then trains the members in
    parallel: the sampled rows are partitioned by member (one partition, so one Spark task, per
    member) and each task trains its member in-process with the local ``Optimizer``, as
    ``workbench.tune`` runs one trial per task.  Why not the distributed (all-reduce)
    ``Optimizer`` per member: a member's sample is small (twice the positives: a few thousand
    rows at most), where synchronising replicas costs more than the math, and K independent
    trainings are embarrassingly parallel, so K tasks keep every executor core busy with no
    communication at all.  ``numModels`` above the cores just queues the tasks.

    Args (keyword params):
        featuresCol: a vector (``VectorAssembler``) or array-of-numbers column.
        labelCol: the 0/1 label (default "label").
        numModels: ensemble members (default 10; BigDL's ``Bagging.setNumModels``).
        negativeRatio: negatives per positive in each member's sample (default 1.0).
        hiddenLayers: hidden layer sizes of each member (default ``[16]``).
        learningRate: Adam's learning rate (default 0.01).
        maxEpoch: epochs each member trains (default 20).
        batchSize: mini-batch size of each member (default 32).
        seed: seeds the samples, each member's initial weights and its shuffling (default 7).
        threshold: ``prediction`` is 1 when the averaged fraud probability exceeds it (0.5).
        predictionCol, probabilityCol, rawPredictionCol: output columns of the model.

    ``fit`` returns a ``BaggingClassificationModel``.  Bad input (a missing or non-numeric
    column, a label that is not 0/1) raises ``SparkDataError`` before any training.
    """

    hiddenLayers = Param(Params._dummy(), "hiddenLayers", "sizes of the hidden layers of each "
                         "member MLP", typeConverter=_hidden_layers)
    numModels = Param(Params._dummy(), "numModels", "number of ensemble members, each trained "
                      "on its own balanced sample", typeConverter=positive_int("numModels"))
    learningRate = Param(Params._dummy(), "learningRate", "Adam's learning rate",
                         typeConverter=positive_float("learningRate"))
    maxEpoch = Param(Params._dummy(), "maxEpoch", "epochs each member trains",
                     typeConverter=positive_int("maxEpoch"))
    batchSize = Param(Params._dummy(), "batchSize", "mini-batch size of each member",
                      typeConverter=positive_int("batchSize"))

    @keyword_only
    def __init__(self, *, featuresCol="features", labelCol="label", predictionCol="prediction",
                 probabilityCol="probability", rawPredictionCol="rawPrediction", numModels=10,
                 negativeRatio=1.0, hiddenLayers=(16,), learningRate=0.01, maxEpoch=20,
                 batchSize=32, seed=7, threshold=0.5):
        super().__init__()
        self._init_output_params()
        self._setDefault(labelCol="label", numModels=10, negativeRatio=1.0, hiddenLayers=[16],
                         learningRate=0.01, maxEpoch=20, batchSize=32, seed=7)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, featuresCol="features", labelCol="label", predictionCol="prediction",
                  probabilityCol="probability", rawPredictionCol="rawPrediction", numModels=10,
                  negativeRatio=1.0, hiddenLayers=(16,), learningRate=0.01, maxEpoch=20,
                  batchSize=32, seed=7, threshold=0.5):
        return self._set(**self._input_kwargs)

    def setLabelCol(self, value):
        return self._set(labelCol=value)

    def setNumModels(self, value):
        return self._set(numModels=value)

    def getNumModels(self):
        return self.getOrDefault(self.numModels)

    def setNegativeRatio(self, value):
        return self._set(negativeRatio=value)

    def setHiddenLayers(self, value):
        return self._set(hiddenLayers=value)

    def getHiddenLayers(self):
        return self.getOrDefault(self.hiddenLayers)

    def setLearningRate(self, value):
        return self._set(learningRate=value)

    def getLearningRate(self):
        return self.getOrDefault(self.learningRate)

    def setMaxEpoch(self, value):
        return self._set(maxEpoch=value)

    def getMaxEpoch(self):
        return self.getOrDefault(self.maxEpoch)

    def setBatchSize(self, value):
        return self._set(batchSize=value)

    def getBatchSize(self):
        return self.getOrDefault(self.batchSize)

    def setSeed(self, value):
        return self._set(seed=value)

    def sampler(self):
        """The ``UnderSampler`` ``fit`` draws the members' samples with."""
        return UnderSampler(labelCol=self.getLabelCol(), numSamples=self.getNumModels(),
                            negativeRatio=self.getNegativeRatio(), sampleCol="__member",
                            seed=self.getSeed())

    def _fit(self, dataset):
        from pyspark.ml.functions import vector_to_array
        owner = "BaggingClassifier.fit"
        features_col, label_col = self.getFeaturesCol(), self.getLabelCol()
        kind = _check_features(dataset, features_col, owner)
        counts = binary_label_counts(dataset, label_col, owner)
        k = self.getNumModels()
        features = vector_to_array(F.col(features_col)) if kind == "vector" else \
            F.col(features_col).cast("array<double>")
        sampled = self.sampler()._draw(dataset.select(features_col, label_col), *counts) \
            .select("__member", features.alias("x"), F.col(label_col).cast("double").alias("y"))
        spec = {"seed": int(self.getSeed()), "hidden": list(self.getHiddenLayers()),
                "epochs": self.getMaxEpoch(), "batch": self.getBatchSize(),
                "lr": self.getLearningRate()}

        def train(part, rows):
            rows = list(rows)
            if rows:  # one member per partition (the identity partitioner below)
                yield _train_member(spec, part, [(list(r[1][0]), r[1][1]) for r in rows])

        sc = dataset.sparkSession.sparkContext
        sc.setJobDescription(f"workbench bagging: {k} members, one task each")
        try:
            trained = sampled.rdd.map(lambda r: (int(r[0]), (r[1], r[2]))) \
                .partitionBy(k, lambda member: member) \
                .mapPartitionsWithIndex(train).collect()
        finally:
            sc.setJobDescription(None)
        if sorted(m for m, *_ in trained) != list(range(k)):
            raise RuntimeError(f"{owner}: expected {k} trained members, got "
                               f"{sorted(m for m, *_ in trained)}")
        trained.sort()
        members = [_module_from_bytes(content) for _, content, _, _ in trained]
        model = BaggingClassificationModel(members)
        model.sample_sizes = [(pos, neg) for _, _, pos, neg in trained]
        return self._copyValues(model)


# ---------------------------------------------------------------------- the model
class BaggingClassificationModel(Model, _BaggingParams, MLWritable, MLReadable):
    """The fitted ensemble: the members' probabilities, averaged.

    Args:
        members: the member ``Module``s, each mapping ``(N, features)`` to ``(N, 2)``
            log-probabilities (as ``member_mlp`` builds them).

    ``transform`` adds ``rawPredictionCol`` and ``probabilityCol`` (both the averaged
    ``[P(0), P(1)]`` as a vector, so ``BinaryClassificationEvaluator`` ranks by ``P(1)``) and
    ``predictionCol`` (1.0 when ``P(1) > threshold``).  Rows are scored in Arrow batches on the
    executors by one module holding every member (``workbench.spark.scoring``).

    Attributes:
        members: the member modules.
        sample_sizes: ``[(positives, negatives)]`` each member was trained on (after ``fit``).
    """

    def __init__(self, members=None):
        super().__init__()
        self._init_output_params()
        self.members = list(members or [])
        self.sample_sizes = None

    def getMembers(self):
        return list(self.members)

    @property
    def numModels(self):
        return len(self.members)

    def ensemble(self):
        """One ``Module``: every member's probabilities (``exp`` of its log-probabilities),
        averaged: ``(N, features)`` -> ``(N, 2)``."""
        from ..nn import CAveTable, ConcatTable, Exp, Sequential
        branches = ConcatTable()
        for member in self.members:
            branches.add(Sequential().add(member).add(Exp()))
        return Sequential().add(branches).add(CAveTable())

    def _transform(self, dataset):
        from pyspark.ml.functions import array_to_vector
        from .scoring import transform
        owner = "BaggingClassificationModel.transform"
        if not self.members:
            raise ValueError(f"{owner}: the model has no members")
        _check_features(dataset, self.getFeaturesCol(), owner)
        for col in (self.getRawPredictionCol(), self.getProbabilityCol(),
                    self.getPredictionCol()):
            if col in dataset.columns:
                raise SparkDataError(f"{owner}: the output column {col!r} already exists "
                                     f"(columns: {dataset.columns})")
        scratch = "__bagging_probability"
        scored = transform(dataset, self.ensemble(), self.getFeaturesCol(), scratch,
                           output="outputs")
        probability = array_to_vector(F.col(scratch).cast("array<double>"))
        return scored \
            .withColumn(self.getRawPredictionCol(), probability) \
            .withColumn(self.getProbabilityCol(), probability) \
            .withColumn(self.getPredictionCol(),
                        (F.col(scratch)[1] > self.getThreshold()).cast("double")) \
            .drop(scratch)

    def write(self):
        return _ModelWriter(self)

    @classmethod
    def read(cls):
        return _ModelReader()


class _ModelWriter(MLWriter):
    """``metadata/`` through ``DefaultParamsWriter``; ``data/``: ``(member, content)`` rows,
    each content a member in ``workbench.io``'s model format."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path):
        inst = self.instance
        extra = {"workbench": {"format": FORMAT, "version": FORMAT_VERSION,
                               "members": len(inst.members)}}
        # a SparkContext: what pyspark 3.5 takes (4.x takes a context or a session)
        DefaultParamsWriter.saveMetadata(inst, path, self.sparkSession.sparkContext,
                                         extraMetadata=extra)
        rows = [(i, bytearray(_module_bytes(m))) for i, m in enumerate(inst.members)]
        self.sparkSession.createDataFrame(rows, "member int, content binary").coalesce(1) \
            .write.parquet(os.path.join(path, "data"))


class _ModelReader(MLReader):
    def load(self, path):
        spark = self.sparkSession or SparkSession.active()
        meta = DefaultParamsReader.loadMetadata(path, spark.sparkContext)
        own = meta.get("workbench", {})
        if own.get("format") != FORMAT:
            raise io.ModelFileError(f"{path}: not a saved BaggingClassificationModel")
        if int(own.get("version", 0)) > FORMAT_VERSION:
            raise io.ModelFileError(f"{path}: saved by a newer version (format version "
                                    f"{own['version']})")
        rows = sorted((r["member"], bytes(r["content"]))
                      for r in spark.read.parquet(os.path.join(path, "data")).collect())
        if [m for m, _ in rows] != list(range(int(own.get("members", len(rows))))):
            raise io.ModelFileError(f"{path}: expected members 0 .. {own.get('members')}, "
                                    f"found {[m for m, _ in rows]}")
        instance = BaggingClassificationModel([_module_from_bytes(c) for _, c in rows])
        instance._resetUid(meta["uid"])
        DefaultParamsReader.getAndSetParams(instance, meta)
        return instance
