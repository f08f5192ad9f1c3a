"""Inception networks: GoogLeNet (Inception v1) in torchvision's layout (and its ``state_dict``
names) and BN-Inception (Inception v2) as BigDL's ``models/inception`` example."""
from __future__ import annotations

from ..nn import (AddConstant, Concat, Dropout, Linear, LogSoftMax, MulConstant, Narrow, ReLU,
                  Reshape, Sequential, SpatialAveragePooling, SpatialBatchNormalization,
                  SpatialConvolution, SpatialMaxPooling, View)

__all__ = ["GoogLeNet", "Inception_v2", "Inception_v2_NoAuxClassifier"]

# torchvision's GoogLeNet: name, input channels, (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5",
# pool projection); "maxpoolN" a 3x3 (or 2x2 for maxpool4) stride-2 ceil-mode max-pooling
_GOOGLENET = (("inception3a", 192, (64, 96, 128, 16, 32, 32)),
              ("inception3b", 256, (128, 128, 192, 32, 96, 64)),
              ("maxpool3", 3, None),
              ("inception4a", 480, (192, 96, 208, 16, 48, 64)),
              ("inception4b", 512, (160, 112, 224, 24, 64, 64)),
              ("inception4c", 512, (128, 128, 256, 24, 64, 64)),
              ("inception4d", 512, (112, 144, 288, 32, 64, 64)),
              ("inception4e", 528, (256, 160, 320, 32, 128, 128)),
              ("maxpool4", 2, None),
              ("inception5a", 832, (256, 160, 320, 32, 128, 128)),
              ("inception5b", 832, (384, 192, 384, 48, 128, 128)))

# torchvision's transform_input: ImageNet-normalized input to the (x - 0.5) / 0.5 the
# pretrained weights were trained on, channel by channel
_TRANSFORM = ((0.229 / 0.5, (0.485 - 0.5) / 0.5), (0.224 / 0.5, (0.456 - 0.5) / 0.5),
              (0.225 / 0.5, (0.406 - 0.5) / 0.5))


def _check_classes(fn, arg, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ValueError(f"{fn}: {arg} must be an int >= 2, got {value!r}")


def _basic_conv(n_in, n_out, k, name, stride=1, pad=0):
    """torchvision's BasicConv2d: convolution without bias, batch norm (eps 1e-3), ReLU."""
    return (Sequential().set_name(name)
            .add(SpatialConvolution(n_in, n_out, k, k, stride, stride, pad, pad,
                                    with_bias=False).set_name(f"{name}.conv"))
            .add(SpatialBatchNormalization(n_out, 1e-3).set_name(f"{name}.bn"))
            .add(ReLU(True).set_name(f"{name}.relu")))


def _googlenet_inception(n_in, config, name):
    c1, c3r, c3, c5r, c5, pool = config
    branch2 = (Sequential().set_name(f"{name}.branch2")
               .add(_basic_conv(n_in, c3r, 1, f"{name}.branch2.0"))
               .add(_basic_conv(c3r, c3, 3, f"{name}.branch2.1", pad=1)))
    # torchvision's "5x5" branch is a 3x3 convolution (kept for its pretrained weights)
    branch3 = (Sequential().set_name(f"{name}.branch3")
               .add(_basic_conv(n_in, c5r, 1, f"{name}.branch3.0"))
               .add(_basic_conv(c5r, c5, 3, f"{name}.branch3.1", pad=1)))
    branch4 = (Sequential().set_name(f"{name}.branch4")
               .add(SpatialMaxPooling(3, 3, 1, 1, 1, 1, to_ceil=True).set_name(f"{name}.branch4.0"))
               .add(_basic_conv(n_in, pool, 1, f"{name}.branch4.1")))
    return (Concat(2).set_name(name).add(_basic_conv(n_in, c1, 1, f"{name}.branch1"))
            .add(branch2).add(branch3).add(branch4))


def _transform_input():
    concat = Concat(2).set_name("transform_input")
    for c, (scale, shift) in enumerate(_TRANSFORM):
        concat.add(Sequential().set_name(f"transform_input.{c}")
                   .add(Narrow(2, c + 1, 1)).add(MulConstant(scale)).add(AddConstant(shift)))
    return concat


def GoogLeNet(num_classes=1000, transform_input=False, dropout=0.2, log_softmax=False):
    """GoogLeNet (Inception v1, Szegedy et al. 2014) in torchvision's layout, without the
    auxiliary classifiers: ``BasicConv2d`` blocks (convolution without bias, batch norm eps
    1e-3, ReLU), nine inception modules, global average pooling, dropout and ``fc``; 6,624,904
    parameters with 1000 classes.  Layers carry torchvision's names (``conv1.conv``,
    ``inception4a.branch2.1.bn`` ...), so :func:`workbench.models.torchvision_names` maps its
    ``state_dict`` (``aux1`` / ``aux2`` left out) onto this model.  BigDL's own
    ``Inception_v1`` (no batch norm, local response normalization) is a different network.

    Args:
        num_classes: number of classes (> 1, default 1000).
        transform_input: as torchvision's (True for its pretrained weights): re-normalize the
            ImageNet-normalized input channel by channel to ``(x - 0.5) / 0.5``; no parameters.
        dropout: dropout probability before ``fc`` (default 0.2).
        log_softmax: append a ``LogSoftMax``; default False gives logits.

    Input shape: ``(N, 3, H, W)``, H and W >= 32 (224 for ImageNet).
    Output shape: ``(N, num_classes)``.
    """
    _check_classes("GoogLeNet", "num_classes", num_classes)
    model = Sequential()
    if transform_input:
        model.add(_transform_input())
    model.add(_basic_conv(3, 64, 7, "conv1", stride=2, pad=3))
    model.add(SpatialMaxPooling(3, 3, 2, 2, to_ceil=True).set_name("maxpool1"))
    model.add(_basic_conv(64, 64, 1, "conv2"))
    model.add(_basic_conv(64, 192, 3, "conv3", pad=1))
    model.add(SpatialMaxPooling(3, 3, 2, 2, to_ceil=True).set_name("maxpool2"))
    for name, n_in, config in _GOOGLENET:
        if config is None:
            model.add(SpatialMaxPooling(n_in, n_in, 2, 2, to_ceil=True).set_name(name))
        else:
            model.add(_googlenet_inception(n_in, config, name))
    model.add(SpatialAveragePooling(1, 1, global_pooling=True).set_name("avgpool"))
    model.add(Reshape([1024]).set_name("flatten"))
    model.add(Dropout(dropout).set_name("dropout"))
    model.add(Linear(1024, num_classes).set_name("fc"))
    if log_softmax:
        model.add(LogSoftMax().set_name("log_softmax"))
    return model


# ---------------------------------------------------------------------- BN-Inception
def _conv_bn_relu(seq, n_in, n_out, k, name, stride=1, pad=0, with_bias=True):
    seq.add(SpatialConvolution(n_in, n_out, k, k, stride, stride, pad, pad,
                               with_bias=with_bias).set_name(name))
    seq.add(SpatialBatchNormalization(n_out, 1e-3).set_name(f"{name}/bn"))
    seq.add(ReLU(True).set_name(f"{name}/bn/sc/relu"))
    return seq


def _inception_v2_layer(n_in, config, prefix):
    """BigDL's ``Inception_Layer_v2``: ``config`` is ``(1x1, (3x3 reduce, 3x3), (double 3x3
    reduce, double 3x3), (pool kind, pool projection))``; a "max" pool without projection makes
    a stride-2 module."""
    c1, (c3r, c3), (d3r, d3), (kind, proj) = config
    stride = 2 if kind == "max" and proj == 0 else 1
    concat = Concat(2).set_name(f"{prefix}output")
    if c1:
        concat.add(_conv_bn_relu(Sequential(), n_in, c1, 1, f"{prefix}1x1"))
    conv3 = _conv_bn_relu(Sequential(), n_in, c3r, 1, f"{prefix}3x3_reduce")
    concat.add(_conv_bn_relu(conv3, c3r, c3, 3, f"{prefix}3x3", stride, 1))
    conv3xx = _conv_bn_relu(Sequential(), n_in, d3r, 1, f"{prefix}double3x3_reduce")
    _conv_bn_relu(conv3xx, d3r, d3, 3, f"{prefix}double3x3a", 1, 1)
    concat.add(_conv_bn_relu(conv3xx, d3, d3, 3, f"{prefix}double3x3b", stride, 1))
    pool = Sequential()
    if kind == "max" and proj == 0:
        pool.add(SpatialMaxPooling(3, 3, 2, 2, to_ceil=True).set_name(f"{prefix}pool"))
    elif kind == "max":
        pool.add(SpatialMaxPooling(3, 3, 1, 1, 1, 1, to_ceil=True).set_name(f"{prefix}pool"))
    else:
        pool.add(SpatialAveragePooling(3, 3, 1, 1, 1, 1, ceil_mode=True)
                 .set_name(f"{prefix}pool"))
    if proj:
        _conv_bn_relu(pool, n_in, proj, 1, f"{prefix}pool_proj")
    return concat.add(pool)


_INCEPTION_V2 = (("inception_3a/", 192, (64, (64, 64), (64, 96), ("avg", 32))),
                 ("inception_3b/", 256, (64, (64, 96), (64, 96), ("avg", 64))),
                 ("inception_3c/", 320, (0, (128, 160), (64, 96), ("max", 0))),
                 ("inception_4a/", 576, (224, (64, 96), (96, 128), ("avg", 128))),
                 ("inception_4b/", 576, (192, (96, 128), (96, 128), ("avg", 128))),
                 ("inception_4c/", 576, (160, (128, 160), (128, 160), ("avg", 96))),
                 ("inception_4d/", 576, (96, (128, 192), (160, 192), ("avg", 96))),
                 ("inception_4e/", 576, (0, (128, 192), (192, 256), ("max", 0))),
                 ("inception_5a/", 1024, (352, (192, 320), (160, 224), ("avg", 128))),
                 ("inception_5b/", 1024, (352, (192, 320), (192, 224), ("max", 128))))


def Inception_v2_NoAuxClassifier(class_num=1000):
    """BN-Inception (Ioffe & Szegedy 2015) as BigDL's ``Inception_v2_NoAuxClassifier``:
    convolution + batch norm (eps 1e-3) + ReLU everywhere, ten inception modules (two of them
    stride 2), 7x7 average pooling, a linear layer and log-softmax.  Layers carry BigDL's (and
    the Caffe model's) names: ``conv1/7x7_s2``, ``inception_3a/1x1/bn``, ``loss3/classifier``.

    Args:
        class_num: number of classes (> 1, default 1000).

    Input shape: ``(N, 3, 224, 224)``.
    Output shape: ``(N, class_num)`` log-probabilities (train with ``ClassNLLCriterion``).
    """
    _check_classes("Inception_v2", "class_num", class_num)
    model = Sequential()
    _conv_bn_relu(model, 3, 64, 7, "conv1/7x7_s2", 2, 3, with_bias=False)
    model.add(SpatialMaxPooling(3, 3, 2, 2, to_ceil=True).set_name("pool1/3x3_s2"))
    _conv_bn_relu(model, 64, 64, 1, "conv2/3x3_reduce")
    _conv_bn_relu(model, 64, 192, 3, "conv2/3x3", 1, 1)
    model.add(SpatialMaxPooling(3, 3, 2, 2, to_ceil=True).set_name("pool2/3x3_s2"))
    for prefix, n_in, config in _INCEPTION_V2:
        model.add(_inception_v2_layer(n_in, config, prefix))
    model.add(SpatialAveragePooling(7, 7, 1, 1, ceil_mode=True).set_name("pool5/7x7_s1"))
    model.add(View([1024], num_input_dims=3).set_name("flatten"))
    model.add(Linear(1024, class_num).set_name("loss3/classifier"))
    model.add(LogSoftMax().set_name("loss3/loss"))
    return model


def Inception_v2(class_num=1000):
    """BN-Inception without the auxiliary classifiers: :func:`Inception_v2_NoAuxClassifier`
    (BigDL's ``Inception_v2`` adds two auxiliary heads for training; they are left out here).

    Input shape: ``(N, 3, 224, 224)``.
    Output shape: ``(N, class_num)`` log-probabilities.
    """
    return Inception_v2_NoAuxClassifier(class_num)
