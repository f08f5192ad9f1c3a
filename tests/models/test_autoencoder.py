"""The zoo's Autoencoder: BigDL's one-layer model unchanged, hidden layers and a linear code,
and its encoder half (``autoencoder_encoder``)."""
import numpy as np
import pytest

from workbench.data import load_digits
from workbench.models import Autoencoder, autoencoder_encoder
from workbench.nn import Linear, MSECriterion, ReLU, Sequential, random
from workbench.optim import Adam, MaxEpoch, Optimizer

RNG = np.random.default_rng(0)


def names(model):
    return [model.get(i).name() for i in range(len(model))]


def test_default_is_bigdls_model():
    model = Autoencoder()
    assert names(model) == ["flatten", "encoder", "encoder_relu", "decoder", "decoder_sigmoid"]
    assert model.get_parameters()[0].size == 784 * 32 + 32 + 32 * 784 + 784


def test_hidden_layers_mirror_and_linear_code():
    model = Autoencoder(2, 64, hidden_sizes=[32, 16], code_activation="linear")
    assert names(model) == ["flatten", "encoder_hidden0", "encoder_hidden0_relu",
                            "encoder_hidden1", "encoder_hidden1_relu", "encoder",
                            "decoder_hidden0", "decoder_hidden0_relu", "decoder_hidden1",
                            "decoder_hidden1_relu", "decoder", "decoder_sigmoid"]
    sizes = [(m.input_size, m.output_size) for m in model.modules() if isinstance(m, Linear)]
    assert sizes == [(64, 32), (32, 16), (16, 2), (2, 16), (16, 32), (32, 64)]
    y = model.forward(RNG.random((5, 1, 8, 8), np.float32))
    assert y.shape == (5, 64) and 0 < y.min() and y.max() < 1
    assert len(Autoencoder(4, 64, hidden_sizes=8)) == len(Autoencoder(4, 64, [8]))


@pytest.mark.parametrize("kwargs, message", [
    ({"class_num": 0}, "class_num must be an int >= 1"),
    ({"hidden_sizes": [32, 0]}, "hidden_sizes must be an int >= 1"),
    ({"code_activation": "tanh"}, "code_activation must be one of"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Autoencoder(**kwargs)


def test_encoder_is_the_first_half_as_a_snapshot():
    random.set_seed(3)
    model = Autoencoder(3, 64, hidden_sizes=[16])
    x = RNG.random((6, 64), np.float32)
    encoder = autoencoder_encoder(model)
    l1, code = model.get(1), model.get(3)
    hidden = np.maximum(x @ l1.weight.T + l1.bias, 0)
    want = np.maximum(hidden @ code.weight.T + code.bias, 0)  # BigDL's ReLU on the code
    np.testing.assert_allclose(encoder.forward(x), want, rtol=1e-5, atol=1e-6)
    before = encoder.forward(x).copy()
    model.get_parameters()[0][:] += 1.0  # training the autoencoder later
    np.testing.assert_array_equal(encoder.forward(x), before)
    linear = autoencoder_encoder(Autoencoder(2, 64, code_activation="linear"))
    assert linear.forward(x).shape == (6, 2) and linear.forward(x).min() < 0
    with pytest.raises(ValueError, match="no layer named 'encoder'"):
        autoencoder_encoder(Sequential().add(Linear(4, 2)).add(ReLU()))
    with pytest.raises(TypeError, match="expected the Sequential"):
        autoencoder_encoder(Linear(4, 2))


def test_learns_to_reconstruct_digits():
    (X, _), (Xt, _) = load_digits(size=8, normalize=False)
    X, Xt = X.reshape(len(X), 64), Xt.reshape(len(Xt), 64)
    random.set_seed(1)
    model = Autoencoder(2, 64, hidden_sizes=[32, 16], code_activation="linear")
    before = ((model.predict(Xt) - Xt) ** 2).mean()
    Optimizer(model, (X, X), MSECriterion(), MaxEpoch(8), 64, Adam(0.005), seed=1,
              progress=False).optimize()
    after = ((model.predict(Xt) - Xt) ** 2).mean()
    assert after < 0.75 * before, (before, after)
