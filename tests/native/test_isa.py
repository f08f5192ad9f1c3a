"""The ISA cap: ``WORKBENCH_MAX_CPU_ISA`` / ``ONEDNN_MAX_CPU_ISA`` choose which clone of the
hand-written loops runs (kernels_native/common.hpp ``max_isa``), so that a benchmark capped at
AVX2 (benchmarks/machine.py, ``--isa avx2``) runs on an AVX-512 machine what an AVX2 machine
runs.  Every clone computes the same bits: the channels-last batch norm + ReLU, forward and
backward, gives identical arrays under the generic, AVX2 and uncapped loops.  Each cap is its own
process (the cap is read once, when first asked).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from workbench.nn import backend

pytestmark = pytest.mark.skipif(backend.native() is None,
                                reason=f"native module not built: {backend.native_error()}")

# channels-last batch norm (+ fused ReLU) forward and backward, 17 channels (a 16-lane vector
# and a scalar tail); writes the arrays and the ISAs to argv[1]
JOB = """
import sys, json, numpy as np
from workbench.nn import ReLU, Sequential, SpatialBatchNormalization, backend, layout
backend.set_backend("native")
rng = np.random.default_rng(3)
x = layout.like(rng.standard_normal((4, 17, 5, 6)).astype(np.float32) * 2 + 0.3, True)
g = layout.like(rng.standard_normal((4, 17, 5, 6)).astype(np.float32), True)
model = Sequential().add(SpatialBatchNormalization(17)).add(ReLU())
y = np.ascontiguousarray(model.forward(x))
gi = np.ascontiguousarray(model.backward(x, g))
bn = model[0]
np.savez(sys.argv[1], y=y, gi=gi, gw=bn.grad_weight, gb=bn.grad_bias, rm=bn.running_mean,
         rv=bn.running_var)
print(json.dumps({"loops": backend.native().max_isa(), "onednn": backend.native().onednn_isa()}))
"""


def run(tmp_path, name, **caps):
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBENCH_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "WORKBENCH_BACKEND")}
    env.update(caps)
    out = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, "-c", JOB, str(out)], env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    isa = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as f:
        return isa, {k: f[k] for k in f.files}


def test_the_cap_picks_the_clone_and_every_clone_gives_the_same_bits(tmp_path):
    native = backend.native()
    widest = native.max_isa() if not os.environ.get("WORKBENCH_MAX_CPU_ISA") else None
    (isa_full, full) = run(tmp_path, "uncapped")
    (isa_avx2, avx2) = run(tmp_path, "avx2", WORKBENCH_MAX_CPU_ISA="avx2")
    (isa_onednn, via_onednn) = run(tmp_path, "onednn_cap", ONEDNN_MAX_CPU_ISA="AVX2")
    (isa_generic, generic) = run(tmp_path, "generic", WORKBENCH_MAX_CPU_ISA="sse41")
    if widest is not None:
        assert isa_full["loops"] == widest
    has_avx2 = native.has_fma()
    assert isa_avx2["loops"] == ("avx2" if has_avx2 else "generic")
    # oneDNN's own cap caps our loops as well, and oneDNN's dispatch
    assert isa_onednn["loops"] == isa_avx2["loops"]
    assert not isa_onednn["onednn"].startswith("avx512")
    assert isa_generic["loops"] == "generic"
    for name, run_ in (("avx2", avx2), ("onednn cap", via_onednn), ("generic", generic)):
        for key, value in full.items():
            assert value.tobytes() == run_[key].tobytes(), f"{name}: {key} differs"
    assert np.isfinite(full["gi"]).all() and (full["y"] >= 0).all()
