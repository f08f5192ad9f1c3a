"""``workbench.summary``: TensorBoard summaries of training runs, without TensorFlow.

    optimizer.set_train_summary(TrainSummary("runs", "lenet"))
    optimizer.set_val_summary(ValidationSummary("runs", "lenet"))
    ...
    loss = TrainSummary("runs", "lenet").read_scalar("Loss")   # rows (step, value, wall_time)

Then ``tensorboard --logdir runs``, or from Python ``summary.tensorboard.start("runs")`` (the
module that starts and stops TensorBoard processes for the notebook pane and the server
extension).
"""
from .reader import Histogram, read_histogram, read_scalar
from .writer import TrainSummary, ValidationSummary

__all__ = ["TrainSummary", "ValidationSummary", "read_scalar", "read_histogram", "Histogram"]
