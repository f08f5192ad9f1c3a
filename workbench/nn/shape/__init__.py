"""Layers that change a tensor's shape or pick part of it: view/reshape/transpose/select/
narrow/index/replicate (``reshape``), padding, cropping, up-sampling and resizing
(``padding``), ``ExpandSize`` (``expand``) and the reductions ``Max``, ``Min``, ``Sum``,
``Mean`` (``reduce``).
"""
from .reshape import (View, Reshape, InferReshape, Squeeze, Unsqueeze, Transpose, Contiguous,
                      Select, Narrow, Index, Replicate, Tile, Reverse, Masking)
from .padding import (SpatialZeroPadding, Padding, Cropping2D, Cropping3D, UpSampling1D,
                      UpSampling2D, UpSampling3D, ResizeBilinear)
from .expand import ExpandSize
from .reduce import Max, Min, Sum, Mean

__all__ = ["View", "Reshape", "InferReshape", "Squeeze", "Unsqueeze", "Transpose", "Contiguous",
           "Select", "Narrow", "Index", "Replicate", "Tile", "Reverse", "Masking",
           "SpatialZeroPadding", "Padding", "Cropping2D", "Cropping3D", "UpSampling1D",
           "UpSampling2D", "UpSampling3D", "ResizeBilinear", "ExpandSize", "Max", "Min", "Sum",
           "Mean"]
