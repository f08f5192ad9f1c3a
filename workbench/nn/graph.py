"""Graph models: ``Input()`` nodes, layers called on nodes, ``Model(inputs, outputs)``.

Example::

    x = Input()
    h = ReLU()(Linear(4, 8)(x))
    left, right = Linear(8, 3)(h), Linear(8, 3)(h)      # h feeds two branches
    model = Model(x, CAddTable()(left, right))
"""
from __future__ import annotations

from .._config import ConfigError
from .containers import Container, indent, add_tables
from .module import LayerError, Module, build_module, shape_of

__all__ = ["Input", "InputLayer", "Node", "Graph", "Model"]


class Node:
    """A layer placed in a graph, fed by the outputs of ``prev`` nodes."""

    def __init__(self, module, prev):
        self.module = module
        self.prev = list(prev)

    def __repr__(self):
        return f"Node({self.module!r})"


class InputLayer(Module):
    """The identity layer behind an ``Input()`` node."""

    def update_output(self, input):
        return input

    def update_grad_input(self, input, grad_output):
        return grad_output


def Input(name=None):
    """A graph input node (BigDL's ``Input()``)."""
    layer = InputLayer()
    if name is not None:
        layer.set_name(name)
    return Node(layer, [])


def _as_nodes(x, what):
    nodes = list(x) if isinstance(x, (list, tuple)) else [x]
    if not nodes or not all(isinstance(n, Node) for n in nodes):
        raise TypeError(f"Graph: {what} must be a Node or a list of Nodes")
    return nodes


class Graph(Container):
    """A directed acyclic graph of layers, from ``Input()`` nodes to output nodes.

    Args:
        inputs: the input node, or a list of them (the model then takes a table).
        outputs: the output node, or a list of them (the model then returns a table).

    A node may feed several others (shared branches); its gradient is the sum of theirs.
    Each layer instance may appear in one node only.
    """

    def __init__(self, inputs, outputs):
        super().__init__()
        self._init_args = {}  # nodes are saved as modules + edges, see get_config
        inputs, outputs = _as_nodes(inputs, "inputs"), _as_nodes(outputs, "outputs")
        order, state = [], {}

        def visit(node):
            mark = state.get(id(node))
            if mark == 1:
                raise ValueError(f"Graph: cycle through {node.module.label()}")
            if mark == 2:
                return
            state[id(node)] = 1
            for p in node.prev:
                visit(p)
            state[id(node)] = 2
            order.append(node)

        for n in inputs:
            visit(n)
        for n in outputs:
            visit(n)
        index = {id(n): i for i, n in enumerate(order)}
        for n in order:
            if not n.prev and not any(n is i for i in inputs):
                raise ValueError(f"Graph: {n.module.label()} has no inputs "
                                 "and is not a graph input")
        if len({id(n.module) for n in order}) != len(order):
            raise ValueError("Graph: a layer instance is used in more than one node; "
                             "create a separate layer for each use")
        self._nodes = order
        self._prev = [[index[id(p)] for p in n.prev] for n in order]
        self._inputs = [index[id(n)] for n in inputs]
        self._outputs = [index[id(n)] for n in outputs]
        self._children = [n.module for n in order]
        self._node_inputs = [None] * len(order)

    def add(self, module):
        raise TypeError("Graph: build graphs by calling layers on nodes, not with add()")

    def update_output(self, input):
        n_in = len(self._inputs)
        if n_in > 1 and (not isinstance(input, (list, tuple)) or len(input) != n_in):
            raise LayerError(f"{self.label()}: expected a table of {n_in} inputs, "
                             f"got {shape_of(input)}")
        feeds = {pos: (input[k] if n_in > 1 else input) for k, pos in enumerate(self._inputs)}
        values = [None] * len(self._nodes)
        for i, node in enumerate(self._nodes):
            if i in feeds:
                x = feeds[i]
            elif len(self._prev[i]) == 1:
                x = values[self._prev[i][0]]
            else:
                x = [values[p] for p in self._prev[i]]
            self._node_inputs[i] = x
            values[i] = node.module.forward(x)
        outs = [values[o] for o in self._outputs]
        return outs[0] if len(outs) == 1 else outs

    def backward(self, input, grad_output):
        grads = [None] * len(self._nodes)

        def accumulate(i, g):
            grads[i] = g if grads[i] is None else add_tables(grads[i], g)

        if len(self._outputs) == 1:
            accumulate(self._outputs[0], grad_output)
        else:
            for k, o in enumerate(self._outputs):
                accumulate(o, grad_output[k])
        input_grads = {}
        for i in range(len(self._nodes) - 1, -1, -1):
            if grads[i] is None:
                continue
            gi = self._nodes[i].module.backward(self._node_inputs[i], grads[i])
            if i in self._inputs:
                input_grads[i] = gi
            elif len(self._prev[i]) == 1:
                accumulate(self._prev[i][0], gi)
            else:
                for p, g in zip(self._prev[i], gi):
                    accumulate(p, g)
        result = [input_grads.get(i) for i in self._inputs]
        self.grad_input = result[0] if len(result) == 1 else result
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def get_config(self):
        config = Module.get_config(self)
        config["modules"] = [c.get_config() for c in self._children]
        config["edges"] = self._prev
        config["inputs"] = self._inputs
        config["outputs"] = self._outputs
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        try:
            modules = [build_module(c) for c in config["modules"]]
            edges, ins, outs = config["edges"], config["inputs"], config["outputs"]
            if len(edges) != len(modules):
                raise ConfigError("Graph: one edge list per module expected")
            nodes = []
            for m, prev in zip(modules, edges):
                if any(not isinstance(p, int) or not 0 <= p < len(nodes) for p in prev):
                    raise ConfigError(f"Graph: bad edge list {prev!r}")
                nodes.append(Node(m, [nodes[p] for p in prev]))
            return cls([nodes[i] for i in ins], [nodes[i] for i in outs])
        except (KeyError, IndexError, TypeError) as e:
            raise ConfigError(f"Graph: malformed config ({e})") from None

    def __repr__(self):
        lines = ["nn.Graph {"]
        for i, node in enumerate(self._nodes):
            src = ", ".join(f"({p + 1})" for p in self._prev[i]) or "input"
            lines.append(f"  ({i + 1}): {src} -> {indent(repr(node.module))}")
        lines.append("  output: " + ", ".join(f"({o + 1})" for o in self._outputs))
        return "\n".join(lines) + "\n}"


class Model(Graph):
    """BigDL's name for a graph model: ``Model(inputs, outputs)``.

    It also carries BigDL's loaders as static methods (``Model.loadModel``,
    ``Model.load_caffe_model``, ``Model.load_caffe``, ``Model.load_torch``,
    ``Model.load_keras``): thin doors to
    ``workbench.io``, imported when called (the one place ``nn`` reaches up to ``io``; the
    readers never execute anything from the file).
    """

    @staticmethod
    def loadModel(model_path, weight_path=None):  # noqa: N802 - BigDL's name
        """A model saved with ``saveModel`` / ``workbench.io.save_model``."""
        from .. import io
        return io.loadModel(model_path, weight_path)

    @staticmethod
    def load(path):
        """BigDL's ``Model.load(path)``: the same as :meth:`loadModel`."""
        from .. import io
        return io.load_model(path)

    @staticmethod
    def load_caffe_model(def_path, model_path):
        """A new model from a Caffe prototxt and caffemodel (see ``workbench.io.caffe``)."""
        from .. import io
        return io.load_caffe_model(def_path, model_path)

    @staticmethod
    def load_caffe(model, def_path, model_path, match_all=True):
        """Caffe weights into ``model``'s layers of the same names (``match_all``: every layer
        of ``model`` with weights must be found)."""
        from .. import io
        return io.load_caffe(model, def_path, model_path, match_all)

    @staticmethod
    def load_keras(json_path=None, hdf5_path=None, by_name=False):
        """A Keras model: a JSON architecture and/or HDF5 weights, a full ``.h5`` or a
        ``.keras`` archive (see ``workbench.io.keras``; the model takes NHWC images as Keras's
        does)."""
        from .. import io
        return io.load_keras(json_path, hdf5_path, by_name)

    @staticmethod
    def load_torch(path):
        """A model from a Torch7 binary ``.t7`` file (see ``workbench.io.torch7``)."""
        from .. import io
        return io.load_torch(path)
