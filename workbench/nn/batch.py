"""Batches of records whose features (or labels) are one array or a *table* of arrays.

A multi-input model (a ``Graph`` with several ``Input()`` nodes) takes a table: a list of
arrays, one per input, all with the same first dimension (the records).  A multi-output model
returns one, and ``ParallelCriterion`` takes one as its target.  Every loop that slices,
counts, casts or joins records goes through the few functions here, so each works the same on
an array and on a table:

- :func:`as_batch` — a user's ``X`` (an array, or a list of arrays) as a batch;
- :func:`num_rows`, :func:`take`, :func:`concat`, :func:`apply` — the records of a batch;
- :func:`stack_records` — one batch from per-record tensors (``Sample.features``);
- :func:`record_shape`, :func:`empty` — the shape of one record, and an empty batch of it.

A table of one array is that array (as BigDL passes a one-tensor ``Sample`` to a one-input
model), so single-input code never sees a list.
"""
from __future__ import annotations

import numpy as np

__all__ = ["is_table", "as_batch", "num_rows", "take", "concat", "apply", "copy",
           "stack_records", "record_shape", "empty"]


def is_table(x):
    """True for a list or tuple of arrays of at least one dimension (a table of tensors)."""
    return (isinstance(x, (list, tuple)) and len(x) > 0
            and all(isinstance(t, np.ndarray) and t.ndim >= 1 for t in x))


def as_batch(x, what="features"):
    """``x`` as a batch: a list of arrays (a table, checked for equal row counts) or one array.

    Args:
        x: an array, a list/tuple of arrays (one per model input), or anything ``np.asarray``
            takes (nested lists of numbers are one array, as before).
        what: how to name ``x`` in messages.
    """
    if is_table(x):
        table = [np.asarray(t) for t in x]
        if len(table) == 1:
            return table[0]
        num_rows(table, what)
        return table
    return np.asarray(x)


def num_rows(x, what="features"):
    """The number of records of a batch (a table's arrays must agree)."""
    if isinstance(x, list):
        rows = [len(t) for t in x]
        if any(r != rows[0] for r in rows):
            raise ValueError(f"{what}: the arrays of a table need the same number of rows "
                             f"(one per record), got {rows}")
        return rows[0]
    return len(x)


def take(x, idx):
    """Records ``idx`` (an index array or a slice) of a batch, as the same structure."""
    return [t[idx] for t in x] if isinstance(x, list) else x[idx]


def concat(blocks):
    """Batches joined record-wise (blocks are all arrays or all tables of the same length)."""
    first = blocks[0]
    if isinstance(first, (list, tuple)):
        return [concat([b[k] for b in blocks]) for k in range(len(first))]
    return first if len(blocks) == 1 else np.concatenate(blocks)


def apply(x, fn):
    """``fn`` applied to each array of a batch (the batch itself, or each entry of a table)."""
    return [fn(t) for t in x] if isinstance(x, (list, tuple)) else fn(x)


def copy(x):
    """A copy of a batch (a model's output, before its buffers are reused)."""
    return apply(x, lambda t: np.array(t, copy=True))


def _stack(arrays, what, entry):
    try:
        return np.stack(arrays)
    except ValueError:
        shape = np.shape(arrays[0])
        i = next(i for i, a in enumerate(arrays) if np.shape(a) != shape)
        where = f"{what}" if entry is None else f"{what} (tensor {entry})"
        raise ValueError(f"{where}: record {i} has shape {np.shape(arrays[i])} but record 0 "
                         f"has {shape}; every record needs the same shape") from None


def stack_records(records, what="features"):
    """One batch from per-record tensors: each record an array (or a number), or a list of
    arrays (a table: one per model input); a table of one array gives that array.

    Raises:
        ValueError: the records hold different numbers of tensors or different shapes (the
            message names the first record that differs).
    """
    records = list(records)
    if not records:
        raise ValueError(f"{what}: no records")
    first = records[0]
    if isinstance(first, (list, tuple)):
        k = len(first)
        for i, r in enumerate(records):
            if not isinstance(r, (list, tuple)) or len(r) != k:
                got = len(r) if isinstance(r, (list, tuple)) else 1
                raise ValueError(f"{what}: record {i} has {got} tensor(s) but record 0 has "
                                 f"{k}; every record needs the same number")
        if k == 1:
            return _stack([np.asarray(r[0]) for r in records], what, None)
        return [_stack([np.asarray(r[j]) for r in records], what, j) for j in range(k)]
    for i, r in enumerate(records):
        if isinstance(r, (list, tuple)):
            raise ValueError(f"{what}: record {i} has {len(r)} tensors but record 0 has 1; "
                             "every record needs the same number")
    return _stack([np.asarray(r) for r in records], what, None)


def record_shape(x):
    """The shape of one record of a batch: a tuple, or a list of tuples for a table."""
    return [tuple(t.shape[1:]) for t in x] if isinstance(x, list) else tuple(x.shape[1:])


def empty(shape, dtype):
    """A batch of no records of ``record_shape`` ``shape`` (a tuple or a list of tuples)."""
    if isinstance(shape, list):
        return [np.empty((0,) + tuple(s), dtype=dtype) for s in shape]
    return np.empty((0,) + tuple(shape), dtype=dtype)
