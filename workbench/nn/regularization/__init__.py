"""Regularizing layers: dropout (``Dropout``, ``SpatialDropout1D/2D/3D``,
``GaussianDropout``), noise (``GaussianNoise``, ``GaussianSampler``), penalties
(``L1Penalty``, ``ActivityRegularization``, ``NegativeEntropyPenalty``) and
``GradientReversal``.
"""
from .dropout import Dropout, SpatialDropout1D, SpatialDropout2D, SpatialDropout3D, GaussianDropout
from .noise import GaussianNoise, GaussianSampler
from .penalty import L1Penalty, ActivityRegularization, GradientReversal, NegativeEntropyPenalty

__all__ = ["Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
           "GaussianNoise", "GaussianSampler", "L1Penalty", "ActivityRegularization",
           "GradientReversal", "NegativeEntropyPenalty"]
