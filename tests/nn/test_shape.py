"""Shape, index and reduce layers (View, Reshape, ExpandSize, Narrow, Sum, ...): gradients
(float64), PyTorch parity, BigDL semantics, config, errors."""
import numpy as np
import pytest
from oracle import torch

from helpers import (assert_config_round_trip, assert_parity, assert_torch_parity,
                     check_module_gradients, config_round_trip, f32, normal, torch_parity,
                     with_fixed)
from workbench.nn import (Contiguous, Echo, ExpandSize, Identity, Index, InferReshape, LayerError,
                          Linear, Masking, Max, Mean, Min, Narrow, Replicate, Reshape, Reverse,
                          Select, Sequential, Squeeze, Sum, Tile, Transpose, Unsqueeze, View)


# ---------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("layer, shape", [
    (InferReshape([4, 0, 3, -1]), (4, 5, 6, 7)),
    (InferReshape([-1, 6], True), (2, 3, 4)),
    (InferReshape([0, -1]), (3, 2, 2)),
    (Squeeze(), (2, 1, 3, 1)),
    (Squeeze(2), (2, 1, 3)),
    (Squeeze([2, 4]), (2, 1, 3, 1)),
    (Squeeze(1, 2), (4, 1, 3)),          # batch of (1, 3): the sample's dimension 1
    (Unsqueeze(2), (2, 3)),
    (Unsqueeze(1, 1), (2, 3)),
    (Unsqueeze(3), (2, 3)),
    (Transpose([(1, 2)]), (2, 3)),
    (Transpose([(1, 3), (2, 3)]), (2, 3, 4)),
    (Transpose([(-1, 1)]), (2, 3, 4)),
    (Contiguous(), (3, 4)),
    (Select(2, 3), (2, 4, 3)),
    (Select(-1, -1), (2, 4, 3)),
    (Select(1, 2), (4,)),
    (Narrow(2, 2, 2), (3, 5)),
    (Narrow(-1, 1, -2), (2, 3, 4)),
    (Narrow(1, -2, 2), (5, 2)),
    (Replicate(3), (2, 4)),
    (Replicate(3, 2, 1), (2, 4)),       # a batch of vectors: replicate per sample
    (Replicate(2, 3), (2, 4)),
    (Tile(1, 3), (2, 3)),
    (Tile(2, 2), (2, 3, 2)),
    (Reverse(), (3, 4)),
    (Reverse(-1), (2, 3, 4)),
    (Max(2), (3, 5)),
    (Max(1, 1), (3, 5)),
    (Max(-1), (2, 3, 4)),
    (Max(1), (5,)),
    (Min(1), (3, 5)),
    (Min(2, 2), (2, 3, 4)),
    (Sum(), (3, 4)),
    (Sum(2, squeeze=False), (3, 4)),
    (Sum(1, 2, True), (2, 3, 4)),
    (Sum(1), (6,)),
    (Mean(-1), (2, 3, 4)),
    (Mean(1, 1), (3, 4)),
])
def test_gradients(layer, shape):
    check_module_gradients(layer, normal(shape, seed=1))


def test_echo_gradients(capsys):
    check_module_gradients(Echo(), normal((2, 3), 2))
    assert "Echo : activation size is (2, 3)" in capsys.readouterr().out


def test_masking_gradients():
    # Finite differences cannot cross a masked step (the mask flips), so the steps here are
    # unmasked; the parity test below covers masked steps.
    x = normal((3, 4, 2), 3)
    x[1, 2, 0] = 0    # one value equal to the mask value does not mask the step
    check_module_gradients(Masking(0.0), x)


def test_masking_gradient_is_zero_on_masked_steps():
    x = normal((2, 3, 2), 3)
    x[1, 1] = 0.5
    layer = Masking(0.5)
    y = layer.forward(x)
    assert not y[1, 1].any() and y[0].all()
    g = layer.backward(x, np.ones_like(x))
    np.testing.assert_array_equal(g[1, 1], 0)
    np.testing.assert_array_equal(g[0], 1)


@pytest.mark.parametrize("dimension, zero_based", [(1, True), (2, True), (-1, False)])
def test_index_gradients(dimension, zero_based):
    x = normal((4, 3), 4)
    idx = np.array([2, 0, 2, 1]) + (0 if zero_based else 1)
    check_module_gradients(with_fixed(Index(dimension, zero_based), idx), x)


# ---------------------------------------------------------------------- PyTorch parity (float32)

@pytest.mark.oracle
@pytest.mark.parametrize("layer, fn, shape", [
    (InferReshape([4, 0, 3, -1]), lambda t: t.reshape(4, 5, 3, 14), (4, 5, 6, 7)),
    (InferReshape([-1, 6], True), lambda t: t.reshape(2, 2, 6), (2, 3, 4)),
    (Squeeze(2), lambda t: t.squeeze(1), (2, 1, 3)),
    (Squeeze(), lambda t: t.squeeze(), (2, 1, 3, 1)),
    (Unsqueeze(2), lambda t: t.unsqueeze(1), (2, 3)),
    (Transpose([(1, 3), (2, 3)]), lambda t: t.transpose(0, 2).transpose(1, 2), (2, 3, 4)),
    (Contiguous(), lambda t: t.transpose(0, 1).contiguous().transpose(0, 1), (3, 4)),
    (Select(2, 3), lambda t: t.select(1, 2), (2, 4, 3)),
    (Select(-1, -2), lambda t: t.select(-1, -2), (2, 4, 3)),
    (Narrow(2, 2, 3), lambda t: t.narrow(1, 1, 3), (3, 5)),
    (Narrow(2, 2, -1), lambda t: t.narrow(1, 1, 4), (3, 5)),
    (Replicate(3, 1, 1), lambda t: t.unsqueeze(1).expand(2, 3, 4), (2, 4)),
    (Replicate(3, 2, 1), lambda t: t.unsqueeze(2).expand(2, 4, 3), (2, 4)),
    (Tile(2, 3), lambda t: t.repeat(1, 3, 1), (2, 3, 2)),
    (Reverse(2), lambda t: torch.flip(t, [1]), (2, 3, 4)),
    (Max(2), lambda t: t.max(1).values, (3, 5)),
    (Max(2, 2), lambda t: t.max(2).values, (2, 3, 4)),
    (Max(1), lambda t: t.max(0).values.reshape(1), (5,)),
    (Min(-1), lambda t: t.min(-1).values, (3, 5)),
    (Sum(2), lambda t: t.sum(1), (3, 4)),
    (Sum(1, 1, True, False), lambda t: t.mean(1, keepdim=True), (3, 4)),
    (Mean(2, 2), lambda t: t.mean(2), (2, 3, 4)),
    (Mean(), lambda t: t.mean(0), (3, 4)),
])
def test_matches_torch(layer, fn, shape):
    assert_parity(layer, fn, f32(shape, seed=5))


@pytest.mark.oracle
def test_index_matches_torch():
    x, idx = f32((4, 3), 6), np.array([3, 0, 3, 1])
    assert_parity(Index(1), lambda t: torch.index_select(t[0], 0, t[1]), [x, idx])
    assert_parity(Index(2, False), lambda t: torch.index_select(t[0], 1, t[1] - 1),
                  [x, np.array([1, 3])])


@pytest.mark.oracle
def test_masking_matches_torch():
    x = f32((3, 4, 2), 7)
    x[0, 1] = 1.5
    x[2, 0] = 1.5
    assert_parity(Masking(1.5), lambda t: t * (t != 1.5).any(-1, keepdim=True), x)


# ---------------------------------------------------------------------- BigDL semantics

def test_shape_rules():
    x = np.zeros((2, 1, 3, 1), np.float32)
    assert Squeeze().forward(x).shape == (2, 3)
    assert Squeeze(3).forward(x).shape == (2, 1, 3, 1)        # size 3: kept, as Torch
    assert Squeeze(None, 3).forward(np.zeros((1, 1, 3, 1))).shape == (1, 3)   # batch kept
    assert Unsqueeze(1, 2).forward(np.zeros((5, 2, 3))).shape == (5, 1, 2, 3)
    assert Unsqueeze(1, 2).forward(np.zeros((2, 3))).shape == (1, 2, 3)
    assert Unsqueeze(2, 1).forward(np.zeros((4, 5, 3))).shape == (4, 5, 3, 1)   # 2 batch dims
    assert InferReshape([0, -1]).forward(np.zeros((3, 2, 2))).shape == (3, 4)
    assert InferReshape([2, -1], True).forward(np.zeros((5, 12))).shape == (5, 2, 6)
    assert Replicate(3).forward(np.zeros((2, 4))).shape == (3, 2, 4)
    assert Replicate(3, 1, 1).forward(np.zeros((2, 4))).shape == (2, 3, 4)
    assert Tile(1, 3).forward(np.zeros((2, 3))).shape == (6, 3)
    assert Select(1, 2).forward(np.arange(4.0)).shape == ()
    assert Max(1).forward(np.arange(4.0)).shape == (1,)
    assert Sum(1).forward(np.arange(4.0)).shape == (1,)
    assert Sum(2, squeeze=False).forward(np.zeros((3, 4))).shape == (3, 1)


def test_views_do_not_copy():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for layer in [Select(2, 1), Narrow(3, 2, 2), Transpose([(1, 2)]), Squeeze(), Reverse(1),
                  InferReshape([0, -1]), Unsqueeze(1), Replicate(2)]:
        assert np.shares_memory(layer.forward(x), x), layer
    assert not np.shares_memory(Contiguous().forward(x), x)


def test_tile_and_reverse_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(Tile(1, 2).forward(x), [[1, 2], [3, 4], [1, 2], [3, 4]])
    np.testing.assert_array_equal(Reverse(2).forward(x), [[2, 1], [4, 3]])


def test_max_gradient_goes_to_the_first_maximum():
    layer = Max(2)
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])
    np.testing.assert_array_equal(layer.forward(x), [3, 2])
    np.testing.assert_array_equal(layer.backward(x, np.array([1.0, 1.0])), [[0, 1, 0], [1, 0, 0]])


def test_masking_zeroes_padded_steps_in_a_model():
    x = np.ones((2, 3, 4), np.float32)
    x[1, 2] = 0
    model = Sequential().add(Masking()).add(Sum(3))
    np.testing.assert_array_equal(model.forward(x), [[4, 4, 4], [4, 4, 0]])


def test_index_one_based_and_range_check():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(Index(1, False).forward([x, np.array([3.0, 1.0])]),
                                  [[4, 5], [0, 1]])
    with pytest.raises(LayerError, match=r"Index\[i\]: expected indices in 1 \.\. 3, got \[4\]"):
        Index(1, False).set_name("i").forward([x, np.array([4])])


def test_echo_prints_gradient_too(capsys):
    layer = Echo().set_name("probe")
    x = np.zeros((2, 3))
    layer.forward(x)
    layer.backward(x, x)
    out = capsys.readouterr().out
    assert "Echo[probe] : activation size is (2, 3)" in out
    assert "Echo[probe] : gradient size is (2, 3)" in out


def test_sum_in_a_model_reduces_per_sample():
    model = Sequential().add(Linear(3, 4)).add(Sum(1, 1))
    assert model.forward(np.zeros((5, 3), np.float32)).shape == (5,)


# ---------------------------------------------------------------------- config, repr, errors

CONFIG_LAYERS = [InferReshape([4, 0, -1], True), Squeeze(), Squeeze([1, 3], 2), Unsqueeze(2, 1),
                 Transpose([(1, 2), (2, 3)]), Contiguous(), Select(2, -1), Narrow(1, 2, -1),
                 Index(2, False), Replicate(3, 2, 1), Tile(2, 3), Reverse(2), Masking(-1.0),
                 Echo(), Max(2, 1), Min(), Sum(2, 1, True, False), Mean(-1)]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=lambda m: type(m).__name__)
def test_config_round_trip(layer):
    assert_config_round_trip(layer)


def test_reprs():
    assert [repr(m) for m in CONFIG_LAYERS[:6]] == [
        "nn.InferReshape(4x0x-1)", "nn.Squeeze", "nn.Squeeze(1, 3)", "nn.Unsqueeze(2)",
        "nn.Transpose(1 <-> 2, 2 <-> 3)", "nn.Contiguous"]
    assert repr(Narrow(1, 2, -1)) == "nn.Narrow(1, 2, -1)"


@pytest.mark.parametrize("layer, bad, message", [
    (InferReshape([5, -1]), np.zeros((3, 4)),
     r"InferReshape\[s\]: expected input a tensor that reshapes to \(5, -1\), got \(3, 4\)"),
    (Squeeze(3), np.zeros((2, 1)), r"Squeeze\[s\]: expected input a tensor with dimensions \[3\]"),
    (Unsqueeze(4), np.zeros((2, 1)),
     r"Unsqueeze\[s\]: expected input a tensor with at least 3 dimensions, got \(2, 1\)"),
    (Unsqueeze(1, 3), np.zeros((2, 1)),
     r"Unsqueeze\[s\]: expected input a tensor with at least 3 dimensions, got \(2, 1\)"),
    (Transpose([(1, 3)]), np.zeros((2, 1)), r"Transpose\[s\]: .* got \(2, 1\)"),
    (Contiguous(), [np.zeros(2)], r"Contiguous\[s\]: expected input a tensor, got \[\(2\)\]"),
    (Select(2, 5), np.zeros((2, 4)),
     r"Select\[s\]: expected input a tensor with an index 5 in dimension 2, got \(2, 4\)"),
    (Select(3, 1), np.zeros((2, 4)), r"Select\[s\]: expected input a tensor with a dimension 3"),
    (Narrow(2, 3, 3), np.zeros((2, 4)), r"Narrow\[s\]: expected input a tensor with indices 3 "),
    (Index(1), np.zeros((2, 4)), r"Index\[s\]: expected input a table \[tensor, index vector\]"),
    (Index(1), [np.zeros((2, 4)), np.array([0.5])], r"Index\[s\]: expected input integer index"),
    (Replicate(2, 4), np.zeros((2, 4)),
     r"Replicate\[s\]: expected input a tensor with at least 3 dimensions"),
    (Tile(3), np.zeros((2, 4)), r"Tile\[s\]: expected input a tensor with a dimension 3"),
    (Reverse(3), np.zeros((2, 4)), r"Reverse\[s\]: expected input a tensor with a dimension 3"),
    (Masking(), np.zeros(4), r"Masking\[s\]: expected input \(N, T, \.\.\.\), got \(4\)"),
    (Max(3), np.zeros((2, 4)),
     r"Max\[s\]: expected input a tensor with a dimension 3 \(n_input_dims -2147483648\), "
     r"got \(2, 4\)"),
    (Min(1), np.float64(2.0), r"Min\[s\]: expected input a tensor with at least one dimension"),
    (Sum(3, 2), np.zeros((2, 4)), r"Sum\[s\]: expected input a tensor with a dimension 3 "
                                  r"\(n_input_dims 2\), got \(2, 4\)"),
    (Mean(), [np.zeros(2)], r"Mean\[s\]: expected input a tensor with at least one dimension"),
])
def test_bad_input_names_layer(layer, bad, message):
    layer.set_name("s")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


@pytest.mark.parametrize("layer", [Select(2, 1), Narrow(2, 1, 2), Max(2), Sum(2), Tile(1),
                                   Transpose([(1, 2)]), Masking()])
def test_bad_grad_output_is_reported(layer):
    x = np.ones((2, 6), np.float32)
    y = layer.forward(x)
    bad = np.ones(tuple(s + 1 for s in y.shape), np.float32)
    with pytest.raises(LayerError, match=r"expected gradOutput of the output's shape"):
        layer.backward(x, bad)


@pytest.mark.parametrize("make, message", [
    (lambda: InferReshape([2, -1, -1]), r"InferReshape: size must be .* got \[2, -1, -1\]"),
    (lambda: InferReshape([-2]), r"InferReshape: size must be .* got \[-2\]"),
    (lambda: Squeeze([0]), r"Squeeze: dim must be a non-zero int .* got \[0\]"),
    (lambda: Unsqueeze(0), r"Unsqueeze: pos must be 1-based \(>= 1\), got 0"),
    (lambda: Transpose([(1,)]), r"Transpose: permutations must be .* got \[\(1,\)\]"),
    (lambda: Select(0, 1), r"Select: dim must be 1-based .* got 0"),
    (lambda: Narrow(1, 0), r"Narrow: offset must be 1-based .* got 0"),
    (lambda: Index(1.5), r"Index: dimension must be 1-based .* got 1.5"),
    (lambda: Replicate(0), r"Replicate: n_features must be a positive int, got 0"),
    (lambda: Tile(1, 0), r"Tile: copies must be a positive int, got 0"),
    (lambda: Reverse(0), r"Reverse: dimension must be 1-based .* got 0"),
    (lambda: Masking("0"), r"Masking: mask_value must be a number, got '0'"),
    (lambda: Max(0), r"Max: dim must be 1-based .* got 0"),
    (lambda: Sum(1, "1"), r"Sum: n_input_dims must be an int, got '1'"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("layer, shape", [
    (View([12]), (5, 3, 4)),
    (View([-1, 6]), (2, 3, 4)),
    (View([4, 3], num_input_dims=2), (2, 3, 4)),
    (Reshape([2, 6]), (5, 12)),
    (Reshape([3, 4]), (12,)),
    (Identity(), (3, 4)),
])
def test_shape_layer_gradients(layer, shape):
    check_module_gradients(layer, normal(shape, seed=5))


@pytest.mark.oracle
def test_shape_layers_match_torch():
    x = f32((4, 3, 2, 2), seed=4)
    assert_torch_parity(View([12]), lambda t: t.view(4, 12), x)
    assert_torch_parity(View([-1, 3]), lambda t: t.reshape(-1, 3), x)
    assert_torch_parity(Reshape([12]), lambda t: t.reshape(4, 12), x)
    assert_torch_parity(Reshape([2, 24]), lambda t: t.reshape(2, 24), x.reshape(48),)
    assert_torch_parity(Identity(), lambda t: t * 1, x)


# ---------------------------------------------------------------------- shape semantics (BigDL)

def test_view_batch_inference_as_torch():
    assert View([12]).forward(np.zeros((5, 3, 4))).shape == (5, 12)
    assert View([12]).forward(np.zeros((3, 4))).shape == (12,)
    assert View([-1]).forward(np.zeros((5, 3, 4))).shape == (60,)
    assert View([3, 4]).forward(np.zeros(12)).shape == (3, 4)
    # num_input_dims: the leading dims beyond it are the batch, even with a -1 or a batch of 1
    assert View([-1], num_input_dims=3).forward(np.zeros((2, 3, 4, 5))).shape == (2, 60)
    assert View([60], num_input_dims=3).forward(np.zeros((1, 3, 4, 5))).shape == (1, 60)
    assert View([60], num_input_dims=3).forward(np.zeros((3, 4, 5))).shape == (60,)
    assert View(12).forward(np.zeros((2, 12))).shape == (2, 12)


def test_view_shares_memory_with_input():
    x = np.zeros((4, 6), np.float32)
    assert np.shares_memory(View([2, 3]).forward(x), x)


def test_reshape_batch_mode_rules():
    x = np.arange(24, dtype=np.float32)
    assert Reshape([2, 12]).forward(x).shape == (2, 12)                  # no batch
    assert Reshape([1, 2, 2]).forward(x.reshape(6, 4)).shape == (6, 1, 2, 2)   # batch inferred
    assert Reshape([4]).forward(x[:4].reshape(1, 4)).shape == (1, 4)     # first dim 1: a batch
    assert Reshape([2, 2]).forward(x[:4].reshape(1, 4)).shape == (1, 2, 2)
    assert Reshape([4], batch_mode=False).forward(x[:4].reshape(1, 4)).shape == (4,)
    assert Reshape([2, 12], batch_mode=True).forward(x.reshape(1, 24)).shape == (1, 2, 12)
    lenet_in = Reshape([1, 28, 28])
    for shape in [(3, 784), (3, 28, 28), (3, 1, 28, 28), (1, 784)]:
        assert lenet_in.forward(np.zeros(shape, np.float32)).shape[1:] == (1, 28, 28)


# ---------------------------------------------------------------------- ExpandSize
@pytest.mark.oracle
def test_expand_size_matches_torch_expand():
    x = f32((3, 1, 4, 1), seed=4)
    torch_parity(ExpandSize([3, 5, -1, 2]), lambda t: t.expand(3, 5, 4, 2), x)
    check_module_gradients(ExpandSize([-1, 2, 4, 3]).double(), normal((3, 1, 4, 1), seed=5))


def test_expand_size_errors_and_config():
    with pytest.raises(LayerError, match=r"ExpandSize\[ex\]: expected input \(3 or 1, \*\), "
                                         r"got \(2, 4\)"):
        ExpandSize([3, -1]).set_name("ex").forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"sizes must be .* got \[0, 2\]"):
        ExpandSize([0, 2])
    config_round_trip(ExpandSize([2, -1]), f32((1, 3), seed=1))

