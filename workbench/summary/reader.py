"""Reading TensorBoard event files back with TensorBoard's own reader (``EventAccumulator``)."""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

__all__ = ["read_scalar", "read_histogram", "Histogram"]


class Histogram(NamedTuple):
    """One histogram as written: ``bucket[i]`` values fell at or below ``bucket_limit[i]``."""
    step: int
    wall_time: float
    min: float
    max: float
    num: float
    sum: float
    sum_squares: float
    bucket_limit: np.ndarray
    bucket: np.ndarray


def _accumulator(directory):
    from tensorboard.backend.event_processing import event_accumulator as ea
    keep_all = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0, ea.COMPRESSED_HISTOGRAMS: 0,
                ea.IMAGES: 0, ea.AUDIO: 0}
    acc = ea.EventAccumulator(os.fspath(directory), size_guidance=keep_all)
    acc.Reload()
    return acc


def read_scalar(directory, tag):
    """``(n, 3)`` float64 array of ``(step, value, wall_time)`` rows of ``tag`` in the event
    files of ``directory``, ordered by step (BigDL's ``read_scalar`` shape); empty if none."""
    if not os.path.isdir(directory):
        return np.empty((0, 3))
    acc = _accumulator(directory)
    if tag not in acc.Tags().get("scalars", []):
        return np.empty((0, 3))
    rows = sorted(((e.step, e.value, e.wall_time) for e in acc.Scalars(tag)),
                  key=lambda r: (r[0], r[2]))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def read_histogram(directory, tag):
    """The histograms of ``tag`` in ``directory`` as a list of :class:`Histogram`, by step."""
    if not os.path.isdir(directory):
        return []
    acc = _accumulator(directory)
    if tag not in acc.Tags().get("histograms", []):
        return []
    out = [Histogram(e.step, e.wall_time, h.min, h.max, h.num, h.sum, h.sum_squares,
                     np.array(h.bucket_limit), np.array(h.bucket))
           for e in acc.Histograms(tag) for h in [e.histogram_value]]
    return sorted(out, key=lambda h: (h.step, h.wall_time))
