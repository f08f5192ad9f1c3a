"""model.summary(): the layer tree, output shapes from a real forward pass, parameter counts,
trainable vs frozen; and the per-layer profile of one pass (same bits as an unprofiled one)."""
import pickle

import numpy as np
import pytest

from workbench import nn
from workbench.models import LeNet5
from workbench.nn.introspect import ModelSummary, profile_layers


def test_lenet_summary_shapes_and_counts():
    model = LeNet5()
    s = model.summary((1, 28, 28))
    assert isinstance(s, ModelSummary)
    assert s.row("conv1_5x5").output_shape == (None, 6, 24, 24)
    assert s.row("pool2").output_shape == (None, 12, 4, 4)
    assert s.row("fc1").output_shape == (None, 100)
    assert s.rows[0].output_shape == (None, 10)
    assert s.row("conv1_5x5").params == 6 * 25 + 6
    assert s.row("fc1").params == 192 * 100 + 100
    assert s.total_params == sum(w.size for w in model.parameter_arrays()[0])
    assert s.trainable_params == s.total_params and s.frozen_params == 0
    text = str(s)
    assert "conv1_5x5 (SpatialConvolution)" in text and "(None, 6, 24, 24)" in text
    assert f"Total params: {s.total_params:,}" in text
    # children are indented under their container
    assert "\n  fc1 (Linear)" in text
    assert "wb-summary-row" in s._repr_html_()


def test_summary_restores_training_mode_and_leaves_no_shadows():
    model = nn.Sequential().add(nn.Linear(3, 4)).add(nn.Dropout(0.5)).add(nn.BatchNormalization(4))
    before = [m.train for m in model.modules()]
    model.summary((3,))
    assert [m.train for m in model.modules()] == before
    assert all("forward" not in m.__dict__ for m in model.modules())
    pickle.dumps(model)


def test_frozen_model_counts():
    model = LeNet5()
    model.freeze_up_to("conv2_5x5")
    s = model.summary((1, 28, 28))
    frozen = (6 * 25 + 6) + (12 * 6 * 25 + 12)
    assert s.frozen_params == frozen
    assert s.trainable_params == s.total_params - frozen
    assert s.row("conv1_5x5").state == "frozen" and s.row("fc2").state == "trainable"
    assert s.rows[0].state == "partly frozen"
    assert s.trainable_params == sum(w.size for w in model.parameter_arrays()[0])
    assert "Non-trainable params: 1,968" in str(s)


def test_graph_summary_connections_and_multi_input():
    a_in, b_in = nn.Input(name="a_in"), nn.Input(name="b_in")
    a = nn.Linear(4, 8).set_name("dense_a")(a_in)
    r = nn.ReLU().set_name("relu")(a)
    b = nn.Linear(2, 3).set_name("dense_b")(b_in)
    out = nn.JoinTable(2, 2).set_name("join")([r, b])
    model = nn.Model([a_in, b_in], out)
    model.freeze("dense_b")
    s = model.summary([(4,), (2,)])
    assert s.row("join").output_shape == (None, 11)
    assert s.row("join").inputs == ["relu", "dense_b"]
    assert s.row("dense_a").inputs == ["a_in"]
    assert s.row("dense_b").state == "frozen"
    assert s.total_params == 4 * 8 + 8 + 2 * 3 + 3 and s.frozen_params == 9
    assert "Connected to" in str(s)


def test_summary_without_shape_and_bad_shape():
    s = LeNet5().summary()
    assert s.rows[1].output_shape is None and "-" in str(s)
    with pytest.raises(ValueError, match=r"summary: a forward pass on input shape \(3, 5\)"):
        LeNet5().summary((3, 5))
    with pytest.raises(TypeError, match="input_shape must be a tuple of ints"):
        LeNet5().summary("big")


def test_profile_times_every_layer_and_keeps_bits():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    g = rng.standard_normal((8, 10)).astype(np.float32)

    def run(profiled):
        nn.random.set_seed(5)
        model = LeNet5()
        w, grads = model.get_parameters()
        if profiled:
            with profile_layers(model) as profile:
                out = model.forward(x)
                model.backward(x, g)
            return out.copy(), grads.copy(), profile.layers(), model
        out = model.forward(x)
        model.backward(x, g)
        return out.copy(), grads.copy(), None, model

    out0, g0, _, _ = run(False)
    out1, g1, layers, model = run(True)
    assert np.array_equal(out0, out1) and np.array_equal(g0, g1)
    by_name = {t.name: t for t in layers}
    assert by_name["conv1_5x5"].forward > 0 and by_name["conv1_5x5"].backward > 0
    root = layers[0]
    assert not root.leaf
    # the leaves' times add up to no more than the whole pass
    assert sum(t.total for t in layers if t.leaf) <= root.total * 1.001
    assert all("forward" not in m.__dict__ for m in model.modules())
