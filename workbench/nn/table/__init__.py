"""Table (list) layers: element-wise merges (``CAddTable``, ``CMulTable`` ...), joins, splits,
selections, ``MapTable`` and ``Bottle`` (``tables``); ``CrossProduct``, ``TableOperation``,
``BifurcateSplitTable`` (``operations``); sparse tables (``sparse``).
"""
from .tables import (CAddTable, JoinTable, CAveTable, CSubTable, CMulTable, CDivTable, CMaxTable,
                     CMinTable, SplitTable, Pack, SelectTable, NarrowTable, FlattenTable,
                     MixtureTable, MaskedSelect, MapTable, Bottle)
from .operations import CrossProduct, TableOperation, BifurcateSplitTable
from .sparse import DenseToSparse, SparseJoinTable

__all__ = ["CAddTable", "JoinTable", "CAveTable", "CSubTable", "CMulTable", "CDivTable",
           "CMaxTable", "CMinTable", "SplitTable", "Pack", "SelectTable", "NarrowTable",
           "FlattenTable", "MixtureTable", "MaskedSelect", "MapTable", "Bottle", "CrossProduct",
           "TableOperation", "BifurcateSplitTable", "DenseToSparse", "SparseJoinTable"]
