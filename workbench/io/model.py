"""``save_model`` / ``load_model``: a model as its JSON architecture plus its weights.

The architecture is ``model.get_config()``; loading rebuilds it from registered classes only
(a config names a class, never a module to import), under an allocation budget equal to the
weights the file holds, then checks every array's shape and dtype before copying anything.
"""
from __future__ import annotations

import os

import numpy as np

from .._config import ConfigError
from ..nn.module import Module, allocation_budget, build_module
from .archive import ModelFileError, read_archive, write_archive

__all__ = ["save_model", "load_model", "saveModel", "loadModel", "MODEL_KIND"]

MODEL_KIND = "workbench-model"
# Checkpoints written by ``workbench.optim`` hold the model too (arrays under "model/").
_CHECKPOINT_KIND = "workbench-checkpoint"


def save_model(model, path, over_write=False):
    """Save ``model`` (architecture + weights + buffers) to one file at ``path``.

    Args:
        model: a ``Module``.
        path: the file to write (BigDL users often use the ``.bigdl`` suffix).
        over_write: replace an existing file (otherwise ``FileExistsError``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"save_model: expected a Module, got {type(model).__name__}")
    path = os.fspath(path)
    if os.path.exists(path) and not over_write:
        raise FileExistsError(f"save_model: {path} exists; pass over_write=True to replace it")
    document = {"kind": MODEL_KIND, "model": model.get_config()}
    write_archive(path, document, {k: np.asarray(v) for k, v in model.state_dict().items()})
    return path


def _weights_of(path, document, arrays):
    kind = document.get("kind")
    if kind == MODEL_KIND:
        return arrays
    if kind == _CHECKPOINT_KIND:
        return {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    raise ModelFileError(f"{path}: not a model file (kind {kind!r})")


def _build(path, config, budget):
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: the model config must be a dict, got "
                             f"{type(config).__name__}")
    try:
        with allocation_budget(budget, "the weights stored in the file"):
            model = build_module(config)
    except ConfigError as e:
        raise ModelFileError(f"{path}: cannot rebuild the model: {e}") from None
    except MemoryError:
        raise ModelFileError(f"{path}: the model config declares layers too large to "
                             "allocate") from None
    except RecursionError:
        raise ModelFileError(f"{path}: the model config is nested too deeply") from None
    except Exception as e:  # a layer constructor choking on hostile arguments
        raise ModelFileError(f"{path}: cannot rebuild the model "
                             f"({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(model, Module):
        raise ModelFileError(f"{path}: the config does not describe a Module")
    return model


def _check_weights(path, model, weights):
    """Shapes and dtypes of the file's arrays against the built model, before any copy."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise ModelFileError(f"{path}: the weights do not match the model's config"
                             + (f"; missing {missing[:5]}" if missing else "")
                             + (f"; unexpected {extra[:5]}" if extra else ""))
    params = [p for p, _, _ in model.named_parameters()]
    bad = [(p, weights[p].dtype) for p in params if weights[p].dtype.kind != "f"]
    if bad:
        raise ModelFileError(f"{path}: parameter {bad[0][0]!r} has dtype {bad[0][1]}; "
                             "parameters must be floating point")
    float_dtypes = {weights[p].dtype for p in params}
    if len(float_dtypes) > 1:
        raise ModelFileError(f"{path}: parameters mix dtypes {sorted(map(str, float_dtypes))}")
    if float_dtypes == {np.dtype(np.float64)}:
        model.double()
        own = model.state_dict()
    elif float_dtypes and float_dtypes != {np.dtype(np.float32)}:
        raise ModelFileError(f"{path}: parameters have dtype {float_dtypes.pop()}; expected "
                             "float32 or float64")
    for key, target in own.items():
        value, target = weights[key], np.asarray(target)
        if value.shape != target.shape:
            raise ModelFileError(f"{path}: {key} has shape {tuple(target.shape)} in the model "
                                 f"but {tuple(value.shape)} in the file")
        same = (value.dtype == target.dtype if target.dtype.kind == "f" else
                value.dtype.kind in "iub" and target.dtype.kind in "iub"
                and np.can_cast(value.dtype, target.dtype, casting="same_kind"))
        if not same:
            raise ModelFileError(f"{path}: {key} has dtype {target.dtype} in the model but "
                                 f"{value.dtype} in the file")


def load_model(path):
    """Load a model saved by :func:`save_model` (or the model inside a training checkpoint).

    Only registered layer classes are rebuilt, nothing is unpickled, and a file whose config
    declares more parameters than it holds weights is rejected before anything is allocated.
    Raises :class:`ModelFileError` for a bad file.
    """
    path = os.fspath(path)
    document, arrays = read_archive(path)
    weights = _weights_of(path, document, arrays)
    budget = sum(a.size for a in weights.values())
    model = _build(path, document.get("model"), budget)
    _check_weights(path, model, weights)
    model.load_state_dict(weights)
    return model


def saveModel(model, model_path, weight_path=None, over_write=False):
    """BigDL spelling of :func:`save_model` (the weights always go in the same file)."""
    if weight_path is not None:
        raise ValueError("saveModel: workbench stores the weights in the model file; "
                         "weight_path is not supported")
    return save_model(model, model_path, over_write=over_write)


def loadModel(model_path, weight_path=None):
    """BigDL spelling of :func:`load_model`."""
    if weight_path is not None:
        raise ValueError("loadModel: workbench stores the weights in the model file; "
                         "weight_path is not supported")
    return load_model(model_path)
