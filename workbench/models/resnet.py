"""ResNets (He et al. 2016): the CIFAR-10 variants of BigDL's ``models/resnet`` example and the
ImageNet ResNet-18 / ResNet-50 in torchvision's layout (and its ``state_dict`` names)."""
from __future__ import annotations

from ..nn import (CAddTable, Concat, ConcatTable, Identity, Linear, LogSoftMax, MulConstant,
                  ReLU, Reshape, Sequential, SpatialAveragePooling, SpatialBatchNormalization,
                  SpatialConvolution, SpatialMaxPooling)

__all__ = ["ResNet", "ResNet_CIFAR", "ResNet20", "ResNet32", "ResNet56", "ResNet18", "ResNet50"]


def _check_int(fn, arg, value, low):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{fn}: {arg} must be an int >= {low}, got {value!r}")


def _conv(n_in, n_out, k, stride, pad, name):
    return SpatialConvolution(n_in, n_out, k, k, stride, stride, pad, pad,
                              with_bias=False).set_name(name)


# ---------------------------------------------------------------------- CIFAR-10 (32x32)
def _cifar_shortcut(n_in, n_out, stride, shortcut_type, prefix):
    if stride == 1 and n_in == n_out:
        return Identity().set_name(f"{prefix}.shortcut")
    if shortcut_type == "A":  # parameter-free: subsample, then zero channels appended
        if n_out != 2 * n_in:
            raise ValueError(f"ResNet_CIFAR: shortcut A doubles the channels, got {n_in} -> "
                             f"{n_out}")
        return (Sequential().set_name(f"{prefix}.shortcut")
                .add(SpatialAveragePooling(1, 1, stride, stride).set_name(f"{prefix}.subsample"))
                .add(Concat(2).add(Identity()).add(MulConstant(0.0))
                     .set_name(f"{prefix}.zero_pad")))
    return (Sequential().set_name(f"{prefix}.downsample")
            .add(_conv(n_in, n_out, 1, stride, 0, f"{prefix}.downsample.0"))
            .add(SpatialBatchNormalization(n_out).set_name(f"{prefix}.downsample.1")))


def _cifar_block(n_in, n_out, stride, shortcut_type, prefix):
    body = (Sequential().set_name(f"{prefix}.body")
            .add(_conv(n_in, n_out, 3, stride, 1, f"{prefix}.conv1"))
            .add(SpatialBatchNormalization(n_out).set_name(f"{prefix}.bn1"))
            .add(ReLU().set_name(f"{prefix}.relu1"))
            .add(_conv(n_out, n_out, 3, 1, 1, f"{prefix}.conv2"))
            .add(SpatialBatchNormalization(n_out).set_name(f"{prefix}.bn2")))
    short = _cifar_shortcut(n_in, n_out, stride, shortcut_type, prefix)
    return (Sequential().set_name(prefix)
            .add(ConcatTable().add(body).add(short).set_name(f"{prefix}.branches"))
            .add(CAddTable().set_name(f"{prefix}.add"))
            .add(ReLU().set_name(f"{prefix}.relu")))


def ResNet_CIFAR(depth=20, class_num=10, shortcut_type="B"):
    """ResNet for 32x32 images (He et al. 2016, section 4.2): a 3x3 convolution, three stages
    of ``(depth - 2) / 6`` basic blocks with 16, 32 and 64 channels (the 2nd and 3rd start with
    stride 2), global average pooling and a linear layer.  Convolutions have no bias; each is
    followed by batch normalization.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110 ...).
        class_num: number of classes (> 1, default 10).
        shortcut_type: where a block changes shape, ``"B"`` (default) a 1x1 convolution of
            stride 2 + batch normalization (the "projection" option B of the paper), or ``"A"``
            the parameter-free option A (subsample by 2, append zero channels).  Identity
            elsewhere either way.

    Input shape: ``(N, 3, 32, 32)``.
    Output shape: ``(N, class_num)`` log-probabilities (train with ``ClassNLLCriterion``).
    """
    _check_int("ResNet_CIFAR", "depth", depth, 8)
    _check_int("ResNet_CIFAR", "class_num", class_num, 2)
    if (depth - 2) % 6:
        raise ValueError(f"ResNet_CIFAR: depth must be 6n + 2 (20, 32, 56 ...), got {depth}")
    if shortcut_type not in ("A", "B"):
        raise ValueError(f"ResNet_CIFAR: shortcut_type must be 'A' or 'B', got {shortcut_type!r}")
    n = (depth - 2) // 6
    model = (Sequential().add(_conv(3, 16, 3, 1, 1, "conv1"))
             .add(SpatialBatchNormalization(16).set_name("bn1")).add(ReLU().set_name("relu")))
    n_in = 16
    for stage, (n_out, stride) in enumerate(((16, 1), (32, 2), (64, 2)), 1):
        for i in range(n):
            model.add(_cifar_block(n_in, n_out, stride if i == 0 else 1, shortcut_type,
                                   f"layer{stage}.{i}"))
            n_in = n_out
    return (model.add(SpatialAveragePooling(8, 8).set_name("avgpool"))
            .add(Reshape([64]).set_name("flatten")).add(Linear(64, class_num).set_name("fc"))
            .add(LogSoftMax().set_name("log_softmax")))


def ResNet20(class_num=10, shortcut_type="B"):
    """ResNet-20 for CIFAR-10 (272,474 parameters with option B, 269,722 with A): depth 20."""
    return ResNet_CIFAR(20, class_num, shortcut_type)


def ResNet32(class_num=10, shortcut_type="B"):
    """ResNet-32 for CIFAR-10: :func:`ResNet_CIFAR` of depth 32."""
    return ResNet_CIFAR(32, class_num, shortcut_type)


def ResNet56(class_num=10, shortcut_type="B"):
    """ResNet-56 for CIFAR-10: :func:`ResNet_CIFAR` of depth 56."""
    return ResNet_CIFAR(56, class_num, shortcut_type)


# ---------------------------------------------------------------------- ImageNet (torchvision)
def _downsample(n_in, n_out, stride, prefix):
    return (Sequential().set_name(f"{prefix}.downsample")
            .add(_conv(n_in, n_out, 1, stride, 0, f"{prefix}.downsample.0"))
            .add(SpatialBatchNormalization(n_out).set_name(f"{prefix}.downsample.1")))


def _residual(body, short, prefix):
    return (Sequential().set_name(prefix)
            .add(ConcatTable().add(body).add(short).set_name(f"{prefix}.branches"))
            .add(CAddTable().set_name(f"{prefix}.add"))
            .add(ReLU().set_name(f"{prefix}.relu")))


def _basic_block(n_in, planes, stride, prefix):
    body = (Sequential().set_name(f"{prefix}.body")
            .add(_conv(n_in, planes, 3, stride, 1, f"{prefix}.conv1"))
            .add(SpatialBatchNormalization(planes).set_name(f"{prefix}.bn1"))
            .add(ReLU().set_name(f"{prefix}.relu1"))
            .add(_conv(planes, planes, 3, 1, 1, f"{prefix}.conv2"))
            .add(SpatialBatchNormalization(planes).set_name(f"{prefix}.bn2")))
    short = (Identity().set_name(f"{prefix}.shortcut") if stride == 1 and n_in == planes
             else _downsample(n_in, planes, stride, prefix))
    return _residual(body, short, prefix), planes


def _bottleneck(n_in, planes, stride, prefix):
    n_out = planes * 4
    body = (Sequential().set_name(f"{prefix}.body")
            .add(_conv(n_in, planes, 1, 1, 0, f"{prefix}.conv1"))
            .add(SpatialBatchNormalization(planes).set_name(f"{prefix}.bn1"))
            .add(ReLU().set_name(f"{prefix}.relu1"))
            .add(_conv(planes, planes, 3, stride, 1, f"{prefix}.conv2"))  # v1.5: stride here
            .add(SpatialBatchNormalization(planes).set_name(f"{prefix}.bn2"))
            .add(ReLU().set_name(f"{prefix}.relu2"))
            .add(_conv(planes, n_out, 1, 1, 0, f"{prefix}.conv3"))
            .add(SpatialBatchNormalization(n_out).set_name(f"{prefix}.bn3")))
    short = (Identity().set_name(f"{prefix}.shortcut") if stride == 1 and n_in == n_out
             else _downsample(n_in, n_out, stride, prefix))
    return _residual(body, short, prefix), n_out


def _imagenet_resnet(fn, block, counts, num_classes, log_softmax):
    _check_int(fn, "num_classes", num_classes, 2)
    model = (Sequential().add(_conv(3, 64, 7, 2, 3, "conv1"))
             .add(SpatialBatchNormalization(64).set_name("bn1")).add(ReLU().set_name("relu"))
             .add(SpatialMaxPooling(3, 3, 2, 2, 1, 1).set_name("maxpool")))
    n_in = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), counts), 1):
        for i in range(count):
            layer, n_in = block(n_in, planes, 2 if stage > 1 and i == 0 else 1,
                                f"layer{stage}.{i}")
            model.add(layer)
    model.add(SpatialAveragePooling(1, 1, global_pooling=True).set_name("avgpool"))
    model.add(Reshape([n_in]).set_name("flatten"))
    model.add(Linear(n_in, num_classes).set_name("fc"))
    if log_softmax:
        model.add(LogSoftMax().set_name("log_softmax"))
    return model


def ResNet18(num_classes=1000, log_softmax=False):
    """ResNet-18 for ImageNet in torchvision's layout (basic blocks [2, 2, 2, 2], 11,689,512
    parameters with 1000 classes).  Layers are named after torchvision's modules (``conv1``,
    ``bn1``, ``layer2.0.downsample.0``, ``fc`` ...), so :func:`workbench.models.torchvision_names`
    maps torchvision's ``state_dict`` onto it.

    Args:
        num_classes: number of classes (> 1, default 1000).
        log_softmax: append a ``LogSoftMax`` (for ``ClassNLLCriterion``); default False gives
            torchvision's logits (train with ``CrossEntropyCriterion``).

    Input shape: ``(N, 3, H, W)``, H and W >= 32 (224 for ImageNet); global average pooling
        makes any such size work.
    Output shape: ``(N, num_classes)``.
    """
    return _imagenet_resnet("ResNet18", _basic_block, (2, 2, 2, 2), num_classes, log_softmax)


def ResNet50(num_classes=1000, log_softmax=False):
    """ResNet-50 v1.5 for ImageNet in torchvision's layout (bottleneck blocks [3, 4, 6, 3], the
    stride-2 on the 3x3 convolution as torchvision; 25,557,032 parameters with 1000 classes).
    Layers are named after torchvision's modules (see :func:`ResNet18`).

    Args:
        num_classes: number of classes (> 1, default 1000).
        log_softmax: append a ``LogSoftMax``; default False gives logits.

    Input shape: ``(N, 3, H, W)``, H and W >= 32 (224 for ImageNet).
    Output shape: ``(N, num_classes)``.
    """
    return _imagenet_resnet("ResNet50", _bottleneck, (3, 4, 6, 3), num_classes, log_softmax)


def ResNet(class_num, opt=None):
    """BigDL's ``ResNet(class_num, opt)``: picks the network from ``opt``.

    Args:
        class_num: number of classes (> 1).
        opt: dict with ``"depth"`` (CIFAR: 6n + 2, default 20; ImageNet: 18 or 50),
            ``"shortcutType"`` (``"A"`` or ``"B"``, CIFAR only; default ``"B"``) and
            ``"dataSet"`` (``"cifar10"``, default, or ``"imagenet"``).

    Input shape / Output shape: those of :func:`ResNet_CIFAR` (log-probabilities) or of
    :func:`ResNet18` / :func:`ResNet50` (then with a ``LogSoftMax`` as BigDL's).
    """
    opt = dict(opt or {})
    unknown = sorted(set(opt) - {"depth", "shortcutType", "dataSet", "optnet"})
    if unknown:
        raise ValueError(f"ResNet: unknown options {unknown}")
    data_set = str(opt.get("dataSet", "cifar10")).lower()
    if data_set in ("cifar10", "cifar-10", "cifar"):
        return ResNet_CIFAR(opt.get("depth", 20), class_num, opt.get("shortcutType", "B"))
    if data_set == "imagenet":
        depth = opt.get("depth", 50)
        builders = {18: ResNet18, 50: ResNet50}
        if depth not in builders:
            raise ValueError(f"ResNet: ImageNet depth must be 18 or 50, got {depth!r}")
        return builders[depth](class_num, log_softmax=True)
    raise ValueError(f"ResNet: dataSet must be 'cifar10' or 'imagenet', got {data_set!r}")
