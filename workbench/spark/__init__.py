"""``workbench.spark``: training, prediction and evaluation on Apache Spark.

    import workbench.spark                      # registers the Spark trainer and data handlers
    from workbench.spark import get_spark
    spark = get_spark()                         # the active session, or local[*]
    df = ...                                    # features (array/vector) + label columns
    opt = Optimizer(model, df, ClassNLLCriterion(), MaxEpoch(5), 128, SGD(0.05))
    opt.set_validation(256, val_df, EveryEpoch(), [Top1Accuracy()])
    model = opt.optimize()                      # synchronous data-parallel SGD on Spark
    model.evaluate(test_df, 256, [Top1Accuracy()])

Importing this package is what makes ``Optimizer``, ``model.predict`` and ``model.evaluate``
accept RDDs of ``Sample`` and DataFrames (``nn``, ``optim`` and ``data`` never import Spark).
Spark-only ``Optimizer`` keyword options are listed in ``TRAINER_OPTIONS``.
"""
from .comm import Ring
from .data import DataSet, SparkDataError, is_spark_data
from .engine import get_spark, init_engine, stop_spark, task_slots
from .predict import evaluate, predict, predict_class, register as _register_handlers
from .trainer import TRAINER_OPTIONS, SparkTrainer

__all__ = ["get_spark", "init_engine", "stop_spark", "task_slots", "DataSet", "SparkDataError",
           "SparkTrainer", "TRAINER_OPTIONS", "predict", "predict_class", "evaluate", "Ring",
           "is_spark_data"]


def _register():
    from ..optim.optimizer import _distributed, register_distributed_trainer
    if not any(factory is SparkTrainer for _, factory in _distributed):
        register_distributed_trainer(is_spark_data, SparkTrainer)
    _register_handlers()


_register()
