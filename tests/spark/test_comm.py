"""The TCP ring of workbench.spark (no Spark needed): collectives, compression, timeouts."""
import socket

import numpy as np
import pytest

from helpers import make_rings, run_all
from workbench.spark.comm import CommError, Ring, listen, recv_msg, send_msg, slices


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [1, 7, 1000, 300_001])
def test_allreduce_sums_and_leaves_identical_vectors(n, size):
    rings = make_rings(n)
    rng = np.random.default_rng(size + n)
    vectors = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    expected = np.sum(vectors, axis=0, dtype=np.float64)
    out = [v.copy() for v in vectors]
    run_all(lambda r: rings[r].allreduce(out[r]), n)
    for v in out:
        np.testing.assert_allclose(v, expected, rtol=1e-5, atol=1e-5)
        assert np.array_equal(v, out[0])  # every replica ends bit-identical
    for ring in rings:
        ring.close()


def test_reduce_scatter_gives_each_rank_its_slice_then_all_gather_fills_in():
    n, size = 3, 1001
    rings = make_rings(n)
    vectors = [np.full(size, r + 1, dtype=np.float32) for r in range(n)]
    owned = [None] * n

    def step(r):
        owned[r] = rings[r].reduce_scatter(vectors[r])
        lo, hi = owned[r]
        assert np.all(vectors[r][lo:hi] == 6)
        vectors[r][lo:hi] *= 10  # "update my slice"
        rings[r].all_gather(vectors[r])

    run_all(step, n)
    assert owned == slices(size, n)
    for v in vectors:
        assert np.all(v == 60)


@pytest.mark.parametrize("kind,tol", [("bf16", 1e-2), ("fp16", 2e-3)])
def test_16_bit_compression(kind, tol):
    n = 2
    rings = make_rings(n)
    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal(50_000).astype(np.float32) for _ in range(n)]
    expected = vectors[0] + vectors[1]
    out = [v.copy() for v in vectors]
    run_all(lambda r: rings[r].allreduce(out[r], compression=kind), n)
    assert np.array_equal(out[0], out[1])
    err = np.abs(out[0] - expected) / (np.abs(expected) + 1)
    assert err.max() < tol
    assert rings[0].bytes_sent < 50_000 * 4  # half the bytes on the wire for the gradients


def test_allreduce_small_is_identical_on_every_rank():
    rings = make_rings(3)
    out = [None] * 3
    run_all(lambda r: out.__setitem__(r, rings[r].allreduce_small([0.1 * (r + 1), 1, r])), 3)
    for v in out:
        assert np.array_equal(v, out[0])
    np.testing.assert_allclose(out[0], [0.6, 3, 3])


def test_slices_cover_the_vector():
    for size in (0, 1, 5, 10, 1001):
        for n in (1, 2, 3, 7):
            s = slices(size, n)
            assert s[0][0] == 0 and s[-1][1] == size
            assert all(a[1] == b[0] for a, b in zip(s, s[1:]))
            assert max(hi - lo for lo, hi in s) - min(hi - lo for lo, hi in s) <= 1


def test_a_silent_peer_times_out_instead_of_hanging():
    # connected with a generous timeout (the two threads may be slow to meet on a busy machine),
    # then the short one every socket of a ring keeps for the exchanges
    rings = make_rings(2, timeout=30)
    for ring in rings:
        ring.timeout = 0.5
        for sock in (ring.next_sock, ring.prev_sock):
            sock.settimeout(0.5)
    with pytest.raises(CommError, match="timed out"):
        rings[0].allreduce(np.ones(10, dtype=np.float32))  # rank 1 never joins
    for ring in rings:
        ring.close()


def test_a_peer_that_dies_raises_at_once():
    rings = make_rings(2, timeout=30)
    rings[1].close()
    with pytest.raises(CommError):
        rings[0].allreduce(np.ones(100_000, dtype=np.float32))
    rings[0].close()


def test_ring_ignores_connections_without_the_token():
    servers = [listen("127.0.0.1") for _ in range(2)]
    addresses = [("127.0.0.1", s.getsockname()[1]) for s in servers]
    stray = socket.create_connection(addresses[1])
    send_msg(stray, {"token": "wrong", "rank": 0})
    rings = [None, None]
    run_all(lambda r: rings.__setitem__(r, Ring.connect(r, addresses, servers[r], "token",
                                                         timeout=5)), 2)
    out = [np.ones(10, np.float32), np.ones(10, np.float32)]
    run_all(lambda r: rings[r].allreduce(out[r]), 2)
    assert np.all(out[0] == 2)
    stray.close()


def test_control_messages_round_trip():
    a, b = socket.socketpair()
    send_msg(a, {"i": 3, "loss": 0.5})
    assert recv_msg(b) == {"i": 3, "loss": 0.5}
    a.close()
    with pytest.raises(CommError):
        recv_msg(b)
