"""Scale-out measurements on an emulated cluster network (needs root: network namespaces).

    sudo .venv/bin/python benchmarks/bench_scaling.py          # ~10 min; writes
        benchmarks/results/scaling.json and scaling_*.png
    sudo .venv/bin/python benchmarks/bench_scaling.py --quick  # a few minutes, fewer points

Every rank is a process in its own network namespace (workbench.spark.netem: a ``tbf`` rate
limit on each node's link, a user-space delay line in the switch namespace) running the ring of
``workbench/spark/comm.py`` unchanged.  Parts:

1. ``links``: what the emulated links give: TCP round trip of 1 byte, one bulk transfer.
2. ``allreduce``: all-reduce time vs message size (1 KB ... 64 MB) and rank count (2 ... 16) on
   "10 GbE at 50 µs" and "1 GbE at 200 µs" (one-way delay per hop), plus the per-iteration
   control exchange of the trainer (``allreduce_small`` of 3 float64: loss, count, a flag).
3. ``straggler``: one rank computes 20 ms longer per iteration than the others.
4. ``doubling``: the ring vs recursive doubling (``comm.Doubling``) at latency-bound sizes;
   ``trainer_step``: the same for the trainer's whole iteration of communication (control
   exchange, reduce-scatter, all-gather: ``Optimizer(allreduce=...)``; not in the default list,
   run it with ``--parts trainer_step --out benchmarks/results/scaling_trainer_step.json``).
5. ``blackhole``: one rank's link drops every packet for 1 s / 3 s while the ring iterates:
   how long the iteration it hit takes (TCP retransmission back-off adds to the outage).
6. ``kill``: one rank's process is killed: how long until the others get ``CommError``;
   ``ring_cpu``: one rank's CPU seconds per all-reduce of a large vector (the per-rank rate the
   cost model gives a real cluster node).
7. ``spark``: Spark standalone inside the namespaces (master in the switch's namespace, one
   1-core worker per node, the driver in node 0: ``netns_spark_job.py``): cluster and session
   start, the first iteration, the barrier stage + rendezvous at every stretch boundary, and
   the stall after one worker's JVM is killed mid-training (2 and 3 workers; ~5 min each;
   not in the default list: ``--parts spark``).
8. ``loss``: random packet loss (0, 0.1%, 1%, 3%) on the 1 GbE-like link made of TUN devices
   and a user-space packet router (``NetCluster(link="tun")``): the router's own throughput,
   bulk TCP, and the ring all-reduce at 2 and 4 ranks for 16 KB / 256 KB / 4 MB (~4 min; not
   in the default list: ``--parts loss --out benchmarks/results/scaling_loss.json``).

Re-running part 2 merges with the points already in the results file (each point keeps the
fastest iteration of all runs: this machine is shared and load only slows a run down).

The compute is nil on purpose: this measures communication.  The machine has 2 cores, so with
N ranks + the relay on them the aggregate bandwidth is capped by CPU (part 1 measures the
ceiling); the cost model (benchmarks/scaling_model.py) separates the two.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "scaling.json")
sys.path.insert(0, ROOT)

SIZES = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]  # bytes
NETWORKS = {"10gbe": ("10gbit", 50e-6), "1gbe": ("1gbit", 200e-6)}


# ---------------------------------------------------------------------- the worker (in a node)
def worker(rank, host, comm_path):
    import numpy as np
    sys.path.insert(0, HERE)
    from machine import load_comm
    comm = load_comm(comm_path)
    srv = comm.listen(host)
    print(srv.getsockname()[1], flush=True)
    cfg = json.loads(sys.stdin.readline())
    algo = comm.Doubling if cfg.get("algo") == "doubling" else comm.Ring
    ring = algo.connect(rank, [tuple(a) for a in cfg["addresses"]], srv, "bench",
                        timeout=cfg.get("timeout", 120))
    n = ring.size

    def total(x):  # the same float64 sum on every rank, whatever the collective
        return float(ring.allreduce(np.array([x], dtype=np.float64))[0])
    for job in cfg["jobs"]:
        out = {"op": job["op"], "rank": rank}
        if job["op"] == "sweep":
            out["points"] = []
            slow_rank, slow_s = job.get("straggler") or (-1, 0.0)
            compute = job.get("compute", 0.0)
            for nbytes in job["sizes"]:
                control = nbytes == 0
                vec = np.ones(max(nbytes // 4, 1), dtype=np.float32)
                times, iters = [], 0
                ring.allreduce(vec) if not control else total(1.0)  # warm-up
                while True:
                    pause = compute + (slow_s if rank == slow_rank else 0.0)
                    vec.fill(1.0)  # sums of sums would overflow to inf after a while
                    t0 = time.perf_counter()
                    if pause:
                        time.sleep(pause)  # "compute" of this iteration
                    if control:
                        ring.allreduce_small([0.5, 128.0, 0.0])
                    elif job.get("step"):  # the trainer's iteration: control, gradient, weights
                        ring.allreduce_small([0.5, 128.0, 0.0, 0.0, 0.0, 0.0])
                        ring.reduce_scatter(vec)
                        ring.all_gather(vec)
                    else:
                        ring.allreduce(vec)
                    times.append(time.perf_counter() - t0)
                    iters += 1
                    # the same decision on every rank: the sum is identical everywhere
                    spent = total(sum(times)) / n
                    if iters >= job["max_iters"] or (iters >= job["min_iters"] and
                                                     spent >= job["budget"]):
                        break
                out["points"].append({"bytes": nbytes, "times": times})
        elif job["op"] == "cpu":  # CPU seconds of this rank (its threads, its kernel time)
            vec = np.ones(job["bytes"] // 4, dtype=np.float32)
            ring.allreduce(vec)  # warm-up
            cpu, wall = [], []
            for _ in range(job["iters"]):
                vec.fill(1.0)
                total(0.0)  # line the ranks up
                c0, t0 = time.process_time(), time.perf_counter()
                ring.allreduce(vec)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - t0)
            out["cpu_s"], out["wall_s"] = cpu, wall
        elif job["op"] == "loop":  # timestamps of a fixed number of iterations
            vec = np.ones(job["bytes"] // 4, dtype=np.float32)
            stamps = []
            try:
                for _ in range(job["iters"]):
                    vec.fill(1.0)
                    ring.allreduce(vec)
                    stamps.append(time.perf_counter())
                    time.sleep(job.get("pause", 0.0))
            except comm.CommError as e:
                out["error"] = str(e)
                out["error_at"] = time.perf_counter()
            out["stamps"] = stamps
        print(json.dumps(out), flush=True)
    ring.close()


# ---------------------------------------------------------------------- the coordinator
def start_ring(net, n, jobs, timeout=120, algo="ring"):
    """Start ``n`` ranks (rank r in node r), connect them through the delay line, give them
    ``jobs``; returns the processes (their stdout gives one JSON line per job)."""
    from workbench.spark.netem import COMM_PATH
    procs = [net.popen(r, [sys.executable, os.path.abspath(__file__), "--worker", r, net.ip(r),
                           COMM_PATH], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for r in range(n)]
    addresses = [net.forward(net.ip(r), int(p.stdout.readline())) for r, p in enumerate(procs)]
    for p in procs:
        p.stdin.write(json.dumps({"addresses": addresses, "jobs": jobs, "timeout": timeout,
                                  "algo": algo}) + "\n")
        p.stdin.flush()
    return procs


def collect(procs, timeout=1800):
    outs = []
    for p in procs:
        text = p.communicate(timeout=timeout)[0]
        outs.append([json.loads(line) for line in text.splitlines() if line.strip()])
    return outs


def sweep(net, n, sizes, budget, min_iters=5, max_iters=50, straggler=None, compute=0.0,
          algo="ring", step=False, keep_times=False):
    job = {"op": "sweep", "sizes": sizes, "budget": budget, "min_iters": min_iters,
           "max_iters": max_iters, "straggler": straggler, "compute": compute, "step": step}
    outs = collect(start_ring(net, n, [job], algo=algo))
    points = []
    for k, nbytes in enumerate(sizes):
        per_rank = [o[0]["points"][k]["times"] for o in outs]
        # an iteration ends when the slowest rank is done: max over ranks, median over iterations
        its = [max(ts) for ts in zip(*per_rank)]
        # the minimum is the run least disturbed by the other processes of this shared
        # 2-core machine (the model is fitted to it); the median is kept for reference
        points.append({"bytes": nbytes, "iters": len(its), "median_s": statistics.median(its),
                       "min_s": min(its), "mean_s": statistics.fmean(its), "max_s": max(its)})
        if keep_times:
            points[-1]["times_s"] = [round(t, 6) for t in its]
    return points


def part_links(quick):
    from workbench.spark import netem
    out = {}
    for name, (rate, delay) in NETWORKS.items():
        with netem.NetCluster(2, rate=rate, delay=delay, name=f"bl{name[:2]}") as net:
            rtts = sorted(netem.measure_rtt(net, count=200))
            bws = [netem.measure_bandwidth(net, nbytes=(16 if quick else 64) << 20)
                   for _ in range(2)]
        with netem.NetCluster(2, rate=None, delay=0, name="blraw") as net:
            raw = netem.measure_bandwidth(net, nbytes=(16 if quick else 64) << 20)
        out[name] = {"rate_bytes_per_s": netem.parse_rate(rate), "delay_one_way_s": delay,
                     "rtt_configured_s": 2 * delay, "rtt_min_s": rtts[0],
                     "rtt_median_s": rtts[len(rtts) // 2], "bulk_bytes_per_s": max(bws),
                     "unlimited_veth_bytes_per_s": raw}
        print(name, json.dumps(out[name]), flush=True)
    return out


def part_ring_cpu(quick):
    """What one rank's ring costs a dedicated core: bus bytes (2(N-1)/N of the vector) per
    CPU-second of the rank's process (caller, sender thread, and the kernel's TCP work done in
    its context), 2 ranks on an unshaped link, out-of-cache vectors as large models have.  CPU
    time, unlike wall time, hardly depends on the other tenants of this shared machine; the cost
    model uses it as the per-rank rate of a real cluster node."""
    from workbench.spark import netem
    out = {}
    with netem.NetCluster(2, rate=None, delay=0, name="rcpu") as net:
        for nbytes in ([40 << 20] if quick else [4 << 20, 40 << 20]):
            outs = collect(start_ring(net, 2, [{"op": "cpu", "bytes": nbytes,
                                                "iters": 10 if quick else 30}]))
            bus = nbytes  # 2(N-1)/N x m at N = 2
            cpu = [statistics.median(o[0]["cpu_s"]) for o in outs]
            wall = [statistics.median(o[0]["wall_s"]) for o in outs]
            out[str(nbytes)] = {"bytes": nbytes, "cpu_s_per_rank": cpu, "wall_s_per_rank": wall,
                                "bus_bytes_per_cpu_s": bus / max(cpu),
                                "bus_bytes_per_wall_s": bus / max(wall)}
            print("ring_cpu", nbytes, json.dumps(out[str(nbytes)]), flush=True)
    out["loadavg"] = os.getloadavg()
    return out


def part_allreduce(quick):
    from workbench.spark import netem
    ranks = [2, 4, 8] if quick else [2, 4, 8, 16]
    out = {}
    for name, (rate, delay) in NETWORKS.items():
        out[name] = {}
        for n in ranks:
            sizes = [0] + [s for s in SIZES if not (quick and s > 16 << 20)]
            if n == 16:
                sizes = [s for s in sizes if s <= 16 << 20]  # 16 x 64 MB does not fit the time
            with netem.NetCluster(n, rate=rate, delay=delay, name=f"ar{n}") as net:
                pts = sweep(net, n, sizes, budget=1.0 if quick else 2.0)
            out[name][str(n)] = pts
            print(name, n, [(p["bytes"], round(p["median_s"] * 1e3, 2)) for p in pts], flush=True)
    return out


def part_straggler(quick):
    """4 ranks, LeNet-5's gradient, 10 ms of "compute" per iteration; one rank 20 ms more.
    The two cases alternate three times in one cluster (the machine's load drifts)."""
    from workbench.spark import netem
    n, rate, delay = 4, *NETWORKS["10gbe"]
    rounds = {"none": [], "one rank +20 ms": []}
    with netem.NetCluster(n, rate=rate, delay=delay, name="st") as net:
        for _ in range(2 if quick else 3):
            for label, straggler in (("none", None), ("one rank +20 ms", [2, 0.02])):
                pts = sweep(net, n, [248_024], budget=1.0, min_iters=10, max_iters=30,
                            straggler=straggler, compute=0.01)
                rounds[label].append(pts[0]["median_s"])
    out = {k: statistics.median(v) for k, v in rounds.items()}
    print("straggler", json.dumps(out), flush=True)
    return {"ranks": n, "network": "10gbe", "bytes": 248_024, "compute_s": 0.01,
            "extra_s": 0.02, "median_iteration_s": out, "rounds": rounds}


def part_doubling(quick):
    """Ring vs recursive doubling (comm.Doubling) on the emulated 10 GbE, latency-bound sizes."""
    from workbench.spark import netem
    rate, delay = NETWORKS["10gbe"]
    sizes = [1 << 10, 248_024, 1 << 20, 4 << 20]
    out = {}
    for n in ([4, 8] if quick else [4, 8, 16]):
        with netem.NetCluster(n, rate=rate, delay=delay, name=f"db{n}") as net:
            out[str(n)] = {algo: sweep(net, n, sizes, budget=1.0, algo=algo)
                           for algo in ("ring", "doubling")}
        print("doubling", n, {a: [round(p["min_s"] * 1e3, 2) for p in pts]
                              for a, pts in out[str(n)].items()}, flush=True)
    return out


def part_trainer_step(quick):
    """The trainer's communication per iteration (control exchange + reduce-scatter of the
    gradient + all-gather of the weights) on the ring and on doubling (``allreduce=``), 10 GbE."""
    from workbench.spark import netem
    rate, delay = NETWORKS["10gbe"]
    sizes = [248_024, 1 << 20, 4 << 20]
    out = {}
    for n in ([4, 8] if quick else [4, 8, 16]):
        with netem.NetCluster(n, rate=rate, delay=delay, name=f"ts{n}") as net:
            out[str(n)] = {algo: sweep(net, n, sizes, budget=1.0, algo=algo, step=True)
                           for algo in ("ring", "doubling")}
        print("trainer_step", n, {a: [round(p["min_s"] * 1e3, 2) for p in pts]
                                  for a, pts in out[str(n)].items()}, flush=True)
    return out


def part_blackhole(quick):
    from workbench.spark import netem
    n, rate, delay = 4, *NETWORKS["1gbe"]
    out = []
    for outage in (1.0, 3.0):
        with netem.NetCluster(n, rate=rate, delay=delay, name="bh") as net:
            iters = 40
            procs = start_ring(net, n, [{"op": "loop", "bytes": 1 << 20, "iters": iters,
                                         "pause": 0.05}])
            time.sleep(1.0)
            net.blackhole(1)
            t_down = time.perf_counter()
            time.sleep(outage)
            net.blackhole(1, on=False)
            outs = collect(procs, timeout=600)
        stamps = outs[0][0]["stamps"]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        normal = statistics.median(gaps)
        out.append({"outage_s": outage, "iterations": len(stamps),
                    "normal_iteration_s": normal, "longest_iteration_s": max(gaps),
                    "stall_beyond_outage_s": max(gaps) - normal - outage,
                    "down_at_s": t_down})
        print("blackhole", json.dumps(out[-1]), flush=True)
    return out


def part_kill(quick):
    from workbench.spark import netem
    n, rate, delay = 4, *NETWORKS["10gbe"]
    with netem.NetCluster(n, rate=rate, delay=delay, name="kl") as net:
        procs = start_ring(net, n, [{"op": "loop", "bytes": 1 << 20, "iters": 100000,
                                     "pause": 0.01}], timeout=30)
        time.sleep(2.0)
        os.kill(procs[2].pid, signal.SIGKILL)  # `ip netns exec` execs: this is the rank itself
        killed = time.perf_counter()
        outs = [o for i, o in enumerate(collect(procs, timeout=120)) if i != 2]
    detect = [o[0]["error_at"] - killed for o in outs if "error_at" in o[0]]
    res = {"ranks": n, "detected_by": len(detect), "detect_s_max": max(detect),
           "detect_s_min": min(detect), "errors": sorted({o[0].get("error", "")[:80]
                                                          for o in outs})}
    print("kill", json.dumps(res), flush=True)
    return res


def spark_cluster(net, workers, directory, rate_note=""):
    """A standalone master in the switch's namespace and one worker (1 core) in each of nodes
    1..``workers``, each bound to its namespace's address; returns ``(master_url,
    worker_processes)`` once every worker has registered.  Processes are ``net``'s: its
    ``close()`` stops them (and whatever they started in the namespaces)."""
    from workbench.spark.standalone import MASTER, WORKER, spark_home
    spark_class = os.path.join(spark_home(), "bin", "spark-class")
    url = f"spark://{net.hub_ip}:7077"  # fixed ports are private to each namespace

    def env(ip, name):
        e = dict(os.environ, SPARK_HOME=spark_home(), SPARK_LOCAL_IP=ip,
                 PYSPARK_PYTHON=sys.executable,
                 SPARK_WORKER_DIR=os.path.join(directory, f"work-{name}"))
        e["PYTHONPATH"] = os.pathsep.join(x for x in (ROOT, e.get("PYTHONPATH")) if x)
        return e

    def log(name):
        return open(os.path.join(directory, f"{name}.log"), "w")

    def text(name):
        with open(os.path.join(directory, f"{name}.log"), errors="replace") as f:
            return f.read()
    net.popen("hub", [spark_class, MASTER, "--host", net.hub_ip, "--port", 7077,
                      "--webui-port", 8080], env=env(net.hub_ip, "master"),
              stdout=log("master"), stderr=subprocess.STDOUT)
    procs = [net.popen(i, [spark_class, WORKER, "--host", net.ip(i), "--cores", 1,
                           "--memory", "1g", "--webui-port", 8081, url],
                       env=env(net.ip(i), f"worker{i}"), stdout=log(f"worker{i}"),
                       stderr=subprocess.STDOUT)
             for i in range(1, workers + 1)]
    deadline = time.monotonic() + 300
    while text("master").count("Registering worker") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not register:\n" + text("master")[-2000:])
        time.sleep(0.25)
    return url, procs


def part_spark(quick):
    """Spark standalone inside the namespaces (10 GbE rate; Spark's RPC and the ring do not go
    through the delay line, so no added latency): the cluster's start, a short training with
    the ring all-reduce on every worker, and recovery after one worker's JVM is killed."""
    import tempfile
    from workbench.spark import netem
    out = {}
    for workers in ([2] if quick else [2, 3]):
        with tempfile.TemporaryDirectory(prefix="wb-netns-spark-") as tmp, \
                netem.NetCluster(workers + 1, rate="10gbit", delay=0, name=f"sp{workers}") as net:
            t0 = time.perf_counter()
            url, procs = spark_cluster(net, workers, tmp)
            started = time.perf_counter() - t0
            job = os.path.join(HERE, "netns_spark_job.py")
            driver_log = os.path.join(tmp, "driver.log")
            with open(driver_log, "w") as err:
                driver = net.popen(0, [sys.executable, job, url, net.ip(0), workers,
                                       "--kill-pid", procs[-1].pid, "--at", 15],
                                   stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=dict(netem._env(), SPARK_LOCAL_IP=net.ip(0)))
            try:
                text = driver.communicate(timeout=900)[0]
            except subprocess.TimeoutExpired:
                text = ""
            lines = [line for line in text.splitlines() if line.startswith("{")]
            if not lines:
                with open(driver_log, errors="replace") as f:
                    raise RuntimeError("the driver failed:\n" + f.read()[-3000:])
            res = json.loads(lines[-1])
            res["cluster_start_s"] = started
        out[str(workers)] = res
        print("spark", workers, json.dumps(res), flush=True)
    return out


LOSS_RATES = [0.0, 0.001, 0.01, 0.03]
LOSS_SIZES = [16 << 10, 256 << 10, 4 << 20]


def _lost_since(net, before):
    now = net.link_stats()
    packets = sum(c["packets"] for c in now.values()) - sum(c["packets"] for c in before.values())
    lost = sum(c["lost"] for c in now.values()) - sum(c["lost"] for c in before.values())
    return now, {"packets": packets, "lost": lost}


def loss_bulk(mtu, nbytes):
    """Bulk TCP (two transfers of ``nbytes`` each) vs the loss rate on the 1 GbE-like TUN link
    of ``mtu``; returns ``(rows, rtt_min_s, rtt_median_s)``."""
    from workbench.spark import netem
    rate, delay = NETWORKS["1gbe"]
    rows = []
    with netem.NetCluster(2, rate=rate, delay=delay, link="tun", mtu=mtu, name="lsb") as net:
        rtts = sorted(netem.measure_rtt(net, count=200))
        seen = net.link_stats()
        for loss in LOSS_RATES:
            net.set_link(loss=loss)
            bws = [netem.measure_bandwidth(net, nbytes=nbytes) for _ in range(2)]
            seen, drawn = _lost_since(net, seen)
            rows.append({"loss": loss, "mtu": mtu, "bytes_per_s": bws, **drawn})
            print("loss bulk", json.dumps(rows[-1]), flush=True)
    return rows, rtts[0], rtts[len(rtts) // 2]


def part_loss(quick):
    """Random packet loss (``NetCluster(link="tun")``: TUN devices, the user-space packet
    router): what the router itself carries, bulk TCP and the ring all-reduce vs the loss rate
    on the 1 GbE-like link (1 Gbit/s, 200 us one way, jumbo frames: MTU 9000), 2 and 4 ranks.
    One cluster per rank count, the loss changed in place (``set_link``); the router's counters
    give the loss that was actually drawn.  With loss the mean, not the minimum, is the cost
    (a retransmission timeout hits some iterations), so every statistic is kept."""
    from workbench.spark import netem
    rate, delay = NETWORKS["1gbe"]
    mbytes = (8 if quick else 32) << 20
    out = {"rate_bytes_per_s": netem.parse_rate(rate), "delay_one_way_s": delay, "mtu": 9000,
           "router": {}, "bulk": [], "allreduce": {}, "loadavg": [os.getloadavg()]}
    for mtu in (1500, 9000, 65000):  # the router's own ceiling: no rate, no delay, no loss
        with netem.NetCluster(2, rate=None, delay=0, link="tun", mtu=mtu, name="lsr") as net:
            out["router"][str(mtu)] = max(netem.measure_bandwidth(net, nbytes=mbytes)
                                          for _ in range(2))
    print("loss router", json.dumps(out["router"]), flush=True)

    out["bulk"], out["rtt_min_s"], out["rtt_median_s"] = loss_bulk(9000, mbytes)
    # MTU 1500: packets 6x smaller, so the Mathis bound falls below the router's ceiling
    out["bulk_mtu1500"] = loss_bulk(1500, mbytes // 4)[0]
    for n in (2, 4):
        out["allreduce"][str(n)] = []
        with netem.NetCluster(n, rate=rate, delay=delay, link="tun", name=f"ls{n}") as net:
            seen = net.link_stats()
            for loss in LOSS_RATES:
                net.set_link(loss=loss)
                pts = sweep(net, n, LOSS_SIZES, budget=1.0 if quick else 2.5, min_iters=10,
                            max_iters=300, keep_times=True)
                seen, drawn = _lost_since(net, seen)
                out["allreduce"][str(n)].append({"loss": loss, "points": pts, **drawn})
                print("loss allreduce", n, loss, drawn, [(p["bytes"], round(p["min_s"] * 1e3, 2),
                      round(p["mean_s"] * 1e3, 2), round(p["max_s"] * 1e3, 1)) for p in pts],
                      flush=True)
        out["loadavg"].append(os.getloadavg())
    return out


def merge_allreduce(old, new):
    """Points of two runs of part 2 as one: the fastest iteration of either (``min_s``; the
    load of this shared machine only ever slows a run down), every run's median kept."""
    out = json.loads(json.dumps(new))
    for net, by_n in out.items():
        for n, pts in by_n.items():
            before = {p["bytes"]: p for p in old.get(net, {}).get(n, [])}
            for p in pts:
                q = before.get(p["bytes"])
                p["median_runs_s"] = (q.get("median_runs_s", [q["median_s"]]) if q else []) + \
                    [p["median_s"]]
                if q:
                    p["min_s"] = min(p["min_s"], q["min_s"])
                    p["iters"] += q["iters"]
    return out


PARTS = {"links": part_links, "allreduce": part_allreduce, "straggler": part_straggler,
         "doubling": part_doubling, "trainer_step": part_trainer_step,
         "blackhole": part_blackhole, "kill": part_kill, "spark": part_spark,
         "ring_cpu": part_ring_cpu, "loss": part_loss}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default=",".join(p for p in PARTS
                                                 if p not in ("trainer_step", "spark", "loss")),
                    help=f"comma-separated, of: {', '.join(PARTS)}")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--worker", nargs=3, metavar=("RANK", "HOST", "COMM"))
    args = ap.parse_args()
    if args.worker:
        return worker(int(args.worker[0]), args.worker[1], args.worker[2])
    from workbench.spark import netem
    ok, why = netem.available()
    if not ok:
        sys.exit(f"bench_scaling needs network namespaces: {why}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: namespaces torn down
    results = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "loadavg_start": os.getloadavg()}
    for part in args.parts.split(","):
        started = time.time()
        result = PARTS[part](args.quick)
        if part == "allreduce" and "allreduce" in results and not args.quick:
            result = merge_allreduce(results["allreduce"], result)
            results["runs_merged_in_allreduce"] = results.get("runs_merged_in_allreduce", 1) + 1
        results[part] = result
        results.setdefault("seconds", {})[part] = round(time.time() - started, 1)
        results["machine"]["loadavg_end"] = os.getloadavg()
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
