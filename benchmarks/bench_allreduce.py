"""The ring all-reduce of workbench.spark.comm against torch.distributed's gloo, and against the
ring of a base commit, on 127.0.0.1 in one run.

    python benchmarks/bench_allreduce.py [--base-commit 269bc43] [--ranks 2 3 4] [--scale 1]

N processes (forked; torch is imported only in them, as the benchmark's oracle) run, for every
vector size, many iterations of: the base commit's ``Ring.allreduce``, this tree's, and gloo's
``all_reduce`` (float32, one thread), in turn (the order rotating from one iteration to the
next), each lined up by a barrier of its own transport first, so the three see the same load
of a shared machine.  Per all-reduce: the median wall time on rank 0, the median CPU time of a
process (all its threads, the mean over ranks: what the collective costs when the machine is
busy) and the voluntary context switches (a thread that went to sleep waiting: wake-ups, the
price of a thread hand-off on a loaded machine).  The base commit's comm.py is loaded from git
as its own module, so both rings run in the same processes.  Every iteration checks that the
two rings' sums are bit-identical.  Writes benchmarks/results/allreduce.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = os.path.dirname(HERE)
SIZES = [1024, 4096, 16_384, 62_006, 262_144, 1_048_576]  # float32: 4 KB .. 4 MB; LeNet-5


def iterations(size, scale):
    """More iterations for the small sizes (their medians need them; each is cheap)."""
    return max(10, int(scale * max(40, min(300, 4e7 / (size * 4 + 2e5) * 2))))


def load_base(commit, where):
    """The base commit's comm.py as the module ``base_comm``."""
    src = subprocess.run(["git", "-C", HEAD, "show", f"{commit}:workbench/spark/comm.py"],
                         check=True, capture_output=True, text=True).stdout
    path = os.path.join(where, "base_comm.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("base_comm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(rank, n, servers, gloo_port, base_path, sizes, scale, results):
    import resource

    import numpy as np
    import torch
    import torch.distributed as dist

    from workbench.spark import comm
    spec = importlib.util.spec_from_file_location("base_comm", base_path)
    base_comm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base_comm)

    addresses = {k: [("127.0.0.1", s.getsockname()[1]) for s in servers[k]] for k in servers}
    for k in servers:
        for q, s in enumerate(servers[k]):
            if q != rank:
                s.close()
    head = comm.Ring.connect(rank, addresses["head"], servers["head"][rank], "bench", 120)
    base = base_comm.Ring.connect(rank, addresses["base"], servers["base"][rank], "bench", 120)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{gloo_port}", rank=rank,
                            world_size=n)
    rng = np.random.default_rng(rank)
    out = {}
    for size in sizes:
        src = rng.standard_normal(size).astype(np.float32)
        vecs = {"base": src.copy(), "head": src.copy()}
        tensor = torch.from_numpy(src.copy())
        ops = {"base": lambda v=vecs["base"]: base.allreduce(v),
               "head": lambda v=vecs["head"]: head.allreduce(v),
               "gloo": lambda t=tensor: dist.all_reduce(t)}
        # each lined up by its own transport (one that just ran has warm sockets and caches)
        line_up = {"base": lambda: base.allreduce_small([0.0]),
                   "head": lambda: head.allreduce_small([0.0]), "gloo": dist.barrier}
        got = {k: {"wall": [], "cpu": [], "csw": []} for k in ops}
        for i in range(iterations(size, scale) + 3):
            order = list(ops.items())
            for name, op in order[i % 3:] + order[:i % 3]:  # rotated: no one always goes first
                line_up[name]()
                c0, v0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
                t0 = time.perf_counter()
                op()
                t1 = time.perf_counter()
                c1, v1 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
                if i >= 3:  # warm-up: buffers, the kernel's socket autotuning
                    got[name]["wall"].append(t1 - t0)
                    got[name]["cpu"].append(c1 - c0)
                    got[name]["csw"].append(v1 - v0)
            if not np.array_equal(vecs["base"], vecs["head"]):
                raise AssertionError(f"size {size}: this ring's sum differs from the base's")
            np.copyto(vecs["base"], src)
            np.copyto(vecs["head"], src)
            tensor.copy_(torch.from_numpy(src))
        out[size] = got
    dist.destroy_process_group()
    head.close()
    base.close()
    results.put((rank, out))


def run(n, base_path, sizes, scale):
    from workbench.spark.comm import listen
    servers = {k: [listen("127.0.0.1") for _ in range(n)] for k in ("head", "base")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gloo_port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, n, servers, gloo_port, base_path, sizes, scale,
                                              results)) for r in range(n)]
    for p in procs:
        p.start()
    for k in servers:
        for s in servers[k]:
            s.close()
    by_rank = dict(results.get(timeout=3600) for _ in procs)
    for p in procs:
        p.join()
    rows = []
    for size in sizes:
        row = dict(ranks=n, floats=size, kbytes=round(size * 4 / 1024, 1),
                   iterations=len(by_rank[0][size]["head"]["wall"]))
        for name in ("base", "head", "gloo"):
            row[f"{name}_ms"] = round(1e3 * statistics.median(by_rank[0][size][name]["wall"]), 4)
            row[f"{name}_cpu_ms"] = round(1e3 * statistics.mean(
                statistics.median(by_rank[r][size][name]["cpu"]) for r in range(n)), 4)
            row[f"{name}_wakeups"] = statistics.mean(
                statistics.median(by_rank[r][size][name]["csw"]) for r in range(n))
        for name in ("base", "head"):
            # > 1: faster than gloo
            row[f"{name}_vs_gloo"] = round(row["gloo_ms"] / row[f"{name}_ms"], 3)
            row[f"{name}_vs_gloo_cpu"] = round(row["gloo_cpu_ms"] / row[f"{name}_cpu_ms"], 3)
        row["head_vs_base"] = round(row["base_ms"] / row["head_ms"], 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-commit", default="269bc43")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--scale", type=float, default=1.0, help="times the iterations")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "allreduce.json"))
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    sys.path.insert(0, HEAD)
    from machine import cpu_model, tree_commit
    load_start, rows = os.getloadavg(), []
    with tempfile.TemporaryDirectory() as tmp:
        load_base(args.base_commit, tmp)  # fails early on a bad commit
        for n in args.ranks:
            rows += run(n, os.path.join(tmp, "base_comm.py"), args.sizes, args.scale)
    import torch
    result = dict(benchmark="ring all-reduce (base commit, this tree) vs torch.distributed gloo, "
                            "float32 on 127.0.0.1, interleaved in one run",
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=cpu_model(),
                  base_commit=tree_commit(HEAD) and subprocess.run(
                      ["git", "-C", HEAD, "rev-parse", "--short", args.base_commit],
                      capture_output=True, text=True).stdout.strip(),
                  head_commit=tree_commit(HEAD), torch=torch.__version__,
                  load_average_at_start=load_start, load_average_at_end=os.getloadavg(),
                  columns="*_ms: median wall ms on rank 0; *_cpu_ms: median process CPU ms "
                          "(all threads), mean over ranks; *_wakeups: voluntary context "
                          "switches per all-reduce; *_vs_gloo: gloo's time / ours",
                  rows=rows)
    from machine import write_result
    write_result(args.out, result)


if __name__ == "__main__":
    main()
