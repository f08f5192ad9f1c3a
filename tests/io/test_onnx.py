"""ONNX import and export: our exports in onnxruntime, PyTorch's exports in ours, round trips,
hostile files."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from oracle import torch  # noqa: E402
from workbench import nn  # noqa: E402
from workbench.io import load_onnx, save_onnx  # noqa: E402
from workbench.io.onnx import OPSET, OnnxError  # noqa: E402
from workbench.models import LeNet5  # noqa: E402


def _ort(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds)))


def _randomize_bn(model, rng):
    for m in model.modules():
        if isinstance(m, (nn.BatchNormalization, nn.SpatialBatchNormalization)):
            m.running_mean[...] = rng.normal(size=m.n_output)
            m.running_var[...] = rng.uniform(0.5, 2.0, size=m.n_output)
            m.weight[...] = rng.normal(size=m.n_output)
            m.bias[...] = rng.normal(size=m.n_output)
    return model


def _mlp():
    return (nn.Sequential().add(nn.Linear(8, 16)).add(nn.ReLU()).add(nn.Dropout(0.3))
            .add(nn.Linear(16, 4)).add(nn.SoftMax()))


def _cnn():
    return (nn.Sequential()
            .add(nn.SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1))
            .add(nn.SpatialBatchNormalization(8)).add(nn.ReLU())
            .add(nn.SpatialConvolution(8, 8, 3, 3, 2, 2, 1, 1, n_group=2))
            .add(nn.ReLU6()).add(nn.SpatialAveragePooling(2, 2, 2, 2))
            .add(nn.SpatialCrossMapLRN(3, 1e-3, 0.75, 1.0))
            .add(nn.SpatialMaxPooling(2, 2, 1, 1, 0, 0, to_ceil=True))
            .add(nn.InferReshape([-1], batch_mode=True))
            .add(nn.Linear(8, 5)).add(nn.BatchNormalization(5)).add(nn.LeakyReLU(0.1))
            .add(nn.LogSoftMax()))


def _two_input_graph():
    a, b = nn.Input(name="a"), nn.Input(name="b")
    ha = nn.Tanh()(nn.Linear(6, 5)(a))
    hb = nn.ELU(0.5)(nn.Linear(3, 5)(b))
    s = nn.CAddTable()(ha, hb)
    m = nn.CMulTable()(s, nn.Sigmoid()(hb))
    j = nn.JoinTable(2)(s, m)
    return nn.Graph([a, b], [nn.Linear(10, 2)(j), s])


CASES = {
    "lenet5": (LeNet5, [(2, 1, 28, 28)]),
    "mlp": (_mlp, [(3, 8)]),
    "cnn_bn": (_cnn, [(2, 3, 8, 8)]),
    "graph_2in": (_two_input_graph, [(4, 6), (4, 3)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_runs_in_onnxruntime_and_round_trips(case, tmp_path):
    build, shapes = CASES[case]
    nn.random.set_seed(7)
    rng = np.random.default_rng(0)
    model = _randomize_bn(build(), rng).evaluate()
    xs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    x = xs if len(xs) > 1 else xs[0]
    ours = model.forward(x)
    ours = [o.copy() for o in ours] if isinstance(ours, list) else [ours.copy()]
    path = tmp_path / f"{case}.onnx"
    save_onnx(model, path, shapes if len(shapes) > 1 else shapes[0])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    # the batch axis is symbolic: another batch size runs too
    theirs = _ort(path, xs)
    assert len(theirs) == len(ours)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(t, o, rtol=1e-5, atol=1e-5)
    # ours -> ONNX -> ours
    back = load_onnx(path)
    again = back.forward(x)
    again = again if isinstance(again, list) else [again]
    for o, t in zip(ours, again):
        np.testing.assert_allclose(t, o, rtol=1e-6, atol=1e-6)
    assert isinstance(back, nn.Graph if len(shapes) > 1 or case == "graph_2in" else nn.Sequential)


def test_export_batch_axis_is_symbolic(tmp_path):
    model = _mlp().evaluate()
    save_onnx(model, tmp_path / "m.onnx", (1, 8))
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(_ort(tmp_path / "m.onnx", [x])[0], model.forward(x),
                               rtol=1e-5, atol=1e-6)


def test_export_unsupported_layer_names_it(tmp_path):
    model = nn.Sequential().add(nn.Linear(4, 4)).add(nn.GELU().set_name("act"))
    with pytest.raises(OnnxError, match=r"GELU\[act\].*no ONNX export"):
        save_onnx(model, tmp_path / "m.onnx", (1, 4))


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy (TorchScript) exporter
def test_torch_export_imports_with_equal_outputs(tmp_path):
    torch.manual_seed(0)
    tnn = torch.nn
    net = tnn.Sequential(
        tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(8, 4, 3, stride=2, padding=(1, 0), groups=4), tnn.ReLU(),
        tnn.Flatten(), tnn.Linear(4 * 2 * 3, 10), tnn.Softmax(dim=1))
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    net.eval()
    x = torch.randn(2, 3, 12, 12)
    path = tmp_path / "torch.onnx"
    # no constant folding: the BatchNormalization node stays (folding merges it into the conv)
    torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=13,
                      do_constant_folding=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "BatchNormalization" in ops and "Conv" in ops and "Gemm" in ops
    model = load_onnx(path)
    assert any(isinstance(m, nn.SpatialBatchNormalization) for m in model.modules())
    with torch.no_grad():
        ref = net(x).numpy()
    ours = model.forward(x.numpy())
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- hostile files
def _tiny_model(nodes, inits=(), in_shape=(1, 4), out_shape=None):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    # IR 8, as save_onnx writes: the onnxruntime of older Pythons reads IR <= 11 only
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_import_truncated_file(tmp_path):
    model = _mlp()
    save_onnx(model, tmp_path / "m.onnx", (1, 8))
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxError, match="truncated|not a valid ONNX|disagree|holds"):
        load_onnx(tmp_path / "cut.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x80\x03cposix\nsystem\n" * 10)  # a pickle-ish blob
    with pytest.raises(OnnxError):
        load_onnx(tmp_path / "junk.onnx")


def test_import_unknown_op_names_type_node_and_position(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="first"),
             helper.make_node("Hardmax", ["h"], ["y"], name="mystery")]
    path = tmp_path / "u.onnx"
    onnx.save(_tiny_model(nodes), str(path))
    with pytest.raises(OnnxError, match=r"node 1 \(Hardmax 'mystery'\).*Hardmax is not supported"):
        load_onnx(path)


def test_import_custom_domain_is_refused(tmp_path):
    node = helper.make_node("Evil", ["x"], ["y"], name="e", domain="com.example")
    model = _tiny_model([node])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(OnnxError, match="com.example.Evil"):
        load_onnx(model.SerializeToString())


def test_import_absurd_dims_before_allocating():
    # an initializer that declares 10^12 floats but holds 16 bytes
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[10 ** 6, 10 ** 6],
                    raw_data=b"\0" * 16)
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    with pytest.raises(OnnxError, match="absurd|holds"):
        load_onnx(_tiny_model([node], [w]).SerializeToString())
    # a declared size larger than the bytes present
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 1000], raw_data=b"\0" * 64)
    with pytest.raises(OnnxError, match=r"'w' declares dims \[4, 1000\].*holds 64"):
        load_onnx(_tiny_model([node], [w]).SerializeToString())
    # an absurd graph input shape
    relu = helper.make_node("Relu", ["x"], ["y"], name="r")
    with pytest.raises(OnnxError, match="absurd"):
        load_onnx(_tiny_model([relu], in_shape=(10 ** 9, 10 ** 9)).SerializeToString())


def test_import_refuses_external_data():
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], np.zeros(8, np.float32))
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    with pytest.raises(OnnxError, match="external data"):
        load_onnx(_tiny_model([node], [w]).SerializeToString())


def test_import_matmul_add_and_constant_ops_match_onnxruntime(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=(3,)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Add", ["h", "b"], ["h2"], name="bias"),
             helper.make_node("Constant", [], ["k"], name="k",
                              value=numpy_helper.from_array(np.float32(2.0), "k")),
             helper.make_node("Div", ["h2", "k"], ["h3"], name="half"),
             helper.make_node("Clip", ["h3", "lo", "hi"], ["y"], name="clip")]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.float32(-0.5), "lo"),
             numpy_helper.from_array(np.float32(0.5), "hi")]
    path = tmp_path / "mm.onnx"
    onnx.save(_tiny_model(nodes, inits, in_shape=("N", 4)), str(path))
    x = rng.normal(size=(5, 4)).astype(np.float32)
    model = load_onnx(path)
    np.testing.assert_allclose(model.forward(x), _ort(path, [x])[0], rtol=1e-5, atol=1e-6)
