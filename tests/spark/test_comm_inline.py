"""The ring's exchange on the calling thread (chunks of DIRECT_SEND..INLINE bytes, non-blocking
sockets and poll): the ring's sums in the ring's order at every size boundary, the path each
size takes, and errors that name the peer."""
import numpy as np
import pytest

from helpers import make_rings, run_all
from workbench.spark import comm
from workbench.spark.comm import CommError, Ring

DIRECT = comm.DIRECT_SEND // 4  # float32 elements per chunk at the two thresholds
INLINE = comm.INLINE // 4


def ring_order(vectors):
    """The ring's sum: slice k starts at rank k + 1 and adds the others in ring order."""
    n, size = len(vectors), vectors[0].size
    out = np.empty(size, np.float32)
    for k, idx in enumerate(np.array_split(np.arange(size), n)):
        acc = vectors[(k + 1) % n][idx].copy()
        for step in range(1, n):
            acc += vectors[(k + 1 + step) % n][idx]
        out[idx] = acc
    return out


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("chunk", [DIRECT - 1, DIRECT, DIRECT + 1, INLINE - 1, INLINE,
                                   INLINE + 1])
def test_every_size_boundary_sums_in_the_ring_order_on_the_path_its_size_chooses(
        n, chunk, monkeypatch):
    inline_calls = []
    real = Ring._exchange_inline

    def counted(self, data, into):
        inline_calls.append(len(into))
        return real(self, data, into)

    monkeypatch.setattr(Ring, "_exchange_inline", counted)
    rng = np.random.default_rng(n * chunk)
    vectors = [rng.standard_normal(n * chunk).astype(np.float32) for _ in range(n)]
    rings = make_rings(n)
    out = [v.copy() for v in vectors]
    run_all(lambda r: rings[r].allreduce(out[r]), n)
    for ring in rings:
        ring.close()
    expected = ring_order(vectors)
    for v in out:
        assert np.array_equal(v, expected)  # bit for bit: the order of additions is kept
    # 2(n-1) exchanges per rank, on the calling thread only between the two thresholds
    on_thread = DIRECT < chunk <= INLINE
    assert len(inline_calls) == (2 * (n - 1) * n if on_thread else 0)
    assert all(b == 4 * chunk for b in inline_calls)


def test_16_bit_chunks_on_the_calling_thread_agree_with_the_sender_thread(monkeypatch):
    # bf16 halves the bytes: 40_000 elements per chunk go inline (80 KB); forcing the sender
    # thread (INLINE = 0) must give the very same bits
    rng = np.random.default_rng(5)
    vectors = [rng.standard_normal(80_000).astype(np.float32) for _ in range(2)]
    results = []
    for inline in (comm.INLINE, 0):
        monkeypatch.setattr(comm, "INLINE", inline)
        rings = make_rings(2)
        out = [v.copy() for v in vectors]
        run_all(lambda r, rings=rings, out=out: rings[r].allreduce(out[r],
                                                                compression="bf16"), 2)
        for ring in rings:
            ring.close()
        assert np.array_equal(out[0], out[1])
        results.append(out[0])
    assert np.array_equal(results[0], results[1])


def test_sockets_keep_their_timeouts_after_an_exchange():
    rings = make_rings(2, timeout=7.0)
    out = [np.ones(3 * DIRECT, np.float32) for _ in range(2)]
    run_all(lambda r: rings[r].allreduce(out[r]), 2)
    assert np.all(out[0] == 2)
    for ring in rings:
        assert ring.next_sock.gettimeout() == 7.0 and ring.prev_sock.gettimeout() == 7.0
        ring.close()


def test_a_peer_that_dies_mid_message_is_named():
    rings = make_rings(3, timeout=30)
    # rank 2 (rank 0's previous) sends the first 1000 bytes of its 32 KB chunk, then dies
    rings[2].next_sock.sendall(b"\0" * 1000)
    rings[2].close()
    with pytest.raises(CommError, match=r"rank 0: rank 2 closed the connection after 1000 of "
                                        r"32768 bytes"):
        rings[0].allreduce(np.ones(3 * 2 * DIRECT, np.float32))
    assert rings[0].prev_sock.gettimeout() == 30  # restored on the way out
    for ring in rings[:2]:
        ring.close()


def test_a_silent_peer_times_out_naming_it():
    rings = make_rings(3, timeout=30)
    rings[0].timeout = 0.5
    with pytest.raises(CommError, match=r"rank 0: timed out after 0.5s waiting for rank 2"):
        rings[0].allreduce(np.ones(3 * 2 * DIRECT, np.float32))  # ranks 1 and 2 never join
    for ring in rings:
        ring.close()
