"""Pooling: spatial max/average pooling, global pooling over 1-3 dimensions, temporal and
volumetric pooling.
"""
from .spatial import (SpatialMaxPooling, SpatialAveragePooling, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D,
                      GlobalMaxPooling2D, GlobalMaxPooling3D)
from .temporal import TemporalMaxPooling
from .volumetric import VolumetricMaxPooling, VolumetricAveragePooling

__all__ = ["SpatialMaxPooling", "SpatialAveragePooling", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "GlobalMaxPooling3D", "TemporalMaxPooling", "VolumetricMaxPooling",
           "VolumetricAveragePooling"]
