"""Shared test utilities: finite-difference gradient checks in float64."""
from __future__ import annotations

import numpy as np


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


F32_EPS = float(np.finfo(np.float32).eps)


def close_f32(actual, desired, reduction=1, factor=4.0):
    """Assert two float32 results of different kernel paths agree within float32 rounding.

    Two correct paths differ by their rounding only: each output is a sum of ``reduction``
    products (a dot product's length, a recurrence's ``input + hidden``), whose float32 error is
    bounded by about ``reduction * eps`` of the magnitude of the terms.  The tolerance is
    ``factor * reduction * eps`` relative to the largest value of ``desired`` (a wrong term or
    sign is orders of magnitude beyond it).
    """
    desired = np.asarray(desired)
    tol = factor * reduction * F32_EPS
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol * scale)
