"""Training throughput, BigDL Workbench vs PyTorch CPU, side by side in one run.

Models: LeNet-5 (BigDL's, batch 128, 28x28x1) and an MLP 784-512-512-10 (batch 256), SGD with
momentum, at 1 and 2 threads.  Each (framework, model, threads) measurement runs in its own
subprocess (thread settings must be fixed before numpy/torch load) and the frameworks alternate,
so background load hits both alike.  We report the median of the repeats and the ratio
ours / PyTorch.  Writes benchmarks/results/training.json.

    python benchmarks/bench_training.py [--repeats 5] [--iterations 30]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {"lenet5": dict(batch=128, shape=(1, 28, 28), classes=10),
          "mlp": dict(batch=256, shape=(784,), classes=10)}


def run_workbench(model_name, iterations, warmup):
    import numpy as np
    from workbench import models
    from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, ReLU, Sequential, random
    from workbench.optim import SGD

    random.set_seed(0)
    spec = MODELS[model_name]
    if model_name == "lenet5":
        model = models.LeNet5(10)
    else:
        model = (Sequential().add(Linear(784, 512)).add(ReLU()).add(Linear(512, 512)).add(ReLU())
                 .add(Linear(512, 10)).add(LogSoftMax()))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["batch"],) + spec["shape"]).astype(np.float32)
    y = rng.integers(0, 10, spec["batch"])
    crit = ClassNLLCriterion()
    method = SGD(learningrate=0.01, momentum=0.9, dampening=0.0)
    w, g = model.get_parameters()
    model.training()

    def step():
        out = model.forward(x)
        crit.forward(out, y)
        g.fill(0)
        model.backward(x, crit.backward(out, y))
        method.update(w, g)

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return spec["batch"] * iterations / (time.perf_counter() - start)


def run_torch(model_name, iterations, warmup, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = MODELS[model_name]
    nn = torch.nn
    if model_name == "lenet5":
        model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.MaxPool2d(2, 2), nn.Tanh(),
                              nn.Conv2d(6, 12, 5), nn.MaxPool2d(2, 2), nn.Flatten(),
                              nn.Linear(192, 100), nn.Tanh(), nn.Linear(100, 10),
                              nn.LogSoftmax(dim=1))
    else:
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10), nn.LogSoftmax(dim=1))
    x = torch.randn((spec["batch"],) + spec["shape"])
    y = torch.randint(0, 10, (spec["batch"],))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = nn.NLLLoss()

    def step():
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return spec["batch"] * iterations / (time.perf_counter() - start)


def measure(framework, model_name, threads, iterations, warmup):
    """Run one measurement in a fresh subprocess with the thread settings in its environment."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench_training as b; "
            f"print(b.run_{framework}({model_name!r}, {iterations}, {warmup}"
            + (f", {threads}" if framework == "torch" else "") + "))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "training.json"))
    args = parser.parse_args()
    import torch
    results = []
    for model_name in MODELS:
        for threads in args.threads:
            runs = {"workbench": [], "torch": []}
            for _ in range(args.repeats):
                for framework in ("workbench", "torch"):
                    runs[framework].append(measure(framework, model_name, threads,
                                                   args.iterations, args.warmup))
            ours, peer = statistics.median(runs["workbench"]), statistics.median(runs["torch"])
            row = dict(model=model_name, batch=MODELS[model_name]["batch"], threads=threads,
                       workbench_records_per_s=round(ours, 1), torch_records_per_s=round(peer, 1),
                       ratio=round(ours / peer, 3),
                       workbench_runs=[round(r, 1) for r in runs["workbench"]],
                       torch_runs=[round(r, 1) for r in runs["torch"]])
            results.append(row)
            print(f"{model_name:7s} b{row['batch']} {threads} thread(s): "
                  f"workbench {ours:9,.0f} rec/s"
                  f"   torch {peer:9,.0f} rec/s   ratio {ours / peer:.2f}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(dict(benchmark="training throughput (records/s), median of repeats",
                       date=time.strftime("%Y-%m-%d"),
                       machine=platform.processor() or platform.machine(),
                       cpus=os.cpu_count(), torch=torch.__version__,
                       repeats=args.repeats, iterations=args.iterations, results=results),
                  f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
