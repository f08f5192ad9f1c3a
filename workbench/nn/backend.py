"""Which kernels the layers run (native oneDNN or the numpy reference) and on how many threads.

Two settings, each a call and an environment variable:

- ``set_backend("native" | "numpy")`` / ``WORKBENCH_BACKEND``: ``native`` (the default) uses the
  compiled ``workbench._native`` kernels where a layer has one and the input is float32; the numpy
  code is the reference and the fallback, used when the module is missing or failed to load
  (``native_error()`` says why).
- ``set_num_threads(n)`` / ``WORKBENCH_NUM_THREADS``: the threads of every native library in the
  process: oneDNN's OpenMP pool and the BLAS under numpy (through threadpoolctl).  The default is
  the number of cores this process may run on (``os.sched_getaffinity``), lowered by
  ``OMP_NUM_THREADS`` when set.

Inside Spark tasks the threads follow ``spark.task.cpus``: the training tasks, the scoring UDFs
and ``predict`` call :func:`use_task_threads` with the cores Spark granted the task
(``TaskContext.cpus()``).  Spark's own hint does not fit: it sets ``OMP_NUM_THREADS`` in its
Python workers to the executor's cores (``spark.executor.cores``, 1 in ``local[N]``), not to the
task's.  An explicit choice wins over ``spark.task.cpus``: ``Optimizer(cores=...)`` for training,
``spark.executorEnv.WORKBENCH_NUM_THREADS`` or ``spark.executorEnv.OMP_NUM_THREADS`` (read on the
driver), or ``WORKBENCH_NUM_THREADS`` in the executor's environment (docs/DEPLOY.md).

The package never imports torch.
"""
from __future__ import annotations

import ctypes
import os
import threading

from .._checks import env_choice

__all__ = ["get_backend", "set_backend", "use_native", "native", "native_error",
           "get_num_threads", "set_num_threads", "default_num_threads", "task_threads",
           "use_task_threads", "kernels", "set_kernel"]

_BACKENDS = ("native", "numpy")
_lock = threading.Lock()
# Which native kernels the layers use, chosen by measurement on the target CPU (2-core AMD,
# AVX-512; benchmarks/bench_native.py).  batch_norm runs hand-written loops over the NCHW planes
# (oneDNN 3.2's generic "ncsp" batch-norm measured 0.4-1.0x the numpy code).
# The dense kernels (Linear on the GEMM a rule picks by shape, threads and CPU, see gemm.py;
# activations, softmax, LRN, LookupTable) measured faster than numpy or equal with fewer
# temporaries.
# rnn: LSTM / GRU over a whole sequence (nn/recurrent_native.py).
# sgd: SGD's momentum update in one parallel pass (optim/methods.py; the numpy code's bits).
# channels_last: native convolutions write channels-last activations (nn/layout.py), which the
# native layers after them keep: no NCHW <-> blocked reorders (ResNet-20 training: ~20% of the
# convolution time was reorders).
_KERNELS = {"convolution": True, "pooling": True, "batch_norm": True,
            "linear": True, "eltwise": True, "softmax": True, "lrn": True, "lookup_table": True,
            "rnn": True, "channels_last": True, "sgd": True}
_state = {"backend": None, "threads": None, "module": None, "error": None, "loaded": False}


def default_num_threads() -> int:
    """Cores this process may use, capped by ``OMP_NUM_THREADS`` (Spark sets it in workers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if omp.isdigit() and int(omp) > 0:
        n = min(n, int(omp))
    return max(1, n)


def _check_threads(n, where):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: the number of threads must be a positive int, got {n!r}")
    return n


def _preload_onednn():
    """Load ``libdnnl.so.3`` from the onednn-cpu-gomp wheel so the module's dependency resolves
    wherever the module lives (the source tree for an editable install, site-packages else)."""
    from importlib import metadata
    try:
        files = metadata.distribution("onednn-cpu-gomp").files or ()
    except metadata.PackageNotFoundError:
        return  # maybe a system oneDNN: let the dynamic loader try
    for f in files:
        if str(f).endswith("libdnnl.so.3"):
            ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
            return


def _load():
    if _state["loaded"]:
        return _state["module"]
    with _lock:
        if _state["loaded"]:
            return _state["module"]
        # OpenMP waits: a thread that finished its share spins only briefly (GOMP_SPINCOUNT=300,
        # a few microseconds) before sleeping.  Spinning long steals the core the other thread
        # needs when the cores are shared (two 2-thread processes on 2 cores: LSTM LM steps
        # 3.2 s with libgomp's default spin vs 0.17 s passive), while never spinning wakes the
        # threads through the kernel at every parallel region (the LSTM's per-step regions on
        # 2 threads: ~120-150 ms passive vs ~100 ms with this spin; two processes: 180 vs 166
        # ms).  OMP_WAIT_POLICY or GOMP_SPINCOUNT set by the user wins.
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ.setdefault("GOMP_SPINCOUNT", "300")
        try:
            _preload_onednn()
            from .. import _native
            _state["module"] = _native
        except Exception as e:  # noqa: BLE001 - any failure means "numpy kernels"
            _state["error"] = f"{type(e).__name__}: {e}"
        _state["loaded"] = True
        _apply_threads(get_num_threads())
        return _state["module"]


def native():
    """The ``workbench._native`` module, or None when it is unavailable."""
    return _load()


def native_error():
    """Why the native module could not be loaded (None when it loaded or was not tried)."""
    _load()
    return _state["error"]


def get_backend() -> str:
    if _state["backend"] is None:
        _state["backend"] = env_choice("WORKBENCH_BACKEND", "native", _BACKENDS)
    return _state["backend"]


def set_backend(name: str) -> str:
    """Select ``"native"`` or ``"numpy"`` kernels for every layer; returns the previous one."""
    if not isinstance(name, str) or name.lower() not in _BACKENDS:
        raise ValueError(f"set_backend: backend must be one of {_BACKENDS}, got {name!r}")
    previous = get_backend()
    _state["backend"] = name.lower()
    return previous


def kernels() -> dict:
    """``{kernel: enabled}`` for the native kernels the layers know."""
    return dict(_KERNELS)


def set_kernel(name: str, enabled: bool) -> bool:
    """Turn one native kernel on or off (e.g. to measure it); returns the previous setting."""
    if name not in _KERNELS:
        raise ValueError(f"set_kernel: kernel must be one of {sorted(_KERNELS)}, got {name!r}")
    previous, _KERNELS[name] = _KERNELS[name], bool(enabled)
    return previous


def use_native(dtype=None, kernel=None):
    """The native module if the native backend is selected and loaded, ``kernel`` is enabled,
    and ``dtype`` is float32; else None (use the numpy code)."""
    if get_backend() != "native" or (kernel is not None and not _KERNELS.get(kernel, False)):
        return None
    if dtype is not None and getattr(dtype, "str", None) != "<f4":
        import numpy as np
        if np.dtype(dtype) != np.float32:
            return None
    return _load()


def get_num_threads() -> int:
    if _state["threads"] is None:
        value = os.environ.get("WORKBENCH_NUM_THREADS", "").strip()
        _state["threads"] = (_check_threads(int(value), "WORKBENCH_NUM_THREADS")
                             if value else default_num_threads())
    return _state["threads"]


def _apply_threads(n):
    module = _state["module"]
    if module is not None:
        module.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=n, user_api="blas")
    except Exception:  # noqa: BLE001 - threadpoolctl missing: BLAS keeps its own setting
        pass


def set_num_threads(n: int) -> int:
    """Threads of every native library (oneDNN and BLAS); returns the previous setting."""
    _check_threads(n, "set_num_threads")
    previous = get_num_threads()
    _state["threads"] = n
    if _state["loaded"]:
        _apply_threads(n)
    else:
        _load()
    return previous


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def task_threads(cpus, explicit=None) -> int:
    """The threads of a task that was granted ``cpus`` cores (Spark's ``spark.task.cpus``).

    Args:
        cpus: the cores the scheduler granted the task.
        explicit: the user's own choice (``Optimizer(cores=...)``, or a thread count set for
            the executors in the Spark conf), which wins; None if there is none.

    Returns ``explicit``, else ``WORKBENCH_NUM_THREADS`` when the environment sets it, else
    ``cpus`` capped by the cores this process may run on (a task never runs more threads than
    it has cores: OpenMP threads that share a core wait on each other).
    """
    if explicit is not None:
        return _check_threads(explicit, "task_threads")
    value = os.environ.get("WORKBENCH_NUM_THREADS", "").strip()
    if value:
        return _check_threads(int(value), "WORKBENCH_NUM_THREADS")
    return max(1, min(_check_threads(int(cpus), "task_threads"), _cores()))


def use_task_threads(cpus, explicit=None) -> int:
    """Set the threads of every native library to :func:`task_threads` (a no-op when they
    are already set so: this runs once per Spark task, in Python workers that Spark reuses);
    returns the number now in force."""
    n = task_threads(cpus, explicit)
    if n != get_num_threads() or not _state["loaded"]:
        set_num_threads(n)
    return n
