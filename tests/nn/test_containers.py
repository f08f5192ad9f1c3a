"""Containers and graphs: gradients, flat parameters, freezing, modes, repr, config, errors."""
import json

import numpy as np
import pytest

from helpers import check_module_gradients, normal
from workbench.nn import (CAddTable, Concat, ConcatTable, Dropout, Identity, Input, JoinTable,
                          LayerError, Linear, LogSoftMax, Model, ParallelTable, ReLU, Reshape,
                          Sequential, Sigmoid, SoftMax, Tanh, View)
from workbench.nn.module import build_module


def named(model, *names):
    found = {m._name: m for m in model.modules() if m._name}
    return [found[n] for n in names]


# ---------------------------------------------------------------------- models used below

def mlp():
    return (Sequential().add(Linear(4, 5).set_name("fc1")).add(Tanh())
            .add(Linear(5, 3).set_name("fc2")).add(LogSoftMax()))


def concat():
    return (Concat(2).add(Linear(4, 3))
            .add(Sequential().add(Linear(4, 2)).add(Sigmoid()))
            .add(Identity()))


def concat_table():
    return Sequential().add(ConcatTable().add(Linear(4, 3)).add(Sequential().add(Linear(4, 3))
                                                                   .add(Tanh()))).add(CAddTable())


def parallel_table():
    return (Sequential()
            .add(ParallelTable().add(Linear(4, 3)).add(Sequential().add(Linear(2, 3)).add(Tanh())))
            .add(JoinTable(2, 0)))


def shared_branch_graph():
    """``x`` feeds ``l1`` and the join; ``h`` feeds two linears summed by CAddTable."""
    x = Input("x")
    h = Tanh().set_name("t")(Linear(4, 6).set_name("l1")(x))
    a = Linear(6, 3).set_name("a")(h)
    b = Linear(6, 3).set_name("b")(h)
    s = CAddTable()(a, b)
    j = JoinTable(2, 0)(s, x)
    out = Linear(7, 2).set_name("out")(j)
    return Model(x, out)


def multi_io_graph():
    """Two inputs, two outputs; the joined hidden layer feeds both outputs."""
    a, b = Input("a"), Input("b")
    h = JoinTable(1, 1)(Linear(4, 5).set_name("la")(a), ReLU()(Linear(3, 2).set_name("lb")(b)))
    out1 = Linear(7, 2).set_name("head1")(h)
    out2 = SoftMax()(Linear(7, 3).set_name("head2")(h))
    return Model([a, b], [out1, out2])


# ---------------------------------------------------------------------- gradient checks (float64)

@pytest.mark.parametrize("make, input", [
    (mlp, lambda: normal((3, 4))),
    (concat, lambda: normal((3, 4))),
    (concat_table, lambda: normal((3, 4))),
    (parallel_table, lambda: [normal((3, 4)), normal((3, 2), seed=1)]),
    (shared_branch_graph, lambda: normal((3, 4))),
    (multi_io_graph, lambda: [normal((3, 4)), normal((3, 3), seed=1)]),
], ids=["sequential", "concat", "concattable", "paralleltable", "graph_shared", "graph_multi_io"])
def test_container_gradients(make, input):
    model = make().double()
    x = input()
    if make is multi_io_graph:  # keep the ReLU away from its kink
        x[1] = np.sign(x[1]) * (0.5 + np.abs(x[1]))
        lb = named(model, "lb")[0]
        lb.weight[...], lb.bias[...] = np.eye(2, 3), 0
    check_module_gradients(model, x)


def test_concat_table_output_is_a_table():
    model = ConcatTable().add(Linear(4, 3)).add(Tanh()).double()
    check_module_gradients(model, normal((2, 4)))
    assert [o.shape for o in model.forward(normal((2, 4)))] == [(2, 3), (2, 4)]


def test_graph_gradients_equal_hand_composition():
    model = shared_branch_graph().double()
    l1, t, a, b, out = named(model, "l1", "t", "a", "b", "out")
    x, g = normal((5, 4), seed=2), normal((5, 2), seed=3)
    model.zero_grad_parameters()
    y = np.array(model.forward(x), copy=True)
    gx = np.array(model.backward(x, g), copy=True)
    graph_grads = [np.array(p, copy=True) for p in model.parameter_arrays()[1]]

    model.zero_grad_parameters()
    h1 = np.array(l1.forward(x), copy=True)
    h = np.array(t.forward(h1), copy=True)
    s = a.forward(h) + b.forward(h)
    j = np.concatenate([s, x], axis=1)
    np.testing.assert_allclose(y, out.forward(j), rtol=1e-12)
    gj = np.array(out.backward(j, g), copy=True)
    gh = np.array(a.backward(h, gj[:, :3]), copy=True) + b.backward(h, gj[:, :3])
    gx_hand = l1.backward(x, t.backward(h1, gh)) + gj[:, 3:]
    np.testing.assert_allclose(gx, gx_hand, rtol=1e-12)
    for ours, hand in zip(graph_grads, model.parameter_arrays()[1]):
        np.testing.assert_allclose(ours, hand, rtol=1e-12)


def test_multi_io_graph_equals_hand_composition():
    model = multi_io_graph().double()
    la, lb, head1, head2 = named(model, "la", "lb", "head1", "head2")
    xa, xb = normal((4, 4), seed=4), normal((4, 3), seed=5)
    y1, y2 = (np.array(o, copy=True) for o in model.forward([xa, xb]))
    h = np.concatenate([la.forward(xa), np.maximum(lb.forward(xb), 0)], axis=1)
    np.testing.assert_allclose(y1, h @ head1.weight.T + head1.bias, rtol=1e-12)
    z = h @ head2.weight.T + head2.bias
    np.testing.assert_allclose(y2, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-12)
    ga, gb = model.backward([xa, xb], [np.ones((4, 2)), np.zeros((4, 3))])
    # only head1 gets a gradient signal: d/dh sum(h W1^T) = column sums of W1
    gh = np.ones((4, 2)) @ head1.weight
    np.testing.assert_allclose(ga, gh[:, :5] @ la.weight, rtol=1e-12)
    np.testing.assert_allclose(gb, (gh[:, 5:] * (lb.forward(xb) > 0)) @ lb.weight, rtol=1e-12)


# ---------------------------------------------------------------------- flat parameters

@pytest.mark.parametrize("make", [mlp, concat, shared_branch_graph, multi_io_graph])
def test_flat_parameters_are_views(make):
    model = make()
    w, g = model.get_parameters()
    triples = list(model.named_parameters())
    assert w.ndim == 1 and w.flags.c_contiguous and w.dtype == np.float32
    assert w.size == g.size == sum(getattr(m, n).size for _, m, n in triples)
    for _, m, n in triples:
        assert np.shares_memory(getattr(m, n), w)
        assert np.shares_memory(getattr(m, "grad_" + n), g)
    again = model.get_parameters()
    assert again[0] is w and again[1] is g


def test_updating_flat_vector_changes_outputs_and_gradients_accumulate():
    model = mlp()
    fc1, fc2 = model.get(0), model.get(2)
    w, g = model.get_parameters()
    x = normal((6, 4), seed=6, dtype=np.float32)
    before = np.array(model.forward(x), copy=True)
    w -= 0.1 * np.sign(w)
    after = np.array(model.forward(x), copy=True)
    assert not np.allclose(before, after)
    z = np.tanh(x @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias
    np.testing.assert_allclose(after, z - np.log(np.exp(z).sum(1, keepdims=True)), rtol=1e-5,
                               atol=1e-6)

    g[...] = 1.0
    model.zero_grad_parameters()
    assert not g.any()
    grad_out = normal((6, 3), seed=7, dtype=np.float32)
    model.forward(x)
    model.backward(x, grad_out)
    once = g.copy()
    assert once.any()
    np.testing.assert_array_equal(once, np.concatenate([fc1.grad_weight.ravel(), fc1.grad_bias,
                                                        fc2.grad_weight.ravel(), fc2.grad_bias]))
    model.backward(x, grad_out)
    np.testing.assert_allclose(g, 2 * once, rtol=1e-6)


def test_freeze_and_unfreeze():
    model = mlp()
    fc1, fc2 = model.get(0), model.get(2)
    model.freeze("fc1")
    w, g = model.get_parameters()
    assert w.size == fc2.weight.size + fc2.bias.size
    assert not np.shares_memory(fc1.weight, w) and np.shares_memory(fc2.weight, w)
    model.zero_grad_parameters()
    x = normal((3, 4), seed=8, dtype=np.float32)
    model.forward(x)
    gi = model.backward(x, np.ones((3, 3), np.float32))
    assert gi.any()                      # gradients still flow through a frozen layer
    assert not fc1.grad_weight.any() and not fc1.grad_bias.any()
    assert fc2.grad_weight.any()

    cfg = json.loads(json.dumps(model.get_config()))
    assert build_module(cfg).get(0)._frozen and not build_module(cfg).get(2)._frozen

    model.unfreeze("fc1")
    w2, _ = model.get_parameters()
    assert w2.size == w.size + fc1.weight.size + fc1.bias.size
    assert np.shares_memory(fc1.weight, w2)
    model.forward(x)
    model.backward(x, np.ones((3, 3), np.float32))
    assert fc1.grad_weight.any()

    model.freeze()
    assert model.get_parameters()[0].size == 0
    with pytest.raises(ValueError, match=r"no layer named \['nope'\]"):
        model.unfreeze("nope")


def test_freeze_in_graph():
    model = shared_branch_graph()
    model.freeze(["a", "b"])
    w, _ = model.get_parameters()
    assert w.size == (4 * 6 + 6) + (7 * 2 + 2)


# ---------------------------------------------------------------------- modes

@pytest.mark.parametrize("wrap", ["sequential", "graph"])
def test_training_and_evaluate_propagate(wrap):
    drop = Dropout(0.5)
    if wrap == "sequential":
        model = Sequential().add(Linear(10, 10)).add(ConcatTable().add(drop).add(Identity()))
    else:
        x = Input()
        model = Model(x, [drop(Linear(10, 10)(x)), Identity()(x)])
    x = np.ones((20, 10), np.float32)
    model.evaluate()
    assert all(not m.train for m in model.modules())
    a = np.array(model.forward(x)[0], copy=True)
    np.testing.assert_array_equal(a, model.forward(x)[0])
    model.training()
    assert all(m.train for m in model.modules()) and drop.is_training()
    b = np.array(model.forward(x)[0], copy=True)
    assert (b == 0).mean() > 0.3
    assert not np.array_equal(b, model.forward(x)[0])


# ---------------------------------------------------------------------- names and repr

def test_repr_of_layers_and_sequential_tree():
    assert repr(Linear(3, 4)) == "nn.Linear(3 -> 4)"
    model = Sequential().add(Linear(3, 4)).add(ReLU())
    assert repr(model) == ("nn.Sequential {\n  [input -> (1) -> (2) -> output]\n"
                           "  (1): nn.Linear(3 -> 4)\n  (2): nn.ReLU\n}")
    nested = Sequential().add(Linear(3, 4)).add(Sequential().add(ReLU()))
    assert repr(nested) == ("nn.Sequential {\n  [input -> (1) -> (2) -> output]\n"
                            "  (1): nn.Linear(3 -> 4)\n"
                            "  (2): nn.Sequential {\n    [input -> (1) -> output]\n"
                            "    (1): nn.ReLU\n  }\n}")


def test_set_name_is_used_in_errors():
    layer = Linear(3, 4).set_name("fc")
    assert layer.name() == "fc" and layer.label() == "Linear[fc]"
    assert Linear(3, 4).set_name("x") is not None


# ---------------------------------------------------------------------- config round trip

def everything():
    seq = Sequential().add(Reshape([4])).add(concat()).add(Dropout(0.2)).add(Linear(9, 4))
    seq.add(concat_table()).add(View([3]))
    x = Input()
    inner = Model(x, CAddTable()(Linear(3, 3)(x), Tanh()(x)))
    return seq.add(inner).add(LogSoftMax())


@pytest.mark.parametrize("make, input", [
    (mlp, lambda: normal((3, 4), dtype=np.float32)),
    (concat, lambda: normal((3, 4), dtype=np.float32)),
    (concat_table, lambda: normal((3, 4), dtype=np.float32)),
    (parallel_table, lambda: [normal((3, 4), dtype=np.float32), normal((3, 2), dtype=np.float32)]),
    (shared_branch_graph, lambda: normal((3, 4), dtype=np.float32)),
    (multi_io_graph, lambda: [normal((3, 4), dtype=np.float32), normal((3, 3), dtype=np.float32)]),
    (everything, lambda: normal((3, 2, 2), dtype=np.float32)),
], ids=["sequential", "concat", "concattable", "paralleltable", "graph_shared", "graph_multi_io",
        "nested"])
def test_config_round_trip_of_containers(make, input):
    model = make().evaluate()
    config = json.loads(json.dumps(model.get_config()))
    again = build_module(config).evaluate()
    assert type(again) is type(model)
    assert repr(again) == repr(model)
    assert again.get_config() == model.get_config()
    again.load_state_dict(model.state_dict())
    x = input()
    out, out2 = model.forward(x), again.forward(x)
    if not isinstance(out, list):
        out, out2 = [out], [out2]
    for a, b in zip(out, out2, strict=True):
        np.testing.assert_array_equal(a, b)
    names = [m.name() for m in model.modules() if m._name]
    assert names == [m.name() for m in again.modules() if m._name]


# ---------------------------------------------------------------------- bad input

def test_wrong_shape_inside_sequential_names_the_layer():
    with pytest.raises(LayerError, match=r"Linear\[fc1\]: expected input \(N, 4\), got \(2, 5\)"):
        mlp().forward(np.zeros((2, 5), np.float32))


def test_wrong_shape_inside_graph_names_the_layer():
    with pytest.raises(LayerError, match=r"Linear\[l1\]: expected input \(N, 4\), got \(2, 3\)"):
        shared_branch_graph().forward(np.zeros((2, 3), np.float32))
    with pytest.raises(LayerError, match=r"Model: expected a table of 2 inputs, got \(3, 4\)"):
        multi_io_graph().forward(np.zeros((3, 4), np.float32))


def test_table_containers_check_table_sizes():
    with pytest.raises(LayerError, match=r"ParallelTable: expected a table of 2 inputs, "
                                         r"got \[\(3, 4\)\]"):
        ParallelTable().add(Linear(4, 3)).add(Tanh()).forward([np.zeros((3, 4), np.float32)])
    with pytest.raises(LayerError, match=r"Concat: child outputs \[\(3, 3\), \(3, 4\)\] do not "
                                         r"fit along dimension 1"):
        Concat(1).add(Linear(4, 3)).add(Identity()).forward(np.zeros((3, 4), np.float32))
