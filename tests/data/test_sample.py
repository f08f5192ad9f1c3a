"""Samples with one or several feature / label tensors, and the batch helpers that treat an
array and a table (a list of arrays) alike."""
import numpy as np
import pytest

from workbench.data import Sample
from workbench.data.sample import samples_to_arrays
from workbench.nn import batch


def test_samples_with_two_feature_tensors_stack_into_a_table():
    rng = np.random.default_rng(0)
    samples = [Sample.from_ndarray([rng.standard_normal(3), rng.standard_normal((2, 2))], k)
               for k in range(5)]
    X, y = samples_to_arrays(samples)
    assert isinstance(X, list) and [x.shape for x in X] == [(5, 3), (5, 2, 2)]
    np.testing.assert_array_equal(X[1][4], samples[4].features[1])
    assert y.shape == (5,) and y.tolist() == [0, 1, 2, 3, 4]
    assert repr(samples[0]) == "Sample(features=[(3,), (2, 2)], labels=())"


def test_one_tensor_in_a_list_is_that_tensor_and_labels_can_be_tables():
    samples = [Sample.from_ndarray([np.full(2, k)], [np.array(k), np.full(3, -k)])
               for k in range(4)]
    X, y = samples_to_arrays(samples)
    assert isinstance(X, np.ndarray) and X.shape == (4, 2)
    assert isinstance(y, list) and [t.shape for t in y] == [(4,), (4, 3)]
    assert y[1][3].tolist() == [-3, -3, -3]


def test_samples_with_different_numbers_of_tensors_name_the_record():
    samples = [Sample.from_ndarray([np.zeros(3), np.zeros(2)], 0)] * 3
    samples.append(Sample.from_ndarray(np.zeros(3), 0))
    with pytest.raises(ValueError, match=r"features: record 3 has 1 tensor\(s\) but record 0 "
                                         "has 2"):
        samples_to_arrays(samples)
    odd = [Sample.from_ndarray([np.zeros(3), np.zeros(2)], 0),
           Sample.from_ndarray([np.zeros(3), np.zeros(4)], 0)]
    with pytest.raises(ValueError, match=r"features \(tensor 1\): record 1 has shape \(4,\) "
                                         r"but record 0 has \(2,\)"):
        samples_to_arrays(odd)


def test_batch_helpers_treat_arrays_and_tables_alike():
    a, b = np.arange(10).reshape(5, 2), np.arange(5) * 10
    table = batch.as_batch([a, b])
    assert isinstance(table, list) and batch.num_rows(table) == 5
    assert batch.num_rows(a) == 5
    rows = np.array([4, 0])
    taken = batch.take(table, rows)
    assert taken[0].tolist() == [[8, 9], [0, 1]] and taken[1].tolist() == [40, 0]
    assert batch.take(a, slice(1, 2)).tolist() == [[2, 3]]
    joined = batch.concat([batch.take(table, slice(0, 2)), batch.take(table, slice(2, 5))])
    assert all(np.array_equal(x, y) for x, y in zip(joined, table))
    assert np.array_equal(batch.concat([a[:1], a[1:]]), a)
    assert batch.record_shape(table) == [(2,), ()] and batch.record_shape(a) == (2,)
    empty = batch.empty([(2,), ()], np.float32)
    assert [e.shape for e in empty] == [(0, 2), (0,)] and batch.num_rows(empty) == 0
    # a list of numbers is one array, a one-array table is the array
    assert batch.as_batch([[1, 2], [3, 4]]).shape == (2, 2)
    assert batch.as_batch([a]) is a or np.array_equal(batch.as_batch([a]), a)


def test_a_table_whose_arrays_disagree_on_the_rows_is_an_error():
    with pytest.raises(ValueError, match=r"X: the arrays of a table need the same number of "
                                         r"rows \(one per record\), got \[5, 4\]"):
        batch.as_batch([np.zeros((5, 2)), np.zeros((4, 3))], "X")
