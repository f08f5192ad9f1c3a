"""Test utilities for layers whose inputs and outputs may be (nested) tables: PyTorch parity of
forward, input gradients and parameter gradients, and config round trips."""
from __future__ import annotations

import json

import numpy as np
from oracle import torch

from workbench.nn import Module
from workbench.nn.module import build_module


def normal(shape, seed=0, dtype=np.float64, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def f32(shape, seed=0, scale=1.0):
    return normal(shape, seed, np.float32, scale)


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
