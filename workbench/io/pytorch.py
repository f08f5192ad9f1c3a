"""PyTorch weights into workbench models, read without PyTorch and without running code.

Two file formats hold a PyTorch ``state_dict``:

- **safetensors** (``safetensors.torch.save_file``): an 8-byte header length, a JSON header,
  raw little-endian bytes.  Read through ``safetensors.numpy`` (which checks the header);
  bfloat16 tensors are widened to float32 (exactly).
- **``torch.save``** (``.pt`` / ``.pth``): since PyTorch 1.6 a zip archive of ``<name>/data.pkl``
  (a pickle, protocol 2) and one raw storage per tensor ``<name>/data/<key>``; before 1.6 a
  sequence of pickles followed by the raw storages (the "legacy" format).  The pickle is read by
  a restricted unpickler that knows exactly the globals a state_dict needs
  (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
  ``torch._utils._rebuild_parameter`` and the ``torch.*Storage`` type markers), each mapped to a
  harmless stand-in of this module; any other global (a pickled ``nn.Module``, ``posix.system``,
  ``builtins.eval`` ...) is refused before anything is called.  Declared sizes, strides and
  offsets are checked against the storage lengths (and those against the file) before any view
  is made, so a hostile file allocates nothing it does not contain.

Then :func:`load_state_dict` copies the arrays into a model's layers, by a name map (the zoo
builders provide one: ``"layer1.0.conv1.weight" -> ("layer1.0.conv1", "weight")``), by the
model's own ``state_dict`` paths (``"0.weight"``: a ``torch.nn.Sequential`` mirrors ours), by
layer name (``set_name``) + parameter name, or, when asked, by order.

    model = workbench.models.resnet18()                       # layers named as torchvision's
    load_pytorch_weights(model, "resnet18.pth", name_map=torchvision_names(model))

Layouts: Linear ``(out, in)``, convolutions ``(out, in/groups, kh, kw)``, transposed
convolutions ``(in, out/groups, kh, kw)``, batch norm, embeddings and PReLU are the same in both
libraries; a ``Conv1d`` weight ``(out, in, k)`` is reordered into ``TemporalConvolution``'s
``(out, k * in)``.
"""
from __future__ import annotations

import collections
import io as _io
import json
import os
import pickle
import struct
import warnings
import zipfile

import numpy as np

from .archive import ModelFileError

__all__ = ["PyTorchFileError", "read_safetensors", "read_torch_state_dict", "read_state_dict",
           "load_state_dict", "load_pytorch_weights"]


class PyTorchFileError(ModelFileError):
    """A PyTorch weights file that is malformed, truncated, hostile, or not a state_dict."""


# ------------------------------------------------------------------------------ dtypes
def _bf16_to_f32(raw):
    """bfloat16 bits (uint16) widened to float32: the top half of a float32, exact."""
    return (np.asarray(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


# torch storage class -> (numpy dtype, element size); bfloat16 is read as uint16 then widened
_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


# ------------------------------------------------------------------------------ safetensors
def read_safetensors(path) -> dict[str, np.ndarray]:
    """Read a safetensors file into ``{key: array}``, without PyTorch.

    Args:
        path: the ``.safetensors`` file.

    Returns:
        The tensors by key as numpy arrays (bfloat16 widened to float32).

    Raises:
        PyTorchFileError: the header is not valid safetensors (truncated, offsets outside the
            file, unknown dtype ...), naming the file.
    """
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    try:
        header = _safetensors_header(path)
        out = {}
        with safe_open(path, framework="np") as f:  # validates the header against the file
            for key in f.keys():
                entry = header.get(key)
                if isinstance(entry, dict) and entry.get("dtype") == "BF16":
                    out[key] = _read_bf16(path, header, key)
                else:
                    out[key] = f.get_tensor(key)
        return out
    except SafetensorError as e:
        raise PyTorchFileError(f"read_safetensors: {path} is not a valid safetensors file: "
                               f"{e}") from None
    except TypeError as e:  # a dtype numpy does not know (e.g. float8)
        raise PyTorchFileError(f"read_safetensors: {path}: unsupported tensor dtype ({e})"
                               ) from None


def _safetensors_header(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise PyTorchFileError(f"read_safetensors: {path} is truncated ({size} bytes; "
                                   "a safetensors file starts with an 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise PyTorchFileError(f"read_safetensors: {path}: the header declares {n} bytes "
                                   f"but the file has {size - 8} after the length")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise PyTorchFileError(f"read_safetensors: {path}: the header is not JSON ({e})"
                                   ) from None
    if not isinstance(header, dict):
        raise PyTorchFileError(f"read_safetensors: {path}: the header is not a JSON object")
    header["__base__"] = 8 + n
    return header


def _read_bf16(path, header, key):
    entry = header[key]
    begin, end = entry["data_offsets"]  # safe_open checked them against the file
    shape = tuple(entry["shape"])
    with open(path, "rb") as f:
        f.seek(header["__base__"] + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    return _bf16_to_f32(raw).reshape(shape)


# ------------------------------------------------------------------------------ torch.save
class _Sealed:
    """Base of the stand-ins: a pickle's BUILD opcode (``__setstate__``) cannot change them
    after they were checked (e.g. a tensor's size after its bounds check)."""

    __slots__ = ()

    def __setstate__(self, state):
        raise PyTorchFileError(f"read_torch_state_dict: the pickle sets the state of a "
                               f"{type(self).__name__.strip('_')}, which a state_dict never "
                               "does: refused")


class _Callable(_Sealed):
    """A sealed wrapper of an allowed global, fresh for every lookup: the pickle cannot set
    attributes on this module's functions or on ``collections.OrderedDict``."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


class _StorageType(_Sealed):
    """Stand-in for a ``torch.<X>Storage`` class named in a pickle: only its dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGES[name])


class _StorageRef(_Sealed):
    """A storage declared by a persistent id: its key, type and element count (and, in the
    legacy format, its offset in a root storage)."""

    __slots__ = ("key", "stype", "numel", "base_offset")

    def __init__(self, key, stype, numel):
        self.key, self.stype, self.numel, self.base_offset = key, stype, numel, 0


class _TensorRef(_Sealed):
    """A tensor declared by ``_rebuild_tensor_v2``: a checked view of a storage, made later."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    where = "_rebuild_tensor_v2"
    if not isinstance(storage, _StorageRef):
        raise PyTorchFileError(f"{where}: expected a storage, got {type(storage).__name__}")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(_is_int(v) and v >= 0 for v in size + stride)
            and _is_int(storage_offset) and storage_offset >= 0):
        raise PyTorchFileError(f"{where}: bad size {size!r} / stride {stride!r} / offset "
                               f"{storage_offset!r} for storage {storage.key!r}")
    count = 1
    for s in size:
        count *= s
    if count:
        extent = storage_offset + 1 + sum((s - 1) * st for s, st in zip(size, stride))
        if extent > storage.numel or count > storage.numel:
            raise PyTorchFileError(
                f"{where}: a tensor of shape {size} (stride {stride}, offset {storage_offset}) "
                f"needs {max(extent, count)} elements but storage {storage.key!r} has "
                f"{storage.numel}")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(data, _TensorRef):
        raise PyTorchFileError(f"_rebuild_parameter: expected a tensor, got "
                               f"{type(data).__name__}")
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state_dict and nothing else: every global outside ``_ALLOWED`` and the
    storage markers is refused before it is looked up, so nothing of the file is ever called
    except this module's stand-ins."""

    def __init__(self, file, where, storage):
        super().__init__(file)
        self._where, self._storage = where, storage

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is not None:
            return _Callable(found)
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if module == "__builtin__":  # protocol 2 spells builtins as Python 2 did
            module = "builtins"
        raise PyTorchFileError(
            f"read_torch_state_dict: refuses global '{module}.{name}' in {self._where}: only "
            "tensors are read; save a state_dict (torch.save(model.state_dict(), path)), not a "
            "pickled module or other objects")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and _is_int(pid[4]) and pid[4] >= 0):
            raise PyTorchFileError(f"read_torch_state_dict: unexpected persistent id {pid!r:.200} "
                                   f"in {self._where}")
        return self._storage(pid)


def _unpickle(file, where, storage):
    try:
        return _StateDictUnpickler(file, where, storage).load()
    except PyTorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, RecursionError, MemoryError) as e:
        raise PyTorchFileError(f"read_torch_state_dict: {where} is not a valid pickle "
                               f"({type(e).__name__}: {e})") from None


def _view(ref, raw):
    """The tensor ``ref`` as an array over its storage's ``raw`` (a 1-D array of the storage
    dtype, checked to hold ``ref.storage.numel`` elements)."""
    dtype = raw.dtype
    if ref.size and all(s for s in ref.size):
        contiguous, expect = True, 1
        for s, st in zip(reversed(ref.size), reversed(ref.stride)):
            if s != 1 and st != expect:
                contiguous = False
            expect *= s
        if contiguous:
            count = expect
            arr = raw[ref.offset:ref.offset + count].reshape(ref.size)
        else:
            arr = np.lib.stride_tricks.as_strided(
                raw[ref.offset:], shape=ref.size,
                strides=tuple(st * dtype.itemsize for st in ref.stride), writeable=False).copy()
    elif ref.size:  # a zero-sized dimension
        arr = np.empty(ref.size, dtype)
    else:  # a scalar
        arr = raw[ref.offset:ref.offset + 1].reshape(())
    if ref.storage.stype.name == "BFloat16Storage":
        arr = _bf16_to_f32(arr)
    return arr


def _collect(obj, where):
    """``{key: TensorRef}`` from the unpickled object: a dict of tensors; nested dicts (e.g. a
    checkpoint ``{"model": state_dict, ...}``) are flattened with dotted keys; values that are not
    tensors (numbers, strings) are skipped."""
    if not isinstance(obj, dict):
        raise PyTorchFileError(f"read_torch_state_dict: {where} holds a "
                               f"{type(obj).__name__}, not a state_dict (a dict of tensors)")
    out = {}

    def walk(d, prefix):
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, _TensorRef):
                out[key] = v
            elif isinstance(v, dict):
                walk(v, key + ".")
    walk(obj, "")
    return out


def read_torch_state_dict(path) -> dict[str, np.ndarray]:
    """Read a state_dict written by ``torch.save`` (zip format, PyTorch >= 1.6, or the legacy
    format before it) into ``{key: array}``, without PyTorch and without running the pickle.

    Args:
        path: the ``.pt`` / ``.pth`` file.

    Returns:
        The tensors by key in the file's order (numpy views of the read storages where the
        tensors are contiguous; bfloat16 as float32).  Nested dicts are flattened with dotted
        keys; non-tensor values are skipped.

    Raises:
        PyTorchFileError: not a torch file, truncated, a global other than the state_dict ones
            (a pickled ``nn.Module``, ``os.system`` ...), or a tensor larger than its storage.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"PK":
        return _read_zip(path)
    if magic[:1] == b"\x80":
        return _read_legacy(path)
    raise PyTorchFileError(f"read_torch_state_dict: {path} is neither a torch.save zip archive "
                           "nor a legacy torch pickle")


def _read_zip(path):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise PyTorchFileError(f"read_torch_state_dict: {path} is not a valid zip archive "
                               f"(truncated?): {e}") from None
    with zf:
        pkls = [i for i in zf.infolist() if i.filename.endswith("data.pkl")
                and i.filename.count("/") == 1]
        if len(pkls) != 1:
            raise PyTorchFileError(f"read_torch_state_dict: {path} has no single "
                                   "'<name>/data.pkl' (not written by torch.save)")
        prefix = pkls[0].filename[:-len("data.pkl")]
        members = {i.filename: i for i in zf.infolist()}
        order = "<"
        if prefix + "byteorder" in members:
            tag = _member(zf, members[prefix + "byteorder"], path).decode("ascii", "replace")
            if tag not in ("little", "big"):
                raise PyTorchFileError(f"read_torch_state_dict: {path}: unknown byteorder "
                                       f"{tag!r}")
            order = "<" if tag == "little" else ">"
        where = pkls[0].filename
        storages = {}

        def storage(pid):
            _, stype, key, _location, numel = pid[:5]
            ref = storages.get(key)
            if ref is None:
                name = f"{prefix}data/{key}"
                info = members.get(name)
                if info is None:
                    raise PyTorchFileError(f"read_torch_state_dict: {path}: storage {key!r} "
                                           f"({name}) is missing")
                need = numel * stype.dtype.itemsize
                if info.file_size != need:
                    raise PyTorchFileError(
                        f"read_torch_state_dict: {path}: storage {name} declares {numel} "
                        f"{stype.name} elements ({need} bytes) but holds {info.file_size} bytes")
                ref = storages[key] = _StorageRef(key, stype, numel)
            elif ref.stype.name != stype.name or ref.numel != numel:
                raise PyTorchFileError(f"read_torch_state_dict: {path}: storage {key!r} is "
                                       "declared twice with different types or sizes")
            return ref

        refs = _collect(_unpickle(_io.BytesIO(_member(zf, pkls[0], path)), where, storage),
                        where)
        raws = {}
        for key, ref in storages.items():
            data = _member(zf, members[f"{prefix}data/{key}"], path)
            raws[key] = np.frombuffer(data, dtype=ref.stype.dtype.newbyteorder(order)
                                      if ref.stype.dtype.itemsize > 1 else ref.stype.dtype)
            if order == ">":
                raws[key] = raws[key].astype(ref.stype.dtype.newbyteorder("="))
    return {k: _view(r, raws[r.storage.key]) for k, r in refs.items()}


def _member(zf, info, path):
    """The bytes of a zip member; compressed members are refused (torch.save stores them raw,
    and a declared uncompressed size is no bound on a deflate stream's author)."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise PyTorchFileError(f"read_torch_state_dict: {path}: member {info.filename} is "
                               "compressed; torch.save writes stored members only")
    if info.file_size > os.path.getsize(path):
        raise PyTorchFileError(f"read_torch_state_dict: {path}: member {info.filename} "
                               f"declares {info.file_size} bytes, more than the file holds")
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise PyTorchFileError(f"read_torch_state_dict: {path}: member {info.filename} is "
                               f"unreadable (truncated?): {e}") from None


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def _read_legacy(path):
    """PyTorch < 1.6: pickles of the magic number, the protocol version, system info, the
    object and the storage keys, then each storage as an int64 element count and raw bytes."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read()
    stream = _io.BytesIO(data)
    header_where = f"{path} (legacy header)"

    def load(what, storage):
        return _unpickle(stream, what, storage)

    def no_storage(pid):
        raise PyTorchFileError(f"read_torch_state_dict: unexpected storage in {header_where}")

    if load(header_where, no_storage) != _LEGACY_MAGIC:
        raise PyTorchFileError(f"read_torch_state_dict: {path} is a pickle but not a torch.save "
                               "file (no magic number); only tensors are read")
    if load(header_where, no_storage) != 1001:
        raise PyTorchFileError(f"read_torch_state_dict: {path}: unknown legacy protocol version")
    sys_info = load(header_where, no_storage)
    little = not (isinstance(sys_info, dict) and sys_info.get("little_endian") is False)
    storages = {}
    views = {}

    def storage(pid):
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        ref = storages.get(key)
        if ref is None:
            if numel * stype.dtype.itemsize > size:
                raise PyTorchFileError(f"read_torch_state_dict: {path}: storage {key!r} "
                                       f"declares {numel} elements, more than the file holds")
            ref = storages[key] = _StorageRef(key, stype, numel)
        if view is None:
            return ref
        # (view key, offset, size): a storage view of the root storage
        if not (isinstance(view, tuple) and len(view) == 3 and all(_is_int(v) and v >= 0
                                                                   for v in view[1:])
                and view[1] + view[2] <= ref.numel):
            raise PyTorchFileError(f"read_torch_state_dict: {path}: bad storage view {view!r}")
        vref = views.get(view[0])
        if vref is None:
            vref = views[view[0]] = _StorageRef(key, stype, view[2])
            vref.base_offset = view[1]
        return vref

    where = f"{path} (legacy pickle)"
    refs = _collect(load(where, storage), where)
    keys = load(where, no_storage)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise PyTorchFileError(f"read_torch_state_dict: {path}: bad storage key list")
    raws = {}
    pos = stream.tell()
    for key in keys:
        ref = storages.get(key)
        if ref is None:
            raise PyTorchFileError(f"read_torch_state_dict: {path}: unknown storage {key!r}")
        if pos + 8 > size:
            raise PyTorchFileError(f"read_torch_state_dict: {path} is truncated at byte {pos} "
                                   f"(storage {key!r})")
        (numel,) = struct.unpack("<q" if little else ">q", data[pos:pos + 8])
        nbytes = numel * ref.stype.dtype.itemsize
        if numel != ref.numel or pos + 8 + nbytes > size:
            raise PyTorchFileError(
                f"read_torch_state_dict: {path}: storage {key!r} at byte {pos} holds {numel} "
                f"elements, declared {ref.numel}, file has {size - pos - 8} bytes left")
        dtype = ref.stype.dtype.newbyteorder("<" if little else ">")
        raws[key] = np.frombuffer(data, dtype=dtype, count=numel, offset=pos + 8)
        if not little:
            raws[key] = raws[key].astype(ref.stype.dtype.newbyteorder("="))
        pos += 8 + nbytes
    out = {}
    for k, r in refs.items():
        base = raws.get(r.storage.key)
        if base is None:
            raise PyTorchFileError(f"read_torch_state_dict: {path}: storage "
                                   f"{r.storage.key!r} has no data")
        offset = r.storage.base_offset
        out[k] = _view(r, base[offset:offset + r.storage.numel])
    return out


# ------------------------------------------------------------------------------ dispatch
def read_state_dict(path) -> dict[str, np.ndarray]:
    """Read PyTorch weights from a safetensors or ``torch.save`` file, chosen by the file's
    content (not its extension)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return read_torch_state_dict(path)
    if len(head) == 9 and head[8:9] == b"{":
        return read_safetensors(path)
    raise PyTorchFileError(f"read_state_dict: {path} is neither safetensors nor a torch.save "
                           "file")


# ------------------------------------------------------------------------------ into a model
def _conv1d_to_temporal(value, target):
    # Conv1d (out, in, k) -> TemporalConvolution (out, k * in): windows are read frame by frame
    if value.ndim == 3 and target.ndim == 2 and value.shape[0] == target.shape[0] \
            and value.shape[1] * value.shape[2] == target.shape[1]:
        return value.transpose(0, 2, 1).reshape(target.shape)
    return None


_CONVERTERS = {("TemporalConvolution", "weight"): _conv1d_to_temporal}


def _slots(model):
    """Our targets: ``(path, module, name)`` of every parameter then buffer, each module once,
    per module in PyTorch's order (parameters, then buffers)."""
    out, seen = [], set()
    for path, m in model._walk(""):
        if id(m) in seen:
            continue
        seen.add(id(m))
        for name in list(m._param_names) + list(m._buffer_names):
            out.append((f"{path}{name}", m, name))
    return out


def load_state_dict(model, state, name_map=None, strict=True, by_order=False):
    """Copy PyTorch weights into ``model``'s layers (in place; flat parameter views stay views).

    Each key of ``state`` is placed by, in turn: ``name_map[key]`` (``(layer name, parameter
    name)``, or None to skip the key); the model's own ``state_dict()`` path (``"0.weight"``,
    which a ``torch.nn.Sequential`` of the same layers shares); the layer named (``set_name``)
    as the key up to its last dot, and the parameter or buffer named as the rest
    (``"layer1.0.bn1.running_mean"``).  With ``by_order=True`` the keys left over are matched to
    the slots left over in order (parameters then buffers of each layer, as PyTorch orders
    them), shapes checked.  ``num_batches_tracked`` is always ignored.

    Args:
        model: a workbench ``Module``.
        state: ``{key: array}`` (from :func:`read_state_dict`, or a torch state_dict of CPU
            tensors).
        name_map: optional ``{pytorch key: (our layer name, parameter name)}``, e.g.
            ``workbench.models.names.torchvision_names(model)``.
        strict: raise if a model parameter/buffer gets no value or a key finds no place
            (``num_batches_tracked`` aside); else warn and load what matches.
        by_order: match the keys no name placed by order (off by default: fragile).

    Returns:
        ``model``.

    Raises:
        ValueError: a shape mismatch (naming the key, our layer and both shapes), a map entry
            naming no layer, two layers sharing a name used by the map, or (strict) missing /
            unexpected keys, listed.
    """
    label = model.label()
    slots = _slots(model)
    by_path = {p: (m, n) for p, m, n in slots}
    by_name = {}
    for m in model.modules():
        by_name.setdefault(m.name(), []).append(m)
    keys = [k for k in state if not str(k).endswith("num_batches_tracked")]
    name_map = dict(name_map or {})
    placed, unexpected, done = [], [], set()

    for key in keys:
        target = None
        if key in name_map:
            entry = name_map[key]
            if entry is None:
                continue
            layer, pname = entry
            found = by_name.get(layer, [])
            if len(found) != 1:
                raise ValueError(f"load_state_dict: {label}: name_map sends {key!r} to layer "
                                 f"{layer!r}, " + ("which the model does not have" if not found
                                                   else f"a name {len(found)} layers share"))
            if pname not in found[0]._param_names and pname not in found[0]._buffer_names:
                raise ValueError(f"load_state_dict: {label}: name_map sends {key!r} to "
                                 f"{found[0].label()}.{pname}, which that layer does not have "
                                 f"(it has {found[0]._param_names + found[0]._buffer_names})")
            target = (found[0], pname)
        elif key in by_path:
            target = by_path[key]
        elif "." in key:
            layer, pname = key.rsplit(".", 1)
            found = by_name.get(layer, [])
            if len(found) == 1 and (pname in found[0]._param_names
                                    or pname in found[0]._buffer_names):
                target = (found[0], pname)
        if target is None:
            unexpected.append(key)
        else:
            placed.append((key, target))

    if by_order and unexpected:
        taken = {(id(m), n) for _, (m, n) in placed}
        free = [(m, n) for _, m, n in slots if (id(m), n) not in taken]
        pairs = list(zip(unexpected, free))
        placed += pairs
        unexpected = unexpected[len(pairs):]

    for key, (m, pname) in placed:
        if (id(m), pname) in done:
            raise ValueError(f"load_state_dict: {label}: two keys go to {m.label()}.{pname} "
                             f"(the second is {key!r})")
        done.add((id(m), pname))
        _copy(label, key, m, pname, state[key])

    missing = [p for p, m, n in slots if (id(m), n) not in done]
    if missing or unexpected:
        msg = (f"load_state_dict: {label}: weights do not match the model: "
               f"{len(missing)} missing {missing[:10]}, {len(unexpected)} unexpected "
               f"{unexpected[:10]}")
        if strict:
            raise ValueError(msg + " (strict=False loads what matches; name_map places keys)")
        warnings.warn(msg, stacklevel=2)
    return model


def _copy(label, key, m, pname, value):
    target = getattr(m, pname)
    value = np.asarray(value)
    if value.dtype.kind not in "fiub":
        raise ValueError(f"load_state_dict: {label}: {key!r} has dtype {value.dtype}, not a "
                         f"real number type ({m.label()}.{pname})")
    if value.shape != target.shape:
        convert = _CONVERTERS.get((type(m).__name__, pname))
        converted = convert(value, target) if convert is not None else None
        if converted is None:
            raise ValueError(f"load_state_dict: {label}: {key!r} has shape {tuple(value.shape)} "
                             f"but {m.label()} (layer {m.name()!r}) has {pname} of shape "
                             f"{tuple(target.shape)}")
        value = converted
    target[...] = value


def load_pytorch_weights(model, path, name_map=None, strict=True, by_order=False):
    """Read PyTorch weights (safetensors or ``torch.save``, chosen by content) and copy them
    into ``model`` by :func:`load_state_dict`; returns ``model``."""
    return load_state_dict(model, read_state_dict(path), name_map=name_map, strict=strict,
                           by_order=by_order)
