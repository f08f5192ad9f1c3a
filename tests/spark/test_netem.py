"""The emulated cluster network (workbench.spark.netem): namespaces and links are made and always
removed, the delay line and the rate limit do what they are set to, a black-holed link stalls
and recovers, and the ring all-reduce runs across it unchanged.  Needs root and iproute2: skipped
(with the reason) where network namespaces cannot be made."""
import json
import subprocess
import sys
import time

import pytest

from workbench.spark import netem

OK, WHY = netem.available()
pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(not OK, reason=f"network namespaces not permitted here: {WHY}")]


def _host_links():
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.count("\n")


def test_namespaces_are_made_and_always_removed_even_on_error():
    links_before = _host_links()
    net = netem.NetCluster(3, rate="1gbit", delay=100e-6, name="t1")
    with pytest.raises(RuntimeError, match="boom"):
        with net:
            assert sorted(net.leftovers()) == sorted([net.hub] + net.names)
            assert _host_links() == links_before  # nothing was made in our own namespace
            addr = subprocess.run(["ip", "netns", "exec", net.names[2], "ip", "-o", "addr"],
                                  capture_output=True, text=True).stdout
            assert net.ip(2) in addr
            net.popen(1, [sys.executable, "-c", "import time; time.sleep(60)"])
            raise RuntimeError("boom")
    assert net.leftovers() == []
    assert _host_links() == links_before


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="rate must look like"):
        netem.NetCluster(2, rate="fast")
    with pytest.raises(ValueError, match="nodes must be"):
        netem.NetCluster(0)
    assert netem.parse_rate("10gbit") == 1.25e9


def test_delay_line_and_rate_limit_are_what_was_set():
    delay, rate = 300e-6, "200mbit"
    with netem.NetCluster(2, rate=rate, delay=delay, name="t2") as net:
        rtts = netem.measure_rtt(net, count=50)
        bandwidth = netem.measure_bandwidth(net, nbytes=6 << 20)
    assert len(rtts) == 50
    assert min(rtts) >= 2 * delay  # the relay holds each direction for `delay`
    # the tbf lets at most its burst through above the rate
    assert bandwidth <= netem.parse_rate(rate) * 1.1
    assert bandwidth >= netem.parse_rate(rate) * 0.2  # ... and the link is not broken


def test_a_black_holed_link_stalls_the_connection_until_it_comes_back():
    with netem.NetCluster(2, rate="1gbit", delay=0, name="t3") as net:
        host, port = netem._probe_server(net, 1)
        net.blackhole(1)
        probe = net.popen(0, [sys.executable, "-c", netem._PROBE, "rtt", host, 0, port, 5],
                          stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert probe.poll() is None  # no packet gets through: it cannot have finished
        net.blackhole(1, on=False)
        out = probe.communicate(timeout=60)[0]
    assert len(out.split()) == 5  # TCP retransmitted and got through once the link was back


HUB_SERVER = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 0)); print(srv.getsockname()[1], flush=True)
conn, peer = srv.accept(); conn.sendall(peer[0].encode()); conn.close()
"""
NODE_CLIENT = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as s:
    print(s.recv(100).decode(), flush=True)
"""


@pytest.mark.parametrize("link", netem.LINKS)
def test_a_process_in_the_switch_namespace_is_reachable_from_the_nodes(link):
    # where bench_scaling's Spark master runs: the hub's address answers, from node 1's
    with netem.NetCluster(2, rate="1gbit", delay=0, name="t5", link=link) as net:
        server = net.popen("hub", [sys.executable, "-c", HUB_SERVER, net.hub_ip],
                           stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        client = net.popen(1, [sys.executable, "-c", NODE_CLIENT, net.hub_ip, port],
                           stdout=subprocess.PIPE, text=True)
        seen = client.communicate(timeout=60)[0].strip()
        assert server.wait(timeout=30) == 0
    assert seen == net.ip(1)  # the connection came from node 1's own address
    assert net.leftovers() == []


RING = r"""
import importlib.util, json, sys, numpy as np
spec = importlib.util.spec_from_file_location("comm", sys.argv[3])  # comm.py alone: fast start
comm = importlib.util.module_from_spec(spec); spec.loader.exec_module(comm)
Ring, listen = comm.Ring, comm.listen
rank, host = int(sys.argv[1]), sys.argv[2]
srv = listen(host); print(srv.getsockname()[1], flush=True)
addresses = [tuple(a) for a in json.loads(sys.stdin.readline())]
ring = Ring.connect(rank, addresses, srv, "t", timeout=60)
v = np.arange(100_003, dtype=np.float32) * (rank + 1)
ring.allreduce(v)
print(float(v[1]), float(v[-1]), flush=True)
"""


def test_the_ring_allreduce_runs_across_the_emulated_network():
    n = 3
    with netem.NetCluster(n, rate="1gbit", delay=50e-6, name="t4") as net:
        procs = [net.popen(r, [sys.executable, "-c", RING, r, net.ip(r), netem.COMM_PATH],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for r in range(n)]
        addresses = [net.forward(net.ip(r), int(p.stdout.readline())) for r, p in
                     enumerate(procs)]
        assert all(host == net.hub_ip for host, _ in addresses)  # every hop through the relay
        for p in procs:  # every rank must have the addresses before any can finish
            p.stdin.write(json.dumps(addresses) + "\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=60)[0] for p in procs]
    total = sum(range(1, n + 1))
    for out in outs:
        assert [float(x) for x in out.split()] == [1.0 * total, 100_002.0 * total]



# ---------------------------------------------------------------------- link="tun": packet loss
STREAM = r"""
import hashlib, socket, sys
mode, host = sys.argv[1], sys.argv[2]
if mode == "recv":
    srv = socket.create_server((host, 0)); print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept(); h, n = hashlib.sha256(), 0
    while True:
        d = conn.recv(1 << 20)
        if not d: break
        h.update(d); n += len(d)
    print(n, h.hexdigest(), flush=True)
else:
    import random
    data = random.Random(int(sys.argv[4])).randbytes(int(sys.argv[5]))
    with socket.create_connection((host, int(sys.argv[3])), timeout=60) as s:
        s.sendall(data)
"""


def _binomial_ok(k, n, p, sigmas=5.0):
    return abs(k - n * p) <= sigmas * (n * p * (1 - p)) ** 0.5


def test_a_lossy_tun_link_drops_packets_at_its_rate_and_tcp_delivers_every_byte():
    import hashlib
    import random
    loss, nbytes, seed = 0.01, 6 << 20, 7
    with netem.NetCluster(2, rate=None, delay=0, link="tun", loss=loss, name="t6") as net:
        recv = net.popen(1, [sys.executable, "-c", STREAM, "recv", net.ip(1)],
                         stdout=subprocess.PIPE, text=True)
        port = recv.stdout.readline().strip()
        send = net.popen(0, [sys.executable, "-c", STREAM, "send", net.ip(1), port, seed, nbytes])
        assert send.wait(timeout=120) == 0
        n, digest = recv.communicate(timeout=120)[0].split()
        stats = net.link_stats()
    expected = hashlib.sha256(random.Random(seed).randbytes(nbytes)).hexdigest()
    assert (int(n), digest) == (nbytes, expected)  # TCP repaired every loss: byte-exact
    for link in ((0, 1), (1, 0)):  # data one way, ACKs the other: both lose at the set rate
        c = stats[link]
        assert c["lost"] > 0 and c["blackholed"] == 0 and c["overflow"] == 0
        assert _binomial_ok(c["lost"], c["packets"], loss), (link, c)
    assert stats[(0, 1)]["bytes"] > nbytes  # every byte crossed the router (retransmits too)


def test_a_tun_link_adds_its_delay_to_every_packet_and_blackholes():
    delay = 300e-6
    with netem.NetCluster(2, rate="1gbit", delay=delay, link="tun", name="t7") as net:
        assert net.forward(net.ip(1), 5000) == (net.ip(1), 5000)  # no relay: the router routes
        rtts = netem.measure_rtt(net, count=50)
        host, port = netem._probe_server(net, 1)
        net.blackhole(1)
        probe = net.popen(0, [sys.executable, "-c", netem._PROBE, "rtt", host, 0, port, 3],
                          stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert probe.poll() is None  # no packet gets through
        net.blackhole(1, on=False)
        out = probe.communicate(timeout=60)[0]
        stats = net.link_stats()
    assert len(rtts) == 50 and min(rtts) >= 2 * delay  # both directions held `delay`
    assert len(out.split()) == 3
    assert stats[(0, 1)]["blackholed"] > 0 and stats[(0, 1)]["lost"] == 0


def test_tun_arguments_are_checked_and_its_namespaces_removed_on_error():
    with pytest.raises(ValueError, match="random loss needs link='tun'"):
        netem.NetCluster(2, loss=0.01)
    with pytest.raises(ValueError, match="loss must be a probability"):
        netem.NetCluster(2, link="tun", loss=1.5)
    with pytest.raises(ValueError, match="link must be one of"):
        netem.NetCluster(2, link="wifi")
    links_before = _host_links()
    net = netem.NetCluster(2, rate=None, delay=0, link="tun", loss=0.5, name="t8")
    with pytest.raises(RuntimeError, match="boom"):
        with net:
            assert sorted(net.leftovers()) == sorted([net.hub] + net.names)
            mtu = subprocess.run(["ip", "netns", "exec", net.names[0], "ip", "-o", "link",
                                  "show", "eth0"], capture_output=True, text=True).stdout
            assert "mtu 9000" in mtu
            raise RuntimeError("boom")
    assert net.leftovers() == [] and _host_links() == links_before


RING_SUMS = r"""
import hashlib, importlib.util, json, sys, numpy as np
spec = importlib.util.spec_from_file_location("comm", sys.argv[3])
comm = importlib.util.module_from_spec(spec); spec.loader.exec_module(comm)
rank, host = int(sys.argv[1]), sys.argv[2]
srv = comm.listen(host); print(srv.getsockname()[1], flush=True)
addresses = [tuple(a) for a in json.loads(sys.stdin.readline())]
ring = comm.Ring.connect(rank, addresses, srv, "t", timeout=60)
for it in range(3):  # 3 all-reduces of 1.2 MB: thousands of packets each way
    v = np.random.default_rng(100 * rank + it).standard_normal(300_007).astype(np.float32)
    ring.allreduce(v)
    print(hashlib.sha256(v.tobytes()).hexdigest(), flush=True)
"""


def _ring_sums(net, n):
    procs = [net.popen(r, [sys.executable, "-c", RING_SUMS, r, net.ip(r), netem.COMM_PATH],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for r in range(n)]
    addresses = [net.forward(net.ip(r), int(p.stdout.readline())) for r, p in enumerate(procs)]
    for p in procs:
        p.stdin.write(json.dumps(addresses) + "\n")
        p.stdin.flush()
    return [p.communicate(timeout=120)[0].split() for p in procs]


def test_the_ring_allreduce_gives_the_same_sums_over_a_lossy_link():
    n = 3
    with netem.NetCluster(n, rate="1gbit", delay=50e-6, link="tun", name="t9") as net:
        clean = _ring_sums(net, n)
        net.set_link(loss=0.03)
        lossy = _ring_sums(net, n)
        lost = sum(c["lost"] for c in net.link_stats().values())
    assert lost > 0  # packets of the second run were dropped ...
    assert all(len(out) == 3 for out in clean)
    assert all(out == clean[0] for out in clean)  # every rank has the same sums
    assert lossy == clean  # ... and the ring's sums are bit for bit those of the clean run
