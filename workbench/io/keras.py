"""Keras models in: ``load_keras(json_path, hdf5_path, by_name)`` as BigDL's ``Model.load_keras``.

Reads, without Keras and without running any code from the files:

- a Keras 2 (or 3) JSON architecture (``model.to_json()``) plus an HDF5 weights file, either the
  legacy layout (``layer_names`` / ``weight_names`` attributes, as ``save_weights("w.h5")`` in
  Keras 2 and the ``model_weights`` group of a full ``.h5``) or Keras 3's
  ``save_weights("w.weights.h5")`` layout (``layers/<path>/vars/<i>``);
- a legacy full-model ``.h5`` (root attribute ``model_config`` + group ``model_weights``);
- a Keras 3 ``.keras`` archive (a zip of ``config.json``, ``metadata.json`` and
  ``model.weights.h5``).

A ``Sequential`` becomes our :class:`~workbench.nn.Sequential`, a functional model our
:class:`~workbench.nn.Graph` (one ``Input`` per Keras input, in order; several outputs give a
table).  Every layer that holds weights keeps its Keras name (``set_name``), so
``model.freeze(["conv2d"])`` and :func:`load_keras_weights` find it.

**Layout.** The imported model takes and returns the same arrays as the Keras model:
images are channels-last ``(N, H, W, C)`` as Keras' default ``data_format="channels_last"``.
Our convolutions, pooling and batch norm run with ``data_format="NHWC"``, which views the
arrays as NCHW with channels-last memory (no copy; this is the layout oneDNN prefers), so
``Flatten`` flattens in Keras' ``(H, W, C)`` order and the next ``Dense`` takes the Keras kernel
as it is.  Weights are converted once at load time: Dense ``(in, out)`` -> ``(out, in)``, Conv2D
``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``, GRU gates ``z, r, h`` -> ours ``r, z, n``
(LSTM gates ``i, f, c, o`` are already ours).  ``channels_first`` layers are refused.

**Safety.** Nothing is unpickled or evaluated: a ``Lambda`` layer (Python code in the file) and
any layer we do not know are refused with the layer's name and class.  Files are size-checked
before reading (JSON and zip members are capped; a zip member's declared size is checked against
the archive), every HDF5 dataset's dtype and shape are checked against the layer before its data
is read, and the model is built under an allocation budget (the values the weights file can
hold, or :data:`MAX_VALUES_WITHOUT_WEIGHTS` for an architecture alone), so absurd shapes in a
config fail before anything large is allocated.  Every problem is a
:class:`~workbench.io.ModelFileError` naming the file and the layer.

Supported layers: InputLayer, Dense, Activation, ReLU, LeakyReLU, ELU, Softmax, Dropout,
SpatialDropout1D/2D, GaussianDropout, GaussianNoise, Flatten, Reshape, Permute, Conv1D, Conv2D,
MaxPooling1D/2D, AveragePooling2D, GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D,
ZeroPadding2D, Cropping2D, UpSampling2D, BatchNormalization, Embedding, SimpleRNN, LSTM, GRU,
Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile

import numpy as np

from .. import nn
from .._config import ConfigError
from ..nn.module import LayerError, allocation_budget
from .archive import ModelFileError

__all__ = ["load_keras", "load_keras_weights", "MAX_VALUES_WITHOUT_WEIGHTS"]

#: Parameter values a model may declare when it is loaded without a weights file.
MAX_VALUES_WITHOUT_WEIGHTS = 1 << 28
_MAX_JSON_BYTES = 64 << 20
_MAX_MEMBER_BYTES = 16 << 30
_WEIGHTS_MEMBER = "model.weights.h5"


# ============================================================================ reading files
def _fail(where, message):
    raise ModelFileError(f"{where}: {message}")


def _read_limited(path, limit, what):
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if size > limit:
        _fail(path, f"the {what} is {size} bytes, more than the {limit} allowed")
    with open(path, "rb") as f:
        return f.read(limit + 1)


def _parse_json(data, where):
    def refuse_constant(name):
        raise ValueError(f"non-standard JSON constant {name}")
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        doc = json.loads(data, parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFileError(f"{where}: not a JSON model architecture ({e})") from None
    if not isinstance(doc, dict) or "class_name" not in doc:
        _fail(where, "not a Keras model architecture (no 'class_name' at the top)")
    return doc


def _is_zip(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _read_keras_zip(path):
    """``(config dict, metadata dict, weights h5 bytes)`` of a ``.keras`` archive."""
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as z:
            members = {i.filename: i for i in z.infolist()}
            for name in ("config.json", _WEIGHTS_MEMBER):
                if name not in members:
                    _fail(path, f"not a .keras archive: no {name} in the zip")
            out = {}
            for name, limit in (("config.json", _MAX_JSON_BYTES),
                                ("metadata.json", _MAX_JSON_BYTES),
                                (_WEIGHTS_MEMBER, _MAX_MEMBER_BYTES)):
                info = members.get(name)
                if info is None:
                    continue
                stored = info.compress_type == zipfile.ZIP_STORED
                if info.file_size > limit or (stored and info.file_size > size) or (
                        info.file_size > 100 * max(info.compress_size, 1)):
                    _fail(path, f"zip member {name} declares {info.file_size} bytes, more than "
                                "the archive can hold")
                with z.open(info) as f:
                    data = f.read(info.file_size + 1)
                if len(data) != info.file_size:
                    _fail(path, f"zip member {name} is not the size it declares")
                out[name] = data
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path}: not a readable .keras archive ({e})") from None
    except (EOFError, OSError, _zlib_error()) as e:
        raise ModelFileError(f"{path}: the .keras archive is truncated or corrupt ({e})") from None
    config = _parse_json(out["config.json"], f"{path}:config.json")
    meta = {}
    if "metadata.json" in out:
        try:
            meta = json.loads(out["metadata.json"].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            meta = {}
    return config, meta if isinstance(meta, dict) else {}, out[_WEIGHTS_MEMBER]


def _zlib_error():
    import zlib
    return zlib.error


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - a core dependency
        raise ImportError("load_keras needs h5py (pip install h5py)") from None
    return h5py


class _H5:
    """An open HDF5 file (on disk or from bytes) and the number of bytes it holds."""

    def __init__(self, where, path=None, data=None):
        h5py = _h5py()
        self.where = where
        self.nbytes = len(data) if data is not None else os.path.getsize(path)
        try:
            self.file = h5py.File(io.BytesIO(data) if data is not None else path, "r")
        except OSError as e:
            raise ModelFileError(f"{where}: not a readable HDF5 file (truncated or corrupt: "
                                 f"{e})") from None

    def close(self):
        self.file.close()


def _attr_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _attr_list(node, name):
    values = node.attrs.get(name)
    if values is None:
        return None
    return [_attr_text(v) for v in np.asarray(values).ravel()]


def _open_weights(path):
    """An :class:`_H5` for a weights file: ``.h5`` / ``.weights.h5`` or a ``.keras`` zip."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_keras: no such file {path}")
    if _is_zip(path):
        _, _, data = _read_keras_zip(path)
        return _H5(f"{path}:{_WEIGHTS_MEMBER}", data=data)
    return _H5(path, path=path)


# ============================================================================ weight stores
class _Store:
    """The weights of one file, per layer, in Keras' ``layer.weights`` order."""

    def __init__(self, h5):
        self.h5 = h5
        f = h5.file
        self.legacy = None
        if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            self.legacy = f["model_weights"]
        elif "layer_names" in f.attrs:
            self.legacy = f
        elif "layers" not in f and "vars" not in f:
            _fail(h5.where, "no Keras weights in this HDF5 file (neither 'layer_names' nor "
                            "'layers')")
        if self.legacy is not None:
            self.order = _attr_list(self.legacy, "layer_names") or []
            self.by_name = {}
            for name in self.order:
                if name not in self.legacy:
                    _fail(h5.where, f"layer_names lists {name!r} but there is no such group")
                group = self.legacy[name]
                names = _attr_list(group, "weight_names") or []
                self.by_name[name] = [(f"{group.name}/{w}", w) for w in names]
        else:
            self.by_path, self.by_name = {}, {}
            layers = f["layers"] if "layers" in f else {}
            for key in layers:
                group = layers[key]
                datasets = self._datasets(group)
                self.by_path[key] = datasets
                label = group["vars"].attrs.get("name") if "vars" in group else None
                self.by_name[_attr_text(label) if label is not None else key] = datasets

    def _datasets(self, group):
        """``vars/0..n-1`` of ``group``, then those of its sub-objects (sorted)."""
        h5py = _h5py()
        out = []
        if "vars" in group:
            v = group["vars"]
            keys = sorted((k for k in v if k.isdigit()), key=int)
            out += [(v[k].name, k) for k in keys if isinstance(v[k], h5py.Dataset)]
        for key in sorted(k for k in group if k != "vars"):
            if isinstance(group[key], h5py.Group):
                out += self._datasets(group[key])
        return out

    def weighted_names(self):
        """Names of the file's layers that hold weights, in the file's order (legacy)."""
        return [n for n in self.order if self.by_name[n]]

    def read(self, refs, expected, layer):
        """The arrays at ``refs`` (h5 paths), checked against ``expected`` shapes first."""
        h5py = _h5py()
        f, where = self.h5.file, self.h5.where
        if len(refs) != len(expected):
            _fail(where, f"layer {layer!r} has {len(refs)} weight arrays in the file, "
                         f"the model expects {len(expected)}")
        arrays = []
        for (ref, label), shape in zip(refs, expected):
            ds = f.get(ref)
            if not isinstance(ds, h5py.Dataset):
                _fail(where, f"layer {layer!r}: weight {label!r} is missing ({ref})")
            if ds.dtype.kind != "f":
                _fail(where, f"layer {layer!r}: weight {label!r} has dtype {ds.dtype}, "
                             "expected floating point")
            if tuple(ds.shape) != tuple(shape):
                _fail(where, f"layer {layer!r}: weight {label!r} has shape {tuple(ds.shape)}, "
                             f"the model expects {tuple(shape)}")
            nbytes = math.prod(ds.shape) * ds.dtype.itemsize
            limit = self.h5.nbytes * (1 if ds.compression is None else 1000)
            if nbytes > limit:
                _fail(where, f"layer {layer!r}: weight {label!r} declares {nbytes} bytes, more "
                             "than the file can hold")
            try:
                arrays.append(np.asarray(ds[()], dtype=np.float32))
            except (OSError, ValueError) as e:
                raise ModelFileError(f"{where}: layer {layer!r}: cannot read weight {label!r} "
                                     f"(truncated file? {e})") from None
        return arrays


# ============================================================================ shapes
def _shape(value, where):
    """A Keras shape without the batch axis, from ``batch_shape`` / ``batch_input_shape``."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}: bad input shape {value!r}")
    dims = list(value)[1:]
    for d in dims:
        if d is not None and (not isinstance(d, int) or isinstance(d, bool) or d <= 0):
            raise ConfigError(f"{where}: bad input shape {value!r}")
    return tuple(dims)


def _known(shape, layer, what="its input"):
    if any(d is None for d in shape):
        raise ConfigError(f"{layer}: needs the size of every axis of {what}, got "
                          f"{_fmt(shape)}")
    return shape


def _fmt(shape):
    return "(None, " + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _pair(value, name, layer):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"{layer}: {name} must be two positive ints, got {value!r}")
    return tuple(value)


def _single(value, name, layer):
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value


def _conv_out(size, k, s, padding, dilation=1):
    if size is None:
        return None
    span = (k - 1) * dilation + 1
    if padding == "same":
        return -(-size // s)
    out = (size - span) // s + 1
    return out


# ============================================================================ converting layers
_ACTIVATIONS = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU,
    "softplus": nn.SoftPlus, "softsign": nn.SoftSign, "relu6": nn.ReLU6, "silu": nn.SiLU,
    "swish": nn.SiLU, "gelu": nn.GELU,
}


class _Ctx:
    def __init__(self, keras3):
        self.keras3 = keras3


def _activation(name, layer, rank, ctx):
    """Our module for the Keras activation ``name`` on a tensor of ``rank`` (batch
    included), or None for ``linear``."""
    if isinstance(name, dict):
        name = name.get("config", name).get("name") if name.get("class_name") in (
            "function", None) else None
    if name in (None, "linear"):
        return None
    if not isinstance(name, str):
        raise ConfigError(f"{layer}: activation {name!r} is not a built-in Keras activation "
                          "(custom functions are not loaded)")
    if name in ("softmax", "log_softmax"):
        module = nn.SoftMax() if name == "softmax" else nn.LogSoftMax()
        for _ in range(max(rank - 2, 0)):
            module = nn.TimeDistributed(module)
        return module
    if name == "gelu":
        return nn.GELU("none")
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "hard_sigmoid" and not ctx.keras3:
        return nn.HardSigmoid()
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name]()
    raise ConfigError(f"{layer}: activation {name!r} is not supported")


def _rnn_activation(name, layer, ctx, what):
    if name in (None, "linear"):
        raise ConfigError(f"{layer}: {what} 'linear' is not supported")
    if name == "hard_sigmoid" and ctx.keras3:
        raise ConfigError(f"{layer}: {what} 'hard_sigmoid' of Keras 3 (slope 1/6) is not "
                          "supported (Keras 2's slope-0.2 one is)")
    if name not in ("tanh", "sigmoid", "relu", "hard_sigmoid"):
        raise ConfigError(f"{layer}: {what} {name!r} is not supported")
    return name


def _channels_last(cfg, layer):
    fmt = cfg.get("data_format") or "channels_last"
    if fmt != "channels_last":
        raise ConfigError(f"{layer}: data_format {fmt!r} is not supported (only "
                          "'channels_last', Keras' default)")


def _to_nchw():
    return nn.Transpose([(2, 4), (3, 4)])   # (N, H, W, C) -> (N, C, H, W)


def _to_nhwc():
    return nn.Transpose([(3, 4), (2, 4)])   # (N, C, H, W) -> (N, H, W, C)


class _Converted:
    """One Keras layer as our modules: ``modules`` chained in order (the first takes the
    layer's input), its output shape, and the module holding its weights (named after the
    Keras layer) with how the Keras arrays map onto it."""

    def __init__(self, modules, shape, weighted=None, info=None):
        self.modules = [m for m in modules if m is not None]
        self.shape = shape
        self.weighted = weighted
        self.info = info or {}


def _dense(cfg, shapes, layer, ctx):
    (shape,) = shapes
    units = _single(cfg.get("units"), "units", layer)
    d = _known(shape[-1:], layer)[0] if shape else None
    if d is None:
        raise ConfigError(f"{layer}: needs a known last axis, got {_fmt(shape)}")
    lin = nn.Linear(d, units, with_bias=bool(cfg.get("use_bias", True)))
    core = lin if len(shape) == 1 else _wrap_time(lin, len(shape) - 1)
    out = shape[:-1] + (units,)
    return _Converted([core, _activation(cfg.get("activation"), layer, len(out) + 1, ctx)],
                      out, lin)


def _wrap_time(module, times):
    for _ in range(times):
        module = nn.TimeDistributed(module)
    return module


def _conv2d(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    if len(shape) != 3:
        raise ConfigError(f"{layer}: expects (None, H, W, C) input, got {_fmt(shape)}")
    c = _known(shape[2:], layer, "its channel axis")[0]
    filters = _single(cfg.get("filters"), "filters", layer)
    kh, kw = _pair(cfg.get("kernel_size"), "kernel_size", layer)
    sh, sw = _pair(cfg.get("strides", 1), "strides", layer)
    dh, dw = _pair(cfg.get("dilation_rate", 1), "dilation_rate", layer)
    groups = cfg.get("groups", 1)
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ConfigError(f"{layer}: padding {padding!r} is not supported")
    pad = -1 if padding == "same" else 0
    bias = bool(cfg.get("use_bias", True))
    if (dh, dw) != (1, 1):
        if padding == "same" or groups != 1 or (sh, sw) != (1, 1) or not bias:
            raise ConfigError(f"{layer}: dilation with 'same' padding, groups, strides or no "
                              "bias is not supported")
        conv = nn.SpatialDilatedConvolution(c, filters, kw, kh, 1, 1, 0, 0, dw, dh)
        modules = [_to_nchw(), conv, _to_nhwc()]
    else:
        conv = nn.SpatialConvolution(c, filters, kw, kh, sw, sh, pad, pad, n_group=groups,
                                     with_bias=bias, data_format="NHWC")
        modules = [conv]
    out = (_conv_out(shape[0], kh, sh, padding, dh), _conv_out(shape[1], kw, sw, padding, dw),
           filters)
    if any(d is not None and d <= 0 for d in out):
        raise ConfigError(f"{layer}: the input {_fmt(shape)} is smaller than the kernel")
    modules.append(_activation(cfg.get("activation"), layer, 4, ctx))
    return _Converted(modules, out, conv)


def _conv1d(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    if len(shape) != 2:
        raise ConfigError(f"{layer}: expects (None, steps, C) input, got {_fmt(shape)}")
    c = _known(shape[1:], layer, "its channel axis")[0]
    filters = _single(cfg.get("filters"), "filters", layer)
    k = _single(cfg.get("kernel_size"), "kernel_size", layer)
    s = _single(cfg.get("strides", 1), "strides", layer)
    if cfg.get("padding", "valid") != "valid" or _single(cfg.get("dilation_rate", 1),
                                                         "dilation_rate", layer) != 1 \
            or cfg.get("groups", 1) != 1 or not cfg.get("use_bias", True):
        raise ConfigError(f"{layer}: only padding='valid', no dilation, no groups and a bias "
                          "are supported for Conv1D")
    conv = nn.TemporalConvolution(c, filters, k, s)
    out = (_conv_out(shape[0], k, s, "valid"), filters)
    return _Converted([conv, _activation(cfg.get("activation"), layer, 3, ctx)], out, conv)


def _pool2d(cfg, shapes, layer, ctx, kind):
    (shape,) = shapes
    _channels_last(cfg, layer)
    if len(shape) != 3:
        raise ConfigError(f"{layer}: expects (None, H, W, C) input, got {_fmt(shape)}")
    kh, kw = _pair(cfg.get("pool_size", 2), "pool_size", layer)
    strides = cfg.get("strides")
    sh, sw = _pair(strides if strides is not None else (kh, kw), "strides", layer)
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ConfigError(f"{layer}: padding {padding!r} is not supported")
    pad = -1 if padding == "same" else 0
    if kind == "max":
        module = nn.SpatialMaxPooling(kw, kh, sw, sh, pad, pad, format="NHWC")
    else:
        module = nn.SpatialAveragePooling(kw, kh, sw, sh, pad, pad,
                                          count_include_pad=padding != "same", format="NHWC")
    out = (_conv_out(shape[0], kh, sh, padding), _conv_out(shape[1], kw, sw, padding), shape[2])
    return _Converted([module], out)


def _pool1d(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    k = _single(cfg.get("pool_size", 2), "pool_size", layer)
    strides = cfg.get("strides")
    s = _single(strides if strides is not None else k, "strides", layer)
    if cfg.get("padding", "valid") != "valid":
        raise ConfigError(f"{layer}: only padding='valid' is supported for MaxPooling1D")
    return _Converted([nn.TemporalMaxPooling(k, s)],
                      (_conv_out(shape[0], k, s, "valid"), shape[1]))


def _global_pool(cfg, shapes, layer, ctx, cls, rank):
    (shape,) = shapes
    _channels_last(cfg, layer)
    if len(shape) != rank + 1:
        raise ConfigError(f"{layer}: expects a rank-{rank + 2} input, got {_fmt(shape)}")
    if cfg.get("keepdims"):
        raise ConfigError(f"{layer}: keepdims=True is not supported")
    module = cls() if rank == 1 else cls(dim_ordering="tf")
    return _Converted([module], shape[-1:])


def _batch_norm(cfg, shapes, layer, ctx):
    (shape,) = shapes
    axis = cfg.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, len(shape)):
        raise ConfigError(f"{layer}: only the last axis (channels last) is supported, got "
                          f"axis={axis!r}")
    if cfg.get("renorm") or cfg.get("synchronized"):
        raise ConfigError(f"{layer}: renorm / synchronized batch norm is not supported")
    c = _known(shape[-1:], layer, "its channel axis")[0]
    eps = float(cfg.get("epsilon", 1e-3))
    momentum = 1.0 - float(cfg.get("momentum", 0.99))
    if len(shape) == 1:
        module = nn.BatchNormalization(c, eps, momentum)
    elif len(shape) == 3:
        module = nn.SpatialBatchNormalization(c, eps, momentum, data_format="NHWC")
    else:
        raise ConfigError(f"{layer}: batch norm of a rank-{len(shape) + 1} input is not "
                          "supported (rank 2 or 4)")
    info = {"center": bool(cfg.get("center", True)), "scale": bool(cfg.get("scale", True))}
    return _Converted([module], shape, module, info)


def _embedding(cfg, shapes, layer, ctx):
    (shape,) = shapes
    if cfg.get("mask_zero"):
        raise ConfigError(f"{layer}: mask_zero=True is not supported (masks are not "
                          "propagated)")
    v = _single(cfg.get("input_dim"), "input_dim", layer)
    d = _single(cfg.get("output_dim"), "output_dim", layer)
    module = nn.LookupTable(v, d)
    return _Converted([module], shape + (d,), module)


def _rnn(cfg, shapes, layer, ctx, kind):
    (shape,) = shapes
    if len(shape) != 2:
        raise ConfigError(f"{layer}: expects (None, steps, features) input, got {_fmt(shape)}")
    for flag in ("return_state", "stateful"):
        if cfg.get(flag):
            raise ConfigError(f"{layer}: {flag}=True is not supported")
    d = _known(shape[1:], layer, "its feature axis")[0]
    h = _single(cfg.get("units"), "units", layer)
    act = _rnn_activation(cfg.get("activation", "tanh"), layer, ctx, "activation")
    info = {"use_bias": bool(cfg.get("use_bias", True))}
    if kind == "SimpleRNN":
        cell = nn.RnnCell(d, h, activation=act, isHiddenWithBias=False,
                          isInputWithBias=info["use_bias"])
    else:
        inner = _rnn_activation(cfg.get("recurrent_activation", "sigmoid"), layer, ctx,
                                "recurrent_activation")
        if kind == "LSTM":
            cell = nn.LSTM(d, h, activation=act, inner_activation=inner)
        else:
            reset_after = bool(cfg.get("reset_after", ctx.keras3))
            info["reset_after"] = reset_after
            cell = nn.GRU(d, h, activation=act, inner_activation=inner, reset_after=reset_after)
    rec = nn.Recurrent().add(cell)
    modules = [nn.Reverse(2) if cfg.get("go_backwards") else None, rec]
    if cfg.get("return_sequences"):
        out = (shape[0], h)
    else:
        modules.append(nn.Select(2, -1))
        out = (h,)
    return _Converted(modules, out, rec, info)


def _flatten(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    n = math.prod(_known(shape, layer))
    return _Converted([nn.InferReshape([-1], batch_mode=True)], (n,))


def _reshape(cfg, shapes, layer, ctx):
    (shape,) = shapes
    target = cfg.get("target_shape")
    if not isinstance(target, (list, tuple)) or not all(
            isinstance(t, int) and not isinstance(t, bool) and (t > 0 or t == -1)
            for t in target) or sum(t == -1 for t in target) > 1:
        raise ConfigError(f"{layer}: bad target_shape {target!r}")
    n = math.prod(_known(shape, layer))
    known = math.prod(t for t in target if t != -1)
    if (-1 in target and n % known) or (-1 not in target and n != known):
        raise ConfigError(f"{layer}: cannot reshape {_fmt(shape)} to {target!r}")
    out = tuple(n // known if t == -1 else t for t in target)
    return _Converted([nn.InferReshape(list(target), batch_mode=True)], out)


def _permute(cfg, shapes, layer, ctx):
    (shape,) = shapes
    dims = cfg.get("dims")
    if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(shape) + 1)):
        raise ConfigError(f"{layer}: bad dims {dims!r} for input {_fmt(shape)}")
    current, swaps = list(range(1, len(shape) + 1)), []
    for i, want in enumerate(dims):
        j = current.index(want)
        if j != i:
            swaps.append((i + 2, j + 2))
            current[i], current[j] = current[j], current[i]
    out = tuple(shape[d - 1] for d in dims)
    return _Converted([nn.Transpose(swaps)] if swaps else [nn.Identity()], out)


def _zero_padding(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    p = cfg.get("padding", 1)
    if isinstance(p, int):
        p = ((p, p), (p, p))
    try:
        (t, b), (l, r) = [(v, v) if isinstance(v, int) else tuple(v) for v in p]
    except (TypeError, ValueError):
        raise ConfigError(f"{layer}: bad padding {p!r}") from None
    if not all(isinstance(v, int) and 0 <= v for v in (t, b, l, r)):
        raise ConfigError(f"{layer}: bad padding {p!r}")
    out = (None if shape[0] is None else shape[0] + t + b,
           None if shape[1] is None else shape[1] + l + r, shape[2])
    return _Converted([_to_nchw(), nn.SpatialZeroPadding(l, r, t, b), _to_nhwc()], out)


def _cropping(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    c = cfg.get("cropping", ((0, 0), (0, 0)))
    if isinstance(c, int):
        c = ((c, c), (c, c))
    try:
        (t, b), (l, r) = [(v, v) if isinstance(v, int) else tuple(v) for v in c]
    except (TypeError, ValueError):
        raise ConfigError(f"{layer}: bad cropping {c!r}") from None
    out = (None if shape[0] is None else shape[0] - t - b,
           None if shape[1] is None else shape[1] - l - r, shape[2])
    return _Converted([nn.Cropping2D([t, b], [l, r], data_format="NHWC")], out)


def _upsampling(cfg, shapes, layer, ctx):
    (shape,) = shapes
    _channels_last(cfg, layer)
    if cfg.get("interpolation", "nearest") != "nearest":
        raise ConfigError(f"{layer}: only nearest interpolation is supported")
    sh, sw = _pair(cfg.get("size", 2), "size", layer)
    out = (None if shape[0] is None else shape[0] * sh,
           None if shape[1] is None else shape[1] * sw, shape[2])
    return _Converted([nn.UpSampling2D([sh, sw], data_format="NHWC")], out)


def _activation_layer(cfg, shapes, layer, ctx):
    (shape,) = shapes
    module = _activation(cfg.get("activation"), layer, len(shape) + 1, ctx)
    return _Converted([module or nn.Identity()], shape)


def _relu_layer(cfg, shapes, layer, ctx):
    (shape,) = shapes
    max_value = cfg.get("max_value")
    slope = cfg.get("negative_slope", 0.0) or 0.0
    threshold = cfg.get("threshold", 0.0) or 0.0
    if threshold != 0:
        raise ConfigError(f"{layer}: threshold != 0 is not supported")
    if max_value is None:
        module = nn.ReLU() if slope == 0 else nn.LeakyReLU(float(slope))
    elif max_value == 6 and slope == 0:
        module = nn.ReLU6()
    elif slope == 0:
        module = nn.HardTanh(0.0, float(max_value))
    else:
        raise ConfigError(f"{layer}: max_value with negative_slope is not supported")
    return _Converted([module], shape)


def _leaky_relu(cfg, shapes, layer, ctx):
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return _Converted([nn.LeakyReLU(float(slope))], shapes[0])


def _elu(cfg, shapes, layer, ctx):
    return _Converted([nn.ELU(float(cfg.get("alpha", 1.0)))], shapes[0])


def _softmax_layer(cfg, shapes, layer, ctx):
    (shape,) = shapes
    axis = cfg.get("axis", -1)
    if axis not in (-1, len(shape), [-1]):
        raise ConfigError(f"{layer}: only axis=-1 is supported, got {axis!r}")
    return _Converted([_activation("softmax", layer, len(shape) + 1, ctx)], shape)


def _dropout(cfg, shapes, layer, ctx, kind):
    (shape,) = shapes
    rate = float(cfg.get("rate", 0.0))
    if not 0 <= rate < 1:
        raise ConfigError(f"{layer}: rate must be in [0, 1), got {rate!r}")
    if kind == "Dropout":
        if cfg.get("noise_shape") is not None:
            raise ConfigError(f"{layer}: noise_shape is not supported")
        module = nn.Dropout(rate)
    elif kind == "SpatialDropout1D":
        module = nn.SpatialDropout1D(rate)
    elif kind == "SpatialDropout2D":
        _channels_last(cfg, layer)
        module = nn.SpatialDropout2D(rate, data_format="NHWC")
    elif kind == "GaussianDropout":
        module = nn.GaussianDropout(rate)
    else:
        module = nn.GaussianNoise(float(cfg.get("stddev", 0.0)))
    return _Converted([module], shape)


def _merge(cfg, shapes, layer, ctx, cls):
    if len(shapes) < 2:
        raise ConfigError(f"{layer}: a merge layer needs at least two inputs")
    if any(s != shapes[0] for s in shapes):
        raise ConfigError(f"{layer}: inputs of different shapes "
                          f"{', '.join(_fmt(s) for s in shapes)} are not supported")
    if cls is nn.CSubTable and len(shapes) != 2:
        raise ConfigError(f"{layer}: Subtract takes exactly two inputs")
    return _Converted([cls()], shapes[0])


def _concatenate(cfg, shapes, layer, ctx):
    if len(shapes) < 2:
        raise ConfigError(f"{layer}: Concatenate needs at least two inputs")
    rank = len(shapes[0])
    axis = cfg.get("axis", -1)
    if not isinstance(axis, int) or not -rank <= axis <= rank or axis == 0:
        raise ConfigError(f"{layer}: bad axis {axis!r} for inputs of rank {rank + 1}")
    a = axis - 1 if axis > 0 else rank + axis
    total = 0
    for s in shapes:
        if len(s) != rank or any(s[i] != shapes[0][i] for i in range(rank) if i != a):
            raise ConfigError(f"{layer}: cannot concatenate "
                              f"{', '.join(_fmt(s) for s in shapes)} on axis {axis}")
        total = None if total is None or s[a] is None else total + s[a]
    out = shapes[0][:a] + (total,) + shapes[0][a + 1:]
    return _Converted([nn.JoinTable(a + 2)], out)


_CONVERTERS = {
    "Dense": _dense, "Conv2D": _conv2d, "Convolution2D": _conv2d, "Conv1D": _conv1d,
    "Convolution1D": _conv1d,
    "MaxPooling2D": lambda c, s, n, x: _pool2d(c, s, n, x, "max"),
    "MaxPool2D": lambda c, s, n, x: _pool2d(c, s, n, x, "max"),
    "AveragePooling2D": lambda c, s, n, x: _pool2d(c, s, n, x, "avg"),
    "AvgPool2D": lambda c, s, n, x: _pool2d(c, s, n, x, "avg"),
    "MaxPooling1D": _pool1d, "MaxPool1D": _pool1d,
    "GlobalAveragePooling2D": lambda c, s, n, x: _global_pool(
        c, s, n, x, nn.GlobalAveragePooling2D, 2),
    "GlobalMaxPooling2D": lambda c, s, n, x: _global_pool(c, s, n, x, nn.GlobalMaxPooling2D, 2),
    "GlobalAveragePooling1D": lambda c, s, n, x: _global_pool(
        c, s, n, x, nn.GlobalAveragePooling1D, 1),
    "GlobalMaxPooling1D": lambda c, s, n, x: _global_pool(c, s, n, x, nn.GlobalMaxPooling1D, 1),
    "BatchNormalization": _batch_norm, "Embedding": _embedding,
    "LSTM": lambda c, s, n, x: _rnn(c, s, n, x, "LSTM"),
    "GRU": lambda c, s, n, x: _rnn(c, s, n, x, "GRU"),
    "SimpleRNN": lambda c, s, n, x: _rnn(c, s, n, x, "SimpleRNN"),
    "Flatten": _flatten, "Reshape": _reshape, "Permute": _permute,
    "ZeroPadding2D": _zero_padding, "Cropping2D": _cropping, "UpSampling2D": _upsampling,
    "Activation": _activation_layer, "ReLU": _relu_layer, "LeakyReLU": _leaky_relu,
    "ELU": _elu, "Softmax": _softmax_layer,
    "Dropout": lambda c, s, n, x: _dropout(c, s, n, x, "Dropout"),
    "SpatialDropout1D": lambda c, s, n, x: _dropout(c, s, n, x, "SpatialDropout1D"),
    "SpatialDropout2D": lambda c, s, n, x: _dropout(c, s, n, x, "SpatialDropout2D"),
    "GaussianDropout": lambda c, s, n, x: _dropout(c, s, n, x, "GaussianDropout"),
    "GaussianNoise": lambda c, s, n, x: _dropout(c, s, n, x, "GaussianNoise"),
    "Concatenate": _concatenate,
    "Add": lambda c, s, n, x: _merge(c, s, n, x, nn.CAddTable),
    "Subtract": lambda c, s, n, x: _merge(c, s, n, x, nn.CSubTable),
    "Multiply": lambda c, s, n, x: _merge(c, s, n, x, nn.CMulTable),
    "Average": lambda c, s, n, x: _merge(c, s, n, x, nn.CAveTable),
    "Maximum": lambda c, s, n, x: _merge(c, s, n, x, nn.CMaxTable),
    "Minimum": lambda c, s, n, x: _merge(c, s, n, x, nn.CMinTable),
}
_MODELS = ("Sequential", "Functional", "Model")


def _convert(spec, shapes, ctx):
    """``(keras name, _Converted)`` of one layer spec ``{"class_name", "config"}``."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ConfigError(f"malformed layer entry {str(spec)[:80]!r}")
    cls, cfg = spec.get("class_name"), spec["config"]
    name = cfg.get("name", spec.get("name"))
    if not isinstance(name, str) or not isinstance(cls, str):
        raise ConfigError(f"malformed layer entry {str(spec)[:80]!r}")
    label = f"layer {name!r} ({cls})"
    if cls == "Lambda":
        raise ConfigError(f"{label}: Lambda layers hold Python code and are never loaded; "
                          "rebuild this part of the model with built-in layers")
    if cls in _MODELS:
        raise ConfigError(f"{label}: nested models are not supported; flatten the model "
                          "into one Sequential or functional model")
    if cls not in _CONVERTERS:
        raise ConfigError(f"{label}: the Keras layer class {cls!r} is not supported")
    converted = _CONVERTERS[cls](cfg, shapes, label, ctx)
    if any(d is not None and d <= 0 for d in converted.shape):
        raise ConfigError(f"{label}: its output shape {_fmt(converted.shape)} is empty")
    if converted.weighted is not None:
        converted.weighted.set_name(name)
    for i, m in enumerate(converted.modules):
        if m is not converted.weighted and m._name is None:
            m.set_name(name if converted.weighted is None and i == 0 else f"{name}/{i}")
    return name, cls, converted


# ============================================================================ model configs
def _input_shape_of(spec, where):
    cfg = spec.get("config", {}) if isinstance(spec, dict) else {}
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            return _shape(cfg[key], where)
    build = spec.get("build_config") if isinstance(spec, dict) else None
    if isinstance(build, dict) and build.get("input_shape") is not None:
        return _shape(build["input_shape"], where)
    return None


def _sequential(layers, ctx):
    if not isinstance(layers, list) or not layers:
        raise ConfigError("the Sequential model has no layers")
    first = layers[0]
    shape = _input_shape_of(first, "the Sequential model's input")
    if shape is None:
        raise ConfigError("the Sequential model declares no input shape (build it with an "
                          "Input or input_shape before saving)")
    model, weighted, names = nn.Sequential(), [], []
    for spec in layers:
        if isinstance(spec, dict) and spec.get("class_name") == "InputLayer":
            continue
        name, cls, conv = _convert(spec, [shape], ctx)
        for m in conv.modules:
            model.add(m)
        shape = conv.shape
        names.append((name, cls))
        if conv.weighted is not None:
            weighted.append((name, cls, conv))
    return model, weighted, names


def _history(ref):
    """``(layer, node, tensor)`` from a Keras 3 ``__keras_tensor__`` or a Keras 2 list."""
    if isinstance(ref, dict) and ref.get("class_name") == "__keras_tensor__":
        h = ref.get("config", {}).get("keras_history")
        if isinstance(h, list) and len(h) == 3:
            return tuple(h)
    if isinstance(ref, (list, tuple)) and len(ref) >= 3 and isinstance(ref[0], str):
        return tuple(ref[:3])
    return None


def _inbound(spec, label):
    """The ``(layer, node, tensor)`` triples feeding the layer's (only) call."""
    nodes = spec.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise ConfigError(f"{label}: malformed inbound_nodes")
    if len(nodes) > 1:
        raise ConfigError(f"{label}: the layer is shared (called {len(nodes)} times); shared "
                          "layers are not supported")
    if not nodes:
        return []
    node = nodes[0]
    refs = []
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        def collect(value):
            h = _history(value)
            if h is not None:
                refs.append(h)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    collect(v)
        collect(node.get("args", []))
    elif isinstance(node, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
        for ref in node:
            h = _history(ref)
            if h is None:
                raise ConfigError(f"{label}: malformed inbound node {ref!r}")
            refs.append(h)
    else:
        raise ConfigError(f"{label}: malformed inbound node")
    return refs


def _endpoints(value, what):
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        raise ConfigError(f"the functional model has no {what}")
    out = []
    for v in value:
        h = _history(v)
        if h is None:
            raise ConfigError(f"the functional model's {what} entry {v!r} is malformed")
        out.append(h)
    return out


def _functional(cfg, ctx):
    layers = cfg.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ConfigError("the functional model has no layers")
    specs = {}
    for spec in layers:
        name = spec.get("name", spec.get("config", {}).get("name")) if isinstance(
            spec, dict) else None
        if not isinstance(name, str):
            raise ConfigError(f"malformed layer entry {str(spec)[:80]!r}")
        if name in specs:
            raise ConfigError(f"two layers are named {name!r}")
        specs[name] = spec
    inputs = _endpoints(cfg.get("input_layers"), "input_layers")
    outputs = _endpoints(cfg.get("output_layers"), "output_layers")
    tensors, input_nodes, weighted, names = {}, [], [], []
    for name, spec in specs.items():
        label = f"layer {name!r} ({spec.get('class_name')})"
        if spec.get("class_name") == "InputLayer":
            shape = _input_shape_of(spec, label)
            if shape is None:
                raise ConfigError(f"{label}: no input shape")
            node = nn.Input(name)
            tensors[name] = (node, shape)
            names.append((name, "InputLayer"))
            continue
        refs = _inbound(spec, label)
        if not refs:
            raise ConfigError(f"{label}: has no inputs")
        feeds = []
        for layer, node_index, tensor_index in refs:
            if layer not in tensors:
                raise ConfigError(f"{label}: its input {layer!r} is not defined before it")
            if node_index != 0 or tensor_index != 0:
                raise ConfigError(f"{label}: multi-output or shared layers are not supported")
            feeds.append(tensors[layer])
        lname, cls, conv = _convert(spec, [s for _, s in feeds], ctx)
        prev = [n for n, _ in feeds]
        for m in conv.modules:
            node = m(*prev) if len(prev) > 1 else m(prev[0])
            prev = [node]
        tensors[name] = (prev[0], conv.shape)
        names.append((name, cls))
        if conv.weighted is not None:
            weighted.append((name, cls, conv))
    for layer, _, _ in inputs + outputs:
        if layer not in tensors:
            raise ConfigError(f"the model's input/output {layer!r} is not one of its layers")
    input_nodes = [tensors[n][0] for n, _, _ in inputs]
    output_nodes = [tensors[n][0] for n, _, _ in outputs]
    graph = nn.Graph(input_nodes if len(input_nodes) > 1 else input_nodes[0],
                     output_nodes if len(output_nodes) > 1 else output_nodes[0])
    return graph, weighted, names


def _keras3(doc, version):
    if version:
        try:
            return int(str(version).split(".")[0]) >= 3
        except ValueError:
            pass
    return "module" in doc or "registered_name" in doc


def _build(doc, where, budget, version):
    ctx = _Ctx(_keras3(doc, version or doc.get("keras_version")))
    cls, cfg = doc.get("class_name"), doc.get("config")
    try:
        with allocation_budget(budget, "the weights file" if budget != MAX_VALUES_WITHOUT_WEIGHTS
                               else "MAX_VALUES_WITHOUT_WEIGHTS"):
            if cls == "Sequential":
                layers = cfg.get("layers") if isinstance(cfg, dict) else cfg
                model, weighted, names = _sequential(layers, ctx)
                kind = "Sequential"
            elif cls in ("Functional", "Model"):
                if not isinstance(cfg, dict):
                    raise ConfigError("malformed functional model config")
                model, weighted, names = _functional(cfg, ctx)
                kind = "Functional"
            else:
                raise ConfigError(f"the model class {cls!r} is not supported (Sequential or "
                                  "a functional Model)")
    except (ConfigError, ValueError, TypeError, KeyError, AttributeError, LayerError,
            RecursionError) as e:
        raise ModelFileError(f"{where}: cannot import the Keras model: {e}") from None
    except MemoryError:
        raise ModelFileError(f"{where}: the Keras model is too large to build") from None
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        model.set_name(cfg["name"])
    return model, weighted, names, kind


# ============================================================================ weights
def _expected_shapes(cls, module, info):
    """The Keras arrays of a weighted layer: ``[(label, shape)]`` in ``layer.weights`` order."""
    if isinstance(module, nn.Linear):
        return [("kernel", (module.input_size, module.output_size))] + (
            [("bias", (module.output_size,))] if module.with_bias else [])
    if isinstance(module, nn.SpatialConvolution):
        k = (module.kernel_h, module.kernel_w, module.n_input_plane // module.n_group,
             module.n_output_plane)
        return [("kernel", k)] + ([("bias", (module.n_output_plane,))]
                                  if getattr(module, "with_bias", True) else [])
    if isinstance(module, nn.TemporalConvolution):
        return [("kernel", (module.kernel_w, module.input_frame_size,
                            module.output_frame_size)),
                ("bias", (module.output_frame_size,))]
    if isinstance(module, (nn.BatchNormalization, nn.SpatialBatchNormalization)):
        c = (module.n_output,)
        out = []
        if info.get("scale", True):
            out.append(("gamma", c))
        if info.get("center", True):
            out.append(("beta", c))
        return out + [("moving_mean", c), ("moving_variance", c)]
    if isinstance(module, nn.LookupTable):
        return [("embeddings", (module.n_index, module.n_output))]
    if isinstance(module, nn.Recurrent):
        cell = module.cell
        d, h = cell.input_size, cell.hidden_size
        gates = {nn.LSTM: 4, nn.GRU: 3, nn.RnnCell: 1}.get(type(cell))
        if gates is None:
            raise ConfigError(f"{module.label()}: cell {type(cell).__name__} has no Keras "
                              "counterpart")
        out = [("kernel", (d, gates * h)), ("recurrent_kernel", (h, gates * h))]
        if isinstance(cell, nn.GRU):
            out.append(("bias", (2, 3 * h) if cell.reset_after else (3 * h,)))
        elif isinstance(cell, nn.RnnCell):
            if "bias" in cell._param_names:
                out.append(("bias", (h,)))
        elif info.get("use_bias", True):
            out.append(("bias", (4 * h,)))
        return out
    raise ConfigError(f"{module.label()}: {type(module).__name__} has no Keras counterpart")


def _gru_blocks(a, h, axis):
    """Keras GRU gates ``z, r, h`` -> ours ``r, z, n`` along ``axis``."""
    z, r, n = np.split(a, 3, axis=axis)
    return np.concatenate([r, z, n], axis=axis)


def _assign(module, arrays, info):
    """Copy the Keras ``arrays`` (already shape-checked) into ``module``."""
    def put(name, value):
        getattr(module, name)[...] = value

    if isinstance(module, nn.Linear):
        put("weight", arrays[0].T)
        if module.with_bias:
            put("bias", arrays[1])
    elif isinstance(module, nn.SpatialConvolution):
        put("weight", arrays[0].transpose(3, 2, 0, 1))
        if len(arrays) > 1:
            put("bias", arrays[1])
    elif isinstance(module, nn.TemporalConvolution):
        k = arrays[0]
        put("weight", k.transpose(2, 0, 1).reshape(module.weight.shape))
        put("bias", arrays[1])
    elif isinstance(module, (nn.BatchNormalization, nn.SpatialBatchNormalization)):
        rest = list(arrays)
        gamma = rest.pop(0) if info.get("scale", True) else np.ones(module.n_output)
        beta = rest.pop(0) if info.get("center", True) else np.zeros(module.n_output)
        put("weight", gamma)
        put("bias", beta)
        put("running_mean", rest[0])
        put("running_var", rest[1])
    elif isinstance(module, nn.LookupTable):
        put("weight", arrays[0])
    elif isinstance(module, nn.Recurrent):
        cell = module.cell
        h = cell.hidden_size
        kernel, recurrent = arrays[0].T, arrays[1].T
        if isinstance(cell, nn.GRU):
            kernel, recurrent = _gru_blocks(kernel, h, 0), _gru_blocks(recurrent, h, 0)
        cell.weight[...] = kernel
        cell.recurrent_weight[...] = recurrent
        if isinstance(cell, nn.GRU):
            bias = arrays[2]
            if cell.reset_after:
                cell.bias[...] = _gru_blocks(bias[0], h, 0)
                cell.recurrent_bias[...] = _gru_blocks(bias[1], h, 0)
            else:
                cell.bias[...] = _gru_blocks(bias, h, 0)
        elif isinstance(cell, nn.LSTM):
            cell.bias[...] = arrays[2] if len(arrays) > 2 else 0.0
        elif len(arrays) > 2:
            cell.bias[...] = arrays[2]


def _snake(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_paths(names, kind):
    """Keras 3's ``layers/<path>`` of each layer: its class in snake case, numbered in order
    (``dense``, ``dense_1``...), over ``model.layers`` (a Sequential's omits its input)."""
    used, out = {}, {}
    for name, cls in names:
        if kind == "Sequential" and cls == "InputLayer":
            continue
        base = _snake(cls)
        if base in used:
            used[base] += 1
            path = f"{base}_{used[base]}"
        else:
            used[base] = 0
            path = base
        out[name] = path
    return out


def _load_weights(store, weighted, names, kind, by_name):
    """Copy the store's arrays into the ``weighted`` layers (``(name, cls, _Converted)``)."""
    where = store.h5.where
    if store.legacy is not None:
        if by_name:
            pairs = [(w, store.by_name.get(w[0])) for w in weighted]
        else:
            file_names = store.weighted_names()
            if len(file_names) != len(weighted):
                _fail(where, f"the file holds weights for {len(file_names)} layers "
                             f"({', '.join(file_names)}), the model has {len(weighted)} layers "
                             f"with weights ({', '.join(w[0] for w in weighted)}); pass "
                             "by_name=True to match them by name")
            pairs = [(w, store.by_name[f]) for w, f in zip(weighted, file_names)]
    else:
        if by_name:
            pairs = [(w, store.by_name.get(w[0])) for w in weighted]
        else:
            paths = _keras3_paths(names, kind)
            pairs = []
            for w in weighted:
                refs = store.by_path.get(paths.get(w[0]))
                if refs is None:
                    _fail(where, f"layer {w[0]!r} ({w[1]}): no weights at layers/"
                                 f"{paths.get(w[0])} in the file")
                pairs.append((w, refs))
    for (name, cls, conv), refs in pairs:
        if refs is None:
            continue  # by_name: a layer the file does not hold keeps its initial weights
        expected = _expected_shapes(cls, conv.weighted, conv.info)
        arrays = store.read(refs, [s for _, s in expected], name)
        _assign(conv.weighted, arrays, conv.info)


# ============================================================================ public API
def _weights_budget(h5):
    # every stored value takes at least 2 bytes (float16); batch-norm statistics and
    # the odd parameter not in the file get a small allowance
    return h5.nbytes // 2 + 100_000


def load_keras(json_path=None, hdf5_path=None, by_name=False):
    """Load a Keras model as a workbench model (BigDL's ``Model.load_keras``).

    Args:
        json_path: the JSON architecture (``model.to_json()``), or None when ``hdf5_path``
            holds the architecture too (a full-model ``.h5`` or a ``.keras`` archive).
        hdf5_path: the weights: a ``.h5`` / ``.weights.h5`` file (legacy or Keras 3 layout),
            a full-model ``.h5`` or a ``.keras`` archive.  None: the architecture only, with
            our layers' initial weights.
        by_name: match the file's weights to layers by layer name (layers the file does not
            hold keep their initial weights), as Keras' ``load_weights(by_name=True)``;
            False (default): by position, as Keras saves them.

    Returns:
        a ``Sequential`` (Keras Sequential) or ``Graph`` (functional model), in evaluation
        mode, taking and returning the same arrays as the Keras model (images channels-last).

    Raises:
        ModelFileError: a malformed, truncated or hostile file, an unsupported layer (named
            with its class), or weights that do not fit the architecture.
    """
    if json_path is None and hdf5_path is None:
        raise ValueError("load_keras: give json_path, hdf5_path or both")
    h5, version = None, None
    try:
        if json_path is not None:
            where = os.fspath(json_path)
            doc = _parse_json(_read_limited(json_path, _MAX_JSON_BYTES, "JSON architecture"),
                              where)
            if hdf5_path is not None:
                h5 = _open_weights(hdf5_path)
        else:
            path = os.fspath(hdf5_path)
            if not os.path.exists(path):
                raise FileNotFoundError(f"load_keras: no such file {path}")
            where = path
            if _is_zip(path):
                doc, meta, data = _read_keras_zip(path)
                version = meta.get("keras_version")
                h5 = _H5(f"{path}:{_WEIGHTS_MEMBER}", data=data)
            else:
                h5 = _H5(path, path=path)
                raw = h5.file.attrs.get("model_config")
                if raw is None:
                    _fail(path, "this HDF5 file holds no model_config (weights only?); pass "
                                "the architecture as json_path")
                raw = _attr_text(raw)
                if len(raw) > _MAX_JSON_BYTES:
                    _fail(path, "model_config is too large")
                doc = _parse_json(raw, f"{path}:model_config")
                version = h5.file.attrs.get("keras_version")
                version = None if version is None else _attr_text(version)
        budget = MAX_VALUES_WITHOUT_WEIGHTS if h5 is None else _weights_budget(h5)
        model, weighted, names, kind = _build(doc, where, budget, version)
        if h5 is not None:
            store = _Store(h5)
            _load_weights(store, weighted, names, kind, bool(by_name))
    finally:
        if h5 is not None:
            h5.close()
    model.evaluate()
    return model


def load_keras_weights(model, hdf5_path, by_name=True):
    """Load Keras weights into an existing workbench ``model`` by layer name.

    Each layer of the file is matched to the module of ``model`` with the same name
    (``set_name``) — a ``Linear`` for Dense, ``SpatialConvolution`` (``data_format="NHWC"``
    for a Keras channels-last Conv2D) or ``TemporalConvolution``, a batch norm, a
    ``LookupTable``, a ``Recurrent`` of ``LSTM`` / ``GRU`` / ``RnnCell`` — and converted as
    :func:`load_keras` does.  File layers with no module of that name are skipped.

    Args:
        model: the workbench model to fill (changed in place and returned).
        hdf5_path: a weights ``.h5`` / ``.weights.h5``, a full-model ``.h5`` or a ``.keras``.
        by_name: must be True (matching by position needs the Keras architecture: use
            ``load_keras(json_path, hdf5_path)``).
    """
    if not by_name:
        raise ValueError("load_keras_weights: only by_name=True is supported for an existing "
                         "model; use load_keras(json_path, hdf5_path) to match by position")
    modules = {m._name: m for m in model.modules() if m._name is not None}
    h5 = _open_weights(hdf5_path)
    try:
        store = _Store(h5)
        loaded = 0
        for name, refs in store.by_name.items():
            module = modules.get(name)
            if module is None or not refs:
                continue
            info = {}
            if isinstance(module, (nn.BatchNormalization, nn.SpatialBatchNormalization)):
                labels = [label.split("/")[-1].split(":")[0] for _, label in refs]
                if len(refs) == 3 and "gamma" not in labels:
                    info["scale"] = False
                elif len(refs) == 3:
                    info["center"] = False
                elif len(refs) == 2:
                    info = {"scale": False, "center": False}
            try:
                expected = _expected_shapes(None, module, info)
            except ConfigError as e:
                raise ModelFileError(f"{h5.where}: layer {name!r}: {e}") from None
            if isinstance(module, nn.Recurrent) and isinstance(module.cell, nn.LSTM) \
                    and len(refs) == 2:
                expected, info = expected[:2], {"use_bias": False}
            arrays = store.read(refs, [s for _, s in expected], name)
            _assign(module, arrays, info)
            loaded += 1
    finally:
        h5.close()
    if loaded == 0:
        raise ModelFileError(f"{os.fspath(hdf5_path)}: no layer of the file matches a named "
                             "layer of the model")
    return model
