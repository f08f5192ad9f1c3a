"""Distances, similarities and attention: ``Bilinear``, ``Cosine``, ``Euclidean``,
``DotProduct``, ``CosineDistance``, ``PairwiseDistance``, ``MM``, ``MV`` (``distance``);
multi-head ``Attention`` and ``TransformerEncoderLayer`` (``multihead``); ``Transformer``
(``transformer``); and ``Composite``, the base of the layers their constructor builds
from child layers (``composite``).
"""
from .distance import (Bilinear, Cosine, Euclidean, CosineDistance, PairwiseDistance, DotProduct,
                       MM, MV)
from .multihead import Attention, TransformerEncoderLayer
from .transformer import FeedForwardNetwork, Transformer

__all__ = ["Bilinear", "Cosine", "Euclidean", "CosineDistance", "PairwiseDistance", "DotProduct",
           "MM", "MV", "Attention", "TransformerEncoderLayer", "FeedForwardNetwork", "Transformer"]
