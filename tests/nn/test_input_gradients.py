"""Training skips the gradient w.r.t. the data: ``input_grad_unused()`` and ``backward_params``.

Inside the block a root ``Sequential``'s first layer (Linear, SpatialConvolution) accumulates
its parameter gradients only; every parameter gradient must equal a full backward's, any other
first layer runs its full backward, and bad gradients still fail in Python.
"""
from __future__ import annotations

import numpy as np
import pytest

from workbench.nn import (LayerError, Linear, LogSoftMax, ReLU, Sequential,
                          SpatialBatchNormalization, SpatialConvolution, Tanh, backend)
from workbench.nn.module import input_grad_is_unused, input_grad_unused


def _grads(model, x, g, skip):
    model.zero_grad_parameters()
    model.forward(x)
    if skip:
        with input_grad_unused():
            gi = model.backward(x, g)
    else:
        gi = model.backward(x, g)
    return gi, model.get_parameters()[1].copy()


def _models():
    mlp = Sequential().add(Linear(12, 16)).add(ReLU()).add(Linear(16, 5)).add(LogSoftMax())
    nested = Sequential().add(Sequential().add(Linear(12, 16)).add(Tanh())).add(Linear(16, 5))
    conv = (Sequential().add(SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1)).add(ReLU())
            .add(SpatialConvolution(16, 4, 3, 3)))
    return [("mlp", mlp, (8, 12)), ("nested", nested, (8, 12)), ("conv_relu", conv, (2, 3, 6, 6))]


@pytest.mark.parametrize("backend_name", ["native", "numpy"])
@pytest.mark.parametrize("name, model, shape", _models(), ids=[m[0] for m in _models()])
def test_parameter_gradients_equal_a_full_backward(backend_name, name, model, shape,
                                                   monkeypatch):
    previous = backend.set_backend(backend_name)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(np.float32)
        y = model.forward(x)
        g = rng.standard_normal(y.shape).astype(np.float32)
        gi_full, full = _grads(model, x, g, skip=False)
        assert gi_full is not None and gi_full.shape == x.shape
        first = model[0]
        while isinstance(first, Sequential):
            first = first[0]
        calls = []
        original = type(first).update_grad_input
        monkeypatch.setattr(type(first), "update_grad_input",
                            lambda self, *a: calls.append(self) or original(self, *a))
        gi, skipped = _grads(model, x, g, skip=True)
        assert gi is None and first not in calls, name
        np.testing.assert_allclose(skipped, full, rtol=1e-5, atol=1e-6, err_msg=name)
        assert not input_grad_is_unused()
        # outside the block the gradient is computed again
        monkeypatch.undo()
        gi_again, again = _grads(model, x, g, skip=False)
        np.testing.assert_allclose(gi_again, gi_full, rtol=1e-5, atol=1e-6)
    finally:
        backend.set_backend(previous)


def test_a_layer_that_needs_its_input_gradient_runs_full_backward():
    model = Sequential().add(SpatialBatchNormalization(3)).add(SpatialConvolution(3, 2, 1, 1))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    g = rng.standard_normal((4, 2, 5, 5)).astype(np.float32)
    model.training()
    _, full = _grads(model, x, g, skip=False)
    gi, skipped = _grads(model, x, g, skip=True)
    assert gi is not None and gi.shape == x.shape  # batch norm has no backward_params
    np.testing.assert_allclose(skipped, full, rtol=1e-5, atol=1e-6)


def test_frozen_first_layer_and_bad_gradient():
    model = Sequential().add(Linear(4, 3).set_name("fc1")).add(ReLU()).add(Linear(3, 2))
    x = np.ones((5, 4), np.float32)
    model.forward(x)
    model[0].freeze()
    model.zero_grad_parameters()
    with input_grad_unused():
        model.backward(x, np.ones((5, 2), np.float32))
    assert not model[0].grad_weight.any()
    model[0].unfreeze()
    first = Sequential().add(Linear(4, 3).set_name("fc1"))
    first.forward(x)
    with input_grad_unused(), pytest.raises(LayerError, match=r"fc1.*\(5, 3\).*\(5, 2\)"):
        first.backward(x, np.ones((5, 2), np.float32))


def test_optimizer_trains_with_the_skip():
    from workbench.nn import ClassNLLCriterion
    from workbench.optim import SGD, MaxIteration, Optimizer
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = Sequential().add(Linear(6, 8)).add(ReLU()).add(Linear(8, 2)).add(LogSoftMax())
    before = model[0].weight.copy()
    seen = []   # (layer, the input gradient it handed back) after each Linear's backward
    methods = {name: getattr(Linear, name) for name in ("backward", "backward_params")}

    def spying(name):
        def spy(self, *args):
            out = methods[name](self, *args)
            seen.append((self, out))
            return out
        return spy
    for name in methods:
        setattr(Linear, name, spying(name))
    try:
        Optimizer(model, (x, y), ClassNLLCriterion(), MaxIteration(5), batch_size=16,
                  optim_method=SGD(learningrate=0.1), progress=False).optimize()
    finally:
        for name, method in methods.items():
            setattr(Linear, name, method)
    first = [g for layer, g in seen if layer is model[0]]
    second = [g for layer, g in seen if layer is model[2]]
    assert len(first) == len(second) == 5
    assert all(g is None for g in first)  # the first Linear's input gradient was skipped
    assert all(g is not None and g.shape == (16, 8) for g in second)  # the second propagates
    assert not np.array_equal(model[0].weight, before)  # and the first layer still learns
