"""Distance, product, composite and attention layers (CrossProduct, FeedForwardNetwork,
Transformer too): gradients (float64), PyTorch parity,
semantics, config, saving, errors."""
import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from oracle import F, torch

from helpers import (assert_config_round_trip, assert_parity, check_module_gradients, param_id,
                     config_round_trip, f32, normal, t64, torch_parity)
from workbench import io
from workbench.nn import (Attention, Bilinear, Bottle, Cosine, CosineDistance, CrossProduct,
                          DotProduct, Euclidean, FeedForwardNetwork, Highway, L2Regularizer,
                          LayerError, Linear, Maxout, MM, Module, MV, PairwiseDistance, random,
                          ReLU, Select, Sequential, Tanh, Transformer, TransformerEncoderLayer)


class _Reseeded(Module):
    """Runs ``inner`` with the same random seed on every forward, so finite differences see one
    dropout mask."""

    def __init__(self, inner, seed):
        super().__init__()
        self.inner, self.seed = inner, seed

    def update_output(self, input):
        random.set_seed(self.seed)
        return self.inner.forward(input)

    def update_grad_input(self, input, grad_output):
        return self.inner.backward(input, grad_output)

    def named_parameters(self, trainable_only=False):
        return self.inner.named_parameters(trainable_only)

    def zero_grad_parameters(self):
        self.inner.zero_grad_parameters()


def t(a):
    return torch.from_numpy(np.array(a, copy=True))


# ---------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("layer, input", [
    (Bilinear(3, 4, 2), [normal((5, 3), 1), normal((5, 4), 2)]),
    (Bilinear(3, 2, 3, False), [normal((2, 3), 3), normal((2, 2), 4)]),
    (Maxout(4, 3, 2), normal((5, 4), 5)),
    (Maxout(3, 2, 3, False), normal((3,), 6)),
    (Highway(4), normal((3, 4), 7)),
    (Highway(4, activation="tanh"), normal((3, 4), 8)),
    (Highway(3, False, Tanh()), normal((3,), 9)),
    (Cosine(4, 3), normal((5, 4), 10)),
    (Cosine(3, 2), normal((3,), 11)),
    (Euclidean(4, 3), normal((5, 4), 12)),
    (Euclidean(2, 3), normal((2,), 13)),
], ids=lambda v: repr(v) if isinstance(v, Module) else "")
def test_weighted_layer_gradients(layer, input):
    check_module_gradients(layer.double(), input)


@pytest.mark.parametrize("layer", [CosineDistance(), DotProduct(), PairwiseDistance(),
                                   PairwiseDistance(1), PairwiseDistance(3)], ids=repr)
@pytest.mark.parametrize("shape", [(4, 5), (5,)])
def test_row_pair_gradients(layer, shape):
    check_module_gradients(layer, [normal(shape, 14), normal(shape, 15)])


@pytest.mark.parametrize("layer, shapes", [
    (MM(), [(3, 4), (4, 2)]),
    (MM(True), [(4, 3), (4, 2)]),
    (MM(False, True), [(2, 3, 4), (2, 5, 4)]),
    (MM(True, True), [(2, 4, 3), (2, 5, 4)]),
    (MV(), [(3, 4), (4,)]),
    (MV(True), [(2, 4, 3), (2, 4)]),
])
def test_matrix_product_gradients(layer, shapes):
    check_module_gradients(layer, [normal(s, 16 + i) for i, s in enumerate(shapes)])


@pytest.mark.parametrize("input", [
    normal((2, 3, 4), 20),                                                   # self-attention
    [normal((2, 3, 4), 21), normal((2, 5, 4), 22)],                          # cross-attention
    [normal((2, 3, 4), 23), normal((2, 2, 4), 24), normal((2, 2, 3, 2), 25)],
    [normal((1, 2, 4), 26), normal((1, 3, 4), 27), normal((1, 1, 1, 3), 28)],
], ids=["self", "cross", "bias", "broadcast-bias"])
def test_attention_gradients(input):
    check_module_gradients(Attention(4, 2).double(), input)


def test_attention_gradients_with_dropout():
    layer = _Reseeded(Attention(4, 2, 0.3).double(), seed=3)
    check_module_gradients(layer, normal((2, 3, 4), 29))


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer_gradients(norm_first):
    layer = TransformerEncoderLayer(4, 2, 6, norm_first=norm_first).double()
    check_module_gradients(layer, normal((2, 3, 4), 30), rtol=1e-4, atol=1e-6)
    bias = normal((2, 1, 1, 3), 31)
    check_module_gradients(layer, [normal((1, 3, 4), 32), bias[:1]], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- PyTorch parity (float32)

@pytest.mark.oracle
def test_bilinear_matches_torch():
    layer = Bilinear(3, 4, 2)
    tl = torch.nn.Bilinear(3, 4, 2)
    with torch.no_grad():
        tl.weight.copy_(t(layer.weight))
        tl.bias.copy_(t(layer.bias))
    assert_parity(layer, lambda v: tl(v[0], v[1]), [f32((5, 3), 1), f32((5, 4), 2)],
                  params=lambda: [(layer.grad_weight, tl.weight), (layer.grad_bias, tl.bias)])


@pytest.mark.oracle
def test_maxout_matches_torch():
    layer = Maxout(4, 3, 2)
    tl = torch.nn.Linear(4, 6)
    with torch.no_grad():
        tl.weight.copy_(t(layer.weight))
        tl.bias.copy_(t(layer.bias))
    assert_parity(layer, lambda v: tl(v).view(-1, 2, 3).max(1).values, f32((5, 4), 3),
                  params=lambda: [(layer.grad_weight, tl.weight), (layer.grad_bias, tl.bias)])


@pytest.mark.oracle
def test_highway_matches_torch():
    layer = Highway(4, activation=ReLU())
    gate, trans = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    with torch.no_grad():
        for ours, theirs in ((layer.gate, gate), (layer.transform, trans)):
            theirs.weight.copy_(t(ours.weight))
            theirs.bias.copy_(t(ours.bias))

    def fn(x):
        g = torch.sigmoid(gate(x))
        return g * torch.relu(trans(x)) + (1 - g) * x
    assert_parity(layer, fn, f32((5, 4), 4),
                  params=lambda: [(layer.gate.grad_weight, gate.weight),
                                  (layer.gate.grad_bias, gate.bias),
                                  (layer.transform.grad_weight, trans.weight),
                                  (layer.transform.grad_bias, trans.bias)])


@pytest.mark.oracle
def test_cosine_and_euclidean_match_torch():
    cos = Cosine(4, 3)
    w = t(cos.weight).requires_grad_()
    assert_parity(cos, lambda x: F.cosine_similarity(x[:, None, :], w[None], dim=2),
                  f32((5, 4), 5), params=lambda: [(cos.grad_weight, w)])
    euc = Euclidean(4, 3)
    w2 = t(euc.weight).requires_grad_()
    assert_parity(euc, lambda x: (x[:, :, None] - w2[None]).norm(dim=1), f32((5, 4), 6),
                  params=lambda: [(euc.grad_weight, w2)])


@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn", [
    (CosineDistance(), lambda v: F.cosine_similarity(v[0], v[1], dim=1)),
    (DotProduct(), lambda v: (v[0] * v[1]).sum(1)),
    (PairwiseDistance(), lambda v: torch.norm(v[0] - v[1], p=2, dim=1)),
    (PairwiseDistance(1), lambda v: torch.norm(v[0] - v[1], p=1, dim=1)),
    (PairwiseDistance(3), lambda v: torch.norm(v[0] - v[1], p=3, dim=1)),
], ids=param_id)
def test_row_pairs_match_torch(layer, fn):
    assert_parity(layer, fn, [f32((4, 5), 7), f32((4, 5), 8)])


@pytest.mark.oracle
def test_matrix_products_match_torch():
    a, b = f32((2, 3, 4), 9), f32((2, 4, 5), 10)
    assert_parity(MM(), lambda v: torch.bmm(v[0], v[1]), [a, b])
    assert_parity(MM(True, True), lambda v: v[0].transpose(0, 1) @ v[1].transpose(0, 1),
                  [f32((4, 3), 11), f32((5, 4), 12)])
    assert_parity(MV(), lambda v: torch.mv(v[0], v[1]), [f32((3, 4), 13), f32((4,), 14)])
    assert_parity(MV(True), lambda v: (v[0].transpose(1, 2) @ v[1][..., None])[..., 0],
                  [f32((2, 4, 3), 15), f32((2, 4), 16)])


def _torch_mha(layer):
    """``torch.nn.MultiheadAttention`` holding ``layer``'s projections."""
    mha = torch.nn.MultiheadAttention(layer.hidden_size, layer.num_heads, bias=False,
                                      batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(t(np.concatenate(
            [layer.query.weight, layer.key.weight, layer.value.weight])))
        mha.out_proj.weight.copy_(t(layer.output_layer.weight))
    return mha


def _mha_grads(layer, mha):
    """Our projection gradients paired with torch's (the thirds of ``in_proj_weight``)."""
    h, grad = layer.hidden_size, mha.in_proj_weight.grad
    q, k, v = (SimpleNamespace(grad=grad[i * h:(i + 1) * h]) for i in range(3))
    return [(layer.query.grad_weight, q), (layer.key.grad_weight, k),
            (layer.value.grad_weight, v), (layer.output_layer.grad_weight, mha.out_proj.weight)]


@pytest.mark.oracle
def test_attention_matches_torch_multihead_attention():
    layer = Attention(8, 2)
    mha = _torch_mha(layer)
    x = f32((2, 3, 8), 17)
    assert_parity(layer, lambda v: mha(v, v, v, need_weights=False)[0], x,
                  params=lambda: _mha_grads(layer, mha), rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
def test_cross_attention_with_bias_matches_torch():
    layer = Attention(8, 4)
    mha = _torch_mha(layer)
    x, y, bias = f32((2, 3, 8), 18), f32((2, 5, 8), 19), f32((2, 4, 3, 5), 20)
    bias[:, :, :, -1] = -1e9        # a padded key position
    assert_parity(layer,
                  lambda v: mha(v[0], v[1], v[1], attn_mask=v[2].reshape(8, 3, 5),
                                need_weights=False)[0],
                  [x, y, bias], params=lambda: _mha_grads(layer, mha), rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer_matches_torch(norm_first):
    layer = TransformerEncoderLayer(8, 2, 16, norm_first=norm_first)
    for norm in (layer.norm1, layer.norm2):            # not the trivial ones and zeros
        norm.weight[...] = 1 + 0.1 * f32((8,), 21)
        norm.bias[...] = 0.1 * f32((8,), 22)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                          norm_first=norm_first, layer_norm_eps=1e-6)
    lin1, lin2 = layer.ffn[0][0], layer.ffn[0][3]
    att = layer.attention
    with torch.no_grad():
        tl.self_attn.in_proj_weight.copy_(t(np.concatenate(
            [att.query.weight, att.key.weight, att.value.weight])))
        tl.self_attn.in_proj_bias.zero_()
        tl.self_attn.out_proj.weight.copy_(t(att.output_layer.weight))
        tl.self_attn.out_proj.bias.zero_()
        for ours, theirs in ((lin1, tl.linear1), (lin2, tl.linear2), (layer.norm1, tl.norm1),
                             (layer.norm2, tl.norm2)):
            theirs.weight.copy_(t(ours.weight))
            theirs.bias.copy_(t(ours.bias))
    tl.train()

    def params():
        pairs = [(lin1.grad_weight, tl.linear1.weight), (lin1.grad_bias, tl.linear1.bias),
                 (lin2.grad_weight, tl.linear2.weight), (lin2.grad_bias, tl.linear2.bias)]
        for ours, theirs in ((layer.norm1, tl.norm1), (layer.norm2, tl.norm2)):
            pairs += [(ours.grad_weight, theirs.weight), (ours.grad_bias, theirs.bias)]
        return pairs + _mha_grads(att, tl.self_attn)

    x = f32((2, 4, 8), 23)
    assert_parity(layer, tl, x, params=params, rtol=1e-4, atol=1e-5)
    causal = np.triu(np.full((4, 4), -1e9, np.float32), 1)
    tl.zero_grad()
    assert_parity(layer, lambda v: tl(v[0], src_mask=v[1][0, 0]), [x, causal[None, None]],
                  params=params, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- semantics

def test_attention_bias_masks_keys():
    layer = Attention(4, 2)
    x, y = f32((1, 2, 4), 24), f32((1, 3, 4), 25)
    bias = np.zeros((1, 1, 1, 3), np.float32)
    bias[..., 2] = -1e9
    out = layer.forward([x, y, bias]).copy()
    y2 = y.copy()
    y2[0, 2] = 100                      # the masked key/value no longer matters
    np.testing.assert_allclose(layer.forward([x, y2, bias]), out, rtol=1e-6)


def test_attention_dropout_only_while_training():
    layer = Attention(4, 1, 0.5)
    x = f32((2, 3, 4), 26)
    random.set_seed(1)
    a = layer.forward(x).copy()
    random.set_seed(2)
    assert not np.allclose(layer.forward(x), a)
    layer.evaluate()
    b = layer.forward(x).copy()
    layer.attention_dropout = 0.0
    layer.training()
    np.testing.assert_allclose(layer.forward(x), b)


def test_transformer_layer_trains_in_a_model():
    model = Sequential().add(TransformerEncoderLayer(8, 2, 16)).add(Bottle(Linear(8, 1)))
    w, g = model.get_parameters()
    x, target = f32((4, 3, 8), 27), f32((4, 3, 1), 28)
    losses = []
    for _ in range(30):
        model.zero_grad_parameters()
        y = model.forward(x)
        losses.append(float(np.mean((y - target) ** 2)))
        model.backward(x, 2 * (y - target) / y.size)
        w -= 0.1 * g
    assert losses[-1] < 0.5 * losses[0]


def test_regularizers_reach_highway_linears():
    layer = Highway(3, wRegularizer=L2Regularizer(0.5)).double()
    x = normal((2, 3), 29)
    layer.forward(x)
    layer.zero_grad_parameters()
    layer.backward(x, np.zeros((2, 3)))
    np.testing.assert_allclose(layer.gate.grad_weight, 0.5 * layer.gate.weight)
    np.testing.assert_allclose(layer.transform.grad_weight, 0.5 * layer.transform.weight)


def test_save_and_load_keep_weights(tmp_path):
    model = Sequential().add(TransformerEncoderLayer(8, 2, 16, norm_first=True)) \
        .add(Select(2, 1)).add(Highway(8, activation="tanh")).add(Maxout(8, 4, 2))
    path = str(tmp_path / "m.bigdl")
    io.save_model(model, path)
    again = io.load_model(path)
    assert repr(again) == repr(model)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = f32((2, 3, 8), 30)
    np.testing.assert_allclose(again.forward(x), model.forward(x), rtol=1e-6)


def test_pickled_layers_carry_weights_not_activations():
    model = Sequential().add(TransformerEncoderLayer(8, 2, 16)).add(Select(2, 1)) \
        .add(Highway(8)).add(Maxout(8, 4, 2))
    x = f32((2, 3, 8), 31)
    y = model.forward(x).copy()
    model.backward(x, np.ones_like(y))
    blob = pickle.dumps(model)
    assert len(blob) < 4 * sum(w.size for w in model.get_weights()) + 20000
    again = pickle.loads(blob)
    assert all("_scratch" not in m.__dict__ for m in again.modules())
    np.testing.assert_allclose(again.forward(x), y, rtol=1e-6)


# ---------------------------------------------------------------------- config, repr, errors

CONFIG_LAYERS = [Bilinear(3, 4, 2, False), Maxout(4, 3, 2), Highway(4), Highway(4, False, "relu"),
                 Highway(4, activation=Tanh()), Cosine(4, 3), Euclidean(4, 3, False),
                 CosineDistance(), PairwiseDistance(3), DotProduct(), MM(True), MV(True),
                 Attention(8, 2, 0.1), TransformerEncoderLayer(8, 2, 16, 0.1, 0.2, True)]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=lambda m: type(m).__name__)
def test_config_round_trip(layer):
    again = assert_config_round_trip(layer)
    assert [w.shape for w in again.get_weights()] == [w.shape for w in layer.get_weights()]


def test_reprs():
    assert repr(Bilinear(3, 4, 2)) == "nn.Bilinear(3, 4 -> 2)"
    assert repr(Maxout(4, 3, 2)) == "nn.Maxout(4 -> 3, 2 pieces)"
    assert repr(Highway(4, activation="tanh")) == "nn.Highway(4, nn.Tanh)"
    assert repr(Attention(8, 2)) == "nn.Attention(8, 2 heads)"
    assert repr(TransformerEncoderLayer(8, 2, 16)) == \
        "nn.TransformerEncoderLayer(8, 2 heads, filter 16)"


@pytest.mark.parametrize("layer, bad, message", [
    (Bilinear(3, 4, 2), [np.zeros((2, 3)), np.zeros((2, 5))],
     r"Bilinear\[d\]: expected input \[\(N, 3\), \(N, 4\)\], got \[\(2, 3\), \(2, 5\)\]"),
    (Maxout(4, 3, 2), np.zeros((2, 5)), r"Maxout\[d\]: expected input \(N, 4\), got \(2, 5\)"),
    (Highway(4), np.zeros((2, 3)), r"Highway\[d\]: expected input \(N, 4\), got \(2, 3\)"),
    (Cosine(4, 3), np.zeros((2, 3)), r"Cosine\[d\]: expected input \(N, 4\), got \(2, 3\)"),
    (Euclidean(4, 3), np.zeros((2, 2, 4)), r"Euclidean\[d\]: expected input \(N, 4\), "
                                            r"got \(2, 2, 4\)"),
    (CosineDistance(), [np.zeros((2, 3)), np.zeros((2, 4))],
     r"CosineDistance\[d\]: expected input a table \[a, b\] of two \(N, D\) or \(D,\) tensors "
     r"of one shape, got \[\(2, 3\), \(2, 4\)\]"),
    (PairwiseDistance(), np.zeros((2, 3)), r"PairwiseDistance\[d\]: .* got \(2, 3\)"),
    (DotProduct(), [np.zeros(3)], r"DotProduct\[d\]: .* got \[\(3\)\]"),
    (MM(), [np.zeros((2, 3)), np.zeros((4, 2))],
     r"MM\[d\]: expected input a table \[A, B\] of two matrices .* got \[\(2, 3\), \(4, 2\)\]"),
    (MV(), [np.zeros((2, 3)), np.zeros((2,))],
     r"MV\[d\]: expected input a table \[M, v\] .* got \[\(2, 3\), \(2\)\]"),
    (Attention(8, 2), np.zeros((2, 3, 4)),
     r"Attention\[d\]: expected input \(N, L, 8\) or a table .* got \(2, 3, 4\)"),
    (Attention(8, 2), [np.zeros((2, 3, 8)), np.zeros((2, 5, 8)), np.zeros((2, 3, 3, 5))],
     r"Attention\[d\]: expected input a bias broadcastable to \(2, 2, 3, 5\), "
     r"got \[\(2, 3, 8\), \(2, 5, 8\), \(2, 3, 3, 5\)\]"),
    (TransformerEncoderLayer(8, 2, 16), np.zeros((3, 8)),
     r"TransformerEncoderLayer\[d\]: expected input \(N, L, 8\), got \(3, 8\)"),
])
def test_bad_input_names_layer(layer, bad, message):
    layer.set_name("d")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("make, message", [
    (lambda: Bilinear(0, 2, 2), r"Bilinear: input_size1 must be a positive int, got 0"),
    (lambda: Maxout(2, 2, 0), r"Maxout: maxout_number must be a positive int, got 0"),
    (lambda: Highway(3, activation="nope"), r"Highway: activation must be .* got 'nope'"),
    (lambda: Cosine(2, "3"), r"Cosine: output_size must be a positive int, got '3'"),
    (lambda: PairwiseDistance(0.5), r"PairwiseDistance: norm must be a number >= 1, got 0.5"),
    (lambda: Attention(8, 3), r"Attention: hidden_size \(8\) must be a multiple of num_heads"),
    (lambda: Attention(8, 2, 1.0), r"Attention: attention_dropout must be a number in \[0, 1\)"),
    (lambda: TransformerEncoderLayer(8, 2, 0), r"TransformerEncoderLayer: filter_size must be"),
    (lambda: Highway(3).add(Linear(3, 3)), r"Highway: its layers are built by the constructor"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# ---------------------------------------------------------------------- CrossProduct
@pytest.mark.oracle
def test_cross_product_matches_torch_pairwise_dots():
    xs = [f32((4, 3), seed=s) for s in range(4)]

    def pairwise(*ts):
        return torch.stack([(ts[i] * ts[j]).sum(1) for i in range(4) for j in range(i + 1, 4)], 1)

    torch_parity(CrossProduct(4, 3), pairwise, xs)
    stacked = np.stack(xs, 1)
    layer = CrossProduct()
    np.testing.assert_allclose(layer.forward(stacked), pairwise(*map(torch.from_numpy, xs)),
                               rtol=1e-6)
    assert layer.forward([x[0] for x in xs]).shape == (1, 6)   # 2-D, as BigDL
    check_module_gradients(CrossProduct().double(), [normal((2, 3), seed=s) for s in range(3)])
    check_module_gradients(CrossProduct().double(), normal((2, 3, 4), seed=5))
    check_module_gradients(CrossProduct().double(), [normal((3,), seed=s) for s in range(3)])


def test_cross_product_errors_and_config():
    with pytest.raises(LayerError, match=r"CrossProduct\[cp\]: expected input a table of 3 "
                                         r"tensors \(N, 2\).*got \[\(2, 2\), \(2, 2\)\]"):
        CrossProduct(3, 2).set_name("cp").forward([np.ones((2, 2))] * 2)
    with pytest.raises(ValueError, match="numTensor must be an int >= 0, got -1"):
        CrossProduct(-1)
    config_round_trip(CrossProduct(2, 3), [f32((2, 3), seed=1), f32((2, 3), seed=2)])


# ---------------------------------------------------------------------- FeedForwardNetwork
@pytest.mark.oracle
def test_feed_forward_network_matches_torch():
    layer = FeedForwardNetwork(4, 6, 0.1)
    layer.evaluate()   # no dropout: deterministic

    def ffn(x, w1, b1, w2, b2):
        return F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)

    layer.filter_bias[...] = f32((6,), seed=3)   # BigDL starts biases at zero; test them too
    torch_parity(layer, ffn, f32((2, 3, 4), seed=11),
                 params=("filter_weight", "filter_bias", "output_weight", "output_bias"))
    check_module_gradients(FeedForwardNetwork(3, 5, 0.0).double(), normal((2, 2, 3), seed=12))


def test_feed_forward_network_dropout_while_training():
    layer = FeedForwardNetwork(3, 50, 0.5).double()
    x = normal((4, 3), seed=13)

    class Reseeded(Module):
        def update_output(self, input):
            random.set_seed(5)
            return layer.forward(input)

        def update_grad_input(self, input, grad_output):
            return layer.backward(input, grad_output)

    check_module_gradients(Reseeded(), x, check_params=False)
    random.set_seed(5)
    y_train = layer.forward(x).copy()
    y_eval = layer.evaluate().forward(x)
    assert not np.allclose(y_train, y_eval)


def test_feed_forward_network_errors_and_config():
    with pytest.raises(LayerError, match=r"FeedForwardNetwork\[ffn\]: expected input "
                                         r"\(\.\.\., 4\), got \(2, 3\)"):
        FeedForwardNetwork(4, 6, 0.1).set_name("ffn").forward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"relu_dropout must be in \[0, 1\), got 1.5"):
        FeedForwardNetwork(4, 6, 1.5)
    config_round_trip(FeedForwardNetwork(4, 6, 0.1), f32((2, 4), seed=1))


# ---------------------------------------------------------------------- Transformer
def torch_transformer_lm(model, ids):
    """BigDL's language-model Transformer written out in torch from ``model``'s weights
    (inference: no dropout).  Returns the output and the leaf weight tensors by path."""
    leaves = {p: t64(getattr(m, n)).requires_grad_() for p, m, n in model.named_parameters()}
    h, heads = model.hidden_size, model.num_heads
    n, t = ids.shape
    emb = leaves["0.weight"][torch.from_numpy(ids)] * math.sqrt(h)
    if model.padding_value is not None:
        emb = emb * torch.from_numpy(ids != model.padding_value)[..., None]
    x = torch.cat([torch.zeros(n, 1, h, dtype=emb.dtype), emb[:, :-1]], 1)
    pos = torch.arange(t, dtype=torch.float64)[:, None]
    inv = torch.exp(torch.arange(h // 2, dtype=torch.float64)
                    * -(math.log(1e4) / max(h // 2 - 1, 1)))
    x = x + torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)], 1)
    causal = torch.triu(torch.full((t, t), -1e9, dtype=torch.float64), 1)

    def norm(v, i):
        return F.layer_norm(v, (h,), leaves[f"{i}.weight"], leaves[f"{i}.bias"], eps=1e-6)

    def split(v):
        return v.reshape(n, t, heads, h // heads).transpose(1, 2)

    for b in range(model.num_hidden_layers):
        i = 1 + 4 * b
        y = norm(x, i)
        q, k, v = (split(y @ leaves[f"{i + 1}.{j}.weight"].T) for j in range(3))
        att = torch.softmax(q @ k.transpose(2, 3) * (h // heads) ** -0.5 + causal, -1) @ v
        x = x + att.transpose(1, 2).reshape(n, t, h) @ leaves[f"{i + 1}.3.weight"].T
        y = norm(x, i + 2)
        f = F.relu(F.linear(y, leaves[f"{i + 3}.filter_weight"], leaves[f"{i + 3}.filter_bias"]))
        x = x + F.linear(f, leaves[f"{i + 3}.output_weight"], leaves[f"{i + 3}.output_bias"])
    out = norm(x, 1 + 4 * model.num_hidden_layers)
    if model.with_share_weights_linear:
        out = out @ leaves["0.weight"].T
    return out, leaves


@pytest.mark.oracle
@pytest.mark.parametrize("share", [False, True])
def test_transformer_matches_torch(share):
    model = Transformer(7, 4, 2, 6, 2, 0.1, 0.1, 0.1, with_share_weights_linear=share).double()
    model.evaluate()
    for _, m, n in model.named_parameters():   # LayerNorm and biases away from 1 / 0
        if n.endswith("bias") or m.__class__.__name__ == "LayerNormalization":
            getattr(m, n)[...] += normal(getattr(m, n).shape, seed=len(n), scale=0.3)
    ids = np.array([[3, 1, 0, 6], [2, 2, 5, 4]])
    ty, leaves = torch_transformer_lm(model, ids)
    g = normal(tuple(ty.shape), seed=50)
    ty.backward(t64(g))
    model.zero_grad_parameters()
    y = model.forward(ids)
    gi = model.backward(ids, g)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-10)
    assert gi.shape == ids.shape and not gi.any()
    for path, m, n in model.named_parameters():
        np.testing.assert_allclose(getattr(m, "grad_" + n), leaves[path].grad.numpy(),
                                   rtol=1e-8, atol=1e-10, err_msg=path)
    if not share:   # the padding id learns nothing through the lookup
        assert not model.embedding.grad_weight[0].any()


def test_transformer_gradients_causality_and_dropout():
    model = Transformer(5, 4, 2, 5, 1, 0.0, 0.0, 0.0, padding_value=None).double()
    ids = np.array([[1, 2, 3], [4, 0, 2]])
    check_module_gradients(model, ids, check_input=False)
    y = model.forward(ids).copy()
    changed = ids.copy()
    changed[:, 2] = [0, 1]                       # the last token feeds no output
    np.testing.assert_array_equal(model.forward(changed), y)
    changed[:, 1] = [3, 3]                       # token 1 feeds step 2 only
    y2 = model.forward(changed)
    np.testing.assert_array_equal(y2[:, :2], y[:, :2])
    assert not np.allclose(y2[:, 2], y[:, 2])
    drop = Transformer(5, 4, 2, 5, 1, 0.3, 0.3, 0.3).double()

    class Reseeded(Module):
        def update_output(self, input):
            random.set_seed(9)
            return drop.forward(input)

        def backward(self, input, grad_output):
            return drop.backward(input, grad_output)

        def named_parameters(self, trainable_only=False):
            return drop.named_parameters(trainable_only)

    check_module_gradients(Reseeded(), ids, check_input=False)
    random.set_seed(9)
    y_train = drop.forward(ids).copy()
    assert not np.allclose(y_train, drop.evaluate().forward(ids))


def test_transformer_errors_and_config():
    with pytest.raises(LayerError, match=r"Transformer\[lm\]: expected input \(N, T\) token "
                                         r"ids, got \(2, 3, 4\)"):
        Transformer(5, 4, 2, 5, 1, 0.0, 0.0, 0.0).set_name("lm").forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"attention_dropout must be a number in \[0, 1\), "
                                         r"got 1.0"):
        Transformer(5, 4, 2, 5, 1, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="hidden_size .* must be a multiple of num_heads"):
        Transformer(5, 5, 2, 5, 1, 0.0, 0.0, 0.0)
    config_round_trip(Transformer(5, 4, 2, 5, 2, 0.1, 0.1, 0.1, with_share_weights_linear=True),
                      np.array([[1, 2, 3]]))

