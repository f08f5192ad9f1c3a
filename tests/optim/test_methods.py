"""Optim methods: 20 steps against torch.optim, checkpoint state, slices, bad arguments."""
import json
import math

import numpy as np
import pytest
from oracle import torch

from helpers import (W0, assert_same_trajectory, loss_and_grad,
                     run_ours, run_torch)
from workbench._config import from_config
from workbench.optim import (SGD, Adadelta, Adagrad, Adam, Adamax, Default, OptimMethod, Plateau,
                             RMSprop, SequentialSchedule, Step, Warmup)

# ---------------------------------------------------------------------- parity with torch.optim
SGD_CASES = [
    ("plain", dict(learningrate=0.1), dict(lr=0.1), None),
    # dampening None means "= momentum" (Torch7); torch must be told explicitly
    ("momentum, default dampening", dict(learningrate=0.05, momentum=0.9),
     dict(lr=0.05, momentum=0.9, dampening=0.9), None),
    ("momentum, no dampening", dict(learningrate=0.05, momentum=0.9, dampening=0.0),
     dict(lr=0.05, momentum=0.9), None),
    ("momentum, dampening, weight decay",
     dict(learningrate=0.05, momentum=0.8, dampening=0.3, weightdecay=0.01),
     dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), None),
    ("nesterov + weight decay",
     dict(learningrate=0.05, momentum=0.9, dampening=0.0, nesterov=True, weightdecay=1e-3),
     dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), None),
    ("learning-rate decay + momentum",
     dict(learningrate=0.2, learningrate_decay=0.1, momentum=0.5, dampening=0.0),
     dict(lr=0.2, momentum=0.5),
     lambda g, t: g.__setitem__("lr", 0.2 / (1 + t * 0.1))),
]


@pytest.mark.oracle
@pytest.mark.parametrize("name,ours,theirs,per_step", SGD_CASES, ids=[c[0] for c in SGD_CASES])
def test_sgd_matches_torch(name, ours, theirs, per_step):
    assert_same_trajectory(run_ours(SGD(**ours)),
                           run_torch(lambda p: torch.optim.SGD(p, **theirs), per_step=per_step))


def _adam_eps(eps, beta2, lr=None, decay=0.0):
    """BigDL adds epsilon to sqrt(v) before the bias correction, torch after it: BigDL's eps is
    torch's eps * sqrt(1 - beta2^t), so give torch the equivalent eps at each step."""
    def per_step(group, t):
        group["eps"] = eps / math.sqrt(1 - beta2 ** (t + 1))
        if lr is not None:
            group["lr"] = lr / (1 + t * decay)
    return per_step


@pytest.mark.oracle
def test_adam_matches_torch():
    ours = run_ours(Adam(learningrate=0.01))
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.01), per_step=_adam_eps(1e-8, 0.999))
    assert_same_trajectory(ours, theirs)
    # With torch's own (constant) epsilon only the epsilon placement differs: weights agree to
    # ~1e-6 absolute after 20 steps (relative error is larger only for weights near zero).
    plain = run_torch(lambda p: torch.optim.Adam(p, lr=0.01))
    np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=5e-6)


@pytest.mark.oracle
def test_adam_with_learning_rate_decay_and_betas_matches_torch():
    ours = run_ours(Adam(learningrate=0.02, learningrate_decay=0.05, beta1=0.8, beta2=0.99,
                         epsilon=1e-6))
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99)),
                       per_step=_adam_eps(1e-6, 0.99, lr=0.02, decay=0.05))
    assert_same_trajectory(ours, theirs)


def test_adam_step_against_the_formula():
    g1, g2 = np.array([0.5, -2.0, 0.0]), np.array([1.0, 1.0, -3.0])
    w = np.array([1.0, 2.0, 3.0])
    m = Adam(learningrate=0.1, learningrate_decay=0.5, beta1=0.9, beta2=0.99, epsilon=1e-3)
    m.update(w, g1)
    m.update(w, g2)
    # hand computation: step 1 clr = 0.1, step 2 clr = 0.1 / 1.5
    expected = np.array([1.0, 2.0, 3.0])
    mm, vv = np.zeros(3), np.zeros(3)
    for t, (g, clr) in enumerate([(g1, 0.1), (g2, 0.1 / 1.5)], start=1):
        mm = 0.9 * mm + 0.1 * g
        vv = 0.99 * vv + 0.01 * g * g
        expected -= clr * math.sqrt(1 - 0.99 ** t) / (1 - 0.9 ** t) * mm / (np.sqrt(vv) + 1e-3)
    np.testing.assert_allclose(w, expected, rtol=1e-12)


@pytest.mark.oracle
def test_adagrad_matches_torch():
    ours = run_ours(Adagrad(learningrate=0.1, learningrate_decay=0.01, weightdecay=0.01))
    theirs = run_torch(lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                                     eps=1e-10))
    assert_same_trajectory(ours, theirs)


@pytest.mark.oracle
def test_rmsprop_matches_torch():
    ours = run_ours(RMSprop(learningrate=0.01, learningrate_decay=0.02, decayrate=0.9,
                            epsilon=1e-8))
    theirs = run_torch(lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8),
                       per_step=lambda g, t: g.__setitem__("lr", 0.01 / (1 + t * 0.02)))
    assert_same_trajectory(ours, theirs)


@pytest.mark.oracle
@pytest.mark.parametrize("rho,eps", [(0.9, 1e-6), (0.95, 1e-10)])
def test_adadelta_matches_torch(rho, eps):
    ours = run_ours(Adadelta(decayrate=rho, epsilon=eps))
    theirs = run_torch(lambda p: torch.optim.Adadelta(p, lr=1.0, rho=rho, eps=eps))
    assert_same_trajectory(ours, theirs)


@pytest.mark.oracle
def test_adamax_matches_torch():
    ours = run_ours(Adamax(learningrate=0.01, beta1=0.85, beta2=0.99))
    theirs = run_torch(lambda p: torch.optim.Adamax(p, lr=0.01, betas=(0.85, 0.99), eps=1e-38))
    assert_same_trajectory(ours, theirs)


# ---------------------------------------------------------------------- the loop's interface
@pytest.mark.oracle
def test_optimize_is_torch7_style():
    m = SGD(learningrate=0.1)
    x = W0.copy()
    loss0, g0 = loss_and_grad(x.copy())
    out, losses = m.optimize(loss_and_grad, x)
    assert out is x and losses == [pytest.approx(loss0)]
    np.testing.assert_allclose(x, W0 - 0.1 * g0)
    assert m.state["neval"] == 1


def test_learning_rate_follows_the_schedule():
    m = SGD(learningrate=0.1, learningrate_decay=0.5)
    w, g = np.ones(4), np.ones(4)
    rates = []
    for _ in range(3):
        rates.append(m.get_learning_rate())
        m.update(w, g)
    assert rates == pytest.approx([0.1, 0.1 / 1.5, 0.05])
    np.testing.assert_allclose(w, 1 - sum(rates))
    s = SGD(learningrate=1.0, learningrate_schedule=Step(2, 0.5))
    seen = []
    for _ in range(5):
        seen.append(s.get_learning_rate())
        s.update(w, g)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert Adadelta().get_learning_rate() == 1.0
    assert Adam(0.01, learningrate_schedule=Warmup(0.01)).get_learning_rate() == 0.01


@pytest.mark.oracle
@pytest.mark.parametrize("make", [
    lambda: SGD(0.1, momentum=0.9, weightdecay=1e-3),
    lambda: SGD(0.1, momentum=0.9, dampening=0.0, nesterov=True),
    lambda: Adam(0.01), lambda: Adagrad(0.1, weightdecay=0.01), lambda: RMSprop(0.01),
    lambda: Adadelta(), lambda: Adamax(0.01)], ids=lambda f: "")
def test_float32_slices_update_like_the_whole_vector(make):
    """The distributed trainer updates 1/N slices with their own method: same bits as one
    update of the whole vector; float32 stays float32."""
    w = W0.astype(np.float32)
    whole, a, b = make(), make(), make()
    w_whole, w_split = w.copy(), w.copy()
    half = len(w) // 2
    for _ in range(5):
        _, g = loss_and_grad(w_whole)
        whole.update(w_whole, g)
        _, g = loss_and_grad(w_split)
        a.update(w_split[:half], g[:half])
        b.update(w_split[half:], g[half:])
    assert w_whole.dtype == np.float32
    assert all(v.dtype == np.float32 for v in whole.get_state()[1].values())
    np.testing.assert_array_equal(w_whole, w_split)
    assert {v.size for v in a.get_state()[1].values()} <= {half}


# ---------------------------------------------------------------------- checkpoint state
def _drive(method, w, start, steps):
    """Like the training loop: 4 iterations per epoch, a validation score after each epoch."""
    for i in range(start, start + steps):
        method.state["epoch"] = 1 + i // 4
        _, g = loss_and_grad(w)
        method.update(w, g)
        method.state["loss"] = float(np.abs(w).sum())
        if (i + 1) % 4 == 0:
            method.state["score"] = 0.5  # never improves: Plateau reduces
    return w


STATEFUL = [
    lambda: SGD(0.05, momentum=0.9, weightdecay=1e-3, learningrate_decay=0.01),
    lambda: SGD(0.05, momentum=0.9, dampening=0.0, nesterov=True,
                learningrate_schedule=SequentialSchedule(4).add(Warmup(0.01), 6)
                .add(Plateau("score", factor=0.5, patience=0), 100)),
    lambda: Adam(0.01, learningrate_decay=0.01, learningrate_schedule=Step(3, 0.7)),
    lambda: Adagrad(0.1, weightdecay=0.01), lambda: RMSprop(0.01), lambda: Adadelta(),
    lambda: Adamax(0.01),
]


@pytest.mark.oracle
@pytest.mark.parametrize("make", STATEFUL, ids=lambda f: "")
def test_state_round_trip_continues_exactly(make):
    w = W0.astype(np.float32)
    full = _drive(make(), w.copy(), 0, 20)

    first = make()
    part = _drive(first, w.copy(), 0, 10)
    document, arrays = first.get_state()
    document = json.loads(json.dumps(document))  # what a checkpoint file keeps
    arrays = {k: v.copy() for k, v in arrays.items()}
    _drive(first, part.copy(), 10, 3)  # the snapshot is a copy: later updates don't touch it

    restored = from_config(json.loads(json.dumps(first.get_config())), OptimMethod)
    restored.load_state(document, arrays)
    assert restored.state["neval"] == 10
    resumed = _drive(restored, part, 10, 10)
    np.testing.assert_array_equal(resumed, full)


@pytest.mark.oracle
def test_plateau_reduced_inside_the_checkpointed_run():
    m = STATEFUL[1]()
    _drive(m, W0.copy(), 0, 16)
    # warm-up to 0.05 + 6 * 0.01 at iteration 6; Plateau takes over in epoch 2, sees the first
    # score (its best) in epoch 3 and halves the rate in epoch 4 (patience 0)
    assert m.get_learning_rate() == pytest.approx(0.11 * 0.5)


# ---------------------------------------------------------------------- bad arguments and input
@pytest.mark.parametrize("make,error,match", [
    (lambda: SGD(learningrate=-0.1), ValueError, r"SGD: learningrate .* got -0\.1"),
    (lambda: SGD(learningrate="0.1"), ValueError, r"learningrate must be a finite number.*'0\.1'"),
    (lambda: SGD(0.1, momentum=-1), ValueError, r"momentum .* got -1"),
    (lambda: SGD(0.1, weightdecay=float("nan")), ValueError, r"weightdecay .* got nan"),
    (lambda: SGD(0.1, momentum=0.9, nesterov=True), ValueError,
     r"nesterov momentum requires momentum > 0 and dampening == 0.*dampening=0\.0"),
    (lambda: SGD(0.1, nesterov=True, dampening=0.0), ValueError, r"got momentum=0\.0"),
    (lambda: SGD(0.1, learningrate_schedule="step"), TypeError, r"learningrate_schedule .* str"),
    (lambda: Adam(beta1=1.0), ValueError, r"Adam: beta1 must be .* got 1\.0"),
    (lambda: Adam(epsilon=-1e-8), ValueError, r"Adam: epsilon .* got -1e-08"),
    (lambda: Adagrad(learningrate_decay=-1), ValueError, r"learningrate_decay .* got -1"),
    (lambda: RMSprop(decayrate=1.5), ValueError, r"RMSprop: decayrate .* got 1\.5"),
    (lambda: Adadelta(epsilon=0), ValueError, r"Adadelta: epsilon .* got 0"),
    (lambda: Adamax(beta2=True), ValueError, r"Adamax: beta2 .* got True"),
])
def test_bad_arguments_are_reported(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_update_input_is_reported():
    m = Adam()
    with pytest.raises(ValueError, match=r"flat 1-D .* got \(2, 3\) and \(2, 3\)"):
        m.update(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"got \(6,\) and \(5,\)"):
        m.update(np.zeros(6), np.zeros(5))
    with pytest.raises(TypeError, match="floating point"):
        m.update(np.zeros(6, dtype=np.int64), np.zeros(6, dtype=np.int64))
    m.update(np.zeros(6), np.ones(6))
    with pytest.raises(ValueError, match=r"holds 6 values but the weight vector has 4"):
        m.update(np.zeros(4), np.ones(4))


def test_bad_state_is_reported():
    m = SGD(0.1, momentum=0.9)
    m.update(np.zeros(3), np.ones(3))
    doc, arrays = m.get_state()
    with pytest.raises(ValueError, match=r"unknown buffers \['m'\]"):
        SGD(0.1, momentum=0.9).load_state(doc, {"m": np.zeros(3)})
    with pytest.raises(ValueError, match="saved by SGD"):
        Adam().load_state(doc, {})
    with pytest.raises(ValueError, match="1-D float"):
        SGD(0.1, momentum=0.9).load_state(doc, {"momentum": np.zeros((3, 1))})


def test_config_round_trip_and_repr():
    m = SGD(0.1, momentum=0.9, dampening=0.0, nesterov=True, learningrate_schedule=Step(5, 0.5))
    again = from_config(json.loads(json.dumps(m.get_config())))
    assert isinstance(again, SGD) and again.nesterov and again.dampening == 0.0
    assert isinstance(again.learningrate_schedule, Step)
    assert repr(SGD(0.1, momentum=0.9)) == "SGD(learningrate=0.1, momentum=0.9)"
    assert isinstance(Adam().learningrate_schedule, Default)
    # BigDL Python's spelling of the schedule argument
    assert isinstance(SGD(0.1, leaningrate_schedule=Step(2, 0.5)).learningrate_schedule, Step)
