"""``Optimizer(..., snapshot_interval="auto", node_mtbf=...)`` on Spark: the interval between
snapshots by Young's rule from the snapshot cost the trainer measures at every stretch
boundary, the task count and the failure rate (docs/SCALING.md §6)."""
import math

import numpy as np
import pytest

from workbench.data import Sample
from workbench.nn import ClassNLLCriterion
from workbench.optim import MaxIteration, Optimizer, SGD
from workbench.spark.comm import NODE_MTBF, snapshot_interval

from helpers import four_class_mlp as mlp, four_class_problem as problem

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]


def test_young_rule():
    assert snapshot_interval(2.0, 8, 3600.0) == math.sqrt(2 * 2.0 * 3600.0 / 8)
    # more nodes fail more often: snapshot more often; a dearer snapshot: less often
    assert snapshot_interval(1.5, 256) < snapshot_interval(1.5, 8) < snapshot_interval(6.0, 8)
    # a month per node, 1.5 s per snapshot: ~16 min at 8 nodes, ~3 min at 256 (SCALING.md §4)
    assert 15 * 60 < snapshot_interval(1.5, 8, NODE_MTBF) < 18 * 60
    assert 2.5 * 60 < snapshot_interval(1.5, 256, NODE_MTBF) < 3.5 * 60
    for cost, tasks, mtbf in ((0.0, 2, 1.0), (-1.0, 2, 1.0), (math.inf, 2, 1.0),
                              (1.0, 0, 1.0), (1.0, 2, 0.0), (1.0, 2, math.nan)):
        with pytest.raises(ValueError, match="snapshot_interval needs"):
            snapshot_interval(cost, tasks, mtbf)


@pytest.fixture(scope="module")
def rdd(sc):
    X, y = problem()
    return sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2)


def train(data, iterations=4, **options):
    model = mlp()
    opt = Optimizer(model, data, ClassNLLCriterion(), MaxIteration(iterations), 37, SGD(0.1),
                    seed=5, progress=False, **options)
    opt.optimize()
    return model.get_parameters()[0].copy(), opt


def test_auto_ends_stretches_by_the_rule_and_keeps_the_bits(rdd):
    fixed, fixed_opt = train(rdd)
    assert len(fixed_opt._runner.stats) == 1
    # a node failing every nanosecond: Young's rule gives microseconds, so every stretch ends
    # after its first iteration (the check runs after each one) - four stretches for four
    weights, opt = train(rdd, snapshot_interval="auto", node_mtbf=1e-9)
    runner = opt._runner
    assert len(runner.stats) == 4 and opt.state.iteration == 4
    costs = runner.snapshot_costs
    assert len(costs) == 4 and all(c > 0 for c in costs)
    # the last stretch planned with the median cost of the three boundaries before it
    expected = snapshot_interval(max(float(np.median(costs[:3])), 1e-3), 2, 1e-9)
    assert runner.snapshot_interval_used == expected
    assert runner.retries == 0
    # where a stretch ends never changes the numbers
    assert np.array_equal(weights, fixed)


def test_auto_with_the_default_failure_rate_snapshots_rarely(rdd):
    weights, opt = train(rdd, snapshot_interval="auto")
    runner = opt._runner
    assert len(runner.stats) == 1 and len(runner.snapshot_costs) == 1
    # one failure per node-month, 2 tasks: Young's rule over the first stretch's start alone
    # (its end not yet measured: assumed to cost as much), many minutes
    assert runner.snapshot_interval_used > 60
    fixed, _ = train(rdd, snapshot_interval=10.0)
    assert np.array_equal(weights, fixed)


@pytest.mark.parametrize("options, match", [
    ({"snapshot_interval": "sometimes"}, "snapshot_interval must be a positive number"),
    ({"snapshot_interval": -5}, "snapshot_interval must be a positive number"),
    ({"snapshot_interval": None}, "snapshot_interval must be a positive number"),
    ({"snapshot_interval": 60, "node_mtbf": 3600}, "node_mtbf sets the failure rate"),
    ({"snapshot_interval": "auto", "node_mtbf": 0}, "node_mtbf must be positive"),
    ({"snapshot_interval": "auto", "node_mtbf": "monthly"}, "node_mtbf must be positive"),
])
def test_bad_options_are_refused_before_training(rdd, options, match):
    model = mlp()
    before = model.get_parameters()[0].copy()
    with pytest.raises(ValueError, match=match):
        Optimizer(model, rdd, ClassNLLCriterion(), MaxIteration(2), 37, SGD(0.1), seed=5,
                  progress=False, **options).optimize()
    assert np.array_equal(model.get_parameters()[0], before)
