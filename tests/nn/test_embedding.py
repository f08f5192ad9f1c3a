"""LookupTable, LookupTableSparse, SparseLinear, DenseToSparse, SparseJoinTable: gradients,
PyTorch parity, formats, errors."""
import numpy as np
import pytest
import scipy.sparse as sp
from oracle import F, torch

from helpers import check_module_gradients, config_round_trip, f32, normal, t64
from workbench import io
from workbench.nn import (Container, DenseToSparse, L2Regularizer, LayerError, LookupTable,
                          LookupTableSparse, Module, Reshape, Sequential, SparseJoinTable,
                          SparseLinear)


def close(a, b, tol=1e-10):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------------- LookupTable
def test_lookup_table_gradients_float64():
    layer = LookupTable(7, 3).double()
    ids = np.array([[0, 3, 3], [6, 1, 0]])
    check_module_gradients(layer, ids, check_input=False)
    assert not layer.backward(ids, np.ones((2, 3, 3))).any()  # indices get no gradient


@pytest.mark.oracle
@pytest.mark.parametrize("options", [
    dict(),
    dict(padding_value=2),
    dict(should_scale_grad_by_freq=True),
    dict(max_norm=1.5),
    dict(max_norm=2.0, norm_type=1.0),
])
def test_lookup_table_matches_torch_embedding(options):
    layer = LookupTable(8, 4, **options).double()
    ids = np.array([[1, 2, 2, 7], [2, 0, 5, 1]])
    g = normal((2, 4, 4), 1)
    weight = t64(layer.weight).requires_grad_()
    ref_weight = weight.detach().clone().requires_grad_()
    y = layer.forward(ids)
    layer.zero_grad_parameters()
    gi = layer.backward(ids, g)
    ty = F.embedding(torch.from_numpy(ids), ref_weight, padding_idx=options.get("padding_value"),
                     max_norm=options.get("max_norm"), norm_type=options.get("norm_type", 2.0),
                     scale_grad_by_freq=options.get("should_scale_grad_by_freq", False))
    ty.backward(t64(g))
    close(y, ty.detach().numpy())
    close(layer.weight, ref_weight.detach().numpy())  # max_norm renormalizes rows in place
    close(layer.grad_weight, ref_weight.grad.numpy())
    assert gi.shape == ids.shape and not gi.any()


def test_lookup_table_one_based_indices_and_float_ids():
    zero = LookupTable(5, 2)
    one = LookupTable(5, 2, 0.0, zero_based_index=False)  # BigDL: padding 0 means none
    one.set_weights(zero.get_weights())
    ids = np.array([0, 4, 2])
    np.testing.assert_array_equal(one.forward((ids + 1).astype(np.float32)), zero.forward(ids))
    one.backward((ids + 1).astype(np.float32), np.ones((3, 2), np.float32))
    assert one.grad_weight.sum() == 6  # no row treated as padding
    padded = LookupTable(5, 2, 3.0, zero_based_index=False)
    padded.forward(np.array([3, 1]))
    padded.backward(np.array([3, 1]), np.ones((2, 2), np.float32))
    assert not padded.grad_weight[2].any() and padded.grad_weight[0].all()


def test_lookup_table_in_a_model_with_regularizer_and_round_trip(tmp_path):
    model = Sequential().add(LookupTable(6, 3, None, 2.0, 2.0, True, L2Regularizer(0.5))
                             .set_name("emb")).add(Reshape([6]))
    ids = np.array([[0, 5], [2, 2]])
    y = model.forward(ids)
    model.backward(ids, np.ones_like(y))
    emb = model[0]
    assert np.allclose(emb.grad_weight[1], 0.5 * emb.weight[1])  # unused row: penalty only
    path = str(tmp_path / "emb.bigdl")
    io.save_model(model, path)
    loaded = io.load_model(path)
    assert loaded.get_config() == model.get_config() and repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.forward(ids), model.forward(ids))


def test_lookup_table_errors_name_the_layer():
    emb = LookupTable(5, 2).set_name("emb")
    with pytest.raises(LayerError, match=r"LookupTable\[emb\]: expected input \(N,\) or \(N, T\) "
                                         r"indices, got \(2, 3, 4\)"):
        emb.forward(np.zeros((2, 3, 4)))
    with pytest.raises(LayerError, match=r"index 5 at position 2 is out of range \[0, 4\] "
                                         r"for 5 rows \(indices look 1-based"):
        emb.forward(np.array([1, 3, 5]))
    with pytest.raises(LayerError, match="indexes must be whole numbers, got 1.5"):
        emb.forward(np.array([1.5]))
    with pytest.raises(LayerError, match=r"out of range \[1, 5\]"):
        LookupTable(5, 2, zero_based_index=False).forward(np.array([0, 1]))
    with pytest.raises(ValueError, match="LookupTable: n_output must be a positive int, got -2"):
        LookupTable(5, -2)
    with pytest.raises(ValueError, match="max_norm must be a number > 0 or None, got 0"):
        LookupTable(5, 2, max_norm=0)


# ---------------------------------------------------------------------- LookupTableSparse
class FixedInput(Container):
    """Runs its child on a fixed input (ids have no gradient to check)."""

    def __init__(self, layer, x):
        super().__init__()
        self.add(layer)
        self.x = x

    def update_output(self, input):
        return self[0].forward(self.x)

    def backward(self, input, grad_output):
        self[0].backward(self.x, grad_output)
        self.grad_input = np.zeros_like(input)
        return self.grad_input


IDS = np.array([[1, 4, -1], [3, -1, -1], [-1, -1, -1], [0, 0, 6]])  # -1: empty slot
WEIGHTS = np.array([[2.0, 0.5, 0.0], [1.0, 0, 0], [0, 0, 0], [0.25, 3.0, 1.5]])


def sparse_pair():
    """IDS / WEIGHTS as scipy matrices that keep the explicit zero-based id 0."""
    rows, cols = np.nonzero(IDS >= 0)
    ids = sp.csr_matrix((IDS[rows, cols], (rows, cols)), shape=IDS.shape)
    weights = sp.csr_matrix((WEIGHTS[rows, cols], (rows, cols)), shape=IDS.shape)
    return ids, weights


def reference(weight, combiner, weights=None, max_norm=-1.0):
    """Per-row combination written out with torch (autograd gives the weight gradient)."""
    rows = []
    for n in range(len(IDS)):
        keep = IDS[n] >= 0
        e = weight[torch.from_numpy(IDS[n][keep])]
        if max_norm > 0:
            norms = e.norm(dim=1, keepdim=True)
            e = e * torch.clamp(max_norm / norms, max=1.0)
        w = t64(weights[n][keep] if weights is not None else np.ones(keep.sum()))
        total = (e * w[:, None]).sum(0)
        if combiner == "mean" and keep.any():
            total = total / w.sum()
        if combiner == "sqrtn" and keep.any():
            total = total / torch.sqrt((w * w).sum())
        rows.append(total)
    return torch.stack(rows)


@pytest.mark.oracle
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("max_norm", [-1.0, 1.0])
def test_lookup_table_sparse_matches_torch(combiner, weighted, max_norm):
    layer = LookupTableSparse(7, 3, combiner, max_norm).double()
    g = normal((4, 3), 2)
    ids, weights = sparse_pair()
    inputs = [[ids, weights], [IDS, WEIGHTS]] if weighted else [ids, IDS]
    tw = t64(layer.weight).requires_grad_()
    ty = reference(tw, combiner, WEIGHTS if weighted else None, max_norm)
    ty.backward(t64(g))
    for x in inputs:
        layer.zero_grad_parameters()
        close(layer.forward(x), ty.detach().numpy())
        layer.backward(x, g)
        close(layer.grad_weight, tw.grad.numpy())


@pytest.mark.oracle
def test_lookup_table_sparse_matches_torch_embedding_bag_and_gradients():
    layer = LookupTableSparse(7, 3, "sum").double()
    rows, cols = np.nonzero(IDS >= 0)
    bag = torch.nn.EmbeddingBag(7, 3, mode="sum").double()
    with torch.no_grad():
        bag.weight.copy_(t64(layer.weight))
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum((IDS >= 0).sum(1))[:-1]]))
    ty = bag(torch.from_numpy(IDS[rows, cols]), offsets,
             per_sample_weights=t64(WEIGHTS[rows, cols]))
    close(layer.forward([IDS, WEIGHTS]), ty.detach().numpy())
    for combiner in ("mean", "sqrtn"):
        check_module_gradients(FixedInput(LookupTableSparse(7, 3, combiner, 0.8),
                                          [IDS, WEIGHTS]).double(), np.zeros(1), check_input=False)


def test_lookup_table_sparse_one_based_and_errors():
    layer = LookupTableSparse(10, 4, "mean", zero_based_index=False)
    layer.set_weights([np.arange(1, 41, dtype=np.float32).reshape(10, 4)])
    ids = np.array([[2, 4], [1, 0], [2, 0]])   # 0: empty slot with 1-based ids
    weights = np.array([[2.0, 0.5], [1.0, 0.0], [3.0, 0.0]])
    out = layer.forward([ids, weights])
    w = layer.weight
    close(out[0], (2 * w[1] + 0.5 * w[3]) / 2.5, 1e-6)
    close(out[1], w[0], 1e-6)
    close(out[2], w[1], 1e-6)
    with pytest.raises(LayerError, match=r"LookupTableSparse\[s\]: id 11 at position 1 is out "
                                         r"of range \[1, 10\]"):
        layer.set_name("s").forward(np.array([[2, 11]]))
    with pytest.raises(LayerError, match=r"LookupTableSparse\[s\]: expected input \(N, K\) ids"):
        layer.forward(np.array([1, 2]))
    with pytest.raises(LayerError, match="same sparsity pattern"):
        layer.forward([sp.csr_matrix(np.array([[1, 2]])), sp.csr_matrix(np.array([[1, 0]]))])
    with pytest.raises(ValueError, match="combiner must be one of .* got 'max'"):
        LookupTableSparse(10, 4, "max")


def test_lookup_table_sparse_round_trip(tmp_path):
    layer = LookupTableSparse(7, 3, "sqrtn", 2.0, L2Regularizer(0.1)).set_name("bag")
    path = str(tmp_path / "bag.bigdl")
    io.save_model(layer, path)
    loaded = io.load_model(path)
    assert loaded.get_config() == layer.get_config()
    np.testing.assert_array_equal(loaded.forward([IDS, WEIGHTS]), layer.forward([IDS, WEIGHTS]))


# ---------------------------------------------------------------------- SparseLinear
@pytest.mark.oracle
def test_sparse_linear_matches_torch_linear():
    dense = np.where(normal((5, 8), 3) > 0.6, normal((5, 8), 4), 0.0)
    layer = SparseLinear(8, 3, True, 6, 3).double()
    g = normal((5, 3), 5)
    tx = t64(dense).requires_grad_()
    tw, tb = t64(layer.weight).requires_grad_(), t64(layer.bias).requires_grad_()
    ty = F.linear(tx, tw, tb)
    ty.backward(t64(g))
    for x in (sp.csr_matrix(dense), sp.coo_matrix(dense), dense):
        layer.zero_grad_parameters()
        close(layer.forward(x), ty.detach().numpy())
        gi = layer.backward(x, g)
        close(gi, tx.grad.numpy()[:, 5:8])  # columns 6..8, 1-based
        close(layer.grad_weight, tw.grad.numpy())
        close(layer.grad_bias, tb.grad.numpy())
    plain = SparseLinear(8, 3).double()
    plain.forward(sp.csr_matrix(dense))
    assert plain.backward(sp.csr_matrix(dense), g) is None  # BigDL: no gradient by default


def test_sparse_linear_gradients_round_trip_and_errors(tmp_path):
    check_module_gradients(SparseLinear(6, 2, False, 1, 6).double(), normal((3, 6), 6))
    layer = SparseLinear(6, 2, False, 1, 6, L2Regularizer(0.2))
    layer.forward(normal((3, 6), 6))
    layer.backward(normal((3, 6), 6), np.zeros((3, 2)))
    np.testing.assert_allclose(layer.grad_weight, 0.2 * layer.weight, rtol=1e-6)
    path = str(tmp_path / "sl.bigdl")
    io.save_model(layer, path)
    loaded = io.load_model(path)
    x = sp.random(4, 6, density=0.4, random_state=0, format="csr")
    np.testing.assert_array_equal(loaded.forward(x), layer.forward(x))
    with pytest.raises(LayerError, match=r"SparseLinear\[sl\]: expected input \(N, 6\) sparse, "
                                         r"got \(4, 7\)"):
        layer.set_name("sl").forward(sp.random(4, 7, density=0.5, format="csr"))
    with pytest.raises(ValueError, match="columns 5 .. 8 exceed input_size 6"):
        SparseLinear(6, 2, True, 5, 4)
    with pytest.raises(ValueError, match="backwardStart must be a positive int or -1, got 0"):
        SparseLinear(6, 2, True, 0, 4)


class _Densify(Module):
    """Test-only: a sparse matrix back to a dense array (so the generic checks apply)."""

    def update_output(self, input):
        return input.toarray()

    def update_grad_input(self, input, grad_output):
        return grad_output


# ---------------------------------------------------------------------- sparse bridges
def test_dense_to_sparse_feeds_sparse_linear_and_passes_gradients():
    x = f32((3, 5), seed=26)
    x[np.abs(x) < 0.7] = 0
    layer = DenseToSparse()
    s = layer.forward(x)
    assert sp.issparse(s) and s.nnz == np.count_nonzero(x)
    np.testing.assert_array_equal(s.toarray(), x)
    lin = SparseLinear(5, 2)
    np.testing.assert_allclose(Sequential().add(DenseToSparse()).add(lin).forward(x),
                               x @ lin.weight.T + lin.bias, rtol=1e-6)
    g = f32((3, 5), seed=27)
    np.testing.assert_array_equal(layer.backward(x, sp.csr_matrix(g)), g)
    off = DenseToSparse(propagate_back=False)
    off.forward(x)
    assert not off.backward(x, g).any()
    check_module_gradients(Sequential().add(DenseToSparse()).add(_Densify()).double(),
                           normal((2, 4), seed=28))


def test_dense_to_sparse_errors_and_config():
    with pytest.raises(LayerError, match=r"DenseToSparse\[d2s\]: expected input \(N, D\) dense, "
                                         r"got \(2, 3, 4\)"):
        DenseToSparse().set_name("d2s").forward(np.ones((2, 3, 4)))
    again = config_round_trip(DenseToSparse(False))
    assert again.propagate_back is False


def test_sparse_join_table_joins_columns_and_rows():
    a = sp.random(3, 4, density=0.5, random_state=1, format="csr", dtype=np.float32)
    b = sp.random(3, 2, density=0.5, random_state=2, format="csr", dtype=np.float32)
    layer = SparseJoinTable(2)
    y = layer.forward([a, b])
    assert sp.issparse(y) and y.shape == (3, 6)
    np.testing.assert_array_equal(y.toarray(), np.concatenate([a.toarray(), b.toarray()], 1))
    g = f32((3, 6), seed=29)
    ga, gb = layer.backward([a, b], g)
    np.testing.assert_array_equal(ga, g[:, :4])
    np.testing.assert_array_equal(gb, g[:, 4:])
    c = np.arange(8, dtype=np.float32).reshape(2, 4)
    rows = SparseJoinTable(1).forward([a, c])
    np.testing.assert_array_equal(rows.toarray(), np.concatenate([a.toarray(), c]))
    model = Sequential().add(SparseJoinTable(2)).add(_Densify()).double()
    check_module_gradients(model, [normal((2, 3), seed=30), normal((2, 2), seed=31)])


def test_sparse_join_table_errors_and_config():
    a = sp.csr_matrix(np.ones((3, 2)))
    with pytest.raises(LayerError, match=r"SparseJoinTable\[sj\]: expected input a table of "
                                         r"2-D sparse matrices that agree in dimension 1"):
        SparseJoinTable(2).set_name("sj").forward([a, sp.csr_matrix(np.ones((2, 2)))])
    with pytest.raises(ValueError, match="dimension must be 1 or 2 .* got 3"):
        SparseJoinTable(3)
    config_round_trip(SparseJoinTable(2))

