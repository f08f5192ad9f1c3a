"""The remaining BigDL layers (workbench/nn/bigdl_extra.py, transformer.py, conv_map.py,
detection.py): NegativeEntropyPenalty, CrossProduct, ExpandSize, TableOperation,
BifurcateSplitTable, FeedForwardNetwork, Transformer, SpatialConvolutionMap, ConvLSTMPeephole3D,
RoiPooling, PriorBox, DetectionOutputSSD, Proposal, DenseToSparse, SparseJoinTable —
finite-difference gradients, PyTorch parity (or an independent formula where torch has no such
op), config round trips and errors naming the layer."""
import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from oracle import F, torch

from helpers import (check_module_gradients, check_penalty_gradients, config_round_trip, f32,
                    normal, t64, torch_parity)
from workbench.nn import (BifurcateSplitTable, CAddTable, CMulTable, ConvLSTMPeephole3D,
                          CrossProduct, DenseToSparse, DetectionOutputSSD, ExpandSize,
                          FeedForwardNetwork, LayerError, Module, NegativeEntropyPenalty,
                          PriorBox, Proposal, Recurrent, RoiPooling, Sequential, SparseJoinTable,
                          SparseLinear, SpatialConvolutionMap, TableOperation, Transformer,
                          random)


class _Densify(Module):
    """Test-only: a sparse matrix back to a dense array (so the generic checks apply)."""

    def update_output(self, input):
        return input.toarray()

    def update_grad_input(self, input, grad_output):
        return grad_output


# ---------------------------------------------------------------------- NegativeEntropyPenalty
@pytest.mark.oracle
def test_negative_entropy_penalty_gradient_and_torch_loss():
    layer = NegativeEntropyPenalty(0.3)
    p = torch.softmax(torch.from_numpy(f32((3, 5), seed=1)), dim=1).numpy()
    y = layer.forward(p)
    np.testing.assert_array_equal(y, p)
    tp = torch.from_numpy(p.astype(np.float64)).requires_grad_()
    loss = 0.3 * (tp * tp.log()).sum()
    g = f32((3, 5), seed=2)
    (loss + (tp * t64(g)).sum()).backward()
    np.testing.assert_allclose(layer.loss, loss.item(), rtol=1e-5)
    np.testing.assert_allclose(layer.backward(p, g), tp.grad.numpy(), rtol=1e-5, atol=1e-6)
    x = np.abs(normal((2, 4), seed=3)) + 0.2
    check_penalty_gradients(NegativeEntropyPenalty(0.5).double(), x)


def test_negative_entropy_penalty_errors_and_config():
    with pytest.raises(LayerError, match=r"NegativeEntropyPenalty\[neg\]: expected input of "
                                         r"values > 0"):
        NegativeEntropyPenalty().set_name("neg").forward(np.array([[0.5, 0.0]]))
    with pytest.raises(ValueError, match="beta must be a finite number, got 'x'"):
        NegativeEntropyPenalty("x")
    config_round_trip(NegativeEntropyPenalty(0.2), np.full((2, 3), 0.3, dtype=np.float32))


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
    with pytest.raises(ValueError, match=r"target_sizes must be .* got \[0, 2\]"):
        ExpandSize([0, 2])
    config_round_trip(ExpandSize([2, -1]), f32((1, 3), seed=1))


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


# ---------------------------------------------------------------------- SpatialConvolutionMap
@pytest.mark.oracle
def test_spatial_convolution_map_matches_torch_masked_conv():
    table = [[1, 1], [2, 1], [2, 2], [3, 2], [1, 3]]
    layer = SpatialConvolutionMap(table, 3, 2, 2, 1, 1, 0)
    conn = np.array(table) - 1

    def conv(x, w, b):
        dense = torch.zeros(3, 3, 2, 3, dtype=w.dtype)
        for k, (i, o) in enumerate(conn):
            dense[o, i] = dense[o, i] + w[k]
        return F.conv2d(x, dense, b, stride=(1, 2), padding=(0, 1))

    torch_parity(layer, conv, f32((2, 3, 5, 6), seed=14), params=("weight", "bias"))
    y3 = layer.forward(f32((3, 5, 6), seed=15))
    assert y3.shape == (3, 4, 3)
    check_module_gradients(SpatialConvolutionMap(table, 2, 2, 1, 1, 1, 1).double(),
                           normal((2, 3, 3, 4), seed=16))


def test_spatial_convolution_map_tables_errors_and_config():
    assert SpatialConvolutionMap.full(2, 3) == [[1, 1], [2, 1], [1, 2], [2, 2], [1, 3], [2, 3]]
    one = SpatialConvolutionMap(SpatialConvolutionMap.one_to_one(2), 1, 1)
    one.weight[...] = [[[2.0]], [[3.0]]]
    one.bias[...] = 0
    np.testing.assert_allclose(one.forward(np.ones((1, 2, 2, 2), np.float32))[0, :, 0, 0],
                               [2.0, 3.0])
    with pytest.raises(LayerError, match=r"SpatialConvolutionMap\[scm\]: expected input "
                                         r"\(N, 2, H, W\), got \(1, 3, 4, 4\)"):
        one.set_name("scm").forward(np.ones((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"conn_table must be .* got \[\[0, 1\]\]"):
        SpatialConvolutionMap([[0, 1]], 3, 3)
    config_round_trip(SpatialConvolutionMap(np.array([[1, 1], [1, 2]]), 2, 2),
                      f32((1, 1, 3, 3), seed=2))


# ---------------------------------------------------------------------- ConvLSTMPeephole3D
@pytest.mark.oracle
def test_conv_lstm_peephole_3d_matches_torch_conv3d():
    cell = ConvLSTMPeephole3D(2, 2, 3, 3).double()
    x, g = normal((2, 2, 2, 3, 3, 3), 20), normal((2, 2, 2, 3, 3, 3), 21)
    layer = Recurrent().add(cell)
    layer.zero_grad_parameters()
    y = layer.forward(x).copy()
    gx = layer.backward(x, g).copy()
    O = 2

    def conv_lstm(x, w, u, b, p):
        h = c = torch.zeros(2, O, 3, 3, 3, dtype=x.dtype)
        pp = p[:, :, None, None, None]
        outs = []
        for t in range(2):
            z = F.conv3d(x[:, t], w, b, padding=1) + F.conv3d(h, u, padding=1)
            i = torch.sigmoid(z[:, :O] + pp[0] * c)
            f = torch.sigmoid(z[:, O:2 * O] + pp[1] * c)
            c = f * c + i * torch.tanh(z[:, 2 * O:3 * O])
            o = torch.sigmoid(z[:, 3 * O:] + pp[2] * c)
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)

    params = [cell.weight, cell.recurrent_weight, cell.bias, cell.peephole]
    tx = t64(x).requires_grad_()
    tp = [t64(p).requires_grad_() for p in params]
    ty = conv_lstm(tx, *tp)
    ty.backward(t64(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    for n, t in zip(["weight", "recurrent_weight", "bias", "peephole"], tp):
        np.testing.assert_allclose(getattr(cell, "grad_" + n), t.grad.numpy(), rtol=1e-9,
                                   atol=1e-10)


def test_conv_lstm_peephole_3d_gradients_strided():
    model = Recurrent().add(ConvLSTMPeephole3D(1, 2, 2, 1, stride=2, padding=0,
                                               with_peephole=False)).double()
    x = normal((1, 2, 1, 3, 4, 4), 22)
    check_module_gradients(model, x)
    assert model.output.shape == (1, 2, 2, 1, 2, 2)


def test_conv_lstm_peephole_3d_errors_and_config():
    with pytest.raises(LayerError, match=r"Recurrent\[rec\]: expected input "
                                         r"\(N, T, 2, D, H, W\).* got \(1, 2, 3, 4, 4, 4\)"):
        Recurrent().set_name("rec").add(ConvLSTMPeephole3D(2, 3, 3, 3)).forward(
            np.ones((1, 2, 3, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="ConvLSTMPeephole3D: padding must be .* got -2"):
        ConvLSTMPeephole3D(2, 3, 3, 3, padding=-2)
    config_round_trip(ConvLSTMPeephole3D(1, 2, 3, 1))
    config_round_trip(Recurrent().add(ConvLSTMPeephole3D(1, 2, 3, 1)),
                      f32((1, 2, 1, 3, 3, 3), seed=3))


# ---------------------------------------------------------------------- RoiPooling
def roi_cells(rois, pw, ph, scale, h, w):
    """Fast R-CNN's pooling cells, one by one: ``(roi, batch, i, j, rows, cols)``."""
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        x1, y1, x2, y2 = (int(math.floor(v * scale + 0.5)) for v in (x1, y1, x2, y2))
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(y1 + math.floor(i * rh / ph), 0), h)
                he = min(max(y1 + math.ceil((i + 1) * rh / ph), 0), h)
                ws = min(max(x1 + math.floor(j * rw / pw), 0), w)
                we = min(max(x1 + math.ceil((j + 1) * rw / pw), 0), w)
                yield k, int(b), i, j, slice(hs, he), slice(ws, we)


def roi_pool_reference(data, rois, pw, ph, scale):
    out = np.zeros((len(rois), data.shape[1], ph, pw))
    for k, b, i, j, rows, cols in roi_cells(rois, pw, ph, scale, *data.shape[2:]):
        if data[b, :, rows, cols].size:
            out[k, :, i, j] = data[b, :, rows, cols].max(axis=(1, 2))
    return out


ROIS = np.array([[0, 0, 0, 7, 5], [1, 6, 2, 7, 5], [1, 3, 1, 6, 4], [0, 3, 3, 3, 3],
                 [1, -2, -2, 20, 3], [1, -3, -1, 3, 5], [0, -9, -9, -5, -5]], dtype=np.float64)
# (with spatial_scale 0.5, x1 = -1.5 rounds up to -1 as Java's Math.round does)


@pytest.mark.oracle
def test_roi_pooling_matches_the_fast_rcnn_formula():
    data = f32((2, 3, 6, 8), seed=23)
    for pw, ph, scale in ((2, 3, 1.0), (3, 2, 0.5), (4, 4, 1.0)):
        layer = RoiPooling(pw, ph, scale)
        y = layer.forward([data, ROIS.astype(np.float32)])
        np.testing.assert_allclose(y, roi_pool_reference(data, ROIS, pw, ph, scale))
    assert not y[-1].any()  # a region outside the map pools nothing
    # the gradient of sum(y * g) w.r.t. the features, by torch autograd over the same cells
    g = f32((len(ROIS), 3, 3, 2), seed=24)
    td = t64(data).requires_grad_()
    total = 0
    for k, b, i, j, rows, cols in roi_cells(ROIS, 2, 3, 0.5, 6, 8):
        if data[b, :, rows, cols].size:
            total = total + (td[b, :, rows, cols].amax(dim=(1, 2)) * t64(g[k, :, i, j])).sum()
    total.backward()
    layer = RoiPooling(2, 3, 0.5)
    layer.forward([data, ROIS])
    gd, grois = layer.backward([data, ROIS], g)
    np.testing.assert_allclose(gd, td.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert grois.shape == ROIS.shape and not grois.any()
    check_module_gradients(RoiPooling(2, 2, 1.0).double(),
                           [normal((2, 2, 5, 6), seed=25), ROIS[:4].copy()])


def test_roi_pooling_errors_and_config():
    with pytest.raises(LayerError, match=r"RoiPooling\[roi\]: expected input a table "
                                         r"\[features \(N, C, H, W\), rois \(R, 5\)\], "
                                         r"got \[\(1, 2, 4, 4\), \(3, 4\)\]"):
        RoiPooling(2, 2, 1.0).set_name("roi").forward([np.ones((1, 2, 4, 4)), np.ones((3, 4))])
    with pytest.raises(LayerError, match=r"RoiPooling: expected roi batch indices in \[0, 1\)"):
        RoiPooling(2, 2, 1.0).forward([np.ones((1, 2, 4, 4)), np.array([[1.0, 0, 0, 2, 2]])])
    with pytest.raises(ValueError, match="spatial_scale must be a finite number > 0, got 0"):
        RoiPooling(2, 2, 0)
    config_round_trip(RoiPooling(2, 3, 0.5), [f32((2, 3, 6, 8), seed=1), ROIS[:3]])


# ---------------------------------------------------------------------- PriorBox
def prior_box_reference(fh, fw, img_h, img_w, min_sizes, max_sizes, ars, flip, clip, var,
                        offset=0.5):
    """Caffe-SSD's prior boxes, box by box."""
    ratios = [1.0]
    for a in ars:
        for r in ([a, 1 / a] if flip else [a]):
            if all(abs(r - q) >= 1e-6 for q in ratios):
                ratios.append(r)
    out, step_h, step_w = [], img_h / fh, img_w / fw
    for i in range(fh):
        for j in range(fw):
            cx, cy = (j + offset) * step_w, (i + offset) * step_h
            for k, m in enumerate(min_sizes):
                shapes = [(m, m)]
                if max_sizes:
                    shapes.append((math.sqrt(m * max_sizes[k]),) * 2)
                shapes += [(m * math.sqrt(r), m / math.sqrt(r)) for r in ratios if r != 1.0]
                for bw, bh in shapes:
                    box = [(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                           (cx + bw / 2) / img_w, (cy + bh / 2) / img_h]
                    out.extend(min(max(v, 0.0), 1.0) if clip else v for v in box)
    variances = (var * 4 if len(var) == 1 else var) * (len(out) // 4)
    return np.array([[out, variances]])


def test_prior_box_matches_the_ssd_definition():
    feat = np.zeros((2, 8, 3, 4), np.float32)
    layer = PriorBox([30.0], [60.0], [2.0, 3.0], is_flip=True, is_clip=False, img_size=100)
    assert layer.num_priors == 6
    y = layer.forward(feat)
    assert y.shape == (1, 2, 3 * 4 * 6 * 4)
    np.testing.assert_allclose(y, prior_box_reference(3, 4, 100, 100, [30.0], [60.0],
                                                      [2.0, 3.0], True, False, [0.1]),
                               rtol=1e-6, atol=1e-7)
    clip = PriorBox([20.0, 40.0], aspect_ratios=[2.0], is_flip=False, is_clip=True,
                    variances=[0.1, 0.1, 0.2, 0.2])
    y = clip.forward([feat, np.zeros((1, 3, 60, 80), np.float32)])
    np.testing.assert_allclose(y, prior_box_reference(3, 4, 60, 80, [20.0, 40.0], [], [2.0],
                                                      False, True, [0.1, 0.1, 0.2, 0.2]),
                               rtol=1e-6, atol=1e-7)
    # a 1x1 map on a 10-pixel image: one box of side 4 centred at 5
    np.testing.assert_allclose(PriorBox([4.0], img_size=10).forward(np.zeros((1, 1, 1, 1)))[0, 0],
                               [0.3, 0.3, 0.7, 0.7])


def test_prior_box_is_inference_only_and_validates():
    layer = PriorBox([30.0], img_size=100).set_name("pb")
    x = np.zeros((1, 2, 2, 2), np.float32)
    y = layer.forward(x)
    with pytest.raises(LayerError, match=r"PriorBox\[pb\]: PriorBox is inference-only"):
        layer.backward(x, np.ones_like(y))
    with pytest.raises(LayerError, match=r"PriorBox\[pb\]: expected input \(N, C, H, W\)"):
        layer.forward(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(LayerError, match=r"PriorBox: expected an image size"):
        PriorBox([30.0]).forward(x)
    with pytest.raises(ValueError, match=r"max_sizes must give one size > each min size .* "
                                         r"got \[20\.0\]"):
        PriorBox([30.0], [20.0])
    config_round_trip(PriorBox([30.0], [60.0], [2.0], img_h=50, img_w=60), x)


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


# ---------------------------------------------------------------------- shipping to executors
def test_new_layers_pickle_without_their_activations():
    layers = [(CrossProduct(), [f32((2, 3), seed=1), f32((2, 3), seed=2)]),
              (FeedForwardNetwork(3, 4, 0.2), f32((2, 3), seed=3)),
              (SpatialConvolutionMap([[1, 1]], 2, 2), f32((1, 1, 3, 3), seed=4)),
              (RoiPooling(2, 2, 1.0), [f32((1, 2, 4, 4), seed=5), ROIS[3:4]]),
              (TableOperation(CMulTable()), [f32((2, 3), seed=6), f32((1, 3), seed=7)]),
              (Transformer(5, 4, 2, 5, 1, 0.1, 0.1, 0.1), np.array([[1, 2]]))]
    for layer, x in layers:
        layer.evaluate()
        y = np.array(layer.forward(x), copy=True)
        again = pickle.loads(pickle.dumps(layer))
        assert "_scratch" not in again.__dict__ and again.output is None
        np.testing.assert_array_equal(again.forward(x), y)


# ---------------------------------------------------------------------- DetectionOutputSSD
BOXES = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.12, 0.32, 0.32], [0.6, 0.6, 0.9, 0.9]])


def ssd_priors(boxes, variances=(0.1, 0.1, 0.2, 0.2)):
    return np.stack([boxes.ravel(), np.tile(variances, len(boxes))])[None].astype(np.float32)


def test_detection_output_ssd_suppresses_thresholds_and_keeps_top_k():
    priors = ssd_priors(BOXES)
    scores = np.array([[0.09, 0.9, 0.01], [0.18, 0.8, 0.02], [0.25, 0.05, 0.7]])  # (P, classes)
    conf = scores.reshape(1, -1).astype(np.float32)
    loc = np.zeros((1, 12), np.float32)               # zero offsets: the priors themselves
    layer = DetectionOutputSSD(3, conf_post_process=False).evaluate()
    y = layer.forward([loc, conf, priors])
    # class 1: prior 1 overlaps prior 0 (IoU 0.68 > 0.45) and goes; class 2: 0.01 is not > 0.01
    expected = [4, 1, 0.9, *BOXES[0], 1, 0.05, *BOXES[2], 2, 0.7, *BOXES[2], 2, 0.02, *BOXES[1]]
    np.testing.assert_allclose(y, [expected], rtol=1e-6)
    top2 = DetectionOutputSSD(3, keep_top_k=2, conf_post_process=False).evaluate()
    np.testing.assert_allclose(top2.forward([loc, conf, priors]),
                               [[2, 1, 0.9, *BOXES[0], 2, 0.7, *BOXES[2]]], rtol=1e-6)
    # softmax post-processing of logits gives the same detections as the probabilities
    logits = np.log(scores).reshape(1, -1).astype(np.float32)
    np.testing.assert_allclose(DetectionOutputSSD(3).evaluate().forward([loc, logits, priors]),
                               y, rtol=1e-5)
    # a batch pads the image with fewer detections with zeros
    batch = DetectionOutputSSD(3, conf_post_process=False, conf_thresh=0.5).evaluate()
    yb = batch.forward([np.zeros((2, 12), np.float32), np.concatenate([conf, conf * 0]),
                        priors])
    assert yb.shape == (2, 1 + 6 * 2) and yb[1].tolist() == [0.0] * 13
    np.testing.assert_allclose(yb[0], [2, 1, 0.9, *BOXES[0], 2, 0.7, *BOXES[2]], rtol=1e-6)


def test_detection_output_ssd_decodes_centre_size_with_variances():
    prior = np.array([[0.2, 0.2, 0.6, 0.4]])
    loc = np.array([[1.0, -1.0, math.log(2) / 0.2, 0.0]], np.float32)
    conf = np.array([[0.0, 1.0]], np.float32)
    layer = DetectionOutputSSD(2, conf_post_process=False).evaluate()
    # centre (0.4 + 0.1*1*0.4, 0.3 - 0.1*0.2), size (0.4 * 2, 0.2)
    np.testing.assert_allclose(layer.forward([loc, conf, ssd_priors(prior)]),
                               [[1, 1, 1.0, 0.04, 0.18, 0.84, 0.38]], rtol=1e-5, atol=1e-6)
    raw = DetectionOutputSSD(2, conf_post_process=False,
                             variance_encoded_in_target=True).evaluate()
    loc2 = np.array([[0.1, -0.1, math.log(2), 0.0]], np.float32)
    np.testing.assert_allclose(raw.forward([loc2, conf, ssd_priors(prior)]),
                               [[1, 1, 1.0, 0.04, 0.18, 0.84, 0.38]], rtol=1e-5, atol=1e-6)
    # one box per class: class 2 uses its own offsets
    per_class = DetectionOutputSSD(3, share_location=False, conf_post_process=False).evaluate()
    loc3 = np.concatenate([np.zeros(8), [1.0, -1.0, math.log(2) / 0.2, 0.0]])[None]
    y = per_class.forward([loc3.astype(np.float32), np.array([[0.0, 0.0, 1.0]], np.float32),
                           ssd_priors(prior)])
    np.testing.assert_allclose(y, [[1, 2, 1.0, 0.04, 0.18, 0.84, 0.38]], rtol=1e-5, atol=1e-6)


def test_detection_output_ssd_training_passes_through_and_validates():
    layer = DetectionOutputSSD(3).set_name("det")
    x = [np.zeros((1, 12), np.float32), np.zeros((1, 9), np.float32), ssd_priors(BOXES)]
    assert layer.forward(x) is x                       # BigDL: identity while training
    g = [np.ones_like(t) for t in x]
    assert layer.backward(x, g) is g
    layer.evaluate().forward(x)
    with pytest.raises(LayerError, match=r"DetectionOutputSSD\[det\]: DetectionOutputSSD is "
                                         r"inference-only"):
        layer.backward(x, np.zeros_like(layer.output))
    with pytest.raises(LayerError, match=r"DetectionOutputSSD\[det\]: expected input a table "
                                         r"\[loc \(N, P\*4\), conf \(N, P\*3\), priors"):
        layer.forward([x[0], np.zeros((1, 8), np.float32), x[2]])
    with pytest.raises(ValueError, match="keep_top_k must be a positive int or -1 .* got 0"):
        DetectionOutputSSD(keep_top_k=0)
    config_round_trip(DetectionOutputSSD(3, nms_thresh=0.3), x)


# ---------------------------------------------------------------------- Proposal
def proposal_reference(scores, deltas, info, ratios, scales, pre, post):
    """Faster R-CNN's proposal layer, anchor by anchor, with BigDL's anchors and overlaps."""
    a = len(ratios) * len(scales)
    h, w = scores.shape[2:]
    cands = []
    for i in range(h):
        for j in range(w):
            k = 0
            for s in scales:
                for r in ratios:
                    bw = math.sqrt((16 * s) ** 2 / r)
                    bh = r * bw
                    x1, y1 = 16 * j - bw / 2, 16 * i - bh / 2
                    x2, y2 = 16 * j + bw / 2, 16 * i + bh / 2
                    aw, ah = x2 - x1 + 1, y2 - y1 + 1
                    dx, dy, dw, dh = deltas[0, 4 * k:4 * k + 4, i, j]
                    cx, cy = dx * aw + x1 + aw / 2, dy * ah + y1 + ah / 2
                    pw, ph = math.exp(dw) * aw, math.exp(dh) * ah
                    box = [min(max(v, 0), info[1 - c % 2] - 1) for c, v in enumerate(
                        (cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2))]
                    if box[2] - box[0] + 1 >= 16 * info[3] and box[3] - box[1] + 1 >= 16 * info[2]:
                        cands.append((float(scores[0, a + k, i, j]), box))
                    k += 1
    cands = sorted(cands, key=lambda c: -c[0])[:pre]

    def iou(p, q):
        iw = min(p[2], q[2]) - max(p[0], q[0]) + 1
        ih = min(p[3], q[3]) - max(p[1], q[1]) + 1
        if iw < 0 or ih < 0:
            return 0.0
        area = (p[2] - p[0] + 1) * (p[3] - p[1] + 1) + (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
        return iw * ih / (area - iw * ih)

    kept = []
    for _, box in cands:
        if all(iou(box, k) <= 0.7 for k in kept):
            kept.append(box)
    return np.array([[0, *b] for b in kept[:post]]).reshape(-1, 5)


def test_proposal_matches_the_faster_rcnn_reference():
    ratios, scales = [0.5, 1.0, 2.0], [1.0, 2.0]
    rng = np.random.default_rng(60)
    scores = rng.random((1, 12, 3, 4)).astype(np.float32)
    deltas = (0.3 * rng.standard_normal((1, 24, 3, 4))).astype(np.float32)
    info = np.array([[40.0, 56.0, 0.6, 0.5]], np.float32)
    layer = Proposal(20, 8, ratios, scales, 30, 12).evaluate()
    y = layer.forward([scores, deltas, info])
    ref = proposal_reference(scores, deltas, info[0], ratios, scales, 20, 8)
    assert y.shape == ref.shape and 0 < len(y) <= 8
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)
    layer.training()   # the training counts apply
    np.testing.assert_allclose(layer.forward([scores, deltas, info]),
                               proposal_reference(scores, deltas, info[0], ratios, scales, 30, 12),
                               rtol=1e-5, atol=1e-4)
    # one square anchor on a 1x2 map, zero deltas: anchors (-8, -8, 8, 8) and (8, -8, 24, 8)
    # become (-8, -8, 9, 9) and (8, -8, 25, 9), clipped to the 32x32 image
    tiny = Proposal(10, 10, [1.0], [1.0]).evaluate()
    out = tiny.forward([np.array([[[[0, 0]], [[0.3, 0.9]]]], np.float32),
                        np.zeros((1, 4, 1, 2), np.float32),
                        np.array([[32, 32, 0.5, 0.5]], np.float32)])
    np.testing.assert_allclose(out, [[0, 8, 0, 25, 9], [0, 0, 0, 9, 9]])
    # a minimum size of 16 * 1.0 = 16 pixels drops the 10-pixel-high boxes
    assert tiny.forward([np.array([[[[0, 0]], [[0.3, 0.9]]]], np.float32),
                         np.zeros((1, 4, 1, 2), np.float32),
                         np.array([[32, 32, 1.0, 1.0]], np.float32)]).shape == (0, 5)


def test_proposal_is_inference_only_and_validates():
    layer = Proposal(10, 5, [1.0], [1.0, 2.0]).set_name("rpn").evaluate()
    x = [np.ones((1, 4, 2, 2), np.float32), np.zeros((1, 8, 2, 2), np.float32),
         np.array([[32, 32, 0.1, 0.1]], np.float32)]
    y = layer.forward(x)
    with pytest.raises(LayerError, match=r"Proposal\[rpn\]: Proposal is inference-only"):
        layer.backward(x, np.ones_like(y))
    with pytest.raises(LayerError, match=r"Proposal\[rpn\]: expected input a table \[scores "
                                         r"\(1, 4, H, W\), deltas \(1, 8, H, W\)"):
        layer.forward([x[0], np.zeros((1, 4, 2, 2), np.float32), x[2]])
    with pytest.raises(ValueError, match=r"scales must be a non-empty list of numbers > 0, "
                                         r"got \[\]"):
        Proposal(10, 5, [1.0], [])
    config_round_trip(Proposal(10, 5, [0.5, 1.0], [1.0]), x[:1] + [np.zeros((1, 8, 2, 2),
                                                                             np.float32), x[2]])
