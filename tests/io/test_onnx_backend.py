"""The ONNX backend node tests, run over ``load_onnx`` as an external conformance suite.

``onnx.backend.test`` generates its node cases in memory (one single-node model plus reference
inputs and outputs each).  Our backend imports each model with ``load_onnx`` and runs it with our
layers.  The cases are restricted (``include``) to the ops the importer covers; within them, a
case the importer refuses (an attribute, dtype or rank we do not express) is *skipped* with
``unittest.SkipTest`` — never reported as passed — and a wrong number is a failure.

A node test feeds the weights of e.g. ``Conv`` as graph inputs; a workbench layer holds its
weights, so at ``run`` the inputs in weight slots (every input but the data ones) become
initializers before the import, as they would be in a real model file.
"""
import os
import re
import tempfile
import unittest

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx.backend.base import Backend, BackendRep  # noqa: E402
from onnx.backend.test import BackendTest  # noqa: E402
from onnx.backend.test import loader as _loader  # noqa: E402

from workbench.io.onnx import SUPPORTED_OPS, OnnxError, load_onnx  # noqa: E402

# ops whose every input is data (a tensor of the graph); other ops take data in input 0 only
_ALL_DATA = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Concat"}
_FLOATS = (np.float32, np.float64)


class WorkbenchRep(BackendRep):
    def __init__(self, model):
        self.model = model

    def run(self, inputs, **kwargs):
        graph = self.model.graph
        names = [i.name for i in graph.input
                 if i.name not in {t.name for t in graph.initializer}]
        arrays = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
        if len(arrays) != len(names):
            raise unittest.SkipTest("inputs do not match the graph's inputs")
        weight_slots = set()
        for node in graph.node:
            slots = () if node.op_type in _ALL_DATA else range(1, len(node.input))
            weight_slots.update(node.input[i] for i in slots if node.input[i])
        data_names = [n for n in names if n not in weight_slots]
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        feeds = []
        for name, arr in zip(names, arrays):
            arr = np.asarray(arr)
            if name in weight_slots and name not in data_names:
                model.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
            else:
                if arr.dtype.type not in _FLOATS:
                    raise unittest.SkipTest(f"input dtype {arr.dtype} (floats only)")
                feeds.append(arr)
        if not feeds:
            raise unittest.SkipTest("no data input")
        try:
            module = load_onnx(model.SerializeToString())
        except OnnxError as e:
            raise unittest.SkipTest(f"not supported: {e}") from None
        if feeds[0].dtype == np.float64:
            module.double()
        out = module.forward(feeds if len(feeds) > 1 else feeds[0])
        outs = out if isinstance(out, list) else [out]
        return [np.asarray(o) for o in outs]


class WorkbenchBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        return all(n.op_type in SUPPORTED_OPS and n.domain in ("", "ai.onnx")
                   for n in model.graph.node)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        if not cls.is_compatible(model):
            raise unittest.SkipTest("an op outside workbench's importer")
        return WorkbenchRep(model)

    @classmethod
    def supports_device(cls, device):
        return device == "CPU"


def _snake(op):
    out = ""
    for i, ch in enumerate(op):
        out += ("_" if ch.isupper() and i and not op[i - 1].isupper() else "") + ch.lower()
    return out


# the node-test names of our ops (BatchNormalization's cases are test_batchnorm_*, Constant's
# test_constant, Pad's test_constant_pad)
_NAMES = sorted({op.lower() for op in SUPPORTED_OPS} | {_snake(op) for op in SUPPORTED_OPS}
                | {"batchnorm", "constant_pad"})



def _our_node_cases():
    """onnx's node cases of our ops only.  onnx generates every op's cases when its case module
    is imported (~25 s of CPU for all of them, in every pytest-xdist process that collects this
    file); the modules are named after their op, so only ours are imported."""
    import importlib
    import pkgutil

    from onnx.backend.test.case import node as cases
    modules = {m.name for m in pkgutil.iter_modules(cases.__path__)}
    missing = []
    for op in sorted(SUPPORTED_OPS):
        found = {op.lower(), _snake(op)} & modules
        if not found:
            missing.append(op)
        for name in sorted(found):
            importlib.import_module(f"{cases.__name__}.{name}")
    assert not missing, f"no onnx node-case module for {missing}: onnx renamed one"
    return cases._NodeTestCases


os.environ["ONNX_HOME"] = tempfile.mkdtemp(prefix="onnx_home_")
_loader.load_node_model_tests = _our_node_cases  # read by BackendTest through load_model_tests
_backend_test = BackendTest(WorkbenchBackend, __name__)
_OURS = re.compile(r"^test_(" + "|".join(_NAMES) + r")(_.*)?_cpu$")
_backend_test.include(_OURS.pattern)
# only the generated node cases of our ops are collected: onnx would report every other case
# (the shipped model files, the ops we do not cover) as one more skip and blur the counts
NodeTests = _backend_test.test_cases["OnnxBackendNodeModelTest"]
for _name in [n for n in vars(NodeTests) if n.startswith("test_") and not _OURS.match(n)]:
    delattr(NodeTests, _name)
