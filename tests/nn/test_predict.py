"""In-process ``predict`` / ``predict_class`` / ``evaluate``: batch sizes, including BigDL's
default ``-1`` ("choose for me"), never change the result and never return an empty one."""
import numpy as np
import pytest

from workbench.nn import Linear, LogSoftMax, Sequential
from workbench.nn.module import auto_batch_size
from workbench.optim import Top1Accuracy


def model_and_data(n=37):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return Sequential().add(Linear(5, 3)).add(LogSoftMax()), X, y


@pytest.mark.parametrize("batch_size", [-1, 0, -7, None])
def test_non_positive_batch_size_means_choose_for_me(batch_size):
    model, X, y = model_and_data()
    reference = model.predict(X, 37)
    out = model.predict(X, batch_size)
    assert out.shape == (37, 3)
    # the chosen batch holds all 37 rows here: the same single forward pass, bit for bit
    np.testing.assert_array_equal(out, reference)
    np.testing.assert_array_equal(model.predict_class(X, batch_size), reference.argmax(1))
    (acc,) = model.evaluate((X, y), batch_size, [Top1Accuracy()])
    assert acc.count == 37 and acc.value == pytest.approx(np.mean(reference.argmax(1) == y))


def test_small_batches_cover_every_row():
    model, X, _ = model_and_data()
    np.testing.assert_allclose(model.predict(X, 5), model.predict(X, 37), rtol=1e-6, atol=1e-6)
    assert model.predict(X, 1).shape == (37, 3)


def test_auto_batch_size_is_bounded_by_the_row_size():
    assert auto_batch_size(32, 10) == 32
    assert auto_batch_size(-1) == 256
    assert auto_batch_size(-1, 784) == 1024          # small rows: capped
    assert auto_batch_size(None, 3 * 224 * 224) == 6  # about a million values per batch
    assert auto_batch_size(0, 10**8) == 1            # never zero rows
    with pytest.raises(ValueError, match="batch_size must be an int"):
        auto_batch_size(2.5)


def test_spark_options_on_arrays_are_refused():
    model, X, _ = model_and_data()
    with pytest.raises(TypeError, match="features_col"):
        model.predict(X, 8, features_col="x")
