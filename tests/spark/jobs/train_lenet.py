"""A spark-submit job for the cluster tests: LeNet-5 on the digits as a DataFrame, validation
every epoch, distributed evaluate; then (with --kill-worker) the same training again while a
worker is killed mid-way.  Writes one JSON document of results.

    spark-submit --master spark://... train_lenet.py OUT.json [--kill-worker PID --at ITER]
"""
import argparse
import json
import os
import signal
import subprocess
import time

import workbench.spark as wspark
from workbench import models
from workbench.data import load_digits
from workbench.nn import ClassNLLCriterion, random
from workbench.optim import SGD, EveryEpoch, Listener, MaxEpoch, Optimizer, Top1Accuracy

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--kill-worker", type=int, default=None)
parser.add_argument("--at", type=int, default=15)
args = parser.parse_args()

t_start = time.time()
spark = wspark.get_spark()  # the session spark-submit configured
t_session = time.time() - t_start
# both workers' executors registered (the test asserts 2 slots); a loaded machine may take a
# while to start two executor JVMs, so the deadline only bounds a hang
deadline = time.time() + 300
while wspark.task_slots(spark.sparkContext) < 2 and time.time() < deadline:
    time.sleep(0.5)
(X, y), (Xt, yt) = load_digits(size=28)
# Records in a fixed order (no shuffle), so a partition recomputed after a lost executor holds
# the same records in the same order and the restarted stretch repeats exactly.
schema = "features array<float>, label long"
train = spark.createDataFrame(spark.sparkContext.parallelize(
    [(x.ravel().tolist(), int(t)) for x, t in zip(X, y)], 2), schema)
test = spark.createDataFrame(spark.sparkContext.parallelize(
    [(x.ravel().tolist(), int(t)) for x, t in zip(Xt, yt)], 2), schema)


class Watch(Listener):
    def __init__(self, kill=None):
        self.iterations, self.first, self.kill, self.killed = [], None, kill, None
        self.stamps, self.killed_time = [], None

    def on_start(self, opt):
        self.t0 = time.time()

    def on_iteration(self, e):
        if self.first is None:
            self.first = time.time() - self.t0
        self.iterations.append(e.iteration)
        self.stamps.append(time.monotonic())
        if self.kill and e.iteration == args.at and self.killed is None:
            children = subprocess.run(["pgrep", "-P", str(self.kill)],
                                      capture_output=True, text=True).stdout.split()
            for pid in [self.kill] + [int(c) for c in children]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.killed, self.killed_time = e.iteration, time.monotonic()

    def stall(self):
        """``(kill to resume, longest pause)`` in seconds: the executor may finish a few
        iterations after its worker died, so the cost is the longest pause between iteration
        events after the kill, and the time from the kill to the event that ended it."""
        if self.killed_time is None:
            return None, None
        after = [t for t in self.stamps if t >= self.killed_time]
        pauses = [(b - a, b) for a, b in zip(after, after[1:])]
        if not pauses:
            return None, None
        pause, resumed = max(pauses)
        return resumed - self.killed_time, pause


def run(kill=None):
    random.set_seed(7)
    model = models.LeNet5(10)
    opt = Optimizer(model, train, ClassNLLCriterion(), MaxEpoch(args.epochs), 64,
                    SGD(0.05, momentum=0.9, dampening=0.0), seed=3, progress=False,
                    max_stretch_iterations=10)
    opt.set_validation(256, test, EveryEpoch(), [Top1Accuracy()])
    watch = Watch(kill)
    opt.add_listener(watch)
    start = time.time()
    opt.optimize()
    took = time.time() - start
    accuracy = model.evaluate(test, 256, [Top1Accuracy()])[0].value
    stall, pause = watch.stall()
    return dict(accuracy=accuracy, seconds=took, first_iteration=watch.first,
                stall_seconds=stall, longest_pause_seconds=pause,
                iterations=opt.state.iteration, events=len(watch.iterations),
                distinct=len(set(watch.iterations)), retries=opt._runner.retries,
                killed_at=watch.killed, score=opt.state.score,
                last_error=opt._runner.last_error,
                tasks_per_stretch=[len(s) for s in opt._runner.stats])


result = dict(master=spark.sparkContext.master, session_seconds=t_session,
              slots=wspark.task_slots(spark.sparkContext), clean=run())
if args.kill_worker:
    result["killed"] = run(args.kill_worker)
result["total_seconds"] = time.time() - t_start
with open(args.out, "w") as f:
    json.dump(result, f)
print(json.dumps(result))
spark.stop()
