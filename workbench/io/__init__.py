"""``workbench.io``: the model file format and its safe readers.

A model file is one zip archive: ``meta.json`` (the JSON architecture) and ``arrays.npz`` (the
weights, numeric arrays only).  Nothing in it is ever unpickled, so loading an untrusted file
cannot run code; a malformed, truncated or hostile file raises :class:`ModelFileError`.

    save_model(model, "lenet.bigdl", over_write=True)
    model = load_model("lenet.bigdl")

Checkpoints use the same container through :func:`write_archive` / :func:`read_archive`.

Importers from other frameworks (read without executing anything from the file), loaded on first
use: :func:`load_caffe_model` / :func:`load_caffe` (``caffe``, needs protobuf) and
:func:`load_torch` (``torch7``, Torch7's ``.t7`` binary files), :func:`load_keras` /
:func:`load_keras_weights` (``keras``: JSON + HDF5, a full ``.h5``, a ``.keras`` archive; needs
h5py).  PyTorch ``state_dict``s (safetensors, ``torch.save`` files) are read by
:func:`load_pytorch_weights` without torch and without unpickling.  ONNX files come in with
:func:`load_onnx` and go out with :func:`save_onnx` (``onnx``, needs the onnx package).
"""
from .archive import FORMAT_NAME, FORMAT_VERSION, ModelFileError, read_archive, write_archive
from .model import MODEL_KIND, load_model, loadModel, save_model, saveModel
from .onnx import OnnxError, load_onnx, save_onnx
from .pytorch import (PyTorchFileError, load_pytorch_weights, read_safetensors, read_state_dict,
                      read_torch_state_dict)

__all__ = ["ModelFileError", "write_archive", "read_archive", "save_model", "load_model",
           "saveModel", "loadModel", "FORMAT_NAME", "FORMAT_VERSION", "MODEL_KIND",
           "load_caffe_model", "load_caffe", "load_torch", "load_keras", "load_keras_weights",
           "load_onnx", "save_onnx", "OnnxError",
           "PyTorchFileError", "load_pytorch_weights", "read_safetensors", "read_state_dict",
           "read_torch_state_dict"]

_LAZY = {"load_caffe_model": "caffe", "load_caffe": "caffe", "load_torch": "torch7",
         "load_keras": "keras", "load_keras_weights": "keras"}


def __getattr__(name):
    # the importers pull in their parsers (protobuf) only when used
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{module}", __name__), name)
