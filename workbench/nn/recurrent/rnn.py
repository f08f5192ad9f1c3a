"""Recurrent layers (BigDL ``Recurrent`` family).

A *cell* computes one time step: RnnCell, LSTM, LSTMPeephole, GRU, MultiRNNCell (and
``ConvLSTMPeephole`` in ``conv_lstm.py``).  Containers run a cell over a sequence:
``Recurrent().add(LSTM(input_size, hidden_size))`` maps ``(N, T, D)`` to ``(N, T, H)``,
``BiRecurrent`` runs a second copy backwards in time and merges the two, ``RecurrentDecoder``
feeds each output back as the next input.  ``TimeDistributed`` applies any layer at every step.

How a cell runs: the input-to-gates product of every time step is one matmul before the loop
(BigDL's "preTopology"); the loop over time only does the recurrent product and the gate
arithmetic, vectorized over the batch; backward is back-propagation through time over the
cached steps.  With the native backend, ``Recurrent`` runs a plain ``LSTM`` or ``GRU`` (or a
``MultiRNNCell`` of them) over the whole sequence in oneDNN instead (``recurrent_native.py``);
the numpy steps are the reference and the fallback.  Gradients of the weights are accumulated
once per sequence, and the regularizers (``wRegularizer`` on input weights, ``uRegularizer`` on
recurrent weights, ``bRegularizer`` on biases) are applied once per sequence, as in BigDL.

Padded sequences: give ``Recurrent`` a table ``[x, lengths]`` (``(N,)`` valid steps per
sequence) or ``[x, mask]`` (``(N, T)``, true for real steps), or build it with
``mask_zero=True`` so that steps whose features are all zero count as padding (after
``Masking(mask_value)``, which zeroes the steps equal to ``mask_value``, this is Keras'
masking).  A padded step leaves the state unchanged, outputs zeros and gets a zero gradient.
"""
from __future__ import annotations


import numpy as np

from ..._checks import positive_int, probability
from ..._config import ConfigError
from .. import random
from . import native as recurrent_native
from ..containers import Container, indent
from ..initializers import RandomUniform
from ..module import LayerError, Module, build_module, check_grad_output, shape_of

__all__ = ["Cell", "RnnCell", "LSTM", "LSTMPeephole", "GRU", "MultiRNNCell", "Recurrent",
           "BiRecurrent", "TimeDistributed", "RecurrentDecoder"]


# ---------------------------------------------------------------------- activations
def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact, and never overflows


def _hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


# name -> (function, derivative expressed with the function's output)
_ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1.0 - y * y),
    "sigmoid": (_sigmoid, lambda y: y * (1.0 - y)),
    "hard_sigmoid": (_hard_sigmoid, lambda y: 0.2 * ((y > 0) & (y < 1))),
    "relu": (lambda x: np.maximum(x, 0.0), lambda y: (y > 0).astype(y.dtype)),
}
_BY_CLASS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "HardSigmoid": "hard_sigmoid", "ReLU": "relu"}


def activation_name(cls, arg, value, default):
    """The activation named by ``value`` (None, a name, or a Tanh/Sigmoid/ReLU/HardSigmoid
    layer), else a ValueError quoting it."""
    if value is None:
        return default
    name = value.lower() if isinstance(value, str) else (
        _BY_CLASS.get(type(value).__name__) if isinstance(value, Module) else None)
    if name not in _ACTIVATIONS:
        raise ValueError(f"{cls}: {arg} must be one of {sorted(_ACTIVATIONS)} or a Tanh(), "
                         f"Sigmoid(), ReLU() or HardSigmoid() layer, got {value!r}")
    return name


# ---------------------------------------------------------------------- nested state helpers
def tree_map(fn, *trees):
    """Apply ``fn`` leaf by leaf to lists of arrays nested alike."""
    if isinstance(trees[0], (list, tuple)):
        return [tree_map(fn, *parts) for parts in zip(*trees)]
    return fn(*trees)


def _leaves(tree):
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _rows(mask, like):
    """``mask`` (N,) reshaped to broadcast against ``like`` (N, ...)."""
    return mask.reshape((len(mask),) + (1,) * (like.ndim - 1))


class DropsActivations:
    """Mixin: pickling (e.g. shipping a model to Spark executors) leaves out the activations
    cached for backward, named in ``_TRANSIENT``, as ``Module`` does for its buffers."""

    _TRANSIENT = ()

    def __getstate__(self):
        state = super().__getstate__()
        for name in self._TRANSIENT:
            if name in state:
                state[name] = None
        return state


# ---------------------------------------------------------------------- cells
class Cell(DropsActivations, Module):
    """Base class of recurrent cells: one time step, run over a sequence by ``Recurrent``.

    A cell splits its step in two so that the input part runs once for the whole sequence:
    ``project(x) -> (pre, cache)`` maps inputs of any leading shape to gate pre-activations,
    and ``step(pre_t, states) -> (output, new_states, cache)`` does the recurrence.
    ``step_backward`` / ``project_backward`` are their gradients (weights gradients are
    accumulated).  States are lists of arrays (``[h]``, or ``[h, c]`` for LSTMs).

    A cell can also be used alone as in BigDL: ``cell.forward([x_t, state])`` returns
    ``[output, new_state]``, where ``state`` is ``h`` (RnnCell, GRU) or ``[h, c]`` (LSTMs).
    """

    n_states = 1
    p = 0.0
    _TRANSIENT = ("_standalone",)

    def _setup(self, input_size, hidden_size, p=0.0):
        cls = type(self).__name__
        self.input_size = positive_int(cls, "input_size", input_size)
        self.hidden_size = positive_int(cls, "hidden_size", hidden_size)
        self.p = probability(cls, "p", p)
        self.weight_init_method = RandomUniform()
        self.bias_init_method = RandomUniform()

    def _add_gates(self, gates, biases, regularizers, extra=()):
        """Add ``weight (gates * H, D)``, ``recurrent_weight (gates * H, H)``, the biases named
        in ``biases`` (each ``(gates * H,)``) and the ``extra`` ``(name, shape)`` parameters,
        initialize them with ``reset()``, and set ``regularizers``, ``(w, u, b)``: those of the
        input weights, the recurrent weights and every bias."""
        H, D = self.hidden_size, self.input_size
        self._add_parameter("weight", (gates * H, D))
        self._add_parameter("recurrent_weight", (gates * H, H))
        for name in biases:
            self._add_parameter(name, (gates * H,))
        for name, shape in extra:
            self._add_parameter(name, shape)
        self.reset()
        w_regularizer, u_regularizer, b_regularizer = regularizers
        self._set_regularizer("weight", w_regularizer)
        self._set_regularizer("recurrent_weight", u_regularizer)
        for name in biases:
            self._set_regularizer(name, b_regularizer)

    # ------------------------------------------------------------ shapes and states
    def feature_shape_ok(self, shape):
        """Whether one time step of input may have this (per-sample) shape."""
        return tuple(shape) == (self.input_size,)

    def expected_features(self):
        return f"{self.input_size}"

    def state_shapes(self, step_shape):
        """Per-sample shapes of the states for inputs of per-sample shape ``step_shape``."""
        return [(self.hidden_size,)] * self.n_states

    def output_shape(self, step_shape):
        return (self.hidden_size,)

    def initial_states(self, n, step_shape, dtype):
        return [np.zeros((n,) + s, dtype=dtype) for s in self.state_shapes(step_shape)]

    def pack_state(self, states):
        """States as BigDL shows them: ``h`` for one-state cells, ``[h, c]`` otherwise."""
        return states[0] if self.n_states == 1 else list(states)

    def unpack_state(self, state):
        if self.n_states == 1 and isinstance(state, np.ndarray):
            return [state]
        return list(state)

    # ------------------------------------------------------------ helpers for subclasses
    def _acc(self, name, value):
        """Accumulate into ``grad_<name>`` unless the cell is frozen."""
        if not self._frozen:
            grad = getattr(self, "grad_" + name)
            grad += value

    def _dropout_mask(self, shape, dtype):
        """An inverted-dropout mask while training with ``p > 0``, else None."""
        if not (self.train and self.p > 0):
            return None
        keep = random.rng().random(shape, dtype=np.float32) >= self.p
        return keep.astype(dtype) * (1.0 / (1.0 - self.p))

    def regularize(self):
        """Add the regularizers' gradients (once per backward over a sequence)."""
        if self._frozen:
            return
        for name, reg in self.__dict__.get("_regularizers", {}).items():
            reg.accumulate(getattr(self, name), getattr(self, "grad_" + name))

    def _dense_project(self, x, bias="bias"):
        """``x W^T (+ b)`` for inputs ``(..., D)``, with input dropout while training."""
        mask = self._dropout_mask(x.shape, x.dtype)
        xd = x if mask is None else x * mask
        pre = xd @ self.weight.T
        if bias is not None and bias in self._param_names:
            pre += getattr(self, bias)
        return pre, (xd, mask)

    def _dense_project_backward(self, cache, grad_pre, bias="bias"):
        xd, mask = cache
        g2 = grad_pre.reshape(-1, grad_pre.shape[-1])
        self._acc("weight", g2.T @ xd.reshape(-1, xd.shape[-1]))
        if bias is not None and bias in self._param_names:
            self._acc(bias, g2.sum(axis=0))
        gx = grad_pre @ self.weight
        return gx if mask is None else gx * mask

    # ------------------------------------------------------------ the step API
    def project(self, x):
        return self._dense_project(x)

    def project_backward(self, cache, grad_pre):
        return self._dense_project_backward(cache, grad_pre)

    def step(self, pre, states):
        raise NotImplementedError

    def step_backward(self, cache, grad_output, grad_states):
        raise NotImplementedError

    # ------------------------------------------------------------ standalone use (BigDL Cell)
    def _check_step(self, x):
        expected = f"[(N, {self.expected_features()}), state]"
        if not isinstance(x, np.ndarray) or x.ndim < 2 or not self.feature_shape_ok(x.shape[1:]):
            self._fail(expected, x)
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def update_output(self, input):
        if not isinstance(input, (list, tuple)) or len(input) != 2:
            self._fail(f"[(N, {self.expected_features()}), state]", input)
        x = self._check_step(input[0])
        states = self.unpack_state(input[1])
        zeros = self.initial_states(len(x), x.shape[1:], x.dtype)
        if [np.shape(s) for s in _leaves(states)] != [z.shape for z in _leaves(zeros)]:
            self._fail(f"[(N, {self.expected_features()}), state {shape_of(zeros)}]", input)
        states = tree_map(lambda s: np.asarray(s, dtype=x.dtype), states)
        pre, pcache = self.project(x)
        out, new, scache = self.step(pre, states)
        self._standalone = (pcache, scache)
        return [out, self.pack_state(new)]

    def backward(self, input, grad_output):
        if getattr(self, "_standalone", None) is None or self.output is None:
            raise LayerError(f"{self.label()}: backward called before forward")
        pcache, scache = self._standalone
        g_out, g_state = grad_output
        gpre, gprev = self.step_backward(scache, np.asarray(g_out), self.unpack_state(g_state))
        gx = self.project_backward(pcache, gpre)
        self.regularize()
        self.grad_input = [gx, self.pack_state(gprev)]
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def extra_repr(self):
        extra = f", p={self.p}" if self.p else ""
        return f"{self.input_size} -> {self.hidden_size}{extra}"


def _init_dense(cell, recurrent=True):
    """Initialize ``weight`` / ``recurrent_weight`` / biases of a dense cell."""
    cell.weight_init_method.init(cell.weight, cell.input_size, cell.weight.shape[0])
    if recurrent:
        cell.weight_init_method.init(cell.recurrent_weight, cell.hidden_size,
                                     cell.recurrent_weight.shape[0])
    for name in ("bias", "recurrent_bias"):
        if name in cell._param_names:
            cell.bias_init_method.init(getattr(cell, name), cell.hidden_size,
                                       getattr(cell, name).shape[0])


class RnnCell(Cell):
    """Vanilla recurrent cell: ``h_t = f(W x_t + b_i + U h_{t-1} + b_h)`` (BigDL ``RnnCell``).

    Args:
        input_size: features per time step (> 0).
        hidden_size: size of the hidden state and the output (> 0).
        activation: ``f``, a name (``"tanh"`` default, ``"relu"``, ``"sigmoid"``,
            ``"hard_sigmoid"``) or the layer (``Tanh()``, ``ReLU()`` ...).
        isInputWithBias, isHiddenWithBias: learn the input bias ``b_i`` / hidden bias ``b_h``.
        wRegularizer, uRegularizer, bRegularizer: regularizers of ``W``, ``U`` and the biases.

    Parameters: ``weight (H, D)``, ``recurrent_weight (H, H)``, ``bias (H,)``,
    ``recurrent_bias (H,)`` (as ``torch.nn.RNNCell``'s ``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh``).

    Input shape (in ``Recurrent``): ``(N, T, input_size)``.
    Output shape: ``(N, T, hidden_size)``.
    """

    def __init__(self, input_size, hidden_size, activation=None, isInputWithBias=True,
                 isHiddenWithBias=True, wRegularizer=None, uRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        self._setup(input_size, hidden_size)
        self.activation = activation_name("RnnCell", "activation", activation, "tanh")
        biases = [name for name, wanted in (("bias", isInputWithBias),
                                            ("recurrent_bias", isHiddenWithBias)) if wanted]
        self._add_gates(1, biases, (wRegularizer, uRegularizer, bRegularizer))

    def reset(self):
        _init_dense(self)
        return self

    def step(self, pre, states):
        h = states[0]
        a = pre + h @ self.recurrent_weight.T
        if "recurrent_bias" in self._param_names:
            a += self.recurrent_bias
        out = _ACTIVATIONS[self.activation][0](a)
        return out, [out], (h, out)

    def step_backward(self, cache, grad_output, grad_states):
        h, out = cache
        da = (grad_output + grad_states[0]) * _ACTIVATIONS[self.activation][1](out)
        self._acc("recurrent_weight", da.T @ h)
        if "recurrent_bias" in self._param_names:
            self._acc("recurrent_bias", da.sum(axis=0))
        return da, [da @ self.recurrent_weight]

    def extra_repr(self):
        return f"{self.input_size} -> {self.hidden_size}, {self.activation}"


class LSTMCore(Cell, abstract=True):
    """The LSTM step shared by LSTM, LSTMPeephole and ConvLSTMPeephole.

    Gates are stacked along axis 1 in the order input, forget, cell (candidate), output
    (PyTorch's order).  Subclasses provide the recurrent product (``_recur``) and, for
    peepholes, ``_peepholes()`` returning ``(p_i, p_f, p_o)`` broadcastable to the state.
    """

    n_states = 2
    activation = "tanh"
    inner_activation = "sigmoid"

    def _recur(self, hd):
        return hd @ self.recurrent_weight.T, hd

    def _recur_backward(self, dz, ctx):
        self._acc("recurrent_weight", dz.T @ ctx)
        return dz @ self.recurrent_weight

    def _peepholes(self):
        return None

    def _peephole_grad(self, grads, axes):
        pass

    def step(self, pre, states):
        h, c = states
        hmask = self._dropout_mask(h.shape, h.dtype)
        hd = h if hmask is None else h * hmask
        rz, rctx = self._recur(hd)
        z = pre + rz
        H = z.shape[1] // 4
        act, inner = _ACTIVATIONS[self.activation][0], _ACTIVATIONS[self.inner_activation][0]
        zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        peep = self._peepholes()
        if peep is not None:
            zi = zi + peep[0] * c
            zf = zf + peep[1] * c
        i, f, g = inner(zi), inner(zf), act(zg)
        c_new = f * c + i * g
        if peep is not None:
            zo = zo + peep[2] * c_new
        o = inner(zo)
        tc = act(c_new)
        h_new = o * tc
        return h_new, [h_new, c_new], (c, hmask, rctx, i, f, g, o, c_new, tc)

    def step_backward(self, cache, grad_output, grad_states):
        c, hmask, rctx, i, f, g, o, c_new, tc = cache
        dact, dinner = _ACTIVATIONS[self.activation][1], _ACTIVATIONS[self.inner_activation][1]
        dh = grad_output + grad_states[0]
        dzo = dh * tc * dinner(o)
        dc = grad_states[1] + dh * o * dact(tc)
        peep = self._peepholes()
        if peep is not None:
            dc = dc + dzo * peep[2]
        dzi = dc * g * dinner(i)
        dzf = dc * c * dinner(f)
        dzg = dc * i * dact(g)
        dc_prev = dc * f
        if peep is not None:
            dc_prev += dzi * peep[0] + dzf * peep[1]
            axes = (0,) + tuple(range(2, dc.ndim))
            self._peephole_grad([(dzi * c).sum(axis=axes), (dzf * c).sum(axis=axes),
                                 (dzo * c_new).sum(axis=axes)], axes)
        dz = np.concatenate([dzi, dzf, dzg, dzo], axis=1)
        dhd = self._recur_backward(dz, rctx)
        return dz, [dhd if hmask is None else dhd * hmask, dc_prev]


class LSTM(LSTMCore):
    """Long short-term memory cell (BigDL ``LSTM``; run it with ``Recurrent``).

    ``i, f, o = σ(W x + U h + b)`` (three gates), ``g = tanh(W x + U h + b)``,
    ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``.

    Args:
        input_size: features per time step (> 0).
        hidden_size: size of ``h`` and ``c`` (> 0).
        p: dropout probability on the input and on the recurrent state while training
            (``0 <= p < 1``; one mask for all four gates, a fresh mask at every step).
        activation: the cell/output activation (default ``"tanh"``; or a layer like ``Tanh()``).
        inner_activation: the gate activation (default ``"sigmoid"``; or ``"hard_sigmoid"``).
        wRegularizer, uRegularizer, bRegularizer: regularizers of the input weights, the
            recurrent weights and the bias.

    Parameters: ``weight (4H, D)``, ``recurrent_weight (4H, H)``, ``bias (4H,)``, gates
    stacked as input, forget, cell, output — ``torch.nn.LSTM``'s ``weight_ih_l0``,
    ``weight_hh_l0`` and ``bias_ih_l0 + bias_hh_l0``.

    Input shape (in ``Recurrent``): ``(N, T, input_size)``.
    Output shape: ``(N, T, hidden_size)``.
    """

    def __init__(self, input_size, hidden_size, p=0.0, activation=None, inner_activation=None,
                 wRegularizer=None, uRegularizer=None, bRegularizer=None):
        super().__init__()
        self._setup(input_size, hidden_size, p)
        self.activation = activation_name("LSTM", "activation", activation, "tanh")
        self.inner_activation = activation_name("LSTM", "inner_activation", inner_activation,
                                                "sigmoid")
        self._add_gates(4, ["bias"], (wRegularizer, uRegularizer, bRegularizer))

    def reset(self):
        _init_dense(self)
        return self


class LSTMPeephole(LSTMCore):
    """LSTM whose gates also look at the cell state (BigDL ``LSTMPeephole``).

    ``i = σ(W_i x + U_i h + p_i ⊙ c_{t-1} + b_i)``, ``f`` likewise with ``p_f``,
    ``c_t = f c_{t-1} + i tanh(W_c x + U_c h + b_c)``,
    ``o = σ(W_o x + U_o h + p_o ⊙ c_t + b_o)``, ``h_t = o tanh(c_t)``.

    Args:
        input_size: features per time step (> 0).
        hidden_size: size of ``h`` and ``c`` (> 0).
        p: dropout probability on the input and the recurrent state while training.
        wRegularizer, uRegularizer, bRegularizer: regularizers of the input weights, the
            recurrent weights and the bias.

    Parameters: as ``LSTM`` plus ``peephole (3, H)`` (rows ``p_i``, ``p_f``, ``p_o``).

    Input shape (in ``Recurrent``): ``(N, T, input_size)``.
    Output shape: ``(N, T, hidden_size)``.
    """

    def __init__(self, input_size, hidden_size, p=0.0, wRegularizer=None, uRegularizer=None,
                 bRegularizer=None):
        super().__init__()
        self._setup(input_size, hidden_size, p)
        self._add_gates(4, ["bias"], (wRegularizer, uRegularizer, bRegularizer),
                        extra=[("peephole", (3, self.hidden_size))])

    def reset(self):
        _init_dense(self)
        self.weight_init_method.init(self.peephole, self.hidden_size, self.hidden_size)
        return self

    def _peepholes(self):
        return self.peephole

    def _peephole_grad(self, grads, axes):
        self._acc("peephole", np.stack(grads))


class GRU(Cell):
    """Gated recurrent unit (BigDL ``GRU``; run it with ``Recurrent``).

    ``r = σ(W_r x + U_r h + b_r)``, ``z = σ(W_z x + U_z h + b_z)``,
    ``n = tanh(W_n x + b_n + U_n (r ⊙ h))``, ``h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}``.

    Args:
        input_size: features per time step (> 0).
        hidden_size: size of ``h`` (> 0).
        p: dropout probability on the input and the recurrent state while training.
        activation: activation of ``n`` (default ``"tanh"``).
        inner_activation: activation of the gates (default ``"sigmoid"``).
        wRegularizer, uRegularizer, bRegularizer: regularizers of the input weights, the
            recurrent weights and the biases.
        reset_after: False (default, BigDL): the reset gate multiplies ``h`` before ``U_n``.
            True: ``n = tanh(W_n x + b_n + r ⊙ (U_n h + b_hn))`` with a recurrent bias, the
            formulation of cuDNN and ``torch.nn.GRU`` (Keras' ``reset_after``).

    Parameters: ``weight (3H, D)``, ``recurrent_weight (3H, H)``, ``bias (3H,)`` and, with
    ``reset_after``, ``recurrent_bias (3H,)``; gates stacked as reset, update, new (as
    ``torch.nn.GRU``).

    Input shape (in ``Recurrent``): ``(N, T, input_size)``.
    Output shape: ``(N, T, hidden_size)``.
    """

    def __init__(self, input_size, hidden_size, p=0.0, activation=None, inner_activation=None,
                 wRegularizer=None, uRegularizer=None, bRegularizer=None, reset_after=False):
        super().__init__()
        self._setup(input_size, hidden_size, p)
        self.activation = activation_name("GRU", "activation", activation, "tanh")
        self.inner_activation = activation_name("GRU", "inner_activation", inner_activation,
                                                "sigmoid")
        self.reset_after = bool(reset_after)
        biases = ["bias", "recurrent_bias"] if self.reset_after else ["bias"]
        self._add_gates(3, biases, (wRegularizer, uRegularizer, bRegularizer))

    def reset(self):
        _init_dense(self)
        return self

    def step(self, pre, states):
        h = states[0]
        H = self.hidden_size
        act, inner = _ACTIVATIONS[self.activation][0], _ACTIVATIONS[self.inner_activation][0]
        hmask = self._dropout_mask(h.shape, h.dtype)
        hd = h if hmask is None else h * hmask
        U = self.recurrent_weight
        if self.reset_after:
            hu = hd @ U.T + self.recurrent_bias
            a = pre[:, :2 * H] + hu[:, :2 * H]
            r, z = inner(a[:, :H]), inner(a[:, H:])
            n = act(pre[:, 2 * H:] + r * hu[:, 2 * H:])
            ctx = hu
        else:
            a = pre[:, :2 * H] + hd @ U[:2 * H].T
            r, z = inner(a[:, :H]), inner(a[:, H:])
            rh = r * hd
            n = act(pre[:, 2 * H:] + rh @ U[2 * H:].T)
            ctx = rh
        out = (1.0 - z) * n + z * h
        return out, [out], (h, hd, hmask, r, z, n, ctx)

    def step_backward(self, cache, grad_output, grad_states):
        h, hd, hmask, r, z, n, ctx = cache
        H = self.hidden_size
        dact, dinner = _ACTIVATIONS[self.activation][1], _ACTIVATIONS[self.inner_activation][1]
        U = self.recurrent_weight
        dh = grad_output + grad_states[0]
        dan = dh * (1.0 - z) * dact(n)
        daz = dh * (h - n) * dinner(z)
        dh_prev = dh * z
        if self.reset_after:
            hu = ctx
            dar = dan * hu[:, 2 * H:] * dinner(r)
            dhu = np.concatenate([dar, daz, dan * r], axis=1)
            self._acc("recurrent_weight", dhu.T @ hd)
            self._acc("recurrent_bias", dhu.sum(axis=0))
            dhd = dhu @ U
        else:
            rh = ctx
            drh = dan @ U[2 * H:]
            dar = drh * hd * dinner(r)
            da = np.concatenate([dar, daz], axis=1)
            grad_u = np.empty_like(U)
            grad_u[:2 * H] = da.T @ hd
            grad_u[2 * H:] = dan.T @ rh
            self._acc("recurrent_weight", grad_u)
            dhd = da @ U[:2 * H] + drh * r
        dh_prev += dhd if hmask is None else dhd * hmask
        return np.concatenate([dar, daz, dan], axis=1), [dh_prev]

    def extra_repr(self):
        return super().extra_repr() + (", reset_after" if self.reset_after else "")


class MultiRNNCell(Container, Cell):
    """A stack of cells used as one cell (BigDL ``MultiRNNCell``): at each step the output of
    one cell is the input of the next, and the state is the list of the cells' states.

    Args:
        cells: the cells, bottom first (each one's input size is the previous one's hidden
            size).

    Input shape (in ``Recurrent``): ``(N, T, input size of the first cell)``.
    Output shape: ``(N, T, hidden size of the last cell)``.
    """

    def __init__(self, cells):
        Container.__init__(self)
        if not isinstance(cells, (list, tuple)) or not cells or \
                not all(isinstance(c, Cell) for c in cells):
            raise ValueError("MultiRNNCell: cells must be a non-empty list of cells, "
                             f"got {cells!r}")
        shape = _probe_shape(cells[0])
        for below, above in zip(cells, cells[1:]):
            shape = below.output_shape(shape)
            if not above.feature_shape_ok(shape):
                raise ValueError(f"MultiRNNCell: {above!r} cannot take the output of {below!r}")
        for c in cells:
            Container.add(self, c)

    def add(self, module):
        raise TypeError("MultiRNNCell: pass the cells to the constructor")

    @property
    def input_size(self):
        return self._children[0].input_size

    @property
    def hidden_size(self):
        return self._children[-1].hidden_size

    @property
    def n_states(self):
        return len(self._children)

    def feature_shape_ok(self, shape):
        return self._children[0].feature_shape_ok(shape)

    def expected_features(self):
        return self._children[0].expected_features()

    def _shapes(self, step_shape):
        shapes = []
        for c in self._children:
            shapes.append(step_shape)
            step_shape = c.output_shape(step_shape)
        return shapes

    def state_shapes(self, step_shape):
        return [c.state_shapes(s) for c, s in zip(self._children, self._shapes(step_shape))]

    def output_shape(self, step_shape):
        return self._children[-1].output_shape(self._shapes(step_shape)[-1])

    def initial_states(self, n, step_shape, dtype):
        return [c.initial_states(n, s, dtype)
                for c, s in zip(self._children, self._shapes(step_shape))]

    def pack_state(self, states):
        return [c.pack_state(s) for c, s in zip(self._children, states)]

    def unpack_state(self, state):
        return [c.unpack_state(s) for c, s in zip(self._children, state)]

    def project(self, x):
        return self._children[0].project(x)

    def project_backward(self, cache, grad_pre):
        return self._children[0].project_backward(cache, grad_pre)

    def step(self, pre, states):
        new, caches = [], []
        out = None
        for k, (cell, s) in enumerate(zip(self._children, states)):
            pcache = None
            if k > 0:
                pre, pcache = cell.project(out)
            out, s_new, scache = cell.step(pre, s)
            new.append(s_new)
            caches.append((pcache, scache))
        return out, new, caches

    def step_backward(self, cache, grad_output, grad_states):
        g_out, gprev = grad_output, [None] * len(self._children)
        for k in range(len(self._children) - 1, -1, -1):
            cell = self._children[k]
            pcache, scache = cache[k]
            gpre, gprev[k] = cell.step_backward(scache, g_out, grad_states[k])
            if k > 0:
                g_out = cell.project_backward(pcache, gpre)
        return gpre, gprev

    def regularize(self):
        for c in self._children:
            c.regularize()

    def get_config(self):
        config = Container.get_config(self)
        config["args"].pop("cells", None)
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        children = config.get("modules")
        if not isinstance(children, list) or not children:
            raise ConfigError("MultiRNNCell: 'modules' must be a non-empty list")
        return cls([build_module(c) for c in children])

    def backward(self, input, grad_output):
        return Cell.backward(self, input, grad_output)

    def update_output(self, input):
        return Cell.update_output(self, input)

    def update_grad_input(self, input, grad_output):
        return Cell.backward(self, input, grad_output)

    def __repr__(self):
        lines = ["nn.MultiRNNCell {"]
        lines += [f"  ({i + 1}): {self._child_repr(i)}" for i in range(len(self._children))]
        return "\n".join(lines) + "\n}"


def _probe_shape(cell):
    """A per-sample input shape the first cell accepts (used to chain output shapes)."""
    return getattr(cell, "probe_shape", lambda: (cell.input_size,))()


# ---------------------------------------------------------------------- sequence containers
def _sequence_input(layer, input, cell):
    """``(x, mask)`` from ``x`` or a table ``[x, lengths]`` / ``[x, mask]``; mask is None or
    bool ``(N, T)``."""
    feats = cell.expected_features() if cell is not None else "D"
    expected = f"(N, T, {feats}) or a table [(N, T, {feats}), lengths (N,) or mask (N, T)]"
    mask = None
    if isinstance(input, (list, tuple)):
        if len(input) != 2 or not isinstance(input[0], np.ndarray):
            layer._fail(expected, input)
        x, m = input[0], np.asarray(input[1])
        if x.ndim < 3:
            layer._fail(expected, input)
        n, t = x.shape[:2]
        if m.shape == (n,):
            if m.dtype.kind not in "iuf" or np.any(m != np.round(m)) or m.min(initial=0) < 0:
                raise LayerError(f"{layer.label()}: lengths must be whole numbers >= 0, got {m!r}")
            mask = np.arange(t)[None, :] < m[:, None]
        elif m.shape == (n, t):
            mask = m.astype(bool)
        else:
            layer._fail(expected, input)
    else:
        x = input
    if not isinstance(x, np.ndarray) or x.ndim < 3 or (
            cell is not None and not cell.feature_shape_ok(x.shape[2:])):
        layer._fail(expected, input)
    return x, mask


def _wrap(head, children):
    """``head { child }`` on indented lines (``head {}`` without a child)."""
    if not children:
        return head + " {}"
    return head + " {\n" + "".join(f"  {indent(repr(c))}\n" for c in children) + "}"


def _cast(layer, x):
    dtype = layer.dtype
    return x if x.dtype == dtype else x.astype(dtype)


class _CellContainer(DropsActivations, Container):
    """A container holding exactly one cell."""

    _TRANSIENT = ("_ctx", "_last_states", "grad_hidden_state")

    def add(self, module):
        if not isinstance(module, Cell):
            raise TypeError(f"{self.label()}.add expects a cell (RnnCell, LSTM, LSTMPeephole, "
                            f"GRU, ConvLSTMPeephole, MultiRNNCell), got {type(module).__name__}")
        if self._children:
            raise ValueError(f"{self.label()} already holds {self._children[0]!r}")
        return super().add(module)

    @property
    def cell(self):
        if not self._children:
            raise LayerError(f"{self.label()}: add a cell first, e.g. .add(LSTM(4, 8))")
        return self._children[0]

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def __repr__(self):
        return _wrap(f"nn.{type(self).__name__}", self._children[:1])


class Recurrent(_CellContainer):
    """Runs a cell over the time dimension (BigDL ``Recurrent``).

    Example: ``Recurrent().add(LSTM(10, 32))`` maps ``(N, T, 10)`` to ``(N, T, 32)``.

    Args:
        mask_zero: treat time steps whose features are all zero as padding (BigDL's
            ``maskZero``): the state is carried over unchanged, the output is zero and the
            step gets no gradient.

    The initial state is zero unless set with ``set_hidden_state``; ``get_hidden_state()``
    returns the state after the last step of the last forward (``h`` for RnnCell/GRU,
    ``[h, c]`` for LSTMs, a list of those for MultiRNNCell), and after backward
    ``grad_hidden_state`` holds the gradient of the initial state.

    Input shape: ``(N, T, D)`` (``(N, T, C, H, W)`` for ConvLSTMPeephole), or a table
    ``[x, lengths]`` with ``lengths (N,)`` valid steps per sequence (padding at the end), or
    ``[x, mask]`` with ``mask (N, T)`` true at real steps.
    Output shape: ``(N, T, hidden_size)`` (``(N, T, output_size, H', W')``).
    """

    def __init__(self, mask_zero=False):
        super().__init__()
        self.mask_zero = bool(mask_zero)
        self._init_state = None
        self._last_states = None
        self.grad_hidden_state = None

    # ------------------------------------------------------------ state (BigDL API)
    def get_hidden_state(self):
        """The state after the last time step of the last forward."""
        if self._last_states is None:
            raise LayerError(f"{self.label()}: get_hidden_state needs a forward first")
        return self.cell.pack_state(self._last_states)

    def set_hidden_state(self, state):
        """Start the next forwards from ``state`` (as returned by ``get_hidden_state``);
        None goes back to zeros."""
        self._init_state = None if state is None else self.cell.unpack_state(state)
        return self

    # BigDL Scala spellings
    getHiddenState = get_hidden_state
    setHiddenState = set_hidden_state

    def _initial(self, n, step_shape, dtype):
        zeros = self.cell.initial_states(n, step_shape, dtype)
        if self._init_state is None:
            return zeros
        if [np.shape(a) for a in _leaves(self._init_state)] != [a.shape for a in _leaves(zeros)]:
            raise LayerError(f"{self.label()}: the hidden state set has shapes "
                             f"{shape_of(self._init_state)}, the input needs "
                             f"{shape_of(zeros)}")
        return tree_map(lambda s: np.asarray(s, dtype=dtype), self._init_state)

    def _mask(self, x, mask):
        if self.mask_zero:
            nonzero = np.any(x.reshape(x.shape[0], x.shape[1], -1) != 0, axis=2)
            mask = nonzero if mask is None else mask & nonzero
        return mask

    # ------------------------------------------------------------ forward / backward
    def run(self, x, mask):
        """Forward over ``x (N, T, ...)`` with an optional bool mask ``(N, T)``."""
        cell = self.cell
        n, t = x.shape[:2]
        step_shape = x.shape[2:]
        states = self._initial(n, step_shape, x.dtype)
        native = recurrent_native.plan(cell, x, mask)
        if native is not None:  # plain LSTM / GRU cells: the whole sequence in oneDNN
            out = self._buffer("output", (n, t) + cell.output_shape(step_shape), x.dtype)
            self._ctx, self._last_states = recurrent_native.forward(
                self, native[0], native[1], np.ascontiguousarray(x), states, out)
            return out
        pre, pcache = cell.project(x)
        out = self._buffer("output", (n, t) + cell.output_shape(step_shape), x.dtype)
        caches = []
        for k in range(t):
            o, new, c = cell.step(pre[:, k], states)
            if mask is not None and not mask[:, k].all():
                m = mask[:, k]
                new = tree_map(lambda a, b, m=m: np.where(_rows(m, a), a, b), new, states)
                o = np.where(_rows(m, o), o, 0)
            out[:, k] = o
            states = new
            caches.append(c)
        self._ctx = (pcache, caches, mask, pre.shape, pre.dtype)
        self._last_states = states
        return out

    def run_backward(self, grad_output):
        cell = self.cell
        if isinstance(self._ctx[0], str):  # "native"
            gx, g_states = recurrent_native.backward(self, self._ctx, grad_output)
            self.grad_hidden_state = cell.pack_state(g_states)
            cell.regularize()
            return gx
        pcache, caches, mask, pre_shape, dtype = self._ctx
        g_states = tree_map(np.zeros_like, self._last_states)
        grad_pre = np.empty(pre_shape, dtype=dtype)
        for k in range(len(caches) - 1, -1, -1):
            g_out = grad_output[:, k]
            if mask is not None and not mask[:, k].all():
                m = mask[:, k]
                g_out = np.where(_rows(m, g_out), g_out, 0)
                g_cell = tree_map(lambda g, m=m: np.where(_rows(m, g), g, 0), g_states)
                gpre, gprev = cell.step_backward(caches[k], g_out, g_cell)
                g_states = tree_map(lambda gp, g, m=m: gp + np.where(_rows(m, g), 0, g),
                                    gprev, g_states)
            else:
                gpre, g_states = cell.step_backward(caches[k], g_out, g_states)
            grad_pre[:, k] = gpre
        self.grad_hidden_state = cell.pack_state(g_states)
        gx = cell.project_backward(pcache, grad_pre)
        cell.regularize()
        return gx

    def update_output(self, input):
        x, mask = _sequence_input(self, input, self.cell)
        x = _cast(self, x)
        self._is_table = isinstance(input, (list, tuple))
        return self.run(x, self._mask(x, mask))

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        gx = self.run_backward(np.asarray(grad_output, dtype=self.output.dtype))
        self.grad_input = [gx, np.zeros(np.shape(input[1]), dtype=gx.dtype)] \
            if self._is_table else gx
        return self.grad_input

    def extra_repr(self):
        return "mask_zero" if self.mask_zero else ""

    def __repr__(self):
        head = f"nn.Recurrent({self.extra_repr()})" if self.mask_zero else "nn.Recurrent"
        return _wrap(head, self._children[:1])


class BiRecurrent(DropsActivations, Container):
    """A bidirectional recurrent layer (BigDL ``BiRecurrent``): one copy of the cell reads the
    sequence forwards, another (with its own weights, freshly initialized) reads it backwards,
    and ``merge`` combines their outputs step by step.

    Example: ``BiRecurrent(JoinTable(3)).add(LSTM(10, 16))`` maps ``(N, T, 10)`` to
    ``(N, T, 32)``; with the default merge (``CAddTable()``) to ``(N, T, 16)``.

    Args:
        merge: a layer taking the table ``[forward, backward]`` of ``(N, T, H)`` outputs
            (default ``CAddTable()``; ``JoinTable(3)`` concatenates); the strings ``"add"``
            and ``"concat"`` name these two.
        mask_zero: as ``Recurrent``: all-zero steps are padding.

    Padding (``[x, lengths]``, ``[x, mask]`` or ``mask_zero``) is handled in both directions:
    the backward copy starts at each sequence's last real step.

    Input shape: as ``Recurrent``.  Output shape: ``(N, T, H)`` (add) or ``(N, T, 2H)``
    (concat).
    """

    _TRANSIENT = ("_outs",)

    def __init__(self, merge=None, mask_zero=False):
        super().__init__()
        from ..table.tables import CAddTable, JoinTable
        if merge is None or merge == "add":
            merge = CAddTable()
        elif merge == "concat":
            merge = JoinTable(3)
        if not isinstance(merge, Module):
            raise ValueError(f"BiRecurrent: merge must be a layer taking a table (e.g. "
                             f"CAddTable(), JoinTable(3)) or 'add' / 'concat', got {merge!r}")
        self.mask_zero = bool(mask_zero)
        self._children = [Recurrent(mask_zero), Recurrent(mask_zero), merge]

    @property
    def merge(self):
        return self._children[2]

    def add(self, module):
        """Add the cell: it reads forwards, and a fresh copy of it reads backwards."""
        if self._children[0]._children:
            raise ValueError(f"{self.label()} already holds {self._children[0].cell!r}")
        self._children[0].add(module)
        config = module.get_config()
        if "name" in config:
            config["name"] += "_reverse"
        self._children[1].add(build_module(config))
        self._flat = None
        return self

    def update_output(self, input):
        fwd, bwd = self._children[0], self._children[1]
        x, mask = _sequence_input(self, input, fwd.cell if fwd._children else None)
        x = _cast(self, x)
        rx = x[:, ::-1]
        rmask = None if mask is None else mask[:, ::-1]
        self._is_table = isinstance(input, (list, tuple))
        out_f = fwd.run(x, fwd._mask(x, mask))
        out_b = bwd.run(rx, bwd._mask(rx, rmask))[:, ::-1]
        self._outs = [out_f, out_b]
        return self.merge.forward(self._outs)

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        g_f, g_b = self.merge.backward(self._outs, grad_output)
        gx = self._children[0].run_backward(np.asarray(g_f))
        gx = gx + self._children[1].run_backward(np.ascontiguousarray(g_b[:, ::-1]))[:, ::-1]
        self.grad_input = [gx, np.zeros(np.shape(input[1]), dtype=gx.dtype)] \
            if self._is_table else gx
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def get_config(self):
        config = Module.get_config(self)
        config["modules"] = [self._children[0].get_config(), self._children[1].get_config()]
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        layer = cls(*positional, **args)
        children = config.get("modules")
        if not isinstance(children, list) or len(children) != 2:
            raise ConfigError("BiRecurrent: 'modules' must list the forward and backward layers")
        built = [build_module(c) for c in children]
        if not all(isinstance(b, Recurrent) for b in built):
            raise ConfigError("BiRecurrent: 'modules' must be two Recurrent layers")
        layer._children[:2] = built
        return layer

    def __repr__(self):
        cell = [f"  {indent(repr(c))}" for c in self._children[0]._children]
        return "\n".join(["nn.BiRecurrent {"] + cell + [f"  merge: {indent(repr(self.merge))}",
                                                         "}"])


class TimeDistributed(DropsActivations, Container):
    """Applies a layer to every time step (BigDL ``TimeDistributed``): the input
    ``(N, T, ...)`` is seen as ``N*T`` samples, and the output is reshaped back.

    Example: ``TimeDistributed(Linear(32, 10))`` maps ``(N, T, 32)`` to ``(N, T, 10)``.

    Args:
        model: the layer (or container) applied at each step.

    Input shape: ``(N, T, ...)`` (what ``model`` takes per sample).
    Output shape: ``(N, T, ...)`` (what ``model`` gives per sample).
    """

    _TRANSIENT = ("_flat_input",)

    def __init__(self, model):
        super().__init__()
        if not isinstance(model, Module):
            raise ValueError(f"TimeDistributed: model must be a layer, got {model!r}")
        super().add(model)

    def add(self, module):
        raise TypeError("TimeDistributed: pass the layer to the constructor")

    def update_output(self, input):
        if not isinstance(input, np.ndarray) or input.ndim < 3:
            self._fail("(N, T, ...)", input)
        n, t = input.shape[:2]
        self._flat_input = input.reshape((n * t,) + input.shape[2:])
        y = self._children[0].forward(self._flat_input)
        return y.reshape((n, t) + y.shape[1:])

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output)
        g = g.reshape((-1,) + g.shape[2:])
        gi = self._children[0].backward(self._flat_input, g)
        self.grad_input = gi.reshape(np.shape(input))
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def get_config(self):
        config = super().get_config()
        config["args"].pop("model", None)
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        children = config.get("modules")
        if not isinstance(children, list) or len(children) != 1:
            raise ConfigError("TimeDistributed: 'modules' must hold the one wrapped layer")
        return cls(build_module(children[0]))

    def __repr__(self):
        return f"nn.TimeDistributed({indent(repr(self._children[0]))})"


class RecurrentDecoder(_CellContainer):
    """Generates a sequence from one input (BigDL ``RecurrentDecoder``): the input is fed to
    the cell at the first step, and each step's output is the next step's input.

    Example: ``RecurrentDecoder(5).add(LSTM(8, 8))`` maps ``(N, 8)`` to ``(N, 5, 8)``.

    Args:
        output_length: number of steps to generate (> 0).

    The cell's output must fit its input (``hidden_size == input_size``).  The initial state
    is zero unless set with ``set_hidden_state`` (e.g. an encoder's ``get_hidden_state()``).

    Input shape: ``(N, input_size)`` (``(N, C, H, W)`` for ConvLSTMPeephole).
    Output shape: ``(N, output_length, hidden_size)``.
    """

    def __init__(self, output_length):
        super().__init__()
        self.output_length = positive_int("RecurrentDecoder", "output_length", output_length)
        self._init_state = None
        self._last_states = None
        self.grad_hidden_state = None

    get_hidden_state = Recurrent.get_hidden_state
    set_hidden_state = Recurrent.set_hidden_state
    _initial = Recurrent._initial

    def add(self, module):
        super().add(module)
        probe = _probe_shape(module)
        if not module.feature_shape_ok(module.output_shape(probe)):
            self._children.clear()
            raise ValueError(f"RecurrentDecoder: the output of {module!r} must fit its input "
                             "(hidden size == input size)")
        return self

    def update_output(self, input):
        cell = self.cell
        expected = f"(N, {cell.expected_features()})"
        if not isinstance(input, np.ndarray) or input.ndim < 2 or \
                not cell.feature_shape_ok(input.shape[1:]):
            self._fail(expected, input)
        x = _cast(self, input)
        n, step_shape = len(x), x.shape[1:]
        states = self._initial(n, step_shape, x.dtype)
        out = self._buffer("output", (n, self.output_length) + cell.output_shape(step_shape),
                           x.dtype)
        caches = []
        for k in range(self.output_length):
            pre, pcache = cell.project(x)
            x, states, scache = cell.step(pre, states)
            out[:, k] = x
            caches.append((pcache, scache))
        self._ctx = caches
        self._last_states = states
        return out

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        cell = self.cell
        grad_output = np.asarray(grad_output, dtype=self.output.dtype)
        g_states = tree_map(np.zeros_like, self._last_states)
        g_next = 0.0
        for k in range(self.output_length - 1, -1, -1):
            pcache, scache = self._ctx[k]
            gpre, g_states = cell.step_backward(scache, grad_output[:, k] + g_next, g_states)
            g_next = cell.project_backward(pcache, gpre)
        self.grad_hidden_state = cell.pack_state(g_states)
        cell.regularize()
        self.grad_input = g_next
        return g_next

    def extra_repr(self):
        return str(self.output_length)

    def __repr__(self):
        return _wrap(f"nn.RecurrentDecoder({self.output_length})", self._children[:1])
