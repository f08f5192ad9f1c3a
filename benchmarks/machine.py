"""What the benchmarks record about the machine they ran on, and how they cap its ISA.

``--isa avx2`` makes every library in a benchmark's child processes run its AVX2 code on any
x86 machine: oneDNN (ours and PyTorch's) through ``ONEDNN_MAX_CPU_ISA``, our hand-written loops
and CPU rules through ``WORKBENCH_MAX_CPU_ISA`` (kernels_native/common.hpp ``max_isa``),
PyTorch's own kernels through ``ATEN_CPU_CAPABILITY`` and its MKL through
``MKL_ENABLE_INSTRUCTIONS``.  Each is read when the library loads, so it goes into the child's
environment before any import.  ``--isa native`` leaves every library at the CPU's widest ISA.
On a CPU without AVX-512 the two are the same code (the AVX-512 side cannot be measured there).
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess

ISAS = ("native", "avx2")


def isa_env(isa):
    """Environment variables that cap every library at ``isa`` (``"native"``: none)."""
    if isa not in ISAS:
        raise ValueError(f"--isa must be one of {ISAS}, got {isa!r}")
    if isa == "native":
        return {}
    return {"ONEDNN_MAX_CPU_ISA": "AVX2", "WORKBENCH_MAX_CPU_ISA": "avx2",
            "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def cpu_model():
    """The CPU's model name, family / model numbers (a virtual machine may name only the
    brand: family 25 is AMD Zen 3 / Zen 4) and vector features, from /proc/cpuinfo."""
    first = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                first.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    flags = set(first.get("flags", "").split())
    return {"cpu_model": first.get("model name") or platform.processor() or platform.machine(),
            "cpu_vendor": first.get("vendor_id"), "cpu_family": first.get("cpu family"),
            "cpu_model_number": first.get("model"), "cpus": os.cpu_count(),
            "cpu_has_avx2_fma": {"avx2", "fma"} <= flags, "cpu_has_avx512f": "avx512f" in flags}


def tree_commit(path):
    """The git commit checked out at ``path`` (a benchmark's base tree), or None: results record
    the commit, never a path of the machine they ran on."""
    if not path:
        return None
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def describe(with_torch=True):
    """Run in a child process with the benchmark's environment: the CPU, the ISA each library
    dispatches to there, and the versions of ours and the peer."""
    out = dict(cpu_model(), isa_cap=os.environ.get("ONEDNN_MAX_CPU_ISA") or "none",
               python=platform.python_version())
    from workbench.nn import backend
    native = backend.native()
    if native is not None:
        out["onednn"] = native.onednn_version()
        if hasattr(native, "onednn_isa"):  # a module built before these queries existed
            out.update(onednn_isa=native.onednn_isa(), workbench_loops_isa=native.max_isa())
    import numpy
    out["numpy"] = numpy.__version__
    if with_torch:
        try:
            import torch
        except ImportError:
            return out
        onednn = re.search(r"(?:oneDNN|MKL-DNN) v([0-9.]+)", torch.__config__.show())
        out.update(torch=torch.__version__,
                   torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                   torch_onednn=onednn.group(1) if onednn else None)
    return out


def write_result(path, result):
    """Write a benchmark's result JSON (its folder made if needed) and say where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")


def load_comm(path=None):
    """``workbench/spark/comm.py`` (or ``path``) loaded alone, as module ``wb_comm``: it needs only
    the standard library and numpy, while importing ``workbench.spark`` would start pyspark's
    imports (a benchmark rank starts in ~0.3 s instead)."""
    import importlib.util
    path = path or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workbench", "spark", "comm.py")
    spec = importlib.util.spec_from_file_location("wb_comm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
