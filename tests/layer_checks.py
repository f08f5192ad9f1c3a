"""Checks shared by the issue-6 layer tests (activation, element-wise, padding, normalization,
noise): PyTorch parity including parameter gradients, config round trips, penalty-aware
gradient checks, and a wrapper that fixes the random draws of stochastic layers."""
from __future__ import annotations

import json

import numpy as np
from oracle import torch

from helpers import check_module_gradients
from workbench.nn import Module, random
from workbench.nn.module import build_module


def normal(shape, seed=0, dtype=np.float64, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def f32(shape, seed=0, scale=1.0):
    return normal(shape, seed, np.float32, scale)


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


__all__ = ["normal", "f32", "away_from", "torch_parity", "config_round_trip", "Reseeded",
           "check_penalty_gradients", "check_module_gradients"]
