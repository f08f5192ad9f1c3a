"""``Module``: the Torch7 / BigDL module contract on numpy arrays.

A module maps an input to an output (``forward``) and a gradient of the output to a gradient of
the input (``backward``), accumulating the gradients of its parameters on the way.  Parameters
are attributes named in ``_param_names`` (``weight`` / ``bias`` ...) with their gradients in
``grad_<name>``; ``get_parameters()`` compacts every trainable parameter of a model into one
contiguous vector (and the gradients into another) and leaves each layer's arrays as views into
them, so an optimizer updates the whole model in one vectorized call.
"""
from __future__ import annotations

import contextlib
import itertools
import sys
import threading

import numpy as np

from .._checks import check_int
from .._config import ConfigError, Configurable, from_config
from . import batch, layout

DEFAULT_DTYPE = np.float32


class LayerError(ValueError):
    """Bad input to a layer: the message names the layer, what it expected and what it got."""


def shape_of(x) -> str:
    """Human-readable shape of a tensor or a table (list/tuple of tensors)."""
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(shape_of(t) for t in x) + "]"
    if hasattr(x, "shape"):
        return "(" + ", ".join(str(d) for d in x.shape) + ")"
    return type(x).__name__


def check_grad_output(module, grad_output):
    """Raise a LayerError unless forward ran and ``grad_output`` has the output's shape."""
    if module.output is None:
        raise LayerError(f"{module.label()}: backward called before forward")
    if np.shape(grad_output) != module.output.shape:
        shape = ", ".join(map(str, module.output.shape))
        raise LayerError(f"{module.label()}: expected gradOutput of the output's shape "
                         f"({shape}), got {shape_of(grad_output)}")


class Module(Configurable):
    """Base class of every layer and container.

    Subclasses implement ``update_output(input)``, ``update_grad_input(input, grad_output)`` and,
    if they have parameters, ``acc_grad_parameters(input, grad_output)``.
    """

    _ids = itertools.count(1)

    def __init__(self):
        self.output = None
        self.grad_input = None
        self.train = True
        self._name = None
        self._frozen = False
        self._param_names: list[str] = []
        self._buffer_names: list[str] = []
        self._flat = None

    # ------------------------------------------------------------------ the three verbs
    def forward(self, input):
        """Compute and return ``self.output`` for ``input``."""
        self.output = self.update_output(input)
        return self.output

    def backward(self, input, grad_output):
        """Return the gradient w.r.t. ``input``; also accumulate parameter gradients."""
        self.grad_input = self.update_grad_input(input, grad_output)
        self._accumulate(input, grad_output)
        return self.grad_input

    def _accumulate(self, input, grad_output):
        if self._param_names and not self._frozen:
            self.acc_grad_parameters(input, grad_output)
            self._regularize()

    def _regularize(self):
        """Add the regularizers' gradients (after the parameter gradients are accumulated)."""
        share = current_batch_share()
        for name, reg in self.__dict__.get("_regularizers", {}).items():
            reg.accumulate(getattr(self, name), getattr(self, "grad_" + name), share)

    def backward_params(self, input, grad_output):
        """Backward when nothing will read the gradient w.r.t. ``input``: the first layer of a
        model under training (``Sequential`` calls it inside :func:`input_grad_unused`, which
        the Optimizers use).  A layer whose parameter gradients do not need the input gradient
        computed first (``_input_grad_optional``: Linear, SpatialConvolution) accumulates only
        them and returns None (``grad_input`` None), as PyTorch skips the gradient of an input
        that does not require one; any other layer runs its full ``backward``."""
        if not self._input_grad_optional():
            return self.backward(input, grad_output)
        check_grad_output(self, grad_output)
        self._accumulate(input, grad_output)
        self.grad_input = None
        return None

    def _input_grad_optional(self):
        """Whether ``acc_grad_parameters`` stands alone (see ``backward_params``)."""
        return False

    # ------------------------------------------------------------------ fine-tuning: the cut
    def _stops_gradient(self):
        """Whether this module's ``backward`` hands nothing back to the layers before it: it was
        named in ``stop_gradient`` (or a container whose input gets no gradient)."""
        return bool(self.__dict__.get("_stop_grad", False))

    def _gradient_cut(self):
        """Ids of the descendants that no gradient reaches in this module's backward (they sit
        before a ``stop_gradient`` layer): trained by nothing, left out of ``get_parameters``
        as frozen layers are.  A layer has none; containers override."""
        return set()

    def _is_trained(self):
        """Whether a backward of this module accumulates any parameter gradient: some
        descendant has parameters, is not frozen and is not cut off by ``stop_gradient``."""
        cut = None
        for m in self.modules():
            if m._param_names and not m._frozen:
                if cut is None:
                    cut = self._gradient_cut()
                if id(m) not in cut:
                    return True
        return False

    def _set_regularizer(self, name, regularizer):
        """Penalize parameter ``name`` with a ``Regularizer`` (None removes it)."""
        regs = self.__dict__.setdefault("_regularizers", {})
        if regularizer is None:
            regs.pop(name, None)
        elif not hasattr(regularizer, "accumulate"):
            raise TypeError(f"{self.label()}: a regularizer must be an L1Regularizer, "
                            f"L2Regularizer or L1L2Regularizer, got {regularizer!r}")
        else:
            regs[name] = regularizer

    def regularization_loss(self):
        """Sum of the weight regularizers' penalties (``wRegularizer`` / ``bRegularizer``) of
        the trainable layers: the part of the objective whose gradient ``backward`` adds to the
        parameters' (a frozen layer gets no such gradient, and its penalty is left out)."""
        cut = self._gradient_cut()
        return sum(reg.penalty(getattr(m, n)) for m in self.modules()
                   if not m._frozen and id(m) not in cut
                   for n, reg in m.__dict__.get("_regularizers", {}).items())

    def penalty_loss(self):
        """Sum of the activity penalties of the last ``forward`` (``L1Penalty``,
        ``ActivityRegularization``, ``NegativeEntropyPenalty``): the part of the objective whose
        gradient those layers add in ``backward``.  The Optimizer reports
        ``criterion loss + penalty_loss() + regularization_loss()`` (Keras's total loss)."""
        return sum(float(m.loss) for m in self.modules() if getattr(m, "adds_penalty", False))

    def update_output(self, input):
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input, grad_output):
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def acc_grad_parameters(self, input, grad_output):
        pass

    def __call__(self, *args):
        """``layer(node)`` adds the layer to a graph (see ``Input``); ``layer(x)`` is forward."""
        from .graph import Node
        nodes = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        if nodes and all(isinstance(n, Node) for n in nodes):
            return Node(self, list(nodes))
        if len(args) != 1:
            raise TypeError(f"{self.label()}: call with one input, got {len(args)}")
        return self.forward(args[0])

    def inputs(self, *nodes):
        """BigDL spelling of ``layer(node1, node2, ...)`` for graph construction."""
        return self(*nodes)

    # ------------------------------------------------------------------ parameters
    def _add_parameter(self, name, shape, dtype=DEFAULT_DTYPE):
        charge_allocation(self, name, shape)
        setattr(self, name, np.zeros(shape, dtype=dtype))
        setattr(self, "grad_" + name, np.zeros(shape, dtype=dtype))
        self._param_names.append(name)

    def _buffer(self, key, shape, dtype, channels_last=False):
        """A scratch array cached per key and reallocated only when the shape (or the memory
        format, see :mod:`workbench.nn.layout`: ``channels_last`` for 4-D) changes."""
        cache = self.__dict__.setdefault("_scratch", {})
        buf = cache.get(key)
        channels_last = channels_last and len(shape) == 4
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype or not (
                buf.transpose(0, 2, 3, 1) if channels_last else buf).flags.c_contiguous:
            buf = cache[key] = layout.empty(shape, dtype, channels_last)
        return buf

    def _buffer_like(self, key, x):
        """``_buffer(key, ...)`` of ``x``'s shape, dtype and memory format (plain or
        channels-last, see :mod:`workbench.nn.layout`)."""
        return self._buffer(key, x.shape, x.dtype, channels_last=layout.is_channels_last(x))

    def _grad_buffer(self, key, shape, dtype, channels_last=False):
        """A gradient buffer: from the active :class:`GradPool` during a pooled backward pass
        (see ``Sequential.backward``), else the layer's own ``_buffer(key, ...)``."""
        pool = getattr(_grad_pool, "pool", None)
        if pool is None:
            return self._buffer(key, shape, dtype, channels_last)
        return pool.take(shape, dtype, channels_last)

    def set_init_method(self, weight_init_method=None, bias_init_method=None):
        """BigDL: choose how ``reset()`` initializes weight and bias, and re-initialize."""
        if weight_init_method is not None:
            self.weight_init_method = weight_init_method
        if bias_init_method is not None:
            self.bias_init_method = bias_init_method
        self.reset()
        return self

    def reset(self):
        """Re-initialize the parameters (layers with parameters override this)."""
        return self

    def _add_buffer(self, name, value):
        """Non-trainable state that is saved with the weights (e.g. running statistics)."""
        charge_allocation(self, name, np.shape(value))
        setattr(self, name, value)
        self._buffer_names.append(name)

    def modules(self):
        """This module and every descendant, each once, depth first."""
        yield self

    def named_parameters(self, trainable_only=False):
        """``(path, module, name)`` for each parameter; ``path`` is unique within the model."""
        seen = set()
        cut = self._gradient_cut() if trainable_only else ()
        for path, m in self._walk(""):
            if id(m) in seen:
                continue
            seen.add(id(m))
            if trainable_only and (m._frozen or id(m) in cut):
                continue
            for name in m._param_names:
                yield f"{path}{name}", m, name

    def named_buffers(self):
        seen = set()
        for path, m in self._walk(""):
            if id(m) not in seen:
                seen.add(id(m))
                for name in m._buffer_names:
                    yield f"{path}{name}", m, name

    def _walk(self, prefix):
        yield prefix, self

    def parameters(self):
        """BigDL's parameter table: ``{layer name: {parameter name: array}}`` for every layer
        of the model that has parameters (frozen ones too), as copies.

        The names follow BigDL's ``getParametersTable``: a layer with one parameter has
        ``"weight"`` and ``"gradWeight"``; with two, ``"weight"``, ``"bias"``, ``"gradWeight"``
        and ``"gradBias"``; with more, ``"weight0"``, ``"gradient0"``, ``"weight1"`` ... in the
        layer's order.  Batch normalization adds ``"runningMean"`` and ``"runningVar"`` (and has
        only those when not ``affine``).  Layer names are those of ``name()``; two layers with
        the same name are a ValueError.  The arrays themselves (views, not copies) are
        :meth:`parameter_arrays`; the flat vectors are :meth:`get_parameters`.
        """
        table = {}
        for m in self.modules():
            entry = m._parameter_table()
            if not entry:
                continue
            name = m.name()
            if name in table:
                raise ValueError(f"{self.label()}: two layers are named {name!r}; parameters() "
                                 "keys its table by layer name (set_name them apart)")
            table[name] = {k: np.array(v, copy=True) for k, v in entry.items()}
        return table

    def _parameter_table(self):
        """This layer's entry of :meth:`parameters` (arrays not yet copied), or None."""
        names = self._param_names
        if not names:
            return None
        weights = [getattr(self, n) for n in names]
        grads = [getattr(self, "grad_" + n) for n in names]
        if len(names) == 1:
            return {"weight": weights[0], "gradWeight": grads[0]}
        if len(names) == 2:
            return {"weight": weights[0], "bias": weights[1],
                    "gradWeight": grads[0], "gradBias": grads[1]}
        entry = {}
        for i, (w, g) in enumerate(zip(weights, grads)):
            entry[f"weight{i}"] = w
            entry[f"gradient{i}"] = g
        return entry

    def parameter_arrays(self):
        """``(weights, grad_weights)``: two lists of the trainable parameter arrays themselves
        (views: writing them changes the model), in model order; frozen layers left out."""
        triples = list(self.named_parameters(trainable_only=True))
        return ([getattr(m, n) for _, m, n in triples],
                [getattr(m, "grad_" + n) for _, m, n in triples])

    def get_parameters(self):
        """Compact all trainable parameters into one flat vector and gradients into another.

        Returns ``(weights, grad_weights)``, two contiguous 1-D arrays; afterwards every layer's
        ``weight`` / ``bias`` (and their gradients) are views into them, so updating the flat
        vector updates the model.  Call it on the root of the model.  Frozen layers (and layers
        cut off by ``stop_gradient``) are left out.

        The vectors are rebuilt when the set of trainable parameters changed since the last call
        (``freeze``, ``unfreeze``, ``stop_gradient``, ``replace`` ...): call it again after such
        a change (the ``Optimizer`` calls it when ``optimize()`` starts).  A parameter that left
        the vector gets its own arrays back, so the old vectors no longer alias it.
        """
        triples = list(self.named_parameters(trainable_only=True))
        if self._flat is not None:
            flat_w, flat_g, views = self._flat
            if len(views) == len(triples) and all(
                    getattr(m, n) is w and getattr(m, "grad_" + n) is g
                    for (_, m, n), (w, g) in zip(triples, views)):
                return flat_w, flat_g
            kept = {id(getattr(m, n)) for _, m, n in triples}
            for _, m, n in self.named_parameters():
                for attr in (n, "grad_" + n):
                    a = getattr(m, attr)
                    if id(a) not in kept and (a.base is flat_w or a.base is flat_g):
                        setattr(m, attr, a.copy())  # numpy views point at the owner
        dtypes = {getattr(m, n).dtype for _, m, n in triples}
        if len(dtypes) > 1:
            raise TypeError(f"{self.label()}: parameters mix dtypes {sorted(map(str, dtypes))}; "
                            "call .float() or .double() first")
        dtype = dtypes.pop() if dtypes else DEFAULT_DTYPE
        total = sum(getattr(m, n).size for _, m, n in triples)
        flat_w = np.empty(total, dtype=dtype)
        flat_g = np.zeros(total, dtype=dtype)
        views, offset = [], 0
        for _, m, n in triples:
            w = getattr(m, n)
            size = w.size
            flat_w[offset:offset + size] = w.ravel()
            flat_g[offset:offset + size] = getattr(m, "grad_" + n).ravel()
            wv = flat_w[offset:offset + size].reshape(w.shape)
            gv = flat_g[offset:offset + size].reshape(w.shape)
            setattr(m, n, wv)
            setattr(m, "grad_" + n, gv)
            views.append((wv, gv))
            offset += size
        self._flat = (flat_w, flat_g, views)
        return flat_w, flat_g

    def zero_grad_parameters(self):
        """Set every parameter gradient to zero."""
        for _, m, n in self.named_parameters():
            getattr(m, "grad_" + n).fill(0)

    def get_weights(self):
        """BigDL: the list of parameter arrays (copies), in model order."""
        return [getattr(m, n).copy() for _, m, n in self.named_parameters()]

    def set_weights(self, weights):
        """BigDL: copy a list of arrays (as from ``get_weights``) into the parameters."""
        triples = list(self.named_parameters())
        if len(weights) != len(triples):
            raise ValueError(f"{self.label()}: expected {len(triples)} weight arrays, "
                             f"got {len(weights)}")
        for (path, m, n), w in zip(triples, weights):
            target = getattr(m, n)
            w = np.asarray(w)
            if w.shape != target.shape:
                raise ValueError(f"{self.label()}: weight {path} expects shape {target.shape}, "
                                 f"got {w.shape}")
            target[...] = w
        return self

    def state_dict(self):
        """``{path: array}`` of every parameter and buffer (views, not copies)."""
        d = {p: getattr(m, n) for p, m, n in self.named_parameters()}
        d.update({p: getattr(m, n) for p, m, n in self.named_buffers()})
        return d

    def saveModel(self, model_path, weight_path=None, over_write=False):  # noqa: N802
        """BigDL's ``model.saveModel(path, weight_path=None, over_write=False)``: save in the
        safe model format (``workbench.io.save_model``; the weights go in the same file)."""
        from .. import io  # nn reaches up to io only here and in Model's loaders
        io.saveModel(self, model_path, weight_path, over_write)
        return self

    def save(self, path, over_write=False):
        """BigDL's ``model.save(path, over_write=False)``: as :meth:`saveModel`."""
        return self.saveModel(path, over_write=over_write)

    def load_state_dict(self, state):
        """Copy arrays from ``state`` into parameters and buffers; shapes must match exactly.

        ``state`` is keyed by this model's own paths (those of :meth:`state_dict`).  PyTorch
        weights (other key names, a name map, safetensors / ``torch.save`` files) load through
        ``workbench.io.pytorch.load_state_dict``, which also accepts these paths."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"{self.label()}: weights do not match the model "
                             f"(missing {missing[:5]}, unexpected {extra[:5]})")
        for path, target in own.items():
            value = state[path]
            if value.shape != target.shape:
                raise ValueError(f"{self.label()}: {path} has shape {tuple(target.shape)} in the "
                                 f"model but {tuple(value.shape)} in the weights")
            target[...] = value
        return self

    def _cast(self, dtype):
        for m in self.modules():
            for n in m._param_names:
                setattr(m, n, getattr(m, n).astype(dtype))
                setattr(m, "grad_" + n, getattr(m, "grad_" + n).astype(dtype))
            for n in m._buffer_names:
                value = getattr(m, n)
                if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    setattr(m, n, value.astype(dtype))
            m._flat = None
            m.output = m.grad_input = None
            m.__dict__.pop("_scratch", None)
        return self

    def float(self):
        """Cast parameters and buffers to float32 (the default)."""
        return self._cast(np.float32)

    def double(self):
        """Cast parameters and buffers to float64 (e.g. for gradient checks)."""
        return self._cast(np.float64)

    def _apply_bigdl_type(self, bigdl_type):
        # BigDL's bigdl_type="double" (see workbench._config.Configurable): a float64 module
        self._cast(np.float64)

    def get_dtype(self):
        """BigDL: the name of the parameters' dtype, ``"float32"`` or ``"float64"``."""
        return str(np.dtype(self.dtype))

    @property
    def dtype(self):
        """The float dtype of the parameters (or float buffers), float32 if it has none."""
        for _, m, n in self.named_parameters():
            return getattr(m, n).dtype
        for _, m, n in self.named_buffers():
            value = getattr(m, n)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                return value.dtype
        return np.dtype(DEFAULT_DTYPE)

    def __getstate__(self):
        # Shipping a model (e.g. to Spark executors) carries weights and config, not the
        # activations and scratch buffers of the last batch.
        state = dict(self.__dict__)
        state.pop("_scratch", None)
        state["output"] = state["grad_input"] = None
        state["_flat"] = None
        return state

    # ------------------------------------------------------------------ modes, freezing, names
    def training(self, is_training=True):
        """Switch to training mode (dropout active, batch statistics used); BigDL's
        ``training(False)`` switches to inference mode instead (as ``evaluate()``)."""
        for m in self.modules():
            m.train = bool(is_training)
        return self

    def set_seed(self, seed=123):
        """BigDL: seed the random generator that initializes weights (``reset()``,
        ``set_init_method``) and draws dropout masks, i.e. ``workbench.nn.random.set_seed``;
        returns self."""
        from . import random as nn_random
        nn_random.set_seed(seed)
        return self

    def is_with_weights(self):
        """BigDL: whether the module (or a descendant) has parameters."""
        return any(m._param_names for m in self.modules())

    def evaluate(self, *args, **kwargs):
        """With no argument: switch to inference mode.  As in BigDL, ``evaluate(data,
        batch_size, val_methods)`` evaluates the model on a data set instead (see
        ``workbench.optim.evaluate``)."""
        if args or kwargs:
            # BigDL's Module.evaluate(data, ...) is the optim layer's evaluation (validation
            # methods live there): imported when called, never at import time
            from ..optim.validation import evaluate
            return evaluate(self, *args, **kwargs)
        for m in self.modules():
            m.train = False
        return self

    def is_training(self):
        return self.train

    def freeze(self, names=None):
        """Freeze the whole module, or the descendants with the given names: their parameters
        get no gradient and are left out of ``get_parameters()``."""
        for m in self._by_names(names):
            for d in m.modules():
                d._frozen = True
        return self

    def unfreeze(self, names=None):
        """Undo :meth:`freeze` for the whole module or the named descendants."""
        for m in self._by_names(names):
            for d in m.modules():
                d._frozen = False
        return self

    def _by_names(self, names, what=None):
        if names is None:
            return [self]
        names = name_list(names, f"{self.label()}.{what or 'freeze'}")
        found = {}
        for m in self.modules():
            if m.name() in names:
                found.setdefault(m.name(), m)
        unknown = [n for n in names if n not in found]
        if unknown:
            known = sorted({m.name() for m in self.modules()})
            raise ValueError(f"{self.label()}: no layer named {unknown} (its layers: "
                             f"{known[:12]}{' ...' if len(known) > 12 else ''})")
        return list(found.values())

    def freeze_up_to(self, names):
        """BigDL: freeze the model from its input up to the named layers, inclusive.

        In a ``Sequential`` the children up to and including the one that is (or holds) a
        named layer are frozen; in a ``Graph`` the named nodes and every node before them
        (their ancestors).  Containers inside are searched too: ``freeze_up_to("conv3")``
        freezes what precedes ``conv3`` at every level that leads to it.  Frozen layers get no
        parameter gradient and are left out of ``get_parameters()`` (so of the optimizer's
        state and of the all-reduce on Spark); under training their backward is skipped when
        nothing trainable comes before them.

        Args:
            names: a layer name or a list of them.

        Returns:
            self.
        """
        targets = self._by_names(names, "freeze_up_to")
        self._freeze_up_to({id(m) for m in targets})
        return self

    freezeUpTo = freeze_up_to

    def _freeze_up_to(self, targets):
        """Freeze what leads to the modules whose ids are in ``targets``; True if this module is
        or holds one of them.  Containers override (``Sequential``, ``Graph``); this default
        treats every child as a parallel branch."""
        if id(self) in targets:
            self.freeze()
            return True
        found = False
        for child in getattr(self, "_children", ()):
            found = child._freeze_up_to(targets) or found
        return found

    def stop_gradient(self, stop_layers):
        """BigDL: stop the gradient at the named layers.  Their parameters are still trained,
        but their gradient w.r.t. their input is not computed, so the layers before them (the
        ones that feed only them) get no gradient at all: their backward is never called and
        their parameters are left out of ``get_parameters()``, as frozen ones are.

        The named layers must be children of a ``Sequential`` or nodes of a ``Graph`` (at any
        depth, through those two containers only); ``Model.stop_gradient`` of BigDL.

        Args:
            stop_layers: a layer name or a list of them.

        Returns:
            self.
        """
        targets = self._by_names(stop_layers, "stop_gradient")
        for m in targets:
            path = _path_to(self, m)
            bad = [p for p in path[:-1] if not getattr(p, "_honours_stop_gradient", False)]
            if m is self or bad:
                where = bad[0].label() if bad else "the root"
                raise ValueError(f"{self.label()}.stop_gradient: layer {m.name()!r} is inside "
                                 f"{where}; only children of a Sequential and nodes of a Graph "
                                 "can stop the gradient")
        for m in targets:
            m._stop_grad = True
        self._flat = None
        return self

    stopGradient = stop_gradient

    def replace(self, name, module):
        """Put ``module`` where the descendant named ``name`` is (a ``Sequential``'s child, a
        ``Graph``'s node, any container's child), e.g. a new classifier head:
        ``model.replace("fc", Linear(512, 10))``.  The new module takes the old one's name
        unless it was given its own, and starts trainable; call ``get_parameters()`` again
        (the ``Optimizer`` does when ``optimize()`` starts).

        Args:
            name: the name of the layer to replace.
            module: the ``Module`` to put there.

        Returns:
            self.
        """
        if not isinstance(module, Module):
            raise TypeError(f"{self.label()}.replace: expected a Module for {name!r}, got "
                            f"{type(module).__name__}")
        (old,) = self._by_names([name], "replace")
        if old is self:
            raise ValueError(f"{self.label()}.replace: {name!r} is the model itself")
        if any(m is module for m in self.modules()):
            raise ValueError(f"{self.label()}.replace: {module.label()} is already in the model")
        path = _path_to(self, old)
        parent = path[-2]
        parent._replace_child(next(i for i, c in enumerate(parent._children) if c is old),
                              module)
        if module._name is None and old._name is not None:
            module.set_name(old._name)
        for p in path[:-1]:
            p._flat = None
        return self

    def set_name(self, name):
        """Name this layer (used in error messages, ``freeze`` and saved files)."""
        self._name = str(name)
        return self

    def name(self):
        """The name given with ``set_name``, else a stable automatic one (not saved)."""
        if self._name is not None:
            return self._name
        if "_auto_name" not in self.__dict__:
            self._auto_name = f"{type(self).__name__}{next(Module._ids)}"
        return self._auto_name

    def label(self):
        """``Class[name]`` for messages, or just ``Class`` if the layer was never named."""
        cls = type(self).__name__
        return f"{cls}[{self._name}]" if self._name else cls

    def _fail(self, expected, got):
        """Raise a LayerError naming this layer, what it expected and what it got."""
        raise LayerError(f"{self.label()}: expected input {expected}, got {shape_of(got)}")

    def _as_array(self, x, ndims, expected):
        """``x`` as an array of this layer's dtype with one of ``ndims`` dimensions."""
        if not isinstance(x, np.ndarray) or x.ndim not in ndims:
            self._fail(expected, x)
        dtype = self.dtype if self._param_names else (
            x.dtype if x.dtype.kind == "f" else DEFAULT_DTYPE)
        return x if x.dtype == dtype else x.astype(dtype)

    # ------------------------------------------------------------------ inference helpers
    def predict(self, data, batch_size=256, **spark_options):
        """Outputs for every record of ``data``, in inference mode, batch by batch; the result
        has the kind of the input, as in BigDL:

        - an array, a list of arrays (one per input of a multi-input model) or a list of
          ``Sample`` -> a numpy array of outputs (a list of arrays for a multi-output model);
        - an RDD (of ``Sample`` or feature arrays) -> an RDD of one numpy output per record,
          in record order;
        - a DataFrame -> the DataFrame plus a prediction column (``spark_options``:
          ``features_col``, ``prediction_col``, ``feature_shape``; see
          ``workbench.spark.predict``).

        ``batch_size`` None or non-positive (BigDL's default ``-1``) means "choose for me"
        (:func:`auto_batch_size`).
        """
        from ..distributed import engine_for
        engine = engine_for(data)
        if engine is not None:
            return engine.predict(self, data, batch_size, **spark_options)
        if spark_options:
            raise TypeError(f"predict: {sorted(spark_options)} apply to a Spark RDD or "
                            "DataFrame only")
        x = _features(data)
        batch_size = auto_batch_size(batch_size, _row_elements(x))
        was_training = self.train
        self.evaluate()
        try:
            outs = [batch.copy(self.forward(batch.take(x, slice(i, i + batch_size))))
                    for i in range(0, batch.num_rows(x), batch_size)]
        finally:
            if was_training:
                self.training()
        return batch.concat(outs) if outs else np.empty((0,))

    def predict_class(self, data, batch_size=256, zero_based_label=True, **spark_options):
        """Predicted class ids (argmax of the output; zero-based unless told otherwise): a numpy
        array of ints for in-memory data, an RDD of ints for an RDD, the DataFrame plus a
        DoubleType class column for a DataFrame (Spark ML's convention)."""
        from ..distributed import engine_for
        engine = engine_for(data)
        if engine is not None:
            return engine.predict_class(self, data, batch_size, zero_based_label,
                                        **spark_options)
        if spark_options:
            raise TypeError(f"predict_class: {sorted(spark_options)} apply to a Spark RDD or "
                            "DataFrame only")
        out = self.predict(data, batch_size)
        cls = np.argmax(out.reshape(len(out), -1), axis=1)
        return cls if zero_based_label else cls + 1

    # ------------------------------------------------------------------ config and printing
    def get_config(self):
        config = super().get_config()
        if self._name is not None:
            config["name"] = self._name
        if self._frozen:
            config["frozen"] = True
        if self.__dict__.get("_stop_grad"):
            config["stop_gradient"] = True
        if not self.train:
            config["training"] = False
        return config

    @classmethod
    def from_config(cls, config):
        module = from_config(config, cls)
        _apply_common(module, config)
        return module

    def summary(self, input_shape=None):
        """The model at a glance, as Keras's ``model.summary()``: the layer tree (containers
        and graph nodes indented under their parent), each layer's output shape, parameter
        count and whether it trains or is frozen, and the totals.

        Args:
            input_shape: one record's shape without the batch axis (``(1, 28, 28)``), or a
                list of them for several inputs.  Given, the output shapes come from a real
                forward pass on zeros in inference mode (the mode is restored afterwards).

        Returns:
            a ``workbench.nn.introspect.ModelSummary``: ``print`` it for the text table; in a
            notebook it shows as an HTML table (``.widget()`` gives an ipywidgets one).
        """
        from .introspect import summarize  # introspect builds on this module

        return summarize(self, input_shape)

    def extra_repr(self):
        """Arguments shown in ``repr``, e.g. ``"3 -> 4"`` for ``nn.Linear(3 -> 4)``."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        return f"nn.{type(self).__name__}" + (f"({extra})" if extra else "")


def _apply_common(module, config):
    if "name" in config:
        module.set_name(config["name"])
    if config.get("frozen"):
        module._frozen = True  # each descendant's own flag is in its own config
    if config.get("stop_gradient"):
        module._stop_grad = True
    if config.get("training") is False:
        module.evaluate()


def name_list(names, owner):
    """``names`` (one name or a list of them) as a list of strings."""
    if isinstance(names, str):
        return [names]
    try:
        names = list(names)
    except TypeError:
        raise TypeError(f"{owner}: expected a layer name or a list of names, got "
                        f"{type(names).__name__}") from None
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{owner}: expected a layer name or a non-empty list of names, got "
                        f"{names!r}")
    return names


def _path_to(root, target):
    """``[root, ..., target]``: the containers from ``root`` down to ``target``."""
    if root is target:
        return [root]
    for child in getattr(root, "_children", ()):
        path = _path_to(child, target)
        if path:
            return [root] + path
    return []


def auto_batch_size(batch_size, row_elements=None, owner="predict"):
    """The batch size to run: ``batch_size`` if positive, else (None, or BigDL's ``-1`` and any
    non-positive value: "choose for me") about a million values per batch, between 1 and 1024
    records (``row_elements`` values per record; 256 records when unknown).  Anything but an
    int or None raises ``ValueError`` naming ``owner``."""
    if batch_size is None:
        batch_size = 0
    batch_size = check_int(owner, "batch_size", batch_size, minimum=None)
    if batch_size > 0:
        return batch_size
    if not row_elements:
        return 256
    return max(1, min(1024, (1 << 20) // int(row_elements)))


def _row_elements(x):
    x = x[0] if isinstance(x, (list, tuple)) and x else x
    shape = getattr(x, "shape", ())
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _features(data):
    """The features of ``predict``'s in-memory data: an array, a list of arrays (one per model
    input: a table), or a list of ``Sample`` (each with one or several feature tensors)."""
    if isinstance(data, (list, tuple)) and data and hasattr(data[0], "features"):
        return batch.stack_records([s.features for s in data], "predict: the Samples' features")
    return batch.as_batch(data, "predict: the features")


def build_module(config):
    """Rebuild any module (layer or container) from a config; only registered classes."""
    if not isinstance(config, dict):
        raise ConfigError(f"module config must be a dict, got {type(config).__name__}")
    return Module.from_config(config)


# ---------------------------------------------------------------------- allocation budget
_budget = threading.local()


@contextlib.contextmanager
def allocation_budget(max_elements, what="the budget"):
    """Within the block, a layer whose parameters and buffers would take the running total past
    ``max_elements`` values raises ``ConfigError`` *before* the parameter is allocated.

    ``workbench.io`` builds models from untrusted files under a budget equal to the number of
    weight values the file holds, so a config declaring ``Linear(10**6, 10**6)`` next to a tiny
    weights file fails at once instead of allocating terabytes.
    """
    previous = getattr(_budget, "state", None)
    _budget.state = [int(max_elements), int(max_elements), what]
    try:
        yield
    finally:
        _budget.state = previous


def charge_allocation(owner, name, shape):
    """Count an array of ``shape`` against the active :func:`allocation_budget`, if any.

    Layers that allocate large state outside ``_add_parameter`` / ``_add_buffer`` should call
    this first."""
    state = getattr(_budget, "state", None)
    if state is None:
        return
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    try:
        size = 1
        for d in dims:
            size *= int(d)  # Python ints: no overflow on absurd shapes
    except (TypeError, ValueError):
        raise ConfigError(f"{type(owner).__name__}: {name} has a bad shape {shape!r}") from None
    left, total, what = state
    if size > left:
        raise ConfigError(f"{type(owner).__name__}: {name} of shape {dims} needs {size} values, "
                          f"more than the {left} left of the {total} values in {what}")
    state[0] = left - max(size, 0)


# ---------------------------------------------------------------------- gradient buffer pool
_grad_pool = threading.local()


class GradPool:
    """Gradient buffers shared by the layers of a model during backward.

    A ``Sequential`` at the root of a backward pass activates its pool; layers take their
    ``grad_input`` buffers from it (``Module._grad_buffer``) and the container drops a child's
    ``grad_input`` once the child below has consumed it, so a buffer no longer referenced by
    anything (no layer, view or caller: its reference count says so) is handed to the next layer
    that asks for that shape.  The peak then holds the gradients alive at one time instead of
    one per layer.  Buffers of shapes unused in a whole pass are freed at its end.
    """

    def __init__(self):
        self._arrays = {}
        self._used = set()

    def take(self, shape, dtype, channels_last=False):
        """A free ``shape`` buffer (channels-last memory if asked, for 4-D shapes).  The pool
        keeps the array that owns the memory, so any view of it still alive (numpy views point
        at the owner) keeps it from being handed out again."""
        channels_last = channels_last and len(shape) == 4
        key = (tuple(shape), np.dtype(dtype).str, channels_last)
        self._used.add(key)
        arrays = self._arrays.setdefault(key, [])
        for a in arrays:
            if sys.getrefcount(a) <= 3:  # the list, the loop variable, getrefcount's argument
                return a.transpose(0, 3, 1, 2) if channels_last else a
        if channels_last:
            n, c, h, w = shape
            a = np.empty((n, h, w, c), dtype=dtype)
            arrays.append(a)
            return a.transpose(0, 3, 1, 2)
        a = np.empty(key[0], dtype=dtype)
        arrays.append(a)
        return a

    @contextlib.contextmanager
    def active(self):
        """Make this the pool of the current thread for the duration of a backward pass."""
        previous = getattr(_grad_pool, "pool", None)
        _grad_pool.pool = self
        self._used = set()
        try:
            yield self
        finally:
            _grad_pool.pool = previous
            for key in [k for k in self._arrays if k not in self._used]:
                kept = [a for a in self._arrays[key] if sys.getrefcount(a) > 3]
                if kept:
                    self._arrays[key] = kept
                else:
                    del self._arrays[key]


_input_grad = threading.local()
_share = threading.local()


@contextlib.contextmanager
def batch_share(fraction):
    """Within this block the forward and backward passes see a part of a larger mini-batch:
    ``fraction`` (records here / records in the whole batch) of it.  The distributed trainer
    runs each task's pass so, and sums the tasks' losses and gradients: terms that belong to the
    whole batch once (weight regularizers, averaged activity penalties) are weighted by
    ``fraction`` so that the sum counts them once.

    Args:
        fraction: this pass's share of the batch, in ``[0, 1]``.
    """
    previous = getattr(_share, "fraction", 1.0)
    _share.fraction = float(fraction)
    try:
        yield
    finally:
        _share.fraction = previous


def current_batch_share():
    """The ``fraction`` of the enclosing :func:`batch_share` block (1 outside one)."""
    return getattr(_share, "fraction", 1.0)


@contextlib.contextmanager
def input_grad_unused():
    """Within this block, a root ``Sequential``'s ``backward`` does not compute the gradient
    w.r.t. the model's input (its first layer runs ``backward_params``) and returns None.  The
    training loops (``Optimizer``, the Spark trainer, the tuner) run their backward so: nothing
    reads that gradient, and it is up to a fifth of an MLP's step."""
    previous = getattr(_input_grad, "unused", False)
    _input_grad.unused = True
    try:
        yield
    finally:
        _input_grad.unused = previous


def input_grad_is_unused():
    """True inside :func:`input_grad_unused` (in this thread)."""
    return getattr(_input_grad, "unused", False)


@contextlib.contextmanager
def root_input_grad_unused():
    """For a container's ``backward``: yields whether an enclosing :func:`input_grad_unused`
    applies to this call (the root's), and clears it for the calls nested inside, whose input
    gradients the container needs."""
    if not getattr(_input_grad, "unused", False):
        yield False
        return
    _input_grad.unused = False
    try:
        yield True
    finally:
        _input_grad.unused = True


def active_grad_pool():
    """The gradient pool of the backward pass running in this thread, or None."""
    return getattr(_grad_pool, "pool", None)
