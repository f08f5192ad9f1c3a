"""Bundled datasets: real handwritten digits, nothing downloaded.

The digits are scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" set:
1,797 real 8x8 images of the digits 0-9 written by 43 people, shipped inside the scikit-learn
package.  ``load_digits(size=28)`` resizes them to 28x28 MNIST-like images (digit in the middle
20x20, as MNIST centres its digits) for LeNet-5.
"""
from __future__ import annotations

import numpy as np

__all__ = ["load_digits"]


def _resize_matrix(n_in, n_out):
    """Linear-interpolation matrix ``(n_out, n_in)`` mapping pixel centres (align corners off)."""
    m = np.zeros((n_out, n_in))
    centers = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    for i, c in enumerate(np.clip(centers, 0, n_in - 1)):
        lo = int(np.floor(c))
        hi = min(lo + 1, n_in - 1)
        m[i, lo] += 1 - (c - lo)
        m[i, hi] += c - lo
    return m


def _split(labels, test_fraction, seed):
    """Stratified, deterministic split of indices into train and test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(size=28, test_fraction=0.2, seed=0, normalize=True, one_based_labels=False):
    """The handwritten digits as ``((X_train, y_train), (X_test, y_test))``.

    Args:
        size: 8 for the original 8x8 images, or 28 for MNIST-like 28x28 images (LeNet-5).
        test_fraction: share of each class held out for test (default 0.2 → 1,437 / 360).
        seed: seed of the split (the same seed always gives the same split).
        normalize: scale pixels to [0, 1] then standardize with the training split's mean and
            standard deviation; otherwise pixels are in [0, 1].
        one_based_labels: labels 1..10 as in BigDL's examples instead of 0..9.

    Returns:
        float32 images of shape ``(N, 1, size, size)`` and int64 labels of shape ``(N,)``.
    """
    from sklearn.datasets import load_digits as _sk_digits

    if size not in (8, 28):
        raise ValueError(f"load_digits: size must be 8 or 28, got {size!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction!r}")
    bunch = _sk_digits()
    images = bunch.images.astype(np.float64) / 16.0
    labels = bunch.target.astype(np.int64)
    if size == 28:
        r = _resize_matrix(8, 20)
        inner = np.einsum("ij,njk,lk->nil", r, images, r)
        images = np.zeros((len(images), 28, 28))
        images[:, 4:24, 4:24] = np.clip(inner, 0.0, 1.0)
    train, test = _split(labels, test_fraction, seed)
    X = images[:, None, :, :].astype(np.float32)
    if normalize:
        mean, std = X[train].mean(), X[train].std()
        X = (X - mean) / std
    y = labels + (1 if one_based_labels else 0)
    return (X[train], y[train]), (X[test], y[test])
