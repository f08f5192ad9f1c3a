"""Caffe models in: ``load_caffe_model(def_path, model_path)`` and ``load_caffe(model, ...)``.

A Caffe model is a ``NetParameter`` protobuf message: the definition (``.prototxt``) in protobuf's
text format, the trained weights (``.caffemodel``) in its binary format.  Caffe itself is not
needed: the messages used here are described below with Caffe's public field numbers
(``caffe.proto``) and built into protobuf classes when this module is imported, so reading a file
is protobuf parsing only (never code execution).  Both the current ``layer {}`` (V2) and the old
``layers {}`` (V1, enum layer types) are read.

    model = load_caffe_model("deploy.prototxt", "weights.caffemodel")   # a new Module
    load_caffe(my_model, "deploy.prototxt", "weights.caffemodel")       # weights by layer name

The layers map to ``workbench.nn`` as BigDL's ``CaffeLoader`` mapped them; a network whose layers
form one chain becomes a ``Sequential``, anything else a ``Graph`` following the bottom / top
blob names.  Each module is named after its Caffe layer.  A layer type outside the supported set
raises :class:`~workbench.io.ModelFileError` naming the layer and its type.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .. import nn
from ..nn.module import allocation_budget
from .archive import ModelFileError

__all__ = ["load_caffe_model", "load_caffe", "SUPPORTED_LAYERS"]

# --------------------------------------------------------------------------- the schema
# (field name, number, type, label) where type is a scalar type name, ".Message" or "enum:Name";
# label "r" repeated, "o" optional.  Numbers are those of Caffe's public caffe.proto.
_SCALARS = {"double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "bool": 8,
            "string": 9, "bytes": 12, "uint32": 13}
_ENGINE = {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}
_MESSAGES = {
    "BlobShape": ([("dim", 1, "int64", "r")], {}),
    "BlobProto": ([("shape", 7, ".BlobShape", "o"), ("data", 5, "float", "r"),
                   ("diff", 6, "float", "r"), ("double_data", 8, "double", "r"),
                   ("double_diff", 9, "double", "r"), ("num", 1, "int32", "o"),
                   ("channels", 2, "int32", "o"), ("height", 3, "int32", "o"),
                   ("width", 4, "int32", "o")], {}),
    "FillerParameter": ([("type", 1, "string", "o"), ("value", 2, "float", "o"),
                         ("min", 3, "float", "o"), ("max", 4, "float", "o"),
                         ("mean", 5, "float", "o"), ("std", 6, "float", "o"),
                         ("sparse", 7, "int32", "o"),
                         ("variance_norm", 8, "enum:VarianceNorm", "o")],
                        {"VarianceNorm": {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2}}),
    "NetState": ([("phase", 1, "enum:.Phase", "o"), ("level", 2, "int32", "o"),
                  ("stage", 3, "string", "r")], {}),
    "NetStateRule": ([("phase", 1, "enum:.Phase", "o"), ("min_level", 2, "int32", "o"),
                      ("max_level", 3, "int32", "o"), ("stage", 4, "string", "r"),
                      ("not_stage", 5, "string", "r")], {}),
    "ParamSpec": ([("name", 1, "string", "o"), ("share_mode", 2, "enum:DimCheckMode", "o"),
                   ("lr_mult", 3, "float", "o"), ("decay_mult", 4, "float", "o")],
                  {"DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1}}),
    "ConvolutionParameter": ([("num_output", 1, "uint32", "o"), ("bias_term", 2, "bool", "o"),
                              ("pad", 3, "uint32", "r"), ("kernel_size", 4, "uint32", "r"),
                              ("stride", 6, "uint32", "r"), ("dilation", 18, "uint32", "r"),
                              ("pad_h", 9, "uint32", "o"), ("pad_w", 10, "uint32", "o"),
                              ("kernel_h", 11, "uint32", "o"), ("kernel_w", 12, "uint32", "o"),
                              ("stride_h", 13, "uint32", "o"), ("stride_w", 14, "uint32", "o"),
                              ("group", 5, "uint32", "o"),
                              ("weight_filler", 7, ".FillerParameter", "o"),
                              ("bias_filler", 8, ".FillerParameter", "o"),
                              ("engine", 15, "enum:Engine", "o"), ("axis", 16, "int32", "o"),
                              ("force_nd_im2col", 17, "bool", "o")], {"Engine": _ENGINE}),
    "PoolingParameter": ([("pool", 1, "enum:PoolMethod", "o"), ("pad", 4, "uint32", "o"),
                          ("pad_h", 9, "uint32", "o"), ("pad_w", 10, "uint32", "o"),
                          ("kernel_size", 2, "uint32", "o"), ("kernel_h", 5, "uint32", "o"),
                          ("kernel_w", 6, "uint32", "o"), ("stride", 3, "uint32", "o"),
                          ("stride_h", 7, "uint32", "o"), ("stride_w", 8, "uint32", "o"),
                          ("engine", 11, "enum:Engine", "o"),
                          ("global_pooling", 12, "bool", "o"),
                          ("round_mode", 13, "enum:RoundMode", "o")],
                         {"PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
                          "Engine": _ENGINE, "RoundMode": {"CEIL": 0, "FLOOR": 1}}),
    "InnerProductParameter": ([("num_output", 1, "uint32", "o"), ("bias_term", 2, "bool", "o"),
                               ("weight_filler", 3, ".FillerParameter", "o"),
                               ("bias_filler", 4, ".FillerParameter", "o"),
                               ("axis", 5, "int32", "o"), ("transpose", 6, "bool", "o")], {}),
    "LRNParameter": ([("local_size", 1, "uint32", "o"), ("alpha", 2, "float", "o"),
                      ("beta", 3, "float", "o"), ("norm_region", 4, "enum:NormRegion", "o"),
                      ("k", 5, "float", "o"), ("engine", 6, "enum:Engine", "o")],
                     {"NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1},
                      "Engine": _ENGINE}),
    "BatchNormParameter": ([("use_global_stats", 1, "bool", "o"),
                            ("moving_average_fraction", 2, "float", "o"),
                            ("eps", 3, "float", "o")], {}),
    "ScaleParameter": ([("axis", 1, "int32", "o"), ("num_axes", 2, "int32", "o"),
                        ("filler", 3, ".FillerParameter", "o"), ("bias_term", 4, "bool", "o"),
                        ("bias_filler", 5, ".FillerParameter", "o")], {}),
    "DropoutParameter": ([("dropout_ratio", 1, "float", "o")], {}),
    "ConcatParameter": ([("axis", 2, "int32", "o"), ("concat_dim", 1, "uint32", "o")], {}),
    "EltwiseParameter": ([("operation", 1, "enum:EltwiseOp", "o"), ("coeff", 2, "float", "r"),
                          ("stable_prod_grad", 3, "bool", "o")],
                         {"EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2}}),
    "ReLUParameter": ([("negative_slope", 1, "float", "o"), ("engine", 2, "enum:Engine", "o")],
                      {"Engine": _ENGINE}),
    "SoftmaxParameter": ([("engine", 1, "enum:Engine", "o"), ("axis", 2, "int32", "o")],
                         {"Engine": _ENGINE}),
    "InputParameter": ([("shape", 1, ".BlobShape", "r")], {}),
    "FlattenParameter": ([("axis", 1, "int32", "o"), ("end_axis", 2, "int32", "o")], {}),
    "ReshapeParameter": ([("shape", 1, ".BlobShape", "o"), ("axis", 2, "int32", "o"),
                          ("num_axes", 3, "int32", "o")], {}),
    "PowerParameter": ([("power", 1, "float", "o"), ("scale", 2, "float", "o"),
                        ("shift", 3, "float", "o")], {}),
    "ELUParameter": ([("alpha", 1, "float", "o")], {}),
}
_DEFAULTS = {  # Caffe's non-zero defaults, as (message, field): value
    ("ConvolutionParameter", "bias_term"): "true", ("ConvolutionParameter", "group"): "1",
    ("ConvolutionParameter", "axis"): "1", ("PoolingParameter", "stride"): "1",
    ("InnerProductParameter", "bias_term"): "true", ("InnerProductParameter", "axis"): "1",
    ("LRNParameter", "local_size"): "5", ("LRNParameter", "alpha"): "1",
    ("LRNParameter", "beta"): "0.75", ("LRNParameter", "k"): "1",
    ("BatchNormParameter", "moving_average_fraction"): "0.999",
    ("BatchNormParameter", "eps"): "1e-05", ("ScaleParameter", "axis"): "1",
    ("ScaleParameter", "num_axes"): "1", ("DropoutParameter", "dropout_ratio"): "0.5",
    ("ConcatParameter", "axis"): "1", ("ConcatParameter", "concat_dim"): "1",
    ("EltwiseParameter", "operation"): "SUM", ("EltwiseParameter", "stable_prod_grad"): "true",
    ("SoftmaxParameter", "axis"): "1", ("FlattenParameter", "axis"): "1",
    ("FlattenParameter", "end_axis"): "-1", ("ReshapeParameter", "num_axes"): "-1",
    ("PowerParameter", "power"): "1", ("PowerParameter", "scale"): "1",
    ("ELUParameter", "alpha"): "1", ("FillerParameter", "type"): "constant",
    ("ParamSpec", "lr_mult"): "1", ("ParamSpec", "decay_mult"): "1",
}
_PARAMS = [  # (field, number, message) in LayerParameter (V2) and V1LayerParameter (V1 number)
    ("batch_norm_param", 139, None, "BatchNormParameter"),
    ("concat_param", 104, 9, "ConcatParameter"),
    ("convolution_param", 106, 10, "ConvolutionParameter"),
    ("dropout_param", 108, 12, "DropoutParameter"),
    ("eltwise_param", 110, 24, "EltwiseParameter"),
    ("elu_param", 140, None, "ELUParameter"),
    ("flatten_param", 135, None, "FlattenParameter"),
    ("inner_product_param", 117, 17, "InnerProductParameter"),
    ("input_param", 143, None, "InputParameter"),
    ("lrn_param", 118, 18, "LRNParameter"),
    ("pooling_param", 121, 19, "PoolingParameter"),
    ("power_param", 122, 21, "PowerParameter"),
    ("relu_param", 123, 30, "ReLUParameter"),
    ("reshape_param", 133, None, "ReshapeParameter"),
    ("scale_param", 142, None, "ScaleParameter"),
    ("softmax_param", 125, 39, "SoftmaxParameter"),
]
_V1_TYPES = {  # V1LayerParameter.LayerType
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
    "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
    "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
    "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
    "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
    "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
    "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}
# V1 enum name -> V2 type string
_V1_TO_V2 = {"ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "BNLL": "BNLL", "CONCAT": "Concat",
             "CONVOLUTION": "Convolution", "DATA": "Data", "DROPOUT": "Dropout",
             "DUMMY_DATA": "DummyData", "ELTWISE": "Eltwise", "FLATTEN": "Flatten",
             "HDF5_DATA": "HDF5Data", "IMAGE_DATA": "ImageData", "INNER_PRODUCT": "InnerProduct",
             "LRN": "LRN", "MEMORY_DATA": "MemoryData", "POOLING": "Pooling", "POWER": "Power",
             "RELU": "ReLU", "SIGMOID": "Sigmoid", "SILENCE": "Silence", "SOFTMAX": "Softmax",
             "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "TANH": "TanH",
             "EUCLIDEAN_LOSS": "EuclideanLoss", "HINGE_LOSS": "HingeLoss",
             "INFOGAIN_LOSS": "InfogainLoss", "WINDOW_DATA": "WindowData",
             "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
             "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
             "CONTRASTIVE_LOSS": "ContrastiveLoss"}


def _build_classes():
    from google.protobuf import descriptor_pb2, descriptor_pool

    fdp = descriptor_pb2.FileDescriptorProto(name="workbench_caffe.proto",
                                             package="workbench_caffe", syntax="proto2")
    phase = fdp.enum_type.add(name="Phase")
    for n, v in (("TRAIN", 0), ("TEST", 1)):
        phase.value.add(name=n, number=v)
    F = descriptor_pb2.FieldDescriptorProto

    def add_message(name, fields, enums):
        msg = fdp.message_type.add(name=name)
        for enum_name, values in enums.items():
            e = msg.enum_type.add(name=enum_name)
            for n, v in values.items():
                e.value.add(name=n, number=v)
        for fname, number, ftype, label in fields:
            f = msg.field.add(name=fname, number=number,
                              label=F.LABEL_REPEATED if label == "r" else F.LABEL_OPTIONAL)
            if ftype.startswith("."):
                f.type, f.type_name = F.TYPE_MESSAGE, ".workbench_caffe" + ftype
            elif ftype.startswith("enum:"):
                ref = ftype[5:]
                f.type = F.TYPE_ENUM
                f.type_name = (".workbench_caffe" + ref if ref.startswith(".")
                               else f".workbench_caffe.{name}.{ref}")
            else:
                f.type = _SCALARS[ftype]
            if label == "r" and ftype in ("int64", "float", "double") and name in (
                    "BlobShape", "BlobProto"):
                f.options.packed = True
            default = _DEFAULTS.get((name, fname))
            if default is not None:
                f.default_value = default

    for name, (fields, enums) in _MESSAGES.items():
        add_message(name, fields, enums)
    params = [(f, n2, "." + m) for f, n2, _, m in _PARAMS]
    common = [("include", 8, ".NetStateRule", "r"), ("exclude", 9, ".NetStateRule", "r")]
    add_message("LayerParameter",
                [("name", 1, "string", "o"), ("type", 2, "string", "o"),
                 ("bottom", 3, "string", "r"), ("top", 4, "string", "r"),
                 ("phase", 10, "enum:.Phase", "o"), ("loss_weight", 5, "float", "r"),
                 ("param", 6, ".ParamSpec", "r"), ("blobs", 7, ".BlobProto", "r"),
                 ("propagate_down", 11, "bool", "r")] + common
                + [(f, n, m, "o") for f, n, m in params], {})
    v1_params = [(f, n1, "." + m, "o") for f, _, n1, m in _PARAMS if n1 is not None]
    add_message("V1LayerParameter",
                [("bottom", 2, "string", "r"), ("top", 3, "string", "r"),
                 ("name", 4, "string", "o"), ("include", 32, ".NetStateRule", "r"),
                 ("exclude", 33, ".NetStateRule", "r"), ("type", 5, "enum:LayerType", "o"),
                 ("blobs", 6, ".BlobProto", "r"), ("param", 1001, "string", "r"),
                 ("blobs_lr", 7, "float", "r"), ("weight_decay", 8, "float", "r"),
                 ("loss_weight", 35, "float", "r")] + v1_params,
                {"LayerType": _V1_TYPES})
    add_message("NetParameter",
                [("name", 1, "string", "o"), ("input", 3, "string", "r"),
                 ("input_shape", 8, ".BlobShape", "r"), ("input_dim", 4, "int32", "r"),
                 ("force_backward", 5, "bool", "o"), ("state", 6, ".NetState", "o"),
                 ("debug_info", 7, "bool", "o"), ("layer", 100, ".LayerParameter", "r"),
                 ("layers", 2, ".V1LayerParameter", "r")], {})
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(fdp.SerializeToString())
    try:
        from google.protobuf.message_factory import GetMessageClass

        def get(name):
            return GetMessageClass(pool.FindMessageTypeByName(f"workbench_caffe.{name}"))
    except ImportError:  # protobuf < 4.21
        from google.protobuf import message_factory
        factory = message_factory.MessageFactory(pool)

        def get(name):
            return factory.GetPrototype(pool.FindMessageTypeByName(f"workbench_caffe.{name}"))
    return {name: get(name) for name in list(_MESSAGES) + ["LayerParameter",
                                                           "V1LayerParameter", "NetParameter"]}


_CLASSES = _build_classes()
NetParameter = _CLASSES["NetParameter"]
LayerParameter = _CLASSES["LayerParameter"]
V1LayerParameter = _CLASSES["V1LayerParameter"]
BlobProto = _CLASSES["BlobProto"]
BlobShape = _CLASSES["BlobShape"]

# --------------------------------------------------------------------------- reading files
_MAX_PROTOTXT = 64 << 20


def _read_prototxt(path):
    from google.protobuf import text_format

    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > _MAX_PROTOTXT:
        raise ModelFileError(f"{path}: {size} bytes is too large for a Caffe definition")
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    net = NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise ModelFileError(f"{path}: not a Caffe prototxt ({e})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: the definition is nested too deeply") from None
    return net


def _read_caffemodel(path):
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    net = NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelFileError(f"{path}: not a Caffe binary model, or truncated ({e})") from None
    if not net.layer and not net.layers:
        raise ModelFileError(f"{path}: no layers in this Caffe binary model")
    return net


class _Layer:
    """One layer of either version, V1 types translated to V2 names."""

    def __init__(self, msg, v1):
        self.msg = msg
        self.name = msg.name
        if v1:
            enum = msg.DESCRIPTOR.enum_types_by_name["LayerType"]
            value = enum.values_by_number.get(msg.type)
            key = value.name if value is not None else str(msg.type)
            self.type = _V1_TO_V2.get(key, key)
        else:
            self.type = msg.type
        self.bottom, self.top = list(msg.bottom), list(msg.top)

    def param(self, field):
        return getattr(self.msg, field) if field in self.msg.DESCRIPTOR.fields_by_name else None

    def has(self, field):
        return field in self.msg.DESCRIPTOR.fields_by_name and self.msg.HasField(field)


def _rule_met(rule):
    # the TEST phase, level 0, no stages: what a deployed network is
    if rule.HasField("phase") and rule.phase != 1:
        return False
    if rule.HasField("min_level") and rule.min_level > 0:
        return False
    if rule.HasField("max_level") and rule.max_level < 0:
        return False
    return not rule.stage


def _layers(net):
    out = []
    for msg, v1 in [(m, False) for m in net.layer] + [(m, True) for m in net.layers]:
        if msg.include and not any(_rule_met(r) for r in msg.include):
            continue
        if any(_rule_met(r) for r in msg.exclude):
            continue
        out.append(_Layer(msg, v1))
    return out


def _blob_array(path, layer_name, k, blob):
    """A blob's values as float32, its declared shape checked against the values present."""
    values = blob.double_data if len(blob.double_data) else blob.data
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
        while len(shape) > 1 and shape[0] in (0, 1):  # legacy (1, 1, N, K): drop leading ones
            shape = shape[1:]
        if shape == (0,):
            shape = (len(values),)
    if any(d < 0 for d in shape) or math.prod(shape) != len(values):
        raise ModelFileError(f"{path}: layer {layer_name!r} blob {k} declares shape {shape} "
                             f"but holds {len(values)} values")
    return np.asarray(values, dtype=np.float32).reshape(shape)


def _weights(path, net):
    """``{layer name: [arrays]}`` of the layers of a binary model that hold blobs."""
    out = {}
    for layer in _layers(net):
        blobs = layer.msg.blobs
        if len(blobs):
            out[layer.name] = [_blob_array(path, layer.name, k, b) for k, b in enumerate(blobs)]
    return out


# --------------------------------------------------------------------------- conversion
_INPUT_TYPES = {"Input", "Data", "ImageData", "HDF5Data", "MemoryData", "DummyData",
                "WindowData", "AnnotatedData"}
_SKIPPED_TYPES = {"Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
                  "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
                  "Silence", "HDF5Output"}
SUPPORTED_LAYERS = ("Input", "Convolution", "Pooling", "InnerProduct", "ReLU", "Sigmoid", "TanH",
                    "Softmax", "LRN", "Dropout", "Concat", "Eltwise", "BatchNorm", "Scale",
                    "Flatten", "Reshape", "Split", "Power", "ELU", "AbsVal")


def _pair(layer, p, name, default):
    """Caffe's ``name`` / ``name_h`` + ``name_w`` convention: ``(h, w)``."""
    fields = p.DESCRIPTOR.fields_by_name
    if f"{name}_h" in fields and (p.HasField(f"{name}_h") or p.HasField(f"{name}_w")):
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))
    value = getattr(p, name if name != "kernel" else "kernel_size")
    if isinstance(value, int):
        has = p.HasField(name if name != "kernel" else "kernel_size")
        v = int(value) if has else default
        return v, v
    values = [int(v) for v in value]
    if not values:
        if default is None:
            raise ModelFileError(f"Caffe layer {layer.name!r}: no {name} given")
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise ModelFileError(f"Caffe layer {layer.name!r} ({layer.type}): {len(values)}-D "
                         f"{name} {values} is not supported (2-D only)")


class _Converter:
    def __init__(self, where, weights):
        self.where = where
        self.weights = weights

    def fail(self, layer, what):
        raise ModelFileError(f"{self.where}: Caffe layer {layer.name!r} ({layer.type}): {what}")

    def blobs(self, layer, n_min):
        blobs = self.weights.get(layer.name)
        if blobs is None or len(blobs) < n_min:
            self.fail(layer, f"needs {n_min} weight blob(s) in the binary model, found "
                             f"{0 if blobs is None else len(blobs)}")
        return blobs

    def reshaped(self, layer, blob, shape, k=0):
        if blob.size != math.prod(shape):
            self.fail(layer, f"blob {k} has shape {blob.shape}, expected {tuple(shape)}")
        return blob.reshape(shape)

    # each returns a list of modules applied in a chain, and the rank of the output
    def convert(self, layer, rank):
        method = getattr(self, "_" + layer.type.lower(), None)
        if method is None:
            self.fail(layer, "layer type not supported (supported: "
                             + ", ".join(SUPPORTED_LAYERS) + ")")
        return method(layer, rank)

    def _convolution(self, layer, rank):
        p = layer.param("convolution_param")
        if p.axis != 1:
            self.fail(layer, f"axis {p.axis} is not supported")
        kh, kw = _pair(layer, p, "kernel", None)
        sh, sw = _pair(layer, p, "stride", 1)
        ph, pw = _pair(layer, p, "pad", 0)
        dh, dw = _pair(layer, p, "dilation", 1)
        n_out, group = int(p.num_output), int(p.group)
        blobs = self.blobs(layer, 2 if p.bias_term else 1)
        if n_out <= 0 or group <= 0 or kh <= 0 or kw <= 0:
            self.fail(layer, f"bad geometry num_output={n_out} group={group} kernel={kh}x{kw}")
        per = n_out * kh * kw
        if blobs[0].size % per:
            self.fail(layer, f"weight blob of shape {blobs[0].shape} does not fit "
                             f"num_output={n_out}, kernel {kh}x{kw}")
        n_in = blobs[0].size // per * group
        weight = self.reshaped(layer, blobs[0], (n_out, n_in // group, kh, kw))
        if dh != 1 or dw != 1:
            if group != 1:
                self.fail(layer, "dilation with group > 1 is not supported")
            m = nn.SpatialDilatedConvolution(n_in, n_out, kw, kh, sw, sh, pw, ph, dw, dh)
        else:
            m = nn.SpatialConvolution(n_in, n_out, kw, kh, sw, sh, pw, ph, n_group=group,
                                      with_bias=bool(p.bias_term))
        m.weight[...] = weight
        if getattr(m, "with_bias", True) and hasattr(m, "bias"):
            m.bias[...] = (self.reshaped(layer, blobs[1], (n_out,), 1) if p.bias_term else 0)
        return [m], 4

    def _pooling(self, layer, rank):
        p = layer.param("pooling_param")
        if p.pool == 2:
            self.fail(layer, "STOCHASTIC pooling is not supported")
        ceil = p.round_mode == 0
        if p.global_pooling:
            if p.pool == 1:
                return [nn.SpatialAveragePooling(1, 1, global_pooling=True)], 4
            return [nn.GlobalMaxPooling2D(), nn.InferReshape([0, 0, 1, 1])], 4
        kh, kw = _pair(layer, p, "kernel", None)
        sh, sw = _pair(layer, p, "stride", 1)
        ph, pw = _pair(layer, p, "pad", 0)
        if p.pool == 0:
            return [nn.SpatialMaxPooling(kw, kh, sw, sh, pw, ph, to_ceil=ceil)], 4
        return [nn.SpatialAveragePooling(kw, kh, sw, sh, pw, ph, ceil_mode=ceil,
                                         count_include_pad=True)], 4

    def _innerproduct(self, layer, rank):
        p = layer.param("inner_product_param")
        if p.axis != 1:
            self.fail(layer, f"axis {p.axis} is not supported")
        n_out = int(p.num_output)
        blobs = self.blobs(layer, 2 if p.bias_term else 1)
        if n_out <= 0 or blobs[0].size % n_out:
            self.fail(layer, f"weight blob of shape {blobs[0].shape} does not fit "
                             f"num_output={n_out}")
        n_in = blobs[0].size // n_out
        w = blobs[0].reshape((n_in, n_out)).T if p.transpose else blobs[0].reshape(
            (n_out, n_in))
        m = nn.Linear(n_in, n_out, with_bias=bool(p.bias_term))
        m.weight[...] = w
        if p.bias_term:
            m.bias[...] = self.reshaped(layer, blobs[1], (n_out,), 1)
        chain = [m]
        if rank != 2:
            chain.insert(0, nn.InferReshape([0, -1]).set_name(layer.name + "/flatten"))
        return chain, 2

    def _relu(self, layer, rank):
        p = layer.param("relu_param")
        slope = float(p.negative_slope) if p is not None else 0.0
        return [nn.LeakyReLU(slope) if slope else nn.ReLU()], rank

    def _sigmoid(self, layer, rank):
        return [nn.Sigmoid()], rank

    def _tanh(self, layer, rank):
        return [nn.Tanh()], rank

    def _absval(self, layer, rank):
        return [nn.Abs()], rank

    def _elu(self, layer, rank):
        return [nn.ELU(float(layer.param("elu_param").alpha))], rank

    def _power(self, layer, rank):
        p = layer.param("power_param")
        return [nn.Power(float(p.power), float(p.scale), float(p.shift))], rank

    def _softmax(self, layer, rank):
        p = layer.param("softmax_param")
        if p.axis not in (1, 1 - rank):
            self.fail(layer, f"softmax over axis {p.axis} is not supported (axis 1 only)")
        return [nn.SoftMax()], rank

    def _lrn(self, layer, rank):
        p = layer.param("lrn_param")
        if p.norm_region == 1:
            return [nn.SpatialWithinChannelLRN(int(p.local_size), float(p.alpha),
                                               float(p.beta))], rank
        return [nn.SpatialCrossMapLRN(int(p.local_size), float(p.alpha), float(p.beta),
                                      float(p.k))], rank

    def _dropout(self, layer, rank):
        return [nn.Dropout(float(layer.param("dropout_param").dropout_ratio))], rank

    def _flatten(self, layer, rank):
        p = layer.param("flatten_param")
        if p.axis != 1 or p.end_axis not in (-1, rank - 1):
            self.fail(layer, f"flattening axes {p.axis}..{p.end_axis} is not supported")
        return [nn.InferReshape([0, -1])], 2

    def _reshape(self, layer, rank):
        p = layer.param("reshape_param")
        dims = [int(d) for d in p.shape.dim]
        if p.axis != 0 or p.num_axes != -1 or not dims or any(d < -1 for d in dims):
            self.fail(layer, "only a whole-shape reshape (axis 0, num_axes -1) is supported")
        return [nn.InferReshape(dims)], len(dims)

    def _batchnorm(self, layer, rank):
        p = layer.param("batch_norm_param")
        blobs = self.blobs(layer, 3)
        c = blobs[0].size
        factor = float(blobs[2].reshape(-1)[0]) if blobs[2].size else 1.0
        scale = 0.0 if factor == 0 else 1.0 / factor
        cls = nn.BatchNormalization if rank == 2 else nn.SpatialBatchNormalization
        m = cls(c, eps=float(p.eps), affine=False)
        m.running_mean[...] = self.reshaped(layer, blobs[0], (c,)) * scale
        m.running_var[...] = self.reshaped(layer, blobs[1], (c,), 1) * scale
        return [m], rank

    def _scale(self, layer, rank):
        p = layer.param("scale_param")
        if len(layer.bottom) != 1:
            self.fail(layer, "a Scale with two bottoms (a blob as the scale) is not supported")
        if p.axis != 1 or p.num_axes != 1:
            self.fail(layer, f"axis {p.axis}, num_axes {p.num_axes} is not supported")
        blobs = self.blobs(layer, 2 if p.bias_term else 1)
        c = blobs[0].size
        size = [c] + [1] * max(rank - 2, 0)
        m = nn.Scale(size) if p.bias_term else nn.CMul(size)
        m.weight[...] = blobs[0].reshape(size)
        if p.bias_term:
            m.bias[...] = self.reshaped(layer, blobs[1], (c,), 1).reshape(size)
        return [m], rank

    def _concat(self, layer, rank):
        p = layer.param("concat_param")
        axis = int(p.axis) if p.HasField("axis") or not p.HasField("concat_dim") \
            else int(p.concat_dim)
        return [nn.JoinTable(axis + 1 if axis >= 0 else axis)], rank

    def _eltwise(self, layer, rank):
        p = layer.param("eltwise_param")
        if p.coeff and p.operation != 1:
            self.fail(layer, "coefficients are only for the SUM operation")
        return [{0: nn.CMulTable, 1: nn.CAddTable, 2: nn.CMaxTable}[p.operation]()], rank


def _input_ranks(net):
    """``{blob: rank}`` of the net-level (deprecated) inputs."""
    names = list(net.input)
    if net.input_shape:
        return {n: len(s.dim) for n, s in zip(names, net.input_shape)}
    return {n: 4 for n in names}


def _convert(where, net, weights):
    """The steps ``[(module, [step indices])]``, inputs and outputs, of a network."""
    conv = _Converter(where, weights)
    steps, inputs = [], []
    blobs = {}  # blob name -> (step index, rank)
    consumed = set()

    def add(module, prev, rank, name):
        module.set_name(name)
        steps.append((module, prev))
        return len(steps) - 1

    for blob, rank in _input_ranks(net).items():
        i = add(nn.InputLayer(), [], rank, blob)
        inputs.append(i)
        blobs[blob] = (i, rank)
    for layer in _layers(net):
        if layer.type in _SKIPPED_TYPES:
            continue
        if layer.type in _INPUT_TYPES:
            shapes = list(layer.param("input_param").shape) if layer.type == "Input" else []
            tops = layer.top if layer.type == "Input" else layer.top[:1]
            for k, top in enumerate(tops):
                rank = len(shapes[min(k, len(shapes) - 1)].dim) if shapes else 4
                i = add(nn.InputLayer(), [], rank, top)
                inputs.append(i)
                blobs[top] = (i, rank)
            continue
        for b in layer.bottom:
            if b not in blobs:
                conv.fail(layer, f"bottom blob {b!r} is not produced by any earlier layer")
        srcs = [blobs[b] for b in layer.bottom]
        if layer.type == "Split":
            for top in layer.top:
                blobs[top] = srcs[0]
            continue
        if not srcs:
            conv.fail(layer, "has no bottom blob")
        if len(layer.top) != 1:
            conv.fail(layer, f"{len(layer.top)} top blobs are not supported here")
        prev = [s for s, _ in srcs]
        rank = srcs[0][1]
        if layer.type == "Eltwise" and layer.param("eltwise_param").coeff:
            coeffs = list(layer.param("eltwise_param").coeff)
            if len(coeffs) != len(prev):
                conv.fail(layer, f"{len(coeffs)} coefficients for {len(prev)} bottoms")
            for k, c in enumerate(coeffs):
                if c != 1:
                    consumed.add(prev[k])
                    prev[k] = add(nn.MulConstant(float(c)), [prev[k]], rank,
                                  f"{layer.name}/coeff{k}")
        chain, out_rank = conv.convert(layer, rank)
        consumed.update(prev)
        for j, module in enumerate(chain):
            last = j == len(chain) - 1
            name = layer.name if last else (module._name or f"{layer.name}/{j}")
            prev = [add(module, prev, out_rank, name)]
            if not last:
                consumed.add(prev[0])
        blobs[layer.top[0]] = (prev[0], out_rank)
    if not inputs:
        raise ModelFileError(f"{where}: the network declares no input (no Input layer and no "
                             "'input' field)")
    outputs = [i for i in range(len(steps)) if i not in consumed and i not in inputs]
    if not outputs:
        raise ModelFileError(f"{where}: the network has no output")
    return steps, inputs, outputs


def _materialize(steps, inputs, outputs):
    chain = (len(inputs) == 1 and inputs == [0] and outputs == [len(steps) - 1]
             and all(prev == [i - 1] for i, (_, prev) in enumerate(steps) if i))
    if chain:
        model = nn.Sequential()
        for module, _ in steps[1:]:
            model.add(module)
        return model
    nodes = []
    for module, prev in steps:
        nodes.append(nn.Node(module, [nodes[p] for p in prev]))
    return nn.Model([nodes[i] for i in inputs] if len(inputs) > 1 else nodes[inputs[0]],
                    [nodes[o] for o in outputs] if len(outputs) > 1 else nodes[outputs[0]])


def load_caffe_model(def_path, model_path):
    """A new model from a Caffe definition and its trained weights (BigDL's
    ``Model.load_caffe_model``).

    Args:
        def_path: the ``.prototxt`` (protobuf text format ``NetParameter``).
        model_path: the ``.caffemodel`` (binary ``NetParameter`` with the weight blobs).

    Returns:
        a ``Sequential`` when the layers form one chain, else a ``Model`` (graph) whose inputs
        are the network's input blobs and whose outputs are the blobs no layer consumes.  Every
        module is named after its Caffe layer; the model is in training mode (call
        ``evaluate()`` for inference, as in BigDL).

    Layers: Input (and data layers, as inputs), Convolution (group, pad, stride, dilation,
    bias_term), Pooling (MAX / AVE, global, Caffe's ceil rounding), InnerProduct, ReLU (leaky),
    Sigmoid, TanH, Softmax, LRN (across / within channels), Dropout, Concat, Eltwise (SUM with
    coefficients, PROD, MAX), BatchNorm (with its scale-factor blob), Scale, Flatten, Reshape,
    Split, Power, ELU, AbsVal.  Loss and accuracy layers are left out.  Anything else raises
    ``ModelFileError`` naming the layer and its type.
    """
    net = _read_prototxt(def_path)
    model_path = os.fspath(model_path)
    weights = _weights(model_path, _read_caffemodel(model_path))
    budget = sum(a.size for arrays in weights.values() for a in arrays) + 4096
    where = os.fspath(def_path)
    try:
        with allocation_budget(budget, "the weights stored in the Caffe model"):
            steps, inputs, outputs = _convert(where, net, weights)
    except ModelFileError:
        raise
    except Exception as e:  # a layer constructor refusing the file's hyperparameters
        raise ModelFileError(f"{where}: cannot convert ({type(e).__name__}: "
                             f"{str(e)[:300]})") from None
    return _materialize(steps, inputs, outputs)


def _copy(where, module, name, blobs, transpose):
    def fail(what):
        raise ModelFileError(f"{where}: layer {name!r} ({type(module).__name__}): {what}")

    def put(target, blob, k):
        if blob.size != target.size:
            fail(f"blob {k} has shape {blob.shape}, the model expects {target.shape}")
        target[...] = blob.reshape(target.shape)

    if isinstance(module, (nn.BatchNormalization, nn.SpatialBatchNormalization)):
        if len(blobs) < 2:
            fail(f"a BatchNorm needs mean and variance blobs, the Caffe layer has {len(blobs)}")
        factor = float(blobs[2].reshape(-1)[0]) if len(blobs) > 2 and blobs[2].size else 1.0
        scale = 0.0 if factor == 0 else 1.0 / factor
        put(module.running_mean, blobs[0] * scale, 0)
        put(module.running_var, blobs[1] * scale, 1)
        return
    params = module._param_names
    if isinstance(module, nn.Linear) and transpose:
        blobs = [blobs[0].reshape(module.weight.shape[::-1]).T] + list(blobs[1:])
    if len(blobs) < len(params) and not (len(params) == 2 and len(blobs) == 1):
        fail(f"the Caffe layer has {len(blobs)} blob(s) for {len(params)} parameter(s)")
    for k, (pname, blob) in enumerate(zip(params, blobs)):
        put(getattr(module, pname), blob, k)


def load_caffe(model, def_path, model_path, match_all=True):
    """Copy the weights of a Caffe model into an existing model, layer by layer name (BigDL's
    ``Model.load_caffe``).

    Args:
        model: the ``Module`` to fill; its layers are matched to Caffe layers by ``name()``.
        def_path: the ``.prototxt`` (read for the layer types and the InnerProduct transpose).
        model_path: the ``.caffemodel`` holding the weights.
        match_all: as BigDL: every layer of ``model`` with weights must find a Caffe layer of
            its name (else ``ModelFileError``); with False, the layers without one keep their
            own weights.  Caffe layers absent from ``model`` are ignored either way.

    Returns:
        ``model``, its weights replaced.  Convolution / InnerProduct weight and bias, Scale,
        and BatchNorm running statistics (divided by Caffe's scale-factor blob) are copied;
        a blob whose size does not fit the layer is a ``ModelFileError`` naming both shapes.
    """
    net = _read_prototxt(def_path)
    model_path = os.fspath(model_path)
    weights = _weights(model_path, _read_caffemodel(model_path))
    transposed = {layer.name for layer in _layers(net) if layer.type == "InnerProduct"
                  and layer.param("inner_product_param").transpose}
    where = model_path
    for module in model.modules():
        has_state = bool(module._param_names) or isinstance(
            module, (nn.BatchNormalization, nn.SpatialBatchNormalization))
        if not has_state or module is model and len(list(model.modules())) > 1:
            continue
        name = module.name()
        if name not in weights:
            if match_all:
                raise ModelFileError(f"{where}: layer {name!r} ({type(module).__name__}) of the "
                                     "model has no Caffe layer of that name (pass "
                                     "match_all=False to keep its own weights)")
            continue
        _copy(where, module, name, weights[name], name in transposed)
    return model
