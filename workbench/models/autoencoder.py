"""The fully-connected autoencoder of BigDL's ``models/autoencoder`` example (MNIST)."""
from __future__ import annotations

from ..nn import Linear, ReLU, Reshape, Sequential, Sigmoid

__all__ = ["Autoencoder"]


def Autoencoder(class_num=32, feature_size=784):
    """Encoder ``Linear(feature_size, class_num)`` + ReLU, decoder ``Linear(class_num,
    feature_size)`` + sigmoid (784-32-784 on MNIST, as BigDL's example).

    Args:
        class_num: size of the code (BigDL's name for it; > 0, default 32).
        feature_size: values per record (> 0, default 784 = 28 x 28); inputs are flattened.

    Input shape: ``(N, feature_size)`` or any ``(N, ...)`` with ``feature_size`` values per
        record (e.g. ``(N, 1, 28, 28)``), scaled to [0, 1].
    Output shape: ``(N, feature_size)`` reconstructions in (0, 1) (train with ``MSECriterion``
        or ``BCECriterion`` against the flattened input).
    """
    for arg, value in (("class_num", class_num), ("feature_size", feature_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Autoencoder: {arg} must be an int >= 1, got {value!r}")
    return (Sequential().add(Reshape([feature_size]).set_name("flatten"))
            .add(Linear(feature_size, class_num).set_name("encoder"))
            .add(ReLU().set_name("encoder_relu"))
            .add(Linear(class_num, feature_size).set_name("decoder"))
            .add(Sigmoid().set_name("decoder_sigmoid")))
