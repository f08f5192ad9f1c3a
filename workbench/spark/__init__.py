"""``workbench.spark``: training, prediction and evaluation on Apache Spark.

    from workbench.spark import get_spark
    spark = get_spark()                         # the active session, or local[*]
    df = ...                                    # features (array/vector) + label columns
    opt = Optimizer(model, df, ClassNLLCriterion(), MaxEpoch(5), 128, SGD(0.05))
    opt.set_validation(256, val_df, EveryEpoch(), [Top1Accuracy()])
    model = opt.optimize()                      # synchronous data-parallel SGD on Spark
    model.evaluate(test_df, 256, [Top1Accuracy()])
    scored = model.predict_class(test_df)       # test_df + a "prediction" column (0-based)

    from workbench.spark.scoring import register, transform
    transform(df, model, "features")            # + "prediction": the outputs, batch or stream
    classify = register(spark, "classify", model)   # SELECT classify(features) FROM t

``Optimizer``, ``model.predict`` and ``model.evaluate`` hand an RDD of ``Sample`` or a
DataFrame to this package by its type (``workbench.distributed``); nothing needs importing
first, and ``nn``, ``optim`` and ``data`` import Spark only when given a Spark object.
Spark-only ``Optimizer`` keyword options are listed in ``TRAINER_OPTIONS``.
"""
from .comm import Ring
from .data import DataSet, SparkDataError, is_spark_data
from .engine import (create_spark_conf, get_spark, get_spark_context, init_engine,
                     init_nncontext, stop_spark, task_slots)
from .predict import evaluate, predict, predict_class
from .streaming import StreamingDataError, StreamingTrainer
from .trainer import TRAINER_OPTIONS, SparkTrainer

__all__ = ["get_spark", "init_engine", "create_spark_conf", "get_spark_context", "init_nncontext",
           "stop_spark", "task_slots", "DataSet", "SparkDataError",
           "SparkTrainer", "TRAINER_OPTIONS", "predict", "predict_class", "evaluate", "Ring",
           "is_spark_data", "StreamingTrainer", "StreamingDataError"]
