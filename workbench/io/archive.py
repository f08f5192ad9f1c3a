"""The workbench archive: one zip file holding a JSON document and a set of numeric arrays.

Layout (every member stored, i.e. uncompressed, so nothing in the file can expand beyond the
file's own size)::

    meta.json     {"format": "bigdl-workbench", "version": 1, "document": {...}}
    arrays.npz    an uncompressed ``.npz``: one ``<key>.npy`` member per array

``np.load`` reads ``arrays.npz`` as it is, but :func:`read_archive` never calls it: it checks the
zip structure, the JSON and every ``.npy`` header (numeric dtype only, declared size equal to
the bytes present) before reading any data, and it has no code path that unpickles.  Anything
else -- a pickle, a truncated or corrupted file, extra or missing members, object arrays --
raises :class:`ModelFileError` naming the file and the problem.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from .._files import atomic_file

__all__ = ["ModelFileError", "write_archive", "read_archive", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "bigdl-workbench"
FORMAT_VERSION = 1
MAX_META_BYTES = 4 << 20
NUMERIC_KINDS = "fiub"
_META, _ARRAYS = "meta.json", "arrays.npz"
_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same content gives the same bytes
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_MAX_NPY_HEADER = 10000


class ModelFileError(ValueError):
    """A model or checkpoint file is not a valid workbench archive (or is not safe to load)."""


# ---------------------------------------------------------------------------------- writing
def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able (put arrays in `arrays`)")


def _member(name):
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _check_arrays(arrays):
    checked = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            raise ValueError(f"write_archive: array keys must be non-empty strings, got {key!r}")
        a = np.asarray(value)
        if a.dtype.hasobject or a.dtype.kind not in NUMERIC_KINDS:
            raise ValueError(f"write_archive: array {key!r} has dtype {a.dtype}; only numeric "
                             "arrays (float, int, uint, bool) can be saved")
        checked[key] = a
    return checked


def write_archive(path, document: dict, arrays: dict) -> None:
    """Write ``document`` (JSON-able dict) and ``arrays`` ({key: numeric ndarray}) to ``path``.

    The file appears atomically: it is written to a temporary file in the same directory and
    renamed over ``path``, so a crash never leaves a half-written file under that name.
    """
    path = os.fspath(path)
    if not isinstance(document, dict):
        raise TypeError(f"write_archive: document must be a dict, got {type(document).__name__}")
    arrays = _check_arrays(arrays)
    try:
        meta = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION,
                           "document": document}, default=_json_default).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(f"write_archive: document is not JSON-able: {e}") from None
    if len(meta) > MAX_META_BYTES:
        raise ValueError(f"write_archive: the document takes {len(meta)} bytes as JSON; the limit "
                         f"is {MAX_META_BYTES} (put large data in `arrays`)")
    total = sum(a.nbytes + 256 + len(k) for k, a in arrays.items())
    with atomic_file(path, binary=True, fsync=True) as f:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr(_member(_META), meta)
            with z.open(_member(_ARRAYS), "w", force_zip64=total > 1 << 30) as member:
                with zipfile.ZipFile(member, "w") as npz:
                    for key, a in arrays.items():
                        with npz.open(_member(key + ".npy"), "w",
                                      force_zip64=a.nbytes > 1 << 30) as out:
                            np.lib.format.write_array(out, a, allow_pickle=False)


# ---------------------------------------------------------------------------------- reading
class _Window(io.RawIOBase):
    """A read-only, seekable view of bytes ``[start, start + size)`` of an open file."""

    def __init__(self, f, start, size):
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=0):
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of arrays.npz")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(buffer)[:n])
        self._pos += got
        return got


def _fail(path, problem):
    raise ModelFileError(f"{path}: {problem}")


def _check_members(path, z, expected, what):
    infos = z.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        _fail(path, f"{what} has duplicated members")
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    if missing or extra:
        _fail(path, f"{what} must hold exactly {list(expected)}"
                    + (f"; missing {missing}" if missing else "")
                    + (f"; unexpected {extra[:5]}" if extra else ""))
    for info in infos:
        _check_stored(path, info, what)
    return {i.filename: i for i in infos}


def _check_stored(path, info, what):
    if info.flag_bits & 0x1:
        _fail(path, f"{what} member {info.filename!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        _fail(path, f"{what} member {info.filename!r} is compressed; workbench archives store "
                    "members uncompressed")
    if info.compress_size != info.file_size:
        _fail(path, f"{what} member {info.filename!r} has inconsistent sizes")


def _read_meta(path, z, info):
    if info.file_size > MAX_META_BYTES:
        _fail(path, f"meta.json takes {info.file_size} bytes, more than the {MAX_META_BYTES} "
                    "allowed")
    raw = z.read(info)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(path, f"meta.json is not valid JSON ({type(e).__name__}: {str(e)[:200]})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        _fail(path, f"meta.json does not describe a {FORMAT_NAME} archive")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail(path, f"meta.json has a bad format version {version!r}")
    if version > FORMAT_VERSION:
        _fail(path, f"format version {version} is newer than this workbench reads "
                    f"({FORMAT_VERSION}); upgrade bigdl-workbench")
    document = meta.get("document")
    if not isinstance(document, dict):
        _fail(path, "meta.json has no document")
    return document


def _data_window(path, f, info, file_size):
    """Where the stored member's bytes start in the file (after its local header)."""
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        _fail(path, "truncated zip local header")
    sig, _, _, _, _, _, _, _, _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
    if sig != b"PK\x03\x04" or f.read(name_len) != info.filename.encode("utf-8"):
        _fail(path, f"corrupt zip local header for {info.filename!r}")
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if start + info.file_size > file_size:
        _fail(path, f"{info.filename} declares {info.file_size} bytes but the file is truncated")
    # The npz members carry their own CRCs; this also covers the npz's own headers.
    crc, left, f_pos = 0, info.file_size, start
    f.seek(f_pos)
    while left:
        chunk = f.read(min(left, 1 << 22))
        if not chunk:
            _fail(path, f"{info.filename} is truncated")
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    if crc != info.CRC:
        _fail(path, f"{info.filename} is corrupt (CRC mismatch)")
    return _Window(f, start, info.file_size)


def _read_npy(path, npz, info):
    key = info.filename[:-len(".npy")]
    where = f"array {key!r}"
    with npz.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                m, max_header_size=_MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                m, max_header_size=_MAX_NPY_HEADER)
        else:
            _fail(path, f"{where}: unsupported .npy version {version}")
        if dtype.hasobject:
            _fail(path, f"{where} has dtype {dtype}: object arrays need pickle, which is never "
                        "loaded; only numeric arrays are accepted")
        if dtype.kind not in NUMERIC_KINDS:
            _fail(path, f"{where} has dtype {dtype}: only numeric arrays (float, int, uint, "
                        "bool) are accepted")
        if any(d < 0 for d in shape):
            _fail(path, f"{where} has a negative dimension in shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        held = info.file_size - m.tell()
        if nbytes != held:
            _fail(path, f"{where} declares shape {shape} of {dtype} ({nbytes} bytes) but its "
                        f"member holds {held} bytes")
        data = m.read(nbytes)
        if len(data) != nbytes or m.read(1):
            _fail(path, f"{where} is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return key, np.array(array, dtype=dtype.newbyteorder("="), copy=True)


def _read_arrays(path, npz):
    arrays = {}
    for info in npz.infolist():
        name = info.filename
        if not name.endswith(".npy") or name == ".npy" or name.endswith("/"):
            _fail(path, f"arrays.npz holds {name!r}, which is not a .npy array")
        if name[:-4] in arrays:
            _fail(path, f"arrays.npz holds {name!r} twice")
        _check_stored(path, info, "arrays.npz")
        key, array = _read_npy(path, npz, info)
        arrays[key] = array
    return arrays


def read_archive(path):
    """``(document, arrays)`` from a file written by :func:`write_archive`.

    Raises :class:`ModelFileError` for anything that is not exactly such a file.  Nothing in
    the file is ever unpickled or executed.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(4)
        if head != b"PK\x03\x04":
            if not head:
                _fail(path, "the file is empty")
            if head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"]", b"}"):
                _fail(path, "this looks like a Python pickle, which workbench never loads; "
                            "expected a workbench model archive (zip)")
            _fail(path, "not a workbench model archive (not a zip file)")
        f.seek(max(0, size - 22))
        if size < 22 or f.read(4) != b"PK\x05\x06":
            _fail(path, "truncated or corrupt archive (the zip end record is not at the end of "
                        "the file)")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as z:
                infos = _check_members(path, z, (_META, _ARRAYS), "the archive")
                if z.comment or z.infolist()[0].header_offset != 0:
                    _fail(path, "unexpected data around the zip archive")
                document = _read_meta(path, z, infos[_META])
                window = _data_window(path, f, infos[_ARRAYS], size)
                with zipfile.ZipFile(window) as npz:
                    arrays = _read_arrays(path, npz)
        except ModelFileError:
            raise
        except MemoryError:
            raise ModelFileError(f"{path}: corrupt archive (declares more memory than "
                                 "available)") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                struct.error, KeyError, IndexError, TypeError, OverflowError,
                NotImplementedError, RuntimeError, RecursionError) as e:
            raise ModelFileError(f"{path}: corrupt or truncated archive "
                                 f"({type(e).__name__}: {str(e)[:200]})") from None
    return document, arrays
