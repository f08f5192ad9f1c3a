"""``workbench.spark.ml``: a workbench model as a Spark ML Estimator and Transformer.

BigDL's names and argument order (``bigdl.dllib.nnframes``; the older ``DL*`` names are
aliases)::

    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler, StandardScaler
    from workbench.spark.ml import NNClassifier

    classifier = NNClassifier(model, ClassNLLCriterion(), [64]) \\
        .setBatchSize(32).setMaxEpoch(10).setLearningRate(0.1)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=pixels, outputCol="raw"),
                                StandardScaler(inputCol="raw", outputCol="features"),
                                classifier])
    fitted = pipeline.fit(train_df)            # the distributed Optimizer
    fitted.transform(test_df)                  # + a "prediction" column (0-based class)
    fitted.write().overwrite().save(path)      # PipelineModel.load(path) gives it back

- ``NNEstimator(model, criterion, feature_size, label_size)`` → ``NNModel``: the prediction
  column holds the model's raw output (an array of floats, flattened).
- ``NNClassifier(model, criterion, feature_size)`` → ``NNClassifierModel``: labels are Spark
  ML's 0-based class indices (doubles, as ``StringIndexer`` makes them) and the prediction is
  the 0-based class, a double.

Hyperparameters are real pyspark.ml ``Param``s (``ParamGridBuilder``, ``CrossValidator`` and
``TrainValidationSplit`` vary them); the objects a model needs (the module, the criterion, the
optim method, triggers, validation, summaries) are plain attributes with BigDL's setters.
``fit`` trains a copy of the model, so one estimator can be fit many times.

Saved instances are pyspark's layout: ``metadata/`` (``DefaultParamsWriter``) and ``data/``,
a parquet table of ``(name, content)`` files written and read through Spark (so any Hadoop
path works) holding the model in the project's safe format (JSON architecture + ``.npz``
weights, see ``workbench.io``) and the criterion / optim method as JSON configs.  Nothing is
ever pickled into a saved file.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile

import numpy as np
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed
from pyspark.ml.util import (DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader,
                             MLWritable, MLWriter)
from pyspark.sql import SparkSession

from .. import io
from .._config import ConfigError, from_config
from ..nn.criteria.criterion import Criterion
from ..nn.module import Module
from ..optim.methods import SGD, OptimMethod
from ..optim.loop import TrainingError
from ..optim.optimizer import Optimizer
from ..optim.triggers import MaxEpoch, Trigger
from .data import DataSet, SparkDataError
from .params import non_negative_float, positive_int

__all__ = ["NNEstimator", "NNModel", "NNClassifier", "NNClassifierModel", "DLEstimator",
           "DLModel", "DLClassifier", "DLClassifierModel"]


# ---------------------------------------------------------------------- params
def _to_columns(value):
    """One column name, or a non-empty list of them (several numeric feature columns)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"featuresCol must be a column name or a list of column names, got "
                    f"{value!r}")


def _to_size(value):
    """A feature / label size: a list of positive ints (``[1, 28, 28]``)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    sizes = TypeConverters.toListInt(value)
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"a size must be a non-empty list of positive ints, got {value!r}")
    return sizes


class _NNParams(HasFeaturesCol, HasPredictionCol):
    """Params shared by the estimators and the models."""

    # HasFeaturesCol takes one name; a list of numeric columns works too
    featuresCol = Param(Params._dummy(), "featuresCol",
                        "features column name: a vector or array column, or a list of numeric "
                        "columns", typeConverter=_to_columns)
    batchSize = Param(Params._dummy(), "batchSize",
                      "global mini-batch size of training; batch size of scoring",
                      typeConverter=positive_int("batchSize"))
    featureSize = Param(Params._dummy(), "featureSize",
                        "the shape each record's features are reshaped to, e.g. [1, 28, 28] "
                        "(default: as they are in the column)", typeConverter=_to_size)

    def _init_nn_params(self):
        self._setDefault(featuresCol="features", predictionCol="prediction", batchSize=32)

    def setFeaturesCol(self, value):
        """Sets :py:attr:`featuresCol` (one column, or a list of numeric columns)."""
        return self._set(featuresCol=value)

    def setPredictionCol(self, value):
        """Sets :py:attr:`predictionCol`."""
        return self._set(predictionCol=value)

    def setBatchSize(self, value):
        """Sets :py:attr:`batchSize`."""
        return self._set(batchSize=value)

    def getBatchSize(self):
        return self.getOrDefault(self.batchSize)

    def setFeatureSize(self, value):
        """Sets :py:attr:`featureSize` (BigDL's ``feature_size``)."""
        return self._set(featureSize=value)

    def getFeatureSize(self):
        """The feature size, or None when the features are used as they are."""
        return self.getOrDefault(self.featureSize) if self.isDefined(self.featureSize) else None

    def _columns(self):
        cols = self.getFeaturesCol()
        return [cols] if isinstance(cols, str) else list(cols)


class _EstimatorParams(_NNParams, HasLabelCol, HasSeed):
    maxEpoch = Param(Params._dummy(), "maxEpoch", "number of epochs to train (unless an "
                     "end trigger is set with setEndWhen)", typeConverter=positive_int("maxEpoch"))
    learningRate = Param(Params._dummy(), "learningRate",
                         "learning rate of the optim method (when set, it replaces the rate "
                         "of the method given to setOptimMethod)",
                         typeConverter=non_negative_float("learningRate"))
    learningRateDecay = Param(Params._dummy(), "learningRateDecay",
                              "learning rate decay of the optim method (when set, it replaces "
                              "the decay of the method given to setOptimMethod)",
                              typeConverter=non_negative_float("learningRateDecay"))
    cachingSample = Param(Params._dummy(), "cachingSample",
                          "cache the converted records (always true here: the training set is "
                          "converted to numpy blocks and cached once per fit)",
                          typeConverter=TypeConverters.toBoolean)
    labelSize = Param(Params._dummy(), "labelSize", "the size of each record's label (BigDL's "
                      "label_size; labels are used as they are in the column)",
                      typeConverter=_to_size)
    showProgress = Param(Params._dummy(), "showProgress", "print the console progress of "
                         "training on the driver", typeConverter=TypeConverters.toBoolean)

    def _init_estimator_params(self):
        self._init_nn_params()
        # HasSeed's default hashes the class name, which differs between processes: a fixed
        # default keeps fits reproducible
        self._setDefault(labelCol="label", maxEpoch=10, learningRate=1e-3,
                         learningRateDecay=0.0, cachingSample=True, showProgress=True, seed=1)

    def setLabelCol(self, value):
        """Sets :py:attr:`labelCol`."""
        return self._set(labelCol=value)

    def setMaxEpoch(self, value):
        """Sets :py:attr:`maxEpoch`."""
        return self._set(maxEpoch=value)

    def getMaxEpoch(self):
        return self.getOrDefault(self.maxEpoch)

    def setLearningRate(self, value):
        """Sets :py:attr:`learningRate`."""
        return self._set(learningRate=value)

    def getLearningRate(self):
        return self.getOrDefault(self.learningRate)

    def setLearningRateDecay(self, value):
        """Sets :py:attr:`learningRateDecay`."""
        return self._set(learningRateDecay=value)

    def getLearningRateDecay(self):
        return self.getOrDefault(self.learningRateDecay)

    def setCachingSample(self, value):
        """Sets :py:attr:`cachingSample` (accepted for BigDL; the data is always cached)."""
        return self._set(cachingSample=value)

    def isCachingSample(self):
        return self.getOrDefault(self.cachingSample)

    getCachingSample = isCachingSample

    def setLabelSize(self, value):
        """Sets :py:attr:`labelSize` (BigDL's ``label_size``)."""
        return self._set(labelSize=value)

    def getLabelSize(self):
        return self.getOrDefault(self.labelSize) if self.isDefined(self.labelSize) else None

    def setShowProgress(self, value):
        """Sets :py:attr:`showProgress`."""
        return self._set(showProgress=value)

    def getShowProgress(self):
        return self.getOrDefault(self.showProgress)

    def setSeed(self, value):
        """Sets :py:attr:`seed` (the per-epoch shuffling of the training set)."""
        return self._set(seed=value)


_ESTIMATOR_KEYWORDS = ("featuresCol", "labelCol", "predictionCol", "batchSize", "maxEpoch",
                       "learningRate", "learningRateDecay", "cachingSample", "featureSize",
                       "labelSize", "seed", "showProgress")
_MODEL_KEYWORDS = ("featuresCol", "predictionCol", "batchSize", "featureSize")


def _check_keywords(owner, given, allowed):
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise TypeError(f"{owner}: unexpected keyword arguments {unknown} (params: "
                        f"{list(allowed)})")


def _check_bigdl_type(owner, bigdl_type):
    if bigdl_type not in ("float", "double"):
        raise ValueError(f"{owner}: bigdl_type must be 'float' or 'double', got {bigdl_type!r}")


def _check_module(owner, model):
    if not isinstance(model, Module):
        raise TypeError(f"{owner}: model must be a workbench Module, got "
                        f"{type(model).__name__}")


def _size_argument(owner, value, name):
    """BigDL passes a size (or, in nnframes, a Preprocessing); we take sizes."""
    if value is None:
        return None
    try:
        return _to_size(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a list of ints such as [1, 28, 28], got "
                        f"{value!r}") from None


# ---------------------------------------------------------------------- estimators
class NNEstimator(Estimator, _EstimatorParams, MLWritable, MLReadable):
    """Trains a workbench model on a DataFrame with the distributed ``Optimizer``.

    Args:
        model: the ``Module`` to train (``fit`` trains a copy; the estimator keeps it as given).
        criterion: the loss, e.g. ``MSECriterion()``.
        feature_size: reshape each record's features to this shape, e.g. ``[1, 28, 28]``
            (BigDL's ``feature_preprocessing`` as a size; default: as they are).
        label_size: the size of each label (BigDL's ``label_preprocessing`` as a size).
        bigdl_type: ``"float"`` (default) or ``"double"``: the model's float type during fit.
        **params: any param by name: ``featuresCol``, ``labelCol``, ``predictionCol``,
            ``batchSize``, ``maxEpoch``, ``learningRate``, ``learningRateDecay``,
            ``featureSize``, ``labelSize``, ``seed``, ``cachingSample``, ``showProgress``.

    Input: ``featuresCol`` is a vector column, an array column, or a list of numeric columns;
    ``labelCol`` a number or an array of numbers.  ``fit`` returns an ``NNModel``.
    """

    def __init__(self, model=None, criterion=None, feature_size=None, label_size=None,
                 jvalue=None, bigdl_type="float", *, feature_preprocessing=None,
                 label_preprocessing=None, **params):
        super().__init__()
        owner = type(self).__name__
        if model is not None:
            _check_module(owner, model)
        if criterion is not None and not isinstance(criterion, Criterion):
            raise TypeError(f"{owner}: criterion must be a Criterion, got "
                            f"{type(criterion).__name__}")
        _check_bigdl_type(owner, bigdl_type)
        self.model, self.criterion, self.bigdl_type = model, criterion, bigdl_type
        self.optimMethod = None
        self.endWhen = None
        self.validation_config = None
        self.checkpoint_config = None
        self.train_summary = None
        self.validation_summary = None
        self.listeners = []
        self.gradient_clipping = []
        self._init_estimator_params()
        feature_size = feature_size if feature_size is not None else feature_preprocessing
        label_size = label_size if label_size is not None else label_preprocessing
        feature_size = _size_argument(owner, feature_size, "feature_size")
        label_size = _size_argument(owner, label_size, "label_size")
        if feature_size is not None:
            self._set(featureSize=feature_size)
        if label_size is not None:
            self._set(labelSize=label_size)
        _check_keywords(owner, params, _ESTIMATOR_KEYWORDS)
        self._set(**params)

    def setParams(self, **params):
        """Set params by name (``featuresCol=..., batchSize=..., maxEpoch=...``)."""
        _check_keywords(f"{type(self).__name__}.setParams", params, _ESTIMATOR_KEYWORDS)
        return self._set(**params)

    # ------------------------------------------------------------------ BigDL's setters
    def setOptimMethod(self, value):
        """The optim method (default ``SGD`` with ``learningRate``); ``fit`` uses a fresh copy.
        A ``learningRate`` / ``learningRateDecay`` set as params replaces its rate / decay."""
        if not isinstance(value, OptimMethod):
            raise TypeError(f"setOptimMethod: expected an OptimMethod such as SGD(0.1) or "
                            f"Adam(), got {type(value).__name__}")
        self.optimMethod = value
        return self

    def getOptimMethod(self):
        return self.optimMethod

    def setEndWhen(self, trigger):
        """When to stop (a trigger such as ``MaxIteration(100)``); replaces ``maxEpoch``."""
        if not isinstance(trigger, Trigger):
            raise TypeError(f"setEndWhen: expected a trigger such as MaxIteration(100), got "
                            f"{type(trigger).__name__}")
        self.endWhen = trigger
        return self

    def getEndWhen(self):
        return self.endWhen

    def setValidation(self, trigger, val_df, val_method, batch_size):
        """Validate on ``val_df`` (same feature / label columns) whenever ``trigger`` fires,
        with the validation methods ``val_method`` (one or a list), as BigDL does."""
        methods = list(val_method) if isinstance(val_method, (list, tuple)) else [val_method]
        self.validation_config = [trigger, val_df, methods, int(batch_size)]
        return self

    def getValidation(self):
        """``[trigger, val_df, methods, batch_size]`` or None."""
        return self.validation_config

    def setCheckpoint(self, path, trigger, isOverWrite=True):
        """Write training checkpoints to ``path`` when ``trigger`` fires."""
        self.checkpoint_config = [str(path), trigger, bool(isOverWrite)]
        return self

    def getCheckpoint(self):
        """``[path, trigger, isOverWrite]`` or None."""
        return self.checkpoint_config

    def setTrainSummary(self, summary):
        """A ``TrainSummary``: TensorBoard scalars of training."""
        self.train_summary = summary
        return self

    def getTrainSummary(self):
        return self.train_summary

    def setValidationSummary(self, summary):
        """A ``ValidationSummary``: TensorBoard scalars of validation."""
        self.validation_summary = summary
        return self

    def getValidationSummary(self):
        return self.validation_summary

    def addListener(self, listener):
        """Any training listener (a dashboard, the run registry) for the next fits."""
        self.listeners.append(listener)
        return self

    def setConstantGradientClipping(self, min, max):  # noqa: A002 - BigDL's names
        """Clip every gradient value into ``[min, max]``."""
        self.gradient_clipping = [c for c in self.gradient_clipping if c[0] != "constant"]
        self.gradient_clipping.append(("constant", float(min), float(max)))
        return self

    def setGradientClippingByL2Norm(self, clip_norm):
        """Scale the gradient down to L2 norm ``clip_norm`` when it is larger."""
        self.gradient_clipping = [c for c in self.gradient_clipping if c[0] != "l2norm"]
        self.gradient_clipping.append(("l2norm", float(clip_norm)))
        return self

    def clearGradientClipping(self):
        self.gradient_clipping = []
        return self

    def getModel(self):
        return self.model

    def getCriterion(self):
        return self.criterion

    # ------------------------------------------------------------------ fit
    def _optim_method(self):
        given = self.optimMethod
        method = SGD() if given is None else from_config(given.get_config(), OptimMethod)
        if given is None or self.isSet(self.learningRate):
            method.learningrate = float(self.getLearningRate())
        if (given is None or self.isSet(self.learningRateDecay)) and \
                hasattr(method, "learningrate_decay"):
            method.learningrate_decay = float(self.getLearningRateDecay())
        return method

    def _check_columns(self, dataset):
        """Missing columns, named as the params name them (the schema only: no Spark job)."""
        owner = f"{type(self).__name__}.fit"
        fields = {f.name for f in dataset.schema.fields}
        for c in self._columns() + [self.getLabelCol()]:
            if c not in fields:
                role = "labelCol" if c == self.getLabelCol() else "featuresCol"
                raise SparkDataError(f"{owner}: no column {c!r} for {role} (columns: "
                                     f"{sorted(fields)})")

    def _diagnose(self, dataset, model):
        """After a failed fit: one pass over the training records; raises a ``SparkDataError``
        naming the column, value and row when the model cannot take a record or (classifier)
        a label is not one of its classes."""
        data = DataSet(dataset, "training set", self.getFeaturesCol(), self.getLabelCol(),
                       self.getFeatureSize(), model.dtype)
        try:
            self._check_data(data, model)
        finally:
            data.unpersist()

    def _check_data(self, data, model):
        owner = f"{type(self).__name__}.fit"
        stats = sorted(data.blocks.map(_block_stats).collect(), key=lambda s: s[:2])
        x = next(s[2] for s in stats if s[2] is not None)
        try:
            model.evaluate()
            output = np.asarray(model.forward(x))
        except Exception as e:
            raise SparkDataError(
                f"{owner}: the model cannot take the records of featuresCol "
                f"{self.getFeaturesCol()!r} (shape {tuple(x.shape[1:])}"
                f"{'' if self.getFeatureSize() else '; set featureSize to reshape them'}): "
                f"{type(e).__name__}: {e}") from None
        finally:
            model.training()
        self._check_labels(data, stats, output)

    def _check_labels(self, data, stats, output):
        """Nothing for a general estimator (labels may be arrays); see NNClassifier."""

    def _fit(self, dataset):
        owner = f"{type(self).__name__}.fit"
        if self.model is None or self.criterion is None:
            raise ValueError(f"{owner}: the estimator has no model or criterion")
        self._check_columns(dataset)
        model = copy.deepcopy(self.model)
        if self.bigdl_type == "double":
            model.double()
        optimizer = self._optimizer(model, dataset)
        try:
            optimizer.optimize()
        except SparkDataError as e:
            raise SparkDataError(f"{owner} (featuresCol={self.getFeaturesCol()!r}, labelCol="
                                 f"{self.getLabelCol()!r}): {e}") from None
        except TrainingError:
            # The happy path pays for no check; a failed fit looks for the record at fault
            # (a label the classifier cannot take, features the model cannot take) and names
            # its column, value and row.
            self._diagnose(dataset, copy.deepcopy(self.model))
            raise
        return self._copyValues(self._create_model(model))

    def _optimizer(self, model, dataset):
        end = self.endWhen if self.endWhen is not None else MaxEpoch(self.getMaxEpoch())
        optimizer = Optimizer(model, dataset, copy.deepcopy(self.criterion), end,
                              self.getBatchSize(), self._optim_method(),
                              seed=int(self.getSeed()) % (2 ** 31),
                              progress=self.getShowProgress(),
                              features_col=self.getFeaturesCol(), label_col=self.getLabelCol(),
                              feature_shape=self.getFeatureSize())
        if self.validation_config is not None:
            trigger, val_df, methods, batch = self.validation_config
            optimizer.set_validation(batch, val_df, trigger, methods)
        if self.checkpoint_config is not None:
            path, trigger, overwrite = self.checkpoint_config
            optimizer.set_checkpoint(trigger, path, overwrite)
        for listener in [self.train_summary, self.validation_summary, *self.listeners]:
            if listener is not None:
                optimizer.add_listener(listener)
        for clip in self.gradient_clipping:
            if clip[0] == "constant":
                optimizer.set_gradclip_const(clip[1], clip[2])
            else:
                optimizer.set_gradclip_l2norm(clip[1])
        return optimizer

    def _create_model(self, model):
        return NNModel(model)

    def copy(self, extra=None):
        """A copy with ``extra`` params; the model, criterion and settings are shared (``fit``
        never changes them: it trains a copy of the model)."""
        that = super().copy(extra)
        that.listeners = list(self.listeners)
        that.gradient_clipping = list(self.gradient_clipping)
        return that

    # ------------------------------------------------------------------ persistence
    def write(self):
        return _Writer(self)

    @classmethod
    def read(cls):
        return _Reader(cls)


class NNClassifier(NNEstimator):
    """``NNEstimator`` for classification: labels are 0-based class indices (doubles, as
    ``StringIndexer`` makes them); the model must output one score per class (e.g. ending in
    ``LogSoftMax`` with ``ClassNLLCriterion``).  ``fit`` returns an ``NNClassifierModel``.

    Args:
        model: the ``Module`` to train.
        criterion: the loss, e.g. ``ClassNLLCriterion()`` (0-based labels by default).
        feature_size: reshape each record's features to this shape (e.g. ``[1, 28, 28]``).
        bigdl_type: ``"float"`` (default) or ``"double"``.
        **params: params by name, as for ``NNEstimator``.
    """

    def __init__(self, model=None, criterion=None, feature_size=None, jvalue=None,
                 bigdl_type="float", *, feature_preprocessing=None, **params):
        super().__init__(model, criterion, feature_size, None, jvalue, bigdl_type,
                         feature_preprocessing=feature_preprocessing, **params)

    def _check_labels(self, data, stats, output):
        """Labels are whole numbers 0 .. classes - 1, one per record (Spark ML's class
        indices); the message names the label column, the value and where it is."""
        owner = f"{type(self).__name__}.fit"
        name = self.getLabelCol()
        if data.label_shape not in ((), (1,)):
            raise SparkDataError(f"{owner}: the label column {name!r} holds arrays of shape "
                                 f"{tuple(data.label_shape)}; a classifier takes one class "
                                 "index (a number) per row")
        classes = int(np.prod(output.shape[1:]))
        rule = (f"the model outputs {classes} classes, so labels must be whole numbers "
                f"0 .. {classes - 1} (0-based, as StringIndexer makes them)")
        for part, start, _, low, low_at, high, high_at, odd_at in stats:
            where = None
            if odd_at is not None:
                where, value = odd_at
            elif low is not None and low < 0:
                where, value = low_at, low
            elif high is not None and high >= classes:
                where, value = high_at, high
            if where is not None:
                row = start + where
                raise SparkDataError(f"{owner}: the label column {name!r} holds {value!r} "
                                     f"(row {row} of partition {part}); {rule}")

    def _create_model(self, model):
        return NNClassifierModel(model)


# ---------------------------------------------------------------------- models
class NNModel(Model, _NNParams, MLWritable, MLReadable):
    """A trained (or pre-trained) workbench model as a Spark ML Transformer.

    Args:
        model: the ``Module``.
        feature_size: reshape each record's features to this shape (e.g. ``[1, 28, 28]``).
        bigdl_type: accepted for BigDL (the model keeps its own float type).
        **params: ``featuresCol``, ``predictionCol``, ``batchSize``, ``featureSize``.

    ``transform`` adds ``predictionCol``: the model's output for each row, flattened: an
    ``array<float>`` for a float32 model, ``array<double>`` for a float64 one (BigDL's Array[T]).
    Rows are scored in Arrow batches on the executors, the model shipped once per executor.
    """

    _output = "outputs"

    def __init__(self, model=None, feature_size=None, jvalue=None, bigdl_type="float", *,
                 feature_preprocessing=None, **params):
        super().__init__()
        owner = type(self).__name__
        if model is not None:
            _check_module(owner, model)
        _check_bigdl_type(owner, bigdl_type)
        self.model, self.bigdl_type = model, bigdl_type
        self._init_nn_params()
        size = _size_argument(owner, feature_size if feature_size is not None
                              else feature_preprocessing, "feature_size")
        if size is not None:
            self._set(featureSize=size)
        _check_keywords(owner, params, _MODEL_KEYWORDS)
        self._set(**params)

    def setParams(self, **params):
        _check_keywords(f"{type(self).__name__}.setParams", params, _MODEL_KEYWORDS)
        return self._set(**params)

    def getModel(self):
        return self.model

    def _transform(self, dataset):
        from .scoring import transform
        if self.model is None:
            raise ValueError(f"{type(self).__name__}.transform: no model")
        return transform(dataset, self.model, self.getFeaturesCol(), self.getPredictionCol(),
                         output=self._output, batch_size=self.getBatchSize(),
                         feature_shape=self.getFeatureSize())

    def write(self):
        return _Writer(self)

    @classmethod
    def read(cls):
        return _Reader(cls)


class NNClassifierModel(NNModel):
    """``NNModel`` for classification: ``predictionCol`` holds the 0-based class (argmax of
    the model's output) as a double, as Spark ML classifiers do."""

    _output = "class"


DLEstimator = NNEstimator
DLClassifier = NNClassifier
DLModel = NNModel
DLClassifierModel = NNClassifierModel


def _block_stats(block):
    """``(part, start, first record or None, min label, its row, max label, its row, first
    non-integer label as (row, value) or None)`` of one cached block (rows within the block)."""
    part, start, X, y = block
    first = X[:1] if start == 0 and len(X) else None
    if y is None or y.size == 0 or y.dtype.kind not in "iuf" or y.ndim > 2 or \
            (y.ndim == 2 and y.shape[1] != 1):
        return part, start, first, None, None, None, None, None
    y = y.reshape(len(y))
    odd = np.flatnonzero(~np.isfinite(y) | (y != np.floor(y))) if y.dtype.kind == "f" else []
    odd_at = (int(odd[0]), float(y[odd[0]])) if len(odd) else None
    lo, hi = int(np.argmin(y)), int(np.argmax(y))
    return part, start, first, float(y[lo]), lo, float(y[hi]), hi, odd_at


# ---------------------------------------------------------------------- persistence
FORMAT = "workbench-spark-ml"
FORMAT_VERSION = 1


def _describe(obj):
    """``(config, arrays)`` of a configurable object: arrays given to its constructor (a
    criterion's class weights) go with the weights, the rest is JSON."""
    config = obj.get_config()
    arrays = {k: np.asarray(v) for k, v in getattr(obj, "_init_args", {}).items()
              if isinstance(v, np.ndarray)}
    return config, arrays


def _rebuild(config, arrays, base, what):
    config = dict(config)
    config["args"] = dict(config.get("args", {}), **arrays)
    try:
        return from_config(config, base)
    except ConfigError as e:
        raise io.ModelFileError(f"cannot rebuild the {what}: {e}") from None


def _files_to_spark(spark, path, files):
    rows = [(name, bytearray(content)) for name, content in sorted(files.items())]
    spark.createDataFrame(rows, "name string, content binary").coalesce(1) \
        .write.parquet(os.path.join(path, "data"))


def _files_from_spark(spark, path):
    return {r["name"]: bytes(r["content"])
            for r in spark.read.parquet(os.path.join(path, "data")).collect()}


class _Writer(MLWriter):
    """``metadata/`` through ``DefaultParamsWriter``; ``data/``: the model file (``model.bigdl``,
    ``workbench.io``'s format) and, for an estimator, ``estimator.json`` (criterion, optim
    method, end trigger as configs) with ``estimator.npz`` (their array arguments)."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path):
        inst = self.instance
        extra = {"workbench": {"format": FORMAT, "version": FORMAT_VERSION,
                               "bigdl_type": inst.bigdl_type}}
        # a SparkContext: what pyspark 3.5 takes (4.x takes a context or a session)
        DefaultParamsWriter.saveMetadata(inst, path, self.sparkSession.sparkContext,
                                         extraMetadata=extra)
        files = {}
        with tempfile.TemporaryDirectory(prefix="workbench-ml-") as tmp:
            if inst.model is not None:
                io.save_model(inst.model, os.path.join(tmp, "model.bigdl"))
                with open(os.path.join(tmp, "model.bigdl"), "rb") as f:
                    files["model.bigdl"] = f.read()
            if isinstance(inst, NNEstimator):
                doc, arrays = {}, {}
                for key, obj in (("criterion", inst.criterion), ("optim_method",
                                                                  inst.optimMethod),
                                 ("end_when", inst.endWhen)):
                    if obj is not None:
                        doc[key], own = _describe(obj)
                        arrays.update({f"{key}/{k}": v for k, v in own.items()})
                files["estimator.json"] = json.dumps(doc).encode()
                np.savez(os.path.join(tmp, "estimator.npz"), **arrays)
                with open(os.path.join(tmp, "estimator.npz"), "rb") as f:
                    files["estimator.npz"] = f.read()
        _files_to_spark(self.sparkSession, path, files)


class _Reader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path):
        spark = self.sparkSession or SparkSession.active()
        meta = DefaultParamsReader.loadMetadata(path, spark.sparkContext)
        own = meta.get("workbench", {})
        if own.get("format") != FORMAT:
            raise io.ModelFileError(f"{path}: not a saved workbench.spark.ml instance")
        if int(own.get("version", 0)) > FORMAT_VERSION:
            raise io.ModelFileError(f"{path}: saved by a newer version (format version "
                                    f"{own['version']})")
        cls = {c.__name__: c for c in (NNEstimator, NNClassifier, NNModel,
                                       NNClassifierModel)}.get(meta["class"].rsplit(".", 1)[-1])
        if cls is None or not issubclass(cls, self.cls):
            raise io.ModelFileError(f"{path}: holds a {meta['class']}, not a "
                                    f"{self.cls.__name__}")
        files = _files_from_spark(spark, path)
        model = None
        with tempfile.TemporaryDirectory(prefix="workbench-ml-") as tmp:
            if "model.bigdl" in files:
                with open(os.path.join(tmp, "model.bigdl"), "wb") as f:
                    f.write(files["model.bigdl"])
                model = io.load_model(os.path.join(tmp, "model.bigdl"))
            if issubclass(cls, NNEstimator):
                doc = json.loads(files.get("estimator.json", b"{}"))
                arrays = {}
                if "estimator.npz" in files:
                    with open(os.path.join(tmp, "estimator.npz"), "wb") as f:
                        f.write(files["estimator.npz"])
                    with np.load(os.path.join(tmp, "estimator.npz"), allow_pickle=False) as z:
                        arrays = {k: z[k] for k in z.files}

                def part(key, base):
                    if key not in doc:
                        return None
                    own_arrays = {k.split("/", 1)[1]: v for k, v in arrays.items()
                                  if k.startswith(key + "/")}
                    return _rebuild(doc[key], own_arrays, base, key)
                instance = cls(model, part("criterion", Criterion),
                               bigdl_type=own.get("bigdl_type", "float"))
                method = part("optim_method", OptimMethod)
                if method is not None:
                    instance.setOptimMethod(method)
                end = part("end_when", Trigger)
                if end is not None:
                    instance.setEndWhen(end)
            else:
                instance = cls(model)
        instance._resetUid(meta["uid"])
        DefaultParamsReader.getAndSetParams(instance, meta)
        return instance
