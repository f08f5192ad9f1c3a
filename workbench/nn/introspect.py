"""Looking inside a model: its summary (layer tree, output shapes, parameter counts) and a
per-layer timing of one forward and backward pass.

Both watch a real pass through the model the same way: for the length of one pass, each
module's ``forward``, ``backward``, ``backward_params`` (and ``fused_forward``) are shadowed by
instance attributes that call the class's method and note what happened.  Containers call their
children through these names, so every level is seen; the arithmetic is the class's own,
untouched, which is why a profiled iteration gives the same bits as an unprofiled one.  The
shadows are removed when the pass ends (a model with them could not be pickled to Spark).
"""
from __future__ import annotations

import html
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .module import LayerError, Module

__all__ = ["LayerRow", "ModelSummary", "LayerTime", "LayerProfile", "summarize",
           "profile_layers"]

_WATCHED = ("forward", "backward", "backward_params", "fused_forward")


def _tree(model):
    """``(path, depth, module, parent)`` of every module once, depth first, in model order."""
    out, seen = [], set()

    def visit(m, path, depth, parent):
        if id(m) in seen:
            return
        seen.add(id(m))
        out.append((path, depth, m, parent))
        for i, child in enumerate(getattr(m, "_children", ())):
            visit(child, f"{path}{i}.", depth + 1, m)

    visit(model, "", 0, None)
    return out


@contextmanager
def _watching(model, on_call):
    """Shadow the watched methods of every module of ``model`` for the length of the block;
    ``on_call(module, verb, seconds, result)`` hears each call as it returns."""
    shadowed = []
    for _path, _depth, m, _parent in _tree(model):
        for verb in _WATCHED:
            method = getattr(type(m), verb, None)
            if method is None or verb in m.__dict__:
                continue

            def shadow(*args, _m=m, _verb=verb, _method=method):
                start = time.perf_counter()
                result = _method(_m, *args)
                on_call(_m, _verb, time.perf_counter() - start, result)
                return result

            m.__dict__[verb] = shadow
            shadowed.append((m, verb))
    try:
        yield
    finally:
        for m, verb in shadowed:
            m.__dict__.pop(verb, None)


def _shape(x):
    """A shape with the batch axis as None; a table as a list of shapes."""
    if isinstance(x, (list, tuple)):
        return [_shape(a) for a in x]
    shape = np.shape(x)
    return (None, *shape[1:]) if shape else ()


def _shape_text(shape):
    if shape is None:
        return "-"
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


@dataclass
class LayerRow:
    """One module of a :class:`ModelSummary`.

    Attributes:
        path: its position in the model (``"3.1."``; ``""`` for the model itself).
        depth: nesting depth (0 for the model).
        name: ``module.name()``.
        kind: the class name.
        output_shape: the output shape with the batch axis as None (a list for a table), or
            None when no input shape was given (or the pass did not reach it).
        params: parameters of this module and its descendants.
        trainable: those an optimizer would update (not frozen, not cut by stop_gradient).
        state: ``"trainable"``, ``"frozen"``, ``"partly frozen"`` or ``""`` (no parameters).
        inputs: for a node of a ``Graph``, the names of the nodes that feed it.
        container: the module has children.
    """
    path: str
    depth: int
    name: str
    kind: str
    output_shape: tuple | list | None
    params: int
    trainable: int
    state: str
    inputs: list = field(default_factory=list)
    container: bool = False


@dataclass
class ModelSummary:
    """What ``model.summary(input_shape)`` returns: printed (``str``) it is Keras's text table;
    in a notebook it shows as an HTML table (``_repr_html_``).

    Attributes:
        rows: one :class:`LayerRow` per module, depth first.
        input_shape: the record shape the output shapes were computed for (None: none given).
    """
    rows: list
    input_shape: tuple | list | None = None

    @property
    def total_params(self):
        return self.rows[0].params if self.rows else 0

    @property
    def trainable_params(self):
        return self.rows[0].trainable if self.rows else 0

    @property
    def frozen_params(self):
        return self.total_params - self.trainable_params

    def row(self, name):
        """The row of the module named ``name`` (a KeyError if none)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"summary: no layer named {name!r}")

    def _columns(self):
        graphs = any(r.inputs for r in self.rows)
        header = ["Layer (type)", "Output shape", "Param #", "Trainable"]
        if graphs:
            header.append("Connected to")
        body = []
        for r in self.rows:
            cells = ["  " * r.depth + f"{r.name} ({r.kind})", _shape_text(r.output_shape),
                     f"{r.params:,}", r.state]
            if graphs:
                cells.append(", ".join(r.inputs))
            body.append(cells)
        return header, body

    def __str__(self):
        header, body = self._columns()
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]

        def line(cells):
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        rule = "=" * len(line(["-" * w for w in widths]))
        shape = self.input_shape
        title = ("Model summary" if not shape else
                 f"Model summary for input {_shape_text((None, *shape))}"
                 if isinstance(shape, tuple) else
                 f"Model summary for inputs {_shape_text([(None, *s) for s in shape])}")
        text = [title, rule, line(header), rule.replace("=", "-")]
        text += [line(b) for b in body]
        text += [rule, f"Total params: {self.total_params:,}",
                 f"Trainable params: {self.trainable_params:,}",
                 f"Non-trainable params: {self.frozen_params:,}"]
        return "\n".join(text)

    __repr__ = __str__

    def _repr_html_(self):
        header, body = self._columns()
        esc = html.escape
        head = "".join(f"<th style='text-align:left;padding:2px 8px'>{esc(h)}</th>"
                       for h in header)
        rows = []
        for r, cells in zip(self.rows, body):
            style = "color:#888" if r.state == "frozen" else ""
            style += ";font-weight:bold" if r.container else ""
            tds = [f"<td style='padding:2px 8px;padding-left:{8 + 16 * r.depth}px'>"
                   f"{esc(r.name)} <span style='color:#888'>({esc(r.kind)})</span></td>"]
            tds += [f"<td style='padding:2px 8px'>{esc(c)}</td>" for c in cells[1:]]
            rows.append(f"<tr class='wb-summary-row' data-layer='{esc(r.name)}' "
                        f"style='{style}'>{''.join(tds)}</tr>")
        foot = (f"<div class='wb-summary-totals'>Total params: {self.total_params:,} · "
                f"trainable: {self.trainable_params:,} · "
                f"non-trainable: {self.frozen_params:,}</div>")
        return (f"<div class='wb-model-summary'><table style='border-collapse:collapse;"
                f"font-family:monospace;font-size:12px'><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>{foot}</div>")

    def widget(self):
        """The summary as an ipywidgets ``HTML`` widget (for dashboards and layouts)."""
        import ipywidgets  # notebook-only dependency, imported when asked for

        return ipywidgets.HTML(self._repr_html_())

    def to_dict(self):
        return {"input_shape": self.input_shape,
                "total_params": self.total_params,
                "trainable_params": self.trainable_params,
                "rows": [vars(r) for r in self.rows]}


def _zeros(model, shape, what):
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{model.label()}.summary: {what} must be a tuple of ints (one "
                        f"record's shape, without the batch axis), got {shape!r}") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"{model.label()}.summary: {what} must be positive, got {dims}")
    return np.zeros((1, *dims), dtype=model.dtype)


def summarize(model, input_shape=None):
    """The :class:`ModelSummary` of ``model`` (``Module.summary`` calls this).

    Args:
        model: any ``Module``.
        input_shape: one record's shape without the batch axis, e.g. ``(1, 28, 28)``, or a
            list of shapes for a model with several inputs.  When given, a forward pass in
            inference mode on a batch of one record of zeros gives every layer's output shape
            (the model's training mode is restored afterwards).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summarize expects a Module, got {type(model).__name__}")
    tree = _tree(model)
    shapes = {}
    if input_shape is not None:
        if isinstance(input_shape, list):
            x = [_zeros(model, s, f"input_shape[{i}]") for i, s in enumerate(input_shape)]
            input_shape = [tuple(a.shape[1:]) for a in x]
        else:
            x = _zeros(model, input_shape, "input_shape")
            input_shape = tuple(x.shape[1:])
        modes = [(m, m.train) for _p, _d, m, _parent in tree]

        def heard(m, verb, _seconds, result):
            if verb in ("forward", "fused_forward") and result is not None:
                shapes[id(m)] = _shape(result)

        try:
            model.training(False)
            with _watching(model, heard):
                model.forward(x)
        except (LayerError, ValueError, TypeError) as e:
            raise ValueError(f"{model.label()}.summary: a forward pass on input shape "
                             f"{input_shape} failed: {e}") from e
        finally:
            for m, train in modes:
                m.train = train
        for _p, _d, m, _parent in tree:
            # a layer fused into the one before it (ReLU after a convolution) never runs its
            # own forward; its output is the fused pass's
            if id(m) not in shapes and m.output is not None:
                shapes[id(m)] = _shape(m.output)
    trainable = {(id(m), n) for _p, m, n in model.named_parameters(trainable_only=True)}
    rows = []
    for path, depth, m, parent in tree:
        params = trained = 0
        for sub in (mm for _p, _d, mm, _pa in _tree(m)):
            for n in sub._param_names:
                size = int(np.size(getattr(sub, n)))
                params += size
                trained += size if (id(sub), n) in trainable else 0
        state = ("" if params == 0 else "trainable" if trained == params else
                 "frozen" if trained == 0 else "partly frozen")
        inputs = []
        nodes = getattr(parent, "_nodes", None)
        if nodes is not None:
            i = next(k for k, node in enumerate(nodes) if node.module is m)
            inputs = [nodes[p].module.name() for p in parent._prev[i]]
        rows.append(LayerRow(path, depth, m.name(), type(m).__name__, shapes.get(id(m)),
                             params, trained, state, inputs,
                             bool(getattr(m, "_children", None))))
    return ModelSummary(rows, input_shape)


# ---------------------------------------------------------------------- per-layer timing
@dataclass
class LayerTime:
    """Seconds one module spent in one pass (a container's include its children's).

    Attributes:
        path, depth, name, kind: as in :class:`LayerRow`.
        forward: seconds in ``forward`` (or a fused forward that ran the next layer too).
        backward: seconds in ``backward`` / ``backward_params``.
        leaf: the module has no children (the leaves' times add up to the pass).
    """
    path: str
    depth: int
    name: str
    kind: str
    forward: float = 0.0
    backward: float = 0.0
    leaf: bool = True

    @property
    def total(self):
        return self.forward + self.backward


class LayerProfile:
    """Collects :class:`LayerTime` for the passes run inside :meth:`watch`.

    Example::

        profile = LayerProfile(model)
        with profile.watch():
            out = model.forward(x); model.backward(x, grad)
        profile.layers()   # [LayerTime(...), ...] in model order
    """

    def __init__(self, model):
        self.model = model
        self._tree = _tree(model)
        self._times = {}

    def watch(self):
        def heard(m, verb, seconds, _result):
            fwd, bwd = self._times.get(id(m), (0.0, 0.0))
            if verb in ("forward", "fused_forward"):
                fwd += seconds
            else:
                bwd += seconds
            self._times[id(m)] = (fwd, bwd)

        return _watching(self.model, heard)

    def layers(self):
        out = []
        for path, depth, m, _parent in self._tree:
            fwd, bwd = self._times.get(id(m), (0.0, 0.0))
            out.append(LayerTime(path, depth, m.name(), type(m).__name__, fwd, bwd,
                                 not getattr(m, "_children", None)))
        return out


@contextmanager
def profile_layers(model):
    """``with profile_layers(model) as profile: ...`` times every module's forward and
    backward inside the block; ``profile.layers()`` lists them afterwards."""
    profile = LayerProfile(model)
    with profile.watch():
        yield profile
