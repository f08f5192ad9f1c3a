"""Hatch build hook: compile kernels_native/ into ``workbench._native`` (oneDNN + pybind11).

No CMake: each ``kernels_native/*.cpp`` is compiled by g++ (in parallel, one per core) and the
objects linked into one module; pybind11 is header-only, and the
oneDNN headers and ``libdnnl.so`` come from the ``onednn-devel-cpu-gomp`` wheel that hatchling
installs into the build environment (the hook's ``dependencies`` in pyproject.toml).  At run time
``libdnnl.so.3`` comes from the ``onednn-cpu-gomp`` wheel (a package dependency);
``workbench.nn.backend`` preloads it, so the editable install (module in the source tree) and the
wheel (module in site-packages) both find it.

A failed compile never fails the install: the package falls back to its numpy kernels and says
so (``workbench.nn.backend.native_error``).  ``WORKBENCH_NATIVE_BUILD=required`` makes it fatal
(CI of the native core), ``=skip`` skips it.

Also runnable by hand: ``python hatch_build.py`` builds the module in place.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCES = sorted((ROOT / "kernels_native").glob("*.cpp"))


def _dist_file(dist, suffix):
    for f in metadata.distribution(dist).files or ():
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(f.locate()).resolve()
    raise FileNotFoundError(f"{suffix} not found in the {dist} wheel")


def module_name():
    return "_native" + sysconfig.get_config_var("EXT_SUFFIX")


def compile_native(out_dir: Path, log=print) -> Path:
    """Compile the extension into ``out_dir`` and return its path (raises on failure)."""
    import pybind11

    header = _dist_file("onednn-devel-cpu-gomp", "include/dnnl.hpp")
    lib = _dist_file("onednn-cpu-gomp", "libdnnl.so.3")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / module_name()
    tmp = out_dir / (module_name() + ".tmp")
    cxx = os.environ.get("CXX", "g++")
    flags = ["-O2", "-std=c++17", "-fPIC", "-fopenmp", "-fvisibility=hidden", "-DNDEBUG",
             "-Wno-psabi",
             "-I" + sysconfig.get_paths()["include"], "-I" + pybind11.get_include(),
             "-I" + str(header.parent)]
    with tempfile.TemporaryDirectory() as objdir:
        def compile_one(src):
            obj = Path(objdir) / (src.stem + ".o")
            cmd = [cxx, *flags, "-c", str(src), "-o", str(obj)]
            log("workbench native: " + " ".join(cmd))
            subprocess.run(cmd, check=True)
            return str(obj)
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            objects = list(pool.map(compile_one, SOURCES))
        cmd = [cxx, "-shared", "-fopenmp", *objects, str(lib),
               # the wheel layout: site-packages/workbench/_native.so -> <prefix>/lib/libdnnl.so.3
               "-Wl,-rpath,$ORIGIN/../../..", "-o", str(tmp)]
        log("workbench native: " + " ".join(cmd))
        subprocess.run(cmd, check=True)
    os.replace(tmp, target)  # atomic: a running process never sees a half-written module
    return target


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run by hand without hatchling
    BuildHookInterface = object


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        mode = os.environ.get("WORKBENCH_NATIVE_BUILD", "auto").lower()
        if mode == "skip":
            return
        editable = version == "editable"
        out_dir = ROOT / "workbench" if editable else Path(tempfile.mkdtemp()) / "workbench"
        try:
            target = compile_native(out_dir, log=self.app.display_info)
        except Exception as e:  # noqa: BLE001 - any failure means "use the numpy kernels"
            if mode == "required":
                raise
            self.app.display_warning(f"workbench native kernels not built ({e}); "
                                     "the numpy kernels will be used")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:
            build_data["force_include"][str(target)] = f"workbench/{target.name}"
            self._tmp = out_dir.parent

    def finalize(self, version, build_data, artifact_path):
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(compile_native(ROOT / "workbench"))
    sys.exit(0)
