"""The random generator behind weight initialization and dropout (BigDL's ``RandomGenerator``).

One process-wide numpy ``Generator``: ``set_seed`` makes model construction and training
reproducible, and its state is saved in checkpoints so a resumed run draws the same numbers.
"""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def set_seed(seed: int) -> None:
    """Seed the generator used for initialization and dropout."""
    global _rng
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The current generator (call each time; ``set_seed`` replaces it)."""
    return _rng


def get_state() -> dict:
    """The generator's state as a JSON-able dict."""
    return _rng.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state from :func:`get_state`."""
    global _rng
    kinds = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
             "MT19937": np.random.MT19937, "Philox": np.random.Philox, "SFC64": np.random.SFC64}
    if not isinstance(state, dict) or state.get("bit_generator") not in kinds:
        raise ValueError(f"not a random generator state: {str(state)[:80]}")
    bitgen = kinds[state["bit_generator"]]()
    bitgen.state = state
    _rng = np.random.Generator(bitgen)
