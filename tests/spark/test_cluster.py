"""A real Spark standalone cluster: a master and 2 workers on 127.0.0.1 started with pyspark's
own launcher, LeNet-5 trained through it with spark-submit, then trained again while one
worker (and its executor) is killed mid-training; and the ``workbench`` command line run by
spark-submit on the same cluster (train, then predict, on Parquet files).

Marked ``cluster`` (minutes; one cluster for the module): ``pytest -m "not cluster"``
skips it."""
import json
import os

import numpy as np
import pytest

import workbench.cli
from workbench import io
from workbench.data import load_digits
from workbench.nn import Linear, LogSoftMax, Sequential, Tanh, random
from workbench.spark.standalone import StandaloneCluster

pytestmark = [pytest.mark.spark, pytest.mark.cluster, pytest.mark.timeout(600)]
JOB = os.path.join(os.path.dirname(__file__), "jobs", "train_lenet.py")
STRETCH = 10  # max_stretch_iterations in the job


@pytest.fixture(scope="module")
def cluster():
    # a loaded machine may take minutes to start three JVMs: the deadline only bounds a hang
    c = StandaloneCluster(workers=2, cores=1, memory="2g").start(timeout=300)
    try:
        yield c
    finally:
        c.stop()


def test_train_on_a_standalone_cluster_and_survive_a_killed_worker(cluster, tmp_path):
    out = tmp_path / "result.json"
    proc = cluster.submit(JOB, out, "--kill-worker", cluster.worker_pid(2), "--at", 15,
                          conf={"spark.executor.memory": "1g"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["master"] == cluster.url and result["slots"] == 2
    clean, killed = result["clean"], result["killed"]
    print("killed-worker run:", json.dumps(killed))
    # the clean run used both workers in every stretch
    assert set(clean["tasks_per_stretch"]) == {2}
    assert clean["retries"] == 0 and clean["events"] == clean["iterations"] == 46
    assert clean["accuracy"] >= 0.9 and clean["score"] is not None
    # killed at iteration 15: the driver restarted the stretch on the one worker left
    assert killed["killed_at"] == 15 and killed["retries"] >= 1
    assert killed["stall_seconds"] is not None  # measured: kill -> the next iteration
    assert killed["tasks_per_stretch"][-1] == 1
    assert killed["distinct"] == killed["iterations"] == 46
    assert killed["events"] - killed["distinct"] <= STRETCH  # at most one stretch repeated
    assert abs(killed["accuracy"] - clean["accuracy"]) <= 0.01


# two spark-submits, each starting a driver and two executors: 4-8 minutes measured on this
# machine under a load average of 25 (training itself: epochs of 3-5 s once running); the
# timeout only bounds a hang
@pytest.mark.timeout(1800)
def test_the_command_line_trains_and_predicts_through_spark_submit(cluster, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    (X, y), (Xt, yt) = load_digits(size=8, normalize=False)

    def table(path, X, y):
        pq.write_table(pa.table({"id": np.arange(len(X)),
                                 "pixels": [x.ravel().tolist() for x in X.astype(np.float32)],
                                 "digit": y.astype(np.int64)}), path)
    (tmp_path / "train").mkdir()
    table(tmp_path / "train" / "part-0.parquet", X[:600], y[:600])
    table(tmp_path / "train" / "part-1.parquet", X[600:1200], y[600:1200])
    table(tmp_path / "test.parquet", Xt, yt)
    random.set_seed(7)
    io.save_model(Sequential().add(Linear(64, 32)).add(Tanh()).add(Linear(32, 10))
                  .add(LogSoftMax()), str(tmp_path / "mlp.bigdl"))
    script = workbench.cli.__file__  # spark-submit runs the module's file as the application
    conf = {"spark.executor.memory": "1g"}
    proc = cluster.submit(script, "train", tmp_path / "mlp.bigdl", "--data", tmp_path / "train",
                          "--features", "pixels", "--label", "digit", "--epochs", "3",
                          "--optimizer", "adam", "--learning-rate", "0.02",
                          "--output", tmp_path / "digits.bigdl", "--log-dir", tmp_path / "runs",
                          conf=conf)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Spark {cluster.url}" in proc.stdout
    assert (tmp_path / "digits.bigdl").exists() and (tmp_path / "digits.data.json").exists()
    proc = cluster.submit(script, "predict", tmp_path / "digits.bigdl", "--data",
                          tmp_path / "test.parquet", "--output", tmp_path / "scored.parquet",
                          conf=conf)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    scored = pq.read_table(tmp_path / "scored.parquet").to_pandas().sort_values("id")
    assert list(scored.columns) == ["id", "pixels", "digit", "prediction"]
    assert len(scored) == len(Xt)
    # the predictions are the trained model's, and it learned the digits
    model = io.load_model(str(tmp_path / "digits.bigdl"))
    model.evaluate()
    expected = np.asarray(model.forward(Xt.reshape(len(Xt), 64).astype(np.float32)))
    assert (scored["prediction"].to_numpy() == expected.argmax(axis=1)).all()
    assert (scored["prediction"].to_numpy() == yt).mean() >= 0.85
