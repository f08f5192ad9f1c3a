"""Train one small model in this process and write its losses and final weights (a child of
tests/native/test_determinism.py).

    python train_once.py MODEL THREADS OUT.npz      MODEL: lenet5 | lstm | mlp

Native backend, ``THREADS`` threads, a fixed seed; the losses of every iteration and the flat
weight vector go to ``OUT.npz`` for a bitwise comparison with another process's run.
"""
import sys

import numpy as np

from workbench import models
from workbench.data import load_digits
from workbench.nn import (ClassNLLCriterion, Linear, LogSoftMax, ReLU, Sequential, backend,
                          random)
from workbench.optim import SGD, Adam, Listener, MaxIteration, Optimizer


class Losses(Listener):
    def __init__(self):
        self.values = []

    def on_iteration(self, event):
        self.values.append(event.loss)


def main(name, threads, out):
    backend.set_backend("native")
    backend.set_num_threads(threads)
    random.set_seed(7)
    if name == "lenet5":
        (X, y), _ = load_digits(size=28)
        model, criterion = models.LeNet5(10), ClassNLLCriterion()
        method, batch, iterations = SGD(learningrate=0.05, momentum=0.9, dampening=0.0), 64, 40
    elif name == "lstm":
        rng = np.random.default_rng(3)
        X = rng.integers(0, 40, (512, 24))
        y = np.roll(X, -1, axis=1)  # next character
        model, criterion = models.CharLSTM(40, 64, 16, num_layers=2), models.char_lm_criterion()
        method, batch, iterations = Adam(learningrate=3e-3), 32, 25
    elif name == "mlp":  # Linear + ReLU fused, SGD's native momentum update
        (X, y), _ = load_digits(size=28)
        X = X.reshape(len(X), -1)
        model = (Sequential().add(Linear(784, 256)).add(ReLU()).add(Linear(256, 256)).add(ReLU())
                 .add(Linear(256, 10)).add(LogSoftMax()))
        criterion = ClassNLLCriterion()
        method, batch, iterations = SGD(learningrate=0.05, momentum=0.9, dampening=0.0), 128, 30
    else:
        raise SystemExit(f"unknown model {name!r}")
    losses = Losses()
    optimizer = Optimizer(model, (X, y), criterion, MaxIteration(iterations), batch, method,
                          seed=11, progress=False)
    optimizer.add_listener(losses)
    optimizer.optimize()
    weights, _ = model.get_parameters()
    np.savez(out, losses=np.array(losses.values, np.float64), weights=weights,
             threads=backend.get_num_threads(), native=backend.native() is not None)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
