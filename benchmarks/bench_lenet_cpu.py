"""LeNet-5 step CPU time for two trees of the code and PyTorch, interleaved, in one run.

    python benchmarks/bench_lenet_cpu.py --base-tree DIR [--repeats 3] [--threads 1 2]

For a shared machine whose wall-clock times are mostly other processes' load: each measurement
is its own process (threads fixed before import), the median over 40 steps of the process's CPU
time (all its threads; time the scheduler gives other processes is not counted).  Training
(SGD with momentum, b128) and inference (b256).  Within every repeat the base tree, this tree
and PyTorch alternate.  DIR is a checkout of the base commit with its ``workbench/_native`` built.
Writes benchmarks/results/lenet_cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = os.path.dirname(HERE)

STEP = r"""
import json, sys, time
import numpy as np
framework, train, threads = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
batch = 128 if train else 256
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
y = rng.integers(0, 10, batch)
if framework == "torch":
    import torch
    sys.path.insert(0, sys.argv[4])
    import bench_native
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = bench_native.torch_model("lenet5")
    tx, ty, crit = torch.from_numpy(x), torch.from_numpy(y), torch.nn.NLLLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train(train)
    def step():
        if train:
            opt.zero_grad()
            crit(model(tx), ty).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(tx)
else:
    from workbench import models
    from workbench.nn import ClassNLLCriterion, backend, random
    from workbench.nn.module import input_grad_unused
    from workbench.optim import SGD
    backend.set_backend("native")
    backend.set_num_threads(threads)
    random.set_seed(0)
    model = models.LeNet5(10)
    crit, sgd = ClassNLLCriterion(), SGD(learningrate=0.01, momentum=0.9, dampening=0.0)
    w, g = model.get_parameters()
    model.training() if train else model.evaluate()
    def step():
        out = model.forward(x)
        if train:
            crit.forward(out, y)
            g.fill(0)
            with input_grad_unused():
                model.backward(x, crit.backward(out, y))
            sgd.update(w, g)
for _ in range(5):
    step()
cpu, wall = [], []
for _ in range(40):
    c, t = time.process_time(), time.perf_counter()
    step()
    cpu.append(time.process_time() - c)
    wall.append(time.perf_counter() - t)
print(json.dumps({"cpu_ms": 1e3 * sorted(cpu)[20], "wall_ms": 1e3 * sorted(wall)[20]}))
"""


def measure(tree, framework, train, threads):
    # passive OpenMP waits for both (as bench_native.py): a spinning thread's CPU time would
    # count as work; cwd is the tree, since ``python -c`` puts the cwd before PYTHONPATH
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS=str(threads),
               WORKBENCH_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run([sys.executable, "-c", STEP, framework, "1" if train else "0",
                          str(threads), HERE], env=env, capture_output=True, text=True,
                         timeout=1800, cwd=tree)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-tree", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "lenet_cpu.json"))
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from machine import cpu_model, tree_commit
    load_start, rows = os.getloadavg(), []
    runs = [("base", args.base_tree, "workbench"), ("head", HEAD, "workbench"),
            ("torch", HEAD, "torch")]
    for train in (True, False):
        for threads in args.threads:
            got = {name: [] for name, _, _ in runs}
            for _ in range(args.repeats):
                for name, tree, framework in runs:
                    got[name].append(measure(tree, framework, train, threads))
            row = dict(task="train b128" if train else "inference b256", threads=threads)
            for name in got:
                for clock in ("cpu_ms", "wall_ms"):
                    vals = [r[clock] for r in got[name] if clock in r]
                    row[f"{name}_{clock}"] = statistics.median(vals) if vals else None
            for name in ("base", "head"):
                if row[f"{name}_cpu_ms"] and row["torch_cpu_ms"]:
                    # throughput per CPU-second relative to PyTorch's (> 1: ours is faster)
                    row[f"{name}_vs_torch_per_cpu_s"] = round(
                        row["torch_cpu_ms"] / row[f"{name}_cpu_ms"], 3)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = dict(benchmark="LeNet-5 step CPU time: base tree, this tree and PyTorch",
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  machine=cpu_model(), base_commit=tree_commit(args.base_tree),
                  repeats=args.repeats,
                  load_average_at_start=load_start, load_average_at_end=os.getloadavg(),
                  rows=rows)
    from machine import write_result
    write_result(args.out, result)


if __name__ == "__main__":
    main()
