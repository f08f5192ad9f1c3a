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
from .module import (LayerError, Module, build_module, name_list, root_input_grad_unused,
                     shape_of)

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

    Fine-tuning (BigDL's ``Model``): ``freeze_up_to(names)`` freezes the named nodes and all
    their ancestors; ``stop_gradient(names)`` trains the named nodes but computes no gradient
    past them (the nodes that feed only them are never backward-called); ``new_graph(outputs)``
    cuts the graph at the named nodes (a feature extractor sharing the layers);
    ``replace(name, module)`` swaps a node's layer (e.g. the classifier head).
    """

    _honours_stop_gradient = True

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

    # ------------------------------------------------------------------ fine-tuning
    def _replace_child(self, i, module):
        self._nodes[i].module = module
        self._children[i] = module
        self._flat = None

    def _reached(self):
        """Which nodes a backward reaches from the outputs: not past a node that stops the
        gradient."""
        reached = [False] * len(self._nodes)
        stack = list(self._outputs)
        while stack:
            i = stack.pop()
            if reached[i]:
                continue
            reached[i] = True
            if not self._nodes[i].module._stops_gradient():
                stack.extend(self._prev[i])
        return reached

    def _stops_gradient(self):
        return super()._stops_gradient() or not any(
            r for i, r in enumerate(self._reached()) if i in self._inputs)

    def _gradient_cut(self):
        cut = set()
        for node, reached in zip(self._nodes, self._reached()):
            if reached:
                cut |= node.module._gradient_cut()
            else:
                cut.update(id(m) for m in node.module.modules())
        return cut

    def _freeze_up_to(self, targets):
        if id(self) in targets:
            self.freeze()
            return True
        found = False
        frozen = [False] * len(self._nodes)
        for i in range(len(self._nodes) - 1, -1, -1):
            module = self._nodes[i].module
            if frozen[i]:
                continue
            if id(module) in targets:
                frozen[i] = True
            elif any(id(m) in targets for m in module.modules()):
                module._freeze_up_to(targets)  # inside it; what feeds it is frozen whole
            else:
                continue
            found = True
            stack = list(self._prev[i])
            while stack:
                p = stack.pop()
                if not frozen[p]:
                    frozen[p] = True
                    stack.extend(self._prev[p])
        for i, f in enumerate(frozen):
            if f:
                self._nodes[i].module.freeze()
        return found

    def node(self, name):
        """The ``Node`` whose layer is named ``name`` (to build on it: ``Linear(..)(node)``)."""
        for n in self._nodes:
            if n.module.name() == name:
                return n
        known = [n.module.name() for n in self._nodes]
        raise ValueError(f"{self.label()}: no node named {name!r} (its nodes: "
                         f"{known[:12]}{' ...' if len(known) > 12 else ''})")

    def new_graph(self, outputs):
        """BigDL: a graph of the same inputs whose outputs are the nodes named ``outputs``:
        the graph cut after them, sharing the layers (and so the weights and frozen flags) with
        this one.  For fine-tuning, cut before the classifier and put a new head on it.

        Args:
            outputs: a node name or a list of them.

        Returns:
            a new ``Graph`` (a ``Model``).
        """
        names = name_list(outputs, f"{self.label()}.new_graph")
        outs = [self.node(n) for n in names]
        needed = set()
        stack = [id(n) for n in outs]
        by_id = {id(n): k for k, n in enumerate(self._nodes)}
        while stack:
            k = by_id[stack.pop()]
            if k not in needed:
                needed.add(k)
                stack.extend(id(p) for p in self._nodes[k].prev)
        inputs = [self._nodes[i] for i in self._inputs if i in needed]
        if not inputs:
            raise ValueError(f"{self.label()}.new_graph: {names} depend on no input")
        return Model(inputs, outs)

    newGraph = new_graph

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
        with root_input_grad_unused() as unused:
            return self._backward(input, grad_output, unused)

    def backward_params(self, input, grad_output):
        """``backward`` with no gradient w.r.t. the graph's inputs (training): a node computes
        its input gradient only if a trained layer comes before it, and a node with nothing
        trained up to it is not backward-called; returns None."""
        with root_input_grad_unused():  # said explicitly here; nested calls need theirs
            return self._backward(input, grad_output, True)

    def _backward(self, input, grad_output, skip_input):
        nodes, prev = self._nodes, self._prev
        stops = [n.module._stops_gradient() for n in nodes]
        if skip_input:
            # trained[i]: a backward of node i or of a node feeding it (past no stop) trains
            trained = [False] * len(nodes)
            for i, n in enumerate(nodes):
                trained[i] = n.module._is_trained() or (
                    not stops[i] and any(trained[p] for p in prev[i]))
        grads = [None] * len(nodes)

        def accumulate(i, g):
            grads[i] = g if grads[i] is None else add_tables(grads[i], g)

        if len(self._outputs) == 1:
            accumulate(self._outputs[0], grad_output)
        else:
            for k, o in enumerate(self._outputs):
                accumulate(o, grad_output[k])
        input_grads = {}
        for i in range(len(nodes) - 1, -1, -1):
            if grads[i] is None or skip_input and not trained[i]:
                continue
            module = nodes[i].module
            if stops[i] or skip_input and not any(trained[p] for p in prev[i]):
                module.backward_params(self._node_inputs[i], grads[i])
                continue
            gi = module.backward(self._node_inputs[i], grads[i])
            if gi is None:  # a nested container stopped the gradient
                continue
            if i in self._inputs:
                input_grads[i] = gi
            elif len(prev[i]) == 1:
                accumulate(prev[i][0], gi)
            else:
                for p, g in zip(prev[i], gi):
                    if g is not None:
                        accumulate(p, g)
        if skip_input:
            self.grad_input = None
            return None
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
