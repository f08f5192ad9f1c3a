"""Which single-precision GEMM the native Linear kernels use, decided by measurement.

Candidates: oneDNN's ``dnnl_sgemm`` (always), the OpenBLAS that numpy ships (found among the
libraries this process has loaded) and MKL when the optional ``mkl`` wheel is installed
(``pip install bigdl-workbench[mkl]``; or ``WORKBENCH_MKL_LIB=/path/libmkl_rt.so``).  Nothing is
chosen by vendor name: the first call of each GEMM shape (and thread count) times every
candidate on its real operands and keeps the fastest (oneDNN unless another is more than 5%
faster, so that near-ties do not flip between processes) for the rest of the process;
:func:`gemm_choices` shows those measurements.  With more than one thread OpenBLAS is no
candidate: its own thread pool spins against oneDNN's OpenMP threads (measured 10x slower on two
shared cores).  ``set_gemm(name)`` / ``WORKBENCH_GEMM`` force one
candidate (``"auto"``, the default, measures).

The package never imports torch or mkl's Python modules: the libraries are opened with dlopen by
the native module.
"""
from __future__ import annotations

import os
import threading

__all__ = ["GEMMS", "set_gemm", "get_gemm", "gemm_providers", "gemm_choices"]

GEMMS = ("auto", "onednn", "openblas", "mkl")
_lock = threading.Lock()
_state = {"ready": None, "gemm": None, "errors": {}}


def _loaded_openblas():
    """Paths of the OpenBLAS libraries this process has loaded, numpy's own first
    (``numpy.libs/libscipy_openblas64_...so``; scipy's, loaded by scikit-learn, has other
    symbol names)."""
    import numpy  # noqa: F401 - loads its BLAS
    found = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                name = os.path.basename(path)
                if "openblas" in name and ".so" in name and path not in found:
                    found.append(path)
    except OSError:  # pragma: no cover - not Linux
        pass
    return sorted(found, key=lambda path: "numpy.libs" not in path)


def _mkl_path():
    path = os.environ.get("WORKBENCH_MKL_LIB", "").strip()
    if path:
        return path
    from importlib import metadata
    try:
        files = metadata.distribution("mkl").files or ()
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if os.path.basename(str(f)).startswith("libmkl_rt.so"):
            return str(f.locate())
    return None


def _prepare(native):
    """Load the GEMM candidates into ``native`` once per process and apply the setting."""
    if _state["ready"] is native:
        return
    with _lock:
        if _state["ready"] is native:
            return
        mkl = _mkl_path()
        for kind, paths in (("openblas", _loaded_openblas()), ("mkl", [mkl] if mkl else [])):
            for path in paths:  # the first that loads
                try:
                    native.load_blas(kind, path)
                    _state["errors"].pop(kind, None)
                    break
                except ValueError as e:  # a broken install: measure without it
                    _state["errors"][kind] = str(e)
        native.set_gemm_provider(_resolve(get_gemm(), native))
        _state["ready"] = native


def _resolve(name, native):
    if name != "auto" and name not in native.gemm_providers():
        raise ValueError(f"set_gemm: {name!r} is not available here "
                         f"({', '.join(native.gemm_providers())}; {_state['errors'] or ''})")
    return name


def get_gemm() -> str:
    if _state["gemm"] is None:
        value = os.environ.get("WORKBENCH_GEMM", "auto").strip().lower() or "auto"
        if value not in GEMMS:
            raise ValueError(f"WORKBENCH_GEMM must be one of {GEMMS}, got {value!r}")
        _state["gemm"] = value
    return _state["gemm"]


def set_gemm(name: str) -> str:
    """Force a GEMM (``"onednn"``, ``"openblas"``, ``"mkl"``) or measure per shape
    (``"auto"``); returns the previous setting.  Raises ValueError for one not available."""
    if not isinstance(name, str) or name.lower() not in GEMMS:
        raise ValueError(f"set_gemm: must be one of {GEMMS}, got {name!r}")
    from .backend import native
    previous, mod = get_gemm(), native()
    if mod is not None:
        _prepare(mod)
        mod.set_gemm_provider(_resolve(name.lower(), mod))
    _state["gemm"] = name.lower()
    return previous


def gemm_providers() -> list:
    """The GEMMs available in this process (after loading the candidates)."""
    from .backend import native
    mod = native()
    if mod is None:
        return []
    _prepare(mod)
    return list(mod.gemm_providers())


def gemm_choices() -> list:
    """One dict per GEMM shape measured so far: ``m, n, k, transa, transb, accumulate,
    threads``, the ``provider`` chosen and the best ``seconds`` of each candidate."""
    from .backend import native
    mod = native()
    return [] if mod is None else list(mod.gemm_choices())
