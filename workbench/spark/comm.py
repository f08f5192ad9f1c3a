"""TCP transport between the tasks of a barrier stage, and between the tasks and the driver.

``Ring`` connects N ranks in a ring (each rank connects to the next and accepts the previous)
and offers the collectives the trainer needs:

- ``reduce_scatter(vec)``: after it, rank ``r`` holds the sum over all ranks of its own slice
  ``vec[lo_r:hi_r]`` (``slices(size, n)`` gives the bounds); an optional 16-bit compression of
  what goes on the wire (``"bf16"``, BigDL's truncated float, or ``"fp16"``, IEEE half).
- ``all_gather(vec)``: every rank's slice is copied into every other rank's vector.
- ``allreduce(vec)`` = both, and ``allreduce_small(values)`` for a few float64 control values.

``Doubling`` is the other all-reduce, recursive doubling: log2(N) steps instead of the ring's
2(N-1), each with the whole vector; faster where latency, not bytes, dominates (small gradients
on many nodes).  It offers the same collectives as ``Ring``, so the trainer can run on either:
``Optimizer(..., allreduce="ring" | "doubling" | "auto")``; the default stays the ring, and
``choose_allreduce`` is the rule of ``"auto"`` (the cost model of docs/SCALING.md).

Two ranks sending each other chunks must not deadlock on full socket buffers.  A message of
up to ``DIRECT_SEND`` bytes fits any socket buffer, so it is sent before receiving.  A chunk of
up to ``INLINE`` bytes is sent and received on the calling thread: non-blocking sockets, and
``poll`` when neither side can move (no thread hand-off, whose wake-ups cost more than the
transfer on a loaded machine).  A larger chunk is sent by a persistent sender thread while the
calling thread receives and reduces segment by segment (the reduction of one segment overlaps
the transfer of the next).  Every socket has a timeout: a silent peer raises ``CommError``
instead of hanging the stage.

Control messages (rendezvous, per-iteration metrics, the driver's go/stop decisions) are
length-prefixed JSON frames: ``send_msg(sock, obj)`` / ``recv_msg(sock)``.
"""
from __future__ import annotations

import json
import math
import queue
import select
import socket
import struct
import threading

import numpy as np

__all__ = ["CommError", "Ring", "Doubling", "slices", "send_msg", "recv_msg", "listen", "connect",
           "COMPRESSIONS", "ALLREDUCES", "choose_allreduce", "allreduce_seconds",
           "snapshot_interval", "NODE_MTBF"]

DIRECT_SEND = 16 * 1024  # a message this small is sent before receiving (fewest syscalls)
SEGMENT = 256 * 1024  # elements received (and reduced) at a time
# Ring: chunks up to this many bytes are exchanged on the calling thread.  Below it a chunk's
# transfer costs less than the sender thread's wake-ups (benchmarks/bench_allreduce.py: 1-3
# wake-ups per all-reduce instead of 5-14, 1.3-1.8x less CPU for 64 KB..1 MB vectors on 2-4
# ranks); with 1 MB chunks the two were 0.7-1.1x of each other in wall time on a loaded 2-core
# machine, so from there on the thread sends while this one receives and reduces (segments of
# a bigger chunk overlap the transfer).
INLINE = 512 * 1024
SOCKET_BUFFER = None  # None: leave the kernel autotuning on
COMPRESSIONS = (None, "bf16", "fp16")
ALLREDUCES = ("ring", "doubling", "auto")
_LEN = struct.Struct("!Q")


class CommError(ConnectionError):
    """A peer closed its connection, timed out, or sent something unexpected."""


# ---------------------------------------------------------------------- sockets and frames
def _tune(sock, timeout):
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if SOCKET_BUFFER:  # setting a size turns the kernel's buffer autotuning off
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            except OSError:  # pragma: no cover - a kernel limit; the default still works
                pass
    return sock


def listen(host="0.0.0.0", backlog=64):
    """A listening TCP socket on a free port of ``host``."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 0))
    srv.listen(backlog)
    return srv


def connect(host, port, timeout):
    """A tuned client socket to ``host:port`` (retrying refused connections for ``timeout``)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout)
            return _tune(sock, timeout)
        except (ConnectionRefusedError, socket.timeout, OSError) as e:
            if time.monotonic() >= deadline:
                raise CommError(f"cannot connect to {host}:{port}: {e}") from None
            time.sleep(0.05)


def recv_exact(sock, view):
    """Fill the writable memoryview ``view`` from ``sock``."""
    got, n = 0, len(view)
    try:
        while got < n:
            k = sock.recv_into(view[got:], n - got)
            if k == 0:
                raise CommError("the peer closed the connection")
            got += k
    except socket.timeout:
        raise CommError(f"timed out after {sock.gettimeout()}s waiting for a peer") from None
    except OSError as e:
        if isinstance(e, CommError):
            raise
        raise CommError(f"connection to a peer failed: {e}") from None


def send_all(sock, data):
    try:
        sock.sendall(data)
    except socket.timeout:
        raise CommError(f"timed out after {sock.gettimeout()}s sending to a peer") from None
    except OSError as e:
        raise CommError(f"connection to a peer failed: {e}") from None


def send_msg(sock, obj):
    """Send a JSON-able object as one length-prefixed frame."""
    payload = json.dumps(obj).encode()
    send_all(sock, _LEN.pack(len(payload)) + payload)


def recv_msg(sock, limit=1 << 24):
    """Receive one frame sent by :func:`send_msg`."""
    head = bytearray(_LEN.size)
    recv_exact(sock, memoryview(head))
    (n,) = _LEN.unpack(head)
    if n > limit:
        raise CommError(f"a control message of {n} bytes is larger than the limit {limit}")
    body = bytearray(n)
    recv_exact(sock, memoryview(body))
    return json.loads(body)


def slices(size, n):
    """``[(lo, hi)]`` of the N slices of a vector of ``size`` (as ``np.array_split``)."""
    q, r = divmod(size, n)
    edges = [0]
    for i in range(n):
        edges.append(edges[-1] + q + (1 if i < r else 0))
    return [(edges[i], edges[i + 1]) for i in range(n)]


# ---------------------------------------------------------------------- 16-bit codecs
def _encode(chunk, kind, out):
    """``chunk`` (float32) as 16-bit words in ``out`` (uint16 / float16 of the same length)."""
    if kind == "fp16":
        np.copyto(out, chunk, casting="unsafe")
        return out
    u = chunk.view(np.uint32)
    # round to nearest even on the 16 bits that are kept (the top half of a float32)
    rounded = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    np.right_shift(rounded, np.uint32(16), out=rounded)
    np.copyto(out, rounded, casting="unsafe")
    return out


def _decode_add(words, kind, acc):
    """``acc += decode(words)``."""
    if kind == "fp16":
        acc += words
    else:
        acc += (words.astype(np.uint32) << np.uint32(16)).view(np.float32)


# ---------------------------------------------------------------------- the ring
class _Sender:
    """A thread that sends the buffers it is given, so its owner can receive meanwhile."""

    def __init__(self, sock):
        self.sock = sock
        self._todo = queue.SimpleQueue()
        self._done = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ring-sender", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            buf = self._todo.get()
            if buf is None:
                return
            try:
                send_all(self.sock, buf)
                self._done.put(None)
            except BaseException as e:  # handed to the owner, which raises it
                self._done.put(e)

    def start(self, buf):
        self._todo.put(buf)

    def wait(self, timeout):
        try:
            err = self._done.get(timeout=timeout)
        except queue.Empty:
            raise CommError(f"timed out after {timeout}s sending to the next rank") from None
        if err is not None:
            raise err

    def close(self):
        self._todo.put(None)


class Ring:
    """N ranks in a ring over TCP: ``next_sock`` goes to rank ``(r + 1) % n``, ``prev_sock``
    comes from rank ``(r - 1) % n``.  Build it with :meth:`connect`."""

    def __init__(self, rank, size, next_sock=None, prev_sock=None, timeout=300.0):
        self.rank, self.size, self.timeout = int(rank), int(size), float(timeout)
        self.next_sock, self.prev_sock = next_sock, prev_sock
        self._sender = _Sender(next_sock) if next_sock is not None else None
        self._scratch = {}
        self.bytes_sent = 0

    @classmethod
    def connect(cls, rank, addresses, server, token, timeout=300.0):
        """Connect rank ``rank`` to its neighbours.

        Args:
            addresses: ``[(host, port)]`` of every rank's ``server`` socket, by rank.
            server: this rank's listening socket (closed afterwards).
            token: a string both ends must present (guards against strays on the port).
        """
        n = len(addresses)
        if n == 1:
            server.close()
            return cls(rank, 1, timeout=timeout)
        host, port = addresses[(rank + 1) % n]
        nxt = connect(host, port, timeout)
        send_msg(nxt, {"token": token, "rank": rank})
        server.settimeout(timeout)
        while True:
            try:
                prev, _ = server.accept()
            except socket.timeout:
                nxt.close()
                raise CommError(f"rank {rank}: rank {(rank - 1) % n} did not connect within "
                                f"{timeout}s") from None
            _tune(prev, timeout)
            try:
                hello = recv_msg(prev, limit=4096)
            except (CommError, ValueError):
                prev.close()
                continue
            if hello.get("token") == token and hello.get("rank") == (rank - 1) % n:
                break
            prev.close()
        server.close()
        return cls(rank, n, nxt, prev, timeout)

    def close(self):
        if self._sender is not None:
            self._sender.close()
        for s in (self.next_sock, self.prev_sock):
            if s is not None:
                try:
                    s.close()
                except OSError:  # pragma: no cover
                    pass

    # ------------------------------------------------------------------ one exchange
    def _exchange(self, send_buf, recv_view, on_segment=None):
        """Send ``send_buf`` to the next rank while receiving ``recv_view`` from the previous.

        With ``on_segment(lo, hi)``, the receive goes in segments of ``SEGMENT`` elements and
        each is handed over as soon as it arrived (the reduction of one segment overlaps the
        transfer of the next)."""
        data = memoryview(send_buf).cast("B")
        into = memoryview(recv_view).cast("B")
        self.bytes_sent += len(data)
        if len(data) <= DIRECT_SEND:  # fits any socket buffer: send first, no deadlock
            send_all(self.next_sock, data)
            recv_exact(self.prev_sock, into)
            if on_segment is not None:
                on_segment(0, len(recv_view))
            return
        if max(len(data), len(into)) <= INLINE:
            self._exchange_inline(data, into)
            if on_segment is not None:
                on_segment(0, len(recv_view))  # elementwise: the segments do not change a bit
            return
        self._sender.start(data)
        try:
            if on_segment is None:
                recv_exact(self.prev_sock, memoryview(recv_view).cast("B"))
            else:
                n = len(recv_view)
                for lo in range(0, n, SEGMENT):
                    hi = min(lo + SEGMENT, n)
                    recv_exact(self.prev_sock, memoryview(recv_view[lo:hi]).cast("B"))
                    on_segment(lo, hi)
        finally:
            self._sender.wait(self.timeout)

    def _exchange_inline(self, data, into):
        """Send the bytes ``data`` to the next rank and fill ``into`` from the previous one, both
        on this thread: each socket is non-blocking meanwhile, every pass moves what the kernel
        takes and has, and ``poll`` sleeps only when neither could move.  The ring's timeout
        bounds a wait without progress; errors name the peer."""
        nxt, prv = self.next_sock, self.prev_sock
        after, before = (self.rank + 1) % self.size, (self.rank - 1) % self.size
        timeouts = nxt.gettimeout(), prv.gettimeout()
        nxt.setblocking(False)
        prv.setblocking(False)
        sent, got = 0, 0
        try:
            while sent < len(data) or got < len(into):
                moved = False
                if sent < len(data):
                    try:
                        sent += nxt.send(data[sent:])
                        moved = True
                    except BlockingIOError:  # the send buffer is full
                        pass
                    except OSError as e:
                        raise CommError(f"rank {self.rank}: sending to rank {after} failed: "
                                        f"{e}") from None
                if got < len(into):
                    try:
                        k = prv.recv_into(into[got:])
                    except BlockingIOError:  # nothing arrived yet
                        k = None
                    except OSError as e:
                        raise CommError(f"rank {self.rank}: receiving from rank {before} "
                                        f"failed: {e}") from None
                    if k == 0:
                        raise CommError(f"rank {self.rank}: rank {before} closed the "
                                        f"connection after {got} of {len(into)} bytes")
                    if k:
                        got += k
                        moved = True
                if not moved:
                    waiting = select.poll()
                    if sent < len(data):
                        waiting.register(nxt, select.POLLOUT)
                    if got < len(into):
                        waiting.register(prv, select.POLLIN)
                    if not waiting.poll(self.timeout * 1000):
                        peer = f"rank {before}" if got < len(into) else f"rank {after}"
                        raise CommError(f"rank {self.rank}: timed out after {self.timeout}s "
                                        f"waiting for {peer}")
        finally:
            nxt.settimeout(timeouts[0])
            prv.settimeout(timeouts[1])

    def _buf(self, key, n, dtype):
        buf = self._scratch.get(key)
        if buf is None or buf.size < n or buf.dtype != dtype:
            buf = self._scratch[key] = np.empty(max(n, 1), dtype=dtype)
        return buf[:n]

    # ------------------------------------------------------------------ collectives
    def reduce_scatter(self, vec, compression=None):
        """Sum ``vec`` (1-D, contiguous) over the ranks slice by slice; rank ``r`` ends with the
        full sum of its slice ``slices(vec.size, n)[r]`` (the rest of ``vec`` holds partial
        sums).  Returns ``(lo, hi)`` of the slice."""
        n, r = self.size, self.rank
        bounds = slices(vec.size, n)
        if n == 1:
            return bounds[0]
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if compression is not None and vec.dtype != np.float32:
            raise ValueError(f"16-bit compression needs float32 vectors, got {vec.dtype}")
        chunks = [vec[lo:hi] for lo, hi in bounds]
        for step in range(n - 1):
            # rank r sends chunk (r - step - 1) and receives chunk (r - step - 2): after n - 1
            # steps it holds the full sum of chunk r.
            si, ri = (r - step - 1) % n, (r - step - 2) % n
            send, recv = chunks[si], chunks[ri]
            if compression is None:
                rb = self._buf("recv", recv.size, vec.dtype)

                def add(lo, hi, recv=recv, rb=rb):
                    recv[lo:hi] += rb[lo:hi]
            else:
                wire = np.float16 if compression == "fp16" else np.uint16
                send = _encode(send, compression, self._buf("send16", send.size, wire))
                rb = self._buf("recv16", recv.size, wire)

                def add(lo, hi, recv=recv, rb=rb):
                    _decode_add(rb[lo:hi], compression, recv[lo:hi])
            self._exchange(send, rb, add)
        return bounds[r]

    def all_gather(self, vec):
        """Every rank contributes its slice ``slices(vec.size, n)[rank]`` of ``vec``; afterwards
        every rank's ``vec`` holds all slices."""
        n, r = self.size, self.rank
        if n == 1:
            return vec
        chunks = [vec[lo:hi] for lo, hi in slices(vec.size, n)]
        for step in range(n - 1):
            si, ri = (r - step) % n, (r - step - 1) % n
            self._exchange(chunks[si], chunks[ri])
        return vec

    def allreduce(self, vec, compression=None):
        """In-place sum of ``vec`` over all ranks."""
        self.reduce_scatter(vec, compression)
        return self.all_gather(vec)

    def allreduce_small(self, values):
        """Sum a few float64 values over the ranks (every rank gets the same sum, added in rank
        order so that it is bit-identical everywhere)."""
        mine = np.ascontiguousarray(values, dtype=np.float64)
        n = self.size
        if n == 1:
            return mine.copy()
        every = np.empty((n, mine.size), dtype=np.float64)
        every[self.rank] = mine
        for step in range(n - 1):
            si, ri = (self.rank - step) % n, (self.rank - step - 1) % n
            self._exchange(every[si], every[ri])
        total = every[0].copy()
        for i in range(1, n):
            total += every[i]
        return total


# ---------------------------------------------------------------------- recursive doubling
class Doubling:
    """All-reduce by recursive doubling: for the largest power of two ``p <= n``, log2(p)
    exchanges of the *whole* vector with the rank whose number differs in one bit (ranks
    ``p..n-1`` first fold their vector into rank ``r - p`` and get the result back at the end).

    The ring (:class:`Ring`) sends 2(n-1)/n of the vector in 2(n-1) steps: optimal in bytes,
    but its latency grows with n.  Doubling sends the vector log2(p) times in log2(p) (+2)
    steps: better when a step's latency outweighs the bytes — small gradients on many nodes
    (LeNet-5's 248 KB at 64+ nodes, see docs/SCALING.md).  Every rank ends with bit-identical
    sums (each exchange adds the same two operands on both sides), though they may differ in
    the last bits from the ring's (another order of additions), so it is an option, never the
    default of the trainer.  Build it with :meth:`connect`.
    """

    def __init__(self, rank, size, peers, timeout=300.0):
        self.rank, self.size, self.timeout = int(rank), int(size), float(timeout)
        self.peers = peers  # {rank: socket}
        self._senders = {r: _Sender(s) for r, s in peers.items()}
        self._scratch = None
        self.bytes_sent = 0

    @staticmethod
    def partners(rank, n):
        """Ranks ``rank`` exchanges with, in order (``p`` = largest power of two <= n)."""
        p = 1 << (n.bit_length() - 1)
        if rank >= p:
            return [rank - p]
        out = [rank + p] if rank + p < n else []
        k = 1
        while k < p:
            out.append(rank ^ k)
            k <<= 1
        return out

    @classmethod
    def connect(cls, rank, addresses, server, token, timeout=300.0):
        """Connect ``rank`` to its partners: it dials the lower-numbered ones and accepts the
        higher (dialling completes in the kernel's backlog, so no order deadlocks).

        Args: as :meth:`Ring.connect`."""
        n = len(addresses)
        partners = cls.partners(rank, n)
        peers = {}
        for q in partners:
            if q < rank:
                s = connect(*addresses[q], timeout)
                send_msg(s, {"token": token, "rank": rank})
                peers[q] = s
        expected = {q for q in partners if q > rank}
        server.settimeout(timeout)
        while expected:
            try:
                s, _ = server.accept()
            except socket.timeout:
                for s in peers.values():
                    s.close()
                raise CommError(f"rank {rank}: ranks {sorted(expected)} did not connect within "
                                f"{timeout}s") from None
            _tune(s, timeout)
            try:
                hello = recv_msg(s, limit=4096)
            except (CommError, ValueError):
                s.close()
                continue
            if hello.get("token") == token and hello.get("rank") in expected:
                expected.discard(hello["rank"])
                peers[hello["rank"]] = s
            else:
                s.close()
        server.close()
        return cls(rank, n, peers, timeout)

    def close(self):
        for sender in self._senders.values():
            sender.close()
        for s in self.peers.values():
            try:
                s.close()
            except OSError:  # pragma: no cover
                pass

    def _swap(self, q, sends, recvs):
        """Send the buffers ``sends`` to rank ``q`` while receiving ``recvs`` (in order) from it."""
        data = [memoryview(b).cast("B") for b in sends]
        total = sum(len(d) for d in data)
        self.bytes_sent += total
        sender = None
        if total <= DIRECT_SEND:  # fits the socket buffers: no deadlock sending first
            for d in data:
                send_all(self.peers[q], d)
        else:
            sender = self._senders[q]
            for d in data:
                sender.start(d)
        try:
            for b in recvs:
                recv_exact(self.peers[q], memoryview(b).cast("B"))
        finally:
            if sender is not None:
                for _ in data:
                    sender.wait(self.timeout)

    def _send(self, q, vec):
        data = memoryview(vec).cast("B")
        self.bytes_sent += len(data)
        if len(data) <= DIRECT_SEND:
            send_all(self.peers[q], data)
            return None
        self._senders[q].start(data)
        return self._senders[q]

    def allreduce(self, vec, compression=None):
        """In-place sum of ``vec`` (1-D, contiguous) over all ranks."""
        if compression is not None:
            raise ValueError("Doubling sends float32 only; compression is a Ring option")
        n, r = self.size, self.rank
        if n == 1:
            return vec
        p = 1 << (n.bit_length() - 1)
        if self._scratch is None or self._scratch.size < vec.size or \
                self._scratch.dtype != vec.dtype:
            self._scratch = np.empty(vec.size, dtype=vec.dtype)
        other = self._scratch[:vec.size]
        raw = memoryview(other).cast("B")
        if r >= p:  # fold in, then wait for the result
            q = r - p
            sender = self._send(q, vec)
            if sender is not None:
                sender.wait(self.timeout)
            recv_exact(self.peers[q], memoryview(vec).cast("B"))
            return vec
        if r + p < n:
            recv_exact(self.peers[r + p], raw)
            vec += other
        k = 1
        while k < p:
            q = r ^ k
            sender = self._send(q, vec)
            try:
                recv_exact(self.peers[q], raw)
            finally:
                if sender is not None:
                    sender.wait(self.timeout)
            # a + b == b + a in IEEE arithmetic: both partners end with the same bits
            vec += other
            k <<= 1
        if r + p < n:
            sender = self._send(r + p, vec)
            if sender is not None:
                sender.wait(self.timeout)
        return vec

    def reduce_scatter(self, vec, compression=None):
        """As :meth:`Ring.reduce_scatter` (``vec`` ends summed everywhere, not only on the
        slice); returns ``(lo, hi)`` of this rank's slice ``slices(vec.size, n)[rank]``."""
        self.allreduce(vec, compression)
        return slices(vec.size, self.size)[self.rank]

    def all_gather(self, vec):
        """As :meth:`Ring.all_gather`, in log2(p) (+2) steps: each exchange copies the slices
        the partner's group holds (a copy, no arithmetic: the result is exact)."""
        n, r = self.size, self.rank
        if n == 1:
            return vec
        bounds = slices(vec.size, n)
        p = 1 << (n.bit_length() - 1)

        def span(first, count):
            """The slices of ranks ``first .. first + count - 1`` (those < n): contiguous."""
            last = min(first + count, n)
            return vec[bounds[first][0]:bounds[last - 1][1]] if first < last else None

        def held(base, k):  # the slices a group of k ranks from ``base`` holds after its steps
            return [s for s in (span(base, k), span(base + p, k)) if s is not None and s.size]

        if r >= p:  # hand the own slice in, get everything back at the end
            lo, hi = bounds[r]
            self._swap(r - p, [vec[lo:hi]], [])
            self._swap(r - p, [], [vec])
            return vec
        if r + p < n:
            self._swap(r + p, [], held(r + p, 1))
        k = 1
        while k < p:
            q = r ^ k
            self._swap(q, held(r & ~(k - 1), k), held(q & ~(k - 1), k))
            k <<= 1
        if r + p < n:
            self._swap(r + p, [vec], [])
        return vec

    def allreduce_small(self, values):
        """Sum a few float64 values over the ranks (bit-identical on every rank)."""
        total = np.array(values, dtype=np.float64).reshape(-1)
        return self.allreduce(total)


# ---------------------------------------------------------------------- choosing one
# The cost model of docs/SCALING.md §3 on a real 10 GbE cluster (benchmarks/scaling_model.py,
# results/scaling_model.json "real_10gbe"): per-step latency alpha = 177 us (fitted on the
# emulated 10 GbE at 2 ranks: 50 us of wire delay + a relay hop + our Python code, so
# pessimistic), link rate 1.15 GB/s.  Only their product (~200 KB) decides the crossover.
STEP_LATENCY = 177e-6
LINK_RATE = 1.15e9
# "auto" never picks doubling above this many bytes, whatever the model says: on the emulated
# 10 GbE (CPU-bound, where bytes cost more than on a real link) the trainer's iteration on
# doubling was 2.4-2.7x slower than on the ring at 1 MB and 8 ranks (results/
# scaling_trainer_step.json), and doubling moves log2(N) times the ring's bytes, so a wrong
# choice costs more above the crossover than it saves below it.
AUTO_LIMIT = 512 * 1024


def allreduce_seconds(algorithm, tasks, nbytes, alpha=STEP_LATENCY, rate=LINK_RATE):
    """Modelled seconds of one training iteration's communication of an ``nbytes`` gradient
    over ``tasks`` ranks: the reduce-scatter + all-gather of the gradient and weights and the
    control exchange (one ``allreduce_small``).

    ring: 2(N-1) steps of m/N bytes, control (N-1) steps.  doubling: s = log2(p) (+2 if N is
    not a power of two) steps of m bytes for the gradient, s steps of at most m/2 bytes for
    the weights (m in all), s steps of control."""
    n, m = int(tasks), float(nbytes)
    if n <= 1:
        return 0.0
    if algorithm == "ring":
        return 2 * (n - 1) * (alpha + m / n / rate) + (n - 1) * alpha
    if algorithm == "doubling":
        p = 1 << (n.bit_length() - 1)
        steps = (p.bit_length() - 1) + (2 if n > p else 0)
        return steps * (alpha + m / rate) + steps * alpha + m / rate + steps * alpha
    raise ValueError(f"allreduce must be one of {ALLREDUCES[:2]}, got {algorithm!r}")


def choose_allreduce(choice, tasks, nbytes, compression=None):
    """The all-reduce the trainer runs: ``choice`` itself for "ring" / "doubling"; for "auto"
    recursive doubling when there are at least 4 tasks, no 16-bit compression (a ring-only
    option for bandwidth-bound gradients), a gradient of at most ``AUTO_LIMIT`` (512 KiB) and
    the model (:func:`allreduce_seconds`) says it is faster for this size, else the ring.
    With 2-3 tasks the ring takes as few steps as doubling and moves fewer bytes.

    The model's crossover gradient size grows with the task count: ~400 KB at 4 tasks,
    ~1.1 MB at 8, ~2.1 MB at 16, ~3.9 MB at 32, ~6.9 MB at 64, ~22 MB at 256; the measured
    one was lower (see ``AUTO_LIMIT``), hence the cap.  LeNet-5's 248 KB goes to doubling from
    4 tasks, ResNet-50's 102 MB always to the ring.  Just above a power of two (5 tasks; 6
    below ~180 KB) the two extra steps that fold the odd ranks in and out cost what doubling
    saves, so those stay on the ring."""
    if choice not in ALLREDUCES:
        raise ValueError(f"Optimizer: allreduce must be one of {ALLREDUCES}, got {choice!r}")
    if choice != "auto":
        return choice
    if tasks < 4 or compression is not None or nbytes > AUTO_LIMIT:
        return "ring"
    faster = allreduce_seconds("doubling", tasks, nbytes) < allreduce_seconds("ring", tasks,
                                                                              nbytes)
    return "doubling" if faster else "ring"


# ---------------------------------------------------------------------- failures
NODE_MTBF = 30 * 86400.0  # one failure per node-month, executor losses included (SCALING.md)


def snapshot_interval(snapshot_cost, tasks, node_mtbf=NODE_MTBF):
    """Seconds between snapshots that lose the least time to failures (Young's rule):
    ``sqrt(2 * cost * MTBF)`` with the job's MTBF = ``node_mtbf / tasks``.

    Snapshotting more often pays ``cost`` more often; less often loses more work per failure
    (half an interval on average).  Young's rule balances the two to first order.

    Args:
        snapshot_cost: seconds a snapshot costs: ending a stretch (weights to the driver) and
            starting the next (barrier stage, rendezvous), as the trainer measures it.
        tasks: tasks (nodes) training; any of them failing restarts the stretch.
        node_mtbf: mean seconds between failures of one node (default one month).
    """
    cost, n, mtbf = float(snapshot_cost), int(tasks), float(node_mtbf)
    if not (cost > 0 and mtbf > 0 and n >= 1) or math.isinf(cost) or math.isinf(mtbf):
        raise ValueError(f"snapshot_interval needs a positive finite snapshot cost and node "
                         f"MTBF and at least one task, got cost={snapshot_cost!r}, "
                         f"tasks={tasks!r}, node_mtbf={node_mtbf!r}")
    return math.sqrt(2.0 * cost * mtbf / n)
