"""Torch7 models in: ``load_torch(path)`` reads an ``nn`` model saved by ``torch.save`` (binary).

The ``.t7`` binary serialisation is a tree of typed values (little-endian int32 tags): 0 nil,
1 number (float64), 2 string (int32 length + bytes), 3 table (int32 reference id, int32 number
of pairs, then key / value pairs), 4 torch object (int32 reference id, version string ``"V 1"``,
class name, payload), 5 boolean (int32).  Tables and objects are shared by reference id.  A
tensor's payload is its int32 number of dimensions, int64 sizes and strides, an int64 1-based
storage offset, then its storage object (int64 element count + the raw values); an ``nn`` module's
payload is the table of its fields.

Reading executes nothing (Lua functions in a file are refused), checks every declared size
against the bytes left before allocating, bounds the nesting depth, and refuses reference
cycles in the module tree.  The result is a ``workbench.nn`` model, the layers mapped as BigDL's
``Module.loadTorch`` mapped them; an unknown class raises ``ModelFileError`` naming the class and
its path in the model tree (e.g. ``model.modules[3].modules[1]``).
"""
from __future__ import annotations

import os
import struct

import numpy as np

from .. import nn
from ..nn.module import allocation_budget
from .archive import ModelFileError

__all__ = ["load_torch", "TorchObject"]

_NIL, _NUMBER, _STRING, _TABLE, _TORCH, _BOOLEAN = 0, 1, 2, 3, 4, 5
_FUNCTIONS = (6, 7, 8)
_MAX_DEPTH = 200
_TENSOR_TYPES = {"Float": np.float32, "Double": np.float64, "Long": np.int64,
                 "Int": np.int32, "Short": np.int16, "Char": np.int8, "Byte": np.uint8}


class TorchObject:
    """A torch object read from a file that is not a tensor or storage: its class name and its
    fields (a dict with str / float keys)."""

    def __init__(self, class_name):
        self.class_name = class_name
        self.fields = {}

    def __repr__(self):
        return f"TorchObject({self.class_name})"


class _Reader:
    def __init__(self, path, data):
        self.path, self.data, self.pos = path, data, 0
        self.refs = {}
        self.total_values = 0

    def fail(self, what):
        raise ModelFileError(f"{self.path}: {what} (at byte {self.pos})")

    def need(self, n):
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"truncated or corrupt: {n} bytes needed, "
                      f"{len(self.data) - self.pos} left")

    def unpack(self, fmt):
        s = struct.Struct("<" + fmt)
        self.need(s.size)
        values = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return values

    def int(self):
        return self.unpack("i")[0]

    def long(self):
        return self.unpack("q")[0]

    def string(self):
        n = self.int()
        self.need(n)
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def read(self, depth=0):
        if depth > _MAX_DEPTH:
            self.fail(f"nested more than {_MAX_DEPTH} levels deep")
        tag = self.int()
        if tag == _NIL:
            return None
        if tag == _NUMBER:
            return self.unpack("d")[0]
        if tag == _STRING:
            return self.string()
        if tag == _BOOLEAN:
            return self.int() == 1
        if tag in _FUNCTIONS:
            self.fail("the file holds a Lua function; functions are never loaded")
        if tag not in (_TABLE, _TORCH):
            self.fail(f"unknown type tag {tag}")
        ref = self.int()
        if ref in self.refs:
            return self.refs[ref]
        if tag == _TABLE:
            table = {}
            self.refs[ref] = table
            n = self.int()
            if n < 0 or n * 8 > len(self.data) - self.pos:
                self.fail(f"a table declares {n} entries")
            for _ in range(n):
                key = self.read(depth + 1)
                value = self.read(depth + 1)
                if isinstance(key, (dict, list, TorchObject, np.ndarray)) or key is None:
                    self.fail("a table key that is not a number, string or boolean")
                table[key] = value
            return table
        version = self.string()
        if not version.startswith("V "):
            self.fail(f"unsupported torch object version {version[:20]!r}")
        class_name = self.string()
        kind = class_name.split(".")[-1]
        if class_name.startswith("torch.") and kind.endswith("Storage"):
            value = self.storage(class_name, kind[:-len("Storage")])
        elif class_name.startswith("torch.") and kind.endswith("Tensor"):
            value = self.tensor(class_name, depth)
        else:
            value = TorchObject(class_name)
            self.refs[ref] = value
            fields = self.read(depth + 1)
            if not isinstance(fields, dict):
                self.fail(f"{class_name}: its fields are not a table")
            value.fields = fields
        self.refs[ref] = value
        return value

    def storage(self, class_name, kind):
        dtype = _TENSOR_TYPES.get(kind)
        if dtype is None:
            self.fail(f"unsupported storage type {class_name}")
        n = self.long()
        size = np.dtype(dtype).itemsize
        if n < 0 or n * size > len(self.data) - self.pos:
            self.fail(f"{class_name} declares {n} values, the file has "
                      f"{(len(self.data) - self.pos) // size} left")
        array = np.frombuffer(self.data, dtype=np.dtype(dtype).newbyteorder("<"), count=n,
                              offset=self.pos).astype(dtype)
        self.pos += n * size
        self.total_values += n
        return array

    def tensor(self, class_name, depth):
        kind = class_name.split(".")[-1][:-len("Tensor")]
        if kind not in _TENSOR_TYPES:
            self.fail(f"unsupported tensor type {class_name}")
        ndim = self.int()
        if not 0 <= ndim <= 16:
            self.fail(f"{class_name} declares {ndim} dimensions")
        sizes = self.unpack("q" * ndim) if ndim else ()
        strides = self.unpack("q" * ndim) if ndim else ()
        offset = self.long() - 1
        storage = self.read(depth + 1)
        if ndim == 0 or any(s == 0 for s in sizes):
            return np.zeros(sizes if ndim else (0,), _TENSOR_TYPES[kind])
        if storage is None or not isinstance(storage, np.ndarray):
            self.fail(f"{class_name} of size {sizes} has no storage")
        if any(s < 0 for s in sizes) or any(s < 0 for s in strides) or offset < 0:
            self.fail(f"{class_name}: negative size, stride or offset")
        last = offset + sum((s - 1) * st for s, st in zip(sizes, strides))
        if last >= storage.size:
            self.fail(f"{class_name} of size {tuple(sizes)} reaches element {last} of a "
                      f"storage of {storage.size}")
        item = storage.itemsize
        view = np.lib.stride_tricks.as_strided(storage[offset:], shape=sizes,
                                               strides=[s * item for s in strides])
        return np.array(view, dtype=_TENSOR_TYPES[kind])


# --------------------------------------------------------------------------- conversion
def _seq(table):
    """A Lua array (a table keyed 1..n) as a list."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise TypeError("not a table")
    keys = sorted(table)
    if keys != [float(i) for i in range(1, len(keys) + 1)]:
        raise TypeError("not a Lua array")
    return [table[k] for k in keys]


class _Converter:
    def __init__(self, path):
        self.path = path
        self.active = set()

    def fail(self, where, obj, what):
        name = obj.class_name if isinstance(obj, TorchObject) else type(obj).__name__
        raise ModelFileError(f"{self.path}: {name} at {where}: {what}")

    def convert(self, obj, where):
        if not isinstance(obj, TorchObject):
            self.fail(where, obj, "expected an nn module")
        if id(obj) in self.active:
            self.fail(where, obj, "the model tree refers back to itself (a reference cycle)")
        self.active.add(id(obj))
        try:
            kind = obj.class_name
            short = kind[3:] if kind.startswith("nn.") else kind
            method = getattr(self, "_" + short, None) if kind.startswith("nn.") else None
            if method is None:
                self.fail(where, obj, "class not supported")
            f = obj.fields
            try:
                return method(obj, f, where)
            except ModelFileError:
                raise
            except (KeyError, TypeError, ValueError, IndexError) as e:
                self.fail(where, obj, f"unreadable fields ({type(e).__name__}: {str(e)[:200]})")
        finally:
            self.active.discard(id(obj))

    def children(self, obj, f, where):
        return [self.convert(m, f"{where}.modules[{i}]")
                for i, m in enumerate(_seq(f.get("modules")), 1)]

    @staticmethod
    def num(f, key, default=None):
        value = f.get(key, default)
        if value is None:
            raise KeyError(key)
        return value

    def array(self, obj, f, key, where, shape=None):
        value = f.get(key)
        if not isinstance(value, np.ndarray):
            self.fail(where, obj, f"field {key!r} is not a tensor")
        if shape is not None:
            if value.size != int(np.prod(shape)):
                self.fail(where, obj, f"{key} has shape {value.shape}, expected {tuple(shape)}")
            value = value.reshape(shape)
        return value

    # containers
    def _Sequential(self, obj, f, where):
        model = nn.Sequential()
        for m in self.children(obj, f, where):
            model.add(m)
        return model

    def _Concat(self, obj, f, where):
        model = nn.Concat(int(self.num(f, "dimension")))
        for m in self.children(obj, f, where):
            model.add(m)
        return model

    def _ConcatTable(self, obj, f, where):
        model = nn.ConcatTable()
        for m in self.children(obj, f, where):
            model.add(m)
        return model

    def _ParallelTable(self, obj, f, where):
        model = nn.ParallelTable()
        for m in self.children(obj, f, where):
            model.add(m)
        return model

    def _CAddTable(self, obj, f, where):
        return nn.CAddTable()

    def _JoinTable(self, obj, f, where):
        return nn.JoinTable(int(self.num(f, "dimension")), int(f.get("nInputDims") or 0))

    # layers with weights
    def _SpatialConvolution(self, obj, f, where):
        n_in, n_out = int(self.num(f, "nInputPlane")), int(self.num(f, "nOutputPlane"))
        kw, kh = int(self.num(f, "kW")), int(self.num(f, "kH"))
        dw, dh = int(f.get("dW", 1)), int(f.get("dH", 1))
        pad = f.get("padding", 0)
        pw, ph = int(f.get("padW", pad) or 0), int(f.get("padH", pad) or 0)
        groups = int(f.get("groups", 1) or 1)
        weight = self.array(obj, f, "weight", where, (n_out, n_in // groups, kh, kw))
        bias = f.get("bias")
        m = nn.SpatialConvolution(n_in, n_out, kw, kh, dw, dh, pw, ph, n_group=groups,
                                  with_bias=bias is not None)
        m.weight[...] = weight
        if bias is not None:
            m.bias[...] = self.array(obj, f, "bias", where, (n_out,))
        return m

    _SpatialConvolutionMM = _SpatialConvolution

    def _Linear(self, obj, f, where):
        weight = self.array(obj, f, "weight", where)
        if weight.ndim != 2:
            self.fail(where, obj, f"weight of shape {weight.shape} is not 2-D")
        bias = f.get("bias")
        m = nn.Linear(weight.shape[1], weight.shape[0], with_bias=bias is not None)
        m.weight[...] = weight
        if bias is not None:
            m.bias[...] = self.array(obj, f, "bias", where, (weight.shape[0],))
        return m

    def _batch_norm(self, cls, obj, f, where):
        mean = self.array(obj, f, "running_mean", where)
        c = mean.size
        eps = float(f.get("eps", 1e-5))
        weight = f.get("weight")
        m = cls(c, eps=eps, momentum=float(f.get("momentum", 0.1)), affine=weight is not None)
        m.running_mean[...] = mean.reshape(c)
        if "running_var" in f:
            m.running_var[...] = self.array(obj, f, "running_var", where, (c,))
        else:  # older nn stored 1 / sqrt(var + eps)
            std = self.array(obj, f, "running_std", where, (c,))
            m.running_var[...] = 1.0 / np.square(std) - eps
        if weight is not None:
            m.weight[...] = self.array(obj, f, "weight", where, (c,))
            m.bias[...] = self.array(obj, f, "bias", where, (c,))
        return m

    def _SpatialBatchNormalization(self, obj, f, where):
        return self._batch_norm(nn.SpatialBatchNormalization, obj, f, where)

    def _BatchNormalization(self, obj, f, where):
        return self._batch_norm(nn.BatchNormalization, obj, f, where)

    # pooling
    def _SpatialMaxPooling(self, obj, f, where):
        m = nn.SpatialMaxPooling(int(self.num(f, "kW")), int(self.num(f, "kH")),
                                 int(self.num(f, "dW")), int(self.num(f, "dH")),
                                 int(f.get("padW", 0)), int(f.get("padH", 0)),
                                 to_ceil=bool(f.get("ceil_mode", False)))
        return m

    def _SpatialAveragePooling(self, obj, f, where):
        return nn.SpatialAveragePooling(
            int(self.num(f, "kW")), int(self.num(f, "kH")), int(self.num(f, "dW")),
            int(self.num(f, "dH")), int(f.get("padW", 0)), int(f.get("padH", 0)),
            ceil_mode=bool(f.get("ceil_mode", False)),
            count_include_pad=bool(f.get("count_include_pad", True)),
            divide=bool(f.get("divide", True)))

    # element-wise and shape
    def _ReLU(self, obj, f, where):
        return nn.ReLU()

    def _Tanh(self, obj, f, where):
        return nn.Tanh()

    def _Sigmoid(self, obj, f, where):
        return nn.Sigmoid()

    def _Threshold(self, obj, f, where):
        return nn.Threshold(float(self.num(f, "threshold")), float(self.num(f, "val")))

    def _Dropout(self, obj, f, where):
        return nn.Dropout(float(f.get("p", 0.5)))

    def _SoftMax(self, obj, f, where):
        return nn.SoftMax()

    def _LogSoftMax(self, obj, f, where):
        return nn.LogSoftMax()

    def _Identity(self, obj, f, where):
        return nn.Identity()

    def _sizes(self, obj, f, where):
        size = f.get("size")
        if isinstance(size, np.ndarray):
            return [int(s) for s in size.reshape(-1)]
        if isinstance(size, dict):
            return [int(s) for s in _seq(size)]
        self.fail(where, obj, "field 'size' is not a LongStorage")

    def _View(self, obj, f, where):
        return nn.View(self._sizes(obj, f, where), int(f.get("numInputDims") or 0))

    def _Reshape(self, obj, f, where):
        batch = f.get("batchMode")
        return nn.Reshape(self._sizes(obj, f, where), None if batch is None else bool(batch))


def load_torch(path):
    """A model from a Torch7 ``.t7`` file written by ``torch.save(path, model)`` in binary mode
    (BigDL's ``Model.load_torch``).

    Args:
        path: the ``.t7`` file.

    Returns:
        the ``nn`` model as ``workbench.nn`` modules: Sequential, Concat, ConcatTable,
        ParallelTable, CAddTable, JoinTable, SpatialConvolution (and SpatialConvolutionMM's 2-D
        weights), SpatialMaxPooling (ceil_mode), SpatialAveragePooling, SpatialBatchNormalization,
        BatchNormalization, Linear, ReLU, Tanh, Sigmoid, Threshold, Dropout, View, Reshape,
        SoftMax, LogSoftMax, Identity.  An unknown class raises ``ModelFileError`` naming the
        class and its path in the model tree.
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    reader = _Reader(path, data)
    try:
        root = reader.read()
    except RecursionError:
        raise ModelFileError(f"{path}: nested too deeply") from None
    if reader.pos != len(data):
        raise ModelFileError(f"{path}: {len(data) - reader.pos} bytes after the model")
    try:
        with allocation_budget(reader.total_values + 4096, "the tensors stored in the file"):
            return _Converter(path).convert(root, "model")
    except ModelFileError:
        raise
    except Exception as e:  # a layer constructor refusing the file's hyperparameters
        raise ModelFileError(f"{path}: cannot convert ({type(e).__name__}: "
                             f"{str(e)[:300]})") from None
