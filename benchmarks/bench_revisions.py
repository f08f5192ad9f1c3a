"""Two revisions of the code side by side, in one run: for a change that must not change speed.

    .venv/bin/python benchmarks/bench_revisions.py --base-tree DIR [--repeats 3] [--parts spark]

Measures, for the base tree and for this working tree, alternating within every repeat so that
background load on a shared machine hits both alike (each measurement its own subprocess with
``PYTHONPATH`` set to that tree, whose ``workbench/_native`` must be built):

- ``bench_native.py`` (LeNet-5, MLP and the LSTM language model; training and inference; 1 and 2
  threads): our records/s over PyTorch's, in the same subprocess run;
- the local ``Optimizer`` loop: LeNet-5 on the bundled digits, batch 128, records/s;
- the Spark ``Optimizer``: ``bench_spark.py --part train`` (LeNet-5, ``local[2]``), records/s.

Reports medians over the repeats and head / base, and writes
``benchmarks/results/revisions.json``.  DIR, the base tree, is a
``git worktree add --detach DIR REV`` with the native module built in it
(``hatch_build.compile_native``).
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

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "revisions.json")
NATIVE_MODELS = ["lenet5", "mlp", "lstm_lm"]

LOCAL_LOOP = """
import json, time
import numpy as np
from workbench import models
from workbench.data import load_digits
from workbench.nn import ClassNLLCriterion, backend, random
from workbench.optim import SGD, MaxIteration, Optimizer
from workbench.optim.events import Listener
backend.set_num_threads(THREADS)
(X, y), _ = load_digits(size=28)
X = X.reshape(len(X), 1, 28, 28).astype(np.float32)
random.set_seed(0)

class Clock(Listener):
    def __init__(self):
        self.times = []
    def on_iteration(self, event):
        self.times.append(time.perf_counter())

clock = Clock()
opt = Optimizer(models.LeNet5(10), (X, y), ClassNLLCriterion(), MaxIteration(70), 128,
                SGD(0.01, momentum=0.9), seed=0, progress=False)
opt.add_listener(clock)
opt.optimize()
warm = clock.times[10:]
print(json.dumps({"records_per_s": 128 * (len(warm) - 1) / (warm[-1] - warm[0])}))
"""


def run(tree, argv, timeout=3600, threads=None):
    env = dict(os.environ, PYTHONPATH=tree, SPARK_LOCAL_IP="127.0.0.1")
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                         cwd=tree, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {argv[:3]} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def native_ratios(tree, models):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "native.json")
        run(tree, [os.path.join(tree, "benchmarks", "bench_native.py"), "--repeats", "1",
                   "--no-numpy", "--models", *models, "--out", path])
        with open(path) as f:
            rows = json.load(f)["training_and_inference"]
    return {f"{r['task']} {r['model']} {r['threads']}t": r["ratio_vs_torch"] for r in rows}


def local_loop(tree, threads):
    code = LOCAL_LOOP.replace("THREADS", str(threads))
    return json.loads(run(tree, ["-c", code], threads=threads).strip().splitlines()[-1])[
        "records_per_s"]


def spark_loop(tree):
    out = run(tree, [os.path.join(tree, "benchmarks", "bench_spark.py"), "--part", "train",
                     "--master", "local[2]", "--model", "lenet5", "--repeats", "1"])
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])["records_per_s"]


def revision(tree):
    try:
        rev = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--untracked=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-tree", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["native", "local", "spark"],
                        choices=["native", "local", "spark"])
    parser.add_argument("--native-models", nargs="+", default=NATIVE_MODELS)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    trees = {"base": os.path.abspath(args.base_tree), "head": HEAD}
    samples = {name: {} for name in trees}
    for r in range(args.repeats):
        for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
            got = native_ratios(tree, args.native_models) if "native" in args.parts else {}
            if "local" in args.parts:
                for threads in (1, 2):
                    got[f"local Optimizer lenet5 {threads}t records/s"] = local_loop(tree, threads)
            if "spark" in args.parts:
                got["Spark local[2] lenet5 records/s"] = spark_loop(tree)
            for key, value in got.items():
                samples[name].setdefault(key, []).append(value)
            print(f"repeat {r + 1} {name}: {json.dumps(got)}", flush=True)
    rows = []
    for key in samples["head"]:
        base = statistics.median(samples["base"][key])
        head = statistics.median(samples["head"][key])
        rows.append(dict(measure=key if "records/s" in key else f"{key} ours/PyTorch",
                         base=round(base, 3), head=round(head, 3),
                         head_over_base=round(head / base, 3),
                         base_runs=samples["base"][key], head_runs=samples["head"][key]))
        print(f"{rows[-1]['measure']:<40} base {base:10.3f}  head {head:10.3f}  "
              f"head/base {head / base:.3f}")
    result = dict(benchmark="two revisions side by side (medians of alternating repeats)",
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                  load_average_at_end=os.getloadavg(), repeats=args.repeats, parts=args.parts,
                  base=revision(trees["base"]), head=revision(trees["head"]), rows=rows)
    from machine import write_result
    write_result(args.out, result)


if __name__ == "__main__":
    main()
