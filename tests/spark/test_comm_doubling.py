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


# ---------------------------------------------------------------------- the trainer's collectives
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("size", [3, 1000, 70_001])
def test_all_gather_copies_every_slice_to_every_rank(n, size):
    ranks = make_doublings(n)
    bounds = np.array_split(np.arange(size), n)  # size 3 < n: some slices are empty
    truth = np.random.default_rng(n + size).standard_normal(size).astype(np.float32)
    out = []
    for r in range(n):  # each rank knows only its own slice; the rest is garbage
        v = np.full(size, np.nan, np.float32)
        v[bounds[r]] = truth[bounds[r]]
        out.append(v)
    run_all(lambda r: ranks[r].all_gather(out[r]), n)
    for v in out:
        assert np.array_equal(v, truth)  # copied, never added: exact
    for d in ranks:
        d.close()


def training_step(comms, w0, grads, lr=0.1):
    """The trainer's pattern on every rank: sum the gradient, update the own slice of the
    weights, gather the weights; and a control exchange.  Returns weights and controls."""
    n = len(comms)
    ws, gs, controls = [w0.copy() for _ in range(n)], [g.copy() for g in grads], [None] * n

    def step(r):
        lo, hi = comms[r].reduce_scatter(gs[r])
        ws[r][lo:hi] -= lr * gs[r][lo:hi]
        comms[r].all_gather(ws[r])
        controls[r] = comms[r].allreduce_small([float(r) + 0.1, 1.0])

    run_all(step, n)
    for c in comms:
        c.close()
    return ws, controls


@pytest.mark.parametrize("n", [3, 4, 5, 8])
def test_a_training_step_on_doubling_matches_the_ring_and_replicas_agree(n):
    """With 3+ ranks doubling adds in another order than the ring, so the two agree to
    rounding, not in every bit; every doubling replica holds the same bits."""
    size = 20_011
    rng = np.random.default_rng(n)
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    w0 = rng.standard_normal(size).astype(np.float32)
    results = {}
    for name, build in (("ring", make_rings), ("doubling", make_doublings)):
        ws, controls = training_step(build(n), w0, grads)
        for r in range(n):
            assert np.array_equal(ws[r], ws[0]), f"{name}: replica {r} differs"
            assert np.array_equal(controls[r], controls[0])
        assert controls[0][1] == n
        results[name] = ws[0]
    expected = w0 - 0.1 * np.sum(grads, axis=0, dtype=np.float64)
    np.testing.assert_allclose(results["doubling"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results["doubling"], results["ring"], rtol=1e-5, atol=1e-5)


def test_auto_chooses_by_the_cost_model():
    from workbench.spark.comm import allreduce_seconds, choose_allreduce
    lenet, resnet = 62_006 * 4, 25_557_032 * 4
    assert choose_allreduce("ring", 64, lenet) == "ring"
    assert choose_allreduce("doubling", 2, resnet) == "doubling"
    # 2-3 tasks: the ring's steps are as few; compression is a ring option
    assert choose_allreduce("auto", 2, 1024) == "ring"
    assert choose_allreduce("auto", 3, 1024) == "ring"
    assert choose_allreduce("auto", 16, lenet, compression="bf16") == "ring"
    # small gradients on 4+ tasks go to doubling, big ones stay on the ring
    for n in (4, 8, 16, 64, 256):
        assert choose_allreduce("auto", n, lenet) == "doubling"
        assert choose_allreduce("auto", n, resnet) == "ring"
    # the model's crossover grows with the task count; auto stays below 512 KiB (measured)
    assert choose_allreduce("auto", 4, 480_000) == "ring"
    assert choose_allreduce("auto", 8, 480_000) == "doubling"
    assert choose_allreduce("auto", 16, 600_000) == "ring"
    assert allreduce_seconds("doubling", 16, 600_000) < allreduce_seconds("ring", 16, 600_000)
    assert choose_allreduce("auto", 5, 1024) == "ring"  # 2 fold steps eat the gain
    assert allreduce_seconds("ring", 1, 10**6) == 0.0
    with pytest.raises(ValueError, match=r"'ring', 'doubling', 'auto'.*'tree'"):
        choose_allreduce("tree", 4, 1024)
