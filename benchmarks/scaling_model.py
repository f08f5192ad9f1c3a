"""A cost model of data-parallel training on workbench.spark, fitted to the emulated-network
measurements of bench_scaling.py, checked on points it was not fitted on, and used to predict
8 ... 256 nodes on 10 GbE.

    .venv/bin/python benchmarks/scaling_model.py   # reads results/scaling.json, writes
        results/scaling_model.json and results/scaling_*.png
    .venv/bin/python benchmarks/scaling_model.py --loss   # random packet loss (loss_model):
        reads results/scaling_loss.json, writes results/scaling_loss_model.json
    .venv/bin/python benchmarks/scaling_model.py --spark OTHER_RUN.json
        # the same, with the "spark" part (start-up, recovery stall) of another run

The model (one all-reduce of m bytes over N ranks with the ring of comm.py: 2(N-1) steps of
b = m/N bytes per rank)::

    T_ring(N, m) = 2(N-1) * (alpha + sigma N)  +  max( wire, cpu )
    wire         = (2(N-1) b - burst)+ / R          the rank's link, paced by the tbf
    cpu          = 2(N-1) * cpu_step(N, b)          copy + TCP + relay + reduce of b bytes

- ``alpha``: per-step latency, *measured* (not fitted): half the 1-byte TCP round trip through
  the delay line (configured delay + the relay's hop + the kernel), ``links`` in scaling.json.
- ``sigma N``: per step, the N ranks' own software (wake-up, Python, syscalls) shared by the
  machine's 2 cores; on a real cluster a rank has its own cores and pays ``CORES * sigma``.
- ``R``: the configured rate at the efficiency TCP reached on the (link-bound) emulated 1 GbE;
  ``burst``: what the emulator's token bucket lets through unpaced, once per all-reduce (the
  steps follow each other too closely for it to refill).
- ``cpu_step`` (:func:`emulator_cpu`): each rank's bytes at a per-core rate while a step's
  working set (3 b per running rank, ``min(N, 2)`` running at a time) fits the machine's 32 MiB
  L3, at a lower rate beyond; N ranks take N / min(N, 2) rounds of the 2 cores.  The two rates
  and sigma are the fitted parameters (3 per network).
- ``max``: the ring overlaps sending (a sender thread) with receiving and adding.

On the emulated 10 GbE cpu > wire (2 cores do the work of N nodes); on the emulated 1 GbE wire
> cpu from ~1 MB.  On a real cluster (:func:`predict`) ``cpu_step = b / r`` with r the per-rank
rate of our ring measured on loopback (benchmarks/results/spark.json, out of cache), above
10 GbE's wire rate, so the prediction is link-bound.  The trainer's per-iteration control
exchange (``allreduce_small``: N - 1 steps of a few bytes) costs ``(N - 1) * alpha``.

Training adds, per iteration, compute ``t_c`` (per-node batch / per-node speed) and, per
*stretch* (a barrier stage; ends for a snapshot every ``tau`` seconds), a start cost
``S(N) = s0 + s1 N`` (stage launch + rendezvous + driver snapshot).  Failures: per-node mean time
between failures ``M_node``, so the job's is ``M = M_node / N``; each failure costs detection
+ restart + on average half a snapshot interval of work; the interval minimising the loss is
Young's ``tau = sqrt(2 delta M)`` (delta: the snapshot cost).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, HERE)
from machine import load_comm  # noqa: E402

COMM = load_comm()  # the trainer's own Young's rule for the snapshot interval

RESULTS = os.path.join(HERE, "results")
STAT = "min_s"  # fitted: each point's least-disturbed iteration (the machine is shared)

# ---------------------------------------------------------------------- the ring model
L3_BYTES = 32 << 20  # this machine's last-level cache (lscpu: one 32 MiB L3 for both cores)
CORES = 2            # ... and its cores: the emulated ranks, the relay and the kernel share them
WORKING_SET = 3      # bytes a rank touches per byte it receives: send slice, receive buffer, sum


def emulator_cpu(n, b, cached_rate, memory_rate, cores=CORES, cache=L3_BYTES):
    """CPU seconds one ring step of ``b`` bytes per rank costs on the emulator: every rank
    sends, receives and adds ``b`` bytes (plus the kernel's and the relay's work for them) at
    ``cached_rate`` bytes/s per core while the step's working set fits the last-level cache
    and at ``memory_rate`` beyond it.  Only ``min(n, cores)`` ranks run at a time, so the
    cache holds ``cache / (WORKING_SET * min(n, cores))`` bytes of each rank's step, and the
    ``n`` ranks' work is spread over the cores: ``n / min(n, cores)`` rounds."""
    n = np.asarray(n, dtype=float)
    b = np.asarray(b, dtype=float)
    active = np.minimum(n, cores)
    fits = cache / (WORKING_SET * active)
    per_rank = np.minimum(b, fits) / cached_rate + np.maximum(b - fits, 0.0) / memory_rate
    return n / active * per_rank


def ring_time(n, m, alpha, rate, cpu=None, sigma=0.0, burst=0.0):
    """Seconds of one ring all-reduce of ``m`` bytes over ``n`` ranks (see the module doc).

    Args:
        alpha: per-step latency (seconds): the link's one-way time, relay hop included.
        rate: link rate (bytes/s) of each rank's uplink.
        cpu: ``cpu(n, b)`` -> CPU seconds of one step of ``b`` bytes per rank, or None (free).
        sigma: the emulator's wait to be scheduled per rank per step (n ranks on 2 cores; 0 on a
            real cluster).
        burst: bytes the emulator's token bucket lets through unpaced, once per all-reduce (the
            ring's steps follow each other too closely for it to refill; 0 on a real link).
    """
    n = np.asarray(n, dtype=float)
    m = np.asarray(m, dtype=float)
    b = m / n  # bytes per rank per step
    steps = 2 * (n - 1)
    wire = np.maximum(steps * b - burst, 0.0) / rate
    work = steps * cpu(n, b) if cpu is not None else 0.0
    # the ring overlaps them (a sender thread sends while the caller receives and adds)
    return steps * (alpha + sigma * n) + np.maximum(wire, work)


def tree_time(n, m, alpha, rate, cpu=None):
    """Recursive doubling (``comm.Doubling``): log2(p) steps of the whole message for the
    largest power of two p <= n, plus 2 steps to fold the other ranks in and out."""
    n = np.asarray(n, dtype=float)
    m = np.asarray(m, dtype=float)
    p = 2 ** np.floor(np.log2(n))
    steps = np.log2(p) + np.where(n > p, 2, 0)
    per_step = np.maximum(m / rate, cpu(n, m) if cpu is not None else 0.0)
    return steps * (alpha + per_step)


def _minimise(f, x0, steps=(2.0, 0.5, 0.1, 0.02), iters=60):
    """A small derivative-free search in log-parameter space (coordinate steps that shrink):
    enough for 2-3 parameters, and no SciPy needed."""
    x = np.array(x0, dtype=float)
    best = f(x)
    for h in steps:
        for _ in range(iters):
            improved = False
            for i in range(len(x)):
                for d in (h, -h):
                    y = x.copy()
                    y[i] += d
                    v = f(y)
                    if v < best:
                        x, best, improved = y, v, True
            if not improved:
                break
    return x, best


def fitted_cpu(f):
    """The emulator's ``cpu(n, b)`` with the rates of fit ``f``."""
    return lambda n, b: emulator_cpu(n, b, f["cached_bytes_per_s"], f["memory_bytes_per_s"])


def fit_network(points, alpha, rate, burst):
    """Fit ``sigma`` and the two CPU rates by least squares on log time to ``[(n, m, seconds)]``;
    ``alpha`` (measured: half the 1-byte round trip through the delay line), ``rate`` and
    ``burst`` (configured) are not fitted."""
    n, m, t = (np.array(c, dtype=float) for c in zip(*points))

    def model(p):
        sigma, cached, memory = np.exp(p)
        return ring_time(n, m, alpha, rate, lambda n, b: emulator_cpu(n, b, cached, memory),
                         sigma, burst)

    def loss(p):
        return float(np.sum((np.log(model(p)) - np.log(t)) ** 2))

    x, _ = _minimise(loss, [math.log(5e-5), math.log(6e8), math.log(3e8)])
    rel = model(x) / t - 1
    return {"alpha_s": alpha, "sigma_s": float(np.exp(x[0])),
            "cached_bytes_per_s": float(np.exp(x[1])),
            "memory_bytes_per_s": float(np.exp(x[2])),
            "fitted_points_within_20pct": int(np.sum(np.abs(rel) <= 0.2)),
            "fitted_points": len(t), "fitted_median_abs_error": float(np.median(np.abs(rel))),
            "fitted_residuals": [{"ranks": int(a), "bytes": int(b), "rel_error": float(e)}
                                 for a, b, e in zip(n, m, rel)]}


def split(points):
    """Fit on even-indexed sizes of every rank count, hold out the odd ones (so the model must
    interpolate in m and in N at once, never extrapolate)."""
    fit, hold = [], []
    for n, m, t, k in points:
        (fit if k % 2 == 0 else hold).append((n, m, t))
    return fit, hold


# ---------------------------------------------------------------------- workloads
# Per-node training speed (samples/s) of one dual-socket Xeon node, an assumption stated here
# rather than measured (2 cores cannot measure a server): LeNet-5 at 20k/s is what 2 cores of
# this machine reach with workbench (benchmarks/results/spark.json: 21k records/s at batch 256),
# so a server does at least that; ResNet-50 at ~12.3 GFLOP per training sample (3 x 4.1 forward)
# and ~1 TFLOP/s sustained fp32 gives 80/s; the LSTM LM (2 x 650 units, 10k vocabulary,
# Zaremba et al.'s "medium", 19.8M floats) at ~2.8 GFLOP per 35-token sequence gives 350/s.
WORKLOADS = {
    # name: (parameters (floats), samples/s of one node, per-node batch)
    "LeNet-5": (62_006, 20_000.0, 128),
    "ResNet-50": (25_557_032, 80.0, 32),
    "LSTM-LM": (19_775_200, 350.0, 20),
}


def predict(nodes, alpha, rate, per_rank_cap, stage, failure, algorithm="ring"):
    """Weak scaling on a real cluster: one rank per node, each with its own cores, so a step's
    CPU work (copy + reduce of ``b`` bytes) costs ``b / per_rank_cap`` and overlaps the wire."""
    out = {}

    def cpu(n, b):
        return np.asarray(b, dtype=float) / per_rank_cap
    for name, (params, speed, batch) in WORKLOADS.items():
        m = 4.0 * params
        t_c = batch / speed
        rows = []
        for n in nodes:
            allreduce = float(ring_time(n, m, alpha, rate, cpu))
            if algorithm == "best":  # the faster of the ring and recursive doubling
                allreduce = min(allreduce, float(tree_time(n, m, alpha, rate, cpu)))
            control = (n - 1) * alpha
            iteration = t_c + allreduce + control
            # failures: Young's interval from the snapshot cost delta and the job MTBF
            delta = stage["s0"] + stage["s1"] * n + m / rate  # end a stretch, start the next
            mtbf = failure["node_mtbf_s"] / n
            tau = COMM.snapshot_interval(delta, n, failure["node_mtbf_s"])  # the trainer's
            lost = delta / tau + (tau / 2 + failure["restart_s"] + stage["s0"] +
                                  stage["s1"] * n) / mtbf
            throughput = n * batch / iteration * (1 - lost)
            single = batch / t_c
            rows.append({"nodes": n, "iteration_s": iteration, "compute_s": t_c,
                         "allreduce_s": allreduce, "control_s": control,
                         "samples_per_s": throughput,
                         "scaling_efficiency": throughput / (n * single),
                         "snapshot_interval_s": tau, "time_lost_to_failures": lost,
                         "job_mtbf_h": mtbf / 3600})
        out[name] = {"floats": params, "per_node_batch": batch, "rows": rows}
    return out


# ---------------------------------------------------------------------- plots
def plot(data, fits, preds, path_prefix):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (net, by_n) in zip(axes, data["allreduce"].items()):
        f = fits[net]
        for n, pts in sorted(by_n.items(), key=lambda kv: int(kv[0])):
            xs = [p["bytes"] for p in pts if p["bytes"] > 0]
            ys = [p[STAT] for p in pts if p["bytes"] > 0]
            line, = ax.loglog(xs[::2], ys[::2], "o", label=f"N={n} fitted on")
            ax.loglog(xs[1::2], ys[1::2], "o", mfc="none", color=line.get_color(),
                      label=f"N={n} held out")
            grid = np.logspace(np.log10(min(xs)), np.log10(max(xs)), 50)
            ax.loglog(grid, ring_time(int(n), grid, f["alpha_s"], f["rate"], fitted_cpu(f),
                                      f["sigma_s"], f["burst"]), "-", color=line.get_color())
        ax.set_title(f"ring all-reduce, emulated {net}: model (lines) vs measured")
        ax.set_xlabel("message bytes")
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path_prefix + "_allreduce.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, res in preds["ring"].items():
        ns = [r["nodes"] for r in res["rows"]]
        axes[0].semilogx(ns, [r["scaling_efficiency"] for r in res["rows"]], "o-",
                         label=f"{name} (ring)", base=2)
        axes[0].semilogx(ns, [r["scaling_efficiency"] for r in preds["best"][name]["rows"]],
                         "x--", label=f"{name} (ring or doubling)", base=2)
        axes[1].loglog(ns, [r["samples_per_s"] for r in res["rows"]], "o-", label=name,
                       base=2)
    axes[0].set_title("predicted scaling efficiency, 10 GbE (weak scaling)")
    axes[0].set_xlabel("nodes")
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(fontsize=7)
    axes[1].set_title("predicted throughput (samples/s), incl. failures")
    axes[1].set_xlabel("nodes")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path_prefix + "_predictions.png", dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spark", help="a bench_scaling.py output whose 'spark' part (Spark in "
                    "the namespaces: stage starts, the stall after a killed worker) replaces "
                    "scaling.json's")
    ap.add_argument("--loss", action="store_true", help="the loss term alone (loss_model: "
                    "reads results/scaling_loss.json, writes results/scaling_loss_model.json)")
    args = ap.parse_args()
    if args.loss:
        loss_model()
        return 0
    with open(os.path.join(RESULTS, "scaling.json")) as f:
        data = json.load(f)
    if args.spark:
        with open(args.spark) as f:
            data["spark"] = json.load(f)["spark"]
    fits, validation = {}, {}
    ref = data["links"]["1gbe"]  # the link-bound emulation: how much of its rate TCP gets
    efficiency = min(1.0, ref["bulk_bytes_per_s"] / ref["rate_bytes_per_s"])
    for net, by_n in data["allreduce"].items():
        link = data["links"][net]
        rate = link["rate_bytes_per_s"] * efficiency
        burst = max(256 * 1024, link["rate_bytes_per_s"] * 100e-6)  # netem.NetCluster's tbf
        alpha = link["rtt_min_s"] / 2  # measured one way: configured delay + the relay's hop
        points = []
        for n, pts in by_n.items():
            data_pts = [p for p in pts if p["bytes"] > 0]
            for k, p in enumerate(data_pts):
                points.append((int(n), p["bytes"], p[STAT], k))
        fit_pts, hold = split(points)
        f = fit_network(fit_pts, alpha, rate, burst)
        f["rate"], f["burst"] = rate, burst
        fits[net] = f
        errs = []
        for n, m, t in hold:
            pred = float(ring_time(n, m, alpha, rate, fitted_cpu(f), f["sigma_s"], burst))
            errs.append({"ranks": n, "bytes": m, "measured_s": t, "predicted_s": pred,
                         "rel_error": pred / t - 1})
        within = sum(abs(e["rel_error"]) <= 0.2 for e in errs)
        validation[net] = {"held_out": errs, "within_20pct": within, "count": len(errs),
                           "median_abs_error": float(np.median([abs(e["rel_error"])
                                                                for e in errs]))}
        print(f"{net}: alpha={alpha * 1e6:.0f} us (measured), sigma={f['sigma_s'] * 1e6:.0f} us, "
              f"CPU {f['cached_bytes_per_s'] / 1e6:.0f} / {f['memory_bytes_per_s'] / 1e6:.0f} "
              f"MB/s per core (cache / memory); fitted points within 20%: "
              f"{f['fitted_points_within_20pct']}/{f['fitted_points']}; held out {within}/"
              f"{len(errs)} within 20% (median |err| {validation[net]['median_abs_error']:.0%}): "
              + " ".join(f"{e['ranks']}x{e['bytes'] >> 10}K {e['rel_error']:+.0%}" for e in errs))

    # ---- a real 10 GbE cluster, one rank per node on its own cores.  Per-step latency: the
    # emulated 10 GbE's measured one-way time (50 us configured + the relay's hop: pessimistic,
    # a switch has no relay) plus the ring's own software of one step on a dedicated core
    # (sigma is that work shared by `CORES` cores, so one rank's is CORES * sigma).  Wire: 10 Gbit/s
    # at the efficiency TCP reached on the emulated 1 GbE.  CPU: copy + TCP + reduce at the
    # per-rank rate our ring reached on loopback (benchmarks/results/spark.json, 2 ranks on
    # 2 cores, a 40 MB vector: out of cache, like ResNet-50's gradient) - a server core at
    # least; it is above the wire's 1.15 GB/s, so a real 10 GbE ring is link-bound.
    f10 = fits["10gbe"]
    alpha10 = f10["alpha_s"] + CORES * f10["sigma_s"]
    rate10 = 1.25e9 * efficiency
    spark = {}
    spark_path = os.path.join(RESULTS, "spark.json")
    if os.path.exists(spark_path):
        with open(spark_path) as f:
            spark = json.load(f)
    ring_cpu = data.get("ring_cpu", {}).get(str(40 << 20), {})
    if ring_cpu:  # bus bytes per CPU-second of one rank: what a dedicated core gives
        per_rank_cap = ring_cpu["bus_bytes_per_cpu_s"]
    else:  # the wall rate on loopback: only right on an otherwise idle machine
        per_rank_cap = spark.get("allreduce", {}).get("10000000", {}).get("ours_bus_gb_s",
                                                                            1.7) * 1e9
    stage = {"s0": 1.5, "s1": 0.002}  # notes/spark.md: barrier allGather ~1 s + stage ~0.2 s;
    # ~2 ms of driver work per task launched (BigDL's Figure 8: >10% of compute at ~500 tasks)
    kill = data.get("kill", {})
    # what a failure costs beyond the lost work: measured with Spark standalone inside the
    # namespaces (part "spark": a worker JVM killed, until training went on on the others),
    # else 30 s for a new executor + the ring's detection of a killed rank
    stalls = [r["killed"]["kill_to_resume_s"] for r in data.get("spark", {}).values()
              if r.get("killed", {}).get("kill_to_resume_s")]
    restarts = [g for r in data.get("spark", {}).values() for g in r["clean"]["stretch_restart_s"]]
    failure = {"node_mtbf_s": 30 * 86400.0,  # one failure per node-month (executors included)
               "restart_s": max(stalls) if stalls else 30.0 + kill.get("detect_s_max", 0.1),
               "restart_measured": bool(stalls),
               "restart_source": os.path.basename(args.spark) if args.spark else "scaling.json"}
    stage["measured_stretch_restart_s"] = {
        "median": float(np.median(restarts)) if restarts else None,
        "max": max(restarts) if restarts else None}
    nodes = [8, 32, 128, 256]
    preds = {algo: predict(nodes, alpha10, rate10, per_rank_cap, stage, failure, algo)
             for algo in ("ring", "best")}
    doubling = {}
    for n, algos in data.get("doubling", {}).items():
        f = fits["10gbe"]
        doubling[n] = [{"bytes": r["bytes"], "ring_s": r[STAT], "doubling_s": d[STAT],
                        "speedup": r[STAT] / d[STAT],
                        "model_ring_s": float(ring_time(int(n), r["bytes"], f["alpha_s"],
                                                        f["rate"], fitted_cpu(f),
                                                        f["sigma_s"], f["burst"])),
                        "model_doubling_s": float(tree_time(
                            int(n), r["bytes"], f["alpha_s"] + f["sigma_s"] * int(n), f["rate"],
                            fitted_cpu(f)))}
                       for r, d in zip(algos["ring"], algos["doubling"])]
    model = {"fits": fits, "validation": validation, "doubling_measured": doubling,
             "model": "T = 2(N-1) [alpha + sigma N] + max(wire, cpu); see the module doc",
             "real_10gbe": {"alpha_s": alpha10, "rate_bytes_per_s": rate10,
                            "per_rank_ring_bytes_per_s": per_rank_cap, "stage": stage,
                            "failure": failure, "workloads": WORKLOADS},
             "predictions": preds}
    with open(os.path.join(RESULTS, "scaling_model.json"), "w") as f:
        json.dump(model, f, indent=1)
    plot(data, fits, preds, os.path.join(RESULTS, "scaling"))
    for name, res in preds["ring"].items():
        print(name, " ".join(f"{r['nodes']}:{r['scaling_efficiency']:.2f}"
                             f"/{r['samples_per_s']:.0f}/s" for r in res["rows"]))
    return 0


# ---------------------------------------------------------------------- random packet loss
# Linux TCP's timers (kernel 6.x, net/ipv4/tcp_output.c tcp_schedule_loss_probe, tcp.h): a
# tail loss probe fires 2 SRTT + 2 jiffies after the last send when more than one packet is in
# flight, but 2 SRTT + TCP_RTO_MIN when only one is (room for a delayed ACK); the probe is
# capped by the retransmission timeout, SRTT + max(4 RTTVAR, TCP_RTO_MIN).
RTO_MIN = 0.200
JIFFY = 1 / 250      # CONFIG_HZ=250 on this machine's kernel
MATHIS_C = math.sqrt(1.5)
HEADERS = 52         # IPv4 20 + TCP 20 + timestamps 12: MSS = MTU - 52


def timer_stall(srtt):
    """Seconds a connection waits when its lost packet has no later packet behind it: the
    tail loss probe with one packet in flight (2 SRTT + TCP_RTO_MIN), capped by the
    retransmission timeout (SRTT + TCP_RTO_MIN at a steady RTT), rounded up to a jiffy."""
    return srtt + RTO_MIN + JIFFY


def mathis_rate(mss, rtt, p):
    """The Mathis et al. (1997) bound on a long TCP flow's rate under random loss ``p``:
    ``MSS / RTT * sqrt(3/2) / sqrt(p)`` bytes per second (inf without loss)."""
    return math.inf if p <= 0 else mss / rtt * MATHIS_C / math.sqrt(p)


def stall_probability(n, p, exposed):
    """Chance that an iteration of ``n`` ranks waits for a timer: one of the ``n * exposed``
    packets sent just before a rank waits (nothing behind them on their connection to reveal
    the loss) is lost."""
    return 1 - (1 - p) ** (n * exposed)


def ring_loss_cost(n, m, p, mss, srtt, rate, exposed):
    """Expected seconds random loss ``p`` adds to an iteration of the ring (one all-reduce of
    ``m`` bytes over ``n`` ranks, 2(n-1) steps of n flows of b = m/n bytes = k packets):

    - **timer stalls**: most lost packets have later packets behind them on their connection
      (the ring's next step, the next collective), whose SACKs let RACK resend the loss after
      ~1.25 SRTT; a loss among the last packets a rank sends before it waits has none, and
      costs :func:`timer_stall` (~200 ms, TCP_RTO_MIN).  ``exposed`` such packets per rank per
      iteration (fitted, see :func:`loss_model`): :func:`stall_probability`;
    - **repairs**: a step with a loss on any of its n k packets takes ~1.25 SRTT longer;
    - **bandwidth**: the bytes go at ``min(rate, mathis_rate)`` instead of ``rate``."""
    steps = 2 * (n - 1)
    b = m / n
    k = max(1, math.ceil(b / mss))
    stall = stall_probability(n, p, exposed) * timer_stall(srtt)
    repair = steps * (1 - (1 - p) ** (n * k)) * 1.25 * srtt
    slower = steps * b * max(0.0, 1 / min(rate, mathis_rate(mss, srtt, p)) - 1 / rate)
    return stall + repair + slower


def _stalls(times, threshold=0.1):
    """Iterations that waited for a timer: longer than the point's median + ``threshold``
    (the load of this shared machine stretches iterations by tens of ms, a timer by 200)."""
    med = float(np.median(times))
    long = [t - med for t in times if t > med + threshold]
    return len(long), sum(long)


def fit_exposed(points):
    """``exposed`` such that the expected number of stalled iterations equals the number seen,
    summed over ``points`` = [(ranks, loss, iterations, stalls)] (bisection in log space)."""
    seen = sum(s for *_, s in points)
    lo, hi = 1e-3, 1e3
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        expect = sum(it * stall_probability(n, p, mid) for n, p, it, _ in points)
        lo, hi = (mid, hi) if expect < seen else (lo, mid)
    return math.sqrt(lo * hi)


def loss_model(path=None):
    """The loss term checked against bench_scaling.py ``--parts loss``: ``exposed`` fitted on
    the 2-rank points' timer stalls, checked on the 4-rank points (stall counts, time lost to
    stalls per iteration); the kernel's timers, the measured RTT and Mathis' constant are not
    fitted.  Projects the cost to 8 ... 256 nodes on 10 GbE.  Writes
    results/scaling_loss_model.json."""
    with open(path or os.path.join(RESULTS, "scaling_loss.json")) as f:
        data = json.load(f)["loss"]
    mss = data["mtu"] - HEADERS
    srtt = data["rtt_median_s"]
    bulk = [{"loss": r["loss"], "mtu": r.get("mtu", data["mtu"]),
             "drawn_loss": r["lost"] / max(r["packets"], 1),
             "measured_bytes_per_s": max(r["bytes_per_s"]),
             "mathis_bytes_per_s": mathis_rate(r.get("mtu", data["mtu"]) - HEADERS, srtt,
                                               r["loss"])}
            for r in data["bulk"] + data.get("bulk_mtu1500", [])]
    rows = []
    for n, runs in data["allreduce"].items():
        for run in runs:
            for pt in run["points"]:
                stalls, lost_s = _stalls(pt["times_s"])
                rows.append({"ranks": int(n), "bytes": pt["bytes"], "loss": run["loss"],
                             "drawn_loss": run["lost"] / max(run["packets"], 1),
                             "iters": pt["iters"], "median_s": float(np.median(pt["times_s"])),
                             "mean_s": pt["mean_s"], "stalls": stalls,
                             "stall_s_per_iter": lost_s / pt["iters"]})
    fit_on = [(r["ranks"], r["loss"], r["iters"], r["stalls"]) for r in rows
              if r["ranks"] == 2 and r["loss"] > 0]
    exposed = fit_exposed(fit_on)
    for r in rows:
        q = stall_probability(r["ranks"], r["loss"], exposed)
        r["model_stalls"] = q * r["iters"]
        r["model_stall_s_per_iter"] = q * timer_stall(srtt)
        r["model_added_s"] = ring_loss_cost(r["ranks"], r["bytes"], r["loss"], mss, srtt,
                                            data["rate_bytes_per_s"], exposed)
        r["held_out"] = r["ranks"] != 2
    held = [r for r in rows if r["held_out"] and r["loss"] > 0]
    seen4, model4 = sum(r["stalls"] for r in held), sum(r["model_stalls"] for r in held)

    # a real 10 GbE cluster (scaling_model.json's alpha and rate if there), MTU 1500 and 9000
    alpha, rate = 190e-6, 1.15e9
    model_path = os.path.join(RESULTS, "scaling_model.json")
    if os.path.exists(model_path):
        with open(model_path) as f:
            real = json.load(f).get("real_10gbe", {})
        alpha, rate = real.get("alpha_s", alpha), real.get("rate_bytes_per_s", rate)
    projections = []
    for name in ("LeNet-5", "ResNet-50"):
        m = 4 * WORKLOADS[name][0]
        for mtu in (1500, 9000):
            for n in (8, 32, 128, 256):
                projections.append({
                    "model": name, "mtu": mtu, "nodes": n,
                    "ring_s": float(ring_time(n, m, alpha, rate)),
                    "added_s": {str(p): ring_loss_cost(n, m, p, mtu - HEADERS, 2 * alpha, rate,
                                                       exposed) for p in (1e-5, 1e-4, 1e-3)},
                    "stall_probability": {str(p): stall_probability(n, p, exposed)
                                          for p in (1e-5, 1e-4, 1e-3)}})
    out = {"mss": mss, "srtt_s": srtt, "timer_stall_s": timer_stall(srtt), "exposed": exposed,
           "fitted_on": "2-rank lossy points (stall counts)", "bulk": bulk, "allreduce": rows,
           "held_out_stalls": {"measured": seen4, "model": model4},
           "real_10gbe": {"alpha_s": alpha, "rate": rate}, "projections": projections}
    with open(os.path.join(RESULTS, "scaling_loss_model.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"exposed packets per rank per iteration: {exposed:.2f} (fitted on 2 ranks); timer "
          f"stall {timer_stall(srtt) * 1e3:.0f} ms")
    for r in bulk:
        print(f"bulk MTU {r['mtu']} loss {r['loss']:.1%} (drawn {r['drawn_loss']:.2%}): measured "
              f"{r['measured_bytes_per_s'] / 1e6:.0f} MB/s, Mathis bound "
              f"{r['mathis_bytes_per_s'] / 1e6:.0f} MB/s")
    for r in rows:
        print(f"N={r['ranks']} {r['bytes'] >> 10:>5} KB loss {r['loss']:.1%}: median "
              f"{r['median_s'] * 1e3:7.2f} mean {r['mean_s'] * 1e3:7.2f} ms; stalls "
              f"{r['stalls']:3d}/{r['iters']:3d} (model {r['model_stalls']:5.1f}); stall time "
              f"{r['stall_s_per_iter'] * 1e3:5.2f} ms/iter (model "
              f"{r['model_stall_s_per_iter'] * 1e3:5.2f}); model added "
              f"{r['model_added_s'] * 1e3:.2f} ms")
    print(f"held out (4 ranks): {seen4} stalls measured, {model4:.1f} predicted")
    for r in projections:
        print(r["model"], "MTU", r["mtu"], "N", r["nodes"], f"ring {r['ring_s'] * 1e3:.1f} ms",
              " ".join(f"p={p}: +{s * 1e3:.1f} ms ({r['stall_probability'][p]:.1%} stalled)"
                       for p, s in r["added_s"].items()))
    return out


if __name__ == "__main__":
    sys.exit(main())
