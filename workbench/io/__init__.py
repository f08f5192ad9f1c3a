"""``workbench.io``: the model file format and its safe readers.

A model file is one zip archive: ``meta.json`` (the JSON architecture) and ``arrays.npz`` (the
weights, numeric arrays only).  Nothing in it is ever unpickled, so loading an untrusted file
cannot run code; a malformed, truncated or hostile file raises :class:`ModelFileError`.

    save_model(model, "lenet.bigdl", over_write=True)
    model = load_model("lenet.bigdl")

Checkpoints use the same container through :func:`write_archive` / :func:`read_archive`.
"""
from .archive import FORMAT_NAME, FORMAT_VERSION, ModelFileError, read_archive, write_archive
from .model import MODEL_KIND, load_model, loadModel, save_model, saveModel
from .pytorch import (PyTorchFileError, load_pytorch_weights, read_safetensors, read_state_dict,
                      read_torch_state_dict)

__all__ = ["ModelFileError", "write_archive", "read_archive", "save_model", "load_model",
           "saveModel", "loadModel", "FORMAT_NAME", "FORMAT_VERSION", "MODEL_KIND",
           "PyTorchFileError", "load_pytorch_weights", "read_safetensors", "read_state_dict",
           "read_torch_state_dict"]
