"""The recursive-doubling all-reduce of workbench.spark.comm (an option beside the ring): sums,
bit-identical replicas, the partners it connects, the ring left as it was."""
import numpy as np
import pytest

from helpers import make_rings, run_all
from workbench.spark.comm import CommError, Doubling, listen


def make_doublings(n, timeout=10.0):
    servers = [listen("127.0.0.1") for _ in range(n)]
    addresses = [("127.0.0.1", s.getsockname()[1]) for s in servers]
    out = [None] * n
    run_all(lambda r: out.__setitem__(r, Doubling.connect(r, addresses, servers[r], "t",
                                                          timeout=timeout)), n)
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("size", [1, 1000, 70_001])
def test_doubling_sums_and_leaves_identical_vectors(n, size):
    ranks = make_doublings(n)
    rng = np.random.default_rng(size * 10 + n)
    vectors = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    expected = np.sum(vectors, axis=0, dtype=np.float64)
    out = [v.copy() for v in vectors]
    run_all(lambda r: ranks[r].allreduce(out[r]), n)
    for v in out:
        np.testing.assert_allclose(v, expected, rtol=1e-5, atol=1e-5)
        assert np.array_equal(v, out[0])
    # log2(p) exchanges of the whole vector (+1 fold) for a rank below n - p
    p = 1 << (n.bit_length() - 1)
    assert ranks[0].bytes_sent == (size * 4 * (p.bit_length() - 1 + (1 if n > p else 0))
                                   if n > 1 else 0)
    for d in ranks:
        d.close()


def test_partners_pair_up():
    for n in range(1, 18):
        for r in range(n):
            for q in Doubling.partners(r, n):
                assert 0 <= q < n and r in Doubling.partners(q, n)


def test_ring_result_is_unchanged_by_the_option():
    # the default collective: the ring's own sum, in the ring's order, as before
    n, size = 4, 10_007
    rng = np.random.default_rng(1)
    vectors = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    rings = make_rings(n)
    out = [v.copy() for v in vectors]
    run_all(lambda r: rings[r].allreduce(out[r]), n)
    for ring in rings:
        ring.close()
    # the ring reduces slice k starting at rank k + 1 and adding in ring order
    bounds = np.array_split(np.arange(size), n)
    for k, idx in enumerate(bounds):
        acc = vectors[(k + 1) % n][idx].copy()
        for step in range(1, n):
            acc += vectors[(k + 1 + step) % n][idx]
        assert np.array_equal(out[0][idx], acc)


def test_doubling_refuses_compression_and_times_out_on_a_silent_peer():
    ranks = make_doublings(2)
    with pytest.raises(ValueError, match="compression"):
        ranks[0].allreduce(np.ones(4, np.float32), compression="bf16")
    ranks[0].timeout = 0.5
    ranks[0].peers[1].settimeout(0.5)
    with pytest.raises(CommError, match="timed out"):
        ranks[0].allreduce(np.ones(10, np.float32))
    for d in ranks:
        d.close()
