"""The whole-sequence native path of ``Recurrent``: oneDNN's LSTM / GRU primitives
(``workbench._native.rnn_forward`` / ``rnn_backward``, kernels_native/rnn.cpp).

Used by ``Recurrent.run`` / ``run_backward`` when the native backend is on, the ``"rnn"`` kernel
is enabled, the input is float32 and the cell is a plain ``LSTM`` or ``GRU`` (default
activations, no dropout while training) or a ``MultiRNNCell`` of those, and no step is padding.
Anything else runs the numpy cell step by step (the reference).

Mapping to oneDNN: one primitive per cell over the whole sequence (the layers of a
``MultiRNNCell`` run one after the other, the output of one the input of the next).  The LSTM's
parameters are used as they are (gates i, f, g, o in both; ``weight (4H, D)`` is oneDNN's
``ldgoi``).  ``GRU`` (reset gate before ``U_n``, BigDL's) is oneDNN's ``vanilla_gru`` and
``GRU(reset_after=True)`` (torch's) its ``lbr_gru``; oneDNN orders the gates update, reset, new
where ours are reset, update, new, so the GRU's weights are permuted on the way in and the
gradients on the way out; ``lbr_gru``'s bias is ``[b_z + b'_z, b_r + b'_r, b_n, b'_n]``.
"""
from __future__ import annotations

import numpy as np

from .. import backend

__all__ = ["plan", "forward", "backward"]

LSTM_KIND, GRU_KIND, LBR_GRU_KIND = 0, 1, 2


def _kind(cell):
    from .rnn import GRU, LSTM
    if type(cell) is LSTM:
        kind = LSTM_KIND
    elif type(cell) is GRU:
        kind = LBR_GRU_KIND if cell.reset_after else GRU_KIND
    else:
        return None
    if cell.activation != "tanh" or cell.inner_activation != "sigmoid":
        return None
    if cell.train and cell.p > 0:
        return None  # dropout masks: the numpy step
    if any(getattr(cell, name).dtype != np.float32 for name in cell._param_names):
        return None
    return kind


def plan(cell, x, mask):
    """``(native module, [(cell, kind), ...])`` when the sequence can run natively, else None."""
    from .rnn import MultiRNNCell
    if x.size == 0 or (mask is not None and not mask.all()):
        return None
    native = backend.use_native(x.dtype, "rnn")
    if native is None:
        return None
    cells = list(cell._children) if type(cell) is MultiRNNCell else [cell]
    kinds = [_kind(c) for c in cells]
    if any(k is None for k in kinds):
        return None
    return native, list(zip(cells, kinds))


def _swap(a, h):
    """Gates (reset, update, new) <-> (update, reset, new) along axis 0 (its own inverse)."""
    return np.concatenate([a[h:2 * h], a[:h], a[2 * h:]])


def _params(cell, kind):
    """Weight, recurrent weight and bias in oneDNN's gate order (C-contiguous float32)."""
    if kind == LSTM_KIND:
        return tuple(np.ascontiguousarray(a) for a in (cell.weight, cell.recurrent_weight,
                                                        cell.bias))
    h = cell.hidden_size
    wl, wi = _swap(cell.weight, h), _swap(cell.recurrent_weight, h)
    if kind == GRU_KIND:
        return wl, wi, _swap(cell.bias, h)
    b, rb = cell.bias, cell.recurrent_bias
    return wl, wi, np.concatenate([b[h:2 * h] + rb[h:2 * h], b[:h] + rb[:h], b[2 * h:],
                                   rb[2 * h:]])


def _aligned_bytes(owner, key, size, alignment=64):
    """A uint8 scratch buffer of ``owner`` (kept between calls) of ``size`` bytes starting at a
    multiple of ``alignment`` (oneDNN's preferred alignment for its workspace)."""
    raw = owner._buffer(key, (size + alignment,), np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + size]


def _geometry(native, kind, x, cell, train):
    n, t, d = x.shape
    return native.RnnGeometry(kind=kind, steps=t, n=n, input_size=d,
                              hidden_size=cell.hidden_size, train=train)


def _run_layer(native, owner, k, cell, kind, x, states, train, out=None):
    """Cell ``k`` of ``owner`` (the Recurrent layer, which keeps the scratch buffers) over
    ``x (N, T, D)`` from ``states`` ([h] or [h, c]); returns its context."""
    n, t, _ = x.shape
    h = cell.hidden_size
    geom = _geometry(native, kind, x, cell, train)
    wl, wi, b = _params(cell, kind)
    h0 = np.ascontiguousarray(states[0], dtype=np.float32)
    c0 = np.ascontiguousarray(states[1], dtype=np.float32) if kind == LSTM_KIND else None
    y = owner._buffer(f"_rnn_out{k}", (n, t, h), np.float32) if out is None else out
    h_last = np.empty((n, h), np.float32)
    c_last = np.empty((n, h), np.float32) if kind == LSTM_KIND else None
    ws = _aligned_bytes(owner, f"_rnn_ws{k}", native.rnn_workspace_size(geom)) \
        if train else None
    native.rnn_forward(x, h0, c0, wl, wi, b, y, h_last, c_last, ws, geom)
    return {"cell": cell, "kind": kind, "x": x, "h0": h0, "c0": c0, "params": (wl, wi, b),
            "y": y, "h_last": h_last, "c_last": c_last, "ws": ws, "geom": geom}


def _states_of(ctx):
    return [ctx["h_last"]] if ctx["c_last"] is None else [ctx["h_last"], ctx["c_last"]]


def forward(layer, native, cells, x, states, out):
    """Run the cells over ``x`` (C-contiguous float32) into ``out``; returns
    ``(context for backward, final states as the cell keeps them)``."""
    multi = len(cells) > 1 or type(layer.cell) is not type(cells[0][0])
    per_cell = states if multi else [states]
    train = bool(layer.train)
    ctxs = []
    for k, ((cell, kind), s) in enumerate(zip(cells, per_cell)):
        last = k == len(cells) - 1
        ctx = _run_layer(native, layer, k, cell, kind, x, s, train, out if last else None)
        ctxs.append(ctx)
        x = ctx["y"]
    final = [_states_of(c) for c in ctxs]
    return ("native", native, ctxs, multi, train), (final if multi else final[0])


def _accumulate(cell, kind, gwl, gwi, gb):
    if cell._frozen:
        return
    h = cell.hidden_size
    if kind == LSTM_KIND:
        if gwl is not cell.grad_weight:
            cell.grad_weight += gwl
            cell.grad_recurrent_weight += gwi
            cell.grad_bias += gb
        return
    cell.grad_weight += _swap(gwl, h)
    cell.grad_recurrent_weight += _swap(gwi, h)
    if kind == GRU_KIND:
        cell.grad_bias += _swap(gb, h)
    else:
        cell.grad_bias += np.concatenate([gb[h:2 * h], gb[:h], gb[2 * h:3 * h]])
        cell.grad_recurrent_bias += np.concatenate([gb[h:2 * h], gb[:h], gb[3 * h:]])


def backward(layer, context, grad_output):
    """Back-propagation through the whole sequence; returns ``(grad_input, grad of the initial
    states as the cell keeps them)``."""
    _, native, ctxs, multi, train = context
    if not train:
        # the forward ran the inference primitive (no workspace): redo it in training mode
        redone = []
        for k, c in enumerate(ctxs):
            redone.append(_run_layer(native, layer, k, c["cell"], c["kind"], c["x"],
                                     [c["h0"]] if c["c0"] is None else [c["h0"], c["c0"]],
                                     True, c["y"]))
        ctxs = redone
    g = np.ascontiguousarray(grad_output, dtype=np.float32)
    grad_states = [None] * len(ctxs)
    for k in range(len(ctxs) - 1, -1, -1):
        c = ctxs[k]
        cell, kind = c["cell"], c["kind"]
        n, t, d = c["x"].shape
        lstm = kind == LSTM_KIND
        gx = np.empty((n, t, d), np.float32)
        gh0 = np.empty_like(c["h0"])
        gc0 = np.empty_like(c["c0"]) if lstm else None
        grads = (cell.grad_weight, cell.grad_recurrent_weight, cell.grad_bias)
        if lstm and not cell._frozen and all(a.flags.c_contiguous for a in grads):
            gwl, gwi, gb = grads  # the kernel accumulates into them
        else:
            gwl, gwi, gb = (np.zeros(p.shape, np.float32) for p in c["params"])
        wl, wi, b = c["params"]
        native.rnn_backward(c["x"], c["h0"], c["c0"], wl, wi, b, c["y"], c["h_last"],
                            c["c_last"], c["ws"], g, gx, gh0, gc0, gwl, gwi, gb, c["geom"])
        _accumulate(cell, kind, gwl, gwi, gb)
        grad_states[k] = [gh0, gc0] if lstm else [gh0]
        g = gx
    return g, (grad_states if multi else grad_states[0])
