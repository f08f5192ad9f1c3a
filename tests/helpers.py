"""The shared test utilities, one place for every test folder: array factories, finite-difference
gradient checks in float64 (modules, criteria, penalties), PyTorch parity and config round trips
of layers (tensors or nested tables), tolerances for comparing two float32 kernel paths, waiting
on a condition (never on a fixed delay), errors re-raised by Spark, the native kernels'
comparison helpers and the small problem the optim-method tests share.

``conftest.py`` puts ``tests/`` on ``sys.path``: test modules in any folder ``import helpers``.
PyTorch comes from ``oracle`` (imported on first use), so importing this module needs no torch.
"""
from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import re
import threading
import time
import types

import numpy as np
from hypothesis import HealthCheck, settings
from oracle import torch

from workbench.nn import Module, backend, random
from workbench.nn.module import build_module

# ---------------------------------------------------------------------- array factories
def normal(shape, seed=0, dtype=np.float64, scale=1.0):
    """Standard normal values (times ``scale``) from ``default_rng(seed)``, as ``dtype``."""
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def f32(shape, seed=0, scale=1.0):
    return normal(shape, seed, np.float32, scale)


def rand(*shape, seed=0):
    """``normal(shape, seed)`` with the shape given as separate arguments (float64)."""
    return normal(shape, seed)


def distinct(*shape, seed=0):
    """float64 values with no ties (and gaps wider than the finite-difference step)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n * 4.0 - 2.0


def away_from(x, points, gap=0.05):
    """``x`` with every element moved at least ``gap`` away from each of ``points`` (kinks of a
    piecewise function, where finite differences are meaningless).  A point may be an array
    that broadcasts against ``x`` (e.g. per-element thresholds)."""
    x = np.array(x, copy=True)
    for p in points:
        p = np.broadcast_to(p, x.shape)
        near = np.abs(x - p) < gap
        x = np.where(near, p + np.where(x >= p, gap, -gap), x)
    return x


def t64(a):
    """A float64 torch tensor of ``a`` (a copy)."""
    return torch.from_numpy(np.array(a, dtype=np.float64))


# ---------------------------------------------------------------------- float32 tolerances
RTOL, ATOL = 1e-4, 1e-5  # float32 parity of convolution and pooling layers with PyTorch

F32_EPS = float(np.finfo(np.float32).eps)  # 2**-23: the spacing of float32 numbers at 1.0


def float32_tolerance(reduction_length=1, factor=4.0):
    """``rtol`` for comparing two float32 results of the same computation by different kernel
    paths (native vs numpy, NCHW vs channels-last, two GEMM providers, batched vs per-sample,
    another SIMD width): equal in exact arithmetic, they differ only in rounding.

    Each path rounds every operation to float32 (relative error ``eps / 2`` each); the paths
    differ in the order of their sums.  A sum of ``n`` terms accumulated in two different orders
    (blocked, pairwise, vectorised or sequential) differs by about ``sqrt(n) * eps`` relative to
    the magnitude of the terms for rounding errors of random sign; ``factor`` (4 by default)
    covers the few element-wise operations around the reduction (bias, activation, the
    normalisation of a softmax) and the tail of the distribution.  For ``n = 1000`` that is
    ``4 * 32 * 1.2e-7 = 1.5e-5``: far below any real bug (a wrong sign, a missing term, a
    transposed weight change results by 1e-2 or more).

    Use it with an ``atol`` of the same relative size times the magnitude of the terms (see
    :func:`assert_close_f32`), since a result that cancels to about zero keeps the absolute
    rounding of its terms.
    """
    return factor * math.sqrt(max(int(reduction_length), 1)) * F32_EPS


def assert_close_f32(actual, desired, reduction_length=1, scale=None, factor=4.0, err_msg=""):
    """``assert_allclose`` with the float32 rounding tolerance of :func:`float32_tolerance`.

    ``scale`` is the magnitude of the terms that were summed (default: the largest ``|desired|``,
    at least 1), which sets the absolute tolerance for results that cancel towards zero.
    """
    desired = np.asarray(desired)
    rtol = float32_tolerance(reduction_length, factor)
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=err_msg)


def assert_same_classes(classes, scores, reduction_length=1, factor=4.0):
    """``classes`` (from one kernel path) equal the argmax of ``scores`` (from another, e.g.
    batched differently) wherever that argmax is decided beyond float32 rounding.

    A row whose two best scores are closer than the rounding tolerance may pick either of them
    on either path; every other row must agree exactly.  Returns how many rows were undecided
    (0 in practice: such near ties are rare), so the caller can bound a count that depends on
    the classes, such as an accuracy.
    """
    scores = np.asarray(scores, dtype=np.float64)
    classes = np.asarray(classes).reshape(-1)
    if scores.ndim == 1:
        scores = scores[:, None]
    expected = np.argmax(scores, axis=1)
    top2 = np.sort(scores, axis=1)[:, -2:] if scores.shape[1] > 1 else np.repeat(scores, 2, 1)
    scale = np.maximum(1.0, np.abs(scores).max(axis=1))
    undecided = (top2[:, 1] - top2[:, 0]) <= float32_tolerance(reduction_length, factor) * scale
    undecided &= scores.shape[1] > 1
    differ = (classes != expected) & ~undecided
    assert not differ.any(), (f"classes differ from the argmax of the scores in rows "
                              f"{np.flatnonzero(differ)[:20].tolist()}")
    return int(undecided.sum())


# ---------------------------------------------------------------------- waiting
def wait_until(predicate, timeout=120.0, interval=0.05, message="condition"):
    """Poll ``predicate()`` until it returns something truthy (returned) or fail after
    ``timeout`` seconds.  The deadline is generous on purpose: it only bounds a hang, the
    test's claim is the condition itself (a loaded machine may take many times longer).
    ``message`` may be a function, called for the failure message (to show the last state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------- test ids
def param_id(value):
    """A parametrized test's id part: a layer's repr, ``"torch"`` for the PyTorch reference
    function beside it (a function's repr holds its address, which differs between the test
    processes of pytest-xdist, and they must collect the same ids)."""
    return "torch" if isinstance(value, types.FunctionType) else repr(value)


# ---------------------------------------------------------------------- errors from Spark
@contextlib.contextmanager
def raises_from_spark(pattern):
    """Like ``pytest.raises(Exception, match=pattern)`` for an error raised on an executor and
    re-raised by Spark on the driver (the executor's text is inside a long JVM or Python
    traceback).  On a mismatch the failure names what Spark did raise in ONE line (the
    exception type and the lines that look like errors), so a CI log that keeps only the first
    lines of a failure still shows the cause."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - any error Spark re-raises is a candidate
        text = str(e)
        if re.search(pattern, text):
            return
        lines = [ln.strip() for ln in text.splitlines()
                 if re.search(r"(Error|Exception|exited|crashed|Killed)\b", ln)]
        summary = " | ".join(dict.fromkeys(lines))[:1500] or text[:1500]
        raise AssertionError(f"Spark raised {type(e).__name__} without /{pattern}/: "
                             f"{summary!r}") from e
    raise AssertionError(f"Spark raised nothing; expected an error matching /{pattern}/")


# ---------------------------------------------------------------------- finite-difference checks
def _flat_views(x):
    """Flat float64 views of every array in a tensor or (nested) table."""
    if isinstance(x, (list, tuple)):
        return [v for t in x for v in _flat_views(t)]
    return [x.reshape(-1)]


def _dot(a, b):
    if isinstance(a, (list, tuple)):
        return sum(_dot(x, y) for x, y in zip(a, b))
    return float(np.sum(a * b))


def _random_like(x, rng):
    if isinstance(x, (list, tuple)):
        return [_random_like(t, rng) for t in x]
    return rng.standard_normal(np.shape(x))


def check_module_gradients(module, input, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0,
                           check_input=True, check_params=True):
    """Compare ``backward`` with central finite differences of ``sum(forward(x) * r)``.

    ``module`` must be in float64 (``module.double()``) and ``input`` a float64 array or table.
    Checks the input gradient and every parameter gradient.  Returns the largest error seen.
    """
    rng = np.random.default_rng(seed)
    out = module.forward(input)
    r = _random_like(out, rng)

    def objective():
        return _dot(module.forward(input), r)

    module.zero_grad_parameters()
    module.forward(input)
    gi = module.backward(input, r)
    gi = [np.array(v, copy=True) for v in _flat_views(gi)] if check_input else None
    analytic_params = {p: np.array(getattr(m, "grad_" + n), copy=True)
                       for p, m, n in module.named_parameters()}
    worst = 0.0
    targets = []
    if check_input:
        targets += [("input", v, g) for v, g in zip(_flat_views(input), gi)]
    if check_params:
        targets += [(p, getattr(m, n).reshape(-1), analytic_params[p].reshape(-1))
                    for p, m, n in module.named_parameters()]
    for what, flat, analytic in targets:
        numeric = np.zeros_like(analytic, dtype=np.float64)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = objective()
            flat[i] = old - eps
            down = objective()
            flat[i] = old
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{module.label()}: gradient of {what}")
        if numeric.size:
            worst = max(worst, float(np.max(np.abs(analytic - numeric))))
    return worst


def check_criterion_gradients(criterion, input, target, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Compare ``criterion.backward`` with central finite differences of the loss (float64)."""
    criterion.forward(input, target)
    analytic = [np.array(v, copy=True) for v in _flat_views(criterion.backward(input, target))]
    for flat, a in zip(_flat_views(input), analytic):
        numeric = np.zeros_like(a, dtype=np.float64)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = criterion.forward(input, target)
            flat[i] = old - eps
            down = criterion.forward(input, target)
            flat[i] = old
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(a, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{criterion.label()}: gradient of input")


def check_penalty_gradients(layer, x, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Gradient check of ``sum(forward(x) * r) + layer.loss`` for layers that add a penalty of
    their input (``loss``) and its gradient to the backward pass."""
    r = np.random.default_rng(seed).standard_normal(np.shape(x))

    def objective():
        return float(np.sum(layer.forward(x) * r)) + layer.loss

    layer.forward(x)
    analytic = np.array(layer.backward(x, r), copy=True).reshape(-1)
    flat = x.reshape(-1)
    numeric = np.zeros_like(flat)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = objective()
        flat[i] = old - eps
        down = objective()
        flat[i] = old
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------- layer parity, configs
def torch_parity(layer, torch_fn, inputs, params=(), rtol=1e-5, atol=1e-6, seed=0,
                 reference64=False):
    """Forward, input gradient and parameter gradients of a float32 ``layer`` against
    ``torch_fn(*input_tensors, *param_tensors)``, the parameters (named in ``params``) copied
    from the layer.  With ``reference64`` PyTorch computes in float64 (where its own float32
    kernel loses precision, e.g. the far tail of the tanh GELU)."""
    table = isinstance(inputs, list)
    xs = inputs if table else [inputs]
    as_ref = (lambda a: np.array(a, dtype=np.float64)) if reference64 else (
        lambda a: np.array(a, copy=True))
    txs = [torch.from_numpy(as_ref(x)).requires_grad_() for x in xs]
    tps = [torch.from_numpy(as_ref(getattr(layer, n))).requires_grad_() for n in params]
    ty = torch_fn(*txs, *tps)
    g = f32(tuple(ty.shape), seed=seed + 100)
    ty.backward(torch.from_numpy(as_ref(g)))
    layer.zero_grad_parameters()
    y = layer.forward(inputs)
    gi = layer.backward(inputs, g)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg=f"{layer!r}: forward")
    for ours, t in zip(gi if table else [gi], txs):
        assert ours.shape == tuple(t.shape)
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{layer!r}: grad input")
    for n, tp in zip(params, tps):
        np.testing.assert_allclose(getattr(layer, "grad_" + n), tp.grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=f"{layer!r}: grad {n}")


def config_round_trip(layer, probe=None):
    """``get_config`` survives JSON and rebuilds an equal layer (same class, repr, config and,
    given a ``probe`` input, the same output once the weights are copied over)."""
    layer.set_name("mine")
    config = json.loads(json.dumps(layer.get_config()))
    again = build_module(config)
    assert type(again) is type(layer)
    assert repr(again) == repr(layer)
    assert again.name() == "mine"
    assert again.get_config() == layer.get_config()
    if probe is not None:
        again.load_state_dict(layer.state_dict())
        layer.evaluate()
        again.evaluate()
        np.testing.assert_array_equal(again.forward(probe), layer.forward(probe))
    return again


class Reseeded(Module):
    """Runs ``inner`` with the same random seed on every forward, so a stochastic layer draws
    the same noise each time (finite differences re-run forward many times)."""

    def __init__(self, inner, seed=11):
        super().__init__()
        self.inner, self.seed = inner, seed

    def update_output(self, input):
        random.set_seed(self.seed)
        return self.inner.forward(input)

    def update_grad_input(self, input, grad_output):
        return self.inner.backward(input, grad_output)


def assert_torch_parity(layer, torch_fn, inputs, seed=0):
    """Forward and grad input of ``layer`` against ``torch_fn`` on float32 inputs."""
    table = isinstance(inputs, list)
    xs = inputs if table else [inputs]
    txs = [torch.from_numpy(x.copy()).requires_grad_() for x in xs]
    ty = torch_fn(*txs)
    g = normal(tuple(ty.shape), seed=seed + 100, dtype=np.float32)
    ty.backward(torch.from_numpy(g))
    y = layer.forward(inputs)
    gi = layer.backward(inputs, g)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    for ours, t in zip(gi if table else [gi], txs):
        assert ours.shape == tuple(t.shape)
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-5, atol=1e-6)


def run_both(layer, torch_fn, x, torch_params=()):
    """forward + backward of ``layer`` and of ``torch_fn(tx, *params)``; returns both sides."""
    y = layer.forward(x)
    g = rand(*y.shape, seed=11).astype(np.float32)
    layer.zero_grad_parameters()
    gi = layer.backward(x, g)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch_fn(tx, *torch_params)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="output")
    np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="grad input")


def flat(x):
    """The tensors of a tensor or (nested) table, depth first."""
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in flat(item)]
    return [x]


def _to_torch(x):
    if isinstance(x, (list, tuple)):
        return [_to_torch(t) for t in x]
    t = torch.from_numpy(np.array(x, copy=True))
    return t.requires_grad_() if t.is_floating_point() else t


def _like(structure, values):
    it = iter(values)

    def build(s):
        return [build(t) for t in s] if isinstance(s, (list, tuple)) else next(it)
    return build(structure)


def assert_parity(layer, torch_fn, inputs, params=None, seed=0, rtol=1e-5, atol=1e-6):
    """Forward, input gradients and parameter gradients of ``layer`` against ``torch_fn``.

    ``inputs`` is an array or a (nested) list; ``torch_fn`` gets the same structure of torch
    tensors.  ``params`` (optional) is a function called after both backward passes that returns
    ``[(our_gradient_array, torch_parameter), ...]``.
    """
    tx = _to_torch(inputs)
    ty = torch_fn(tx)
    touts = flat(list(ty) if isinstance(ty, tuple) else ty)
    gs = [normal(tuple(t.shape), seed + 100 + i, np.float32) for i, t in enumerate(touts)]
    torch.autograd.backward(touts, [torch.from_numpy(g.copy()) for g in gs])
    layer.zero_grad_parameters()
    y = layer.forward(inputs)
    ours = flat(y)
    assert len(ours) == len(touts)
    for o, t in zip(ours, touts):
        assert o.shape == tuple(t.shape), (o.shape, tuple(t.shape))
        np.testing.assert_allclose(o, t.detach().numpy(), rtol=rtol, atol=atol)
    gi = layer.backward(inputs, _like(y, gs) if isinstance(y, (list, tuple)) else gs[0])
    for o, t in zip(flat(gi), flat(tx)):
        assert o.shape == tuple(t.shape)
        if t.is_floating_point():
            expected = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
            np.testing.assert_allclose(o, expected, rtol=rtol, atol=atol)
    for ours_g, tparam in (params() if params else []):
        np.testing.assert_allclose(ours_g, tparam.grad.numpy().reshape(ours_g.shape),
                                   rtol=rtol, atol=atol)


def assert_config_round_trip(layer):
    layer.set_name("mine")
    config = json.loads(json.dumps(layer.get_config()))
    again = build_module(config)
    assert type(again) is type(layer)
    assert repr(again) == repr(layer)
    assert again.name() == "mine"
    assert again.get_config() == layer.get_config()
    return again


class _WithFixed(Module):
    """``inner`` fed ``[x, *fixed]``: finite differences then perturb ``x`` only (for masks and
    index vectors, which are not differentiable)."""

    def __init__(self, inner, *fixed):
        super().__init__()
        self.inner, self.fixed = inner, list(fixed)

    def update_output(self, input):
        return self.inner.forward([input] + self.fixed)

    def update_grad_input(self, input, grad_output):
        return self.inner.backward([input] + self.fixed, grad_output)[0]

    def named_parameters(self, trainable_only=False):
        return self.inner.named_parameters(trainable_only)

    def zero_grad_parameters(self):
        self.inner.zero_grad_parameters()


def with_fixed(inner, *fixed):
    return _WithFixed(inner, *fixed)


# ---------------------------------------------------------------------- native kernels
# hypothesis settings of the native-vs-numpy property tests (tests/native/test_kernels.py and
# the files that reuse them)
NATIVE_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                           suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.filter_too_much])


def _run_both(layer, x, gout):
    """(output, grad_input, grad_weight, grad_bias) with each backend, from zeroed gradients."""
    results = {}
    for name in ("numpy", "native"):
        backend.set_backend(name)
        layer.zero_grad_parameters()
        y = layer.forward(x).copy()
        gi = layer.backward(x, gout(y.shape)).copy()
        params = [getattr(layer, n).copy() for n in ("grad_weight", "grad_bias")
                  if hasattr(layer, n)]
        results[name] = [y, gi] + params
    return results


def _close(a, b, what, scale=1.0):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * max(1.0, scale), err_msg=what)


def _never_called(*args, **kwargs):
    raise AssertionError("native code reached with a bad shape")


# ---------------------------------------------------------------------- optim methods' problem
# A small tanh MLP with a squared loss on fixed data: non-convex, gradients of mixed scale.
STEPS = 20
_rng = np.random.default_rng(42)
X = _rng.standard_normal((24, 5))
Y = _rng.standard_normal((24, 3))
SHAPES = [(5, 8), (8,), (8, 3), (3,)]
W0 = np.concatenate([_rng.standard_normal(s).ravel() * 0.5 for s in SHAPES])


def _unflatten(flat):
    out, offset = [], 0
    for s in SHAPES:
        size = int(np.prod(s))
        out.append(torch.tensor(flat[offset:offset + size].reshape(s), requires_grad=True))
        offset += size
    return out


def _loss(params):
    w1, b1, w2, b2 = params
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    return ((torch.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2).mean()


def _flat(tensors):
    return np.concatenate([t.detach().numpy().ravel() for t in tensors])


def loss_and_grad(w):
    params = _unflatten(w.astype(np.float64))
    loss = _loss(params)
    loss.backward()
    return float(loss.detach()), _flat([p.grad for p in params]).astype(w.dtype)


def run_ours(method, steps=STEPS, w=None):
    w = W0.copy() if w is None else w
    for _ in range(steps):
        _, g = loss_and_grad(w)
        method.update(w, g)
    return w


def run_torch(make, steps=STEPS, per_step=None):
    params = _unflatten(W0)
    opt = make(params)
    for t in range(steps):
        if per_step:
            per_step(opt.param_groups[0], t)  # t: updates done before this one
        opt.zero_grad()
        _loss(params).backward()
        opt.step()
    return _flat(params)


def assert_same_trajectory(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-12)
    # the displacement too, so that small steps (Adadelta) are really compared
    np.testing.assert_allclose(ours - W0, theirs - W0, rtol=1e-5, atol=1e-12)
    assert np.abs(ours - W0).max() > 1e-4  # the methods did move


# ---------------------------------------------------------------------- load beside a run
# Here rather than in the test module: a spawned child imports its target by module name, and
# this module is importable by name wherever tests/ is on sys.path (conftest.py puts it there;
# spawn hands the parent's sys.path to the child), which a test module under
# --import-mode=importlib is not.
def _spin(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


class CpuHog:
    """A busy process on every core for the duration of a ``with`` block."""

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.procs = [ctx.Process(target=_spin, args=(self.stop,), daemon=True)
                      for _ in range(os.cpu_count() or 2)]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()


# ---------------------------------------------------------------------- TCP rings (spark.comm)
def make_rings(n, timeout=10.0):
    """``n`` connected ``spark.comm.Ring`` ends on 127.0.0.1, in rank order."""
    from workbench.spark.comm import Ring, listen
    servers = [listen("127.0.0.1") for _ in range(n)]
    addresses = [("127.0.0.1", s.getsockname()[1]) for s in servers]
    rings = [None] * n

    def build(r):
        rings[r] = Ring.connect(r, addresses, servers[r], "token", timeout=timeout)

    run_all(build, n)
    return rings


def run_all(fn, n):
    """Run ``fn(rank)`` for ranks ``0..n-1`` on threads; re-raise the first error."""
    errors = []

    def wrap(r):
        try:
            fn(r)
        except BaseException as e:  # collected and re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)  # bounds a hang only; a loaded machine may be slow
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a rank did not finish"


# ---------------------------------------------------------------------- multi-input models
def two_input_problem(n=120, seed=0):
    """``([X1, X2], y)``: 4 classes decided by both inputs (6 and 3 features)."""
    rng = np.random.default_rng(seed)
    X1 = rng.standard_normal((n, 6)).astype(np.float32)
    X2 = rng.standard_normal((n, 3)).astype(np.float32)
    y = (X1[:, 0] + X1[:, 1] > 0).astype(np.int64) + 2 * (X2[:, 0] > 0)
    return [X1, X2], y


def two_input_graph(seed=5):
    """BigDL's ``Graph([in1, in2], [out])``: a branch per input, joined, then a classifier."""
    from workbench.nn import Graph, Input, JoinTable, Linear, LogSoftMax, Tanh
    random.set_seed(seed)
    a, b = Input(), Input()
    ha, hb = Tanh()(Linear(6, 8)(a)), Tanh()(Linear(3, 4)(b))
    out = LogSoftMax()(Linear(12, 4)(JoinTable(2, 2)([ha, hb])))
    return Graph([a, b], [out])


def two_output_graph(seed=5):
    """One input, two outputs: class log-probabilities ``(N, 4)`` and a regression ``(N, 1)``
    (trained with ``ParallelCriterion``)."""
    from workbench.nn import Graph, Input, Linear, LogSoftMax, Tanh
    random.set_seed(seed)
    x = Input()
    h = Tanh()(Linear(6, 8)(x))
    return Graph([x], [LogSoftMax()(Linear(8, 4)(h)), Linear(8, 1)(h)])


def four_class_problem(n=203, seed=0):
    """``(X, y)``: 8 standard-normal features, 4 classes from the signs of three of them (the
    Spark training tests' task, small enough for a few iterations to move every weight)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + 2 * (X[:, 2] > 0)
    return X, y


def four_class_mlp(seed=5):
    """The 8-16-4 Tanh MLP (LogSoftMax output) for :func:`four_class_problem`, seeded."""
    from workbench.nn import Linear, LogSoftMax, Sequential, Tanh
    random.set_seed(seed)
    return Sequential().add(Linear(8, 16)).add(Tanh()).add(Linear(16, 4)).add(LogSoftMax())
