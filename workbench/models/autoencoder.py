"""The fully-connected autoencoder of BigDL's ``models/autoencoder`` example (MNIST), with
optional hidden layers and a linear code for pictures of the code space."""
from __future__ import annotations

import copy

from ..nn import Linear, ReLU, Reshape, Sequential, Sigmoid

__all__ = ["Autoencoder", "autoencoder_encoder"]

_CODE_ACTIVATIONS = ("relu", "linear")


def _positive_int(arg, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Autoencoder: {arg} must be an int >= 1, got {value!r}")
    return value


def Autoencoder(class_num=32, feature_size=784, hidden_sizes=(), code_activation="relu"):
    """Encoder ``Linear(feature_size, class_num)`` + ReLU, decoder ``Linear(class_num,
    feature_size)`` + sigmoid (784-32-784 on MNIST, as BigDL's example).

    Args:
        class_num: size of the code (BigDL's name for it; > 0, default 32).
        feature_size: values per record (> 0, default 784 = 28 x 28); inputs are flattened.
        hidden_sizes: sizes of hidden layers (each Linear + ReLU) between the input and the
            code, mirrored in the decoder: ``Autoencoder(2, 64, [32, 16])`` is
            64-32-16-2-16-32-64 (default none: BigDL's one-layer model).
        code_activation: ``"relu"`` (BigDL's) or ``"linear"``: no activation on the code.  A
            small code (2-D, to draw it) keeps more of the data linear, as ReLU may switch a
            whole code dimension off.

    Input shape: ``(N, feature_size)`` or any ``(N, ...)`` with ``feature_size`` values per
        record (e.g. ``(N, 1, 28, 28)``), scaled to [0, 1].
    Output shape: ``(N, feature_size)`` reconstructions in (0, 1) (train with ``MSECriterion``
        or ``BCECriterion`` against the flattened input).

    The code layer is named ``"encoder"`` (its activation ``"encoder_relu"``) and the output
    layer ``"decoder"``; hidden layers are ``"encoder_hidden<k>"`` / ``"decoder_hidden<k>"``.
    ``autoencoder_encoder(model)`` gives the encoder half as a model of its own.
    """
    _positive_int("class_num", class_num)
    _positive_int("feature_size", feature_size)
    if isinstance(hidden_sizes, int):
        hidden_sizes = [hidden_sizes]
    hidden = [_positive_int("hidden_sizes", h) for h in hidden_sizes]
    if code_activation not in _CODE_ACTIVATIONS:
        raise ValueError(f"Autoencoder: code_activation must be one of {_CODE_ACTIVATIONS}, "
                         f"got {code_activation!r}")
    model = Sequential().add(Reshape([feature_size]).set_name("flatten"))
    sizes = [feature_size, *hidden]
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        model.add(Linear(n_in, n_out).set_name(f"encoder_hidden{k}"))
        model.add(ReLU().set_name(f"encoder_hidden{k}_relu"))
    model.add(Linear(sizes[-1], class_num).set_name("encoder"))
    if code_activation == "relu":
        model.add(ReLU().set_name("encoder_relu"))
    back = [class_num, *reversed(hidden)]
    for k, (n_in, n_out) in enumerate(zip(back, back[1:])):
        model.add(Linear(n_in, n_out).set_name(f"decoder_hidden{k}"))
        model.add(ReLU().set_name(f"decoder_hidden{k}_relu"))
    return (model.add(Linear(back[-1], feature_size).set_name("decoder"))
            .add(Sigmoid().set_name("decoder_sigmoid")))


def autoencoder_encoder(model):
    """The encoder half of an ``Autoencoder`` (input → code), as a new model holding a copy of
    the weights as they are now (later training of ``model`` does not reach it).

    Args:
        model: a model built by :func:`Autoencoder` (its children named as that makes them).

    Input shape: as the autoencoder's.  Output shape: ``(N, class_num)`` codes.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"autoencoder_encoder: expected the Sequential Autoencoder() builds, "
                        f"got {type(model).__name__}")
    names = [model.get(i).name() for i in range(len(model))]
    if "encoder" not in names:
        raise ValueError(f"autoencoder_encoder: the model has no layer named 'encoder' (its "
                         f"children: {names})")
    end = names.index("encoder") + 1
    if end < len(names) and names[end] == "encoder_relu":
        end += 1
    snapshot = copy.deepcopy(model)
    encoder = Sequential().set_name("autoencoder_encoder")
    for i in range(end):
        encoder.add(snapshot.get(i))
    return encoder

