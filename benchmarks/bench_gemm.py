"""oneDNN's sgemm vs numpy's OpenBLAS on the GEMMs of the native Linear layer, one thread.

This is the offline measurement behind the GEMM rule written down in kernels_native/dense.cpp
(``rule_provider``): the library never times GEMMs in a user's process (a timing would make
which code computes a layer, and so its rounding, change from run to run).  Each shape is run
through the three Linear kernels (forward ``x W^T``, grad-input ``g W``, weight gradient
``W += g^T x``) with each provider forced in turn, alternating, and the best of the repeats in
thread CPU time is kept (load on the other core hardly changes it).  With more than one thread
OpenBLAS is no candidate at all (its own thread pool spins against oneDNN's OpenMP threads).

Shapes: every Linear of the zoo and benchmark models (LeNet-5, the MLP, the LSTM language
model's decoder) at their batch sizes, plus a grid of batch x in x out.  Writes
benchmarks/results/gemm.json with the time of both, the ratio openblas / onednn and what the
rule picks, so a changed rule can be checked against the numbers.

    python benchmarks/bench_gemm.py [--repeats 7] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# (model, batch, in, out) of the Linear layers the benchmarks and the zoo train
MODELS = [("lenet5", 128, 192, 100), ("lenet5", 128, 100, 10), ("lenet5", 256, 192, 100),
          ("mlp", 256, 784, 512), ("mlp", 256, 512, 512), ("mlp", 256, 512, 10),
          ("lstm_lm", 1120, 256, 4000), ("char_lm", 1600, 128, 65)]
GRID = [(b, i, o) for b in (32, 128, 512) for i in (64, 256, 1024) for o in (64, 256, 1024)]


def _best(fn, repeats):
    fn()  # warm-up: packing buffers
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best


def measure(native, batch, n_in, n_out, repeats):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in), dtype=np.float32)
    w = rng.standard_normal((n_out, n_in), dtype=np.float32)
    g = rng.standard_normal((batch, n_out), dtype=np.float32)
    out = np.empty((batch, n_out), np.float32)
    gin = np.empty((batch, n_in), np.float32)
    gw = np.zeros_like(w)
    kernels = {"forward": lambda: native.linear_forward(x, w, None, out),
               "grad_input": lambda: native.linear_backward_data(g, w, gin),
               "grad_weight": lambda: native.linear_backward_weights(x, g, gw, None)}
    rows = []
    for kind, fn in kernels.items():
        seconds = {}
        for _ in range(2):  # providers alternate, twice: load hits both alike
            for provider in ("onednn", "openblas"):
                native.set_gemm_provider(provider)
                s = _best(fn, repeats)
                seconds[provider] = min(seconds.get(provider, s), s)
        native.set_gemm_provider("auto")
        rows.append({"batch": batch, "in": n_in, "out": n_out, "kernel": kind,
                     "onednn_us": seconds["onednn"] * 1e6, "openblas_us": seconds["openblas"] * 1e6,
                     "openblas_over_onednn": seconds["openblas"] / seconds["onednn"]})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="the model shapes only")
    parser.add_argument("--out", default=os.path.join(RESULTS, "gemm.json"))
    args = parser.parse_args()

    from workbench.nn import backend, gemm
    backend.set_num_threads(1)
    native = backend.native()
    if native is None or "openblas" not in gemm.gemm_providers():
        sys.exit(f"needs the native module and numpy's OpenBLAS: {backend.native_error()}")
    shapes = [(b, i, o, m) for m, b, i, o in MODELS]
    if not args.quick:
        shapes += [(b, i, o, "grid") for b, i, o in GRID]
    rows = []
    for batch, n_in, n_out, model in shapes:
        for row in measure(native, batch, n_in, n_out, args.repeats):
            row["model"] = model
            # what the library's rule runs for this GEMM on one thread
            row["rule"] = native.gemm_rule(row["kernel"], batch, n_in, n_out, 1)
            rows.append(row)
            print(f"{model:8s} b{batch:<5d} {n_in:5d}->{n_out:<5d} {row['kernel']:12s} "
                  f"onednn {row['onednn_us']:9.1f} us  openblas {row['openblas_us']:9.1f} us  "
                  f"ratio {row['openblas_over_onednn']:.2f}  rule {row['rule']}", flush=True)
    # the cost of the rule against always taking the faster one (1.0 = the rule is the oracle)
    def chosen(r):
        return r["openblas_us"] if r["rule"] == "openblas" else r["onednn_us"]
    total = {"rule_us": sum(chosen(r) for r in rows),
             "best_us": sum(min(r["onednn_us"], r["openblas_us"]) for r in rows),
             "onednn_us": sum(r["onednn_us"] for r in rows)}
    result = {"machine": {"cpu": platform.processor() or platform.machine(),
                          "cpu_flags": _isa(), "python": platform.python_version()},
              "repeats": args.repeats, "threads": 1, "totals": total, "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(total))


def _isa():
    try:
        flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []
    return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]


if __name__ == "__main__":
    main()
