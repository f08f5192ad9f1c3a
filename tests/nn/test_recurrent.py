"""Recurrent layers (ConvLSTMPeephole3D too): BPTT gradients, PyTorch parity, masking, state
API, configs, errors."""
import numpy as np
import pytest
from oracle import F, torch

from helpers import assert_close_f32, check_module_gradients, config_round_trip, f32, normal, t64
from workbench import io
from workbench.nn import (BiRecurrent, CAddTable, Container, ConvLSTMPeephole, ConvLSTMPeephole3D,
                          GRU, JoinTable, L2Regularizer, LayerError, Linear, LSTM, LSTMPeephole,
                          MultiRNNCell, Recurrent, RecurrentDecoder, RnnCell, Sequential,
                          TimeDistributed)

N, T, D, H = 3, 4, 3, 5


def run(layer, x, g):
    """Forward and backward; copies of output, input gradient and parameter gradients."""
    layer.zero_grad_parameters()
    y = np.array(layer.forward(x), copy=True)
    gx = layer.backward(x, g)
    gx = np.array(gx[0] if isinstance(gx, list) else gx, copy=True)
    grads = {p: np.array(getattr(m, "grad_" + n), copy=True)
             for p, m, n in layer.named_parameters()}
    return y, gx, grads


def torch_run(fn, x, g, params):
    """Run a torch function of (x, *params) and return output, input and parameter grads."""
    tx = t64(x).requires_grad_()
    tp = [t64(p).requires_grad_() for p in params]
    y = fn(tx, *tp)
    y.backward(t64(g))
    return y.detach().numpy(), tx.grad.numpy(), [p.grad.numpy() for p in tp]


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


CELLS = {
    "RnnCell": lambda: RnnCell(D, H),
    "RnnCell-relu-nobias": lambda: RnnCell(D, H, "relu", isHiddenWithBias=False),
    "LSTM": lambda: LSTM(D, H),
    "LSTM-hard_sigmoid": lambda: LSTM(D, H, 0.0, "tanh", "hard_sigmoid"),
    "LSTMPeephole": lambda: LSTMPeephole(D, H),
    "GRU": lambda: GRU(D, H),
    "GRU-reset_after": lambda: GRU(D, H, reset_after=True),
    "MultiRNNCell": lambda: MultiRNNCell([LSTM(D, 4), GRU(4, H)]),
}


# ---------------------------------------------------------------------- gradients (float64)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_recurrent_gradients(name):
    layer = Recurrent().add(CELLS[name]()).double()
    check_module_gradients(layer, normal((N, T, D), 1))


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RnnCell"])
def test_cell_alone_gradients(name):
    cell = CELLS[name]().double()
    x = normal((N, D), 2)
    state = [normal((N, H), 3), normal((N, H), 4)] if name == "LSTM" else normal((N, H), 3)
    out, new = cell.forward([x, state])
    assert out.shape == (N, H)
    check_module_gradients(cell, [x, state])


def test_conv_lstm_gradients_same_and_strided():
    x = normal((2, 3, 2, 4, 4), 5)
    same = Recurrent().add(ConvLSTMPeephole(2, 3, 3, 3)).double()
    check_module_gradients(same, x)
    assert same.output.shape == (2, 3, 3, 4, 4)
    strided = Recurrent().add(ConvLSTMPeephole(2, 2, 3, 1, stride=2, padding=1,
                                               with_peephole=False)).double()
    check_module_gradients(strided, x)
    assert strided.output.shape == (2, 3, 2, 2, 2)


def test_birecurrent_time_distributed_and_decoder_gradients():
    x = normal((N, T, D), 6)
    check_module_gradients(BiRecurrent().add(GRU(D, H)).double(), x)
    check_module_gradients(BiRecurrent(JoinTable(3)).add(LSTM(D, H)).double(), x)
    check_module_gradients(TimeDistributed(Linear(D, 2)).double(), x)
    check_module_gradients(RecurrentDecoder(3).add(LSTM(D, D)).double(), normal((N, D), 7))
    check_module_gradients(RecurrentDecoder(3).add(MultiRNNCell([GRU(D, 4), RnnCell(4, D)]))
                           .double(), normal((N, D), 8))


class WithLengths(Container):
    """Feeds ``[x, lengths]`` to its child, so that finite differences perturb ``x`` only."""

    def __init__(self, layer, lengths):
        super().__init__()
        self.add(layer)
        self.lengths = lengths

    def update_output(self, input):
        return self[0].forward([input, self.lengths])

    def backward(self, input, grad_output):
        self.grad_input = self[0].backward([input, self.lengths], grad_output)[0]
        return self.grad_input


def test_masked_gradients_float64():
    x = normal((N, T, D), 9)
    lengths = np.array([4, 1, 2])
    for cell in (LSTM(D, H), GRU(D, H)):
        check_module_gradients(WithLengths(Recurrent().add(cell), lengths).double(), x)
    check_module_gradients(WithLengths(BiRecurrent(JoinTable(3)).add(LSTMPeephole(D, H)),
                                       lengths).double(), x)


# ---------------------------------------------------------------------- PyTorch parity
def torch_rnn(ref, x, g, params, names):
    """Copy ``params`` into the torch RNN ``ref`` (under ``names``), run it on ``x`` and
    backpropagate ``g``; returns output, input gradient and the named parameter gradients."""
    with torch.no_grad():
        for name, p in zip(names, params):
            getattr(ref, name).copy_(t64(p) if p is not None else 0)
    tx = t64(x).requires_grad_()
    ty, _ = ref(tx)
    ty.backward(t64(g))
    return ty.detach().numpy(), tx.grad.numpy(), [getattr(ref, n).grad.numpy() for n in names]


RNN_NAMES = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


@pytest.mark.oracle
def test_rnn_cell_matches_torch_rnn():
    for act in ("tanh", "relu"):
        cell = RnnCell(D, H, act).double()
        x, g = normal((N, T, D), 10), normal((N, T, H), 11)
        y, gx, grads = run(Recurrent().add(cell), x, g)
        ref = torch.nn.RNN(D, H, nonlinearity=act, batch_first=True).double()
        ty, tgx, tg = torch_rnn(ref, x, g, [cell.weight, cell.recurrent_weight, cell.bias,
                                            cell.recurrent_bias], RNN_NAMES)
        close(ty, y)
        close(tgx, gx)
        for ours, theirs in zip(["0.weight", "0.recurrent_weight", "0.bias", "0.recurrent_bias"],
                                tg):
            close(grads[ours], theirs)


@pytest.mark.oracle
def test_lstm_matches_torch_lstm():
    cell = LSTM(D, H).double()
    x, g = normal((N, T, D), 12), normal((N, T, H), 13)
    y, gx, grads = run(Recurrent().add(cell), x, g)
    ref = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(t64(cell.weight))
        ref.weight_hh_l0.copy_(t64(cell.recurrent_weight))
        ref.bias_ih_l0.copy_(t64(cell.bias))
        ref.bias_hh_l0.zero_()
    tx = t64(x).requires_grad_()
    ty, _ = ref(tx)
    ty.backward(t64(g))
    close(ty.detach().numpy(), y)
    close(tx.grad.numpy(), gx)
    close(grads["0.weight"], ref.weight_ih_l0.grad.numpy())
    close(grads["0.recurrent_weight"], ref.weight_hh_l0.grad.numpy())
    close(grads["0.bias"], ref.bias_ih_l0.grad.numpy())


@pytest.mark.oracle
def test_gru_reset_after_matches_torch_gru():
    cell = GRU(D, H, reset_after=True).double()
    x, g = normal((N, T, D), 14), normal((N, T, H), 15)
    y, gx, grads = run(Recurrent().add(cell), x, g)
    ref = torch.nn.GRU(D, H, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(t64(cell.weight))
        ref.weight_hh_l0.copy_(t64(cell.recurrent_weight))
        ref.bias_ih_l0.copy_(t64(cell.bias))
        ref.bias_hh_l0.copy_(t64(cell.recurrent_bias))
    tx = t64(x).requires_grad_()
    ty, _ = ref(tx)
    ty.backward(t64(g))
    close(ty.detach().numpy(), y)
    close(tx.grad.numpy(), gx)
    close(grads["0.weight"], ref.weight_ih_l0.grad.numpy())
    close(grads["0.recurrent_weight"], ref.weight_hh_l0.grad.numpy())
    close(grads["0.bias"], ref.bias_ih_l0.grad.numpy())
    close(grads["0.recurrent_bias"], ref.bias_hh_l0.grad.numpy())


@pytest.mark.oracle
def test_bigdl_gru_matches_its_formula_in_torch():
    """BigDL's GRU resets h before the recurrent product: n = tanh(W_n x + b_n + U_n (r h))."""
    cell = GRU(D, H).double()
    x, g = normal((N, T, D), 16), normal((N, T, H), 17)
    y, gx, grads = run(Recurrent().add(cell), x, g)

    def gru(x, w, u, b):
        h, outs = torch.zeros(N, H, dtype=x.dtype), []
        for t in range(T):
            a = x[:, t] @ w.T + b
            r = torch.sigmoid(a[:, :H] + h @ u[:H].T)
            z = torch.sigmoid(a[:, H:2 * H] + h @ u[H:2 * H].T)
            n = torch.tanh(a[:, 2 * H:] + (r * h) @ u[2 * H:].T)
            h = (1 - z) * n + z * h
            outs.append(h)
        return torch.stack(outs, 1)

    ty, tgx, tg = torch_run(gru, x, g, [cell.weight, cell.recurrent_weight, cell.bias])
    close(ty, y)
    close(tgx, gx)
    for ours, theirs in zip(["0.weight", "0.recurrent_weight", "0.bias"], tg):
        close(grads[ours], theirs)


@pytest.mark.oracle
def test_lstm_peephole_matches_its_formula_in_torch():
    cell = LSTMPeephole(D, H).double()
    x, g = normal((N, T, D), 18), normal((N, T, H), 19)
    y, gx, grads = run(Recurrent().add(cell), x, g)

    def peephole(x, w, u, b, p):
        h = c = torch.zeros(N, H, dtype=x.dtype)
        outs = []
        for t in range(T):
            z = x[:, t] @ w.T + b + h @ u.T
            i = torch.sigmoid(z[:, :H] + p[0] * c)
            f = torch.sigmoid(z[:, H:2 * H] + p[1] * c)
            c = f * c + i * torch.tanh(z[:, 2 * H:3 * H])
            o = torch.sigmoid(z[:, 3 * H:] + p[2] * c)
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)

    ty, tgx, tg = torch_run(peephole, x, g,
                            [cell.weight, cell.recurrent_weight, cell.bias, cell.peephole])
    close(ty, y)
    close(tgx, gx)
    for ours, theirs in zip(["0.weight", "0.recurrent_weight", "0.bias", "0.peephole"], tg):
        close(grads[ours], theirs)


@pytest.mark.oracle
def test_conv_lstm_peephole_matches_torch_convolutions():
    cell = ConvLSTMPeephole(2, 3, 3, 3).double()
    x, g = normal((2, 3, 2, 5, 5), 20), normal((2, 3, 3, 5, 5), 21)
    y, gx, grads = run(Recurrent().add(cell), x, g)
    O = 3

    def conv_lstm(x, w, u, b, p):
        h = c = torch.zeros(2, O, 5, 5, dtype=x.dtype)
        pp = p[:, :, None, None]
        outs = []
        for t in range(3):
            z = F.conv2d(x[:, t], w, b, padding=1) + F.conv2d(h, u, padding=1)
            i = torch.sigmoid(z[:, :O] + pp[0] * c)
            f = torch.sigmoid(z[:, O:2 * O] + pp[1] * c)
            c = f * c + i * torch.tanh(z[:, 2 * O:3 * O])
            o = torch.sigmoid(z[:, 3 * O:] + pp[2] * c)
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)

    ty, tgx, tg = torch_run(conv_lstm, x, g,
                            [cell.weight, cell.recurrent_weight, cell.bias, cell.peephole])
    close(ty, y)
    close(tgx, gx)
    for ours, theirs in zip(["0.weight", "0.recurrent_weight", "0.bias", "0.peephole"], tg):
        close(grads[ours], theirs)


@pytest.mark.oracle
def test_birecurrent_concat_and_multirnncell_match_torch_lstm():
    x, g = normal((N, T, D), 22), normal((N, T, 2 * H), 23)
    bi = BiRecurrent(JoinTable(3)).add(LSTM(D, H)).double()
    y, gx, grads = run(bi, x, g)
    fwd, bwd = bi[0].cell, bi[1].cell
    ref = torch.nn.LSTM(D, H, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for sfx, cell in (("", fwd), ("_reverse", bwd)):
            getattr(ref, "weight_ih_l0" + sfx).copy_(t64(cell.weight))
            getattr(ref, "weight_hh_l0" + sfx).copy_(t64(cell.recurrent_weight))
            getattr(ref, "bias_ih_l0" + sfx).copy_(t64(cell.bias))
            getattr(ref, "bias_hh_l0" + sfx).zero_()
    tx = t64(x).requires_grad_()
    ty, _ = ref(tx)
    ty.backward(t64(g))
    close(ty.detach().numpy(), y)
    close(tx.grad.numpy(), gx)
    close(grads["0.0.weight"], ref.weight_ih_l0.grad.numpy())
    close(grads["1.0.recurrent_weight"], ref.weight_hh_l0_reverse.grad.numpy())

    stack = Recurrent().add(MultiRNNCell([LSTM(D, H), LSTM(H, H)])).double()
    g2 = normal((N, T, H), 24)
    y, gx, grads = run(stack, x, g2)
    ref = torch.nn.LSTM(D, H, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for k, cell in enumerate(stack.cell):
            getattr(ref, f"weight_ih_l{k}").copy_(t64(cell.weight))
            getattr(ref, f"weight_hh_l{k}").copy_(t64(cell.recurrent_weight))
            getattr(ref, f"bias_ih_l{k}").copy_(t64(cell.bias))
            getattr(ref, f"bias_hh_l{k}").zero_()
    tx = t64(x).requires_grad_()
    ty, _ = ref(tx)
    ty.backward(t64(g2))
    close(ty.detach().numpy(), y)
    close(tx.grad.numpy(), gx)
    close(grads["0.0.weight"], ref.weight_ih_l0.grad.numpy())
    close(grads["0.1.recurrent_weight"], ref.weight_hh_l1.grad.numpy())


@pytest.mark.oracle
def test_time_distributed_matches_torch_linear():
    layer = TimeDistributed(Linear(D, 2)).double()
    x, g = normal((N, T, D), 25), normal((N, T, 2), 26)
    y, gx, grads = run(layer, x, g)
    lin = layer[0]
    ty, tgx, tg = torch_run(lambda x, w, b: F.linear(x, w, b), x, g, [lin.weight, lin.bias])
    close(ty, y)
    close(tgx, gx)
    close(grads["0.weight"], tg[0])
    close(grads["0.bias"], tg[1])


@pytest.mark.oracle
def test_recurrent_decoder_feeds_outputs_back():
    cell = LSTM(D, D).double()
    dec = RecurrentDecoder(4).add(cell)
    x = normal((N, D), 27)
    y = dec.forward(x)
    ref = torch.nn.LSTM(D, D, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(t64(cell.weight))
        ref.weight_hh_l0.copy_(t64(cell.recurrent_weight))
        ref.bias_ih_l0.copy_(t64(cell.bias))
        ref.bias_hh_l0.zero_()
    inp, state, outs = t64(x)[:, None], None, []
    for _ in range(4):
        out, state = ref(inp, state)
        outs.append(out[:, 0])
        inp = out
    close(torch.stack(outs, 1).detach().numpy(), y)


# ---------------------------------------------------------------------- masking and state
def test_padding_leaves_state_unchanged_and_gets_no_gradient():
    x, g = normal((N, T, D), 28), normal((N, T, H), 29)
    lengths = np.array([4, 2, 3])
    layer = Recurrent().add(LSTM(D, H)).double()
    y, gx, _ = run(layer, [x, lengths], g)
    h_last, c_last = layer.get_hidden_state()
    for n, length in enumerate(lengths):
        alone = Recurrent().add(layer.cell)
        ya, gxa, _ = run(alone, x[n:n + 1, :length], g[n:n + 1, :length])
        close(y[n, :length], ya[0])
        close(gx[n, :length], gxa[0])
        assert np.all(y[n, length:] == 0) and np.all(gx[n, length:] == 0)
        close(h_last[n], alone.get_hidden_state()[0][0])
        close(c_last[n], alone.get_hidden_state()[1][0])
    padded = x.copy()
    padded[1, 2:] = 1e3  # what sits in the padding does not matter
    y2, gx2, _ = run(layer, [padded, lengths], g)
    close(y2, y)
    close(gx2, gx)
    mask = np.arange(T)[None, :] < lengths[:, None]
    y3, gx3, _ = run(layer, [x, mask], g)
    close(y3, y)
    zeroed = np.where(mask[:, :, None], x, 0)
    y4, gx4, _ = run(Recurrent(mask_zero=True).add(layer.cell), zeroed, g)
    close(y4, y)
    close(gx4, gx)


def test_birecurrent_reads_each_sequence_backwards_from_its_last_step():
    x = normal((2, T, D), 30)
    lengths = np.array([T, 2])
    bi = BiRecurrent(JoinTable(3)).add(GRU(D, H)).double()
    y = np.array(bi.forward([x, lengths]), copy=True)
    short = bi.forward(np.ascontiguousarray(x[1:, :2]))
    close(y[1, :2], short[0])
    assert np.all(y[1, 2:] == 0)


def test_hidden_state_can_be_carried_between_calls():
    layer = Recurrent().add(LSTM(D, H)).double()
    x = normal((N, 2 * T, D), 31)
    whole = np.array(layer.forward(x), copy=True)
    first = np.array(layer.forward(np.ascontiguousarray(x[:, :T])), copy=True)
    layer.set_hidden_state(layer.get_hidden_state())
    second = layer.forward(np.ascontiguousarray(x[:, T:]))
    close(np.concatenate([first, second], axis=1), whole)
    layer.set_hidden_state(None)
    close(layer.forward(np.ascontiguousarray(x[:, :T])), first)
    with pytest.raises(LayerError, match="hidden state"):
        layer.set_hidden_state([np.zeros((N + 1, H)), np.zeros((N + 1, H))]).forward(x)


def test_gradient_of_the_initial_state():
    layer = Recurrent().add(GRU(D, H)).double()
    x, g = normal((N, T, D), 32), normal((N, T, H), 33)
    h0 = normal((N, H), 34)
    layer.set_hidden_state(h0)
    layer.forward(x)
    layer.backward(x, g)
    analytic = np.array(layer.grad_hidden_state, copy=True)
    eps, numeric = 1e-6, np.zeros_like(h0)
    for i in np.ndindex(h0.shape):
        for sign in (1, -1):
            h = h0.copy()
            h[i] += sign * eps
            numeric[i] += sign * np.sum(layer.set_hidden_state(h).forward(x) * g) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------- training features
def test_dropout_only_while_training_and_regularizers_once_per_sequence():
    x = normal((N, T, D), 35).astype(np.float32)
    plain = Recurrent().add(LSTM(D, H))
    dropped = Recurrent().add(LSTM(D, H, 0.5))
    dropped.set_weights(plain.get_weights())
    # in evaluate mode a cell with dropout runs the same code as one without: the same bits
    dropped.evaluate()
    plain.evaluate()
    np.testing.assert_array_equal(dropped.forward(x), plain.forward(x))
    # training-mode forward (oneDNN's forward_training primitive on the native backend, which
    # keeps a workspace) rounds differently from the inference one, within float32 rounding
    plain.training()
    assert_close_f32(dropped.forward(x), plain.forward(x), reduction_length=D + H)
    dropped.training()
    y = dropped.forward(x)
    assert not np.allclose(y, plain.forward(x))
    assert np.isfinite(dropped.backward(x, np.ones_like(y))).all()

    g = normal((N, T, H), 36)
    reg = Recurrent().add(GRU(D, H, 0.0, None, None, L2Regularizer(0.1), L2Regularizer(0.2),
                              L2Regularizer(0.3))).double()
    free = Recurrent().add(GRU(D, H)).double()
    free.set_weights(reg.get_weights())
    _, _, gr = run(reg, x.astype(np.float64), g)
    _, _, gf = run(free, x.astype(np.float64), g)
    cell = reg.cell
    close(gr["0.weight"], gf["0.weight"] + 0.1 * cell.weight)
    close(gr["0.recurrent_weight"], gf["0.recurrent_weight"] + 0.2 * cell.recurrent_weight)
    close(gr["0.bias"], gf["0.bias"] + 0.3 * cell.bias)


def test_frozen_cell_gets_no_gradient():
    model = Sequential().add(Recurrent().add(LSTM(D, H).set_name("lstm"))).add(
        TimeDistributed(Linear(H, 2)))
    model.freeze("lstm")
    x = normal((N, T, D), 37).astype(np.float32)
    y = model.forward(x)
    model.backward(x, np.ones_like(y))
    assert not model[0].cell.grad_weight.any()
    w, _ = model.get_parameters()
    assert w.size == 2 * H + 2


# ---------------------------------------------------------------------- configs and errors
@pytest.mark.parametrize("build", [
    lambda: Recurrent(mask_zero=True).add(LSTM(D, H, 0.1, "relu", "hard_sigmoid",
                                                L2Regularizer(0.1)).set_name("enc")),
    lambda: Recurrent().add(MultiRNNCell([GRU(D, 4, reset_after=True), RnnCell(4, H, "relu")])),
    lambda: BiRecurrent(JoinTable(3)).add(LSTMPeephole(D, H)),
    lambda: BiRecurrent(CAddTable()).add(GRU(D, H).set_name("gru")),
    lambda: Sequential().add(Recurrent().add(RnnCell(D, H))).add(TimeDistributed(Linear(H, 2))),
], ids=["lstm", "multi", "bi-concat", "bi-add", "seq"])
def test_config_and_file_round_trip(build, tmp_path):
    model = build().evaluate()
    x = normal((N, T, D), 38).astype(np.float32)
    path = str(tmp_path / "rnn.bigdl")
    io.save_model(model, path)
    loaded = io.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_config_round_trip_conv_lstm_and_decoder(tmp_path):
    for model, x in ((Recurrent().add(ConvLSTMPeephole(2, 3, 3, 1, 1, -1)),
                      normal((2, 2, 2, 4, 4), 39)),
                     (RecurrentDecoder(3).add(GRU(D, D)), normal((N, D), 40))):
        path = str(tmp_path / "m.bigdl")
        io.save_model(model, path, over_write=True)
        loaded = io.load_model(path)
        assert loaded.get_config() == model.get_config()
        x = x.astype(np.float32)
        np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_bad_shapes_name_the_layer():
    rnn = Recurrent().add(LSTM(4, 8)).set_name("encoder")
    with pytest.raises(LayerError, match=r"Recurrent\[encoder\]: expected input \(N, T, 4\).*"
                                         r"got \(2, 3, 5\)"):
        rnn.forward(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(LayerError, match=r"Recurrent: expected input \(N, T, 4\).*got \(2, 4\)"):
        Recurrent().add(LSTM(4, 8)).forward(np.zeros((2, 4), np.float32))
    with pytest.raises(LayerError, match=r"got \[\(2, 3, 4\), \(5\)\]"):
        Recurrent().add(GRU(4, 8)).forward([np.zeros((2, 3, 4)), np.ones(5)])
    with pytest.raises(LayerError, match=r"ConvLSTM.*expected input \(N, T, 2, H, W\)"):
        Recurrent().add(ConvLSTMPeephole(2, 3, 3, 3)).set_name("ConvLSTM").forward(
            np.zeros((1, 2, 3, 4, 4)))
    with pytest.raises(LayerError, match=r"TimeDistributed: expected input \(N, T, \.\.\.\)"):
        TimeDistributed(Linear(4, 2)).forward(np.zeros((2, 4)))
    with pytest.raises(LayerError, match=r"RecurrentDecoder\[dec\]: expected input \(N, 4\)"):
        RecurrentDecoder(3).add(LSTM(4, 4)).set_name("dec").forward(np.zeros((2, 3)))
    with pytest.raises(LayerError, match=r"LSTM\[cell\]: expected input \[\(N, 4\), state"):
        LSTM(4, 8).set_name("cell").forward([np.zeros((2, 4)), np.zeros((2, 8))])
    with pytest.raises(LayerError, match="add a cell first"):
        Recurrent().forward(np.zeros((2, 3, 4)))


def test_bad_arguments_quote_the_value():
    with pytest.raises(ValueError, match="LSTM: hidden_size must be a positive int, got 0"):
        LSTM(4, 0)
    with pytest.raises(ValueError, match=r"GRU: p must be a number in \[0, 1\), got 1.5"):
        GRU(4, 4, 1.5)
    with pytest.raises(ValueError, match="RnnCell: activation must be one of .* got 'swish'"):
        RnnCell(4, 4, "swish")
    with pytest.raises(ValueError, match="RecurrentDecoder: the output of .* must fit its input"):
        RecurrentDecoder(3).add(LSTM(4, 8))
    with pytest.raises(ValueError, match="MultiRNNCell: .* cannot take the output"):
        MultiRNNCell([LSTM(4, 8), LSTM(6, 8)])
    with pytest.raises(TypeError, match="expects a cell"):
        Recurrent().add(Linear(4, 4))
    with pytest.raises(ValueError, match="ConvLSTMPeephole: padding must be .* got -2"):
        ConvLSTMPeephole(2, 3, 3, 3, 1, -2)


def test_pickled_models_leave_the_step_caches_behind():
    import pickle
    model = Sequential().add(Recurrent().add(LSTM(D, H))).add(TimeDistributed(Linear(H, 2)))
    small = len(pickle.dumps(model))
    x = normal((8, 50, D), 41).astype(np.float32)
    y = model.forward(x)
    model.backward(x, np.ones_like(y))
    shipped = pickle.dumps(model)
    assert len(shipped) < small + 1000  # the 50 cached steps stay home
    copy = pickle.loads(shipped)
    np.testing.assert_array_equal(copy.forward(x), model.forward(x))


# ---------------------------------------------------------------------- ConvLSTMPeephole3D
@pytest.mark.oracle
def test_conv_lstm_peephole_3d_matches_torch_conv3d():
    cell = ConvLSTMPeephole3D(2, 2, 3, 3).double()
    x, g = normal((2, 2, 2, 3, 3, 3), 20), normal((2, 2, 2, 3, 3, 3), 21)
    layer = Recurrent().add(cell)
    layer.zero_grad_parameters()
    y = layer.forward(x).copy()
    gx = layer.backward(x, g).copy()
    O = 2

    def conv_lstm(x, w, u, b, p):
        h = c = torch.zeros(2, O, 3, 3, 3, dtype=x.dtype)
        pp = p[:, :, None, None, None]
        outs = []
        for t in range(2):
            z = F.conv3d(x[:, t], w, b, padding=1) + F.conv3d(h, u, padding=1)
            i = torch.sigmoid(z[:, :O] + pp[0] * c)
            f = torch.sigmoid(z[:, O:2 * O] + pp[1] * c)
            c = f * c + i * torch.tanh(z[:, 2 * O:3 * O])
            o = torch.sigmoid(z[:, 3 * O:] + pp[2] * c)
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)

    params = [cell.weight, cell.recurrent_weight, cell.bias, cell.peephole]
    tx = t64(x).requires_grad_()
    tp = [t64(p).requires_grad_() for p in params]
    ty = conv_lstm(tx, *tp)
    ty.backward(t64(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    for n, t in zip(["weight", "recurrent_weight", "bias", "peephole"], tp):
        np.testing.assert_allclose(getattr(cell, "grad_" + n), t.grad.numpy(), rtol=1e-9,
                                   atol=1e-10)


def test_conv_lstm_peephole_3d_gradients_strided():
    model = Recurrent().add(ConvLSTMPeephole3D(1, 2, 2, 1, stride=2, padding=0,
                                               with_peephole=False)).double()
    x = normal((1, 2, 1, 3, 4, 4), 22)
    check_module_gradients(model, x)
    assert model.output.shape == (1, 2, 2, 1, 2, 2)


def test_conv_lstm_peephole_3d_errors_and_config():
    with pytest.raises(LayerError, match=r"Recurrent\[rec\]: expected input "
                                         r"\(N, T, 2, D, H, W\).* got \(1, 2, 3, 4, 4, 4\)"):
        Recurrent().set_name("rec").add(ConvLSTMPeephole3D(2, 3, 3, 3)).forward(
            np.ones((1, 2, 3, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="ConvLSTMPeephole3D: padding must be .* got -2"):
        ConvLSTMPeephole3D(2, 3, 3, 3, padding=-2)
    config_round_trip(ConvLSTMPeephole3D(1, 2, 3, 1))
    config_round_trip(Recurrent().add(ConvLSTMPeephole3D(1, 2, 3, 1)),
                      f32((1, 2, 1, 3, 3, 3), seed=3))

