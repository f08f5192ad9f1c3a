"""Convolutions: spatial (``SpatialConvolution`` and its dilated, shared, full, separable,
locally connected and map variants), temporal, volumetric, and the N-d machinery they
share (``convnd``).
"""
from .spatial import SpatialConvolution
from .variants import (SpatialDilatedConvolution, SpatialShareConvolution, SpatialFullConvolution,
                       SpatialSeparableConvolution, LocallyConnected2D)
from .conv_map import SpatialConvolutionMap
from .temporal import TemporalConvolution, LocallyConnected1D
from .volumetric import VolumetricConvolution, VolumetricFullConvolution

__all__ = ["SpatialConvolution", "SpatialDilatedConvolution", "SpatialShareConvolution",
           "SpatialFullConvolution", "SpatialSeparableConvolution", "LocallyConnected2D",
           "SpatialConvolutionMap", "TemporalConvolution", "LocallyConnected1D",
           "VolumetricConvolution", "VolumetricFullConvolution"]
