"""Structured Streaming: incremental training on a file-source stream of the digits (one
parquet file per micro-batch), its events, resuming a restarted query, stopping, bad input;
scoring a stream."""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import assert_same_classes
from workbench.data import load_digits
from workbench.io import load_model
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, ReLU, Sequential, random
from workbench.optim import SGD, EveryEpoch, Listener, MaxEpoch, Top1Accuracy
from workbench.spark.streaming import STREAM_STATE_FILE, StreamingDataError, StreamingTrainer
from workbench.summary import TrainSummary, ValidationSummary

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

SCHEMA = "features array<float>, label long"
FILES, ROWS = 6, 160  # six micro-batches of 160 digits


@pytest.fixture(scope="module")
def digits():
    (X, y), (X_test, y_test) = load_digits(size=8)
    return X.reshape(len(X), 64), y, X_test.reshape(len(X_test), 64), y_test


def write_parquet(directory, X, y, files=FILES, rows=ROWS):
    """One parquet file per micro-batch, written then renamed (a file source must never see a
    partial file)."""
    os.makedirs(directory, exist_ok=True)
    for i in range(files):
        part = slice(i * rows, (i + 1) * rows)
        table = pa.table({"features": pa.array(list(X[part].astype(np.float32)),
                                               pa.list_(pa.float32())),
                          "label": pa.array(y[part].astype(np.int64))})
        tmp = os.path.join(directory, f".part-{i:03d}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, os.path.join(directory, f"part-{i:03d}.parquet"))
    return directory


@pytest.fixture(scope="module")
def source(tmp_path_factory, digits):
    X, y, _, _ = digits
    return write_parquet(str(tmp_path_factory.mktemp("digits-stream")), X, y)


def stream_of(spark, directory, schema=SCHEMA):
    return spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(directory)


def mlp(seed=3):
    random.set_seed(seed)
    return Sequential().add(Linear(64, 32)).add(ReLU()).add(Linear(32, 10)).add(LogSoftMax())


def trainer_for(model, **kwargs):
    return StreamingTrainer(model, ClassNLLCriterion(),
                            SGD(learningrate=0.05, momentum=0.9, dampening=0.0), 16, seed=7,
                            **kwargs)


def run(trainer, spark, directory, checkpoint, timeout=120):
    query = trainer.start(stream_of(spark, directory), checkpoint, availableNow=True)
    assert trainer.await_termination(timeout), "the query did not end"
    assert query.exception() is None
    return query


class Recorder(Listener):
    def __init__(self):
        self.events = []

    def on_start(self, optimizer):
        self.events.append(("start", optimizer.state.iteration))

    def on_iteration(self, e):
        self.events.append(("iteration", e.iteration, e.epoch))

    def on_validation(self, e):
        self.events.append(("validation", e.iteration, e.scores["Top1Accuracy"]))

    def on_checkpoint(self, e):
        self.events.append(("checkpoint", e.iteration, e.path))

    def on_finished(self, e):
        self.events.append(("finished", e.iteration, e.stopped, e.error))

    def of(self, kind):
        return [e for e in self.events if e[0] == kind]


def test_training_on_a_stream_improves_and_reaches_tensorboard(spark, source, digits, tmp_path):
    _, _, X_test, y_test = digits
    model = mlp()
    trainer = trainer_for(model)
    train_summary = TrainSummary(str(tmp_path / "logs"), "stream")
    val_summary = ValidationSummary(str(tmp_path / "logs"), "stream")
    recorder = Recorder()
    trainer.set_train_summary(train_summary).set_val_summary(val_summary)
    trainer.add_listener(recorder)
    trainer.set_validation(256, (X_test, y_test), EveryEpoch(), [Top1Accuracy()])
    run(trainer, spark, source, str(tmp_path / "checkpoint"))

    assert trainer.batches_trained == FILES and trainer.last_batch_id == FILES - 1
    per_batch = -(-ROWS // 16)
    assert trainer.state.iteration == FILES * per_batch and trainer.state.epoch == FILES
    # the counters increase across micro-batches: one pass over a micro-batch is one epoch
    iterations = recorder.of("iteration")
    assert [e[1] for e in iterations] == list(range(1, FILES * per_batch + 1))
    assert [e[2] for e in iterations[::per_batch]] == list(range(1, FILES + 1))
    assert recorder.events[0] == ("start", 0) and recorder.events[-1][0] == "finished"
    assert len(recorder.of("start")) == 1 and len(recorder.of("checkpoint")) == FILES
    assert recorder.events[-1][3] is None
    # held-out accuracy after every micro-batch, as TensorBoard reads it
    loss = train_summary.read_scalar("Loss")
    accuracy = val_summary.read_scalar("Top1Accuracy")
    assert len(loss) == FILES * per_batch and list(loss[:, 0]) == list(range(1, len(loss) + 1))
    assert list(accuracy[:, 0]) == [per_batch * (i + 1) for i in range(FILES)]
    first, last = accuracy[0, 1], accuracy[-1, 1]
    assert last > first + 0.05, accuracy[:, 1]
    assert last >= 0.85, accuracy[:, 1]  # chance is 0.1
    assert [e[2] for e in recorder.of("validation")] == pytest.approx(list(accuracy[:, 1]))
    assert np.mean(loss[-per_batch:, 1]) < np.mean(loss[:per_batch, 1])
    # the resumable state: an ordinary training checkpoint and the pointer to it
    state = json.load(open(tmp_path / "checkpoint" / "workbench" / STREAM_STATE_FILE))
    assert state["last_batch_id"] == FILES - 1
    saved = load_model(str(tmp_path / "checkpoint" / "workbench" / state["checkpoint"]))
    np.testing.assert_array_equal(saved.get_parameters()[0], model.get_parameters()[0])


def test_a_restarted_query_resumes_where_it_stopped(spark, source, tmp_path):
    # uninterrupted
    reference = mlp()
    run(trainer_for(reference), spark, source, str(tmp_path / "once"))
    # stopped after 2 micro-batches by the end trigger, then a new driver (new model object,
    # new trainer) on the same checkpoint location
    first = trainer_for(mlp(), end_trigger=MaxEpoch(2))
    query = run(first, spark, source, str(tmp_path / "twice"))
    assert not query.isActive and first.last_batch_id == 1 and first.batches_trained == 2
    stopped_at = first.state.iteration
    model = mlp(seed=99)  # other initial weights: everything must come from the checkpoint
    second = trainer_for(model)
    recorder = Recorder()
    second.add_listener(recorder)
    run(second, spark, source, str(tmp_path / "twice"))
    assert recorder.events[0] == ("start", stopped_at)
    assert recorder.of("iteration")[0][1] == stopped_at + 1  # the counters continue
    # batches 0 and 1 are not trained again (Spark may re-deliver batch 1: it is skipped)
    assert second.batches_trained == FILES - 2 and set(second.skipped_batches) <= {1}
    assert second.state.iteration == stopped_at + (FILES - 2) * -(-ROWS // 16)
    assert second.state.epoch == FILES
    # the local path is deterministic: the same micro-batches, seed, weights and momentum give
    # the same bits
    np.testing.assert_array_equal(model.get_parameters()[0], reference.get_parameters()[0])


def test_stop_ends_the_query_after_the_micro_batch(spark, source, tmp_path):
    model = mlp()
    trainer = trainer_for(model)

    class StopInBatch1(Listener):
        def on_iteration(self, e):
            if e.iteration == 12:  # inside micro-batch 1 (10 iterations each)
                trainer.stop()

    recorder = Recorder()
    trainer.add_listener(StopInBatch1()).add_listener(recorder)
    query = run(trainer, spark, source, str(tmp_path / "checkpoint"))
    assert not query.isActive and query.exception() is None
    assert trainer.last_batch_id == 1 and trainer.state.iteration == 20  # batch 1 completed
    assert recorder.events[-1] == ("finished", 20, True, None)


@pytest.mark.parametrize("schema, rows, message", [
    ("features array<float>, target long", None, "no label column 'label'"),
    ("features array<float>, label string", None, "label column 'label' has type string"),
    (SCHEMA, "null features", "row 3: the column 'features' is null"),
    (SCHEMA, "null label", "row 5: the column 'label' is null"),
    (SCHEMA, "short row", "row 2: the column 'features' has 63 values"),
])
def test_bad_input_fails_the_query_with_a_clear_error(spark, digits, tmp_path, schema, rows,
                                                      message):
    X, y, _, _ = digits
    directory = str(tmp_path / "source")
    write_parquet(directory, X, y, files=1, rows=8)
    if rows is not None:
        features = [list(map(float, x)) for x in X[:8]]
        labels = [int(t) for t in y[:8]]
        if rows == "null features":
            features[3] = None
        elif rows == "null label":
            labels[5] = None
        else:
            features[2] = features[2][:63]
        table = pa.table({"features": pa.array(features, pa.list_(pa.float32())),
                          "label": pa.array(labels, pa.int64())})
        pq.write_table(table, os.path.join(directory, "part-000.parquet"))
    recorder = Recorder()
    trainer = trainer_for(mlp()).add_listener(recorder)
    trainer.start(stream_of(spark, directory, schema), str(tmp_path / "checkpoint"),
                  availableNow=True)
    with pytest.raises(Exception, match="micro-batch 0") as error:
        trainer.await_termination(120)
    assert message in str(error.value)
    assert message in str(trainer.query.exception())
    assert recorder.events[-1][0] == "finished" and message in recorder.events[-1][3]
    assert trainer.last_batch_id == -1 and trainer.state.iteration == 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="engine must be one of"):
        StreamingTrainer(mlp(), ClassNLLCriterion(), engine="gpu")
    with pytest.raises(TypeError, match="criterion must be a Criterion"):
        StreamingTrainer(mlp(), "nll")
    with pytest.raises(ValueError, match="passes must be a positive int"):
        StreamingTrainer(mlp(), ClassNLLCriterion(), passes=0)
    with pytest.raises(TypeError, match="need engine='spark'"):
        StreamingTrainer(mlp(), ClassNLLCriterion(), num_tasks=2)


def test_start_needs_a_streaming_dataframe(spark):
    df = spark.createDataFrame([([0.0] * 64, 1)], SCHEMA)
    with pytest.raises(TypeError, match="expected a streaming DataFrame"):
        trainer_for(mlp()).start(df, "/nonexistent")


def test_the_spark_engine_trains_the_same_micro_batches(spark, source, tmp_path):
    local = mlp()
    first_two = trainer_for(local, end_trigger=MaxEpoch(2))
    run(first_two, spark, source, str(tmp_path / "local"))
    distributed = mlp()
    trainer = trainer_for(distributed, end_trigger=MaxEpoch(2), engine="spark")
    run(trainer, spark, source, str(tmp_path / "spark"))
    assert trainer.state.iteration == first_two.state.iteration and trainer.last_batch_id == 1
    # the same global mini-batches; only the order of the float32 gradient sums differs
    w, r = distributed.get_parameters()[0], local.get_parameters()[0]
    assert np.linalg.norm(w - r) / np.linalg.norm(r) < 1e-4


def test_a_batch_dataframe_error_names_the_column(spark):
    from workbench.spark.streaming import micro_batch_arrays
    df = spark.createDataFrame([([0.0] * 64, 1)], SCHEMA)
    X, y = micro_batch_arrays(df, feature_shape=(1, 8, 8))
    assert X.shape == (1, 1, 8, 8) and X.dtype == np.float32 and list(y) == [1]
    from pyspark.ml.linalg import Vectors
    vectors = spark.createDataFrame([(Vectors.dense([1.0, 2.0]), 0.0, 3, 4.5)],
                                    ["v", "label", "a", "b"])
    X, y = micro_batch_arrays(vectors, "v")
    assert X.tolist() == [[1.0, 2.0]] and y.tolist() == [0.0]
    X, _ = micro_batch_arrays(vectors, ["a", "b"])
    assert X.tolist() == [[3.0, 4.5]]
    with pytest.raises(StreamingDataError, match="several feature columns must all be numeric"):
        micro_batch_arrays(vectors, ["v", "a"])
    with pytest.raises(StreamingDataError, match=r"'features' has 64 values per row, which do "
                                                 r"not fit feature_shape \(1, 28, 28\)"):
        micro_batch_arrays(df, feature_shape=(1, 28, 28))


# ---------------------------------------------------------------------- scoring a stream
def memory_sink(frame, tmp_path, name):
    query = frame.writeStream.format("memory").queryName(name).trigger(availableNow=True) \
        .option("checkpointLocation", str(tmp_path / name)).start()
    assert query.awaitTermination(120) and query.exception() is None
    return query


def test_a_scored_file_stream_matches_batch_scoring(spark, source, digits, tmp_path):
    from workbench.spark.scoring import transform
    X, y, _, _ = digits
    model = mlp()
    run(trainer_for(model, end_trigger=MaxEpoch(2)), spark, source, str(tmp_path / "train"))
    stream = stream_of(spark, source)
    scored = transform(stream, model, output="outputs")
    scored = transform(scored, model, prediction_col="class", output="class")
    memory_sink(scored, tmp_path, "scored_digits")
    rows = spark.table("scored_digits").toPandas()
    assert len(rows) == FILES * ROWS
    # batch scoring of the same files, and the in-process model on the same arrays
    batch = transform(spark.read.schema(SCHEMA).parquet(source), model,
                      prediction_col="class", output="class").toPandas()
    order, batch_order = np.lexsort(np.stack(rows["features"]).T), \
        np.lexsort(np.stack(batch["features"]).T)
    np.testing.assert_array_equal(rows["class"].to_numpy()[order],
                                  batch["class"].to_numpy()[batch_order])
    features = np.stack(rows["features"]).astype(np.float32)
    expected = model.predict(features)
    np.testing.assert_allclose(np.stack(rows["prediction"]), expected, rtol=1e-5, atol=1e-5)
    assert_same_classes(rows["class"].to_numpy().astype(int), expected)


def test_a_scored_rate_stream_matches_in_process_prediction(spark, tmp_path):
    from pyspark.sql import functions as F

    from workbench.spark.scoring import transform
    model = mlp()
    stream = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 20).load()
    stream = stream.select("value", F.array(*[F.sin(F.col("value") * (i + 1)).cast("float")
                                              for i in range(64)]).alias("features"))
    memory_sink(transform(stream, model, output="class"), tmp_path, "scored_rate")
    rows = spark.table("scored_rate").toPandas().sort_values("value")
    assert list(rows["value"]) == list(range(20))
    features = np.sin(np.outer(np.arange(20), np.arange(1, 65))).astype(np.float32)
    assert_same_classes(rows["prediction"].to_numpy().astype(int), model.predict(features))


def test_an_nn_classifier_model_scores_a_stream_as_it_scores_a_batch(spark, source, tmp_path):
    # the Spark ML model (what a PipelineModel holds) on a file-source stream: a memory sink
    # holds the classes batch transform gives for the same files
    from workbench.spark.ml import NNClassifierModel
    model = mlp()
    run(trainer_for(model, end_trigger=MaxEpoch(2)), spark, source, str(tmp_path / "train"))
    scorer = NNClassifierModel(model, [64]).setPredictionCol("digit")
    memory_sink(scorer.transform(stream_of(spark, source)), tmp_path, "nn_model_stream")
    streamed = spark.table("nn_model_stream").toPandas()
    batch = scorer.transform(spark.read.schema(SCHEMA).parquet(source)).toPandas()
    assert len(streamed) == len(batch) == FILES * ROWS
    key = {tuple(f): d for f, d in zip(batch["features"], batch["digit"])}
    assert [key[tuple(f)] for f in streamed["features"]] == list(streamed["digit"])
    assert streamed["digit"].nunique() > 5  # a trained model, not one class everywhere
