"""Containers: Sequential, Concat, ConcatTable, ParallelTable (Torch7 / BigDL semantics)."""
from __future__ import annotations

import numpy as np

from .._config import ConfigError
from . import layout
from .module import (GradPool, LayerError, Module, active_grad_pool, build_module,
                     root_input_grad_unused, shape_of)

__all__ = ["Container", "Sequential", "Concat", "ConcatTable", "ParallelTable"]


def add_tables(a, b):
    """Element-wise sum of two tensors or two (nested) tables, in a new object."""
    if isinstance(a, (list, tuple)):
        return [add_tables(x, y) for x, y in zip(a, b)]
    return a + b


def indent(text, tab="  "):
    return text.replace("\n", "\n" + tab)


class Container(Module):
    """A module made of child modules (``add`` them in order)."""

    def __init__(self):
        super().__init__()
        self._children: list[Module] = []

    def add(self, module):
        """Append a child module; returns the container so calls can be chained."""
        if not isinstance(module, Module):
            raise TypeError(f"{self.label()}.add expects a Module, got {type(module).__name__}")
        self._children.append(module)
        self._flat = None
        return self

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return self._children[i]

    def get(self, i):
        """The i-th child (zero-based)."""
        return self._children[i]

    def _replace_child(self, i, module):
        self._children[i] = module
        self._flat = None

    def _gradient_cut(self):
        cut = set()
        for child in self._children:
            cut |= child._gradient_cut()
        return cut

    def modules(self):
        yield self
        for child in self._children:
            yield from child.modules()

    def _walk(self, prefix):
        yield prefix, self
        for i, child in enumerate(self._children):
            yield from child._walk(f"{prefix}{i}.")

    def get_config(self):
        config = super().get_config()
        config["modules"] = [c.get_config() for c in self._children]
        return config

    @classmethod
    def _build_from_config(cls, config, positional, args):
        container = cls(*positional, **args)
        children = config.get("modules", [])
        if not isinstance(children, list):
            raise ConfigError(f"{cls.__name__}: 'modules' must be a list")
        for child in children:
            container.add(build_module(child))
        return container

    def _child_repr(self, i):
        return indent(repr(self._children[i]))


class Sequential(Container):
    """Feeds the output of each child to the next.

    A child with a ``fused_forward`` method (``SpatialConvolution``, the batch norms) may run
    itself and a following ``ReLU`` in one native pass.  The outermost ``Sequential`` of a backward
    pass shares the gradient buffers of its layers (``module.GradPool``): afterwards only its own
    ``grad_input`` (the one returned) is kept, the children's ``grad_input`` are None.

    Fine-tuning: ``freeze_up_to(name)`` freezes the children up to the named one;
    ``stop_gradient(name)`` trains the named child but none before it; ``replace(name, module)``,
    ``insert`` and ``remove`` change the children (e.g. the classifier head).  Under training
    (``backward_params``) the backward of the children before the first trainable one is
    skipped.

    Example: ``Sequential().add(Linear(784, 100)).add(ReLU()).add(Linear(100, 10))``
    """

    _honours_stop_gradient = True

    def insert(self, module, index=None):
        """Insert a child at ``index`` (zero-based, as ``get``; default: append)."""
        if not isinstance(module, Module):
            raise TypeError(f"{self.label()}.insert expects a Module, got "
                            f"{type(module).__name__}")
        n = len(self._children)
        if index is None:
            index = n
        if not isinstance(index, int) or not -n <= index <= n:
            raise IndexError(f"{self.label()}.insert: index must be an int in [{-n}, {n}], "
                             f"got {index!r}")
        self._children.insert(index, module)
        self._flat = None
        return self

    def remove(self, index=None):
        """Remove the child at ``index`` (zero-based; default: the last, e.g. the classifier
        head) and return it."""
        n = len(self._children)
        if index is None:
            index = n - 1
        if not isinstance(index, int) or not -n <= index < n:
            raise IndexError(f"{self.label()}.remove: index must be an int in [{-n}, {n - 1}], "
                             f"got {index!r}")
        self._flat = None
        return self._children.pop(index)

    def _stops_gradient(self):
        return super()._stops_gradient() or any(c._stops_gradient() for c in self._children)

    def _last_stop(self):
        """Index of the last child that stops the gradient (0 if none)."""
        for i in range(len(self._children) - 1, -1, -1):
            if self._children[i]._stops_gradient():
                return i
        return 0

    def _gradient_cut(self):
        k = self._last_stop()
        cut = {id(m) for c in self._children[:k] for m in c.modules()}
        for c in self._children[k:]:
            cut |= c._gradient_cut()
        return cut

    def _freeze_up_to(self, targets):
        if id(self) in targets:
            self.freeze()
            return True
        for i in range(len(self._children) - 1, -1, -1):
            child = self._children[i]
            if any(id(m) in targets for m in child.modules()):
                for c in self._children[:i]:
                    c.freeze()
                child._freeze_up_to(targets)
                return True
        return False

    def _first_to_run(self, skip_input):
        """The lowest child whose backward runs: none before the last ``stop_gradient`` child,
        and, when the input gradient is unused, none before the first trained child."""
        start = self._last_stop()
        if skip_input:
            n = len(self._children)
            while start < n and not self._children[start]._is_trained():
                start += 1
        return start

    def update_output(self, input):
        # A child with ``fused_forward`` (e.g. SpatialBatchNormalization, SpatialConvolution) may
        # run itself and the next child (a ReLU) in one native pass; it returns None if not.
        x, children, i = input, self._children, 0
        while i < len(children):
            fused = getattr(children[i], "fused_forward", None)
            if fused is not None and i + 1 < len(children):
                out = fused(x, children[i + 1])
                if out is not None:
                    x, i = out, i + 2
                    continue
            x = children[i].forward(x)
            i += 1
        return x

    def backward(self, input, grad_output):
        # The outermost Sequential pools the gradient buffers of the pass (module.GradPool): a
        # child's grad_input is dropped once the child below has consumed it, so only the
        # container's own grad_input (the one returned) outlives the pass.
        # Inside input_grad_unused() the root Sequential skips the gradient w.r.t. its input.
        with root_input_grad_unused() as unused:
            if active_grad_pool() is not None:
                return self._backward(input, grad_output, True)
            return self._pooled(input, grad_output, unused)

    def backward_params(self, input, grad_output):
        """``backward`` with no gradient w.r.t. ``input``: the first child runs its own
        ``backward_params`` (see ``Module.backward_params``); returns None."""
        with root_input_grad_unused():  # said explicitly here; nested calls need theirs
            if active_grad_pool() is not None:
                return self._backward(input, grad_output, True, True)
            return self._pooled(input, grad_output, True)

    def _pooled(self, input, grad_output, skip_first):
        # kept with the scratch buffers: never pickled (models ship to Spark executors)
        pool = self.__dict__.setdefault("_scratch", {}).setdefault("grad_pool", GradPool())
        with pool.active():
            return self._backward(input, grad_output, True, skip_first)

    def _backward(self, input, grad_output, release, skip_first=False):
        # children below ``start`` get no backward at all (stop_gradient, or nothing trained
        # there when the input gradient is unused); child ``start`` computes no input gradient
        # unless this container's own is needed
        grad = grad_output
        children = self._children
        n = len(children)
        start = self._first_to_run(skip_first)
        for i in range(n - 1, start - 1, -1):
            child = children[i]
            below = children[i - 1].output if i > 0 else input
            if i == start and (start > 0 or skip_first):
                grad = child.backward_params(below, grad)
            elif i > 0 and children[i - 1].__dict__.get("_scratch", {}).get(
                    "fused_relu") is child:
                child.grad_input = grad  # fused: the child below masks it
            else:
                grad = child.backward(below, grad)
            if release and i < n - 1:
                for m in children[i + 1].modules():
                    m.grad_input = None
            if grad is None:  # a nested container stopped the gradient
                break
        if start > 0:
            grad = None
        self.grad_input = grad
        return grad

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def __repr__(self):
        chain = " -> ".join(f"({i + 1})" for i in range(len(self._children)))
        lines = ["nn.Sequential {",
                 f"  [input -> {chain} -> output]" if chain else "  [input -> output]"]
        lines += [f"  ({i + 1}): {self._child_repr(i)}" for i in range(len(self._children))]
        return "\n".join(lines) + "\n}"


class _Branches(Container):
    """Shared printing for containers whose children see the input side by side."""

    def __repr__(self):
        name = type(self).__name__
        lines = [f"nn.{name} {{", "  input"]
        lines += [f"    |`-> ({i + 1}): {indent(self._child_repr(i), '    |      ')}"
                  for i in range(len(self._children))]
        lines.append("     ... -> output")
        return "\n".join(lines) + "\n}"


class ConcatTable(_Branches):
    """Applies every child to the same input; the output is the table of their outputs."""

    def update_output(self, input):
        return [child.forward(input) for child in self._children]

    def backward(self, input, grad_output):
        with root_input_grad_unused():  # the children's input gradients are summed
            return self._backward(input, grad_output)

    def _backward(self, input, grad_output):
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != len(self._children):
            raise LayerError(f"{self.label()}: expected a table of {len(self._children)} "
                             f"gradients, got {shape_of(grad_output)}")
        total, pool = None, active_grad_pool()
        for child, g in zip(self._children, grad_output):
            gi = child.backward(input, g)
            if total is None:
                total = gi
            elif pool is not None and isinstance(total, np.ndarray) and \
                    isinstance(gi, np.ndarray) and total.shape == gi.shape and \
                    total.dtype == gi.dtype:
                # not total or gi: both are referenced; in total's memory format (nn.layout)
                out = pool.take(total.shape, total.dtype, layout.is_channels_last(total))
                np.add(total, gi, out=out)
                total = out
            else:
                total = add_tables(total, gi)
        self.grad_input = total
        return total

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)


class Concat(_Branches):
    """Applies every child to the same input and joins the outputs along ``dimension``.

    Args:
        dimension: the dimension to join along, 1-based and counting the batch dimension as in
            BigDL/Torch (``Concat(2)`` joins the channels of ``(N, C, H, W)`` outputs).
    """

    def __init__(self, dimension):
        super().__init__()
        if int(dimension) < 1:
            raise ValueError(f"Concat: dimension is 1-based, got {dimension!r}")
        self.dimension = int(dimension)

    def update_output(self, input):
        outs = [child.forward(input) for child in self._children]
        axis = self.dimension - 1
        if any(o.ndim <= axis for o in outs):
            raise LayerError(f"{self.label()}: cannot join outputs {shape_of(outs)} along "
                             f"dimension {self.dimension}")
        try:
            return np.concatenate(outs, axis=axis)
        except ValueError as e:
            raise LayerError(f"{self.label()}: child outputs {shape_of(outs)} do not fit along "
                             f"dimension {self.dimension}: {e}") from None

    def backward(self, input, grad_output):
        with root_input_grad_unused():  # the children's input gradients are joined
            return self._backward(input, grad_output)

    def _backward(self, input, grad_output):
        axis = self.dimension - 1
        total, offset = None, 0
        for child in self._children:
            size = child.output.shape[axis]
            g = np.take(grad_output, np.arange(offset, offset + size), axis=axis)
            offset += size
            gi = child.backward(input, g)
            total = np.array(gi, copy=True) if total is None else add_tables(total, gi)
        self.grad_input = total
        return total

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def extra_repr(self):
        return str(self.dimension)


class ParallelTable(_Branches):
    """Applies the i-th child to the i-th element of the input table."""

    def update_output(self, input):
        if not isinstance(input, (list, tuple)) or len(input) != len(self._children):
            raise LayerError(f"{self.label()}: expected a table of {len(self._children)} inputs, "
                             f"got {shape_of(input)}")
        return [child.forward(x) for child, x in zip(self._children, input)]

    def backward(self, input, grad_output):
        with root_input_grad_unused():
            self.grad_input = [child.backward(x, g)
                               for child, x, g in zip(self._children, input, grad_output)]
        return self.grad_input

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)
