"""Normalization layers: batch normalization, ``LayerNormalization``, L_p
normalization, local response and local contrast normalization.
"""
from .batch_norm import BatchNormalization, SpatialBatchNormalization
from .layer_norm import LayerNormalization
from .local import (Normalize, NormalizeScale, SpatialCrossMapLRN, SpatialWithinChannelLRN,
                    SpatialSubtractiveNormalization, SpatialDivisiveNormalization,
                    SpatialContrastiveNormalization)

__all__ = ["BatchNormalization", "SpatialBatchNormalization", "LayerNormalization", "Normalize",
           "NormalizeScale", "SpatialCrossMapLRN", "SpatialWithinChannelLRN",
           "SpatialSubtractiveNormalization", "SpatialDivisiveNormalization",
           "SpatialContrastiveNormalization"]
