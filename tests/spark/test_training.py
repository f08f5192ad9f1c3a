"""Distributed training on Spark local[2]: equivalence with the local loop, the same events,
triggers, validation, checkpoints and summaries, stop requests, divergence, resume, and
distributed predict / evaluate."""
import os

import numpy as np
import pytest

import workbench.spark as wspark
from helpers import (assert_same_classes, two_input_graph, two_input_problem, two_output_graph,
                     four_class_mlp as mlp, four_class_problem as problem)
from workbench import models
from workbench.data import Sample, load_digits
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential, Tanh, random
from workbench.optim import (SGD, Adam, EveryEpoch, Listener, Loss, MaxEpoch, MaxIteration,
                             Optimizer, SeveralIteration, Top1Accuracy, TrainingError)
from workbench.summary import TrainSummary, ValidationSummary

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]


def samples_rdd(sc, X, y, parts):
    return sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], parts)


def rel_err(model, reference):
    w, _ = model.get_parameters()
    r, _ = reference.get_parameters()
    return float(np.linalg.norm(w - r) / np.linalg.norm(r))


class Recorder(Listener):
    def __init__(self):
        self.events = []

    def on_iteration(self, e):
        self.events.append(("iteration", e.iteration, e.epoch, e.batch_size, round(e.loss, 5),
                            e.lr))

    def on_validation(self, e):
        self.events.append(("validation", e.iteration, e.epoch, tuple(sorted(e.scores))))

    def on_checkpoint(self, e):
        self.events.append(("checkpoint", e.iteration, e.epoch, os.path.basename(e.path)))

    def on_finished(self, e):
        self.events.append(("finished", e.iteration, e.epoch, e.stopped, e.error))


METHODS = {"sgd-momentum": lambda: SGD(0.1, momentum=0.9, dampening=0.0, weightdecay=1e-3),
           "adam": lambda: Adam(0.01)}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_twenty_iterations_equal_local_training(sc, method, parts):
    X, y = problem()
    local = mlp()
    Optimizer(local, (X, y), ClassNLLCriterion(), MaxIteration(20), 37, METHODS[method](),
              seed=3, progress=False).optimize()
    model = mlp()
    # 203 records in batches of 37: uneven shares, and epochs end on a partial batch of 18
    opt = Optimizer(model, samples_rdd(sc, X, y, parts), ClassNLLCriterion(), MaxIteration(20),
                    37, METHODS[method](), seed=3, progress=False,
                    max_stretch_iterations=7)  # three stretches: optim state is re-sliced
    opt.optimize()
    assert rel_err(model, local) <= 1e-5
    assert opt.state.iteration == 20 and opt.state.records == 3 * 203 + 2 * 37
    assert opt.state.epoch == 4
    # the optimizer state gathered from the slices equals the local one
    if method == "adam":
        doc, arrays = opt.optim_method.get_state()
        assert doc["state"]["neval"] == 20
        assert arrays["m"].size == model.get_parameters()[0].size


def test_lenet_on_digits_equals_local_training(sc):
    (X, y), _ = load_digits(size=28)
    X, y = X[:300], y[:300]
    random.set_seed(11)
    local = models.LeNet5(10)
    random.set_seed(11)
    model = models.LeNet5(10)
    Optimizer(local, (X, y), ClassNLLCriterion(), MaxIteration(20), 50, Adam(2e-3), seed=9,
              progress=False).optimize()
    Optimizer(model, samples_rdd(sc, X, y, 2), ClassNLLCriterion(), MaxIteration(20), 50,
              Adam(2e-3), seed=9, progress=False).optimize()
    assert rel_err(model, local) <= 1e-5


@pytest.mark.parametrize("layout", ["array", "vector", "columns"])
def test_dataframe_input_equals_local_training(spark, layout):
    from pyspark.ml.linalg import Vectors
    X, y = problem(n=120)
    local = mlp()
    Optimizer(local, (X, y), ClassNLLCriterion(), MaxIteration(8), 32,
              SGD(0.1, momentum=0.9), seed=4, progress=False).optimize()
    if layout == "array":
        df = spark.createDataFrame([(x.tolist(), int(t)) for x, t in zip(X, y)],
                                   ["features", "label"])
        kwargs = {}
    elif layout == "vector":
        df = spark.createDataFrame([(Vectors.dense(x.tolist()), float(t)) for x, t in zip(X, y)],
                                   ["vec", "target"])
        kwargs = dict(features_col="vec", label_col="target")
    else:
        cols = [f"x{i}" for i in range(8)]
        df = spark.createDataFrame([tuple(float(v) for v in x) + (int(t),)
                                    for x, t in zip(X, y)], cols + ["label"])
        kwargs = dict(features_col=cols)
    model = mlp()
    assert df.rdd.getNumPartitions() == 2
    Optimizer(model, df, ClassNLLCriterion(), MaxIteration(8), 32, SGD(0.1, momentum=0.9),
              seed=4, progress=False, **kwargs).optimize()
    assert rel_err(model, local) <= 1e-5


def test_same_events_validation_checkpoints_and_summaries_as_local(spark, tmp_path):
    X, y = problem(n=100)
    Xv, yv = problem(n=50, seed=1)
    runs = {}
    for kind in ("local", "spark"):
        model = mlp()
        rec = Recorder()
        if kind == "local":
            train, val = (X, y), (Xv, yv)
        else:
            train = samples_rdd(spark.sparkContext, X, y, 2)
            val = spark.createDataFrame([(x.tolist(), int(t)) for x, t in zip(Xv, yv)],
                                        ["features", "label"])
        opt = Optimizer(model, train, ClassNLLCriterion(), MaxEpoch(3), 32, SGD(0.2), seed=1,
                        progress=False)
        opt.add_listener(rec)
        opt.set_validation(16, val, EveryEpoch(), [Top1Accuracy(), Loss()])
        opt.set_checkpoint(SeveralIteration(5), str(tmp_path / kind / "ckpt"), is_overwrite=False)
        opt.set_train_summary(TrainSummary(str(tmp_path / kind), "app"))
        opt.set_val_summary(ValidationSummary(str(tmp_path / kind), "app"))
        opt.optimize()
        runs[kind] = (rec.events, model, opt)
    local_events, spark_events = runs["local"][0], runs["spark"][0]
    assert [e[:4] for e in spark_events] == [e[:4] for e in local_events]
    # losses agree to float32 rounding
    for a, b in zip(local_events, spark_events):
        if a[0] == "iteration":
            assert a[4] == pytest.approx(b[4], abs=2e-5)
    assert rel_err(runs["spark"][1], runs["local"][1]) <= 1e-5
    assert sorted(os.listdir(tmp_path / "spark" / "ckpt")) == \
        sorted(os.listdir(tmp_path / "local" / "ckpt"))
    loss = TrainSummary(str(tmp_path / "spark"), "app").read_scalar("Loss")
    acc = ValidationSummary(str(tmp_path / "spark"), "app").read_scalar("Top1Accuracy")
    assert len(loss) == 12 and len(acc) == 3
    local_acc = ValidationSummary(str(tmp_path / "local"), "app").read_scalar("Top1Accuracy")
    np.testing.assert_allclose(acc[:, 1], local_acc[:, 1], atol=1e-6)


def test_stop_request_is_honoured_after_the_current_iteration(sc):
    X, y = problem()
    model = mlp()
    opt = Optimizer(model, samples_rdd(sc, X, y, 2), ClassNLLCriterion(), MaxEpoch(50), 16,
                    SGD(0.1), seed=2, progress=False)

    class StopAt(Listener):
        def on_iteration(self, e):
            if e.iteration == 5:
                opt.stop()

    rec = Recorder()
    opt.add_listener(StopAt()).add_listener(rec)
    opt.optimize()
    assert opt.state.iteration == 5
    assert rec.events[-1] == ("finished", 5, 1, True, None)


def test_divergence_raises_like_the_local_loop(sc):
    X, y = problem()
    X[117, 3] = np.nan  # one bad record: the loss of the batch that holds it is NaN
    messages = {}
    for kind, data in (("local", (X, y)), ("spark", samples_rdd(sc, X, y, 2))):
        model = mlp()
        opt = Optimizer(model, data, ClassNLLCriterion(), MaxIteration(30), 32, SGD(0.1),
                        seed=1, progress=False)
        with pytest.raises(TrainingError, match="diverged") as info:
            opt.optimize()
        messages[kind] = (str(info.value), opt.state.iteration, model.get_parameters()[0].copy())
    assert messages["spark"][0] == messages["local"][0]
    assert messages["spark"][1] == messages["local"][1]
    assert np.all(np.isfinite(messages["spark"][2]))


def test_resume_after_a_driver_restart_continues_exactly(sc, tmp_path):
    X, y = problem()
    rdd = samples_rdd(sc, X, y, 2)
    straight = mlp()
    Optimizer(straight, rdd, ClassNLLCriterion(), MaxEpoch(3), 32, Adam(0.01), seed=6,
              progress=False).optimize()
    first = Optimizer(mlp(), rdd, ClassNLLCriterion(), MaxEpoch(2), 32, Adam(0.01), seed=6,
                      progress=False)
    first.set_checkpoint(EveryEpoch(), str(tmp_path))
    first.optimize()
    # "the driver restarted": a new process would build a fresh model and optimizer
    resumed_model = mlp(seed=99)
    resumed = Optimizer(resumed_model, rdd, ClassNLLCriterion(), MaxEpoch(3), 32, Adam(0.01),
                        progress=False)
    resumed.optimize(resume_from=str(tmp_path))
    assert resumed.state.epoch == 3 and resumed.state.iteration == 21
    assert rel_err(resumed_model, straight) <= 1e-5


def test_gradient_compression_trains(sc):
    (X, y), (Xt, yt) = load_digits(size=8)
    X, Xt = X.reshape(len(X), -1), Xt.reshape(len(Xt), -1)
    accs = {}
    for compression in (None, "bf16", "fp16"):
        random.set_seed(3)
        model = Sequential().add(Linear(64, 32)).add(Tanh()).add(Linear(32, 10)).add(LogSoftMax())
        Optimizer(model, samples_rdd(sc, X, y, 2), ClassNLLCriterion(), MaxEpoch(3), 64,
                  SGD(0.1, momentum=0.9), seed=1, progress=False,
                  gradient_compression=compression).optimize()
        accs[compression] = model.evaluate((Xt, yt), 128, [Top1Accuracy()])[0].value
    assert accs[None] > 0.85
    assert abs(accs["bf16"] - accs[None]) < 0.03 and abs(accs["fp16"] - accs[None]) < 0.03


def test_distributed_predict_and_evaluate_match_local(spark):
    X, y = problem(n=150)
    model = mlp()
    rdd = samples_rdd(spark.sparkContext, X, y, 3)
    df = spark.createDataFrame([(i, x.tolist(), int(t)) for i, (x, t) in enumerate(zip(X, y))],
                               ["id", "features", "label"]).repartition(1)
    scores = model.predict(X)
    # BigDL's shapes: an RDD in -> an RDD of one output per record, in record order
    predicted = model.predict(rdd, batch_size=16)
    assert type(predicted).__name__ in ("RDD", "PipelinedRDD")
    np.testing.assert_allclose(np.stack(predicted.collect()), scores, atol=1e-6)
    # batched otherwise on Spark (per partition), the scores differ in float32 rounding: the
    # classes agree wherever the local argmax is decided beyond rounding (every row, unless a
    # near tie; a wrong row or a shifted order fails)
    classes = model.predict_class(rdd).collect()
    assert all(type(c) is int for c in classes)
    ties = assert_same_classes(classes, scores, reduction_length=16)
    # a DataFrame in -> the DataFrame plus a DoubleType class column
    scored = model.predict_class(df).orderBy("id")
    assert scored.columns == ["id", "features", "label", "prediction"]
    assert dict(scored.dtypes)["prediction"] == "double"
    assert_same_classes([r.prediction for r in scored.collect()], scores, reduction_length=16)
    local = model.evaluate((X, y), 32, [Top1Accuracy(), Loss()])
    for data in (rdd, df):
        dist = model.evaluate(data, 32, [Top1Accuracy(), Loss()])
        assert [r.name for r in dist] == ["Top1Accuracy", "Loss"]
        # equal accuracies, up to the rows a near tie may flip (none in practice)
        assert dist[0].count == 150 and abs(dist[0].value - local[0].value) * 150 <= ties
        assert dist[1].value == pytest.approx(local[1].value, rel=1e-6)
    # an unlabeled RDD of feature arrays, and the module-level functions with column names
    features = spark.sparkContext.parallelize(list(X), 2)
    np.testing.assert_allclose(np.stack(model.predict(features).collect()), scores, atol=1e-6)
    renamed = df.withColumnRenamed("features", "x").withColumnRenamed("label", "t")
    r = wspark.evaluate(model, renamed, 64, [Top1Accuracy()], features_col="x", label_col="t")
    assert abs(r[0].value - local[0].value) * 150 <= ties
    # column names and BigDL's default batch size (-1: chosen for us) through model.predict
    out = model.predict(renamed, -1, features_col="x", prediction_col="scores").orderBy("id")
    np.testing.assert_allclose(np.array([r.scores for r in out.collect()]), scores, atol=1e-6)
    ones = model.predict_class(renamed, -1, zero_based_label=False, features_col="x")
    assert sorted({r.prediction for r in ones.collect()}) <= [1.0, 2.0, 3.0, 4.0]


def test_unknown_option_is_rejected(sc):
    X, y = problem(n=20)
    with pytest.raises(TypeError, match="unexpected arguments"):
        Optimizer(mlp(), samples_rdd(sc, X, y, 1), ClassNLLCriterion(), MaxIteration(1), 4,
                  SGD(0.1), gradient_compresion="bf16")
    with pytest.raises(ValueError, match="gradient_compression"):
        Optimizer(mlp(), samples_rdd(sc, X, y, 1), ClassNLLCriterion(), MaxIteration(1), 4,
                  SGD(0.1), gradient_compression="int8")


def test_engine_returns_the_active_session(spark):
    from workbench.spark import get_spark, task_slots
    again = get_spark("local[4]")  # a session is active: it is returned, master untouched
    assert again.sparkContext is spark.sparkContext
    assert task_slots(spark.sparkContext) == 2
    assert os.environ["PYSPARK_PYTHON"]
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"


def test_cli_trains_lenet_on_spark(spark, tmp_path, capsys):
    from workbench.cli import main
    rc = main(["train", "lenet5", "--epochs", "2", "--batch-size", "64", "--master", "local[2]",
               "--log-dir", str(tmp_path), "--app-name", "cli", "--min-accuracy", "0.8"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "training on Spark local[2]" in out and "validation after iteration" in out
    assert "final test accuracy" in out
    assert os.path.exists(tmp_path / "cli" / "lenet5.bigdl")
    assert os.listdir(tmp_path / "cli" / "checkpoints")


def named_mlp(seed=5):
    random.set_seed(seed)
    return (Sequential().add(Linear(8, 16).set_name("fc1")).add(Tanh())
            .add(Linear(16, 4).set_name("fc2")).add(LogSoftMax()))


def test_per_submodule_methods_and_gradient_clipping_equal_local(sc):
    # 212 weights in 2 slices of 106: task 0 updates only fc1, task 1 the rest of fc1 and fc2
    X, y = problem()
    models_ = {}
    for kind in ("local", "spark"):
        model = named_mlp()
        data = (X, y) if kind == "local" else samples_rdd(sc, X, y, 2)
        opt = Optimizer(model, data, ClassNLLCriterion(), MaxIteration(20), 37,
                        {"fc1": SGD(0.1, momentum=0.9, learningrate_decay=0.01),
                         "fc2": Adam(0.01)}, seed=3, progress=False,
                        **({} if kind == "local" else {"max_stretch_iterations": 6}))
        opt.set_gradclip_const(-0.05, 0.05).set_gradclip_l2norm(0.3)
        rec = Recorder()
        opt.add_listener(rec)
        opt.optimize()
        models_[kind] = (model, opt, rec)
    assert rel_err(models_["spark"][0], models_["local"][0]) <= 1e-5
    doc_local, arrays_local = models_["local"][1].optim_method.get_state()
    doc_spark, arrays_spark = models_["spark"][1].optim_method.get_state()
    assert doc_spark["methods"]["fc2"]["state"]["neval"] == 20
    assert sorted(arrays_spark) == sorted(arrays_local)
    for k in arrays_local:
        np.testing.assert_allclose(arrays_spark[k], arrays_local[k], rtol=1e-4, atol=1e-6)
    lrs = lambda rec: [e for e in rec.events if e[0] == "iteration"]  # noqa: E731
    spark_its, local_its = lrs(models_["spark"][2]), lrs(models_["local"][2])
    assert [e[:4] for e in spark_its] == [e[:4] for e in local_its]
    np.testing.assert_allclose([e[5] for e in spark_its], [e[5] for e in local_its], rtol=1e-12)


def test_closure_methods_are_rejected_with_a_clear_error(sc):
    from workbench.optim import LBFGS
    X, y = problem(n=40)
    opt = Optimizer(mlp(), samples_rdd(sc, X, y, 2), ClassNLLCriterion(), MaxIteration(2), 8,
                    LBFGS(), progress=False)
    with pytest.raises(TrainingError, match="LBFGS evaluates the objective several times"):
        opt.optimize()


@pytest.mark.parametrize("sizes", [[101, 102], [50, 100, 53]])
def test_balanced_batches_use_every_record_once_per_epoch(sc, sizes):
    X, y = problem(n=sum(sizes))
    samples = [Sample.from_ndarray(a, b) for a, b in zip(X, y)]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    rdd = sc.parallelize(range(len(sizes)), len(sizes)).mapPartitionsWithIndex(
        lambda i, _: iter(samples[bounds[i]:bounds[i + 1]]))
    model = mlp()
    rec = Recorder()
    opt = Optimizer(model, rdd, ClassNLLCriterion(), MaxEpoch(2), 32, Adam(0.01), seed=1,
                    progress=False, balanced_batches=True)
    opt.add_listener(rec)
    opt.optimize()
    n = sum(sizes)
    assert opt.state.epoch == 2 and opt.state.epoch_finished and opt.state.records == 2 * n
    per_task = [t["records"] for t in opt._runner.stats[-1]]
    assert sum(per_task) == 2 * n  # every record exactly once per epoch, across the tasks
    # the tasks' shares differ by at most one record per iteration from their data share
    shares = np.array(per_task) / (2 * n)
    assert np.allclose(shares, np.array([101, 102]) / 203 if len(sizes) == 2 else
                       shares, atol=0.02)
    assert [e[1] for e in rec.events if e[0] == "iteration"] == list(range(1, 15))
    assert model.evaluate((X, y), 64, [Top1Accuracy()])[0].value > 0.6


@pytest.mark.parametrize("kind", ["mean-criterion", "sum-criterion"])
def test_reported_loss_and_gradient_include_penalties_as_locally(sc, kind):
    """Tasks hold uneven shares of each batch: per-record penalties add up, whole-batch terms
    (the weight regularizer, an averaged L1Penalty) count once; the reported loss is the
    objective's, and the weights follow its gradient exactly as in the local loop."""
    from penalized import WeightsRecorder, objective, penalized_mlp
    from workbench.optim.optimizer import epoch_permutation
    average = kind == "mean-criterion"
    l1, size_average = (0.02, False) if average else (3.0, True)
    X, y = problem()
    runs = {}
    for where in ("local", "spark"):
        model = penalized_mlp(l1=l1, size_average=size_average)
        rec = WeightsRecorder()
        data = (X, y) if where == "local" else samples_rdd(sc, X, y, 2)
        Optimizer(model, data, ClassNLLCriterion(size_average=average), MaxIteration(8), 37,
                  SGD(0.05 if average else 0.002), seed=3, progress=False,
                  **({} if where == "local" else {"max_stretch_iterations": 3})
                  ).add_listener(rec).optimize()
        runs[where] = (model, rec)
    (local, local_rec), (model, rec) = runs["local"], runs["spark"]
    idx = epoch_permutation(3, 1, len(X))[:37]
    criterion_loss, full = objective(local_rec.before[0], X[idx], y[idx], l1, size_average,
                                     average)
    assert full - criterion_loss > 0.05 * abs(criterion_loss)
    assert rec.losses[0] == pytest.approx(full, rel=1e-5)
    np.testing.assert_allclose(rec.losses, local_rec.losses, rtol=2e-5)
    assert rel_err(model, local) <= 1e-5


def test_parameter_histograms_hold_the_weights_of_their_iteration(sc, tmp_path):
    """TensorBoard's "Parameters" histograms at step i show the weights iteration i produced
    and the gradient its update applied, inside a stretch as at its end: the same as the local
    loop's (read back with TensorBoard's own reader)."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    X, y = problem()
    method = lambda: SGD(0.1, momentum=0.9, dampening=0.0, weightdecay=1e-3)  # noqa: E731
    models_, dirs = {}, {}
    for where in ("local", "spark"):
        model = mlp()
        for i, layer in enumerate(model.modules()):
            layer.set_name(f"layer{i}")  # the same tags in both runs
        data = (X, y) if where == "local" else samples_rdd(sc, X, y, 2)
        opt = Optimizer(model, data, ClassNLLCriterion(), MaxIteration(10), 37, method(), seed=3,
                        progress=False,
                        **({} if where == "local" else {"max_stretch_iterations": 4}))
        summary = TrainSummary(str(tmp_path / where), "app")
        summary.set_summary_trigger("Parameters", SeveralIteration(1))
        opt.set_train_summary(summary).optimize()
        models_[where], dirs[where] = model, summary.get_summary_dir()
    runs = {}
    for where, directory in dirs.items():
        acc = ea.EventAccumulator(directory, size_guidance={ea.HISTOGRAMS: 0})
        acc.Reload()
        runs[where] = {tag: {e.step: e.histogram_value for e in acc.Histograms(tag)}
                       for tag in acc.Tags()["histograms"]}
    local, spark = runs["local"], runs["spark"]
    assert sorted(spark) == sorted(local) and len(spark) == 8  # 4 parameters, 4 gradients
    for tag in local:
        assert sorted(spark[tag]) == list(range(1, 11))
        for step, a in local[tag].items():
            b = spark[tag][step]
            scale = np.sqrt(a.sum_squares / a.num)
            assert b.num == a.num
            assert b.min == pytest.approx(a.min, abs=2e-5 * scale)
            assert b.max == pytest.approx(a.max, abs=2e-5 * scale)
            assert b.sum == pytest.approx(a.sum, abs=2e-5 * scale * a.num)
            assert b.sum_squares == pytest.approx(a.sum_squares, rel=5e-5)
    # the weights change every iteration, and the last histograms are the final weights
    for _, module, name in models_["spark"].named_parameters():
        hist = spark[f"Parameters/{module.name()}/{name}"]
        assert len({round(h.sum_squares, 9) for h in hist.values()}) == 10
        final = np.asarray(getattr(module, name), dtype=np.float64)
        assert hist[10].sum_squares == pytest.approx(float(final.ravel() @ final.ravel()),
                                                     rel=1e-6)
        assert hist[10].min == pytest.approx(float(final.min()), rel=1e-6)


def test_per_parameter_learning_rates_equal_local_training(sc):
    # each task updates its slice of the weights with its part of the learningrates array
    X, y = problem()
    size = mlp().get_parameters()[0].size
    lrs = np.linspace(0.0, 2.0, size)
    wds = np.linspace(0.0, 1e-2, size)
    trained = {}
    for kind in ("local", "spark"):
        model = mlp()
        data = (X, y) if kind == "local" else samples_rdd(sc, X, y, 2)
        Optimizer(model, data, ClassNLLCriterion(), MaxIteration(8), 37,
                  SGD(0.1, momentum=0.9, learningrates=lrs, weightdecays=wds), seed=3,
                  progress=False).optimize()
        trained[kind] = model
    assert rel_err(trained["spark"], trained["local"]) <= 1e-5
    np.testing.assert_array_equal(trained["spark"].get_parameters()[0][0],
                                  mlp().get_parameters()[0][0])  # a zero rate: unchanged


# ---------------------------------------------------------------------- multi-input / output
@pytest.mark.parametrize("source", ["samples", "columns"])
def test_two_input_graph_equals_local_training(spark, source):
    """BigDL's ``Graph([in1, in2], [out])`` trained from an RDD of two-tensor Samples or a
    DataFrame with an array and a vector column: the local loop's weights, validation on
    Spark as locally."""
    from pyspark.ml.linalg import Vectors
    (X1, X2), y = two_input_problem(n=150)
    local = two_input_graph()
    opt = Optimizer(local, ([X1, X2], y), ClassNLLCriterion(), MaxIteration(12), 32,
                    Adam(0.01), seed=7, progress=False)
    opt.set_validation(64, ([X1, X2], y), SeveralIteration(6), [Top1Accuracy(), Loss()])
    local_scores = Recorder()
    opt.add_listener(local_scores).optimize()
    kwargs = {}
    if source == "samples":
        data = spark.sparkContext.parallelize(
            [Sample.from_ndarray([a, b], t) for a, b, t in zip(X1, X2, y)], 3)
    else:
        data = spark.createDataFrame(
            [(a.tolist(), Vectors.dense(b.tolist()), int(t)) for a, b, t in zip(X1, X2, y)],
            ["left", "right", "label"])  # in record order, in 2 partitions (local[2])
        kwargs = dict(features_col=["left", "right"])
    model = two_input_graph()
    opt = Optimizer(model, data, ClassNLLCriterion(), MaxIteration(12), 32, Adam(0.01), seed=7,
                    progress=False, **kwargs)
    opt.set_validation(64, data, SeveralIteration(6), [Top1Accuracy(), Loss()])
    scores = Recorder()
    opt.add_listener(scores).optimize()
    assert rel_err(model, local) <= 1e-5
    assert [e for e in scores.events if e[0] == "validation"] == \
        [e for e in local_scores.events if e[0] == "validation"]
    acc = model.evaluate(data, 40, [Top1Accuracy()]) if source == "samples" else \
        wspark.evaluate(model, data, 40, [Top1Accuracy()], features_col=["left", "right"])
    assert acc[0].count == 150
    assert acc[0].value == pytest.approx(
        model.evaluate(([X1, X2], y), 40, [Top1Accuracy()])[0].value, abs=2 / 150)


def test_distributed_predict_returns_what_the_model_outputs(sc):
    """Two inputs → one array; two outputs (trained with ``ParallelCriterion`` from Samples
    with two label tensors) → a list of arrays, in record order."""
    from workbench.nn import MSECriterion, ParallelCriterion
    from workbench.spark.predict import predict_dataset
    (X1, X2), y = two_input_problem(n=90)
    two_in = two_input_graph()
    unlabeled = sc.parallelize([[a, b] for a, b in zip(X1, X2)], 3)
    ds = wspark.DataSet(unlabeled, "prediction data", labeled=False)
    try:
        np.testing.assert_allclose(predict_dataset(two_in, ds, 16),
                                   two_in.predict([X1, X2]), rtol=1e-5, atol=1e-6)
    finally:
        ds.unpersist()
    t = (X1[:, 2:3] * 0.5).astype(np.float32)
    criterion = ParallelCriterion().add(ClassNLLCriterion()).add(MSECriterion(), 0.5)
    local = two_output_graph()
    Optimizer(local, (X1, [y, t]), criterion, MaxIteration(8), 20, SGD(0.1), seed=2,
              progress=False).optimize()
    model = two_output_graph()
    rdd = sc.parallelize([Sample.from_ndarray(x, [c, r]) for x, c, r in zip(X1, y, t)], 2)
    Optimizer(model, rdd, criterion, MaxIteration(8), 20, SGD(0.1), seed=2,
              progress=False).optimize()
    assert rel_err(model, local) <= 1e-5
    ds = wspark.DataSet(rdd, "prediction data", labeled=False)
    try:
        out = predict_dataset(model, ds, 16)
    finally:
        ds.unpersist()
    assert isinstance(out, list) and [o.shape for o in out] == [(90, 4), (90, 1)]
    for got, want in zip(out, model.predict(X1)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    (loss,) = model.evaluate(rdd, 32, [Loss(criterion)])
    assert loss.count == 90 and loss.value == pytest.approx(
        model.evaluate((X1, [y, t]), 32, [Loss(criterion)])[0].value, rel=1e-5)


@pytest.mark.parametrize("reshape", ["coalesce", "union"])
def test_a_coalesced_or_unioned_dataframe_trains_as_the_local_loop(spark, reshape):
    # a barrier stage refuses a coalesce or a union in its lineage: the trainer regroups the
    # blocks through a shuffle, one partition per task, keeping the records' order
    from workbench.spark.trainer import barrier_safe
    X, y = problem(n=120)
    local = mlp()
    Optimizer(local, (X, y), ClassNLLCriterion(), MaxIteration(8), 32,
              SGD(0.1, momentum=0.9), seed=4, progress=False).optimize()
    rows = [(x.tolist(), int(t)) for x, t in zip(X, y)]
    if reshape == "coalesce":  # 4 partitions in order, two by two into 2
        df = spark.sparkContext.parallelize(rows, 4).toDF(["features", "label"]).coalesce(2)
    else:
        sc = spark.sparkContext
        df = sc.parallelize(rows[:60], 1).union(sc.parallelize(rows[60:], 1)).toDF(
            ["features", "label"])
    assert df.rdd.getNumPartitions() == 2 and not barrier_safe(df.rdd)
    assert barrier_safe(spark.createDataFrame(rows, ["features", "label"]).rdd)
    model = mlp()
    Optimizer(model, df, ClassNLLCriterion(), MaxIteration(8), 32, SGD(0.1, momentum=0.9),
              seed=4, progress=False).optimize()
    assert rel_err(model, local) <= 1e-5
