"""MLP and LSTM language-model training: step CPU time of two trees of the code and PyTorch,
interleaved, in one run.

    python benchmarks/bench_small_models_cpu.py [--base-tree DIR] [--repeats 3] [--threads 1 2]

The two small models of ``bench_native.py`` (MLP 784-512-512-10 at batch 256; 2-layer LSTM
language model, vocabulary 4000, embedding 128, hidden 256, 35 steps, batch 32; SGD with
momentum), built by bench_native's ``wb_model`` / ``torch_model``.  For a shared machine whose
wall-clock times are mostly other processes' load, as ``bench_lenet_cpu.py``: each measurement is
its own process (threads fixed before import, passive OpenMP waits for both frameworks), the
median over its steps of the process's CPU time (all threads; time given to other processes is
not counted) and of the wall time; within every repeat the base tree (when given), this tree and
PyTorch alternate.  ``DIR`` is a checkout of the base commit with its ``workbench/_native`` built.
Writes benchmarks/results/small_models_cpu.json: per model and thread count the medians and
``<tree>_vs_torch_per_cpu_s`` / ``<tree>_vs_torch_wall`` (> 1: ours is faster), with the load
average and benchmarks/machine.py's description of the machine.
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
STEPS = {"mlp": (40, 5), "lstm_lm": (8, 2)}  # timed steps, warm-up steps

STEP = r"""
import json, statistics, sys, time
import numpy as np
framework, name, threads, steps, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
sys.path.insert(0, sys.argv[6])
import bench_native as b
batch = b.TRAIN[name][0]
rng = np.random.default_rng(0)
if framework == "torch":
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = b.torch_model(name)
    if name == "lstm_lm":
        x = torch.from_numpy(rng.integers(0, b.VOCAB, (batch, b.SEQ)))
        y = torch.from_numpy(rng.integers(0, b.VOCAB, batch * b.SEQ))
        crit = torch.nn.CrossEntropyLoss()
    else:
        x = torch.from_numpy(rng.standard_normal((batch, 784)).astype(np.float32))
        y = torch.from_numpy(rng.integers(0, 10, batch))
        crit = torch.nn.NLLLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    def step():
        opt.zero_grad()
        out = model(x)
        crit(out.reshape(-1, out.shape[-1]), y).backward()
        opt.step()
else:
    from workbench.nn import ClassNLLCriterion, backend, random
    from workbench.nn.module import input_grad_unused
    from workbench.optim import SGD
    backend.set_backend("native")
    backend.set_num_threads(threads)
    random.set_seed(0)
    model = b.wb_model(name)
    if name == "lstm_lm":
        from workbench.models.rnn import char_lm_criterion
        x = rng.integers(0, b.VOCAB, (batch, b.SEQ))
        y = rng.integers(0, b.VOCAB, (batch, b.SEQ))
        crit = char_lm_criterion()
    else:
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        crit = ClassNLLCriterion()
    sgd = SGD(learningrate=0.01, momentum=0.9, dampening=0.0)
    w, g = model.get_parameters()
    model.training()
    def step():
        out = model.forward(x)
        crit.forward(out, y)
        g.fill(0)
        with input_grad_unused():
            model.backward(x, crit.backward(out, y))
        sgd.update(w, g)
for _ in range(warmup):
    step()
cpu, wall = [], []
for _ in range(steps):
    c, t = time.process_time(), time.perf_counter()
    step()
    cpu.append(time.process_time() - c)
    wall.append(time.perf_counter() - t)
print(json.dumps({"cpu_ms": 1e3 * statistics.median(cpu),
                  "wall_ms": 1e3 * statistics.median(wall)}))
"""


def measure(tree, framework, name, threads):
    # passive OpenMP waits for both (as bench_native.py): a spinning thread's CPU time would
    # count as work; cwd is the tree, since ``python -c`` puts the cwd before PYTHONPATH
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS=str(threads),
               WORKBENCH_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    steps, warmup = STEPS[name]
    out = subprocess.run([sys.executable, "-c", STEP, framework, name, str(threads), str(steps),
                          str(warmup), os.path.join(tree, "benchmarks")], env=env,
                         capture_output=True, text=True, timeout=1800, cwd=tree)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-tree", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "small_models_cpu.json"))
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from machine import describe, tree_commit
    load_start, rows = os.getloadavg(), []
    runs = ([("base", args.base_tree, "workbench")] if args.base_tree else []) + [
        ("head", HEAD, "workbench"), ("torch", HEAD, "torch")]
    for name in args.models:
        for threads in args.threads:
            got = {run: [] for run, _, _ in runs}
            load = os.getloadavg()
            for _ in range(args.repeats):
                for run, tree, framework in runs:
                    got[run].append(measure(tree, framework, name, threads))
            row = dict(model=name, batch=256 if name == "mlp" else 32, threads=threads,
                       load_average_before=load, load_average_after=os.getloadavg())
            for run in got:
                for clock in ("cpu_ms", "wall_ms"):
                    vals = [r[clock] for r in got[run] if clock in r]
                    row[f"{run}_{clock}"] = statistics.median(vals) if vals else None
                errors = [r["error"] for r in got[run] if "error" in r]
                if errors:
                    row[f"{run}_error"] = errors[0]
            for run in got:
                if run == "torch":
                    continue
                for clock, key in (("cpu_ms", "per_cpu_s"), ("wall_ms", "wall")):
                    if row[f"{run}_{clock}"] and row[f"torch_{clock}"]:
                        # throughput relative to PyTorch's (> 1: ours is faster)
                        row[f"{run}_vs_torch_{key}"] = round(
                            row[f"torch_{clock}"] / row[f"{run}_{clock}"], 3)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = dict(benchmark="MLP and LSTM LM training step CPU time: base tree, this tree and "
                            "PyTorch (median of repeats of per-process medians)",
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  machine=describe(), base_commit=tree_commit(args.base_tree), repeats=args.repeats,
                  steps=STEPS, load_average_at_start=load_start,
                  load_average_at_end=os.getloadavg(), rows=rows)
    from machine import write_result
    write_result(args.out, result)


if __name__ == "__main__":
    main()
