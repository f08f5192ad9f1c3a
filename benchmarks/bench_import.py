"""Import time and peak memory of ResNet-50 and VGG-16 from each format vs reading the same
bytes with numpy (issue 13).

    .venv/bin/python benchmarks/bench_import.py      # writes benchmarks/results/import.json

For ``workbench.models.ResNet50`` and ``VGG16`` with random weights the parent process writes
(once, in a temp dir): a ``torch.save(state_dict)`` zip (torchvision's keys, from
``workbench.models.torchvision_names``; ``num_batches_tracked`` added as torchvision has it), a
safetensors file (``safetensors.numpy.save_file``), an ONNX file (``workbench.io.save_onnx``),
our own file (``workbench.io.save_model``; ResNet-50's ONNX file is skipped while
``save_onnx`` has no export for ``ConcatTable``, the reason is recorded) and, where
``workbench.io.load_keras`` reads it, a Keras ``.h5`` of ``keras.applications``' model of the
same name (its own random weights; only the size and the reading matter).  Caffe and Torch7
files are not written (no writer short of a hand-built protobuf / t7 serializer): skipped.

Every measurement runs in a fresh subprocess (the files are in the page cache, for both sides).
Peak memory is the peak resident set above the resident set just before the operation (the
kernel's peak, ``VmHWM``, is reset by writing 5 to ``/proc/self/clear_refs`` just before; if the
kernel does not allow it, ``ru_maxrss`` minus the resident set before is used).  Operations:

- ``numpy_<fmt>``: ``np.fromfile`` of the whole file (the peer: the same bytes, no parsing);
- ``build``: constructing the model (random initialization; VGG-16's takes seconds);
- ``pt_read`` / ``st_read``: ``read_state_dict`` of the torch zip / ``read_safetensors``;
- ``pt_into`` / ``st_into``: ``load_pytorch_weights`` into an already built model (the build
  is outside the timing and below the memory baseline);
- ``pt_whole``: build + ``load_pytorch_weights`` (what a user waits for);
- ``onnx_load`` / ``model_load`` / ``keras_load``: ``load_onnx`` / ``load_model`` /
  ``load_keras`` (they build the model themselves: construction is included).

Repeats alternate the operations; medians are reported.  The goal (issue 13, never a test) is
reading within 1.5x of ``np.fromfile`` of the same file, in time and in peak memory:
``ratios`` holds each importer's median over its format's peer.  The machine is shared: the load
average is recorded with the result.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "import.json")
MODELS = ("ResNet50", "VGG16")
GOAL = 1.5
# importer -> the file it reads (the peer is np.fromfile of that file)
FORMAT_OF = {"pt_read": "pt", "pt_into": "pt", "pt_whole": "pt", "st_read": "safetensors",
             "st_into": "safetensors", "onnx_load": "onnx", "model_load": "bigdl",
             "keras_load": "h5"}


def build(name):
    from workbench import models
    from workbench.nn import random
    random.set_seed(0)
    return getattr(models, name)()


# ------------------------------------------------------------------------------ writing the files
def state_dict(model):
    """torchvision-style ``{key: array}`` of ``model`` (num_batches_tracked as torch has it)."""
    import numpy as np

    from workbench.models import torchvision_names
    layers = {m.name(): m for m in model.modules()}
    out = {}
    for key, (layer, attr) in torchvision_names(model).items():
        out[key] = np.ascontiguousarray(getattr(layers[layer], attr))
        if attr == "running_var":
            out[key[:-len("running_var")] + "num_batches_tracked"] = np.array(0, np.int64)
    return out


def write_files(name, folder):
    import torch
    from safetensors.numpy import save_file

    from workbench.io import OnnxError, save_model, save_onnx
    model = build(name)
    sd = state_dict(model)
    files = {"pt": os.path.join(folder, f"{name}.pt"),
             "safetensors": os.path.join(folder, f"{name}.safetensors"),
             "onnx": os.path.join(folder, f"{name}.onnx"),
             "bigdl": os.path.join(folder, f"{name}.bigdl")}
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, files["pt"])
    save_file({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")},
              files["safetensors"])
    save_model(model, files["bigdl"], over_write=True)
    skipped = {"caffe": "no Caffe writer (a caffemodel needs a hand-built protobuf)",
               "torch7": "no Torch7 .t7 writer (torchfile only reads)"}
    try:
        save_onnx(model, files["onnx"], (1, 3, 224, 224))
    except OnnxError as e:  # reported: what save_onnx cannot export yet
        del files["onnx"]
        skipped["onnx"] = str(e)
    h5 = os.path.join(folder, f"{name}.h5")
    why = _run_part(["--part", "write_keras", "--model", name, "--path", h5], check=False)
    if isinstance(why, dict) and why.get("ok"):
        files["h5"] = h5
    else:
        skipped["keras"] = why if isinstance(why, str) else why.get("error")
    return files, skipped


def write_keras_part(args):
    """Write keras.applications' model as .h5 and check load_keras reads it (subprocess)."""
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
        getattr(keras.applications, args.model)(weights=None).save(args.path)
        from workbench.io import load_keras
        load_keras(hdf5_path=args.path)
        print("RESULT " + json.dumps({"ok": True}))
    except Exception as e:  # noqa: BLE001 - reported as the reason Keras is skipped
        print("RESULT " + json.dumps({"ok": False,
                                      "error": f"load_keras: {type(e).__name__}: {e}"[:300]}))


# ------------------------------------------------------------------------------ one measurement
def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_part(args):
    import numpy as np  # noqa: F401 - imported before the baseline on every side

    from workbench import io as wio
    from workbench.models import torchvision_names
    op, path, name = args.op, args.path, args.model
    if op == "keras_load":
        os.environ["KERAS_BACKEND"] = "torch"
        from workbench.io import keras as _keras  # noqa: F401 - parser imported before
    model = None
    if op in ("pt_into", "st_into"):
        model = build(name)
        names = torchvision_names(model)

    if op.startswith("numpy_"):
        def run():
            return np.fromfile(path, dtype=np.uint8)
    elif op == "build":
        def run():
            return build(name)
    elif op == "pt_read":
        def run():
            return wio.read_state_dict(path)
    elif op == "st_read":
        def run():
            return wio.read_safetensors(path)
    elif op in ("pt_into", "st_into"):
        def run():
            return wio.load_pytorch_weights(model, path, name_map=names)
    elif op == "pt_whole":
        def run():
            m = build(name)
            return wio.load_pytorch_weights(m, path, name_map=torchvision_names(m))
    elif op == "onnx_load":
        def run():
            return wio.load_onnx(path)
    elif op == "model_load":
        def run():
            return wio.load_model(path)
    elif op == "keras_load":
        def run():
            return wio.load_keras(hdf5_path=path)
    else:
        raise SystemExit(f"unknown op {op}")

    before = _rss()
    exact = _reset_peak()
    t = time.perf_counter()
    out = run()
    took = time.perf_counter() - t
    peak = _peak()
    del out
    print("RESULT " + json.dumps({"seconds": took, "peak_bytes": max(0, peak - before),
                                  "peak_exact": exact}))


def _run_part(argv, check=True):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                   if p]))
    proc = subprocess.run([sys.executable, __file__] + argv, env=env, capture_output=True,
                          text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        if check:
            raise RuntimeError(f"{argv}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(lines[-1][len("RESULT "):])


def load():
    return list(os.getloadavg())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default=None)
    parser.add_argument("--op")
    parser.add_argument("--model")
    parser.add_argument("--path")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    if args.part == "measure":
        return measure_part(args)
    if args.part == "write_keras":
        return write_keras_part(args)

    import numpy as np
    res = {"benchmark": "import time and peak memory per format vs np.fromfile of the same file",
           "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
           "cpus": os.cpu_count(), "python": platform.python_version(),
           "numpy": np.__version__, "repeats": args.repeats, "goal": f"<= {GOAL}x (issue 13)",
           "load_average_before": load(), "models": {}}
    tmp = tempfile.mkdtemp(prefix="bench-import-")
    try:
        for name in args.models.split(","):
            t = time.perf_counter()
            files, skipped = write_files(name, tmp)
            print(f"{name}: files written in {time.perf_counter() - t:.1f} s: "
                  + ", ".join(f"{k} {os.path.getsize(p) / 1e6:.0f} MB" for k, p in files.items()),
                  flush=True)
            ops = {f"numpy_{fmt}": p for fmt, p in files.items()}
            ops["build"] = None
            for op, fmt in FORMAT_OF.items():
                if fmt in files:
                    ops[op] = files[fmt]
            runs = {op: [] for op in ops}
            for r in range(args.repeats):
                order = list(ops) if r % 2 == 0 else list(reversed(ops))
                for op in order:
                    argv = ["--part", "measure", "--op", op, "--model", name]
                    if ops[op]:
                        argv += ["--path", ops[op]]
                    runs[op].append(_run_part(argv))
                    print(f"{name} repeat {r} {op}: {runs[op][-1]['seconds']:.3f} s, "
                          f"{runs[op][-1]['peak_bytes'] / 1e6:.0f} MB", flush=True)
            med = {op: {"seconds": statistics.median(x["seconds"] for x in v),
                        "peak_mb": statistics.median(x["peak_bytes"] for x in v) / 1e6}
                   for op, v in runs.items()}
            ratios = {}
            for op, fmt in FORMAT_OF.items():
                if op not in med:
                    continue
                peer = med[f"numpy_{fmt}"]
                time_ratio = med[op]["seconds"] / peer["seconds"]
                mem_ratio = med[op]["peak_mb"] / peer["peak_mb"]
                ratios[op] = {"peer": f"numpy_{fmt}", "time": time_ratio, "memory": mem_ratio,
                              "meets_goal_time": time_ratio <= GOAL,
                              "meets_goal_memory": mem_ratio <= GOAL}
            res["models"][name] = {
                "file_mb": {k: os.path.getsize(p) / 1e6 for k, p in files.items()},
                "skipped_formats": skipped, "median": med, "ratios": ratios,
                "runs": runs,
                "peak_exact": all(x["peak_exact"] for v in runs.values() for x in v)}
            for f in files.values():
                os.remove(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_average_after"] = load()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps({k: ({m: v["ratios"] for m, v in res["models"].items()} if k == "models"
                          else v) for k, v in res.items()}, indent=2))


if __name__ == "__main__":
    main()
