"""A small classifier with activity penalties and a weight regularizer, and its objective
written out in numpy (float64): the reference the training-loss tests compare with."""
from __future__ import annotations

import numpy as np

from workbench.nn import (ActivityRegularization, L1Penalty, Linear, LogSoftMax, Sequential,
                          Tanh, random)
from workbench.optim import L2Regularizer, Listener

L1, ACT_L1, ACT_L2, W_L2 = 0.02, 0.01, 0.02, 0.05


def penalized_mlp(seed=5, l1=L1, size_average=False):
    """Linear -> L1Penalty -> Tanh -> ActivityRegularization -> Linear (L2 on its weight)
    -> LogSoftMax."""
    random.set_seed(seed)
    return (Sequential().add(Linear(8, 16)).add(L1Penalty(l1, size_average))
            .add(Tanh()).add(ActivityRegularization(ACT_L1, ACT_L2))
            .add(Linear(16, 4, wRegularizer=L2Regularizer(W_L2))).add(LogSoftMax()))


def unflatten(w):
    """``(W1, b1, W2, b2)`` of the flat parameter vector (Linear keeps weight then bias)."""
    w = np.asarray(w, dtype=np.float64)
    return (w[:128].reshape(16, 8), w[128:144], w[144:208].reshape(4, 16), w[208:212])


def objective(w, X, y, l1=L1, size_average=False, nll_average=True):
    """``(criterion loss, full objective)`` of the model above at flat weights ``w``."""
    W1, b1, W2, b2 = unflatten(w)
    h1 = X.astype(np.float64) @ W1.T + b1
    m = l1 / h1.size if size_average else l1
    penalty = m * np.abs(h1).sum()
    h2 = np.tanh(h1)
    penalty += ACT_L1 * np.abs(h2).sum() + ACT_L2 * (h2 * h2).sum()
    z = h2 @ W2.T + b2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(y)), y]
    crit = nll.mean() if nll_average else nll.sum()
    return crit, crit + penalty + 0.5 * W_L2 * (W2 * W2).sum()


class WeightsRecorder(Listener):
    """The flat weights before each iteration and the loss each iteration reported."""

    def on_start(self, optimizer):
        self.model = optimizer.model
        self.before = [optimizer.model.get_parameters()[0].copy()]
        self.losses = []

    def on_iteration(self, event):
        self.losses.append(event.loss)
        self.before.append(self.model.get_parameters()[0].copy())
