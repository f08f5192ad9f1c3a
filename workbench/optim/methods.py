"""Optim methods: SGD, Adam, Adagrad, RMSprop, Adadelta, Adamax, AdamW, Ftrl, LBFGS (BigDL /
Torch7 ``optim``), per-submodule methods (``MultiOptimMethod``) and gradient clipping.

Each method updates a flat 1-D parameter vector from its flat gradient in one vectorized call::

    method.update(weights, grads)      # in place; then method.state["neval"] += 1
    method.optimize(feval, x)          # Torch7 style: feval(x) -> (loss, grad); returns (x, [loss])

Optimizer buffers (momentum, Adam's moments ...) are created at the first update with the size
of the vector they see, so a distributed trainer can give each task its own 1/N slice of the
weights and of the optimizer state.  ``get_state()`` / ``load_state()`` carry the counters, the
buffers and the schedule's state, so a restored method continues bit for bit.

Methods with a learning rate take a ``learningrate_schedule`` (see ``workbench.optim.schedules``);
the default, ``Default()``, is BigDL's ``lr / (1 + neval * learningrate_decay)``.

Methods that must evaluate the objective several times per step (``LBFGS``) set
``needs_closure = True``: the training loop then calls ``optimize(feval, weights)`` with a
``feval`` that recomputes forward and backward on the current mini-batch.
"""
from __future__ import annotations

import copy
import math
import sys

import numpy as np

from .._config import Configurable
from .._checks import check_int
from .schedules import Default, LearningRateSchedule, check_number

__all__ = ["OptimMethod", "SGD", "Adam", "Adagrad", "RMSprop", "Adadelta", "Adamax", "AdamW",
           "Ftrl", "LBFGS", "LineSearch", "StrongWolfeLineSearch", "MultiOptimMethod",
           "ConstantClipping", "L2NormClipping", "submodule_slices", "as_optim_method"]


def _rms_step(w, d, sq, epsilon, lr, a):
    """``w -= lr * d / (sqrt(sq) + epsilon)`` in place, with ``a`` as scratch."""
    np.sqrt(sq, out=a)
    a += epsilon
    np.divide(d, a, out=a)
    a *= lr
    w -= a


class OptimMethod(Configurable):
    """Base class of optim methods.

    Subclasses set their hyperparameters, list the names of their saved buffers in
    ``_BUFFERS`` and implement ``_step(weights, grads, lr)``, one in-place update of the flat
    vector with learning rate ``lr``.

    Attributes:
        state: counters: ``"neval"`` (updates done, starts at 0), ``"epoch"`` (1-based, set by the
            training loop) and, once the loop sets them, ``"loss"`` and ``"score"`` (read by
            schedules such as ``Plateau``).
        needs_closure: True for methods that evaluate the objective more than once per step
            (``LBFGS``): the training loop calls ``optimize(feval, weights)`` instead of
            ``update(weights, grads)``.
    """

    _BUFFERS: tuple = ()
    needs_closure = False
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

    def for_slice(self, start, stop):
        """A copy of this method for the part ``[start, stop)`` of the flat vector, as a
        distributed task updates it: same hyperparameters and counters, fresh buffers (the
        caller loads that part of the buffers with :meth:`load_state`).  Methods with
        per-parameter arrays (``SGD(learningrates=...)``) use the part of them."""
        if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop):
            raise ValueError(f"{type(self).__name__}.for_slice: need 0 <= start <= stop, got "
                             f"({start!r}, {stop!r})")
        part = copy.copy(self)
        part.state = dict(self.state)
        part.learningrate_schedule = copy.deepcopy(self.learningrate_schedule)
        part._buffers, part._scratch = {}, {}
        if "_part" in self.__dict__:  # offsets into the per-parameter arrays
            offset = self._part[0] if self._part is not None else 0
            part._part = (offset + start, offset + stop)
        return part

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
        learningrates: BigDL's per-parameter learning rates: a 1-D array as long as the flat
            parameter vector (``model.get_parameters()[0]``); the step of each value is
            multiplied by its entry (``w -= clr * learningrates * g``).  None: all 1.
        weightdecays: BigDL's per-parameter weight decays, a 1-D array as long as the flat
            vector: ``g += weightdecays * w`` instead of the scalar ``weightdecay`` (give one
            or the other).

    With ``learningrates`` / ``weightdecays`` the method belongs to one model's parameter
    vector (or, inside ``Optimizer.set_optim_methods``, to its submodule's slice of it).  The
    arrays are not part of ``get_config()`` (a config stays small); they travel with the
    object (pickled to Spark tasks, each task using its part of them).
    """

    _BUFFERS = ("momentum",)

    def __init__(self, learningrate=1e-3, learningrate_decay=0.0, weightdecay=0.0, momentum=0.0,
                 dampening=None, nesterov=False, learningrate_schedule=None, learningrates=None,
                 weightdecays=None, *, leaningrate_schedule=None):
        super().__init__(learningrate_schedule or leaningrate_schedule)
        self.learningrates = _per_parameter("SGD", "learningrates", learningrates)
        self.weightdecays = _per_parameter("SGD", "weightdecays", weightdecays)
        self._part = None  # (start, stop): the part of the vector this copy updates
        self.learningrate, self.learningrate_decay = _lr_args("SGD", learningrate,
                                                              learningrate_decay)
        self.weightdecay = check_number("SGD", "weightdecay", weightdecay, low=0)
        self.momentum = check_number("SGD", "momentum", momentum, low=0)
        if isinstance(dampening, float) and dampening >= sys.float_info.max:
            dampening = None  # BigDL Python's DOUBLEMAX default
        self.dampening = None if dampening is None else check_number("SGD", "dampening",
                                                                     dampening)
        self.nesterov = bool(nesterov)
        if self.weightdecay != 0 and self.weightdecays is not None:
            raise ValueError("SGD: give weightdecay or weightdecays (per parameter), not both; "
                             f"got weightdecay={weightdecay!r} and an array")
        damp = self._damp()
        if self.nesterov and (self.momentum <= 0 or damp != 0):
            raise ValueError(f"SGD: nesterov momentum requires momentum > 0 and dampening == 0, "
                             f"got momentum={momentum!r}, dampening={dampening!r}"
                             + (" (None means dampening = momentum; pass dampening=0.0)"
                                if dampening is None else ""))

    def _damp(self):
        return self.momentum if self.dampening is None else self.dampening

    def _per_element(self, name, w):
        """The part of the per-parameter array ``name`` that ``w`` (the vector, or this copy's
        part of it) takes, checked against its size, in ``w``'s dtype."""
        values = getattr(self, name)
        if self._part is not None:
            values = values[self._part[0]:self._part[1]]
        if values.size != w.size:
            raise ValueError(f"SGD: {name} holds {values.size} values but the parameter vector "
                             f"has {w.size}; it must be as long as model.get_parameters()[0]"
                             + (f" (this copy updates [{self._part[0]}, {self._part[1]}) of it)"
                                if self._part is not None else ""))
        key = (name, id(getattr(self, name)), self._part, w.dtype.str)
        cached = self._scratch.get(name + "_cast")
        if cached is None or cached[0] != key:
            cached = self._scratch[name + "_cast"] = (key, values.astype(w.dtype))
        return cached[1]

    def _native_step(self, w, g, lr):
        """The momentum update in one parallel native pass (``sgd_momentum``, the same float32
        arithmetic in the same order as the numpy code below, so the same bits); False when it
        does not apply: no momentum buffer yet, Nesterov, per-parameter arrays, a vector that is
        not float32 and C-contiguous, or numpy-typed hyperparameters (which numpy would apply in
        their own precision)."""
        mom, damp, wd = self.momentum, self._damp(), self.weightdecay
        buf = self._buffers.get("momentum")
        if mom == 0 or self.nesterov or buf is None or self.learningrates is not None or \
                self.weightdecays is not None or \
                any(type(v) not in (float, int) for v in (lr, mom, damp, wd)):
            return False
        if w.dtype != np.float32 or g.dtype != np.float32 or buf.shape != w.shape or \
                buf.dtype != np.float32 or not (w.flags.c_contiguous and g.flags.c_contiguous
                                                and buf.flags.c_contiguous and w.flags.writeable):
            return False
        from ..nn import backend
        native = backend.use_native(w.dtype, "sgd")
        if native is None or not hasattr(native, "sgd_momentum") or \
                np.may_share_memory(buf, w) or np.may_share_memory(buf, g):
            return False
        native.sgd_momentum(w, g, buf, float(lr), float(mom), float(damp), float(wd))
        return True

    def _step(self, w, g, lr):
        if self._native_step(w, g, lr):
            return
        mom, damp = self.momentum, self._damp()
        if self.weightdecays is not None:
            d = self._tmp("decayed", w)
            np.multiply(self._per_element("weightdecays", w), w, out=d)
            d += g
        else:
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
        if self.learningrates is not None:
            t *= self._per_element("learningrates", w)
        w -= t


def _per_parameter(owner, name, values):
    """A per-parameter array argument (BigDL's ``learningrates`` / ``weightdecays``) as a flat
    float array, or None."""
    if values is None:
        return None
    a = np.asarray(values)
    if a.dtype.kind not in "fiu" or a.size == 0:
        raise ValueError(f"{owner}: {name} must be a non-empty array of numbers, got "
                         f"{type(values).__name__} of dtype {a.dtype}")
    a = a.astype(np.float64).ravel()
    if not np.all(np.isfinite(a)) or (a < 0).any():
        raise ValueError(f"{owner}: {name} must be finite and >= 0")
    return a


class _Moments(OptimMethod):
    """What Adam, Adamax and AdamW share: the checked decay rates ``beta1`` / ``beta2``, the
    1-based step number and the running mean of the gradient, ``m``."""

    def _set_betas(self, beta1, beta2):
        cls = type(self).__name__
        self.beta1 = check_number(cls, "beta1", beta1, low=0, high=1, high_open=True)
        self.beta2 = check_number(cls, "beta2", beta2, low=0, high=1, high_open=True)

    def _step_number(self):
        """``t``, the 1-based number of the update being made."""
        return int(self.state.get("neval", 0)) + 1

    def _first_moment(self, m, g, a):
        """``m = beta1 * m + (1 - beta1) * g`` in place, with ``a`` as scratch."""
        m *= self.beta1
        np.multiply(g, 1 - self.beta1, out=a)
        m += a

    def _adam_moments(self, w, g):
        """Adam's two moment updates (``m`` as :meth:`_first_moment`, ``v = beta2 * v +
        (1 - beta2) * g^2``); returns ``(m, a)`` with ``a`` a scratch array holding
        ``sqrt(v)``."""
        b2 = self.beta2
        m, v = self._buffer("m", w), self._buffer("v", w)
        a = self._tmp("a", w)
        self._first_moment(m, g, a)
        v *= b2
        np.multiply(g, g, out=a)
        a *= 1 - b2
        v += a
        np.sqrt(v, out=a)
        return m, a


class Adam(_Moments):
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
        self._set_betas(beta1, beta2)
        self.epsilon = check_number("Adam", "epsilon", epsilon, low=0)

    def _step(self, w, g, lr):
        b1, b2 = self.beta1, self.beta2
        t = self._step_number()
        m, a = self._adam_moments(w, g)
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
        _rms_step(w, d, acc, self.EPSILON, lr, a)


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
        _rms_step(w, g, ms, self.epsilon, lr, a)


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


class Adamax(_Moments):
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
        self._set_betas(beta1, beta2)
        self.epsilon = check_number("Adamax", "epsilon", epsilon, low=0, low_open=True)

    def _step(self, w, g, lr):
        b1 = self.beta1
        t = self._step_number()
        m, u = self._buffer("m", w), self._buffer("u", w)
        a = self._tmp("a", w)
        self._first_moment(m, g, a)
        u *= self.beta2
        np.abs(g, out=a)
        a += self.epsilon
        np.maximum(u, a, out=u)
        np.divide(m, u, out=a)
        a *= lr / (1 - b1 ** t)
        w -= a


class AdamW(_Moments):
    """Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's ``AdamW``; beyond BigDL).

    Per update, with ``clr`` the scheduled learning rate and ``t`` the 1-based step::

        w *= 1 - clr * weightdecay
        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
        w -= clr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)

    The decay shrinks the weights directly instead of adding ``weightdecay * w`` to the gradient,
    so it is not rescaled by the adaptive denominator.  ``epsilon`` is added after the bias
    correction, as in PyTorch (``Adam`` follows BigDL and adds it before).

    Args:
        learningrate: base learning rate (>= 0).
        learningrate_decay: ``clr = lr / (1 + neval * decay)`` (the Default schedule).
        beta1, beta2: moment decay rates in [0, 1).
        epsilon: added to the denominator (>= 0).
        weightdecay: decoupled weight decay (>= 0; PyTorch's default 1e-2).
        learningrate_schedule: optional schedule (default ``Default()``).
    """

    _BUFFERS = ("m", "v")

    def __init__(self, learningrate=1e-3, learningrate_decay=0.0, beta1=0.9, beta2=0.999,
                 epsilon=1e-8, weightdecay=1e-2, learningrate_schedule=None):
        super().__init__(learningrate_schedule)
        self.learningrate, self.learningrate_decay = _lr_args("AdamW", learningrate,
                                                              learningrate_decay)
        self._set_betas(beta1, beta2)
        self.epsilon = check_number("AdamW", "epsilon", epsilon, low=0)
        self.weightdecay = check_number("AdamW", "weightdecay", weightdecay, low=0)

    def _step(self, w, g, lr):
        b1, b2 = self.beta1, self.beta2
        t = self._step_number()
        if self.weightdecay:
            w *= 1 - lr * self.weightdecay
        m, a = self._adam_moments(w, g)
        a /= math.sqrt(1 - b2 ** t)
        a += self.epsilon
        np.divide(m, a, out=a)
        a *= lr / (1 - b1 ** t)
        w -= a


class Ftrl(OptimMethod):
    """FTRL-Proximal (McMahan et al., "Ad click prediction"), BigDL's / TensorFlow's ``Ftrl``.

    Per update, with ``p = -learningrate_power`` and ``g2 = g + 2 * l2_shrinkage * w``::

        accum_new = accum + g2^2
        linear += g2 - (accum_new^p - accum^p) / learningrate * w
        quadratic = accum_new^p / learningrate + 2 * l2
        w = (sign(linear) * l1 - linear) / quadratic   if |linear| > l1   else 0
        accum = accum_new

    (With ``l2_shrinkage_regularization_strength > 0`` BigDL accumulates ``g2^2`` as above;
    TensorFlow accumulates the raw ``g^2``.  Without shrinkage both are the same.)

    Args:
        learningrate: learning rate (>= 0; a constant: Ftrl takes no schedule).
        learningrate_power: <= 0 (-0.5: the usual square-root decay).
        initial_accumulator_value: starting value of the accumulators (>= 0).
        l1_regularization_strength: L1 penalty (>= 0); weights with ``|linear| <= l1`` are 0.
        l2_regularization_strength: L2 stabilization penalty (>= 0).
        l2_shrinkage_regularization_strength: L2 magnitude penalty added to the gradient (>= 0).
    """

    _BUFFERS = ("accum", "linear")

    def __init__(self, learningrate=1e-3, learningrate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0):
        super().__init__(None)
        self.learningrate = check_number("Ftrl", "learningrate", learningrate, low=0,
                                         low_open=True)
        self.learningrate_power = check_number("Ftrl", "learningrate_power", learningrate_power,
                                               high=0)
        self.initial_accumulator_value = check_number(
            "Ftrl", "initial_accumulator_value", initial_accumulator_value, low=0)
        self.l1_regularization_strength = check_number(
            "Ftrl", "l1_regularization_strength", l1_regularization_strength, low=0)
        self.l2_regularization_strength = check_number(
            "Ftrl", "l2_regularization_strength", l2_regularization_strength, low=0)
        self.l2_shrinkage_regularization_strength = check_number(
            "Ftrl", "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
            low=0)

    def get_learning_rate(self):
        """Ftrl's learning rate is constant."""
        return self.learningrate

    def _power(self, x, out):
        p = -self.learningrate_power
        if p == 0.5:
            return np.sqrt(x, out=out)
        return np.power(x, p, out=out)

    def _step(self, w, g, lr):
        lr = self.learningrate
        l1 = self.l1_regularization_strength
        l2 = self.l2_regularization_strength
        shrink = self.l2_shrinkage_regularization_strength
        accum = self._buffer("accum", w, self.initial_accumulator_value)
        linear = self._buffer("linear", w)
        g2 = g
        if shrink > 0:
            g2 = self._tmp("g2", w)
            np.multiply(w, 2 * shrink, out=g2)
            g2 += g
        old_pow, new_pow = self._tmp("old_pow", w), self._tmp("new_pow", w)
        self._power(accum, old_pow)
        a = self._tmp("a", w)
        np.multiply(g2, g2, out=a)
        accum += a                                   # accum is now accum_new
        self._power(accum, new_pow)
        linear += g2
        np.subtract(new_pow, old_pow, out=a)
        a *= w
        a /= lr
        linear -= a
        new_pow /= lr                                # quadratic
        new_pow += 2 * l2
        np.sign(linear, out=a)
        a *= l1
        a -= linear
        a /= new_pow
        np.copyto(w, a)
        w[np.abs(linear) <= l1] = 0


# ---------------------------------------------------------------------- L-BFGS
class LineSearch(Configurable):
    """Base class of line searches for ``LBFGS`` (BigDL's ``LineSearch``).

    ``search(opfunc, x, t, d, f, g, gtd, max_evals)`` looks for a step ``t`` along the descent
    direction ``d`` from ``x`` (where the loss is ``f``, the gradient ``g`` and the directional
    derivative ``gtd = g . d``); it returns ``(f_new, g_new, x, t, n_evals)`` with ``x`` moved
    in place to ``x + t * d``.
    """

    def search(self, opfunc, x, t, d, f, g, gtd, max_evals=None):
        raise NotImplementedError(f"{type(self).__name__} does not implement search")

    def __call__(self, opfunc, x, t, d, f, g, gtd, max_evals=None):
        return self.search(opfunc, x, t, d, f, g, gtd, max_evals)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "_init_args", {}).items())
        return f"{type(self).__name__}({args})"


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimizer of the cubic through two points with values and slopes, clamped to ``bounds``
    (Torch7's ``polyinterp`` for two points); the middle of the bounds if it has none."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(disc)
    if x1 <= x2:
        m = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        m = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(m, lo), hi)


class StrongWolfeLineSearch(LineSearch):
    """Line search for a step satisfying the strong Wolfe conditions (Torch7's ``lswolfe``,
    PyTorch's ``line_search_fn="strong_wolfe"``).

    It brackets an interval by cubic extrapolation, then zooms in by cubic interpolation
    until::

        f(x + t d) <= f(x) + c1 * t * g.d      and      |g(x + t d) . d| <= -c2 * g.d

    Args:
        c1: sufficient-decrease constant (0 < c1 < c2).
        c2: curvature constant (c1 < c2 < 1).
        tolerance_change: stop zooming when the bracket is shorter than this (times ``max|d|``).
        max_ls: most function evaluations per search (LBFGS also caps it by its ``max_eval``).
    """

    def __init__(self, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
        name = "StrongWolfeLineSearch"
        self.c1 = check_number(name, "c1", c1, low=0, high=1, low_open=True, high_open=True)
        self.c2 = check_number(name, "c2", c2, low=0, high=1, low_open=True, high_open=True)
        if self.c1 >= self.c2:
            raise ValueError(f"{name}: needs c1 < c2, got c1={c1!r}, c2={c2!r}")
        self.tolerance_change = check_number(name, "tolerance_change", tolerance_change, low=0)
        self.max_ls = check_int(name, "max_ls", max_ls)

    def search(self, opfunc, x, t, d, f, g, gtd, max_evals=None):
        c1, c2 = self.c1, self.c2
        max_ls = self.max_ls if max_evals is None else min(self.max_ls, int(max_evals))
        x0 = x.copy()
        d_norm = float(np.abs(d).max())

        def evaluate(step):
            np.multiply(d, step, out=x)
            np.add(x, x0, out=x)
            fv, gv = opfunc(x)
            gv = np.array(gv, copy=True)
            return float(fv), gv, float(np.dot(gv, d))

        f_new, g_new, gtd_new = evaluate(t)
        evals = 1
        t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
        done = False
        it = 0
        # bracketing: extrapolate until the step overshoots or satisfies the conditions
        while it < max_ls:
            if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
                bracket, bf, bg = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
                bd = [gtd_prev, gtd_new]
                break
            if abs(gtd_new) <= -c2 * gtd:
                bracket, bf, bg, bd = [t], [f_new], [g_new], [gtd_new]
                done = True
                break
            if gtd_new >= 0:
                bracket, bf, bg = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
                bd = [gtd_prev, gtd_new]
                break
            lo_step, hi_step = t + 0.01 * (t - t_prev), t * 10
            t_prev, f_prev, g_prev, gtd_prev, t = t, f_new, g_new, gtd_new, _cubic_minimum(
                t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(lo_step, hi_step))
            f_new, g_new, gtd_new = evaluate(t)
            evals += 1
            it += 1
        if it >= max_ls:  # no bracket found within the budget
            bracket, bf, bg, bd = [0.0, t], [f, f_new], [g, g_new], [gtd, gtd_new]
        # zoom: shrink the bracket around a point satisfying the conditions
        low, high = (0, 1) if bf[0] <= bf[-1] else (1, 0)
        insufficient = False
        while not done and it < max_ls:
            if abs(bracket[1] - bracket[0]) * d_norm < self.tolerance_change:
                break
            t = _cubic_minimum(bracket[0], bf[0], bd[0], bracket[1], bf[1], bd[1])
            top, bottom = max(bracket), min(bracket)
            eps = 0.1 * (top - bottom)
            if min(top - t, t - bottom) < eps:
                # too close to an end: after two such steps (or outside) move 10% inside
                if insufficient or t >= top or t <= bottom:
                    t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                    insufficient = False
                else:
                    insufficient = True
            else:
                insufficient = False
            f_new, g_new, gtd_new = evaluate(t)
            evals += 1
            it += 1
            if f_new > f + c1 * t * gtd or f_new >= bf[low]:
                bracket[high], bf[high], bg[high], bd[high] = t, f_new, g_new, gtd_new
                low, high = (0, 1) if bf[0] <= bf[1] else (1, 0)
            else:
                if abs(gtd_new) <= -c2 * gtd:
                    done = True
                elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                    bracket[high], bf[high], bg[high], bd[high] = \
                        bracket[low], bf[low], bg[low], bd[low]
                bracket[low], bf[low], bg[low], bd[low] = t, f_new, g_new, gtd_new
        t = bracket[low]
        np.multiply(d, t, out=x)
        x += x0
        return bf[low], bg[low], x, t, evals


def _line_search(linesearch, options):
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"LBFGS: linesearch_options must be a dict of StrongWolfeLineSearch "
                        f"arguments, got {type(options).__name__}")
    if linesearch is None:
        if options:
            raise ValueError("LBFGS: linesearch_options given without a linesearch (pass "
                             "linesearch='strong_wolfe')")
        return None
    if linesearch in ("strong_wolfe", True):
        return StrongWolfeLineSearch(**(options or {}))
    if isinstance(linesearch, LineSearch):
        if options:
            raise ValueError("LBFGS: pass the options to the LineSearch constructor, not "
                             "linesearch_options")
        return linesearch
    raise ValueError(f"LBFGS: linesearch must be None, 'strong_wolfe' or a LineSearch, got "
                     f"{linesearch!r}")


class LBFGS(OptimMethod):
    """Limited-memory BFGS (Torch7's ``optim.lbfgs``, BigDL's ``LBFGS``).

    ``optimize(feval, x)`` runs up to ``max_iter`` L-BFGS iterations on ``feval`` (the two-loop
    recursion over the last ``ncorrection`` steps), each moving along the quasi-Newton direction
    by a fixed step (``learningrate``; ``min(1, 1/|g|_1) * learningrate`` on the very first
    iteration) or by the step a line search finds.  It stops early when ``sum|g| <= tolfun``,
    when ``g.d > -tolx``, when ``sum|t d| <= tolx``, when the loss changes by less than
    ``tolx`` or after ``max_eval`` evaluations.  In the training loop each iteration calls
    ``optimize`` with a ``feval`` over the current mini-batch; the history carries over.

    ``update(weights, grads)`` (for callers that only have a gradient, e.g. a 1/N slice of the
    weights) makes one fixed-size L-BFGS step; on a slice its curvature history belongs to the
    slice, so it is not the same as a step of the whole vector.

    Args:
        max_iter: iterations per ``optimize`` call (a positive int).
        max_eval: function evaluations per call (default ``1.25 * max_iter``).
        tolfun: tolerance on the first-order optimality ``sum|g|``.
        tolx: tolerance on progress (step size, loss change, directional derivative).
        ncorrection: history size (a positive int).
        learningrate: step size (> 0); with a line search, its initial step.
        verbose: print why each call stopped.
        linesearch: None (fixed steps), ``"strong_wolfe"`` or a ``LineSearch`` such as
            ``StrongWolfeLineSearch()``.
        linesearch_options: a dict of ``StrongWolfeLineSearch`` arguments, with
            ``linesearch="strong_wolfe"``.
    """

    _BUFFERS = ("d", "g_old")
    needs_closure = True

    def __init__(self, max_iter=20, max_eval=None, tolfun=1e-5, tolx=1e-9, ncorrection=100,
                 learningrate=1.0, verbose=False, linesearch=None, linesearch_options=None):
        super().__init__(None)
        self.max_iter = check_int("LBFGS", "max_iter", max_iter)
        if isinstance(max_eval, float) and max_eval >= sys.float_info.max:
            max_eval = None  # BigDL Python's DOUBLEMAX default
        self.max_eval = None if max_eval is None else check_number(
            "LBFGS", "max_eval", max_eval, low=0, low_open=True)
        self.tolfun = check_number("LBFGS", "tolfun", tolfun, low=0)
        self.tolx = check_number("LBFGS", "tolx", tolx, low=0)
        self.ncorrection = check_int("LBFGS", "ncorrection", ncorrection)
        self.learningrate = check_number("LBFGS", "learningrate", learningrate, low=0,
                                         low_open=True)
        self.verbose = bool(verbose)
        self.linesearch = _line_search(linesearch, linesearch_options)
        self._s_hist, self._y_hist, self._ro = [], [], []

    def get_learning_rate(self):
        """The (initial) step size."""
        return self.learningrate

    def optimize(self, feval, x):
        """Run up to ``max_iter`` L-BFGS iterations on ``feval(x) -> (loss, grad)``, moving
        ``x`` in place; returns ``(x, losses)``: the loss before the first step, then after
        each step that evaluated it."""
        if not callable(feval):
            raise TypeError(f"LBFGS.optimize: feval must be callable, got {type(feval).__name__}")
        self._check_vectors(x, x)
        losses = self._run(feval, x, self.max_iter, self.linesearch)
        self.state["neval"] = int(self.state.get("neval", 0)) + 1
        return x, losses

    def _step(self, w, g, lr):
        loss = float(self.state.get("loss", 0.0))
        self._run(lambda _: (loss, g), w, 1, None)

    def _say(self, message):
        if self.verbose:
            print(f"<optim.lbfgs> {message}")

    @staticmethod
    def _evaluate(feval, x):
        f, g = feval(x)
        g = np.asarray(g)
        if g.shape != x.shape:
            raise ValueError(f"LBFGS: feval returned a gradient of shape {g.shape} for weights "
                             f"of shape {x.shape}")
        return float(f), g.astype(x.dtype, copy=True)

    def _run(self, feval, x, max_iter, linesearch):
        st = self.state
        lr = self.learningrate
        max_eval = self.max_eval if self.max_eval is not None else 1.25 * self.max_iter
        f, g = self._evaluate(feval, x)
        losses = [f]
        evals = 1
        st["func_evals"] = int(st.get("func_evals", 0)) + 1
        if float(np.abs(g).sum()) <= self.tolfun:
            self._say("optimality condition below tolfun")
            return losses
        d = self._buffers.get("d")
        g_old = self._buffers.get("g_old")
        if d is not None:
            d = self._fit("d", d, x)
            g_old = self._fit("g_old", g_old, x)
        t = float(st.get("t", lr))
        hdiag = float(st.get("Hdiag", 1.0))
        f_old = float(st.get("f_old", f))
        n = 0
        while n < max_iter:
            n += 1
            n_iter = st["n_iter"] = int(st.get("n_iter", 0)) + 1
            if n_iter == 1 or d is None:
                d = np.negative(g)
                self._s_hist, self._y_hist, self._ro = [], [], []
                hdiag = 1.0
            else:
                y = g - g_old
                s = d * np.asarray(t, dtype=d.dtype)
                ys = float(np.dot(y, s))
                if ys > 1e-10:
                    if len(self._s_hist) == self.ncorrection:  # forget the oldest pair
                        del self._s_hist[0], self._y_hist[0], self._ro[0]
                    self._s_hist.append(s)
                    self._y_hist.append(y)
                    self._ro.append(1.0 / ys)
                    hdiag = ys / float(np.dot(y, y))
                # two-loop recursion: d = -H g with H the L-BFGS inverse-Hessian estimate
                q = np.negative(g)
                k = len(self._s_hist)
                al = [0.0] * k
                for i in range(k - 1, -1, -1):
                    al[i] = float(np.dot(self._s_hist[i], q)) * self._ro[i]
                    q -= al[i] * self._y_hist[i]
                d = q
                d *= hdiag
                for i in range(k):
                    be = float(np.dot(self._y_hist[i], d)) * self._ro[i]
                    d += (al[i] - be) * self._s_hist[i]
            if g_old is None or g_old.shape != g.shape:
                g_old = g.copy()
            else:
                np.copyto(g_old, g)
            f_old = f
            gtd = float(np.dot(g, d))
            if gtd > -self.tolx:
                self._say("directional derivative below tolx")
                break
            t = min(1.0, 1.0 / float(np.abs(g).sum())) * lr if n_iter == 1 else lr
            if linesearch is not None:
                f, g, _, t, used = linesearch(feval, x, t, d, f, g, gtd, max_eval - evals)
                t = float(t)
                losses.append(f)
            else:
                x += d * np.asarray(t, dtype=d.dtype)
                used = 0
                if n != max_iter:  # no need to evaluate after the last step
                    f, g = self._evaluate(feval, x)
                    used = 1
                    losses.append(f)
            evals += used
            st["func_evals"] += used
            if n == max_iter:
                self._say("reached max number of iterations")
                break
            if evals >= max_eval:
                self._say("max nb of function evals")
                break
            if float(np.abs(g).sum()) <= self.tolfun:
                self._say("optimality condition below tolfun")
                break
            if float(np.abs(d).sum()) * abs(t) <= self.tolx:
                self._say("step size below tolx")
                break
            if abs(f - f_old) < self.tolx:
                self._say("function value changing less than tolx")
                break
        self._buffers["d"], self._buffers["g_old"] = d, g_old
        st["t"], st["Hdiag"], st["f_old"] = float(t), float(hdiag), float(f_old)
        return losses

    def clear_history(self):
        """Forget the direction and the curvature pairs: the next call starts afresh."""
        super().clear_history()
        self._s_hist, self._y_hist, self._ro = [], [], []
        for key in ("t", "Hdiag", "f_old", "n_iter"):
            self.state.pop(key, None)

    def get_state(self):
        """As ``OptimMethod.get_state``, plus the curvature pairs as 2-D arrays
        ``s_history`` / ``y_history`` (one row per stored pair)."""
        document, arrays = super().get_state()
        if self._s_hist:
            arrays["s_history"] = np.stack(self._s_hist)
            arrays["y_history"] = np.stack(self._y_hist)
        return document, arrays

    def load_state(self, document, arrays):
        arrays = dict(arrays)
        s, y = arrays.pop("s_history", None), arrays.pop("y_history", None)
        if (s is None) != (y is None):
            raise ValueError("LBFGS.load_state: s_history and y_history go together")
        super().load_state(document, arrays)
        self._s_hist, self._y_hist, self._ro = [], [], []
        if s is not None:
            s, y = np.asarray(s), np.asarray(y)
            d = self._buffers.get("d")
            if s.ndim != 2 or s.shape != y.shape or s.dtype.kind != "f" or \
                    (d is not None and s.shape[1] != d.size) or s.shape[0] > self.ncorrection:
                raise ValueError(f"LBFGS.load_state: expected s_history and y_history of shape "
                                 f"(k <= {self.ncorrection}, n), got {s.shape} and {y.shape}")
            self._s_hist = [row.copy() for row in s]
            self._y_hist = [row.copy() for row in y]
            self._ro = [1.0 / float(np.dot(b, a)) for a, b in zip(self._s_hist, self._y_hist)]
        return self


# ---------------------------------------------------------------------- per-submodule methods
def submodule_slices(model, names):
    """``({name: (start, stop)}, size)``: where the trainable parameters of each named
    submodule lie in ``model.get_parameters()``'s flat vector (which lays them out in module
    order, so each submodule's parameters are one contiguous range)."""
    names = list(names)
    found = {}
    for m in model.modules():
        if m.name() in names and m.name() not in found:
            found[m.name()] = m
    missing = [n for n in names if n not in found]
    if missing:
        known = sorted({m.name() for m in model.modules()})
        raise ValueError(f"MultiOptimMethod: no submodule named {missing} in the model "
                         f"(its modules: {known[:12]}{' ...' if len(known) > 12 else ''})")
    owner = {}
    for name in names:
        for sub in found[name].modules():
            other = owner.get(id(sub))
            if other is not None and other != name:
                raise ValueError(f"MultiOptimMethod: submodules {other!r} and {name!r} overlap "
                                 "(one contains the other); give each parameter one method")
            owner[id(sub)] = name
    ranges = {n: [] for n in names}
    uncovered = []
    offset = 0
    for path, m, pname in model.named_parameters(trainable_only=True):
        size = getattr(m, pname).size
        name = owner.get(id(m))
        if name is None:
            uncovered.append(path)
        elif ranges[name] and ranges[name][-1][1] == offset:
            ranges[name][-1] = (ranges[name][-1][0], offset + size)
        else:
            ranges[name].append((offset, offset + size))
        offset += size
    if uncovered:
        raise ValueError(f"MultiOptimMethod: parameters {uncovered[:6]} belong to none of the "
                         f"submodules {names}; give them a method too (e.g. key the dict by "
                         f"their layer's name)")
    slices = {}
    for name, r in ranges.items():
        if len(r) > 1:
            raise ValueError(f"MultiOptimMethod: the parameters of {name!r} are not contiguous "
                             f"in the flat vector (ranges {r})")
        slices[name] = r[0] if r else (0, 0)
    return slices, offset


class MultiOptimMethod(OptimMethod):
    """One optim method per named submodule (BigDL's ``optim_method`` dict keyed by submodule
    name): each method updates its submodule's contiguous slice of the flat parameter vector,
    with its own state and schedule.

    Build it with ``MultiOptimMethod.for_model(model, {"fc1": SGD(0.1), "conv": Adam()})`` or
    pass the dict to ``Optimizer`` (``optim_method=`` or ``set_optim_methods``).  Every
    trainable parameter must belong to exactly one named submodule.

    The training loop's counters (``epoch``, ``loss``, ``score``) are passed on to every
    method; ``get_learning_rate()`` is the rate of the method of the first slice.  A distributed
    trainer that updates 1/N slices of the vector gives each task ``for_slice(start, stop)``.

    Args:
        optim_methods: ``{submodule name: OptimMethod}``.
        slices: ``{name: [start, stop]}`` in the flat vector (``for_model`` computes them).
        size: the length of the vector the slices index.
    """

    def __init__(self, optim_methods, slices=None, size=None):
        super().__init__(None)
        if not isinstance(optim_methods, dict) or not optim_methods:
            raise TypeError(f"MultiOptimMethod: optim_methods must be a non-empty dict "
                            f"{{submodule name: OptimMethod}}, got {optim_methods!r}")
        for name, m in optim_methods.items():
            if not isinstance(name, str):
                raise TypeError(f"MultiOptimMethod: keys must be submodule names, got {name!r}")
            if not isinstance(m, OptimMethod) or isinstance(m, MultiOptimMethod):
                raise TypeError(f"MultiOptimMethod: the method for {name!r} must be an "
                                f"OptimMethod (e.g. SGD()), got {type(m).__name__}")
            if m.needs_closure:
                raise ValueError(f"MultiOptimMethod: {type(m).__name__} (for {name!r}) "
                                 "evaluates the whole model and cannot update one submodule")
        self.optim_methods = dict(optim_methods)
        self.slices = self.size = None
        if slices is not None:
            self._bind(slices, size)

    def _bind(self, slices, size):
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"MultiOptimMethod: size must be an int >= 0, got {size!r}")
        if not isinstance(slices, dict) or set(slices) != set(self.optim_methods):
            raise ValueError(f"MultiOptimMethod: slices must name the same submodules as the "
                             f"methods {sorted(self.optim_methods)}, got {slices!r}")
        bound = {}
        for name, r in slices.items():
            ok = isinstance(r, (list, tuple)) and len(r) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in r)
            if not ok or not 0 <= r[0] <= r[1] <= size:
                raise ValueError(f"MultiOptimMethod: slice of {name!r} must be [start, stop] "
                                 f"with 0 <= start <= stop <= {size}, got {r!r}")
            bound[name] = (int(r[0]), int(r[1]))
        spans = sorted(r for r in bound.values() if r[1] > r[0])
        for a, b in zip(spans, spans[1:]):
            if b[0] < a[1]:
                raise ValueError(f"MultiOptimMethod: slices {a} and {b} overlap")
        # methods in flat-vector order
        order = sorted(bound, key=lambda n: bound[n])
        self.slices = {n: bound[n] for n in order}
        self.size = size

    @classmethod
    def for_model(cls, model, optim_methods):
        """A MultiOptimMethod with the slices of ``model``'s named submodules."""
        if not isinstance(optim_methods, dict) or not optim_methods:
            raise TypeError(f"MultiOptimMethod: optim_methods must be a non-empty dict "
                            f"{{submodule name: OptimMethod}}, got {optim_methods!r}")
        slices, size = submodule_slices(model, list(optim_methods))
        return cls(optim_methods, {k: list(v) for k, v in slices.items()}, size)

    def rebind(self, model):
        """Recompute the slices from ``model``'s trainable parameters as they are now (after
        ``freeze`` / ``replace`` ...); if they moved, the methods' buffers are cleared (they
        belonged to the old layout).  Returns True if the slices changed."""
        slices, size = submodule_slices(model, list(self.optim_methods))
        if size == self.size and slices == self.slices:
            return False
        self._bind({k: list(v) for k, v in slices.items()}, size)
        self.clear_history()
        return True

    def for_slice(self, start, stop):
        """A MultiOptimMethod for the part ``[start, stop)`` of the vector (as a distributed
        task updates it): each method restricted to its overlap with the part, with fresh
        buffers and the same counters."""
        self._require_bound()
        ints = isinstance(start, int) and isinstance(stop, int)
        if not (ints and 0 <= start <= stop <= self.size):
            raise ValueError(f"MultiOptimMethod.for_slice: need 0 <= start <= stop <= "
                             f"{self.size}, got ({start!r}, {stop!r})")
        methods, slices = {}, {}
        for name, (a, b) in self.slices.items():
            lo, hi = max(a, start), min(b, stop)
            slices[name] = [lo - start, hi - start] if lo < hi else [0, 0]
            methods[name] = self.optim_methods[name].for_slice(
                *((lo - a, hi - a) if lo < hi else (0, 0)))
        part = MultiOptimMethod(methods, slices, stop - start)
        part.state = dict(self.state)
        return part

    def _require_bound(self):
        if self.slices is None:
            raise RuntimeError("MultiOptimMethod: not bound to a model's parameters; build it "
                               "with MultiOptimMethod.for_model(model, methods) or pass the dict "
                               "to Optimizer")

    def _sync(self):
        for m in self.optim_methods.values():
            for key in ("epoch", "loss", "score"):
                if key in self.state:
                    m.state[key] = self.state[key]

    def get_learning_rate(self):
        """The learning rate of the first slice's method."""
        self._sync()
        first = next(iter(self.slices or self.optim_methods))
        return self.optim_methods[first].get_learning_rate()

    def update(self, weights, grads):
        """Update each submodule's slice of ``weights`` with its own method."""
        self._check_vectors(weights, grads)
        self._require_bound()
        if weights.size != self.size:
            raise ValueError(f"MultiOptimMethod.update: the methods cover a vector of "
                             f"{self.size} values, got {weights.size} (a task updating a slice "
                             "needs for_slice(start, stop))")
        self._sync()
        for name, (a, b) in self.slices.items():
            if b > a:
                self.optim_methods[name].update(weights[a:b], grads[a:b])
        self.state["neval"] = int(self.state.get("neval", 0)) + 1
        return weights

    def clear_history(self):
        """Forget every method's buffers."""
        super().clear_history()
        for m in self.optim_methods.values():
            m.clear_history()

    def get_state(self):
        """The counters, and each method's state under its name (buffers as
        ``"<name>/<buffer>"``)."""
        document, _ = super().get_state()
        document["methods"], arrays = {}, {}
        for name, m in self.optim_methods.items():
            doc, arr = m.get_state()
            document["methods"][name] = doc
            arrays.update({f"{name}/{k}": v for k, v in arr.items()})
        return document, arrays

    def load_state(self, document, arrays):
        subdocs = document.get("methods") if isinstance(document, dict) else None
        if not isinstance(subdocs, dict) or set(subdocs) != set(self.optim_methods):
            raise ValueError(f"MultiOptimMethod.load_state: expected the states of "
                             f"{sorted(self.optim_methods)}, got "
                             f"{sorted(subdocs) if isinstance(subdocs, dict) else subdocs!r}")
        parts = {name: {} for name in self.optim_methods}
        for key, value in arrays.items():
            name, _, buf = key.rpartition("/")
            if name not in parts:
                raise ValueError(f"MultiOptimMethod.load_state: buffer {key!r} belongs to no "
                                 f"method of {sorted(self.optim_methods)}")
            parts[name][buf] = value
        for name, m in self.optim_methods.items():
            m.load_state(subdocs[name], parts[name])
        super().load_state({k: v for k, v in document.items() if k != "methods"}, {})
        return self


def as_optim_method(model, optim_method, owner="Optimizer"):
    """``optim_method`` as one OptimMethod for ``model``: a dict ``{submodule name: method}``
    (or an unbound ``MultiOptimMethod``) becomes a ``MultiOptimMethod`` with the model's
    slices."""
    if isinstance(optim_method, dict):
        return MultiOptimMethod.for_model(model, optim_method)
    if isinstance(optim_method, MultiOptimMethod) and optim_method.slices is None:
        return MultiOptimMethod.for_model(model, optim_method.optim_methods)
    if not isinstance(optim_method, OptimMethod):
        raise TypeError(f"{owner}: optim_method must be an OptimMethod or a dict "
                        f"{{submodule name: OptimMethod}}, got {type(optim_method).__name__}")
    return optim_method


# ---------------------------------------------------------------------- gradient clipping
class ConstantClipping(Configurable):
    """Clips every gradient value into ``[min_value, max_value]`` (BigDL's
    ``set_gradclip_const``).

    Args:
        min_value, max_value: the bounds (``min_value <= max_value``).
    """

    def __init__(self, min_value, max_value):
        self.min_value = check_number("ConstantClipping", "min_value", min_value)
        self.max_value = check_number("ConstantClipping", "max_value", max_value)
        if self.min_value > self.max_value:
            raise ValueError(f"ConstantClipping: min_value must be <= max_value, got "
                             f"{min_value!r} > {max_value!r}")

    def __call__(self, grads):
        """Clip ``grads`` in place; returns it."""
        np.clip(grads, self.min_value, self.max_value, out=grads)
        return grads

    def __repr__(self):
        return f"ConstantClipping({self.min_value}, {self.max_value})"


class L2NormClipping(Configurable):
    """Scales the whole gradient vector by ``clip_norm / ||g||_2`` when its global L2 norm is
    larger than ``clip_norm`` (BigDL's ``set_gradclip_l2norm``).

    Args:
        clip_norm: the largest allowed L2 norm (> 0).
    """

    def __init__(self, clip_norm):
        self.clip_norm = check_number("L2NormClipping", "clip_norm", clip_norm, low=0,
                                      low_open=True)

    @staticmethod
    def squared_norm(grads):
        """``sum(g^2)`` (a distributed trainer adds these up over the slices)."""
        return float(np.dot(grads, grads))

    def __call__(self, grads, norm=None):
        """Scale ``grads`` in place; ``norm`` is the global norm when ``grads`` is one slice
        of the vector (default: the norm of ``grads``).  Returns ``grads``."""
        if norm is None:
            norm = math.sqrt(self.squared_norm(grads))
        if norm > self.clip_norm:
            grads *= self.clip_norm / norm
        return grads

    def __repr__(self):
        return f"L2NormClipping({self.clip_norm})"
