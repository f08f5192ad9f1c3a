"""The native (oneDNN) layer core vs PyTorch 2.13 CPU, side by side in one run.

Training throughput (SGD with momentum) of LeNet-5 (b128, 28x28x1), ResNet-20 for CIFAR (b128,
32x32x3), a 2-layer LSTM language model (vocab 4000, embedding 128, hidden 256, seq 35, b32) and
an MLP 784-512-512-10 (b256); inference (b256) of LeNet-5 and ResNet-20; the forward GFLOP/s of
every distinct ResNet-20 convolution against the FMA peak measured here (``_native.fma_flops``,
one core; best of several probes, since other load only lowers it); the peak RSS of every
training process.  Workbench runs with the native backend (``workbench.nn.backend``) and, for
reference, with the numpy kernels; PyTorch in its default NCHW layout and channels_last.

Every measurement is its own subprocess (threads fixed before numpy / torch load); within each
repeat the frameworks alternate, so background load on the shared machine hits them alike.  The
report is the median of the repeats and the ratio workbench / PyTorch.  Writes
benchmarks/results/native.json and benchmarks/results/native.png.

    python benchmarks/bench_native.py [--repeats 3] [--threads 1 2] [--isa native|avx2]
                                      [--parts throughput layers convs]

``layers``: per layer of LeNet-5 (training b128, inference b256) and the MLP, ours and PyTorch's
forward and backward milliseconds, wall and CPU time (the CPU time is the steadier on a shared
machine), and the whole step without the timing wrappers (``profile_workbench``).

``--isa avx2`` caps every library at AVX2 in the child processes (benchmarks/machine.py), so an
AVX-512 machine measures what an AVX2 one runs; the JSON records the CPU model and the ISA each
library dispatched to (``machine``).  ``--out`` defaults to results/native.json for the native
ISA and results/native_avx2.json when capped on a CPU that has more than AVX2.
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
RESULTS = os.path.join(HERE, "results")

# model -> batch, input shape, iterations (timed), warm-up iterations
TRAIN = {"lenet5": (128, (1, 28, 28), 30, 5), "resnet20": (128, (3, 32, 32), 4, 2),
         "lstm_lm": (32, (35,), 6, 2), "mlp": (256, (784,), 30, 5)}
INFER = {"lenet5": (256, (1, 28, 28), 20, 3), "resnet20": (256, (3, 32, 32), 3, 1)}
# (name, c_in, c_out, stride, size) of the distinct 3x3 convolutions of ResNet-20 (batch 128)
RESNET_CONVS = [("conv16_32x32", 16, 16, 1, 32), ("conv16to32_s2", 16, 32, 2, 32),
                ("conv32_16x16", 32, 32, 1, 16), ("conv32to64_s2", 32, 64, 2, 16),
                ("conv64_8x8", 64, 64, 1, 8), ("conv3to16_32x32", 3, 16, 1, 32)]
VOCAB, EMBED, HIDDEN, SEQ = 4000, 128, 256, 35


# ---------------------------------------------------------------------- workbench models
def wb_model(name):
    from workbench import models
    from workbench.nn import Linear, LogSoftMax, ReLU, Sequential
    if name == "lenet5":
        return models.LeNet5(10)
    if name == "resnet20":  # option B shortcuts, convolutions without bias (the zoo's)
        return models.ResNet20(10)
    if name == "mlp":
        return (Sequential().add(Linear(784, 512)).add(ReLU()).add(Linear(512, 512)).add(ReLU())
                .add(Linear(512, 10)).add(LogSoftMax()))
    if name == "lstm_lm":
        return models.rnn.CharLSTM(VOCAB, HIDDEN, EMBED, num_layers=2)
    raise ValueError(name)


def run_workbench(name, mode, train, threads):
    import numpy as np
    from workbench.nn import ClassNLLCriterion, backend, random
    from workbench.nn.module import input_grad_unused
    from workbench.optim import SGD

    backend.set_backend(mode)
    backend.set_num_threads(threads)
    random.set_seed(0)
    batch, shape, iterations, warmup = (TRAIN if train else INFER)[name]
    model = wb_model(name)
    rng = np.random.default_rng(0)
    if name == "lstm_lm":
        from workbench.models.rnn import char_lm_criterion
        x = rng.integers(0, VOCAB, (batch, SEQ))
        y = rng.integers(0, VOCAB, (batch, SEQ))
        crit = char_lm_criterion()
    else:
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        y = rng.integers(0, 10, batch)
        crit = ClassNLLCriterion()
    method = SGD(learningrate=0.01, momentum=0.9, dampening=0.0)
    w, g = model.get_parameters()
    if train:
        model.training()
    else:
        model.evaluate()

    def step():
        out = model.forward(x)
        if train:
            crit.forward(out, y)
            g.fill(0)
            # as the Optimizer's training loop: no gradient w.r.t. the data (PyTorch's input
            # does not require one either)
            with input_grad_unused():
                model.backward(x, crit.backward(out, y))
            method.update(w, g)

    return _time(step, batch, iterations, warmup)


# ---------------------------------------------------------------------- PyTorch models
def torch_model(name):
    import torch
    nn = torch.nn
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.MaxPool2d(2, 2), nn.Tanh(),
                             nn.Conv2d(6, 12, 5), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(192, 100), nn.Tanh(), nn.Linear(100, 10),
                             nn.LogSoftmax(dim=1))
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10), nn.LogSoftmax(dim=1))
    if name == "resnet20":
        class Block(nn.Module):
            def __init__(self, c_in, c_out, stride):
                super().__init__()
                self.body = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(c_out))
                self.short = (nn.Identity() if stride == 1 and c_in == c_out else
                              nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out)))

            def forward(self, x):
                return torch.relu(self.body(x) + self.short(x))

        layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        c = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(Block(c, c_out, stride if i == 0 else 1))
                c = c_out
        layers += [nn.AvgPool2d(8), nn.Flatten(), nn.Linear(64, 10), nn.LogSoftmax(dim=1)]
        return nn.Sequential(*layers)
    if name == "lstm_lm":
        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(VOCAB, EMBED)
                self.lstm = nn.LSTM(EMBED, HIDDEN, num_layers=2, batch_first=True)
                self.out = nn.Linear(HIDDEN, VOCAB)

            def forward(self, x):
                return self.out(self.lstm(self.emb(x))[0])
        return LM()
    raise ValueError(name)


def run_torch(name, mode, train, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batch, shape, iterations, warmup = (TRAIN if train else INFER)[name]
    model = torch_model(name)
    if name == "lstm_lm":
        x = torch.randint(0, VOCAB, (batch, SEQ))
        y = torch.randint(0, VOCAB, (batch * SEQ,))
        crit = torch.nn.CrossEntropyLoss()
    else:
        x = torch.randn((batch,) + shape)
        y = torch.randint(0, 10, (batch,))
        crit = torch.nn.NLLLoss()
    if mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train(train)

    def step():
        if train:
            opt.zero_grad()
            out = model(x)
            crit(out.reshape(-1, out.shape[-1]) if name == "lstm_lm" else out, y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)

    return _time(step, batch, iterations, warmup)


def _time(step, batch, iterations, warmup):
    import resource
    for _ in range(warmup):
        step()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        step()
    rate = batch * iterations / (time.perf_counter() - start)
    # records per CPU-second of the process (all its threads): on a machine shared with other
    # load the steadier figure (time given to other processes is not counted; with 2 threads a
    # thread waiting at a barrier counts while it spins)
    cpu_rate = batch * iterations / max(time.process_time() - cpu, 1e-9)
    return {"rate": rate, "cpu_rate": cpu_rate,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---------------------------------------------------------------------- per-layer profile
# The layers of the profiled models, in order, as the two frameworks build them: workbench's
# LeNet-5 starts with a Reshape the PyTorch model has no counterpart of (None).
PROFILE = {"lenet5": (["reshape_in", "conv1", "tanh1", "pool1", "tanh2", "conv2", "pool2",
                       "flatten", "fc1", "tanh3", "fc2", "logsoftmax"],
                      [None, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
           "mlp": (["fc1", "relu1", "fc2", "relu2", "fc3", "logsoftmax"], [0, 1, 2, 3, 4, 5])}


def _now():
    """Wall and CPU (all threads of the process) seconds.  On this shared machine the CPU time
    is the steadier figure: time the scheduler gives other processes is not counted."""
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _now()
    return wall - start[0], cpu - start[1]


def _clock(times, key, fn):
    def timed(*args, **kwargs):
        start = _now()
        try:
            return fn(*args, **kwargs)
        finally:
            times.setdefault(key, []).append(_since(start))
    return timed


def profile_workbench(name, train, threads, steps=30, warmup=5):
    """Milliseconds (median over ``steps``) of each top-level layer's forward and backward in
    the benchmark's training step or inference forward, timed by wrapping the layer's own
    methods (so a layer's Python overhead counts as its time), and of the whole step without
    the wrappers.  A layer fused into the one before it (a ReLU after a convolution) shows 0."""
    import numpy as np
    from workbench.nn import ClassNLLCriterion, backend, random
    from workbench.nn.module import input_grad_unused
    from workbench.optim import SGD
    backend.set_backend("native")
    backend.set_num_threads(threads)
    random.set_seed(0)
    batch, shape, _, _ = (TRAIN if train else INFER)[name]
    model = wb_model(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    crit, method = ClassNLLCriterion(), SGD(learningrate=0.01, momentum=0.9, dampening=0.0)
    w, g = model.get_parameters()
    model.training() if train else model.evaluate()
    times = {}

    def step():
        out = model.forward(x)
        if train:
            crit.forward(out, y)
            g.fill(0)
            with input_grad_unused():
                model.backward(x, crit.backward(out, y))
            method.update(w, g)

    whole = _median_ms(step, steps, warmup)
    labels, _ = PROFILE[name]
    for label, child in zip(labels, model._children):
        for verb, kind in (("forward", "forward"), ("fused_forward", "forward"),
                           ("backward", "backward"), ("backward_params", "backward")):
            fn = getattr(child, verb, None)
            if fn is not None:
                setattr(child, verb, _clock(times, (label, kind), fn))
    crit.forward = _clock(times, ("criterion", "forward"), crit.forward)
    crit.backward = _clock(times, ("criterion", "backward"), crit.backward)
    method.update = _clock(times, ("sgd_update", "backward"), method.update)
    for _ in range(warmup):
        step()
    times.clear()
    for _ in range(steps):
        step()
    return {"step_ms": whole, "layers": _per_layer(times, steps)}


def profile_torch(name, train, threads, steps=30, warmup=5):
    """The same for PyTorch: a layer's forward between its forward pre-hook and hook, its
    backward between the pre-hook and hook of the autograd node that made its output (the
    nodes of parameters, e.g. a Linear's weight transpose, are left out)."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batch, shape, _, _ = (TRAIN if train else INFER)[name]
    model = torch_model(name)
    x = torch.randn((batch,) + shape)
    y = torch.randint(0, 10, (batch,))
    crit = torch.nn.NLLLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train(train)

    def step():
        if train:
            opt.zero_grad()
            crit(model(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)

    whole = _median_ms(step, steps, warmup)
    labels, index = PROFILE[name]
    times, started = {}, {}
    for label, i in zip(labels, index):
        if i is None:
            continue
        layer = model[i]

        def pre(module, args, label=label):
            started[label] = _now()

        def post(module, args, output, label=label):
            times.setdefault((label, "forward"), []).append(_since(started[label]))
            node = output.grad_fn
            if node is not None:
                def node_pre(grad_outputs, label=label):
                    started[label, "b"] = _now()

                def node_post(grad_inputs, grad_outputs, label=label):
                    times.setdefault((label, "backward"), []).append(
                        _since(started[label, "b"]))
                node.register_prehook(node_pre)
                node.register_hook(node_post)
        layer.register_forward_pre_hook(pre)
        layer.register_forward_hook(post)
    crit.forward = _clock(times, ("criterion", "forward"), crit.forward)
    opt.step = _clock(times, ("sgd_update", "backward"), opt.step)
    for _ in range(warmup):
        step()
    times.clear()
    for _ in range(steps):
        step()
    return {"step_ms": whole, "layers": _per_layer(times, steps)}


def _median_ms(step, steps, warmup):
    """{"wall": ms, "cpu": ms}: medians of ``steps`` calls of ``step``."""
    for _ in range(warmup):
        step()
    ts = []
    for _ in range(steps):
        start = _now()
        step()
        ts.append(_since(start))
    return {kind: 1e3 * statistics.median(t[i] for t in ts)
            for i, kind in enumerate(("wall", "cpu"))}


def _per_layer(times, steps):
    """{label: {"forward": {"wall": ms, "cpu": ms}, "backward": ...}}: medians per step (a
    layer called twice in a step sums its calls)."""
    out = {}
    for (label, kind), ts in times.items():
        calls = max(1, len(ts) // steps)
        per_step = [tuple(map(sum, zip(*ts[i:i + calls])))
                    for i in range(0, calls * steps, calls)]
        out.setdefault(label, {})[kind] = {
            clock: 1e3 * statistics.median(t[i] for t in per_step)
            for i, clock in enumerate(("wall", "cpu"))}
    return out


def layer_table(name, train, threads, repeats):
    """Rows of the ``layers`` table: per layer, ours and PyTorch's forward / backward ms
    (median over the repeats, each its own pair of processes, interleaved)."""
    runs = {"workbench": [], "torch": []}
    for _ in range(repeats):
        for fw in runs:
            runs[fw].append(child(f"b.profile_{fw}({name!r}, {train}, {threads})", threads))
    rows = []
    labels = PROFILE[name][0] + ["criterion", "sgd_update"]

    def med(values):
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 4) if values else None

    for label in labels:
        row = dict(model=name, task="train" if train else "inference", threads=threads,
                   layer=label)
        for fw in runs:
            for kind in ("forward", "backward") if train else ("forward",):
                for clock in ("wall", "cpu"):
                    row[f"{fw}_{kind}_{clock}_ms"] = med(
                        r["layers"].get(label, {}).get(kind, {}).get(clock)
                        for r in runs[fw] if "layers" in r)
        if any(v is not None for k, v in row.items() if k.endswith("_ms")):
            rows.append(row)
    step = dict(model=name, task="train" if train else "inference", threads=threads,
                layer="whole step (no wrappers)")
    for fw in runs:
        for clock in ("wall", "cpu"):
            step[f"{fw}_step_{clock}_ms"] = med(r["step_ms"][clock] for r in runs[fw]
                                                if "step_ms" in r)
    rows.append(step)
    return rows


# ---------------------------------------------------------------------- per-layer GFLOP/s
def conv_layers(framework, threads, repeats=5):
    """Forward GFLOP/s (median of ``repeats``) of each distinct ResNet-20 3x3 convolution, its
    input in the memory layout the layer gets inside ResNet-20: for workbench channels-last
    after the first layer (the output of the native layers before it, see nn/layout.py), the
    image NCHW; PyTorch NCHW, its default.  ``<name>_nchw_input``: workbench given an NCHW
    input instead (the reorder to its layout included)."""
    import numpy as np
    out = {}
    for name, c_in, c_out, stride, size in RESNET_CONVS:
        o = (size + 2 - 3) // stride + 1
        flops = 2 * 128 * c_out * o * o * c_in * 9
        x = np.random.default_rng(0).standard_normal((128, c_in, size, size)).astype(np.float32)
        runs = {}
        if framework == "torch":
            import torch
            torch.set_num_threads(threads)
            conv = torch.nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            tx = torch.from_numpy(x)

            def run(conv=conv, tx=tx):  # bound now, as the lambdas below
                with torch.no_grad():
                    conv(tx)
            runs[name] = run
        else:
            from workbench.nn import SpatialConvolution, backend, layout
            backend.set_backend(framework)
            backend.set_num_threads(threads)
            conv = SpatialConvolution(c_in, c_out, 3, 3, stride, stride, 1, 1, with_bias=False)
            in_network = layout.like(x, framework == "native" and c_in % 16 == 0)
            runs[name] = lambda conv=conv, x=in_network: conv.forward(x)
            runs[name + "_nchw_input"] = lambda conv=conv, x=x: conv.forward(x)
        for key, run in runs.items():
            run()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            out[key] = flops / statistics.median(times) / 1e9
            out[key + "_best"] = flops / min(times) / 1e9
    return out


def fma_peak(probes=25, iterations=20_000_000):
    """GFLOP/s of one core running independent FMAs (AVX2, and AVX-512 where present): the best
    of many short probes, since load from other processes only ever lowers it."""
    from workbench.nn import backend
    native = backend.native()
    kinds = [("avx2", native.fma_flops, 192)]
    if native.has_avx512():
        kinds.append(("avx512", native.fma512_flops, 384))
    out = {}
    for kind, fn, flops in kinds:
        rates = []
        for _ in range(probes):
            start = time.perf_counter()
            fn(iterations)
            rates.append(flops * iterations / (time.perf_counter() - start) / 1e9)
        out[kind] = {"best": max(rates), "median": statistics.median(rates)}
    out["best"] = max(v["best"] for v in out.values())
    return out


# ---------------------------------------------------------------------- driver
ISA = {"isa": "native"}  # the --isa of this run; its environment goes into every child


def child(call, threads):
    """Run ``call`` (python source returning a JSON-able value) in a fresh subprocess."""
    from machine import isa_env
    env = dict(os.environ, **isa_env(ISA["isa"]))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "WORKBENCH_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    code = (f"import json, sys; sys.path.insert(0, {HERE!r}); import bench_native as b; "
            f"print(json.dumps({call}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(TRAIN))
    parser.add_argument("--no-numpy", action="store_true", help="skip the numpy-kernel runs")
    parser.add_argument("--isa", default="native", choices=("native", "avx2"),
                        help="cap every library's ISA in the child processes (machine.py)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--parts", nargs="+", default=["throughput", "layers", "convs"],
                        choices=("throughput", "layers", "convs"))
    parser.add_argument("--layer-repeats", type=int, default=None,
                        help="process pairs per profile (default --repeats); each already "
                             "takes the median over 30 steps")
    parser.add_argument("--profile-models", nargs="+", default=["lenet5", "mlp"],
                        choices=sorted(PROFILE))
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from --out")
    args = parser.parse_args()
    ISA["isa"] = args.isa
    sys.path.insert(0, HERE)
    from machine import cpu_model
    if args.out is None:
        capped = args.isa == "avx2" and cpu_model()["cpu_has_avx512f"]
        args.out = os.path.join(RESULTS, "native_avx2.json" if capped else "native.json")
    if args.plot_only:
        with open(args.out) as f:
            return plot(json.load(f), os.path.splitext(args.out)[0] + ".png")
    import torch

    load_start = os.getloadavg()
    machine = child("__import__('machine').describe()", 1)
    machine["isa_option"] = args.isa
    print(f"machine: {json.dumps(machine)}", flush=True)
    peak = child("b.fma_peak()", 1)
    peak_best = peak["best"]
    print(f"FMA peak, one core: {json.dumps(peak)}", flush=True)
    rows = []
    for train, table in ((True, TRAIN), (False, INFER)):
        if "throughput" not in args.parts:
            break
        for name in [m for m in args.models if m in table]:
            for threads in args.threads:
                modes = [("workbench", "native"), ("torch", "nchw")]
                if not args.no_numpy:
                    modes.append(("workbench", "numpy"))
                if name == "resnet20":
                    modes.append(("torch", "channels_last"))
                runs = {m: [] for m in modes}
                for _ in range(args.repeats):
                    for fw, mode in modes:
                        runs[(fw, mode)].append(child(
                            f"b.run_{fw}({name!r}, {mode!r}, {train}, {threads})", threads))
                row = dict(task="train" if train else "inference", model=name,
                           batch=table[name][0], threads=threads)
                for (fw, mode), rs in runs.items():
                    key = f"{fw}_{mode}"
                    row[key + "_per_s"] = median_of(rs, "rate")
                    row[key + "_per_cpu_s"] = median_of(rs, "cpu_rate")
                    row[key + "_rss_mb"] = median_of(rs, "rss_mb")
                    errors = [r["error"] for r in rs if "error" in r]
                    if errors:
                        row[key + "_error"] = errors[0]
                ours, peer = row["workbench_native_per_s"], row["torch_nchw_per_s"]
                row["ratio_vs_torch"] = round(ours / peer, 3) if ours and peer else None
                ours_cpu, peer_cpu = row["workbench_native_per_cpu_s"], row["torch_nchw_per_cpu_s"]
                row["ratio_vs_torch_per_cpu_s"] = (round(ours_cpu / peer_cpu, 3)
                                                   if ours_cpu and peer_cpu else None)
                if row.get("torch_channels_last_per_s") and ours:
                    row["ratio_vs_torch_channels_last"] = round(
                        ours / row["torch_channels_last_per_s"], 3)
                rows.append(row)
                print(json.dumps(row), flush=True)

    profile = []
    for name in args.profile_models if "layers" in args.parts else ():
        for train in (True, False):
            if not train and name not in INFER:
                continue
            for threads in args.threads:
                profile += layer_table(name, train, threads,
                                       args.layer_repeats or args.repeats)
                print(json.dumps(profile[-1]), flush=True)

    layers = []
    for threads in args.threads if "convs" in args.parts else ():
        per = {fw: [] for fw in ("native", "torch")}
        for _ in range(args.repeats):
            for fw in per:
                per[fw].append(child(f"b.conv_layers({fw!r}, {threads})", threads))
        for name, *_ in RESNET_CONVS:
            ours = median_of(per["native"], name)
            peer = median_of(per["torch"], name)
            ours_best = max(r.get(name + "_best", 0) for r in per["native"])
            peer_best = max(r.get(name + "_best", 0) for r in per["torch"])
            cores_peak = peak_best * threads
            nchw_input = median_of(per["native"], name + "_nchw_input")
            layers.append(dict(layer=name, threads=threads, native_gflops=ours,
                               native_nchw_input_gflops=nchw_input,
                               torch_gflops=peer, ratio=ours / peer if ours and peer else None,
                               native_best_gflops=ours_best, torch_best_gflops=peer_best,
                               native_pct_of_peak=100 * ours / cores_peak if ours else None,
                               torch_pct_of_peak=100 * peer / cores_peak if peer else None,
                               native_best_pct_of_peak=100 * ours_best / cores_peak,
                               torch_best_pct_of_peak=100 * peer_best / cores_peak))
            print(json.dumps(layers[-1]), flush=True)

    os.makedirs(RESULTS, exist_ok=True)
    from workbench.nn import backend
    result = dict(benchmark="native layer core vs PyTorch CPU: records/s, median of repeats",
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                  load_average_at_start=load_start, load_average_at_end=os.getloadavg(),
                  torch=torch.__version__, onednn=backend.native().onednn_version(),
                  machine_and_isa=machine, repeats=args.repeats,
                  fma_peak_gflops_one_core=peak,
                  training_and_inference=rows, layers=profile,
                  resnet20_conv_forward=layers)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")
    if rows and layers:  # the picture needs both halves
        plot(result, os.path.splitext(args.out)[0] + ".png")


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 5.5))
    rows = result["training_and_inference"]
    labels = [f"{r['task'][:5]} {r['model']} {r['threads']}t" for r in rows]
    series = [("workbench_numpy_per_s", "workbench numpy"), ("torch_channels_last_per_s",
                                                             "torch channels_last"),
              ("workbench_native_per_s", "workbench native")]
    series = [s for s in series if any(r.get(s[0]) for r in rows)]  # runs that were made
    width = 0.27
    for i, (key, label) in enumerate(series):
        vals = [(r.get(key) or 0) / r["torch_nchw_per_s"] if r.get("torch_nchw_per_s") else 0
                for r in rows]
        a.bar([j + (i - 1) * width for j in range(len(rows))], vals, width, label=label)
    a.axhline(1.0, color="k", lw=0.8, ls="--")
    a.set_xticks(range(len(rows)), labels, fontsize=7, rotation=40, ha="right")
    a.set_ylabel("throughput / PyTorch 2.13 (NCHW)")
    a.set_title("records/s relative to PyTorch (median)")
    a.legend(fontsize=8)
    layers = [r for r in result["resnet20_conv_forward"] if r["threads"] == 1]
    xs = range(len(layers))
    b.bar([x - 0.2 for x in xs], [r["native_pct_of_peak"] or 0 for r in layers], 0.4,
          label="workbench native (oneDNN)")
    b.bar([x + 0.2 for x in xs], [r["torch_pct_of_peak"] or 0 for r in layers], 0.4,
          label="PyTorch 2.13")
    b.axhline(70, color="k", lw=0.8, ls="--")
    b.set_xticks(list(xs), [r["layer"] for r in layers], fontsize=7, rotation=20)
    b.set_ylabel(f"% of FMA peak ({result['fma_peak_gflops_one_core']['best']:.0f} GFLOP/s)")
    b.set_title("ResNet-20 conv forward, 1 thread, b128, input in its in-network layout")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
