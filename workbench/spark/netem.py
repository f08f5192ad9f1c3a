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
- **Random packet loss** needs the other link type, ``NetCluster(..., link="tun", loss=p)``: a
  TCP-terminating relay cannot drop a packet, so there each node's ``eth0`` is a TUN device
  and one user-space *router* process (:class:`TunRouter`, in the hub) moves IP packets between
  the nodes' TUN file descriptors: it reads a packet, looks up its destination address, drops
  it with probability ``loss`` (a seeded ``random.Random``; counters per link), paces it to
  ``rate`` on the sender's uplink and the receiver's downlink, holds it ``delay`` seconds (a
  heap of release times) and writes it to the destination's TUN.  Unmodified TCP (the ring of
  ``comm.py``, Spark) sees real IP-level loss, delay and rate on every connection, not only on
  those made through ``forward``.  The price: every packet crosses Python once, so the TUNs use
  a large MTU (default 9000, jumbo frames) to keep the packet rate down; :func:`measure_bandwidth`
  says what the router reaches.

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
import errno
import fcntl
import heapq
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

__all__ = ["NetCluster", "Relay", "TunRouter", "open_tun", "LINKS", "available", "cleanup",
           "parse_rate", "measure_rtt", "measure_bandwidth", "PRESETS", "COMM_PATH"]

PREFIX = "wbnet"
PRESETS = {  # name: (rate, one-way delay added per hop in seconds)
    "10gbe": ("10gbit", 50e-6),
    "1gbe": ("1gbit", 200e-6),
}
_RELAY_CHUNK = 256 * 1024
F_SETPIPE_SZ = 1031
_RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}
LINKS = ("veth", "tun")
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
CLONE_NEWNET = 0x40000000


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
        link: ``"veth"`` (default: veth pairs on a bridge, kernel ``tbf``, the TCP delay line
            of :meth:`forward`) or ``"tun"`` (TUN devices and the packet router
            :class:`TunRouter`: rate, ``delay`` and ``loss`` apply to every IP packet between
            the namespaces, the hub's included; :meth:`forward` returns its argument).
        loss: probability that the router drops a packet, each packet (data or ACK, either
            direction) independently; ``link="tun"`` only.
        mtu: the TUN devices' MTU (``link="tun"``): every packet crosses the Python router,
            so bigger packets mean more bytes per second (9000: jumbo frames, as on many
            cluster networks; up to 65535).
        queue: ``link="tun"``: the most a packet may wait for a busy link (seconds of
            ``rate``) before the router drops it (a switch's buffer; counted apart from
            ``loss``).
        seed: seeds the router's loss draws.
    """

    def __init__(self, nodes, rate="10gbit", delay=50e-6, burst=None, name=None, link="veth",
                 loss=0.0, mtu=9000, queue=0.02, seed=0):
        if not 1 <= int(nodes) <= 250:
            raise ValueError(f"nodes must be in 1..250, got {nodes}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {link!r}")
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be a probability in [0, 1), got {loss}")
        if loss and link != "tun":
            raise ValueError("random loss needs link='tun' (a veth link's only drop is "
                             "blackhole(); the delay line terminates TCP and cannot drop)")
        if not 576 <= int(mtu) <= 65535:
            raise ValueError(f"mtu must be in 576..65535, got {mtu}")
        self.link, self.loss, self.mtu = link, float(loss), int(mtu)
        self.queue, self.seed = float(queue), int(seed)
        self._router = None
        self._router_lock = threading.Lock()
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
        if ok and self.link == "tun" and not os.path.exists("/dev/net/tun"):
            ok, why = False, "/dev/net/tun does not exist (no TUN driver)"
        if not ok:
            raise RuntimeError(f"cannot emulate a network here: {why}")
        atexit.register(self.close)
        try:
            self._build_tun() if self.link == "tun" else self._build()
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

    def _build_tun(self):
        for name in [self.hub] + self.names:
            _ip("netns", "add", name)
            _ns(name, "ip", "link", "set", "lo", "up")
        # the router makes every namespace's eth0 (a TUN device is created in the namespace of
        # the process that opens it) and keeps the file descriptors; then the addresses
        endpoints = [f"{ns}={self.ip(i)}" for i, ns in enumerate(self.names)]
        endpoints.append(f"{self.hub}={self.hub_ip}")
        self._router = subprocess.Popen(
            ["ip", "netns", "exec", self.hub, sys.executable, os.path.abspath(__file__),
             "router", "--delay", repr(self.delay), "--loss", repr(self.loss),
             "--rate", repr(self.rate_bytes or 0.0), "--queue", repr(self.queue),
             "--seed", str(self.seed), *endpoints],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
        reply = json.loads(self._router.stdout.readline() or "{}")
        if reply.get("ready") is not True:
            raise RuntimeError(f"the packet router did not start: {reply}")
        for i, ns in enumerate(self.names + [self.hub]):
            ip = self.ip(i) if i < self.nodes else self.hub_ip
            _ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            # a longer kernel queue in front of the router: it is slower than a NIC
            _ns(ns, "ip", "link", "set", "eth0", "mtu", str(self.mtu), "txqueuelen", "4096",
                "up")

    def _call_router(self, **command):
        if self._router is None:
            raise RuntimeError("only a link='tun' cluster that is up has a packet router")
        with self._router_lock:
            self._router.stdin.write(json.dumps(command) + "\n")
            self._router.stdin.flush()
            reply = json.loads(self._router.stdout.readline() or "{}")
        if "error" in reply or not reply:
            raise RuntimeError(f"the packet router refused {command}: {reply}")
        return reply

    def set_link(self, loss=None, delay=None):
        """Change the packet loss and/or the one-way delay of a ``link="tun"`` cluster while it
        runs (every link at once)."""
        if loss is not None and not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be a probability in [0, 1), got {loss}")
        if delay is not None and delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        self._call_router(cmd="set", loss=loss, delay=delay)
        self.loss = self.loss if loss is None else float(loss)
        self.delay = self.delay if delay is None else float(delay)

    def link_stats(self):
        """The router's counters per directed link, ``{(src, dst): {"packets", "bytes",
        "lost", "blackholed", "overflow"}}`` with node indices (the hub is ``"hub"``):
        ``packets`` offered (dropped ones included), ``lost`` by the random loss,
        ``blackholed`` by :meth:`blackhole`, ``overflow`` by a full queue (``queue``)."""
        reply = self._call_router(cmd="stats")
        hub = self.nodes
        key = {i: ("hub" if i == hub else i) for i in range(self.nodes + 1)}
        return {(key[s], key[d]): c for s, d, c in reply["links"]}

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
        if self.link == "tun":
            self._call_router(cmd="blackhole", node=int(i), on=bool(on))
            return None
        if not on:
            return self._shape(i)
        for ns, dev in self._links(i):
            _ns(ns, "tc", "qdisc", "replace", "dev", dev, "root", "bfifo", "limit", "0")

    def close(self):
        """Stop everything started in the namespaces and delete them (idempotent)."""
        for p in self._procs + [r for r in (self._relay, self._router) if r]:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self._procs, self._relay, self._router = [], None, None
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
        ``(host, port)`` itself when there is no delay, and with ``link="tun"``, where every
        packet crosses the router)."""
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


# ---------------------------------------------------------------------- the packet router
def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_tun(netns=None, name="eth0"):
    """A non-blocking file descriptor of a new TUN device ``name`` (IP packets, no header) in
    network namespace ``netns`` (a name under /var/run/netns; None: the caller's).  The device
    is made in the namespace the calling thread is in when it opens /dev/net/tun, so the thread
    enters ``netns`` for that and comes back; the device lives as long as the descriptor."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{netns}", os.O_RDONLY) if netns else None
    try:
        if target is not None:
            _setns(target)
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            try:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
            except OSError:
                os.close(fd)
                raise
        finally:
            if target is not None:
                _setns(home)
    finally:
        os.close(home)
        if target is not None:
            os.close(target)
    return fd


class TunRouter:
    """A user-space IP router between TUN devices: the switch of a ``link="tun"`` cluster.

    Each packet read from an endpoint's TUN (what that namespace's kernel sends out of its
    ``eth0``) is routed by its IPv4 destination address and then, in this order:

    1. dropped if either end is black-holed (:meth:`NetCluster.blackhole`);
    2. dropped with probability ``loss`` (one seeded draw per packet: a rerun with the same
       packets drops the same ones; TCP's timing makes the packets differ run to run);
    3. paced: it occupies the sender's uplink, then the receiver's downlink, for
       ``len / rate`` seconds each (full-duplex ports of a cut-through switch); a packet that
       would wait more than ``queue`` seconds for either is dropped (a full switch buffer);
    4. held until ``delay`` seconds after its uplink time (a heap of release times; packets to
       one destination leave in order), then written to the destination's TUN.

    Args:
        endpoints: ``[(netns, address)]``; a TUN ``eth0`` is opened in each (netns None: the
            router's own namespace).
        delay: one-way delay added to every packet, seconds.
        loss: drop probability per packet.
        rate: bytes per second of every port (0: no pacing).
        queue: the most a packet may wait for a busy port, seconds.
        seed: seeds the loss draws.

    One thread, ``select`` with a microsecond timeout (epoll rounds to milliseconds), reads of
    up to 64 packets per device per wake-up.  Commands arrive as JSON lines on stdin
    (:meth:`serve`).
    """

    def __init__(self, endpoints, delay=0.0, loss=0.0, rate=0.0, queue=0.02, seed=0):
        self.delay, self.loss, self.rate, self.queue = float(delay), float(loss), float(rate), \
            float(queue)
        self.rng = random.Random(seed)
        self.fds, self.index = [], {}
        try:
            for i, (netns, address) in enumerate(endpoints):
                self.fds.append(open_tun(netns))
                self.index[socket.inet_aton(address)] = i
        except BaseException:
            for fd in self.fds:
                os.close(fd)
            raise
        k = len(self.fds)
        self.up_free, self.down_free = [0.0] * k, [0.0] * k
        self.black = set()
        self.stats = {}  # (src, dst) -> [packets, bytes, lost, blackholed, overflow]
        self.heap, self.seq = [], 0
        _fine_timer_slack()

    def route(self, src, pkt, now):
        """Decide the fate of one packet from endpoint ``src`` read at ``now``."""
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            return  # not IPv4 (e.g. IPv6 router solicitations): no route
        dst = self.index.get(pkt[16:20])
        if dst is None:
            return
        c = self.stats.get((src, dst))
        if c is None:
            c = self.stats[(src, dst)] = [0, 0, 0, 0, 0]
        c[0] += 1
        c[1] += len(pkt)
        if src in self.black or dst in self.black:
            c[3] += 1
            return
        if self.loss and self.rng.random() < self.loss:
            c[2] += 1
            return
        sent = now
        release = now + self.delay
        if self.rate:
            wire = len(pkt) / self.rate
            sent = max(now, self.up_free[src]) + wire
            release = max(sent + self.delay, self.down_free[dst] + wire)
            if sent - now - wire > self.queue or release - sent - self.delay > self.queue:
                c[4] += 1
                return
            self.up_free[src], self.down_free[dst] = sent, release
        self.seq += 1
        heapq.heappush(self.heap, (release, self.seq, dst, pkt))

    def command(self, cmd):
        """Answer one control command (a dict) with a dict."""
        op = cmd.get("cmd")
        if op == "stats":
            return {"links": [[s, d, dict(zip(("packets", "bytes", "lost", "blackholed",
                                                "overflow"), c))]
                              for (s, d), c in sorted(self.stats.items())]}
        if op == "set":
            if cmd.get("loss") is not None:
                self.loss = float(cmd["loss"])
            if cmd.get("delay") is not None:
                self.delay = float(cmd["delay"])
            return {"ok": True}
        if op == "blackhole":
            (self.black.add if cmd["on"] else self.black.discard)(int(cmd["node"]))
            return {"ok": True}
        return {"error": f"unknown command {cmd!r}"}

    def serve(self, commands=0, replies=sys.stdout):
        """Route packets until ``commands`` (a file descriptor of JSON lines) closes."""
        print(json.dumps({"ready": True}), file=replies, flush=True)
        readable = [commands] + self.fds
        src_of = {fd: i for i, fd in enumerate(self.fds)}
        pending = b""
        heap, now_ = self.heap, time.monotonic
        while True:
            timeout = max(0.0, heap[0][0] - now_()) if heap else None
            ready, _, _ = select.select(readable, [], [], timeout)
            now = now_()
            for fd in ready:
                if fd == commands:
                    data = os.read(commands, 65536)
                    if not data:
                        return
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        try:
                            reply = self.command(json.loads(line))
                        except (ValueError, KeyError, TypeError) as e:
                            reply = {"error": str(e)}
                        print(json.dumps(reply), file=replies, flush=True)
                    continue
                src = src_of[fd]
                for _ in range(64):
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    self.route(src, pkt, now)
            now = now_()
            while heap and heap[0][0] <= now:
                _, _, dst, pkt = heapq.heappop(heap)
                try:
                    os.write(self.fds[dst], pkt)
                except OSError as e:  # the destination's device is down: the packet is lost
                    if e.errno not in (errno.EIO, errno.EAGAIN, errno.ENOBUFS, errno.EINVAL):
                        raise


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
    for p in (check, shell):
        p.add_argument("--link", choices=LINKS, default="veth",
                       help="tun: TUN devices + the packet router (needed for --loss)")
        p.add_argument("--loss", type=float, default=0.0, help="drop probability per packet")
        p.add_argument("--mtu", type=int, default=9000, help="of the TUN devices")
    sub.add_parser("cleanup", help=f"delete leftover '{PREFIX}*' namespaces")
    router = sub.add_parser("router", help="(internal) the packet router of link='tun'")
    router.add_argument("endpoints", nargs="+", metavar="NETNS=ADDRESS")
    for flag in ("delay", "loss", "rate", "queue"):
        router.add_argument(f"--{flag}", type=float, default=0.0)
    router.add_argument("--seed", type=int, default=0)
    relay = sub.add_parser("relay", help="(internal) the delay line, run inside the hub")
    relay.add_argument("--delay", type=float, required=True)
    relay.add_argument("--host", required=True)
    args = ap.parse_args(argv)

    if args.cmd == "router":
        endpoints = [tuple(e.split("=", 1)) for e in args.endpoints]
        try:
            router = TunRouter(endpoints, delay=args.delay, loss=args.loss, rate=args.rate,
                               queue=args.queue, seed=args.seed)
        except OSError as e:
            print(json.dumps({"error": f"cannot open the TUN devices: {e}"}), flush=True)
            return 1
        router.serve()
        return 0
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
    with NetCluster(args.nodes, rate=rate, delay=delay, link=args.link, loss=args.loss,
                    mtu=args.mtu) as net:
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
                          "bandwidth_configured": parse_rate(rate), "link": args.link,
                          "loss": args.loss,
                          "router": {f"{s}->{d}": c for (s, d), c in net.link_stats().items()}
                          if args.link == "tun" else None}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
