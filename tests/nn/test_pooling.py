"""2-D pooling (SpatialMaxPooling, SpatialAveragePooling, global and sum pooling): gradients,
PyTorch parity, SAME padding, bad input."""
import numpy as np
import pytest
from oracle import F, torch

from helpers import check_module_gradients, distinct, rand, run_both
from workbench.nn import LayerError, SpatialAveragePooling, SpatialMaxPooling


POOL_CASES = {
    "max_2x2": (lambda: SpatialMaxPooling(2, 2), (2, 2, 4, 6)),
    "max_overlap": (lambda: SpatialMaxPooling(3, 2, 1, 1), (2, 2, 4, 5)),
    "max_ceil_pad": (lambda: SpatialMaxPooling(3, 3, 2, 2, 1, 1, to_ceil=True), (2, 2, 6, 7)),
    "max_ceil": (lambda: SpatialMaxPooling(2, 2, 2, 2).ceil(), (1, 2, 5, 5)),
    "max_ceil_drop": (lambda: SpatialMaxPooling(2, 2, 4, 4).ceil(), (1, 2, 7, 8)),
    "max_same": (lambda: SpatialMaxPooling(3, 3, 2, 2, -1, -1), (1, 2, 6, 5)),
    "avg_plain": (lambda: SpatialAveragePooling(2, 2, 2, 2), (2, 2, 4, 4)),
    "avg_ceil_pad": (lambda: SpatialAveragePooling(3, 3, 2, 2, 1, 1, ceil_mode=True),
                     (2, 2, 6, 7)),
    "avg_exclude_pad": (lambda: SpatialAveragePooling(3, 2, 2, 1, 1, 1, ceil_mode=True,
                                                      count_include_pad=False), (2, 2, 5, 6)),
    "avg_global": (lambda: SpatialAveragePooling(1, 1, global_pooling=True), (2, 3, 3, 4)),
    "avg_sum": (lambda: SpatialAveragePooling(2, 2, 1, 1, divide=False), (1, 2, 3, 4)),
    "avg_same": (lambda: SpatialAveragePooling(3, 3, 2, 2, -1, -1), (1, 2, 6, 5)),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling_gradients(case):
    make, shape = POOL_CASES[case]
    check_module_gradients(make().double(), distinct(*shape))


@pytest.mark.parametrize("make", [lambda: SpatialMaxPooling(2, 2, 1, 1),
                                  lambda: SpatialAveragePooling(2, 2, 1, 1, 1, 1)])
def test_pooling_gradients_unbatched(make):
    layer = make().double()
    x = distinct(2, 3, 4)
    assert layer.forward(x).ndim == 3
    check_module_gradients(layer, x)


MAXPOOL_PARITY = [
    # (kw, kh, dw, dh, pw, ph, ceil, shape)
    (2, 2, 2, 2, 0, 0, False, (4, 6, 24, 24)),
    (3, 3, 2, 2, 1, 1, True, (2, 3, 8, 9)),
    (3, 3, 2, 2, 0, 0, True, (2, 3, 8, 8)),
    (2, 3, 1, 2, 1, 1, False, (2, 2, 5, 7)),
    (2, 2, 4, 4, 0, 0, True, (2, 2, 7, 8)),  # stride > kernel: last ceil window dropped
    (3, 2, 3, 2, 1, 1, True, (1, 2, 6, 5)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("kw, kh, dw, dh, pw, ph, ceil, shape", MAXPOOL_PARITY)
def test_max_pooling_matches_torch(kw, kh, dw, dh, pw, ph, ceil, shape):
    layer = SpatialMaxPooling(kw, kh, dw, dh, pw, ph, to_ceil=ceil)
    x = distinct(*shape).astype(np.float32)
    run_both(layer, lambda tx: F.max_pool2d(tx, (kh, kw), (dh, dw), (ph, pw), ceil_mode=ceil), x)


@pytest.mark.oracle
def test_max_pooling_ties_and_nan_like_torch():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    layer = SpatialMaxPooling(2, 2)
    run_both(layer, lambda tx: F.max_pool2d(tx, 2), np.nan_to_num(x))  # all ties: first wins
    y = layer.forward(x)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])


AVGPOOL_PARITY = [
    # (kw, kh, dw, dh, pw, ph, ceil, count_include_pad, shape)
    (2, 2, 2, 2, 0, 0, False, True, (4, 6, 24, 24)),
    (3, 3, 2, 2, 1, 1, True, True, (2, 3, 8, 9)),
    (3, 3, 2, 2, 1, 1, True, False, (2, 3, 8, 9)),
    (3, 2, 2, 1, 1, 1, False, False, (2, 2, 5, 7)),
    (2, 2, 4, 4, 0, 0, True, True, (2, 2, 7, 8)),  # last ceil window dropped
    (3, 3, 1, 1, 0, 0, False, True, (1, 2, 4, 4)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("kw, kh, dw, dh, pw, ph, ceil, include, shape", AVGPOOL_PARITY)
def test_average_pooling_matches_torch(kw, kh, dw, dh, pw, ph, ceil, include, shape):
    layer = SpatialAveragePooling(kw, kh, dw, dh, pw, ph, ceil_mode=ceil,
                                  count_include_pad=include)
    run_both(layer, lambda tx: F.avg_pool2d(tx, (kh, kw), (dh, dw), (ph, pw), ceil_mode=ceil,
                                            count_include_pad=include),
             rand(*shape).astype(np.float32))


@pytest.mark.oracle
def test_global_and_sum_pooling():
    x = rand(2, 3, 4, 5).astype(np.float32)
    y = SpatialAveragePooling(2, 2, global_pooling=True).forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
    s = SpatialAveragePooling(2, 2, 2, 2, divide=False).forward(x)
    np.testing.assert_allclose(s, F.avg_pool2d(torch.from_numpy(x), 2).numpy() * 4, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.oracle
def test_pooling_same_padding_sizes():
    x = distinct(1, 2, 7, 6).astype(np.float32)
    assert SpatialMaxPooling(3, 3, 2, 2, -1, -1).forward(x).shape == (1, 2, 4, 3)
    y = SpatialMaxPooling(2, 2, 2, 2, -1, -1).forward(x)  # odd height: one row of padding below
    ref = F.max_pool2d(F.pad(torch.from_numpy(x), (0, 0, 0, 1), value=-np.inf), 2).numpy()
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("make, cls", [(lambda: SpatialMaxPooling(3, 3), "SpatialMaxPooling"),
                                       (lambda: SpatialAveragePooling(3, 3, 2, 2),
                                        "SpatialAveragePooling")])
def test_pooling_too_small_names_layer_and_shapes(make, cls):
    layer = make().set_name("pool")
    with pytest.raises(LayerError, match=rf"^{cls}\[pool\]: expected input "
                                         r"\(N, C, H>=3, W>=3\), got \(2, 4, 2, 2\)$"):
        layer.forward(np.zeros((2, 4, 2, 2), np.float32))
    with pytest.raises(LayerError, match=r"expected input \(N, C, H, W\), got \(16\)"):
        layer.forward(np.zeros(16, np.float32))

