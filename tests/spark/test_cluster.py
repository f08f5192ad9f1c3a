"""A real Spark standalone cluster: a master and 2 workers on 127.0.0.1 started with pyspark's
own launcher, LeNet-5 trained through it with spark-submit, then trained again while one
worker (and its executor) is killed mid-training.

Marked ``cluster`` (about 1.5 minutes): ``pytest -m "not cluster"`` skips it."""
import json
import os

import pytest

from workbench.spark.standalone import StandaloneCluster

pytestmark = [pytest.mark.spark, pytest.mark.cluster, pytest.mark.timeout(600)]
JOB = os.path.join(os.path.dirname(__file__), "jobs", "train_lenet.py")
STRETCH = 10  # max_stretch_iterations in the job


@pytest.fixture(scope="module")
def cluster():
    with StandaloneCluster(workers=2, cores=1, memory="2g") as c:
        yield c


def test_train_on_a_standalone_cluster_and_survive_a_killed_worker(cluster, tmp_path):
    out = tmp_path / "result.json"
    proc = cluster.submit(JOB, out, "--kill-worker", cluster.worker_pid(2), "--at", 15,
                          conf={"spark.executor.memory": "1g"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["master"] == cluster.url and result["slots"] == 2
    clean, killed = result["clean"], result["killed"]
    # the clean run used both workers in every stretch
    assert set(clean["tasks_per_stretch"]) == {2}
    assert clean["retries"] == 0 and clean["events"] == clean["iterations"] == 46
    assert clean["accuracy"] >= 0.9 and clean["score"] is not None
    # killed at iteration 15: the driver restarted the stretch on the one worker left
    assert killed["killed_at"] == 15 and killed["retries"] >= 1
    assert killed["tasks_per_stretch"][-1] == 1
    assert killed["distinct"] == killed["iterations"] == 46
    assert killed["events"] - killed["distinct"] <= STRETCH  # at most one stretch repeated
    assert abs(killed["accuracy"] - clean["accuracy"]) <= 0.01
