"""Native batch normalization on the ResNet-20 shapes: plain NCHW loops, channels-last loops, and
oneDNN's own channels-last (nhwc) batch normalization, side by side in one run.

Training step of batch norm + fused ReLU with scale and shift (forward with the batch
statistics, then backward: grad_input, grad_weight, grad_bias), batch 128, channels x size
16x32x32, 32x16x16, 64x8x8, on 1 and 2 threads.  The loops are called through
``workbench._native`` (``bn_forward`` / ``bn_backward``, geometry field ``channels_last``); oneDNN's
primitive (``use_scale | use_shift | fuse_norm_relu``, its backward reading the forward's
workspace) runs in benchmarks/bn_onednn_nhwc.cpp, compiled here against the oneDNN the package
builds with.  Within each repeat the three alternate, so background load hits them alike; the
report is the median over repeats of each repeat's median, and the ratios to the NCHW loops.
The oneDNN program also reports the relative error of its batch mean / variance against two
passes in double (the loops use two passes too).  Writes benchmarks/results/bn_layout.json.

    python benchmarks/bench_bn_layout.py [--repeats 5] [--iterations 20] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
BATCH = 128
SHAPES = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def build_probe(workdir):
    """Compile bn_onednn_nhwc.cpp against the build's oneDNN; returns the executable."""
    sys.path.insert(0, ROOT)
    from hatch_build import _dist_file
    header = _dist_file("onednn-devel-cpu-gomp", "include/dnnl.hpp")
    lib = _dist_file("onednn-cpu-gomp", "libdnnl.so.3")
    exe = os.path.join(workdir, "bn_onednn_nhwc")
    subprocess.run([os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-fopenmp",
                    "-I" + str(header.parent), os.path.join(HERE, "bn_onednn_nhwc.cpp"),
                    str(lib), "-Wl,-rpath," + str(lib.parent), "-o", exe], check=True)
    return exe


def run_probe(exe, threads, iterations):
    args = [exe, str(threads), str(iterations), str(BATCH)]
    for shape in SHAPES:
        args += [str(v) for v in shape]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def time_loops(native, c, h, w, nhwc, iterations):
    """Median forward / backward milliseconds of the native loops (training, affine, ReLU)."""
    rng = np.random.default_rng(1)
    n, l = BATCH, h * w
    shape = (n, l, c) if nhwc else (n, c, l)
    x = (3 + 2 * rng.standard_normal(shape)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    out, gi = np.empty_like(x), np.empty_like(x)
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    scale = (1 + 0.01 * np.arange(c)).astype(np.float32)
    shift = np.full(c, 0.1, np.float32)
    dscale, dshift = np.empty(c, np.float32), np.empty(c, np.float32)
    geometry = native.BatchNormGeometry(n=n, c=c, l=l, train=True, affine=True, relu=True,
                                        channels_last=bool(nhwc))
    tf, tb = [], []
    for it in range(iterations + 2):
        t0 = time.perf_counter()
        native.bn_forward(x, out, mean, var, scale, shift, geometry, 1e-5)
        t1 = time.perf_counter()
        native.bn_backward(x, g, mean, var, scale, gi, dscale, dshift, geometry, 1e-5, shift)
        t2 = time.perf_counter()
        if it >= 2:
            tf.append((t1 - t0) * 1e3)
            tb.append((t2 - t1) * 1e3)
    return statistics.median(tf), statistics.median(tb)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    opts = parser.parse_args()
    sys.path.insert(0, ROOT)
    from workbench.nn import backend
    native = backend.native()
    if native is None:
        sys.exit(f"the native module is not available: {backend.native_error()}")
    # (threads, shape, kind) -> list of (forward, backward) medians, one per repeat
    samples, precision = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        exe = build_probe(workdir)
        for _ in range(opts.repeats):
            for threads in opts.threads:
                backend.set_num_threads(threads)
                for c, h, w in SHAPES:
                    for kind, nhwc in (("nchw_loops", False), ("nhwc_loops", True)):
                        samples.setdefault((threads, (c, h, w), kind), []).append(
                            time_loops(native, c, h, w, nhwc, opts.iterations))
                for row in run_probe(exe, threads, opts.iterations):
                    shape = tuple(row["shape"][1:])
                    samples.setdefault((threads, shape, "onednn_nhwc"), []).append(
                        (row["forward_ms"], row["backward_ms"]))
                    precision[shape] = {"impl": row["impl"], "mean_rel_err": row["mean_rel_err"],
                                        "var_rel_err": row["var_rel_err"]}
    rows = []
    for threads in opts.threads:
        for shape in SHAPES:
            entry = {"threads": threads, "shape": [BATCH, *shape]}
            for kind in ("nchw_loops", "nhwc_loops", "onednn_nhwc"):
                runs = samples[(threads, shape, kind)]
                fwd = statistics.median(r[0] for r in runs)
                bwd = statistics.median(r[1] for r in runs)
                entry[kind] = {"forward_ms": round(fwd, 4), "backward_ms": round(bwd, 4),
                               "step_ms": round(fwd + bwd, 4)}
            base = entry["nchw_loops"]["step_ms"]
            for kind in ("nhwc_loops", "onednn_nhwc"):
                entry[kind]["ratio_to_nchw_loops"] = round(entry[kind]["step_ms"] / base, 3)
            entry["onednn_over_nhwc_loops"] = round(
                entry["onednn_nhwc"]["step_ms"] / entry["nhwc_loops"]["step_ms"], 3)
            rows.append(entry)
            print(f"threads {threads}  {shape}:  " + "  ".join(
                f"{k} {entry[k]['forward_ms']:.3f}+{entry[k]['backward_ms']:.3f} ms"
                for k in ("nchw_loops", "nhwc_loops", "onednn_nhwc")))
    result = {"benchmark": "bn_layout", "batch": BATCH, "repeats": opts.repeats,
              "iterations": opts.iterations, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "rows": rows,
              "onednn_statistics_vs_double": {f"{c}x{h}x{w}": v
                                              for (c, h, w), v in precision.items()}}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "bn_layout.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
