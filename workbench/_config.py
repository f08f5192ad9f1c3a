"""Config capture and the class registry behind ``get_config`` / ``from_config``.

Every configurable object (layers, criteria, init methods, optim methods, schedules, triggers,
validation methods) records the arguments its constructor was called with, so it can describe
itself as a JSON-able dict and be rebuilt from one.  Rebuilding only ever looks classes up in
this registry: a config names a class, it never names a module to import, so loading a config
from an untrusted file cannot run code.
"""
from __future__ import annotations

import functools
import inspect
import numbers

import numpy as np

_REGISTRY: dict[str, type] = {}


class ConfigError(ValueError):
    """A config (e.g. from a model file) is malformed or names something we do not know."""


def _to_json(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v, where) for k, v in value.items()}
    if isinstance(value, Configurable):
        return {"__object__": value.get_config()}
    if isinstance(value, np.ndarray):
        # Arrays passed to constructors (e.g. initial weights) travel with the weights file.
        return None
    raise ConfigError(f"{where}: argument of type {type(value).__name__} "
                      "cannot be saved in a config")


def _from_json(value, base):
    if isinstance(value, list):
        return [_from_json(v, base) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__object__"}:
            return from_config(value["__object__"], Configurable)
        return {k: _from_json(v, base) for k, v in value.items()}
    return value


BIGDL_TYPES = ("float", "double")


def check_bigdl_type(owner, bigdl_type):
    """BigDL's ``bigdl_type`` argument: None or ``"float"`` (float32, the default) or
    ``"double"`` (float64); returns it, raises ValueError naming ``owner`` otherwise."""
    if bigdl_type is None:
        return "float"
    if bigdl_type not in BIGDL_TYPES:
        raise ValueError(f"{owner}: bigdl_type must be 'float' or 'double', got {bigdl_type!r}")
    return bigdl_type


class Configurable:
    """Base class that captures constructor arguments for ``get_config``.

    Every configurable constructor (layers, criteria, initializers, regularizers, optim methods,
    schedules, triggers, validation methods) also takes BigDL's keyword ``bigdl_type``:
    ``"float"`` (the default: float32, as BigDL) or ``"double"``.  For a ``Module``,
    ``"double"`` makes its parameters and buffers float64 (as ``.double()``); the other objects
    follow the dtype of the data they are given, so for them it only has to be valid.  Any other
    value is a ValueError.  A ``"double"`` is kept in the config, so a saved model reloads as
    float64.
    """

    def __init_subclass__(cls, abstract=False, **kwargs):
        # ``class Base(Module, abstract=True)``: a shared base that no config may name
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_") and not abstract:
            _REGISTRY[cls.__name__] = cls
        init = cls.__dict__.get("__init__")
        if init is None and cls.__init__ is object.__init__:
            def init(self):  # no constructor arguments (but bigdl_type, as every class)
                pass
        if init is None or getattr(init, "_captures_config", False):
            return
        signature = inspect.signature(init)
        takes_bigdl_type = "bigdl_type" in signature.parameters

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            # BigDL's ``bigdl_type=`` keyword, accepted by every configurable constructor
            bigdl_type = None if takes_bigdl_type else kw.pop("bigdl_type", None)
            # Only the most-derived constructor records: super().__init__ calls find it set.
            outermost = "_init_args" not in self.__dict__
            if outermost:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                params = dict(bound.arguments)
                params.pop(next(iter(signature.parameters)))  # self
                for name, p in signature.parameters.items():
                    if p.kind is inspect.Parameter.VAR_KEYWORD and name in params:
                        params.update(params.pop(name))
                    elif p.kind is inspect.Parameter.VAR_POSITIONAL and name in params:
                        params["*" + name] = list(params.pop(name))
                self.__dict__["_init_args"] = params
                bigdl_type = check_bigdl_type(type(self).__name__, bigdl_type)
                if bigdl_type == "double":
                    params["bigdl_type"] = "double"  # a config rebuilds a double object
            init(self, *args, **kw)
            if outermost and bigdl_type == "double":
                self._apply_bigdl_type(bigdl_type)

        __init__._captures_config = True
        cls.__init__ = __init__

    def _apply_bigdl_type(self, bigdl_type):
        """Act on ``bigdl_type="double"`` once the constructor has run (``Module`` casts its
        parameters to float64; other objects follow the dtype of the data they see)."""

    def get_config(self) -> dict:
        """A JSON-able dict that rebuilds this object with :func:`from_config`."""
        args = getattr(self, "_init_args", {})
        where = type(self).__name__
        return {"class": type(self).__name__,
                "args": {k: _to_json(v, where) for k, v in args.items()}}

    @classmethod
    def from_config(cls, config: dict):
        return from_config(config, cls)


def registered(base=Configurable):
    """``{class name: class}`` of the registered subclasses of ``base`` (what configs may
    name)."""
    return {name: cls for name, cls in _REGISTRY.items() if issubclass(cls, base)}


def from_config(config, base=Configurable):
    """Rebuild an object from ``get_config()`` output; the class must be a registered ``base``."""
    if not isinstance(config, dict) or not isinstance(config.get("class"), str):
        raise ConfigError(f"config must be a dict with a 'class' name, got {type(config).__name__}")
    name = config["class"]
    cls = _REGISTRY.get(name)
    if cls is None or not issubclass(cls, base):
        raise ConfigError(f"unknown {base.__name__} class {name!r} in config")
    args = config.get("args", {})
    if not isinstance(args, dict):
        raise ConfigError(f"{name}: 'args' must be a dict")
    args = {k: _from_json(v, base) for k, v in args.items()}
    star = [k for k in args if k.startswith("*")]
    positional = args.pop(star[0]) if star else []
    if star:
        # Parameters before *args must go positionally: f(first, *others) can't take first=.
        init = inspect.signature(cls.__init__).parameters.values()
        before = [p.name for p in init if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][1:]
        positional = [args.pop(name) for name in before if name in args] + list(positional)
    hook = getattr(cls, "_build_from_config", None)
    try:
        obj = hook(config, positional, args) if hook else cls(*positional, **args)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: cannot rebuild from config: {e}") from e
    return obj
