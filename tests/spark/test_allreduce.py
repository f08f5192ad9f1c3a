"""The all-reduce option of Spark training: ``Optimizer(..., allreduce="ring" | "doubling" |
"auto")`` on Spark local[2] (the collectives themselves: tests/spark/test_comm_doubling.py)."""
import numpy as np
import pytest

from workbench.data import Sample
from workbench.nn import ClassNLLCriterion
from workbench.optim import Adam, MaxIteration, Optimizer, SGD

from helpers import four_class_mlp as mlp, four_class_problem as problem

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]


def train(data, **options):
    """20 iterations of Adam with L2-norm clipping (a control all-reduce of its own); the
    weights, and the Optimizer."""
    model = mlp()
    opt = Optimizer(model, data, ClassNLLCriterion(), MaxIteration(20), 37, Adam(0.01), seed=3,
                    progress=False, **options)
    opt.set_gradclip_l2norm(0.5)
    opt.optimize()
    return model.get_parameters()[0].copy(), opt


@pytest.fixture(scope="module")
def data(sc):
    X, y = problem()
    return X, y, sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 3)


@pytest.fixture(scope="module")
def ring_run(data):
    """The default: the ring, as before the option existed."""
    return train(data[2])


def test_doubling_trains_reproducibly_with_agreeing_replicas(data, ring_run):
    X, y, rdd = data
    local, _ = train((X, y))
    ring, ring_opt = ring_run
    # three stretches (the optimizer state re-sliced twice), then one: the same bits
    first, opt = train(rdd, allreduce="doubling", max_stretch_iterations=7)
    again, _ = train(rdd, allreduce="doubling")
    assert opt._runner.allreduce_used == "doubling" and ring_opt._runner.allreduce_used == "ring"
    assert opt.state.iteration == 20 and len(opt._runner.stats) == 3
    # every replica ends every stretch with the same weights, on either collective
    for run in (opt, ring_opt):
        for stretch in run._runner.stats:
            assert len(stretch) == 2
            assert len({task["weights_crc32"] for task in stretch}) == 1
    assert np.array_equal(first, again)  # a rerun gives the same bits
    # Doubling adds the ranks' gradients in another order than the ring, so from 3 tasks on the
    # sums differ in the last bits.  With the 2 tasks of local[2] both add the same two
    # operands (a + b == b + a), so here even the bits agree with the ring.
    assert np.array_equal(first, ring)
    np.testing.assert_allclose(first, local, rtol=1e-4, atol=1e-5)
    assert np.linalg.norm(first - local) / np.linalg.norm(local) <= 1e-5


def test_auto_keeps_the_ring_on_two_tasks(data, ring_run):
    default, _ = ring_run
    auto, opt = train(data[2], allreduce="auto")
    assert opt._runner.allreduce_used == "ring"  # 2 tasks: doubling would save no steps
    assert np.array_equal(auto, default)


def test_bad_allreduce_values_are_rejected(data):
    _, _, rdd = data
    for bad in ("tree", "Ring", 2, None):
        with pytest.raises(ValueError, match=r"allreduce must be one of \('ring', 'doubling', "
                                             r"'auto'\)"):
            Optimizer(mlp(), rdd, ClassNLLCriterion(), MaxIteration(1), 4, SGD(0.1),
                      allreduce=bad)
    with pytest.raises(ValueError, match="gradient_compression is a ring option"):
        Optimizer(mlp(), rdd, ClassNLLCriterion(), MaxIteration(1), 4, SGD(0.1),
                  allreduce="doubling", gradient_compression="bf16")
