"""Optim methods: SGD, Adam, Adagrad, RMSprop, Adadelta, Adamax (BigDL / Torch7 ``optim``).

Each method updates a flat 1-D parameter vector from its flat gradient in one vectorized call::

    method.update(weights, grads)      # in place; then method.state["neval"] += 1
    method.optimize(feval, x)          # Torch7 style: feval(x) -> (loss, grad); returns (x, [loss])

Optimizer buffers (momentum, Adam's moments ...) are created at the first update with the size
of the vector they see, so a distributed trainer can give each task its own 1/N slice of the
weights and of the optimizer state.  ``get_state()`` / ``load_state()`` carry the counters, the
buffers and the schedule's state, so a restored method continues bit for bit.

Methods with a learning rate take a ``learningrate_schedule`` (see ``workbench.optim.schedules``);
the default, ``Default()``, is BigDL's ``lr / (1 + neval * learningrate_decay)``.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from .._config import Configurable
from .schedules import Default, LearningRateSchedule, check_number

__all__ = ["OptimMethod", "SGD", "Adam", "Adagrad", "RMSprop", "Adadelta", "Adamax"]


class OptimMethod(Configurable):
    """Base class of optim methods.

    Subclasses set their hyperparameters, list the names of their saved buffers in
    ``_BUFFERS`` and implement ``_step(weights, grads, lr)``, one in-place update of the flat
    vector with learning rate ``lr``.

    Attributes:
        state: counters: ``"neval"`` (updates done, starts at 0), ``"epoch"`` (1-based, set by the
            training loop) and, once the loop sets them, ``"loss"`` and ``"score"`` (read by
            schedules such as ``Plateau``).
    """

    _BUFFERS: tuple = ()
    learningrate = 1.0
    learningrate_decay = 0.0

    def __init__(self, learningrate_schedule=None):
        if learningrate_schedule is not None and not isinstance(learningrate_schedule,
                                                                LearningRateSchedule):
            raise TypeError(f"{type(self).__name__}: learningrate_schedule must be a learning "
                            f"rate schedule (e.g. Step(...)), got "
                            f"{type(learningrate_schedule).__name__}")
        self.learningrate_schedule = learningrate_schedule or Default()
        self.state = {"neval": 0, "epoch": 1}
        self._buffers: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ the training-loop API
    def get_learning_rate(self) -> float:
        """The learning rate the next update will use (as the schedule gives it)."""
        return float(self.learningrate_schedule.rate(self.learningrate, self.learningrate_decay,
                                                     self.state))

    def update(self, weights, grads):
        """Update the flat vector ``weights`` in place from its gradient ``grads`` (same shape);
        then count the update in ``state["neval"]``."""
        self._check_vectors(weights, grads)
        self._step(weights, grads, self.get_learning_rate())
        self.state["neval"] = int(self.state.get("neval", 0)) + 1
        return weights

    def optimize(self, feval, x):
        """Torch7 / BigDL style: ``feval(x) -> (loss, grad)``; update ``x`` in place.

        Returns ``(x, [loss])``, the loss evaluated before the update.
        """
        loss, grad = feval(x)
        self.update(x, grad)
        return x, [loss]

    def _step(self, weights, grads, lr):
        raise NotImplementedError(f"{type(self).__name__} does not implement _step")

    def clear_history(self):
        """Forget the optimizer buffers (momentum, moments ...); counters are kept."""
        self._buffers.clear()
        self._scratch.clear()

    # ------------------------------------------------------------------ checkpoints
    def get_state(self):
        """``(document, arrays)``: a JSON-able dict (counters, schedule state) and copies of the
        optimizer buffers, everything :meth:`load_state` needs to continue exactly."""
        counters = {}
        for k, v in self.state.items():
            if isinstance(v, (bool, np.bool_)):
                counters[k] = bool(v)
            elif isinstance(v, (int, np.integer)):
                counters[k] = int(v)
            elif isinstance(v, (float, np.floating)):
                counters[k] = float(v)
            elif v is None or isinstance(v, str):
                counters[k] = v
        document = {"method": type(self).__name__, "state": counters,
                    "schedule": self.learningrate_schedule.get_state()}
        return document, {k: v.copy() for k, v in self._buffers.items()}

    def load_state(self, document, arrays):
        """Restore what :meth:`get_state` returned (e.g. from a checkpoint)."""
        name = type(self).__name__
        if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
            raise ValueError(f"{name}.load_state: expected the document of get_state(), got "
                             f"{type(document).__name__}")
        if document.get("method", name) != name:
            raise ValueError(f"{name}.load_state: the state was saved by {document['method']}")
        unknown = sorted(set(arrays) - set(self._BUFFERS))
        if unknown:
            raise ValueError(f"{name}.load_state: unknown buffers {unknown} (expected "
                             f"{list(self._BUFFERS) or 'none'})")
        buffers = {}
        for k, v in arrays.items():
            v = np.asarray(v)
            if v.ndim != 1 or v.dtype.kind != "f":
                raise ValueError(f"{name}.load_state: buffer {k!r} must be a 1-D float array, "
                                 f"got {v.dtype} of shape {v.shape}")
            buffers[k] = np.array(v, copy=True)
        sizes = {v.size for v in buffers.values()}
        if len(sizes) > 1:
            raise ValueError(f"{name}.load_state: buffers have different sizes {sorted(sizes)}")
        state = dict(document["state"])
        state["neval"] = int(state.get("neval", 0))
        state["epoch"] = int(state.get("epoch", 1))
        self.learningrate_schedule.load_state(document.get("schedule") or {})
        self.state = state
        self._buffers = buffers
        self._scratch = {}
        return self

    # ------------------------------------------------------------------ helpers
    def _check_vectors(self, weights, grads):
        name = type(self).__name__
        if not isinstance(weights, np.ndarray) or not isinstance(grads, np.ndarray):
            raise TypeError(f"{name}.update: expected numpy arrays, got "
                            f"{type(weights).__name__} and {type(grads).__name__}")
        if weights.ndim != 1 or grads.shape != weights.shape:
            raise ValueError(f"{name}.update: expected a flat 1-D weight vector and a gradient of "
                             f"the same shape, got {weights.shape} and {grads.shape}")
        if weights.dtype.kind != "f":
            raise TypeError(f"{name}.update: weights must be floating point, got {weights.dtype}")

    def _buffer(self, key, weights, init=0.0):
        """The saved buffer ``key`` (created filled with ``init`` at the first update)."""
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.full(weights.shape, init, dtype=weights.dtype)
        else:
            buf = self._fit(key, buf, weights)
        return buf

    def _fit(self, key, buf, weights):
        if buf.shape != weights.shape:
            raise ValueError(f"{type(self).__name__}: optimizer state {key!r} holds {buf.size} "
                             f"values but the weight vector has {weights.size}; a method's "
                             "state belongs to one parameter vector (or slice)")
        if buf.dtype != weights.dtype:
            buf = self._buffers[key] = buf.astype(weights.dtype)
        return buf

    def _tmp(self, key, like):
        """A scratch array shaped like ``like`` (not saved; reused between updates)."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._scratch[key] = np.empty_like(like)
        return buf

    def _with_weight_decay(self, weights, grads, wd):
        """``grads + wd * weights`` in a scratch array (``grads`` itself when ``wd == 0``)."""
        if wd == 0:
            return grads
        d = self._tmp("decayed", weights)
        np.multiply(weights, wd, out=d)
        d += grads
        return d

    def __repr__(self):
        import inspect
        params = inspect.signature(type(self).__init__).parameters
        args = [f"{k}={v!r}" for k, v in getattr(self, "_init_args", {}).items()
                if k in params and params[k].default is not v and params[k].default != v]
        return f"{type(self).__name__}({', '.join(args)})"


def _lr_args(owner, learningrate, learningrate_decay):
    return (check_number(owner, "learningrate", learningrate, low=0),
            check_number(owner, "learningrate_decay", learningrate_decay, low=0))


class SGD(OptimMethod):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (Torch7 /
    BigDL ``SGD``).

    Per update, with ``g`` the gradient and ``clr`` the scheduled learning rate::

        g += weightdecay * w
        buf = g (first update) | momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) | buf
        w -= clr * g

    Args:
        learningrate: the base learning rate (>= 0).
        learningrate_decay: the Default schedule's decay: ``clr = lr / (1 + neval * decay)``.
        weightdecay: L2 penalty added to the gradient (>= 0).
        momentum: momentum factor (>= 0; 0 disables momentum).
        dampening: dampening of the momentum; None (default) means ``= momentum`` (Torch7's
            ``dampening or momentum``; PyTorch's default is 0).
        nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        learningrate_schedule: a schedule (``Step``, ``Poly``, ``Plateau`` ...), default
            ``Default()``.  BigDL's spelling ``leaningrate_schedule`` also works.
    """

    _BUFFERS = ("momentum",)

    def __init__(self, learningrate=1e-3, learningrate_decay=0.0, weightdecay=0.0, momentum=0.0,
                 dampening=None, nesterov=False, learningrate_schedule=None, *,
                 leaningrate_schedule=None):
        super().__init__(learningrate_schedule or leaningrate_schedule)
        self.learningrate, self.learningrate_decay = _lr_args("SGD", learningrate,
                                                              learningrate_decay)
        self.weightdecay = check_number("SGD", "weightdecay", weightdecay, low=0)
        self.momentum = check_number("SGD", "momentum", momentum, low=0)
        if isinstance(dampening, float) and dampening >= sys.float_info.max:
            dampening = None  # BigDL Python's DOUBLEMAX default
        self.dampening = None if dampening is None else check_number("SGD", "dampening",
                                                                     dampening)
        self.nesterov = bool(nesterov)
        damp = self._damp()
        if self.nesterov and (self.momentum <= 0 or damp != 0):
            raise ValueError(f"SGD: nesterov momentum requires momentum > 0 and dampening == 0, "
                             f"got momentum={momentum!r}, dampening={dampening!r}"
                             + (" (None means dampening = momentum; pass dampening=0.0)"
                                if dampening is None else ""))

    def _damp(self):
        return self.momentum if self.dampening is None else self.dampening

    def _step(self, w, g, lr):
        mom, damp = self.momentum, self._damp()
        d = self._with_weight_decay(w, g, self.weightdecay)
        if mom != 0:
            buf = self._buffers.get("momentum")
            if buf is None:
                buf = self._buffers["momentum"] = d.copy()
            else:
                buf = self._fit("momentum", buf, w)
                buf *= mom
                if damp == 0:
                    buf += d
                else:
                    t = self._tmp("t", w)
                    np.multiply(d, 1 - damp, out=t)
                    buf += t
            if self.nesterov:
                if d is g:
                    d = self._tmp("decayed", w)
                    np.copyto(d, g)
                t = self._tmp("t", w)
                np.multiply(buf, mom, out=t)
                d += t
            else:
                d = buf
        t = self._tmp("t", w)
        np.multiply(d, lr, out=t)
        w -= t


class Adam(OptimMethod):
    """Adam (Kingma & Ba), BigDL's formulation::

        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
        w -= clr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)

    with ``t`` the 1-based step.  (PyTorch adds ``epsilon`` after the bias correction of
    ``sqrt(v)``: BigDL's ``epsilon`` equals PyTorch's ``epsilon * sqrt(1 - beta2^t)``.)

    Args:
        learningrate: base learning rate.
        learningrate_decay: ``clr = lr / (1 + neval * decay)`` (the Default schedule).
        beta1, beta2: moment decay rates in [0, 1).
        epsilon: added to the denominator (>= 0).
        learningrate_schedule: optional schedule (default ``Default()``).
    """

    _BUFFERS = ("m", "v")

    def __init__(self, learningrate=1e-3, learningrate_decay=0.0, beta1=0.9, beta2=0.999,
                 epsilon=1e-8, learningrate_schedule=None):
        super().__init__(learningrate_schedule)
        self.learningrate, self.learningrate_decay = _lr_args("Adam", learningrate,
                                                              learningrate_decay)
        self.beta1 = check_number("Adam", "beta1", beta1, low=0, high=1, high_open=True)
        self.beta2 = check_number("Adam", "beta2", beta2, low=0, high=1, high_open=True)
        self.epsilon = check_number("Adam", "epsilon", epsilon, low=0)

    def _step(self, w, g, lr):
        b1, b2 = self.beta1, self.beta2
        t = int(self.state.get("neval", 0)) + 1
        m, v = self._buffer("m", w), self._buffer("v", w)
        a = self._tmp("a", w)
        m *= b1
        np.multiply(g, 1 - b1, out=a)
        m += a
        v *= b2
        np.multiply(g, g, out=a)
        a *= 1 - b2
        v += a
        np.sqrt(v, out=a)
        a += self.epsilon
        np.divide(m, a, out=a)
        a *= lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w -= a


class Adagrad(OptimMethod):
    """Adagrad: ``acc += g^2; w -= clr * g / (sqrt(acc) + 1e-10)`` with ``g`` including weight
    decay (BigDL / PyTorch ``Adagrad``).

    Args:
        learningrate: base learning rate.
        learningrate_decay: ``clr = lr / (1 + neval * decay)``.
        weightdecay: L2 penalty added to the gradient.
        learningrate_schedule: optional schedule (default ``Default()``).
    """

    _BUFFERS = ("sum_sq",)
    EPSILON = 1e-10

    def __init__(self, learningrate=1e-3, learningrate_decay=0.0, weightdecay=0.0,
                 learningrate_schedule=None):
        super().__init__(learningrate_schedule)
        self.learningrate, self.learningrate_decay = _lr_args("Adagrad", learningrate,
                                                              learningrate_decay)
        self.weightdecay = check_number("Adagrad", "weightdecay", weightdecay, low=0)

    def _step(self, w, g, lr):
        d = self._with_weight_decay(w, g, self.weightdecay)
        acc = self._buffer("sum_sq", w)
        a = self._tmp("a", w)
        np.multiply(d, d, out=a)
        acc += a
        np.sqrt(acc, out=a)
        a += self.EPSILON
        np.divide(d, a, out=a)
        a *= lr
        w -= a


class RMSprop(OptimMethod):
    """RMSprop: ``ms = rho * ms + (1 - rho) * g^2; w -= clr * g / (sqrt(ms) + epsilon)``.

    Args:
        learningrate: base learning rate.
        learningrate_decay: ``clr = lr / (1 + neval * decay)``.
        decayrate: ``rho``, the decay of the running mean of squares, in [0, 1].
        epsilon: added to the denominator (>= 0).
        learningrate_schedule: optional schedule (default ``Default()``).
    """

    _BUFFERS = ("mean_sq",)

    def __init__(self, learningrate=1e-2, learningrate_decay=0.0, decayrate=0.99, epsilon=1e-8,
                 learningrate_schedule=None):
        super().__init__(learningrate_schedule)
        self.learningrate, self.learningrate_decay = _lr_args("RMSprop", learningrate,
                                                              learningrate_decay)
        self.decayrate = check_number("RMSprop", "decayrate", decayrate, low=0, high=1)
        self.epsilon = check_number("RMSprop", "epsilon", epsilon, low=0)

    def _step(self, w, g, lr):
        rho = self.decayrate
        ms = self._buffer("mean_sq", w)
        a = self._tmp("a", w)
        ms *= rho
        np.multiply(g, g, out=a)
        a *= 1 - rho
        ms += a
        np.sqrt(ms, out=a)
        a += self.epsilon
        np.divide(g, a, out=a)
        a *= lr
        w -= a


class Adadelta(OptimMethod):
    """Adadelta (Zeiler), no learning rate::

        ms = rho * ms + (1 - rho) * g^2
        delta = sqrt(acc + epsilon) / sqrt(ms + epsilon) * g
        w -= delta;   acc = rho * acc + (1 - rho) * delta^2

    Args:
        decayrate: ``rho`` in [0, 1].
        epsilon: added inside both square roots (> 0).
    """

    _BUFFERS = ("mean_sq", "acc_delta")

    def __init__(self, decayrate=0.9, epsilon=1e-10):
        super().__init__(None)
        self.decayrate = check_number("Adadelta", "decayrate", decayrate, low=0, high=1)
        self.epsilon = check_number("Adadelta", "epsilon", epsilon, low=0, low_open=True)

    def get_learning_rate(self):
        """Adadelta has no learning rate: its steps are scaled by 1."""
        return 1.0

    def _step(self, w, g, lr):
        rho, eps = self.decayrate, self.epsilon
        ms, acc = self._buffer("mean_sq", w), self._buffer("acc_delta", w)
        a, b = self._tmp("a", w), self._tmp("b", w)
        ms *= rho
        np.multiply(g, g, out=a)
        a *= 1 - rho
        ms += a
        np.add(ms, eps, out=a)
        np.sqrt(a, out=a)
        np.add(acc, eps, out=b)
        np.sqrt(b, out=b)
        b /= a
        b *= g                  # b = delta
        w -= b
        acc *= rho
        np.multiply(b, b, out=a)
        a *= 1 - rho
        acc += a


class Adamax(OptimMethod):
    """Adamax (the infinity-norm variant of Adam)::

        m = beta1 * m + (1 - beta1) * g;   u = max(beta2 * u, |g| + epsilon)
        w -= clr / (1 - beta1^t) * m / u

    Args:
        learningrate: base learning rate.
        beta1, beta2: decay rates in [0, 1).
        epsilon: added to ``|g|`` (> 0).
        learningrate_schedule: optional schedule (default ``Default()``, a constant rate).
    """

    _BUFFERS = ("m", "u")

    def __init__(self, learningrate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-38,
                 learningrate_schedule=None):
        super().__init__(learningrate_schedule)
        self.learningrate = check_number("Adamax", "learningrate", learningrate, low=0)
        self.beta1 = check_number("Adamax", "beta1", beta1, low=0, high=1, high_open=True)
        self.beta2 = check_number("Adamax", "beta2", beta2, low=0, high=1, high_open=True)
        self.epsilon = check_number("Adamax", "epsilon", epsilon, low=0, low_open=True)

    def _step(self, w, g, lr):
        b1 = self.beta1
        t = int(self.state.get("neval", 0)) + 1
        m, u = self._buffer("m", w), self._buffer("u", w)
        a = self._tmp("a", w)
        m *= b1
        np.multiply(g, 1 - b1, out=a)
        m += a
        u *= self.beta2
        np.abs(g, out=a)
        a += self.epsilon
        np.maximum(u, a, out=u)
        np.divide(m, u, out=a)
        a *= lr / (1 - b1 ** t)
        w -= a
