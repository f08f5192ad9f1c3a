"""Basic layers: ``Linear``, the pass-through ``Identity`` and ``Echo``, and the dense
variants ``Maxout`` and ``Highway``.
"""
from .linear import Linear
from .basic import Identity, Echo
from .dense import Maxout, Highway

__all__ = ["Linear", "Identity", "Echo", "Maxout", "Highway"]
