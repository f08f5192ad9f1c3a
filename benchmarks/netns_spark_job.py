"""The driver of ``bench_scaling.py --parts spark``: runs inside node 0's network namespace of an
emulated cluster whose standalone master is in the switch's namespace and whose workers are one
per node namespace.  Trains a small MLP on the digits with the ring all-reduce on every worker,
once undisturbed and once while one worker's JVM is killed, and prints one JSON document:

- ``session_s``: SparkSession start; ``executors_s``: until every worker's executor registered;
- per run: ``first_iteration_s`` (``optimize()`` to the first iteration: the barrier stage's
  launch, the tasks' start and the ring's rendezvous), the median iteration, the stretch
  restarts (the gap at a stretch boundary minus a median iteration: a new barrier stage +
  rendezvous), and for the killed run the longest pause between iterations after the kill
  (``stall_s``) and the time from the kill to the iteration that ended it
  (``kill_to_resume_s``).

    python benchmarks/netns_spark_job.py MASTER_URL DRIVER_IP WORKERS [--kill-pid PID --at N]
"""
import argparse
import json
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import workbench.spark as wspark  # noqa: E402
from workbench.data import load_digits  # noqa: E402
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential, Tanh, random  # noqa: E402
from workbench.optim import SGD, Listener, MaxEpoch, Optimizer  # noqa: E402

STRETCH = 10  # iterations per barrier stage: several stage starts per run


class Clock(Listener):
    """Wall-clock time of every iteration event; kills ``pid`` at iteration ``at``."""

    def __init__(self, pid=None, at=None):
        self.t0, self.stamps, self.pid, self.at, self.killed_at = None, [], pid, at, None

    def on_start(self, opt):
        self.t0 = time.perf_counter()

    def on_iteration(self, e):
        self.stamps.append((e.iteration, time.perf_counter()))
        if self.pid and e.iteration == self.at and self.killed_at is None:
            os.kill(self.pid, signal.SIGKILL)  # the worker JVM only: its executor notices
            self.killed_at = time.perf_counter()


def train(df, workers, pid=None, at=None):
    random.set_seed(7)
    model = (Sequential().add(Linear(64, 64)).add(Tanh()).add(Linear(64, 10))
             .add(LogSoftMax()))
    opt = Optimizer(model, df, ClassNLLCriterion(), MaxEpoch(4), 32 * workers,
                    SGD(0.1, momentum=0.9, dampening=0.0), seed=3, progress=False,
                    max_stretch_iterations=STRETCH, allreduce="ring")
    clock = Clock(pid, at)
    opt.add_listener(clock)
    opt.optimize()
    its = clock.stamps
    gaps = [(b[0], b[1] - a[1]) for a, b in zip(its, its[1:])]
    median = statistics.median(g for _, g in gaps)
    # the first iteration of stretch k is iteration k * STRETCH + 1 (the iteration counter
    # starts at 1); its gap includes ending one barrier stage and starting the next
    restarts = [g - median for i, g in gaps if (i - 1) % STRETCH == 0]
    out = {"tasks": workers, "iterations": its[-1][0], "events": len(its),
           "first_iteration_s": its[0][1] - clock.t0, "median_iteration_s": median,
           "stretch_restart_s": restarts,
           "tasks_per_stretch": [len(s) for s in opt._runner.stats],
           "retries": opt._runner.retries, "last_error": opt._runner.last_error}
    if clock.killed_at is not None:
        # the executor outlives its worker a little (it may finish the stretch it is in):
        # the cost shows as the longest pause between iterations after the kill
        after = [(i, t) for i, t in its if t > clock.killed_at]
        pauses = [(b[1] - a[1], b) for a, b in zip(after, after[1:])]
        stall, (resumed_at, resumed) = max(pauses) if pauses else (None, (None, None))
        out.update(killed_at_iteration=at, stall_s=stall, resumed_at_iteration=resumed_at,
                   kill_to_resume_s=resumed - clock.killed_at if resumed else None)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("master")
    ap.add_argument("driver_ip")
    ap.add_argument("workers", type=int)
    ap.add_argument("--kill-pid", type=int)
    ap.add_argument("--at", type=int, default=15)
    args = ap.parse_args()
    t = time.perf_counter()
    spark = wspark.get_spark(args.master, app_name="netns-scaling", conf={
        "spark.driver.host": args.driver_ip, "spark.driver.bindAddress": args.driver_ip,
        "spark.executor.cores": "1", "spark.executor.memory": "512m",
        "spark.driver.memory": "512m", "spark.ui.enabled": "false"})
    result = {"session_s": time.perf_counter() - t}
    deadline = time.monotonic() + 300
    while wspark.task_slots(spark.sparkContext) < args.workers:
        if time.monotonic() > deadline:
            sys.exit(f"only {wspark.task_slots(spark.sparkContext)} of {args.workers} "
                     "executors registered")
        time.sleep(0.25)
    result["executors_s"] = time.perf_counter() - t
    (X, y), _ = load_digits(size=8)
    # records in a fixed order: a partition recomputed after a lost executor is the same
    df = spark.createDataFrame(spark.sparkContext.parallelize(
        [(x.ravel().tolist(), int(c)) for x, c in zip(X, y)], args.workers),
        "features array<float>, label long")
    result["clean"] = train(df, args.workers)
    if args.kill_pid:
        result["killed"] = train(df, args.workers, args.kill_pid, args.at)
    print(json.dumps(result), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
