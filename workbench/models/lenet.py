"""LeNet-5 as in BigDL's ``models/lenet`` example."""
from __future__ import annotations

from ..nn import (Linear, LogSoftMax, Reshape, Sequential, SpatialConvolution, SpatialMaxPooling,
                  Tanh)

__all__ = ["LeNet5"]


def LeNet5(class_num=10):
    """LeNet-5 for 28x28 single-channel images (BigDL's example network).

    Args:
        class_num: number of classes (> 1).

    Input shape: ``(N, 1, 28, 28)``, ``(N, 28, 28)`` or ``(N, 784)``.
    Output shape: ``(N, class_num)`` log-probabilities (train it with ``ClassNLLCriterion``).
    """
    if not isinstance(class_num, int) or class_num < 2:
        raise ValueError(f"LeNet5: class_num must be an int >= 2, got {class_num!r}")
    model = Sequential()
    model.add(Reshape([1, 28, 28]).set_name("reshape_in"))
    model.add(SpatialConvolution(1, 6, 5, 5).set_name("conv1_5x5"))
    model.add(Tanh())
    model.add(SpatialMaxPooling(2, 2, 2, 2).set_name("pool1"))
    model.add(Tanh())
    model.add(SpatialConvolution(6, 12, 5, 5).set_name("conv2_5x5"))
    model.add(SpatialMaxPooling(2, 2, 2, 2).set_name("pool2"))
    model.add(Reshape([12 * 4 * 4]).set_name("flatten"))
    model.add(Linear(12 * 4 * 4, 100).set_name("fc1"))
    model.add(Tanh())
    model.add(Linear(100, class_num).set_name("fc2"))
    model.add(LogSoftMax())
    return model
