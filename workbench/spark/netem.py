"""An emulated cluster network on one Linux machine: network namespaces, veth links, a switch.

    with NetCluster(4, rate="1gbit", delay=200e-6) as net:
        proc = net.popen(0, [sys.executable, "worker.py"])  # runs in node 0's namespace
        host, port = net.forward(net.ip(1), 5000)  # node 1's port 5000, through the delay line

Topology: a *hub* namespace holds a Linux bridge (the switch) and one end of a veth pair per node;
the other end is ``eth0`` of the node's own namespace (address ``10.<a>.<b>.<i + 2>/24``, the
hub is ``.1``).  Nothing is created in the caller's namespace, so no traffic of the emulation can
leave it and nothing outside can reach in.

What is emulated, and how (this kernel has no ``netem`` qdisc, no tc actions and no iptables;
``tc qdisc add ... netem`` answers "Specified qdisc kind is unknown"):

- **Bandwidth**: a ``tbf`` qdisc on both ends of every veth, i.e. on the node's egress (its
  uplink) and on the hub's egress towards the node (its downlink): a full-duplex NIC of ``rate``.
- **Latency**: a user-space *delay line* in the hub (:class:`Relay`, one process).  A connection
  made to ``forward(ip, port)`` is accepted by the relay, which opens its own connection to
  ``ip:port`` and copies the bytes of each direction, holding every chunk until ``delay`` seconds
  after it arrived.  Why a relay rather than a delaying transport inside ``comm.Ring``: the code
  under test stays the code that ships (the ring cannot tell it is emulated), and the delay is
  paid once per hop whatever the message size, as on a wire.  The price: a relay hop costs CPU
  and some latency of its own (measured: :func:`measure_rtt`), and only connections made through
  ``forward`` see the delay (Spark's own RPC sees the rate limit only).
- **A link that drops everything** (a cable pulled, a switch port flapping): :meth:`NetCluster.
  blackhole` swaps the node's qdiscs for a ``bfifo`` of limit 0 — every packet is dropped at
  enqueue, TCP retransmits with back-off — and puts the ``tbf`` back afterwards.

Set-up and tear-down are all-or-nothing: a failure half-way removes what was made; ``close()``
(also on exceptions in the ``with`` body, at interpreter exit and on SIGTERM through the CLI)
kills the processes started in the namespaces and deletes the namespaces, which removes their
links.  ``python -m workbench.spark.netem cleanup`` removes leftovers of crashed runs.

Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) and ``ip``/``tc`` (iproute2); :func:`available` says
whether this machine allows it and why not.
"""
from __future__ import annotations

import argparse
import atexit
import collections
import ctypes
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["NetCluster", "Relay", "available", "cleanup", "parse_rate", "measure_rtt",
           "measure_bandwidth", "PRESETS", "COMM_PATH"]

PREFIX = "wbnet"
PRESETS = {  # name: (rate, one-way delay added per hop in seconds)
    "10gbe": ("10gbit", 50e-6),
    "1gbe": ("1gbit", 200e-6),
}
_RELAY_CHUNK = 256 * 1024
F_SETPIPE_SZ = 1031
_RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}


def parse_rate(rate):
    """``"10gbit"`` -> 1.25e9 (bytes per second); a number is taken as bytes per second."""
    if isinstance(rate, (int, float)):
        return float(rate)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?bit)\s*", str(rate).lower())
    if not m:
        raise ValueError(f"rate must look like '10gbit' or '500mbit', got {rate!r}")
    return float(m.group(1)) * _RATE_UNITS[m.group(2)] / 8


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _ns(name, *cmd, check=True):
    return subprocess.run(["ip", "netns", "exec", name, *cmd], check=check,
                          capture_output=True, text=True)


def available():
    """``(True, "")`` if namespaces, veth pairs and tbf can be made here, else ``(False, why)``."""
    if not sys.platform.startswith("linux"):
        return False, "network namespaces need Linux"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return False, f"'{tool}' (iproute2) is not installed"
    name = f"{PREFIX}probe{os.getpid()}"
    try:
        r = _ip("netns", "add", name, check=False)
        if r.returncode:
            return False, f"cannot create a network namespace: {r.stderr.strip()}"
        r = _ns(name, "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1",
                check=False)
        if r.returncode:
            return False, f"cannot create a veth pair: {r.stderr.strip()}"
        r = _ns(name, "tc", "qdisc", "add", "dev", "p0", "root", "tbf", "rate", "1gbit",
                "burst", "64kb", "latency", "10ms", check=False)
        if r.returncode:
            return False, f"cannot add a tbf qdisc: {r.stderr.strip()}"
        return True, ""
    finally:
        _ip("netns", "del", name, check=False)


def cleanup(prefix=PREFIX):
    """Kill what runs in, and delete, every namespace whose name starts with ``prefix`` (left
    behind by a crashed run).  Returns the names deleted."""
    out = _ip("netns", "list", check=False).stdout.split("\n")
    names = [line.split()[0] for line in out if line.strip().startswith(prefix)]
    for name in names:
        _kill_namespace(name)
    return names


def _kill_namespace(name):
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", name, check=False)


class NetCluster:
    """``nodes`` network namespaces on one switch, each with a ``rate`` NIC, plus a delay line
    that adds ``delay`` seconds one way to connections made through :meth:`forward`.

    Args:
        nodes: number of node namespaces (1–250).
        rate: link rate as tc writes it (``"10gbit"``, ``"1gbit"``, ``"500mbit"``), or None for
            no limit.
        delay: one-way latency added per connection hop by the relay, in seconds (0: none).
        burst: bytes the tbf lets through at once (default: 100 µs worth at ``rate``, at least
            256 KiB: with less, segmentation offload makes 1 Gbit/s reach only ~60%).
        name: a tag added to the namespace names (``wbnet<pid><name>h`` for the hub,
            ``...n<i>`` for the nodes), so one process can run several clusters at once.
    """

    def __init__(self, nodes, rate="10gbit", delay=50e-6, burst=None, name=None):
        if not 1 <= int(nodes) <= 250:
            raise ValueError(f"nodes must be in 1..250, got {nodes}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        self.nodes, self.rate, self.delay = int(nodes), rate, float(delay)
        self.rate_bytes = parse_rate(rate) if rate else None
        self.burst = int(burst or max(256 * 1024, (self.rate_bytes or 0) * 100e-6))
        pid = os.getpid()
        # the pid keeps concurrent runs (two test sessions, a benchmark) apart
        self.tag = f"{PREFIX}{pid}{name or ''}"
        self.subnet = f"10.{100 + pid % 150}.{(pid // 150) % 250}"
        self.hub = f"{self.tag}h"
        self.names = [f"{self.tag}n{i}" for i in range(self.nodes)]
        self._procs = []
        self._relay = None
        self.up = False

    # ------------------------------------------------------------------ addresses
    def ip(self, i):
        """Address of node ``i`` (on its ``eth0``)."""
        return f"{self.subnet}.{i + 2}"

    @property
    def hub_ip(self):
        return f"{self.subnet}.1"

    # ------------------------------------------------------------------ set-up / tear-down
    def start(self):
        """Create the namespaces, links and the relay; all or nothing."""
        ok, why = available()
        if not ok:
            raise RuntimeError(f"cannot emulate a network here: {why}")
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.up = True
        return self

    def _build(self):
        _ip("netns", "add", self.hub)
        _ns(self.hub, "ip", "link", "set", "lo", "up")
        _ns(self.hub, "ip", "link", "add", "br0", "type", "bridge")
        _ns(self.hub, "ip", "addr", "add", f"{self.hub_ip}/24", "dev", "br0")
        _ns(self.hub, "ip", "link", "set", "br0", "up")
        for i, name in enumerate(self.names):
            _ip("netns", "add", name)
            _ns(name, "ip", "link", "set", "lo", "up")
            # both ends made straight inside their namespaces: nothing appears in ours
            _ns(self.hub, "ip", "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                "netns", name)
            _ns(self.hub, "ip", "link", "set", f"v{i}", "master", "br0", "up")
            _ns(name, "ip", "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            _ns(name, "ip", "link", "set", "eth0", "up")
            self._shape(i)
        if self.delay > 0:
            self._relay = subprocess.Popen(
                ["ip", "netns", "exec", self.hub, sys.executable, os.path.abspath(__file__),
                 "relay", "--delay", repr(self.delay), "--host", self.hub_ip],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
            if json.loads(self._relay.stdout.readline() or "{}").get("ready") is not True:
                raise RuntimeError("the delay relay did not start")

    def _links(self, i):
        return [(self.names[i], "eth0"), (self.hub, f"v{i}")]

    def _shape(self, i):
        for ns, dev in self._links(i):
            _ns(ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)
            if self.rate:
                _ns(ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", str(self.rate),
                    "burst", str(self.burst), "latency", "20ms")

    def blackhole(self, i, on=True):
        """Drop every packet on node ``i``'s link (both directions) — or, with ``on=False``, put
        its rate limit back."""
        if not on:
            return self._shape(i)
        for ns, dev in self._links(i):
            _ns(ns, "tc", "qdisc", "replace", "dev", dev, "root", "bfifo", "limit", "0")

    def close(self):
        """Stop everything started in the namespaces and delete them (idempotent)."""
        for p in self._procs + ([self._relay] if self._relay else []):
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self._procs, self._relay = [], None
        for name in self.names + [self.hub]:
            _kill_namespace(name)
        self.up = False
        atexit.unregister(self.close)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def leftovers(self):
        """Names of this cluster's namespaces that still exist (empty after ``close()``)."""
        out = _ip("netns", "list", check=False).stdout
        mine = set(self.names) | {self.hub}
        return [line.split()[0] for line in out.splitlines() if line.split()[:1] and
                line.split()[0] in mine]

    # ------------------------------------------------------------------ using it
    def popen(self, i, argv, **kwargs):
        """``subprocess.Popen(argv)`` inside node ``i``'s namespace (``i="hub"``: the switch's,
        reachable from every node at :attr:`hub_ip`); killed by ``close()``.  ``ip netns exec``
        execs ``argv``, so the process's pid is that of ``argv`` itself."""
        kwargs.setdefault("env", _env())
        ns = self.hub if i == "hub" else self.names[i]
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)], **kwargs)
        self._procs.append(p)
        return p

    def forward(self, host, port):
        """An address ``(hub_ip, p)`` that reaches ``host:port`` through the delay line (or
        ``(host, port)`` itself when there is no delay)."""
        if self._relay is None:
            return host, int(port)
        self._relay.stdin.write(json.dumps({"to": [host, int(port)]}) + "\n")
        self._relay.stdin.flush()
        reply = json.loads(self._relay.stdout.readline() or "{}")
        if "port" not in reply:
            raise RuntimeError(f"the relay could not forward to {host}:{port}: {reply}")
        return self.hub_ip, int(reply["port"])


COMM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "comm.py")


def _env():
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


# ---------------------------------------------------------------------- the delay line
def _fine_timer_slack():
    """Sleep with ~1 µs precision instead of Linux's default 50 µs timer slack (per thread,
    inherited by the threads created afterwards)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):  # pragma: no cover - not Linux/glibc
        pass


class Relay:
    """Accepts connections on ports of ``host`` and copies each to its destination, every chunk
    held ``delay`` seconds after it arrived (a FIFO per direction: the order, and the pacing the
    tbf upstream gave it, are kept)."""

    def __init__(self, host, delay):
        self.host, self.delay = host, float(delay)
        _fine_timer_slack()

    def forward(self, dest):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, 0))
        srv.listen(64)
        threading.Thread(target=self._accept, args=(srv, tuple(dest)), daemon=True).start()
        return srv.getsockname()[1]

    def _accept(self, srv, dest):
        while True:
            a, _ = srv.accept()
            try:
                b = socket.create_connection(dest, timeout=30)
            except OSError:
                a.close()
                continue
            b.settimeout(None)
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(a, b)
            self._pipe(b, a)

    def _pipe(self, src, dst):
        """One direction: the bytes wait in a kernel pipe (``splice``, no copy through Python)
        and each batch leaves ``delay`` after it arrived."""
        r, w = os.pipe()
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, _RELAY_CHUNK * 4)
        except OSError:  # pragma: no cover - above /proc/sys/fs/pipe-max-size
            pass
        line = collections.deque()
        ready = threading.Condition()

        def read():
            # a blocking splice from a socket sleeps holding the pipe's lock (and would stall
            # the writer): wait for data first, then splice without blocking
            wait_in, wait_out = select.poll(), select.poll()
            wait_in.register(src.fileno(), select.POLLIN)
            wait_out.register(w, select.POLLOUT)
            while True:
                try:
                    wait_in.poll()
                    n = os.splice(src.fileno(), w, _RELAY_CHUNK, flags=os.SPLICE_F_NONBLOCK)
                except BlockingIOError:
                    wait_out.poll(1)  # the pipe is full (or a spurious wake-up)
                    continue
                except OSError:
                    n = 0
                with ready:
                    line.append((time.monotonic() + self.delay, n))
                    ready.notify()
                if not n:
                    return

        def write():
            try:
                while True:
                    with ready:
                        while not line:
                            ready.wait()
                        due, n = line.popleft()
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if not n:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    while n:
                        n -= os.splice(r, dst.fileno(), n)
            except OSError:
                src.close()
                dst.close()
            finally:
                os.close(r)
                os.close(w)

        for f in (read, write):
            threading.Thread(target=f, daemon=True).start()

    def serve(self, commands=sys.stdin, replies=sys.stdout):
        """Answer ``{"to": [host, port]}`` lines with ``{"port": p}`` until stdin closes."""
        print(json.dumps({"ready": True}), file=replies, flush=True)
        for line in commands:
            try:
                port = self.forward(json.loads(line)["to"])
                print(json.dumps({"port": port}), file=replies, flush=True)
            except (OSError, ValueError, KeyError) as e:
                print(json.dumps({"error": str(e)}), file=replies, flush=True)


# ---------------------------------------------------------------------- measuring it
_PROBE = r"""
import socket, sys, time
mode, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "serve":          # echo small messages; swallow bulk data and answer its size
    srv = socket.socket(); srv.bind((a, 0)); srv.listen(4)
    print(srv.getsockname()[1], flush=True)
    while True:
        c, _ = srv.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kind = c.recv(1)
        if kind == b"e":
            while True:
                d = c.recv(1)
                if not d: break
                c.sendall(d)
        else:
            n = int.from_bytes(c.recv(8, socket.MSG_WAITALL), "big"); got = 0
            buf = bytearray(1 << 20)
            while got < n:
                k = c.recv_into(buf); got += k
                if not k: break
            c.sendall(b"k")
        c.close()
else:
    port, n = int(sys.argv[4]), int(sys.argv[5])
    s = socket.create_connection((a, port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "rtt":
        s.sendall(b"e"); rtts = []
        for _ in range(n):
            t = time.perf_counter(); s.sendall(b"x"); s.recv(1)
            rtts.append(time.perf_counter() - t)
        print(" ".join(repr(r) for r in rtts), flush=True)
    else:
        s.sendall(b"b" + n.to_bytes(8, "big")); chunk = bytes(1 << 20); t = time.perf_counter()
        left = n
        while left > 0:
            s.sendall(chunk[:min(left, len(chunk))]); left -= len(chunk)
        s.recv(1); print(repr(time.perf_counter() - t), flush=True)
"""


def _probe_server(net, i):
    p = net.popen(i, [sys.executable, "-c", _PROBE, "serve", net.ip(i), 0],
                  stdout=subprocess.PIPE, text=True)
    return net.forward(net.ip(i), int(p.stdout.readline()))


def measure_rtt(net, src=0, dst=1, count=200):
    """Round-trip times (seconds) of 1-byte TCP ping-pongs from node ``src`` to node ``dst``
    through the delay line (the emulation has no ICMP path with delay; ``ping`` is not even
    installed here)."""
    host, port = _probe_server(net, dst)
    out = net.popen(src, [sys.executable, "-c", _PROBE, "rtt", host, 0, port, count],
                    stdout=subprocess.PIPE, text=True).communicate(timeout=120)[0]
    return [float(x) for x in out.split()]


def measure_bandwidth(net, src=0, dst=1, nbytes=64 << 20):
    """Bytes per second of one bulk TCP transfer of ``nbytes`` from ``src`` to ``dst``."""
    host, port = _probe_server(net, dst)
    out = net.popen(src, [sys.executable, "-c", _PROBE, "bulk", host, 0, port, nbytes],
                    stdout=subprocess.PIPE, text=True).communicate(timeout=300)[0]
    return nbytes / float(out)


# ---------------------------------------------------------------------- command line
def _main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m workbench.spark.netem", description=__doc__
                                 .split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="build a cluster, measure RTT and bandwidth, tear down")
    check.add_argument("--nodes", type=int, default=2)
    check.add_argument("--preset", choices=sorted(PRESETS))
    check.add_argument("--rate", default="1gbit")
    check.add_argument("--delay", type=float, default=200e-6, help="one-way, seconds")
    check.add_argument("--mbytes", type=int, default=64)
    shell = sub.add_parser("up", help="build a cluster and keep it until Ctrl-C / SIGTERM")
    shell.add_argument("--nodes", type=int, default=2)
    shell.add_argument("--rate", default="1gbit")
    shell.add_argument("--delay", type=float, default=200e-6)
    sub.add_parser("cleanup", help=f"delete leftover '{PREFIX}*' namespaces")
    relay = sub.add_parser("relay", help="(internal) the delay line, run inside the hub")
    relay.add_argument("--delay", type=float, required=True)
    relay.add_argument("--host", required=True)
    args = ap.parse_args(argv)

    if args.cmd == "relay":
        Relay(args.host, args.delay).serve()
        return 0
    if args.cmd == "cleanup":
        print("deleted:", " ".join(cleanup()) or "nothing")
        return 0
    # SIGTERM unwinds like Ctrl-C, so the with-block tears the namespaces down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rate, delay = PRESETS[args.preset] if getattr(args, "preset", None) else (args.rate,
                                                                              args.delay)
    with NetCluster(args.nodes, rate=rate, delay=delay) as net:
        if args.cmd == "up":
            print(f"namespaces {net.hub} + {' '.join(net.names)}; nodes at "
                  f"{net.ip(0)}..{net.ip(net.nodes - 1)}; Ctrl-C tears down", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        rtts = sorted(measure_rtt(net))
        bw = measure_bandwidth(net, nbytes=args.mbytes << 20)
        print(json.dumps({"rate": rate, "delay_one_way": delay,
                          "rtt_min": rtts[0], "rtt_median": rtts[len(rtts) // 2],
                          "rtt_configured": 2 * delay, "bandwidth": bw,
                          "bandwidth_configured": parse_rate(rate)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
