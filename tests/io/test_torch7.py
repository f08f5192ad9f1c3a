"""Torch7 import: .t7 files written here the way Torch7's torch.save wrote them, read by ours and
by OpenCV's readNetFromTorch (an independent reader); hostile files refused."""
import struct

import numpy as np
import pytest

from workbench import nn
from workbench.io import ModelFileError, load_torch

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2.dnn, "readNetFromTorch"):  # OpenCV 5 dropped the Torch importer
    pytest.skip("OpenCV without readNetFromTorch", allow_module_level=True)


# --------------------------------------------------------------------------- fixture writer
class Tensor:
    def __init__(self, array, kind="Float"):
        self.array, self.kind = array, kind


class Storage:
    def __init__(self, values, kind="Long"):
        self.values, self.kind = values, kind


class Obj:
    def __init__(self, cls, fields):
        self.cls, self.fields = cls, fields


_DTYPES = {"Float": "<f4", "Double": "<f8", "Long": "<i8"}


class T7Writer:
    """torch.save(path, obj) in binary mode: int32 type tags, shared objects by reference id."""

    def __init__(self):
        self.buf, self.refs = bytearray(), {}

    def pack(self, fmt, *v):
        self.buf += struct.pack("<" + fmt, *v)

    def string(self, s):
        b = s.encode()
        self.pack("i", len(b))
        self.buf += b

    def ref(self, v):  # True when already written (only its id is written again)
        seen = id(v) in self.refs
        if not seen:
            self.refs[id(v)] = (len(self.refs) + 1, v)
        self.pack("i", self.refs[id(v)][0])
        return seen

    def write(self, v):
        if v is None:
            self.pack("i", 0)
        elif isinstance(v, bool):
            self.pack("ii", 5, int(v))
        elif isinstance(v, (int, float)):
            self.pack("id", 1, float(v))
        elif isinstance(v, str):
            self.pack("i", 2)
            self.string(v)
        elif isinstance(v, (dict, list)):
            self.pack("i", 3)
            if self.ref(v):
                return
            items = list(v.items()) if isinstance(v, dict) else [
                (float(i), x) for i, x in enumerate(v, 1)]
            self.pack("i", len(items))
            for k, x in items:
                self.write(k)
                self.write(x)
        else:
            self.pack("i", 4)
            if self.ref(v):
                return
            self.string("V 1")
            if isinstance(v, Tensor):
                a = np.ascontiguousarray(v.array)
                self.string(f"torch.{v.kind}Tensor")
                ndim = a.ndim if a.size else 0
                self.pack("i", ndim)
                self.pack("q" * ndim, *a.shape[:ndim])
                self.pack("q" * ndim, *[s // a.itemsize for s in a.strides][:ndim])
                self.pack("q", 1)
                self.write(Storage(a.ravel(), v.kind) if a.size else None)
            elif isinstance(v, Storage):
                self.string(f"torch.{v.kind}Storage")
                data = np.asarray(v.values, _DTYPES[v.kind])
                self.pack("q", data.size)
                self.buf += data.tobytes()
            else:
                self.string(v.cls)
                self.write(v.fields)


def empty():
    return Tensor(np.zeros((0,), np.float32))


def module(cls, **fields):
    base = {"_type": "torch.FloatTensor", "output": empty(), "gradInput": empty(),
            "train": False}
    base.update(fields)
    return Obj("nn." + cls, base)


class Maker:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def rand(self, *shape):
        return Tensor((self.rng.standard_normal(shape) * 0.5).astype(np.float32))

    def conv(self, n_in, n_out, k, stride=1, pad=0, mm=False):
        w = self.rand(n_out, n_in, k, k)
        if mm:
            w = Tensor(w.array.reshape(n_out, -1))
        return module("SpatialConvolutionMM" if mm else "SpatialConvolution",
                      nInputPlane=n_in, nOutputPlane=n_out, kW=k, kH=k, dW=stride, dH=stride,
                      padW=pad, padH=pad, weight=w, bias=self.rand(n_out),
                      gradWeight=Tensor(np.zeros_like(w.array)),
                      gradBias=Tensor(np.zeros(n_out, np.float32)))

    def linear(self, n_in, n_out):
        return module("Linear", weight=self.rand(n_out, n_in), bias=self.rand(n_out),
                      gradWeight=Tensor(np.zeros((n_out, n_in), np.float32)),
                      gradBias=Tensor(np.zeros(n_out, np.float32)))

    def bn(self, c):
        return module("SpatialBatchNormalization", eps=1e-5, momentum=0.1, affine=True,
                      running_mean=self.rand(c),
                      running_var=Tensor(np.abs(self.rand(c).array) + 0.5),
                      weight=self.rand(c), bias=self.rand(c), nDim=4)


def seq(*mods):
    return module("Sequential", modules=list(mods))


def relu():
    return module("ReLU", threshold=0.0, val=0.0, inplace=False)


def max_pool(k, s, pad=0, ceil=False):
    return module("SpatialMaxPooling", kW=k, kH=k, dW=s, dH=s, padW=pad, padH=pad,
                  ceil_mode=ceil, indices=empty())


def avg_pool(k, s, pad=0, ceil=False):
    return module("SpatialAveragePooling", kW=k, kH=k, dW=s, dH=s, padW=pad, padH=pad,
                  ceil_mode=ceil, count_include_pad=True, divide=True)


def view(n):
    return module("View", size=Storage([n]), numElements=n, numInputDims=3)


def lenet(m):
    return seq(m.conv(1, 4, 3), relu(), max_pool(3, 2, ceil=True),   # 12 -> 10 -> 5
               m.conv(4, 6, 3, pad=1, mm=True), module("Tanh"),       # 5
               avg_pool(2, 2, ceil=True),                             # 3
               view(6 * 9), m.linear(54, 10), module("Sigmoid"),
               module("Dropout", p=0.4, noise=empty(), v2=True),
               m.linear(10, 4), module("LogSoftMax"))


def inception(m):
    concat = module("Concat", dimension=2, size=Storage([0]), modules=[
        seq(m.conv(6, 3, 1)),
        seq(m.conv(6, 2, 1), relu(), m.conv(2, 4, 3, pad=1)),
        seq(max_pool(3, 1, pad=1), m.conv(6, 2, 1))])
    residual = module("ConcatTable", modules=[module("Identity"), m.conv(9, 9, 1)],
                      output=[], gradInput=[])
    return seq(m.conv(3, 6, 3, pad=1), m.bn(6), relu(), concat, residual,
               module("CAddTable", inplace=False, gradInput=[]),
               relu(),
               avg_pool(7, 7), view(9), m.linear(9, 5), module("SoftMax"))


def save(tmp_path, obj, name="m.t7"):
    w = T7Writer()
    w.write(obj)
    path = tmp_path / name
    path.write_bytes(bytes(w.buf))
    return str(path)


def opencv_forward(path, x):
    net = cv2.dnn.readNetFromTorch(path)
    net.setInput(x)
    return net.forward()


@pytest.mark.parametrize("build,shape", [(lenet, (2, 1, 12, 12)), (inception, (2, 3, 7, 7))])
def test_outputs_equal_opencv(tmp_path, build, shape):
    path = save(tmp_path, build(Maker(1)))
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    ours = load_torch(path).evaluate().forward(x)
    theirs = opencv_forward(path, x).reshape(ours.shape)
    scale = max(1e-3, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


def test_threshold(tmp_path):
    # OpenCV 4.14 has no Threshold layer: Torch7's definition, y = x > th ? x : val
    model = load_torch(save(tmp_path, seq(module("Threshold", threshold=0.1, val=-1.0,
                                                 inplace=False))))
    x = np.linspace(-1, 1, 21, dtype=np.float32).reshape(3, 7)
    np.testing.assert_array_equal(model.forward(x), np.where(x > 0.1, x, -1.0))


def test_structure_and_shared_tensors(tmp_path):
    m = Maker(0)
    lin = m.linear(4, 4)
    lin2 = module("Linear", weight=lin.fields["weight"], bias=lin.fields["bias"])  # shared
    model = load_torch(save(tmp_path, seq(lin, module("Tanh"), lin2)))
    assert isinstance(model, nn.Sequential)
    a, b = [x for x in model.modules() if isinstance(x, nn.Linear)]
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.weight, lin.fields["weight"].array)


def test_old_batch_norm_running_std(tmp_path):
    m = Maker(2)
    bn = m.bn(3)
    var = bn.fields.pop("running_var").array
    bn.fields["running_std"] = Tensor(1 / np.sqrt(var + 1e-5))
    model = load_torch(save(tmp_path, seq(bn)))
    np.testing.assert_allclose(list(model.modules())[1].running_var, var, rtol=1e-4)


# --------------------------------------------------------------------------- hostile files
def test_unknown_class_named_with_its_path(tmp_path):
    bad = seq(relu(), seq(module("Tanh"), module("SpatialFullConvolution")))
    with pytest.raises(ModelFileError,
                       match=r"nn\.SpatialFullConvolution at model\.modules\[2\]\.modules\[2\]"):
        load_torch(save(tmp_path, bad))


def test_truncated(tmp_path):
    data = open(save(tmp_path, lenet(Maker(0))), "rb").read()
    for cut in (3, len(data) // 3, len(data) - 1):
        p = tmp_path / f"cut{cut}.t7"
        p.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|left"):
            load_torch(str(p))


def test_reference_cycle_refused(tmp_path):
    outer = seq(relu())
    outer.fields["modules"].append(outer)  # the container contains itself
    with pytest.raises(ModelFileError, match="cycle"):
        load_torch(save(tmp_path, outer))


def test_huge_declared_storage_refused_without_allocating(tmp_path):
    import tracemalloc
    w = T7Writer()
    w.pack("i", 4)
    w.pack("i", 1)
    w.string("V 1")
    w.string("torch.FloatStorage")
    w.pack("q", 1 << 40)  # a terabyte of floats declared, a few bytes present
    w.buf += b"\0" * 16
    p = tmp_path / "huge.t7"
    p.write_bytes(bytes(w.buf))
    tracemalloc.start()
    with pytest.raises(ModelFileError, match="declares"):
        load_torch(str(p))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 << 20


def test_tensor_beyond_its_storage_refused(tmp_path):
    lin = Maker(0).linear(3, 2)
    model = seq(lin)
    path = save(tmp_path, model)
    data = bytearray(open(path, "rb").read())
    # the weight tensor's sizes (2, 3): claim (2, 3000)
    marker = struct.pack("<iqq", 2, 2, 3)
    at = data.index(marker)
    data[at:at + len(marker)] = struct.pack("<iqq", 2, 2, 3000)
    p = tmp_path / "beyond.t7"
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="storage"):
        load_torch(str(p))


def test_lua_function_and_deep_nesting_refused(tmp_path):
    w = T7Writer()
    w.pack("i", 6)
    w.string("\x1bLua bytecode")
    p = tmp_path / "fn.t7"
    p.write_bytes(bytes(w.buf))
    with pytest.raises(ModelFileError, match="function"):
        load_torch(str(p))
    deep = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(ModelFileError, match="deep"):
        load_torch(save(tmp_path, deep, "deep.t7"))
