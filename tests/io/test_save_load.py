"""Model files: save -> load round trips, and hostile files rejected without running anything."""
import io as _io
import json
import os
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

from workbench import io
from workbench import nn
from workbench.io import ModelFileError
from workbench.nn import Input, Linear, Model, Sequential

ACT = getattr(nn, "Tanh", None)


def act():
    """An activation when the layer library has one (Linear and containers exist already)."""
    return ACT() if ACT is not None else nn.Identity() if hasattr(nn, "Identity") else None


def mlp():
    model = Sequential().add(Linear(6, 5).set_name("fc1"))
    if act() is not None:
        model.add(act())
    return model.add(Linear(5, 3).set_name("fc2"))


def batch(n=7, d=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def assert_same_outputs(a, b):
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_outputs(x, y)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def roundtrip(model, x, tmp_path, name="model.bigdl"):
    path = str(tmp_path / name)
    expected = [np.array(o, copy=True) for o in model.forward(x)] \
        if isinstance(model.forward(x), list) else np.array(model.forward(x), copy=True)
    io.save_model(model, path)
    loaded = io.load_model(path)
    assert type(loaded) is type(model)
    assert_same_outputs(expected, loaded.forward(x))
    assert repr(loaded) == repr(model)
    assert loaded.get_config() == model.get_config()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
    return loaded


# ------------------------------------------------------------------------- round trips
def test_sequential_round_trip_exact(tmp_path):
    model = mlp()
    loaded = roundtrip(model, batch(), tmp_path)
    assert loaded[0].name() == "fc1" and loaded[len(loaded) - 1].name() == "fc2"


def test_names_and_freeze_survive(tmp_path):
    model = mlp()
    model.freeze("fc1")
    loaded = roundtrip(model, batch(), tmp_path)
    assert [m._name for m in loaded.modules()] == [m._name for m in model.modules()]
    assert loaded[0]._frozen and not loaded[len(loaded) - 1]._frozen
    w_model, _ = model.get_parameters()
    w_loaded, _ = loaded.get_parameters()
    assert w_loaded.size == w_model.size == 5 * 3 + 3  # only fc2 is trainable
    np.testing.assert_array_equal(w_loaded, w_model)


def test_graph_round_trip_with_shared_branch(tmp_path):
    x = Input()
    h = Linear(6, 8).set_name("trunk")(x)
    if act() is not None:
        h = act()(h)
    left, right = Linear(8, 3).set_name("left")(h), Linear(8, 2).set_name("right")(h)
    model = Model(x, [left, right])
    roundtrip(model, batch(), tmp_path)


def test_multi_input_graph_and_table_containers(tmp_path):
    a, b = Input(), Input()
    model = Model([a, b], Linear(4, 2)(Linear(6, 4)(a)))
    path = str(tmp_path / "g.bigdl")
    io.save_model(model, path)
    xs = [batch(3), batch(3, seed=1)]
    assert_same_outputs(model.forward(xs), io.load_model(path).forward(xs))

    tables = (Sequential()
              .add(nn.ConcatTable().add(Linear(6, 2)).add(Linear(6, 3)))
              .add(nn.ParallelTable().add(Linear(2, 2)).add(Linear(3, 1))))
    roundtrip(tables, batch(), tmp_path, "tables.bigdl")
    concat = nn.Concat(2).add(Linear(6, 2)).add(Linear(6, 4))
    roundtrip(concat, batch(), tmp_path, "concat.bigdl")


def test_float64_model_round_trip(tmp_path):
    model = mlp().double()
    loaded = roundtrip(model, batch().astype(np.float64), tmp_path)
    assert loaded.dtype == np.float64


def test_lenet5_round_trip_in_evaluate_mode(tmp_path):
    from workbench.models import LeNet5
    model = LeNet5(10)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    roundtrip(model.evaluate(), x, tmp_path)


def test_batchnorm_buffers_and_mode_round_trip(tmp_path):
    model = Sequential().add(Linear(6, 5)).add(nn.BatchNormalization(5)).add(Linear(5, 2))
    model.training()
    for seed in range(3):  # move the running statistics away from their initial values
        model.forward(batch(16, seed=seed))
    model.evaluate()
    loaded = roundtrip(model, batch(), tmp_path)
    assert not loaded.is_training() and not loaded[1].is_training()  # the mode is saved too
    assert_same_outputs(model.forward(batch()), loaded.forward(batch()))


def test_checkpoint_archives_load_as_models(tmp_path):
    model = mlp()
    path = str(tmp_path / "checkpoint-00000010.bigdl")
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["optim/m"] = np.zeros(3)
    io.write_archive(path, {"kind": "workbench-checkpoint", "model": model.get_config(),
                            "state": {"iteration": 10}}, arrays)
    assert_same_outputs(model.forward(batch()), io.load_model(path).forward(batch()))


def test_file_layout_is_a_plain_zip_readable_by_numpy(tmp_path):
    model = mlp()
    path = str(tmp_path / "m.bigdl")
    io.save_model(model, path)
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["meta.json", "arrays.npz"]
        meta = json.loads(z.read("meta.json"))
        npz = np.load(_io.BytesIO(z.read("arrays.npz")), allow_pickle=False)
        assert set(npz.files) == set(model.state_dict())
    assert meta["format"] == io.FORMAT_NAME and meta["version"] == io.FORMAT_VERSION
    assert meta["document"]["model"] == model.get_config()
    # same content -> same bytes (fixed timestamps), so checkpoints are reproducible
    io.save_model(model, str(tmp_path / "again.bigdl"))
    assert open(path, "rb").read() == open(tmp_path / "again.bigdl", "rb").read()


def test_overwrite_and_bigdl_aliases(tmp_path):
    path = str(tmp_path / "m.bigdl")
    model = mlp()
    io.saveModel(model, path)
    with pytest.raises(FileExistsError, match="over_write"):
        io.save_model(mlp(), path)
    other = mlp()
    io.saveModel(other, path, over_write=True)
    assert_same_outputs(other.forward(batch()), io.loadModel(path).forward(batch()))
    with pytest.raises(ValueError, match="weight_path"):
        io.saveModel(model, path, str(tmp_path / "w.bin"), True)


def test_archive_primitives_round_trip_any_numeric_arrays(tmp_path):
    path = str(tmp_path / "a.bigdl")
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "f64/fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "i64": np.array([1, -2, 3]), "u8": np.arange(5, dtype=np.uint8),
        "bool": np.array([True, False]), "big-endian": np.arange(4, dtype=">i4"),
        "scalar": np.array(2.5), "empty": np.zeros((0, 4), np.float32),
        "file": np.ones(2), "allow_pickle": np.ones(1),  # names np.savez could not take
    }
    document = {"kind": "test", "nested": {"list": [1, 2.5, None, "x"]},
                "numpy": np.float32(0.5), "big": 2 ** 100}
    io.write_archive(path, document, arrays)
    doc, back = io.read_archive(path)
    assert doc == {"kind": "test", "nested": {"list": [1, 2.5, None, "x"]}, "numpy": 0.5,
                   "big": 2 ** 100}
    assert set(back) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype.newbyteorder("=") and back[key].flags.writeable


def test_write_is_atomic_and_rejects_unsaveable_data(tmp_path):
    path = str(tmp_path / "m.bigdl")
    io.save_model(mlp(), path)
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match="object"):
        io.write_archive(path, {}, {"w": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="<U"):
        io.write_archive(path, {}, {"w": np.array(["text"])})
    with pytest.raises(TypeError, match="JSON"):
        io.write_archive(path, {"x": np.zeros(3)}, {})
    with pytest.raises(TypeError, match="dict"):
        io.write_archive(path, [1, 2], {})
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.bigdl"]  # no temporary files left behind


# ------------------------------------------------------------------------- hostile files
class PickleBomb:
    """Unpickling this creates ``marker`` (proof that code ran)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def meta_bytes(document, fmt=io.FORMAT_NAME, version=io.FORMAT_VERSION):
    return json.dumps({"format": fmt, "version": version, "document": document}).encode()


def npz_bytes(arrays):
    buf = _io.BytesIO()
    np.savez(buf, **arrays)  # allow_pickle defaults to True: object arrays are pickled
    return buf.getvalue()


def make_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return str(path)


def linear_doc(n_in=2, n_out=2):
    return {"kind": "workbench-model", "model": Linear(n_in, n_out).get_config()}


def rejected(path, *patterns):
    with pytest.raises(ModelFileError) as info:
        io.load_model(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert pattern.lower() in message.lower(), message
    return message


def test_the_pickle_bomb_is_live(tmp_path):
    """Control: numpy with allow_pickle=True would run the payload used below."""
    marker = tmp_path / "control-marker"
    data = npz_bytes({"weight": np.array([PickleBomb(marker)], dtype=object)})
    np.load(_io.BytesIO(data), allow_pickle=True)["weight"]
    assert marker.exists()


def test_object_array_with_pickle_payload_is_rejected(tmp_path):
    marker = tmp_path / "PWNED"
    arrays = npz_bytes({"weight": np.array([PickleBomb(marker)], dtype=object),
                        "bias": np.zeros(2, np.float32)})
    path = make_zip(tmp_path / "evil.bigdl", [("meta.json", meta_bytes(linear_doc())),
                                               ("arrays.npz", arrays)])
    rejected(path, "object", "pickle")
    with pytest.raises(ModelFileError):
        io.read_archive(path)
    assert not marker.exists()


def test_pickle_renamed_bigdl_is_rejected(tmp_path):
    marker = tmp_path / "PWNED"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"model{protocol}.bigdl"
        path.write_bytes(pickle.dumps(PickleBomb(marker), protocol=protocol))
        rejected(path, "pickle")
    assert not marker.exists()


def test_pickle_hidden_in_members_is_rejected(tmp_path):
    marker = tmp_path / "PWNED"
    bomb = pickle.dumps(PickleBomb(marker))
    good_arrays = npz_bytes({"weight": np.zeros((2, 2), np.float32),
                             "bias": np.zeros(2, np.float32)})
    extra = make_zip(tmp_path / "extra.bigdl", [("meta.json", meta_bytes(linear_doc())),
                                                 ("arrays.npz", good_arrays),
                                                 ("model.pkl", bomb)])
    rejected(extra, "unexpected", "model.pkl")
    as_npy = _io.BytesIO()
    with zipfile.ZipFile(as_npy, "w") as z:
        z.writestr("weight.npy", bomb)
        z.writestr("bias.npy", bomb)
    raw = make_zip(tmp_path / "raw.bigdl", [("meta.json", meta_bytes(linear_doc())),
                                             ("arrays.npz", as_npy.getvalue())])
    rejected(raw)
    as_meta = make_zip(tmp_path / "meta.bigdl", [("meta.json", bomb),
                                                  ("arrays.npz", good_arrays)])
    rejected(as_meta, "meta.json")
    assert not marker.exists()


def test_truncated_files_are_rejected(tmp_path):
    good = tmp_path / "good.bigdl"
    io.save_model(mlp(), str(good))
    data = good.read_bytes()
    cuts = sorted({0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 200,
                   len(data) - 30, len(data) - 22, len(data) - 1})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.bigdl"
        path.write_bytes(data[:cut])
        rejected(path)


def test_corrupted_bytes_are_rejected(tmp_path):
    good = tmp_path / "good.bigdl"
    io.save_model(mlp(), str(good))
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("arrays.npz")
    # flip one byte in the middle of the weights (inside arrays.npz)
    offset = info.header_offset + 30 + len("arrays.npz") + info.file_size // 2
    data[offset] ^= 0xFF
    path = tmp_path / "flipped.bigdl"
    path.write_bytes(bytes(data))
    rejected(path)


@pytest.mark.parametrize("config", [
    {"class": "os.system", "args": {"*command": ["touch {marker}"]}},
    {"class": "subprocess.Popen", "args": {"args": ["touch", "{marker}"]}},
    {"class": "eval", "args": {"*source": ["open('{marker}', 'w')"]}},
    {"class": "NoSuchLayer", "args": {}},
    {"class": "RandomUniform", "args": {}},  # registered, but not a Module
    {"class": "Sequential", "args": {}, "modules": [{"class": "os.system", "args": {}}]},
    {"class": "Linear", "args": {"input_size": 2, "output_size": 2,
                                 "init_weight": {"__object__": {"class": "os.system"}}}},
    {"class": ["Linear"], "args": {}},
    {"class": "Linear", "args": ["2", "2"]},
    "Linear",
])
def test_unknown_or_unregistered_classes_are_rejected(tmp_path, config):
    marker = tmp_path / "PWNED"
    config = json.loads(json.dumps(config).replace("{marker}", str(marker)))
    arrays = npz_bytes({"weight": np.zeros((2, 2), np.float32), "bias": np.zeros(2, np.float32)})
    path = make_zip(tmp_path / "m.bigdl", [
        ("meta.json", meta_bytes({"kind": "workbench-model", "model": config})),
        ("arrays.npz", arrays)])
    rejected(path)
    assert not marker.exists()


@pytest.mark.parametrize("layers", [
    [(10 ** 6, 10 ** 6)],                  # 4 TB of weights
    [(10 ** 5, 10 ** 5)],                  # 40 GB: np.zeros alone might even succeed
    [(2, 2), (2, 10 ** 12)],               # a valid layer, then an absurd one
    [(10 ** 30, 10 ** 30)],                # beyond any integer type
])
def test_absurd_layer_sizes_are_rejected_without_allocating(tmp_path, layers):
    model = {"class": "Sequential", "args": {},
             "modules": [{"class": "Linear", "args": {"input_size": i, "output_size": o}}
                         for i, o in layers]}
    arrays = npz_bytes({"0.weight": np.zeros((2, 2), np.float32),
                        "0.bias": np.zeros(2, np.float32)})
    path = make_zip(tmp_path / "huge.bigdl", [
        ("meta.json", meta_bytes({"kind": "workbench-model", "model": model})),
        ("arrays.npz", arrays)])
    tracemalloc.start()
    try:
        rejected(path, "Linear", "values")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # no wall-time bound (it flakes on a loaded machine): numpy reports its buffers to
    # tracemalloc, so even a lazily zeroed (calloc) array of the declared size shows in the peak
    assert peak < 20 * 2 ** 20, f"allocated {peak} bytes"


def test_npy_header_declaring_more_than_the_member_holds(tmp_path):
    def npy(shape, payload, descr="<f4"):
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        buf = _io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue() + payload

    for name, weight in [("huge", npy((10 ** 12,), b"\0" * 8)),
                         ("short", npy((2, 2), b"\0" * 12)),
                         ("trailing", npy((2, 2), b"\0" * 20)),
                         ("negative", npy((-4,), b"\0" * 16))]:
        inner = _io.BytesIO()
        with zipfile.ZipFile(inner, "w") as z:
            z.writestr("weight.npy", weight)
            z.writestr("bias.npy", npy((2,), b"\0" * 8))
        path = make_zip(tmp_path / f"{name}.bigdl", [("meta.json", meta_bytes(linear_doc())),
                                                      ("arrays.npz", inner.getvalue())])
        message = rejected(path, "weight")
        if name != "negative":
            assert "bytes" in message


def test_mismatched_shapes_and_keys(tmp_path):
    def file(name, arrays, n_in=3, n_out=4):
        return make_zip(tmp_path / name, [("meta.json", meta_bytes(linear_doc(n_in, n_out))),
                                          ("arrays.npz", npz_bytes(arrays))])

    f32 = np.float32
    msg = rejected(file("shape.bigdl", {"weight": np.zeros((5, 4), f32), "bias": np.zeros(4, f32)}),
                   "weight")
    assert "(4, 3)" in msg and "(5, 4)" in msg
    rejected(file("missing.bigdl", {"weight": np.zeros((4, 3), f32)}), "missing", "bias")
    rejected(file("extra.bigdl", {"weight": np.zeros((4, 3), f32), "bias": np.zeros(4, f32),
                                  "evil": np.zeros(1, f32)}), "unexpected", "evil")
    # a real model file whose arrays were swapped for another layer's
    good = tmp_path / "good.bigdl"
    io.save_model(Sequential().add(Linear(3, 4)), str(good))
    with zipfile.ZipFile(good) as z:
        arrays = z.read("arrays.npz")
    other = make_zip(tmp_path / "other.bigdl", [
        ("meta.json", meta_bytes({"kind": "workbench-model",
                                  "model": Sequential().add(Linear(4, 3)).get_config()})),
        ("arrays.npz", arrays)])
    rejected(other, "shape")


@pytest.mark.parametrize("weight, pattern", [
    (np.array([["a", "b"], ["c", "d"]]), "<U1"),
    (np.array([[b"a", b"b"], [b"c", b"d"]]), "S1"),
    (np.zeros((2, 2), dtype=[("x", "<f4")]), "dtype"),
    (np.zeros((2, 2), np.complex64), "complex64"),
    (np.zeros((2, 2), np.int64), "floating point"),
    (np.zeros((2, 2), np.float16), "float16"),
])
def test_wrong_dtypes_are_rejected(tmp_path, weight, pattern):
    path = make_zip(tmp_path / "m.bigdl", [
        ("meta.json", meta_bytes(linear_doc())),
        ("arrays.npz", npz_bytes({"weight": weight, "bias": np.zeros(2, weight.dtype
                                                                    if weight.dtype.kind == "f"
                                                                    else np.float32)}))])
    rejected(path, pattern)


def test_mixed_parameter_dtypes_are_rejected(tmp_path):
    path = make_zip(tmp_path / "m.bigdl", [
        ("meta.json", meta_bytes(linear_doc())),
        ("arrays.npz", npz_bytes({"weight": np.zeros((2, 2), np.float64),
                                  "bias": np.zeros(2, np.float32)}))])
    rejected(path, "mix")


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_structure_problems_are_rejected(tmp_path):
    doc = meta_bytes(linear_doc())
    arrays = npz_bytes({"weight": np.zeros((2, 2), np.float32), "bias": np.zeros(2, np.float32)})
    cases = {
        "missing-arrays": ([("meta.json", doc)], "missing"),
        "missing-meta": ([("arrays.npz", arrays)], "missing"),
        "duplicated": ([("meta.json", doc), ("arrays.npz", arrays), ("meta.json", doc)],
                       "duplicated"),
        "dir-entry": ([("meta.json", doc), ("arrays.npz", arrays), ("x/", b"")], "unexpected"),
        "not-json": ([("meta.json", b"\x00\xff not json"), ("arrays.npz", arrays)], "JSON"),
        "json-list": ([("meta.json", b"[1, 2]"), ("arrays.npz", arrays)], "archive"),
        "deep-json": ([("meta.json", b"[" * 100000), ("arrays.npz", arrays)], "meta.json"),
        "wrong-format": ([("meta.json", meta_bytes(linear_doc(), fmt="other")),
                          ("arrays.npz", arrays)], "archive"),
        "newer": ([("meta.json", meta_bytes(linear_doc(), version=99)),
                   ("arrays.npz", arrays)], "newer"),
        "bad-version": ([("meta.json", meta_bytes(linear_doc(), version="1")),
                         ("arrays.npz", arrays)], "version"),
        "no-document": ([("meta.json", json.dumps({"format": io.FORMAT_NAME,
                                                   "version": 1}).encode()),
                         ("arrays.npz", arrays)], "document"),
        "not-a-model": ([("meta.json", meta_bytes({"kind": "something-else"})),
                         ("arrays.npz", arrays)], "not a model"),
        "huge-meta": ([("meta.json", b" " * (5 << 20) + doc), ("arrays.npz", arrays)],
                      "bytes"),
        "arrays-not-zip": ([("meta.json", doc), ("arrays.npz", b"\x93NUMPY junk")], ""),
        "inner-extra": ([("meta.json", doc), ("arrays.npz", _with_member(arrays, "x.txt",
                                                                          b"hello"))],
                        "not a .npy"),
    }
    for name, (members, pattern) in cases.items():
        path = make_zip(tmp_path / f"{name}.bigdl", members)
        rejected(path, pattern)
    deflated = make_zip(tmp_path / "deflated.bigdl", [("meta.json", doc), ("arrays.npz", arrays)],
                        compression=zipfile.ZIP_DEFLATED)
    rejected(deflated, "compressed")


def _with_member(npz, name, data):
    buf = _io.BytesIO(npz)
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr(name, data)
    return buf.getvalue()


def test_not_a_zip_is_rejected(tmp_path):
    cases = {"empty.bigdl": b"", "text.bigdl": b"hello world",
             "json.bigdl": json.dumps({"model": linear_doc()}).encode(),
             "random.bigdl": np.random.default_rng(0).bytes(4096),
             "npy.bigdl": _npy_file()}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        rejected(path)
    # a bare .npz is a zip, but not our archive
    bare = tmp_path / "bare.bigdl"
    bare.write_bytes(npz_bytes({"weight": np.zeros((2, 2), np.float32)}))
    rejected(bare, "missing")
    # data prepended to a valid archive
    good = tmp_path / "good.bigdl"
    io.save_model(mlp(), str(good))
    prefixed = tmp_path / "prefixed.bigdl"
    prefixed.write_bytes(b"PK\x03\x04" + b"\0" * 60 + good.read_bytes())
    rejected(prefixed)
    with pytest.raises(FileNotFoundError):
        io.load_model(str(tmp_path / "nope.bigdl"))


def _npy_file():
    buf = _io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


@pytest.mark.parametrize("depth", [300, 3000])
def test_deeply_nested_config_is_rejected(tmp_path, depth):
    """300 levels parse as JSON but overflow the builder; 3000 overflow the JSON parser."""
    leaf = json.dumps({"class": "Linear", "args": {"input_size": 2, "output_size": 2}})
    config = '{"class": "Sequential", "args": {}, "modules": [' * depth + leaf + "]}" * depth
    text = ('{"format": "%s", "version": 1, "document": {"kind": "workbench-model", "model": %s}}'
            % (io.FORMAT_NAME, config))
    arrays = npz_bytes({"weight": np.zeros((2, 2), np.float32), "bias": np.zeros(2, np.float32)})
    path = make_zip(tmp_path / "deep.bigdl", [("meta.json", text), ("arrays.npz", arrays)])
    rejected(path)


def test_bigdl_save_and_load_spellings_on_the_model(tmp_path):
    # model.saveModel / model.save and Model.loadModel / Model.load, as a BigDL script writes them
    from workbench.nn import Linear, Model, ReLU, Sequential
    net = Sequential().add(Linear(4, 3)).add(ReLU()).add(Linear(3, 2))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    path = str(tmp_path / "net.bigdl")
    assert net.saveModel(path) is net
    with pytest.raises(Exception, match="exist"):
        net.saveModel(path)  # BigDL's over_write=False: an existing file is kept
    net.save(path, over_write=True)
    for loaded in (Model.loadModel(path), Model.load(path)):
        np.testing.assert_array_equal(loaded.evaluate().forward(x), net.evaluate().forward(x))
