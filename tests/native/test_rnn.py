"""The native (oneDNN) LSTM / GRU over a whole sequence: parity with the numpy cells and with
PyTorch, the fallbacks to the numpy step, shape checks before native code, and a crash fuzz of
the entry points.

Property-based over random sizes (hypothesis).  No timing here: speed is in
benchmarks/bench_native.py.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from oracle import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import _close, _never_called, NATIVE_SETTINGS as SETTINGS
from workbench.nn import GRU, LSTM, BiRecurrent, L2Regularizer, LayerError, LSTMPeephole, \
    MultiRNNCell, Recurrent, backend, random

# count_native is shared by the examples on purpose: the test compares call counts before/after
FAST = settings(SETTINGS, max_examples=30, suppress_health_check=list(
    SETTINGS.suppress_health_check) + [HealthCheck.function_scoped_fixture])
ENTRY_POINTS = ("rnn_forward", "rnn_backward", "rnn_workspace_size")


@pytest.fixture(autouse=True)
def _native_backend():
    previous = backend.set_backend("native")
    yield
    backend.set_backend(previous)


@pytest.fixture
def count_native(monkeypatch):
    """Counts the calls of the native rnn entry points (still running them)."""
    native = backend.native()
    assert native is not None, backend.native_error()
    calls = {"rnn_forward": 0, "rnn_backward": 0}
    for name in calls:
        real = getattr(native, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(native, name, wrapper)
    return calls


def _cell(kind, d, h):
    if kind == "lstm":
        return LSTM(d, h)
    return GRU(d, h, reset_after=(kind == "gru_ra"))


def _layer(kinds, d, hs):
    cells = [_cell(k, dd, h) for k, dd, h in zip(kinds, [d] + hs[:-1], hs)]
    return Recurrent().add(cells[0] if len(cells) == 1 else MultiRNNCell(cells))


def _states(kinds, n, hs, rng):
    per = [[rng.standard_normal((n, h)).astype(np.float32)
            for _ in range(2 if k == "lstm" else 1)] for k, h in zip(kinds, hs)]
    return [s if k == "lstm" else s[0] for k, s in zip(kinds, per)]


def _flat_leaves(tree):
    if isinstance(tree, (list, tuple)):
        return [a for t in tree for a in _flat_leaves(t)]
    return [np.asarray(tree)]


def _run(layer, x, g, mode):
    """Output, grad_input, flat gradient, final state, initial-state gradient on one backend."""
    backend.set_backend(mode)
    _, grads = layer.get_parameters()
    grads.fill(0)
    y = layer.forward(x).copy()
    gx = layer.backward(x, g).copy()
    if not isinstance(layer, Recurrent):
        return [y, gx, grads.copy()]
    return [y, gx, grads.copy()] + [a.copy() for a in _flat_leaves(layer.get_hidden_state())] \
        + [a.copy() for a in _flat_leaves(layer.grad_hidden_state)]


# ---------------------------------------------------------------------- PyTorch oracle
def _torch_vanilla_gru(x, h, cell):
    """oneDNN's / BigDL's GRU (reset gate before U_n) with torch autograd, step by step."""
    H = cell.hidden_size
    W, U, b = (torch.from_numpy(getattr(cell, n).copy()).requires_grad_()
               for n in ("weight", "recurrent_weight", "bias"))
    pre = x @ W.T + b
    outs = []
    for k in range(x.shape[1]):
        a = pre[:, k, :2 * H] + h @ U[:2 * H].T
        r, z = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:])
        n = torch.tanh(pre[:, k, 2 * H:] + (r * h) @ U[2 * H:].T)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, 1), [h], [W, U, b]


def _torch_forward(layer, kinds, x, init):
    cells = list(layer.cell._children) if len(kinds) > 1 else [layer.cell]
    leaves, params, finals = [], [], []
    out = torch.from_numpy(x.copy()).requires_grad_()
    xin = out
    for kind, cell, s in zip(kinds, cells, init):
        s = [s] if kind != "lstm" else s
        hs = [torch.from_numpy(np.ascontiguousarray(a).copy()).requires_grad_() for a in s]
        leaves += hs
        if kind == "gru":
            out, fin, ps = _torch_vanilla_gru(out, hs[0], cell)
            params += ps
            finals += fin
            continue
        mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(
            cell.input_size, cell.hidden_size, batch_first=True)
        with torch.no_grad():
            mod.weight_ih_l0.copy_(torch.from_numpy(cell.weight))
            mod.weight_hh_l0.copy_(torch.from_numpy(cell.recurrent_weight))
            mod.bias_ih_l0.copy_(torch.from_numpy(cell.bias))
            mod.bias_hh_l0.copy_(torch.from_numpy(cell.recurrent_bias) if kind == "gru_ra"
                                 else torch.zeros(mod.bias_hh_l0.shape))
        if kind == "lstm":
            out, (hT, cT) = mod(out, (hs[0][None], hs[1][None]))
            finals += [hT[0], cT[0]]
            params += [mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0]
        else:
            out, hT = mod(out, hs[0][None])
            finals += [hT[0]]
            params += [mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0, mod.bias_hh_l0]
    return xin, out, finals, leaves, params


# ---------------------------------------------------------------------- parity
@st.composite
def rnn_cases(draw):
    layers = draw(st.integers(1, 2))
    kinds = [draw(st.sampled_from(["lstm", "gru", "gru_ra"])) for _ in range(layers)]
    hs = [draw(st.integers(1, 9)) for _ in range(layers)]
    return (kinds, draw(st.integers(1, 4)), draw(st.integers(1, 7)), draw(st.integers(1, 8)),
            hs, draw(st.booleans()), draw(st.booleans()))


@pytest.mark.oracle
@FAST
@given(rnn_cases(), st.integers(0, 2**31 - 1))
def test_rnn_native_equals_numpy_and_torch(count_native, case, seed):
    kinds, n, t, d, hs, with_state, training = case
    random.set_seed(seed % 1000)
    layer = _layer(kinds, d, hs)
    layer.training() if training else layer.evaluate()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, d)).astype(np.float32)
    g = rng.standard_normal((n, t, hs[-1])).astype(np.float32)
    init = _states(kinds, n, hs, rng)
    if with_state:
        layer.set_hidden_state(init if len(kinds) > 1 else init[0])
    else:
        init = [[np.zeros((n, h), np.float32)] * 2 if k == "lstm" else np.zeros((n, h), np.float32)
                for k, h in zip(kinds, hs)]
    ref = _run(layer, x, g, "numpy")
    before = dict(count_native)
    got = _run(layer, x, g, "native")
    # in evaluation mode the forward is the inference primitive: backward redoes it for training
    assert count_native["rnn_forward"] - before["rnn_forward"] == len(kinds) * (
        1 if training else 2)
    assert count_native["rnn_backward"] - before["rnn_backward"] == len(kinds)
    names = ["output", "grad_input", "flat gradient"] + ["final state"] * (len(got) - 3)
    for name, a, b in zip(names, ref, got):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        _close(b, a, f"native vs numpy: {name} {case}", scale=np.abs(a).max(initial=0))

    xin, out, finals, leaves, params = _torch_forward(layer, kinds, x, init)
    torch.autograd.backward([out], [torch.from_numpy(g)])
    y, gx = got[0], got[1]
    _close(y, out.detach().numpy(), f"native vs torch: output {case}")
    _close(gx, xin.grad.numpy(), f"native vs torch: grad_input {case}",
           scale=np.abs(gx).max(initial=0))
    n_final = len(finals)
    for k, (a, b) in enumerate(zip(got[3:3 + n_final], finals)):
        _close(a, b.detach().numpy(), f"native vs torch: final state {k} {case}")
    for k, (a, b) in enumerate(zip(got[3 + n_final:], leaves)):
        _close(a, b.grad.numpy(), f"native vs torch: initial state grad {k} {case}",
               scale=np.abs(a).max(initial=0))
    # the flat gradient, cell by cell, in our parameter order
    cells = list(layer.cell._children) if len(kinds) > 1 else [layer.cell]
    expected = []
    it = iter(params)
    for kind, _cell in zip(kinds, cells):
        ps = [next(it) for _ in range(4 if kind == "gru_ra" else 3)]
        expected += [p.grad.numpy().ravel() for p in ps]
    expected = np.concatenate(expected)
    _close(got[2], expected, f"native vs torch: flat gradient {case}",
           scale=np.abs(expected).max(initial=0))


def test_char_lm_shapes_and_parameters_unchanged(count_native):
    """The LM's stack (MultiRNNCell of LSTMs) runs natively and keeps the layer's contract:
    output shape, parameter views into the flat vector, gradients accumulated over calls."""
    random.set_seed(3)
    layer = _layer(["lstm", "lstm"], 5, [7, 7])
    weights, grads = layer.get_parameters()
    cell0 = layer.cell._children[0]
    assert np.shares_memory(cell0.weight, weights) and np.shares_memory(cell0.grad_weight, grads)
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    g = np.ones((3, 4, 7), np.float32)
    grads.fill(0)
    y = layer.forward(x)
    assert y.shape == (3, 4, 7) and y.dtype == np.float32
    layer.backward(x, g)
    once = grads.copy()
    layer.forward(x)
    layer.backward(x, g)
    _close(grads, 2 * once, "gradients accumulate", scale=np.abs(once).max())
    assert count_native == {"rnn_forward": 4, "rnn_backward": 4}
    # a frozen cell gets no gradient, the other one still does
    grads.fill(0)
    layer.cell._children[1].freeze()
    layer.forward(x)
    layer.backward(x, g)
    assert not layer.cell._children[1].grad_weight.any() and cell0.grad_weight.any()


def test_regularizer_and_bidirectional_match_numpy(count_native):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    for layer, hout in ((Recurrent().add(LSTM(3, 4, wRegularizer=L2Regularizer(0.1))), 4),
                        (BiRecurrent("concat").add(GRU(3, 4)), 8)):
        g = rng.standard_normal((2, 5, hout)).astype(np.float32)
        ref = _run(layer, x, g, "numpy")[:3]
        got = _run(layer, x, g, "native")[:3]
        for a, b in zip(ref, got):
            _close(b, a, repr(layer), scale=np.abs(a).max())
    assert count_native["rnn_backward"] == 3


def test_thread_count_changes_between_calls(count_native):
    """Primitives are cached per thread count: changing it between calls gives the same
    results (a primitive sized for 1 thread is never run on 2)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    g = rng.standard_normal((3, 6, 7)).astype(np.float32)
    layer = _layer(["lstm", "gru_ra"], 5, [6, 7])
    ref = _run(layer, x, g, "numpy")
    previous = backend.set_num_threads(1)
    try:
        for threads in (1, 2, 1):
            backend.set_num_threads(threads)
            got = _run(layer, x, g, "native")
            for a, b in zip(ref, got):
                _close(b, a, f"{threads} threads", scale=np.abs(a).max())
    finally:
        backend.set_num_threads(previous)
    assert count_native["rnn_backward"] == 6


# ---------------------------------------------------------------------- fallbacks
def _x():
    return np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("make", [
    lambda: Recurrent().add(LSTM(4, 5, p=0.5)),                         # dropout while training
    lambda: Recurrent().add(LSTM(4, 5, inner_activation="hard_sigmoid")),
    lambda: Recurrent().add(GRU(4, 5, activation="relu")),
    lambda: Recurrent().add(LSTMPeephole(4, 5)),
    lambda: Recurrent().add(MultiRNNCell([LSTM(4, 5), LSTMPeephole(5, 5)])),
    lambda: Recurrent().add(LSTM(4, 5)).double(),                       # float64
])
def test_cells_without_a_native_kernel_run_numpy(monkeypatch, make):
    for fn in ENTRY_POINTS:
        monkeypatch.setattr(backend.native(), fn, _never_called)
    layer = make()
    layer.training()
    y = layer.forward(_x())
    assert y.shape == (2, 3, 5)
    layer.backward(_x(), np.ones_like(y))


def test_padding_runs_numpy_and_full_masks_run_native(count_native):
    layer = Recurrent().add(LSTM(4, 5))
    x = _x()
    layer.forward([x, np.array([3, 2])])
    assert count_native["rnn_forward"] == 0
    layer.forward([x, np.array([3, 3])])
    assert count_native["rnn_forward"] == 1


@pytest.mark.parametrize("switch", ["backend", "kernel"])
def test_switches_select_the_numpy_step(monkeypatch, switch):
    for fn in ENTRY_POINTS:
        monkeypatch.setattr(backend.native(), fn, _never_called)
    if switch == "backend":
        backend.set_backend("numpy")
    else:
        previous = backend.set_kernel("rnn", False)
    try:
        layer = Recurrent().add(GRU(4, 5))
        y = layer.forward(_x())
        layer.backward(_x(), np.ones_like(y))
    finally:
        if switch == "kernel":
            backend.set_kernel("rnn", previous)


def test_numpy_backend_env_var_runs_numpy_step():
    code = ("import numpy as np; from workbench.nn import backend, Recurrent, LSTM\n"
            "nat = backend.native()\n"
            "def never(*a, **k): raise SystemExit('native called')\n"
            "nat.rnn_forward = never\n"
            "l = Recurrent().add(LSTM(3, 4)); y = l.forward(np.ones((2, 3, 3), np.float32))\n"
            "print(backend.get_backend(), y.shape)")
    env = dict(os.environ, WORKBENCH_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)  # bounds a hang only
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "numpy"


# ---------------------------------------------------------------------- bad shapes
@pytest.mark.parametrize("layer, x, expected", [
    (Recurrent().add(LSTM(4, 8)).set_name("lstm1"), np.zeros((2, 3, 5), np.float32),
     "(N, T, 4)"),
    (Recurrent().add(GRU(4, 8)).set_name("gru1"), np.zeros((2, 4), np.float32), "(N, T, 4)"),
    (Recurrent().add(MultiRNNCell([LSTM(4, 8), LSTM(8, 8)])).set_name("stack"),
     np.zeros((2, 3, 8), np.float32), "(N, T, 4)"),
])
def test_bad_shapes_fail_in_python_with_layer_name_and_shapes(monkeypatch, layer, x, expected):
    for fn in ENTRY_POINTS:
        monkeypatch.setattr(backend.native(), fn, _never_called)
    with pytest.raises(LayerError) as err:
        layer.forward(x)
    message = str(err.value)
    got = "(" + ", ".join(map(str, x.shape)) + ")"
    assert layer.label() in message and expected in message and got in message, message


def test_bad_state_and_grad_output_fail_in_python(monkeypatch):
    layer = Recurrent().add(LSTM(4, 8)).set_name("lstm1")
    x = np.zeros((2, 3, 4), np.float32)
    layer.set_hidden_state([np.zeros((2, 7), np.float32), np.zeros((2, 8), np.float32)])
    for fn in ENTRY_POINTS:
        monkeypatch.setattr(backend.native(), fn, _never_called)
    with pytest.raises(LayerError, match=r"lstm1.*\(2, 7\).*\(2, 8\)"):
        layer.forward(x)
    layer.set_hidden_state(None)
    monkeypatch.undo()
    layer.forward(x)
    monkeypatch.setattr(backend.native(), "rnn_backward", _never_called)
    with pytest.raises(LayerError, match=r"lstm1.*\(2, 3, 8\).*\(2, 3, 7\)"):
        layer.backward(x, np.zeros((2, 3, 7), np.float32))


# ---------------------------------------------------------------------- crash fuzz
FUZZ = r"""
import numpy as np, sys
from workbench.nn import backend
nat = backend.native()
rng = np.random.default_rng(int(sys.argv[1]))
calls = errors = 0
def arr(shape, dtype=np.float32):
    return np.zeros([max(0, int(s)) for s in shape], dtype)
def pick(v):
    # mostly arrays of the geometry's shapes (sometimes off by one), else junk
    r = rng.random()
    return v if r < 0.9 else [s + int(rng.integers(-1, 2)) for s in v] if r < 0.97 else [0]
for i in range(300):
    kind, t, n, d, h = (int(a) for a in rng.integers(-1, 5, size=5))
    kind = min(kind, 2)
    train = int(rng.integers(-1, 3)) if rng.random() < 0.2 else 1
    fields = [kind, t, n, d, h, train]
    if rng.random() < 0.05:
        fields = [kind, 2**40, 2**40, 2**40, 2**40, 1]
    if rng.random() < 0.05:
        fields = fields[:int(rng.integers(0, 6))]  # the rest at their defaults (0, False)
    geom = nat.RnnGeometry(**dict(zip(
        ("kind", "steps", "n", "input_size", "hidden_size", "train"), fields)))
    g = 4 if kind == 0 else 3
    gb = 4 if kind in (0, 2) else 3
    try:
        ws = arr([nat.rnn_workspace_size(geom)], np.uint8)
    except (ValueError, TypeError, MemoryError):
        ws = arr([int(rng.integers(0, 64))], np.uint8)
    c = (lambda s: arr(pick(s))) if kind == 0 or rng.random() < 0.2 else (lambda s: None)
    x, y = arr(pick([n, t, d])), arr(pick([n, t, h]))
    h0, hT, c0, cT = arr(pick([n, h])), arr(pick([n, h])), c([n, h]), c([n, h])
    w, u, b = arr(pick([g * h, d])), arr(pick([g * h, h])), arr(pick([gb * h]))
    junk = [None, 3, arr([n, t, d], np.float64), arr([n, h])[:, ::2]]
    wsa = ws if rng.random() < 0.8 else junk[int(rng.integers(0, 4))]
    for fn, args in (
        (nat.rnn_forward, (x, h0, c0, w, u, b, y, hT, cT, wsa, geom)),
        (nat.rnn_forward, (junk[int(rng.integers(0, 4))], h0, c0, w, u, b, y, hT, cT, wsa,
                           geom)),
        (nat.rnn_backward, (x, h0, c0, w, u, b, y, hT, cT, wsa, arr(pick([n, t, h])),
                            arr(pick([n, t, d])), arr(pick([n, h])), c([n, h]),
                            arr(pick([g * h, d])), arr(pick([g * h, h])), arr(pick([gb * h])),
                            geom)),
    ):
        calls += 1
        try:
            fn(*args)
        except (ValueError, TypeError, MemoryError):
            errors += 1
print(calls, errors)
"""


def test_native_rnn_entry_points_fuzz_raise_never_crash():
    """Random and degenerate geometries and arrays straight into the native functions, in a
    child process so that a crash is reported instead of killing the test run."""
    for seed in (1, 2):
        done = subprocess.run([sys.executable, "-c", FUZZ, str(seed)], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        calls, errors = map(int, done.stdout.split())
        assert calls == 900 and 0 < errors < calls


# ---------------------------------------------------------------------- the LM's criterion
@pytest.mark.oracle
@pytest.mark.parametrize("weighted, inner_average, average", [
    (False, True, True), (False, True, False), (False, False, True), (True, False, False),
    (True, True, True)])  # the last: weighted means per step, computed step by step
def test_time_distributed_cross_entropy_matches_torch(weighted, inner_average, average):
    """TimeDistributedCriterion(CrossEntropyCriterion()) (the LM's loss) runs the class criterion
    over all steps at once where that equals the per-step sum."""
    from workbench.nn import CrossEntropyCriterion, TimeDistributedCriterion
    rng = np.random.default_rng(5)
    x = (3 * rng.standard_normal((4, 6, 9))).astype(np.float32)
    y = rng.integers(0, 9, (4, 6))
    w = rng.random(9).astype(np.float32) + 0.5 if weighted else None
    crit = TimeDistributedCriterion(CrossEntropyCriterion(w, inner_average), average)
    loss = crit.forward(x, y)
    grad = crit.backward(x, y)
    tx = torch.from_numpy(x).requires_grad_()
    tw = None if w is None else torch.from_numpy(w)
    steps = [torch.nn.functional.cross_entropy(tx[:, k], torch.from_numpy(y[:, k]), tw,
                                               reduction="mean" if inner_average else "sum")
             for k in range(6)]
    ref = sum(steps) / (6 if average else 1)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    _close(grad, tx.grad.numpy(), "grad", scale=np.abs(grad).max())
