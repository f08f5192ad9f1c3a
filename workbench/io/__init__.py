"""``workbench.io``: the model file format and its safe readers.

A model file is one zip archive: ``meta.json`` (the JSON architecture) and ``arrays.npz`` (the
weights, numeric arrays only).  Nothing in it is ever unpickled, so loading an untrusted file
cannot run code; a malformed, truncated or hostile file raises :class:`ModelFileError`.

    save_model(model, "lenet.bigdl", over_write=True)
    model = load_model("lenet.bigdl")

Checkpoints use the same container through :func:`write_archive` / :func:`read_archive`.
ONNX files come in with :func:`load_onnx` and go out with :func:`save_onnx` (``workbench.io.onnx``).
"""
from .archive import FORMAT_NAME, FORMAT_VERSION, ModelFileError, read_archive, write_archive
from .model import MODEL_KIND, load_model, loadModel, save_model, saveModel
from .onnx import OnnxError, load_onnx, save_onnx

__all__ = ["ModelFileError", "write_archive", "read_archive", "save_model", "load_model",
           "saveModel", "loadModel", "FORMAT_NAME", "FORMAT_VERSION", "MODEL_KIND",
           "load_onnx", "save_onnx", "OnnxError"]
