"""VGG: BigDL's CIFAR-10 network (``models/vgg``, conv-BN-ReLU stacks with dropout) and the
ImageNet VGG-16 / VGG-19 in torchvision's layout (and its ``state_dict`` names)."""
from __future__ import annotations

from ..nn import (BatchNormalization, Dropout, Identity, Linear, LogSoftMax, ReLU, Sequential,
                  SpatialAveragePooling, SpatialBatchNormalization, SpatialConvolution,
                  SpatialMaxPooling, View)

__all__ = ["VggForCifar10", "VGG16", "VGG19", "Vgg_16", "Vgg_19"]

# torchvision's configurations "D" and "E": channels of each 3x3 convolution, "M" a max-pooling
_CONFIGS = {16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"),
            19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M")}


def _check_classes(fn, arg, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ValueError(f"{fn}: {arg} must be an int >= 2, got {value!r}")


def VggForCifar10(class_num=10, has_dropout=True):
    """BigDL's VGG-16 for CIFAR-10 (after Zagoruyko's "92.45% on CIFAR-10 in Torch"): 13 blocks
    of 3x3 convolution + batch normalization (eps 1e-3) + ReLU in five stages (64, 128, 256,
    512, 512 channels) each closed by a 2x2 max-pooling (ceil mode), dropout inside the stages,
    then dropout → linear 512 → batch norm → ReLU → dropout → linear → log-softmax.

    Args:
        class_num: number of classes (> 1, default 10).
        has_dropout: keep the dropout layers (BigDL's ``hasDropout``, default True).

    Input shape: ``(N, 3, 32, 32)``.
    Output shape: ``(N, class_num)`` log-probabilities (train with ``ClassNLLCriterion``).
    """
    _check_classes("VggForCifar10", "class_num", class_num)
    model = Sequential()
    index = [0]

    def conv_bn_relu(n_in, n_out, p=None):
        k = index[0]
        model.add(SpatialConvolution(n_in, n_out, 3, 3, 1, 1, 1, 1).set_name(f"conv{k}"))
        model.add(SpatialBatchNormalization(n_out, 1e-3).set_name(f"bn{k}"))
        model.add(ReLU(True).set_name(f"relu{k}"))
        if p is not None and has_dropout:
            model.add(Dropout(p).set_name(f"dropout{k}"))
        index[0] += 1

    def pool():
        model.add(SpatialMaxPooling(2, 2, 2, 2, to_ceil=True).set_name(f"pool{index[0] - 1}"))

    conv_bn_relu(3, 64, 0.3)
    conv_bn_relu(64, 64)
    pool()
    conv_bn_relu(64, 128, 0.4)
    conv_bn_relu(128, 128)
    pool()
    conv_bn_relu(128, 256, 0.4)
    conv_bn_relu(256, 256, 0.4)
    conv_bn_relu(256, 256)
    pool()
    for n_in in (256, 512):
        conv_bn_relu(n_in, 512, 0.4)
        conv_bn_relu(512, 512, 0.4)
        conv_bn_relu(512, 512)
        pool()
    model.add(View([512], num_input_dims=3).set_name("flatten"))
    classifier = Sequential().set_name("classifier")
    if has_dropout:
        classifier.add(Dropout(0.5).set_name("classifier.dropout0"))
    classifier.add(Linear(512, 512).set_name("classifier.fc0"))
    classifier.add(BatchNormalization(512).set_name("classifier.bn0"))
    classifier.add(ReLU(True).set_name("classifier.relu0"))
    if has_dropout:
        classifier.add(Dropout(0.5).set_name("classifier.dropout1"))
    classifier.add(Linear(512, class_num).set_name("classifier.fc1"))
    classifier.add(LogSoftMax().set_name("log_softmax"))
    return model.add(classifier)


def _vgg(fn, depth, num_classes, input_size, dropout, log_softmax):
    _check_classes(fn, "num_classes", num_classes)
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 224 \
            or input_size % 224:
        raise ValueError(f"{fn}: input_size must be 224 or a multiple of it (torchvision pools "
                         f"the features to 7x7 adaptively; here by exact windows), got "
                         f"{input_size!r}")
    k = input_size // 224
    model = Sequential()
    features = Sequential().set_name("features")
    n_in, i = 3, 0
    for v in _CONFIGS[depth]:
        if v == "M":
            features.add(SpatialMaxPooling(2, 2, 2, 2).set_name(f"features.{i}"))
            i += 1
        else:
            features.add(SpatialConvolution(n_in, v, 3, 3, 1, 1, 1, 1).set_name(f"features.{i}"))
            features.add(ReLU(True).set_name(f"features.{i + 1}"))
            n_in, i = v, i + 2
    model.add(features)
    model.add(Identity().set_name("avgpool") if k == 1 else
              SpatialAveragePooling(k, k, k, k).set_name("avgpool"))
    model.add(View([512 * 7 * 7], num_input_dims=3).set_name("flatten"))
    classifier = Sequential().set_name("classifier")
    classifier.add(Linear(512 * 7 * 7, 4096).set_name("classifier.0"))
    classifier.add(ReLU(True).set_name("classifier.1"))
    classifier.add(Dropout(dropout).set_name("classifier.2"))
    classifier.add(Linear(4096, 4096).set_name("classifier.3"))
    classifier.add(ReLU(True).set_name("classifier.4"))
    classifier.add(Dropout(dropout).set_name("classifier.5"))
    classifier.add(Linear(4096, num_classes).set_name("classifier.6"))
    model.add(classifier)
    if log_softmax:
        model.add(LogSoftMax().set_name("log_softmax"))
    return model


def VGG16(num_classes=1000, dropout=0.5, input_size=224, log_softmax=False):
    """VGG-16 (configuration D) for ImageNet in torchvision's layout, without batch norm:
    ``features`` (13 3x3 convolutions with ReLU, 5 max-poolings), ``avgpool`` (7x7 output),
    ``classifier`` (4096 → 4096 → classes with ReLU and dropout); 138,357,544 parameters with
    1000 classes.  Layers carry torchvision's names (``features.0``, ``classifier.6`` ...), so
    :func:`workbench.models.torchvision_names` maps its ``state_dict`` onto this model.

    Args:
        num_classes: number of classes (> 1, default 1000).
        dropout: dropout probability of the classifier (default 0.5).
        input_size: side of the square input, 224 (default) or a multiple of 224 (torchvision's
            adaptive pooling to 7x7 is then an exact average pooling; at 224 it is the identity).
        log_softmax: append a ``LogSoftMax`` (for ``ClassNLLCriterion``); default False gives
            torchvision's logits.

    Input shape: ``(N, 3, input_size, input_size)``.
    Output shape: ``(N, num_classes)``.
    """
    return _vgg("VGG16", 16, num_classes, input_size, dropout, log_softmax)


def VGG19(num_classes=1000, dropout=0.5, input_size=224, log_softmax=False):
    """VGG-19 (configuration E) for ImageNet in torchvision's layout (16 convolutions;
    143,667,240 parameters with 1000 classes); arguments and shapes as :func:`VGG16`.

    Input shape: ``(N, 3, input_size, input_size)``.
    Output shape: ``(N, num_classes)``.
    """
    return _vgg("VGG19", 19, num_classes, input_size, dropout, log_softmax)


def Vgg_16(class_num=1000, has_dropout=True):
    """BigDL's ``Vgg_16(class_num, has_dropout)``: :func:`VGG16` with a ``LogSoftMax`` output.

    Input shape: ``(N, 3, 224, 224)``.
    Output shape: ``(N, class_num)`` log-probabilities.
    """
    return VGG16(class_num, 0.5 if has_dropout else 0.0, log_softmax=True)


def Vgg_19(class_num=1000, has_dropout=True):
    """BigDL's ``Vgg_19(class_num, has_dropout)``: :func:`VGG19` with a ``LogSoftMax`` output.

    Input shape: ``(N, 3, 224, 224)``.
    Output shape: ``(N, class_num)`` log-probabilities.
    """
    return VGG19(class_num, 0.5 if has_dropout else 0.0, log_softmax=True)
