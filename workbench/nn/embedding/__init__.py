"""Embeddings and sparse input: ``LookupTable``, ``LookupTableSparse`` and ``SparseLinear``.
"""
from .lookup import LookupTable, LookupTableSparse, SparseLinear

__all__ = ["LookupTable", "LookupTableSparse", "SparseLinear"]
