"""Fine-tuning as BigDL had it: ``freeze`` / ``unfreeze``, ``freeze_up_to``, ``stop_gradient``,
replacing the classifier head (``replace``, ``Sequential.insert`` / ``remove``,
``Graph.new_graph``); frozen parameters get no update, no optimizer state, and no backward
when nothing trained precedes them; the flags survive ``save_model`` / ``load_model``."""
from __future__ import annotations

import numpy as np
import pytest

from workbench import io, nn
from workbench.data import load_digits
from workbench.nn import (ClassNLLCriterion, ConcatTable, Input, Linear, LogSoftMax, Model, ReLU,
                          Reshape, Sequential, Tanh, random)
from workbench.nn.module import input_grad_unused
from workbench.optim import SGD, Adam, MaxIteration, MultiOptimMethod, Optimizer


class FinetuneCountingLinear(Linear):
    """A Linear that counts its backward calls (registered like any layer: saved, loaded)."""

    def __init__(self, input_size, output_size, with_bias=True):
        super().__init__(input_size, output_size, with_bias=with_bias)
        self.calls = {"grad_input": 0, "params": 0}

    def update_grad_input(self, input, grad_output):
        self.calls["grad_input"] += 1
        return super().update_grad_input(input, grad_output)

    def acc_grad_parameters(self, input, grad_output):
        self.calls["params"] += 1
        return super().acc_grad_parameters(input, grad_output)


def problem(n=96, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.argmax(X[:, :classes], axis=1)).astype(np.int64)
    return X, y


def mlp(seed=1, first=Linear):
    random.set_seed(seed)
    return (Sequential()
            .add(first(6, 12).set_name("fc1")).add(Tanh().set_name("act1"))
            .add(Linear(12, 12).set_name("fc2")).add(Tanh().set_name("act2"))
            .add(Linear(12, 3).set_name("fc3")).add(LogSoftMax()))


def graph(seed=2, first=Linear):
    """x -> fc1 -> act1 -> mid -> act2 -> head, and x -> side -> (added to mid's output)."""
    random.set_seed(seed)
    x = Input(name="x")
    h = Tanh().set_name("act1")(first(6, 12).set_name("fc1")(x))
    side = Linear(6, 12).set_name("side")(x)
    mid = Linear(12, 12).set_name("mid")(h)
    merged = Tanh().set_name("act2")(nn.CAddTable().set_name("add")(mid, side))
    return Model(x, LogSoftMax()(Linear(12, 3).set_name("head")(merged)))


def frozen_names(model):
    return sorted(m.name() for m in model.modules() if m._frozen and m._param_names)


def weights_of(model, *names):
    return {n: [np.array(getattr(m, p), copy=True) for p in m._param_names]
            for m in model.modules() for n in names if m.name() == n}


def bit_identical(a, b):
    return all(x.tobytes() == y.tobytes() for x, y in zip(a, b))


def train(model, iterations=15, method=None, batch_size=32):
    X, y = problem()
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), MaxIteration(iterations), batch_size,
                    method or Adam(0.01), seed=7, progress=False)
    opt.optimize()
    return opt


# ---------------------------------------------------------------------- freeze_up_to
def test_freeze_up_to_on_a_sequential_freezes_the_children_up_to_the_named_one():
    model = mlp()
    assert model.freeze_up_to("fc2") is model
    assert frozen_names(model) == ["fc1", "fc2"]
    assert model.get_parameters()[0].size == 12 * 3 + 3
    model.unfreeze()
    assert frozen_names(model) == [] and model.get_parameters()[0].size == 6 * 12 + 12 + 156 + 39
    model.freeze_up_to(["fc1"]).unfreeze("fc1")
    assert frozen_names(model) == []


def test_freeze_up_to_reaches_into_nested_containers():
    random.set_seed(3)
    block1 = Sequential().add(Linear(6, 8).set_name("a1")).add(Linear(8, 8).set_name("a2"))
    block2 = Sequential().add(Linear(8, 8).set_name("b1")).add(Linear(8, 8).set_name("b2"))
    model = Sequential().add(block1).add(block2).add(Linear(8, 2).set_name("head"))
    model.freeze_up_to("b1")
    assert frozen_names(model) == ["a1", "a2", "b1"]
    assert not block2._children[1]._frozen


def test_freeze_up_to_on_a_graph_freezes_the_node_and_its_ancestors_only():
    model = graph()
    model.freeze_up_to("mid")
    # mid's ancestors (fc1, act1, the input); the side branch and what follows stay trainable
    assert frozen_names(model) == ["fc1", "mid"]
    assert model.node("x").module._frozen and model.node("act1").module._frozen
    assert not model.node("add").module._frozen
    model.unfreeze()
    model.freeze_up_to(["mid", "side"])
    assert frozen_names(model) == ["fc1", "mid", "side"]
    model.unfreeze().freeze_up_to("add")
    assert frozen_names(model) == ["fc1", "mid", "side"]


def test_bad_names_are_clear_errors():
    model = mlp()
    with pytest.raises(ValueError, match=r"no layer named \['nope'\].*fc1"):
        model.freeze_up_to("nope")
    with pytest.raises(TypeError, match="freeze_up_to.*layer name"):
        model.freeze_up_to(3)
    with pytest.raises(ValueError, match="no layer named"):
        model.stop_gradient(["fc2", "missing"])
    branchy = Sequential().add(ConcatTable().add(Linear(6, 2).set_name("left"))
                               .add(Linear(6, 2).set_name("right")).set_name("both"))
    with pytest.raises(ValueError, match="'left' is inside ConcatTable.*Sequential.*Graph"):
        branchy.stop_gradient("left")


# ---------------------------------------------------------------------- training frozen models
def test_frozen_weights_are_bit_identical_after_training_and_cost_no_optimizer_state():
    model = mlp()
    model.freeze_up_to("fc2")
    before = weights_of(model, "fc1", "fc2", "fc3")
    opt = train(model, method=Adam(0.02))
    after = weights_of(model, "fc1", "fc2", "fc3")
    assert bit_identical(before["fc1"], after["fc1"])
    assert bit_identical(before["fc2"], after["fc2"])
    assert not np.allclose(before["fc3"][0], after["fc3"][0])
    _, arrays = opt.optim_method.get_state()
    trainable = 12 * 3 + 3
    assert sorted(arrays) == ["m", "v"]
    assert all(a.size == trainable for a in arrays.values())


def test_freezing_after_get_parameters_rebuilds_the_flat_vector():
    model = mlp()
    old_w, old_g = model.get_parameters()  # the whole model, before freezing
    model.freeze("fc1")
    fc1 = model[0]
    w, g = model.get_parameters()
    assert w.size == old_w.size - (6 * 12 + 12)
    # fc1 got its own arrays back: the old vectors no longer alias it
    old_w[:] = 123.0
    old_g[:] = 5.0
    assert not np.any(fc1.weight == 123.0) and not np.any(fc1.grad_weight == 5.0)
    before = np.array(fc1.weight, copy=True)
    train(model, iterations=5, method=SGD(0.5, momentum=0.9))
    assert fc1.weight.tobytes() == before.tobytes()


def test_freezing_between_two_runs_refits_the_optimizer_state():
    model = mlp()
    opt = train(model, iterations=5, method=SGD(0.1, momentum=0.9))
    assert opt.optim_method.get_state()[1]["momentum"].size == model.get_parameters()[0].size
    model.freeze_up_to("act2")
    before = weights_of(model, "fc1", "fc2")
    opt.set_end_when(MaxIteration(10)).optimize()  # the momentum of the whole model is dropped
    assert opt.optim_method.get_state()[1]["momentum"].size == 12 * 3 + 3
    after = weights_of(model, "fc1", "fc2")
    assert all(bit_identical(before[k], after[k]) for k in before)


def test_per_submodule_methods_follow_the_trainable_parameters():
    model = mlp()
    method = MultiOptimMethod.for_model(model, {"fc1": SGD(0.1), "fc2": SGD(0.1),
                                                "fc3": Adam(0.01)})
    model.freeze("fc1")  # after the slices were computed for the whole model
    before = weights_of(model, "fc1")
    opt = train(model, iterations=4, method=method)
    assert opt.optim_method.size == model.get_parameters()[0].size
    assert opt.optim_method.slices["fc1"] == (0, 0)
    assert bit_identical(before["fc1"], weights_of(model, "fc1")["fc1"])


# ---------------------------------------------------------------------- skipped backward
def test_a_frozen_prefix_is_never_backward_called_in_training():
    for build in (mlp, graph):
        model = build(first=FinetuneCountingLinear)
        fc1 = next(m for m in model.modules() if m.name() == "fc1")
        model.freeze_up_to("fc1")
        train(model, iterations=3)
        assert fc1.calls == {"grad_input": 0, "params": 0}, build.__name__
        # a plain backward still computes the gradient w.r.t. the input through it
        x, _ = problem(n=4)
        out = model.forward(x)
        gi = model.backward(x, np.ones_like(out))
        assert gi.shape == x.shape and fc1.calls["grad_input"] == 1


def test_stop_gradient_on_a_graph_trains_the_named_node_but_nothing_before_it():
    model = graph(first=FinetuneCountingLinear)
    fc1 = next(m for m in model.modules() if m.name() == "fc1")
    reference = graph()
    x, _ = problem(n=8)
    g = np.random.default_rng(4).standard_normal((8, 3)).astype(np.float32)
    reference.forward(x)
    reference.zero_grad_parameters()
    reference.backward(x, g)
    assert model.stop_gradient("mid") is model
    w, grads = model.get_parameters()
    assert w.size == reference.get_parameters()[0].size - (6 * 12 + 12)  # fc1 left out
    model.forward(x)
    grads.fill(0)
    gi = model.backward(x, g)
    assert fc1.calls == {"grad_input": 0, "params": 0}
    # the input still gets the side branch's gradient; mid, side and head the full one
    assert gi.shape == x.shape
    for name in ("mid", "side", "head"):
        ours = next(m for m in model.modules() if m.name() == name)
        theirs = next(m for m in reference.modules() if m.name() == name)
        np.testing.assert_allclose(ours.grad_weight, theirs.grad_weight, rtol=1e-5, atol=1e-6)
    before = weights_of(model, "fc1", "mid")
    train(model, iterations=5, method=SGD(0.2, momentum=0.9, weightdecay=0.01))
    after = weights_of(model, "fc1", "mid")
    assert bit_identical(before["fc1"], after["fc1"])  # weight decay does not reach it either
    assert not np.allclose(before["mid"][0], after["mid"][0])
    assert fc1.calls == {"grad_input": 0, "params": 0}


def test_stop_gradient_on_a_sequential():
    model = mlp(first=FinetuneCountingLinear)
    model.stop_gradient("fc2")
    assert model.get_parameters()[0].size == 156 + 39
    before = weights_of(model, "fc1")
    train(model, iterations=3)
    assert model[0].calls == {"grad_input": 0, "params": 0}
    assert bit_identical(before["fc1"], weights_of(model, "fc1")["fc1"])
    # nested: a Sequential that stops the gradient hands None to the container around it
    outer = Sequential().add(Linear(6, 6).set_name("pre")).add(model)
    assert outer.get_parameters()[0].size == 156 + 39
    x, _ = problem(n=4)
    out = outer.forward(x)
    assert outer.backward(x, np.ones_like(out)) is None


def test_a_graph_at_the_root_trains_the_layers_before_a_sequential_node():
    # the training backward (backward_params) of a Graph whose node is a Sequential used to
    # leave every layer before that node without gradient
    random.set_seed(5)
    x = Input()
    a = Linear(4, 5).set_name("a")(x)
    s = Sequential().add(Linear(5, 3)).add(ReLU())(a)
    model = Model(x, s)
    _, grads = model.get_parameters()
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    out = model.forward(X)
    grads.fill(0)
    model.backward(X, np.ones_like(out))
    full = grads.copy()
    for run in (lambda: model.backward_params(X, np.ones_like(out)),
                lambda: model.backward(X, np.ones_like(out))):
        grads.fill(0)
        with input_grad_unused():
            run()
        np.testing.assert_allclose(grads, full, rtol=1e-6)
        assert np.abs(model.node("a").module.grad_weight).sum() > 0


# ---------------------------------------------------------------------- the classifier head
def test_replace_insert_remove():
    model = mlp()
    old = model[4]
    model.get_parameters()
    assert model.replace("fc3", Linear(12, 5)) is model
    assert model[4] is not old and model[4].name() == "fc3"  # the name carries over
    assert model.get_parameters()[0].size == 6 * 12 + 12 + 156 + 12 * 5 + 5
    assert model.forward(problem(n=2)[0]).shape == (2, 5)
    head = model.remove()
    assert isinstance(head, LogSoftMax) and len(model) == 5
    model.insert(Linear(5, 2).set_name("extra"), 5).insert(LogSoftMax())
    assert model.forward(problem(n=2)[0]).shape == (2, 2)
    with pytest.raises(TypeError, match="Module"):
        model.replace("extra", "not a layer")
    with pytest.raises(ValueError, match="already in the model"):
        model.replace("extra", model[0])
    with pytest.raises(IndexError, match="remove"):
        model.remove(17)
    g = graph()
    g.replace("head", Linear(12, 7).set_name("new_head"))
    assert g.forward(problem(n=2)[0]).shape == (2, 7) and g.node("new_head")


def test_new_graph_cuts_a_feature_extractor_that_shares_the_layers():
    model = graph()
    features = model.new_graph("act2")
    X, _ = problem(n=3)
    model.forward(X)
    np.testing.assert_array_equal(features.forward(X), model.node("act2").module.output)
    assert sorted(m.name() for m in features.modules() if m._param_names) == [
        "fc1", "mid", "side"]
    assert features.node("mid").module is model.node("mid").module  # shared, as BigDL's
    with pytest.raises(ValueError, match="no node named 'nope'"):
        model.new_graph(["nope"])


def _pretrained_on_digits_0_to_4(as_graph):
    (X, y), test = load_digits(size=8)
    random.set_seed(21)
    layers = [Reshape([64]), Linear(64, 48).set_name("features"), Tanh().set_name("act"),
              Linear(48, 5).set_name("fc"), LogSoftMax()]
    if as_graph:
        node = x = Input()
        for layer in layers:
            node = layer(node)
        model = Model(x, node)
    else:
        model = Sequential()
        for layer in layers:
            model.add(layer)
    low = y < 5
    Optimizer(model, (X[low], y[low]), ClassNLLCriterion(), MaxIteration(150), 64, Adam(0.01),
              seed=1, progress=False).optimize()
    return model, (X, y), test


@pytest.mark.parametrize("how", ["replace", "new_graph"])
def test_a_new_head_on_a_frozen_feature_extractor_learns_all_ten_digits(how):
    pretrained, (X, y), (Xt, yt) = _pretrained_on_digits_0_to_4(as_graph=how == "new_graph")
    random.set_seed(22)
    if how == "replace":
        model = pretrained.replace("fc", Linear(48, 10)).freeze_up_to("act")
    else:  # BigDL's way: cut the graph before the head, put a new head on the cut
        features = pretrained.new_graph("act").freeze()
        x = Input()
        model = Model(x, LogSoftMax()(Linear(48, 10).set_name("fc")(features(x))))
    frozen_before = weights_of(model, "features")
    Optimizer(model, (X, y), ClassNLLCriterion(), MaxIteration(200), 64, Adam(0.02), seed=2,
              progress=False).optimize()
    accuracy = float(np.mean(model.predict_class(Xt) == yt))
    assert accuracy > 0.85, accuracy
    assert bit_identical(frozen_before["features"], weights_of(model, "features")["features"])
    assert model.get_parameters()[0].size == 48 * 10 + 10


# ---------------------------------------------------------------------- saved models
def test_save_and_load_keep_frozen_flags_and_stop_gradient(tmp_path):
    model = graph()
    model.freeze_up_to("mid").stop_gradient("side")
    body = mlp()
    body.freeze()
    body.unfreeze("fc3")  # a frozen container holding a trainable child
    for m, name in ((model, "graph.bigdl"), (body, "mlp.bigdl")):
        path = str(tmp_path / name)
        io.save_model(m, path)
        loaded = io.load_model(path)
        assert frozen_names(loaded) == frozen_names(m)
        assert loaded.get_parameters()[0].size == m.get_parameters()[0].size
        X, _ = problem(n=3)
        np.testing.assert_array_equal(loaded.forward(X), m.forward(X))
    loaded = io.load_model(str(tmp_path / "graph.bigdl"))
    assert loaded.node("side").module._stops_gradient()
    assert frozen_names(io.load_model(str(tmp_path / "mlp.bigdl"))) == ["fc1", "fc2"]
