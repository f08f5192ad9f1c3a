"""Which single-precision GEMM the native Linear kernels use: a rule, never a timing.

Providers: oneDNN's ``dnnl_sgemm`` (always), the OpenBLAS that numpy ships (found among the
libraries this process has loaded) and MKL when the optional ``mkl`` wheel is installed
(``pip install bigdl-workbench[mkl]``; or ``WORKBENCH_MKL_LIB=/path/libmkl_rt.so``).

``"auto"`` (the default) follows a rule written down in the native module (``rule_provider`` in
kernels_native/dense.cpp) from the Linear kernel (forward, grad-input, weight gradient), its
shape, the thread count and the CPU's features; the rule was measured offline by
``benchmarks/bench_gemm.py``.  It is never a timing taken in the user's process, since that
would let the load on the machine decide which code computes a layer, and so its rounding: the
same model, data, seed, thread count and CPU give the same bits in every run.
:func:`gemm_rule` says what the rule picks, :func:`gemm_choices` what ran so far.
``set_gemm(name)`` / ``WORKBENCH_GEMM`` force one provider (MKL is only ever used that way).

The package never imports torch or mkl's Python modules: the libraries are opened with dlopen by
the native module.
"""
from __future__ import annotations

import os
import threading

from .._checks import env_choice

__all__ = ["GEMMS", "set_gemm", "get_gemm", "gemm_providers", "gemm_choices", "gemm_rule"]

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


def prepare(native):
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
                except ValueError as e:  # a broken install: run without it
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
        _state["gemm"] = env_choice("WORKBENCH_GEMM", "auto", GEMMS)
    return _state["gemm"]


def set_gemm(name: str) -> str:
    """Force a GEMM (``"onednn"``, ``"openblas"``, ``"mkl"``) or follow the rule (``"auto"``);
    returns the previous setting.  Raises ValueError for one not available."""
    if not isinstance(name, str) or name.lower() not in GEMMS:
        raise ValueError(f"set_gemm: must be one of {GEMMS}, got {name!r}")
    from .backend import native
    previous, mod = get_gemm(), native()
    if mod is not None:
        prepare(mod)
        mod.set_gemm_provider(_resolve(name.lower(), mod))
    _state["gemm"] = name.lower()
    return previous


def gemm_providers() -> list:
    """The GEMMs available in this process (after loading the candidates)."""
    from .backend import native
    mod = native()
    if mod is None:
        return []
    prepare(mod)
    return list(mod.gemm_providers())


def gemm_choices() -> list:
    """One dict per Linear GEMM run so far: ``kernel`` (``"forward"``, ``"grad_input"``,
    ``"grad_weight"``), ``batch``, ``in``, ``out``, ``threads`` and the ``provider`` it ran on."""
    from .backend import native
    mod = native()
    return [] if mod is None else list(mod.gemm_choices())


def gemm_rule(kernel: str, batch: int, n_in: int, n_out: int, threads: int = 1) -> str:
    """The provider the ``"auto"`` rule picks for a Linear ``kernel`` (``"forward"``,
    ``"grad_input"``, ``"grad_weight"``) of a ``(batch, n_in) -> (batch, n_out)`` layer on
    ``threads`` threads, on this CPU and with the providers loaded here; None without the
    native module."""
    from .backend import native
    mod = native()
    if mod is None:
        return None
    prepare(mod)
    return mod.gemm_rule(kernel, int(batch), int(n_in), int(n_out), int(threads))
