"""Shared test utilities: finite-difference gradient checks in float64, tolerances for
comparing two float32 kernel paths, and waiting on a condition (never on a fixed delay)."""
from __future__ import annotations

import math
import time

import numpy as np

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

