"""PyTorch weights (safetensors, torch.save zip and legacy) read without torch and without running
the pickle, loaded into the equivalent workbench models; hostile files refused.

Tests marked ``oracle`` write their files with PyTorch and compare outputs with it; the others
build their files (hostile pickles too) with the standard library alone.
"""
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from oracle import torch
from workbench import nn
from workbench.io.archive import ModelFileError
from workbench.io.pytorch import (PyTorchFileError, load_pytorch_weights, load_state_dict,
                                  read_safetensors, read_state_dict, read_torch_state_dict)


# ------------------------------------------------------------------ files built without torch
def _int(v):
    return pickle.BININT + struct.pack("<i", v)


def _str(s):
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _tuple(items):
    return pickle.MARK + b"".join(_int(v) for v in items) + pickle.TUPLE


def state_dict_pickle(tensors, build=b""):
    """The opcodes ``torch.save`` writes for ``{key: FloatStorage tensor}``: ``tensors`` maps a
    key to ``(storage key, numel, offset, size, stride)``; ``build`` is put after each tensor
    (a hostile file's BUILD, say)."""
    out = [pickle.PROTO + b"\x02", pickle.EMPTY_DICT, pickle.MARK]
    for key, (skey, numel, offset, size, stride) in tensors.items():
        out += [_str(key), pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n", pickle.MARK,
                pickle.MARK, _str("storage"), pickle.GLOBAL + b"torch\nFloatStorage\n",
                _str(skey), _str("cpu"), _int(numel), pickle.TUPLE, pickle.BINPERSID,
                _int(offset), _tuple(size), _tuple(stride), pickle.NEWFALSE,
                pickle.GLOBAL + b"collections\nOrderedDict\n", pickle.EMPTY_TUPLE, pickle.REDUCE,
                pickle.TUPLE, pickle.REDUCE, build]
    out += [pickle.SETITEMS, pickle.STOP]
    return b"".join(out)


def torch_zip(path, pkl, storages, name="archive"):
    """A zip laid out as ``torch.save`` lays it out: data.pkl, byteorder, data/<key>."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", pkl)
        z.writestr(f"{name}/byteorder", "little")
        for key, arr in storages.items():
            z.writestr(f"{name}/data/{key}", np.ascontiguousarray(arr, "<f4").tobytes())
        z.writestr(f"{name}/version", "3\n")
    return path


class Evil:
    """Unpickling it would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvalEvil:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


def test_hand_built_state_dict_reads_without_torch(tmp_path):
    w = np.arange(6, dtype=np.float32)
    pkl = state_dict_pickle({"fc.weight": ("0", 6, 0, (2, 3), (3, 1)),
                             "fc.weight_t": ("0", 6, 0, (3, 2), (1, 3)),
                             "fc.bias": ("1", 2, 0, (2,), (1,))})
    path = torch_zip(tmp_path / "sd.pt", pkl, {"0": w, "1": np.array([5.0, 6.0])})
    sd = read_torch_state_dict(path)
    assert list(sd) == ["fc.weight", "fc.weight_t", "fc.bias"]
    np.testing.assert_array_equal(sd["fc.weight"], w.reshape(2, 3))
    np.testing.assert_array_equal(sd["fc.weight_t"], w.reshape(2, 3).T)
    np.testing.assert_array_equal(sd["fc.bias"], [5, 6])
    # loaded by layer name into our Linear; content sniffing, not the extension, picks the reader
    model = nn.Sequential().add(nn.Linear(3, 2).set_name("fc"))
    renamed = tmp_path / "weights.safetensors"
    os.replace(path, renamed)
    load_pytorch_weights(model, renamed, name_map={"fc.weight_t": None})
    np.testing.assert_array_equal(model[0].weight, w.reshape(2, 3))


@pytest.mark.parametrize("payload,glob", [(lambda m: Evil(m), "posix.system"),
                                          (lambda m: EvalEvil(), "builtins.eval")])
def test_pickle_payload_in_zip_refused_without_running(tmp_path, payload, glob):
    marker = tmp_path / "pwned"
    pkl = pickle.dumps({"w": payload(marker)}, protocol=2)
    path = torch_zip(tmp_path / "evil.pt", pkl, {})
    with pytest.raises(PyTorchFileError, match=f"refuses global '{glob}' in archive/data.pkl: "
                                               "only tensors are read; save a state_dict"):
        read_torch_state_dict(path)
    assert not marker.exists()
    # the marker shows the payload is live: unpickling it for real would have created it
    if glob == "posix.system":
        pickle.loads(pkl)
        assert marker.exists()


def test_bare_pickle_payload_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(PyTorchFileError, match="refuses global 'posix.system'"):
        read_state_dict(path)
    assert not marker.exists()


def test_truncated_zip(tmp_path):
    w = np.ones(12, np.float32)
    path = torch_zip(tmp_path / "sd.pt", state_dict_pickle({"w": ("0", 12, 0, (3, 4), (4, 1))}),
                     {"0": w})
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 40):
        short = tmp_path / f"cut{cut}.pt"
        short.write_bytes(data[:cut])
        with pytest.raises(PyTorchFileError, match="not a valid zip|truncated"):
            read_torch_state_dict(short)


def test_storage_smaller_than_shape(tmp_path):
    pkl = state_dict_pickle({"w": ("0", 4, 0, (3, 4), (4, 1))})
    path = torch_zip(tmp_path / "sd.pt", pkl, {"0": np.ones(4)})
    with pytest.raises(PyTorchFileError, match=r"shape \(3, 4\).*needs 12 elements but storage "
                                               r"'0' has 4"):
        read_torch_state_dict(path)
    # an offset that runs past the end is caught the same way
    pkl = state_dict_pickle({"w": ("0", 4, 2, (4,), (1,))})
    with pytest.raises(PyTorchFileError, match="needs 6 elements"):
        read_torch_state_dict(torch_zip(tmp_path / "off.pt", pkl, {"0": np.ones(4)}))


def test_state_set_after_the_bounds_check_refused(tmp_path):
    # a BUILD after _rebuild_tensor_v2 would grow the checked tensor to 1e12 elements
    grow = (pickle.EMPTY_DICT + _str("size") + _tuple((1_000_000, 1_000_000)) + pickle.SETITEM
            + pickle.BUILD)
    pkl = state_dict_pickle({"w": ("0", 4, 0, (2, 2), (1, 2))}, build=grow)
    path = torch_zip(tmp_path / "sd.pt", pkl, {"0": np.ones(4)})
    with pytest.raises(PyTorchFileError, match="sets the state of a TensorRef"):
        read_torch_state_dict(path)
    # nor can it set attributes on the allowed globals (this module's stand-ins)
    pkl = (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n"
           + pickle.EMPTY_DICT + _str("__defaults__") + _int(1) + pickle.SETITEM + pickle.BUILD
           + pickle.STOP)
    with pytest.raises(PyTorchFileError, match="sets the state of a Callable"):
        read_torch_state_dict(torch_zip(tmp_path / "g.pt", pkl, {}))


def test_storage_declared_larger_than_its_member(tmp_path):
    pkl = state_dict_pickle({"w": ("0", 1_000_000, 0, (1000, 1000), (1000, 1))})
    path = torch_zip(tmp_path / "sd.pt", pkl, {"0": np.ones(4)})
    with pytest.raises(PyTorchFileError, match=r"declares 1000000 FloatStorage elements "
                                               r"\(4000000 bytes\) but holds 16 bytes"):
        read_torch_state_dict(path)


def test_absurd_shape_no_allocation(tmp_path):
    # 1e12 elements over a 4-element storage, with zero strides (a broadcast view would pass a
    # bounds check on the extent alone)
    for stride in ((1_000_000, 1), (0, 0)):
        pkl = state_dict_pickle({"w": ("0", 4, 0, (1_000_000, 1_000_000), stride)})
        path = torch_zip(tmp_path / "sd.pt", pkl, {"0": np.ones(4)})
        tracemalloc.start()
        try:
            with pytest.raises(PyTorchFileError, match="1000000, 1000000"):
                read_torch_state_dict(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5_000_000


def test_compressed_member_refused(tmp_path):
    path = tmp_path / "sd.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/data.pkl", state_dict_pickle({"w": ("0", 1, 0, (1,), (1,))}))
        z.writestr("a/data/0", b"\0" * 4)
    with pytest.raises(PyTorchFileError, match="compressed"):
        read_torch_state_dict(path)


def test_not_a_state_dict_and_not_a_file_we_know(tmp_path):
    p = tmp_path / "list.pt"
    torch_zip(p, pickle.dumps([1, 2], protocol=2), {})
    with pytest.raises(PyTorchFileError, match="holds a list, not a state_dict"):
        read_torch_state_dict(p)
    q = tmp_path / "junk.bin"
    q.write_bytes(b"hello world, nothing here")
    with pytest.raises(PyTorchFileError, match="neither safetensors nor"):
        read_state_dict(q)
    assert issubclass(PyTorchFileError, ModelFileError)


def test_bad_safetensors_header(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(PyTorchFileError, match="header declares"):
        read_safetensors(p)
    # offsets pointing past the end of the file: safetensors' own check, our error
    p.write_bytes(struct.pack("<Q", 64) + b'{"w":{"dtype":"F32","shape":[1000],'
                  b'"data_offsets":[0,4000]}}'.ljust(64) + b"\0" * 16)
    with pytest.raises(PyTorchFileError, match="not a valid safetensors file"):
        read_safetensors(p)
    p.write_bytes(struct.pack("<Q", 4) + b"[1,2")
    with pytest.raises(PyTorchFileError, match="not JSON"):
        read_safetensors(p)


def test_safetensors_bf16_without_torch(tmp_path):
    # values exact in bfloat16: their top 16 bits are the bfloat16 encoding
    x = np.array([[1.5, -2.25], [3.0, 2.0 ** 70]], np.float32)
    bits = (x.view(np.uint32) >> 16).astype("<u2")
    header = b'{"x":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},' \
             b'"y":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'
    header = header.ljust(-(-len(header) // 8) * 8)
    p = tmp_path / "b.safetensors"
    p.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes()
                  + np.array([1, 2], "<f4").tobytes())
    got = read_safetensors(p)
    assert got["x"].dtype == np.float32
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(read_state_dict(p)["y"], [1, 2])


def test_load_errors_name_key_layer_and_shapes():
    model = nn.Sequential().add(nn.Linear(4, 3).set_name("fc1")).add(nn.ReLU()) \
        .add(nn.Linear(3, 2).set_name("fc2"))
    good = {"fc1.weight": np.ones((3, 4)), "fc1.bias": np.ones(3),
            "fc2.weight": np.full((2, 3), 2.0), "fc2.bias": np.zeros(2)}
    with pytest.raises(ValueError, match=r"'fc2.weight' has shape \(3, 2\) but Linear\[fc2\] "
                                         r"\(layer 'fc2'\) has weight of shape \(2, 3\)"):
        load_state_dict(model, {**good, "fc2.weight": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"1 missing \['2.bias'\], 1 unexpected \['head.b'\]"):
        load_state_dict(model, {**{k: v for k, v in good.items() if k != "fc2.bias"},
                                "head.b": np.ones(2)})
    with pytest.warns(UserWarning, match="1 missing"):
        load_state_dict(model, {k: v for k, v in good.items() if k != "fc2.bias"}, strict=False)
    np.testing.assert_array_equal(model[2].weight, np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="name_map sends 'x' to layer 'nope'"):
        load_state_dict(model, {"x": np.ones(2)}, name_map={"x": ("nope", "weight")})
    with pytest.raises(ValueError, match="does not have"):
        load_state_dict(model, {"x": np.ones(2)}, name_map={"x": ("fc2", "running_mean")})
    # by order: PyTorch's order (weight, bias per layer), shapes checked
    ordered = {"a": np.zeros((3, 4)), "b": np.zeros(3), "c": np.ones((2, 3)), "d": np.ones(2)}
    with pytest.raises(ValueError, match="4 unexpected"):
        load_state_dict(model, ordered)
    load_state_dict(model, ordered, by_order=True)
    np.testing.assert_array_equal(model[2].bias, [1, 1])
    # the model's own state_dict round-trips through both loaders
    own = {k: v.copy() for k, v in model.state_dict().items()}
    load_state_dict(nn.Sequential().add(nn.Linear(4, 3)).add(nn.ReLU()).add(nn.Linear(3, 2)), own)
    model.load_state_dict(own)


def test_flat_parameters_stay_views():
    model = nn.Sequential().add(nn.Linear(2, 2).set_name("fc"))
    flat, _ = model.get_parameters()
    load_state_dict(model, {"fc.weight": np.eye(2), "fc.bias": np.array([3.0, 4.0])})
    np.testing.assert_array_equal(flat, [1, 0, 0, 1, 3, 4])


# ------------------------------------------------------------------ against PyTorch
def _torch_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _our_mlp():
    return nn.Sequential().add(nn.Linear(6, 5)).add(nn.Tanh()).add(nn.Linear(5, 3))


def _save(state, path, fmt):
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, str(path), _use_new_zipfile_serialization=(fmt == "zip"))
    return path


FORMATS = ["zip", "legacy", "safetensors"]


@pytest.mark.oracle
@pytest.mark.parametrize("fmt", FORMATS)
def test_mlp_by_paths(tmp_path, fmt):
    tm = _torch_mlp().eval()
    path = _save(tm.state_dict(), tmp_path / "mlp.bin", fmt)
    model = load_pytorch_weights(_our_mlp(), path).evaluate()
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-5, atol=1e-6)


class _CNN:
    """A small CNN with torchvision-style key names (conv1, bn1, fc)."""

    @staticmethod
    def torch_model():
        torch.manual_seed(1)

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = torch.nn.Conv2d(3, 4, 3, stride=1, padding=1)
                self.bn1 = torch.nn.BatchNorm2d(4)
                self.relu = torch.nn.ReLU()
                self.pool = torch.nn.MaxPool2d(2)
                self.fc = torch.nn.Linear(4 * 3 * 3, 5)

            def forward(self, x):
                return self.fc(self.pool(self.relu(self.bn1(self.conv1(x)))).flatten(1))

        net = Net().train()
        with torch.no_grad():  # running statistics away from their initial 0 / 1
            for _ in range(3):
                net(torch.randn(8, 3, 6, 6) * 2 + 1)
        return net.eval()

    @staticmethod
    def ours(names=("conv1", "bn1", "fc")):
        return (nn.Sequential()
                .add(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1).set_name(names[0]))
                .add(nn.SpatialBatchNormalization(4).set_name(names[1]))
                .add(nn.ReLU()).add(nn.SpatialMaxPooling(2, 2, 2, 2))
                .add(nn.Reshape([36])).add(nn.Linear(36, 5).set_name(names[2])))


@pytest.mark.oracle
@pytest.mark.parametrize("fmt", FORMATS)
def test_cnn_by_layer_names(tmp_path, fmt):
    tm = _CNN.torch_model()
    assert "bn1.num_batches_tracked" in tm.state_dict()
    path = _save(tm.state_dict(), tmp_path / "cnn.pth", fmt)
    model = load_pytorch_weights(_CNN.ours(), path).evaluate()
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model[1].running_var, tm.bn1.running_var.numpy())


@pytest.mark.oracle
def test_cnn_by_hand_built_name_map(tmp_path):
    tm = _CNN.torch_model()
    path = _save(tm.state_dict(), tmp_path / "cnn.pt", "zip")
    model = _CNN.ours(names=("features.conv", "features.norm", "head"))
    name_map = {"conv1.weight": ("features.conv", "weight"),
                "conv1.bias": ("features.conv", "bias"),
                "fc.weight": ("head", "weight"), "fc.bias": ("head", "bias")}
    name_map.update({f"bn1.{p}": ("features.norm", p)
                     for p in ("weight", "bias", "running_mean", "running_var")})
    with pytest.raises(ValueError, match="unexpected"):
        load_pytorch_weights(_CNN.ours(names=("a", "b", "c")), path)
    load_pytorch_weights(model, path, name_map=name_map).evaluate()
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
def test_conv1d_into_temporal_convolution(tmp_path):
    torch.manual_seed(4)
    conv = torch.nn.Conv1d(3, 5, 2).eval()
    path = _save(conv.state_dict(), tmp_path / "c.pt", "zip")
    ours = nn.Sequential().add(nn.TemporalConvolution(3, 5, 2).set_name("c"))
    load_pytorch_weights(ours, path, name_map={"weight": ("c", "weight"), "bias": ("c", "bias")})
    x = np.random.default_rng(4).standard_normal((2, 3, 7)).astype(np.float32)
    with torch.no_grad():
        ref = conv(torch.from_numpy(x)).numpy()
    out = ours.forward(np.ascontiguousarray(x.transpose(0, 2, 1)))  # (N, T, F)
    np.testing.assert_allclose(out.transpose(0, 2, 1), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
def test_dtypes_and_views_match_torch(tmp_path):
    torch.manual_seed(5)
    base = torch.randn(4, 6)
    sd = {"t": base.t(), "slice": base[1:3, 2:], "bf16": torch.randn(3, 2).bfloat16(),
          "half": torch.randn(3).half(), "long": torch.arange(5), "scalar": torch.tensor(2.5)}
    for fmt in ("zip", "legacy"):
        got = read_torch_state_dict(_save(sd, tmp_path / f"{fmt}.pt", fmt))
        for k, v in sd.items():
            ref = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
            assert got[k].dtype == ref.dtype and got[k].shape == ref.shape, (fmt, k)
            np.testing.assert_array_equal(got[k], ref)
    st = read_safetensors(_save({k: v for k, v in sd.items() if k != "slice"},
                                tmp_path / "x.safetensors", "safetensors"))
    np.testing.assert_array_equal(st["bf16"], sd["bf16"].float().numpy())


@pytest.mark.oracle
def test_pickled_module_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(_torch_mlp(), str(path))
    with pytest.raises(PyTorchFileError, match=r"refuses global 'torch\.nn\.modules\.container\."
                                               r"Sequential' in .*data\.pkl.*save a state_dict"):
        read_torch_state_dict(path)
    legacy = tmp_path / "whole_legacy.pt"
    torch.save(_torch_mlp(), str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(PyTorchFileError, match="refuses global"):
        load_pytorch_weights(_our_mlp(), legacy)


@pytest.mark.oracle
def test_torch_saved_payload_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": Evil(marker)}, str(path))
    with pytest.raises(PyTorchFileError, match="refuses global 'posix.system' in evil/data.pkl"):
        read_torch_state_dict(path)
    assert not marker.exists()


def _torch_resnet18(num_classes):
    """torchvision's resnet18 (BasicBlock [2, 2, 2, 2]) with its state_dict key names, written
    out here because torchvision is not installed."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, n_in, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(n_in, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or n_in != planes:
                self.downsample = tnn.Sequential(tnn.Conv2d(n_in, planes, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(planes))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            n_in = 64
            for i, planes in enumerate((64, 128, 256, 512), 1):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", tnn.Sequential(Block(n_in, planes, stride),
                                                          Block(planes, planes, 1)))
                n_in = planes
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    torch.manual_seed(6)
    net = ResNet()
    with torch.no_grad():  # random running statistics, as a trained model has
        for m in net.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.oracle
def test_torchvision_resnet18_into_the_zoo(tmp_path):
    # needs the zoo (workbench.models.names, branch i13-zoo): skipped until it is merged
    names = pytest.importorskip("workbench.models.names")
    from workbench.models import ResNet18
    tm = _torch_resnet18(10)
    path = _save(tm.state_dict(), tmp_path / "resnet18.bin", "zip")
    model = ResNet18(num_classes=10)
    load_pytorch_weights(model, path, name_map=names.torchvision_names(model)).evaluate()
    x = np.random.default_rng(6).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-4, atol=1e-4)
