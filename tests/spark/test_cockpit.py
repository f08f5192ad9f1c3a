"""The cockpit on Spark local[2]: every task's TaskReport reaches the driver as ClusterEvents (a
task slowed by fault injection stands out as the straggler), task 0's sampled per-layer
profile arrives as LayerProfileEvents, a restart from the snapshot shows at once, all of it
lands in the run's files, and none of it changes a bit of the training."""
import numpy as np
import pytest

from workbench import models
from workbench.data import Sample, load_digits
from workbench.nn import ClassNLLCriterion, random
from workbench.optim import SGD, Listener, MaxIteration, Optimizer
from workbench.runs import RunRecorder, read_run
from workbench.summary import TrainSummary, read_scalar

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:workbench. a training stretch failed")]

BATCH = 32


@pytest.fixture(scope="module")
def rdd(sc):
    (X, y), _ = load_digits(size=28)
    return sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X[:320], y[:320])], 2)


class Heard(Listener):
    def __init__(self):
        self.cluster, self.profiles = [], []

    def on_cluster(self, e):
        self.cluster.append(e)

    def on_profile(self, e):
        self.profiles.append(e)


def train(rdd, iterations=12, profile=0, listeners=(), **options):
    random.set_seed(21)
    model = models.LeNet5(10)
    opt = Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(iterations), BATCH,
                    SGD(0.05, momentum=0.9), seed=5, progress=False, **options)
    opt.set_profile(profile)
    heard = Heard()
    for x in (heard, *listeners):
        opt.add_listener(x)
    opt.optimize()
    return model.get_parameters()[0].copy(), heard, opt


@pytest.fixture(scope="module")
def plain(rdd):
    return train(rdd, report_every=0)


def test_a_slow_task_stands_out_and_the_views_change_no_bit(rdd, plain, tmp_path):
    recorder = RunRecorder(tmp_path, "spark", interval=3600)
    summary = TrainSummary(str(tmp_path), "spark")
    weights, heard, opt = train(
        rdd, profile=4, listeners=(recorder, summary), report_every=3,
        fault_injection={"iteration": 1, "rank": 1, "mode": "slow", "seconds": 0.25})
    summary.close()
    assert np.array_equal(weights, plain[0])  # slowed, profiled, reported: the same bits
    assert plain[1].cluster == [] and plain[1].profiles == []
    assert [e.iteration for e in heard.cluster] == [3, 6, 9, 12]
    for e in heard.cluster:
        assert [t.rank for t in e.tasks] == [0, 1]
        assert all(t.iterations == 3 for t in e.tasks)
        assert sum(t.records for t in e.tasks) == 3 * BATCH
        assert all(t.executor and t.host and t.attempt == 0 for t in e.tasks)
        assert e.straggler() == 1 and e.restarts == 0
        # the fast task's time goes into waiting for the slow one
        slow, fast = e.tasks[1], e.tasks[0]
        assert slow.compute > 3 * 0.25 and fast.waiting > fast.compute
    # task 0's profile of iterations 4, 8, 12
    assert [e.iteration for e in heard.profiles] == [4, 8, 12]
    assert all(e.source == "task 0" for e in heard.profiles)
    assert {"conv1_5x5", "fc2"} <= {t.name for t in heard.profiles[-1].layers if t.leaf}
    # the run's files: the record the panel serves, TensorBoard's scalars
    record = read_run(tmp_path, "spark")
    cluster = record["cluster"]
    assert cluster["iteration"] == 12 and cluster["straggler"] == 1
    last = heard.cluster[-1].tasks
    assert [t["records_per_second"] for t in cluster["tasks"]] == pytest.approx(
        [t.records_per_second for t in last])
    assert [p[0] for p in cluster["series"]["1"]] == [3, 6, 9, 12]
    assert record["profile"]["iteration"] == 12 and record["profile"]["source"] == "task 0"
    rate = read_scalar(str(tmp_path / "spark" / "train"), "Cluster/task1/records_per_s")
    assert rate[:, 0].tolist() == [3, 6, 9, 12]
    assert rate[-1, 1] == pytest.approx(last[1].records_per_second, rel=1e-5)


def test_a_restart_from_the_snapshot_shows(rdd, plain):
    weights, heard, opt = train(rdd, report_every=2, max_stretch_iterations=4,
                                fault_injection={"iteration": 7, "rank": 1, "mode": "raise"})
    assert opt._runner.retries == 1
    restarted = [e for e in heard.cluster if e.restarts == 1]
    assert restarted and "injected failure in task 1" in restarted[0].last_error
    before = [e for e in heard.cluster if e.restarts == 0]
    assert before and before[-1].iteration <= 6
    assert heard.cluster[-1].iteration == 12 and heard.cluster[-1].stretches >= 4
    assert np.allclose(weights, plain[0], rtol=1e-5, atol=1e-7)
