"""ONNX in and out: ``load_onnx(path)`` builds an ordinary workbench model from an ONNX file,
``save_onnx(model, path, input_shape)`` writes one.

Import parses the protobuf only (the ``onnx`` package): nothing in the file is executed.  Each
ONNX node becomes one of our layers, the whole a ``Sequential`` when the graph is a chain with one
input and one output, else a ``Graph``.  Constant inputs (initializers, ``Constant`` nodes) become
the layers' weights or arguments; an op we cannot express raises :class:`OnnxError` naming the op
type, the node name and its position.  Safety: declared dimensions are checked before anything is
allocated, every initializer's declared size must match the bytes the file holds, and
initializers stored as *external data* are refused (a model file must be self-contained).

Export writes opset :data:`OPSET` (17) and checks the result with ``onnx.checker``.  The table of
ops and their limits is ``docs/ONNX.md``.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .. import nn
from ..nn.graph import Graph, Input
from ..nn.module import Module, allocation_budget
from .archive import ModelFileError

__all__ = ["load_onnx", "save_onnx", "OnnxError", "OPSET", "SUPPORTED_OPS"]

OPSET = 17
_MAX_ELEMENTS = 2 ** 34          # one declared tensor larger than this is absurd
_MAX_FILE = 2 ** 31              # protobuf's own limit for one message


class OnnxError(ModelFileError):
    """An ONNX file we cannot (or will not) import, or a model we cannot export."""


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - a core dependency
        raise ImportError("workbench.io.onnx needs the 'onnx' package (pip install onnx)") from None
    return onnx


# ====================================================================== import
class _Value:
    """A value of the ONNX graph while importing: a constant array or a node of our graph."""

    def __init__(self, node=None, rank=None, shape=None, const=None):
        self.node, self.rank, self.shape, self.const = node, rank, shape, const

    @property
    def is_const(self):
        return self.const is not None


def _tensor_to_array(onnx, tensor, where):
    """An initializer / constant tensor as a numpy array, sizes checked before allocating."""
    from onnx import numpy_helper
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{where}: tensor {tensor.name!r} has negative dimensions {dims}")
    count = math.prod(dims) if dims else 1
    if count > _MAX_ELEMENTS:
        raise OnnxError(f"{where}: tensor {tensor.name!r} declares {count} elements "
                        f"(dims {dims}), an absurd size")
    if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
        raise OnnxError(f"{where}: tensor {tensor.name!r} is stored as external data; "
                        "external data is refused: save the model as one file")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type) \
        if tensor.data_type in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13) else None
    if dtype is None:
        name = onnx.TensorProto.DataType.Name(tensor.data_type) \
            if tensor.data_type in onnx.TensorProto.DataType.values() else tensor.data_type
        raise OnnxError(f"{where}: tensor {tensor.name!r} has unsupported type {name}")
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data)
        need = count * np.dtype(dtype).itemsize
    else:
        field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
        held, need = len(getattr(tensor, field)), count
        if tensor.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL,
                                onnx.TensorProto.INT8, onnx.TensorProto.UINT8,
                                onnx.TensorProto.INT16, onnx.TensorProto.UINT16):
            need = count  # stored one per int32
    if held != need:
        raise OnnxError(f"{where}: tensor {tensor.name!r} declares dims {dims} ({need} "
                        f"{'bytes' if tensor.HasField('raw_data') else 'values'}) but the file "
                        f"holds {held}")
    return np.array(numpy_helper.to_array(tensor))


def _declared_shape(value_info, where):
    """Rank and dims (None where symbolic) of a graph input/output, or (None, None)."""
    t = value_info.type
    if not t.HasField("tensor_type"):
        raise OnnxError(f"{where}: {value_info.name!r} is not a tensor (sequences and maps are "
                        "not supported)")
    if not t.tensor_type.HasField("shape"):
        return None, None
    dims = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            if d.dim_value < 0 or d.dim_value > _MAX_ELEMENTS:
                raise OnnxError(f"{where}: {value_info.name!r} declares an absurd dimension "
                                f"{d.dim_value}")
            dims.append(int(d.dim_value))
        else:
            dims.append(None)
    known = [d for d in dims if d is not None]
    if known and math.prod(known) > _MAX_ELEMENTS:
        raise OnnxError(f"{where}: {value_info.name!r} declares dims {dims}, an absurd size")
    return len(dims), dims


class _Importer:
    def __init__(self, onnx, model, source):
        self.onnx, self.model, self.source = onnx, model, source
        self.opset = 1
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        self.values: dict[str, _Value] = {}
        self.shapes: dict[str, list] = {}
        self.consumers: dict[str, int] = {}
        self.where = ""
        self.node_proto = None

    # -------------------------------------------------------------- helpers
    def fail(self, message):
        raise OnnxError(f"{self.source}: {self.where}: {message}")

    def attrs(self, node):
        helper = self.onnx.helper
        out = {}
        for a in node.attribute:
            if a.type == self.onnx.AttributeProto.TENSOR:
                out[a.name] = _tensor_to_array(self.onnx, a.t, self.where)
            elif a.type in (self.onnx.AttributeProto.GRAPH, self.onnx.AttributeProto.GRAPHS):
                self.fail(f"attribute {a.name!r} holds a subgraph (control flow is not supported)")
            else:
                out[a.name] = helper.get_attribute_value(a)
        return out

    def value(self, name):
        if name not in self.values:
            self.fail(f"input {name!r} is not produced by any earlier node, initializer or "
                      "graph input")
        return self.values[name]

    def const_input(self, node, i, what, default=None):
        if len(node.input) <= i or node.input[i] == "":
            if default is None:
                self.fail(f"{what} (input {i}) is missing")
            return default
        v = self.value(node.input[i])
        if not v.is_const:
            self.fail(f"{what} (input {i}, {node.input[i]!r}) must be a constant "
                      "(initializer or Constant node)")
        return v.const

    def data(self, node, i=0):
        v = self.value(node.input[i])
        if v.is_const:
            self.fail(f"input {i} ({node.input[i]!r}) is a constant; an op on constants only "
                      "is not supported here")
        return v

    def rank_of(self, v):
        if v.rank is None:
            self.fail("the input's rank is unknown (declare the graph input's shape)")
        return v.rank

    # -------------------------------------------------------------- driver
    def run(self):
        g = self.model.graph
        inits = {}
        total = 0
        for t in g.initializer:
            arr = _tensor_to_array(self.onnx, t, f"initializer {t.name!r}")
            inits[t.name] = arr
            total += arr.size
        for n in g.node:
            for a in n.attribute:
                if a.type == self.onnx.AttributeProto.TENSOR:
                    total += math.prod(a.t.dims) if a.t.dims else 1
        self.budget = total + 4 * 10 ** 6  # BN statistics, layers' own small buffers
        inputs = []
        for vi in g.input:
            if vi.name in inits:
                continue
            rank, dims = _declared_shape(vi, f"graph input {vi.name!r}")
            node = Input(name=vi.name)
            self.values[vi.name] = _Value(node, rank, dims)
            inputs.append(node)
        for name, arr in inits.items():
            self.values[name] = _Value(const=arr)
        for vi in list(g.value_info) + list(g.output):
            try:
                rank, dims = _declared_shape(vi, f"value {vi.name!r}")
            except OnnxError:
                continue
            if rank is not None:
                self.shapes[vi.name] = dims
        for n in g.node:
            for name in n.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        for vi in g.output:
            self.consumers[vi.name] = self.consumers.get(vi.name, 0) + 1
        if not inputs:
            raise OnnxError(f"{self.source}: the graph has no (non-initializer) input")
        with allocation_budget(self.budget, "the weights in the ONNX file"):
            for pos, n in enumerate(g.node):
                self.where = (f"node {pos} ({n.op_type} {n.name!r})" if n.name
                              else f"node {pos} ({n.op_type})")
                self.node_proto = n
                if n.domain not in ("", "ai.onnx"):
                    self.fail(f"op {n.domain}.{n.op_type} is not supported (custom domain)")
                handler = getattr(self, "op_" + n.op_type, None)
                if handler is None:
                    self.fail(f"op {n.op_type} is not supported by workbench's ONNX importer "
                              "(see docs/ONNX.md)")
                try:
                    handler(n, self.attrs(n))
                except OnnxError:
                    raise
                except (ValueError, TypeError) as e:
                    self.fail(f"cannot build the layer: {e}")
        outputs = []
        for vi in g.output:
            self.where = f"graph output {vi.name!r}"
            v = self.value(vi.name)
            if v.is_const:
                self.fail("a constant graph output is not supported")
            outputs.append(v.node)
        return _assemble(inputs, outputs)

    def emit(self, node, module, inputs, rank=None, out=0, shape=None):
        name = node.output[out]
        module.set_name(node.name or name)
        prev = [v.node for v in inputs]
        gnode = module(*prev)
        if shape is None:
            shape = self.shapes.get(name)
        if shape is not None:
            rank = len(shape)
        self.values[name] = _Value(gnode, rank, shape)
        return gnode

    def single_output(self, node):
        if len([o for o in node.output if o]) > 1 and any(
                self.consumers.get(o, 0) for o in node.output[1:] if o):
            self.fail("only the first output is supported (the others are used)")

    # -------------------------------------------------------------- element-wise
    def _pointwise(self, node, module):
        self.single_output(node)
        x = self.data(node)
        self.emit(node, module, [x], x.rank, shape=x.shape)

    def op_Relu(self, n, a):
        self._pointwise(n, nn.ReLU())

    def op_Sigmoid(self, n, a):
        self._pointwise(n, nn.Sigmoid())

    def op_Tanh(self, n, a):
        self._pointwise(n, nn.Tanh())

    def op_Abs(self, n, a):
        self._pointwise(n, nn.Abs())

    def op_Exp(self, n, a):
        self._pointwise(n, nn.Exp())

    def op_Log(self, n, a):
        self._pointwise(n, nn.Log())

    def op_Sqrt(self, n, a):
        self._pointwise(n, nn.Sqrt())

    def op_Neg(self, n, a):
        self._pointwise(n, nn.Negative())

    def op_Softplus(self, n, a):
        self._pointwise(n, nn.SoftPlus())

    def op_Softsign(self, n, a):
        self._pointwise(n, nn.SoftSign())

    def op_Identity(self, n, a):
        v = self.value(n.input[0])
        if v.is_const:
            self.values[n.output[0]] = v
            return
        self._pointwise(n, nn.Identity())

    def op_Dropout(self, n, a):
        if len(n.output) > 1 and n.output[1] and self.consumers.get(n.output[1], 0):
            self.fail("the dropout mask output is not supported")
        if len(n.input) > 2 and n.input[2]:
            training = self.const_input(n, 2, "training_mode")
            if bool(np.asarray(training).reshape(-1)[0]):
                self.fail("training_mode=True is not supported (inference only)")
        self._pointwise(n, nn.Identity())

    def op_LeakyRelu(self, n, a):
        self._pointwise(n, nn.LeakyReLU(float(a.get("alpha", 0.01))))

    def op_Elu(self, n, a):
        self._pointwise(n, nn.ELU(float(a.get("alpha", 1.0))))

    def op_HardSigmoid(self, n, a):
        alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
        if not (np.isclose(alpha, 0.2) and np.isclose(beta, 0.5)):
            self.fail(f"HardSigmoid with alpha={alpha}, beta={beta} is not supported "
                      "(only 0.2, 0.5)")
        self._pointwise(n, nn.HardSigmoid())

    def op_Clip(self, n, a):
        if self.opset < 11:
            lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            lo = self.const_input(n, 1, "min", default=np.float32(-np.inf))
            hi = self.const_input(n, 2, "max", default=np.float32(np.inf))
        lo, hi = float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0])
        if lo == 0.0 and hi == 6.0:
            module = nn.ReLU6()
        elif lo == 0.0 and hi == np.inf:
            module = nn.ReLU()
        else:
            big = float(np.finfo(np.float32).max)
            lo, hi = max(lo, -big), min(hi, big)
            if not lo < hi:
                self.fail(f"Clip with min={lo} >= max={hi} is not supported")
            module = nn.Clamp(lo, hi)
        self._pointwise(n, module)

    def _softmax(self, n, a, cls):
        x = self.data(n)
        r = self.rank_of(x)
        default = -1 if self.opset >= 13 else 1
        axis = a.get("axis", default)
        axis = axis + r if axis < 0 else axis
        if self.opset < 13 and axis != r - 1:
            self.fail(f"Softmax (opset {self.opset}) with axis={axis} on rank {r} "
                      "(flattening semantics) is not supported")
        ok = (r in (1, 2) and axis == r - 1) or (r in (3, 4) and axis == r - 3)
        if not ok:
            self.fail(f"softmax over axis {axis} of a rank-{r} tensor is not supported (ours: "
                      "the last axis of rank 1-2, the channel axis of rank 3-4)")
        self.emit(n, cls(), [x], r, shape=x.shape)

    def op_Softmax(self, n, a):
        self._softmax(n, a, nn.SoftMax)

    def op_LogSoftmax(self, n, a):
        self._softmax(n, a, nn.LogSoftMax)

    # -------------------------------------------------------------- binary
    def _binary(self, n, table_cls, const_fn):
        if len(n.input) != 2:
            self.fail(f"expected 2 inputs, got {len(n.input)}")
        va, vb = self.value(n.input[0]), self.value(n.input[1])
        if va.is_const and vb.is_const:
            self.fail("an op on constants only is not supported")
        if not va.is_const and not vb.is_const:
            rank = None if va.rank is None or vb.rank is None else max(va.rank, vb.rank)
            self.emit(n, table_cls(), [va, vb], rank)
            return
        x, c, x_first = (va, vb.const, True) if vb.is_const else (vb, va.const, False)
        module = const_fn(c, x_first, x)
        self.emit(n, module, [x], x.rank, shape=x.shape)

    def _expanded(self, c, x):
        """A constant's shape for CAdd / CMul against ``x`` (ONNX right-aligned broadcast)."""
        c = np.asarray(c, np.float32)
        if x.rank is None:
            self.fail("broadcasting a constant needs the input's rank")
        if c.ndim > x.rank:
            self.fail(f"constant of shape {c.shape} has more axes than the input ({x.rank})")
        if c.ndim == x.rank:
            if c.shape[0] != 1:
                if x.shape is None or x.shape[0] != c.shape[0]:
                    self.fail(f"constant of shape {c.shape} varies along the batch axis")
                return c
            c = c.reshape(c.shape[1:])
        target = max(x.rank - 1, 1)
        c = c.reshape((1,) * (target - c.ndim) + c.shape)
        if x.shape is not None and c.size == math.prod(d or 0 for d in x.shape) \
                and c.shape != tuple(x.shape):
            # our Expanding layers take a same-sized parameter element by element
            self.fail(f"constant of shape {c.shape} has as many elements as the input")
        return c

    def _with_param(self, cls, c, x):
        c = self._expanded(c, x)
        module = cls(list(c.shape))
        getattr(module, module._param_names[0])[...] = c
        return module

    def op_Add(self, n, a):
        def const(c, x_first, x):
            c = np.asarray(c, np.float32)
            if c.size == 1:
                return nn.AddConstant(float(c.reshape(-1)[0]))
            return self._with_param(nn.CAdd, c, x)
        self._binary(n, nn.CAddTable, const)

    def op_Sub(self, n, a):
        def const(c, x_first, x):
            c = np.asarray(c, np.float32)
            if c.size == 1:
                v = float(c.reshape(-1)[0])
                if x_first:
                    return nn.AddConstant(-v)
                return nn.Sequential().add(nn.Negative()).add(nn.AddConstant(v))
            if x_first:
                return self._with_param(nn.CAdd, -c, x)
            return nn.Sequential().add(nn.Negative()).add(self._with_param(nn.CAdd, c, x))
        self._binary(n, nn.CSubTable, const)

    def op_Mul(self, n, a):
        def const(c, x_first, x):
            c = np.asarray(c, np.float32)
            if c.size == 1:
                return nn.MulConstant(float(c.reshape(-1)[0]))
            return self._with_param(nn.CMul, c, x)
        self._binary(n, nn.CMulTable, const)

    def op_Div(self, n, a):
        def const(c, x_first, x):
            if not x_first:
                self.fail("a constant divided by a tensor is not supported")
            c = np.asarray(c, np.float32)
            if c.size == 1:
                return nn.MulConstant(float(1.0 / c.reshape(-1)[0]))
            return self._with_param(nn.CMul, 1.0 / c, x)
        self._binary(n, nn.CDivTable, const)

    def _variadic(self, n, cls):
        vs = [self.data(n, i) for i in range(len(n.input))]
        if len(vs) == 1:
            self.emit(n, nn.Identity(), vs, vs[0].rank, shape=vs[0].shape)
            return
        ranks = [v.rank for v in vs]
        self.emit(n, cls(), vs, None if None in ranks else max(ranks))

    def op_Sum(self, n, a):
        self._variadic(n, nn.CAddTable)

    def op_Max(self, n, a):
        self._variadic(n, nn.CMaxTable)

    def op_Min(self, n, a):
        self._variadic(n, nn.CMinTable)

    def op_Mean(self, n, a):
        self._variadic(n, nn.CAveTable)

    def op_Concat(self, n, a):
        vs = [self.data(n, i) for i in range(len(n.input))]
        r = self.rank_of(vs[0])
        axis = a.get("axis", 1)
        axis = axis + r if axis < 0 else axis
        if not 0 <= axis < r:
            self.fail(f"axis {a.get('axis')} out of range for rank {r}")
        if len(vs) == 1:
            self.emit(n, nn.Identity(), vs, r, shape=vs[0].shape)
            return
        self.emit(n, nn.JoinTable(axis + 1, 0), vs, r)

    # -------------------------------------------------------------- dense
    def op_Gemm(self, n, a):
        x = self.data(n)
        if a.get("transA", 0):
            self.fail("transA=1 is not supported")
        b = np.asarray(self.const_input(n, 1, "B"), np.float32)
        if b.ndim != 2:
            self.fail(f"B must be 2-D, got shape {b.shape}")
        w = b if a.get("transB", 0) else b.T
        w = float(a.get("alpha", 1.0)) * w
        out_size, in_size = w.shape
        c = None
        if len(n.input) > 2 and n.input[2]:
            c = np.asarray(self.const_input(n, 2, "C"), np.float32) * float(a.get("beta", 1.0))
            if c.size not in (1, out_size) or (c.ndim == 2 and c.shape[0] != 1):
                self.fail(f"C of shape {c.shape} is not a bias of {out_size} outputs")
            c = np.broadcast_to(c.reshape(-1), (out_size,))
        if x.rank is not None and x.rank != 2:
            self.fail(f"Gemm input must be 2-D, got rank {x.rank}")
        layer = nn.Linear(in_size, out_size, with_bias=c is not None)
        layer.weight[...] = w
        if c is not None:
            layer.bias[...] = c
        self.emit(n, layer, [x], 2)

    def op_MatMul(self, n, a):
        x = self.data(n)
        w = np.asarray(self.const_input(n, 1, "the second operand"), np.float32)
        if w.ndim != 2:
            self.fail(f"the second operand must be a 2-D constant, got shape {w.shape}")
        if x.rank is not None and x.rank != 2:
            self.fail(f"MatMul of a rank-{x.rank} input is supported for rank 2 only")
        layer = nn.Linear(w.shape[0], w.shape[1], with_bias=False)
        layer.weight[...] = w.T
        self.emit(n, layer, [x], 2)

    # -------------------------------------------------------------- convolution
    def _spatial(self, n, a, x, kernel_shape):
        d = len(kernel_shape)
        strides = list(a.get("strides", [1] * d))
        dil = list(a.get("dilations", [1] * d))
        pads = list(a.get("pads", [0] * 2 * d))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if x.shape is None or any(s is None for s in x.shape[2:]):
                self.fail(f"auto_pad={auto} needs static spatial sizes")
            pads = [0] * 2 * d
            for i, (size, k, s, r) in enumerate(zip(x.shape[2:], kernel_shape, strides, dil)):
                total = max((-(-size // s) - 1) * s + (k - 1) * r + 1 - size, 0)
                small, big = total // 2, total - total // 2
                pads[i], pads[i + d] = (small, big) if auto == "SAME_UPPER" else (big, small)
        elif auto == "VALID":
            pads = [0] * 2 * d
        elif auto != "NOTSET":
            self.fail(f"auto_pad={auto} is not supported")
        if len(strides) != d or len(dil) != d or len(pads) != 2 * d:
            self.fail("kernel_shape, strides, dilations and pads disagree in length")
        return strides, dil, pads

    def op_Conv(self, n, a):
        x = self.data(n)
        w = np.asarray(self.const_input(n, 1, "W"), np.float32)
        if w.ndim != 4:
            self.fail(f"only 2-D convolution is supported (weight of shape {w.shape})")
        kernel = list(a.get("kernel_shape", w.shape[2:]))
        if list(w.shape[2:]) != kernel:
            self.fail(f"kernel_shape {kernel} disagrees with the weight's shape {w.shape}")
        strides, dil, pads = self._spatial(n, a, x, kernel)
        group = int(a.get("group", 1))
        n_out, n_in = w.shape[0], w.shape[1] * group
        b = None
        if len(n.input) > 2 and n.input[2]:
            b = np.asarray(self.const_input(n, 2, "B"), np.float32).reshape(-1)
            if b.size != n_out:
                self.fail(f"bias of {b.size} values for {n_out} output channels")
        pt, pl, pb, pr = pads
        inputs = [x]
        if (pt, pl) != (pb, pr):
            pad = nn.SpatialZeroPadding(pl, pr, pt, pb).set_name((n.name or n.output[0])
                                                                 + "/pad")
            inputs = [_Value(pad(x.node), 4)]
            pt = pl = 0
        if dil != [1, 1]:
            if group != 1:
                self.fail("dilated grouped convolution is not supported")
            layer = nn.SpatialDilatedConvolution(n_in, n_out, kernel[1], kernel[0], strides[1],
                                                 strides[0], pl, pt, dil[1], dil[0])
            if b is None:
                b = np.zeros(n_out, np.float32)
        else:
            layer = nn.SpatialConvolution(n_in, n_out, kernel[1], kernel[0], strides[1],
                                          strides[0], pl, pt, n_group=group,
                                          with_bias=b is not None)
        layer.weight[...] = w
        if b is not None:
            layer.bias[...] = b
        self.emit(n, layer, inputs, 4)

    def op_ConvTranspose(self, n, a):
        x = self.data(n)
        w = np.asarray(self.const_input(n, 1, "W"), np.float32)
        if w.ndim != 4:
            self.fail(f"only 2-D transposed convolution is supported (weight {w.shape})")
        if "output_shape" in a:
            self.fail("the output_shape attribute is not supported (use pads/output_padding)")
        kernel = list(a.get("kernel_shape", w.shape[2:]))
        auto = a.get("auto_pad", b"NOTSET")
        if (auto.decode() if isinstance(auto, bytes) else auto) != "NOTSET":
            self.fail(f"auto_pad={auto!r} is not supported for ConvTranspose")
        strides, dil, pads = self._spatial(n, a, x, kernel)
        if dil != [1, 1]:
            self.fail("dilated transposed convolution is not supported")
        if pads[:2] != pads[2:]:
            self.fail(f"asymmetric pads {pads} are not supported")
        adj = list(a.get("output_padding", [0, 0]))
        group = int(a.get("group", 1))
        n_in, n_out = w.shape[0], w.shape[1] * group
        b = None
        if len(n.input) > 2 and n.input[2]:
            b = np.asarray(self.const_input(n, 2, "B"), np.float32).reshape(-1)
        layer = nn.SpatialFullConvolution(n_in, n_out, kernel[1], kernel[0], strides[1],
                                          strides[0], pads[1], pads[0], adj[1], adj[0],
                                          n_group=group, no_bias=b is None)
        layer.weight[...] = w
        if b is not None:
            layer.bias[...] = b
        self.emit(n, layer, [x], 4)

    # -------------------------------------------------------------- pooling
    def _pool(self, n, a, is_max):
        self.single_output(n)
        x = self.data(n)
        if self.rank_of(x) != 4:
            self.fail(f"only 2-D pooling (rank-4 input) is supported, got rank {x.rank}")
        kernel = list(a["kernel_shape"])
        strides, dil, pads = self._spatial(n, a, x, kernel)
        if dil != [1, 1]:
            self.fail("dilated pooling is not supported")
        if a.get("storage_order", 0):
            self.fail("storage_order=1 is not supported")
        if pads[:2] != pads[2:]:
            self.fail(f"asymmetric pads {pads} are not supported")
        ceil = bool(a.get("ceil_mode", 0))
        if is_max:
            layer = nn.SpatialMaxPooling(kernel[1], kernel[0], strides[1], strides[0], pads[1],
                                         pads[0], to_ceil=ceil)
        else:
            layer = nn.SpatialAveragePooling(kernel[1], kernel[0], strides[1], strides[0],
                                             pads[1], pads[0], ceil_mode=ceil,
                                             count_include_pad=bool(a.get("count_include_pad",
                                                                          0)))
        self.emit(n, layer, [x], 4)

    def op_MaxPool(self, n, a):
        self._pool(n, a, True)

    def op_AveragePool(self, n, a):
        self._pool(n, a, False)

    def op_GlobalAveragePool(self, n, a):
        x = self.data(n)
        if self.rank_of(x) != 4:
            self.fail(f"only rank-4 input is supported, got rank {x.rank}")
        self.emit(n, nn.SpatialAveragePooling(1, 1, global_pooling=True), [x], 4)

    def op_GlobalMaxPool(self, n, a):
        x = self.data(n)
        if self.rank_of(x) != 4:
            self.fail(f"only rank-4 input is supported, got rank {x.rank}")
        seq = nn.Sequential().add(nn.GlobalMaxPooling2D()).add(
            nn.InferReshape([0, 1, 1], batch_mode=True))
        self.emit(n, seq, [x], 4)

    # -------------------------------------------------------------- normalization
    def op_BatchNormalization(self, n, a):
        self.single_output(n)
        if a.get("training_mode", 0):
            self.fail("training_mode=1 is not supported (inference only)")
        x = self.data(n)
        scale, bias, mean, var = (np.asarray(self.const_input(n, i, what), np.float32)
                                  for i, what in ((1, "scale"), (2, "B"), (3, "mean"),
                                                  (4, "var")))
        c = scale.size
        if not (bias.size == mean.size == var.size == c):
            self.fail("scale, B, mean and var differ in size")
        r = self.rank_of(x)
        eps = float(a.get("epsilon", 1e-5))
        if r == 4:
            layer = nn.SpatialBatchNormalization(c, eps)
        elif r == 2:
            layer = nn.BatchNormalization(c, eps)
        else:
            self.fail(f"batch normalization of a rank-{r} input is not supported")
        layer.weight[...] = scale.reshape(-1)
        layer.bias[...] = bias.reshape(-1)
        layer.running_mean[...] = mean.reshape(-1)
        layer.running_var[...] = var.reshape(-1)
        self.emit(n, layer, [x], r, shape=x.shape)

    def op_LRN(self, n, a):
        x = self.data(n)
        if self.rank_of(x) != 4:
            self.fail(f"LRN of a rank-{x.rank} input is not supported")
        size = int(a["size"])
        if size % 2 == 0:
            self.fail(f"LRN with an even size ({size}) is not supported")
        layer = nn.SpatialCrossMapLRN(size, float(a.get("alpha", 1e-4)),
                                      float(a.get("beta", 0.75)), float(a.get("bias", 1.0)))
        self.emit(n, layer, [x], 4, shape=x.shape)

    # -------------------------------------------------------------- shapes
    def op_Flatten(self, n, a):
        x = self.data(n)
        r = self.rank_of(x)
        axis = a.get("axis", 1)
        axis = axis + r if axis < 0 else axis
        if axis == 1:
            layer = nn.InferReshape([-1], batch_mode=True)
        elif axis == 0:
            layer = nn.InferReshape([1, -1])
        elif x.shape is not None and all(d is not None for d in x.shape[axis:]):
            layer = nn.InferReshape([-1, math.prod(x.shape[axis:])])
        elif x.shape is not None and all(d is not None for d in x.shape[:axis]):
            layer = nn.InferReshape([math.prod(x.shape[:axis]), -1])
        else:
            layer = None
        if layer is None:
            self.fail(f"Flatten at axis {axis} needs static sizes")
        self.emit(n, layer, [x], 2)

    def op_Reshape(self, n, a):
        x = self.data(n)
        shape = [int(s) for s in np.asarray(self.const_input(n, 1, "shape")).reshape(-1)]
        if a.get("allowzero", 0) and 0 in shape:
            self.fail("allowzero=1 with a 0 in the shape is not supported")
        if any(s < -1 for s in shape) or sum(s == -1 for s in shape) > 1:
            self.fail(f"bad target shape {shape}")
        if any(s > _MAX_ELEMENTS for s in shape) or math.prod(
                s for s in shape if s > 0) > _MAX_ELEMENTS:
            self.fail(f"absurd target shape {shape}")
        if not shape:
            self.fail("reshape to a scalar is not supported")
        self.emit(n, nn.InferReshape(shape), [x], len(shape))

    def op_Transpose(self, n, a):
        x = self.data(n)
        r = self.rank_of(x)
        perm = list(a.get("perm", range(r - 1, -1, -1)))
        if sorted(perm) != list(range(r)):
            self.fail(f"perm {perm} is not a permutation of {r} axes")
        swaps, cur = [], list(range(r))
        for i in range(r):
            j = cur.index(perm[i])
            if j != i:
                swaps.append((i + 1, j + 1))
                cur[i], cur[j] = cur[j], cur[i]
        module = nn.Transpose(swaps) if swaps else nn.Identity()
        shape = None if x.shape is None else [x.shape[p] for p in perm]
        self.emit(n, module, [x], r, shape=shape)

    def op_Pad(self, n, a):
        x = self.data(n)
        r = self.rank_of(x)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            self.fail(f"Pad mode {mode!r} is not supported (constant only)")
        if self.opset < 11:
            pads, value = list(a["pads"]), float(a.get("value", 0.0))
        else:
            pads = [int(p) for p in np.asarray(self.const_input(n, 1, "pads")).reshape(-1)]
            value = float(np.asarray(self.const_input(n, 2, "constant_value",
                                                      default=np.zeros(1))).reshape(-1)[0])
            if len(n.input) > 3 and n.input[3]:
                self.fail("the axes input is not supported")
        if len(pads) != 2 * r:
            self.fail(f"{len(pads)} pads for a rank-{r} input")
        if r != 4 or value != 0.0 or any(pads[i] or pads[i + r] for i in (0, 1)):
            self.fail("only zero padding of the last two axes of a rank-4 input is supported")
        layer = nn.SpatialZeroPadding(pads[3], pads[3 + r], pads[2], pads[2 + r])
        self.emit(n, layer, [x], 4)

    def op_Constant(self, n, a):
        if "value" not in a:
            keys = ", ".join(a) or "none"
            self.fail(f"only Constant with a 'value' tensor is supported (got {keys})")
        self.values[n.output[0]] = _Value(const=a["value"])


def _assemble(inputs, outputs):
    """A Sequential when the graph is a chain from one input to one output, else a Graph."""
    if len(inputs) == 1 and len(outputs) == 1:
        chain, node = [], outputs[0]
        while node is not inputs[0]:
            if len(node.prev) != 1:
                break
            chain.append(node)
            node = node.prev[0]
        else:
            # a chain: the graph is built back from its output, so no node lies off it
            seq = nn.Sequential()
            for gnode in reversed(chain):
                seq.add(gnode.module)
            if not chain:
                seq.add(nn.Identity())
            return seq
    return Graph(inputs, outputs)


def load_onnx(path):
    """Build a workbench model from an ONNX file (parsed, never executed).

    Args:
        path: an ``.onnx`` file (or the serialized bytes of one).

    Returns:
        a ``Sequential`` (a chain of layers) or a ``Graph`` (several inputs, outputs or
        branches) in inference mode (``evaluate()``).  Graph inputs become ``Input`` nodes named
        as in the file; a model with several inputs takes a table (list) in the file's order.

    Raises:
        OnnxError: unreadable or truncated file, absurd declared sizes, external data, or an op
            we cannot express (the message names the op type, the node name and its position).
    """
    onnx = _onnx()
    if isinstance(path, (bytes, bytearray)):
        data, source = bytes(path), "<bytes>"
    else:
        source = os.fspath(path)
        size = os.path.getsize(source)
        if size > _MAX_FILE:
            raise OnnxError(f"{source}: {size} bytes, larger than one protobuf message can be")
        with open(source, "rb") as f:
            data = f.read()
    from google.protobuf.message import DecodeError
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxError(f"{source}: not a valid ONNX file (truncated or corrupt: {e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxError(f"{source}: not an ONNX model (no graph nodes)")
    module = _Importer(onnx, model, source).run()
    return module.evaluate()


# ====================================================================== export
class _Exporter:
    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes, self.inits = [], []
        self.count = 0

    def fresh(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base, array):
        name = self.fresh(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, module, **attrs):
        out = self.fresh(module.name() + "_out" if module is not None else op)
        self.nodes.append(self.onnx.helper.make_node(
            op, inputs, [out], name=self.fresh(module.name() if module is not None else op),
            **attrs))
        return out

    def fail(self, module, message):
        raise OnnxError(f"save_onnx: {module.label()} ({type(module).__name__}): {message}")

    # -------------------------------------------------------------- containers
    def module(self, m, x):
        """Emit ``m`` applied to the value name(s) ``x``; returns the output name(s)."""
        if isinstance(m, nn.Sequential):
            for child in m._children:
                x = self.module(child, x)
            return x
        if isinstance(m, Graph):
            xs = x if isinstance(x, list) else [x]
            values = [None] * len(m._nodes)
            for k, pos in enumerate(m._inputs):
                values[pos] = xs[k]
            for i, node in enumerate(m._nodes):
                if i in m._inputs:
                    values[i] = self.module(node.module, values[i])
                    continue
                prev = m._prev[i]
                arg = values[prev[0]] if len(prev) == 1 else [values[p] for p in prev]
                values[i] = self.module(node.module, arg)
            outs = [values[o] for o in m._outputs]
            return outs[0] if len(outs) == 1 else outs
        handler = getattr(self, "ex_" + type(m).__name__, None)
        if handler is None:
            self.fail(m, "this layer has no ONNX export")
        return handler(m, x)

    @staticmethod
    def rank(m):
        return np.ndim(m.output)

    # -------------------------------------------------------------- layers
    def ex_InputLayer(self, m, x):
        return x

    def ex_Identity(self, m, x):
        return x

    def ex_Dropout(self, m, x):
        return x

    def ex_Contiguous(self, m, x):
        return x

    def _simple(op):
        def f(self, m, x):
            return self.node(op, [x], m)
        return f

    ex_ReLU = _simple("Relu")
    ex_Tanh = _simple("Tanh")
    ex_Sigmoid = _simple("Sigmoid")
    ex_Abs = _simple("Abs")
    ex_Exp = _simple("Exp")
    ex_Log = _simple("Log")
    ex_Negative = _simple("Neg")
    ex_SoftSign = _simple("Softsign")

    def ex_SoftPlus(self, m, x):
        if m.beta != 1.0:
            self.fail(m, "beta != 1 has no ONNX op")
        return self.node("Softplus", [x], m)

    def ex_Sqrt(self, m, x):
        return self.node("Sqrt", [x], m)

    def _softmax(self, m, x, op):
        r = self.rank(m)
        return self.node(op, [x], m, axis=-1 if r <= 2 else r - 3)

    def ex_SoftMax(self, m, x):
        return self._softmax(m, x, "Softmax")

    def ex_LogSoftMax(self, m, x):
        return self._softmax(m, x, "LogSoftmax")

    def ex_LeakyReLU(self, m, x):
        return self.node("LeakyRelu", [x], m, alpha=float(m.negval))

    def ex_ELU(self, m, x):
        return self.node("Elu", [x], m, alpha=float(m.alpha))

    def ex_HardTanh(self, m, x):
        lo = self.const("min", np.array(m.min_value, np.float32))
        hi = self.const("max", np.array(m.max_value, np.float32))
        return self.node("Clip", [x, lo, hi], m)

    ex_Clamp = ex_ReLU6 = ex_HardTanh

    def ex_HardSigmoid(self, m, x):
        return self.node("HardSigmoid", [x], m, alpha=0.2, beta=0.5)

    def ex_AddConstant(self, m, x):
        return self.node("Add", [x, self.const("c", np.array(m.constant_scalar, np.float32))],
                         m)

    def ex_MulConstant(self, m, x):
        return self.node("Mul", [x, self.const("c", np.array(m.scalar, np.float32))], m)

    def _expanding(self, m, x, op, param):
        p = getattr(m, param)
        r = self.rank(m)
        if p.size == np.size(m.output) // max(1, 1) and p.ndim != r and p.ndim != r - 1:
            p = p.reshape(np.shape(m.output)[1:])
        return self.node(op, [x, self.const(param, p.astype(np.float32))], m)

    def ex_CAdd(self, m, x):
        return self._expanding(m, x, "Add", "bias")

    def ex_CMul(self, m, x):
        return self._expanding(m, x, "Mul", "weight")

    def ex_Linear(self, m, x):
        if self.rank(m) != 2:
            self.fail(m, "only 2-D (batched) input is exported")
        ins = [x, self.const("weight", m.weight)]
        if m.with_bias:
            ins.append(self.const("bias", m.bias))
        return self.node("Gemm", ins, m, transB=1)

    def ex_SpatialConvolution(self, m, x):
        if getattr(m, "data_format", "NCHW") != "NCHW":
            self.fail(m, "only NCHW is exported")
        if m.pad_w == -1:
            self.fail(m, "SAME padding (-1) is not exported")
        ins = [x, self.const("weight", m.weight)]
        if m.with_bias:
            ins.append(self.const("bias", m.bias))
        return self.node("Conv", ins, m, kernel_shape=[m.kernel_h, m.kernel_w],
                         strides=[m.stride_h, m.stride_w],
                         pads=[m.pad_h, m.pad_w, m.pad_h, m.pad_w],
                         dilations=[m.dilation_h, m.dilation_w], group=m.n_group)

    ex_SpatialDilatedConvolution = ex_SpatialShareConvolution = ex_SpatialConvolution

    def ex_SpatialFullConvolution(self, m, x):
        if -1 in m.pads:
            self.fail(m, "SAME padding is not exported")
        if isinstance(x, list):
            self.fail(m, "the [input, size] table form is not exported")
        ins = [x, self.const("weight", m.weight)]
        if not m.no_bias:
            ins.append(self.const("bias", m.bias))
        (kh, kw), (dh, dw), (ph, pw), (ah, aw) = m.kernel, m.stride, m.pads, m.adj
        return self.node("ConvTranspose", ins, m, kernel_shape=[kh, kw], strides=[dh, dw],
                         pads=[ph, pw, ph, pw], output_padding=[ah, aw], group=m.n_group)

    def _pool_attrs(self, m):
        if m.data_format != "NCHW":
            self.fail(m, "only NCHW is exported")
        if m.pad_w == -1:
            self.fail(m, "SAME padding (-1) is not exported")
        return dict(kernel_shape=[m.kh, m.kw], strides=[m.dh, m.dw],
                    pads=[m.pad_h, m.pad_w, m.pad_h, m.pad_w], ceil_mode=int(m.ceil_mode))

    def ex_SpatialMaxPooling(self, m, x):
        return self.node("MaxPool", [x], m, **self._pool_attrs(m))

    def ex_SpatialAveragePooling(self, m, x):
        if m.global_pooling:
            return self.node("GlobalAveragePool", [x], m)
        if not m.divide:
            self.fail(m, "divide=False (window sums) has no ONNX op")
        return self.node("AveragePool", [x], m, **self._pool_attrs(m),
                         count_include_pad=int(m.count_include_pad))

    def ex_GlobalAveragePooling2D(self, m, x):
        if m.dim_ordering != "th":
            self.fail(m, "only channels first is exported")
        y = self.node("GlobalAveragePool", [x], m)
        return self.node("Flatten", [y], m, axis=1)

    def ex_GlobalMaxPooling2D(self, m, x):
        if m.dim_ordering != "th":
            self.fail(m, "only channels first is exported")
        y = self.node("GlobalMaxPool", [x], m)
        return self.node("Flatten", [y], m, axis=1)

    def _bn(self, m, x):
        c = m.n_output
        w = m.weight if m.affine else np.ones(c, np.float32)
        b = m.bias if m.affine else np.zeros(c, np.float32)
        ins = [x] + [self.const(k, np.asarray(v, np.float32)) for k, v in (
            ("scale", w), ("B", b), ("mean", m.running_mean), ("var", m.running_var))]
        return self.node("BatchNormalization", ins, m, epsilon=float(m.eps))

    def ex_BatchNormalization(self, m, x):
        return self._bn(m, x)

    def ex_SpatialBatchNormalization(self, m, x):
        if getattr(m, "data_format", "NCHW") != "NCHW":
            self.fail(m, "only NCHW is exported")
        return self._bn(m, x)

    def ex_SpatialCrossMapLRN(self, m, x):
        if m.data_format != "NCHW":
            self.fail(m, "only NCHW is exported")
        return self.node("LRN", [x], m, size=m.size, alpha=float(m.alpha),
                         beta=float(m.beta), bias=float(m.k))

    def ex_SpatialZeroPadding(self, m, x):
        pads = [0, 0, m.pad_top, m.pad_left, 0, 0, m.pad_bottom, m.pad_right]
        if any(p < 0 for p in pads):
            self.fail(m, "negative padding (cropping) is not exported")
        return self.node("Pad", [x, self.const("pads", np.array(pads, np.int64))], m)

    def _reshape(self, m, x):
        out = list(np.shape(m.output))
        inp = m._export_in_shape
        shape = [0] + out[1:] if out and inp and out[0] == inp[0] else out
        return self.node("Reshape", [x, self.const("shape", np.array(shape, np.int64))], m)

    ex_Reshape = ex_View = ex_InferReshape = _reshape

    def ex_Transpose(self, m, x):
        r = self.rank(m)
        perm = list(range(r))
        for a, b in m.permutations:
            a = a - 1 if a > 0 else a + r
            b = b - 1 if b > 0 else b + r
            perm[a], perm[b] = perm[b], perm[a]
        return self.node("Transpose", [x], m, perm=perm)

    def _table(op):
        def f(self, m, x):
            if not isinstance(x, list):
                self.fail(m, "expects a table input")
            if len(x) == 2 or op in ("Sum", "Max", "Min", "Mean"):
                return self.node(op, x, m)
            self.fail(m, f"{len(x)} inputs for a binary op")
        return f

    ex_CSubTable = _table("Sub")
    ex_CDivTable = _table("Div")
    ex_CMaxTable = _table("Max")
    ex_CMinTable = _table("Min")
    ex_CAveTable = _table("Mean")

    def ex_CAddTable(self, m, x):
        return self.node("Add" if len(x) == 2 else "Sum", x, m)

    def ex_CMulTable(self, m, x):
        y = x[0]
        for other in x[1:]:
            y = self.node("Mul", [y, other], m)
        return y

    def ex_JoinTable(self, m, x):
        return self.node("Concat", x, m, axis=int(m._axis_used))

    del _simple, _table


def _record_inputs(model):
    """After a forward pass, give each Reshape-like layer the shape of its input."""
    def visit(m, x):
        m._export_in_shape = list(np.shape(x)) if not isinstance(x, list) else None
        if isinstance(m, nn.Sequential):
            for child in m._children:
                visit(child, x)
                x = child.output
        elif isinstance(m, Graph):
            for node, xi in zip(m._nodes, m._node_inputs):
                visit(node.module, xi)
    return visit


def save_onnx(model, path, input_shape, opset=OPSET):
    """Export a workbench model to an ONNX file (opset 17 by default).

    Args:
        model: a ``Module`` made of ``Sequential`` / ``Graph`` containers and the layers listed
            in docs/ONNX.md (exported in inference mode: dropout is the identity, batch norm
            uses its running statistics).
        path: the ``.onnx`` file to write.
        input_shape: the shape of one batch including the batch axis, e.g. ``(1, 1, 28, 28)``;
            a list of shapes for a model with several inputs.  The batch axis is written as
            the symbolic dimension ``"N"``.
        opset: the ONNX opset to declare (>= 13).

    Returns:
        the path.  The model is checked with ``onnx.checker.check_model`` before it is written.
    """
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"save_onnx: expected a Module, got {type(model).__name__}")
    if opset < 13:
        raise ValueError(f"save_onnx: opset must be >= 13, got {opset}")
    shapes = input_shape
    multi = isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple))
    shapes = [tuple(int(d) for d in s) for s in (shapes if multi else [shapes])]
    was_training = model.is_training()
    model.evaluate()
    dtype = model.dtype
    xs = [np.zeros(s, dtype) for s in shapes]
    try:
        model.forward(xs if multi else xs[0])
        _record_inputs(model)(model, xs if multi else xs[0])
        ex = _Exporter(onnx)
        in_names = [f"input_{i}" if multi else "input" for i in range(len(shapes))]
        if isinstance(model, Graph):
            for i, pos in enumerate(model._inputs):
                name = model._nodes[pos].module._name
                if name:
                    in_names[i] = name
        out = ex.module(model, in_names if multi else in_names[0])
    finally:
        model.training(was_training)
    outs = out if isinstance(out, list) else [out]
    helper = onnx.helper
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    final = []
    for i, o in enumerate(outs):
        name = f"output_{i}" if len(outs) > 1 else "output"
        producers = [nd for nd in ex.nodes if o in nd.output]
        used = any(o in nd.input for nd in ex.nodes) or o in final
        if producers and not used:
            producers[0].output[list(producers[0].output).index(o)] = name
        else:  # a graph input (or a value used again) passed out: an Identity of its own
            ex.nodes.append(helper.make_node("Identity", [o], [name], name=f"{name}_identity"))
        final.append(name)
    result = model.output if isinstance(model.output, list) else [model.output]
    graph = helper.make_graph(
        ex.nodes, "workbench",
        [helper.make_tensor_value_info(n, elem, ["N"] + list(s[1:]))
         for n, s in zip(in_names, shapes)],
        [helper.make_tensor_value_info(n, elem, ["N"] + list(np.shape(r)[1:]))
         for n, r in zip(final, result)],
        ex.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="bigdl-workbench")
    proto.ir_version = min(proto.ir_version, 8)
    onnx.checker.check_model(proto, full_check=True)
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


SUPPORTED_OPS = sorted(name[3:] for name in dir(_Importer) if name.startswith("op_"))
