"""BigDL's layer surface beyond the layers' own arguments: ``parameters()`` as BigDL's table,
``bigdl_type=`` on every constructor, ``ExpandSize(sizes=)``, the NHWC data format of pooling
and spatial batch norm, ``training(False)``, ``set_seed``, ``is_with_weights``."""
import numpy as np
import pytest

from helpers import f32
from workbench import nn
from workbench.nn import layout
from workbench.nn.module import LayerError


def small_model():
    return (nn.Sequential()
            .add(nn.SpatialConvolution(2, 3, 3, 3).set_name("conv"))
            .add(nn.SpatialBatchNormalization(3).set_name("bn"))
            .add(nn.ReLU())
            .add(nn.Reshape([3 * 2 * 2]))
            .add(nn.Linear(12, 4, with_bias=False).set_name("fc")))


# ---------------------------------------------------------------------- parameters()
def test_parameters_is_bigdls_table_of_copies():
    model = small_model()
    x = f32((5, 2, 4, 4))
    model.forward(x)
    model.backward(x, f32((5, 4), seed=1))
    table = model.parameters()
    assert sorted(table) == ["bn", "conv", "fc"]
    conv, bn, fc = (m for m in model.modules() if m.name() in ("conv", "bn", "fc"))
    assert sorted(table["conv"]) == ["bias", "gradBias", "gradWeight", "weight"]
    np.testing.assert_array_equal(table["conv"]["weight"], conv.weight)
    np.testing.assert_array_equal(table["conv"]["gradBias"], conv.grad_bias)
    # one parameter: weight and gradWeight only
    assert sorted(table["fc"]) == ["gradWeight", "weight"]
    np.testing.assert_array_equal(table["fc"]["gradWeight"], fc.grad_weight)
    # batch norm adds its running statistics, as BigDL's BatchNormalization
    assert sorted(table["bn"]) == ["bias", "gradBias", "gradWeight", "runningMean", "runningVar",
                                   "weight"]
    np.testing.assert_array_equal(table["bn"]["runningVar"], bn.running_var)
    assert not np.allclose(bn.running_mean, 0)  # a training forward moved it
    # copies: writing the table leaves the model alone
    table["fc"]["weight"][...] = 7.0
    assert not np.any(fc.weight == 7.0)


def test_parameters_conventions_for_many_and_no_parameters_and_frozen_layers():
    srelu = nn.SReLU((3,)).set_name("srelu")  # four parameters: weight0..3 / gradient0..3
    bn = nn.BatchNormalization(3, affine=False).set_name("bn")
    model = nn.Sequential().add(srelu).add(bn).add(nn.Tanh().set_name("tanh"))
    model.freeze("srelu")
    table = model.parameters()
    assert sorted(table) == ["bn", "srelu"]  # frozen layers are listed, as in BigDL
    assert sorted(table["srelu"]) == sorted([f"weight{i}" for i in range(4)]
                                            + [f"gradient{i}" for i in range(4)])
    assert sorted(table["bn"]) == ["runningMean", "runningVar"]
    assert nn.ReLU().parameters() == {}


def test_parameters_rejects_two_layers_of_one_name():
    model = nn.Sequential().add(nn.Linear(2, 2).set_name("a")).add(nn.Linear(2, 2).set_name("a"))
    with pytest.raises(ValueError, match="two layers are named 'a'"):
        model.parameters()


def test_parameter_arrays_are_the_trainable_arrays_themselves():
    model = small_model().freeze("conv")
    weights, grads = model.parameter_arrays()
    fc = [m for m in model.modules() if m.name() == "fc"][0]
    assert len(weights) == len(grads) == 3  # bn weight, bias; fc weight (conv frozen)
    assert weights[-1] is fc.weight and grads[-1] is fc.grad_weight


# ---------------------------------------------------------------------- bigdl_type
def test_bigdl_type_is_accepted_everywhere_and_double_makes_float64_modules():
    from workbench import optim
    objects = [nn.Linear(3, 2, bigdl_type="float"), nn.ClassNLLCriterion(bigdl_type="float"),
               nn.Xavier(bigdl_type="float"), nn.L2Regularizer(0.1, bigdl_type="float"),
               optim.SGD(0.1, bigdl_type="float"), optim.Step(2, 0.5, bigdl_type="float"),
               optim.MaxEpoch(2, bigdl_type="float"), optim.Top1Accuracy(bigdl_type="float"),
               nn.Sequential(bigdl_type="float")]
    assert all("bigdl_type" not in o.get_config()["args"] for o in objects)
    assert objects[0].weight.dtype == np.float32 and objects[0].get_dtype() == "float32"
    lin = nn.Linear(3, 2, bigdl_type="double")
    bn = nn.SpatialBatchNormalization(2, bigdl_type="double")
    assert lin.weight.dtype == np.float64 and lin.get_dtype() == "float64"
    assert bn.running_mean.dtype == np.float64
    assert lin.forward(f32((4, 3))).dtype == np.float64
    # the config keeps "double": a rebuilt module is float64 too
    assert lin.get_config()["args"]["bigdl_type"] == "double"
    assert nn.Module.from_config(lin.get_config()).weight.dtype == np.float64
    with pytest.raises(ValueError, match="ReLU: bigdl_type must be 'float' or 'double', "
                                         "got 'half'"):
        nn.ReLU(bigdl_type="half")


# ---------------------------------------------------------------------- keywords
def test_expand_size_takes_bigdls_sizes_keyword():
    x = f32((2, 1, 3))
    for layer in (nn.ExpandSize(sizes=[2, 4, 3]), nn.ExpandSize([2, 4, 3]),
                  nn.ExpandSize(target_sizes=[2, 4, 3])):
        assert layer.forward(x).shape == (2, 4, 3)
        assert layer.get_config()["args"] == {"sizes": [2, 4, 3]}
    with pytest.raises(TypeError, match="ExpandSize: give the sizes once"):
        nn.ExpandSize()


# ---------------------------------------------------------------------- NHWC data format
NHWC_LAYERS = {
    "max": lambda f: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1, to_ceil=True, format=f),
    "max-same": lambda f: nn.SpatialMaxPooling(2, 2, 2, 2, -1, -1, format=f),
    "avg": lambda f: nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1, count_include_pad=False,
                                              format=f),
    "avg-global": lambda f: nn.SpatialAveragePooling(1, 1, global_pooling=True, format=f),
    "bn": lambda f: nn.SpatialBatchNormalization(3, data_format=f),
}


@pytest.mark.parametrize("kind", sorted(NHWC_LAYERS))
@pytest.mark.parametrize("train", [True, False])
def test_nhwc_gives_the_nchw_numbers_on_transposed_input(kind, train):
    x = f32((4, 3, 7, 6))
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    nchw, nhwc = NHWC_LAYERS[kind]("NCHW"), NHWC_LAYERS[kind]("nhwc")
    assert nhwc.data_format == "NHWC"
    if not train:
        nchw.evaluate()
        nhwc.evaluate()
    y, yh = nchw.forward(x), nhwc.forward(xh)
    assert yh.shape == y.transpose(0, 2, 3, 1).shape
    np.testing.assert_allclose(yh, y.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    g = f32(y.shape, seed=2)
    gi = nchw.backward(x, g)
    gih = nhwc.backward(xh, np.ascontiguousarray(g.transpose(0, 2, 3, 1)))
    assert nhwc.grad_input is gih
    assert nhwc.output.shape == yh.shape and np.shares_memory(nhwc.output, yh)
    np.testing.assert_allclose(gih, gi.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    if nchw.parameter_arrays()[0]:
        for a, b in zip(nchw.parameter_arrays()[1], nhwc.parameter_arrays()[1]):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(nhwc.running_mean, nchw.running_mean, rtol=1e-5, atol=1e-6)


def test_nhwc_unbatched_input_and_a_sequential_of_nhwc_layers():
    x = f32((5, 6, 3))  # (H, W, C)
    pool = nn.SpatialMaxPooling(2, 2, format="NHWC")
    np.testing.assert_array_equal(pool.forward(x),
                                  nn.SpatialMaxPooling(2, 2).forward(layout.to_nchw(x))
                                  .transpose(1, 2, 0))
    model = (nn.Sequential().add(nn.SpatialBatchNormalization(3, data_format="NHWC"))
             .add(nn.ReLU()).add(nn.SpatialAveragePooling(2, 2, 2, 2, format="NHWC")))
    xb = f32((2, 4, 4, 3))
    out = model.forward(xb)
    assert out.shape == (2, 2, 2, 3)
    assert model.backward(xb, np.ones_like(out)).shape == xb.shape


def test_nhwc_errors_name_the_layer_and_the_nhwc_shapes():
    with pytest.raises(ValueError, match="SpatialMaxPooling: format must be 'NCHW' or 'NHWC', "
                                         "got 'NWHC'"):
        nn.SpatialMaxPooling(2, 2, format="NWHC")
    with pytest.raises(ValueError, match="SpatialBatchNormalization: data_format must be"):
        nn.SpatialBatchNormalization(3, data_format=4)
    bn = nn.SpatialBatchNormalization(3, data_format="NHWC")
    with pytest.raises(LayerError, match=r"expected input \(N, H, W, 3\), got \(2, 3, 5, 5\)"):
        bn.forward(f32((2, 3, 5, 5)))
    pool = nn.SpatialMaxPooling(4, 4, format="NHWC")
    with pytest.raises(LayerError, match=r"expected input \(N, H>=4, W>=4, C\), got "
                                         r"\(1, 2, 2, 3\)"):
        pool.forward(f32((1, 2, 2, 3)))
    with pytest.raises(LayerError, match=r"\(N, H, W, C\) or \(H, W, C\)"):
        pool.forward(f32((4, 4)))


def test_nhwc_layers_save_their_format():
    for layer in (nn.SpatialMaxPooling(2, 2, format="NHWC"),
                  nn.SpatialBatchNormalization(3, data_format="NHWC")):
        rebuilt = nn.Module.from_config(layer.get_config())
        assert rebuilt.data_format == "NHWC"
        assert "NHWC" in repr(rebuilt)


def test_spatial_batch_norm_takes_bigdls_initial_gradients():
    bn = nn.SpatialBatchNormalization(2, 1e-5, 0.1, True, np.array([1.0, 2.0]),
                                      np.array([0.0, 0.5]), np.array([0.1, 0.2]),
                                      np.array([0.3, 0.4]), "NHWC")
    np.testing.assert_allclose(bn.weight, [1.0, 2.0])
    np.testing.assert_allclose(bn.grad_weight, [0.1, 0.2])
    np.testing.assert_allclose(bn.grad_bias, [0.3, 0.4])
    assert bn.data_format == "NHWC"


# ---------------------------------------------------------------------- module methods
def test_training_false_set_seed_and_is_with_weights():
    model = nn.Sequential().add(nn.Dropout(0.5)).add(nn.Linear(3, 2))
    assert model.training(False) is model and not model.is_training()
    assert not model.modules().__next__().train
    assert model.training().is_training()
    assert model.is_with_weights() and not nn.ReLU().is_with_weights()
    a = nn.Linear(4, 3).set_seed(11).reset().weight.copy()
    b = nn.Linear(4, 3).set_seed(11).reset().weight.copy()
    c = nn.Linear(4, 3).set_seed(12).reset().weight.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
