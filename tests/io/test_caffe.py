"""Caffe import: our reader against OpenCV's (an independent Caffe reader) on small nets written
here as prototxt + caffemodel, weights into an existing model by name, and hostile files."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

from workbench import nn
from workbench.io import ModelFileError, load_caffe, load_caffe_model
from workbench.io import caffe as caffe_io

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2.dnn, "readNetFromCaffe"):  # OpenCV 5 dropped the Caffe importer
    pytest.skip("OpenCV without readNetFromCaffe", allow_module_level=True)


# --------------------------------------------------------------------------- fixture writer
class NetWriter:
    """Builds a NetParameter layer by layer; ``save`` writes the prototxt (no blobs) and the
    caffemodel (with blobs) the way Caffe does."""

    def __init__(self, seed=0):
        self.net = caffe_io.NetParameter(name="net")
        self.rng = np.random.default_rng(seed)

    def layer(self, name, type, bottom=(), top=None, blobs=(), **params):
        lp = self.net.layer.add(name=name, type=type)
        lp.bottom.extend([bottom] if isinstance(bottom, str) else list(bottom))
        lp.top.extend([top or name] if not isinstance(top, list) else top)
        for field, values in params.items():
            msg = getattr(lp, field)
            for k, v in values.items():
                if isinstance(v, list):
                    getattr(msg, k).extend(v)
                else:
                    setattr(msg, k, v)
        for b in blobs:
            blob = lp.blobs.add()
            blob.shape.dim.extend(b.shape)
            blob.data.extend(np.asarray(b, np.float32).ravel().tolist())
        return lp

    def input(self, name, shape):
        lp = self.net.layer.add(name=name, type="Input")
        lp.top.append(name)
        lp.input_param.shape.add().dim.extend(shape)

    def rand(self, *shape, scale=0.5):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def conv(self, name, bottom, n_in, n_out, k, stride=1, pad=0, group=1, bias=True, top=None):
        blobs = [self.rand(n_out, n_in // group, k, k)] + ([self.rand(n_out)] if bias else [])
        p = {"num_output": n_out, "kernel_size": [k], "bias_term": bias}
        if stride != 1:
            p["stride"] = [stride]
        if pad:
            p["pad"] = [pad]
        if group != 1:
            p["group"] = group
        return self.layer(name, "Convolution", bottom, top, blobs, convolution_param=p)

    def ip(self, name, bottom, n_in, n_out):
        return self.layer(name, "InnerProduct", bottom, None,
                          [self.rand(n_out, n_in), self.rand(n_out)],
                          inner_product_param={"num_output": n_out})

    def save(self, tmp_path, stem="net"):
        definition = caffe_io.NetParameter()
        definition.CopyFrom(self.net)
        for lp in definition.layer:
            del lp.blobs[:]
        proto, weights = tmp_path / f"{stem}.prototxt", tmp_path / f"{stem}.caffemodel"
        proto.write_text(text_format.MessageToString(definition))
        weights.write_bytes(self.net.SerializeToString())
        return str(proto), str(weights)


def lenet(tmp_path):
    w = NetWriter(1)
    w.input("data", [2, 1, 12, 12])
    w.conv("conv1", "data", 1, 4, 3)
    w.layer("pool1", "Pooling", "conv1", pooling_param={"pool": 0, "kernel_size": 3,
                                                         "stride": 2})  # 10 -> 5 (ceil)
    w.layer("relu1", "ReLU", "pool1", "pool1")  # in place
    w.conv("conv2", "pool1", 4, 6, 2, stride=1, pad=1, group=2)
    w.layer("pool2", "Pooling", "conv2", pooling_param={"pool": 1, "kernel_size": 3,
                                                         "stride": 2, "pad": 1})
    w.ip("ip1", "pool2", 6 * 4 * 4, 16)
    w.layer("tanh1", "TanH", "ip1", "ip1")
    w.layer("drop1", "Dropout", "ip1", "ip1", dropout_param={"dropout_ratio": 0.3})
    w.ip("ip2", "ip1", 16, 5)
    w.layer("prob", "Softmax", "ip2")
    return w.save(tmp_path, "lenet")


def inception(tmp_path):
    w = NetWriter(2)
    w.input("data", [2, 3, 9, 9])
    w.conv("stem", "data", 3, 8, 3, stride=1, pad=1)
    w.layer("stem_relu", "ReLU", "stem", "stem", relu_param={"negative_slope": 0.1})
    # k = 1: OpenCV 4.14 ignores LRN's k (see test_lrn_k_as_caffe)
    w.layer("norm", "LRN", "stem", lrn_param={"local_size": 3, "alpha": 0.5, "beta": 0.75})
    w.conv("b1", "norm", 8, 4, 1)
    w.conv("b2_reduce", "norm", 8, 4, 1)
    w.layer("b2_relu", "ReLU", "b2_reduce", "b2_reduce")
    w.conv("b2", "b2_reduce", 4, 6, 3, pad=1)
    w.layer("b3_pool", "Pooling", "norm", pooling_param={"pool": 0, "kernel_size": 3,
                                                          "stride": 1, "pad": 1})
    w.conv("b3", "b3_pool", 8, 2, 1)
    w.layer("mixed", "Concat", ["b1", "b2", "b3"])
    w.conv("short", "norm", 8, 12, 1, bias=False)
    w.layer("sum", "Eltwise", ["mixed", "short"], eltwise_param={"operation": 1,
                                                                  "coeff": [1.0, -0.5]})
    w.layer("prod", "Eltwise", ["sum", "mixed"], eltwise_param={"operation": 0})
    w.layer("maxed", "Eltwise", ["prod", "sum"], eltwise_param={"operation": 2})
    w.layer("gap", "Pooling", "maxed", pooling_param={"pool": 1, "global_pooling": True})
    w.ip("fc", "gap", 12, 7)
    w.layer("sig", "Sigmoid", "fc")
    return w.save(tmp_path, "inception")


def bn_scale(tmp_path):
    w = NetWriter(3)
    w.input("data", [2, 3, 8, 8])
    w.conv("conv", "data", 3, 5, 3, bias=False)
    mean, var = w.rand(5) * 2.5, np.abs(w.rand(5)) * 2.5 + 0.2
    w.layer("bn", "BatchNorm", "conv", "conv", [mean, var, np.array([2.5], np.float32)],
            batch_norm_param={"use_global_stats": True, "eps": 1e-3})
    w.layer("scale", "Scale", "conv", "conv", [w.rand(5) + 1, w.rand(5)],
            scale_param={"bias_term": True})
    w.layer("relu", "ReLU", "conv", "conv")
    w.layer("pool", "Pooling", "conv", pooling_param={"pool": 0, "kernel_size": 2,
                                                       "stride": 2})  # 6 -> 3
    w.layer("flat", "Flatten", "pool")
    w.ip("fc", "flat", 5 * 3 * 3, 4)
    return w.save(tmp_path, "bn")


def opencv_forward(proto, weights, x):
    net = cv2.dnn.readNetFromCaffe(proto, weights)
    net.setInput(x)
    return net.forward()


def assert_close(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs).reshape(np.shape(ours))
    scale = max(1e-3, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("build,shape", [(lenet, (2, 1, 12, 12)), (inception, (2, 3, 9, 9)),
                                         (bn_scale, (2, 3, 8, 8))])
def test_outputs_equal_opencv(tmp_path, build, shape):
    proto, weights = build(tmp_path)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    model = load_caffe_model(proto, weights).evaluate()
    ours = model.forward(x)
    assert_close(ours, opencv_forward(proto, weights, x))


def test_lrn_k_as_caffe(tmp_path):
    # Caffe: x / (k + alpha / n * sum of squares over n channels) ^ beta; OpenCV drops k
    w = NetWriter()
    w.input("data", [1, 8, 3, 3])
    w.layer("norm", "LRN", "data", lrn_param={"local_size": 3, "alpha": 0.5, "beta": 0.75,
                                               "k": 2.0})
    w.layer("within", "LRN", "data", lrn_param={"local_size": 3, "alpha": 0.5, "beta": 0.75,
                                                 "norm_region": 1})
    model = load_caffe_model(*w.save(tmp_path)).evaluate()
    x = np.random.default_rng(0).standard_normal((1, 8, 3, 3)).astype(np.float32) * 2
    across, within = model.forward(x)
    padded = np.pad(x ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    sums = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
    np.testing.assert_allclose(across, x / (2.0 + 0.5 / 3 * sums) ** 0.75, rtol=1e-5)
    planes = np.pad(x ** 2, ((0, 0), (0, 0), (1, 1), (1, 1)))
    boxes = sum(planes[:, :, i:i + 3, j:j + 3] for i in range(3) for j in range(3))
    np.testing.assert_allclose(within, x / (1 + 0.5 * boxes / 9) ** 0.75, rtol=1e-5)


def test_linear_net_is_sequential_and_branches_a_graph(tmp_path):
    seq = load_caffe_model(*lenet(tmp_path))
    assert isinstance(seq, nn.Sequential)
    names = [m.name() for m in seq.modules()]
    assert {"conv1", "pool1", "relu1", "ip1", "ip2", "prob"} <= set(names)
    graph = load_caffe_model(*inception(tmp_path))
    assert isinstance(graph, nn.Graph)
    assert not isinstance(graph, nn.Sequential)


def test_bn_scale_factor_applied(tmp_path):
    proto, weights = bn_scale(tmp_path)
    model = load_caffe_model(proto, weights)
    bn = next(m for m in model.modules() if m.name() == "bn")
    raw = caffe_io._weights(weights, caffe_io._read_caffemodel(weights))["bn"]
    np.testing.assert_allclose(bn.running_mean, raw[0] / 2.5, rtol=1e-6)
    np.testing.assert_allclose(bn.running_var, raw[1] / 2.5, rtol=1e-6)
    assert bn.eps == pytest.approx(1e-3)


def test_imported_model_trains_and_saves(tmp_path):
    from workbench.io import load_model, save_model
    model = load_caffe_model(*bn_scale(tmp_path))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = model.forward(x)
    model.backward(x, np.ones_like(out))
    path = save_model(model, str(tmp_path / "m.bigdl"))
    again = load_model(path)
    np.testing.assert_allclose(again.evaluate().forward(x), model.evaluate().forward(x),
                               rtol=1e-6)


def lenet_by_hand():
    return (nn.Sequential()
            .add(nn.SpatialConvolution(1, 4, 3, 3).set_name("conv1"))
            .add(nn.SpatialMaxPooling(3, 3, 2, 2).ceil())
            .add(nn.ReLU())
            .add(nn.SpatialConvolution(4, 6, 2, 2, 1, 1, 1, 1, n_group=2).set_name("conv2"))
            .add(nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1).ceil())
            .add(nn.Reshape([96]))
            .add(nn.Linear(96, 16).set_name("ip1"))
            .add(nn.Tanh())
            .add(nn.Linear(16, 5).set_name("ip2"))
            .add(nn.SoftMax()))


def test_load_caffe_into_existing_model_by_name(tmp_path):
    proto, weights = lenet(tmp_path)
    model = load_caffe(lenet_by_hand(), proto, weights)
    x = np.random.default_rng(9).standard_normal((2, 1, 12, 12)).astype(np.float32)
    assert_close(model.evaluate().forward(x), opencv_forward(proto, weights, x))


def test_match_all(tmp_path):
    proto, weights = lenet(tmp_path)
    model = lenet_by_hand()
    model.add(nn.Linear(5, 2).set_name("new_head"))
    with pytest.raises(ModelFileError, match="new_head"):
        load_caffe(model, proto, weights)
    head = next(m for m in model.modules() if m.name() == "new_head")
    before = head.weight.copy()
    load_caffe(model, proto, weights, match_all=False)
    np.testing.assert_array_equal(head.weight, before)  # kept its own weights
    conv1 = next(m for m in model.modules() if m.name() == "conv1")
    raw = caffe_io._weights(weights, caffe_io._read_caffemodel(weights))["conv1"]
    np.testing.assert_array_equal(conv1.weight, raw[0])


def test_load_caffe_shape_mismatch_names_layer(tmp_path):
    proto, weights = lenet(tmp_path)
    bad = nn.Sequential().add(nn.SpatialConvolution(1, 5, 3, 3).set_name("conv1"))
    with pytest.raises(ModelFileError, match="conv1.*shape"):
        load_caffe(bad, proto, weights)


def test_v1_layers_read(tmp_path):
    net = caffe_io.NetParameter(name="v1")
    net.input.append("data")
    net.input_dim.extend([1, 2, 5, 5])
    rng = np.random.default_rng(4)
    conv = net.layers.add(name="conv", type=4, bottom=["data"], top=["conv"])
    conv.convolution_param.num_output = 3
    conv.convolution_param.kernel_size.append(3)
    for shape in [(3, 2, 3, 3), (3,)]:
        b = conv.blobs.add()
        b.num, b.channels, b.height, b.width = ((1,) * (4 - len(shape)) + shape)
        b.data.extend(rng.standard_normal(shape).ravel().tolist())
    net.layers.add(name="relu", type=18, bottom=["conv"], top=["conv"])
    net.layers.add(name="pool", type=17, bottom=["conv"], top=["pool"]).pooling_param.MergeFrom(
        caffe_io._CLASSES["PoolingParameter"](pool=1, kernel_size=2, stride=2))
    definition = caffe_io.NetParameter()
    definition.CopyFrom(net)
    for lp in definition.layers:
        del lp.blobs[:]
    proto, weights = tmp_path / "v1.prototxt", tmp_path / "v1.caffemodel"
    proto.write_text(text_format.MessageToString(definition))
    weights.write_bytes(net.SerializeToString())
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    ours = load_caffe_model(str(proto), str(weights)).evaluate().forward(x)
    assert ours.shape == (1, 3, 2, 2)  # 3 -> 2 with Caffe's ceil
    assert_close(ours, opencv_forward(str(proto), str(weights), x))


def test_prototxt_with_fields_outside_the_schema(tmp_path):
    proto, weights = lenet(tmp_path)
    text = open(proto).read().replace('type: "Convolution"', 'type: "Convolution"\n'
                                      '  param { lr_mult: 1 }\n  transform_param { scale: 0.5 }',
                                      1)
    patched = tmp_path / "patched.prototxt"
    patched.write_text(text)
    assert isinstance(load_caffe_model(str(patched), weights), nn.Sequential)


# --------------------------------------------------------------------------- hostile files
def test_truncated_caffemodel(tmp_path):
    proto, weights = lenet(tmp_path)
    data = open(weights, "rb").read()
    for cut in (len(data) // 2, len(data) - 3, 7):
        bad = tmp_path / f"cut{cut}.caffemodel"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            load_caffe_model(proto, str(bad))


def test_absurd_blob_shape_is_refused_without_allocating(tmp_path):
    import tracemalloc
    w = NetWriter()
    w.input("data", [1, 1, 4, 4])
    lp = w.conv("conv", "data", 1, 2, 3)
    lp.blobs[0].shape.dim[:] = [2 ** 31, 2 ** 31, 3, 3]
    lp.convolution_param.num_output = 2 ** 31
    proto, weights = w.save(tmp_path)
    tracemalloc.start()
    with pytest.raises(ModelFileError, match="'conv'.*shape"):
        load_caffe_model(proto, weights)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20


def test_declared_size_beyond_the_weights_is_refused(tmp_path):
    w = NetWriter()
    w.input("data", [1, 1, 4, 4])
    lp = w.ip("fc", "data", 16, 2)
    lp.inner_product_param.num_output = 1  # 32 values read as Linear(32, 1): fine, small
    lp.blobs[1].shape.dim[:] = [2]
    proto, weights = w.save(tmp_path)
    with pytest.raises(ModelFileError, match="'fc'"):
        load_caffe_model(proto, weights)


def test_unknown_layer_named(tmp_path):
    w = NetWriter()
    w.input("data", [1, 1, 4, 4])
    w.layer("weird7", "Deconvolution", "data")
    proto, weights = w.save(tmp_path)
    with pytest.raises(ModelFileError, match="'weird7' \\(Deconvolution\\).*not supported"):
        load_caffe_model(proto, weights)


def test_not_protobuf_and_pickles_refused(tmp_path):
    import pickle
    proto, _ = lenet(tmp_path)
    bad = tmp_path / "evil.caffemodel"
    bad.write_bytes(pickle.dumps(os.system))
    with pytest.raises(ModelFileError):
        load_caffe_model(proto, str(bad))
    badtxt = tmp_path / "bad.prototxt"
    badtxt.write_text("layer { name: 'x' type: ")
    with pytest.raises(ModelFileError, match="prototxt"):
        load_caffe_model(str(badtxt), str(bad))


def test_missing_weights_named(tmp_path):
    proto, weights = lenet(tmp_path)
    w = NetWriter()
    w.input("data", [2, 1, 12, 12])
    other = tmp_path / "other.caffemodel"
    w.net.layer.add(name="unrelated", type="ReLU", bottom=["data"], top=["data"])
    other.write_bytes(w.net.SerializeToString())
    with pytest.raises(ModelFileError, match="'conv1'.*weight blob"):
        load_caffe_model(proto, str(other))
