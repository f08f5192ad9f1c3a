"""Fine-tuning on Spark local[2]: frozen weights stay bit-identical, the trainable ones equal
the local loop's, and the all-reduce carries the trainable vector only."""
import numpy as np
import pytest

from workbench.data import Sample
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential, Tanh, random
from workbench.optim import SGD, MaxIteration, Optimizer

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]


def problem(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 16)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + 2 * (X[:, 2] > 0)
    return X, y


def model(seed=5):
    random.set_seed(seed)
    return (Sequential()
            .add(Linear(16, 64).set_name("fc1")).add(Tanh())
            .add(Linear(64, 64).set_name("fc2")).add(Tanh().set_name("act2"))
            .add(Linear(64, 4).set_name("head")).add(LogSoftMax()))


def train(net, data, iterations=6):
    opt = Optimizer(net, data, ClassNLLCriterion(), MaxIteration(iterations), 30,
                    SGD(0.1, momentum=0.9, weightdecay=1e-3), seed=3, progress=False)
    opt.optimize()
    return opt


def params(net, name):
    m = next(m for m in net.modules() if m.name() == name)
    return [np.array(getattr(m, p), copy=True) for p in m._param_names]


def test_frozen_layers_on_local2_stay_bit_identical_and_send_no_bytes(sc):
    X, y = problem()
    rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2)

    local = model().freeze_up_to("act2")
    train(local, (X, y))
    frozen = model().freeze_up_to("act2")
    before = {n: params(frozen, n) for n in ("fc1", "fc2", "head")}
    run = train(frozen, rdd)

    for name in ("fc1", "fc2"):
        assert all(a.tobytes() == b.tobytes()
                   for a, b in zip(before[name], params(frozen, name))), name
    assert not np.allclose(before["head"][0], params(frozen, "head")[0])
    np.testing.assert_allclose(params(frozen, "head")[0], params(local, "head")[0],
                               rtol=1e-5, atol=1e-6)
    # optimizer state and ring traffic: the trainable vector only
    trainable = 64 * 4 + 4
    assert run.optim_method.get_state()[1]["momentum"].size == trainable
    tasks = [t for stretch in run._runner.stats for t in stretch]
    assert {t["vector_values"] for t in tasks} == {trainable}
    assert sum(t["iterations"] for t in tasks) == 2 * 6
    # reduce-scatter + all-gather: each of the 2 tasks sends half the vector twice per
    # iteration, plus the iteration headers; the whole model's vector would be 5508 values
    sent = sum(t["bytes_sent"] for t in tasks)
    vector_bytes = 2 * 6 * 4 * trainable
    whole_model_bytes = 2 * 6 * 4 * model().get_parameters()[0].size
    assert vector_bytes <= sent < vector_bytes + 2 * 6 * 1024, sent
    assert sent < 0.1 * whole_model_bytes
