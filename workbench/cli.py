"""The ``workbench`` command line.

    workbench train lenet5 --dataset digits --epochs 15 --log-dir runs
    workbench train lenet5 --master 'local[*]'      # the same, trained on Spark

trains a zoo model on a bundled dataset with validation every epoch, TensorBoard logs under
``<log-dir>/<app-name>``, a checkpoint per epoch and the trained model saved next to the logs,
then prints the test accuracy.  With ``--master`` (any Spark master URL, or ``submit`` for the
one ``spark-submit`` gives) the data become Spark DataFrames and training, validation and the
final evaluation run distributed (``workbench.spark``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _train(args):
    from . import io, models
    from .data import load_digits
    from .nn import ClassNLLCriterion, random
    from .optim import SGD, EveryEpoch, MaxEpoch, Optimizer, Top1Accuracy, Loss
    from .summary import TrainSummary, ValidationSummary

    random.set_seed(args.seed)
    (X, y), (Xt, yt) = load_digits(size=28)
    model = models.LeNet5(10)
    app = args.app_name or time.strftime("lenet5-%Y%m%d-%H%M%S")
    print(f"LeNet-5 on the handwritten digits: {len(X)} training and {len(Xt)} test images "
          f"(28x28); logs in {os.path.join(args.log_dir, app)}")
    train_set, test_set, options = (X, y), (Xt, yt), {}
    if args.master:
        train_set, test_set, options = _spark_data(args, X, y, Xt, yt)
    optimizer = Optimizer(model, train_set, ClassNLLCriterion(), MaxEpoch(args.epochs),
                          args.batch_size,
                          SGD(learningrate=args.learning_rate, momentum=0.9, dampening=0.0,
                              weightdecay=5e-4),
                          seed=args.seed, **options)
    optimizer.set_validation(256, test_set, EveryEpoch(), [Top1Accuracy(), Loss()])
    optimizer.set_train_summary(TrainSummary(args.log_dir, app))
    optimizer.set_val_summary(ValidationSummary(args.log_dir, app))
    optimizer.set_checkpoint(EveryEpoch(), os.path.join(args.log_dir, app, "checkpoints"))
    start = time.time()
    trained = optimizer.optimize()
    took = time.time() - start
    accuracy = trained.evaluate(test_set, 256, [Top1Accuracy()])[0].value
    path = os.path.join(args.log_dir, app, "lenet5.bigdl")
    io.save_model(trained, path, over_write=True)
    print(f"trained in {took:.1f}s; model saved to {path}")
    print(f"see the curves with: tensorboard --logdir {args.log_dir}")
    print(f"final test accuracy: {accuracy:.4f}")
    if accuracy < args.min_accuracy:
        print(f"error: test accuracy {accuracy:.4f} is below {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


def _spark_data(args, X, y, Xt, yt):
    """The digits as Spark DataFrames (``features`` array<float>, ``label``) on the session of
    ``--master``."""
    from .spark import get_spark, task_slots
    # ERROR: Spark's WARN lines (e.g. task-size hints) would break up the progress bar.
    spark = get_spark(None if args.master == "submit" else args.master,
                      app_name="workbench-lenet5", log_level="ERROR")
    sc = spark.sparkContext
    parts = max(2, sc.defaultParallelism)

    def frame(features, labels):
        rows = [(x.ravel().tolist(), int(t)) for x, t in zip(features, labels)]
        return spark.createDataFrame(sc.parallelize(rows, parts),
                                     "features array<float>, label long").cache()

    train, test = frame(X, y), frame(Xt, yt)
    print(f"training on Spark {sc.master} ({task_slots(sc)} task slots, {parts} partitions)")
    return train, test, {}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a zoo model on a bundled dataset")
    train.add_argument("model", choices=["lenet5"])
    train.add_argument("--dataset", choices=["digits"], default="digits")
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=0.05)
    train.add_argument("--log-dir", default="runs")
    train.add_argument("--app-name", default=None)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--master", default=None,
                       help="train on Spark: a master URL (local[*], spark://host:7077, yarn, "
                            "k8s://...) or 'submit' for the one spark-submit sets")
    train.add_argument("--min-accuracy", type=float, default=0.0,
                       help="exit with status 1 if the test accuracy ends below this")
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
