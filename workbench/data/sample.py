"""``Sample``: one record of features and labels (BigDL's ``Sample``)."""
from __future__ import annotations

import numpy as np

from ..nn import batch

__all__ = ["Sample", "samples_to_arrays"]


class Sample:
    """A training record: one or more feature tensors and one or more label tensors.

    Build it as in BigDL with ``Sample.from_ndarray(features, labels)``; features/labels may be
    a single array (or scalar label) or a list of arrays.
    """

    def __init__(self, features, labels):
        self.features = features
        self.labels = labels

    @classmethod
    def from_ndarray(cls, features, labels):
        """A Sample from numpy arrays (a label may be a plain number)."""
        def arr(x):
            return [np.asarray(t) for t in x] if isinstance(x, (list, tuple)) else np.asarray(x)
        return cls(arr(features), arr(labels))

    @property
    def feature(self):
        """The first (usually the only) feature tensor."""
        return self.features[0] if isinstance(self.features, list) else self.features

    @property
    def label(self):
        """The first (usually the only) label tensor."""
        return self.labels[0] if isinstance(self.labels, list) else self.labels

    def __repr__(self):
        def shape(x):
            return [np.shape(t) for t in x] if isinstance(x, list) else np.shape(x)

        return f"Sample(features={shape(self.features)}, labels={shape(self.labels)})"


def samples_to_arrays(samples):
    """Stack a list of Samples into ``(X, y)``: arrays, or tables (lists of arrays, one per
    tensor) for Samples with several feature or label tensors.

    Raises:
        ValueError: no samples, or Samples with different numbers of tensors or different
            shapes (the message names the first Sample that differs).
    """
    samples = list(samples)
    if not samples:
        raise ValueError("no samples given")
    X = batch.stack_records([s.features for s in samples], "the Samples' features")
    y = batch.stack_records([s.labels for s in samples], "the Samples' labels")
    return X, y
