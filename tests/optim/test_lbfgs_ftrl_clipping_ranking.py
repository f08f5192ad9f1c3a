"""Issue 6's optimization breadth: LBFGS (+ strong-Wolfe line search), Ftrl and AdamW against
torch.optim / the published formulas, per-submodule optim methods, gradient clipping,
regularizers, and the HitRatio / NDCG / AUC / MeanAveragePrecision / TreeNNAccuracy
validation methods against independently computed values."""
import json
import math

import numpy as np
import pytest
from oracle import torch
from sklearn.metrics import roc_auc_score

from helpers import (W0, _flat, _loss, _unflatten, assert_same_trajectory, loss_and_grad,
                     run_ours, run_torch)
from workbench import nn as wnn
from workbench._config import from_config
from workbench.nn import Linear, MSECriterion, Sequential, Sigmoid, Tanh
from workbench.optim import (AUC, LBFGS, NDCG, SGD, Adagrad, Adam, AdamW, Ftrl, HitRatio,
                             L1L2Regularizer, L1Regularizer, L2Regularizer, MaxIteration,
                             MeanAveragePrecision, MultiOptimMethod, OptimMethod, Optimizer,
                             StrongWolfeLineSearch, TreeNNAccuracy, ValidationMethod, evaluate)


# ---------------------------------------------------------------------- LBFGS
def lbfgs_torch(steps, line_search_fn, **kw):
    params = _unflatten(W0)
    opt = torch.optim.LBFGS(params, line_search_fn=line_search_fn, **kw)

    def closure():
        opt.zero_grad()
        loss = _loss(params)
        loss.backward()
        return loss
    for _ in range(steps):
        opt.step(closure)
    return _flat(params), opt.state[params[0]]


FIXED_STEP = [
    # (our kwargs, torch kwargs, optimize calls)
    (dict(), dict(), 1),
    (dict(learningrate=0.05), dict(lr=0.05), 1),
    (dict(max_iter=5, max_eval=7, ncorrection=3), dict(max_iter=5, max_eval=7, history_size=3), 3),
]
WOLFE = FIXED_STEP + [  # long first steps make the line search bracket and zoom
    (dict(learningrate=4.0, max_iter=6, max_eval=7), dict(lr=4.0, max_iter=6, max_eval=7), 2),
    (dict(learningrate=30.0), dict(lr=30.0), 1),
]
CASES = [(None, *c) for c in FIXED_STEP] + [("strong_wolfe", *c) for c in WOLFE]


@pytest.mark.oracle
@pytest.mark.parametrize("line_search,ours,theirs,steps", CASES)
def test_lbfgs_matches_torch(line_search, ours, theirs, steps):
    # tolerances so small that only max_iter / max_eval stop the runs (the optimality and
    # progress tests are Torch7's L1 sums here, torch's max-norms there)
    method = LBFGS(tolfun=1e-12, tolx=1e-12, linesearch=line_search, **ours)
    w = W0.copy()
    losses = []
    for _ in range(steps):
        losses += method.optimize(loss_and_grad, w)[1]
    expected, state = lbfgs_torch(steps, line_search, tolerance_grad=1e-12,
                                  tolerance_change=1e-12, **theirs)
    np.testing.assert_allclose(w, expected, rtol=1e-9, atol=1e-12)
    assert np.abs(w - W0).max() > 0.1
    assert method.state["func_evals"] == state["func_evals"]
    assert method.state["t"] == pytest.approx(float(state["t"]), rel=1e-9)
    assert method.state["neval"] == steps and losses[-1] < losses[0]


@pytest.mark.oracle
def test_the_line_search_brackets_and_zooms():
    """With a far too long first step the search must shrink it and still satisfy Wolfe."""
    ls = StrongWolfeLineSearch()
    x = W0.copy()
    f, g = loss_and_grad(x)
    d = -g
    gtd = float(g @ d)
    f_new, g_new, x_new, t, evals = ls(loss_and_grad, x, 50.0, d, f, g, gtd)
    assert x_new is x and evals > 2 and 0 < t < 50
    np.testing.assert_allclose(x, W0 + t * d, rtol=1e-12)
    assert f_new <= f + 1e-4 * t * gtd                       # sufficient decrease
    assert abs(float(g_new @ d)) <= -0.9 * gtd               # curvature
    np.testing.assert_allclose(g_new, loss_and_grad(x)[1], rtol=1e-12)


@pytest.mark.oracle
def test_lbfgs_state_round_trip_continues_exactly():
    make = lambda: LBFGS(max_iter=4, ncorrection=3, linesearch="strong_wolfe")  # noqa: E731
    full = W0.copy()
    whole = make()
    for _ in range(4):
        whole.optimize(loss_and_grad, full)
    first, part = make(), W0.copy()
    for _ in range(2):
        first.optimize(loss_and_grad, part)
    document, arrays = first.get_state()
    assert arrays["s_history"].shape == (3, W0.size)
    restored = from_config(json.loads(json.dumps(first.get_config())), OptimMethod)
    restored.load_state(json.loads(json.dumps(document)), arrays)
    assert restored.linesearch is not None
    for _ in range(2):
        restored.optimize(loss_and_grad, part)
    np.testing.assert_array_equal(part, full)
    restored.clear_history()
    assert restored.get_state()[1] == {} and "n_iter" not in restored.state


@pytest.mark.oracle
def test_lbfgs_update_is_one_fixed_step():
    a, b = LBFGS(), LBFGS(max_iter=1)
    wa, wb = W0.copy(), W0.copy()
    for _ in range(3):
        a.update(wa, loss_and_grad(wa)[1])
        b.optimize(loss_and_grad, wb)
    np.testing.assert_array_equal(wa, wb)


def regression_data(n=40, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = np.tanh(X @ rng.standard_normal((4, 3))) * 2 + 0.1 * rng.standard_normal((n, 3))
    return X, y


def two_layer(seed=0, **linear_kw):
    wnn.random.set_seed(seed)
    model = Sequential().add(Linear(4, 6, **linear_kw).set_name("fc1")).add(Tanh()) \
        .add(Linear(6, 3).set_name("fc2"))
    return model.double()


def torch_twin(model):
    fc1, fc2 = model[0], model[2]
    params = [torch.tensor(np.array(p), requires_grad=True)
              for p in (fc1.weight, fc1.bias, fc2.weight, fc2.bias)]

    def forward(X):
        return torch.tanh(X @ params[0].T + params[1]) @ params[2].T + params[3]
    return params, forward


def train(model, method, iterations, batch_size=40, setup=None):
    X, y = regression_data()
    opt = Optimizer(model, (X, y), MSECriterion(), MaxIteration(iterations), batch_size, method,
                    progress=False, seed=0)
    if setup:
        setup(opt)
    opt.optimize()
    return opt


def torch_train(model, make_opt, iterations, before_step=None):
    X, y = (torch.tensor(a) for a in regression_data())
    params, forward = torch_twin(model)
    opt = make_opt(params)
    for _ in range(iterations):
        opt.zero_grad()
        torch.nn.functional.mse_loss(forward(X), y).backward()
        if before_step:
            before_step(params)
        opt.step()
    return params


def assert_model_equals(model, params, rtol=1e-9):
    ours = [model[0].weight, model[0].bias, model[2].weight, model[2].bias]
    for a, b in zip(ours, params):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.oracle
def test_lbfgs_in_the_training_loop_matches_torch():
    """Each iteration runs LBFGS on the mini-batch, re-evaluating it through the model."""
    model = two_layer()
    X, y = (torch.tensor(a) for a in regression_data())
    params, forward = torch_twin(model)
    opt = torch.optim.LBFGS(params, max_iter=5, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(forward(X), y)
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    method = LBFGS(max_iter=5, max_eval=6, linesearch="strong_wolfe")
    trained = train(model, method, 3)
    assert_model_equals(model, params)
    assert method.state["func_evals"] == opt.state[params[0]]["func_evals"] > 3
    assert trained.state.iteration == 3


# ---------------------------------------------------------------------- Ftrl and AdamW
def ftrl_reference(w, grads, lr, power, init, l1, l2, shrink):
    """BigDL's Ftrl, one weight at a time in plain Python."""
    w = [float(v) for v in w]
    accum, linear = [init] * len(w), [0.0] * len(w)
    for g in grads:
        for i, gi in enumerate(g):
            gs = gi + 2 * shrink * w[i]
            new = accum[i] + gs * gs
            linear[i] += gs - (new ** -power - accum[i] ** -power) / lr * w[i]
            quadratic = new ** -power / lr + 2 * l2
            if abs(linear[i]) > l1:
                w[i] = ((l1 if linear[i] > 0 else -l1) - linear[i]) / quadratic
            else:
                w[i] = 0.0
            accum[i] = new
    return np.array(w)


FTRL_CASES = [
    dict(),
    dict(learningrate=0.1, l1_regularization_strength=0.001, l2_regularization_strength=0.01),
    dict(learningrate=0.05, learningrate_power=-0.3, initial_accumulator_value=0.5,
         l1_regularization_strength=0.02, l2_shrinkage_regularization_strength=0.05),
    dict(learningrate=0.2, learningrate_power=0.0, initial_accumulator_value=0.0,
         l2_regularization_strength=0.1),
    dict(learningrate=0.1, l1_regularization_strength=0.5),
]


@pytest.mark.parametrize("kw", FTRL_CASES)
def test_ftrl_matches_the_formula(kw):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(12) * 0.5 for _ in range(6)]
    w0 = rng.standard_normal(12)
    method = Ftrl(**kw)
    w = w0.copy()
    for g in grads:
        method.update(w, g)
    args = {**dict(learningrate=1e-3, learningrate_power=-0.5, initial_accumulator_value=0.1,
                   l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                   l2_shrinkage_regularization_strength=0.0), **kw}
    expected = ftrl_reference(w0, grads, *args.values())
    np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-15)
    if kw.get("l1_regularization_strength", 0) >= 0.5:
        assert 0 < np.count_nonzero(w == 0) < w.size  # L1 makes weights exactly zero


@pytest.mark.oracle
def test_ftrl_trains_and_slices_like_the_whole_vector():
    whole, a, b = (Ftrl(0.5, l1_regularization_strength=1e-4) for _ in range(3))
    w_whole, w_split = W0.copy(), W0.copy()
    half = len(W0) // 2
    for _ in range(10):
        whole.update(w_whole, loss_and_grad(w_whole)[1])
        g = loss_and_grad(w_split)[1]
        a.update(w_split[:half], g[:half])
        b.update(w_split[half:], g[half:])
    np.testing.assert_array_equal(w_whole, w_split)
    assert loss_and_grad(w_whole)[0] < loss_and_grad(W0)[0]


@pytest.mark.oracle
@pytest.mark.parametrize("ours,theirs,per_step", [
    (dict(learningrate=0.01), dict(lr=0.01), None),
    (dict(learningrate=0.02, weightdecay=0.1, beta1=0.8, beta2=0.99, epsilon=1e-6),
     dict(lr=0.02, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6), None),
    (dict(learningrate=0.02, learningrate_decay=0.05, weightdecay=0.05),
     dict(lr=0.02, weight_decay=0.05),
     lambda g, t: g.__setitem__("lr", 0.02 / (1 + t * 0.05))),
])
def test_adamw_matches_torch(ours, theirs, per_step):
    assert_same_trajectory(run_ours(AdamW(**ours)),
                           run_torch(lambda p: torch.optim.AdamW(p, **theirs), per_step=per_step))


@pytest.mark.parametrize("make,match", [
    (lambda: Ftrl(learningrate_power=0.5), r"Ftrl: learningrate_power .* got 0\.5"),
    (lambda: Ftrl(l1_regularization_strength=-1), r"l1_regularization_strength .* got -1"),
    (lambda: Ftrl(initial_accumulator_value="0.1"), r"initial_accumulator_value .* '0\.1'"),
    (lambda: AdamW(weightdecay=-0.1), r"AdamW: weightdecay .* got -0\.1"),
    (lambda: LBFGS(max_iter=0), r"LBFGS: max_iter must be a positive int, got 0"),
    (lambda: LBFGS(ncorrection=2.5), r"ncorrection .* got 2\.5"),
    (lambda: LBFGS(linesearch="armijo"), r"linesearch must be .* got 'armijo'"),
    (lambda: LBFGS(linesearch_options={"c1": 0.1}), r"linesearch_options given without"),
    (lambda: StrongWolfeLineSearch(c1=0.9, c2=0.1), r"c1 < c2, got c1=0\.9, c2=0\.1"),
])
def test_bad_arguments_are_reported(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_new_methods_config_round_trip():
    for m in (LBFGS(max_iter=3, linesearch="strong_wolfe", linesearch_options={"c2": 0.5}),
              LBFGS(linesearch=StrongWolfeLineSearch(max_ls=7)), Ftrl(0.1, -0.4), AdamW(0.1)):
        again = from_config(json.loads(json.dumps(m.get_config())), OptimMethod)
        assert type(again) is type(m) and repr(again) == repr(m)
    assert LBFGS(linesearch="strong_wolfe", linesearch_options={"c2": 0.5}).linesearch.c2 == 0.5
    assert LBFGS(max_eval=float(np.finfo(np.float64).max)).max_eval is None  # BigDL's DOUBLEMAX


# ---------------------------------------------------------------------- per-submodule methods
@pytest.mark.oracle
def test_per_submodule_methods_match_torch_param_groups():
    model = two_layer()
    params = torch_train(model, lambda p: _Both(
        torch.optim.SGD(p[:2], lr=0.1, momentum=0.9, dampening=0.9),
        torch.optim.Adagrad(p[2:], lr=0.05, eps=1e-10)), 6)
    opt = train(model, {"fc1": SGD(0.1, momentum=0.9), "fc2": Adagrad(0.05)}, 6)
    assert isinstance(opt.optim_method, MultiOptimMethod)
    assert opt.optim_method.slices == {"fc1": (0, 30), "fc2": (30, 51)}
    assert_model_equals(model, params)


class _Both:
    def __init__(self, *opts):
        self.opts = opts

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad()

    def step(self):
        for o in self.opts:
            o.step()


def test_set_optim_methods_and_bad_dicts():
    model = two_layer()
    opt = train(model, SGD(0.1), 1, setup=lambda o: o.set_optim_methods(
        {"fc2": Adam(0.01), "fc1": SGD(0.1)}))
    assert list(opt.optim_method.slices) == ["fc1", "fc2"]  # flat-vector order
    assert opt.optim_method.optim_methods["fc2"].state["neval"] == 1
    X, y = regression_data()
    make = lambda methods: Optimizer(model, (X, y), MSECriterion(), MaxIteration(1), 8,  # noqa
                                     methods, progress=False)
    with pytest.raises(ValueError, match=r"parameters \['2\.weight', '2\.bias'\] belong to none"):
        make({"fc1": SGD()})
    with pytest.raises(ValueError, match=r"no submodule named \['fc3'\]"):
        make({"fc1": SGD(), "fc3": SGD()})
    with pytest.raises(ValueError, match="overlap"):
        make({model.name(): SGD(), "fc1": SGD()})
    with pytest.raises(TypeError, match=r"method for 'fc1' must be an OptimMethod .* got str"):
        make({"fc1": "sgd", "fc2": SGD()})
    with pytest.raises(ValueError, match="LBFGS .* cannot update one submodule"):
        make({"fc1": LBFGS(), "fc2": SGD()})
    whole = make({model.name(): Adam(0.01)})  # BigDL's form: the model's own name
    assert whole.optim_method.slices == {model.name(): (0, 51)}


def _drive_multi(method, w, steps):
    for i in range(steps):
        method.state["epoch"] = 1 + i // 3
        method.update(w, loss_and_grad(w)[1])
        method.state["loss"] = float(np.abs(w).sum())
    return w


def _multi():
    from workbench.optim import Step
    return MultiOptimMethod({"a": SGD(0.05, momentum=0.9, learningrate_schedule=Step(2, 0.5)),
                             "b": Adam(0.01)}, {"a": [0, 40], "b": [40, 75]}, 75)


@pytest.mark.oracle
def test_multi_optim_method_state_round_trip_and_slices():
    full = _drive_multi(_multi(), W0.copy(), 8)
    first = _multi()
    part = _drive_multi(first, W0.copy(), 4)
    document, arrays = first.get_state()
    assert sorted(arrays) == ["a/momentum", "b/m", "b/v"]
    restored = from_config(json.loads(json.dumps(first.get_config())), OptimMethod)
    restored.load_state(json.loads(json.dumps(document)), arrays)
    np.testing.assert_array_equal(_drive_multi(restored, part, 4), full)
    # a distributed task's 1/N slice: for_slice parts update like the whole vector
    whole, w1 = _multi(), W0.copy()
    lo, hi = _multi().for_slice(0, 30), _multi().for_slice(30, 75)
    w2 = W0.copy()
    for _ in range(3):
        whole.update(w1, loss_and_grad(w1)[1])
        g = loss_and_grad(w2)[1]
        lo.update(w2[:30], g[:30])
        hi.update(w2[30:], g[30:])
    np.testing.assert_array_equal(w1, w2)
    assert hi.slices == {"a": (0, 10), "b": (10, 45)}
    with pytest.raises(ValueError, match=r"cover a vector of 75 values, got 30 .*for_slice"):
        _multi().update(W0[:30].copy(), W0[:30].copy())
    with pytest.raises(ValueError, match=r"expected the states of \['a', 'b'\]"):
        _multi().load_state({"method": "MultiOptimMethod", "state": {}, "methods": {}}, {})


def test_per_submodule_checkpoint_resumes_exactly(tmp_path):
    methods = lambda: {"fc1": SGD(0.1, momentum=0.9), "fc2": Adam(0.01)}  # noqa: E731
    straight = two_layer()
    train(straight, methods(), 6, batch_size=8)
    model = two_layer()
    opt = train(model, methods(), 3, batch_size=8,
                setup=lambda o: o.set_checkpoint(MaxIteration(3), str(tmp_path)))
    resumed_model = two_layer(seed=5)
    X, y = regression_data()
    resumed = Optimizer(resumed_model, (X, y), MSECriterion(), MaxIteration(6), 8, methods(),
                        progress=False)
    resumed.optimize(resume_from=str(tmp_path))
    for a, b in zip(resumed_model.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert opt.state.iteration == 3


# ---------------------------------------------------------------------- gradient clipping
def _clip_norm(max_norm):
    def clip(params):
        norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params))
        assert norm > max_norm  # the clipping really acts
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    return clip


def _clamp(lo, hi):
    def clip(params):
        assert any(float(p.grad.abs().max()) > hi for p in params)
        for p in params:
            p.grad.clamp_(lo, hi)
    return clip


@pytest.mark.oracle
@pytest.mark.parametrize("setup,before_step", [
    (lambda o: o.set_gradclip_l2norm(0.05), _clip_norm(0.05)),
    (lambda o: o.set_gradclip_const(-0.01, 0.01), _clamp(-0.01, 0.01)),
    (lambda o: o.set_gradclip_const(-0.1, 0.1).set_gradclip_l2norm(0.05),
     lambda p: (_clamp(-0.1, 0.1)(p), torch.nn.utils.clip_grad_norm_(p, 0.05))),
    (lambda o: o.set_gradclip_l2norm(0.05).disable_gradclip(), lambda p: None),
], ids=["l2norm", "const", "both", "disabled"])
def test_gradient_clipping_matches_torch(setup, before_step):
    model = two_layer()
    params = torch_train(model, lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.5), 4,
                         before_step=before_step)
    train(model, SGD(0.5, momentum=0.5, dampening=0.0), 4, setup=setup)
    # torch divides by (norm + 1e-6): a relative difference of ~1e-6 / norm per step
    assert_model_equals(model, params, rtol=1e-4)


def test_bad_clipping_arguments():
    opt = Optimizer(two_layer(), regression_data(), MSECriterion(), progress=False)
    with pytest.raises(ValueError, match=r"clip_norm .* got 0"):
        opt.set_gradclip_l2norm(0)
    with pytest.raises(ValueError, match=r"min_value must be <= max_value, got 1 > -1"):
        opt.set_gradclip_const(1, -1)


# ---------------------------------------------------------------------- regularizers
@pytest.mark.oracle
def test_l2_regularizer_trains_like_weight_decay_on_its_layer():
    model = two_layer(wRegularizer=L2Regularizer(0.3), bRegularizer=L2Regularizer(0.3))
    params = torch_train(model, lambda p: _Both(
        torch.optim.SGD(p[:2], lr=0.2, weight_decay=0.3), torch.optim.SGD(p[2:], lr=0.2)), 5)
    train(model, SGD(0.2), 5)
    assert_model_equals(model, params, rtol=1e-12)


@pytest.mark.oracle
def test_l1_regularizer_adds_the_sign_of_the_weights():
    X, y = regression_data()
    plain, penalized = two_layer(), two_layer(wRegularizer=L1Regularizer(0.05))
    grads = []
    for model in (plain, penalized):
        criterion = MSECriterion()
        model.zero_grad_parameters()
        out = model.forward(X)
        criterion.forward(out, y)
        model.backward(X, criterion.backward(out, y))
        grads.append(np.array(model[0].grad_weight))
    np.testing.assert_allclose(grads[1], grads[0] + 0.05 * np.sign(plain[0].weight), rtol=1e-12)
    # and training with it follows the same sign formula in torch
    model = two_layer(wRegularizer=L1L2Regularizer(0.02, 0.1))

    def penalty(params):
        w = params[0]
        w.grad += 0.02 * torch.sign(w.detach()) + 0.1 * w.detach()
    params = torch_train(model, lambda p: torch.optim.SGD(p, lr=0.2), 4, before_step=penalty)
    train(model, SGD(0.2), 4)
    assert_model_equals(model, params, rtol=1e-12)


def test_regularizers_are_exported_from_optim_as_in_bigdl():
    from workbench import optim
    assert optim.L2Regularizer is wnn.L2Regularizer and optim.L1Regularizer is wnn.L1Regularizer
    assert optim.L1L2Regularizer is wnn.L1L2Regularizer


# ---------------------------------------------------------------------- validation methods
def ranking_data(records, items, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.random((records, items))
    target = np.zeros((records, items))
    target[np.arange(records), rng.integers(0, items, records)] = 1
    return scores, target


def reference_ranks(scores, target):
    ranks = []
    for s, t in zip(scores, target):
        order = sorted(range(len(s)), key=lambda i: -s[i])
        ranks.append(order.index(int(np.argmax(t))) + 1)
    return np.array(ranks)


def test_hit_ratio_and_ndcg_against_the_ranks():
    scores, target = ranking_data(30, 11)
    ranks = reference_ranks(scores, target)
    for k in (1, 3, 10):
        hr = HitRatio(k=k, neg_num=10)
        ndcg = NDCG(k=k, neg_num=10)
        assert hr.batch(scores, target).value == pytest.approx(np.mean(ranks <= k))
        gains = [1 / math.log2(r + 1) if r <= k else 0 for r in ranks]
        merged = ndcg.batch(scores[:13], target[:13]) + ndcg.batch(scores[13:], target[13:])
        assert merged.value == pytest.approx(np.mean(gains)) and merged.count == 30
        flat = hr.batch(scores.reshape(-1, 1), target.reshape(-1, 1))  # BigDL's (n * 11, 1)
        assert flat.value == pytest.approx(np.mean(ranks <= k))
    one, t = ranking_data(1, 101, seed=3)
    assert HitRatio().batch(one[0], t[0]).count == 1  # defaults: k=10, neg_num=100
    with pytest.raises(ValueError, match=r"HitRatio: each record needs exactly one positive "
                                         r"item \(target 1\), record 0 has 2"):
        HitRatio(neg_num=2).batch(np.zeros(3), np.array([1, 1, 0]))
    with pytest.raises(ValueError, match=r"NDCG: expected scores of records of neg_num \+ 1 = "
                                         r"101 items"):
        NDCG().batch(np.zeros((2, 10)), np.zeros((2, 10)))


def test_auc_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (500, 3))
    p = 1 / (1 + np.exp(-(y * 1.2 + rng.standard_normal((500, 3)))))
    auc = AUC()
    merged = sum(auc.batch(p[i:i + 128], y[i:i + 128]) for i in range(0, 500, 128))
    per_label = merged.scores()
    expected = [roc_auc_score(y[:, c], p[:, c]) for c in range(3)]
    np.testing.assert_allclose(per_label, expected, atol=5e-3)
    assert merged.value == pytest.approx(np.mean(expected), abs=5e-3) and merged.count == 500
    whole = auc.batch(p, y)
    assert whole.value == merged.value
    single = AUC(threshold_num=1000).batch(p[:, :1], y[:, :1])
    assert single.value == pytest.approx(expected[0], abs=1e-3)
    with pytest.raises(ValueError, match=r"AUC: targets must be 0 or 1, got 2"):
        auc.batch(p[:3, 0], np.array([0, 1, 2]))


def reference_map(scores, labels, k, classes):
    """BigDL's description, loop by loop: per class, the top-k predictions by confidence;
    the (recall, precision) at each hit; AP = mean over r = 1..P of the best precision at
    recall >= r / P."""
    aps = []
    for c in range(classes):
        order = sorted(range(len(scores)), key=lambda i: -scores[i][c])
        if k > 0:
            order = order[:k]
        positives = int(np.sum(labels == c))
        points, tp = [], 0
        for j, i in enumerate(order):
            if labels[i] == c:
                tp += 1
                points.append((tp / positives, tp / (j + 1)))
        ap = 0.0
        for r in range(1, positives + 1):
            ap += max([p for rec, p in points if rec >= r / positives], default=0.0)
        aps.append(ap / positives if positives else 0.0)
    return float(np.mean(aps))


@pytest.mark.parametrize("k", [-1, 5, 12])
def test_mean_average_precision_against_the_definition(k):
    rng = np.random.default_rng(k + 10)
    labels = rng.integers(0, 4, 40)
    scores = rng.random((40, 4)) + 0.6 * np.eye(4)[labels]
    m = MeanAveragePrecision(k, 4)
    merged = m.batch(scores[:17], labels[:17]) + m.batch(scores[17:], labels[17:])
    assert merged.value == pytest.approx(reference_map(scores, labels, k, 4), rel=1e-12)
    assert m.batch(scores, labels).value == pytest.approx(merged.value, rel=1e-12)
    assert merged.count == 40
    with pytest.raises(ValueError, match=r"expected scores \(N, 4\), got \(40, 3\)"):
        m.batch(scores[:, :3], labels)


def test_tree_nn_accuracy_uses_the_root_node():
    rng = np.random.default_rng(2)
    out = rng.random((20, 5, 3))
    target = rng.integers(0, 3, (20, 5))
    r = TreeNNAccuracy().batch(out, target)
    assert r.name == "TreeNNAccuracy" and r.count == 20
    assert r.value == pytest.approx(np.mean(out[:, 0].argmax(1) == target[:, 0]))
    one = TreeNNAccuracy(zero_based_label=False).batch(out[0], target[0] + 1)
    assert one.value == float(out[0, 0].argmax() == target[0, 0]) and one.count == 1
    with pytest.raises(ValueError, match=r"TreeNNAccuracy: expected output scores"):
        TreeNNAccuracy().batch(out[:, 0, 0], target)


def test_new_validation_methods_in_evaluate_and_configs():
    wnn.random.set_seed(0)
    model = Sequential().add(Linear(4, 1)).add(Sigmoid()).double()
    X, _ = regression_data(60)
    y = (X[:, :1] > 0).astype(np.int64)
    results = evaluate(model, (X, y), 7, [AUC(50), Loss_like()])
    expected = AUC(50).batch(model.forward(X), y)
    assert results[0].value == expected.value and results[0].count == 60
    for m in (HitRatio(5, 20), NDCG(3, 7), AUC(10), MeanAveragePrecision(-1, 3),
              MeanAveragePrecision(4, 2), TreeNNAccuracy(False)):
        again = from_config(json.loads(json.dumps(m.get_config())), ValidationMethod)
        assert again.get_config() == m.get_config()


def Loss_like():
    from workbench.optim import Loss
    from workbench.nn import BCECriterion
    return Loss(BCECriterion())
