"""Table layers: gradients (float64), PyTorch parity, BigDL semantics, config, errors."""
import numpy as np
import pytest
from oracle import torch

from helpers import (assert_config_round_trip, assert_parity, assert_torch_parity,
                     check_module_gradients, config_round_trip, f32, normal, torch_parity,
                     with_fixed)
from workbench.nn import (BifurcateSplitTable, Bottle, CAddTable, CAveTable, CDivTable, CMaxTable,
                          CMinTable, CMulTable, CSubTable, FlattenTable, Identity,
                          JoinTable, LayerError, Linear, MapTable, MaskedSelect, MixtureTable,
                          NarrowTable, Pack, ReLU, SelectTable, Sequential, SplitTable,
                          TableOperation, Tanh)


def tables(shapes, seed=0):
    return [normal(s, seed + i) for i, s in enumerate(shapes)]


def away_from_zero(shape, seed=0):
    x = normal(shape, seed)
    return np.sign(x) * (0.5 + np.abs(x))


# ---------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("layer", [CAveTable(), CMulTable(), CMaxTable(), CMinTable()],
                         ids=repr)
@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (3, 4), (3, 4)],
                                    [(3, 4), (1, 4)], [(2, 3, 4), (4,), (3, 1)]])
def test_elementwise_table_gradients(layer, shapes):
    check_module_gradients(layer, tables(shapes, seed=1))


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(2, 3, 4), (4,)], [(3, 1), (1, 5)]])
def test_csub_cdiv_gradients(shapes):
    check_module_gradients(CSubTable(), tables(shapes, seed=2))
    check_module_gradients(CDivTable(), [normal(shapes[0], 3), away_from_zero(shapes[1], 4)])


def test_cmultable_gradient_with_zeros():
    a, b, c = normal((3, 4), 5), normal((3, 4), 6), normal((3, 4), 7)
    a[0, :] = 0
    b[1, 1] = 0
    check_module_gradients(CMulTable(), [a, b, c])


@pytest.mark.parametrize("layer, shape", [
    (SplitTable(2), (3, 4, 2)),
    (SplitTable(1, 1), (3, 4)),        # batch of vectors: splits the features
    (SplitTable(1, 2), (2, 3, 4)),     # batch of (T, D): splits the T steps
    (SplitTable(-1), (2, 3)),
])
def test_splittable_gradients(layer, shape):
    check_module_gradients(layer, normal(shape, seed=8))


@pytest.mark.parametrize("dimension", [1, 2, 3, -1])
def test_pack_gradients(dimension):
    check_module_gradients(Pack(dimension), tables([(2, 3)] * 3, seed=9))


def test_pack_single_tensor_gradient():
    check_module_gradients(Pack(1), normal((2, 3), seed=10))


@pytest.mark.parametrize("layer", [SelectTable(2), SelectTable(-1), SelectTable(1)], ids=repr)
def test_selecttable_gradients(layer):
    x = [normal((2, 3), 11), [normal((4,), 12), normal((1, 2), 13)], normal((3,), 14)]
    check_module_gradients(layer, x)


@pytest.mark.parametrize("layer", [NarrowTable(2, 2), NarrowTable(1), NarrowTable(2, -1),
                                   NarrowTable(1, -2)], ids=repr)
def test_narrowtable_gradients(layer):
    x = [normal((2, 3), 15), [normal((4,), 16)], normal((3,), 17), normal((2,), 18)]
    check_module_gradients(layer, x)


def test_flattentable_gradients():
    x = [[normal((2,), 19), [normal((3, 1), 20)]], normal((2, 2), 21), [[normal((1,), 22)]]]
    check_module_gradients(FlattenTable(), x)


@pytest.mark.parametrize("gater_shape, expert_shapes, dim", [
    ((4, 3), [(4, 5)] * 3, None),          # batch, table of experts
    ((4, 3), [(4, 2, 5)] * 3, None),
    ((3,), [(5,)] * 3, None),              # one example
    ((3,), [(2, 5)] * 3, None),
])
def test_mixturetable_gradients_table_experts(gater_shape, expert_shapes, dim):
    x = [normal(gater_shape, 23), tables(expert_shapes, seed=24)]
    check_module_gradients(MixtureTable(), x)


@pytest.mark.parametrize("gater_shape, experts_shape, layer", [
    ((4, 3), (4, 3, 5), MixtureTable()),       # default: experts along dimension 2
    ((4, 3), (4, 2, 3), MixtureTable(3)),
    ((3,), (3, 5), MixtureTable()),            # one example: experts along dimension 1
    ((3,), (5, 3), MixtureTable(2)),
])
def test_mixturetable_gradients_tensor_experts(gater_shape, experts_shape, layer):
    check_module_gradients(layer, [normal(gater_shape, 25), normal(experts_shape, 26)])


def test_maskedselect_gradients():
    mask = (normal((3, 4), 27) > 0).astype(np.float64)
    check_module_gradients(with_fixed(MaskedSelect(), mask), normal((3, 4), 28))


def test_maptable_gradients_share_parameters():
    layer = MapTable(Sequential().add(Linear(3, 2)).add(Tanh())).double()
    check_module_gradients(layer, tables([(4, 3), (2, 3), (3,)], seed=29))


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 2, 3, 4), (5, 4)])
def test_bottle_gradients(shape):
    check_module_gradients(Bottle(Linear(4, 3)).double(), normal(shape, 30))


# ---------------------------------------------------------------------- PyTorch parity (float32)

@pytest.mark.oracle
def test_elementwise_tables_match_torch():
    xs = [f32((3, 4), i) for i in range(3)]
    assert_parity(CAveTable(), lambda t: (t[0] + t[1] + t[2]) / 3, xs)
    assert_parity(CMulTable(), lambda t: t[0] * t[1] * t[2], xs)
    assert_parity(CMaxTable(), lambda t: torch.maximum(torch.maximum(t[0], t[1]), t[2]), xs)
    assert_parity(CMinTable(), lambda t: torch.minimum(torch.minimum(t[0], t[1]), t[2]), xs)
    bc = [f32((2, 3, 4), 4), f32((3, 1), 5)]
    assert_parity(CSubTable(), lambda t: t[0] - t[1], bc)
    assert_parity(CMulTable(), lambda t: t[0] * t[1], bc)
    assert_parity(CMaxTable(), lambda t: torch.maximum(t[0], t[1]), bc)
    div = [f32((3, 4), 6), f32((3, 4), 7) + 3]
    assert_parity(CDivTable(), lambda t: t[0] / t[1], div, rtol=1e-4)


@pytest.mark.oracle
def test_split_and_pack_match_torch():
    x = f32((2, 3, 4), 8)
    assert_parity(SplitTable(2), lambda t: torch.unbind(t, 1), x)
    assert_parity(SplitTable(2, 2), lambda t: torch.unbind(t, 2), x)
    xs = [f32((2, 3), 9 + i) for i in range(4)]
    assert_parity(Pack(1), lambda t: torch.stack(t, 0), xs)
    assert_parity(Pack(3), lambda t: torch.stack(t, 2), xs)


@pytest.mark.oracle
def test_mixturetable_matches_torch():
    gater = torch.softmax(torch.from_numpy(f32((4, 3), 10)), 1).numpy()
    experts = [f32((4, 5), 11 + i) for i in range(3)]
    assert_parity(MixtureTable(),
                  lambda t: (t[0][:, :, None] * torch.stack(t[1], 1)).sum(1), [gater, experts])
    stacked = f32((4, 3, 5), 14)
    assert_parity(MixtureTable(), lambda t: (t[0][:, :, None] * t[1]).sum(1), [gater, stacked])


@pytest.mark.oracle
def test_maskedselect_matches_torch():
    x, mask = f32((3, 4), 15), (f32((3, 4), 16) > 0).astype(np.float32)
    assert_parity(MaskedSelect(), lambda t: torch.masked_select(t[0], t[1] != 0), [x, mask])


@pytest.mark.oracle
def test_maptable_matches_torch_linear_on_each_element():
    layer = MapTable(Linear(3, 2))
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer[0].weight))
        lin.bias.copy_(torch.from_numpy(layer[0].bias))
    xs = [f32((4, 3), 17), f32((2, 3), 18), f32((5, 3), 19)]
    assert_parity(layer, lambda t: [lin(v) for v in t], xs,
                  params=lambda: [(layer[0].grad_weight, lin.weight),
                                  (layer[0].grad_bias, lin.bias)])


@pytest.mark.oracle
def test_bottle_matches_torch_linear_on_3d_input():
    layer = Bottle(Linear(4, 3))
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer[0].weight))
        lin.bias.copy_(torch.from_numpy(layer[0].bias))
    assert_parity(layer, lin, f32((2, 5, 4), 20),
                  params=lambda: [(layer[0].grad_weight, lin.weight),
                                  (layer[0].grad_bias, lin.bias)])


# ---------------------------------------------------------------------- BigDL semantics

def test_split_and_select_shapes():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    parts = SplitTable(1, 2).forward(x)
    assert len(parts) == 3 and parts[0].shape == (2, 4)
    np.testing.assert_array_equal(parts[1], x[:, 1])
    assert len(SplitTable(1, 2).forward(x[0])) == 3          # one sample: same split
    assert len(SplitTable(1).forward(x)) == 2
    assert Pack(-1).forward([x, x]).shape == (2, 3, 2, 4)     # BigDL: ndim + dimension + 1
    a, b, c = [np.full((2,), v, np.float32) for v in (1, 2, 3)]
    assert SelectTable(-1).forward([a, b, c]) is c
    assert SelectTable(2).forward([a, [b, c]])[1] is c
    assert [t[0] for t in NarrowTable(2, -1).forward([a, b, c])] == [2, 3]
    assert [t[0] for t in NarrowTable(1, 2).forward([a, b, c])] == [1, 2]
    assert [t[0] for t in FlattenTable().forward([a, [[b], c]])] == [1, 2, 3]


def test_selecttable_zero_gradients_for_other_elements():
    x = [np.ones((2, 3)), [np.ones(4), np.ones((1, 2))]]
    layer = SelectTable(1)
    layer.forward(x)
    g = layer.backward(x, np.full((2, 3), 5.0))
    np.testing.assert_array_equal(g[0], 5)
    assert [t.shape for t in g[1]] == [(4,), (1, 2)] and all(not t.any() for t in g[1])


def test_cmaxtable_gradient_goes_to_the_first_maximum_on_ties():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    layer = CMaxTable()
    np.testing.assert_array_equal(layer.forward([a, b]), [1, 5, 3])
    ga, gb = layer.backward([a, b], np.ones(3))
    np.testing.assert_array_equal(ga, [1, 0, 1])
    np.testing.assert_array_equal(gb, [0, 1, 0])


def test_maskedselect_selects_in_row_major_order():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    mask = np.array([[1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(MaskedSelect().forward([x, mask]), [0, 2, 4])


def test_maptable_replicas_share_parameters_after_get_parameters():
    layer = MapTable(Linear(3, 2))
    w, g = layer.get_parameters()
    assert w.size == 8                          # one Linear, whatever the table length
    xs = [f32((2, 3), 21), f32((2, 3), 22)]
    out = [o.copy() for o in layer.forward(xs)]
    w[:] = 0
    assert all(not o.any() for o in layer.forward(xs))     # replicas see the new weights
    assert not np.allclose(out[0], 0)
    layer.zero_grad_parameters()
    layer.backward(xs, [np.ones((2, 2), np.float32)] * 2)
    np.testing.assert_allclose(g[6:], 4)        # bias gradient: 2 rows x 2 elements


def test_maptable_outputs_do_not_alias():
    layer = MapTable(ReLU())
    xs = [np.ones((2, 2), np.float32), 2 * np.ones((2, 2), np.float32)]
    a, b = layer.forward(xs)
    assert a is not b and a[0, 0] == 1 and b[0, 0] == 2


def test_maptable_evaluate_reaches_replicas():
    from workbench.nn import Dropout
    layer = MapTable(Dropout(0.5))
    xs = [np.ones((20, 20), np.float32)] * 3
    layer.forward(xs)
    layer.evaluate()
    assert all(np.array_equal(o, xs[0]) for o in layer.forward(xs))


def test_bottle_folds_leading_dimensions():
    layer = Bottle(Linear(4, 3), 2, 2)
    x = f32((2, 5, 6, 4), 23)
    y = layer.forward(x)
    assert y.shape == (2, 5, 6, 3)
    np.testing.assert_allclose(y[1, 2], layer[0].forward(x[1, 2]), rtol=1e-6)


# ---------------------------------------------------------------------- config, repr, errors

CONFIG_LAYERS = [CAveTable(), CSubTable(), CMulTable(), CDivTable(), CMaxTable(), CMinTable(),
                 SplitTable(2, 1), Pack(2), SelectTable(-1), NarrowTable(2, -1), FlattenTable(),
                 MixtureTable(), MixtureTable(3), MaskedSelect(), MapTable(Linear(3, 2)),
                 MapTable(), Bottle(Linear(4, 3), 2, 2)]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=lambda m: type(m).__name__)
def test_config_round_trip(layer):
    again = assert_config_round_trip(layer)
    assert again.get_weights() == [] or len(again.get_weights()) == len(layer.get_weights())


def test_maptable_config_keeps_the_inner_module_name():
    layer = MapTable(Linear(3, 2).set_name("shared"))
    again = assert_config_round_trip(layer)
    assert again[0].name() == "shared"
    assert "module" not in again.get_config()["args"]


def test_reprs():
    assert repr(SplitTable(2, 1)) == "nn.SplitTable(2, 1)"
    assert repr(NarrowTable(2, -1)) == "nn.NarrowTable(2, -1)"
    assert repr(MapTable(Linear(3, 2))) == "nn.MapTable {\n  nn.Linear(3 -> 2)\n}"
    assert repr(Bottle(Identity())) == "nn.Bottle(2, 2) {\n  nn.Identity\n}"


@pytest.mark.parametrize("layer, bad, message", [
    (CSubTable(), [np.zeros((2, 3))] * 3,
     r"CSubTable\[t\]: expected input a table of 2 tensors of one \(broadcastable\) shape, "
     r"got \[\(2, 3\), \(2, 3\), \(2, 3\)\]"),
    (CMulTable(), [np.zeros((2, 3)), np.zeros((2, 4))],
     r"CMulTable\[t\]: expected input a table of tensors .* got \[\(2, 3\), \(2, 4\)\]"),
    (CAveTable(), np.zeros(3), r"CAveTable\[t\]: expected input a table .* got \(3\)"),
    (CDivTable(), [np.zeros(2)], r"CDivTable\[t\]: .* got \[\(2\)\]"),
    (CMaxTable(), [np.zeros((2, 3)), np.zeros(4)], r"CMaxTable\[t\]: .* got \[\(2, 3\), \(4\)\]"),
    (CMinTable(), "x", r"CMinTable\[t\]: .* got str"),
    (SplitTable(3), np.zeros((2, 3)),
     r"SplitTable\[t\]: expected input a tensor with a dimension 3 .*, got \(2, 3\)"),
    (Pack(1), [np.zeros((2, 3)), np.zeros((3, 2))],
     r"Pack\[t\]: expected input a table of tensors of one shape, got \[\(2, 3\), \(3, 2\)\]"),
    (SelectTable(3), [np.zeros(2)] * 2,
     r"SelectTable\[t\]: expected input a table with an element 3, got \[\(2\), \(2\)\]"),
    (NarrowTable(2, 3), [np.zeros(2)] * 3,
     r"NarrowTable\[t\]: expected input a table with elements 2 .. 4, got \[\(2\), \(2\), \(2\)\]"),
    (FlattenTable(), np.zeros(2), r"FlattenTable\[t\]: expected input a \(nested\) table"),
    (MixtureTable(), [np.zeros((4, 3)), [np.zeros((4, 5))] * 2],
     r"MixtureTable\[t\]: expected input 3 experts of one shape with 4 rows, "
     r"got \[\(4, 3\), \[\(4, 5\), \(4, 5\)\]\]"),
    (MixtureTable(), [np.zeros((4, 3)), np.zeros((4, 2, 5))],
     r"MixtureTable\[t\]: expected input experts with 3 entries along dimension 2"),
    (MaskedSelect(), [np.zeros((2, 3)), np.zeros((3, 2))],
     r"MaskedSelect\[t\]: expected input a table \[tensor, mask\] of one shape"),
    (MapTable(Linear(3, 2)), np.zeros((2, 3)), r"MapTable\[t\]: expected input a table"),
    (Bottle(Linear(4, 3), 3), np.zeros((2, 4)),
     r"Bottle\[t\]: expected input a tensor with at least 3 dimensions, got \(2, 4\)"),
])
def test_bad_input_names_layer(layer, bad, message):
    layer.set_name("t")
    with pytest.raises(LayerError, match=message):
        layer.forward(bad)


def test_inner_layer_reports_its_own_bad_input():
    with pytest.raises(LayerError, match=r"Linear\[inner\]: expected input \(N, 3\), got \(2, 4\)"):
        MapTable(Linear(3, 2).set_name("inner")).forward([np.zeros((2, 3)), np.zeros((2, 4))])


def test_table_grad_output_is_checked():
    layer = SplitTable(1)
    x = np.zeros((2, 3), np.float32)
    layer.forward(x)
    with pytest.raises(LayerError, match=r"SplitTable: expected gradOutput of the output's "
                                         r"shape \[\(3\), \(3\)\], got \[\(3\)\]"):
        layer.backward(x, [np.zeros(3, np.float32)])
    with pytest.raises(LayerError, match=r"MapTable: backward called before forward"):
        MapTable(Linear(3, 2)).backward([x], [x])


@pytest.mark.parametrize("make, message", [
    (lambda: SplitTable(0), r"SplitTable: dimension must be 1-based .* got 0"),
    (lambda: SelectTable(0), r"SelectTable: index must be 1-based .* got 0"),
    (lambda: NarrowTable(0), r"NarrowTable: offset must be 1-based \(>= 1\), got 0"),
    (lambda: NarrowTable(1, 0), r"NarrowTable: length must be a non-zero int, got 0"),
    (lambda: Pack("1"), r"Pack: dimension must be 1-based \(or negative\), got '1'"),
    (lambda: MixtureTable(0), r"MixtureTable: dim must be 1-based \(>= 1\), got 0"),
    (lambda: Bottle(Linear(2, 2), 0), r"Bottle: n_input_dim must be a positive int, got 0"),
    (lambda: MapTable(Linear(2, 2)).add(Linear(2, 2)), r"MapTable: holds a single module"),
])
def test_bad_arguments_quote_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (3, 4), (3, 4)],
                                    [(3, 4), (1, 4)], [(2, 3, 4), (4,)]])
def test_caddtable_gradients(shapes):
    xs = [normal(s, seed=i) for i, s in enumerate(shapes)]
    check_module_gradients(CAddTable(), xs)


@pytest.mark.parametrize("layer, shapes", [
    (JoinTable(2, 0), [(3, 2), (3, 4), (3, 1)]),
    (JoinTable(1, 0), [(2, 3), (4, 3)]),
    (JoinTable(1, 1), [(3, 2), (3, 5)]),      # batch: joins the feature dimension
    (JoinTable(1, 3), [(2, 3, 4, 5), (2, 1, 4, 5)]),   # channels of (N, C, H, W)
    (JoinTable(-1, 0), [(2, 3), (2, 2)]),
])
def test_jointable_gradients(layer, shapes):
    xs = [normal(s, seed=i + 10) for i, s in enumerate(shapes)]
    check_module_gradients(layer, xs)


@pytest.mark.oracle
def test_table_layers_match_torch():
    xs = [f32((3, 4), seed=i) for i in range(3)]
    assert_torch_parity(CAddTable(), lambda a, b, c: a + b + c, xs)
    ys = [f32((3, 4), seed=5), f32((1, 4), seed=6)]
    assert_torch_parity(CAddTable(), lambda a, b: a + b, ys)
    zs = [f32((2, 3, 4), seed=7), f32((2, 5, 4), seed=8)]
    assert_torch_parity(JoinTable(2, 0), lambda a, b: torch.cat([a, b], 1), zs)
    assert_torch_parity(JoinTable(1, 2), lambda a, b: torch.cat([a, b], 1), zs)
    assert_torch_parity(JoinTable(-1, 0), lambda a, b: torch.cat([a, b], -1),
                        [f32((2, 3), seed=9), f32((2, 1), seed=10)])


def test_jointable_batch_shift():
    a, b = np.zeros((3, 2), np.float32), np.ones((3, 5), np.float32)
    assert JoinTable(1, 1).forward([a, b]).shape == (3, 7)       # batch of vectors
    assert JoinTable(1, 1).forward([a[0], b[0]]).shape == (7,)   # single vectors
    assert JoinTable(1, 0).forward([a, a]).shape == (6, 2)


def test_caddtable_does_not_modify_inputs_and_gives_separate_grads():
    a, b = np.ones((2, 2), np.float32), np.full((2, 2), 2, np.float32)
    layer = CAddTable(inplace=True)
    np.testing.assert_array_equal(layer.forward([a, b]), 3)
    np.testing.assert_array_equal(a, 1)
    ga, gb = layer.backward([a, b], np.ones((2, 2), np.float32))
    assert ga is not gb


def test_table_layers_check_grad_output_and_call_order():
    xs = [np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)]
    with pytest.raises(LayerError, match=r"JoinTable: backward called before forward"):
        JoinTable(2, 0).backward(xs, np.ones((2, 5), np.float32))
    join = JoinTable(2, 0)
    join.forward(xs)
    with pytest.raises(LayerError, match=r"JoinTable: expected gradOutput of the output's shape "
                                         r"\(2, 5\), got \(2, 4\)"):
        join.backward(xs, np.ones((2, 4), np.float32))
    add = CAddTable()
    add.forward([xs[0], xs[0]])
    with pytest.raises(LayerError, match=r"CAddTable: expected gradOutput .* got \(3, 2\)"):
        add.backward([xs[0], xs[0]], np.ones((3, 2), np.float32))
    with pytest.raises(LayerError, match=r"Tanh: backward called before forward"):
        Tanh().backward(xs[0], xs[0])


# ---------------------------------------------------------------------- TableOperation
@pytest.mark.oracle
def test_table_operation_expands_the_smaller_input():
    a, b = f32((3, 4), seed=6), f32((1, 4), seed=7)
    torch_parity(TableOperation(CMulTable()), lambda x, y: x * y, [a, b])
    torch_parity(TableOperation(CAddTable()), lambda x, y: x + y, [f32((4,), seed=8), a])
    check_module_gradients(TableOperation(CMulTable()).double(),
                           [normal((2, 1, 3), seed=9), normal((2, 4, 3), seed=10)])


def test_table_operation_errors_and_config():
    with pytest.raises(LayerError, match=r"TableOperation\[op\]: expected input a table of two "
                                         r"tensors.*got \[\(2, 3\), \(4, 3\)\]"):
        TableOperation(CMulTable()).set_name("op").forward([np.ones((2, 3)), np.ones((4, 3))])
    with pytest.raises(ValueError, match="operation_layer must be a Module, got 3"):
        TableOperation(3)
    again = config_round_trip(TableOperation(CMulTable()), [f32((2, 3), seed=1),
                                                            f32((1, 3), seed=2)])
    assert isinstance(again[0], CMulTable)


# ---------------------------------------------------------------------- BifurcateSplitTable
@pytest.mark.oracle
def test_bifurcate_split_table_matches_torch_split():
    x = f32((2, 5, 3), seed=40)

    layer = BifurcateSplitTable(2)
    a, b = layer.forward(x)
    np.testing.assert_array_equal(a, x[:, :2])
    np.testing.assert_array_equal(b, x[:, 2:])
    tx = torch.from_numpy(x).requires_grad_()
    g = [f32(a.shape, seed=41), f32(b.shape, seed=42)]
    pa, pb = torch.split(tx, [2, 3], 1)
    ((pa * torch.from_numpy(g[0])).sum() + (pb * torch.from_numpy(g[1])).sum()).backward()
    np.testing.assert_array_equal(layer.backward(x, g), tx.grad.numpy())
    one = BifurcateSplitTable(-1).forward(np.ones((2, 1)))
    assert one[0].shape == (2, 0) and one[1].shape == (2, 1)
    check_module_gradients(BifurcateSplitTable(-1).double(), normal((2, 3, 4), seed=43))


def test_bifurcate_split_table_errors_and_config():
    with pytest.raises(LayerError, match=r"BifurcateSplitTable\[bst\]: expected input a tensor "
                                         r"with a dimension 3 of size >= 1, got \(2, 4\)"):
        BifurcateSplitTable(3).set_name("bst").forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="dimension is 1-based .* got 0"):
        BifurcateSplitTable(0)
    config_round_trip(BifurcateSplitTable(1), f32((4, 2), seed=1))

