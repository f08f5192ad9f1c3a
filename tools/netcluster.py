"""Build an emulated cluster network on this machine, measure it, tear it down.

    sudo python tools/netcluster.py check --preset 1gbe      # RTT + bulk rate, then tear down
    sudo python tools/netcluster.py up --nodes 4 --rate 10gbit --delay 50e-6   # until Ctrl-C
    sudo python tools/netcluster.py check --preset 1gbe --link tun --loss 0.01   # random loss
    sudo python tools/netcluster.py cleanup                  # leftovers of a crashed run

A thin front for ``python -m workbench.spark.netem`` (see that module for how latency, rate,
a dropped link and random packet loss are emulated).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from workbench.spark.netem import _main  # noqa: E402

if __name__ == "__main__":
    sys.exit(_main())
