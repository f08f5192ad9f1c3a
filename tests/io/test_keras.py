"""Keras models in (``workbench.io.load_keras``): parity with Keras 3 itself (torch backend,
marked ``oracle``), and hostile files rejected with clear errors (hand-made, no Keras needed)."""
import json
import os
import zipfile

import numpy as np
import pytest

import oracle
from workbench import nn
from workbench.io import ModelFileError, load_keras, load_keras_weights

h5py = pytest.importorskip("h5py")


# ------------------------------------------------------------------ Keras 3 (the oracle)
@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    return keras


@pytest.fixture
def K(keras):
    oracle.torch.manual_seed(0)  # Keras runs on PyTorch here: the oracle
    keras.utils.set_random_seed(0)
    return keras


def _perturb(model, seed=1):
    """Random weights everywhere (Keras starts biases at zero and BN at identity, which
    would hide a wrong mapping); BN variances stay positive."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = [w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in ws]
        if type(layer).__name__ == "BatchNormalization":
            new[-1] = np.abs(new[-1]) + 0.5
        layer.set_weights(new)
    return model


def _save_all(model, tmp_path):
    """Every file layout we read: .keras, full .h5, JSON + Keras 3 weights, JSON + full .h5."""
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    (tmp_path / "m.json").write_text(model.to_json())
    model.save_weights(tmp_path / "m.weights.h5")
    return [dict(hdf5_path=tmp_path / "m.keras"), dict(hdf5_path=tmp_path / "m.h5"),
            dict(json_path=tmp_path / "m.json", hdf5_path=tmp_path / "m.weights.h5"),
            dict(json_path=tmp_path / "m.json", hdf5_path=tmp_path / "m.h5"),
            dict(json_path=tmp_path / "m.json", hdf5_path=tmp_path / "m.keras", by_name=True)]


def _check_all(model, x, tmp_path, rtol=1e-4):
    ref = model.predict(x, verbose=0)
    refs = ref if isinstance(ref, list) else [ref]
    for args in _save_all(model, tmp_path):
        ours = load_keras(**args)
        out = ours.forward(x)
        outs = out if isinstance(out, list) else [out]
        assert len(outs) == len(refs), args
        for o, r in zip(outs, refs):
            r = np.asarray(r)
            assert o.shape == r.shape, args
            np.testing.assert_allclose(o, r, rtol=rtol, atol=rtol * max(1.0, np.abs(r).max()),
                                       err_msg=str(args))
    return ours


@pytest.mark.oracle
def test_mlp_sequential_all_formats(K, tmp_path):
    L = K.layers
    model = _perturb(K.Sequential([K.Input((6,)), L.Dense(8, activation="relu"), L.Dropout(0.3),
                                   L.Dense(8, activation="tanh"), L.Dense(3),
                                   L.Activation("softmax")]))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    ours = _check_all(model, x, tmp_path)
    assert isinstance(ours, nn.Sequential)
    assert {"dense", "dense_1", "dense_2"} <= set(ours.parameters())


@pytest.mark.oracle
def test_cnn_with_batch_norm_takes_nhwc(K, tmp_path):
    L = K.layers
    model = _perturb(K.Sequential([
        K.Input((12, 12, 3)),
        L.Conv2D(4, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(),
        L.ZeroPadding2D(((1, 0), (0, 2))),
        L.Conv2D(6, (3, 2), strides=2),
        L.AveragePooling2D(pool_size=2, strides=1, padding="same"),
        L.Flatten(),                     # (H, W, C) order: the next Dense takes Keras' kernel
        L.Dense(5)]))
    x = np.random.default_rng(0).normal(size=(4, 12, 12, 3)).astype("float32")
    ours = _check_all(model, x, tmp_path)
    # the imported model trains: a backward pass gives finite gradients for every parameter
    ours.training()
    ours.zero_grad_parameters()
    out = ours.forward(x)
    ours.backward(x, np.ones_like(out))
    _, grads = ours.get_parameters()
    assert np.isfinite(grads).all() and np.abs(grads).sum() > 0


@pytest.mark.oracle
def test_lstm_gru_text_model(K, tmp_path):
    L = K.layers
    model = _perturb(K.Sequential([
        K.Input((7,), dtype="int32"), L.Embedding(30, 6),
        L.LSTM(5, return_sequences=True),
        L.GRU(4, return_sequences=True),                   # reset_after=True (Keras 3)
        L.GRU(4, reset_after=False, return_sequences=True),
        L.SimpleRNN(3, go_backwards=True),
        L.Dense(2, activation="sigmoid")]))
    x = np.random.default_rng(0).integers(0, 30, size=(3, 7)).astype("int32")
    _check_all(model, x, tmp_path)


@pytest.mark.oracle
def test_functional_two_inputs_two_outputs(K, tmp_path):
    L = K.layers
    img = K.Input((8, 8, 2), name="image")
    vec = K.Input((5,), name="features")
    a = L.Conv2D(4, 3, activation="relu", name="conv")(img)
    a = L.GlobalAveragePooling2D()(a)
    b = L.Dense(4, activation="elu", name="fc_vec")(vec)
    s = L.Add()([a, b])
    c = L.Concatenate()([a, b, s])
    out1 = L.Dense(3, activation="softmax", name="head1")(c)
    out2 = L.Dense(1, name="head2")(L.Reshape((3, 4))(c))
    model = _perturb(K.Model([img, vec], [out1, out2]))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(4, 8, 8, 2)).astype("float32"),
         rng.normal(size=(4, 5)).astype("float32")]
    ours = _check_all(model, x, tmp_path)
    assert isinstance(ours, nn.Graph)


@pytest.mark.oracle
def test_conv1d_dilation_and_reshaping_layers(K, tmp_path):
    L = K.layers
    seq = _perturb(K.Sequential([K.Input((10, 3)), L.Conv1D(4, 3, strides=2, activation="relu"),
                                 L.MaxPooling1D(2), L.GlobalAveragePooling1D(), L.Dense(2)]))
    rng = np.random.default_rng(0)
    _check_all(seq, rng.normal(size=(2, 10, 3)).astype("float32"), tmp_path)
    img = _perturb(K.Sequential([
        K.Input((9, 9, 2)), L.Conv2D(3, 3, dilation_rate=2), L.UpSampling2D(),
        L.Cropping2D(((1, 0), (0, 1))), L.Permute((3, 1, 2)), L.Flatten(), L.Dense(2),
        L.LeakyReLU(), L.ReLU(max_value=6)]))
    _check_all(img, rng.normal(size=(2, 9, 9, 2)).astype("float32"), tmp_path)


@pytest.mark.oracle
def test_by_name_and_into_an_existing_model(K, tmp_path):
    L = K.layers
    src = _perturb(K.Sequential([K.Input((4,)), L.Dense(6, name="a"), L.Dense(2, name="b")]))
    src.save_weights(tmp_path / "src.weights.h5")
    src.save(tmp_path / "src.h5")
    # another architecture sharing only layer "a": by_name loads "a", "z" keeps its init
    other = K.Sequential([K.Input((4,)), L.Dense(6, name="a"), L.Dense(3, name="z")])
    (tmp_path / "other.json").write_text(other.to_json())
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    for weights in ("src.weights.h5", "src.h5"):
        ours = load_keras(tmp_path / "other.json", tmp_path / weights, by_name=True)
        kernel, bias = src.get_layer("a").get_weights()
        np.testing.assert_allclose(ours.parameters()["a"]["weight"], kernel.T)
        np.testing.assert_allclose(ours.parameters()["a"]["bias"], bias)
        # by position the two architectures do not fit: a clear error
        with pytest.raises(ModelFileError, match="'z'|z"):
            load_keras(tmp_path / "other.json", tmp_path / weights)
    # BigDL-style: weights into a workbench model built by hand, by layer name
    model = nn.Sequential().add(nn.Linear(4, 6).set_name("a")).add(
        nn.Linear(6, 2).set_name("b"))
    load_keras_weights(model, tmp_path / "src.weights.h5")
    np.testing.assert_allclose(model.evaluate().forward(x), src.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
def test_lambda_saved_by_keras_is_refused(K, tmp_path):
    L = K.layers
    model = K.Sequential([K.Input((3,)), L.Dense(2), L.Lambda(lambda t: t * 2, name="double")])
    model.save(tmp_path / "lam.keras")
    with pytest.raises(ModelFileError, match=r"'double' \(Lambda\).*never loaded"):
        load_keras(hdf5_path=tmp_path / "lam.keras")


# ------------------------------------------------------------------ hand-made files (no Keras)
def _dense_cfg(name, units, activation="linear", **extra):
    return {"class_name": "Dense", "config": dict(name=name, units=units, activation=activation,
                                                   use_bias=True, **extra)}


def _keras2_files(tmp_path, layers=None, weights=None):
    """A Keras 2 JSON architecture and legacy weights (``layer_names`` / ``weight_names``,
    ``:0`` suffixes), written with json and h5py."""
    rng = np.random.default_rng(0)
    layers = layers or [_dense_cfg("d1", 5, "relu", batch_input_shape=[None, 4]),
                        _dense_cfg("d2", 3)]
    doc = {"class_name": "Sequential", "keras_version": "2.15.0", "backend": "tensorflow",
           "config": {"name": "seq", "layers": layers}}
    (tmp_path / "k2.json").write_text(json.dumps(doc))
    weights = weights or {"d1": [rng.normal(size=(4, 5)), rng.normal(size=5)],
                          "d2": [rng.normal(size=(5, 3)), rng.normal(size=3)]}
    with h5py.File(tmp_path / "k2.h5", "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in weights]
        for name, (k, b) in weights.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            sub = g.create_group(name)
            sub.create_dataset("kernel:0", data=np.asarray(k, np.float32))
            sub.create_dataset("bias:0", data=np.asarray(b, np.float32))
    return tmp_path / "k2.json", tmp_path / "k2.h5", weights


def test_keras2_json_and_legacy_weights_match_numpy(tmp_path):
    js, h5, w = _keras2_files(tmp_path)
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    expected = np.maximum(x @ w["d1"][0] + w["d1"][1], 0) @ w["d2"][0] + w["d2"][1]
    model = load_keras(js, h5)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-5, atol=1e-5)
    # the architecture alone: the same structure with our initial weights
    bare = load_keras(json_path=js)
    assert bare.forward(x).shape == (6, 3)


def test_keras2_functional_json(tmp_path):
    """Keras 2's functional config: inbound_nodes as [[layer, node, tensor, kwargs]]."""
    def layer(cls, name, inbound, **config):
        return {"class_name": cls, "name": name, "config": dict(name=name, **config),
                "inbound_nodes": [[[n, 0, 0, {}] for n in inbound]] if inbound else []}
    doc = {"class_name": "Model", "keras_version": "2.15.0", "config": {
        "name": "f", "input_layers": [["x", 0, 0]], "output_layers": [["sum", 0, 0]],
        "layers": [layer("InputLayer", "x", [], batch_input_shape=[None, 4]),
                   layer("Dense", "d1", ["x"], units=3, activation="tanh", use_bias=True),
                   layer("Dense", "d2", ["x"], units=3, activation="linear", use_bias=False),
                   layer("Add", "sum", ["d1", "d2"])]}}
    (tmp_path / "f.json").write_text(json.dumps(doc))
    rng = np.random.default_rng(0)
    k1, b1, k2 = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(4, 3))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.attrs["layer_names"] = [b"x", b"d1", b"d2", b"sum"]
        for name, arrays in (("x", {}), ("d1", {"kernel:0": k1, "bias:0": b1}),
                             ("d2", {"kernel:0": k2}), ("sum", {})):
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/{k}".encode() for k in arrays]
            for k, v in arrays.items():
                g.create_dataset(f"{name}/{k}", data=v.astype(np.float32))
    model = load_keras(tmp_path / "f.json", tmp_path / "f.h5")
    assert isinstance(model, nn.Graph)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x), np.tanh(x @ k1 + b1) + x @ k2, rtol=1e-5,
                               atol=1e-5)


def test_truncated_files_are_rejected(tmp_path):
    js, h5, _ = _keras2_files(tmp_path)
    data = h5.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match="HDF5"):
        load_keras(js, tmp_path / "cut.h5")
    # a .keras archive cut in the middle
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("config.json", js.read_text())
        z.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        z.writestr("model.weights.h5", data)
    whole = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelFileError):
        load_keras(hdf5_path=tmp_path / "cut.keras")
    (tmp_path / "cut.json").write_text(js.read_text()[:40])
    with pytest.raises(ModelFileError, match="JSON"):
        load_keras(tmp_path / "cut.json")


def test_unknown_and_lambda_layers_are_named(tmp_path):
    layers = [_dense_cfg("d1", 5, batch_input_shape=[None, 4]),
              {"class_name": "FancyAttention", "config": {"name": "mystery"}}]
    js, _, _ = _keras2_files(tmp_path, layers)
    with pytest.raises(ModelFileError, match=r"'mystery' \(FancyAttention\).*not supported"):
        load_keras(js)
    # a Lambda carries marshalled Python bytecode: refused, never decoded
    layers[1] = {"class_name": "Lambda", "config": {
        "name": "evil", "function": ["4wEAAAAAAAAA", None, None], "function_type": "lambda"}}
    js, _, _ = _keras2_files(tmp_path, layers)
    with pytest.raises(ModelFileError, match=r"'evil' \(Lambda\)"):
        load_keras(js)
    # Keras 3 hard_sigmoid (slope 1/6) in a recurrent gate is not ours: refused
    doc = json.loads(js.read_text())
    doc["keras_version"] = "3.1.0"
    doc["config"]["layers"] = [{"class_name": "LSTM", "config": {
        "name": "rnn", "units": 2, "recurrent_activation": "hard_sigmoid",
        "batch_input_shape": [None, 3, 4]}}]
    js.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="'rnn'.*hard_sigmoid"):
        load_keras(js)


def test_absurd_shapes_fail_before_allocating(tmp_path):
    # a config declaring a 10^12-value Dense next to a tiny weights file
    layers = [_dense_cfg("d1", 10**6, batch_input_shape=[None, 10**6]), _dense_cfg("d2", 3)]
    js, h5, _ = _keras2_files(tmp_path, layers)
    with pytest.raises(ModelFileError, match="d1|values"):
        load_keras(js, h5)
    # no weights: capped by MAX_VALUES_WITHOUT_WEIGHTS
    with pytest.raises(ModelFileError, match="values"):
        load_keras(js)
    # a dataset declaring a huge shape (chunked, never written: the file stays tiny)
    js, h5, w = _keras2_files(tmp_path)
    with h5py.File(h5, "a") as f:
        del f["d1/d1/kernel:0"]
        f["d1/d1"].create_dataset("kernel:0", shape=(10**6, 10**6), dtype="f4",
                                  chunks=(1, 1024))
    assert os.path.getsize(h5) < 1 << 20
    with pytest.raises(ModelFileError, match=r"'d1'.*shape \(1000000, 1000000\)"):
        load_keras(js, h5)
    # negative / non-integer sizes
    layers = [_dense_cfg("d1", -4, batch_input_shape=[None, 4])]
    js, _, _ = _keras2_files(tmp_path, layers)
    with pytest.raises(ModelFileError, match="'d1'"):
        load_keras(js)


def test_hostile_archives(tmp_path):
    js, h5, _ = _keras2_files(tmp_path)
    # a pickle where the weights should be: refused, never unpickled
    with zipfile.ZipFile(tmp_path / "p.keras", "w") as z:
        z.writestr("config.json", js.read_text())
        z.writestr("model.weights.pkl", b"\x80\x04cos\nsystem\n.")
    with pytest.raises(ModelFileError, match="no model.weights.h5"):
        load_keras(hdf5_path=tmp_path / "p.keras")
    # a compressed member that inflates far beyond the archive (a zip bomb)
    with zipfile.ZipFile(tmp_path / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", js.read_text())
        z.writestr("model.weights.h5", b"\0" * (20 << 20))
    assert os.path.getsize(tmp_path / "bomb.keras") < 1 << 20
    with pytest.raises(ModelFileError, match="declares"):
        load_keras(hdf5_path=tmp_path / "bomb.keras")
    # an HDF5 weights file with no architecture
    with pytest.raises(ModelFileError, match="no model_config"):
        load_keras(hdf5_path=h5)
    # weights of the wrong dtype
    with h5py.File(h5, "a") as f:
        del f["d2/d2/bias:0"]
        f["d2/d2"].create_dataset("bias:0", data=np.array([b"x", b"y", b"z"]))
    with pytest.raises(ModelFileError, match="'d2'.*dtype"):
        load_keras(js, h5)
